//! The translate stage: after the copy, commit every group's offsets on the target so that
//! each group resumes exactly where it stopped on the source.
//!
//! Which offset each (group, partition) gets is decided by pure functions here and in
//! [`crate::offsets`]; the only I/O is reading the target's state and one
//! AlterConsumerGroupOffsets request per group.

use std::collections::{BTreeMap, BTreeSet};

use crate::kafka::Cluster;
pub use crate::ledger::{CommitOutcome, GroupOffsets};
use crate::ledger::{PartitionState, State};
use crate::plan::{Plan, SkipReason, Status, Tp};

/// The target offset of every (group, partition) the plan covers. Copied partitions use
/// the translation tracked during the copy; partitions with nothing to copy, but which the
/// group committed on the source, resume at the target's end (`target_ends`), so the group
/// does not fall back to its `auto.offset.reset`; a group already in `state.offsets` (refused
/// before) keeps the end recorded then. A shard's worker (`owned`: its indexes into
/// `plan.partitions`) commits only its own partitions: a group spread over shards gets each
/// part from the worker that owns it.
pub fn group_targets(
    plan: &Plan,
    state: &State,
    target_ends: &BTreeMap<Tp, i64>,
    owned: Option<&[usize]>,
) -> BTreeMap<String, BTreeMap<Tp, i64>> {
    let mut out: BTreeMap<String, BTreeMap<Tp, i64>> = BTreeMap::new();
    let copied: BTreeMap<Tp, &PartitionState> = state
        .partitions
        .iter()
        .map(|p| (Tp::new(&p.topic, p.partition), p))
        .collect();
    for (i, p) in plan.partitions.iter().enumerate() {
        if owned.is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        // Offsets are committed for the topic the records were copied to.
        let tp = p.target_tp();
        match (p.status, p.reason) {
            (Status::Migrate, _) => {
                if let Some(ps) = copied.get(&p.tp()) {
                    for (g, offset) in ps.translation.resolved() {
                        out.entry(g.clone())
                            .or_default()
                            .insert(tp.clone(), *offset);
                    }
                }
            }
            (_, Some(SkipReason::Filtered | SkipReason::Internal | SkipReason::Uncommitted)) => {}
            (Status::Skip, _) => {
                for g in p.committed.keys() {
                    // A group refused on an earlier attempt keeps the end read then: records
                    // written to the target since are new to it and must not be skipped.
                    let recorded = state
                        .offsets
                        .iter()
                        .find(|o| o.group == *g)
                        .and_then(|o| {
                            o.offsets
                                .iter()
                                .find(|(t, n, _)| *t == tp.topic && *n == tp.partition)
                        })
                        .map(|(_, _, o)| *o);
                    if let Some(end) = recorded.or_else(|| target_ends.get(&tp).copied()) {
                        out.entry(g.clone()).or_default().insert(tp.clone(), end);
                    }
                }
            }
        }
    }
    out
}

/// Partitions with nothing copied whose groups still need the target's end (by their
/// names on the target); of a shard's worker, only its own (`owned`, as in [`group_targets`]).
pub fn skipped_partitions_to_commit(plan: &Plan, owned: Option<&[usize]>) -> Vec<Tp> {
    plan.partitions
        .iter()
        .enumerate()
        .filter(|(i, _)| owned.is_none_or(|o| o.contains(i)))
        .map(|(_, p)| p)
        .filter(|p| {
            p.status == Status::Skip
                && matches!(
                    p.reason,
                    Some(SkipReason::NothingUnconsumed | SkipReason::Expired)
                )
                && !p.committed.is_empty()
        })
        .map(|p| p.target_tp())
        .collect()
}

/// Whether to write `translated` over the target's existing commit: never move a group
/// backwards (it would re-read records) unless forced.
pub fn should_commit(translated: i64, existing: Option<i64>, force: bool) -> bool {
    match existing {
        Some(e) if e > translated => force,
        _ => true,
    }
}

