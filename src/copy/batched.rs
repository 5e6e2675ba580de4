//! One copy pipeline on the batch engine: the source's record batches go to the target as
//! the source's log holds them, only their header made the copy's ([`super::batch`]); the
//! batches that must be re-encoded are ([`super::records`]). Kafka's protocol is spoken
//! directly ([`crate::kafka::wire`]): one connection per broker on each side, one producer
//! id per pipeline, one producer stream per partition ([`super::stream`]).
//!
//! The bookkeeping is the record engine's: each partition's [`Slot`] pairs every source
//! offset with the target offset it landed at, checkpoints publish it, and a resume reads
//! the target first ([`super::prepare`]), so a copy stopped anywhere (a SIGKILL between a
//! Produce and its answer included) continues without a lost or a duplicated record.
//!
//! The loop, per pipeline: fetch from every source leader the partitions with room in their
//! queue; send each target leader requests of one batch per partition (Kafka accepts one
//! batch per partition per request from a client), up to [`MAX_IN_FLIGHT`] requests
//! outstanding per connection, so that fetching overlaps the target's work; read the
//! answers in order. Any answer but an append stops the copy with its Kafka error code
//! (rule 4 of [`super::stream`]: nothing is sent again before the target's log is read
//! again), and the rerun resumes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;

use super::batch::{self, Codec, Dropped, Route, Target};
use super::pipeline::Job;
use super::progress::Routes;
use super::records::{self, Builder, Raw};
use super::session::Wire;
use super::shared::Shared;
use super::slot::Slot;
use super::stream::{Answer, MAX_IN_FLIGHT, Next, Stream};
use crate::config::Compression;
use crate::digest::record_hash;
use crate::kafka::Cluster;
use crate::kafka::error::{Code, KafkaError};
use crate::kafka::reader::DEFAULT_BATCH_BYTES;
use crate::kafka::wire::{Conn, Fetched, Outgoing, Produced};

/// How long a Fetch waits for records when its partitions have none yet.
const FETCH_WAIT: Duration = Duration::from_millis(100);
/// Bytes of one partition read from the source and not yet acknowledged by the target, at
/// most (before the memory budget's share): a Fetch asks a partition for what fits.
const PARTITION_QUEUE: usize = 2 << 20;
/// Bytes one Fetch asks of a partition, at most.
const PARTITION_FETCH: usize = 1 << 20;
/// Batches smaller than this are re-encoded with their neighbours: a producer with linger
/// 0 writes one-record batches, and one batch per partition per request would make every
/// record a round trip.
const MIN_PASS_BYTES: usize = 4096;
/// Nothing read and nothing landed for this long, while the plan expects more: stop.
const STALL: Duration = Duration::from_secs(120);
/// How often progress is published.
const TICK: Duration = Duration::from_millis(100);

/// A message in format v0/v1 (written before Kafka 0.11, or by a broker keeping
/// `log.message.format.version` below 0.11) that the batch engine could not read itself
/// (an LZ4 message of v0, whose frame checksum Kafka 0.8-0.9 wrote wrongly, say): the
/// record engine copies the rest (`copy::run`).
#[derive(Debug)]
pub struct OldFormat {
    pub partition: String,
    pub offset: i64,
    pub magic: i8,
    pub why: String,
}

impl std::fmt::Display for OldFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the message at offset {} is in message format v{} (written before Kafka \
             0.11) and the batch engine could not read it ({})",
            self.partition, self.offset, self.magic, self.why
        )
    }
}

impl std::error::Error for OldFormat {}

/// What one batch sent (or to send) holds.
struct Out {
    /// The whole batch, as the source's log holds it or as re-encoded.
    bytes: Bytes,
    /// Source offsets of its records, in order.
    offsets: Offsets,
    /// The Fetch response a batch passed on is a slice of (it keeps the whole response in
    /// memory until sent); `None` for a re-encoded one.
    response: Option<u64>,
}

/// The Fetch responses that batches waiting to be sent are slices of: each one's size and
/// how many of its slices wait. Memory is what these responses hold, not the slices' bytes:
/// one slice left keeps a whole response alive.
#[derive(Default)]
struct Retained {
    responses: HashMap<u64, (usize, usize)>,
    bytes: usize,
    next: u64,
}

impl Retained {
    /// A new response of `size` bytes; kept only once a slice of it waits.
    fn open(&mut self, size: usize) -> u64 {
        self.next += 1;
        self.responses.insert(self.next, (size, 0));
        self.next
    }

    /// A slice of response `id` waits to be sent.
    fn hold(&mut self, id: u64) {
        if let Some((size, live)) = self.responses.get_mut(&id) {
            if *live == 0 {
                self.bytes += *size;
            }
            *live += 1;
        }
    }

