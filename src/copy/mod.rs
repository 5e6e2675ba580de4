//! The copy stage: read every planned range from the source, write each record to the same
//! partition on the target, checkpoint progress, and resume exactly after any stop.
//!
//! - [`batch`]: record batches as the source's log holds them, and the batch path's rules
//!   (pass a batch on with its header rewritten, re-encode it, or drop it; pure);
//! - [`stream`]: one partition's producer stream on the batch path: sequences, what is in
//!   flight, what each answer of the target's leader means (the idempotence rules; pure);
//! - [`prepare`]: where each unfinished partition continues ([`resume`]: the arithmetic);
//! - [`assign`]: which pipeline copies which partition (pure);
//! - [`shard`]: which worker of a sharded run copies which partition (pure);
//! - [`pipeline`]: one reader, one writer and the copy loop over a set of partitions;
//! - [`reconcile`]: pairing acknowledgements with source offsets;
//! - [`shared`]: the board where pipelines publish progress for checkpoints;
//! - [`session`]: what one copy leaves to the next within a command (each pipeline's
//!   clients, the target's batch limit);
//! - this module: the coordinator. It starts the pipelines, shows progress, checkpoints
//!   the state file, and stops everything on Ctrl-C or the first failure.

pub mod assign;
pub mod batch;
pub mod batched;
pub mod pipeline;
pub mod prepare;
mod progress;
mod reconcile;
pub mod records;
pub mod resume;
pub mod session;
pub mod shard;
mod shared;
mod slot;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

pub use self::progress::{PartitionSnapshot, ProgressSink, Routes, Snapshot};
pub use self::session::Session;
use self::shared::Shared;
use crate::config::Engine;
use crate::kafka::Cluster;
use crate::kafka::reader::{DEFAULT_BATCH_BYTES, Tuning};
use crate::ledger::{self, Ledger};
use crate::model::now_ms;

/// How a copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Complete,
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Memory budget and producer settings for the whole copy (split between pipelines).
    pub tuning: Tuning,
    /// Copy pipelines to run in parallel (at most one per partition).
    pub pipelines: usize,
    pub max_bytes_per_second: Option<u64>,
    pub checkpoint_every: Duration,
    /// How long to wait for the target to acknowledge in-flight records when stopping.
    pub flush_timeout: Duration,
    /// How records travel.
    pub engine: Engine,
}

/// How long the batch engine keeps resuming through failures that heal (a leader moving, a
/// broker restarting), counted from the first, in `migration.timeout_secs`: the record
/// engine's producer rides such outages out within its own retries.
const BATCH_HEALING_TIMEOUTS: u32 = 4;

