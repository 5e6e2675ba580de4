//! One copy pipeline: its own source reader and target writer over a set of partitions.
//! Pipelines share nothing but the [`Shared`] board, where each publishes its partitions'
//! progress; every guarantee (order, the gapless producer, the checkpoint arithmetic, the
//! resume proof, translation) holds per partition, so pipelines need no coordination.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::prepare::Work;
use super::reconcile;
use super::session::Clients;
use super::shared::Shared;
use super::slot::Slot;
use crate::digest::record_hash;
use crate::kafka::Cluster;
use crate::kafka::reader::{Event, Range, RangeReader, SourceRecord, Tuning};
use crate::kafka::repeats;
use crate::kafka::writer::{SendError, TargetWriter};

/// Reading the clock and polling the producer cost as much as copying a small record
/// (clock_gettime alone was 15% of the copy's CPU with 100-byte records): housekeeping
/// runs every this many records, and on every turn that brought no record.
const HOUSEKEEPING_EVERY: u32 = 64;
/// How often acknowledgements are reconciled and progress is published.
const TICK: Duration = Duration::from_millis(100);
/// No record for this long, with nothing in flight, while the plan expects more: stop.
const STALL: Duration = Duration::from_secs(120);

/// What a pipeline is given to do.
pub struct Job<'a> {
    /// The pipeline's number in the copy (which clients of the session it may reuse).
    pub index: usize,
    /// Clients an earlier copy left, to read and write through instead of new ones.
    pub kept: Option<Clients>,
    /// The batch engine's connections an earlier copy left.
    pub wire: Option<super::session::Wire>,
    pub source: &'a Cluster,
    pub target: &'a Cluster,
    pub work: Vec<Work>,
    pub tuning: Tuning,
    /// This pipeline's share of `max_bytes_per_second`.
    pub max_bytes_per_second: Option<u64>,
    pub flush_timeout: Duration,
}

/// The copy of a set of partitions: reading, writing and bookkeeping. Apart from the
/// reader, so that a record borrowed from the reader can be handed to it.
struct Copier<'a, 's> {
    /// Each topic index's name on the source and on the target.
    topics: Vec<String>,
    target_topics: Vec<String>,
    slots: Vec<Slot>,
    writer: TargetWriter,
    shared: &'a Shared<'s>,
    remaining: usize,
    /// Records and key+value bytes written by this pipeline, and how much of them is
    /// published.
    records: u64,
    bytes: u64,
    published: (u64, u64),
    limit: Option<u64>,
    throttle_from: Instant,
    last_tick: Instant,
}

/// Runs a pipeline to its end; a failure is reported to `shared` (and stops the others).
/// Returns its clients when it copied all its partitions and they can serve another copy.
pub fn run(job: Job<'_>, shared: &Shared<'_>) -> Option<Clients> {
    copy(job, shared).unwrap_or_else(|e| {
        shared.fail(e);
        None
    })
}

