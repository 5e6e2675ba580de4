//! Following a live source (`kmigrate sync`, `kmigrate cutover`): which partitions a live
//! plan copies, how a range's end moves with the source, what a rescan adds to it, which
//! group commits fall below the copy's start, and when the source has stopped moving. Pure:
//! the callers read the clusters.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::compute::totals;
use super::{GroupPlan, PartitionPlan, Plan, SkipReason, Status, TopicAction, TopicPlan, Tp};
use crate::model::Ends;

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
    plan.totals = totals(&plan.partitions, &plan.groups, &plan.topics);
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
pub fn extended_end(end: i64, now: &Ends) -> Option<i64> {
    (now.stable > end).then_some(now.stable)
}

/// What a rescan of the source found that a live plan does not follow yet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Growth {
    /// Groups the filters select now that the plan does not have.
    pub groups: Vec<GroupPlan>,
    /// Where the new groups stand on partitions the plan follows already: (partition,
    /// group, committed offset or `None` when it consumes the topic but never committed it).
    pub positions: Vec<(Tp, String, Option<i64>)>,
    /// Partitions to follow from now on, with their ranges by the plan's rules, sorted.
    pub partitions: Vec<PartitionPlan>,
    /// The entries of the followed partitions' topics, as the rescan found them.
    pub topics: Vec<TopicPlan>,
    /// Target topics to create first: (name, partitions, configs).
    pub create: Vec<(String, i32, BTreeMap<String, String>)>,
    /// Target topics whose partition count is to be raised first: (name, new count).
    pub raise: Vec<(String, i32)>,
    /// Partitions not followed because the target lacks them and `create_topics = false`.
    pub held: Vec<Held>,
}

impl Growth {
    /// Whether the plan changes at all (held partitions do not change it).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.partitions.is_empty()
    }

    /// Each target topic the new partitions are written to, with the partition count it
    /// needs at least.
    pub fn needs(&self) -> BTreeMap<String, i32> {
        let mut out: BTreeMap<String, i32> = BTreeMap::new();
        for p in &self.partitions {
            let n = out.entry(p.target().to_string()).or_default();
            *n = (*n).max(p.partition + 1);
        }
        out
    }
}

/// New partitions of a topic that the target lacks while `create_topics = false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub topic: String,
    /// The topic's name on the target.
    pub target: String,
    pub partitions: Vec<i32>,
    pub source_partitions: i32,
    /// The target topic's partition count; `None`: it does not exist there.
    pub target_partitions: Option<i32>,
}

impl Held {
    /// The warning that says what is not followed and how to have it followed.
    pub fn text(&self) -> String {
        let list: Vec<String> = self.partitions.iter().map(i32::to_string).collect();
        let (what, fix) = match self.target_partitions {
            None => (
                format!("topic {} does not exist on the target", self.target),
                format!(
                    "create it on the target with {} partition(s)",
                    self.source_partitions
                ),
            ),
            Some(n) => (
                format!(
                    "topic {} has {} partition(s) on the source now, {} has {n} on the target",
                    self.topic, self.source_partitions, self.target
                ),
                format!(
                    "add partitions on the target (kafka-topics.sh --alter --topic {} \
                     --partitions {})",
                    self.target, self.source_partitions
                ),
            ),
        };
        format!(
            "{what}, and create_topics = false: partition(s) {} of {} are not followed. To \
             follow them, {fix} (the next rescan picks them up), or set create_topics = true \
             and start `kmigrate sync` again",
            list.join(", "),
            self.topic
        )
    }
}

