//! A migration's state file opened and checked, or a new migration planned, confirmed,
//! its target made ready and its state file started: of a fixed plan (`run`, also one
//! shard of it) or of a live one (`sync`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::Migration;
use super::guards;
use super::target::{Needs, prepare_target};
use crate::copy::shard::partitions_of;
use crate::error::usage;
use crate::ledger::shards;
use crate::ledger::{Ledger, Phase, state_id};
use crate::model::Shard;
use crate::plan::{Plan, live};
use crate::report;

/// How a fixed plan's migration starts or resumes: `run`'s flags.
#[derive(Debug, Clone, Default)]
pub struct Fixed {
    /// `--plan FILE`: run this saved plan instead of planning now.
    pub plan: Option<PathBuf>,
    pub yes: bool,
    pub replan: bool,
    pub allow_active_groups: bool,
    pub shard: Option<Shard>,
    /// `--pipelines`: overrides the configuration's.
    pub pipelines: Option<u16>,
    /// `--force-offsets`: move a group's offset on the target backwards too.
    pub force_offsets: bool,
}

/// A fixed plan's state file, opened or started.
pub struct Opened {
    pub ledger: Ledger,
    /// Every planned record was copied by an earlier run.
    pub copied: bool,
    /// A shard's partitions, as indexes into the plan's (`None`: unsharded): worked out
    /// once, here, for the whole command.
    pub owned: Option<BTreeSet<usize>>,
}

impl Opened {
    fn new(ledger: Ledger, copied: bool, owned: Option<Vec<usize>>) -> Opened {
        Opened {
            ledger,
            copied,
            owned: owned.map(|o| o.into_iter().collect()),
        }
    }
}

/// Where a fixed plan's migration keeps its state: the migration's `state_file`, or the
/// shard's file beside it.
pub fn state_path(m: &Migration, shard: Option<Shard>) -> PathBuf {
    let plain = m.cfg.migration.state_file.as_path();
    shard.map_or_else(|| plain.to_path_buf(), |s| s.state_file(plain))
}

/// A shard's worker refuses beside an unsharded run's state file, beside a split into
/// another count, and with `--replan`; then it takes its shard's lock, held until the
/// command ends.
pub fn shard_lock(
    m: &Migration,
    how: &Fixed,
    state_path: &Path,
) -> anyhow::Result<Option<crate::fsutil::Lock>> {
    let Some(s) = how.shard else {
        return Ok(None);
    };
    let plain = m.cfg.migration.state_file.as_path();
    if plain.exists() {
        return Err(usage(format!(
            "the state file {} of an unsharded run exists: that migration is not run in \
             shards. Finish it with `kmigrate run` (without --shard), or move the file away to \
             start over on an empty target.",
            plain.display()
        )));
    }
    shards::check_count(plain, s)?;
    if how.replan {
        return Err(usage(
            "--replan cannot be used with --shard: every worker must run the same plan. Plan \
             again once (`kmigrate plan --out FILE`) and start every worker with that file.",
        ));
    }
    guards::lock_shard(state_path, s).map(Some)
}

/// Opens the fixed plan's state file and checks it may be resumed, or plans (or reads
/// `--plan`) and starts a new one.
pub fn open_fixed(m: &Migration, how: &Fixed, state_path: &Path) -> anyhow::Result<Opened> {
    let existing = Ledger::open(state_path)?;
    if existing.is_none() && how.shard.is_none() {
        let found = shards::find(&m.cfg.migration.state_file)?;
        if let Some((s, path)) = found.first() {
            return Err(usage(format!(
                "this migration is run in {} shards (state file {} and others): run each \
                 worker with --shard INDEX/{}; `kmigrate status` shows how far they are",
                s.count,
                path.display(),
                s.count
            )));
        }
    }
    match existing {
        Some(ledger) => resume_fixed(m, how, ledger),
        None => start_fixed(m, how, state_path),
    }
}

