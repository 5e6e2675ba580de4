//! `kmigrate plan`: what will be migrated, to the offset.
//!
//! - [`gather`] reads the source and target clusters into a [`Snapshot`] (all the I/O);
//! - [`compute`] turns a snapshot into a [`Plan`] (pure: no Kafka, unit- and property-tested);
//! - [`render`] prints a plan for people (tables) or machines (JSON).
//!
//! The [`Plan`] is also the file `plan --out` writes and `run --plan` reads, so its serde form
//! is a documented, stable schema (docs/plan.md, "Plan JSON").

pub mod compute;
pub mod gather;
pub mod late;
pub mod live;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::UncommittedPolicy;

pub use crate::model::{GroupState, Member, Tp, Watermarks};

// ---------------------------------------------------------------------------------------
// Input: what gather read.

/// Everything the plan is computed from, as read from both clusters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every consumer group name on the source (for "pattern matches nothing" warnings).
    pub all_groups: Vec<String>,
    /// The groups the filter selected, with their commits.
    pub groups: Vec<GroupSnapshot>,
    /// Source topics by name.
    pub source_topics: BTreeMap<String, TopicInfo>,
    /// Watermarks of every source partition a selected group consumes.
    pub source_offsets: BTreeMap<Tp, Watermarks>,
    /// Target topics by name.
    pub target_topics: BTreeMap<String, TopicInfo>,
    /// (low, high) of the target partitions matching planned source partitions, by the
    /// target topic's name.
    pub target_offsets: BTreeMap<Tp, (i64, i64)>,
    /// Source topic -> target topic, for the topics `[topics]` renames; every other topic
    /// keeps its name.
    pub renames: BTreeMap<String, String>,
}

