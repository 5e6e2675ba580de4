//! Waiting until a target partition holds nothing its leader appended but its replicas have
//! not confirmed yet.
//!
//! A resume after a crash counts the records that reached the target past the checkpoint by
//! the partition's high watermark. On a replicated target the leader may hold more: records
//! appended but not yet copied by enough followers (a follower is stalled, or the partition
//! is below `min.insync.replicas`). They are invisible to ListOffsets and to consumers, and
//! become visible later, once committed, or are truncated if the leader dies first. Counting
//! before they settle writes them twice.
//!
//! The broker answers the question through an ordinary fetch: a fetch at an offset past the
//! high watermark but not past the leader's log end returns nothing, a fetch past the log end
//! is refused with OFFSET_OUT_OF_RANGE (Kafka's `Log.read`, later `LocalLog.read`: the same
//! check in 1.1.1, 2.8.2 and 4.x). So a fetch at `high watermark + 1` refused as out of range proves that the
//! leader's log ends at the high watermark: everything on it is committed and will stay
//! (elections are clean), and nothing more will appear. Until then kmigrate waits, and
//! refuses after `wait`, never guessing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::Cluster;
use super::error::{Awaiting, Code, KafkaError};
use super::reader::{Assignment, Polled, SourceReader, Tuning};
use crate::config::Compression;
use crate::model::Tp;

/// How long one round of fetches waits for the leaders' answers before the high watermarks
/// are read again.
const ROUND: Duration = Duration::from_secs(2);

/// What the leader answered a fetch at `high watermark + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Refused as past the log end: the log ends at the high watermark.
    Settled,
    /// A record or the partition's end at the offset: the high watermark moved on since it
    /// was read; read it again.
    Moved,
    /// Nothing: the leader holds records up to at least that offset that are not committed.
    Silent,
}

/// The partitions still to wait for after a round: every partition not proved settled.
pub fn unsettled(tps: &[Tp], answers: &BTreeMap<Tp, Probe>) -> Vec<Tp> {
    tps.iter()
        .filter(|tp| answers.get(*tp) != Some(&Probe::Settled))
        .cloned()
        .collect()
}