/// What a fresh live plan (`fresh`: computed from a new reading of the clusters and passed
/// through [`follow`]) adds to the live plan being followed (`current`): the groups it does
/// not have, the partitions it does not follow yet (new topics, partitions added to a topic,
/// partitions a group committed since), each with the range the plan's rules give it now,
/// and what the target needs first. With `create_topics = false`, partitions the target
/// lacks are held back, not followed. Partitions followed already keep their ranges.
pub fn grow(current: &Plan, fresh: &Plan) -> Growth {
    let followed: BTreeSet<Tp> = current
        .partitions
        .iter()
        .filter(|p| p.status == Status::Migrate)
        .map(PartitionPlan::tp)
        .collect();
    let known: BTreeSet<&str> = current.groups.iter().map(|g| g.group.as_str()).collect();
    let groups: Vec<GroupPlan> = fresh
        .groups
        .iter()
        .filter(|g| !known.contains(g.group.as_str()))
        .cloned()
        .collect();
    let new_names: BTreeSet<&str> = groups.iter().map(|g| g.group.as_str()).collect();
    let mut growth = Growth::default();
    for p in fresh
        .partitions
        .iter()
        .filter(|p| followed.contains(&p.tp()))
    {
        for (g, c) in p
            .committed
            .iter()
            .filter(|(g, _)| new_names.contains(g.as_str()))
        {
            growth.positions.push((p.tp(), g.clone(), Some(*c)));
        }
        for g in p
            .uncommitted_groups
            .iter()
            .filter(|g| new_names.contains(g.as_str()))
        {
            growth.positions.push((p.tp(), g.clone(), None));
        }
    }
    growth.groups = groups;
    let mut by_topic: BTreeMap<&str, Vec<&PartitionPlan>> = BTreeMap::new();
    for p in fresh
        .partitions
        .iter()
        .filter(|p| p.status == Status::Migrate && !followed.contains(&p.tp()))
    {
        by_topic.entry(&p.topic).or_default().push(p);
    }
    for (topic, new) in by_topic {
        let Some(t) = fresh.topics.iter().find(|t| t.topic == topic) else {
            continue;
        };
        let mut entry = t.clone();
        let taken: Vec<&PartitionPlan> = if fresh.create_topics {
            match t.target_partitions {
                None => {
                    growth.create.push((
                        t.target().to_string(),
                        t.source_partitions,
                        t.create_configs.clone(),
                    ));
                    entry.action = TopicAction::Create;
                }
                Some(n) if n < t.source_partitions => {
                    growth
                        .raise
                        .push((t.target().to_string(), t.source_partitions));
                    entry.action = TopicAction::Ready;
                    entry.target_partitions = Some(t.source_partitions);
                }
                Some(_) => {}
            }
            new
        } else {
            let fits = |p: &&PartitionPlan| t.target_partitions.is_some_and(|n| p.partition < n);
            let (taken, held): (Vec<_>, Vec<_>) = new.into_iter().partition(fits);
            if !held.is_empty() {
                growth.held.push(Held {
                    topic: t.topic.clone(),
                    target: t.target().to_string(),
                    partitions: held.iter().map(|p| p.partition).collect(),
                    source_partitions: t.source_partitions,
                    target_partitions: t.target_partitions,
                });
            }
            taken
        };
        if taken.is_empty() {
            continue;
        }
        growth.partitions.extend(taken.into_iter().cloned());
        growth.topics.push(entry);
    }
    growth
}

/// Adds a rescan's [`Growth`] to a live plan: the new groups (and where they stand on the
/// partitions followed already), the new partitions in the plan's order (a skipped entry of
/// the same partition is replaced), their topics' entries, and the counts in the totals.
pub fn add(plan: &mut Plan, growth: &Growth) {
    plan.groups.extend(growth.groups.iter().cloned());
    for (tp, g, commit) in &growth.positions {
        let Some(p) = plan
            .partitions
            .iter_mut()
            .find(|p| p.topic == tp.topic && p.partition == tp.partition)
        else {
            continue;
        };
        match commit {
            Some(c) => {
                p.committed.insert(g.clone(), *c);
            }
            None => {
                if let Err(i) = p.uncommitted_groups.binary_search(g) {
                    p.uncommitted_groups.insert(i, g.clone());
                }
            }
        }
    }
    for new in &growth.partitions {
        let at = plan.partitions.binary_search_by(|q| {
            (q.topic.as_str(), q.partition).cmp(&(new.topic.as_str(), new.partition))
        });
        match at {
            Ok(i) => plan.partitions[i] = new.clone(),
            Err(i) => plan.partitions.insert(i, new.clone()),
        }
    }
    for t in &growth.topics {
        match plan.topics.binary_search_by(|q| q.topic.cmp(&t.topic)) {
            Ok(i) => plan.topics[i] = t.clone(),
            Err(i) => plan.topics.insert(i, t.clone()),
        }
    }
    plan.totals = totals(&plan.partitions, &plan.groups, &plan.topics);
}

/// A group's commit below where the copy of a partition starts: on the target the group
/// resumes at the first copied record and never sees the records before it. On a live
/// source this is an offset reset (a consumer moved back); its records below the source's
/// low watermark are gone on the source as well and do not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    pub group: String,
    pub tp: Tp,
    pub commit: i64,
    /// The copy's start.
    pub start: i64,
    /// The first offset the group would miss: its commit, raised to the low watermark.
    pub from: i64,
}

impl Reset {
    /// Offsets the group would miss on the target (an upper bound of records).
    pub fn missed(&self) -> i64 {
        self.start - self.from
    }

