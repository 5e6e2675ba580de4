//! `kmigrate run`: execute a plan (a fresh one, `--plan FILE`, or the one an interrupted run
//! saved in the state file), copying every planned record and then reporting per topic
//! whether what is on the target matches what was planned.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::copy::shard::partitions_of;
use crate::copy::{self, Ended, Options, Snapshot};
use crate::error::{Outcome, usage};
use crate::kafka::reader::Tuning;
use crate::kafka::{Cluster, Role};
use crate::ledger::{Ledger, Phase, state_id};
use crate::plan::late::{self, Late};
use crate::plan::{Plan, SkipReason, Status, TopicAction, Tp};
use crate::report::{self, GroupResult, RunPhase, RunSummary, ThisRun, TopicResult, thousands};
use crate::translate;

pub fn execute(cfg: &Config, args: &RunArgs) -> anyhow::Result<Outcome> {
    let obs = report::Observer::start(args.progress, args.metrics.as_deref())?;
    obs.phase(RunPhase::Planning);
    let stop = install_signal_handlers()?;
    let result = observed(cfg, args, &obs, &stop);
    match &result {
        // An interrupted run is not done: the rerun continues it.
        Ok(Outcome::Interrupted) => {}
        Ok(_) => obs.phase(RunPhase::Done),
        Err(e) => obs.failed(e),
    }
    obs.close(args.metrics_linger, &stop);
    result
}

