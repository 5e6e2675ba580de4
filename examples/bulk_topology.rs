//! Builds a large topology on a scratch cluster, for benchmarking `kmigrate plan` (see
//! `scripts/bench-plan`): planning must grow with the number of groups, not with round trips
//! per partition.
//!
//! With the defaults it creates, on the source:
//!
//! - 50 topics `<prefix>-t00` .. `<prefix>-t49`, 100 partitions each (5,000 partitions),
//!   replication factor 1, with 10 small records in every partition;
//! - 200 consumer groups `<prefix>-g000` .. `<prefix>-g199`. Group `i` commits every partition
//!   of topics `i`, `i+7`, `i+19` and `i+31` (modulo the topic count) in one request, at
//!   offsets that vary between 0 and the partition's end: every partition is committed by 16
//!   groups, 80,000 committed offsets in all.
//!
//! With `--target` it also creates the same topics, empty, on the target, so that the plan
//! has no problems. The default prefix is `bench-plan`.
//!
//! Run it against a scratch cluster only: `--reset` deletes every topic `<prefix>-t<N>` and
//! every group `<prefix>-g<N>` first. `--reuse` leaves a complete topology alone, and
//! `--delete` only deletes. On disk the default topics take about 80 MB on the source and
//! 60 MB on the target (their index files are sparse: apparent sizes add up to 100 GB).
//!
//! ```text
//! cargo run --release --example bulk_topology -- --source 127.0.0.1:19092 --target 127.0.0.1:29092 --reset
//! ```

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// Bound of each request, and of each wait for the cluster to reach a state.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Bound of the wait for new partitions to become usable. A single small broker creates
/// only about 150 partition logs per second (measured on the test bed), so 5,000
/// partitions take more than half a minute after CreateTopics has returned.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// Groups committed in parallel, each with its own consumer.
const COMMIT_WORKERS: usize = 8;
/// Partitions per CreateTopics request: a KRaft controller refuses requests that would write
/// more than 10,000 metadata records at once.
const PARTITIONS_PER_REQUEST: i64 = 5_000;
/// Offsets of each group's topics: group `i` commits topics `i + k` (modulo the topic count).
const TOPIC_STRIDES: [usize; 4] = [0, 7, 19, 31];

/// Creates T topics of P partitions named <prefix>-tNN with N records in each partition on
/// the source, and G consumer groups named <prefix>-gNNN: group i commits every partition of
/// topics i, i+7, i+19 and i+31 (modulo T) at offsets between 0 and N.
#[derive(Parser)]
#[command(name = "bulk_topology")]
struct Args {
    /// Source cluster.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:19092")]
    source: String,
    /// Also create the topics, empty, on this cluster.
    #[arg(long, value_name = "HOST:PORT")]
    target: Option<String>,
    /// Name prefix of the topics and groups.
    #[arg(long, value_name = "NAME", default_value = "bench-plan")]
    prefix: String,
    /// Topic count.
    #[arg(long, value_name = "T", default_value_t = 50)]
    topics: usize,
    /// Partitions per topic.
    #[arg(long, value_name = "P", default_value_t = 100)]
    partitions: i32,
    /// Consumer group count.
    #[arg(long, value_name = "G", default_value_t = 200)]
    groups: usize,
    /// Records per partition.
    #[arg(long, value_name = "N", default_value_t = 10)]
    records: i64,
    /// First delete every topic <prefix>-t<N> and group <prefix>-g<N> (scratch clusters only).
    #[arg(long)]
    reset: bool,
    /// Do nothing if the topics (on both clusters) and groups already exist.
    #[arg(long)]
    reuse: bool,
    /// Only delete the prefix's topics (on both clusters) and groups.
    #[arg(long)]
    delete: bool,
}

/// What to build, from the command line.
struct Opts {
    source: String,
    target: Option<String>,
    prefix: String,
    topics: usize,
    partitions: i32,
    groups: usize,
    records: i64,
    reset: bool,
    reuse: bool,
    delete: bool,
}

impl Opts {
    /// The checked options of the command line's arguments.
    fn from_args(a: Args) -> anyhow::Result<Opts> {
        let o = Opts {
            source: a.source,
            target: a.target,
            prefix: a.prefix,
            topics: a.topics,
            partitions: a.partitions,
            groups: a.groups,
            records: a.records,
            reset: a.reset,
            reuse: a.reuse,
            delete: a.delete,
        };
        if o.topics == 0 || o.partitions <= 0 || o.groups == 0 || o.records < 0 {
            bail!("--topics, --partitions and --groups must be at least 1, --records at least 0");
        }
        if o.prefix.is_empty() {
            bail!("--prefix must not be empty");
        }
        Ok(o)
    }

