//! Makes a backlog built by `examples/backlog` look like a live source, for benchmarking
//! `kmigrate sync` and `kmigrate cutover` (see `scripts/bench-cutover`). Each mode does one
//! thing on the topics `<prefix>-t0` .. `<prefix>-t<T-1>` (P partitions each) and the consumer
//! groups `<prefix>-consumer-00` .. `<prefix>-consumer-<G-1>`:
//!
//! - `commit --round R`: commits every group on every partition, in quarter steps of the
//!   partition's current end: group `g` on partition `j` (counted over all topics) commits at `end * ((g + j) % 5) / 4`, so every partition has groups at 0, at a quarter,
//!   half and three quarters of its records and at its end. Round 0 commits every group;
//!   a later round moves the odd groups forward to the same fractions of the grown ends (their
//!   consumers kept consuming while the source was live). Groups are committed with a consumer
//!   that never joins them, so they stay empty.
//! - `produce --rate N`: writes N records a second (values of `--record-size` bytes, keys
//!   `live-<i>`, a header `origin: live`, the current timestamp), round-robin over every
//!   partition, with one idempotent producer, until SIGTERM or SIGINT; then waits for every
//!   record to be acknowledged and prints how many were written. Exit 1 if any failed.
//! - `check`: reads every group's committed offsets and exits 1 unless every group has one on
//!   every partition (run it against the target after `kmigrate cutover`).
//! - `delete`: deletes the groups.
//!
//! ```text
//! cargo run --release --example live_source -- --bootstrap 127.0.0.1:19092 --prefix bench-cutover --topics 4 --partitions 25 --groups 50 commit
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// Bound of each request to the cluster.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The producer sends a slice of its rate this often.
const TICK: Duration = Duration::from_millis(10);

/// Makes a backlog built by examples/backlog look like a live source: commits its groups,
/// produces to its topics, checks or deletes the groups (see MODE).
#[derive(Parser)]
#[command(name = "live_source")]
struct Args {
    /// What to do.
    #[arg(value_enum)]
    mode: Mode,
    /// The cluster.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:19092")]
    bootstrap: String,
    /// Topic and group name prefix, as given to examples/backlog.
    #[arg(long, value_name = "NAME", default_value = "backlog")]
    prefix: String,
    /// Topic count.
    #[arg(long, value_name = "T", default_value_t = 3)]
    topics: usize,
    /// Partitions per topic.
    #[arg(long, value_name = "P", default_value_t = 8)]
    partitions: i32,
    /// Consumer groups <prefix>-consumer-NN.
    #[arg(long, value_name = "G", default_value_t = 50)]
    groups: usize,
    /// commit: round 0 commits every group, later rounds move the odd groups further on.
    #[arg(long, value_name = "R", default_value_t = 0)]
    round: u32,
    /// produce: records per second, until SIGTERM or SIGINT.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    rate: u64,
    /// produce: value bytes per record.
    #[arg(long, value_name = "S", default_value_t = 1024)]
    record_size: usize,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Mode {
    /// Commit every group on every partition (round 0: all groups; later rounds: the odd
    /// groups, further on).
    Commit,
    /// Write --rate records a second until SIGTERM or SIGINT.
    Produce,
    /// Exit 1 unless every group has an offset on every partition.
    Check,
    /// Delete the groups.
    Delete,
}

struct Opts {
    bootstrap: String,
    prefix: String,
    topics: usize,
    partitions: i32,
    groups: usize,
    round: u32,
    rate: u64,
    record_size: usize,
    mode: Mode,
}

impl Opts {
    /// The checked options of the command line's arguments.
    fn from_args(a: Args) -> anyhow::Result<Opts> {
        let o = Opts {
            bootstrap: a.bootstrap,
            prefix: a.prefix,
            topics: a.topics,
            partitions: a.partitions,
            groups: a.groups,
            round: a.round,
            rate: a.rate,
            record_size: a.record_size,
            mode: a.mode,
        };
        if o.topics == 0 || o.partitions <= 0 || o.groups == 0 || o.record_size == 0 {
            bail!("--topics, --partitions, --groups and --record-size must be positive");
        }
        Ok(o)
    }

    fn topic_names(&self) -> Vec<String> {
        (0..self.topics)
            .map(|t| format!("{}-t{t}", self.prefix))
            .collect()
    }

    fn group_names(&self) -> Vec<String> {
        (0..self.groups)
            .map(|g| format!("{}-consumer-{g:02}", self.prefix))
            .collect()
    }

