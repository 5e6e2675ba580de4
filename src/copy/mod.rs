//! The copy executor: read every planned range from the source, write each record to the
//! same partition on the target, checkpoint progress, and resume exactly after any stop.
//!
//! - [`state`]: the state file (plan + per-partition progress + offset translation);
//! - [`resume`]: where an interrupted partition continues (pure arithmetic);
//! - this module: the loop. One thread polls the source, hands records to the producer and
//!   reconciles delivery counts; librdkafka's own threads do the network I/O and compression.

pub mod resume;
pub mod state;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

use self::state::{Phase, State};
use crate::kafka::copier::{
    Assignment, DEFAULT_BATCH_BYTES, Failure, Polled, SendError, SourceReader, TargetWriter, Tuning,
};
use crate::kafka::{Cluster, Role};
use crate::plan::Tp;

/// How a copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Complete,
    Interrupted,
}

/// Counters shown while copying and in the summary.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub elapsed: Duration,
    /// Offsets of the planned ranges read so far / in all.
    pub offsets_done: i64,
    pub offsets_total: i64,
    /// Records on the target (acknowledged, or found there on resume), this run and before.
    pub records: u64,
    /// Records and key+value bytes written by this run.
    pub records_this_run: u64,
    pub bytes_this_run: u64,
    /// Per topic: (offsets done, offsets total, records).
    pub topics: BTreeMap<String, (i64, i64, u64)>,
}

/// Receives progress a few times a second.
pub trait ProgressSink {
    fn update(&mut self, s: &Snapshot);
    fn finish(&mut self, s: &Snapshot);
}

#[derive(Debug, Clone)]
pub struct Options {
    pub tuning: Tuning,
    pub max_bytes_per_second: Option<u64>,
    pub checkpoint_every: Duration,
    /// How long to wait for the target to acknowledge in-flight records when stopping.
    pub flush_timeout: Duration,
}

/// One partition being copied.
struct Slot {
    state: usize,
    topic: usize,
    partition: i32,
    start: i64,
    end: i64,
    /// Next source offset expected to be read (progress measure).
    read_pos: i64,
    /// Records to drop before writing: already on the target (resume after a crash).
    skip: u64,
    /// Those records as the target holds them (offset, hash): each skipped source record
    /// must be the one there, or the target is not the prefix the skip assumes.
    tail: VecDeque<(i64, u128)>,
    /// Target offset of the next record written or skipped.
    next_target: i64,
    /// Source offsets sent and not yet acknowledged, in order.
    sent: VecDeque<i64>,
    /// Acknowledgements already reconciled.
    acks_seen: u64,
    read_done: bool,
    done: bool,
}

