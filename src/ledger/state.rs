//! What the state file holds: the plan, every partition's progress and translation, each
//! group's commit outcome; how it is read back and checked before anything resumes from it.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::config::UncommittedPolicy;
use crate::error::usage;
use crate::fsutil;
use crate::model::{Shard, Tp};
use crate::offsets::{OffsetMap, Tracker};
use crate::plan::live::StillSince;
use crate::plan::{PartitionPlan, Plan, Status};

use super::fingerprint::state_id;

pub const STATE_VERSION: u32 = 1;

/// A partition's progress as saved in the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Target high watermark before the first write; `None` until writing starts.
    pub base: Option<i64>,
    /// Last acknowledged (source offset, target offset).
    pub acked: Option<(i64, i64)>,
    /// Records on the target from this copy (acknowledged, or found there on resume).
    pub written: u64,
    /// Every record of the range is on the target.
    pub done: bool,
    /// Every record kmigrate sent to the target partition was acknowledged when this was
    /// saved (a copy that drained, not one interrupted or killed), so none can be waiting
    /// on the leader for its replicas: the next copy need not wait for them to settle.
    /// Cleared (and saved) before a copy sends anything; absent in older state files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub settled: bool,
}

/// Where one group resumes on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffsets {
    pub group: String,
    /// (topic, partition, target offset), sorted.
    pub offsets: Vec<(String, i32, i64)>,
    pub outcome: CommitOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result", content = "detail")]
pub enum CommitOutcome {
    /// Not committed yet.
    Pending,
    /// Committed on the target.
    Committed,
    /// Some partitions kept the target's existing commit because it is ahead of the
    /// translated offset (no `--force-offsets`); the others were committed.
    KeptAhead(Vec<String>),
    /// The group has members on the target: nothing committed.
    Refused(String),
}

impl CommitOutcome {
    /// The group's offsets are on the target (all committed, or some kept ahead): a rerun
    /// leaves it alone.
    pub fn is_done(&self) -> bool {
        matches!(self, CommitOutcome::Committed | CommitOutcome::KeptAhead(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Records are being copied.
    Copying,
    /// Every planned record is on the target.
    Copied,
    /// Groups' offsets are committed on the target: the migration is complete.
    Complete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Fingerprint of the plan's ranges (and of the shard): a state file only resumes the
    /// plan, and the share of it, it was made for.
    pub plan_id: String,
    /// The share of the plan this file's worker copies (`run --shard`); `None`: all of it.
    #[serde(default)]
    pub shard: Option<Shard>,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    pub phase: Phase,
    /// One entry per partition the plan migrates.
    pub partitions: Vec<PartitionState>,
    /// Where each group resumes on the target, and whether that is committed.
    #[serde(default)]
    pub offsets: Vec<GroupOffsets>,
    /// The plan being executed.
    pub plan: Plan,
    /// What a sync last read of the source's ends, and since when they had not moved
    /// (absent from older state files and from those of `run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_still: Option<StillSince>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub topic: String,
    /// The topic it is copied to on the target; empty (state files older than renaming)
    /// means the same name as `topic`.
    #[serde(default)]
    pub target_topic: String,
    pub partition: i32,
    pub start: i64,
    pub end: i64,
    pub progress: Progress,
    /// Where each group that consumes this partition resumes on the target.
    pub translation: Tracker,
    /// Where each copied source record landed on the target (absent from state files
    /// written before kmigrate kept it: then empty while records were written).
    #[serde(default)]
    pub map: OffsetMap,
}

impl PartitionState {
    /// A planned partition with nothing copied yet.
    pub(super) fn fresh(p: &PartitionPlan, policy: UncommittedPolicy) -> PartitionState {
        PartitionState {
            topic: p.topic.clone(),
            target_topic: p.target().to_string(),
            partition: p.partition,
            start: p.start,
            end: p.end,
            progress: Progress::default(),
            map: OffsetMap::default(),
            // A group that never committed a partition reads it from the start under
            // `earliest`, so it resumes at the first copied record; under `skip` it gets
            // no offset there.
            translation: Tracker::new(
                p.committed.iter().map(|(g, c)| (g.clone(), *c)).chain(
                    p.uncommitted_groups
                        .iter()
                        .filter(|_| policy == UncommittedPolicy::Earliest)
                        .map(|g| (g.clone(), p.low)),
                ),
            ),
        }
    }

    /// The source offset the copy has reached: every record below it is on the target
    /// (as of the last acknowledgement).
    pub fn copied_to(&self) -> i64 {
        match (self.progress.done, self.progress.acked) {
            (true, _) => self.end,
            (false, Some((src, _))) => src + 1,
            (false, None) => self.start,
        }
    }

    /// The target offset the next record of this partition is written at: right after the
    /// last acknowledged one, else the target's end before the first write; `None` before
    /// the copy reached the target at all.
    pub fn next_target(&self) -> Option<i64> {
        self.progress
            .acked
            .map(|(_, t)| t + 1)
            .or(self.progress.base)
    }

    /// The partition it is copied to on the target (same number, target topic's name).
    pub fn target_tp(&self) -> Tp {
        Tp::new(
            crate::plan::target_or_same(&self.target_topic, &self.topic),
            self.partition,
        )
    }
}

impl State {
    /// A fresh state for a plan: nothing copied yet.
    pub fn new(plan: &Plan, now_ms: i64) -> State {
        State::new_part(plan, now_ms, None)
    }

    /// A fresh state for one shard of a plan: `owned` are the shard's indexes into
    /// `plan.partitions` (see `copy::shard`); only its copied partitions get progress.
    pub fn new_part(plan: &Plan, now_ms: i64, shard: Option<(Shard, &[usize])>) -> State {
        let partitions = plan
            .partitions
            .iter()
            .enumerate()
            .filter(|(i, _)| shard.is_none_or(|(_, owned)| owned.contains(i)))
            .map(|(_, p)| p)
            .filter(|p| p.status == Status::Migrate)
            .map(|p| PartitionState::fresh(p, plan.uncommitted_partitions))
            .collect();
        let shard = shard.map(|(s, _)| s);
        State {
            version: STATE_VERSION,
            plan_id: state_id(plan, shard),
            shard,
            started_at_ms: now_ms,
            updated_at_ms: now_ms,
            phase: Phase::Copying,
            partitions,
            offsets: Vec::new(),
            plan: plan.clone(),
            source_still: None,
        }
    }

    /// Reads a state file; `None` when there is none. A file that exists but cannot be used
    /// is an error: starting afresh would copy records a second time.
    pub fn load(path: &Path) -> anyhow::Result<Option<State>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(usage(format!(
                    "cannot read the state file {}: {e}. Fix its permissions; do not delete it \
                     while a migration is unfinished (it records what is on the target).",
                    path.display()
                )));
            }
        };
        State::parse(&bytes, &path.display().to_string()).map(Some)
    }

