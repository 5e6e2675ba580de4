//! `kmigrate sync`: copy the backlog while producers and consumers keep running, then keep
//! following the source: about every second, extend each partition's range to the source's
//! last stable offset (saved before anything past the old end is copied) and copy the new
//! records with the copy stage's exact resume. Every `rescan_secs` it reads the source's
//! groups and topics again: new groups, topics and partitions enter the state file (saved
//! before anything of them is copied), and a group that committed below the copy's start
//! is reported. It commits no group offsets: `kmigrate cutover` does, once the source is
//! stopped.

use std::collections::{BTreeMap, BTreeSet};
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
use crate::plan::Plan;
use crate::plan::live::{self, Growth, Reset};
use crate::report::{self, follow, thousands};

/// How often the source's offsets are read again.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

pub fn execute(cfg: &Config, args: &SyncArgs) -> anyhow::Result<Outcome> {
    let stop = run::install_signal_handlers()?;
    let state_path = cfg.migration.state_file.as_path();
    let source = Cluster::new(Role::Source, &cfg.source, cfg.migration.timeout);
    let target = Cluster::new(Role::Target, &cfg.target, cfg.migration.timeout);
    let _lock = lock(state_path, "sync")?;
    let (mut ledger, resumed) = open_or_start(cfg, (&source, &target), state_path, args.yes)?;
    let opts = run::copy_options(cfg, args.pipelines);
    // A resumed sync looks for what appeared while it was stopped at once.
    let mut rescan = Rescan::new(cfg.migration.rescan, resumed);
    follow(
        cfg,
        (&source, &target),
        &mut ledger,
        &opts,
        &mut rescan,
        &stop,
    )?;
    report::note(&format!(
        "sync stopped: {} records are on the target; progress is saved in {}. `kmigrate \
         sync` continues it; once producers and consumers are stopped, `kmigrate cutover` \
         finishes it.",
        thousands(ledger.state.written() as i64),
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
    crate::ledger::shards::lock(state_path)?.map_err(|busy| {
        let (pid, path) = (busy.pid, busy.path);
        usage(format!(
            "another kmigrate (pid {}) is running this migration (lock {}), e.g. a `kmigrate \
             sync`: stop it first (Ctrl-C, or `kill -TERM {}`), wait until it has saved and \
             exited, then run `kmigrate {command}` again",
            pid.map_or("unknown".to_string(), |p| p.to_string()),
            path.display(),
            pid.map_or("PID".to_string(), |p| p.to_string()),
        ))
    })
}

/// Resumes the sync recorded in the state file, or plans a live one, asks, creates the
/// target topics and starts its state file. Says whether it resumed.
fn open_or_start(
    cfg: &Config,
    (source, target): (&Cluster, &Cluster),
    state_path: &Path,
    yes: bool,
) -> anyhow::Result<(Ledger, bool)> {
    if let Some((s, path)) = crate::ledger::shards::find(state_path)?.first() {
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
        return Ok((ledger, true));
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
    Ok((Ledger::create(state_path, &plan, None)?, false))
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

/// The follow loop: until Ctrl-C / SIGTERM, rescan when due, extend, copy, report, pause.
fn follow(
    cfg: &Config,
    clusters: (&Cluster, &Cluster),
    ledger: &mut Ledger,
    opts: &Options,
    rescan: &mut Rescan,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut display = follow::Display::new();
    while !stop.load(Ordering::Relaxed) {
        let round = Instant::now();
        if round >= rescan.next {
            rescan.run(cfg, clusters, ledger)?;
        }
        let now = source_offsets(clusters.0, &source_tps(&ledger.state))?;
        // Behind the source as it was just read: what this round copies.
        let behind = follow::lags(&ledger.state, &now);
        let (ended, _) = extend_and_copy(clusters, ledger, &now, opts, stop, &mut display)?;
        if ended == Ended::Interrupted {
            break;
        }
        display.round(behind, ledger.state.written());
        pause(stop, FOLLOW_EVERY.saturating_sub(round.elapsed()));
    }
    display.close();
    ledger.save()
}

/// Reading the source's groups and topics again, every `rescan_secs`: what is new enters
/// the state, and what needs the operator is reported once, when it first shows.
struct Rescan {
    every: Duration,
    /// When the next rescan is due.
    next: Instant,
    /// Which groups were below the copy's start at the last rescan.
    resets: live::Resets,
    /// Warnings given already.
    warned: BTreeSet<String>,
}

impl Rescan {
    fn new(every: Duration, now: bool) -> Rescan {
        Rescan {
            every,
            next: Instant::now() + if now { Duration::ZERO } else { every },
            resets: live::Resets::default(),
            warned: BTreeSet::new(),
        }
    }

    /// Plans again as the sync's start did, follows what is new (target topics and
    /// partitions first, then the state file, saved), and reports new offset resets.
    fn run(
        &mut self,
        cfg: &Config,
        (source, target): (&Cluster, &Cluster),
        ledger: &mut Ledger,
    ) -> anyhow::Result<()> {
        let mut fresh = super::plan::make(cfg, source, target).context(
            "rescanning the source for new groups, topics and partitions (the copy so far \
                 is saved: `kmigrate sync` again continues it)",
        )?;
        live::follow(&mut fresh);
        let growth = live::grow(&ledger.state.plan, &fresh);
        for held in &growth.held {
            self.warn_once(held.text());
        }
        prepare_target(target, &growth)?;
        if ledger.grow(&growth)? {
            report::note(&growth_text(&growth));
        }
        let found = live::resets(&ranges(&ledger.state, &fresh), &commits(&fresh));
        for r in self.resets.news(found) {
            report::warning(&reset_text(&r, ledger.path()));
        }
        self.next = Instant::now() + self.every;
        Ok(())
    }

    fn warn_once(&mut self, text: String) {
        if !self.warned.contains(&text) {
            report::warning(&text);
            self.warned.insert(text);
        }
    }
}

/// Creates the new topics and adds the partitions a growth needs on the target, and waits
/// until the target's metadata shows them, before anything is written there.
fn prepare_target(target: &Cluster, growth: &Growth) -> anyhow::Result<()> {
    if growth.create.is_empty() && growth.raise.is_empty() {
        return Ok(());
    }
    let admin = target.admin()?;
    if !growth.create.is_empty() {
        let names: Vec<&str> = growth.create.iter().map(|t| t.0.as_str()).collect();
        report::note(&format!(
            "creating topic(s) on the target: {}",
            names.join(", ")
        ));
        if let Err(e) = admin.create_topics(&growth.create) {
            // Created meanwhile by someone else: fine once they have the partitions.
            if !has_partitions(&admin.topics()?, &growth.needs()).is_empty() {
                return Err(e.context(format!(
                    "creating the new topic(s) {} on the target",
                    names.join(", ")
                )));
            }
        }
    }
    if !growth.raise.is_empty() {
        let raised: Vec<String> = growth
            .raise
            .iter()
            .map(|(t, n)| format!("{t} to {n}"))
            .collect();
        report::note(&format!(
            "adding partitions on the target: {}",
            raised.join(", ")
        ));
        admin.create_partitions(&growth.raise).with_context(|| {
            format!(
                "adding partitions on the target ({}), as the source's topics grew",
                raised.join(", ")
            )
        })?;
    }
    let deadline = Instant::now() + target.timeout;
    loop {
        let short = has_partitions(&admin.topics()?, &growth.needs());
        if short.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(usage(format!(
                "on the target, {} after creating them: nothing of them was copied. Check the \
                 target's topics, then run `kmigrate sync` again",
                short.join("; ")
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The target topics of `needs` (name -> partitions needed) that have fewer partitions.
fn has_partitions(counts: &BTreeMap<String, i32>, needs: &BTreeMap<String, i32>) -> Vec<String> {
    needs
        .iter()
        .filter_map(|(t, n)| {
            let have = counts.get(t).copied().unwrap_or(0);
            (have < *n).then(|| format!("{t} has {have} of {n} partitions"))
        })
        .collect()
}

/// The note for what a rescan added.
fn growth_text(growth: &Growth) -> String {
    let mut parts = Vec::new();
    if !growth.partitions.is_empty() {
        let mut named: Vec<String> = growth
            .partitions
            .iter()
            .take(10)
            .map(|p| format!("{} from offset {}", p.tp(), p.start))
            .collect();
        if growth.partitions.len() > 10 {
            named.push(format!("and {} more", growth.partitions.len() - 10));
        }
        parts.push(format!(
            "{} new partition(s): {}",
            growth.partitions.len(),
            named.join(", ")
        ));
    }
    if !growth.groups.is_empty() {
        let names: Vec<&str> = growth.groups.iter().map(|g| g.group.as_str()).collect();
        parts.push(format!(
            "{} new group(s), whose final offsets `kmigrate cutover` translates too: {}",
            names.len(),
            names.join(", ")
        ));
    }
    format!("rescan: following {}", parts.join("; "))
}

/// Per copied partition, (the copy's start, the source's low watermark as `plan` read it).
pub(super) fn ranges(state: &State, plan: &Plan) -> BTreeMap<Tp, (i64, i64)> {
    let lows: BTreeMap<Tp, i64> = plan.partitions.iter().map(|p| (p.tp(), p.low)).collect();
    state
        .partitions
        .iter()
        .filter_map(|p| {
            let tp = Tp::new(&p.topic, p.partition);
            lows.get(&tp).map(|low| (tp, (p.start, *low)))
        })
        .collect()
}

/// The selected groups' commits as `fresh` read them: group -> partition -> offset.
fn commits(fresh: &Plan) -> BTreeMap<String, BTreeMap<Tp, i64>> {
    let mut out: BTreeMap<String, BTreeMap<Tp, i64>> = BTreeMap::new();
    for p in &fresh.partitions {
        for (g, c) in &p.committed {
            out.entry(g.clone()).or_default().insert(p.tp(), *c);
        }
    }
    out
}

/// The warning for a reset seen while syncing, with what the operator can do.
fn reset_text(r: &Reset, state_path: &Path) -> String {
    format!(
        "{}. If the group is to read them on the target, start the migration over (stop \
         `kmigrate sync`, delete what it copied to the target and move {} away, then run \
         `kmigrate sync` again: it copies from the groups' commits then); if the reset was a \
         mistake, commit the group at {} or later on the source before `kmigrate cutover`",
        r.text(),
        state_path.display(),
        r.start
    )
}

/// Sleeps up to `d`, waking early on a stop request.
fn pause(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}
