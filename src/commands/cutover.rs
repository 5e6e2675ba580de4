//! `kmigrate cutover`: finish a `sync` once the source's producers and consumers are
//! stopped. Waits until every planned group is empty and the source's offsets stay still,
//! copies the tail, translates every group's final commits through the offset map, commits
//! them on the target and says how long the switch took. Without a sync before it, it does
//! what `run` does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{run, sync};
use crate::cli::{CutoverArgs, ProgressMode, RunArgs};
use crate::config::Config;
use crate::copy::Ended;
use crate::error::{Outcome, usage};
use crate::kafka::{Cluster, Role};
use crate::ledger::{Ledger, Phase, State};
use crate::model::{Tp, Watermarks};
use crate::plan::live::Quiet;
use crate::report::{self, GroupResult, RunSummary, thousands};
use crate::translate;

pub fn execute(cfg: &Config, args: &CutoverArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let state_path = cfg.migration.state_file.as_path();
    let _lock = sync::lock(state_path, "cutover")?;
    let Some(mut ledger) = Ledger::open(state_path)? else {
        report::note("no `kmigrate sync` state file: migrating as `kmigrate run` does");
        return run::execute(cfg, &run_args(args));
    };
    sync::check_resumable(cfg, &ledger, state_path, true)?;
    let of_run = !ledger.state.plan.live;
    report::note(&format!(
        "cutting over the {} started at {} (state file {})",
        if of_run { "run" } else { "sync" },
        report::time_ms(ledger.state.started_at_ms),
        state_path.display()
    ));
    run::ask(args.yes)?;
    let stop = run::install_signal_handlers()?;
    let source = Cluster::new(Role::Source, &cfg.source, cfg.migration.timeout);
    let target = Cluster::new(Role::Target, &cfg.target, cfg.migration.timeout);
    if of_run {
        follow_run(cfg, &target, &mut ledger)?;
    }
    let Some(last) = wait_until_still(&source, &ledger.state, args, &stop)? else {
        report::note("interrupted while waiting for the source to stop: nothing was changed");
        return Ok(Outcome::Interrupted);
    };
    tracing::debug!("the source is still: groups empty, offsets quiet");
    let opts = run::copy_options(cfg, None);
    let (ended, snap) = sync::extend_and_copy(
        (&source, &target),
        &mut ledger,
        &last,
        &opts,
        &stop,
        report::copy_progress(ProgressMode::Auto).as_mut(),
    )?;
    if ended == Ended::Interrupted || stop.load(Ordering::Relaxed) {
        report::note(&format!(
            "interrupted: progress is saved in {}; run `kmigrate cutover` again to finish",
            state_path.display()
        ));
        return Ok(Outcome::Interrupted);
    }
    let tail = snap.as_ref().map_or(0, |s| s.records_this_run);
    tracing::debug!(records = tail, "tail copied");
    let summary = run::finish(cfg, &target, &ledger.state, snap.as_ref())?;
    if !summary.mismatches.is_empty() {
        report::note("the target does not match the copy: group offsets were not committed");
        return Ok(Outcome::ProblemsFound);
    }
    tracing::debug!("target checked");
    let outcome = commit(cfg, (&source, &target), &mut ledger, args.force_offsets)?;
    report::print(&downtime_text(
        started.elapsed(),
        tail,
        ledger.state.written(),
    ));
    Ok(outcome)
}

/// A cutover after a `kmigrate run` (which found records that arrived after its plan):
/// its state becomes a sync's, saved, and the target topics of the partitions it now
/// follows are created when missing.
fn follow_run(cfg: &Config, target: &Cluster, ledger: &mut Ledger) -> anyhow::Result<()> {
    ledger.go_live()?;
    report::note(
        "the run's copy is kept; the cutover copies what arrived on the source after its plan \
         and commits the groups' final offsets",
    );
    let plan = &ledger.state.plan;
    let created = run::create_topics(target, plan, cfg, true)?;
    run::check_target_partitions(target, plan, created)
}

/// `run`'s arguments for a cutover without a sync before it.
fn run_args(args: &CutoverArgs) -> RunArgs {
    RunArgs {
        plan: None,
        yes: args.yes,
        replan: false,
        allow_active_groups: false,
        force_offsets: args.force_offsets,
        pipelines: None,
        progress: ProgressMode::Auto,
        metrics: None,
        metrics_linger: None,
        shard: None,
    }
}

