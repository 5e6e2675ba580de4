//! The refusals before anything is copied or committed, each a usage error (exit 2) that
//! names the problem and the fix: the state file writable and not held by another process,
//! the plan made for these clusters and this `[topics]` table, the source unchanged since
//! the plan, the planned groups inactive; and the operator's confirmation.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::Context as _;

use crate::config::Config;
use crate::error::usage;
use crate::fsutil::{self, Lock};
use crate::kafka::Cluster;
use crate::ledger::shards;
use crate::ledger::{Ledger, Phase};
use crate::model::Shard;
use crate::plan::{Plan, SkipReason, Status, Tp};
use crate::report::{self, migration as texts};

/// A `run` that cannot save its progress must not start copying (or create topics).
/// Reading a state file needs no write, but resuming does.
pub fn run_state_writable(state_path: &Path) -> anyhow::Result<()> {
    fsutil::check_writable(state_path)
        .map_err(|e| usage(texts::state_unwritable_for_run(state_path, &e)))
}

/// Takes the migration's lock for the whole `kmigrate {command}` (the lock `run --shard`
/// takes too): refused while another kmigrate holds it, naming its pid. Checks first that
/// the state file can be written.
pub fn lock_migration(state_path: &Path, command: &str) -> anyhow::Result<Lock> {
    fsutil::check_writable(state_path)
        .map_err(|e| usage(texts::state_unwritable(command, state_path, &e)))?;
    shards::lock(state_path)?.map_err(|busy| usage(texts::migration_busy(command, &busy)))
}

/// Takes the lock of a shard's state file for the whole command: a second worker on the
/// same shard would copy its records twice.
pub fn lock_shard(state_path: &Path, shard: Shard) -> anyhow::Result<Lock> {
    shards::lock(state_path)?
        .map_err(|busy| usage(texts::shard_busy(&format!("shard {shard}"), &busy)))
}

/// A plan is only valid for the clusters it was made with.
pub fn same_clusters(plan: &Plan, cfg: &Config) -> anyhow::Result<()> {
    if plan.source != cfg.source.bootstrap_servers || plan.target != cfg.target.bootstrap_servers {
        return Err(usage(format!(
            "the plan was made for source {} and target {}, but the configuration says source {} \
             and target {}: use the same configuration, or plan again",
            plan.source, plan.target, cfg.source.bootstrap_servers, cfg.target.bootstrap_servers
        )));
    }
    Ok(())
}

/// A plan run, or a run resumed, under a `[topics]` table that names other target topics
/// would leave the copy split over two names: refused, naming the first difference. `what`
/// names where the plan comes from.
pub fn mapping_unchanged(plan: &Plan, cfg: &Config, what: &str) -> anyhow::Result<()> {
    let Some(p) = plan
        .partitions
        .iter()
        .filter(|p| !p.left_out())
        .find(|p| crate::config::target_topic(&p.topic, &cfg.topics) != p.target())
    else {
        return Ok(());
    };
    Err(usage(format!(
        "{what} copies topic {} to {}, but [topics] in this configuration names {}: restore \
         the [topics] table it was made with, or plan again (a started migration must be \
         finished under the table it started with)",
        p.topic,
        p.target(),
        crate::config::target_topic(&p.topic, &cfg.topics)
    )))
}

/// The plan was made for these clusters and this `[topics]` table (`what`: where the plan
/// comes from).
pub fn plan_fits(plan: &Plan, cfg: &Config, what: &str) -> anyhow::Result<()> {
    same_clusters(plan, cfg)?;
    mapping_unchanged(plan, cfg, what)
}

/// A state file a sync (or cutover) may continue: one of a live plan, not cut over yet,
/// made for these clusters and this `[topics]` table. `of_run`: a `kmigrate run`'s state
/// is accepted too, finished or not (the cutover copies what arrived after its plan).
pub fn resumable_live(cfg: &Config, ledger: &Ledger, of_run: bool) -> anyhow::Result<()> {
    let state = &ledger.state;
    let state_path = ledger.path();
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
    plan_fits(
        &state.plan,
        cfg,
        &format!("the sync in the state file {}", state_path.display()),
    )
}

