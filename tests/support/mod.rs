//! Test support: set up exact situations on the real test-bed clusters and read them back.
//!
//! The clusters come from `KMIGRATE_TEST_SOURCE` / `KMIGRATE_TEST_TARGET` (default: the
//! local test bed's 127.0.0.1:19092 and 127.0.0.1:29092). Every test makes its own topic and
//! group names with [`unique`], so tests run in parallel against one test bed.
//!
//! Both test binaries (`tests/it`, `tests/outage`) take this module by path. `tests/it`
//! uses every helper here, so a helper no test needs any more is dead code there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

pub mod bed;
pub mod exact;
pub mod mixed;
pub mod process;
pub mod records;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The timestamp (milliseconds) test records start from.
pub const TS: i64 = 1_700_000_000_000;

/// The state file's name in a working directory.
pub const STATE: &str = "kmigrate-state.json";

pub fn source_bootstrap() -> String {
    std::env::var("KMIGRATE_TEST_SOURCE").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

pub fn target_bootstrap() -> String {
    std::env::var("KMIGRATE_TEST_TARGET").unwrap_or_else(|_| "127.0.0.1:29092".into())
}

/// A name no other test (or earlier run) uses: `prefix-<pid>-<time>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One record as a test writes it and reads it back. `timestamp` is milliseconds since the
/// epoch; `None` when producing means "now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl Rec {
    /// What a consumed message holds, in the form tests compare.
    pub fn from_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Rec {
        Rec {
            partition: m.partition(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: m.timestamp().to_millis(),
        }
    }

    /// A record with a text key and value and a fixed timestamp.
    pub fn kv(partition: i32, key: &str, value: &str, timestamp: i64) -> Rec {
        Rec {
            partition,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
            timestamp: Some(timestamp),
        }
    }
}

/// A record read back, with its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRec {
    pub offset: i64,
    pub rec: Rec,
}

/// One of the test bed's clusters.
pub struct Cluster {
    pub bootstrap: String,
    admin: AdminClient<DefaultClientContext>,
}

impl Cluster {
    pub fn source() -> Cluster {
        Cluster::connect(&source_bootstrap(), "source")
    }

    pub fn target() -> Cluster {
        Cluster::connect(&target_bootstrap(), "target")
    }

    /// Connects and checks the cluster answers; fails loudly with the fix when it does not.
    pub fn connect(bootstrap: &str, name: &str) -> Cluster {
        let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
            .create()
            .unwrap_or_else(|e| panic!("creating an admin client for {bootstrap}: {e}"));
        let probe: BaseConsumer = base_config(bootstrap)
            .create()
            .unwrap_or_else(|e| panic!("creating a client for {bootstrap}: {e}"));
        if let Err(e) = probe.fetch_metadata(None, Duration::from_secs(10)) {
            panic!(
                "\n\nThe {name} test cluster at {bootstrap} does not answer ({e}).\n\
                 Start the test bed with `scripts/testbed up` (or set KMIGRATE_TEST_SOURCE / \
                 KMIGRATE_TEST_TARGET to running clusters), then run the tests again.\n\n"
            );
        }
        Cluster {
            bootstrap: bootstrap.to_string(),
            admin,
        }
    }

    pub fn config(&self) -> ClientConfig {
        base_config(&self.bootstrap)
    }

    /// Creates a topic with `partitions` partitions and the given topic configs, and waits
    /// until its metadata shows every partition with a leader. Unless `configs` says
    /// otherwise, the topic keeps records forever: tests use old timestamps on purpose, and
    /// time-based retention would delete them in the middle of a test.
    pub fn create_topic(&self, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
        self.create_topic_with(topic, partitions, TopicReplication::Fixed(1), configs);
    }

    /// [`Cluster::create_topic`] with the replicas given.
    pub fn create_topic_with(
        &self,
        topic: &str,
        partitions: i32,
        replication: TopicReplication<'_>,
        configs: &[(&str, &str)],
    ) {
        let mut t = NewTopic::new(topic, partitions, replication);
        if !configs.iter().any(|(k, _)| *k == "retention.ms") {
            t = t.set("retention.ms", "-1");
        }
        for (k, v) in configs {
            t = t.set(k, v);
        }
        let res = block(
            self.admin
                .create_topics([&t], &AdminOptions::new().operation_timeout(Some(TIMEOUT))),
        )
        .unwrap_or_else(|e| panic!("creating topic {topic} on {}: {e}", self.bootstrap));
        for r in res {
            if let Err((name, code)) = r {
                panic!("creating topic {name} on {}: {code:?}", self.bootstrap);
            }
        }
        self.wait_for_topic(topic, partitions);
    }

