//! Which worker copies which partition when one plan is run by several workers
//! (`run --shard INDEX/COUNT`): a pure, deterministic split of the plan's partitions, so that
//! every worker, and a worker restarted on another machine, computes the same shares from
//! the same plan file without talking to the others.

use crate::copy::assign::balance;
use crate::model::Shard;
use crate::plan::{Plan, SkipReason, Status};

/// Whether a partition of the plan belongs to some shard: the copied ones, and the skipped
/// ones whose groups still get an offset committed on the target (the target's end), so that
/// exactly one worker commits each (group, partition).
pub fn is_sharded(p: &crate::plan::PartitionPlan) -> bool {
    match (p.status, p.reason) {
        (Status::Migrate, _) => true,
        (Status::Skip, Some(SkipReason::NothingUnconsumed | SkipReason::Expired)) => {
            !p.committed.is_empty()
        }
        (Status::Skip, _) => false,
    }
}

/// The indexes into `plan.partitions` of each of `count` shards (ascending in each). Shards
/// are balanced by offsets to copy (the measure the pipelines balance by), then by partition
/// count: a skipped partition weighs nothing but still goes to the shard with the fewest
/// partitions. The heaviest and the lightest shard differ by at most one partition's weight.
pub fn shard_of(plan: &Plan, count: u32) -> Vec<Vec<usize>> {
    let items: Vec<usize> = (0..plan.partitions.len())
        .filter(|i| is_sharded(&plan.partitions[*i]))
        .collect();
    let weights: Vec<u64> = items
        .iter()
        .map(|i| {
            let p = &plan.partitions[*i];
            if p.status == Status::Migrate {
                (p.end - p.start).max(0) as u64
            } else {
                0
            }
        })
        .collect();
    balance(&weights, count.max(1) as usize)
        .into_iter()
        .map(|bin| bin.into_iter().map(|k| items[k]).collect())
        .collect()
}

/// The plan partitions of one shard.
pub fn partitions_of(plan: &Plan, shard: Shard) -> Vec<usize> {
    shard_of(plan, shard.count)
        .into_iter()
        .nth(shard.index as usize)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UncommittedPolicy;
    use crate::plan::{PartitionPlan, Totals};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn part(i: usize, to_copy: i64, status: Status, reason: Option<SkipReason>) -> PartitionPlan {
        PartitionPlan {
            topic: format!("t{}", i % 3),
            target_topic: String::new(),
            partition: i as i32,
            low: 0,
            high: 100 + to_copy,
            stable: 100 + to_copy,
            start: 100,
            end: 100 + to_copy,
            to_migrate: to_copy,
            committed: [("g".to_string(), 100)].into_iter().collect(),
            uncommitted_groups: Vec::new(),
            lost: BTreeMap::new(),
            status,
            reason,
            target_low: Some(0),
            target_high: Some(0),
        }
    }

    fn plan(parts: Vec<PartitionPlan>) -> Plan {
        Plan {
            version: crate::plan::PLAN_VERSION,
            created_at_ms: 0,
            source: "s:1".into(),
            target: "t:1".into(),
            uncommitted_partitions: UncommittedPolicy::Skip,
            create_topics: false,
            partitions: parts,
            groups: Vec::new(),
            topics: Vec::new(),
            totals: Totals::default(),
            warnings: Vec::new(),
            problems: Vec::new(),
            live: false,
        }
    }

    /// (offsets to copy, kind): 0 migrate, 1 skipped with commits, 2 filtered.
    fn plan_of(spec: &[(i64, u8)]) -> Plan {
        plan(
            spec.iter()
                .enumerate()
                .map(|(i, (w, kind))| match kind {
                    0 => part(i, (*w).max(1), Status::Migrate, None),
                    1 => part(i, 0, Status::Skip, Some(SkipReason::NothingUnconsumed)),
                    _ => part(i, 0, Status::Skip, Some(SkipReason::Filtered)),
                })
                .collect(),
        )
    }

    #[test]
    fn skipped_partitions_with_commits_are_shared_out_too() {
        let p = plan_of(&[(10, 0), (0, 1), (0, 2), (10, 0), (0, 1)]);
        let split = shard_of(&p, 2);
        assert_eq!(split, vec![vec![0, 1], vec![3, 4]]);
        assert_eq!(partitions_of(&p, Shard { index: 1, count: 2 }), vec![3, 4]);
        // More shards than partitions: the rest are empty, and still well-defined.
        let split = shard_of(&p, 6);
        assert_eq!(split.len(), 6);
        assert_eq!(split.iter().filter(|s| s.is_empty()).count(), 2);
    }

    proptest! {
        #[test]
        fn every_partition_in_exactly_one_shard_balanced_and_stable(
            spec in proptest::collection::vec((0i64..1_000_000, 0u8..3), 0..200),
            count in 1u32..12,
        ) {
            let p = plan_of(&spec);
            let split = shard_of(&p, count);
            prop_assert_eq!(split.len(), count as usize);
            let mut seen = vec![0u32; p.partitions.len()];
            for shard in &split {
                for i in shard {
                    seen[*i] += 1;
                }
            }
            for (i, n) in seen.iter().enumerate() {
                let want = u32::from(is_sharded(&p.partitions[i]));
                prop_assert_eq!(*n, want, "partition {} in {} shards", i, n);
            }
            let weight = |i: &usize| {
                let q = &p.partitions[*i];
                if q.status == Status::Migrate { (q.end - q.start) as u64 } else { 0 }
            };
            let loads: Vec<u64> = split.iter().map(|s| s.iter().map(weight).sum()).collect();
            let heaviest = (0..p.partitions.len()).filter(|i| is_sharded(&p.partitions[*i]))
                .map(|i| weight(&i)).max().unwrap_or(0);
            let max = loads.iter().copied().max().unwrap_or(0);
            let min = loads.iter().copied().min().unwrap_or(0);
            prop_assert!(max - min <= heaviest, "loads {:?}, heaviest {}", loads, heaviest);
            // The same plan (e.g. a restarted worker reading the same file) gives the same
            // split, also after a round trip through the plan's JSON.
            prop_assert_eq!(&shard_of(&p, count), &split);
            let json = serde_json::to_vec(&p).expect("json");
            let back: Plan = serde_json::from_slice(&json).expect("plan");
            prop_assert_eq!(&shard_of(&back, count), &split);
            // With nothing to copy, shards differ by at most one partition.
            let zero = plan_of(&spec.iter().map(|(_, k)| (0, if *k == 0 { 1 } else { *k })).collect::<Vec<_>>());
            let sizes: Vec<usize> = shard_of(&zero, count).iter().map(Vec::len).collect();
            let (a, b) = (sizes.iter().max().copied().unwrap_or(0), sizes.iter().min().copied().unwrap_or(0));
            prop_assert!(a - b <= 1, "sizes {:?}", sizes);
        }
    }
}