    /// Parses and checks a state file's bytes; `name` names the file in errors. Pure, so
    /// the parser can be fuzzed (`fuzz/`).
    pub fn parse(bytes: &[u8], name: &str) -> anyhow::Result<State> {
        let damaged = |why: String| {
            usage(format!(
                "the state file {name} is damaged or not a kmigrate state file ({why}). It \
                 records which records are already on the target, so kmigrate will not guess: \
                 restore it, or, to start over, empty the target topics and move the file away."
            ))
        };
        let state: State = serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
        if state.version != STATE_VERSION {
            return Err(usage(format!(
                "the state file {name} has version {}, this kmigrate reads version \
                 {STATE_VERSION}: finish the migration with the kmigrate that started it.",
                state.version
            )));
        }
        if state.plan_id != state_id(&state.plan, state.shard) {
            return Err(usage(format!(
                "the state file {name} does not match the plan it contains (edited by hand?): \
                 restore it, or, to start over, empty the target topics and move the file away."
            )));
        }
        state
            .plan
            .check()
            .map_err(|why| damaged(format!("its plan: {why}")))?;
        state.check().map_err(damaged)?;
        Ok(state)
    }

    /// The partitions are exactly the plan's migrated ones (a shard's: some of them, in the
    /// plan's order; which ones is checked against the split by the command that knows it),
    /// and each one's progress lies within its range.
    pub(super) fn check(&self) -> Result<(), String> {
        let mut planned: Vec<_> = self
            .plan
            .partitions
            .iter()
            .filter(|p| p.status == Status::Migrate)
            .collect();
        if let Some(shard) = self.shard {
            if shard.index >= shard.count {
                return Err(format!("shard {shard} does not exist"));
            }
            let mine: std::collections::BTreeSet<(&str, i32)> = self
                .partitions
                .iter()
                .map(|s| (s.topic.as_str(), s.partition))
                .collect();
            planned.retain(|p| mine.contains(&(p.topic.as_str(), p.partition)));
        }
        if planned.len() != self.partitions.len() {
            return Err(format!(
                "{} partitions in progress, but the plan migrates {}",
                self.partitions.len(),
                planned.len()
            ));
        }
        for (s, p) in self.partitions.iter().zip(planned) {
            let name = format!("{}/{}", s.topic, s.partition);
            if (s.topic.as_str(), s.partition, s.start, s.end)
                != (p.topic.as_str(), p.partition, p.start, p.end)
                || s.target_tp() != p.target_tp()
            {
                return Err(format!("{name} does not match the plan's {}", p.tp()));
            }
            let g = &s.progress;
            if g.written > (s.end - s.start) as u64 {
                return Err(format!(
                    "{name}: {} records written of a range of {}",
                    g.written,
                    s.end - s.start
                ));
            }
            if let Some(base) = g.base
                && base < 0
            {
                return Err(format!("{name}: negative target base {base}"));
            }
            s.map
                .check(s.start, s.end)
                .map_err(|why| format!("{name}: offset map: {why}"))?;
            if !s.map.runs().is_empty() && (s.map.records() != g.written || s.map.last() != g.acked)
            {
                return Err(format!(
                    "{name}: the offset map holds {} records, the progress {}",
                    s.map.records(),
                    g.written
                ));
            }
            if let Some((src, dst)) = g.acked {
                let base = g
                    .base
                    .ok_or_else(|| format!("{name}: acknowledged but no base"))?;
                if !(s.start <= src && src < s.end) || dst < base || dst == i64::MAX {
                    return Err(format!(
                        "{name}: acknowledged offsets {src}/{dst} out of range"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Records on the target from this migration.
    pub fn written(&self) -> u64 {
        self.partitions.iter().map(|p| p.progress.written).sum()
    }

    /// Writes the state atomically (temporary file, fsync, rename).
    pub(super) fn save(&mut self, path: &Path, now_ms: i64) -> anyhow::Result<()> {
        self.updated_at_ms = now_ms;
        let json = serde_json::to_vec(self)?;
        fsutil::write_atomic(path, &json)
    }

    /// The state's bytes as they would be saved now (a checkpoint taken under a lock and
    /// written outside it).
    pub fn to_bytes(&mut self, now_ms: i64) -> anyhow::Result<Vec<u8>> {
        self.updated_at_ms = now_ms;
        Ok(serde_json::to_vec(self)?)
    }
}

/// Writes a checkpoint made by [`State::to_bytes`] as the state file at `path` (while the
/// state itself is being copied into by pipelines).
pub fn write_checkpoint(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fsutil::write_atomic(path, bytes)
        .with_context(|| format!("saving a checkpoint to {}", path.display()))
}