    /// What happened, for a warning; the caller adds what the operator can do.
    pub fn text(&self) -> String {
        let range = if self.from == self.commit {
            String::new()
        } else {
            format!(
                " (from {}: below it the source expired them too)",
                self.from
            )
        };
        format!(
            "group {} committed {} on {}, below the copy's start {}: on the target it resumes \
             at the first copied record (source offset {}) and misses the {} offset(s) before \
             it{range} (an offset reset on the source)",
            self.group,
            self.commit,
            self.tp,
            self.start,
            self.start,
            self.missed()
        )
    }
}

/// Every group commit below the copy's start of a copied partition. `ranges`: per copied
/// partition, (the copy's start, the source's low watermark); `commits`: group ->
/// partition -> committed offset. Commits on partitions not copied are not looked at.
pub fn resets(
    ranges: &BTreeMap<Tp, (i64, i64)>,
    commits: &BTreeMap<String, BTreeMap<Tp, i64>>,
) -> Vec<Reset> {
    let mut out = Vec::new();
    for (group, theirs) in commits {
        for (tp, commit) in theirs {
            let Some((start, low)) = ranges.get(tp) else {
                continue;
            };
            let from = (*commit).max(*low);
            if from < *start {
                out.push(Reset {
                    group: group.clone(),
                    tp: tp.clone(),
                    commit: *commit,
                    start: *start,
                    from,
                });
            }
        }
    }
    out
}

/// Remembers which (group, partition) were below the copy's start at the last look, so
/// that a reset is reported once, when it happens, not at every look. A pair back at or
/// above the start and below it again later is a new reset.
#[derive(Debug, Clone, Default)]
pub struct Resets {
    below: BTreeSet<(String, Tp)>,
}

impl Resets {
    /// Of the resets found now, the new ones.
    pub fn news(&mut self, found: Vec<Reset>) -> Vec<Reset> {
        let now: BTreeSet<(String, Tp)> = found
            .iter()
            .map(|r| (r.group.clone(), r.tp.clone()))
            .collect();
        let new = found
            .into_iter()
            .filter(|r| !self.below.contains(&(r.group.clone(), r.tp.clone())))
            .collect();
        self.below = now;
        new
    }
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

    /// Whether a reading that starts at `now_ms` can find the window of `quiet_ms`
    /// complete (if nothing moved): only such a reading decides, so only it needs what must
    /// hold besides when the window closes.
    pub fn may_close_at(&self, now_ms: i64, quiet_ms: i64) -> bool {
        match self.since_ms {
            Some(t) => now_ms - t >= quiet_ms,
            None => quiet_ms <= 0,
        }
    }

    /// How long after a reading that ended at `now_ms` to start the next one, reading every
    /// `every_ms` and a reading taking about `reading_ms`. A next reading that would end
    /// past the window's end waits for that end instead: the reading that can close the
    /// window then starts when the window ends, rather than up to a pause and a reading
    /// later, or across its end (finding it complete, but too early to have decided).
    pub fn next_reading_in(
        &self,
        now_ms: i64,
        quiet_ms: i64,
        every_ms: i64,
        reading_ms: i64,
    ) -> i64 {
        let left = self.since_ms.map_or(quiet_ms, |t| t + quiet_ms - now_ms);
        if left <= 0 || left > every_ms + reading_ms {
            every_ms
        } else {
            left
        }
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

/// What a sync last knew of the source's ends: a digest of every copied partition's high
/// watermark and last stable offset as it read them at `read_at_ms`, and since when
/// (`since_ms`, ms since the epoch) every full reading found that same digest. Offsets
/// only grow: a later reading of the same partitions with the same digest proves that
/// none moved between `since_ms` and that reading, whatever ran in between. A `cutover`
/// counts its quiet window from `since_ms` when its first reading matches. Absent from
/// state files written before, and in those of `run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StillSince {
    pub ends: String,
    pub since_ms: i64,
    pub read_at_ms: i64,
}

impl StillSince {
    /// The record after a full reading of digest `ends` at `at_ms`: the same as `last`
    /// kept its start, a new one starts now.
    pub fn after(last: Option<&StillSince>, ends: String, at_ms: i64) -> StillSince {
        let since_ms = match last {
            Some(l) if l.ends == ends && l.since_ms <= at_ms => l.since_ms,
            _ => at_ms,
        };
        StillSince {
            ends,
            since_ms,
            read_at_ms: at_ms,
        }
    }

