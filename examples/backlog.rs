//! Builds a large unconsumed backlog on a scratch cluster, for benchmarking `kmigrate run`
//! (see `scripts/bench-copy`): the copy's throughput, CPU and memory are measured on it.
//!
//! With the defaults it creates, on the source:
//!
//! - 3 topics `<prefix>-t0` .. `<prefix>-t2`, 8 partitions each, replication factor 1 and
//!   `retention.ms=-1` (the records carry current timestamps, but a long benchmark session
//!   must not lose any to time-based retention);
//! - 1 GiB of values in 1 KiB records, spread round-robin over the 24 partitions. Record `i`
//!   has the key `k-<i>`, two headers (`origin: backlog`, `seq: <i>`), the current time as
//!   timestamp, and a value that starts with `rec <i> `, then is half pseudo-random bytes
//!   (xorshift64*, incompressible) and half words drawn from a small vocabulary (compressible
//!   text), so that lz4 on the copy's producer does realistic work rather than squeezing a
//!   repeated pattern to nothing;
//! - the consumer group `<prefix>-group`, committed at offset 0 on every partition: the whole
//!   backlog is unconsumed.
//!
//! The records are written by one idempotent producer (lz4, linger.ms 20, batch.size 1 MB),
//! and the fill's figures are printed. With `--target` the same topics are also created,
//! empty, on the target.
//!
//! Other modes, for the benchmark's bookkeeping (each does only what it says):
//!
//! - `--empty-target`: delete the prefix's topics on `--target` (if any) and create them
//!   again, empty, so that every measured copy starts from an empty target;
//! - `--verify-target`: check every target partition's high watermark against the number of
//!   records the backlog put in that partition;
//! - `--delete`: delete the prefix's topics (and the group) on the source and `--target`.
//!
//! `--manifest FILE` writes the backlog's shape and byte counts as JSON (what the benchmark
//! divides by). Run it against a scratch cluster only: `--reset` deletes every topic
//! `<prefix>-t<N>` on both clusters first, `--reuse` keeps a complete backlog of the same
//! shape (and refills anything else).
//!
//! ```text
//! cargo run --release --example backlog -- --source 127.0.0.1:19092 --target 127.0.0.1:29092 --bytes 1GiB --reset
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// Bound of each admin request, and of each wait for the cluster to reach a state.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Creates T topics <prefix>-t<N> of P partitions on the source, fills them with N bytes of
/// S-byte values (keys k-<i>, two headers, current timestamps, half random / half text), and
/// commits the group <prefix>-group at offset 0 on every partition.
///
/// The modes --empty-target, --verify-target and --delete each do only what they say.
#[derive(Parser)]
#[command(name = "backlog")]
struct Args {
    /// Source cluster.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:19092")]
    source: String,
    /// Also create the topics, empty, on this cluster.
    #[arg(long, value_name = "HOST:PORT")]
    target: Option<String>,
    /// Topic and group name prefix.
    #[arg(long, value_name = "NAME", default_value = "backlog")]
    prefix: String,
    /// Topic count.
    #[arg(long, value_name = "T", default_value_t = 3)]
    topics: usize,
    /// Partitions per topic.
    #[arg(long, value_name = "P", default_value_t = 8)]
    partitions: i32,
    /// Total value bytes: a number, or with KiB, MiB, GiB, KB, MB, GB.
    #[arg(long, value_name = "N", default_value = "1GiB", value_parser = byte_count)]
    bytes: u64,
    /// Value bytes per record.
    #[arg(long, value_name = "S", default_value_t = 1024)]
    record_size: usize,
    /// First delete the prefix's topics (both clusters) and the group.
    #[arg(long)]
    reset: bool,
    /// Keep a complete backlog of exactly this shape on the source; refill (as with --reset)
    /// if it is missing or different.
    #[arg(long)]
    reuse: bool,
    /// Write the backlog's shape and byte counts as JSON.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Only: delete and recreate the prefix's topics, empty, on --target.
    #[arg(long)]
    empty_target: bool,
    /// Only: check the target holds exactly the backlog's records.
    #[arg(long)]
    verify_target: bool,
    /// Only: delete the prefix's topics and group on the source and --target.
    #[arg(long)]
    delete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fill,
    EmptyTarget,
    VerifyTarget,
    Delete,
}