    /// Every partition, topic by topic: index `j` of the commit rule.
    fn partitions(&self) -> Vec<(String, i32)> {
        self.topic_names()
            .into_iter()
            .flat_map(|t| (0..self.partitions).map(move |p| (t.clone(), p)))
            .collect()
    }
}

fn main() -> anyhow::Result<()> {
    let o = Opts::from_args(Args::parse())?;
    match o.mode {
        Mode::Commit => commit(&o),
        Mode::Produce => produce(&o),
        Mode::Check => check(&o),
        Mode::Delete => delete(&o),
    }
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// A consumer of `group` that never joins it: for commits and committed-offset reads.
fn consumer(o: &Opts, group: &str) -> anyhow::Result<BaseConsumer> {
    config(&o.bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .with_context(|| format!("creating a consumer for {}", o.bootstrap))
}

/// The commit rule: group `g` on partition `j` at `end * ((g + j) % 5) / 4`.
fn commit_at(g: usize, j: usize, end: i64) -> i64 {
    end * ((g + j) % 5) as i64 / 4
}

fn commit(o: &Opts) -> anyhow::Result<()> {
    let t = Instant::now();
    let parts = o.partitions();
    let reader: BaseConsumer = config(&o.bootstrap)
        .set("enable.auto.commit", "false")
        .create()
        .with_context(|| format!("creating a consumer for {}", o.bootstrap))?;
    let mut ends = Vec::with_capacity(parts.len());
    for (topic, p) in &parts {
        let (_, high) = reader
            .fetch_watermarks(topic, *p, TIMEOUT)
            .with_context(|| format!("reading the end of {topic}/{p} on {}", o.bootstrap))?;
        ends.push(high);
    }
    let mut committed = 0;
    for (g, group) in o.group_names().iter().enumerate() {
        if o.round > 0 && g % 2 == 0 {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        for (j, ((topic, p), end)) in parts.iter().zip(&ends).enumerate() {
            tpl.add_partition_offset(topic, *p, Offset::Offset(commit_at(g, j, *end)))
                .with_context(|| format!("listing {topic}/{p}"))?;
        }
        consumer(o, group)?
            .commit(&tpl, CommitMode::Sync)
            .with_context(|| format!("committing group {group} on {}", o.bootstrap))?;
        committed += 1;
    }
    println!(
        "live_source: round {}: {committed} group(s) committed on {} partitions in {:.1} s",
        o.round,
        parts.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Counts deliveries: a `BaseProducer` reports them only here.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.delivered
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn produce(o: &Opts) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing a handler")?;
    }
    let producer: BaseProducer<Deliveries> = config(&o.bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create_with_context(Deliveries::default())
        .with_context(|| format!("creating a producer for {}", o.bootstrap))?;
    let parts = o.partitions();
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut value = vec![0u8; o.record_size];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    while !stop.load(Ordering::Relaxed) {
        // As many records as the rate allows by now: the rate holds however late a tick is.
        let due = (started.elapsed().as_secs_f64() * o.rate as f64) as u64;
        while sent < due && !stop.load(Ordering::Relaxed) {
            let (topic, p) = &parts[(sent % parts.len() as u64) as usize];
            let key = format!("live-{sent}");
            fill_value(&mut value, sent, &mut rng);
            let headers = OwnedHeaders::new().insert(Header {
                key: "origin",
                value: Some("live"),
            });
            let record = BaseRecord::to(topic)
                .partition(*p)
                .key(&key)
                .payload(&value)
                .headers(headers)
                .timestamp(now_ms());
            match producer.send(record) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e).context("producing a record"),
            }
        }
        producer.poll(TICK);
    }
    producer
        .flush(TIMEOUT)
        .context("waiting for the last records' acknowledgements")?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    println!(
        "live_source: produced {} records ({} failed) in {:.1} s",
        ctx.delivered.load(Ordering::Relaxed),
        failed,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} record(s) were not written");
    }
    Ok(())
}

/// `rec <i> `, then half xorshift64* bytes (incompressible), then repeated text.
fn fill_value(buf: &mut [u8], i: u64, rng: &mut u64) {
    let head = format!("rec {i} ");
    let n = head.len().min(buf.len());
    buf[..n].copy_from_slice(&head.as_bytes()[..n]);
    let half = n + (buf.len() - n) / 2;
    for b in &mut buf[n..half] {
        *rng ^= *rng >> 12;
        *rng ^= *rng << 25;
        *rng ^= *rng >> 27;
        *b = (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
    }
    for (k, b) in buf[half..].iter_mut().enumerate() {
        *b = b"order shipped pending invoice "[k % 30];
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn check(o: &Opts) -> anyhow::Result<()> {
    let parts = o.partitions();
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in &parts {
        tpl.add_partition(topic, *p);
    }
    let mut missing = Vec::new();
    let mut offsets = 0;
    for group in o.group_names() {
        let committed = consumer(o, &group)?
            .committed_offsets(tpl.clone(), TIMEOUT)
            .with_context(|| format!("reading group {group}'s offsets on {}", o.bootstrap))?;
        let have = committed
            .elements()
            .iter()
            .filter(|e| matches!(e.offset(), Offset::Offset(_)))
            .count();
        offsets += have;
        if have < parts.len() {
            missing.push(format!("{group} ({have} of {})", parts.len()));
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} group(s) lack offsets on {}: {}",
            missing.len(),
            o.bootstrap,
            missing.join(", ")
        );
    }
    println!(
        "live_source: all {} groups have an offset on all {} partitions on {} ({offsets} offsets)",
        o.groups,
        parts.len(),
        o.bootstrap
    );
    Ok(())
}

fn delete(o: &Opts) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config(&o.bootstrap)
        .create()
        .with_context(|| format!("creating an admin client for {}", o.bootstrap))?;
    let names = o.group_names();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let res = futures_executor::block_on(admin.delete_groups(&refs, &opts))
        .with_context(|| format!("deleting groups on {}", o.bootstrap))?;
    let mut deleted = 0;
    for r in res {
        match r {
            Ok(_) => deleted += 1,
            Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
            Err((g, e)) => bail!("deleting group {g} on {}: {e}", o.bootstrap),
        }
    }
    println!("live_source: deleted {deleted} group(s) on {}", o.bootstrap);
    Ok(())
}