    fn wait_for_topic(&self, topic: &str, partitions: i32) {
        let c: BaseConsumer = self.config().create().expect("metadata client");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                let ready = md.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                });
                if ready {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn delete_topic(&self, topic: &str) {
        let _ = block(self.admin.delete_topics(&[topic], &AdminOptions::new()));
    }

    /// Deletes `topic` when it exists and creates it again, empty, with `partitions`
    /// partitions (as [`Cluster::create_topic`]): for a test whose topic name is fixed (the
    /// state file fixtures), so that a rerun starts from nothing. While the old topic is
    /// still being deleted, creating it is tried again.
    pub fn recreate_topic(&self, topic: &str, partitions: i32) {
        self.delete_topic(topic);
        let t =
            NewTopic::new(topic, partitions, TopicReplication::Fixed(1)).set("retention.ms", "-1");
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let res = block(self.admin.create_topics([&t], &opts))
                .unwrap_or_else(|e| panic!("creating topic {topic} on {}: {e}", self.bootstrap));
            match res.into_iter().next() {
                Some(Ok(_)) => break,
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists)))
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => panic!("creating topic {topic} on {}: {other:?}", self.bootstrap),
            }
        }
        self.wait_for_topic(topic, partitions);
    }

    /// Deletes consumer groups with their committed offsets; a group that does not exist
    /// is fine. The groups must have no members.
    pub fn delete_groups(&self, groups: &[&str]) {
        let res = block(self.admin.delete_groups(groups, &AdminOptions::new()))
            .unwrap_or_else(|e| panic!("deleting groups {groups:?} on {}: {e}", self.bootstrap));
        for r in res {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((g, code)) => panic!("deleting group {g} on {}: {code:?}", self.bootstrap),
            }
        }
    }

    /// Produces the records in order, each to its own partition, and waits for every ack.
    pub fn produce(&self, topic: &str, records: &[Rec]) {
        self.produce_with(topic, records, &[("linger.ms", "5")]);
    }

    /// [`Cluster::produce`] with producer settings `props` (compression, linger, batching).
    pub fn produce_with(&self, topic: &str, records: &[Rec], props: &[(&str, &str)]) {
        let mut config = self.config();
        config
            .set("enable.idempotence", "true")
            .set("message.max.bytes", "2000000");
        for (k, v) in props {
            config.set(*k, *v);
        }
        let producer: BaseProducer = config.create().expect("creating a test producer");
        for r in records {
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(r.partition);
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            if let Some(ts) = r.timestamp {
                rec = rec.timestamp(ts);
            }
            if !r.headers.is_empty() {
                rec = rec.headers(owned_headers(&r.headers));
            }
            let mut rec = rec;
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        producer.poll(Duration::from_millis(10));
                        rec = back;
                    }
                    Err((e, _)) => panic!("producing to {topic}: {e}"),
                }
            }
        }
        producer.flush(TIMEOUT).expect("flushing the test producer");
    }

    /// Produces `n` simple records `k{i}` / `v{i}` to one partition, timestamps from `ts0`.
    pub fn produce_n(&self, topic: &str, partition: i32, n: usize, ts0: i64) -> Vec<Rec> {
        let recs: Vec<Rec> = (0..n)
            .map(|i| {
                Rec::kv(
                    partition,
                    &format!("k{i}"),
                    &format!("v{i}"),
                    ts0 + i as i64,
                )
            })
            .collect();
        self.produce(topic, &recs);
        recs
    }

    /// Commits offsets for a consumer group without joining it (the group must have no
    /// active members).
    pub fn commit(&self, group: &str, offsets: &[(&str, i32, i64)]) {
        let c: BaseConsumer = self
            .config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("creating a committing consumer");
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                .expect("building a partition list");
        }
        c.commit(&tpl, CommitMode::Sync)
            .unwrap_or_else(|e| panic!("committing {offsets:?} for group {group}: {e}"));
    }

    /// The committed offsets of a group for the given partitions (`None`: no commit).
    pub fn committed(&self, group: &str, partitions: &[(&str, i32)]) -> Vec<Option<i64>> {
        let c: BaseConsumer = self
            .config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("creating a consumer");
        let mut tpl = TopicPartitionList::new();
        for (t, p) in partitions {
            tpl.add_partition(t, *p);
        }
        let got = c
            .committed_offsets(tpl, TIMEOUT)
            .expect("reading committed offsets");
        partitions
            .iter()
            .map(
                |(t, p)| match got.find_partition(t, *p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                },
            )
            .collect()
    }

    /// Deletes every record below `before` in a partition: how tests make records "expire".
    pub fn delete_records(&self, topic: &str, partition: i32, before: i64) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(before))
            .expect("building a partition list");
        let res = block(self.admin.delete_records(&tpl, &AdminOptions::new()))
            .unwrap_or_else(|e| panic!("deleting records of {topic}/{partition}: {e}"));
        for e in res.elements() {
            if let Err(err) = e.error() {
                panic!("deleting records of {topic}/{partition}: {err}");
            }
        }
    }

    /// (low, high) watermarks of a partition, high read uncommitted (transaction markers
    /// and open transactions included).
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        let c: BaseConsumer = self
            .config()
            .set("isolation.level", "read_uncommitted")
            .create()
            .expect("creating a consumer");
        c.fetch_watermarks(topic, partition, TIMEOUT)
            .unwrap_or_else(|e| panic!("watermarks of {topic}/{partition}: {e}"))
    }

    /// Every committed record of a partition, in order (read_committed, as a consumer sees it).
    pub fn read_all(&self, topic: &str, partition: i32) -> Vec<ReadRec> {
        let c: BaseConsumer = self
            .config()
            .set("group.id", unique("kmigrate-test-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .set("fetch.message.max.bytes", "2000000")
            .create()
            .expect("creating a reader");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning)
            .expect("building a partition list");
        c.assign(&tpl).expect("assigning the partition");
        let mut out = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "reading {topic}/{partition} did not reach its end"
            );
            match c.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => panic!("reading {topic}/{partition}: {e}"),
                Some(Ok(m)) => out.push(ReadRec {
                    offset: m.offset(),
                    rec: Rec::from_message(&m),
                }),
            }
        }
        out
    }

    /// The records of a partition without offsets.
    pub fn read_records(&self, topic: &str, partition: i32) -> Vec<Rec> {
        self.read_all(topic, partition)
            .into_iter()
            .map(|r| r.rec)
            .collect()
    }
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "kmigrate-tests")
        .set("socket.connection.setup.timeout.ms", "10000")
        .set("log_level", "3");
    c
}

