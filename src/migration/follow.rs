//! Following the live source (`sync`): about every second, extend the ranges of the
//! partitions that got records to the source's last stable offset (saved before anything
//! past the old end is copied) and copy the new records with the copy stage's exact resume;
//! every `rescan_secs`, read the source's groups and topics again and follow what is new.
//!
//! Which partitions got records is told by a [`Watcher`] armed at the copy's ends: an idle
//! source costs one waiting fetch per broker, not a read of every partition's offsets each
//! second. Every partition's offsets are read at the first round, after each rescan, after
//! a failed round, and while the watcher cannot be trusted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::Migration;
use super::target::{Needs, prepare_target};
use crate::copy::{Ended, ProgressSink, Snapshot};
use crate::kafka::watch::Watcher;
use crate::kafka::{Cluster, error};
use crate::ledger::{Ledger, State};
use crate::model::{Ends, Tp};
use crate::plan::Plan;
use crate::plan::live::{self, StillSince};
use crate::report::waiting::Waiting;
use crate::report::{self, follow::Display, migration as texts};

/// How often the offsets of the partitions that got records are read.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// How often every partition's offsets are read even though the watcher saw nothing there:
/// the last stable offset also moves past aborted transactions, which show no record.
const FULL_EVERY: Duration = Duration::from_secs(60);
/// How long the copy's clients are kept with nothing to copy: an idle source is followed by
/// the watcher alone.
const KEEP_IDLE_CLIENTS: Duration = Duration::from_secs(10);
/// How long the pause between rounds waits for the watcher at a time (it returns at once
/// when records arrive; a stop request is seen within this).
const POLL_SLICE: Duration = Duration::from_millis(200);

/// The follow loop: until Ctrl-C / SIGTERM, one round after another (rescan when due,
/// extend, copy, report), each followed by a pause. A round's error is handled here, in
/// one place. A sync runs for days: a broker, a leader or the network away for longer than
/// a step's time is waited out (said at once and every minute, shown in the status), and
/// the next round resumes exactly as a rerun would, from the state saved when the round
/// failed. What cannot heal by itself (a refusal, a topic gone, records lost) ends the loop.
pub fn follow(m: &Migration, ledger: &mut Ledger, rescan: &mut Rescan) -> anyhow::Result<()> {
    let mut display = Display::new();
    let mut waiting = Waiting::default();
    let mut watch = Watch::default();
    while !m.stopped() {
        let started = Instant::now();
        let rest = match round(m, ledger, rescan, &mut watch, &mut display) {
            Ok(Ended::Complete) => {
                if let Some(text) = waiting.recovered(Instant::now()) {
                    report::note(&text);
                }
                FOLLOW_EVERY.saturating_sub(started.elapsed())
            }
            Ok(Ended::Interrupted) => break,
            Err(e) if error::heals(&e) => {
                watch.full = true;
                wait(&mut waiting, &mut display, &e)
            }
            Err(e) => return Err(e),
        };
        watch.pause(m.stop_flag(), rest);
    }
    display.close();
    // Where the source ends as the sync stops: a cutover that finds it still there counts
    // its quiet window from when the sync first saw it so. Not read while the clusters are
    // being waited for (a stop request is not held up by a step's time).
    if !watch.full {
        match source_ends(&m.source, &source_tps(&ledger.state)) {
            Ok(now) => note_still(&mut ledger.state, &now),
            Err(e) => tracing::debug!("{e:#}; the state file keeps the last reading"),
        }
    }
    ledger.save()
}

/// Records a reading of every copied partition's ends in the state (see [`StillSince`]).
fn note_still(state: &mut State, now: &BTreeMap<Tp, Ends>) {
    let ends = live::ends_digest(now);
    state.source_still = Some(StillSince::after(
        state.source_still.as_ref(),
        ends,
        crate::model::now_ms(),
    ));
}

/// A round failed with an error the clusters coming back heal: says so when due, shows it
/// in the status, and returns the pause before the next try.
fn wait(waiting: &mut Waiting, display: &mut Display, e: &anyhow::Error) -> Duration {
    let now = Instant::now();
    tracing::debug!("round failed, waiting: {e:#}");
    if let Some(text) = waiting.failed(&format!("{e:#}"), now) {
        report::warning(&text);
    }
    if let Some(status) = waiting.status(now) {
        display.waiting(&status);
    }
    waiting.pause(now)
}

