//! A migration of a fixed plan from start to end: open or start the state file, copy every
//! planned record, check the copy, commit the groups' offsets, and say when records arrived
//! on the source after the plan. What `run` does (also as one shard of a plan), and what
//! `cutover` does when no sync came before it.

use super::finish::{self, Finish, Offsets};
use super::start::{self, Fixed, Opened};
use super::{Clusters, Migration, guards};
use crate::cli::ProgressMode;
use crate::config::Config;
use crate::copy::{Ended, Snapshot};
use crate::error::Outcome;
use crate::report::{self, Observer, RunPhase, migration as texts};

/// How a run shows its progress: `--progress`, `--metrics`, `--metrics-linger`.
#[derive(Debug, Clone)]
pub struct Display {
    pub progress: ProgressMode,
    pub metrics: Option<String>,
    pub metrics_linger: Option<std::time::Duration>,
}

/// Runs the migration of a fixed plan, shown as `display` says.
pub fn execute(
    cfg: &Config,
    clusters: Clusters,
    how: &Fixed,
    display: &Display,
) -> anyhow::Result<Outcome> {
    let obs = Observer::start(display.progress, display.metrics.as_deref())?;
    obs.phase(RunPhase::Planning);
    let m = Migration::new(cfg, clusters, how.pipelines)?;
    let result = observed(&m, how, &obs);
    match &result {
        // An interrupted run is not done: the rerun continues it.
        Ok(Outcome::Interrupted) => {}
        Ok(_) => obs.phase(RunPhase::Done),
        Err(e) => obs.failed(e),
    }
    obs.close(display.metrics_linger, m.stop_flag());
    result
}

fn observed(m: &Migration, how: &Fixed, obs: &Observer) -> anyhow::Result<Outcome> {
    let state_path = start::state_path(m, how.shard);
    // Before anything else: a run that cannot save its progress must not start copying.
    guards::run_state_writable(&state_path)?;
    let _lock = start::shard_lock(m, how, &state_path)?;
    let mut opened = start::open_fixed(m, how, &state_path)?;
    if opened.copied {
        return complete(m, &mut opened, None, how, obs);
    }
    obs.phase(RunPhase::Copying);
    let (ended, snap) = m.copy(&mut opened.ledger, obs.sink().as_mut())?;
    match ended {
        Ended::Interrupted => {
            report::note(&texts::run_interrupted(snap.records, &state_path));
            Ok(Outcome::Interrupted)
        }
        Ended::Complete => complete(m, &mut opened, Some(&snap), how, obs),
    }
}

/// After the copy: check it, commit every group's translated offsets on the target, and
/// say so when records arrived on the source after the plan (exit 1).
fn complete(
    m: &Migration,
    opened: &mut Opened,
    snap: Option<&Snapshot>,
    how: &Fixed,
    obs: &Observer,
) -> anyhow::Result<Outcome> {
    let Opened { ledger, owned, .. } = opened;
    let late = finish::arrived_after_plan(&m.source, &ledger.state, owned.as_ref())?;
    let end = Finish {
        command: "run",
        offsets: Offsets::OfPlan {
            owned: owned.as_ref(),
        },
        force: how.force_offsets,
        obs: Some(obs),
    };
    let outcome = finish::finish(m, ledger, snap, &end)?.outcome();
    if late.is_empty() {
        return Ok(outcome);
    }
    let text = texts::late(&late);
    report::warning(&text);
    m.log("run (late records)", &text);
    Ok(Outcome::ProblemsFound)
}