    /// A slice of response `id` was sent (or `id` got no slice: `close`).
    fn release(&mut self, id: u64) {
        if let Some((size, live)) = self.responses.get_mut(&id) {
            *live = live.saturating_sub(1);
            if *live == 0 {
                self.bytes -= *size;
                self.responses.remove(&id);
            }
        }
    }

    /// Response `id` is ingested: forgotten now if no slice of it waits.
    fn close(&mut self, id: u64) {
        if self.responses.get(&id).is_some_and(|(_, live)| *live == 0) {
            self.responses.remove(&id);
        }
    }
}

enum Offsets {
    /// `count` records from `first`, one an offset (a batch passed on: dense).
    Dense { first: i64, count: i32 },
    /// Re-encoded: the records kept, with the source's gaps.
    List(Vec<i64>),
}

impl Offsets {
    fn first(&self) -> i64 {
        match self {
            Offsets::Dense { first, .. } => *first,
            Offsets::List(l) => l.first().copied().unwrap_or(0),
        }
    }

    fn last(&self) -> i64 {
        match self {
            Offsets::Dense { first, count } => first + i64::from(*count) - 1,
            Offsets::List(l) => l.last().copied().unwrap_or(0),
        }
    }

    fn count(&self) -> i32 {
        match self {
            Offsets::Dense { count, .. } => *count,
            Offsets::List(l) => l.len() as i32,
        }
    }
}

/// One partition on the batch engine.
struct Part {
    slot: Slot,
    topic: String,
    target_topic: String,
    end: i64,
    /// The next source offset to read.
    fetch_at: i64,
    read_done: bool,
    source: usize,
    target: usize,
    /// Batches ready to send, in order.
    pending: VecDeque<Out>,
    /// Sent and not answered, in the order sent: bytes and source offsets.
    in_flight: VecDeque<(usize, Offsets)>,
    /// Bytes in `pending` and `in_flight`.
    queued: usize,
    /// Re-encoded records being gathered into one batch, and their source offsets.
    builder: Builder,
    built: Vec<i64>,
    stream: Stream,
    /// Batches routed since the last publish.
    routes: Routes,
}

struct Broker {
    conn: Conn,
    /// Requests sent and not answered: correlation id and the parts in it.
    outstanding: VecDeque<(i32, Vec<usize>)>,
}

struct Copier<'a, 's> {
    shared: &'a Shared<'s>,
    parts: Vec<Part>,
    sources: Vec<Conn>,
    targets: Vec<Broker>,
    rules: Target,
    codec: Codec,
    producer: (i64, i16),
    /// Sequences kept for partitions this copy does not write.
    sequences: BTreeMap<(String, i32), i32>,
    partition_queue: usize,
    produce_timeout: Duration,
    remaining: usize,
    records: u64,
    bytes: u64,
    published: (u64, u64),
    last_tick: Instant,
    last_progress: Instant,
    /// How errors name the source and the target cluster.
    names: (String, String),
    /// This pipeline's share of `max_bytes_per_second`, and since when it counts.
    limit: Option<u64>,
    throttle_from: Instant,
    /// Bytes of batches sent (what the limit counts).
    sent_bytes: u64,
    /// The partition a request starts from (turns, for fairness under the throttle).
    rotation: usize,
    /// The Fetch responses batches waiting to be sent keep in memory.
    retained: Retained,
}

/// Runs a batch-engine pipeline to its end; a failure is reported to `shared` (and stops
/// the others). Returns its connections when it copied all its partitions, every batch
/// answered, for the next copy.
pub fn run(job: Job<'_>, shared: &Shared<'_>) -> Option<Wire> {
    copy(job, shared).unwrap_or_else(|e| {
        shared.fail(e);
        None
    })
}

fn copy(mut job: Job<'_>, shared: &Shared<'_>) -> anyhow::Result<Option<Wire>> {
    let kept = job.wire.take();
    let mut copier = Copier::new(&job, shared, kept)?;
    let copied = copier.run();
    let drained = copier.drain();
    copier.finish_ready();
    if copied.is_ok() && drained.is_ok() {
        copier.settled();
    }
    copier.publish();
    copied.and(drained)?;
    Ok((copier.remaining == 0).then(|| copier.into_wire()))
}