/// A fixed plan's state file may be resumed by this worker, with this `--plan`, under this
/// configuration, the source unchanged and its groups inactive.
fn resume_fixed(m: &Migration, how: &Fixed, ledger: Ledger) -> anyhow::Result<Opened> {
    let state = &ledger.state;
    let owned = state.shard.map(|s| partitions_of(&state.plan, s));
    let state_path = ledger.path();
    if state.shard != how.shard {
        return Err(usage(format!(
            "the state file {} is {}, but this worker was started {}: start it with the \
             --shard its file names",
            state_path.display(),
            state
                .shard
                .map_or("of an unsharded run".to_string(), |s| format!("shard {s}")),
            how.shard
                .map_or("without --shard".to_string(), |s| format!("as shard {s}"))
        )));
    }
    if let Some(path) = &how.plan
        && state_id(&read_plan(path)?, how.shard) != state.plan_id
    {
        return Err(usage(format!(
            "the state file {} belongs to another plan (a run started at {}). Finish that \
             migration first (`kmigrate run` without --plan resumes it), or move the state \
             file away to start a new one.",
            state_path.display(),
            report::time_ms(state.started_at_ms)
        )));
    }
    if state.plan.live {
        return Err(usage(format!(
            "the state file {} belongs to a `kmigrate sync`, which follows the live source: \
             continue it with `kmigrate sync`, or finish it with `kmigrate cutover` once \
             producers and consumers are stopped",
            state_path.display()
        )));
    }
    guards::plan_fits(
        &state.plan,
        m.cfg,
        &format!("the migration in the state file {}", state_path.display()),
    )?;
    if state.phase != Phase::Copying {
        report::note(&format!(
            "the migration recorded in {} has copied every planned record already",
            state_path.display()
        ));
        return Ok(Opened::new(ledger, true, owned));
    }
    report::note(&format!(
        "resuming the migration started at {} (state file {})",
        report::time_ms(state.started_at_ms),
        state_path.display()
    ));
    guards::source_unchanged(&m.source, &state.plan, false)?;
    guards::groups_inactive(&m.source, &state.plan, how.allow_active_groups)?;
    Ok(Opened::new(ledger, false, owned))
}

/// Plans (or reads `--plan`, planning again under `--replan` when the source moved),
/// checks, asks, makes the target ready and starts the state file (a shard's: its share).
fn start_fixed(m: &Migration, how: &Fixed, state_path: &Path) -> anyhow::Result<Opened> {
    if let (Some(s), None) = (how.shard, &how.plan) {
        return Err(usage(format!(
            "--shard {s} needs --plan FILE: every worker must run the same saved plan \
             (`kmigrate plan --out plan.json` once, then `kmigrate run --plan plan.json \
             --shard INDEX/{}` on each worker)",
            s.count
        )));
    }
    let mut plan = match &how.plan {
        Some(path) => {
            let plan = read_plan(path)?;
            guards::plan_fits(&plan, m.cfg, &format!("the plan {}", path.display()))?;
            plan
        }
        None => m.plan()?,
    };
    if how.plan.is_some() && !guards::source_unchanged(&m.source, &plan, how.replan)? {
        report::note("the source changed since the plan: --replan, so planning again");
        plan = m.plan()?;
    }
    guards::no_problems(&plan)?;
    guards::groups_inactive(&m.source, &plan, how.allow_active_groups)?;
    guards::confirm("run", &plan, how.yes)?;
    let needs = Needs::of_plan(&m.target, &plan, how.shard.is_some())?;
    prepare_target(&m.target, &needs, m.cfg.migration.create_topics)?;
    let Some(s) = how.shard else {
        let ledger = Ledger::create(state_path, &plan, None)?;
        return Ok(Opened::new(ledger, false, None));
    };
    let owned = partitions_of(&plan, s);
    report::note(&format!(
        "shard {s}: {} of the plan's partitions",
        owned.len()
    ));
    let ledger = Ledger::create(state_path, &plan, Some((s, owned.as_slice())))?;
    Ok(Opened::new(ledger, false, Some(owned)))
}

fn read_plan(path: &Path) -> anyhow::Result<Plan> {
    let bytes = std::fs::read(path)
        .map_err(|e| usage(format!("cannot read the plan {}: {e}", path.display())))?;
    crate::plan::parse_plan(&bytes, &path.display().to_string())
}

/// Resumes the sync recorded in the state file, or plans a live one, asks, makes the
/// target ready and starts its state file. Says whether it resumed.
pub fn open_live(m: &Migration, yes: bool) -> anyhow::Result<(Ledger, bool)> {
    let state_path = m.cfg.migration.state_file.as_path();
    if let Some((s, path)) = shards::find(state_path)?.first() {
        return Err(usage(format!(
            "this migration is run in {} shards (state file {}): `kmigrate sync` follows an \
             unsharded migration only. Finish it with `kmigrate run --shard`, or move the \
             files away to start over on an empty target.",
            s.count,
            path.display()
        )));
    }
    if let Some(ledger) = Ledger::open(state_path)? {
        guards::resumable_live(m.cfg, &ledger, false)?;
        report::note(&format!(
            "resuming the sync started at {} (state file {})",
            report::time_ms(ledger.state.started_at_ms),
            state_path.display()
        ));
        return Ok((ledger, true));
    }
    let mut plan = m.plan()?;
    live::follow(&mut plan);
    guards::no_problems(&plan)?;
    guards::confirm("sync", &plan, yes)?;
    let needs = Needs::of_plan(&m.target, &plan, false)?;
    prepare_target(&m.target, &needs, m.cfg.migration.create_topics)?;
    Ok((Ledger::create(state_path, &plan, None)?, false))
}
