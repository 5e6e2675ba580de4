//! Records that arrived on the source after the plan: production had not stopped. The copy
//! covers the plan's ranges only, so a run that found such records must not report success.
//! Pure: the caller reads the source's watermarks.

use std::collections::{BTreeMap, BTreeSet};

use super::{Plan, SkipReason, Status, Tp, Watermarks};

/// Offsets that arrived after the plan in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Late {
    pub tp: Tp,
    /// The plan's high watermark and the one read now.
    pub planned: i64,
    pub now: i64,
}

impl Late {
    /// Offsets past the plan: an upper bound of records (transaction markers take offsets).
    pub fn offsets(&self) -> i64 {
        self.now - self.planned
    }
}

/// The partitions whose new records a consumer group would miss on the target: those the
/// plan copies, and those it skips because their groups had consumed everything (or what was
/// left expired). `owned`: a shard's indexes into `plan.partitions`.
pub fn watched(plan: &Plan, owned: Option<&BTreeSet<usize>>) -> Vec<(Tp, i64)> {
    plan.partitions
        .iter()
        .enumerate()
        .filter(|(i, _)| owned.is_none_or(|o| o.contains(i)))
        .map(|(_, p)| p)
        .filter(|p| is_watched(p.status, p.reason, !p.committed.is_empty()))
        .map(|p| (p.tp(), p.high))
        .collect()
}

/// Whether records arriving in a partition after the plan are missed on the target.
pub fn is_watched(status: Status, reason: Option<SkipReason>, has_commits: bool) -> bool {
    status == Status::Migrate
        || (matches!(
            reason,
            Some(SkipReason::NothingUnconsumed | SkipReason::Expired)
        ) && has_commits)
}

/// The watched partitions (with the plan's high watermark) whose high watermark moved on
/// since, in the order given.
pub fn arrived_after_plan(watched: &[(Tp, i64)], now: &BTreeMap<Tp, Watermarks>) -> Vec<Late> {
    watched
        .iter()
        .filter_map(|(tp, planned)| {
            let now = now.get(tp)?.high;
            (now > *planned).then(|| Late {
                tp: tp.clone(),
                planned: *planned,
                now,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partitions_a_group_reads_on_the_target_are_watched() {
        assert!(is_watched(Status::Migrate, None, true));
        assert!(is_watched(
            Status::Skip,
            Some(SkipReason::NothingUnconsumed),
            true
        ));
        assert!(is_watched(Status::Skip, Some(SkipReason::Expired), true));
        assert!(!is_watched(
            Status::Skip,
            Some(SkipReason::NothingUnconsumed),
            false
        ));
        assert!(!is_watched(Status::Skip, Some(SkipReason::Filtered), true));
        assert!(!is_watched(
            Status::Skip,
            Some(SkipReason::Uncommitted),
            false
        ));
    }

    #[test]
    fn partitions_that_grew_are_late() {
        let watched: Vec<(Tp, i64)> = (0..3).map(|p| (Tp::new("t", p), 10)).collect();
        let now: BTreeMap<Tp, Watermarks> = [(0, 17), (1, 10), (2, 11)]
            .into_iter()
            .map(|(p, high)| {
                (
                    Tp::new("t", p),
                    Watermarks {
                        low: 0,
                        high,
                        stable: high,
                    },
                )
            })
            .collect();
        let late = arrived_after_plan(&watched, &now);
        let got: Vec<(i32, i64)> = late.iter().map(|l| (l.tp.partition, l.offsets())).collect();
        assert_eq!(got, vec![(0, 7), (2, 1)]);
        // A partition the source no longer answers for is not reported here (plan checks
        // report it).
        assert!(arrived_after_plan(&watched, &BTreeMap::new()).is_empty());
    }
}