/// What tells a round which partitions to read: the watcher, once the copy has caught up,
/// and whether the next round reads them all.
struct Watch {
    watcher: Option<Watcher>,
    /// Whether the next round reads every partition's offsets.
    full: bool,
    /// When every partition's offsets are read next in any case.
    full_at: Instant,
    /// When a round last copied records.
    copied_at: Instant,
}

impl Default for Watch {
    fn default() -> Watch {
        Watch {
            watcher: None,
            full: true,
            full_at: Instant::now(),
            copied_at: Instant::now(),
        }
    }
}

impl Watch {
    /// The partitions whose offsets this round reads: all of them, or those the watcher
    /// saw records in. Every partition when there is no watcher, when it failed, when the
    /// state follows partitions it does not watch (a rescan added them), after a failed
    /// round, and every [`FULL_EVERY`].
    fn partitions(&mut self, state: &State) -> Vec<Tp> {
        let usable = self.watcher.as_ref().filter(|w| {
            !self.full
                && Instant::now() < self.full_at
                && w.broken().is_none()
                && w.len() == state.partitions.len()
        });
        match usable {
            Some(w) => w.changed(),
            None => {
                self.full = true;
                source_tps(state)
            }
        }
    }

    /// After a round that copied everything up to the ends of the partitions `read`: the
    /// watcher watches them from there (one is made, watching every partition, after a
    /// round that read them all). A watcher that cannot be made or moved is dropped, and
    /// every partition is read until it can.
    fn arm(&mut self, m: &Migration, state: &State, read: &BTreeMap<Tp, Ends>) {
        if read.is_empty() && !self.full && self.watcher.is_some() {
            return;
        }
        let ends = |all: bool| -> BTreeMap<Tp, i64> {
            state
                .partitions
                .iter()
                .map(|p| (Tp::new(&p.topic, p.partition), p.end))
                .filter(|(tp, _)| all || read.contains_key(tp))
                .collect()
        };
        let armed = match self.watcher.as_mut() {
            Some(w) if !self.full => w.rearm(&ends(false)),
            _ => {
                self.watcher = None;
                self.full_at = Instant::now() + FULL_EVERY;
                Watcher::new(&m.source, &ends(true)).map(|w| self.watcher = Some(w))
            }
        };
        self.full = armed.is_err();
        if let Err(e) = armed {
            tracing::debug!("{e:#}; reading every partition's offsets each round");
            self.watcher = None;
        }
    }

    /// After a round that copied (`copied`) or had nothing to copy: the copy's clients are
    /// closed once nothing was copied for [`KEEP_IDLE_CLIENTS`].
    fn idle(&mut self, m: &Migration, copied: bool) {
        if copied {
            self.copied_at = Instant::now();
        } else if self.copied_at.elapsed() >= KEEP_IDLE_CLIENTS && m.release_clients() {
            tracing::debug!(
                "nothing to copy for {} s: the copy's clients are closed until records arrive",
                KEEP_IDLE_CLIENTS.as_secs()
            );
        }
    }

    /// Sleeps up to `d`, waking early on a stop request, while the watcher takes what the
    /// source says.
    fn pause(&mut self, stop: &AtomicBool, d: Duration) {
        let Some(w) = self.watcher.as_mut() else {
            return pause(stop, d);
        };
        let until = Instant::now() + d;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            w.poll(
                until
                    .saturating_duration_since(Instant::now())
                    .min(POLL_SLICE),
            );
        }
    }
}

/// One round: rescan when due, read the source's offsets where records arrived, extend and
/// copy, report.
fn round(
    m: &Migration,
    ledger: &mut Ledger,
    rescan: &mut Rescan,
    watch: &mut Watch,
    display: &mut Display,
) -> anyhow::Result<Ended> {
    if Instant::now() >= rescan.next {
        rescan.run_or_warn(m, ledger)?;
    }
    let tps = watch.partitions(&ledger.state);
    let now = if tps.is_empty() {
        BTreeMap::new()
    } else {
        source_ends(&m.source, &tps)?
    };
    if !tps.is_empty() && tps.len() == ledger.state.partitions.len() {
        note_still(&mut ledger.state, &now);
    }
    // Behind the source as it was just read: what this round copies.
    let behind = report::follow::lags(&ledger.state, &now);
    let (ended, snap) = extend_and_copy(m, ledger, &now, display)?;
    if ended == Ended::Complete {
        watch.arm(m, &ledger.state, &now);
        watch.idle(m, snap.is_some());
        display.round(behind, ledger.state.written());
    }
    Ok(ended)
}

