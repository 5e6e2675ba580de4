//! The batch path's own connection (`kmigrate::kafka::wire`) against the real test bed:
//! record batches fetched from the source as bytes and produced to the target with only
//! their header rewritten ([`kmigrate::copy::batch`]) are the same records, at the same
//! offsets, as the source holds; a resend of a landed batch is recognised by the broker.

use std::time::Duration;

use bytes::Bytes;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use kmigrate::copy::batch::{self, Aborts, Codec, Dropped, Header, Route, Target};
use kmigrate::copy::stream::{Answer, Next, Stream};
use kmigrate::kafka::wire::Conn;

use crate::support::records::assert_partition_copied;
use crate::support::{Cluster, TIMEOUT, TS, unique};

/// Records of a partition in several lz4 batches: each with a key, a value, its own
/// timestamp, and a header on every 7th.
fn produce_lz4(src: &Cluster, topic: &str, n: usize) {
    let producer: BaseProducer = src
        .config()
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("batch.num.messages", "40")
        .create()
        .expect("creating the producer");
    for i in 0..n {
        let (key, value) = (
            format!("key-{i}"),
            format!("value {i} {}", "x".repeat(i % 50)),
        );
        let mut rec = BaseRecord::to(topic)
            .partition(0)
            .key(key.as_bytes())
            .payload(value.as_bytes())
            .timestamp(TS + i as i64);
        if i % 7 == 0 {
            rec = rec.headers(rdkafka::message::OwnedHeaders::new().insert(
                rdkafka::message::Header {
                    key: "h",
                    value: Some(i.to_string().as_bytes()),
                },
            ));
        }
        producer.send(rec).expect("sending");
        producer.poll(Duration::ZERO);
    }
    producer.flush(TIMEOUT).expect("flushing");
}

/// The leader's connection of `topic`/0 on `cluster`.
fn leader(cluster: &Cluster, topic: &str) -> Conn {
    let mut boot =
        Conn::connect(&cluster.bootstrap, TIMEOUT, &Default::default()).expect("connecting");
    let leaders = boot.leaders(topic).expect("metadata");
    let (_, address) = leaders.get(&0).expect("partition 0").clone();
    Conn::connect(&address, TIMEOUT, &Default::default()).expect("connecting to the leader")
}

/// Every complete batch of the partition from offset 0, as bytes.
fn fetch_all(conn: &mut Conn, topic: &str, high: i64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < high {
        let got = conn.fetch(topic, 0, offset, 64 * 1024).expect("fetching");
        assert_eq!(got.error_code, 0, "fetch of {topic}/0 at {offset}");
        let (headers, used) = batch::complete(&got.records).expect("batches");
        assert!(!headers.is_empty(), "no complete batch at {offset}");
        let mut at = 0;
        for h in headers {
            out.push(got.records.slice(at..at + h.len));
            at += h.len;
            offset = h.last_offset() + 1;
        }
        assert_eq!(at, used);
    }
    out
}

#[test]
fn batches_passed_on_with_their_header_rewritten_are_the_source_records() {
    pass_through(&Cluster::source(), &Cluster::target(), "wire-pass");
}

/// Produces lz4 batches to a new topic on `src`, copies them to the same topic on `tgt`
/// batch by batch with only the header rewritten (the first one sent twice, as after a lost
/// answer), and asserts the target holds the source's records at the same offsets, once.
/// Also run by `scripts/compat` between Kafka versions (`compat::`).
pub fn pass_through(src: &Cluster, tgt: &Cluster, prefix: &str) {
    let topic = unique(prefix);
    src.create_topic(&topic, 1, &[]);
    tgt.create_topic(&topic, 1, &[]);
    let n = 500;
    produce_lz4(src, &topic, n);

    let mut source = leader(src, &topic);
    let batches = fetch_all(&mut source, &topic, n as i64);
    assert!(batches.len() > 3, "{} batches", batches.len());
    let target_rules = Target {
        max_batch_bytes: 1 << 20,
        zstd: true,
        min_pass_bytes: 0,
    };
    let mut target = leader(tgt, &topic);
    let (pid, epoch) = target.init_producer_id().expect("a producer id");
    let mut stream = Stream::new(pid, epoch);
    for bytes in &batches {
        let h = Header::parse(bytes).expect("a header");
        assert_eq!(h.codec(), Some(Codec::Lz4));
        assert_eq!(route(&h, n, &target_rules), Route::Pass);
        let sent = stream
            .send(h.base_offset, h.last_offset(), h.records)
            .expect("room in flight");
        let mut out = bytes.to_vec();
        batch::rewrite(&mut out, (pid, epoch), sent.base_sequence).expect("a whole v2 batch");
        assert!(batch::crc_ok(&out));
        let out = Bytes::from(out);
        let answer = target
            .produce(&topic, 0, out.clone(), TIMEOUT)
            .expect("producing");
        assert_eq!(
            answer.error_code, 0,
            "produce of the batch at {}: {:?}",
            h.base_offset, answer.message
        );
        // The target was empty: each batch lands at its source offsets.
        assert_eq!(answer.base_offset, h.base_offset);
        let next = stream.answered(Answer::Appended(answer.base_offset));
        assert!(matches!(next, Ok(Next::Landed { .. })), "{next:?}");
        // A resend (an answer lost) is recognised: same offset, nothing written twice.
        if h.base_offset == 0 {
            let again = target.produce(&topic, 0, out, TIMEOUT).expect("resending");
            assert_eq!((again.error_code, again.base_offset), (0, 0));
        }
    }
    let source_records = src.read_all(&topic, 0);
    let target_records = tgt.read_all(&topic, 0);
    assert_eq!(source_records.len(), n);
    assert_partition_copied(&format!("{topic}/0"), &source_records, &target_records, 0);
    let offsets: Vec<i64> = target_records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..n as i64).collect::<Vec<_>>());
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