/// Copies what the ledger has left to copy. Saves the state before the first write, every
/// `checkpoint_every`, and at the end, whether the copy completes, fails or is interrupted.
/// Reads and writes through the clients `session` kept from an earlier copy, if any, and
/// leaves it this copy's when it ended cleanly.
///
/// On the batch engine, a copy that failed with an error the clusters heal by themselves is
/// resumed, a second later, as a rerun would: the target's log is read first (rule 4 of
/// [`stream`]), so nothing is written twice; after [`BATCH_HEALING_TIMEOUTS`] timeouts the
/// failure is the caller's.
pub fn run(
    source: &Cluster,
    target: &Cluster,
    ledger: &mut Ledger,
    opts: &Options,
    session: &Session,
    stop: &AtomicBool,
    sink: &mut dyn ProgressSink,
) -> anyhow::Result<(Ended, Snapshot)> {
    let mut batches = batch_engine(source, target, opts, session);
    let mut failing_since: Option<Instant> = None;
    loop {
        let before = ledger.state.written();
        let ended = run_once(source, target, ledger, opts, session, stop, sink, batches);
        // The window counts from the first failure since the copy last moved on.
        if ledger.state.written() > before {
            failing_since = None;
        }
        let window = opts.flush_timeout * BATCH_HEALING_TIMEOUTS;
        match ended {
            // A source partition in message format v0/v1: the record engine copies what
            // is left, from where the target's log says (as a rerun would), now and in
            // the command's later copies.
            Err(e) if batches && e.chain().any(|c| c.is::<batched::OldFormat>()) => {
                let why = e
                    .chain()
                    .find(|c| c.is::<batched::OldFormat>())
                    .map_or_else(|| format!("{e:#}"), ToString::to_string);
                tracing::warn!("{why}: copying with the record engine");
                session.record_only(why);
                batches = false;
            }
            Err(e)
                if batches
                    && !stop.load(Ordering::Relaxed)
                    && crate::kafka::error::heals(&e)
                    && failing_since.get_or_insert_with(Instant::now).elapsed() < window =>
            {
                crate::kafka::repeats::limited(
                    &format!("{e:#}; resuming from the target's log"),
                    |line| tracing::warn!("{line}"),
                );
                std::thread::sleep(Duration::from_secs(1));
                if stop.load(Ordering::Relaxed) {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    source: &Cluster,
    target: &Cluster,
    ledger: &mut Ledger,
    opts: &Options,
    session: &Session,
    stop: &AtomicBool,
    sink: &mut dyn ProgressSink,
    batches: bool,
) -> anyhow::Result<(Ended, Snapshot)> {
    let started = Instant::now();
    let work = prepare::prepare(target, &mut ledger.state, &opts.tuning)?;
    // The bases must be on disk before the first record is: they anchor the resume math.
    ledger.save()?;

    let mut topics: Vec<String> = work.iter().map(|w| w.target_topic.clone()).collect();
    topics.sort();
    topics.dedup();
    let tuning = Tuning {
        max_batch_bytes: batch_limit(target, &topics, session),
        ..opts.tuning.clone()
    };
    let weights: Vec<u64> = work
        .iter()
        .map(|w| (w.end - w.from).max(0) as u64)
        .collect();
    let bins = assign::balance(&weights, opts.pipelines.clamp(1, work.len().max(1)));
    let mut jobs = jobs(source, target, work, &bins, &tuning, opts);
    session.copying(
        ledger
            .state
            .partitions
            .iter()
            .map(|p| (p.topic.clone(), p.target_topic.clone(), p.partition))
            .collect(),
    );
    for job in &mut jobs {
        if batches {
            job.wire = session.take_wire(job.index);
        } else {
            job.kept = session.take(job.index, &job.tuning);
        }
    }
    // Said once per copy: a sync copies every round, so at debug level.
    tracing::debug!(pipelines = jobs.len(), "copying");

    let read_from = read_positions(&ledger.state, &jobs);
    let written_before = written_per_topic(&ledger.state);
    let path = ledger.path().to_path_buf();
    let shared = Shared::new(&mut ledger.state, read_from);
    let mut kept = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let shared = &shared;
                let index = job.index;
                let copy = move || match batches {
                    true => batched::run(job, shared).map(session::Kept::Batch),
                    false => pipeline::run(job, shared).map(|c| session::Kept::Record(Box::new(c))),
                };
                (index, scope.spawn(copy))
            })
            .collect();
        let threads: Vec<_> = handles.iter().map(|(_, h)| h).collect();
        coordinate(&shared, &threads, &path, opts, stop, sink, started);
        for (index, h) in handles {
            match h.join() {
                Ok(clients) => kept.extend(clients.map(|c| (index, c))),
                Err(_) => shared.fail(anyhow::anyhow!("a copy pipeline panicked")),
            }
        }
    });
    let failure = shared.take_failure();
    let mut snap = shared.snapshot(started.elapsed());
    session.add_routes(&shared.take_routes());
    if !batches {
        session.add_routes(&record_engine_routes(&written_before, &snap));
    }
    snap.routes = session.routes();
    drop(shared);
    sink.finish(&snap);
    let ended = end(ledger, failure, stop, snap);
    leave(session, &ended, &ledger.state, kept);
    ended
}

/// Records on the target per source topic, as the state says.
fn written_per_topic(state: &ledger::State) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for p in &state.partitions {
        *out.entry(p.topic.clone()).or_default() += p.progress.written;
    }
    out
}

