#!/usr/bin/env python3
"""Check that a Kafka cluster really serves requests (standard library only).

An open TCP port is not enough: a KRaft broker binds its listener well before
it has joined the metadata quorum and been unfenced, and until then it
accepts connections but does not answer. So this sends two real requests on
one connection:

  1. ApiVersions v0 -- every broker answers it, even before authentication,
     and it says which Metadata versions the broker speaks;
  2. Metadata (no topics) at the highest version both sides support -- a
     broker only answers with itself in the broker list once it is
     registered and serving, which is the point where clients can use it.

With --warm it then also waits until the broker can serve the first
consumer group, transaction and idempotent producer without "coordinator
loading" retries: FindCoordinator for a group and for a transactional id
creates __consumer_offsets and __transaction_state and waits until they are
loaded, and InitProducerId waits until the broker holds a block of producer
ids. Without this the first test after a fresh start pays those seconds,
inside its own timeouts.

Usage:
  kafka_ping.py [--wait SECONDS] [--pid PID] [--warm] [--quiet] HOST:PORT [HOST:PORT ...]

Without --wait each address is tried once. With --wait the check is repeated
until every address answers or the deadline passes; --pid makes the wait
give up at once if that process has exited (a broker that crashed on start
will never answer). Exit status: 0 when every address answered, 1 otherwise,
2 on bad usage. On success one line per address is printed, e.g.
  127.0.0.1:19092 ok cluster_id=Zq3... brokers=1@127.0.0.1:19092 controller=1 metadata_v=13
"""

import argparse
import os
import socket
import struct
import sys
import time

API_METADATA = 3
API_FIND_COORDINATOR = 10
API_INIT_PRODUCER_ID = 22
API_VERSIONS = 18

# Errors that only mean "not yet": keep waiting.
RETRIABLE = {
    14: "COORDINATOR_LOAD_IN_PROGRESS",
    15: "COORDINATOR_NOT_AVAILABLE",
    16: "NOT_COORDINATOR",
}
CLIENT_ID = b"kafka-ping"

# Metadata versions this script can encode: 4+ (Kafka 4.0 announced the
# removal of older request versions, KIP-896, so do not rely on them);
# 9 is the first "flexible" (compact strings, tagged fields) version.
METADATA_MIN, METADATA_MAX, METADATA_FIRST_FLEXIBLE = 4, 13, 9


class PingError(Exception):
    pass


# --- wire helpers ------------------------------------------------------------


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise PingError("truncated response")
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def string(self, flexible):
        if flexible:
            n = self.uvarint() - 1
        else:
            n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "replace")

    def array_len(self, flexible):
        return self.uvarint() - 1 if flexible else self.i32()

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())  # size, then data


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise PingError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def call(sock, api_key, version, correlation_id, body, flexible):
    # Request header v1 (non-flexible) or v2 (flexible). The client id is a
    # classic nullable string in both; v2 only adds an empty tag section.
    header = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    if flexible:
        header += uvarint(0)
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    r = Reader(recv_exact(sock, size))
    if r.i32() != correlation_id:
        raise PingError("correlation id mismatch")
    # Response header v1 (tagged fields) for flexible versions, except that
    # ApiVersions responses always use header v0.
    if flexible and api_key != API_VERSIONS:
        r.skip_tags()
    return r


# --- the two requests ----------------------------------------------------------


def api_versions(sock):
    r = call(sock, API_VERSIONS, 0, 1, b"", flexible=False)
    err = r.i16()
    if err != 0:
        raise PingError(f"ApiVersions error code {err}")
    ranges = {}
    for _ in range(r.i32()):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        ranges[key] = (lo, hi)
    return ranges


def metadata_body(v):
    flexible = v >= METADATA_FIRST_FLEXIBLE
    # No topics: an empty (not null) array, so only cluster info comes back.
    body = uvarint(1) if flexible else struct.pack(">i", 0)
    body += b"\x00"  # AllowAutoTopicCreation = false
    if 8 <= v <= 10:
        body += b"\x00"  # IncludeClusterAuthorizedOperations
    if v >= 8:
        body += b"\x00"  # IncludeTopicAuthorizedOperations
    if flexible:
        body += uvarint(0)  # tagged fields
    return body, flexible


