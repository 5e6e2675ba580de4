//! The ledger: the state file of a migration. It holds the plan being executed, every
//! partition's progress and translation, and each group's commit outcome; it is saved
//! atomically so that an interrupted run resumes without losing or duplicating a record.
//!
//! [`Ledger`] owns the file: every save and every phase change goes through it, so the
//! order "bases on disk before the first record, checkpoint, copied, complete" is
//! written in one place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::config::UncommittedPolicy;
use crate::error::usage;
use crate::fsutil;
use crate::model::now_ms;
use crate::model::{Shard, Tp, Watermarks};
use crate::offsets::{OffsetMap, Tracker};
use crate::plan::live::{self, Growth, Moved};
use crate::plan::{PartitionPlan, Plan, Status};

pub mod shards;

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
    fn fresh(p: &PartitionPlan, policy: UncommittedPolicy) -> PartitionState {
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
    fn check(&self) -> Result<(), String> {
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

    /// Moves the end of every range of a live plan up to the source's last stable offset
    /// in `now`, in the state and in its plan alike (so that the file stays consistent);
    /// returns the ends that moved. A range that moved is not done any more, nor is the
    /// copy. Fixed plans and completed migrations never move.
    pub fn extend(&mut self, now: &BTreeMap<Tp, Watermarks>) -> Vec<Moved> {
        if !self.plan.live || self.phase == Phase::Complete {
            return Vec::new();
        }
        let mut moved = Vec::new();
        for ps in &mut self.partitions {
            let tp = Tp::new(&ps.topic, ps.partition);
            let Some(w) = now.get(&tp) else { continue };
            let Some(end) = live::extended_end(ps.end, w) else {
                continue;
            };
            let Some(pp) = self.plan.partitions.iter_mut().find(|p| p.tp() == tp) else {
                continue;
            };
            pp.end = end;
            pp.to_migrate = end - pp.start;
            pp.high = pp.high.max(w.high);
            pp.stable = end;
            moved.push(Moved {
                tp,
                from: ps.end,
                to: end,
            });
            ps.end = end;
            ps.progress.done = false;
        }
        if !moved.is_empty() {
            self.phase = Phase::Copying;
        }
        moved
    }

    /// Adds what a rescan of the source found to a live plan and to the state (see
    /// [`live::add`]): the new groups, and the new partitions with nothing copied, in the
    /// plan's order; the fingerprint is that of the grown plan. A new partition reopens the
    /// copy. Returns whether anything was added. Refused for fixed plans, shards and
    /// completed migrations, and when the grown state would not load back (nothing is
    /// changed then).
    pub fn grow(&mut self, growth: &Growth) -> Result<bool, String> {
        if !self.plan.live || self.shard.is_some() || self.phase == Phase::Complete {
            return Err("only an unsharded live migration that is not cut over grows".into());
        }
        if growth.is_empty() {
            return Ok(false);
        }
        for p in &growth.partitions {
            if let Some(ps) = self
                .partitions
                .iter()
                .find(|s| s.topic == p.topic && s.partition == p.partition)
            {
                return Err(format!("{}/{} is followed already", ps.topic, ps.partition));
            }
        }
        let mut grown = self.clone();
        live::add(&mut grown.plan, growth);
        grown.align_to_plan();
        if !growth.partitions.is_empty() {
            grown.phase = Phase::Copying;
        }
        grown.plan_id = state_id(&grown.plan, grown.shard);
        grown.plan.check()?;
        grown.check()?;
        *self = grown;
        Ok(true)
    }

    /// Turns the state of a `kmigrate run` into that of a sync, so that `kmigrate cutover`
    /// can copy the records that arrived after the run's plan and commit the groups' final
    /// offsets: the plan becomes live (see [`live::follow`]: partitions skipped because
    /// their groups had consumed everything are followed from their end too), those
    /// partitions get a fresh progress, and the group offsets the run committed are
    /// forgotten (the cutover commits the final ones). What was copied is kept as it is.
    /// A shard's state is refused: the cutover follows an unsharded migration only.
    pub fn go_live(&mut self) -> Result<(), String> {
        if self.plan.live {
            return Ok(());
        }
        if let Some(s) = self.shard {
            return Err(format!("it is shard {s} of a migration run in shards"));
        }
        live::follow(&mut self.plan);
        self.align_to_plan();
        self.plan_id = state_id(&self.plan, None);
        self.offsets.clear();
        self.phase = if self.partitions.iter().all(|p| p.progress.done) {
            Phase::Copied
        } else {
            Phase::Copying
        };
        Ok(())
    }

    /// Records on the target from this migration.
    pub fn written(&self) -> u64 {
        self.partitions.iter().map(|p| p.progress.written).sum()
    }

    /// One progress per partition the plan migrates, in the plan's order: the partitions
    /// copied already keep theirs, the others start with nothing copied.
    fn align_to_plan(&mut self) {
        let mut copied: BTreeMap<Tp, PartitionState> = std::mem::take(&mut self.partitions)
            .into_iter()
            .map(|ps| (Tp::new(&ps.topic, ps.partition), ps))
            .collect();
        let policy = self.plan.uncommitted_partitions;
        self.partitions = self
            .plan
            .partitions
            .iter()
            .filter(|p| p.status == Status::Migrate)
            .map(|p| {
                copied
                    .remove(&p.tp())
                    .unwrap_or_else(|| PartitionState::fresh(p, policy))
            })
            .collect();
    }

    /// Writes the state atomically (temporary file, fsync, rename).
    fn save(&mut self, path: &Path, now_ms: i64) -> anyhow::Result<()> {
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

/// The state file of one migration and the state it holds. Every save and phase change
/// goes through here.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    pub state: State,
}

impl Ledger {
    /// Opens the state file at `path`; `None` when there is none.
    pub fn open(path: &Path) -> anyhow::Result<Option<Ledger>> {
        Ok(State::load(path)?.map(|state| Ledger {
            path: path.to_path_buf(),
            state,
        }))
    }

    /// Starts the state file of a new migration of `plan` (of one shard of it), and saves it.
    pub fn create(
        path: &Path,
        plan: &Plan,
        shard: Option<(Shard, &[usize])>,
    ) -> anyhow::Result<Ledger> {
        let mut ledger = Ledger {
            path: path.to_path_buf(),
            state: State::new_part(plan, now_ms(), shard),
        };
        ledger
            .state
            .save(path, now_ms())
            .with_context(|| format!("creating the state file {}", path.display()))?;
        Ok(ledger)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn phase(&self) -> Phase {
        self.state.phase
    }

    /// Saves the state as it is (a checkpoint).
    pub fn save(&mut self) -> anyhow::Result<()> {
        self.state
            .save(&self.path, now_ms())
            .with_context(|| format!("saving the state file {}", self.path.display()))
    }

    /// Moves the ends of a live plan's ranges to the source's last stable offsets `now`
    /// (see [`State::extend`]) and saves before anything past the old ends is copied: a
    /// crash then resumes within the saved ranges. Returns what moved.
    pub fn extend(&mut self, now: &BTreeMap<Tp, Watermarks>) -> anyhow::Result<Vec<Moved>> {
        let moved = self.state.extend(now);
        if !moved.is_empty() {
            self.save()?;
        }
        Ok(moved)
    }

    /// Adds what a rescan found to the state (see [`State::grow`]) and saves before
    /// anything of the new partitions is copied: a crash then resumes with them in the
    /// state, from nothing copied. Returns whether anything was added.
    pub fn grow(&mut self, growth: &Growth) -> anyhow::Result<bool> {
        let grown = self.state.grow(growth).map_err(|why| {
            anyhow::anyhow!(
                "following what the rescan found ({} new partition(s), {} new group(s)) in the \
                 state file {}: {why}. Nothing was added to it; exclude the new topics or \
                 groups in [filter] (or fix [topics]), then run `kmigrate sync` again",
                growth.partitions.len(),
                growth.groups.len(),
                self.path.display()
            )
        })?;
        if grown {
            self.save()?;
        }
        Ok(grown)
    }

    /// Turns a `kmigrate run`'s state into a sync's (see [`State::go_live`]) and saves
    /// before anything more is copied.
    pub fn go_live(&mut self) -> anyhow::Result<()> {
        self.state.go_live().map_err(|why| {
            usage(format!(
                "the state file {} cannot be cut over: {why}. Finish it with `kmigrate run \
                 --shard`",
                self.path.display()
            ))
        })?;
        self.save()
    }

    /// Every planned record is on the target.
    pub fn mark_copied(&mut self) {
        if self.state.phase == Phase::Copying {
            self.state.phase = Phase::Copied;
        }
    }

    /// Records the outcome of committing groups' offsets on the target (a rerun only
    /// retries the refused ones); the migration is complete once none is refused or
    /// pending. Saves.
    pub fn record_offsets(&mut self, results: Vec<GroupOffsets>) -> anyhow::Result<()> {
        for r in results {
            self.state.offsets.retain(|g| g.group != r.group);
            self.state.offsets.push(r);
        }
        self.state.offsets.sort_by(|a, b| a.group.cmp(&b.group));
        if self.state.offsets.iter().all(|g| g.outcome.is_done()) {
            self.state.phase = Phase::Complete;
        }
        self.save()
    }

    /// The migration ends without committing offsets (`translate_offsets = false`). Saves.
    pub fn complete_without_offsets(&mut self) -> anyhow::Result<()> {
        self.state.phase = Phase::Complete;
        self.save()
    }
}

/// A fingerprint of what a plan copies and from where to where. Two plans with the same
/// ranges, clusters and groups have the same id.
pub fn plan_id(plan: &Plan) -> String {
    let mut h = Fnv::new();
    h.add(plan.source.as_bytes());
    h.add(plan.target.as_bytes());
    // A live plan's ends move (`kmigrate sync`): its fingerprint leaves them out, and says
    // it is live so that it never equals a fixed plan's.
    if plan.live {
        h.add(b"live");
    }
    for p in plan
        .partitions
        .iter()
        .filter(|p| p.status == Status::Migrate)
    {
        h.add(p.topic.as_bytes());
        // Only a renamed topic adds its target name, so that the fingerprints of state
        // files written before topics could be renamed stay the same.
        if p.target() != p.topic {
            h.add(b"\0->");
            h.add(p.target().as_bytes());
        }
        h.add(&p.partition.to_le_bytes());
        h.add(&p.start.to_le_bytes());
        if !plan.live {
            h.add(&p.end.to_le_bytes());
        }
        for (g, c) in &p.committed {
            h.add(g.as_bytes());
            h.add(&c.to_le_bytes());
        }
    }
    format!("{:016x}", h.0)
}

/// The fingerprint a state file records: the plan's, and for a shard also which shard of
/// how many, so that one shard's file never resumes another's share.
pub fn state_id(plan: &Plan, shard: Option<Shard>) -> String {
    match shard {
        None => plan_id(plan),
        Some(s) => format!("{}-shard-{}-of-{}", plan_id(plan), s.index, s.count),
    }
}

/// FNV-1a: a small, stable hash for fingerprints (not for security).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator so that ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::live::tests::{self as live_tests, fixed_plan, live_plan};
    use proptest::prelude::*;

    #[test]
    fn a_live_plans_fingerprint_leaves_out_the_ends() {
        // The live fingerprint leaves out the ends, and differs from the fixed one's.
        let fixed_id = plan_id(&fixed_plan());
        let mut plan = live_plan();
        let live_id = plan_id(&plan);
        assert_ne!(live_id, fixed_id);
        plan.partitions[1].end = 99;
        assert_eq!(plan_id(&plan), live_id);
        plan.partitions[1].start = 41;
        assert_ne!(plan_id(&plan), live_id);
    }

    fn now(stables: &[i64]) -> BTreeMap<Tp, Watermarks> {
        stables
            .iter()
            .enumerate()
            .map(|(p, s)| {
                (
                    Tp::new("t", p as i32),
                    Watermarks {
                        low: 0,
                        high: *s + 1,
                        stable: *s,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn extending_reopens_a_finished_range_and_the_copy() {
        let mut state = State::new(&live_plan(), 0);
        for ps in &mut state.partitions {
            ps.progress.done = true;
        }
        state.phase = Phase::Copied;
        let moved = state.extend(&now(&[50, 45, 30]));
        assert_eq!(
            moved,
            vec![Moved {
                tp: Tp::new("t", 1),
                from: 40,
                to: 45
            }]
        );
        assert_eq!(state.phase, Phase::Copying);
        let done: Vec<bool> = state.partitions.iter().map(|p| p.progress.done).collect();
        assert_eq!(done, vec![true, false, true]);
        assert_eq!(state.partitions[1].copied_to(), 40);
        // A completed migration and a fixed plan never move.
        state.phase = Phase::Complete;
        assert!(state.extend(&now(&[60, 60, 60])).is_empty());
        let mut fixed = State::new(&live_plan(), 0);
        fixed.plan.live = false;
        assert!(fixed.extend(&now(&[60, 60, 60])).is_empty());
    }

    /// The state of a sync of `before_and_after`'s first reading, with t/0 partly copied,
    /// and what its rescan found.
    fn grown_fixture() -> (State, Growth, Plan) {
        let (before, after) = live_tests::before_and_after(2, None);
        let policy = UncommittedPolicy::Earliest;
        let current = live_tests::live_of(&before, policy, true);
        let mut state = State::new(&current, 0);
        let ps = &mut state.partitions[0];
        ps.progress.base = Some(0);
        for o in 5..9 {
            ps.map.observe(o, o - 5);
            ps.progress.acked = Some((o, o - 5));
            ps.progress.written += 1;
        }
        state.partitions[1].progress.done = true;
        let fresh = live_tests::live_of(&after, policy, true);
        (state, live::grow(&current, &fresh), fresh)
    }

    #[test]
    fn a_grown_state_keeps_its_progress_and_loads() {
        let (mut state, growth, fresh) = grown_fixture();
        state.phase = Phase::Copied;
        let before = state.clone();
        assert_eq!(state.grow(&growth), Ok(true));
        let tps: Vec<String> = state
            .partitions
            .iter()
            .map(|p| format!("{}/{}:{}..{}", p.topic, p.partition, p.start, p.end))
            .collect();
        assert_eq!(
            tps,
            vec!["t/0:5..20", "t/1:10..20", "t/2:0..7", "u/0:12..30"]
        );
        assert_eq!(state.partitions[0], before.partitions[0]);
        assert_eq!(state.partitions[1], before.partitions[1]);
        assert_eq!(state.partitions[2].progress, Progress::default());
        assert_eq!(state.phase, Phase::Copying);
        assert_ne!(state.plan_id, before.plan_id);
        let groups: Vec<&str> = state.plan.groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(groups, vec!["g", "h", "k"]);
        // Under "earliest", g and k resume at t/2's first copied record.
        assert_eq!(
            state.partitions[2].translation,
            Tracker::new([("g".to_string(), 0), ("k".to_string(), 0)])
        );
        let bytes = serde_json::to_vec(&state).expect("json");
        let back = State::parse(&bytes, "s.json").expect("a grown state loads");
        assert_eq!(back, state);
        // The same findings again add nothing.
        let again = live::grow(&state.plan, &fresh);
        assert_eq!(state.grow(&again), Ok(false));
        // Applied twice, a growth is refused and changes nothing.
        let grown = state.clone();
        assert!(state.grow(&growth).is_err());
        assert_eq!(state, grown);
    }

    #[test]
    fn only_a_live_unsharded_unfinished_state_grows() {
        let (state, growth, _) = grown_fixture();
        let mut fixed = state.clone();
        fixed.plan.live = false;
        assert!(fixed.grow(&growth).is_err());
        let mut done = state.clone();
        done.phase = Phase::Complete;
        assert!(done.grow(&growth).is_err());
        assert_eq!(done, {
            let mut d = state.clone();
            d.phase = Phase::Complete;
            d
        });
        let mut shard = state;
        shard.shard = Some(Shard { index: 0, count: 2 });
        assert!(shard.grow(&growth).is_err());
    }

    #[test]
    fn a_runs_state_goes_live_keeping_what_it_copied() {
        let mut state = State::new(&fixed_plan(), 0);
        // The run copied t/0 [20, 50) and committed its groups.
        let ps = &mut state.partitions[0];
        for (i, s) in (20..50).enumerate() {
            ps.map.observe(s, i as i64);
        }
        ps.progress = Progress {
            base: Some(0),
            acked: Some((49, 29)),
            written: 30,
            done: true,
        };
        let copied = ps.clone();
        state.phase = Phase::Complete;
        state.offsets.push(GroupOffsets {
            group: "g".into(),
            offsets: vec![("t".into(), 0, 0)],
            outcome: CommitOutcome::Committed,
        });
        state.go_live().expect("an unsharded run goes live");
        assert!(state.plan.live);
        assert_eq!(state.partitions[0], copied);
        let ranges: Vec<(i32, i64, i64, bool)> = state
            .partitions
            .iter()
            .map(|p| (p.partition, p.start, p.end, p.progress.done))
            .collect();
        assert_eq!(
            ranges,
            vec![(0, 20, 50, true), (1, 40, 40, false), (2, 30, 30, false)]
        );
        assert!(state.offsets.is_empty());
        assert_eq!(state.phase, Phase::Copying);
        let bytes = serde_json::to_vec(&state).expect("json");
        assert_eq!(State::parse(&bytes, "s.json").expect("it loads"), state);
        // Twice is once.
        let again = state.clone();
        state.go_live().expect("live already");
        assert_eq!(state, again);
        // A shard's state is refused.
        let mut shard = State::new(&fixed_plan(), 0);
        shard.shard = Some(Shard { index: 0, count: 2 });
        assert!(shard.go_live().is_err());
    }

    proptest! {
        /// Growing and extending in any order, the saved state loads back as it was, and
        /// what was copied stays as it was.
        #[test]
        fn a_grown_and_extended_state_file_loads(
            steps in proptest::collection::vec((any::<bool>(), 0i64..20), 1..6),
        ) {
            let (mut state, _, fresh) = grown_fixture();
            let copied = state.partitions[0].clone();
            let mut stable = 20;
            for (grow, d) in steps {
                if grow {
                    let growth = live::grow(&state.plan, &fresh);
                    state.grow(&growth).map_err(TestCaseError::fail)?;
                } else {
                    stable += d;
                    let now: BTreeMap<Tp, Watermarks> = state
                        .partitions
                        .iter()
                        .map(|p| {
                            let w = Watermarks { low: 0, high: stable + 30, stable: stable + 30 };
                            (Tp::new(&p.topic, p.partition), w)
                        })
                        .collect();
                    state.extend(&now);
                }
                let bytes = serde_json::to_vec(&state).expect("json");
                let back = State::parse(&bytes, "s.json").expect("the state loads");
                prop_assert_eq!(&back, &state);
                prop_assert_eq!(&state.partitions[0].map, &copied.map);
                prop_assert_eq!(state.partitions[0].progress.written, copied.progress.written);
            }
        }

        /// However the ends move, the saved state loads back as it was: the plan and the
        /// ranges agree, and the fingerprint holds.
        #[test]
        fn an_extended_state_file_loads(
            steps in proptest::collection::vec(proptest::collection::vec(0i64..20, 3), 1..6),
        ) {
            let mut state = State::new(&live_plan(), 0);
            let mut stables = vec![50, 40, 30];
            for step in steps {
                for (s, d) in stables.iter_mut().zip(step) {
                    *s += d;
                }
                state.extend(&now(&stables));
                let bytes = serde_json::to_vec(&state).expect("json");
                let back = State::parse(&bytes, "s.json").expect("an extended state loads");
                prop_assert_eq!(&back, &state);
                let ends: Vec<i64> = back.partitions.iter().map(|p| p.end).collect();
                prop_assert_eq!(&ends, &stables);
            }
        }
    }
}
