//! The planning rules. Pure: a [`Snapshot`] in, a [`Plan`] out, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    GroupPlan, PLAN_VERSION, PartitionPlan, Plan, ResumeAt, SkipReason, Snapshot, Status,
    TopicAction, TopicPlan, Totals, Tp, Watermarks,
};
use crate::config::{FilterConfig, UncommittedPolicy, is_internal_topic};

/// The decision for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub start: i64,
    pub end: i64,
    pub status: Status,
    pub reason: Option<SkipReason>,
    /// Offsets lost to expiry, per group whose commit was below the low watermark.
    pub lost: Vec<(String, i64)>,
}

impl Decision {
    pub fn to_migrate(&self) -> i64 {
        self.end - self.start
    }
}

/// Where copying a partition starts and ends.
///
/// `positions` holds, for each group consuming the topic, its committed offset or `None` when
/// it never committed this partition. The copy starts at the smallest position (an uncommitted
/// group counts as the low watermark under `earliest`, and not at all under `skip`), raised to
/// the low watermark when records below it expired, and ends at the last stable offset `end`.
pub fn decide(
    positions: &[(&str, Option<i64>)],
    low: i64,
    end: i64,
    policy: UncommittedPolicy,
) -> Decision {
    let effective = positions.iter().filter_map(|(_, c)| match (c, policy) {
        (Some(c), _) => Some(*c),
        (None, UncommittedPolicy::Earliest) => Some(low),
        (None, UncommittedPolicy::Skip) => None,
    });
    let lost: Vec<(String, i64)> = positions
        .iter()
        .filter_map(|(g, c)| c.filter(|c| *c < low).map(|c| (g.to_string(), low - c)))
        .collect();
    let Some(wanted) = effective.min() else {
        return Decision {
            start: end,
            end,
            status: Status::Skip,
            reason: Some(SkipReason::Uncommitted),
            lost,
        };
    };
    // A well-formed partition has low <= end; clamping to `end` last keeps start <= end
    // even for odd inputs (a commit beyond the end, a truncated log).
    let start = wanted.max(low).min(end);
    let (status, reason) = if start < end {
        (Status::Migrate, None)
    } else if wanted < low {
        (Status::Skip, Some(SkipReason::Expired))
    } else {
        (Status::Skip, Some(SkipReason::NothingUnconsumed))
    };
    Decision {
        start,
        end,
        status,
        reason,
        lost,
    }
}

/// The rules a plan is computed under, from the configuration, and the clusters it is
/// made for (their bootstrap strings).
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub filter: &'a FilterConfig,
    pub policy: UncommittedPolicy,
    pub create_topics: bool,
    pub source: &'a str,
    pub target: &'a str,
}

impl<'a> Rules<'a> {
    /// The rules of a configuration.
    pub fn of(cfg: &'a crate::config::Config) -> Rules<'a> {
        Rules {
            filter: &cfg.filter,
            policy: cfg.migration.uncommitted_partitions,
            create_topics: cfg.migration.create_topics,
            source: &cfg.source.bootstrap_servers,
            target: &cfg.target.bootstrap_servers,
        }
    }
}

#[cfg(test)]
impl Rules<'static> {
    /// The rules unit tests plan with: every group and topic selected, a plan made for
    /// `s:1` -> `t:1`.
    pub(crate) fn test(policy: UncommittedPolicy, create_topics: bool) -> Rules<'static> {
        static ALL: std::sync::LazyLock<FilterConfig> =
            std::sync::LazyLock::new(FilterConfig::default);
        Rules {
            filter: &ALL,
            policy,
            create_topics,
            source: "s:1",
            target: "t:1",
        }
    }
}

/// Builds the plan from what was read. `created_at_ms` and the bootstrap strings are passed
/// in so that this stays deterministic.
/// What the target's broker will rewrite in what it is given for `target_topic`, by the
/// topic's configs (as they are, or as it will be created): a `compression.type` other
/// than `producer` re-compresses every batch in another codec (the batch engine passes the
/// producers' batches as they are), and `LogAppendTime` replaces every record's timestamp
/// with the target's time of writing, which the source's consumers never saw.
fn rewrites(target_topic: &str, configs: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = configs.get("compression.type")
        && !c.eq_ignore_ascii_case("producer")
    {
        out.push(format!(
            "target topic {target_topic} has compression.type={c}: its brokers re-compress \
             every batch not already in {c} (costing their CPU; set it to producer to keep \
             the source producers' compression)"
        ));
    }
    if configs
        .get("message.timestamp.type")
        .is_some_and(|t| t.eq_ignore_ascii_case("LogAppendTime"))
    {
        out.push(format!(
            "target topic {target_topic} has message.timestamp.type=LogAppendTime: its brokers \
             stamp every copied record with the time it is written, not the time the source's \
             consumers saw (set it to CreateTime for the copy to keep them)"
        ));
    }
    out
}