/// The source partitions a state copies.
pub fn source_tps(state: &State) -> Vec<Tp> {
    state
        .partitions
        .iter()
        .map(|p| Tp::new(&p.topic, p.partition))
        .collect()
}

/// Reads where the source's partitions `tps` end now (what a live copy follows).
pub fn source_ends(source: &Cluster, tps: &[Tp]) -> anyhow::Result<BTreeMap<Tp, Ends>> {
    source
        .admin()?
        .ends(tps)
        .context("reading the source's last stable offsets of the copied partitions")
}

/// Extends the ranges to the source's offsets `now` (saved first) and copies what is not on
/// the target yet. Returns how the copy ended and its figures (none when there was nothing
/// to copy).
pub fn extend_and_copy(
    m: &Migration,
    ledger: &mut Ledger,
    now: &BTreeMap<Tp, Ends>,
    sink: &mut dyn ProgressSink,
) -> anyhow::Result<(Ended, Option<Snapshot>)> {
    let moved = ledger.extend(now)?;
    tracing::debug!(partitions = moved.len(), "ranges extended");
    if ledger.state.partitions.iter().all(|p| p.progress.done) {
        ledger.mark_copied();
        return Ok((Ended::Complete, None));
    }
    let (ended, snap) = m.copy(ledger, sink)?;
    Ok((ended, Some(snap)))
}

/// Reading the source's groups and topics again, every `rescan_secs`: what is new enters
/// the state, and what needs the operator is reported once, when it first shows.
pub struct Rescan {
    every: Duration,
    /// When the next rescan is due.
    next: Instant,
    /// Which groups were below the copy's start at the last rescan.
    resets: live::Resets,
    /// Warnings given already.
    warned: BTreeSet<String>,
}

impl Rescan {
    /// `now`: the first rescan is due at once (a resumed sync looks for what appeared while
    /// it was stopped), else after `every`.
    pub fn new(every: Duration, now: bool) -> Rescan {
        Rescan {
            every,
            next: Instant::now() + if now { Duration::ZERO } else { every },
            resets: live::Resets::default(),
            warned: BTreeSet::new(),
        }
    }

    /// Plans again as the sync's start did, follows what is new (target topics and
    /// partitions first, then the state file, saved), and reports new offset resets.
    fn run(&mut self, m: &Migration, ledger: &mut Ledger) -> anyhow::Result<()> {
        let mut fresh = m.plan().context(
            "rescanning the source for new groups, topics and partitions (the copy so far \
                 is saved: `kmigrate sync` again continues it)",
        )?;
        live::follow(&mut fresh);
        let growth = live::grow(&ledger.state.plan, &fresh);
        for held in &growth.held {
            self.warn_once(held.text());
        }
        // A rescan creates topics only where create_topics allows it (the others are held).
        if !growth.create.is_empty() || !growth.raise.is_empty() {
            prepare_target(&m.target, &Needs::of_growth(&growth), true)?;
        }
        if ledger.grow(&growth)? {
            report::note(&texts::growth(&growth));
        }
        let found = live::resets(&ranges(&ledger.state, &fresh), &commits(&fresh));
        for r in self.resets.news(found) {
            report::warning(&texts::reset_while_syncing(&r, ledger.path()));
        }
        self.next = Instant::now() + self.every;
        Ok(())
    }

    /// [`Rescan::run`], for a sync that runs for days: an outage fails the round (and is
    /// waited out); any other failure is said once, and the sync goes on following what it
    /// follows already until the next rescan tries again.
    fn run_or_warn(&mut self, m: &Migration, ledger: &mut Ledger) -> anyhow::Result<()> {
        match self.run(m, ledger) {
            Err(e) if !error::heals(&e) => {
                self.warn_once(texts::rescan_failed(&e, self.every));
                self.next = Instant::now() + self.every;
                Ok(())
            }
            other => other,
        }
    }

    fn warn_once(&mut self, text: String) {
        if !self.warned.contains(&text) {
            report::warning(&text);
            self.warned.insert(text);
        }
    }
}

/// Per copied partition, (the copy's start, the source's low watermark as `plan` read it).
pub fn ranges(state: &State, plan: &Plan) -> BTreeMap<Tp, (i64, i64)> {
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

/// Sleeps up to `d`, waking early on a stop request.
pub fn pause(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}