/// The plan's problems (a missing target topic, too few partitions, ...) refuse the copy.
pub fn no_problems(plan: &Plan) -> anyhow::Result<()> {
    if plan.problems.is_empty() {
        return Ok(());
    }
    Err(usage(format!(
        "the plan has {} problem(s) to fix before anything is copied: {}",
        plan.problems.len(),
        plan.problems.join(" ")
    )))
}

/// The source must not have changed since the plan (production and consumption stopped).
/// Returns false when it moved and `replan` allows planning again; an error otherwise.
pub fn source_unchanged(source: &Cluster, plan: &Plan, replan: bool) -> anyhow::Result<bool> {
    let considered: Vec<_> = plan
        .partitions
        .iter()
        .filter(|p| !matches!(p.reason, Some(SkipReason::Filtered | SkipReason::Internal)))
        .collect();
    let tps: Vec<Tp> = considered.iter().map(|p| p.tp()).collect();
    let now = source
        .admin()?
        .watermarks(&tps)
        .context("re-reading the source's offsets to check nothing moved since the plan")?;
    let mut moved = Vec::new();
    for p in &considered {
        let Some(w) = now.get(&p.tp()) else {
            moved.push(format!("{}/{} (gone)", p.topic, p.partition));
            continue;
        };
        let lost = p.status == Status::Migrate && w.low > p.start;
        if w.high != p.high || w.stable != p.stable || lost {
            moved.push(format!(
                "{}/{} (high {} -> {}, last stable {} -> {}, low {} -> {})",
                p.topic, p.partition, p.high, w.high, p.stable, w.stable, p.low, w.low
            ));
        }
    }
    if moved.is_empty() {
        return Ok(true);
    }
    if replan {
        return Ok(false);
    }
    let n = moved.len();
    moved.truncate(20);
    Err(usage(format!(
        "the source changed since the plan in {n} partition(s): {}{}. Production or retention \
         has not stopped; stop it, then plan again (or pass --replan to plan again now)",
        moved.join(", "),
        if n > 20 { ", ..." } else { "" }
    )))
}

/// No planned group has members on the source; `allow`: a warning instead of a refusal.
pub fn groups_inactive(source: &Cluster, plan: &Plan, allow: bool) -> anyhow::Result<()> {
    let active = active_groups(source, plan)?;
    if active.is_empty() {
        return Ok(());
    }
    if allow {
        report::warning(&format!(
            "consumer groups still have members: {} (--allow-active-groups)",
            active.join("; ")
        ));
        return Ok(());
    }
    Err(usage(format!(
        "consumer group(s) still have members on the source: {}. Stop those consumers first \
         (their positions would move during the copy), or pass --allow-active-groups",
        active.join("; ")
    )))
}

/// The plan's groups that have members on the source now, each as "name (state, hosts:
/// ...)". A planned group the broker did not describe counts as active: what is not known
/// to be stopped is not taken for stopped.
pub fn active_groups(source: &Cluster, plan: &Plan) -> anyhow::Result<Vec<String>> {
    let planned: Vec<&str> = plan.groups.iter().map(|g| g.group.as_str()).collect();
    let described = source
        .admin()?
        .group_members(&planned)
        .context("describing the planned consumer groups on the source")?;
    let unanswered: Vec<String> = planned
        .iter()
        .filter(|g| !described.contains_key(**g))
        .map(|g| format!("{g} (not described by the source)"))
        .collect();
    Ok(described
        .into_iter()
        .filter(|(_, g)| !g.state.is_inactive())
        .map(|(name, g)| {
            let hosts: Vec<&str> = g.members.iter().map(|m| m.host.as_str()).collect();
            format!("{name} ({}, hosts: {})", g.state, hosts.join(", "))
        })
        .chain(unanswered)
        .collect())
}

/// Shows the totals and asks; `--yes` skips the question; without a terminal and without
/// `--yes`, refuses rather than guess.
pub fn confirm(command: &str, plan: &Plan, yes: bool) -> anyhow::Result<()> {
    report::note(&texts::plan_totals(command, plan));
    for w in &plan.warnings {
        report::warning(w);
    }
    ask(yes)
}

/// Asks "Proceed?" on the terminal; `yes` skips the question; without a terminal and
/// without `yes`, refuses rather than guess.
pub fn ask(yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "no terminal to confirm on: review the plan (`kmigrate plan`), then pass --yes",
        ));
    }
    eprint!("Proceed? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(usage("not confirmed: nothing was copied"))
    }
}