    fn topic(&self, t: usize) -> String {
        format!("{}-t{t:02}", self.prefix)
    }

    fn topic_names(&self) -> Vec<String> {
        (0..self.topics).map(|t| self.topic(t)).collect()
    }

    fn group(&self, g: usize) -> String {
        format!("{}-g{g:03}", self.prefix)
    }

    /// Indexes of the topics group `g` commits.
    fn topics_of(&self, g: usize) -> BTreeSet<usize> {
        TOPIC_STRIDES
            .iter()
            .map(|k| (g + k) % self.topics)
            .collect()
    }

    /// The offset group `g` commits on partition `p` of topic `t`: spread over 0..=records.
    fn offset(&self, g: usize, t: usize, p: i32) -> i64 {
        let spread = (g * 7 + t * 3 + p as usize) as i64;
        spread % (self.records + 1)
    }

    /// Whether `name` is one of this prefix's topics (`kind` "t") or groups ("g"), whatever
    /// the counts of an earlier run were.
    fn owns(&self, name: &str, kind: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.strip_prefix(kind))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bulk_topology: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let o = Opts::from_args(Args::parse())?;
    let start = Instant::now();
    let partitions = o.topics as i64 * i64::from(o.partitions);
    let commits: i64 = (0..o.groups)
        .map(|g| o.topics_of(g).len() as i64 * i64::from(o.partitions))
        .sum();
    let shape = format!(
        "{} topics x {} partitions ({} partitions, {} records), {} groups ({} committed offsets)",
        o.topics,
        o.partitions,
        thousands(partitions),
        thousands(partitions * o.records),
        o.groups,
        thousands(commits)
    );

    let src = Cluster::new(&o.source)?;
    let tgt = o.target.as_deref().map(Cluster::new).transpose()?;
    if o.reuse && complete(&o, &src, tgt.as_ref())? {
        println!(
            "bulk_topology: reusing {shape} already on {}{}",
            o.source,
            o.target
                .as_deref()
                .map_or(String::new(), |t| format!(" (empty topics on {t})"))
        );
        return Ok(());
    }

    if o.delete {
        let (topics, groups) = delete_all(&o, &src, tgt.as_ref())?;
        println!("bulk_topology: deleted {topics} topic(s) and {groups} group(s)");
        return Ok(());
    }

    println!("bulk_topology: creating {shape} on {}", o.source);
    if o.reset {
        let t = Instant::now();
        let (topics, groups) = delete_all(&o, &src, tgt.as_ref())?;
        step(
            "reset",
            t,
            &format!("deleted {topics} topic(s) and {groups} group(s)"),
        );
    }

    let t = Instant::now();
    create_topics(&o, &src)?;
    step("topics", t, &format!("source {}", o.source));

    let t = Instant::now();
    produce(&o)?;
    step(
        "produce",
        t,
        &format!("{} records", thousands(partitions * o.records)),
    );

    let t = Instant::now();
    commit(&o)?;
    step(
        "commits",
        t,
        &format!("{} offsets, one request per group", thousands(commits)),
    );

    if let (Some(tgt), Some(target)) = (&tgt, &o.target) {
        let t = Instant::now();
        create_topics(&o, tgt)?;
        step("target", t, &format!("empty topics on {target}"));
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

/// 80000 -> "80,000".
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// A cluster's address, an admin client, and a group-less consumer for ListOffsets.
struct Cluster {
    bootstrap: String,
    admin: AdminClient<DefaultClientContext>,
    consumer: BaseConsumer,
}

impl Cluster {
    fn new(bootstrap: &str) -> anyhow::Result<Cluster> {
        let admin = config(bootstrap)
            .create()
            .with_context(|| format!("creating an admin client for {bootstrap}"))?;
        let consumer = config(bootstrap)
            .create()
            .with_context(|| format!("creating a consumer for {bootstrap}"))?;
        Ok(Cluster {
            bootstrap: bootstrap.to_string(),
            admin,
            consumer,
        })
    }

    /// The prefix's topics with their partition count, and whether every partition has a
    /// leader.
    fn topics(&self, o: &Opts) -> anyhow::Result<Vec<(String, usize, bool)>> {
        let md = self
            .admin
            .inner()
            .fetch_metadata(None, TIMEOUT)
            .with_context(|| format!("reading the topics of {}", self.bootstrap))?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| o.owns(t.name(), "t"))
            .map(|t| {
                let led = t.partitions().iter().all(|p| p.leader() >= 0);
                (t.name().to_string(), t.partitions().len(), led)
            })
            .collect())
    }