fn copy(mut job: Job<'_>, shared: &Shared<'_>) -> anyhow::Result<Option<Clients>> {
    let mut topics: Vec<String> = job.work.iter().map(|w| w.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    let topic_of = |t: &str| topics.binary_search_by(|x| x.as_str().cmp(t)).unwrap_or(0);
    let ranges: Vec<Range> = job
        .work
        .iter()
        .map(|w| Range {
            topic: topic_of(&w.topic),
            partition: w.partition,
            from: w.from,
            end: w.end,
        })
        .collect();
    let slots: Vec<Slot> = job
        .work
        .iter()
        .map(|w| shared.with_partition(w.state, |ps| Slot::new(w, topic_of(&w.topic), ps)))
        .collect();
    // The writer's topic handles are indexed like the reader's: each source topic's
    // handle is its target topic.
    let target_topics: Vec<String> = topics
        .iter()
        .map(|t| {
            job.work
                .iter()
                .find(|w| w.topic == *t)
                .map_or_else(|| t.clone(), |w| w.target_topic.clone())
        })
        .collect();
    let (writer, mut reader) = clients(&mut job, &topics, &target_topics, ranges, slots.len())?;
    let mut copier = Copier {
        remaining: slots.len(),
        topics,
        target_topics,
        slots,
        writer,
        shared,
        records: 0,
        bytes: 0,
        published: (0, 0),
        limit: job.max_bytes_per_second,
        throttle_from: Instant::now(),
        last_tick: Instant::now(),
    };
    let copied = copier.run(&mut reader, job.source);
    let drained = copier.drain(job.flush_timeout);
    copier.publish(&reader);
    copied.and(drained)?;
    // Only clients that finished everything they were given, with every record
    // acknowledged, serve another copy.
    let reusable = copier.remaining == 0 && copier.writer.reusable();
    let reader = reusable
        .then(|| reader.into_reader(job.source))
        .transpose()
        .inspect_err(|e| tracing::debug!("not keeping the pipeline's clients: {e:#}"));
    Ok(reader.ok().flatten().map(|reader| Clients {
        reader,
        writer: copier.writer,
        tuning: job.tuning,
    }))
}

/// The pipeline's writer and reader: those an earlier copy left, given these topics and
/// ranges, or new ones (also when the kept ones cannot be given them).
fn clients(
    job: &mut Job<'_>,
    topics: &[String],
    target_topics: &[String],
    ranges: Vec<Range>,
    slots: usize,
) -> anyhow::Result<(TargetWriter, RangeReader)> {
    let kept = job.kept.take();
    let reused = kept.and_then(|kept| {
        reuse(kept, job, topics, target_topics, ranges.clone(), slots)
            .inspect_err(|e| tracing::debug!("new clients instead of the kept ones: {e:#}"))
            .ok()
    });
    match reused {
        Some(clients) => Ok(clients),
        None => {
            let writer = TargetWriter::new(job.target, target_topics, slots, &job.tuning)?;
            let reader = RangeReader::new(job.source, topics, ranges, &job.tuning)?;
            Ok((writer, reader))
        }
    }
}

/// The clients an earlier copy left, given this copy's topics, partitions and ranges.
fn reuse(
    kept: Clients,
    job: &mut Job<'_>,
    topics: &[String],
    target_topics: &[String],
    ranges: Vec<Range>,
    slots: usize,
) -> anyhow::Result<(TargetWriter, RangeReader)> {
    let Clients {
        reader,
        mut writer,
        tuning,
    } = kept;
    writer.retarget(target_topics, slots)?;
    let reader = RangeReader::reusing(job.source, topics, ranges, &tuning, reader)?;
    tracing::debug!(
        pipeline = job.index,
        partitions = slots,
        "reusing the pipeline's source consumer and target producer"
    );
    // What the clients were built with is what they are kept with.
    job.tuning = tuning;
    Ok((writer, reader))
}

impl Copier<'_, '_> {
    /// Copies until every partition is done or the pipelines are halted.
    fn run(&mut self, reader: &mut RangeReader, source: &Cluster) -> anyhow::Result<()> {
        let mut since_housekeeping: u32 = 0;
        while self.remaining > 0 && !self.shared.halted() {
            if self.throttled() {
                self.writer.poll(Duration::from_millis(10));
                self.tick(reader, source)?;
                continue;
            }
            let got_record = match reader
                .poll(Duration::from_millis(20))
                .with_context(|| format!("reading the {}", source.describe()))?
            {
                Event::Record { range, rec } => {
                    self.on_record(range, &rec)?;
                    true
                }
                Event::Finished(i) => {
                    self.on_finished(i)?;
                    false
                }
                Event::Idle => false,
                Event::Transient(msg) => {
                    repeats::limited(&format!("source: {msg} (retrying)"), |line| {
                        tracing::warn!("{line}")
                    });
                    false
                }
            };
            if got_record {
                since_housekeeping += 1;
                if since_housekeeping < HOUSEKEEPING_EVERY {
                    continue;
                }
            }
            since_housekeeping = 0;
            self.writer.poll(Duration::ZERO);
            self.tick(reader, source)?;
        }
        Ok(())
    }

    fn on_record(&mut self, i: usize, rec: &SourceRecord<'_>) -> anyhow::Result<()> {
        let offset = rec.offset();
        self.slots[i].last_read = offset;
        if self.slots[i].skip > 0 {
            return self.skip_proven(i, rec);
        }
        loop {
            match self.writer.send(i, rec) {
                Ok(()) => break,
                Err(SendError::QueueFull) if self.shared.halted() => return Ok(()),
                Err(SendError::QueueFull) => self.writer.poll(Duration::from_millis(5)),
                Err(SendError::Fatal(e)) => bail!(e),
            }
        }
        self.slots[i].sent.push_back(offset);
        self.bytes += rec.size() as u64;
        self.records += 1;
        Ok(())
    }

    /// A record already on the target: accounted for as if acknowledged now, once it is
    /// proven to be the very record there.
    fn skip_proven(&mut self, i: usize, rec: &SourceRecord<'_>) -> anyhow::Result<()> {
        let offset = rec.offset();
        let s = &mut self.slots[i];
        let there = s.tail.pop_front();
        if there.map(|(_, h)| h) != Some(record_hash(rec)) {
            bail!(
                "{}/{}: the target record at offset {} is not source record {offset}, which \
                 kmigrate wrote there: past the last checkpoint the target holds records \
                 twice (a producer retry after a broker outage can do that) or records of \
                 another producer. Nothing more was written; compare with `kmigrate verify`, \
                 then empty the target partition and move the state file away to copy it again",
                self.topics[s.topic],
                s.partition,
                there.map_or(s.next_target, |(o, _)| o)
            );
        }
        s.skip -= 1;
        s.landed(offset);
        s.progress.written += 1;
        s.dirty = true;
        Ok(())
    }

    fn on_finished(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &mut self.slots[i];
        if s.skip > 0 {
            bail!(
                "{}/{}: the target holds {} more record(s) than the source range has: another \
                 producer writes to it",
                self.topics[s.topic],
                s.partition,
                s.skip
            );
        }
        s.read_done = true;
        Ok(())
    }

    /// Whether this pipeline is over its byte budget. Allowance saved up while idle
    /// (connecting, a stalled source) is capped at one second's worth, so the limit holds
    /// over any second, not only on average.
    fn throttled(&mut self) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let allowed = (limit as f64 * self.throttle_from.elapsed().as_secs_f64()) as u64;
        if self.bytes > allowed {
            return true;
        }
        if allowed > self.bytes + limit {
            let behind = (allowed - self.bytes - limit) as f64 / limit as f64;
            self.throttle_from += Duration::from_secs_f64(behind);
        }
        false
    }

    /// Every [`TICK`]: reconcile acknowledgements, finish partitions, publish progress, and
    /// stop a copy that no longer receives anything.
    fn tick(&mut self, reader: &RangeReader, source: &Cluster) -> anyhow::Result<()> {
        if self.last_tick.elapsed() < TICK {
            return Ok(());
        }
        self.last_tick = Instant::now();
        reconcile::reconcile(
            &self.writer,
            &mut self.slots,
            &self.topics,
            &self.target_topics,
        )?;
        self.finish_ready();
        self.publish(reader);
        if reader.remaining() > 0 && reader.idle_for() > STALL && self.writer.in_flight() == 0 {
            let stuck = reader.unfinished(5).join(", ");
            match reader.trouble() {
                Some(why) => bail!(
                    "no record arrived from the {} for {} s ({stuck}); it last reported: \
                     {why}. Check that it is up and reachable",
                    source.describe(),
                    STALL.as_secs()
                ),
                None => bail!(
                    "no record arrived from the source for {} s although the plan expects \
                     more ({stuck}): did the source's records change since the plan?",
                    STALL.as_secs()
                ),
            }
        }
        Ok(())
    }

    /// Partitions read completely, with nothing to skip or in flight, are done.
    fn finish_ready(&mut self) {
        for s in &mut self.slots {
            if !s.done && s.read_done && s.skip == 0 && s.sent.is_empty() {
                s.done = true;
                self.remaining -= 1;
                s.progress.done = true;
                s.translation.finish(s.next_target);
                s.dirty = true;
            }
        }
    }

    /// Whatever ended the copy, lets in-flight records land and records them. A producer
    /// stopped by a fatal error (a record refused, gapless) fails what it still holds rather
    /// than delivering it: then it does not wait the whole timeout.
    fn drain(&mut self, flush_timeout: Duration) -> anyhow::Result<()> {
        let flush_for = if self.writer.fatal_error().is_some() {
            flush_timeout.min(Duration::from_secs(2))
        } else {
            flush_timeout
        };
        let flushed = self.writer.flush(flush_for);
        let reconciled = reconcile::reconcile(
            &self.writer,
            &mut self.slots,
            &self.topics,
            &self.target_topics,
        );
        self.finish_ready();
        if flushed.is_ok() && reconciled.is_ok() && self.writer.in_flight() == 0 {
            self.settled();
        }
        reconciled.and(flushed)
    }

    /// Every record sent was acknowledged: none waits on a leader for its replicas.
    fn settled(&mut self) {
        for s in self.slots.iter_mut().filter(|s| s.sent.is_empty()) {
            s.progress.settled = true;
            s.dirty = true;
        }
    }

    /// Hands the partitions' progress to the shared board.
    fn publish(&mut self, reader: &RangeReader) {
        self.shared.publish(
            self.slots.iter_mut().enumerate().map(|(i, s)| {
                let changed = std::mem::take(&mut s.dirty);
                (s.state, reader.position(i), changed.then_some(&*s))
            }),
            self.records - self.published.0,
            self.bytes - self.published.1,
        );
        self.published = (self.records, self.bytes);
    }
}
