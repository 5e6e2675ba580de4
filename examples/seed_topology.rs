//! Builds the example of the "Migrating Unconsumed Data" procedure on a cluster, so that
//! `kmigrate plan` / `run` / `verify` have something realistic to work on:
//!
//! - topics test1..test4, 3 partitions each, on the source (and, empty, on the target);
//! - `test123-group` consumed test1, test2 and test3; `test34-group` test3 and test4;
//! - test1/0: the group committed 3713, then every record up to the end (5226) expired:
//!   the plan must skip it as `expired` and report 1,513 lost records;
//! - test3/0: both groups share it at 187,900 and 187,800 with 264,322 records: the copy
//!   starts at the smaller offset and moves 76,522 records;
//! - test4/1: test34-group never committed it (see `uncommitted_partitions`).
//!
//! Run it against a scratch cluster only: with `--reset` it deletes those topics first.
//!
//! ```text
//! cargo run --release --example seed_topology -- --source 127.0.0.1:19092 --target 127.0.0.1:29092 --reset
//! ```

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);
const PARTITIONS: i32 = 3;
/// Records are stamped from one hour ago on: older timestamps would let the broker's
/// time-based retention (7 days by default) delete them within minutes.
fn ts0() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    now - 3_600_000
}

/// Records per partition, and each group's committed offset (None: no commit).
struct Part {
    topic: &'static str,
    partition: i32,
    records: i64,
    commits: &'static [(&'static str, Option<i64>)],
    /// Delete records below this offset: how the example makes them "expire".
    expire_before: Option<i64>,
}

const G123: &str = "test123-group";
const G34: &str = "test34-group";

const LAYOUT: &[Part] = &[
    Part {
        topic: "test1",
        partition: 0,
        records: 5226,
        commits: &[(G123, Some(3713))],
        expire_before: Some(5226),
    },
    Part {
        topic: "test1",
        partition: 1,
        records: 1000,
        commits: &[(G123, Some(400))],
        expire_before: None,
    },
    Part {
        topic: "test1",
        partition: 2,
        records: 1000,
        commits: &[(G123, Some(1000))],
        expire_before: None,
    },
    Part {
        topic: "test2",
        partition: 0,
        records: 2000,
        commits: &[(G123, Some(1500))],
        expire_before: None,
    },
    Part {
        topic: "test2",
        partition: 1,
        records: 2000,
        commits: &[(G123, Some(1800))],
        expire_before: Some(1000),
    },
    Part {
        topic: "test2",
        partition: 2,
        records: 2000,
        commits: &[(G123, Some(2000))],
        expire_before: None,
    },
    Part {
        topic: "test3",
        partition: 0,
        records: 264_322,
        commits: &[(G123, Some(187_900)), (G34, Some(187_800))],
        expire_before: None,
    },
    Part {
        topic: "test3",
        partition: 1,
        records: 5000,
        commits: &[(G123, Some(4500)), (G34, Some(4000))],
        expire_before: None,
    },
    Part {
        topic: "test3",
        partition: 2,
        records: 5000,
        commits: &[(G123, Some(5000)), (G34, Some(2500))],
        expire_before: None,
    },
    Part {
        topic: "test4",
        partition: 0,
        records: 3000,
        commits: &[(G34, Some(1000))],
        expire_before: None,
    },
    Part {
        topic: "test4",
        partition: 1,
        records: 3000,
        commits: &[(G34, None)],
        expire_before: None,
    },
    Part {
        topic: "test4",
        partition: 2,
        records: 3000,
        commits: &[(G34, Some(3000))],
        expire_before: None,
    },
];

const TOPICS: &[&str] = &["test1", "test2", "test3", "test4"];