fn owned_headers(hs: &[(String, Option<Vec<u8>>)]) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(hs.len());
    for (k, v) in hs {
        out = out.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    out
}

/// Runs an admin future to completion on this thread.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// Groups records by partition, keeping order.
pub fn by_partition(recs: &[Rec]) -> HashMap<i32, Vec<Rec>> {
    let mut m: HashMap<i32, Vec<Rec>> = HashMap::new();
    for r in recs {
        m.entry(r.partition).or_default().push(r.clone());
    }
    m
}

/// How a kmigrate process ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout parsed as JSON (for `--format json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A fresh, empty working directory for one test.
pub fn workdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(unique(&format!("kmigrate-{name}")));
    std::fs::create_dir_all(&d).expect("creating a test directory");
    d
}

/// A configuration for the test bed that selects only the given groups, so that tests do
/// not see each other's groups. `extra` is appended (e.g. a `[migration]` table).
pub fn config_for(groups: &[&str], extra: &str) -> String {
    let groups: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
    format!(
        "[source]\nbootstrap_servers = {:?}\n[target]\nbootstrap_servers = {:?}\n\
         [filter]\ngroups = [{}]\n{extra}\n",
        source_bootstrap(),
        target_bootstrap(),
        groups.join(", ")
    )
}

/// Runs the kmigrate binary in `dir` with `config` written to `dir/migrate.toml`.
pub fn kmigrate(dir: &std::path::Path, config: &str, args: &[&str]) -> Run {
    std::fs::write(dir.join("migrate.toml"), config).expect("writing migrate.toml");
    kmigrate_raw(dir, args)
}

/// Runs the kmigrate binary in `dir` as is.
pub fn kmigrate_raw(dir: &std::path::Path, args: &[&str]) -> Run {
    kmigrate_env(dir, args, &[], "warn")
}

/// `kmigrate verify` in `dir` passes: exit 0, every partition VERIFIED, no MISMATCH.
pub fn verify_ok(dir: &std::path::Path) -> Run {
    let run = kmigrate_raw(dir, &["verify"]);
    assert_eq!(run.code, 0, "verify:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("VERIFIED"), "{}", run.stdout);
    assert!(!run.stdout.contains("MISMATCH"), "{}", run.stdout);
    run
}

/// Runs the kmigrate binary in `dir` as is, with extra environment variables (the values a
/// configuration's `${VAR}` references take) and the given log level.
pub fn kmigrate_env(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    log_level: &str,
) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kmigrate"))
        .args(args)
        .current_dir(dir)
        .env_remove("KMIGRATE_CONFIG")
        .env("KMIGRATE_LOG", log_level)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("starting kmigrate");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// SplitMix64: a small seeded generator, so a failing run can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("KMIGRATE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(7)
            });
        eprintln!("random seed {seed} (replay with KMIGRATE_FAULT_SEED={seed})");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}