def metadata(sock, v):
    body, flexible = metadata_body(v)
    r = call(sock, API_METADATA, v, 2, body, flexible)
    r.i32()  # throttle_time_ms
    brokers = []
    for _ in range(r.array_len(flexible)):
        node_id = r.i32()
        host = r.string(flexible)
        port = r.i32()
        r.string(flexible)  # rack
        if flexible:
            r.skip_tags()
        brokers.append((node_id, host, port))
    cluster_id = r.string(flexible)
    controller_id = r.i32()
    return cluster_id, brokers, controller_id


def kafka_string(text):
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def check_error(what, err):
    if err in RETRIABLE:
        raise PingError(f"{what}: {RETRIABLE[err]}")
    if err != 0:
        raise PingError(f"{what}: error code {err}")


def require_version(ranges, api_key, version, name):
    lo, hi = ranges.get(api_key, (0, -1))
    if not lo <= version <= hi:
        raise PingError(f"broker does not offer {name} v{version} (has {lo}-{hi})")


def find_coordinator(sock, key, key_type, correlation_id):
    # v1: the last non-flexible version with a key type (0 group, 1 transaction).
    body = kafka_string(key) + struct.pack(">b", key_type)
    r = call(sock, API_FIND_COORDINATOR, 1, correlation_id, body, flexible=False)
    r.i32()  # throttle_time_ms
    what = "FindCoordinator(" + ("group" if key_type == 0 else "transaction") + ")"
    check_error(what, r.i16())


def init_producer_id(sock, correlation_id):
    # v1, no transactional id: what an idempotent producer sends first.
    body = struct.pack(">hi", -1, 60000)
    r = call(sock, API_INIT_PRODUCER_ID, 1, correlation_id, body, flexible=False)
    r.i32()  # throttle_time_ms
    check_error("InitProducerId", r.i16())
    return r.i64()


def warm(sock, ranges):
    require_version(ranges, API_FIND_COORDINATOR, 1, "FindCoordinator")
    require_version(ranges, API_INIT_PRODUCER_ID, 1, "InitProducerId")
    find_coordinator(sock, "kafka-ping-warmup", 0, 3)
    find_coordinator(sock, "kafka-ping-warmup", 1, 4)
    init_producer_id(sock, 5)


def ping(address, timeout, warm_up=False):
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise PingError(f"bad address {address!r}, expected HOST:PORT")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
        sock.settimeout(timeout)
        ranges = api_versions(sock)
        if API_METADATA not in ranges:
            raise PingError("broker does not offer Metadata")
        lo, hi = ranges[API_METADATA]
        v = min(hi, METADATA_MAX)
        if v < max(lo, METADATA_MIN):
            raise PingError(f"no common Metadata version (broker {lo}-{hi})")
        cluster_id, brokers, controller_id = metadata(sock, v)
        if not brokers:
            raise PingError("Metadata lists no brokers yet")
        if warm_up:
            warm(sock, ranges)
    listed = ",".join(f"{n}@{h}:{p}" for n, h, p in brokers)
    return f"{address} ok cluster_id={cluster_id} brokers={listed} controller={controller_id} metadata_v={v}"


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists" for kill(); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("addresses", nargs="+", metavar="HOST:PORT")
    ap.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                    help="keep retrying until this deadline (default: one try)")
    ap.add_argument("--pid", type=int, help="stop waiting if this process exits")
    ap.add_argument("--timeout", type=float, default=3.0,
                    help="per-attempt socket timeout (default 3 s)")
    ap.add_argument("--warm", action="store_true",
                    help="also wait for the group/transaction coordinators and producer ids")
    ap.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = ap.parse_args()

    deadline = time.monotonic() + args.wait
    pending = list(args.addresses)
    last_error = {}
    while True:
        for address in list(pending):
            try:
                line = ping(address, args.timeout, args.warm)
            except (OSError, PingError) as e:
                last_error[address] = str(e) or type(e).__name__
                continue
            pending.remove(address)
            if not args.quiet:
                print(line, flush=True)
        if not pending:
            return 0
        if args.pid is not None and not pid_alive(args.pid):
            print(f"kafka_ping: process {args.pid} exited before the broker answered", file=sys.stderr)
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    for address in pending:
        print(f"kafka_ping: {address}: {last_error.get(address)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