/// Copies what `state` has left to copy. Saves the state before the first write, every
/// `checkpoint_every`, and at the end, whether the copy completes, fails or is interrupted.
pub fn run(
    source: &Cluster,
    target: &Cluster,
    state: &mut State,
    state_path: &Path,
    opts: &Options,
    stop: &AtomicBool,
    sink: &mut dyn ProgressSink,
) -> anyhow::Result<(Ended, Snapshot)> {
    debug_assert_eq!(source.role, Role::Source);
    let started = Instant::now();
    let now = crate::commands::plan::now_ms;

    // Where every unfinished partition continues, from the target's current extent.
    let open: Vec<usize> = (0..state.partitions.len())
        .filter(|i| !state.partitions[*i].progress.done)
        .collect();
    let tps: Vec<Tp> = open
        .iter()
        .map(|i| Tp::new(&state.partitions[*i].topic, state.partitions[*i].partition))
        .collect();
    let target_admin = target.admin()?;
    let highs = target_admin
        .low_high(&tps)
        .context("reading the target partitions' high watermarks before copying")?;
    let mut topics: Vec<String> = Vec::new();
    let mut slots: Vec<Slot> = Vec::with_capacity(open.len());
    let mut problems = Vec::new();
    for (i, tp) in open.iter().zip(&tps) {
        let ps = &mut state.partitions[*i];
        let Some((_, high)) = highs.get(tp) else {
            problems.push(format!("{tp}: the target has no such partition"));
            continue;
        };
        match resume::resume(ps.start, ps.end, &ps.progress, *high) {
            Ok(r) => {
                ps.progress.base = Some(r.base);
                let topic = match topics.iter().position(|t| *t == ps.topic) {
                    Some(t) => t,
                    None => {
                        topics.push(ps.topic.clone());
                        topics.len() - 1
                    }
                };
                slots.push(Slot {
                    state: *i,
                    topic,
                    partition: ps.partition,
                    start: ps.start,
                    end: ps.end,
                    read_pos: r.from,
                    skip: r.skip,
                    tail: VecDeque::new(),
                    next_target: r.next_target,
                    sent: VecDeque::new(),
                    acks_seen: 0,
                    read_done: r.from >= ps.end,
                    done: false,
                });
                if r.skip > 0 {
                    tracing::info!(
                        "{tp}: {} record(s) past the last checkpoint are already on the target; \
                         continuing after them",
                        r.skip
                    );
                }
            }
            Err(e) => problems.push(format!("{tp}: {e}")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "cannot resume the copy: {}. Nothing was written.",
            problems.join("; ")
        );
    }
    for s in slots.iter_mut().filter(|s| s.skip > 0) {
        let tp = Tp::new(&topics[s.topic], s.partition);
        let end = s.next_target + s.skip as i64;
        s.tail = crate::verify::record_hashes(target, &tp, s.next_target, end)
            .context("reading the records past the last checkpoint on the target")?
            .into();
    }
    // The bases must be on disk before the first record is: they anchor the resume math.
    state
        .save(state_path, now())
        .with_context(|| format!("saving the state file {}", state_path.display()))?;

    // slot lookup: topic index → partition → slot index.
    let mut lookup: Vec<Vec<Option<usize>>> = vec![Vec::new(); topics.len()];
    for (si, s) in slots.iter().enumerate() {
        let v = &mut lookup[s.topic];
        let p = s.partition as usize;
        if v.len() <= p {
            v.resize(p + 1, None);
        }
        v[p] = Some(si);
    }

    let assignments: Vec<Assignment> = slots
        .iter()
        .filter(|s| !s.read_done)
        .map(|s| Assignment {
            topic: s.topic,
            partition: s.partition,
            from: s.read_pos,
        })
        .collect();
    let tuning = Tuning {
        max_batch_bytes: batch_limit(&target_admin, &topics),
        ..opts.tuning.clone()
    };
    let writer = TargetWriter::new(target, &topics, slots.len(), &tuning)?;
    let mut reader = if assignments.is_empty() {
        None
    } else {
        Some(SourceReader::new(
            source,
            &topics,
            &assignments,
            &opts.tuning,
        )?)
    };

    let mut snap = Snapshot {
        records: state.partitions.iter().map(|p| p.progress.written).sum(),
        ..Snapshot::default()
    };
    let mut bytes: u64 = 0;
    let mut throttle_from = Instant::now();
    let mut last_reconcile = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_activity = Instant::now();
    // The source's last connection problem since the last record, to explain a stall.
    let mut source_trouble: Option<String> = None;
    let mut failure: Option<anyhow::Error> = None;
    let mut interrupted = false;
    // Reading the clock and polling the producer cost as much as copying a small record
    // (clock_gettime alone was 15% of the copy's CPU with 100-byte records): housekeeping
    // runs every HOUSEKEEPING_EVERY records, and on every turn that brought no record.
    const HOUSEKEEPING_EVERY: u32 = 64;
    let mut since_housekeeping: u32 = 0;
    let mut active = false;

    // Partitions with nothing left to read finish as soon as their acks are in.
    let mut remaining = slots.len();
    let finish_ready = |slots: &mut [Slot], state: &mut State, remaining: &mut usize| {
        for s in slots.iter_mut() {
            if !s.done && s.read_done && s.skip == 0 && s.sent.is_empty() {
                s.done = true;
                *remaining -= 1;
                let ps = &mut state.partitions[s.state];
                ps.progress.done = true;
                ps.translation.finish(s.next_target);
            }
        }
    };
    finish_ready(&mut slots, state, &mut remaining);

    while remaining > 0 {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        if let Some(limit) = opts.max_bytes_per_second {
            let allowed = (limit as f64 * throttle_from.elapsed().as_secs_f64()) as u64;
            if bytes > allowed {
                writer.poll(Duration::from_millis(10));
                reconcile(&writer, &mut slots, state, &mut snap)?;
                continue;
            }
            // Allowance saved up while idle (connecting, a stalled source) is capped at one
            // second's worth, so the limit holds over any second, not only on average.
            if allowed > bytes + limit {
                let behind =
                    Duration::from_secs_f64((allowed - bytes - limit) as f64 / limit as f64);
                throttle_from += behind;
            }
        }
        let mut got_record = false;
        if let Some(reader) = reader.as_mut() {
            // A partition whose range is fully read; paused once the polled record is gone.
            let mut to_pause: Option<(usize, i32)> = None;
            match reader.poll(Duration::from_millis(20)) {
                Polled::Record(rec) => {
                    got_record = true;
                    active = true;
                    source_trouble = None;
                    let Some(si) = lookup
                        .get(rec.topic())
                        .and_then(|v| v.get(rec.partition() as usize))
                        .copied()
                        .flatten()
                    else {
                        failure = Some(anyhow!(
                            "the source returned a record of a partition that is not being copied"
                        ));
                        break;
                    };
                    let s = &mut slots[si];
                    let offset = rec.offset();
                    if s.read_done || offset >= s.end {
                        if !s.read_done {
                            s.read_done = true;
                            s.read_pos = s.end;
                            to_pause = Some((s.topic, s.partition));
                        }
                    } else {
                        s.read_pos = offset + 1;
                        if s.skip > 0 {
                            // Already on the target: account for it as if acknowledged now,
                            // once it is proven to be the very record there.
                            let there = s.tail.pop_front();
                            if there.map(|(_, h)| h) != Some(crate::verify::record_hash(&rec)) {
                                failure = Some(anyhow!(
                                    "{}/{}: the target record at offset {} is not source record \
                                     {offset}, which kmigrate wrote there: past the last \
                                     checkpoint the target holds records twice (a producer \
                                     retry after a broker outage can do that) or records of \
                                     another producer. Nothing more was written; compare with \
                                     `kmigrate verify`, then empty the target partition and \
                                     move the state file away to copy it again",
                                    topics[s.topic],
                                    s.partition,
                                    there.map_or(s.next_target, |(o, _)| o)
                                ));
                                break;
                            }
                            s.skip -= 1;
                            let ps = &mut state.partitions[s.state];
                            ps.translation.observe(offset, s.next_target);
                            ps.progress.acked = Some((offset, s.next_target));
                            ps.progress.written += 1;
                            snap.records += 1;
                            s.next_target += 1;
                        } else {
                            loop {
                                match writer.send(si, &rec) {
                                    Ok(()) => break,
                                    Err(SendError::QueueFull) => {
                                        writer.poll(Duration::from_millis(5))
                                    }
                                    Err(SendError::Fatal(e)) => {
                                        failure = Some(anyhow!(e));
                                        break;
                                    }
                                }
                            }
                            if failure.is_some() {
                                break;
                            }
                            s.sent.push_back(offset);
                            bytes += rec.size() as u64;
                            snap.records_this_run += 1;
                        }
                        if offset + 1 >= s.end {
                            s.read_done = true;
                            s.read_pos = s.end;
                            to_pause = Some((s.topic, s.partition));
                        }
                    }
                }
                Polled::Eof {
                    topic,
                    partition,
                    offset,
                } => {
                    if let Some(si) = lookup
                        .get(topic)
                        .and_then(|v| v.get(partition as usize))
                        .copied()
                        .flatten()
                    {
                        let s = &mut slots[si];
                        if !s.read_done && offset >= s.end {
                            if s.skip > 0 {
                                failure = Some(anyhow!(
                                    "{}/{}: the target holds {} more record(s) than the source \
                                     range has: another producer writes to it",
                                    topics[s.topic],
                                    s.partition,
                                    s.skip
                                ));
                                break;
                            }
                            s.read_done = true;
                            s.read_pos = s.end;
                            to_pause = Some((topic, partition));
                        }
                    }
                }
                Polled::Idle => {}
                Polled::Transient(msg) => {
                    tracing::warn!("source: {msg} (retrying)");
                    source_trouble = Some(msg);
                }
                Polled::Fatal(msg) => {
                    failure = Some(anyhow!("reading the {}: {msg}", source.describe()));
                    break;
                }
            }
            if let Some((t, p)) = to_pause {
                // The range ended on a record with records still to skip: the target holds
                // more than kmigrate wrote (the Eof arm checks the same for ranges that end
                // in a gap). Without this the slot never finishes and the copy stalls.
                if let Some(s) = lookup[t][p as usize].map(|si| &slots[si])
                    && s.skip > 0
                {
                    failure = Some(anyhow!(
                        "{}/{}: the target holds {} more record(s) than the source range has: \
                         another producer writes to it",
                        topics[t],
                        p,
                        s.skip
                    ));
                    break;
                }
                reader.pause(t, p);
            }
        } else {
            writer.poll(Duration::from_millis(20));
        }
        if got_record {
            since_housekeeping += 1;
            if since_housekeeping < HOUSEKEEPING_EVERY {
                continue;
            }
        }
        since_housekeeping = 0;
        writer.poll(Duration::ZERO);
        if active {
            last_activity = Instant::now();
            active = false;
        }

        if last_reconcile.elapsed() >= Duration::from_millis(100) {
            last_reconcile = Instant::now();
            if let Err(e) = reconcile(&writer, &mut slots, state, &mut snap) {
                failure = Some(e);
                break;
            }
            finish_ready(&mut slots, state, &mut remaining);
            if last_progress.elapsed() >= Duration::from_millis(250) {
                last_progress = Instant::now();
                fill(&mut snap, &slots, &topics, state, started, bytes);
                sink.update(&snap);
            }
            if last_checkpoint.elapsed() >= opts.checkpoint_every {
                last_checkpoint = Instant::now();
                if let Err(e) = state.save(state_path, now()) {
                    // The previous checkpoint is intact (atomic replace): stop, and let the
                    // rerun continue from it.
                    failure =
                        Some(e.context(format!("saving a checkpoint to {}", state_path.display())));
                    break;
                }
            }
            if last_activity.elapsed() > Duration::from_secs(120) && writer.in_flight() == 0 {
                let stuck: Vec<String> = slots
                    .iter()
                    .filter(|s| !s.read_done)
                    .take(5)
                    .map(|s| {
                        format!(
                            "{}/{} at {} of {}",
                            topics[s.topic], s.partition, s.read_pos, s.end
                        )
                    })
                    .collect();
                failure = Some(match &source_trouble {
                    Some(why) => anyhow!(
                        "no record arrived from the {} for 120 s ({}); it last reported: {why}. \
                         Check that it is up and reachable",
                        source.describe(),
                        stuck.join(", ")
                    ),
                    None => anyhow!(
                        "no record arrived from the source for 120 s although the plan expects \
                         more ({}): did the source's records change since the plan?",
                        stuck.join(", ")
                    ),
                });
                break;
            }
        }
    }

    // Whatever happened, let in-flight records land and record them before saving.
    // A producer stopped by a fatal error (a record refused, gapless) fails what it still
    // holds rather than delivering it: do not wait the whole timeout for that.
    let flush_for = if writer.fatal_error().is_some() {
        opts.flush_timeout.min(Duration::from_secs(2))
    } else {
        opts.flush_timeout
    };
    let flushed = writer.flush(flush_for);
    if let Err(e) = reconcile(&writer, &mut slots, state, &mut snap) {
        failure.get_or_insert(e);
    }
    if let Err(e) = flushed {
        failure.get_or_insert(e);
    }
    finish_ready(&mut slots, state, &mut remaining);
    if remaining == 0 && failure.is_none() {
        state.phase = Phase::Copied;
    }
    fill(&mut snap, &slots, &topics, state, started, bytes);
    sink.finish(&snap);
    if let Err(e) = state.save(state_path, now()) {
        let e = e.context(format!("saving the state file {}", state_path.display()));
        // The first failure explains the stop; this one only repeats its cause (disk full).
        if failure.is_some() {
            tracing::warn!("{e:#}");
        }
        return Err(failure.unwrap_or(e).context(format!(
            "the copy stopped and its state could not be saved; {} keeps the last checkpoint \
             that was (every record written after it is found on the target and not written \
             again). Make the state file writable (free space, permissions), then `kmigrate \
             run` resumes exactly",
            state_path.display()
        )));
    }
    if let Some(e) = failure {
        return Err(e.context(format!(
            "the copy stopped; progress is saved in {} and `kmigrate run` resumes it",
            state_path.display()
        )));
    }
    Ok((
        if interrupted {
            Ended::Interrupted
        } else {
            Ended::Complete
        },
        snap,
    ))
}

/// The batch size the target topics accept, when below the writer's default: a broker
/// refuses a whole batch larger than the topic's `max.message.bytes`, so small records
/// batched together would be refused as "too large". Unknown limits keep the default.
fn batch_limit(admin: &crate::kafka::Admin, topics: &[String]) -> Option<usize> {
    let limits = match admin.max_message_bytes(topics) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("{e:#}; producing batches of up to {DEFAULT_BATCH_BYTES} bytes");
            return None;
        }
    };
    let (topic, min) = limits.iter().min_by_key(|(_, v)| **v)?;
    batch_for_limit(*min).inspect(|b| {
        tracing::info!(
            "target topic {topic} accepts batches of up to {min} bytes: producing batches of \
             up to {b} bytes"
        )
    })
}

