//! `kmigrate cutover`: finish a `sync` once the source's producers and consumers are
//! stopped. Waits until every planned group is empty and the source's offsets stay still,
//! copies the tail, translates every group's final commits through the offset map, commits
//! them on the target and says how long the switch took. Without a sync before it, it does
//! what `run` does.

use std::time::Instant;

use crate::cli::{CutoverArgs, ProgressMode};
use crate::config::Config;
use crate::copy::Ended;
use crate::error::Outcome;
use crate::ledger::Ledger;
use crate::migration::finish::{Finish, Finished, Offsets, finish};
use crate::migration::fixed::{self, Display};
use crate::migration::follow::extend_and_copy;
use crate::migration::start::Fixed;
use crate::migration::still::wait_until_still;
use crate::migration::target::{Needs, prepare_target};
use crate::migration::{Clusters, Migration, guards};
use crate::report::{self, migration as texts};

pub fn execute(cfg: &Config, clusters: Clusters, args: &CutoverArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let state_path = cfg.migration.state_file.as_path();
    let _lock = guards::lock_migration(state_path, "cutover")?;
    let Some(mut ledger) = Ledger::open(state_path)? else {
        report::note(texts::CUTOVER_WITHOUT_SYNC);
        return migrate_fixed(cfg, clusters, args);
    };
    tracing::debug!(ms = started.elapsed().as_millis(), "state file read");
    guards::resumable_live(cfg, &ledger, true)?;
    let of_run = !ledger.state.plan.live;
    report::note(&texts::cutting_over(of_run, &ledger));
    guards::ask(args.yes)?;
    let m = Migration::new(cfg, clusters, None)?;
    if of_run {
        follow_run(&m, &mut ledger)?;
    }
    let Some(last) = wait_until_still(&m, &ledger.state, (args.wait, args.quiet))? else {
        report::note(texts::CUTOVER_INTERRUPTED_WAITING);
        return Ok(Outcome::Interrupted);
    };
    tracing::debug!(
        ms = started.elapsed().as_millis(),
        "the source is still: groups empty, offsets quiet"
    );
    let mut sink = report::copy_progress(ProgressMode::Auto);
    let (ended, snap) = extend_and_copy(&m, &mut ledger, &last, sink.as_mut())?;
    if ended == Ended::Interrupted || m.stopped() {
        report::note(&texts::cutover_interrupted(state_path));
        return Ok(Outcome::Interrupted);
    }
    let tail = snap.as_ref().map_or(0, |s| s.records_this_run);
    tracing::debug!(records = tail, "tail copied");
    let how = Finish {
        command: "cutover",
        offsets: Offsets::Final,
        force: args.force_offsets,
        obs: None,
    };
    let Finished::Checked(outcome) = finish(&m, &mut ledger, snap.as_ref(), &how)? else {
        return Ok(Outcome::ProblemsFound);
    };
    report::print(&texts::downtime(
        started.elapsed(),
        tail,
        ledger.state.written(),
    ));
    Ok(outcome)
}

/// A cutover after a `kmigrate run` (which found records that arrived after its plan):
/// its state becomes a sync's, saved, and the target topics of the partitions it now
/// follows are created when missing.
fn follow_run(m: &Migration, ledger: &mut Ledger) -> anyhow::Result<()> {
    ledger.go_live()?;
    report::note(texts::CUTOVER_AFTER_RUN);
    let needs = Needs::of_plan(&m.target, &ledger.state.plan, true)?;
    prepare_target(&m.target, &needs, m.cfg.migration.create_topics)
}

/// Without a sync before it: what `run` does, with the cutover's `--yes` and
/// `--force-offsets`.
fn migrate_fixed(cfg: &Config, clusters: Clusters, args: &CutoverArgs) -> anyhow::Result<Outcome> {
    let how = Fixed {
        yes: args.yes,
        force_offsets: args.force_offsets,
        ..Fixed::default()
    };
    let display = Display {
        progress: ProgressMode::Auto,
        metrics: None,
        metrics_linger: None,
    };
    fixed::execute(cfg, clusters, &how, &display)
}