/// Returns once the log of every partition in `tps` on `cluster` ends at its high
/// watermark; fails, naming the partitions, when that is not so within `wait`. Partitions
/// the cluster does not have are left to the caller to report.
pub fn wait_until_committed(cluster: &Cluster, tps: &[Tp], wait: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut pending: Vec<Tp> = tps.to_vec();
    let mut told = false;
    while !pending.is_empty() {
        let highs = cluster
            .admin()?
            .low_high(&pending)
            .context("reading the high watermarks of the target partitions kmigrate wrote to")?;
        pending.retain(|tp| highs.contains_key(tp));
        let round = probe(cluster, &pending, &highs)?;
        pending = unsettled(&pending, &round.answers);
        if pending.is_empty() {
            break;
        }
        // No answer at all because a new connection reached no broker says nothing about
        // the replicas: that is the failure to report, after the step's time.
        if let Some(why) = &round.unreachable {
            if start.elapsed() >= cluster.timeout {
                return Err(anyhow::Error::new(KafkaError::with_message(
                    Code::TRANSPORT,
                    "fetching past the high watermark of the target partitions kmigrate wrote to",
                    format!(
                        "no broker of the {} answered a new connection ({why}): check that \
                         bootstrap_servers names brokers that are up",
                        cluster.describe()
                    ),
                )));
            }
            continue;
        }
        if start.elapsed() >= wait {
            return Err(anyhow::Error::new(Awaiting(format!(
                "{} partition(s) on the {} hold records past their high watermark that the \
                 replicas have not confirmed after {} s: {}. A follower is lagging or stopped, \
                 or the partition has fewer in-sync replicas than min.insync.replicas. These \
                 records were sent before the interruption; until they are committed (or \
                 dropped by a leader election) nobody can tell whether they stay, so kmigrate \
                 writes nothing. Bring the replicas back in sync (`kafka-topics --describe \
                 --under-replicated-partitions` lists none), then run the command again",
                pending.len(),
                cluster.describe(),
                start.elapsed().as_secs(),
                sample(&pending)
            ))));
        }
        if !told {
            tracing::warn!(
                "waiting for the replicas of {} target partition(s) to confirm records sent \
                 before the interruption ({}); up to {} s",
                pending.len(),
                sample(&pending),
                wait.as_secs()
            );
            told = true;
        }
    }
    if told {
        tracing::info!(
            "the replicas confirmed every record; waited {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// What one round of probes found.
struct Round {
    answers: BTreeMap<Tp, Probe>,
    /// Not one answer came, and the reader said why (no broker reachable, ...).
    unreachable: Option<String>,
}

/// One round: a fetch at `high + 1` of each partition, from its leader.
fn probe(cluster: &Cluster, tps: &[Tp], highs: &BTreeMap<Tp, (i64, i64)>) -> anyhow::Result<Round> {
    let mut answers = BTreeMap::new();
    let mut trouble = None;
    if tps.is_empty() {
        return Ok(Round {
            answers,
            unreachable: None,
        });
    }
    let topics: Vec<String> = tps
        .iter()
        .map(|tp| tp.topic.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let assignments: Vec<Assignment> = tps
        .iter()
        .filter_map(|tp| {
            let (_, high) = highs.get(tp)?;
            Some(Assignment {
                topic: topics.iter().position(|t| *t == tp.topic)?,
                partition: tp.partition,
                from: high + 1,
            })
        })
        .collect();
    let tuning = Tuning {
        buffer_bytes: 4 << 20,
        compression: Compression::None,
        max_batch_bytes: None,
    };
    let mut reader = SourceReader::on_leaders(cluster, &topics, &assignments, &tuning)?;
    let until = Instant::now() + ROUND;
    while answers.len() < tps.len() && Instant::now() < until {
        let (topic, partition, answer) = match reader.poll(Duration::from_millis(100)) {
            Polled::OutOfRange {
                topic, partition, ..
            } => (topic, partition, Probe::Settled),
            Polled::Record(rec) => (rec.topic(), rec.partition(), Probe::Moved),
            Polled::Eof {
                topic, partition, ..
            } => (topic, partition, Probe::Moved),
            Polled::Idle => continue,
            Polled::Transient(why) => {
                trouble = Some(why);
                continue;
            }
            Polled::Fatal(what) => bail!(
                "fetching past the high watermark on the {}: {what}",
                cluster.describe()
            ),
        };
        answers
            .entry(Tp::new(&topics[topic], partition))
            .or_insert(answer);
    }
    let unreachable = trouble.filter(|_| answers.is_empty());
    for tp in tps {
        answers.entry(tp.clone()).or_insert(Probe::Silent);
    }
    Ok(Round {
        answers,
        unreachable,
    })
}

/// Up to five partitions, for a message.
fn sample(tps: &[Tp]) -> String {
    let mut s = tps
        .iter()
        .take(5)
        .map(|tp| tp.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if tps.len() > 5 {
        s.push_str(&format!(" and {} more", tps.len() - 5));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partitions_proved_settled_are_done() {
        let tps: Vec<Tp> = (0..4).map(|p| Tp::new("t", p)).collect();
        let answers = BTreeMap::from([
            (Tp::new("t", 0), Probe::Settled),
            (Tp::new("t", 1), Probe::Moved),
            (Tp::new("t", 2), Probe::Silent),
        ]);
        assert_eq!(
            unsettled(&tps, &answers),
            vec![Tp::new("t", 1), Tp::new("t", 2), Tp::new("t", 3)]
        );
    }

    #[test]
    fn a_sample_names_five_and_counts_the_rest() {
        let tps: Vec<Tp> = (0..7).map(|p| Tp::new("t", p)).collect();
        assert_eq!(sample(&tps), "t/0, t/1, t/2, t/3, t/4 and 2 more");
        assert_eq!(sample(&tps[..1]), "t/0");
    }
}