/// The first reachable bootstrap broker of `cluster`.
fn bootstrap(cluster: &Cluster) -> anyhow::Result<Conn> {
    let mut last = None;
    for address in cluster.bootstrap.split(',').map(str::trim) {
        match cluster.wire(address) {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no bootstrap server")))
        .with_context(|| format!("connecting to the {}", cluster.describe()))
}

/// Each partition's (topic, partition) leader: an index into a pipeline's connections.
type LeaderOf = BTreeMap<(String, i32), usize>;

/// Each partition's leader on `cluster`, as an index into the connections: `kept` ones
/// (asked first) and new ones.
fn leaders(
    cluster: &Cluster,
    topics: &[String],
    kept: Vec<Conn>,
) -> anyhow::Result<(LeaderOf, Vec<Conn>)> {
    let mut conns = kept;
    let mut asked = None;
    while let Some(mut c) = conns.pop() {
        match c.leaders_of(topics) {
            Ok(l) => {
                asked = Some(l);
                conns.push(c);
                break;
            }
            Err(e) => tracing::debug!("a kept connection to {} failed: {e:#}", c.address()),
        }
    }
    let leaders = match asked {
        Some(l) => l,
        None => {
            let mut boot = bootstrap(cluster)?;
            let l = boot.leaders_of(topics).with_context(|| {
                format!(
                    "reading the partitions' leaders on the {}",
                    cluster.describe()
                )
            })?;
            conns.push(boot);
            l
        }
    };
    let mut index = BTreeMap::new();
    for (tp, (_, address)) in leaders {
        let at = match conns.iter().position(|c| c.address() == address) {
            Some(i) => i,
            None => {
                conns.push(cluster.wire(&address)?);
                conns.len() - 1
            }
        };
        index.insert(tp, at);
    }
    Ok((index, conns))
}

fn codec(c: &Compression) -> Codec {
    match c {
        Compression::Lz4 => Codec::Lz4,
        Compression::Zstd => Codec::Zstd,
        Compression::Snappy => Codec::Snappy,
        Compression::Gzip => Codec::Gzip,
        Compression::None => Codec::None,
    }
}

impl<'a, 's> Copier<'a, 's> {
    fn new(
        job: &Job<'_>,
        shared: &'a Shared<'s>,
        kept: Option<Wire>,
    ) -> anyhow::Result<Copier<'a, 's>> {
        let (kept_sources, kept_targets, kept_producer, mut sequences) = match kept {
            Some(w) => (w.sources, w.targets, Some(w.producer), w.sequences),
            None => (Vec::new(), Vec::new(), None, BTreeMap::new()),
        };
        let mut sources: Vec<String> = job.work.iter().map(|w| w.topic.clone()).collect();
        let mut targets: Vec<String> = job.work.iter().map(|w| w.target_topic.clone()).collect();
        sources.sort();
        sources.dedup();
        targets.sort();
        targets.dedup();
        let (source_of, source_conns) = leaders(job.source, &sources, kept_sources)?;
        let (target_of, mut target_conns) = leaders(job.target, &targets, kept_targets)?;
        let producer = match kept_producer {
            Some(p) => p,
            None => target_conns[0].init_producer_id().with_context(|| {
                format!("getting a producer id from the {}", job.target.describe())
            })?,
        };
        let zstd = target_conns.iter().all(|c| c.speaks_zstd());
        let max_batch_bytes = job.tuning.max_batch_bytes.unwrap_or(DEFAULT_BATCH_BYTES);
        let mut parts = Vec::with_capacity(job.work.len());
        for w in &job.work {
            let leader = |of: &LeaderOf, topic: &str, cluster: &Cluster| {
                of.get(&(topic.to_string(), w.partition))
                    .copied()
                    .ok_or_else(|| {
                        let what = format!(
                            "finding the leader of {topic}/{} on the {}",
                            w.partition,
                            cluster.describe()
                        );
                        anyhow::Error::new(KafkaError::new(Code::LEADER_NOT_AVAILABLE, what, ""))
                    })
            };
            let source = leader(&source_of, &w.topic, job.source)?;
            let target = leader(&target_of, &w.target_topic, job.target)?;
            let slot = shared.with_partition(w.state, |ps| Slot::new(w, 0, ps));
            parts.push(Part {
                slot,
                topic: w.topic.clone(),
                target_topic: w.target_topic.clone(),
                end: w.end,
                fetch_at: w.from,
                read_done: w.from >= w.end,
                source,
                target,
                pending: VecDeque::new(),
                in_flight: VecDeque::new(),
                queued: 0,
                builder: Builder::new(),
                built: Vec::new(),
                routes: Routes::default(),
                stream: match sequences.remove(&(w.target_topic.clone(), w.partition)) {
                    Some(next) => Stream::continuing(producer.0, producer.1, next),
                    None => Stream::new(producer.0, producer.1),
                },
            });
        }
        tracing::debug!(
            partitions = parts.len(),
            source_brokers = source_conns.len(),
            target_brokers = target_conns.len(),
            producer_id = producer.0,
            "copying with the batch engine"
        );
        let partition_queue = (job.tuning.buffer_bytes / parts.len().max(1))
            .clamp(2 * max_batch_bytes.min(PARTITION_FETCH), PARTITION_QUEUE);
        Ok(Copier {
            shared,
            remaining: parts.len(),
            parts,
            sources: source_conns,
            targets: target_conns
                .into_iter()
                .map(|conn| Broker {
                    conn,
                    outstanding: VecDeque::new(),
                })
                .collect(),
            rules: Target {
                max_batch_bytes,
                zstd,
                min_pass_bytes: MIN_PASS_BYTES,
            },
            codec: codec(&job.tuning.compression),
            producer,
            sequences,
            partition_queue,
            produce_timeout: job.target.timeout,
            records: 0,
            bytes: 0,
            published: (0, 0),
            last_tick: Instant::now(),
            last_progress: Instant::now(),
            names: (job.source.describe(), job.target.describe()),
            limit: job.max_bytes_per_second,
            throttle_from: Instant::now(),
            rotation: 0,
            retained: Retained::default(),
            sent_bytes: 0,
        })
    }

    /// The connections, the producer and its sequences, for the next copy.
    fn into_wire(self) -> Wire {
        Wire {
            sources: self.sources,
            targets: self.targets.into_iter().map(|b| b.conn).collect(),
            producer: self.producer,
            sequences: {
                // Partitions this copy did not write keep where they stood.
                let mut all = self.sequences;
                all.extend(self.parts.iter().map(|p| {
                    let tp = (p.target_topic.clone(), p.slot.partition);
                    (tp, p.stream.next_sequence())
                }));
                all
            },
        }
    }

    /// Copies until every partition is done or the pipelines are halted.
    fn run(&mut self) -> anyhow::Result<()> {
        self.finish_ready();
        while self.remaining > 0 && !self.shared.halted() {
            self.fetch()?;
            loop {
                self.send()?;
                let queued: usize = self.parts.iter().map(|p| p.queued).sum();
                let outstanding = self.targets.iter().any(|b| !b.outstanding.is_empty());
                let wanting = self.parts.iter().any(|p| self.wants_fetch(p));
                let room = self.partition_queue.saturating_mul(self.parts.len());
                if !outstanding || (wanting && queued < room) {
                    if !outstanding && self.throttled() {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    break;
                }
                self.receive_one()?;
            }
            self.finish_ready();
            self.tick()?;
        }
        Ok(())
    }

    /// Whether part `p` is read from: it has room in its queue, and the Fetch responses
    /// its pipeline holds leave room in the memory budget.
    fn wants_fetch(&self, p: &Part) -> bool {
        !p.read_done && p.queued < self.partition_queue && self.retained.bytes < self.room()
    }

    /// The pipeline's memory budget for what it read and has not sent.
    fn room(&self) -> usize {
        self.partition_queue.saturating_mul(self.parts.len())
    }

    /// One Fetch per source leader, of its partitions with room in their queue.
    fn fetch(&mut self) -> anyhow::Result<()> {
        let mut by_leader: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, p) in self.parts.iter().enumerate() {
            if self.wants_fetch(p) {
                by_leader.entry(p.source).or_default().push(i);
            }
        }
        let partition_max = (self.partition_queue.min(PARTITION_FETCH)) as i32;
        for (leader, mut parts) in by_leader {
            parts.sort_by(|a, b| self.parts[*a].topic.cmp(&self.parts[*b].topic));
            let wants: Vec<(&str, i32, i64)> = parts
                .iter()
                .map(|i| {
                    let p = &self.parts[*i];
                    (p.topic.as_str(), p.slot.partition, p.fetch_at)
                })
                .collect();
            let left = self.room().saturating_sub(self.retained.bytes);
            let max = (partition_max as usize * wants.len())
                .min(left)
                .clamp(partition_max as usize, 64 << 20) as i32;
            let conn = &mut self.sources[leader];
            let answers = conn
                .fetch_many(&wants, partition_max, max, FETCH_WAIT)
                .with_context(|| {
                    format!(
                        "reading from broker {} of the {}",
                        conn.address(),
                        self.names.0
                    )
                })?;
            // One lookup per answer: a leader may hold thousands of the partitions.
            let asked: HashMap<(&str, i32), usize> = parts
                .iter()
                .map(|i| {
                    (
                        (self.parts[*i].topic.as_str(), self.parts[*i].slot.partition),
                        *i,
                    )
                })
                .collect();
            let answered: Vec<(usize, Fetched)> = answers
                .into_iter()
                .filter_map(|(t, n, f)| asked.get(&(t.as_str(), n)).map(|i| (*i, f)))
                .collect();
            let size = answered.iter().map(|(_, f)| f.records.len()).sum();
            let response = self.retained.open(size);
            for (i, fetched) in answered {
                self.ingest(i, fetched, response)?;
            }
            self.retained.close(response);
        }
        Ok(())
    }

    /// The batches one Fetch returned for part `i`: each dropped, passed on or re-encoded.
    fn ingest(&mut self, i: usize, fetched: Fetched, response: u64) -> anyhow::Result<()> {
        let rules = self.rules;
        let codec = self.codec;
        let p = &mut self.parts[i];
        let name = format!("{}/{}", p.topic, p.slot.partition);
        let name = || name.clone();
        if fetched.error_code != 0 {
            let code = Code(i32::from(fetched.error_code));
            return Err(anyhow::Error::new(KafkaError::new(code, "fetching", ""))).with_context(
                || {
                    format!(
                        "reading {} from offset {} on the source",
                        name(),
                        p.fetch_at
                    )
                },
            );
        }
        let records = fetched.records;
        let (headers, _) = batch::complete(&records)
            .map_err(|e| anyhow!("{}: the source returned a damaged batch: {e}", name()))?;
        let mut aborts = batch::Aborts::new(&fetched.aborted);
        let mut at = 0;
        for h in headers {
            let bytes = records.slice(at..at + h.len);
            at += h.len;
            let aborted = aborts.aborted(&h, &bytes);
            if p.read_done || h.last_offset() < p.fetch_at {
                continue;
            }
            let mut route = batch::route(&h, (p.fetch_at, p.end), aborted, &rules);
            // Records to prove on the target (a resume) are read one by one.
            if route == Route::Pass && p.slot.skip > 0 {
                route = Route::Reencode(batch::Reencode::StraddlesStart);
            }
            match route {
                Route::Pass => {
                    p.routes.passed_batches += 1;
                    p.routes.passed_bytes += h.len as u64;
                    p.flush(codec)?;
                    self.retained.hold(response);
                    p.queue(Out {
                        bytes,
                        offsets: Offsets::Dense {
                            first: h.base_offset,
                            count: h.records,
                        },
                        response: Some(response),
                    });
                }
                Route::Reencode(_) => {
                    p.routes.reencoded_batches += 1;
                    p.routes.reencoded_bytes += h.len as u64;
                    // A batch passed on keeps its CRC and the target checks it; one decoded
                    // here would get a fresh CRC, so its own is checked first.
                    if !batch::crc_ok(&bytes) {
                        bail!(
                            "{}: the source's batch at offset {} ({} record(s), {} bytes) is \
                             corrupt: its CRC does not match its bytes. Read it with a \
                             consumer that checks CRCs (check.crcs=true) and repair or skip \
                             it on the source; nothing from it was written",
                            name(),
                            h.base_offset,
                            h.records,
                            h.len
                        );
                    }
                    let decoded = records::decode(&bytes)
                        .map_err(|e| anyhow!("{}: offset {}: {e}", name(), h.base_offset))?;
                    p.push_in_range(&decoded, codec, &rules)?;
                }
                Route::Drop(Dropped::OutsideRange) if h.base_offset >= p.end => {
                    p.read_done = true;
                }
                Route::Drop(_) => {}
                Route::Legacy(magic) => {
                    let decoded = records::decode_legacy(&bytes).map_err(|e| {
                        anyhow::Error::new(OldFormat {
                            partition: name(),
                            offset: h.base_offset,
                            magic,
                            why: e.to_string(),
                        })
                    })?;
                    p.routes.reencoded_batches += 1;
                    p.routes.reencoded_bytes += h.len as u64;
                    p.push_in_range(&decoded, codec, &rules)?;
                }
            }
            p.fetch_at = p.fetch_at.max(h.last_offset().saturating_add(1));
            self.last_progress = Instant::now();
            if p.fetch_at >= p.end {
                p.read_done = true;
            }
        }
        p.flush(codec)?;
        if p.read_done && p.slot.skip > 0 {
            bail!(
                "{}: the target holds {} more record(s) than the source range has: another \
                 producer writes to it",
                name(),
                p.slot.skip
            );
        }
        Ok(())
    }

    /// Sends each target leader requests of the next batch of each of its partitions, while
    /// the connection and the partitions' streams have room.
    fn send(&mut self) -> anyhow::Result<()> {
        // Under `max_bytes_per_second`, a request carries about a tenth of a second's
        // bytes (at least one batch), starting from another partition each time: requests
        // of one batch per partition would let the throttle through in bursts of seconds.
        let cap = self.limit.map_or(usize::MAX, |l| (l / 10) as usize);
        let n = self.parts.len();
        for b in 0..self.targets.len() {
            while self.targets[b].outstanding.len() < MAX_IN_FLIGHT && !self.throttled() {
                // (part, new header, the batch as read)
                let mut batches: Vec<(usize, [u8; batch::HEADER_LEN], Bytes)> = Vec::new();
                let mut size = 0;
                self.rotation = (self.rotation + 1) % n.max(1);
                for i in (0..n).map(|k| (self.rotation + k) % n) {
                    let p = &mut self.parts[i];
                    if p.target != b || !p.stream.can_send() || size >= cap {
                        continue;
                    }
                    let Some(out) = p.pending.pop_front() else {
                        continue;
                    };
                    if let Some(id) = out.response {
                        self.retained.release(id);
                    }
                    let what = || format!("{}/{}", p.topic, p.slot.partition);
                    let o = &out.offsets;
                    let sent = p
                        .stream
                        .send(o.first(), o.last(), o.count())
                        .map_err(|e| anyhow!("{}: {e:?}", what()))?;
                    let head =
                        batch::rewritten_header(&out.bytes, self.producer, sent.base_sequence)
                            .map_err(|e| anyhow!("{}: {e}", what()))?;
                    p.in_flight.push_back((out.bytes.len(), out.offsets));
                    size += out.bytes.len();
                    batches.push((i, head, out.bytes));
                }
                if batches.is_empty() {
                    break;
                }
                let outgoing: Vec<Outgoing<'_>> = batches
                    .iter()
                    .map(|(i, head, bytes)| Outgoing {
                        topic: self.parts[*i].target_topic.as_str(),
                        partition: self.parts[*i].slot.partition,
                        head,
                        rest: &bytes[batch::HEADER_LEN..],
                    })
                    .collect();
                let broker = &mut self.targets[b];
                let id = broker
                    .conn
                    .send_batches(&outgoing, self.produce_timeout)
                    .with_context(|| {
                        format!(
                            "writing to broker {} of the {}",
                            broker.conn.address(),
                            self.names.1
                        )
                    })?;
                broker
                    .outstanding
                    .push_back((id, batches.iter().map(|(i, _, _)| *i).collect()));
                self.sent_bytes += batches.iter().map(|(_, _, b)| b.len() as u64).sum::<u64>();
            }
        }
        Ok(())
    }

    /// Whether this pipeline is over its byte budget (`max_bytes_per_second`, counted in
    /// bytes of batches sent, compressed as they travel). Allowance saved up while idle is
    /// capped at one second's worth, so the limit holds over any second.
    fn throttled(&mut self) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let allowed = (limit as f64 * self.throttle_from.elapsed().as_secs_f64()) as u64;
        if self.sent_bytes > allowed {
            return true;
        }
        if allowed > self.sent_bytes + limit {
            let behind = (allowed - self.sent_bytes - limit) as f64 / limit as f64;
            self.throttle_from += Duration::from_secs_f64(behind);
        }
        false
    }

    /// Reads the oldest answer of the target leader with the most requests outstanding.
    fn receive_one(&mut self) -> anyhow::Result<()> {
        let Some(b) = (0..self.targets.len())
            .filter(|b| !self.targets[*b].outstanding.is_empty())
            .max_by_key(|b| self.targets[*b].outstanding.len())
        else {
            return Ok(());
        };
        let broker = &mut self.targets[b];
        let Some((id, parts)) = broker.outstanding.pop_front() else {
            return Ok(());
        };
        let address = broker.conn.address().to_string();
        let answers = broker.conn.produced(id).with_context(|| {
            format!(
                "reading the answer of broker {address} of the {}",
                self.names.1
            )
        })?;
        let mut by_partition: HashMap<(String, i32), Produced> =
            answers.into_iter().map(|(t, n, a)| ((t, n), a)).collect();
        for i in parts {
            let p = &self.parts[i];
            let answer = by_partition
                .remove(&(p.target_topic.clone(), p.slot.partition))
                .ok_or_else(|| {
                    anyhow!(
                        "broker {address} of the target cluster did not answer for {}/{}",
                        p.target_topic,
                        p.slot.partition
                    )
                })?;
            self.answered(i, answer)?;
        }
        Ok(())
    }

    fn answered(&mut self, i: usize, a: Produced) -> anyhow::Result<()> {
        let p = &mut self.parts[i];
        let answer = match a.error_code {
            0 => Answer::Appended(a.base_offset),
            code => Answer::Error(Code(i32::from(code))),
        };
        let next = p
            .stream
            .answered(answer)
            .map_err(|e| anyhow!("{}/{}: {e:?}", p.target_topic, p.slot.partition))?;
        let Next::Landed { base, .. } = next else {
            let code = match answer {
                Answer::Error(c) => c,
                Answer::Appended(_) => Code::NO_ERROR,
            };
            let detail = a.message.unwrap_or_default();
            let (len, first, count) = p
                .in_flight
                .front()
                .map_or((0, p.fetch_at, 0), |(len, o)| (*len, o.first(), o.count()));
            let (topic, to, n) = (&p.topic, &p.target_topic, p.slot.partition);
            let text = if code == Code::MESSAGE_TOO_LARGE || code == Code::MESSAGE_BATCH_TOO_LARGE {
                format!(
                    "writing offset {first} of {topic}/{n} to {to}/{n} failed: the target \
                     refused a batch of {count} record(s), {len} bytes, as larger than it \
                     accepts. Raise max.message.bytes on the target topic {to} (and, if the \
                     record is larger than them, message.max.bytes and replica.fetch.max.bytes \
                     on the target's brokers), then run `kmigrate run` again: it resumes at \
                     this record. No record of {topic}/{n} after it was written"
                )
            } else if code == Code::INVALID_MESSAGE {
                format!(
                    "writing offset {first} of {topic}/{n} to {to}/{n} failed: the target \
                     refused the source's batch of {count} record(s), {len} bytes, as corrupt \
                     (its CRC does not match its bytes). kmigrate keeps the source's CRC, so \
                     a batch damaged on the source's disk or on the way is refused rather \
                     than written: read {topic}/{n} at offset {first} with a consumer that \
                     checks CRCs (check.crcs=true) and repair or skip it on the source. \
                     Nothing after it was written"
                )
            } else {
                format!(
                    "writing offset {first} of {topic}/{n} to {to}/{n} on the target failed; \
                     nothing after it was written. `kmigrate run` resumes exactly (it reads \
                     the target first)"
                )
            };
            return Err(
                anyhow::Error::new(KafkaError::new(code, "producing", &detail)).context(text),
            );
        };
        let Some((len, offsets)) = p.in_flight.pop_front() else {
            bail!(
                "{}/{}: an answer for nothing sent",
                p.target_topic,
                p.slot.partition
            );
        };
        if base != p.slot.next_target {
            bail!(
                "{}/{}: the target gave offset {base} to a batch kmigrate expected at {}: the \
                 partition holds records kmigrate did not write there in this order (another \
                 producer?). Stop any other producer; `kmigrate run` then checks the records \
                 past the last checkpoint before continuing",
                p.target_topic,
                p.slot.partition,
                p.slot.next_target
            );
        }
        let n = offsets.count();
        match &offsets {
            Offsets::Dense { first, count } => {
                for o in *first..*first + i64::from(*count) {
                    p.slot.landed(o);
                }
            }
            Offsets::List(l) => {
                for o in l {
                    p.slot.landed(*o);
                }
            }
        }
        p.queued -= len;
        p.slot.progress.written += n as u64;
        p.slot.dirty = true;
        self.records += n as u64;
        self.bytes += len as u64;
        self.last_progress = Instant::now();
        Ok(())
    }

    /// Reads every answer still outstanding (the copy ended or failed).
    fn drain(&mut self) -> anyhow::Result<()> {
        while self.targets.iter().any(|b| !b.outstanding.is_empty()) {
            self.receive_one()?;
        }
        Ok(())
    }

    /// Partitions read completely, with nothing queued or in flight, are done.
    fn finish_ready(&mut self) {
        for p in &mut self.parts {
            let s = &mut p.slot;
            if !s.done
                && p.read_done
                && s.skip == 0
                && p.pending.is_empty()
                && p.in_flight.is_empty()
            {
                s.done = true;
                self.remaining -= 1;
                s.progress.done = true;
                s.translation.finish(s.next_target);
                s.dirty = true;
            }
        }
    }

    /// Every batch sent was answered: none waits on a leader for its replicas.
    fn settled(&mut self) {
        for p in self.parts.iter_mut().filter(|p| p.in_flight.is_empty()) {
            p.slot.progress.settled = true;
            p.slot.dirty = true;
        }
    }

    fn tick(&mut self) -> anyhow::Result<()> {
        if self.last_tick.elapsed() < TICK {
            return Ok(());
        }
        self.last_tick = Instant::now();
        self.publish();
        if self.last_progress.elapsed() > STALL {
            let stuck: Vec<String> = self
                .parts
                .iter()
                .filter(|p| !p.slot.done)
                .take(5)
                .map(|p| {
                    format!(
                        "{}/{} at {} of {}",
                        p.topic, p.slot.partition, p.fetch_at, p.end
                    )
                })
                .collect();
            bail!(
                "nothing was read or written for {} s although the plan expects more ({}): did \
                 the source's records change since the plan?",
                STALL.as_secs(),
                stuck.join(", ")
            );
        }
        Ok(())
    }

    fn publish(&mut self) {
        let mut routes: BTreeMap<String, Routes> = BTreeMap::new();
        for p in &mut self.parts {
            if p.routes != Routes::default() {
                routes
                    .entry(p.topic.clone())
                    .or_default()
                    .add(&std::mem::take(&mut p.routes));
            }
        }
        self.shared.add_routes(&routes);
        self.shared.publish(
            self.parts.iter_mut().map(|p| {
                let changed = std::mem::take(&mut p.slot.dirty);
                // Progress (and the lag metric) counts what the target acknowledged: this
                // engine reads up to a few MiB per partition ahead of it.
                let copied = match p.slot.progress.acked {
                    _ if p.slot.progress.done => p.end,
                    Some((source, _)) => source.saturating_add(1).min(p.end),
                    None => i64::MIN,
                };
                (p.slot.state, copied, changed.then_some(&p.slot))
            }),
            self.records - self.published.0,
            self.bytes - self.published.1,
        );
        self.published = (self.records, self.bytes);
    }
}

impl Part {
    fn queue(&mut self, out: Out) {
        self.queued += out.bytes.len();
        self.pending.push_back(out);
    }

    /// A record of a re-encoded batch: proven already on the target (a resume), or
    /// gathered into the batch being built.
    /// The records of a decoded batch or message that the partition's range holds, into
    /// the batch being built.
    fn push_in_range(
        &mut self,
        decoded: &records::Decoded,
        codec: Codec,
        rules: &Target,
    ) -> anyhow::Result<()> {
        for r in decoded.iter() {
            if r.offset >= self.fetch_at && r.offset < self.end {
                self.push(&r, codec, rules)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, r: &Raw<'_>, codec: Codec, rules: &Target) -> anyhow::Result<()> {
        if self.slot.skip > 0 {
            return self.skip_proven(r);
        }
        // Room for the batch header and a codec's worst case on incompressible bytes.
        let limit = rules
            .max_batch_bytes
            .saturating_sub(rules.max_batch_bytes / 64 + 128);
        if self.builder.count() > 0 && self.builder.size() + r.body.len() + 32 > limit {
            self.flush(codec)?;
        }
        self.builder.push(r);
        self.built.push(r.offset);
        Ok(())
    }

    /// The batch being built, if any, queued to send.
    fn flush(&mut self, codec: Codec) -> anyhow::Result<()> {
        if self.builder.count() == 0 {
            return Ok(());
        }
        let builder = std::mem::take(&mut self.builder);
        let bytes = builder
            .finish(codec)
            .map_err(|e| anyhow!("{}/{}: {e}", self.topic, self.slot.partition))?;
        let offsets = Offsets::List(std::mem::take(&mut self.built));
        self.queue(Out {
            bytes: Bytes::from(bytes),
            offsets,
            response: None,
        });
        Ok(())
    }

    /// A record already on the target: accounted for as if acknowledged now, once it is
    /// proven to be the very record there.
    fn skip_proven(&mut self, r: &Raw<'_>) -> anyhow::Result<()> {
        let s = &mut self.slot;
        let there = s.tail.pop_front();
        if there.map(|(_, h)| h) != Some(record_hash(r)) {
            bail!(
                "{}/{}: the target record at offset {} is not source record {}, which \
                 kmigrate wrote there: past the last checkpoint the target holds records \
                 twice or records of another producer. Nothing more was written; compare with \
                 `kmigrate verify`, then empty the target partition and move the state file \
                 away to copy it again",
                self.topic,
                s.partition,
                there.map_or(s.next_target, |(o, _)| o),
                r.offset
            );
        }
        s.skip -= 1;
        s.landed(r.offset);
        s.progress.written += 1;
        s.dirty = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response counts from its first waiting slice until its last is sent; one no slice
    /// of which waits never counts.
    #[test]
    fn responses_count_while_a_slice_of_them_waits() {
        let mut r = Retained::default();
        let a = r.open(1000);
        r.hold(a);
        r.hold(a);
        r.close(a);
        let b = r.open(500);
        r.close(b);
        assert_eq!(r.bytes, 1000);
        let c = r.open(300);
        r.hold(c);
        r.close(c);
        assert_eq!(r.bytes, 1300);
        r.release(a);
        assert_eq!(r.bytes, 1300, "one slice of a still waits");
        r.release(a);
        r.release(c);
        assert_eq!(r.bytes, 0);
        assert!(r.responses.is_empty());
        r.release(a);
        assert_eq!(r.bytes, 0, "a response released twice counts once");
    }
}
