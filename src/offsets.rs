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

/// Where every copied source record of one partition landed on the target, as runs of
/// consecutive offsets: `(source, target, count)` says source records `source..source+count`
/// are target records `target..target+count`. A new run starts only where the source has a
/// gap (transaction markers, compaction, records that expired before the copy), so a
/// partition copied without gaps is one run, whatever its size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OffsetMap {
    runs: Vec<Run>,
}

/// `(source, target, count)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run(pub i64, pub i64, pub u64);

/// Why a source offset has no target offset (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untranslatable {
    /// Below the copy's first offset: those records were not copied.
    BelowStart { start: i64 },
    /// Past what is copied so far: the records up to `copied_to` (exclusive) are.
    PastCopied { copied_to: i64, end: i64 },
    /// Nothing of the partition was written yet.
    NotStarted,
}

impl std::fmt::Display for Untranslatable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untranslatable::BelowStart { start } => write!(
                f,
                "it is below the copy's start ({start}): records before it were not copied"
            ),
            Untranslatable::PastCopied { copied_to, end } => write!(
                f,
                "it is past what was copied: source offsets before {copied_to} are on the \
                 target, the copy ends at {end}"
            ),
            Untranslatable::NotStarted => write!(f, "nothing of this partition is copied yet"),
        }
    }
}

