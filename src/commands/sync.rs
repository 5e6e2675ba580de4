//! `kmigrate sync`: copy the backlog while producers and consumers keep running, then keep
//! following the source: about every second, extend each partition's range to the source's
//! last stable offset (saved before anything past the old end is copied) and copy the new
//! records with the copy stage's exact resume. It commits no group offsets: `kmigrate
//! cutover` does, once the source is stopped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::run;
use crate::cli::SyncArgs;
use crate::config::Config;
use crate::copy::{self, Ended, Options, ProgressSink, Snapshot};
use crate::error::{Outcome, usage};
use crate::fsutil::{self, Lock};
use crate::kafka::{Cluster, Role};
use crate::ledger::{Ledger, Phase, State};
use crate::model::{Tp, Watermarks};
use crate::plan::live;
use crate::report::{self, follow, thousands};

/// How often the source's offsets are read again.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

pub fn execute(cfg: &Config, args: &SyncArgs) -> anyhow::Result<Outcome> {
    let stop = run::install_signal_handlers()?;
    let state_path = cfg.migration.state_file.as_path();
    let source = Cluster::new(Role::Source, &cfg.source, cfg.migration.timeout);
    let target = Cluster::new(Role::Target, &cfg.target, cfg.migration.timeout);
    let _lock = lock(state_path, "sync")?;
    let mut ledger = open_or_start(cfg, (&source, &target), state_path, args.yes)?;
    let opts = run::copy_options(cfg, args.pipelines);
    follow((&source, &target), &mut ledger, &opts, &stop)?;
    report::note(&format!(
        "sync stopped: {} records are on the target; progress is saved in {}. `kmigrate \
         sync` continues it; once producers and consumers are stopped, `kmigrate cutover` \
         finishes it.",
        thousands(written(&ledger.state) as i64),
        state_path.display()
    ));
    Ok(Outcome::Interrupted)
}

/// Takes the state file's lock for the whole command (the lock `run --shard` takes too):
/// refused, exit 2, while another kmigrate holds it, naming its pid. Checks first that the
/// state file can be written.
pub(super) fn lock(state_path: &Path, command: &str) -> anyhow::Result<Lock> {
    fsutil::check_writable(state_path).map_err(|e| {
        usage(format!(
            "the state file {} cannot be written ({e:#}): kmigrate saves its progress there. \
             Make its directory writable, then run `kmigrate {command}` again.",
            state_path.display()
        ))
    })?;
    let path = super::shards::lock_path(state_path);
    match fsutil::lock_exclusive(&path)? {
        Ok(lock) => Ok(lock),
        Err(pid) => Err(usage(format!(
            "another kmigrate (pid {}) is running this migration (lock {}), e.g. a `kmigrate \
             sync`: stop it first (Ctrl-C, or `kill -TERM {}`), wait until it has saved and \
             exited, then run `kmigrate {command}` again",
            pid.map_or("unknown".to_string(), |p| p.to_string()),
            path.display(),
            pid.map_or("PID".to_string(), |p| p.to_string()),
        ))),
    }
}

/// Resumes the sync recorded in the state file, or plans a live one, asks, creates the
/// target topics and starts its state file.
fn open_or_start(
    cfg: &Config,
    (source, target): (&Cluster, &Cluster),
    state_path: &Path,
    yes: bool,
) -> anyhow::Result<Ledger> {
    if let Some((s, path)) = super::shards::find(state_path)?.first() {
        return Err(usage(format!(
            "this migration is run in {} shards (state file {}): `kmigrate sync` follows an \
             unsharded migration only. Finish it with `kmigrate run --shard`, or move the \
             files away to start over on an empty target.",
            s.count,
            path.display()
        )));
    }
    if let Some(ledger) = Ledger::open(state_path)? {
        check_resumable(cfg, &ledger, state_path, false)?;
        report::note(&format!(
            "resuming the sync started at {} (state file {})",
            report::time_ms(ledger.state.started_at_ms),
            state_path.display()
        ));
        return Ok(ledger);
    }
    let mut plan = super::plan::make(cfg, source, target)?;
    live::follow(&mut plan);
    if !plan.problems.is_empty() {
        return Err(usage(format!(
            "the plan has {} problem(s) to fix before anything is copied: {}",
            plan.problems.len(),
            plan.problems.join(" ")
        )));
    }
    run::confirm("sync", &plan, yes)?;
    let created = run::create_topics(target, &plan, cfg, false)?;
    run::check_target_partitions(target, &plan, created)?;
    Ledger::create(state_path, &plan, None)
}