pub fn compute(snap: &Snapshot, rules: &Rules, created_at_ms: i64) -> Plan {
    let Rules {
        filter,
        policy,
        create_topics,
        source,
        target,
    } = *rules;
    let mut warnings = Vec::new();
    let mut problems = Vec::new();

    for p in &filter.groups {
        if p.as_str() != "*" && !snap.all_groups.iter().any(|g| p.matches(g)) {
            warnings.push(format!(
                "the group pattern {p:?} in filter.groups matches no consumer group on the source"
            ));
        }
    }
    if snap.groups.is_empty() {
        warnings.push(
            "no consumer group on the source is selected by [filter]: there is nothing to migrate"
                .to_string(),
        );
    }

    // Which groups consume which topics: committed ones, and assigned ones for live groups.
    let mut consumers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for g in &snap.groups {
        for tp in g.commits.keys() {
            consumers.entry(&tp.topic).or_default().insert(&g.name);
        }
        for t in &g.assigned_topics {
            consumers.entry(t).or_default().insert(&g.name);
        }
    }
    let commits: BTreeMap<(&str, &Tp), i64> = snap
        .groups
        .iter()
        .flat_map(|g| {
            g.commits
                .iter()
                .map(move |(tp, o)| ((g.name.as_str(), tp), *o))
        })
        .collect();

    for p in &filter.topics {
        if p.as_str() != "*" && !consumers.keys().any(|t| p.matches(t)) {
            warnings.push(format!(
                "the topic pattern {p:?} in filter.topics matches no topic a selected group consumes"
            ));
        }
    }

    let mut partitions = Vec::new();
    for (topic, groups) in &consumers {
        let Some(info) = snap.source_topics.get(*topic) else {
            let names: Vec<&str> = groups.iter().copied().collect();
            warnings.push(format!(
                "group(s) {} committed offsets for topic {topic}, which does not exist on the \
                 source (deleted?): it is left out",
                names.join(", ")
            ));
            continue;
        };
        let skip_all = if is_internal_topic(topic) {
            Some(SkipReason::Internal)
        } else if !filter.topic_selected(topic) {
            Some(SkipReason::Filtered)
        } else {
            None
        };
        for partition in 0..info.partitions {
            let tp = Tp::new(*topic, partition);
            let wm = snap.source_offsets.get(&tp).copied().unwrap_or_default();
            let positions: Vec<(&str, Option<i64>)> = groups
                .iter()
                .map(|g| (*g, commits.get(&(*g, &tp)).copied()))
                .collect();
            let mut d = decide(&positions, wm.low, wm.stable, policy);
            if let Some(reason) = skip_all {
                d = Decision {
                    start: d.end,
                    status: Status::Skip,
                    reason: Some(reason),
                    lost: Vec::new(),
                    ..d
                };
            }
            if d.status == Status::Migrate && wm.stable < wm.high {
                warnings.push(format!(
                    "{tp} has an open transaction (last stable offset {} < high watermark {}): \
                     production has not stopped; records from offset {} on are not in this plan",
                    wm.stable, wm.high, wm.stable
                ));
            }
            let target_tp = Tp::new(snap.target_name(topic), partition);
            let target = snap.target_offsets.get(&target_tp).copied();
            if let Some((tlow, thigh)) = target
                && d.status == Status::Migrate
                && thigh > tlow
            {
                warnings.push(format!(
                    "target {target_tp} already holds {} record(s) (offsets {tlow}..{thigh}); the \
                     backlog will be appended after them",
                    thigh - tlow
                ));
            }
            partitions.push(partition_plan(
                &tp,
                &target_tp.topic,
                wm,
                &positions,
                d,
                target,
            ));
        }
    }

    let migrated: BTreeSet<&str> = partitions
        .iter()
        .filter(|p| p.status == Status::Migrate)
        .map(|p| p.topic.as_str())
        .collect();
    for topic in migrated {
        let target_topic = snap.target_name(topic);
        let configs = match snap.target_topics.get(target_topic) {
            Some(t) => &t.configs,
            None => match snap.source_topics.get(topic) {
                Some(s) if create_topics => &s.configs,
                _ => continue,
            },
        };
        warnings.extend(rewrites(target_topic, configs));
    }

    let topics = topic_plans(snap, &partitions, create_topics, &mut problems);
    let groups = group_plans(snap, &partitions, policy, &mut warnings);
    let totals = totals(&partitions, &groups, &topics);
    Plan {
        version: PLAN_VERSION,
        created_at_ms,
        source: source.to_string(),
        target: target.to_string(),
        uncommitted_partitions: policy,
        create_topics,
        partitions,
        groups,
        topics,
        totals,
        warnings,
        problems,
        live: false,
    }
}