    /// The prefix's consumer groups.
    fn groups(&self, o: &Opts) -> anyhow::Result<BTreeSet<String>> {
        let list = self
            .admin
            .inner()
            .fetch_group_list(None, TIMEOUT)
            .with_context(|| format!("listing the groups of {}", self.bootstrap))?;
        Ok(list
            .groups()
            .iter()
            .map(|g| g.name().to_string())
            .filter(|g| o.owns(g, "g"))
            .collect())
    }

    /// The high watermark of every partition of the prefix's topics, in one batched
    /// ListOffsets request per broker; `None` while some partition does not answer yet.
    fn high_watermarks(&self, o: &Opts) -> anyhow::Result<Option<Vec<i64>>> {
        let mut tpl = TopicPartitionList::new();
        for topic in o.topic_names() {
            for p in 0..o.partitions {
                // In a ListOffsets request, "offset" -1 asks for the high watermark.
                tpl.add_partition_offset(&topic, p, Offset::End)
                    .with_context(|| format!("listing {topic}/{p}"))?;
            }
        }
        let Ok(got) = self.consumer.offsets_for_times(tpl, TIMEOUT) else {
            return Ok(None);
        };
        Ok(got
            .elements()
            .iter()
            .map(|e| match (e.error(), e.offset()) {
                (Ok(()), Offset::Offset(n)) => Some(n),
                _ => None,
            })
            .collect())
    }

    /// Waits until every partition answers ListOffsets. Metadata names a leader as soon as
    /// the controller has elected it, but the broker serves the partition only once it has
    /// created its log: until then produce requests and ListOffsets fail with
    /// NOT_LEADER_OR_FOLLOWER.
    fn wait_ready(&self, o: &Opts) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut report = Instant::now() + Duration::from_secs(10);
        while self.high_watermarks(o)?.is_none() {
            if Instant::now() > deadline {
                bail!(
                    "{}: the broker did not serve every partition within {READY_TIMEOUT:?} \
                     (see its log)",
                    self.bootstrap
                );
            }
            if Instant::now() > report {
                println!(
                    "  ... {}: waiting for the broker to create the partitions' logs",
                    self.bootstrap
                );
                report = Instant::now() + Duration::from_secs(10);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    /// Polls the prefix's topics until `done` holds.
    fn wait_for(
        &self,
        o: &Opts,
        what: &str,
        done: impl Fn(&[(String, usize, bool)]) -> bool,
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
}

fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT))
}

/// Whether the topology is already in place: exactly the expected topics with the expected
/// partition counts and records on the source (and, empty, on the target), and every group
/// on the source. Groups are committed last, so a run that stopped half-way never looks
/// complete.
fn complete(o: &Opts, src: &Cluster, tgt: Option<&Cluster>) -> anyhow::Result<bool> {
    let want: BTreeSet<(String, usize, bool)> = o
        .topic_names()
        .into_iter()
        .map(|t| (t, o.partitions as usize, true))
        .collect();
    for (c, records) in std::iter::once((src, o.records)).chain(tgt.map(|t| (t, 0))) {
        let have: BTreeSet<_> = c.topics(o)?.into_iter().collect();
        if have != want {
            return Ok(false);
        }
        match c.high_watermarks(o)? {
            Some(highs) if highs.iter().all(|h| *h == records) => {}
            _ => return Ok(false),
        }
    }
    let want: BTreeSet<String> = (0..o.groups).map(|g| o.group(g)).collect();
    Ok(src.groups(o)? == want)
}

/// Deletes the prefix's groups on the source and its topics on both clusters. Returns how
/// many topics and groups.
fn delete_all(o: &Opts, src: &Cluster, tgt: Option<&Cluster>) -> anyhow::Result<(usize, usize)> {
    let groups = delete_groups(o, src)?;
    let mut topics = delete_topics(o, src)?;
    if let Some(tgt) = tgt {
        topics += delete_topics(o, tgt)?;
    }
    Ok((topics, groups))
}

/// Deletes the prefix's groups (they have no members: nobody subscribes). Returns how many.
fn delete_groups(o: &Opts, c: &Cluster) -> anyhow::Result<usize> {
    let groups = c.groups(o)?;
    if groups.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let res = futures_executor::block_on(c.admin.delete_groups(&names, &admin_opts()))
        .with_context(|| format!("deleting groups on {}", c.bootstrap))?;
    for r in res {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
            Err((g, e)) => bail!("deleting group {g} on {}: {e}", c.bootstrap),
        }
    }
    Ok(names.len())
}

