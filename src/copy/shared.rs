//! What the pipelines and the coordinator share: the state being copied (each pipeline
//! publishes its own partitions' progress into it), the counters shown as progress, the
//! halt flag and the first failure.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use std::collections::BTreeMap;

use super::progress::{PartitionSnapshot, Routes, Snapshot};
use super::slot::Slot;
use crate::ledger::{PartitionState, State};

pub struct Shared<'a> {
    state: Mutex<&'a mut State>,
    /// Per state partition: the next source offset to read (progress shown to people).
    read_pos: Vec<AtomicI64>,
    records_this_run: AtomicU64,
    bytes_this_run: AtomicU64,
    halt: AtomicBool,
    failures: AtomicU64,
    failure: Mutex<Option<anyhow::Error>>,
    /// Per source topic: how the batch engine routed the batches it read.
    routes: Mutex<BTreeMap<String, Routes>>,
}

impl<'a> Shared<'a> {
    /// `read_from` gives, per state partition, where reading starts in this run (the end
    /// for partitions done before).
    pub fn new(state: &'a mut State, read_from: Vec<i64>) -> Shared<'a> {
        Shared {
            state: Mutex::new(state),
            read_pos: read_from.into_iter().map(AtomicI64::new).collect(),
            records_this_run: AtomicU64::new(0),
            bytes_this_run: AtomicU64::new(0),
            halt: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            failure: Mutex::new(None),
            routes: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, &'a mut State> {
        // A pipeline that panicked while publishing left whole values behind: each field is
        // replaced in one assignment.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops every pipeline at its next turn (they flush and publish first).
    pub fn halt(&self) {
        self.halt.store(true, Ordering::Relaxed);
    }

    pub fn halted(&self) -> bool {
        self.halt.load(Ordering::Relaxed)
    }

    /// Records a failure and halts the pipelines; the first failure explains the stop.
    pub fn fail(&self, e: anyhow::Error) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut first = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        match first.as_ref() {
            None => *first = Some(e),
            Some(_) => tracing::warn!("{e:#}"),
        }
        self.halt();
    }

    pub fn take_failure(&self) -> Option<anyhow::Error> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Adds a pipeline's counts of routed batches, per source topic.
    pub(super) fn add_routes(&self, routes: &BTreeMap<String, Routes>) {
        let mut all = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        for (topic, r) in routes {
            all.entry(topic.clone()).or_default().add(r);
        }
    }

    /// The counts of routed batches, handed over once the pipelines ended.
    pub(super) fn take_routes(&self) -> BTreeMap<String, Routes> {
        std::mem::take(&mut *self.routes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads one partition of the state.
    pub fn with_partition<T>(&self, i: usize, f: impl FnOnce(&PartitionState) -> T) -> T {
        f(&self.lock().partitions[i])
    }

    /// A pipeline's progress: per partition (state index, next offset to read, the slot
    /// when its progress changed), and records and bytes written since its last publish.
    pub(super) fn publish<'s>(
        &self,
        slots: impl Iterator<Item = (usize, i64, Option<&'s Slot>)>,
        records: u64,
        bytes: u64,
    ) {
        self.records_this_run.fetch_add(records, Ordering::Relaxed);
        self.bytes_this_run.fetch_add(bytes, Ordering::Relaxed);
        let mut state = self.lock();
        for (i, pos, changed) in slots {
            self.read_pos[i].store(pos, Ordering::Relaxed);
            if let Some(s) = changed {
                let ps = &mut state.partitions[i];
                ps.progress = s.progress;
                ps.translation.clone_from(&s.translation);
                ps.map.clone_from(&s.map);
            }
        }
    }

    /// The state file's bytes as of now: each partition as its pipeline last published it,
    /// which is always a consistent checkpoint (partitions are independent).
    pub fn checkpoint(&self, now_ms: i64) -> anyhow::Result<Vec<u8>> {
        self.lock().to_bytes(now_ms)
    }

    /// Counters for the progress display.
    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        let state = self.lock();
        let mut snap = Snapshot {
            elapsed,
            records_this_run: self.records_this_run.load(Ordering::Relaxed),
            bytes_this_run: self.bytes_this_run.load(Ordering::Relaxed),
            errors: self.failures.load(Ordering::Relaxed),
            ..Snapshot::default()
        };
        for (p, pos) in state.partitions.iter().zip(&self.read_pos) {
            let total = p.end - p.start;
            let done = pos.load(Ordering::Relaxed).clamp(p.start, p.end) - p.start;
            snap.offsets_done += done;
            snap.offsets_total += total;
            snap.records += p.progress.written;
            let e = snap.topics.entry(p.topic.clone()).or_default();
            e.0 += done;
            e.1 += total;
            e.2 += p.progress.written;
            snap.partitions.push(PartitionSnapshot {
                topic: p.topic.clone(),
                partition: p.partition,
                offsets_done: done,
                offsets_total: total,
                records: p.progress.written,
                done: p.progress.done,
            });
        }
        snap
    }
}