/// The records a record-engine copy wrote, per source topic: the growth since `before`.
fn record_engine_routes(
    before: &BTreeMap<String, u64>,
    snap: &Snapshot,
) -> BTreeMap<String, Routes> {
    snap.topics
        .iter()
        .map(|(topic, (_, _, written))| {
            let grew = written.saturating_sub(before.get(topic).copied().unwrap_or(0));
            let routes = Routes {
                record_engine_records: grew,
                ..Routes::default()
            };
            (topic.clone(), routes)
        })
        .filter(|(_, r)| r.record_engine_records > 0)
        .collect()
}

/// Whether this copy passes record batches on (the batch engine): when the engine is
/// `auto` or `batch` and both clusters and the command's earlier copies allow it; otherwise
/// says why, once per command (a warning when `batch` was asked for).
fn batch_engine(source: &Cluster, target: &Cluster, opts: &Options, session: &Session) -> bool {
    if opts.engine == Engine::Record || session.left_batch_engine().is_some() {
        return false;
    }
    let why = source.wire_refusal().or_else(|| target.wire_refusal());
    static SAID: std::sync::Once = std::sync::Once::new();
    match why {
        None => {
            SAID.call_once(|| {
                tracing::info!(
                    "copying with the batch engine: the source's record batches go to the \
                     target as they are, only their header rewritten"
                )
            });
            true
        }
        Some(why) if opts.engine == Engine::Batch => {
            SAID.call_once(|| tracing::warn!("{why}: copying with the record engine"));
            false
        }
        Some(why) => {
            SAID.call_once(|| tracing::info!("{why}: copying with the record engine"));
            false
        }
    }
}

/// Keeps the pipelines' clients for the next copy when this one ended cleanly (every
/// partition copied, no failure), else lets go of everything the session holds.
fn leave(
    session: &Session,
    ended: &anyhow::Result<(Ended, Snapshot)>,
    state: &ledger::State,
    kept: Vec<(usize, session::Kept)>,
) {
    let clean = matches!(ended, Ok((Ended::Complete, _)))
        && state.partitions.iter().all(|p| p.progress.done);
    if clean {
        session.keep(kept);
    } else {
        drop(kept);
        session.forget();
    }
}

/// One job per non-empty bin, each with its share of the memory and byte budgets.
fn jobs<'a>(
    source: &'a Cluster,
    target: &'a Cluster,
    work: Vec<prepare::Work>,
    bins: &[Vec<usize>],
    tuning: &Tuning,
    opts: &Options,
) -> Vec<pipeline::Job<'a>> {
    let n = bins.iter().filter(|b| !b.is_empty()).count().max(1);
    let mut work: Vec<Option<prepare::Work>> = work.into_iter().map(Some).collect();
    bins.iter()
        .filter(|b| !b.is_empty())
        .enumerate()
        .map(|(index, bin)| pipeline::Job {
            index,
            kept: None,
            wire: None,
            source,
            target,
            work: bin.iter().filter_map(|i| work[*i].take()).collect(),
            tuning: Tuning {
                buffer_bytes: tuning.buffer_bytes / n,
                ..tuning.clone()
            },
            max_bytes_per_second: opts.max_bytes_per_second.map(|b| (b / n as u64).max(1)),
            flush_timeout: opts.flush_timeout,
        })
        .collect()
}

/// Where reading starts per state partition: the resume point for those copied now, the
/// end for those done before.
fn read_positions(state: &ledger::State, jobs: &[pipeline::Job<'_>]) -> Vec<i64> {
    let mut pos: Vec<i64> = state.partitions.iter().map(|p| p.end).collect();
    for w in jobs.iter().flat_map(|j| &j.work) {
        pos[w.state] = w.from;
    }
    pos
}

/// While pipelines run: shows progress, saves checkpoints, and halts them on Ctrl-C or when
/// a checkpoint cannot be written.
fn coordinate<T>(
    shared: &Shared<'_>,
    handles: &[&std::thread::ScopedJoinHandle<'_, T>],
    path: &std::path::Path,
    opts: &Options,
    stop: &AtomicBool,
    sink: &mut dyn ProgressSink,
    started: Instant,
) {
    let mut last_progress = Instant::now();
    let mut last_checkpoint = Instant::now();
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        if stop.load(Ordering::Relaxed) {
            shared.halt();
        }
        if last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            sink.update(&shared.snapshot(started.elapsed()));
        }
        if !shared.halted() && last_checkpoint.elapsed() >= opts.checkpoint_every {
            last_checkpoint = Instant::now();
            // The previous checkpoint is intact (atomic replace): stop, and let the rerun
            // continue from it.
            if let Err(e) = shared
                .checkpoint(now_ms())
                .and_then(|bytes| ledger::write_checkpoint(path, &bytes))
            {
                shared.fail(e);
            }
        }
    }
}