/// Waits up to `--wait` until no planned group has members on the source and the source's
/// offsets of the copied partitions stayed still for `--quiet`; returns the offsets read
/// last (`None` when interrupted). Refuses (exit 2) naming the groups or partitions still
/// active.
fn wait_until_still(
    source: &Cluster,
    state: &State,
    args: &CutoverArgs,
    stop: &AtomicBool,
) -> anyhow::Result<Option<BTreeMap<Tp, Watermarks>>> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.wait);
    let quiet_ms = (args.quiet * 1000) as i64;
    let tps = sync::source_tps(state);
    let mut quiet: Quiet<(i64, i64)> = Quiet::default();
    loop {
        let active = run::active_groups(source, &state.plan)?;
        let now = sync::source_offsets(source, &tps)?;
        let marks = now
            .iter()
            .map(|(tp, w)| (tp.clone(), (w.high, w.stable)))
            .collect();
        let at = t0.elapsed().as_millis() as i64;
        quiet.observe(at, &marks);
        let still = quiet.quiet_for(at, quiet_ms);
        if active.is_empty() && still {
            return Ok(Some(now));
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(usage(not_still_text(
                args,
                &active,
                (!still).then_some(&quiet),
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn not_still_text(
    args: &CutoverArgs,
    active: &[String],
    moving: Option<&Quiet<(i64, i64)>>,
) -> String {
    let mut why = Vec::new();
    if !active.is_empty() {
        why.push(format!(
            "consumer group(s) still have members on the source: {}",
            active.join("; ")
        ));
    }
    if let Some(q) = moving {
        let mut names: Vec<String> = q
            .moving()
            .iter()
            .take(10)
            .map(|tp| match q.last().get(tp) {
                Some((high, stable)) => format!("{tp} (high {high}, last stable {stable})"),
                None => format!("{tp} (gone)"),
            })
            .collect();
        if q.moving().len() > 10 {
            names.push(format!("and {} more", q.moving().len() - 10));
        }
        why.push(format!(
            "the source's offsets moved within the last {} s in: {}",
            args.quiet,
            names.join(", ")
        ));
    }
    format!(
        "cannot cut over after waiting {} s: {}. Stop every producer and consumer of the \
         migrated topics on the source, then run `kmigrate cutover` again (the sync's \
         progress is kept; nothing was committed)",
        args.wait,
        why.join("; ")
    )
}

/// Reads every planned group's final commits on the source, translates them and commits them
/// on the target (groups committed by an earlier attempt are kept); completes the migration
/// when none is refused.
fn commit(
    cfg: &Config,
    (source, target): (&Cluster, &Cluster),
    ledger: &mut Ledger,
    force: bool,
) -> anyhow::Result<Outcome> {
    if !cfg.migration.translate_offsets {
        ledger.complete_without_offsets()?;
        report::note("translate_offsets = false: no group offsets were committed on the target");
        return Ok(Outcome::Success);
    }
    let finals = run::final_commits(source, &ledger.state)?;
    tracing::debug!(groups = finals.len(), "final commits read on the source");
    let uncovered = translate::uncovered_commits(&ledger.state, &finals);
    if !uncovered.is_empty() {
        let named: Vec<String> = uncovered
            .iter()
            .take(10)
            .map(|(g, tp)| format!("{g} at {tp}"))
            .collect();
        report::warning(&format!(
            "{} group commit(s) on partitions the sync did not copy (no group had committed \
             them when it was planned, and uncommitted_partitions = \"skip\"): {}. Those \
             groups get no offset there on the target; migrate those partitions separately",
            uncovered.len(),
            named.join(", ")
        ));
    }
    // A commit below the copy's start translates to the first copied record: say what the
    // group misses (the low watermarks as planned: below them the source expired records).
    let ranges = sync::ranges(&ledger.state, &ledger.state.plan);
    for r in crate::plan::live::resets(&ranges, &finals) {
        report::warning(&format!(
            "{}. Those records are not on the target: if the group must still read them, have \
             it read them on the source (they stay there) before it moves to the target",
            r.text()
        ));
    }
    let mut targets = translate::final_targets(&ledger.state, &finals).map_err(|problems| {
        anyhow::anyhow!(
            "translating the groups' final offsets: {}. Nothing was committed; the copy is \
             saved. Check that producers are stopped, then run `kmigrate cutover` again",
            problems.join("; ")
        )
    })?;
    translate::drop_done(&mut targets, &ledger.state.offsets);
    tracing::debug!(groups = targets.len(), "final commits translated");
    let results = translate::commit(target, &targets, force, "kmigrate cutover")?;
    tracing::debug!("groups committed on the target");
    ledger.record_offsets(results)?;
    let summary = RunSummary {
        topics: Vec::new(),
        mismatches: Vec::new(),
        this_run: None,
        groups: ledger.state.offsets.iter().map(GroupResult::from).collect(),
    };
    let text = summary.offsets_text();
    report::print(&text);
    report::log(&cfg.migration.log_file, "cutover (offsets)", &text);
    Ok(if ledger.phase() == Phase::Complete {
        Outcome::Success
    } else {
        Outcome::ProblemsFound
    })
}

fn downtime_text(downtime: Duration, tail: u64, total: u64) -> String {
    format!(
        "cutover: {:.1} s from its start until the groups' offsets were committed on the \
         target (the downtime, after producers and consumers stopped); {} record(s) copied in \
         the tail, {} in all\n",
        downtime.as_secs_f64(),
        thousands(tail as i64),
        thousands(total as i64)
    )
}