/// Commits each group's translated offsets on the target. Groups with members on the
/// target are refused; the others proceed. Returns one entry per group.
pub fn commit(
    target: &Cluster,
    targets: &BTreeMap<String, BTreeMap<Tp, i64>>,
    force: bool,
) -> anyhow::Result<Vec<GroupOffsets>> {
    let admin = target.admin()?;
    let names: Vec<&str> = targets.keys().map(String::as_str).collect();
    let live: BTreeMap<String, (String, Vec<String>)> = admin
        .group_members(&names)?
        .into_iter()
        .filter(|(_, g)| !g.state.is_inactive())
        .map(|(name, g)| {
            let hosts: BTreeSet<String> = g.members.iter().map(|m| m.host.clone()).collect();
            (name, (g.state.to_string(), hosts.into_iter().collect()))
        })
        .collect();
    let mut out = Vec::new();
    for (group, offsets) in targets {
        let list: Vec<(String, i32, i64)> = offsets
            .iter()
            .map(|(tp, o)| (tp.topic.clone(), tp.partition, *o))
            .collect();
        if let Some((state, hosts)) = live.get(group) {
            out.push(GroupOffsets {
                group: group.clone(),
                offsets: list,
                outcome: CommitOutcome::Refused(format!(
                    "the group is {state} on the target with members on {}: stop them, then run \
                     `kmigrate run` again to commit its offsets",
                    hosts.join(", ")
                )),
            });
            continue;
        }
        let existing = match admin.committed(group) {
            Ok(e) => e,
            Err(e) => {
                out.push(GroupOffsets {
                    group: group.clone(),
                    offsets: list,
                    outcome: CommitOutcome::Refused(format!(
                        "{e:#}; run `kmigrate run` again to retry"
                    )),
                });
                continue;
            }
        };
        let mut kept = Vec::new();
        let mut to_commit = Vec::new();
        for (topic, partition, offset) in &list {
            let tp = Tp::new(topic, *partition);
            let current = existing.get(&tp).copied();
            if should_commit(*offset, current, force) {
                to_commit.push((topic.clone(), *partition, *offset));
            } else {
                kept.push(format!(
                    "{tp} kept at {} (translated {offset})",
                    current.unwrap_or_default()
                ));
            }
        }
        // One group's failure (e.g. its consumers started between the check and the commit)
        // must not keep the others from their offsets: it is reported and retried by a rerun.
        let outcome = match admin.alter_group_offsets(group, &to_commit) {
            Err(e) => CommitOutcome::Refused(format!("{e:#}; run `kmigrate run` again to retry")),
            Ok(()) if kept.is_empty() => CommitOutcome::Committed,
            Ok(()) => CommitOutcome::KeptAhead(kept),
        };
        out.push(GroupOffsets {
            group: group.clone(),
            offsets: list,
            outcome,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FilterConfig, UncommittedPolicy};
    use crate::plan::compute::compute;
    use crate::plan::{GroupSnapshot, Snapshot, TopicInfo, Watermarks};

    #[test]
    fn never_backwards_unless_forced() {
        assert!(should_commit(10, None, false));
        assert!(should_commit(10, Some(5), false));
        assert!(should_commit(10, Some(10), false));
        assert!(!should_commit(10, Some(11), false));
        assert!(should_commit(10, Some(11), true));
    }

    /// The plan of [`snapshot`], groups' uncommitted partitions skipped.
    fn test_plan() -> Plan {
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

    fn snapshot() -> Snapshot {
        let mut s = Snapshot {
            all_groups: vec!["a".into(), "b".into()],
            groups: vec![
                GroupSnapshot {
                    name: "a".into(),
                    state: "Empty".into(),
                    commits: [(Tp::new("t", 0), 5), (Tp::new("t", 1), 9)]
                        .into_iter()
                        .collect(),
                    ..GroupSnapshot::default()
                },
                GroupSnapshot {
                    name: "b".into(),
                    state: "Empty".into(),
                    commits: [(Tp::new("t", 0), 7)].into_iter().collect(),
                    ..GroupSnapshot::default()
                },
            ],
            ..Snapshot::default()
        };
        let info = TopicInfo {
            partitions: 2,
            configs: BTreeMap::new(),
        };
        s.source_topics.insert("t".into(), info.clone());
        s.target_topics.insert("t".into(), info);
        s.source_offsets.insert(
            Tp::new("t", 0),
            Watermarks {
                low: 0,
                high: 10,
                stable: 10,
            },
        );
        s.source_offsets.insert(
            Tp::new("t", 1),
            Watermarks {
                low: 0,
                high: 9,
                stable: 9,
            },
        );
        s
    }

    #[test]
    fn copied_and_skipped_partitions_get_target_offsets() {
        let plan = test_plan();
        let mut state = State::new(&plan, 0);
        // t/0 copies source 5..10 to target 100..105; b (committed 7) resumes at 102.
        let ps = &mut state.partitions[0];
        for (i, src) in (5..10).enumerate() {
            ps.translation.observe(src, 100 + i as i64);
        }
        ps.translation.finish(105);
        // t/1 was fully consumed by a: nothing copied, a resumes at the target's end. b never
        // committed t/1 and the policy is `skip`, so b gets no offset there.
        let ends: BTreeMap<Tp, i64> = [(Tp::new("t", 1), 40)].into_iter().collect();
        assert_eq!(
            skipped_partitions_to_commit(&plan, None),
            vec![Tp::new("t", 1)]
        );
        let targets = group_targets(&plan, &state, &ends, None);
        assert_eq!(targets["a"][&Tp::new("t", 0)], 100);
        assert_eq!(targets["b"][&Tp::new("t", 0)], 102);
        assert_eq!(targets["a"][&Tp::new("t", 1)], 40);
        assert!(!targets["b"].contains_key(&Tp::new("t", 1)));

        // a was refused with t/1 at 40; by the rerun the target's end moved to 45: a keeps
        // 40 (the 5 new records are new to it), the copied partition is unchanged.
        state.offsets.push(GroupOffsets {
            group: "a".into(),
            offsets: vec![("t".into(), 0, 100), ("t".into(), 1, 40)],
            outcome: CommitOutcome::Refused("active".into()),
        });
        let ends: BTreeMap<Tp, i64> = [(Tp::new("t", 1), 45)].into_iter().collect();
        let targets = group_targets(&plan, &state, &ends, None);
        assert_eq!(targets["a"][&Tp::new("t", 1)], 40);
        assert_eq!(targets["a"][&Tp::new("t", 0)], 100);
    }

    #[test]
    fn renamed_topics_get_offsets_under_their_target_name() {
        let mut snap = snapshot();
        snap.renames.insert("t".into(), "t.v2".into());
        snap.target_topics.clear();
        snap.target_topics.insert(
            "t.v2".into(),
            TopicInfo {
                partitions: 2,
                configs: BTreeMap::new(),
            },
        );
        let plan = compute(
            &snap,
            &FilterConfig::default(),
            UncommittedPolicy::Skip,
            false,
            "s:1",
            "t:1",
            0,
        );
        let mut state = State::new(&plan, 0);
        assert_eq!(state.partitions[0].target_tp(), Tp::new("t.v2", 0));
        let ps = &mut state.partitions[0];
        for (i, src) in (5..10).enumerate() {
            ps.translation.observe(src, i as i64);
        }
        ps.translation.finish(5);
        assert_eq!(
            skipped_partitions_to_commit(&plan, None),
            vec![Tp::new("t.v2", 1)]
        );
        let ends: BTreeMap<Tp, i64> = [(Tp::new("t.v2", 1), 40)].into_iter().collect();
        let targets = group_targets(&plan, &state, &ends, None);
        assert_eq!(targets["a"][&Tp::new("t.v2", 0)], 0);
        assert_eq!(targets["b"][&Tp::new("t.v2", 0)], 2);
        assert_eq!(targets["a"][&Tp::new("t.v2", 1)], 40);
        assert!(
            targets
                .values()
                .all(|o| o.keys().all(|tp| tp.topic == "t.v2"))
        );

        // The fingerprint tells the mappings apart, and a state file of the other one is
        // refused.
        let plain = test_plan();
        assert_ne!(
            crate::ledger::plan_id(&plan),
            crate::ledger::plan_id(&plain)
        );
        let mut other = State::new(&plain, 0);
        other.plan = plan.clone();
        let bytes = serde_json::to_vec(&other).expect("json");
        assert!(State::parse(&bytes, "s.json").is_err());
    }

    #[test]
    fn state_files_written_before_renaming_still_load() {
        let plan = test_plan();
        let state = State::new(&plan, 0);
        let mut v = serde_json::to_value(&state).expect("value");
        for p in v["partitions"].as_array_mut().expect("partitions") {
            p.as_object_mut().expect("object").remove("target_topic");
        }
        for p in v["plan"]["partitions"]
            .as_array_mut()
            .expect("plan partitions")
        {
            p.as_object_mut().expect("object").remove("target_topic");
        }
        for t in v["plan"]["topics"].as_array_mut().expect("plan topics") {
            t.as_object_mut().expect("object").remove("target_topic");
        }
        let bytes = serde_json::to_vec(&v).expect("json");
        let back = State::parse(&bytes, "old.json").expect("an older state file loads");
        assert_eq!(back.plan_id, state.plan_id);
        assert_eq!(back.partitions[0].target_tp(), Tp::new("t", 0));
    }

    #[test]
    fn each_shard_commits_only_its_own_part_of_a_group() {
        let plan = test_plan();
        // t/0 is copied, t/1 skipped with a's commit: two shards, one partition each.
        let split = crate::copy::shard::shard_of(&plan, 2);
        assert_eq!(split.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
        let ends: BTreeMap<Tp, i64> = [(Tp::new("t", 1), 40)].into_iter().collect();
        let mut all: BTreeMap<String, BTreeMap<Tp, i64>> = BTreeMap::new();
        for (index, owned) in split.iter().enumerate() {
            let shard = crate::model::Shard {
                index: index as u32,
                count: 2,
            };
            let mut state = State::new_part(&plan, 0, Some((shard, owned.as_slice())));
            for ps in &mut state.partitions {
                for (i, src) in (5..10).enumerate() {
                    ps.translation.observe(src, 100 + i as i64);
                }
                ps.translation.finish(105);
            }
            let skipped = skipped_partitions_to_commit(&plan, Some(owned.as_slice()));
            let mine: BTreeMap<Tp, i64> = ends
                .iter()
                .filter(|(tp, _)| skipped.contains(tp))
                .map(|(tp, e)| (tp.clone(), *e))
                .collect();
            for (g, offsets) in group_targets(&plan, &state, &ends, Some(owned.as_slice())) {
                for (tp, o) in offsets {
                    assert!(all.entry(g.clone()).or_default().insert(tp, o).is_none());
                }
            }
            assert!(mine.len() <= 1);
            // Another shard's file is refused: the fingerprint names the shard.
            let mut other = state.clone();
            other.shard = Some(crate::model::Shard {
                index: 1 - index as u32,
                count: 2,
            });
            let bytes = serde_json::to_vec(&other).expect("json");
            assert!(State::parse(&bytes, "s.json").is_err());
            let bytes = serde_json::to_vec(&state).expect("json");
            assert_eq!(
                State::parse(&bytes, "s.json").expect("own file loads"),
                state
            );
        }
        // Together the shards commit exactly what one worker would.
        let mut whole = State::new(&plan, 0);
        let ps = &mut whole.partitions[0];
        for (i, src) in (5..10).enumerate() {
            ps.translation.observe(src, 100 + i as i64);
        }
        ps.translation.finish(105);
        assert_eq!(all, group_targets(&plan, &whole, &ends, None));
    }
}
