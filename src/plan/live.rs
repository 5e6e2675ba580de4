//! Following a live source (`kmigrate sync`, `kmigrate cutover`): which partitions a live
//! plan copies, how a range's end moves with the source, and when the source has stopped
//! moving. Pure: the callers read the clusters.

use std::collections::BTreeMap;

use super::{Plan, SkipReason, Status, Tp, Watermarks};

/// Turns a plan into a live one: the partitions skipped because their groups had consumed
/// everything (or what was left expired) are migrated too, from an empty range at their end,
/// because new records arrive there while producers keep running. Partitions no group reads
/// (filtered, internal, uncommitted under `skip`) stay skipped.
pub fn follow(plan: &mut Plan) {
    plan.live = true;
    for p in &mut plan.partitions {
        let followed = p.status == Status::Skip
            && matches!(
                p.reason,
                Some(SkipReason::NothingUnconsumed | SkipReason::Expired)
            )
            && !p.committed.is_empty();
        if followed {
            p.status = Status::Migrate;
            p.reason = None;
            p.start = p.end;
            p.to_migrate = 0;
        }
    }
    plan.totals.partitions_to_migrate = plan
        .partitions
        .iter()
        .filter(|p| p.status == Status::Migrate)
        .count();
    for reason in [SkipReason::NothingUnconsumed, SkipReason::Expired] {
        plan.totals.skipped.remove(reason.as_str());
    }
}

/// A range end that moved: `tp` now ends at `to` instead of `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub tp: Tp,
    pub from: i64,
    pub to: i64,
}

/// The new end of a live range that ends at `end`, given the source's offsets now: the last
/// stable offset when it is past `end`; `None` when the range keeps its end. Ends never move
/// down (a source whose offsets went back is refused elsewhere, when its records are read).
pub fn extended_end(end: i64, now: &Watermarks) -> Option<i64> {
    (now.stable > end).then_some(now.stable)
}

/// Watches the source's offsets of a set of partitions and says for how long none of them
/// moved. Time is given by the caller (milliseconds), so the rule is testable.
#[derive(Debug, Clone)]
pub struct Quiet<V> {
    last: BTreeMap<Tp, V>,
    /// When the offsets last changed (or were first seen); `None` before the first reading.
    since_ms: Option<i64>,
    /// The partitions that moved at the last change.
    moving: Vec<Tp>,
}

impl<V> Default for Quiet<V> {
    fn default() -> Self {
        Quiet {
            last: BTreeMap::new(),
            since_ms: None,
            moving: Vec::new(),
        }
    }
}

impl<V: Clone + PartialEq> Quiet<V> {
    /// Records the offsets read at `now_ms`.
    pub fn observe(&mut self, now_ms: i64, offsets: &BTreeMap<Tp, V>) {
        if self.since_ms.is_none() {
            self.last = offsets.clone();
            self.since_ms = Some(now_ms);
            return;
        }
        let moving: Vec<Tp> = offsets
            .iter()
            .filter(|(tp, o)| self.last.get(*tp) != Some(*o))
            .map(|(tp, _)| tp.clone())
            .chain(
                self.last
                    .keys()
                    .filter(|tp| !offsets.contains_key(*tp))
                    .cloned(),
            )
            .collect();
        if !moving.is_empty() {
            self.moving = moving;
            self.since_ms = Some(now_ms);
            self.last = offsets.clone();
        }
    }

    /// Whether no offset moved for at least `quiet_ms` up to `now_ms`.
    pub fn quiet_for(&self, now_ms: i64, quiet_ms: i64) -> bool {
        self.since_ms.is_some_and(|t| now_ms - t >= quiet_ms)
    }

    /// The partitions that moved most recently.
    pub fn moving(&self) -> &[Tp] {
        &self.moving
    }