fn observed(
    cfg: &Config,
    args: &RunArgs,
    obs: &report::Observer,
    stop: &AtomicBool,
) -> anyhow::Result<Outcome> {
    let plain_path = cfg.migration.state_file.as_path();
    let shard = args.shard;
    let shard_path = shard.map(|s| s.state_file(plain_path));
    let state_path = shard_path.as_deref().unwrap_or(plain_path);
    let source = Cluster::new(Role::Source, &cfg.source, cfg.migration.timeout);
    let target = Cluster::new(Role::Target, &cfg.target, cfg.migration.timeout);

    // Before anything else: a run that cannot save its progress must not start copying
    // (or create topics). Reading a state file needs no write, but resuming does.
    crate::fsutil::check_writable(state_path).map_err(|e| {
        usage(format!(
            "the state file {} cannot be written ({e:#}): kmigrate saves its progress there \
             before it copies anything. Make its directory writable (or, if a state file \
             exists, move it to a writable place and point migration.state_file at it), then \
             run again. Nothing \
             was copied.",
            state_path.display()
        ))
    })?;
    // Held until the command ends: a second worker on the same shard would copy its
    // records twice.
    let _lock = match shard {
        Some(s) => {
            if plain_path.exists() {
                return Err(usage(format!(
                    "the state file {} of an unsharded run exists: that migration is not run \
                     in shards. Finish it with `kmigrate run` (without --shard), or move the \
                     file away to start over on an empty target.",
                    plain_path.display()
                )));
            }
            crate::ledger::shards::check_count(plain_path, s)?;
            if args.replan {
                return Err(usage(
                    "--replan cannot be used with --shard: every worker must run the same \
                     plan. Plan again once (`kmigrate plan --out FILE`) and start every worker \
                     with that file.",
                ));
            }
            let what = format!("shard {s}");
            Some(crate::ledger::shards::lock(state_path)?.map_err(|busy| {
                usage(format!(
                    "{what} is being run by another kmigrate (pid {}, lock {}): two workers on \
                     one shard would copy its records twice. Give each worker its own shard \
                     index, or wait for the other one to end.",
                    busy.pid.map_or("unknown".to_string(), |p| p.to_string()),
                    busy.path.display()
                ))
            })?)
        }
        None => None,
    };
    let existing = Ledger::open(state_path)?;
    if existing.is_none() && shard.is_none() {
        let found = crate::ledger::shards::find(plain_path)?;
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
    let mut ledger = match existing {
        Some(mut ledger) => {
            let state = &ledger.state;
            if state.shard != shard {
                return Err(usage(format!(
                    "the state file {} is {}, but this worker was started {}: start it with \
                     the --shard its file names",
                    state_path.display(),
                    state
                        .shard
                        .map_or("of an unsharded run".to_string(), |s| format!("shard {s}")),
                    shard.map_or("without --shard".to_string(), |s| format!("as shard {s}"))
                )));
            }
            if let Some(path) = &args.plan {
                let plan = read_plan(path)?;
                if state_id(&plan, shard) != state.plan_id {
                    return Err(usage(format!(
                        "the state file {} belongs to another plan (a run started at {}). Finish \
                         that migration first (`kmigrate run` without --plan resumes it), or move \
                         the state file away to start a new one.",
                        state_path.display(),
                        report::time_ms(state.started_at_ms)
                    )));
                }
            }
            if state.plan.live {
                return Err(usage(format!(
                    "the state file {} belongs to a `kmigrate sync`, which follows the live \
                     source: continue it with `kmigrate sync`, or finish it with `kmigrate \
                     cutover` once producers and consumers are stopped",
                    state_path.display()
                )));
            }
            check_clusters(&state.plan, cfg)?;
            check_mapping_unchanged(
                &state.plan,
                cfg,
                &format!("the migration in the state file {}", state_path.display()),
            )?;
            if state.phase != Phase::Copying {
                report::note(&format!(
                    "the migration recorded in {} has copied every planned record already",
                    state_path.display()
                ));
                return complete(
                    cfg,
                    (&source, &target),
                    &mut ledger,
                    None,
                    args.force_offsets,
                    obs,
                );
            }
            report::note(&format!(
                "resuming the migration started at {} (state file {})",
                report::time_ms(state.started_at_ms),
                state_path.display()
            ));
            check_source_unchanged(&source, &state.plan, false)?;
            check_groups_inactive(&source, &state.plan, args.allow_active_groups)?;
            ledger
        }
        None => {
            if let (Some(s), None) = (shard, &args.plan) {
                return Err(usage(format!(
                    "--shard {s} needs --plan FILE: every worker must run the same saved plan \
                     (`kmigrate plan --out plan.json` once, then `kmigrate run --plan plan.json \
                     --shard INDEX/{}` on each worker)",
                    s.count
                )));
            }
            let mut plan = match &args.plan {
                Some(path) => {
                    let plan = read_plan(path)?;
                    check_clusters(&plan, cfg)?;
                    check_mapping_unchanged(&plan, cfg, &format!("the plan {}", path.display()))?;
                    plan
                }
                None => super::plan::make(cfg, &source, &target)?,
            };
            if args.plan.is_some() && !check_source_unchanged(&source, &plan, args.replan)? {
                report::note("the source changed since the plan: --replan, so planning again");
                plan = super::plan::make(cfg, &source, &target)?;
            }
            if !plan.problems.is_empty() {
                return Err(usage(format!(
                    "the plan has {} problem(s) to fix before anything is copied: {}",
                    plan.problems.len(),
                    plan.problems.join(" ")
                )));
            }
            check_groups_inactive(&source, &plan, args.allow_active_groups)?;
            confirm("run", &plan, args.yes)?;
            let created = create_topics(&target, &plan, cfg, shard.is_some())?;
            check_target_partitions(&target, &plan, created)?;
            match shard {
                None => Ledger::create(state_path, &plan, None)?,
                Some(s) => {
                    let owned = partitions_of(&plan, s);
                    report::note(&format!(
                        "shard {s}: {} of the plan's partitions",
                        owned.len()
                    ));
                    Ledger::create(state_path, &plan, Some((s, owned.as_slice())))?
                }
            }
        }
    };

    let opts = copy_options(cfg, args.pipelines);
    obs.phase(RunPhase::Copying);
    let mut sink = obs.sink();
    let (ended, snap) = copy::run(&source, &target, &mut ledger, &opts, stop, sink.as_mut())?;
    match ended {
        Ended::Interrupted => {
            report::note(&format!(
                "interrupted: {} records are on the target; progress is saved in {}. Run \
                 `kmigrate run` again to continue.",
                thousands(snap.records as i64),
                state_path.display()
            ));
            Ok(Outcome::Interrupted)
        }
        Ended::Complete => complete(
            cfg,
            (&source, &target),
            &mut ledger,
            Some(&snap),
            args.force_offsets,
            obs,
        ),
    }
}

/// How the copy runs under `cfg` (`pipelines`: the command line's choice, if any).
pub(super) fn copy_options(cfg: &Config, pipelines: Option<u16>) -> Options {
    Options {
        tuning: Tuning {
            buffer_bytes: (cfg.migration.buffer_mb as usize) << 19,
            compression: cfg.migration.compression.clone(),
            max_batch_bytes: None,
        },
        pipelines: pipelines.map_or(cfg.migration.pipelines, usize::from),
        max_bytes_per_second: cfg.migration.max_bytes_per_second,
        checkpoint_every: Duration::from_secs(2),
        flush_timeout: cfg.migration.timeout,
    }
}

/// After the copy: check it, commit every group's translated offsets on the target, and
/// say so when records arrived on the source after the plan (exit 1).
fn complete(
    cfg: &Config,
    (source, target): (&Cluster, &Cluster),
    ledger: &mut Ledger,
    snap: Option<&Snapshot>,
    force: bool,
    obs: &report::Observer,
) -> anyhow::Result<Outcome> {
    let late = arrived_after_plan(source, &ledger.state)?;
    let outcome = commit_offsets(cfg, (source, target), ledger, snap, force, obs)?;
    if late.is_empty() {
        return Ok(outcome);
    }
    let text = late_text(&late);
    report::warning(&text);
    report::log(&cfg.migration.log_file, "run (late records)", &text);
    Ok(Outcome::ProblemsFound)
}

/// The partitions a group reads on the target that grew on the source since the plan.
fn arrived_after_plan(source: &Cluster, state: &crate::ledger::State) -> anyhow::Result<Vec<Late>> {
    let owned = owned(state);
    let watched = late::watched(&state.plan, owned.as_ref());
    let tps: Vec<Tp> = watched.iter().map(|(tp, _)| tp.clone()).collect();
    let now = source
        .admin()?
        .watermarks(&tps)
        .context("re-reading the source's offsets after the copy")?;
    Ok(late::arrived_after_plan(&watched, &now))
}

/// A shard's partitions, as indexes into its plan's partitions (`None`: unsharded).
fn owned(state: &crate::ledger::State) -> Option<std::collections::BTreeSet<usize>> {
    state
        .shard
        .map(|s| partitions_of(&state.plan, s).into_iter().collect())
}

fn late_text(late: &[Late]) -> String {
    let offsets: i64 = late.iter().map(Late::offsets).sum();
    let mut named: Vec<String> = late
        .iter()
        .take(10)
        .map(|l| {
            format!(
                "{} +{} ({} -> {})",
                l.tp,
                thousands(l.offsets()),
                l.planned,
                l.now
            )
        })
        .collect();
    if late.len() > 10 {
        named.push(format!("and {} more", late.len() - 10));
    }
    format!(
        "production has not stopped: {} offset(s) arrived on the source after the plan, in {} \
         partition(s): {}. kmigrate copied the planned records only: these records are NOT on \
         the target. Stop every producer and consumer of these topics, then run `kmigrate \
         cutover --yes`: it keeps what was copied, copies these records and commits the \
         groups' final offsets",
        thousands(offsets),
        late.len(),
        named.join(", ")
    )
}

fn past_copy_text(past: &[translate::PastCopy]) -> String {
    let named: Vec<String> = past
        .iter()
        .take(10)
        .map(|p| {
            format!(
                "{} at {} offset {} (the copy ends at {})",
                p.group, p.tp, p.commit, p.end
            )
        })
        .collect();
    format!(
        "{} group commit(s) lie past the copy: the groups consumed records that arrived after \
         the plan: {}{}. On the target they resume at the copy's end; `kmigrate cutover` \
         copies the rest and commits their final offsets",
        past.len(),
        named.join(", "),
        if past.len() > 10 { ", ..." } else { "" }
    )
}

/// After the copy: check it, then commit every group's translated offsets on the target.
fn commit_offsets(
    cfg: &Config,
    (source, target): (&Cluster, &Cluster),
    ledger: &mut Ledger,
    snap: Option<&Snapshot>,
    force: bool,
    obs: &report::Observer,
) -> anyhow::Result<Outcome> {
    let mut summary = finish(cfg, target, &ledger.state, snap)?;
    if !summary.mismatches.is_empty() {
        report::note("the target does not match the plan: group offsets were not committed");
        obs.summary(&summary);
        return Ok(Outcome::ProblemsFound);
    }
    if !cfg.migration.translate_offsets {
        ledger.complete_without_offsets()?;
        report::note("translate_offsets = false: no group offsets were committed on the target");
        obs.summary(&summary);
        return Ok(Outcome::Success);
    }
    obs.phase(RunPhase::Committing);
    if ledger.phase() == Phase::Copied {
        let state = &ledger.state;
        // A shard's worker commits its own partitions' offsets only; the other shards'
        // workers commit theirs.
        let owned = owned(state);
        let skipped = translate::skipped_partitions_to_commit(&state.plan, owned.as_ref());
        let ends: BTreeMap<Tp, i64> = target
            .admin()?
            .low_high(&skipped)
            .context("reading the target's end of partitions with nothing to copy")?
            .into_iter()
            .map(|(tp, (_, high))| (tp, high))
            .collect();
        let mut targets = translate::group_targets(&state.plan, state, &ends, owned.as_ref());
        // The groups' commits now, not the plan's: one that kept consuming during the copy
        // resumes after what it consumed.
        let finals = final_commits(source, state).unwrap_or_else(|e| {
            report::warning(&format!(
                "{e:#}. The groups' offsets committed on the target are translated from the \
                 commits the plan read; if a group consumed on the source during the copy, \
                 `kmigrate cutover --yes` commits its final offsets once the source answers"
            ));
            BTreeMap::new()
        });
        let past = translate::apply_final_commits(state, &mut targets, &finals);
        if !past.is_empty() {
            report::warning(&past_copy_text(&past));
        }
        translate::drop_done(&mut targets, &state.offsets);
        let results = translate::commit(target, &targets, force, "kmigrate run")?;
        ledger.record_offsets(results)?;
    }
    summary.groups = ledger.state.offsets.iter().map(GroupResult::from).collect();
    let text = summary.offsets_text();
    report::print(&text);
    report::log(&cfg.migration.log_file, "run (offsets)", &text);
    obs.summary(&summary);
    Ok(if ledger.phase() == Phase::Complete {
        Outcome::Success
    } else {
        Outcome::ProblemsFound
    })
}

/// The committed offsets on the source now of every planned group whose offsets are not on
/// the target yet (a rerun does not ask again for those committed before).
pub(super) fn final_commits(
    source: &Cluster,
    state: &crate::ledger::State,
) -> anyhow::Result<BTreeMap<String, BTreeMap<Tp, i64>>> {
    // Read after the copy, which may have outlived a coordinator: asked through a new
    // session, so that each group's coordinator is looked up now.
    let admin = source.fresh_admin()?;
    let done: std::collections::BTreeSet<&str> = state
        .offsets
        .iter()
        .filter(|g| g.outcome.is_done())
        .map(|g| g.group.as_str())
        .collect();
    state
        .plan
        .groups
        .iter()
        .filter(|g| !done.contains(g.group.as_str()))
        .map(|g| {
            let commits = admin.committed(&g.group).with_context(|| {
                format!(
                    "reading the final committed offsets of group {} on the source",
                    g.group
                )
            })?;
            Ok((g.group.clone(), commits))
        })
        .collect()
}

/// SIGINT / SIGTERM ask the copy to stop cleanly (flush, checkpoint, exit 130); a second
/// one stops at once (the checkpoint and the target's offsets still allow an exact resume).
pub(super) fn install_signal_handlers() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing the signal handler")?;
    }
    Ok(stop)
}