/// What to build, from the command line.
struct Opts {
    source: String,
    target: Option<String>,
    prefix: String,
    topics: usize,
    partitions: i32,
    bytes: u64,
    record_size: usize,
    reset: bool,
    reuse: bool,
    manifest: Option<PathBuf>,
    mode: Mode,
}

impl Opts {
    /// The checked options of the command line's arguments.
    fn from_args(a: Args) -> anyhow::Result<Opts> {
        let mut o = Opts {
            source: a.source,
            target: a.target,
            prefix: a.prefix,
            topics: a.topics,
            partitions: a.partitions,
            bytes: a.bytes,
            record_size: a.record_size,
            reset: a.reset,
            reuse: a.reuse,
            manifest: a.manifest,
            mode: Mode::Fill,
        };
        let modes: Vec<Mode> = [
            (a.empty_target, Mode::EmptyTarget),
            (a.verify_target, Mode::VerifyTarget),
            (a.delete, Mode::Delete),
        ]
        .into_iter()
        .filter_map(|(on, mode)| on.then_some(mode))
        .collect();
        if modes.len() > 1 {
            bail!("--empty-target, --verify-target and --delete exclude each other");
        }
        o.mode = modes.first().copied().unwrap_or(Mode::Fill);
        if matches!(o.mode, Mode::EmptyTarget | Mode::VerifyTarget) && o.target.is_none() {
            bail!("--empty-target and --verify-target need --target HOST:PORT");
        }
        if o.topics == 0 || o.partitions <= 0 {
            bail!("--topics and --partitions must be at least 1");
        }
        if o.record_size < 64 {
            bail!("--record-size must be at least 64 bytes (the value starts with its index)");
        }
        if o.bytes < o.record_size as u64 {
            bail!("--bytes must be at least one record (--record-size)");
        }
        if o.prefix.is_empty() {
            bail!("--prefix must not be empty");
        }
        Ok(o)
    }

    fn topic(&self, t: usize) -> String {
        format!("{}-t{t}", self.prefix)
    }

    fn topic_names(&self) -> Vec<String> {
        (0..self.topics).map(|t| self.topic(t)).collect()
    }

    fn group(&self) -> String {
        format!("{}-group", self.prefix)
    }