    /// The offsets last read.
    pub fn last(&self) -> &BTreeMap<Tp, V> {
        &self.last
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{FilterConfig, UncommittedPolicy};
    use crate::model::GroupState;
    use crate::plan::compute::compute;
    use crate::plan::{GroupSnapshot, Snapshot, TopicInfo};
    use proptest::prelude::*;

    fn w(stable: i64) -> Watermarks {
        Watermarks {
            low: 0,
            high: stable + 3,
            stable,
        }
    }

    #[test]
    fn ends_only_move_up_to_the_last_stable_offset() {
        assert_eq!(extended_end(10, &w(10)), None);
        assert_eq!(extended_end(10, &w(9)), None);
        assert_eq!(extended_end(10, &w(15)), Some(15));
    }

    /// One topic of three partitions: 0 has a backlog, 1 was consumed to the end, 2 had
    /// its unconsumed records expire; one group committed all three.
    fn snapshot() -> Snapshot {
        let mut snap = Snapshot::default();
        snap.source_topics.insert(
            "t".into(),
            TopicInfo {
                partitions: 3,
                configs: BTreeMap::new(),
            },
        );
        snap.target_topics = snap.source_topics.clone();
        for (p, low, high) in [(0, 0, 50), (1, 0, 40), (2, 30, 30)] {
            let tp = Tp::new("t", p);
            snap.source_offsets.insert(
                tp.clone(),
                Watermarks {
                    low,
                    high,
                    stable: high,
                },
            );
            snap.target_offsets.insert(tp, (0, 0));
        }
        let commits = [(0, 20), (1, 40), (2, 10)]
            .into_iter()
            .map(|(p, c)| (Tp::new("t", p), c))
            .collect();
        snap.groups.push(GroupSnapshot {
            name: "g".into(),
            state: GroupState::Empty,
            members: Vec::new(),
            commits,
            assigned_topics: Default::default(),
        });
        snap.all_groups = vec!["g".into()];
        snap
    }

    /// The plan of [`snapshot`], as `run` makes it.
    pub(crate) fn fixed_plan() -> Plan {
        compute(
            &snapshot(),
            &FilterConfig::default(),
            UncommittedPolicy::Skip,
            false,
            "s:1",
            "t:1",
            0,
        )
    }

    /// The live plan of [`snapshot`].
    pub(crate) fn live_plan() -> Plan {
        let mut plan = fixed_plan();
        follow(&mut plan);
        plan
    }

    #[test]
    fn a_live_plan_follows_partitions_consumed_to_the_end() {
        let mut plan = fixed_plan();
        assert_eq!(plan.totals.partitions_to_migrate, 1);
        follow(&mut plan);
        let ranges: Vec<(i32, Status, i64, i64)> = plan
            .partitions
            .iter()
            .map(|p| (p.partition, p.status, p.start, p.end))
            .collect();
        assert_eq!(
            ranges,
            vec![
                (0, Status::Migrate, 20, 50),
                (1, Status::Migrate, 40, 40),
                (2, Status::Migrate, 30, 30),
            ]
        );
        assert_eq!(plan.totals.partitions_to_migrate, 3);
        assert_eq!(plan.check(), Ok(()));
        // Empty migrated ranges are refused in a fixed plan.
        let mut fixed = plan.clone();
        fixed.live = false;
        assert!(fixed.check().is_err());
    }

    fn offsets(v: &[i64]) -> BTreeMap<Tp, i64> {
        v.iter()
            .enumerate()
            .map(|(p, o)| (Tp::new("t", p as i32), *o))
            .collect()
    }

    #[test]
    fn quiet_once_nothing_moved_for_the_window() {
        let mut q = Quiet::default();
        q.observe(1_000, &offsets(&[5, 7]));
        assert!(!q.quiet_for(2_999, 2_000));
        assert!(q.quiet_for(3_000, 2_000));
        q.observe(3_500, &offsets(&[5, 8]));
        assert_eq!(q.moving(), &[Tp::new("t", 1)]);
        assert!(!q.quiet_for(5_000, 2_000));
        q.observe(5_000, &offsets(&[5, 8]));
        assert!(q.quiet_for(5_500, 2_000));
        // A partition that disappears counts as moving.
        q.observe(6_000, &offsets(&[5]));
        assert_eq!(q.moving(), &[Tp::new("t", 1)]);
        assert!(!q.quiet_for(7_000, 2_000));
    }

    proptest! {
        /// Quiet for the window exactly when the last change is at least the window ago.
        #[test]
        fn quiet_matches_the_last_change(
            steps in proptest::collection::vec((1i64..800, 0i64..3), 1..40),
            window in 1i64..3_000,
        ) {
            let mut q = Quiet::default();
            let mut now = 1_000;
            let mut value = 0;
            let mut changed_at = now;
            q.observe(now, &offsets(&[value]));
            for (dt, delta) in steps {
                now += dt;
                if delta != 0 {
                    value += delta;
                    changed_at = now;
                }
                q.observe(now, &offsets(&[value]));
                prop_assert_eq!(q.quiet_for(now, window), now - changed_at >= window);
            }
        }
    }
}