/// Room for the record batch header and librdkafka's estimate of it.
const BATCH_OVERHEAD: usize = 1024;

/// The batch size for a topic that accepts batches of up to `max_message_bytes`, or `None`
/// when the default fits.
fn batch_for_limit(max_message_bytes: usize) -> Option<usize> {
    (max_message_bytes < DEFAULT_BATCH_BYTES + BATCH_OVERHEAD)
        .then(|| max_message_bytes.saturating_sub(BATCH_OVERHEAD).max(1))
}

/// Applies delivery acknowledgements to the slots: pairs each acknowledged source offset
/// with its target offset, in order, and checks the target offsets are contiguous.
fn reconcile(
    writer: &TargetWriter,
    slots: &mut [Slot],
    state: &mut State,
    snap: &mut Snapshot,
) -> anyhow::Result<()> {
    // A producer that stopped (a record refused, gapless) reports its failed records a
    // moment later: serve those reports first, so the error names the record.
    let fatal = writer.fatal_error();
    if fatal.is_some() {
        writer.poll(Duration::from_millis(200));
    }
    for (si, s) in slots.iter_mut().enumerate() {
        if s.sent.is_empty() {
            continue;
        }
        let acks = writer.acks(si);
        let new = acks.count - s.acks_seen;
        if new == 0 {
            continue;
        }
        let ps = &mut state.partitions[s.state];
        // Checked before the acknowledgements are recorded: the state keeps the last pair
        // known to be right.
        let expected_last = s.next_target + new as i64 - 1;
        if acks.last_offset != expected_last {
            bail!(
                "{}/{}: the target gave offset {} to a record kmigrate expected at \
                 {expected_last}: the partition holds records kmigrate did not write there in \
                 this order, from another producer or written twice by a producer retry after \
                 a broker outage. Stop any other producer; `kmigrate run` then checks the \
                 records past the last checkpoint before continuing",
                ps.topic,
                ps.partition,
                acks.last_offset
            );
        }
        for _ in 0..new {
            let Some(src) = s.sent.pop_front() else {
                bail!(
                    "{}/{}: more acknowledgements than records sent",
                    ps.topic,
                    ps.partition
                );
            };
            ps.translation.observe(src, s.next_target);
            ps.progress.acked = Some((src, s.next_target));
            s.next_target += 1;
        }
        ps.progress.written += new;
        snap.records += new;
        s.acks_seen = acks.count;
    }
    // Failures after the acknowledgements: those are counted first, so the records still
    // in `sent` are the failed ones, in order.
    let failures = writer.take_failures();
    if let Some(first) = failures.first() {
        let si = first.slot;
        let mine: Vec<&Failure> = failures.iter().filter(|f| f.slot == si).collect();
        let s = &slots[si];
        let ps = &state.partitions[s.state];
        let i = culprit(
            &mine
                .iter()
                .map(|f| (f.too_large, f.size))
                .collect::<Vec<_>>(),
        );
        let f = mine[i];
        let at = s.sent.get(i).copied().unwrap_or(s.read_pos);
        let target = writer.cluster().describe();
        if f.too_large {
            bail!(
                "writing offset {at} of {topic}/{p} to the {target} failed: the record ({size} \
                 bytes of key, value and headers) is larger than the target accepts ({why}). \
                 Raise max.message.bytes on the target topic {topic} (and, if the record is \
                 larger than them, message.max.bytes and replica.fetch.max.bytes on the \
                 target's brokers), then run `kmigrate run` again: it resumes at this record. \
                 No record of {topic}/{p} after it was written",
                topic = ps.topic,
                p = ps.partition,
                size = f.size,
                why = f.reason,
            );
        }
        bail!(
            "writing offset {at} of {}/{} to the {target} failed: {}. No record of that \
             partition after it was written",
            ps.topic,
            ps.partition,
            f.reason
        );
    }
    if let Some(fatal) = fatal {
        bail!(
            "the producer to the {} failed: {fatal}",
            writer.cluster().describe()
        );
    }
    Ok(())
}