/// Deletes the prefix's topics and waits until the broker has forgotten them. Returns how
/// many.
fn delete_topics(o: &Opts, c: &Cluster) -> anyhow::Result<usize> {
    let topics: Vec<String> = c.topics(o)?.into_iter().map(|(t, _, _)| t).collect();
    if topics.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let res = futures_executor::block_on(c.admin.delete_topics(&names, &admin_opts()))
        .with_context(|| format!("deleting topics on {}", c.bootstrap))?;
    for r in res {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((t, e)) => bail!("deleting topic {t} on {}: {e}", c.bootstrap),
        }
    }
    // Deletion is asynchronous on the broker: wait until the names are free.
    c.wait_for(o, "the topics to be deleted", <[_]>::is_empty)?;
    Ok(topics.len())
}

/// Creates the topics, a few requests of at most `PARTITIONS_PER_REQUEST` partitions, and
/// waits until every partition has a leader.
fn create_topics(o: &Opts, c: &Cluster) -> anyhow::Result<()> {
    let names = o.topic_names();
    let per_request = (PARTITIONS_PER_REQUEST / i64::from(o.partitions)).max(1) as usize;
    for chunk in names.chunks(per_request) {
        let topics: Vec<NewTopic<'_>> = chunk
            .iter()
            .map(|t| NewTopic::new(t, o.partitions, TopicReplication::Fixed(1)))
            .collect();
        let res = futures_executor::block_on(c.admin.create_topics(&topics, &admin_opts()))
            .with_context(|| format!("creating topics on {}", c.bootstrap))?;
        for r in res {
            match r {
                Ok(_) => {}
                Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => bail!(
                    "topic {t} already exists on {}: pass --reset to recreate the topology, or \
                     --reuse to keep a complete one",
                    c.bootstrap
                ),
                Err((t, e)) => bail!("creating topic {t} on {}: {e}", c.bootstrap),
            }
        }
    }
    let partitions = o.partitions as usize;
    c.wait_for(o, "every partition to have a leader", |have| {
        have.len() >= o.topics && have.iter().all(|(_, n, led)| *n == partitions && *led)
    })?;
    c.wait_ready(o)
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

/// Writes `records` small records to every partition with one idempotent producer.
fn produce(o: &Opts) -> anyhow::Result<()> {
    let producer: BaseProducer<Deliveries> = config(&o.source)
        .set("enable.idempotence", "true")
        .set("linger.ms", "50")
        .set("compression.type", "lz4")
        .create_with_context(Deliveries::default())
        .with_context(|| format!("creating a producer for {}", o.source))?;
    for topic in o.topic_names() {
        for p in 0..o.partitions {
            for i in 0..o.records {
                let key = format!("{p}-{i}");
                let value = format!("record {i} of {topic}/{p}");
                let mut record = BaseRecord::to(&topic)
                    .partition(p)
                    .key(&key)
                    .payload(&value);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            // The local queue is full: serve delivery reports to make room.
                            producer.poll(Duration::from_millis(50));
                            record = r;
                        }
                        Err((e, _)) => {
                            return Err(e).with_context(|| format!("producing to {topic}/{p}"));
                        }
                    }
                }
            }
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
    let want = o.topics as u64 * o.partitions as u64 * o.records as u64;
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    if delivered != want {
        bail!(
            "{delivered} of {want} records were delivered to {}",
            o.source
        );
    }
    Ok(())
}

/// Commits every group's offsets: one consumer and one OffsetCommit request per group, a
/// few groups at a time. The consumers never subscribe, so the groups stay Empty, like the
/// groups of consumers that were stopped before a migration.
fn commit(o: &Opts) -> anyhow::Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let worker = || -> anyhow::Result<()> {
        while !failed.load(Ordering::Relaxed) {
            let g = next.fetch_add(1, Ordering::Relaxed);
            if g >= o.groups {
                break;
            }
            if let Err(e) = commit_group(o, g) {
                failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..COMMIT_WORKERS.min(o.groups))
            .map(|_| s.spawn(worker))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| bail!("a commit worker panicked"))
            })
            .collect::<anyhow::Result<Vec<()>>>()
    })?;
    Ok(())
}

/// Commits every offset of group `g` in one request.
fn commit_group(o: &Opts, g: usize) -> anyhow::Result<()> {
    let group = o.group(g);
    let mut tpl = TopicPartitionList::new();
    for t in o.topics_of(g) {
        let topic = o.topic(t);
        for p in 0..o.partitions {
            tpl.add_partition_offset(&topic, p, Offset::Offset(o.offset(g, t, p)))
                .with_context(|| format!("listing {topic}/{p} for {group}"))?;
        }
    }
    let consumer: BaseConsumer = config(&o.source)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .with_context(|| format!("creating a consumer for group {group}"))?;
    consumer.commit(&tpl, CommitMode::Sync).with_context(|| {
        format!(
            "committing {} offsets for group {group} on {}",
            tpl.count(),
            o.source
        )
    })
}