/// Transactions committed and aborted, interleaved with a plain producer's records on the
/// same partition: the batches the batch path keeps (aborted ones and markers dropped, as
/// the Fetch response's aborted-transactions list says) hold exactly the records a
/// read_committed consumer reads, in order.
#[test]
fn aborted_transactions_are_dropped_as_a_read_committed_consumer_skips_them() {
    let topic = unique("wire-txn");
    let src = Cluster::source();
    src.create_topic(&topic, 1, &[]);
    let plain: BaseProducer = src.config().create().expect("plain producer");
    let txn: BaseProducer = src
        .config()
        .set("transactional.id", unique("wire-txn-id"))
        .create()
        .expect("transactional producer");
    txn.init_transactions(TIMEOUT).expect("init transactions");
    let send = |p: &BaseProducer, key: String| {
        p.send(BaseRecord::to(&topic).partition(0).key(&key).payload("v"))
            .expect("sending");
        p.flush(TIMEOUT).expect("flushing");
    };
    for round in 0..4 {
        txn.begin_transaction().expect("begin");
        for i in 0..5 {
            send(&txn, format!("txn-{round}-{i}"));
            if i == 2 {
                send(&plain, format!("plain-{round}"));
            }
        }
        if round % 2 == 1 {
            txn.abort_transaction(TIMEOUT).expect("abort");
        } else {
            txn.commit_transaction(TIMEOUT).expect("commit");
        }
    }
    let want: Vec<Vec<u8>> = src
        .read_all(&topic, 0)
        .into_iter()
        .filter_map(|r| r.rec.key)
        .collect();
    assert_eq!(
        want.len(),
        4 + 2 * 5,
        "plain records and two committed transactions"
    );

    let mut conn = leader(&src, &topic);
    let high = crate::support::records::high(&src, &topic, 0);
    let got = conn.fetch(&topic, 0, 0, 1 << 20).expect("fetching");
    assert_eq!(got.error_code, 0);
    assert_eq!(got.last_stable_offset, high);
    assert_eq!(got.aborted.len(), 2, "{:?}", got.aborted);
    let (headers, used) = batch::complete(&got.records).expect("batches");
    assert_eq!(
        used,
        got.records.len(),
        "one fetch holds the whole partition"
    );
    let rules = Target {
        max_batch_bytes: 1 << 20,
        zstd: true,
        min_pass_bytes: 0,
    };
    let mut aborts = Aborts::new(&got.aborted);
    let (mut kept, mut dropped) = (0, Vec::new());
    let mut at = 0;
    for h in &headers {
        let bytes = &got.records[at..at + h.len];
        at += h.len;
        match batch::route(h, (0, high), aborts.aborted(h, bytes), &rules) {
            Route::Pass => kept += h.records as usize,
            Route::Drop(why) => dropped.push(why),
            other => panic!("batch at {}: {other:?}", h.base_offset),
        }
    }
    assert_eq!(kept, want.len());
    let markers = dropped.iter().filter(|d| **d == Dropped::Control).count();
    let aborted = dropped.iter().filter(|d| **d == Dropped::Aborted).count();
    assert_eq!(markers, 4, "one marker per transaction");
    assert!(
        aborted >= 2,
        "the aborted transactions' batches: {dropped:?}"
    );
    src.delete_topic(&topic);
}

fn route(h: &Header, n: usize, target: &Target) -> Route {
    batch::route(h, (0, n as i64), false, target)
}
