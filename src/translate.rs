//! The translate stage: after the copy, commit every group's offsets on the target so that
//! each group resumes exactly where it stopped on the source.
//!
//! Which offset each (group, partition) gets is decided by pure functions here and in
//! [`crate::offsets`]; the only I/O is reading the target's state and one
//! AlterConsumerGroupOffsets request per group.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::kafka::{Admin, Cluster};
pub use crate::ledger::{CommitOutcome, GroupOffsets};
use crate::ledger::{PartitionState, State};
use crate::plan::{PartitionPlan, Plan, SkipReason, Status, Tp};

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
    owned: Option<&BTreeSet<usize>>,
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

/// Where each planned group resumes on the target at a cutover, from its final commits on
/// the source (`finals`: group -> source partition -> committed offset), through each copied
/// partition's offset map: the first copied record at or after the commit, or the copy's
/// end past the last one; a commit below the copy's start resolves to the first copied
/// record. A group that never committed a partition gets the first copied record under
/// `uncommitted_partitions = "earliest"`, nothing otherwise. Offsets are keyed by the target
/// partition. Errs with every (group, partition) that cannot be translated, and why.
pub fn final_targets(
    state: &State,
    finals: &BTreeMap<String, BTreeMap<Tp, i64>>,
) -> Result<BTreeMap<String, BTreeMap<Tp, i64>>, Vec<String>> {
    let mut out: BTreeMap<String, BTreeMap<Tp, i64>> = BTreeMap::new();
    let mut problems = Vec::new();
    let commits_at = final_commits_by_partition(state, finals);
    for ps in &state.partitions {
        let Some(commits) = commits_at.get(&(ps.topic.as_str(), ps.partition)) else {
            continue;
        };
        let tp = Tp::new(&ps.topic, ps.partition);
        let target_tp = ps.target_tp();
        for &(g, commit) in commits {
            match crate::offsets::translate_one(
                &ps.map,
                (ps.start, ps.end),
                ps.next_target(),
                ps.progress.done,
                commit.max(ps.start),
            ) {
                Ok(t) => {
                    let group = match out.get_mut(g) {
                        Some(group) => group,
                        None => out.entry(g.to_string()).or_default(),
                    };
                    group.insert(target_tp.clone(), t);
                }
                Err(why) => problems.push(format!("group {g} at {tp} offset {commit}: {why}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Per copied partition, the commit each planned group resumes from, in the plan's order
/// of groups: its final commit (`finals`), or, for a group that never committed the
/// partition, the copy's start under `uncommitted_partitions = "earliest"`. One pass over
/// the commits, rather than a look-up of every group in every partition (a million at
/// 5,000 partitions and 200 groups). Keyed by (topic, partition).
fn final_commits_by_partition<'a>(
    state: &'a State,
    finals: &'a BTreeMap<String, BTreeMap<Tp, i64>>,
) -> HashMap<(&'a str, i32), Vec<(&'a str, i64)>> {
    let order: HashMap<&str, usize> = state
        .plan
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.group.as_str(), i))
        .collect();
    let mut at: HashMap<(&str, i32), Vec<(usize, i64)>> = HashMap::new();
    for (g, commits) in finals {
        let Some(&i) = order.get(g.as_str()) else {
            continue;
        };
        for (tp, commit) in commits {
            let key = (tp.topic.as_str(), tp.partition);
            at.entry(key).or_default().push((i, *commit));
        }
    }
    if state.plan.uncommitted_partitions == crate::config::UncommittedPolicy::Earliest {
        let starts: HashMap<(&str, i32), i64> = state
            .partitions
            .iter()
            .map(|ps| ((ps.topic.as_str(), ps.partition), ps.start))
            .collect();
        for p in &state.plan.partitions {
            let key = (p.topic.as_str(), p.partition);
            let Some(&start) = starts.get(&key) else {
                continue;
            };
            let commits = at.entry(key).or_default();
            for g in &p.uncommitted_groups {
                let Some(&i) = order.get(g.as_str()) else {
                    continue;
                };
                if !commits.iter().any(|(j, _)| *j == i) {
                    commits.push((i, start));
                }
            }
        }
    }
    at.into_iter()
        .map(|(tp, mut commits)| {
            commits.sort_unstable();
            let named = commits
                .into_iter()
                .map(|(i, c)| (state.plan.groups[i].group.as_str(), c))
                .collect();
            (tp, named)
        })
        .collect()
}

/// A group's commit read after a `run`'s copy that lies past what was copied: it consumed
/// records that arrived on the source after the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastCopy {
    pub group: String,
    pub tp: Tp,
    pub commit: i64,
    /// The source offset the copy ends at.
    pub end: i64,
}

/// After a `run`'s copy: in `targets` (from the commits the plan read), the offset of
/// every copied partition whose group committed elsewhere since the plan (`finals`, read
/// after the copy) is replaced by the translation of that commit through the partition's
/// offset map: a group that kept consuming during the copy resumes after what it consumed,
/// not before. A commit past the copy resumes at the copy's end (returned, to be named);
/// partitions whose offset map is incomplete (state files older than the map) keep the
/// plan's translation. Of a shard, only its own partitions (`state.partitions`) change.
pub fn apply_final_commits(
    state: &State,
    targets: &mut BTreeMap<String, BTreeMap<Tp, i64>>,
    finals: &BTreeMap<String, BTreeMap<Tp, i64>>,
) -> Vec<PastCopy> {
    let mut past = Vec::new();
    let planned_at = planned_partitions(&state.plan);
    for ps in &state.partitions {
        let tp = Tp::new(&ps.topic, ps.partition);
        let complete = ps.map.records() == ps.progress.written;
        let Some(planned) = planned_at.get(&tp) else {
            continue;
        };
        for (g, commits) in finals {
            let Some(&commit) = commits.get(&tp) else {
                continue;
            };
            if !complete || planned.committed.get(g) == Some(&commit) {
                continue;
            }
            let translated = crate::offsets::translate_one(
                &ps.map,
                (ps.start, ps.end),
                ps.next_target(),
                ps.progress.done,
                commit.max(ps.start),
            );
            let offset = match translated {
                Ok(t) => Some(t),
                Err(crate::offsets::Untranslatable::PastCopied { .. }) => {
                    past.push(PastCopy {
                        group: g.clone(),
                        tp: tp.clone(),
                        commit,
                        end: ps.end,
                    });
                    ps.next_target()
                }
                Err(_) => None,
            };
            if let Some(t) = offset {
                targets
                    .entry(g.clone())
                    .or_default()
                    .insert(ps.target_tp(), t);
            }
        }
    }
    past
}

/// The plan's partitions by source partition (looked up once per copied partition).
fn planned_partitions(plan: &Plan) -> BTreeMap<Tp, &PartitionPlan> {
    plan.partitions.iter().map(|p| (p.tp(), p)).collect()
}

/// The (group, source partition) of final commits that the copy does not cover although
/// the plan considered the partition: partitions no group had committed when the sync was
/// planned, under `uncommitted_partitions = "skip"`. Their records are not on the target.
pub fn uncovered_commits(
    state: &State,
    finals: &BTreeMap<String, BTreeMap<Tp, i64>>,
) -> Vec<(String, Tp)> {
    // Considered and not copied; looked up by (topic, partition) for every final commit.
    let copied: HashSet<(&str, i32)> = state
        .partitions
        .iter()
        .map(|p| (p.topic.as_str(), p.partition))
        .collect();
    let uncovered: HashSet<(&str, i32)> = state
        .plan
        .partitions
        .iter()
        .filter(|p| !p.left_out())
        .map(|p| (p.topic.as_str(), p.partition))
        .filter(|tp| !copied.contains(tp))
        .collect();
    finals
        .iter()
        .flat_map(|(g, commits)| commits.keys().map(move |tp| (g, tp)))
        .filter(|(_, tp)| uncovered.contains(&(tp.topic.as_str(), tp.partition)))
        .map(|(g, tp)| (g.clone(), tp.clone()))
        .collect()
}

/// Partitions with nothing copied whose groups still need the target's end (by their
/// names on the target); of a shard's worker, only its own (`owned`, as in [`group_targets`]).
pub fn skipped_partitions_to_commit(plan: &Plan, owned: Option<&BTreeSet<usize>>) -> Vec<Tp> {
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

/// A rerun only retries the groups refused before: drops from `targets` every group
/// `recorded` says was committed (or kept ahead) already.
pub fn drop_done(targets: &mut BTreeMap<String, BTreeMap<Tp, i64>>, recorded: &[GroupOffsets]) {
    for done in recorded.iter().filter(|g| g.outcome.is_done()) {
        targets.remove(&done.group);
    }
}

/// Whether to write `translated` over the target's existing commit: never move a group
/// backwards (it would re-read records) unless forced.
pub fn should_commit(translated: i64, existing: Option<i64>, force: bool) -> bool {
    match existing {
        Some(e) if e > translated => force,
        _ => true,
    }
}

/// The groups that have members on the target, with their state and hosts: their offsets
/// are not committed (the broker would refuse them too; this says why and where).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveOnTarget(BTreeMap<String, (String, Vec<String>)>);

/// Describes `groups` on the target: which of them have members there.
pub fn live_on_target(target: &Cluster, groups: &[&str]) -> anyhow::Result<LiveOnTarget> {
    let live = target
        .admin()?
        .group_members(groups)?
        .into_iter()
        .filter(|(_, g)| !g.state.is_inactive())
        .map(|(name, g)| {
            let hosts: BTreeSet<String> = g.members.iter().map(|m| m.host.clone()).collect();
            (name, (g.state.to_string(), hosts.into_iter().collect()))
        })
        .collect();
    tracing::debug!("groups described on the target");
    Ok(LiveOnTarget(live))
}

/// Commits each group's translated offsets on the target. Groups with members on the
/// target (`live`, described just before) are refused; the others proceed, a few at a
/// time ([`Admin::each`]). Returns one entry per group, in the order of `targets`. `rerun`
/// is the command a refused group's message says to run again (e.g. "kmigrate run").
pub fn commit(
    target: &Cluster,
    targets: &BTreeMap<String, BTreeMap<Tp, i64>>,
    live: &LiveOnTarget,
    force: bool,
    rerun: &str,
) -> anyhow::Result<Vec<GroupOffsets>> {
    let admin = target.admin()?;
    let groups: Vec<(usize, &String, &BTreeMap<Tp, i64>)> = targets
        .iter()
        .enumerate()
        .map(|(i, (group, offsets))| (i, group, offsets))
        .collect();
    // Each group's line is said as soon as it and every group before it are committed:
    // in the groups' order, whichever finished first.
    let said = std::sync::Mutex::new(InOrder::new(groups.len()));
    let done = admin.each(
        "committing offsets of groups",
        &groups,
        |session, (i, group, offsets)| {
            let how = GroupCommit {
                live: live.0.get(*group),
                force,
                rerun,
            };
            let (entry, committed) = commit_group(session, group, offsets, &how);
            if let Ok(mut said) = said.lock() {
                for (_, (g, n)) in said.done(*i, (group.as_str(), committed)) {
                    if let Some(n) = n {
                        tracing::info!(
                            "committed offsets of group {g} on {n} partition(s) of the target"
                        );
                    }
                }
            }
            entry
        },
    )?;
    Ok(done)
}

/// Releases results given in any order in the order of their indexes: each one once it and
/// every one before it are in.
#[derive(Debug)]
struct InOrder<T> {
    next: usize,
    waiting: Vec<Option<T>>,
}

impl<T> InOrder<T> {
    fn new(len: usize) -> InOrder<T> {
        InOrder {
            next: 0,
            waiting: std::iter::repeat_with(|| None).take(len).collect(),
        }
    }

    /// Result `i` is in: the results now released, in order, with their indexes.
    fn done(&mut self, i: usize, value: T) -> Vec<(usize, T)> {
        if let Some(slot) = self.waiting.get_mut(i) {
            *slot = Some(value);
        }
        let mut out = Vec::new();
        while let Some(value) = self.waiting.get_mut(self.next).and_then(Option::take) {
            out.push((self.next, value));
            self.next += 1;
        }
        out
    }
}

/// What decides one group's commit besides its offsets.
struct GroupCommit<'a> {
    /// The group's state and hosts on the target when it has members there.
    live: Option<&'a (String, Vec<String>)>,
    force: bool,
    rerun: &'a str,
}

/// Commits one group's offsets on the target, unless it has members there: moving none of
/// its offsets backwards (unless forced). Returns its entry, and how many partitions were
/// committed (`None` when it was refused). One group's failure (e.g. its consumers started
/// between the check and the commit) must not keep the others from their offsets: it is
/// reported and retried by a rerun.
fn commit_group(
    admin: &Admin,
    group: &str,
    offsets: &BTreeMap<Tp, i64>,
    how: &GroupCommit,
) -> (GroupOffsets, Option<usize>) {
    let list: Vec<(String, i32, i64)> = offsets
        .iter()
        .map(|(tp, o)| (tp.topic.clone(), tp.partition, *o))
        .collect();
    let (outcome, committed) = match how.live {
        Some((state, hosts)) => (
            CommitOutcome::Refused(format!(
                "the group is {state} on the target with members on {}: stop them, then run \
                 `{}` again to commit its offsets",
                hosts.join(", "),
                how.rerun
            )),
            None,
        ),
        None => match commit_offsets(admin, group, offsets, how.force) {
            Ok((n, kept)) if kept.is_empty() => (CommitOutcome::Committed, Some(n)),
            Ok((n, kept)) => (CommitOutcome::KeptAhead(kept), Some(n)),
            Err(e) => (
                CommitOutcome::Refused(format!("{e:#}; run `{}` again to retry", how.rerun)),
                None,
            ),
        },
    };
    let entry = GroupOffsets {
        group: group.to_string(),
        offsets: list,
        outcome,
    };
    (entry, committed)
}

/// Reads a group's commits on the target and commits its translated `offsets` over them,
/// none moved backwards unless `force`: how many partitions were committed, and a line
/// for each one kept ahead.
fn commit_offsets(
    admin: &Admin,
    group: &str,
    offsets: &BTreeMap<Tp, i64>,
    force: bool,
) -> anyhow::Result<(usize, Vec<String>)> {
    let existing = admin.committed(group)?;
    let (to_commit, kept) = ahead_kept(offsets, &existing, force);
    admin.alter_group_offsets(group, &to_commit)?;
    Ok((to_commit.len(), kept))
}

/// Of a group's translated `offsets`, those to commit over its `existing` commits on the
/// target (see [`should_commit`]), and a line for each one kept ahead.
fn ahead_kept(
    offsets: &BTreeMap<Tp, i64>,
    existing: &BTreeMap<Tp, i64>,
    force: bool,
) -> (Vec<(String, i32, i64)>, Vec<String>) {
    let mut kept = Vec::new();
    let mut to_commit = Vec::new();
    for (tp, offset) in offsets {
        let current = existing.get(tp).copied();
        if should_commit(*offset, current, force) {
            to_commit.push((tp.topic.clone(), tp.partition, *offset));
        } else {
            kept.push(format!(
                "{tp} kept at {} (translated {offset})",
                current.unwrap_or_default()
            ));
        }
    }
    (to_commit, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UncommittedPolicy;
    use crate::plan::compute::{Rules, compute};
    use crate::plan::{GroupSnapshot, Snapshot, TopicInfo, Watermarks};

    /// A live state of [`crate::plan::live`]'s plan with partition 0 ([20, 50)) copied to
    /// target 100.. except the records `gaps` marks, and partition 1 ([40, 40)) extended to
    /// `[40, 44)` and copied to target 7.. whole.
    fn copied_live_state(gaps: &[bool]) -> (State, Vec<(i64, i64)>) {
        let plan = crate::plan::live::tests::live_plan();
        let mut state = State::new(&plan, 0);
        let now: BTreeMap<Tp, crate::model::Ends> = [(1, 44)]
            .into_iter()
            .map(|(p, s)| {
                let w = crate::model::Ends { high: s, stable: s };
                (Tp::new("t", p), w)
            })
            .collect();
        state.extend(&now);
        let copied: Vec<(i64, i64)> = (20..50)
            .filter(|o| !gaps.get((o - 20) as usize).copied().unwrap_or(false))
            .enumerate()
            .map(|(k, o)| (o, 100 + k as i64))
            .collect();
        let fill = |ps: &mut PartitionState, base: i64, records: &[(i64, i64)]| {
            ps.progress.base = Some(base);
            for (s, t) in records {
                ps.map.observe(*s, *t);
                ps.progress.acked = Some((*s, *t));
                ps.progress.written += 1;
            }
            ps.progress.done = true;
        };
        fill(&mut state.partitions[0], 100, &copied);
        let one: Vec<(i64, i64)> = (40..44).map(|o| (o, o - 33)).collect();
        fill(&mut state.partitions[1], 7, &one);
        fill(&mut state.partitions[2], 0, &[]);
        (state, copied)
    }

    fn finals(commits: &[(i32, i64)]) -> BTreeMap<String, BTreeMap<Tp, i64>> {
        let c = commits
            .iter()
            .map(|(p, o)| (Tp::new("t", *p), *o))
            .collect();
        [("g".to_string(), c)].into_iter().collect()
    }

    #[test]
    fn final_commits_resume_at_the_first_record_not_consumed() {
        let (state, _) = copied_live_state(&[]);
        let got = final_targets(&state, &finals(&[(0, 35), (1, 42), (2, 30)])).expect("ok");
        let want: BTreeMap<Tp, i64> = [(0, 115), (1, 9), (2, 0)]
            .into_iter()
            .map(|(p, o)| (Tp::new("t", p), o))
            .collect();
        assert_eq!(got["g"], want);
        // Consumed everything: the copy's end; below the start: the first copied record.
        let got = final_targets(&state, &finals(&[(0, 50), (1, 3)])).expect("ok");
        assert_eq!(got["g"][&Tp::new("t", 0)], 130);
        assert_eq!(got["g"][&Tp::new("t", 1)], 7);
        // Past what was copied (a commit above the last stable offset): refused, named.
        let err = final_targets(&state, &finals(&[(1, 45)])).expect_err("past the end");
        assert!(err[0].contains("group g at t/1 offset 45"), "{err:?}");
        // A group without commits gets nothing (policy `skip`).
        assert!(
            final_targets(&state, &BTreeMap::new())
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn a_runs_groups_resume_after_what_they_consumed_during_the_copy() {
        let (mut state, _) = copied_live_state(&[]);
        state.plan.live = false;
        // The plan read g at 20 on t/0 and 40 on t/1; the copy translated those.
        let planned: BTreeMap<Tp, i64> = [(0, 100), (1, 7)]
            .into_iter()
            .map(|(p, o)| (Tp::new("t", p), o))
            .collect();
        let fresh = || [("g".to_string(), planned.clone())].into_iter().collect();
        let mut targets: BTreeMap<String, BTreeMap<Tp, i64>> = fresh();
        // Unchanged commits: unchanged offsets.
        let past = apply_final_commits(&state, &mut targets, &finals(&[(0, 20), (1, 40)]));
        assert!(past.is_empty());
        assert_eq!(targets, fresh());
        // Consumed on during the copy: translated through the map.
        let past = apply_final_commits(&state, &mut targets, &finals(&[(0, 35), (1, 42)]));
        assert!(past.is_empty());
        assert_eq!(targets["g"][&Tp::new("t", 0)], 115);
        assert_eq!(targets["g"][&Tp::new("t", 1)], 9);
        // Past the copy (records that arrived after the plan): the copy's end, named.
        let mut targets = fresh();
        let past = apply_final_commits(&state, &mut targets, &finals(&[(1, 45)]));
        assert_eq!(
            past,
            vec![PastCopy {
                group: "g".into(),
                tp: Tp::new("t", 1),
                commit: 45,
                end: 44
            }]
        );
        assert_eq!(targets["g"][&Tp::new("t", 1)], 11);
        // An incomplete offset map (older state files) keeps the plan's translation.
        let mut targets = fresh();
        state.partitions[0].map = crate::offsets::OffsetMap::default();
        apply_final_commits(&state, &mut targets, &finals(&[(0, 35)]));
        assert_eq!(targets, fresh());
    }

    #[test]
    fn final_commits_outside_the_copy_are_named() {
        let (mut state, _) = copied_live_state(&[]);
        // t/2 as if no group had committed it at the plan (`skip`): not copied.
        state.partitions.pop();
        state.plan.partitions[2].status = crate::plan::Status::Skip;
        state.plan.partitions[2].reason = Some(SkipReason::Uncommitted);
        state.plan.partitions[2].committed.clear();
        let mut f = finals(&[(0, 35), (2, 31)]);
        f.get_mut("g")
            .expect("g")
            .insert(Tp::new("other-topic", 0), 5);
        assert_eq!(
            uncovered_commits(&state, &f),
            vec![("g".to_string(), Tp::new("t", 2))]
        );
    }

    proptest::proptest! {
        /// The final translation is the rule over the list of copied records.
        #[test]
        fn final_commits_follow_the_rule(
            gaps in proptest::collection::vec(proptest::prelude::any::<bool>(), 30),
            commit in 0i64..60,
        ) {
            let (state, copied) = copied_live_state(&gaps);
            let end = 100 + copied.len() as i64;
            let c = commit.min(50);
            let got = final_targets(&state, &finals(&[(0, c)])).expect("translates");
            proptest::prop_assert_eq!(
                got["g"][&Tp::new("t", 0)],
                crate::offsets::translate(c, &copied, end)
            );
        }
    }

    #[test]
    fn never_backwards_unless_forced() {
        assert!(should_commit(10, None, false));
        assert!(should_commit(10, Some(5), false));
        assert!(should_commit(10, Some(10), false));
        assert!(!should_commit(10, Some(11), false));
        assert!(should_commit(10, Some(11), true));
    }

    #[test]
    fn results_are_released_in_order_as_soon_as_their_turn_comes() {
        let mut in_order = InOrder::new(4);
        assert!(in_order.done(2, "c").is_empty());
        assert!(in_order.done(1, "b").is_empty());
        assert_eq!(in_order.done(0, "a"), vec![(0, "a"), (1, "b"), (2, "c")]);
        assert_eq!(in_order.done(3, "d"), vec![(3, "d")]);
        // Out of range: nothing (and nothing lost of what was released).
        assert!(in_order.done(9, "z").is_empty());
        let mut first = InOrder::new(2);
        assert_eq!(first.done(0, 1), vec![(0, 1)]);
        assert_eq!(first.done(1, 2), vec![(1, 2)]);
    }

    #[test]
    fn commits_over_the_targets_keep_those_ahead_and_name_them() {
        let offsets: BTreeMap<Tp, i64> = [(0, 10), (1, 20), (2, 30)]
            .into_iter()
            .map(|(p, o)| (Tp::new("t", p), o))
            .collect();
        let existing: BTreeMap<Tp, i64> = [(0, 4), (1, 25)]
            .into_iter()
            .map(|(p, o)| (Tp::new("t", p), o))
            .collect();
        let (to_commit, kept) = ahead_kept(&offsets, &existing, false);
        let t = |p, o| ("t".to_string(), p, o);
        assert_eq!(to_commit, vec![t(0, 10), t(2, 30)]);
        assert_eq!(kept, vec!["t/1 kept at 25 (translated 20)".to_string()]);
        let (to_commit, kept) = ahead_kept(&offsets, &existing, true);
        assert_eq!(to_commit, vec![t(0, 10), t(1, 20), t(2, 30)]);
        assert!(kept.is_empty());
    }

    /// [`final_targets`] as its rule reads: every copied partition, every planned group,
    /// its final commit or (under "earliest", for a group that never committed it) the
    /// copy's start.
    fn final_targets_by_the_rule(
        state: &State,
        finals: &BTreeMap<String, BTreeMap<Tp, i64>>,
    ) -> Result<BTreeMap<String, BTreeMap<Tp, i64>>, Vec<String>> {
        let mut out: BTreeMap<String, BTreeMap<Tp, i64>> = BTreeMap::new();
        let mut problems = Vec::new();
        let earliest = state.plan.uncommitted_partitions == UncommittedPolicy::Earliest;
        for ps in &state.partitions {
            let tp = Tp::new(&ps.topic, ps.partition);
            let planned = state.plan.partitions.iter().find(|p| p.tp() == tp);
            for group in &state.plan.groups {
                let g = &group.group;
                let commit = finals.get(g).and_then(|c| c.get(&tp)).copied().or_else(|| {
                    planned
                        .filter(|p| earliest && p.uncommitted_groups.contains(g))
                        .map(|_| ps.start)
                });
                let Some(commit) = commit else { continue };
                match crate::offsets::translate_one(
                    &ps.map,
                    (ps.start, ps.end),
                    ps.next_target(),
                    ps.progress.done,
                    commit.max(ps.start),
                ) {
                    Ok(t) => {
                        out.entry(g.clone()).or_default().insert(ps.target_tp(), t);
                    }
                    Err(why) => problems.push(format!("group {g} at {tp} offset {commit}: {why}")),
                }
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    proptest::proptest! {
        /// Many groups, each with or without a final commit on each partition (some past
        /// the copy, some of groups the plan does not have), some consuming a partition
        /// they never committed: the same offsets, and the same problems in the same
        /// order, as the rule over every (partition, group).
        #[test]
        fn final_targets_are_the_rule_over_every_partition_and_group(
            commits in proptest::collection::vec(
                proptest::collection::vec(proptest::option::of(0i64..60), 3),
                1..6,
            ),
            uncommitted in proptest::collection::vec(proptest::collection::vec(0usize..6, 0..4), 3),
            earliest in proptest::prelude::any::<bool>(),
            stranger in proptest::option::of(0i64..60),
        ) {
            let (mut state, _) = copied_live_state(&[]);
            let template = state.plan.groups[0].clone();
            let names: Vec<String> = (0..commits.len()).map(|i| format!("g{i}")).collect();
            state.plan.groups = names
                .iter()
                .rev()
                .map(|n| crate::plan::GroupPlan { group: n.clone(), ..template.clone() })
                .collect();
            state.plan.uncommitted_partitions = if earliest {
                UncommittedPolicy::Earliest
            } else {
                UncommittedPolicy::Skip
            };
            for (p, groups) in state.plan.partitions.iter_mut().zip(&uncommitted) {
                p.uncommitted_groups = groups
                    .iter()
                    .filter_map(|i| names.get(*i).cloned())
                    .collect();
            }
            let mut finals: BTreeMap<String, BTreeMap<Tp, i64>> = BTreeMap::new();
            for (name, theirs) in names.iter().zip(&commits) {
                let c = finals.entry(name.clone()).or_default();
                for (p, commit) in theirs.iter().enumerate() {
                    if let Some(o) = commit {
                        c.insert(Tp::new("t", p as i32), *o);
                    }
                }
            }
            if let Some(o) = stranger {
                finals.entry("not-planned".into()).or_default().insert(Tp::new("t", 0), o);
            }
            proptest::prop_assert_eq!(
                final_targets(&state, &finals),
                final_targets_by_the_rule(&state, &finals)
            );
        }
    }

    /// The plan of [`snapshot`], groups' uncommitted partitions skipped.
    fn test_plan() -> Plan {
        compute(&snapshot(), &Rules::test(UncommittedPolicy::Skip, false), 0)
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
        let plan = compute(&snap, &Rules::test(UncommittedPolicy::Skip, false), 0);
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
            let owned_set: BTreeSet<usize> = owned.iter().copied().collect();
            for ps in &mut state.partitions {
                for (i, src) in (5..10).enumerate() {
                    ps.translation.observe(src, 100 + i as i64);
                }
                ps.translation.finish(105);
            }
            let skipped = skipped_partitions_to_commit(&plan, Some(&owned_set));
            let mine: BTreeMap<Tp, i64> = ends
                .iter()
                .filter(|(tp, _)| skipped.contains(tp))
                .map(|(tp, e)| (tp.clone(), *e))
                .collect();
            for (g, offsets) in group_targets(&plan, &state, &ends, Some(&owned_set)) {
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