fn partition_plan(
    tp: &Tp,
    target_topic: &str,
    wm: Watermarks,
    positions: &[(&str, Option<i64>)],
    d: Decision,
    target: Option<(i64, i64)>,
) -> PartitionPlan {
    PartitionPlan {
        topic: tp.topic.clone(),
        target_topic: target_topic.to_string(),
        partition: tp.partition,
        low: wm.low,
        high: wm.high,
        stable: wm.stable,
        start: d.start,
        end: d.end,
        to_migrate: d.to_migrate(),
        committed: positions
            .iter()
            .filter_map(|(g, c)| c.map(|c| (g.to_string(), c)))
            .collect(),
        uncommitted_groups: positions
            .iter()
            .filter(|(_, c)| c.is_none())
            .map(|(g, _)| g.to_string())
            .collect(),
        lost: d.lost.into_iter().collect(),
        status: d.status,
        reason: d.reason,
        target_low: target.map(|t| t.0),
        target_high: target.map(|t| t.1),
    }
}

/// Target checks, per topic with something planned. Problems are collected, not returned
/// one at a time, so the operator fixes them all in one go.
fn topic_plans(
    snap: &Snapshot,
    partitions: &[PartitionPlan],
    create_topics: bool,
    problems: &mut Vec<String>,
) -> Vec<TopicPlan> {
    let mut out: Vec<TopicPlan> = Vec::new();
    for p in partitions {
        let needed = !matches!(p.reason, Some(SkipReason::Filtered | SkipReason::Internal));
        match out.last_mut() {
            Some(t) if t.topic == p.topic => {
                t.to_migrate += p.to_migrate;
                if needed && t.action == TopicAction::None {
                    t.action = TopicAction::Ready; // decided below
                }
            }
            _ => out.push(TopicPlan {
                topic: p.topic.clone(),
                target_topic: p.target().to_string(),
                source_partitions: snap.source_topics.get(&p.topic).map_or(0, |t| t.partitions),
                target_partitions: snap.target_topics.get(p.target()).map(|t| t.partitions),
                action: if needed {
                    TopicAction::Ready
                } else {
                    TopicAction::None
                },
                create_configs: BTreeMap::new(),
                to_migrate: p.to_migrate,
            }),
        }
    }
    for t in &mut out {
        if t.action == TopicAction::None {
            continue;
        }
        match t.target_partitions {
            Some(n) if n >= t.source_partitions => t.action = TopicAction::Ready,
            Some(n) => {
                t.action = TopicAction::TooFewPartitions;
                problems.push(format!(
                    "target topic {} has {n} partition(s) but the source has {}: records must go \
                     to the same partition number. Add partitions on the target (kafka-topics.sh \
                     --alter --topic {} --partitions {}) or exclude the topic in [filter].",
                    t.target(),
                    t.source_partitions,
                    t.target(),
                    t.source_partitions
                ));
            }
            None if create_topics => {
                t.action = TopicAction::Create;
                t.create_configs = snap
                    .source_topics
                    .get(&t.topic)
                    .map(|i| i.configs.clone())
                    .unwrap_or_default();
            }
            None => {
                t.action = TopicAction::Missing;
                problems.push(format!(
                    "topic {} does not exist on the target: create it with {} partition(s), or \
                     set create_topics = true in [migration], or exclude it in [filter].",
                    t.target(),
                    t.source_partitions
                ));
            }
        }
    }
    out
}