/// Creates topics test1..test4 and groups test123-group, test34-group with unconsumed
/// backlogs on the source, and the same (empty) topics on the target.
#[derive(Parser)]
#[command(name = "seed_topology")]
struct Args {
    /// Source cluster.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:19092")]
    source: String,
    /// Target cluster, where the same topics are created, empty.
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:29092",
        overrides_with = "no_target"
    )]
    target: String,
    /// Leave the target alone (the last of --target and --no-target counts).
    #[arg(long, overrides_with = "target")]
    no_target: bool,
    /// First delete those topics (scratch clusters only).
    #[arg(long)]
    reset: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let source = args.source;
    let target = (!args.no_target).then_some(args.target);
    let reset = args.reset;

    let src = admin(&source)?;
    if reset {
        delete_topics(&src, &source)?;
    }
    create_topics(&src, &source)?;
    let ts0 = ts0();
    for part in LAYOUT {
        produce(&source, part, ts0)?;
    }
    for part in LAYOUT {
        for (group, commit) in part.commits {
            if let Some(offset) = commit {
                commit_offset(&source, group, part.topic, part.partition, *offset)?;
            }
        }
        if let Some(before) = part.expire_before {
            expire(&src, part.topic, part.partition, before)?;
        }
    }
    println!(
        "source {source}: topics {} with groups {G123} and {G34} ready",
        TOPICS.join(", ")
    );

    if let Some(target) = target {
        let tgt = admin(&target)?;
        if reset {
            delete_topics(&tgt, &target)?;
        }
        create_topics(&tgt, &target)?;
        println!("target {target}: empty topics {} ready", TOPICS.join(", "));
    }
    Ok(())
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

fn admin(bootstrap: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    config(bootstrap)
        .create()
        .with_context(|| format!("creating an admin client for {bootstrap}"))
}

fn delete_topics(admin: &AdminClient<DefaultClientContext>, bootstrap: &str) -> anyhow::Result<()> {
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = futures_executor::block_on(admin.delete_topics(TOPICS, &opts))
        .with_context(|| format!("deleting topics on {bootstrap}"))?;
    for r in res {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((t, e)) => bail!("deleting topic {t} on {bootstrap}: {e}"),
        }
    }
    // Topic deletion is asynchronous on the broker: wait until the names are free.
    wait_for(bootstrap, |topics| {
        TOPICS.iter().all(|t| !topics.contains(&t.to_string()))
    })
}

fn create_topics(admin: &AdminClient<DefaultClientContext>, bootstrap: &str) -> anyhow::Result<()> {
    let topics: Vec<NewTopic<'_>> = TOPICS
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = futures_executor::block_on(admin.create_topics(&topics, &opts))
        .with_context(|| format!("creating topics on {bootstrap}"))?;
    for r in res {
        if let Err((t, e)) = r {
            if e == RDKafkaErrorCode::TopicAlreadyExists {
                bail!(
                    "topic {t} already exists on {bootstrap}: pass --reset to recreate the example"
                );
            }
            bail!("creating topic {t} on {bootstrap}: {e}");
        }
    }
    wait_for(bootstrap, |topics| {
        TOPICS.iter().all(|t| topics.contains(&t.to_string()))
    })
}

fn wait_for(bootstrap: &str, done: impl Fn(&[String]) -> bool) -> anyhow::Result<()> {
    let c: BaseConsumer = config(bootstrap).create()?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let md = c
            .fetch_metadata(None, TIMEOUT)
            .with_context(|| format!("reading metadata of {bootstrap}"))?;
        let names: Vec<String> = md
            .topics()
            .iter()
            .filter(|t| t.partitions().iter().all(|p| p.leader() >= 0))
            .map(|t| t.name().to_string())
            .collect();
        if done(&names) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("topics on {bootstrap} did not reach the expected state in time");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn produce(bootstrap: &str, part: &Part, ts0: i64) -> anyhow::Result<()> {
    let producer: BaseProducer = config(bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()?;
    for i in 0..part.records {
        let key = format!("{}-{}-{i}", part.topic, part.partition);
        let value = format!(
            "{{\"order\":{i},\"topic\":\"{}\",\"partition\":{},\"note\":\"unconsumed backlog\"}}",
            part.topic, part.partition
        );
        let headers = OwnedHeaders::new().insert(Header {
            key: "origin",
            value: Some("seed_topology"),
        });
        let mut record = BaseRecord::to(part.topic)
            .partition(part.partition)
            .key(&key)
            .payload(&value)
            .timestamp(ts0 + i)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => {
                    return Err(e).with_context(|| format!("producing to {}", part.topic));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(TIMEOUT)
        .with_context(|| format!("flushing records of {}/{}", part.topic, part.partition))
}

fn commit_offset(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer
        .commit(&tpl, CommitMode::Sync)
        .with_context(|| format!("committing {topic}/{partition}@{offset} for {group}"))
}

fn expire(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partition: i32,
    before: i64,
) -> anyhow::Result<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(before))?;
    let res = futures_executor::block_on(admin.delete_records(&tpl, &AdminOptions::new()))
        .with_context(|| format!("deleting records of {topic}/{partition} below {before}"))?;
    for e in res.elements() {
        e.error()
            .with_context(|| format!("deleting records of {topic}/{partition} below {before}"))?;
    }
    Ok(())
}