    /// Whether `name` is one of this prefix's topics, whatever the count of an earlier run.
    fn owns(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix("-t"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    fn slots(&self) -> u64 {
        self.topics as u64 * self.partitions as u64
    }

    /// Records in all: the value bytes rounded up to whole records.
    fn records(&self) -> u64 {
        self.bytes.div_ceil(self.record_size as u64)
    }

    /// Where record `i` goes: round-robin over every partition of every topic.
    fn slot_of(&self, i: u64) -> (usize, i32) {
        let s = i % self.slots();
        (
            (s / self.partitions as u64) as usize,
            (s % self.partitions as u64) as i32,
        )
    }

    /// Records that partition `p` of topic `t` receives.
    fn expected(&self, t: usize, p: i32) -> i64 {
        let s = t as u64 * self.partitions as u64 + p as u64;
        let n = self.records();
        (n / self.slots() + u64::from(s < n % self.slots())) as i64
    }
}

/// `1GiB`, `64MiB`, `500MB`, `1000000`: a byte count.
fn size(flag: &str, s: &str) -> anyhow::Result<u64> {
    let units: [(&str, u64); 8] = [
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("KB", 1_000),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("B", 1),
        ("", 1),
    ];
    for (unit, factor) in units {
        if let Some(n) = s.strip_suffix(unit)
            && let Ok(n) = n.trim().parse::<u64>()
        {
            return n
                .checked_mul(factor)
                .with_context(|| format!("{flag}: {s} is too large"));
        }
    }
    bail!("{flag} needs a size such as 1GiB, 64MiB or 1000000, got {s:?}")
}

/// `--bytes` as clap reads it.
fn byte_count(s: &str) -> Result<u64, String> {
    size("--bytes", s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    let o = Opts::from_args(Args::parse())?;
    let src = Cluster::new(&o.source)?;
    let tgt = o.target.as_deref().map(Cluster::new).transpose()?;
    match (o.mode, &tgt) {
        (Mode::Fill, _) => fill(&o, &src, tgt.as_ref()),
        (Mode::EmptyTarget, Some(tgt)) => {
            let t = Instant::now();
            let deleted = tgt.delete_topics(&o)?;
            tgt.create_topics(&o)?;
            println!(
                "backlog: target {}: {} empty topic(s) x {} partitions ready ({deleted} deleted \
                 first) in {:.1} s",
                tgt.bootstrap,
                o.topics,
                o.partitions,
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
        (Mode::VerifyTarget, Some(tgt)) => {
            let bad = tgt.mismatches(&o)?;
            if !bad.is_empty() {
                bail!(
                    "the target {} does not hold the backlog: {}",
                    tgt.bootstrap,
                    bad.join("; ")
                );
            }
            println!(
                "backlog: target {} holds all {} records, partition by partition",
                tgt.bootstrap,
                thousands(o.records())
            );
            Ok(())
        }
        (Mode::Delete, _) => {
            let mut topics = src.delete_topics(&o)?;
            let groups = src.delete_group(&o)?;
            if let Some(tgt) = &tgt {
                topics += tgt.delete_topics(&o)?;
            }
            println!("backlog: deleted {topics} topic(s) and {groups} group(s)");
            Ok(())
        }
        (Mode::EmptyTarget | Mode::VerifyTarget, None) => bail!("this mode needs --target"),
    }
}

/// Creates and fills the source's topics (unless a complete backlog is reused), commits the
/// group, creates the target's empty topics, and writes the manifest.
fn fill(o: &Opts, src: &Cluster, tgt: Option<&Cluster>) -> anyhow::Result<()> {
    let start = Instant::now();
    let shape = format!(
        "{} topics x {} partitions, {} records of {} bytes ({})",
        o.topics,
        o.partitions,
        thousands(o.records()),
        o.record_size,
        mib(o.records() * o.record_size as u64)
    );
    let reused = o.reuse && src.complete(o)?;
    let mut produced: Option<f64> = None;
    if reused {
        println!("backlog: reusing {shape} on {}", src.bootstrap);
    } else {
        println!("backlog: creating {shape} on {}", src.bootstrap);
        if o.reset || o.reuse {
            let t = Instant::now();
            let topics = src.delete_topics(o)?;
            let groups = src.delete_group(o)?;
            step(
                "reset",
                t,
                &format!("deleted {topics} topic(s) and {groups} group(s) on the source"),
            );
        }
        let t = Instant::now();
        src.create_topics(o)?;
        step("topics", t, &format!("source {}", src.bootstrap));

        let t = Instant::now();
        let bytes = produce(o)?;
        let secs = t.elapsed().as_secs_f64();
        produced = Some(secs);
        step(
            "produce",
            t,
            &format!(
                "{} records, {} of keys and values: {:.1} MB/s, {} records/s",
                thousands(o.records()),
                mib(bytes.keys + bytes.values),
                (bytes.keys + bytes.values) as f64 / secs / 1e6,
                thousands((o.records() as f64 / secs) as u64)
            ),
        );

        let t = Instant::now();
        let bad = src.mismatches(o)?;
        if !bad.is_empty() {
            bail!(
                "the source {} does not hold the expected records: {}",
                src.bootstrap,
                bad.join("; ")
            );
        }
        src.commit_start(o)?;
        step(
            "group",
            t,
            &format!(
                "{} committed at offset 0 on {} partitions",
                o.group(),
                o.slots()
            ),
        );
    }
    if let Some(tgt) = tgt {
        let t = Instant::now();
        if o.reset || o.reuse {
            tgt.delete_topics(o)?;
        }
        tgt.create_topics(o)?;
        step("target", t, &format!("empty topics on {}", tgt.bootstrap));
    }
    if let Some(path) = &o.manifest {
        write_manifest(o, path, reused, produced)?;
    }
    step("total", start, "");
    Ok(())
}

/// Prints one line of the timing summary.
fn step(name: &str, since: Instant, what: &str) {
    println!(
        "  {name:<8} {:>7.1} s  {what}",
        since.elapsed().as_secs_f64()
    );
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Key and value bytes of the whole backlog: what `kmigrate run` counts as its bytes.
struct Bytes {
    keys: u64,
    values: u64,
}

fn key_bytes(records: u64) -> u64 {
    // "k-" plus the decimal digits of every index below `records`.
    let mut total = 2 * records;
    let mut low = 0u64;
    let mut high = 10u64;
    let mut digits = 1u64;
    while low < records {
        total += (records.min(high) - low) * digits;
        low = high;
        high = high.saturating_mul(10);
        digits += 1;
    }
    total
}

fn write_manifest(
    o: &Opts,
    path: &PathBuf,
    reused: bool,
    fill_seconds: Option<f64>,
) -> anyhow::Result<()> {
    let keys = key_bytes(o.records());
    let values = o.records() * o.record_size as u64;
    let manifest = serde_json::json!({
        "prefix": o.prefix,
        "group": o.group(),
        "topics": o.topic_names(),
        "partitions": o.partitions,
        "records": o.records(),
        "record_size": o.record_size,
        "key_bytes": keys,
        "value_bytes": values,
        "payload_bytes": keys + values,
        "reused": reused,
        "fill_seconds": fill_seconds,
    });
    let text = serde_json::to_string_pretty(&manifest).context("encoding the manifest")?;
    std::fs::write(path, text + "\n")
        .with_context(|| format!("writing the manifest {}", path.display()))
}

/// xorshift64*: a fast, statistically decent generator; its bytes are incompressible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const WORDS: &[&str] = &[
    "order",
    "customer",
    "shipped",
    "pending",
    "invoice",
    "amount",
    "currency",
    "EUR",
    "warehouse",
    "north",
    "south",
    "priority",
    "standard",
    "express",
    "returned",
    "quantity",
    "status",
    "item",
    "discount",
    "address",
    "berlin",
    "lyon",
    "madrid",
    "oslo",
    "created",
    "updated",
    "true",
    "false",
    "null",
    "id",
    "sku",
    "total",
];

/// Writes record `i`'s value into `buf`: `rec <i> `, then half pseudo-random bytes, then
/// words from [`WORDS`] up to the end.
fn fill_value(buf: &mut Vec<u8>, size: usize, i: u64, rng: &mut XorShift) {
    buf.clear();
    let _ = write!(Ascii(buf), "rec {i} ");
    let random_end = buf.len() + (size - buf.len()) / 2;
    while buf.len() + 8 <= random_end {
        buf.extend_from_slice(&rng.next().to_le_bytes());
    }
    while buf.len() < random_end {
        buf.push(rng.next() as u8);
    }
    while buf.len() < size {
        let r = rng.next();
        let word = WORDS[(r as usize) % WORDS.len()].as_bytes();
        let room = size - buf.len();
        buf.extend_from_slice(&word[..word.len().min(room)]);
        if buf.len() < size {
            buf.push(if r >> 60 == 0 { b',' } else { b' ' });
        }
    }
}

/// `fmt::Write` into a byte buffer.
struct Ascii<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Ascii<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Counts successful and failed deliveries: a `BaseProducer` reports them only here.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Writes every record with one idempotent producer; returns the key and value bytes.
fn produce(o: &Opts) -> anyhow::Result<Bytes> {
    let producer: BaseProducer<Deliveries> = config(&o.source)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("compression.type", "lz4")
        // 64 MiB of queued records: plenty to keep the broker busy, and a bounded RSS.
        .set("queue.buffering.max.kbytes", "65536")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Deliveries::default())
        .with_context(|| format!("creating a producer for {}", o.source))?;
    let topics = o.topic_names();
    let records = o.records();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut value = Vec::with_capacity(o.record_size);
    let mut key = String::with_capacity(24);
    let mut seq = String::with_capacity(20);
    let mut bytes = Bytes { keys: 0, values: 0 };
    let mut ts = now_ms();
    let mut last_report = Instant::now();
    for i in 0..records {
        if i % 1024 == 0 {
            ts = now_ms();
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                eprintln!(
                    "backlog: {} of {} records sent",
                    thousands(i),
                    thousands(records)
                );
            }
        }
        let (t, p) = o.slot_of(i);
        fill_value(&mut value, o.record_size, i, &mut rng);
        key.clear();
        let _ = write!(key, "k-{i}");
        seq.clear();
        let _ = write!(seq, "{i}");
        bytes.keys += key.len() as u64;
        bytes.values += value.len() as u64;
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: "origin",
                value: Some("backlog"),
            })
            .insert(Header {
                key: "seq",
                value: Some(seq.as_str()),
            });
        let mut record = BaseRecord::to(&topics[t])
            .partition(p)
            .key(key.as_str())
            .payload(value.as_slice())
            .timestamp(ts)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The local queue is full: serve delivery reports to make room.
                    producer.poll(Duration::from_millis(5));
                    record = r;
                }
                Err((e, _)) => {
                    return Err(e).with_context(|| format!("producing to {}/{p}", topics[t]));
                }
            }
        }
        if i % 256 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(TIMEOUT)
        .with_context(|| format!("flushing the records to {}", o.source))?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = ctx
            .first_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_default();
        bail!(
            "{failed} record(s) could not be delivered to {}: {first}",
            o.source
        );
    }
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    if delivered != records {
        bail!(
            "{delivered} of {records} records were delivered to {}",
            o.source
        );
    }
    Ok(bytes)
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT))
}

