//! What the copy reports while it runs: counters and the sink that shows them.

use std::collections::BTreeMap;
use std::time::Duration;

/// Counters shown while copying and in the summary.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub elapsed: Duration,
    /// Offsets of the planned ranges read so far / in all.
    pub offsets_done: i64,
    pub offsets_total: i64,
    /// Records on the target (acknowledged, or found there on resume), this run and before.
    pub records: u64,
    /// Records and key+value bytes written by this run.
    pub records_this_run: u64,
    pub bytes_this_run: u64,
    /// Per topic: (offsets done, offsets total, records).
    pub topics: BTreeMap<String, (i64, i64, u64)>,
    /// Per planned partition, in the state's order: what metrics label by partition and
    /// what tells a machine reader that a partition finished.
    pub partitions: Vec<PartitionSnapshot>,
    /// Failures the pipelines reported (the first one stops the copy; later ones are
    /// usually its echoes).
    pub errors: u64,
}

/// One planned partition's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    /// Offsets of the planned range read so far / in all.
    pub offsets_done: i64,
    pub offsets_total: i64,
    /// Records on the target (this run and before).
    pub records: u64,
    /// Every planned record is on the target.
    pub done: bool,
}

impl PartitionSnapshot {
    /// Offsets still to read: an upper bound of the records still to copy (compaction and
    /// transaction markers leave gaps).
    pub fn lag(&self) -> i64 {
        (self.offsets_total - self.offsets_done).max(0)
    }
}

/// Receives progress a few times a second.
pub trait ProgressSink {
    fn update(&mut self, s: &Snapshot);
    fn finish(&mut self, s: &Snapshot);
}