fn read_plan(path: &Path) -> anyhow::Result<Plan> {
    let bytes = std::fs::read(path)
        .map_err(|e| usage(format!("cannot read the plan {}: {e}", path.display())))?;
    crate::plan::parse_plan(&bytes, &path.display().to_string())
}

/// A plan is only valid for the clusters it was made with.
pub(super) fn check_clusters(plan: &Plan, cfg: &Config) -> anyhow::Result<()> {
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
pub(super) fn check_mapping_unchanged(plan: &Plan, cfg: &Config, what: &str) -> anyhow::Result<()> {
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

/// The source must not have changed since the plan (production and consumption stopped).
/// Returns false when it moved and `replan` allows planning again; an error otherwise.
fn check_source_unchanged(source: &Cluster, plan: &Plan, replan: bool) -> anyhow::Result<bool> {
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

fn check_groups_inactive(source: &Cluster, plan: &Plan, allow: bool) -> anyhow::Result<()> {
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
/// ...)".
pub(super) fn active_groups(source: &Cluster, plan: &Plan) -> anyhow::Result<Vec<String>> {
    let planned: Vec<&str> = plan.groups.iter().map(|g| g.group.as_str()).collect();
    Ok(source
        .admin()?
        .group_members(&planned)
        .context("describing the planned consumer groups on the source")?
        .into_iter()
        .filter(|(_, g)| !g.state.is_inactive())
        .map(|(name, g)| {
            let hosts: Vec<&str> = g.members.iter().map(|m| m.host.as_str()).collect();
            format!("{name} ({}, hosts: {})", g.state, hosts.join(", "))
        })
        .collect())
}

/// Shows the totals and asks; `--yes` skips the question; without a terminal and without
/// `--yes`, refuses rather than guess.
pub(super) fn confirm(command: &str, plan: &Plan, yes: bool) -> anyhow::Result<()> {
    let t = &plan.totals;
    let summary = format!(
        "kmigrate {command}: {} messages in {} partition(s) of {} topic(s) from {} to {}{}",
        thousands(t.messages),
        thousands(t.partitions_to_migrate as i64),
        thousands(t.topics as i64),
        plan.source,
        plan.target,
        if t.topics_to_create > 0 {
            format!(", creating {} topic(s)", t.topics_to_create)
        } else {
            String::new()
        }
    );
    report::note(&summary);
    for w in &plan.warnings {
        report::warning(w);
    }
    ask(yes)
}

/// Asks "Proceed?" on the terminal; `yes` skips the question; without a terminal and
/// without `yes`, refuses rather than guess.
pub(super) fn ask(yes: bool) -> anyhow::Result<()> {
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

/// Creates the topics the plan says to create; returns whether it created any. `shared`:
/// other workers of a sharded run create the same topics at the same time, so a topic one
/// of them created already is not a failure.
pub(super) fn create_topics(
    target: &Cluster,
    plan: &Plan,
    cfg: &Config,
    shared: bool,
) -> anyhow::Result<bool> {
    let existing = if shared {
        target.admin()?.topics()?
    } else {
        BTreeMap::new()
    };
    let to_create: Vec<(String, i32, BTreeMap<String, String>)> = plan
        .topics
        .iter()
        .filter(|t| t.action == TopicAction::Create)
        .filter(|t| !existing.contains_key(t.target()))
        .map(|t| {
            (
                t.target().to_string(),
                t.source_partitions,
                t.create_configs.clone(),
            )
        })
        .collect();
    if to_create.is_empty() {
        return Ok(false);
    }
    if !cfg.migration.create_topics {
        return Err(usage(
            "the plan creates topics but create_topics is false in this configuration: plan again",
        ));
    }
    let names: Vec<&str> = to_create.iter().map(|t| t.0.as_str()).collect();
    report::note(&format!(
        "creating topic(s) on the target: {}",
        names.join(", ")
    ));
    if let Err(e) = target.admin()?.create_topics(&to_create) {
        // Another worker won the race: fine once every topic is there.
        let now = target.admin()?.topics()?;
        if !shared || !names.iter().all(|n| now.contains_key(*n)) {
            return Err(e);
        }
    }
    Ok(true)
}

/// Every planned partition must exist on the target before the first record is written.
/// Topics just created take a moment to show in metadata: then it waits up to the timeout.
pub(super) fn check_target_partitions(
    target: &Cluster,
    plan: &Plan,
    just_created: bool,
) -> anyhow::Result<()> {
    let admin = target.admin()?;
    let deadline = std::time::Instant::now() + target.timeout;
    loop {
        let counts = admin.topics()?;
        let short: Vec<String> = plan
            .topics
            .iter()
            .filter(|t| t.action != TopicAction::None)
            .filter_map(|t| {
                let have = counts.get(t.target()).copied().unwrap_or(0);
                (have < t.source_partitions).then(|| {
                    format!(
                        "{} has {have} of {} partitions",
                        t.target(),
                        t.source_partitions
                    )
                })
            })
            .collect();
        if short.is_empty() {
            return Ok(());
        }
        if !just_created || std::time::Instant::now() > deadline {
            return Err(usage(format!(
                "on the target, {}: nothing was written. Add partitions or exclude the topics, \
                 then run again",
                short.join("; ")
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The end of a run: compare what the target holds with what was planned, per topic, and
/// report it (the reference procedure's step 5).
pub(super) fn finish(
    cfg: &Config,
    target: &Cluster,
    state: &crate::ledger::State,
    snap: Option<&Snapshot>,
) -> anyhow::Result<RunSummary> {
    let tps: Vec<Tp> = state.partitions.iter().map(|p| p.target_tp()).collect();
    let highs = target
        .admin()?
        .low_high(&tps)
        .context("reading the target's offsets to check the copy")?;
    // (source topic, target topic) -> (planned offsets, written, target growth)
    let mut per_topic: BTreeMap<(&str, &str), (i64, u64, i64)> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for (p, tp) in state.partitions.iter().zip(&tps) {
        let e = per_topic
            .entry((p.topic.as_str(), tp.topic.as_str()))
            .or_default();
        e.0 += p.end - p.start;
        e.1 += p.progress.written;
        let growth = highs
            .get(tp)
            .map_or(0, |(_, h)| h - p.progress.base.unwrap_or(*h));
        e.2 += growth;
        if growth != p.progress.written as i64 {
            mismatches.push(format!(
                "{tp}: {} record(s) written but the target partition grew by {growth}",
                p.progress.written
            ));
        }
    }
    let summary = RunSummary {
        topics: per_topic
            .into_iter()
            .map(
                |((topic, target_topic), (planned, written, growth))| TopicResult {
                    topic: topic.to_string(),
                    target_topic: target_topic.to_string(),
                    planned_offsets: planned,
                    written_records: written,
                    target_growth: growth,
                },
            )
            .collect(),
        mismatches,
        this_run: snap.map(|s| ThisRun {
            records: s.records_this_run,
            bytes: s.bytes_this_run,
            elapsed_ms: s.elapsed.as_millis() as u64,
        }),
        groups: Vec::new(),
    };
    let out = summary.copy_text();
    report::print(&out);
    report::log(&cfg.migration.log_file, "run", &out);
    Ok(summary)
}
