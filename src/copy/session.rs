//! What one copy leaves to the next within a command: each pipeline's source consumer and
//! target producer, and the target topics' batch limit. A `sync` copies every second or so
//! while records arrive; without this, every round would connect, handshake and read
//! metadata again, per pipeline and on both clusters.
//!
//! Clients are kept only after a copy that ended cleanly (every partition copied, every
//! record acknowledged, no failure); after anything else they are dropped, and the next copy
//! builds new ones. The batch limit is kept per set of target topics, and forgotten with the
//! clients.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::progress::Routes;
use crate::kafka::reader::{SourceReader, Tuning};
use crate::kafka::wire::Conn;
use crate::kafka::writer::TargetWriter;

/// One pipeline's clients, kept between copies.
pub struct Clients {
    /// `None` when the pipeline had nothing to read (no client was made).
    pub reader: Option<SourceReader>,
    pub writer: TargetWriter,
    /// What they were built with: a copy with other settings builds its own.
    pub tuning: Tuning,
}

/// What a pipeline leaves to the next copy of the same command (a `sync`'s next round) when
/// it ended cleanly: its connections, its producer id, and where each target partition's
/// sequence stands under it. Without it every round would connect again and take a new
/// producer id, and the target would keep the state of one producer per round and
/// partition until `producer.id.expiration.ms`.
pub struct Wire {
    pub(super) sources: Vec<Conn>,
    pub(super) targets: Vec<Conn>,
    pub(super) producer: (i64, i16),
    /// The next base sequence of each target partition written under `producer`.
    pub(super) sequences: BTreeMap<(String, i32), i32>,
}

/// What one pipeline leaves: the record engine's clients or the batch engine's connections.
pub enum Kept {
    Record(Box<Clients>),
    Batch(Wire),
}

/// The clients and the batch limit a command's copies share.
#[derive(Default)]
pub struct Session {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per pipeline index.
    clients: Vec<Option<Kept>>,
    /// The target topics (sorted) and the batch limit read for them.
    limit: Option<(Vec<String>, Option<usize>)>,
    /// The partitions the kept clients were built for (source topic, target topic,
    /// partition).
    partitions: Vec<(String, String, i32)>,
    /// Why the batch engine stopped for this command (a source in message format v0/v1):
    /// later copies (a sync's rounds) use the record engine at once.
    record_only: Option<String>,
    /// Per source topic: how the command's copies moved its records.
    routes: BTreeMap<String, Routes>,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The copy is of `partitions` (source topic, target topic, partition): when they are
    /// not those of the kept clients (a sync's rescan added topics or partitions), the kept
    /// clients are let go. Their metadata would not know the new partitions (a producer
    /// refuses a partition its metadata lacks), and new clients cost no more than today's.
    pub fn copying(&self, partitions: Vec<(String, String, i32)>) {
        let mut inner = self.inner();
        if inner.partitions != partitions {
            if inner.clients.iter().any(Option::is_some) {
                tracing::debug!("the copy's partitions changed: new clients");
            }
            inner.clients.clear();
            inner.partitions = partitions;
        }
    }

    /// The batch engine cannot copy this command's partitions, for `why`: every later
    /// copy of the command uses the record engine.
    pub fn record_only(&self, why: String) {
        self.inner().record_only = Some(why);
    }

    /// Adds one copy's counts of how records travelled, per source topic.
    pub fn add_routes(&self, routes: &BTreeMap<String, Routes>) {
        let mut inner = self.inner();
        for (topic, r) in routes {
            inner.routes.entry(topic.clone()).or_default().add(r);
        }
    }

    /// How the command's copies so far moved each topic's records.
    pub fn routes(&self) -> BTreeMap<String, Routes> {
        self.inner().routes.clone()
    }

    /// Why an earlier copy of this command left the batch engine, if one did.
    pub fn left_batch_engine(&self) -> Option<String> {
        self.inner().record_only.clone()
    }

    /// Pipeline `index`'s record-engine clients, if an earlier copy left some that fit
    /// `tuning`.
    pub fn take(&self, index: usize, tuning: &Tuning) -> Option<Clients> {
        let mut inner = self.inner();
        let slot = inner.clients.get_mut(index)?;
        let Some(Kept::Record(_)) = slot else {
            return None;
        };
        let Some(Kept::Record(kept)) = slot.take() else {
            return None;
        };
        let kept = *kept;
        let fit = fits(&kept.tuning, tuning);
        if !fit {
            tracing::debug!(
                pipeline = index,
                "the copy's settings changed: new clients instead of the kept ones"
            );
        }
        fit.then_some(kept)
    }