/// A state file a sync (or cutover) may continue: one of a live plan, not cut over yet,
/// made for these clusters and this `[topics]` table. `of_run`: a `kmigrate run`'s state
/// is accepted too, finished or not (the cutover copies what arrived after its plan).
pub(super) fn check_resumable(
    cfg: &Config,
    ledger: &Ledger,
    state_path: &Path,
    of_run: bool,
) -> anyhow::Result<()> {
    let state = &ledger.state;
    if !state.plan.live && !of_run {
        return Err(usage(format!(
            "the state file {} belongs to a `kmigrate run`, not to a sync: finish it with \
             `kmigrate run`, or move it away to start a sync on an empty target",
            state_path.display()
        )));
    }
    if state.plan.live && state.phase == Phase::Complete {
        return Err(usage(format!(
            "the migration in {} is cut over already (groups committed on the target): \
             `kmigrate verify` checks it; move the state file away to start another",
            state_path.display()
        )));
    }
    run::check_clusters(&state.plan, cfg)?;
    run::check_mapping_unchanged(
        &state.plan,
        cfg,
        &format!("the sync in the state file {}", state_path.display()),
    )
}

/// The source partitions a state copies.
pub(super) fn source_tps(state: &State) -> Vec<Tp> {
    state
        .partitions
        .iter()
        .map(|p| Tp::new(&p.topic, p.partition))
        .collect()
}

/// Reads the source's offsets of the state's partitions.
pub(super) fn source_offsets(
    source: &Cluster,
    tps: &[Tp],
) -> anyhow::Result<BTreeMap<Tp, Watermarks>> {
    source
        .admin()?
        .watermarks(tps)
        .context("reading the source's last stable offsets of the copied partitions")
}

/// Extends the ranges to the source's offsets `now` (saved first) and copies what is not on
/// the target yet. Returns how the copy ended and its figures (none when there was nothing
/// to copy).
pub(super) fn extend_and_copy(
    (source, target): (&Cluster, &Cluster),
    ledger: &mut Ledger,
    now: &BTreeMap<Tp, Watermarks>,
    opts: &Options,
    stop: &AtomicBool,
    sink: &mut dyn ProgressSink,
) -> anyhow::Result<(Ended, Option<Snapshot>)> {
    let moved = ledger.extend(now)?;
    tracing::debug!(partitions = moved.len(), "ranges extended");
    if ledger.state.partitions.iter().all(|p| p.progress.done) {
        ledger.mark_copied();
        return Ok((Ended::Complete, None));
    }
    let (ended, snap) = copy::run(source, target, ledger, opts, stop, sink)?;
    Ok((ended, Some(snap)))
}

/// The follow loop: until Ctrl-C / SIGTERM, extend, copy, report, pause.
fn follow(
    clusters: (&Cluster, &Cluster),
    ledger: &mut Ledger,
    opts: &Options,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let tps = source_tps(&ledger.state);
    let mut display = follow::Display::new();
    while !stop.load(Ordering::Relaxed) {
        let round = Instant::now();
        let now = source_offsets(clusters.0, &tps)?;
        // Behind the source as it was just read: what this round copies.
        let behind = follow::lags(&ledger.state, &now);
        let (ended, _) = extend_and_copy(clusters, ledger, &now, opts, stop, &mut display)?;
        if ended == Ended::Interrupted {
            break;
        }
        display.round(behind, written(&ledger.state));
        pause(stop, FOLLOW_EVERY.saturating_sub(round.elapsed()));
    }
    display.close();
    ledger.save()
}

/// Sleeps up to `d`, waking early on a stop request.
fn pause(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Records on the target from this migration.
fn written(state: &State) -> u64 {
    state.partitions.iter().map(|p| p.progress.written).sum()
}
