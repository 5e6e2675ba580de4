# syntax=docker/dockerfile:1
#
# kmigrate in a container: one static-ish binary (librdkafka, OpenSSL, zlib and zstd are
# compiled into it; it links only glibc and libgcc) on a distroless base.
#
#   docker build -t kmigrate .
#   docker run --rm -v "$PWD:/work" --user "$(id -u):$(id -g)" kmigrate plan
#
# The builder and the runtime are both Debian 12 (bookworm), so the binary finds the glibc
# it was linked against.

FROM rust:1.95-bookworm AS builder
# The rust image already has what the vendored C builds need (perl and make for OpenSSL,
# a C compiler for librdkafka, zlib and zstd); cmake is not needed with these features.
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && mkdir -p /out/work \
    && cp target/release/kmigrate /out/kmigrate

# distroless/cc: glibc, libgcc and CA certificates (librdkafka finds them for TLS to the
# brokers), no shell or package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/kmigrate /usr/local/bin/kmigrate
# An empty /work the nonroot user (65532) can write: the state file and log go there when
# no volume is mounted. WORKDIR alone would create it owned by root.
COPY --from=builder --chown=65532:65532 /out/work /work
WORKDIR /work
# distroless's nonroot user, by number: Kubernetes' runAsNonRoot can only verify a numeric
# user.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kmigrate"]
CMD ["--help"]