fn group_plans(
    snap: &Snapshot,
    partitions: &[PartitionPlan],
    policy: UncommittedPolicy,
    warnings: &mut Vec<String>,
) -> Vec<GroupPlan> {
    let mut out = Vec::new();
    for g in &snap.groups {
        let mut topics: BTreeSet<String> = g.commits.keys().map(|tp| tp.topic.clone()).collect();
        topics.extend(g.assigned_topics.iter().cloned());
        let (mut backlog, mut lost) = (0, 0);
        let mut resume_at = Vec::new();
        for p in partitions.iter().filter(|p| topics.contains(&p.topic)) {
            if matches!(p.reason, Some(SkipReason::Filtered | SkipReason::Internal)) {
                continue;
            }
            let committed = p.committed.get(&g.name).copied();
            let pos = match (committed, policy) {
                (Some(c), _) => c,
                (None, UncommittedPolicy::Earliest) => p.low,
                (None, UncommittedPolicy::Skip) => continue,
            };
            let unread_from = pos.max(p.low).min(p.end);
            backlog += p.end - unread_from;
            lost += p.lost.get(&g.name).copied().unwrap_or(0);
            // Skipped partitions get a commit only where the group had one.
            if p.status == Status::Migrate || committed.is_some() {
                let base = p.target_high.unwrap_or(0);
                resume_at.push(ResumeAt {
                    topic: p.target().to_string(),
                    partition: p.partition,
                    target_offset: base + (unread_from.max(p.start) - p.start),
                    provisional: true,
                });
            }
        }
        if !g.state.is_inactive() {
            let hosts: BTreeSet<&str> = g.members.iter().map(|m| m.host.as_str()).collect();
            let hosts: Vec<&str> = hosts.into_iter().collect();
            warnings.push(format!(
                "group {} is {} with {} member(s) (hosts: {}): consumption has not stopped; \
                 `run` refuses it unless --allow-active-groups",
                g.name,
                g.state,
                g.members.len(),
                if hosts.is_empty() {
                    "unknown".to_string()
                } else {
                    hosts.join(", ")
                }
            ));
        }
        out.push(GroupPlan {
            group: g.name.clone(),
            state: g.state.clone(),
            members: g.members.clone(),
            topics: topics.into_iter().collect(),
            backlog,
            lost,
            resume_at,
        });
    }
    out
}