/// After the pipelines: record the phase, save the state, and say how the copy ended.
fn end(
    ledger: &mut Ledger,
    failure: Option<anyhow::Error>,
    stop: &AtomicBool,
    snap: Snapshot,
) -> anyhow::Result<(Ended, Snapshot)> {
    let all_done = ledger.state.partitions.iter().all(|p| p.progress.done);
    if all_done && failure.is_none() {
        ledger.mark_copied();
    }
    let path = ledger.path().display().to_string();
    if let Err(e) = ledger.save() {
        // The first failure explains the stop; this one only repeats its cause (disk full).
        if failure.is_some() {
            tracing::warn!("{e:#}");
        }
        return Err(failure.unwrap_or(e).context(format!(
            "the copy stopped and its state could not be saved; {path} keeps the last \
             checkpoint that was (every record written after it is found on the target and \
             not written again). Make the state file writable (free space, permissions), then \
             `kmigrate run` resumes exactly"
        )));
    }
    if let Some(e) = failure {
        return Err(e.context(format!(
            "the copy stopped; progress is saved in {path} and `kmigrate run` resumes it"
        )));
    }
    let ended = if all_done || !stop.load(Ordering::Relaxed) {
        Ended::Complete
    } else {
        Ended::Interrupted
    };
    Ok((ended, snap))
}

/// The batch size the target topics accept, when below the writer's default: a broker
/// refuses a whole batch larger than the topic's `max.message.bytes`, so small records
/// batched together would be refused as "too large". Unknown limits keep the default. Read
/// once per set of target topics while `session` keeps it.
fn batch_limit(target: &Cluster, topics: &[String], session: &Session) -> Option<usize> {
    session
        .batch_limit(topics, || read_batch_limit(target, topics))
        .unwrap_or_else(|e| {
            tracing::warn!("{e:#}; producing batches of up to {DEFAULT_BATCH_BYTES} bytes");
            None
        })
}

/// The target topics' batch limit (see [`batch_limit`]).
fn read_batch_limit(target: &Cluster, topics: &[String]) -> anyhow::Result<Option<usize>> {
    let limits = target
        .admin()
        .and_then(|a| a.max_message_bytes(topics))
        .context("reading the target topics' max.message.bytes")?;
    let limit = limits.iter().min_by_key(|(_, v)| **v);
    Ok(limit.and_then(|(topic, min)| {
        batch_for_limit(*min).inspect(|b| {
            tracing::info!(
                "target topic {topic} accepts batches of up to {min} bytes: producing \
                 batches of up to {b} bytes"
            )
        })
    }))
}

/// Room for the record batch header and librdkafka's estimate of it.
const BATCH_OVERHEAD: usize = 1024;

/// The batch size for a topic that accepts batches of up to `max_message_bytes`, or `None`
/// when the default fits.
fn batch_for_limit(max_message_bytes: usize) -> Option<usize> {
    (max_message_bytes < DEFAULT_BATCH_BYTES + BATCH_OVERHEAD)
        .then(|| max_message_bytes.saturating_sub(BATCH_OVERHEAD).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fit_the_smallest_target_limit() {
        assert_eq!(batch_for_limit(1_048_588), None);
        assert_eq!(batch_for_limit(2_097_152), None);
        assert_eq!(batch_for_limit(20_000), Some(18_976));
        assert_eq!(batch_for_limit(100), Some(1));
    }
}