    /// Since when the source has not moved, given a reading of digest `ends` now; `None`
    /// when it moved since this record (or follows other partitions).
    pub fn still_since(&self, ends: &str) -> Option<i64> {
        (self.ends == ends).then_some(self.since_ms)
    }
}

/// The digest of where the partitions end (see [`StillSince`]): over every partition's
/// name, high watermark and last stable offset, in the map's order.
pub fn ends_digest(ends: &BTreeMap<Tp, Ends>) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(ends.len() as u64).to_le_bytes());
    for (tp, e) in ends {
        h.update(&(tp.topic.len() as u64).to_le_bytes());
        h.update(tp.topic.as_bytes());
        h.update(&tp.partition.to_le_bytes());
        h.update(&e.high.to_le_bytes());
        h.update(&e.stable.to_le_bytes());
    }
    format!("{:032x}", h.digest128())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::UncommittedPolicy;
    use crate::model::GroupState;
    use crate::plan::compute::{Rules, compute};
    use crate::plan::{GroupSnapshot, Snapshot, TopicInfo, Watermarks};
    use proptest::prelude::*;

    fn w(stable: i64) -> Ends {
        Ends {
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
        compute(&snapshot(), &Rules::test(UncommittedPolicy::Skip, false), 0)
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

    fn ends_of(list: &[(&str, i32, i64, i64)]) -> BTreeMap<Tp, Ends> {
        list.iter()
            .map(|(t, p, high, stable)| {
                (
                    Tp::new(*t, *p),
                    Ends {
                        high: *high,
                        stable: *stable,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_ends_digest_changes_with_any_end_and_with_the_partitions() {
        let base = ends_digest(&ends_of(&[("t", 0, 10, 10), ("t", 1, 5, 4)]));
        assert_eq!(base.len(), 32);
        assert_eq!(
            base,
            ends_digest(&ends_of(&[("t", 1, 5, 4), ("t", 0, 10, 10)]))
        );
        for other in [
            ends_of(&[("t", 0, 11, 10), ("t", 1, 5, 4)]),
            ends_of(&[("t", 0, 10, 10), ("t", 1, 5, 5)]),
            ends_of(&[("t", 0, 10, 10)]),
            ends_of(&[("t", 0, 10, 10), ("t", 1, 5, 4), ("u", 0, 0, 0)]),
            ends_of(&[("t", 0, 10, 10), ("tt", 1, 5, 4)]),
            ends_of(&[]),
        ] {
            assert_ne!(base, ends_digest(&other), "{other:?}");
        }
    }

    #[test]
    fn still_since_keeps_its_start_while_the_readings_match() {
        let a = ends_digest(&ends_of(&[("t", 0, 10, 10)]));
        let b = ends_digest(&ends_of(&[("t", 0, 11, 11)]));
        let s = StillSince::after(None, a.clone(), 1_000);
        assert_eq!((s.since_ms, s.read_at_ms), (1_000, 1_000));
        let s = StillSince::after(Some(&s), a.clone(), 61_000);
        assert_eq!((s.since_ms, s.read_at_ms), (1_000, 61_000));
        assert_eq!(s.still_since(&a), Some(1_000));
        assert_eq!(s.still_since(&b), None);
        // A move starts it again at the reading that saw it.
        let s = StillSince::after(Some(&s), b.clone(), 62_000);
        assert_eq!((s.since_ms, s.read_at_ms), (62_000, 62_000));
        assert_eq!(s.still_since(&a), None);
        // A clock set back never dates the start after the reading.
        let s = StillSince::after(Some(&s), b, 50_000);
        assert_eq!((s.since_ms, s.read_at_ms), (50_000, 50_000));
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

    #[test]
    fn the_reading_that_can_close_the_window_comes_when_it_ends() {
        let mut q = Quiet::default();
        // Before any reading: the usual pause; only a window of nothing can close at once.
        assert_eq!(q.next_reading_in(0, 2_000, 250, 100), 250);
        assert!(!q.may_close_at(0, 2_000));
        assert!(q.may_close_at(0, 0));
        q.observe(1_000, &offsets(&[5]));
        assert_eq!(q.next_reading_in(1_000, 2_000, 250, 100), 250);
        assert!(!q.may_close_at(2_999, 2_000));
        assert!(q.may_close_at(3_000, 2_000));
        // The next reading would end past the window's end: it starts at that end.
        assert_eq!(q.next_reading_in(2_650, 2_000, 250, 100), 350);
        assert_eq!(q.next_reading_in(2_800, 2_000, 250, 100), 200);
        assert_eq!(q.next_reading_in(2_999, 2_000, 250, 100), 1);
        // It would end before: the usual pause.
        assert_eq!(q.next_reading_in(2_649, 2_000, 250, 100), 250);
        // The window is over (and something else holds the cutover): the usual pause,
        // never a busy loop.
        assert_eq!(q.next_reading_in(3_000, 2_000, 250, 100), 250);
        assert_eq!(q.next_reading_in(9_000, 2_000, 250, 100), 250);
        // A move starts the window again.
        q.observe(3_100, &offsets(&[6]));
        assert!(!q.may_close_at(5_000, 2_000));
        assert_eq!(q.next_reading_in(3_100, 2_000, 250, 100), 250);
        assert_eq!(q.next_reading_in(4_950, 2_000, 250, 100), 150);
        // A window shorter than the pause.
        assert_eq!(q.next_reading_in(3_100, 100, 250, 100), 100);
    }

    /// A topic on the source: its name, each partition's (low, high), and its partition
    /// count on the target (`None`: missing there).
    pub(crate) type TopicSpec<'a> = (&'a str, Vec<(i64, i64)>, Option<i32>);

    /// A group and its commits: (topic, partition, offset).
    pub(crate) type GroupSpec<'a> = (&'a str, Vec<(&'a str, i32, i64)>);

    /// A snapshot of these topics and groups (each group's commits: topic, partition,
    /// offset); every group is empty.
    pub(crate) fn snap_of(topics: &[TopicSpec<'_>], groups: &[GroupSpec<'_>]) -> Snapshot {
        let mut snap = Snapshot::default();
        for (name, parts, target) in topics {
            let info = |n: i32| TopicInfo {
                partitions: n,
                configs: BTreeMap::new(),
            };
            snap.source_topics
                .insert(name.to_string(), info(parts.len() as i32));
            if let Some(n) = target {
                snap.target_topics.insert(name.to_string(), info(*n));
            }
            for (p, (low, high)) in parts.iter().enumerate() {
                let tp = Tp::new(*name, p as i32);
                let w = Watermarks {
                    low: *low,
                    high: *high,
                    stable: *high,
                };
                snap.source_offsets.insert(tp.clone(), w);
                if target.is_some_and(|n| (p as i32) < n) {
                    snap.target_offsets.insert(tp, (0, 0));
                }
            }
        }
        for (name, commits) in groups {
            snap.groups.push(GroupSnapshot {
                name: name.to_string(),
                state: GroupState::Empty,
                members: Vec::new(),
                commits: commits
                    .iter()
                    .map(|(t, p, o)| (Tp::new(*t, *p), *o))
                    .collect(),
                assigned_topics: Default::default(),
            });
            snap.all_groups.push(name.to_string());
        }
        snap
    }

    /// The live plan `sync` makes of a snapshot.
    pub(crate) fn live_of(snap: &Snapshot, policy: UncommittedPolicy, create: bool) -> Plan {
        let mut plan = compute(snap, &Rules::test(policy, create), 0);
        follow(&mut plan);
        plan
    }

    fn ranges(partitions: &[PartitionPlan]) -> Vec<(String, i32, i64, i64)> {
        partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition, p.start, p.end))
            .collect()
    }

    fn range(t: &str, p: i32, start: i64, end: i64) -> (String, i32, i64, i64) {
        (t.to_string(), p, start, end)
    }

    /// At the start: topic t of two partitions, group g. At the rescan: t has a third
    /// partition (7 records), topic u is new with group h on it, and group k consumes t
    /// (committing t/0 below the copy's start there).
    pub(crate) fn before_and_after(target_t: i32, target_u: Option<i32>) -> (Snapshot, Snapshot) {
        let before = snap_of(
            &[("t", vec![(0, 20), (0, 20)], Some(2))],
            &[("g", vec![("t", 0, 5), ("t", 1, 10)])],
        );
        let after = snap_of(
            &[
                ("t", vec![(0, 25), (0, 22), (0, 7)], Some(target_t)),
                ("u", vec![(0, 30)], target_u),
            ],
            &[
                ("g", vec![("t", 0, 6), ("t", 1, 12)]),
                ("h", vec![("u", 0, 12)]),
                ("k", vec![("t", 0, 3)]),
            ],
        );
        (before, after)
    }

    #[test]
    fn a_rescan_follows_new_topics_partitions_and_groups() {
        let (before, after) = before_and_after(2, None);
        let current = live_of(&before, UncommittedPolicy::Earliest, true);
        let fresh = live_of(&after, UncommittedPolicy::Earliest, true);
        let growth = grow(&current, &fresh);
        let names: Vec<&str> = growth.groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, vec!["h", "k"]);
        // t/2 from its low watermark (no group committed it: "earliest"), u/0 from h's
        // commit; t/0 and t/1 keep their ranges.
        assert_eq!(
            ranges(&growth.partitions),
            vec![range("t", 2, 0, 7), range("u", 0, 12, 30)]
        );
        assert_eq!(growth.create, vec![("u".to_string(), 1, BTreeMap::new())]);
        assert_eq!(growth.raise, vec![("t".to_string(), 3)]);
        assert!(growth.held.is_empty());
        assert_eq!(
            growth.positions,
            vec![
                (Tp::new("t", 0), "k".to_string(), Some(3)),
                (Tp::new("t", 1), "k".to_string(), None),
            ]
        );
        let needs: Vec<(String, i32)> = growth.needs().into_iter().collect();
        assert_eq!(needs, vec![("t".to_string(), 3), ("u".to_string(), 1)]);

        let mut plan = current.clone();
        add(&mut plan, &growth);
        assert_eq!(plan.check(), Ok(()));
        assert_eq!(
            ranges(&plan.partitions),
            vec![
                range("t", 0, 5, 20),
                range("t", 1, 10, 20),
                range("t", 2, 0, 7),
                range("u", 0, 12, 30),
            ]
        );
        assert_eq!(plan.partitions[0].committed.get("k"), Some(&3));
        assert_eq!(plan.partitions[1].uncommitted_groups, vec!["k".to_string()]);
        assert_eq!(plan.partitions[2].uncommitted_groups, vec!["g", "k"]);
        let topics: Vec<(&str, i32, Option<i32>, TopicAction)> = plan
            .topics
            .iter()
            .map(|t| {
                let n = t.target_partitions;
                (t.topic.as_str(), t.source_partitions, n, t.action)
            })
            .collect();
        assert_eq!(
            topics,
            vec![
                ("t", 3, Some(3), TopicAction::Ready),
                ("u", 1, None, TopicAction::Create),
            ]
        );
        assert_eq!(
            (plan.totals.groups, plan.totals.partitions_to_migrate),
            (3, 4)
        );
        assert_eq!(plan.totals.topics_to_create, 1);
        // Nothing more at the next rescan.
        assert_eq!(grow(&plan, &fresh).partitions, Vec::new());
        assert!(grow(&plan, &fresh).is_empty());
    }

    #[test]
    fn without_create_topics_what_the_target_lacks_is_held_back() {
        let (before, after) = before_and_after(2, None);
        let current = live_of(&before, UncommittedPolicy::Earliest, false);
        let fresh = live_of(&after, UncommittedPolicy::Earliest, false);
        let growth = grow(&current, &fresh);
        assert!(growth.partitions.is_empty() && growth.topics.is_empty());
        assert!(growth.create.is_empty() && growth.raise.is_empty());
        assert_eq!(growth.groups.len(), 2, "the groups are followed still");
        let held: Vec<(&str, Vec<i32>, Option<i32>)> = growth
            .held
            .iter()
            .map(|h| (h.topic.as_str(), h.partitions.clone(), h.target_partitions))
            .collect();
        assert_eq!(held, vec![("t", vec![2], Some(2)), ("u", vec![0], None)]);
        let t = growth.held[0].text();
        assert!(
            t.contains("partition(s) 2 of t are not followed")
                && t.contains("--alter --topic t --partitions 3"),
            "{t}"
        );
        let u = growth.held[1].text();
        assert!(
            u.contains("create it on the target with 1 partition(s)"),
            "{u}"
        );
        // Once the operator made room on the target, the next rescan follows them.
        let (_, after) = before_and_after(3, Some(1));
        let fresh = live_of(&after, UncommittedPolicy::Earliest, false);
        let growth = grow(&current, &fresh);
        assert!(growth.held.is_empty());
        assert!(growth.create.is_empty() && growth.raise.is_empty());
        assert_eq!(
            ranges(&growth.partitions),
            vec![range("t", 2, 0, 7), range("u", 0, 12, 30)]
        );
    }

    #[test]
    fn under_skip_a_partition_is_followed_once_a_group_commits_it() {
        let before = snap_of(
            &[("t", vec![(0, 20), (2, 20)], Some(2))],
            &[("g", vec![("t", 0, 5)])],
        );
        let current = live_of(&before, UncommittedPolicy::Skip, false);
        assert_eq!(current.partitions[1].reason, Some(SkipReason::Uncommitted));
        let after = snap_of(
            &[("t", vec![(0, 20), (2, 24)], Some(2))],
            &[("g", vec![("t", 0, 5), ("t", 1, 0)])],
        );
        let fresh = live_of(&after, UncommittedPolicy::Skip, false);
        let growth = grow(&current, &fresh);
        // From the commit raised to the low watermark; the skipped entry is replaced.
        assert_eq!(ranges(&growth.partitions), vec![range("t", 1, 2, 24)]);
        let mut plan = current.clone();
        add(&mut plan, &growth);
        assert_eq!(plan.check(), Ok(()));
        assert_eq!(plan.partitions.len(), 2);
        assert_eq!(plan.partitions[1].status, Status::Migrate);
        assert_eq!(plan.totals.partitions_to_migrate, 2);
    }

    fn commits_of(v: &[(&str, &str, i32, i64)]) -> BTreeMap<String, BTreeMap<Tp, i64>> {
        let mut out: BTreeMap<String, BTreeMap<Tp, i64>> = BTreeMap::new();
        for (g, t, p, o) in v {
            out.entry(g.to_string())
                .or_default()
                .insert(Tp::new(*t, *p), *o);
        }
        out
    }

    #[test]
    fn commits_below_the_copys_start_are_resets() {
        // t/0 copied from 100 (low 0), t/1 from 50 (low 40).
        let ranges: BTreeMap<Tp, (i64, i64)> =
            [(Tp::new("t", 0), (100, 0)), (Tp::new("t", 1), (50, 40))]
                .into_iter()
                .collect();
        let found = resets(
            &ranges,
            &commits_of(&[
                ("a", "t", 0, 100),
                ("a", "t", 1, 45),
                ("b", "t", 0, 0),
                ("b", "t", 1, 10),
                ("c", "t", 1, 30),
                ("c", "u", 0, 0),
            ]),
        );
        let got: Vec<(&str, String, i64, i64)> = found
            .iter()
            .map(|r| (r.group.as_str(), r.tp.to_string(), r.commit, r.missed()))
            .collect();
        // b at t/1: 10 is below the low watermark 40, so it misses 40..50. Not copied
        // partitions (u/0) are not looked at.
        assert_eq!(
            got,
            vec![
                ("a", "t/1".to_string(), 45, 5),
                ("b", "t/0".to_string(), 0, 100),
                ("b", "t/1".to_string(), 10, 10),
                ("c", "t/1".to_string(), 30, 10),
            ]
        );
        let text = found[1].text();
        assert!(
            text.contains("group b committed 0 on t/0, below the copy's start 100")
                && text.contains("misses the 100 offset(s)")
                && text.contains("offset reset"),
            "{text}"
        );
        assert!(found[2].text().contains("from 40"), "{}", found[2].text());
        // A commit below the low watermark where the copy starts at it misses nothing.
        let expired: BTreeMap<Tp, (i64, i64)> = [(Tp::new("t", 0), (40, 40))].into_iter().collect();
        assert!(resets(&expired, &commits_of(&[("a", "t", 0, 3)])).is_empty());
    }

    #[test]
    fn a_reset_is_reported_once_until_it_happens_again() {
        let ranges: BTreeMap<Tp, (i64, i64)> = [(Tp::new("t", 0), (100, 0))].into_iter().collect();
        let mut seen = Resets::default();
        let mut look = |commit: i64| {
            let found = resets(&ranges, &commits_of(&[("g", "t", 0, commit)]));
            seen.news(found).len()
        };
        assert_eq!(look(120), 0);
        assert_eq!(look(0), 1);
        // Still below (consuming again from 0): not reported again.
        assert_eq!(look(30), 0);
        assert_eq!(look(99), 0);
        assert_eq!(look(100), 0);
        // Reset again: a new occurrence.
        assert_eq!(look(10), 1);
    }

    proptest! {
        /// Whatever a rescan finds (partitions and topics added, groups and commits new,
        /// offsets moved on), the grown plan follows what a fresh plan follows plus what
        /// was followed before, keeps every followed range as it was, and stays a valid
        /// plan: its partitions sorted, each once.
        #[test]
        fn a_grown_plan_follows_the_old_and_the_new(
            topics in proptest::collection::vec(
                (proptest::collection::vec((0i64..5, 0i64..30, 0i64..10), 1..4), 0usize..4),
                1..4,
            ),
            groups in proptest::collection::vec(
                (
                    any::<bool>(),
                    proptest::collection::vec(
                        (0usize..4, 0i32..4, 0i64..40, any::<bool>()),
                        0..6,
                    ),
                ),
                1..4,
            ),
            skip in any::<bool>(),
        ) {
            let names = ["a", "b", "c", "d"];
            // Fresh: every partition; before: the first `old` partitions of each topic
            // (0: the topic is new) with their high watermarks lower, and the groups and
            // commits not new (a commit then at most the high watermark then).
            let mut fresh_topics = Vec::new();
            let mut old_topics = Vec::new();
            for (i, (parts, old)) in topics.iter().enumerate() {
                let fresh: Vec<(i64, i64)> =
                    parts.iter().map(|(l, h, g)| (*l, l + h + g)).collect();
                let before: Vec<(i64, i64)> =
                    parts.iter().take(*old).map(|(l, h, _)| (*l, l + h)).collect();
                fresh_topics.push((names[i], fresh, Some(parts.len() as i32)));
                if !before.is_empty() {
                    old_topics.push((names[i], before, Some(*old as i32)));
                }
            }
            let group_names = ["g0", "g1", "g2"];
            let mut fresh_groups = Vec::new();
            let mut old_groups = Vec::new();
            for (i, (new, commits)) in groups.iter().enumerate() {
                let valid = |t: usize, p: i32| {
                    topics.get(t).is_some_and(|(parts, _)| (p as usize) < parts.len())
                };
                let fresh: Vec<(&str, i32, i64)> = commits
                    .iter()
                    .filter(|(t, p, _, _)| valid(*t, *p))
                    .map(|(t, p, o, _)| (names[*t], *p, *o))
                    .collect();
                let high_before = |t: usize, p: i32| {
                    let (low, high, _) = topics[t].0[p as usize];
                    low + high
                };
                let old: Vec<(&str, i32, i64)> = commits
                    .iter()
                    .filter(|(t, p, _, later)| {
                        valid(*t, *p) && !later && (*p as usize) < topics[*t].1
                    })
                    .map(|(t, p, o, _)| (names[*t], *p, (*o).min(high_before(*t, *p))))
                    .collect();
                fresh_groups.push((group_names[i], fresh));
                if !new && !old.is_empty() {
                    old_groups.push((group_names[i], old));
                }
            }
            let policy = if skip {
                UncommittedPolicy::Skip
            } else {
                UncommittedPolicy::Earliest
            };
            let current = live_of(&snap_of(&old_topics, &old_groups), policy, true);
            let fresh = live_of(&snap_of(&fresh_topics, &fresh_groups), policy, true);
            let growth = grow(&current, &fresh);
            prop_assert!(growth.held.is_empty());
            let mut plan = current.clone();
            add(&mut plan, &growth);
            prop_assert_eq!(plan.check(), Ok(()));
            let keys: Vec<(String, i32)> = plan
                .partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition))
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&keys, &sorted);
            let followed = |p: &Plan| -> BTreeSet<Tp> {
                p.partitions
                    .iter()
                    .filter(|q| q.status == Status::Migrate)
                    .map(PartitionPlan::tp)
                    .collect()
            };
            let want: BTreeSet<Tp> =
                followed(&current).union(&followed(&fresh)).cloned().collect();
            prop_assert_eq!(followed(&plan), want);
            for old in current.partitions.iter().filter(|p| p.status == Status::Migrate) {
                let now = plan.partitions.iter().find(|p| p.tp() == old.tp());
                prop_assert_eq!(now.map(|p| (p.start, p.end)), Some((old.start, old.end)));
            }
            let mut groups: Vec<&str> = plan.groups.iter().map(|g| g.group.as_str()).collect();
            groups.sort();
            let mut want: Vec<&str> = fresh.groups.iter().map(|g| g.group.as_str()).collect();
            want.sort();
            prop_assert_eq!(groups, want);
            // A second rescan of the same reading adds nothing.
            prop_assert!(grow(&plan, &fresh).is_empty());
        }

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

        /// The next reading starts between 1 ms and a pause plus a reading later; while
        /// the window is not complete it either ends before the window does or starts when
        /// the window has ended (never across its end); once the window is complete, it
        /// comes after the usual pause.
        #[test]
        fn the_next_reading_is_paced_and_lands_on_the_window_end(
            changed in 0i64..5_000,
            after in 0i64..5_000,
            window in 0i64..3_000,
            reading in 0i64..1_000,
        ) {
            let mut q = Quiet::default();
            q.observe(changed, &offsets(&[1]));
            let now = changed + after;
            let pause = q.next_reading_in(now, window, 250, reading);
            prop_assert!(pause >= 1 && pause <= 250 + reading);
            if q.quiet_for(now, window) {
                prop_assert_eq!(pause, 250);
            } else {
                let next = now + pause;
                prop_assert!(next + reading < changed + window || q.may_close_at(next, window));
                prop_assert_eq!(q.may_close_at(next, window), q.quiet_for(next, window));
            }
        }
    }
}
