//! One partition being copied: where it stands on both sides and what is in flight.

use std::collections::VecDeque;

use super::prepare::Work;
use crate::ledger::{PartitionState, Progress};
use crate::offsets::{OffsetMap, Tracker};

/// One partition being copied by a pipeline. Its index is also its range in the reader
/// and its slot in the writer.
pub struct Slot {
    /// Index of the partition in the state.
    pub state: usize,
    pub topic: usize,
    pub partition: i32,
    /// Records to drop before writing: already on the target (resume after a crash), and
    /// those records as the target holds them.
    pub skip: u64,
    pub tail: VecDeque<(i64, u128)>,
    /// Target offset of the next record written or skipped.
    pub next_target: i64,
    /// Source offsets sent and not yet acknowledged, in order.
    pub sent: VecDeque<i64>,
    /// The source offset after the last record read (names a failed record).
    pub last_read: i64,
    /// Acknowledgements already reconciled.
    pub acks_seen: u64,
    pub read_done: bool,
    pub done: bool,
    pub progress: Progress,
    pub translation: Tracker,
    pub map: OffsetMap,
    /// Changed since last published.
    pub dirty: bool,
}

impl Slot {
    /// The slot of a partition to copy, its progress as the state holds it.
    pub fn new(w: &Work, topic: usize, ps: &PartitionState) -> Slot {
        Slot {
            state: w.state,
            topic,
            partition: w.partition,
            skip: w.skip,
            tail: w.tail.iter().copied().collect(),
            next_target: w.next_target,
            sent: VecDeque::new(),
            last_read: w.from,
            acks_seen: 0,
            read_done: false,
            done: false,
            progress: ps.progress,
            translation: ps.translation.clone(),
            map: ps.map.clone(),
            dirty: false,
        }
    }

    /// Source record `source` is on the target at `next_target` (acknowledged, or proven
    /// there on resume): the next one lands after it.
    #[inline]
    pub fn landed(&mut self, source: i64) {
        self.translation.observe(source, self.next_target);
        self.map.observe(source, self.next_target);
        self.progress.acked = Some((source, self.next_target));
        self.next_target += 1;
    }
}
