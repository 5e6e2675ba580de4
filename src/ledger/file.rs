//! The state file of one migration and the state it holds: every save and phase change
//! goes through [`Ledger`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::error::usage;
use crate::model::now_ms;
use crate::model::{Ends, Shard, Tp};
use crate::plan::Plan;
use crate::plan::live::{Growth, Moved};

use super::state::{GroupOffsets, Phase, State};

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
    pub fn extend(&mut self, now: &BTreeMap<Tp, Ends>) -> anyhow::Result<Vec<Moved>> {
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
