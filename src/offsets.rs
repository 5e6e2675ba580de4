//! Offset translation: where each consumer group resumes on the target.
//!
//! A group that committed source offset `c` has consumed every record below `c`. On the
//! target it must resume at the first copied record whose source offset is `>= c`: not
//! earlier (re-processing), not later (loss). When every copied record is below `c` (the
//! group was ahead of the copy's start everywhere, or nothing was copied), it resumes right
//! after the last copied record: the target's end. A commit below the copy's start (records
//! expired) resolves to the first copied record. Gaps in source offsets (compaction,
//! transaction markers) do not shift the result because only real records are matched.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The rule, stated directly: `copied` lists (source offset, target offset) of the copied
/// records in order; `target_end` is the target offset after the last of them.
pub fn translate(commit: i64, copied: &[(i64, i64)], target_end: i64) -> i64 {
    copied
        .iter()
        .find(|(src, _)| *src >= commit)
        .map_or(target_end, |(_, tgt)| *tgt)
}

/// The same rule applied while records are copied, one partition at a time, so that no list
/// of copied records is kept: each record costs one comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracker {
    /// (source position, group) not resolved yet, in ascending order of position.
    pending: Vec<(i64, String)>,
    /// Translated target offset per group.
    resolved: BTreeMap<String, i64>,
}

impl Tracker {
    /// `positions`: each group's source position in this partition (its committed offset).
    pub fn new(positions: impl IntoIterator<Item = (String, i64)>) -> Tracker {
        let mut pending: Vec<(i64, String)> = positions.into_iter().map(|(g, c)| (c, g)).collect();
        // Resolved from the front; highest position last.
        pending.sort();
        pending.reverse();
        Tracker {
            pending,
            resolved: BTreeMap::new(),
        }
    }

    /// A record at `source` is on the target at `target`; records are observed in order.
    #[inline]
    pub fn observe(&mut self, source: i64, target: i64) {
        while let Some((pos, _)) = self.pending.last() {
            if *pos > source {
                break;
            }
            if let Some((_, group)) = self.pending.pop() {
                self.resolved.insert(group, target);
            }
        }
    }

    /// The copy of this partition is complete: groups past its last record resume at the
    /// target's end.
    pub fn finish(&mut self, target_end: i64) {
        for (_, group) in self.pending.drain(..) {
            self.resolved.insert(group, target_end);
        }
    }

    /// Translated offsets so far (all of them after `finish`).
    pub fn resolved(&self) -> &BTreeMap<String, i64> {
        &self.resolved
    }

    pub fn is_finished(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn group_resumes_at_first_record_at_or_after_its_commit() {
        // Source offsets 10..20 with a gap at 13..15 (compaction), copied to target 100...
        let src = [10, 11, 12, 16, 17, 18, 19];
        let copied: Vec<(i64, i64)> = src
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, 100 + i as i64))
            .collect();
        assert_eq!(translate(10, &copied, 107), 100);
        assert_eq!(translate(12, &copied, 107), 102);
        // Commit inside the gap: next real record.
        assert_eq!(translate(14, &copied, 107), 103);
        // Commit below the start (expired records): first copied record.
        assert_eq!(translate(3, &copied, 107), 100);
        // Consumed everything: the end.
        assert_eq!(translate(20, &copied, 107), 107);
        assert_eq!(translate(25, &copied, 107), 107);
        // Nothing copied: the end.
        assert_eq!(translate(5, &[], 42), 42);
    }

    #[test]
    fn tracker_resolves_in_order() {
        let mut t = Tracker::new([
            ("a".to_string(), 12),
            ("b".to_string(), 10),
            ("c".to_string(), 99),
        ]);
        t.observe(10, 0);
        assert_eq!(t.resolved().get("b"), Some(&0));
        assert!(!t.is_finished());
        t.observe(11, 1);
        t.observe(16, 2);
        assert_eq!(t.resolved().get("a"), Some(&2));
        t.finish(3);
        assert_eq!(t.resolved().get("c"), Some(&3));
        assert!(t.is_finished());
    }

    proptest! {
        #[test]
        fn tracker_matches_the_rule(
            gaps in proptest::collection::vec(any::<bool>(), 0..100),
            commits in proptest::collection::vec(0i64..130, 1..6),
            target_base in 0i64..1000,
            // The copy may be split by a checkpoint/resume: the tracker is serialized there.
            split in 0usize..100,
        ) {
            let start = 20;
            let copied: Vec<(i64, i64)> = gaps.iter().enumerate()
                .filter(|(_, g)| !**g)
                .enumerate()
                .map(|(k, (i, _))| (start + i as i64, target_base + k as i64))
                .collect();
            let end = target_base + copied.len() as i64;
            let groups: Vec<(String, i64)> =
                commits.iter().enumerate().map(|(i, c)| (format!("g{i}"), *c)).collect();
            let mut t = Tracker::new(groups.clone());
            let split = split.min(copied.len());
            for (s, g) in &copied[..split] {
                t.observe(*s, *g);
            }
            let json = serde_json::to_string(&t).expect("serialize");
            let mut t: Tracker = serde_json::from_str(&json).expect("deserialize");
            for (s, g) in &copied[split..] {
                t.observe(*s, *g);
            }
            t.finish(end);
            for (g, c) in &groups {
                prop_assert_eq!(t.resolved()[g], translate(*c, &copied, end));
            }
        }
    }
}