/// The plan's totals, from its partitions, groups and topics (also after a live plan
/// changed them).
pub(super) fn totals(
    partitions: &[PartitionPlan],
    groups: &[GroupPlan],
    topics: &[TopicPlan],
) -> Totals {
    let mut t = Totals {
        groups: groups.len(),
        topics: topics
            .iter()
            .filter(|t| t.action != TopicAction::None)
            .count(),
        partitions: partitions.len(),
        topics_to_create: topics
            .iter()
            .filter(|t| t.action == TopicAction::Create)
            .count(),
        ..Totals::default()
    };
    for p in partitions {
        match p.reason {
            None => {
                t.partitions_to_migrate += 1;
                t.messages += p.to_migrate;
            }
            Some(r) => *t.skipped.entry(r.as_str().to_string()).or_default() += 1,
        }
        // Records lost are those below the low watermark that some group had not read:
        // the largest loss over the groups, not their sum.
        t.lost += p.lost.values().copied().max().unwrap_or(0);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Patterns;
    use crate::plan::{GroupSnapshot, Member, TopicInfo};
    use proptest::prelude::*;

    const E: UncommittedPolicy = UncommittedPolicy::Earliest;
    const S: UncommittedPolicy = UncommittedPolicy::Skip;

    #[test]
    fn seed_fully_expired_partition_is_skipped() {
        // The reference procedure: committed 3713, low 5226, high 5226 -> "skip migrate".
        let d = decide(&[("test123-group", Some(3713))], 5226, 5226, E);
        assert_eq!(d.start, 5226);
        assert_eq!(d.end, 5226);
        assert_eq!(d.status, Status::Skip);
        assert_eq!(d.reason, Some(SkipReason::Expired));
        assert_eq!(d.lost, vec![("test123-group".to_string(), 1513)]);
    }

    #[test]
    fn smallest_commit_wins() {
        let d = decide(&[("a", Some(187_900)), ("b", Some(187_800))], 0, 200_000, E);
        assert_eq!(
            (d.start, d.end, d.status),
            (187_800, 200_000, Status::Migrate)
        );
        assert!(d.lost.is_empty());
    }

    #[test]
    fn partially_expired_starts_at_low_and_counts_loss() {
        let d = decide(&[("a", Some(10)), ("b", Some(40))], 25, 100, E);
        assert_eq!((d.start, d.status), (25, Status::Migrate));
        assert_eq!(d.lost, vec![("a".to_string(), 15)]);
    }

    #[test]
    fn fully_consumed_is_nothing_unconsumed() {
        let d = decide(&[("a", Some(100))], 0, 100, E);
        assert_eq!(d.reason, Some(SkipReason::NothingUnconsumed));
        assert_eq!(d.to_migrate(), 0);
    }

    #[test]
    fn uncommitted_partition_follows_policy() {
        let d = decide(&[("a", None)], 5, 50, E);
        assert_eq!((d.start, d.status), (5, Status::Migrate));
        let d = decide(&[("a", None)], 5, 50, S);
        assert_eq!(d.reason, Some(SkipReason::Uncommitted));
        assert_eq!(d.to_migrate(), 0);
        // Under skip, a committing group still decides.
        let d = decide(&[("a", None), ("b", Some(30))], 5, 50, S);
        assert_eq!((d.start, d.status), (30, Status::Migrate));
        // Under earliest, the uncommitted group pulls the start down to low.
        let d = decide(&[("a", None), ("b", Some(30))], 5, 50, E);
        assert_eq!(d.start, 5);
    }

    #[test]
    fn empty_partition_never_committed() {
        let d = decide(&[("a", None)], 7, 7, E);
        assert_eq!(d.reason, Some(SkipReason::NothingUnconsumed));
    }

    #[test]
    fn commit_beyond_end_is_nothing_to_copy() {
        let d = decide(&[("a", Some(120))], 0, 100, E);
        assert_eq!((d.start, d.end), (100, 100));
        assert_eq!(d.reason, Some(SkipReason::NothingUnconsumed));
    }

    proptest! {
        #[test]
        fn decide_invariants(
            low in 0i64..1000,
            len in 0i64..1000,
            commits in proptest::collection::vec(proptest::option::of(0i64..2500), 1..5),
            skip in any::<bool>(),
        ) {
            let end = low + len;
            let policy = if skip { S } else { E };
            let names: Vec<String> = (0..commits.len()).map(|i| format!("g{i}")).collect();
            let positions: Vec<(&str, Option<i64>)> =
                names.iter().map(String::as_str).zip(commits.iter().copied()).collect();
            let d = decide(&positions, low, end, policy);
            // Never before the oldest record, never past the end.
            prop_assert!(low <= d.start || d.start == end);
            prop_assert!(d.start <= d.end);
            prop_assert_eq!(d.end, end);
            // Migrate exactly when there is something to copy.
            prop_assert_eq!(d.status == Status::Migrate, d.start < d.end);
            prop_assert_eq!(d.reason.is_none(), d.status == Status::Migrate);
            // Every group's unread records that still exist are inside [start, end).
            for c in &commits {
                let pos = match (c, policy) {
                    (Some(c), _) => *c,
                    (None, UncommittedPolicy::Earliest) => low,
                    (None, UncommittedPolicy::Skip) => continue,
                };
                prop_assert!(d.start <= pos.max(low).min(end));
            }
            // The start is some group's position (or low/end after clamping): no record
            // that every group already consumed is copied.
            let effective: Vec<i64> = commits.iter().filter_map(|c| match (c, policy) {
                (Some(c), _) => Some(*c),
                (None, UncommittedPolicy::Earliest) => Some(low),
                (None, UncommittedPolicy::Skip) => None,
            }).collect();
            if let Some(min) = effective.iter().min() {
                prop_assert_eq!(d.start, (*min).max(low).min(end));
            } else {
                prop_assert_eq!(d.reason, Some(SkipReason::Uncommitted));
            }
            // Loss is reported for exactly the groups below low, by how much.
            let expected: Vec<(String, i64)> = names.iter().zip(&commits)
                .filter_map(|(g, c)| c.filter(|c| *c < low).map(|c| (g.clone(), low - c)))
                .collect();
            prop_assert_eq!(&d.lost, &expected);
        }
    }

    fn group(name: &str, commits: &[(&str, i32, i64)]) -> GroupSnapshot {
        GroupSnapshot {
            name: name.into(),
            state: "Empty".into(),
            members: vec![],
            commits: commits
                .iter()
                .map(|(t, p, o)| (Tp::new(*t, *p), *o))
                .collect(),
            assigned_topics: BTreeSet::new(),
        }
    }

    fn topic(partitions: i32) -> TopicInfo {
        TopicInfo {
            partitions,
            configs: BTreeMap::new(),
        }
    }

    fn wm(low: i64, high: i64) -> Watermarks {
        Watermarks {
            low,
            high,
            stable: high,
        }
    }

    /// The reference procedure's example: test123-group on test1..3, test34-group on test3..4.
    fn seed() -> Snapshot {
        let mut s = Snapshot {
            all_groups: vec!["test123-group".into(), "test34-group".into()],
            groups: vec![
                group(
                    "test123-group",
                    &[("test1", 0, 3713), ("test2", 0, 10), ("test3", 0, 187_900)],
                ),
                group("test34-group", &[("test3", 0, 187_800), ("test4", 0, 50)]),
            ],
            ..Snapshot::default()
        };
        for t in ["test1", "test2", "test3", "test4"] {
            s.source_topics.insert(t.into(), topic(1));
            s.target_topics.insert(t.into(), topic(1));
            s.target_offsets.insert(Tp::new(t, 0), (0, 0));
        }
        s.source_offsets.insert(Tp::new("test1", 0), wm(5226, 5226));
        s.source_offsets.insert(Tp::new("test2", 0), wm(0, 10));
        s.source_offsets.insert(Tp::new("test3", 0), wm(0, 264_322));
        s.source_offsets.insert(Tp::new("test4", 0), wm(0, 80));
        s
    }

    fn plan(s: &Snapshot, f: &FilterConfig, create: bool) -> Plan {
        let rules = Rules {
            filter: f,
            policy: E,
            create_topics: create,
            source: "src:1",
            target: "tgt:2",
        };
        compute(s, &rules, 0)
    }

    fn part<'a>(p: &'a Plan, t: &str, n: i32) -> &'a PartitionPlan {
        p.partitions
            .iter()
            .find(|x| x.topic == t && x.partition == n)
            .expect("partition in plan")
    }

    #[test]
    fn seed_plan() {
        let p = plan(&seed(), &FilterConfig::default(), false);
        let t1 = part(&p, "test1", 0);
        assert_eq!(
            (t1.status, t1.reason),
            (Status::Skip, Some(SkipReason::Expired))
        );
        assert_eq!(t1.lost["test123-group"], 1513);
        let t2 = part(&p, "test2", 0);
        assert_eq!(t2.reason, Some(SkipReason::NothingUnconsumed));
        let t3 = part(&p, "test3", 0);
        assert_eq!(
            (t3.start, t3.end, t3.to_migrate),
            (187_800, 264_322, 76_522)
        );
        assert_eq!(t3.committed.len(), 2);
        let t4 = part(&p, "test4", 0);
        assert_eq!(t4.to_migrate, 30);
        assert_eq!(p.totals.partitions_to_migrate, 2);
        assert_eq!(p.totals.messages, 76_552);
        assert_eq!(p.totals.lost, 1513);
        assert_eq!(p.totals.skipped["expired"], 1);
        assert_eq!(p.totals.skipped["nothing-unconsumed"], 1);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let g123 = p
            .groups
            .iter()
            .find(|g| g.group == "test123-group")
            .expect("group");
        assert_eq!(g123.backlog, 264_322 - 187_900);
        assert_eq!(g123.lost, 1513);
        assert_eq!(g123.topics, vec!["test1", "test2", "test3"]);
        let g34 = p
            .groups
            .iter()
            .find(|g| g.group == "test34-group")
            .expect("group");
        assert_eq!(g34.backlog, 264_322 - 187_800 + 30);
    }

    #[test]
    fn uncommitted_partitions_of_a_consumed_topic_are_considered() {
        let mut s = seed();
        s.source_topics.insert("test4".into(), topic(3));
        s.target_topics.insert("test4".into(), topic(3));
        s.source_offsets.insert(Tp::new("test4", 1), wm(0, 7));
        s.source_offsets.insert(Tp::new("test4", 2), wm(2, 2));
        let p = plan(&s, &FilterConfig::default(), false);
        let p1 = part(&p, "test4", 1);
        assert_eq!((p1.start, p1.to_migrate), (0, 7));
        assert_eq!(p1.uncommitted_groups, vec!["test34-group"]);
        assert_eq!(
            part(&p, "test4", 2).reason,
            Some(SkipReason::NothingUnconsumed)
        );
        let rules = Rules {
            filter: &FilterConfig::default(),
            policy: S,
            create_topics: false,
            source: "a",
            target: "b",
        };
        let p = compute(&s, &rules, 0);
        assert_eq!(part(&p, "test4", 1).reason, Some(SkipReason::Uncommitted));
    }

    /// A target topic whose configs make its brokers rewrite the copied batches is warned
    /// of, when records go to it: as it is on the target, or as `create_topics` will
    /// create it from the source's configs.
    #[test]
    fn target_topics_that_rewrite_batches_are_warned_of() {
        let mut s = seed();
        let set = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // test3 and test4 are migrated; test1 (expired) and test2 (consumed) are not.
        s.target_topics.get_mut("test3").unwrap().configs = set(&[
            ("compression.type", "gzip"),
            ("message.timestamp.type", "LogAppendTime"),
        ]);
        s.target_topics.get_mut("test1").unwrap().configs = set(&[("compression.type", "zstd")]);
        s.target_topics.get_mut("test2").unwrap().configs =
            set(&[("message.timestamp.type", "LogAppendTime")]);
        s.target_topics.remove("test4");
        s.source_topics.get_mut("test4").unwrap().configs = set(&[
            ("compression.type", "producer"),
            ("message.timestamp.type", "LogAppendTime"),
        ]);
        let p = plan(&s, &FilterConfig::default(), true);
        let rewrites: Vec<&String> = p
            .warnings
            .iter()
            .filter(|w| w.contains("its brokers"))
            .collect();
        assert_eq!(rewrites.len(), 3, "{:#?}", p.warnings);
        assert!(rewrites[0].starts_with("target topic test3 has compression.type=gzip"));
        assert!(rewrites[1].starts_with("target topic test3 has message.timestamp.type"));
        assert!(rewrites[2].starts_with("target topic test4 has message.timestamp.type"));
        // Without create_topics, a missing target topic is a problem, not a warning.
        let p = plan(&s, &FilterConfig::default(), false);
        assert!(!p.warnings.iter().any(|w| w.contains("test4 has")));
    }

    #[test]
    fn filtered_and_internal_topics_are_listed_but_not_migrated() {
        let mut s = seed();
        s.groups[0]
            .commits
            .insert(Tp::new("__consumer_offsets", 0), 1);
        s.source_topics
            .insert("__consumer_offsets".into(), topic(1));
        s.source_offsets
            .insert(Tp::new("__consumer_offsets", 0), wm(0, 9));
        let f = FilterConfig {
            exclude_topics: Patterns::new(["test4"]),
            ..FilterConfig::default()
        };
        let p = plan(&s, &f, false);
        assert_eq!(part(&p, "test4", 0).reason, Some(SkipReason::Filtered));
        assert_eq!(part(&p, "test4", 0).to_migrate, 0);
        assert_eq!(
            part(&p, "__consumer_offsets", 0).reason,
            Some(SkipReason::Internal)
        );
        assert_eq!(p.totals.messages, 76_522);
        let t4 = p.topics.iter().find(|t| t.topic == "test4").expect("topic");
        assert_eq!(t4.action, TopicAction::None);
    }

    #[test]
    fn target_problems_are_all_listed() {
        let mut s = seed();
        s.target_topics.remove("test3");
        s.target_topics.insert("test4".into(), topic(0));
        s.source_topics.insert("test4".into(), topic(1));
        let p = plan(&s, &FilterConfig::default(), false);
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        assert!(
            p.problems
                .iter()
                .any(|m| m.contains("test3") && m.contains("does not exist"))
        );
        assert!(
            p.problems
                .iter()
                .any(|m| m.contains("test4") && m.contains("partition"))
        );
        let t3 = p.topics.iter().find(|t| t.topic == "test3").expect("topic");
        assert_eq!(t3.action, TopicAction::Missing);
        // With create_topics, the missing one becomes a creation; too few stays a problem.
        let p = plan(&s, &FilterConfig::default(), true);
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert_eq!(p.totals.topics_to_create, 1);
    }

    #[test]
    fn non_empty_target_partition_and_open_transaction_warn() {
        let mut s = seed();
        s.target_offsets.insert(Tp::new("test3", 0), (0, 5));
        s.source_offsets.insert(
            Tp::new("test4", 0),
            Watermarks {
                low: 0,
                high: 82,
                stable: 80,
            },
        );
        let p = plan(&s, &FilterConfig::default(), false);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("test3/0") && w.contains("5 record"))
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("test4/0") && w.contains("open transaction"))
        );
        assert_eq!(part(&p, "test4", 0).end, 80);
    }

    #[test]
    fn active_group_warns_with_hosts() {
        let mut s = seed();
        s.groups[1].state = "Stable".into();
        s.groups[1].members = vec![Member {
            client_id: "c1".into(),
            host: "/10.1.2.3".into(),
        }];
        let p = plan(&s, &FilterConfig::default(), false);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("test34-group") && w.contains("10.1.2.3"))
        );
    }

    #[test]
    fn unmatched_patterns_and_missing_topics_warn() {
        let mut s = seed();
        s.groups[0].commits.insert(Tp::new("gone", 0), 3);
        let f = FilterConfig {
            groups: Patterns::new(["test*", "nomatch-*"]),
            topics: Patterns::new(["test*", "zzz"]),
            ..FilterConfig::default()
        };
        let p = plan(&s, &f, false);
        assert!(p.warnings.iter().any(|w| w.contains("nomatch-*")));
        assert!(p.warnings.iter().any(|w| w.contains("\"zzz\"")));
        assert!(p.warnings.iter().any(|w| w.contains("topic gone")));
    }

    #[test]
    fn plan_json_round_trips() {
        let p = plan(&seed(), &FilterConfig::default(), false);
        let json = serde_json::to_string(&p).expect("serialize");
        let back: Plan = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(p, back);
        let v: serde_json::Value = serde_json::from_str(&json).expect("value");
        let first = &v["partitions"][0];
        for key in [
            "topic",
            "target_topic",
            "partition",
            "low",
            "high",
            "start",
            "end",
            "committed",
            "status",
            "reason",
        ] {
            assert!(first.get(key).is_some(), "{key} missing");
        }
        assert_eq!(first["status"], "skip");
        assert_eq!(first["reason"], "expired");
    }

    #[test]
    fn renamed_topics_are_checked_and_resumed_by_their_target_names() {
        let mut s = seed();
        s.renames.insert("test3".into(), "test3.v2".into());
        s.renames.insert("test4".into(), "legacy.test4".into());
        // The target knows test3.v2 (with 5 records already) but not legacy.test4.
        s.target_topics.insert("test3.v2".into(), topic(1));
        s.target_offsets.insert(Tp::new("test3.v2", 0), (0, 5));
        let p = plan(&s, &FilterConfig::default(), true);
        assert_eq!(part(&p, "test3", 0).target_topic, "test3.v2");
        assert_eq!(part(&p, "test3", 0).target_high, Some(5));
        assert_eq!(part(&p, "test1", 0).target(), "test1");
        let t4 = p.topics.iter().find(|t| t.topic == "test4").expect("test4");
        assert_eq!(
            (t4.target(), t4.action),
            ("legacy.test4", TopicAction::Create)
        );
        let t3 = p.topics.iter().find(|t| t.topic == "test3").expect("test3");
        assert_eq!((t3.target(), t3.action), ("test3.v2", TopicAction::Ready));
        assert!(
            p.warnings.iter().any(|w| w.contains("target test3.v2/0")),
            "{:?}",
            p.warnings
        );
        let g = p
            .groups
            .iter()
            .find(|g| g.group == "test34-group")
            .expect("group");
        assert!(
            g.resume_at
                .iter()
                .any(|r| r.topic == "test3.v2" && r.target_offset == 5)
        );
        assert!(p.check().is_ok());
        let text = crate::plan::render::text(&p, false);
        assert!(text.contains("test4 -> legacy.test4"), "{text}");

        // An edited plan that sends two topics to one is refused.
        let mut bad = p.clone();
        for q in bad.partitions.iter_mut().filter(|q| q.topic == "test4") {
            q.target_topic = "test3.v2".into();
        }
        assert!(bad.check().unwrap_err().contains("test3.v2"));
    }

    #[test]
    fn plans_written_before_renaming_read_as_same_names() {
        let p = plan(&seed(), &FilterConfig::default(), false);
        let mut v = serde_json::to_value(&p).expect("value");
        for list in ["partitions", "topics"] {
            for item in v[list].as_array_mut().expect("array") {
                item.as_object_mut().expect("object").remove("target_topic");
            }
        }
        let back: Plan = serde_json::from_value(v).expect("older plan");
        assert!(back.check().is_ok());
        assert_eq!(back.partitions[0].target_topic, "");
        assert_eq!(back.partitions[0].target(), back.partitions[0].topic);
        assert_eq!(back.topics[0].target(), back.topics[0].topic);
    }
}
