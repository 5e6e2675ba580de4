//! Watching the source for new records (`sync`): one consumer assigned to every followed
//! partition at the offset the copy has reached, which says which partitions got records
//! since. Its fetches wait at the broker until records arrive, so an idle source costs
//! one open request per broker, not a read of every partition's offsets each second.
//!
//! A partition that shows a record is paused until the copy has taken it to its new end
//! ([`Watcher::rearm`]): a busy partition costs one small fetch per round. The watcher only
//! says where to look; the offsets copied are read from the source as before.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::Cluster;
use super::reader::{Assignment, Polled, SourceReader};
use super::repeats;
use crate::model::Tp;

/// Events taken from the consumer at most per [`Watcher::poll`] (a busy source queues one
/// batch per partition).
const MAX_EVENTS: usize = 100_000;

pub struct Watcher {
    reader: SourceReader,
    topics: Vec<String>,
    /// Each watched partition's (topic index, partition) and the offset it is armed at.
    armed: BTreeMap<Tp, (usize, i32, i64)>,
    /// (topic index, partition) -> partition, for the events.
    by_index: HashMap<(usize, i32), Tp>,
    /// Partitions that showed records (or an offset the leader does not have) since they
    /// were armed: paused until rearmed.
    changed: BTreeSet<Tp>,
    /// Why the watcher cannot be trusted any more, when it cannot.
    broken: Option<String>,
}

impl Watcher {
    /// Watches each partition of `at` from its offset (where the copy has reached).
    pub fn new(source: &Cluster, at: &BTreeMap<Tp, i64>) -> anyhow::Result<Watcher> {
        let mut topics: Vec<String> = at.keys().map(|tp| tp.topic.clone()).collect();
        topics.dedup();
        let index = |t: &str| topics.binary_search_by(|x| x.as_str().cmp(t)).unwrap_or(0);
        let mut armed = BTreeMap::new();
        let mut by_index = HashMap::new();
        let mut assignments = Vec::with_capacity(at.len());
        for (tp, offset) in at {
            let t = index(&tp.topic);
            armed.insert(tp.clone(), (t, tp.partition, *offset));
            by_index.insert((t, tp.partition), tp.clone());
            assignments.push(Assignment {
                topic: t,
                partition: tp.partition,
                from: *offset,
            });
        }
        let reader = SourceReader::watcher(source, &topics, &assignments)?;
        Ok(Watcher {
            reader,
            topics,
            armed,
            by_index,
            changed: BTreeSet::new(),
            broken: None,
        })
    }

    /// The partitions watched.
    pub fn len(&self) -> usize {
        self.armed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    /// Takes what the consumer says, waiting up to `timeout` for the first event.
    pub fn poll(&mut self, timeout: Duration) {
        let until = Instant::now() + timeout;
        for _ in 0..MAX_EVENTS {
            let left = until.saturating_duration_since(Instant::now());
            let (topic, partition) = match self.reader.poll(left) {
                Polled::Record(r) => (r.topic(), r.partition()),
                Polled::OutOfRange {
                    topic, partition, ..
                } => (topic, partition),
                Polled::Eof { .. } => continue,
                Polled::Idle => return,
                Polled::Transient(msg) => {
                    repeats::limited(&format!("source: {msg} (retrying)"), |line| {
                        tracing::debug!("watching: {line}")
                    });
                    continue;
                }
                Polled::Fatal(msg) => {
                    tracing::debug!("watching the source failed: {msg}");
                    self.broken = Some(msg);
                    return;
                }
            };
            self.saw(topic, partition);
        }
    }

    fn saw(&mut self, topic: usize, partition: i32) {
        let Some(tp) = self.by_index.get(&(topic, partition)) else {
            return;
        };
        if self.changed.insert(tp.clone()) {
            tracing::trace!("watching: {tp} got records");
            self.reader.pause(topic, partition);
        }
    }

    /// The partitions that got records since they were armed.
    pub fn changed(&self) -> Vec<Tp> {
        self.changed.iter().cloned().collect()
    }

    /// Why the watcher cannot be trusted, if it cannot (then read every partition).
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Watches each partition of `at` from its offset again: those that changed, and those
    /// whose offset moved. The others keep their fetch position.
    pub fn rearm(&mut self, at: &BTreeMap<Tp, i64>) -> anyhow::Result<()> {
        let mut moves = Vec::new();
        for (tp, offset) in at {
            let Some(armed) = self.armed.get_mut(tp) else {
                continue;
            };
            if armed.2 != *offset || self.changed.contains(tp) {
                armed.2 = *offset;
                moves.push(Assignment {
                    topic: armed.0,
                    partition: armed.1,
                    from: *offset,
                });
            }
        }
        tracing::trace!("watching {} partition(s) again", moves.len());
        self.reader.rewind(&moves).map_err(|e| {
            e.context(format!(
                "watching {} partition(s) of the source ({} topic(s)) again",
                moves.len(),
                self.topics.len()
            ))
        })?;
        for tp in at.keys() {
            self.changed.remove(tp);
        }
        Ok(())
    }
}