    /// Pipeline `index`'s batch-engine connections, if an earlier copy left some.
    pub fn take_wire(&self, index: usize) -> Option<Wire> {
        let mut inner = self.inner();
        let slot = inner.clients.get_mut(index)?;
        let Some(Kept::Batch(_)) = slot else {
            return None;
        };
        match slot.take() {
            Some(Kept::Batch(wire)) => Some(wire),
            _ => None,
        }
    }

    /// Keeps the clients of a copy that ended cleanly, by pipeline index.
    pub fn keep(&self, clients: Vec<(usize, Kept)>) {
        let mut inner = self.inner();
        for (i, c) in clients {
            if inner.clients.len() <= i {
                inner.clients.resize_with(i + 1, || None);
            }
            inner.clients[i] = Some(c);
        }
    }

    /// Lets the kept clients go (the batch limit stays): a `sync` with nothing to copy for
    /// a while. Every client holds every partition of its pipeline, and librdkafka walks
    /// them all each second even when idle; the next copy builds new ones. Whether there
    /// were any.
    pub fn release(&self) -> bool {
        let clients = std::mem::take(&mut self.inner().clients);
        let had = clients.iter().any(Option::is_some);
        drop(clients);
        had
    }

    /// After a copy that failed or was interrupted: the next one builds its clients anew.
    /// The batch limit stays: a failure does not change the target topics' settings, and
    /// reading them again while a broker is down costs the copy's resume a whole timeout.
    pub fn forget(&self) {
        self.inner().clients.clear();
    }

    /// The batch limit for `topics` (sorted), read by `read` when not known yet; a limit
    /// that could not be read (`Err`) is not kept.
    pub fn batch_limit<E>(
        &self,
        topics: &[String],
        read: impl FnOnce() -> Result<Option<usize>, E>,
    ) -> Result<Option<usize>, E> {
        if let Some((known, limit)) = &self.inner().limit
            && known == topics
        {
            return Ok(*limit);
        }
        let limit = read()?;
        self.inner().limit = Some((topics.to_vec(), limit));
        Ok(limit)
    }
}

/// Whether clients built with `kept` may serve a copy that asks for `wanted`: the same
/// producer settings, and buffers within the copy's share of the memory budget. (A copy
/// with fewer pipelines gives each a larger share: clients kept from one with more still
/// fit, with smaller buffers; the other way round, they would exceed the budget.)
fn fits(kept: &Tuning, wanted: &Tuning) -> bool {
    kept.compression == wanted.compression
        && kept.max_batch_bytes == wanted.max_batch_bytes
        && kept.buffer_bytes <= wanted.buffer_bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;

    #[test]
    fn kept_clients_fit_the_same_settings_within_the_memory_share() {
        let t = |buffer_bytes, max_batch_bytes| Tuning {
            buffer_bytes,
            compression: Compression::None,
            max_batch_bytes,
        };
        assert!(fits(&t(100, None), &t(100, None)));
        assert!(fits(&t(50, None), &t(100, None)));
        assert!(!fits(&t(100, None), &t(50, None)));
        assert!(!fits(&t(100, Some(10)), &t(100, None)));
        let lz4 = Tuning {
            compression: Compression::Lz4,
            ..t(100, None)
        };
        assert!(!fits(&t(100, None), &lz4));
    }

    #[test]
    fn the_batch_limit_is_read_once_per_set_of_topics_and_kept_after_a_failure() {
        let s = Session::new();
        let ab = vec!["a".to_string(), "b".to_string()];
        let mut reads = 0;
        let mut read = |v| {
            reads += 1;
            Ok::<_, ()>(v)
        };
        assert_eq!(s.batch_limit(&ab, || read(Some(10))), Ok(Some(10)));
        assert_eq!(s.batch_limit(&ab, || read(Some(99))), Ok(Some(10)));
        assert_eq!(s.batch_limit(&ab[..1], || read(None)), Ok(None));
        // A failure keeps it: the topics' settings did not change.
        s.forget();
        assert_eq!(s.batch_limit(&ab[..1], || read(Some(7))), Ok(None));
        // Another set of topics is read; a limit that could not be read is not kept.
        assert_eq!(s.batch_limit(&ab, || Err(())), Err(()));
        assert_eq!(s.batch_limit(&ab, || read(Some(1))), Ok(Some(1)));
        assert_eq!(reads, 3);
    }
}