impl Snapshot {
    /// The name `topic` has on the target.
    pub fn target_name<'a>(&'a self, topic: &'a str) -> &'a str {
        self.renames.get(topic).map_or(topic, String::as_str)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSnapshot {
    pub name: String,
    pub state: GroupState,
    pub members: Vec<Member>,
    /// Every committed offset of the group.
    pub commits: BTreeMap<Tp, i64>,
    /// Topics its live members are assigned (a group may consume a topic it never committed).
    pub assigned_topics: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicInfo {
    pub partitions: i32,
    /// Source topics: the configs set on the topic, read for topics to create on the
    /// target. Target topics: the effective `compression.type` and `message.timestamp.type`.
    pub configs: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------
// Output: the plan.

pub const PLAN_VERSION: u32 = 1;

/// The reviewed plan: what `run` copies. Serialized as the plan JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Schema version of this document.
    pub version: u32,
    /// When the source was read, milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Source bootstrap servers the plan was read from.
    pub source: String,
    /// Target bootstrap servers the plan was checked against.
    pub target: String,
    pub uncommitted_partitions: UncommittedPolicy,
    pub create_topics: bool,
    /// One entry per source partition considered, sorted by topic and partition.
    pub partitions: Vec<PartitionPlan>,
    /// One entry per selected consumer group.
    pub groups: Vec<GroupPlan>,
    /// One entry per topic with at least one considered partition.
    pub topics: Vec<TopicPlan>,
    pub totals: Totals,
    /// Things to look at; the plan can still run.
    pub warnings: Vec<String>,
    /// Things that stop `run` until fixed.
    pub problems: Vec<String>,
    /// A plan that follows a live source (`kmigrate sync`): every partition a group reads
    /// is migrated, possibly from an empty range, and each range's end moves up with the
    /// source's last stable offset until `kmigrate cutover`. Absent (false) otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionPlan {
    pub topic: String,
    /// The topic it is copied to on the target; empty (plans older than renaming) means
    /// the same name as `topic`.
    #[serde(default)]
    pub target_topic: String,
    pub partition: i32,
    /// Source low watermark (oldest offset still on disk).
    pub low: i64,
    /// Source high watermark.
    pub high: i64,
    /// Source last stable offset (= high unless a transaction is open).
    pub stable: i64,
    /// First offset to copy.
    pub start: i64,
    /// Copy up to here, exclusive (the last stable offset).
    pub end: i64,
    /// `end - start`: offsets to copy, an upper bound of records when the partition has gaps
    /// (compaction, transaction markers).
    pub to_migrate: i64,
    /// Committed offset per group that committed this partition.
    pub committed: BTreeMap<String, i64>,
    /// Groups that consume the topic but never committed this partition.
    pub uncommitted_groups: Vec<String>,
    /// Offsets each group lost to expiry (its commit was below the low watermark).
    pub lost: BTreeMap<String, i64>,
    pub status: Status,
    /// Why a partition is skipped; `null` when it is migrated.
    pub reason: Option<SkipReason>,
    /// Target partition's (low, high) when the plan was made; `null` if the topic is missing.
    pub target_low: Option<i64>,
    pub target_high: Option<i64>,
}

impl PartitionPlan {
    pub fn tp(&self) -> Tp {
        Tp::new(&self.topic, self.partition)
    }

    /// The name of the topic on the target.
    pub fn target(&self) -> &str {
        target_or_same(&self.target_topic, &self.topic)
    }

    /// Whether the partition's topic is left out of the migration (filtered or internal).
    pub fn left_out(&self) -> bool {
        matches!(
            self.reason,
            Some(SkipReason::Filtered | SkipReason::Internal)
        )
    }

    /// The partition it is copied to on the target (same number, target topic's name).
    pub fn target_tp(&self) -> Tp {
        Tp::new(self.target(), self.partition)
    }
}

/// `target`, or `topic` when `target` is empty (written before topics could be renamed).
pub fn target_or_same<'a>(target: &'a str, topic: &'a str) -> &'a str {
    if target.is_empty() { topic } else { target }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Migrate,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// Every group has consumed everything: start == end.
    NothingUnconsumed,
    /// Commits were below a low watermark that equals the end: all unconsumed records expired.
    Expired,
    /// The topic is excluded by `[filter]`.
    Filtered,
    /// An internal topic (`__*`): never migrated.
    Internal,
    /// No group committed the partition and `uncommitted_partitions = "skip"`.
    Uncommitted,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NothingUnconsumed => "nothing-unconsumed",
            SkipReason::Expired => "expired",
            SkipReason::Filtered => "filtered",
            SkipReason::Internal => "internal",
            SkipReason::Uncommitted => "uncommitted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPlan {
    pub group: String,
    pub state: GroupState,
    pub members: Vec<Member>,
    /// Topics the group consumes (committed or assigned).
    pub topics: Vec<String>,
    /// Offsets the group has not consumed yet, summed over its migrated topics.
    pub backlog: i64,
    /// Offsets the group lost to expiry.
    pub lost: i64,
    /// Where the group will resume on the target, per partition, as far as it can be known
    /// before the copy: the target's high watermark plus the offsets copied before the
    /// group's position. Provisional: gaps in the source range move it down, and the
    /// translation made during the copy is what gets committed.
    pub resume_at: Vec<ResumeAt>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeAt {
    pub topic: String,
    pub partition: i32,
    pub target_offset: i64,
    pub provisional: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicPlan {
    pub topic: String,
    /// The topic's name on the target; empty (plans older than renaming) means `topic`.
    #[serde(default)]
    pub target_topic: String,
    pub source_partitions: i32,
    /// Partition count on the target; `null` when the topic does not exist there.
    pub target_partitions: Option<i32>,
    pub action: TopicAction,
    /// Configs a created topic gets (the source topic's non-default ones).
    pub create_configs: BTreeMap<String, String>,
    /// Offsets to copy for this topic.
    pub to_migrate: i64,
}

impl TopicPlan {
    /// The name of the topic on the target.
    pub fn target(&self) -> &str {
        target_or_same(&self.target_topic, &self.topic)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopicAction {
    /// The target topic exists with enough partitions.
    Ready,
    /// `run` creates it (`create_topics = true`).
    Create,
    /// Missing on the target and `create_topics = false`: a problem.
    Missing,
    /// The target has fewer partitions than the source: a problem.
    TooFewPartitions,
    /// Nothing of this topic is planned (filtered or internal).
    None,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub groups: usize,
    pub topics: usize,
    pub partitions: usize,
    pub partitions_to_migrate: usize,
    /// Offsets to copy (upper bound of records).
    pub messages: i64,
    /// Offsets lost to expiry, summed over groups.
    pub lost: i64,
    /// Skipped partitions by reason.
    pub skipped: BTreeMap<String, usize>,
    pub topics_to_create: usize,
}

// ---------------------------------------------------------------------------------------
// Reading a plan back.

/// Reads a plan document (`plan --out`, or the copy inside a state file) and checks that it
/// is one kmigrate could have written. `name` names the file in errors. Pure, so the parser
/// can be fuzzed (`fuzz/`).
pub fn parse_plan(bytes: &[u8], name: &str) -> anyhow::Result<Plan> {
    let plan: Plan = serde_json::from_slice(bytes).map_err(|e| {
        crate::error::usage(format!(
            "{name} is not a kmigrate plan ({e}): make one with `kmigrate plan --out {name}`"
        ))
    })?;
    if plan.version != PLAN_VERSION {
        return Err(crate::error::usage(format!(
            "the plan {name} has version {}, this kmigrate reads version {PLAN_VERSION}: plan again",
            plan.version
        )));
    }
    plan.check().map_err(|why| {
        crate::error::usage(format!(
            "the plan {name} is inconsistent ({why}); it was edited or damaged: make a new one \
             with `kmigrate plan --out {name}`"
        ))
    })?;
    Ok(plan)
}

impl Plan {
    /// The invariants `compute` guarantees and the copy relies on: offsets in order, each
    /// partition once, `to_migrate` = `end - start`, only non-empty ranges migrated.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for p in &self.partitions {
            let tp = p.tp();
            if p.topic.is_empty() || p.partition < 0 {
                return Err(format!("partition {tp:?} has no valid topic and partition"));
            }
            if !seen.insert(tp.clone()) {
                return Err(format!("{tp} is listed twice"));
            }
            if !(0 <= p.start && p.start <= p.end) {
                return Err(format!(
                    "{tp}: start {} and end {} are out of order",
                    p.start, p.end
                ));
            }
            if p.end.checked_sub(p.start) != Some(p.to_migrate) {
                return Err(format!(
                    "{tp}: to_migrate is {} but end - start is {}",
                    p.to_migrate,
                    p.end - p.start
                ));
            }
            // A live plan follows partitions whose groups consumed everything so far.
            if p.status == Status::Migrate && p.start == p.end && !self.live {
                return Err(format!("{tp} is marked migrate with nothing to copy"));
            }
            if p.committed.values().any(|c| *c < 0) {
                return Err(format!("{tp} has a negative committed offset"));
            }
        }
        // Each source topic goes to one target topic, and no two to the same one: their
        // records would mix.
        let mut target_of: BTreeMap<&str, &str> = BTreeMap::new();
        let mut source_of: BTreeMap<&str, &str> = BTreeMap::new();
        // Topics left out (filtered, internal) are never written, whatever their name.
        let named = self
            .partitions
            .iter()
            .filter(|p| !p.left_out())
            .map(|p| (p.topic.as_str(), p.target()));
        let named = named.chain(
            self.topics
                .iter()
                .filter(|t| t.action != TopicAction::None)
                .map(|t| (t.topic.as_str(), t.target())),
        );
        for (source, target) in named {
            if let Some(other) = target_of.insert(source, target)
                && other != target
            {
                return Err(format!(
                    "topic {source} is copied to both {other} and {target}"
                ));
            }
            if let Some(other) = source_of.insert(target, source)
                && other != source
            {
                return Err(format!(
                    "topics {other} and {source} are both copied to {target}"
                ));
            }
        }
        Ok(())
    }
}