/// Which of a partition's failed records (too large?, size), in the order they were sent,
/// to name: the largest of those refused as too large (a batch is refused whole, so its
/// small records fail with it), else the first.
fn culprit(failures: &[(bool, usize)]) -> usize {
    let mut best: Option<(usize, usize)> = None;
    for (i, (too_large, size)) in failures.iter().enumerate() {
        if *too_large && best.is_none_or(|(_, b)| *size > b) {
            best = Some((i, *size));
        }
    }
    best.map_or(0, |(i, _)| i)
}

fn fill(
    snap: &mut Snapshot,
    slots: &[Slot],
    topics: &[String],
    state: &State,
    started: Instant,
    bytes: u64,
) {
    snap.elapsed = started.elapsed();
    snap.bytes_this_run = bytes;
    snap.topics.clear();
    let mut done = 0;
    let mut total = 0;
    // Partitions finished in an earlier run count as fully done.
    let mut active = vec![false; state.partitions.len()];
    for s in slots {
        active[s.state] = true;
        let d = s.read_pos.clamp(s.start, s.end) - s.start;
        done += d;
        total += s.end - s.start;
        let e = snap.topics.entry(topics[s.topic].clone()).or_default();
        e.0 += d;
        e.1 += s.end - s.start;
    }
    for (i, p) in state.partitions.iter().enumerate() {
        if !active[i] {
            done += p.end - p.start;
            total += p.end - p.start;
            let e = snap.topics.entry(p.topic.clone()).or_default();
            e.0 += p.end - p.start;
            e.1 += p.end - p.start;
        }
        snap.topics.entry(p.topic.clone()).or_default().2 += p.progress.written;
    }
    snap.offsets_done = done;
    snap.offsets_total = total;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn culprit_is_the_largest_record_refused_as_too_large() {
        // A batch refused whole: small records fail with the big one.
        assert_eq!(culprit(&[(true, 10), (true, 60_000), (true, 12)]), 1);
        // Later records failed for another reason (the producer stopped after it).
        assert_eq!(culprit(&[(false, 10), (true, 60_000), (false, 99_999)]), 1);
        // Ties: the first.
        assert_eq!(culprit(&[(true, 5), (true, 5)]), 0);
        // Nothing too large: the first failed record.
        assert_eq!(culprit(&[(false, 10), (false, 60_000)]), 0);
    }

    #[test]
    fn batches_fit_the_smallest_target_limit() {
        assert_eq!(batch_for_limit(1_048_588), None);
        assert_eq!(batch_for_limit(2_097_152), None);
        assert_eq!(batch_for_limit(20_000), Some(18_976));
        assert_eq!(batch_for_limit(100), Some(1));
    }
}
