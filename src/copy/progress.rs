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
    /// Per source topic: how its records travelled in this command's copies.
    pub routes: BTreeMap<String, Routes>,
}

/// How one topic's records travelled: the source's batches as the batch engine routed
/// them when it read them (a batch read again after a resume counts again), and the
/// records the record engine copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Routes {
    /// Batches passed on with only their header rewritten, and their bytes.
    pub passed_batches: u64,
    pub passed_bytes: u64,
    /// Batches decoded and written again (a range's edges, compacted, LogAppendTime, over
    /// the target's limit, a codec it lacks, runs of small batches), and their bytes.
    pub reencoded_batches: u64,
    pub reencoded_bytes: u64,
    /// Records the record engine copied.
    pub record_engine_records: u64,
}

impl Routes {
    pub fn add(&mut self, o: &Routes) {
        self.passed_batches += o.passed_batches;
        self.passed_bytes += o.passed_bytes;
        self.reencoded_batches += o.reencoded_batches;
        self.reencoded_bytes += o.reencoded_bytes;
        self.record_engine_records += o.record_engine_records;
    }
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