impl OffsetMap {
    /// The record at source offset `source` is on the target at `target`. Records are
    /// observed in order.
    #[inline]
    pub fn observe(&mut self, source: i64, target: i64) {
        if let Some(Run(s, t, n)) = self.runs.last_mut()
            && *s + *n as i64 == source
            && *t + *n as i64 == target
        {
            *n += 1;
            return;
        }
        self.runs.push(Run(source, target, 1));
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The last record observed: (source offset, target offset).
    pub fn last(&self) -> Option<(i64, i64)> {
        self.runs
            .last()
            .map(|Run(s, t, n)| (s + *n as i64 - 1, t + *n as i64 - 1))
    }

    /// Records observed.
    pub fn records(&self) -> u64 {
        self.runs.iter().map(|r| r.2).sum()
    }

    /// The target offset of the first observed record at or after source offset `commit`.
    pub fn first_at_or_after(&self, commit: i64) -> Option<i64> {
        // Runs ascend in source offsets: the first run that ends past `commit`.
        let i = self
            .runs
            .partition_point(|Run(s, _, n)| s + *n as i64 <= commit);
        self.runs.get(i).map(|Run(s, t, _)| t + (commit - s).max(0))
    }

    /// Checks what a state file says: runs ascending, non-empty and not overlapping on
    /// either side, inside `[start, end)`.
    pub fn check(&self, start: i64, end: i64) -> Result<(), String> {
        let mut prev: Option<&Run> = None;
        for r in &self.runs {
            let Run(s, t, n) = *r;
            let n = i64::try_from(n).map_err(|_| format!("run {r:?} is too long"))?;
            if n == 0 || s < start || s.checked_add(n).is_none_or(|e| e > end) || t < 0 {
                return Err(format!(
                    "run {r:?} is empty or outside the range [{start}, {end})"
                ));
            }
            if let Some(&Run(ps, pt, pn)) = prev
                && (s < ps + pn as i64 || t < pt + pn as i64)
            {
                return Err(format!("run {r:?} overlaps or precedes the one before it"));
            }
            prev = Some(r);
        }
        Ok(())
    }
}

/// The target offset a consumer that would read source offset `commit` next must read next
/// on the target, from a partition's copy so far: `[start, end)` is the planned range,
/// `next_target` the target offset of the next record the copy writes (`None` before it
/// wrote any), `done` whether every record of the range is copied.
pub fn translate_one(
    map: &OffsetMap,
    (start, end): (i64, i64),
    next_target: Option<i64>,
    done: bool,
    commit: i64,
) -> Result<i64, Untranslatable> {
    if commit < start {
        return Err(Untranslatable::BelowStart { start });
    }
    if let Some(t) = map.first_at_or_after(commit) {
        return Ok(t);
    }
    let Some(next) = next_target else {
        return Err(Untranslatable::NotStarted);
    };
    // Past every copied record: the next record written (none between) lands at `next`,
    // so an offset up to the next source record maps there. Once done, that is every
    // offset up to the range's end.
    let copied_to = map.last().map_or(start, |(s, _)| s + 1);
    if commit <= copied_to || (done && commit <= end) {
        Ok(next)
    } else {
        Err(Untranslatable::PastCopied { copied_to, end })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn runs_break_only_at_source_gaps() {
        let mut m = OffsetMap::default();
        for (s, t) in [(10, 0), (11, 1), (12, 2), (15, 3), (16, 4), (20, 5)] {
            m.observe(s, t);
        }
        assert_eq!(m.runs(), &[Run(10, 0, 3), Run(15, 3, 2), Run(20, 5, 1)]);
        assert_eq!(m.last(), Some((20, 5)));
        assert_eq!(m.records(), 6);
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            "[[10,0,3],[15,3,2],[20,5,1]]"
        );
        assert_eq!(m.check(10, 21), Ok(()));
        assert!(m.check(11, 21).is_err());
        assert!(m.check(10, 20).is_err());
    }

    #[test]
    fn translate_one_refuses_what_it_cannot_know() {
        let mut m = OffsetMap::default();
        for (s, t) in [(10, 100), (11, 101), (14, 102)] {
            m.observe(s, t);
        }
        let not_done = |c| translate_one(&m, (10, 20), Some(103), false, c);
        assert_eq!(not_done(9), Err(Untranslatable::BelowStart { start: 10 }));
        assert_eq!(not_done(10), Ok(100));
        assert_eq!(not_done(12), Ok(102));
        assert_eq!(not_done(15), Ok(103));
        assert_eq!(
            not_done(16),
            Err(Untranslatable::PastCopied {
                copied_to: 15,
                end: 20
            })
        );
        let done = |c| translate_one(&m, (10, 20), Some(103), true, c);
        assert_eq!(done(20), Ok(103));
        assert!(done(21).is_err());
        let empty = OffsetMap::default();
        assert_eq!(
            translate_one(&empty, (10, 20), None, false, 10),
            Err(Untranslatable::NotStarted)
        );
        assert_eq!(translate_one(&empty, (10, 20), Some(7), false, 10), Ok(7));
    }

    proptest! {
        /// The map answers exactly as the rule over the list of copied records, for every
        /// offset the copy covers, also after a save and load at any point.
        #[test]
        fn map_matches_the_rule(
            gaps in proptest::collection::vec(any::<bool>(), 0..120),
            target_base in 0i64..1000,
            split in 0usize..120,
        ) {
            let start = 20;
            let end = start + gaps.len() as i64;
            let copied: Vec<(i64, i64)> = gaps.iter().enumerate()
                .filter(|(_, g)| !**g)
                .enumerate()
                .map(|(k, (i, _))| (start + i as i64, target_base + k as i64))
                .collect();
            let split = split.min(copied.len());
            let mut m = OffsetMap::default();
            for (s, t) in &copied[..split] {
                m.observe(*s, *t);
            }
            let json = serde_json::to_string(&m).expect("serialize");
            let mut m: OffsetMap = serde_json::from_str(&json).expect("deserialize");
            for (s, t) in &copied[split..] {
                m.observe(*s, *t);
            }
            prop_assert_eq!(m.check(start, end), Ok(()));
            prop_assert_eq!(m.records() as usize, copied.len());
            // Runs: one more per gap between copied records, no more.
            let breaks = copied.windows(2).filter(|w| w[1].0 != w[0].0 + 1).count();
            prop_assert_eq!(m.runs().len(), if copied.is_empty() { 0 } else { breaks + 1 });
            let target_end = target_base + copied.len() as i64;
            for commit in start..=end {
                prop_assert_eq!(
                    translate_one(&m, (start, end), Some(target_end), true, commit),
                    Ok(translate(commit, &copied, target_end))
                );
            }
        }
    }

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