/// A cluster's address, an admin client and a consumer (metadata, watermarks, commits).
struct Cluster {
    bootstrap: String,
    admin: AdminClient<DefaultClientContext>,
}

impl Cluster {
    fn new(bootstrap: &str) -> anyhow::Result<Cluster> {
        let admin = config(bootstrap)
            .create()
            .with_context(|| format!("creating an admin client for {bootstrap}"))?;
        Ok(Cluster {
            bootstrap: bootstrap.to_string(),
            admin,
        })
    }

    /// The prefix's topics: name → (partition count, whether every partition has a leader).
    fn topics(&self, o: &Opts) -> anyhow::Result<BTreeMap<String, (usize, bool)>> {
        let md = self
            .admin
            .inner()
            .fetch_metadata(None, TIMEOUT)
            .with_context(|| format!("reading the topics of {}", self.bootstrap))?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| o.owns(t.name()))
            .map(|t| {
                let led = t.partitions().iter().all(|p| p.leader() >= 0);
                (t.name().to_string(), (t.partitions().len(), led))
            })
            .collect())
    }

    /// Polls the prefix's topics until `done` holds.
    fn wait_for(
        &self,
        o: &Opts,
        what: &str,
        done: impl Fn(&BTreeMap<String, (usize, bool)>) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if done(&self.topics(o)?) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: timed out after {TIMEOUT:?} waiting for {what}",
                    self.bootstrap
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Deletes the prefix's topics and waits until the broker has forgotten them. Returns
    /// how many there were.
    fn delete_topics(&self, o: &Opts) -> anyhow::Result<usize> {
        let topics: Vec<String> = self.topics(o)?.into_keys().collect();
        if topics.is_empty() {
            return Ok(0);
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let res = futures_executor::block_on(self.admin.delete_topics(&names, &admin_opts()))
            .with_context(|| format!("deleting topics on {}", self.bootstrap))?;
        for r in res {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, e)) => bail!("deleting topic {t} on {}: {e}", self.bootstrap),
            }
        }
        // Deletion is asynchronous on the broker: wait until the names are free.
        self.wait_for(o, "the topics to be deleted", BTreeMap::is_empty)?;
        Ok(topics.len())
    }

    /// Deletes the group (it has no members: nobody subscribes). Returns 1 if it existed.
    fn delete_group(&self, o: &Opts) -> anyhow::Result<usize> {
        let group = o.group();
        let res = futures_executor::block_on(self.admin.delete_groups(&[&group], &admin_opts()))
            .with_context(|| format!("deleting group {group} on {}", self.bootstrap))?;
        let mut deleted = 0;
        for r in res {
            match r {
                Ok(_) => deleted += 1,
                Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((g, e)) => bail!("deleting group {g} on {}: {e}", self.bootstrap),
            }
        }
        Ok(deleted)
    }

    /// Creates the topics (`retention.ms=-1`) and waits until every partition has a leader.
    fn create_topics(&self, o: &Opts) -> anyhow::Result<()> {
        let names = o.topic_names();
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|t| {
                NewTopic::new(t, o.partitions, TopicReplication::Fixed(1)).set("retention.ms", "-1")
            })
            .collect();
        let res = futures_executor::block_on(self.admin.create_topics(&topics, &admin_opts()))
            .with_context(|| format!("creating topics on {}", self.bootstrap))?;
        for r in res {
            match r {
                Ok(_) => {}
                Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => bail!(
                    "topic {t} already exists on {}: pass --reset to recreate the backlog, or \
                     --reuse to keep a complete one",
                    self.bootstrap
                ),
                Err((t, e)) => bail!("creating topic {t} on {}: {e}", self.bootstrap),
            }
        }
        let partitions = o.partitions as usize;
        self.wait_for(o, "every partition to have a leader", |have| {
            names
                .iter()
                .all(|t| have.get(t).is_some_and(|(n, led)| *n == partitions && *led))
        })?;
        // A leader in the metadata may still answer NOT_LEADER_FOR_PARTITION for a moment:
        // the topics are ready once every partition's offsets can be listed.
        let consumer = self.consumer(None)?;
        let deadline = Instant::now() + TIMEOUT;
        for topic in &names {
            for p in 0..o.partitions {
                while let Err(e) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) {
                    if Instant::now() > deadline {
                        return Err(e).with_context(|| {
                            format!("{}: {topic}/{p} does not answer", self.bootstrap)
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Ok(())
    }

    fn consumer(&self, group: Option<&str>) -> anyhow::Result<BaseConsumer> {
        let mut c = config(&self.bootstrap);
        c.set("enable.auto.commit", "false");
        if let Some(g) = group {
            c.set("group.id", g);
        }
        c.create()
            .with_context(|| format!("creating a consumer for {}", self.bootstrap))
    }

    /// Partitions whose low and high watermarks are not 0 and the expected record count.
    fn mismatches(&self, o: &Opts) -> anyhow::Result<Vec<String>> {
        let have = self.topics(o)?;
        let consumer = self.consumer(None)?;
        let mut bad = Vec::new();
        for (t, topic) in o.topic_names().iter().enumerate() {
            match have.get(topic) {
                Some((n, _)) if *n == o.partitions as usize => {}
                Some((n, _)) => {
                    bad.push(format!("{topic} has {n} partitions, not {}", o.partitions));
                    continue;
                }
                None => {
                    bad.push(format!("{topic} is missing"));
                    continue;
                }
            }
            for p in 0..o.partitions {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p, TIMEOUT)
                    .with_context(|| format!("reading the watermarks of {topic}/{p}"))?;
                let want = o.expected(t, p);
                if low != 0 || high != want {
                    bad.push(format!(
                        "{topic}/{p} holds offsets {low}..{high}, expected 0..{want}"
                    ));
                }
            }
        }
        Ok(bad)
    }

    /// Whether the source holds this exact backlog with the group committed at 0.
    fn complete(&self, o: &Opts) -> anyhow::Result<bool> {
        let have = self.topics(o)?;
        if have.len() != o.topics || !self.mismatches(o)?.is_empty() {
            return Ok(false);
        }
        let consumer = self.consumer(Some(&o.group()))?;
        let committed = consumer
            .committed_offsets(all_partitions(o, Offset::Invalid)?, TIMEOUT)
            .with_context(|| format!("reading the offsets of {}", o.group()))?;
        Ok(committed
            .elements()
            .iter()
            .all(|e| e.offset() == Offset::Offset(0)))
    }

    /// Commits the group at offset 0 on every partition. The consumer never subscribes, so
    /// the group stays Empty, like a group whose consumers stopped.
    fn commit_start(&self, o: &Opts) -> anyhow::Result<()> {
        let group = o.group();
        let consumer = self.consumer(Some(&group))?;
        consumer
            .commit(&all_partitions(o, Offset::Offset(0))?, CommitMode::Sync)
            .with_context(|| format!("committing group {group} on {}", self.bootstrap))
    }
}

fn all_partitions(o: &Opts, offset: Offset) -> anyhow::Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for topic in o.topic_names() {
        for p in 0..o.partitions {
            tpl.add_partition_offset(&topic, p, offset)
                .with_context(|| format!("listing {topic}/{p}"))?;
        }
    }
    Ok(tpl)
}
