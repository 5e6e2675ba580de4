//! Reading the source (and, for verify, the target): a [`SourceReader`] over assigned
//! partitions, and a [`RangeReader`] that reads each partition from `from` up to `end` and
//! says when a range is complete. Copy and verify both read through the range reader.
//!
//! It goes one level below rdkafka's safe API, for two reasons:
//! - exactness: rdkafka reports "end of partition" with the partition number only, and a
//!   range that ends in transaction markers or compacted-away offsets has no last record
//!   to recognise its end by, so the reader returns EOF with its topic and offset;
//! - speed: records are borrowed from librdkafka and handed to the writer as they are.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::ClientContext as _;
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::context::{self, Ctx};
use super::endpoint::Endpoint;
use super::ffi::{cstr_to_string, describe_err};
use crate::config::Compression;
use crate::digest::{HeaderFn, RecordView};

/// librdkafka's `rd_kafka_message_t`, with the error code read as a plain integer: an
/// unknown broker code must not become an invalid Rust enum value.
#[repr(C)]
pub(super) struct RawMessage {
    pub(super) err: c_int,
    pub(super) rkt: *mut rd::rd_kafka_topic_t,
    pub(super) partition: i32,
    pub(super) payload: *mut c_void,
    pub(super) len: usize,
    pub(super) key: *mut c_void,
    pub(super) key_len: usize,
    pub(super) offset: i64,
    _private: *mut c_void,
}

const ERR_PARTITION_EOF: c_int = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF as c_int;
/// The broker answered OFFSET_OUT_OF_RANGE and `auto.offset.reset` is `error`.
const ERR_OUT_OF_RANGE: c_int =
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET as c_int;
/// Client-level conditions librdkafka recovers from by itself (reconnects, leader moves).
const TRANSIENT: &[rd::rd_kafka_resp_err_t] = &[
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__TRANSPORT,
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__RESOLVE,
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__TIMED_OUT,
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
];

/// Client buffer sizes and producer settings for a copy.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Memory budget of the consumer and of the producer, each. Each queues records worth a
    /// quarter of it: librdkafka needs about as much again for a queued record's bookkeeping
    /// and copies, and the consumer's fetch response in flight (an eighth) comes on top.
    pub buffer_bytes: usize,
    /// `compression.type` of the producer.
    pub compression: Compression,
    /// Upper bound of a produced batch, when the target topics accept less than the
    /// writer's default (1,000,000 bytes): the broker refuses a whole batch larger than
    /// the topic's `max.message.bytes`, even one made of small records.
    pub max_batch_bytes: Option<usize>,
}

/// The writer's batch size when the target topics allow it.
pub const DEFAULT_BATCH_BYTES: usize = 1_000_000;

/// One partition to read: its topic (an index into the reader's topic list), number, and
/// the first offset to read.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub topic: usize,
    pub partition: i32,
    pub from: i64,
}

/// What one poll of the source returned.
pub enum Polled<'a> {
    Record(SourceRecord<'a>),
    /// The reader is at the end of a partition: `offset` is the next offset it would read.
    Eof {
        topic: usize,
        partition: i32,
        offset: i64,
    },
    /// Nothing within the timeout.
    Idle,
    /// librdkafka reported a condition it recovers from (reconnecting, ...).
    Transient(String),
    /// The partition's leader has no record at the offset asked for: it lies past the
    /// leader's log end (or below its start).
    OutOfRange {
        topic: usize,
        partition: i32,
        what: String,
    },
    /// The copy cannot go on (offset out of range, authorization, ...).
    Fatal(String),
}

/// A consumed record, borrowed from librdkafka until dropped.
pub struct SourceRecord<'a> {
    pub(super) msg: *mut RawMessage,
    pub(super) topic: usize,
    _reader: PhantomData<&'a SourceReader>,
}

impl SourceRecord<'_> {
    pub(super) fn raw(&self) -> &RawMessage {
        // SAFETY: `msg` is a valid message owned by this value until drop.
        unsafe { &*self.msg }
    }

    pub fn topic(&self) -> usize {
        self.topic
    }

    pub fn partition(&self) -> i32 {
        self.raw().partition
    }

    pub fn offset(&self) -> i64 {
        self.raw().offset
    }

    /// Key and value sizes, for byte counts.
    pub fn size(&self) -> usize {
        self.raw().len + self.raw().key_len
    }
}

impl RecordView for SourceRecord<'_> {
    /// The key; `None` for a null key (an empty key is `Some(&[])`).
    fn key(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: key points at key_len bytes owned by the message while self lives.
        (!m.key.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.key.cast::<u8>(), m.key_len) })
    }

    /// The value; `None` for a null value (tombstone).
    fn value(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: payload points at len bytes owned by the message while self lives.
        (!m.payload.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.payload.cast::<u8>(), m.len) })
    }

    /// The record's timestamp in milliseconds, -1 if it has none.
    fn timestamp(&self) -> i64 {
        let mut tstype = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: valid message while self lives.
        unsafe { rd::rd_kafka_message_timestamp(self.msg.cast(), &mut tstype) }
    }

    /// Calls `f(name, value)` for each header in order (duplicates included).
    fn for_each_header(&self, f: &mut HeaderFn<'_>) {
        let mut hdrs: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
        // SAFETY: valid message; hdrs is borrowed from it.
        let err = unsafe { rd::rd_kafka_message_headers(self.msg.cast(), &mut hdrs) } as c_int;
        if err != 0 || hdrs.is_null() {
            return;
        }
        let mut i = 0;
        loop {
            let mut name: *const std::ffi::c_char = std::ptr::null();
            let mut value: *const c_void = std::ptr::null();
            let mut size: usize = 0;
            // SAFETY: index i within the header list; outputs borrowed from the message.
            let e =
                unsafe { rd::rd_kafka_header_get_all(hdrs, i, &mut name, &mut value, &mut size) }
                    as c_int;
            if e != 0 || name.is_null() {
                break;
            }
            // SAFETY: name is NUL-terminated, value points at size bytes (or is NULL).
            let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
            let value = (!value.is_null()).then(|| {
                // SAFETY: value is not NULL here and points at size bytes owned by the
                // message, which outlives this call.
                unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }
            });
            f(name, value);
            i += 1;
        }
    }
}

impl Drop for SourceRecord<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the message returned by rd_kafka_consumer_poll.
        unsafe { rd::rd_kafka_message_destroy(self.msg.cast()) }
    }
}

/// Reads assigned partition ranges from the source with read_committed isolation.
pub struct SourceReader {
    consumer: BaseConsumer<Ctx>,
    /// The consumer's queue, read a batch at a time: one lock and one wake-up per batch
    /// instead of per record, which with small records is a tenth of the copy's CPU.
    queue: *mut rd::rd_kafka_queue_t,
    /// The client's log lines. Reading the consumer queue in batches serves librdkafka's
    /// own operations the C way: its log lines would go to librdkafka's default logger
    /// (straight to stderr, one per client and retry) instead of through [`Ctx`]. Given a
    /// queue of their own, they are forwarded to `Ctx` at each read.
    logs: *mut rd::rd_kafka_queue_t,
    /// Messages taken from the queue and not handed out yet (owned: destroyed on drop).
    batch: VecDeque<*mut RawMessage>,
    scratch: Vec<*mut rd::rd_kafka_message_t>,
    topics: Vec<String>,
    /// librdkafka topic handle address → topic index, filled on first sight.
    by_rkt: HashMap<usize, usize>,
}

// SAFETY: the raw pointers are librdkafka's queue handles and messages owned by this
// reader; librdkafka's handles may be used from any thread, and the reader is used by one
// thread at a time (a copy session hands it from one copy's pipeline to the next).
unsafe impl Send for SourceReader {}

/// Messages taken from the queue at most at once.
const BATCH: usize = 1024;

impl SourceReader {
    pub fn new(
        cluster: &Endpoint,
        topics: &[String],
        assignments: &[Assignment],
        tuning: &Tuning,
    ) -> anyhow::Result<SourceReader> {
        SourceReader::with_config(
            cluster,
            cluster.client_config(),
            topics,
            assignments,
            tuning,
        )
    }

    /// A reader that fetches from each partition's leader only, whatever `client.rack`
    /// says: what the leader holds is the question, not what a follower copied of it.
    pub fn on_leaders(
        cluster: &Endpoint,
        topics: &[String],
        assignments: &[Assignment],
        tuning: &Tuning,
    ) -> anyhow::Result<SourceReader> {
        let mut config = cluster.client_config();
        config.remove("client.rack");
        SourceReader::with_config(cluster, config, topics, assignments, tuning)
    }

    /// A reader that only tells when partitions get new records (see `super::watch`): it
    /// holds one fetch open per broker (`fetch.wait.max.ms`), answered as soon as records
    /// arrive, and queues at most one small fetch per partition, so an idle partition costs
    /// nothing but its share of that request.
    pub fn watcher(
        cluster: &Endpoint,
        topics: &[String],
        assignments: &[Assignment],
    ) -> anyhow::Result<SourceReader> {
        let tuning = Tuning {
            buffer_bytes: 4 << 20,
            compression: Compression::None,
            max_batch_bytes: None,
        };
        let mut config = cluster.client_config();
        config.remove("client.rack");
        let watching = [
            // Nothing is copied through this client: one batch per partition says enough.
            // (A limit below a batch's size would not do: the broker returns a batch over
            // the limit only for the first partition of a response.)
            ("enable.partition.eof", "false"),
            ("max.partition.fetch.bytes", "65536"),
            ("fetch.max.bytes", "4194304"),
            ("receive.message.max.bytes", "5242880"),
            ("fetch.wait.max.ms", "5000"),
        ];
        let reader = SourceReader::unassigned(cluster, config, topics, &tuning, &watching)?;
        reader.assign(assignments, cluster)?;
        Ok(reader)
    }

    fn with_config(
        cluster: &Endpoint,
        config: rdkafka::config::ClientConfig,
        topics: &[String],
        assignments: &[Assignment],
        tuning: &Tuning,
    ) -> anyhow::Result<SourceReader> {
        let reader = SourceReader::unassigned(cluster, config, topics, tuning, &[])?;
        reader.assign(assignments, cluster)?;
        Ok(reader)
    }

    fn unassigned(
        cluster: &Endpoint,
        mut config: rdkafka::config::ClientConfig,
        topics: &[String],
        tuning: &Tuning,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<SourceReader> {
        let queue_bytes = tuning.buffer_bytes / 4;
        let fetch_max = (tuning.buffer_bytes / 8).clamp(1 << 20, 50 << 20);
        config
            // A group id is needed to assign partitions; nothing is ever committed under it.
            .set("group.id", format!("kmigrate-copy-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            // A start offset that retention removed since the plan must stop the copy, not
            // silently jump elsewhere.
            .set("auto.offset.reset", "error")
            .set(
                "queued.max.messages.kbytes",
                (queue_bytes / 1024).max(1024).to_string(),
            )
            // Fetching also stops at this many queued records (see max_records).
            .set("queued.min.messages", max_records(queue_bytes))
            // A partition whose queue is full waits this long before it is considered for a
            // fetch again. librdkafka's default (1 s) lets the queue run dry in between: the
            // copy loop then idles for several seconds per GiB.
            .set("fetch.queue.backoff.ms", "10")
            .set("fetch.max.bytes", fetch_max.to_string())
            .set(
                "max.partition.fetch.bytes",
                (fetch_max / 4).max(1 << 20).to_string(),
            )
            .set(
                "receive.message.max.bytes",
                (fetch_max + (1 << 20)).to_string(),
            )
            .set("fetch.wait.max.ms", "100");
        for (k, v) in overrides {
            config.set(*k, *v);
        }
        let consumer: BaseConsumer<Ctx> = cluster.create(&config, "source reader")?;
        let logs = own_log_queue(&consumer);
        // SAFETY: valid consumer handle; the queue reference is released in drop.
        let queue = unsafe { rd::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        if queue.is_null() {
            anyhow::bail!(
                "the reader of the {} has no consumer queue",
                cluster.describe()
            );
        }
        // What the client said before its log lines had their queue (a failed first
        // connection) waits in the consumer queue, where a batch read would print it: it is
        // forwarded now, before anything is assigned.
        forward_logs(consumer.context(), queue);
        // Built before the assignment, so that its drop releases the queues if that fails.
        Ok(SourceReader {
            consumer,
            queue,
            logs,
            batch: VecDeque::with_capacity(BATCH),
            scratch: vec![std::ptr::null_mut(); BATCH],
            topics: topics.to_vec(),
            by_rkt: HashMap::new(),
        })
    }

    fn assign(&self, assignments: &[Assignment], cluster: &Endpoint) -> anyhow::Result<()> {
        let tpl = self.assignment_list(assignments)?;
        self.consumer.assign(&tpl).with_context(|| {
            format!(
                "assigning {} partition(s) on the {}",
                assignments.len(),
                cluster.describe()
            )
        })
    }

    /// Gives the reader new partitions to read, as [`SourceReader::new`] would, keeping its
    /// client (connections, metadata). Nothing of the previous assignment can be returned
    /// after this: the messages taken from the queue already are destroyed, and librdkafka's
    /// `assign` replaces the whole assignment, which stops every partition of the previous
    /// one and bumps its version barrier before it returns (`rd_kafka_assignment_serve_removals`
    /// calls `rd_kafka_toppar_op_fetch_stop` on the client's thread before the assign call is
    /// answered); a batch read drops every message of an older version
    /// (`rd_kafka_q_serve_rkmessages`: `rd_kafka_op_version_outdated`). The partitions are
    /// resumed, since a pause outlives an assignment.
    pub fn reassign(
        &mut self,
        cluster: &Endpoint,
        topics: &[String],
        assignments: &[Assignment],
    ) -> anyhow::Result<()> {
        self.discard_batch();
        self.topics = topics.to_vec();
        self.by_rkt.clear();
        self.assign(assignments, cluster)?;
        let tpl = self.assignment_list(assignments)?;
        self.consumer.resume(&tpl).with_context(|| {
            format!(
                "resuming {} partition(s) on the {}",
                assignments.len(),
                cluster.describe()
            )
        })
    }

    /// Stops reading anything, and lets go of what the queue holds, so that a reader kept
    /// for later holds no records (nor their memory) meanwhile.
    pub fn park(&mut self, cluster: &Endpoint) -> anyhow::Result<()> {
        self.discard_batch();
        self.assign(&[], cluster)?;
        // Everything queued is of the previous assignment now: a batch read drops it.
        while self.take(0, BATCH) > 0 {
            self.discard_batch();
        }
        Ok(())
    }

    /// Destroys the messages taken from the queue and not handed out.
    fn discard_batch(&mut self) {
        for msg in self.batch.drain(..) {
            // SAFETY: messages taken from the queue and never handed out are ours.
            unsafe { rd::rd_kafka_message_destroy(msg.cast()) };
        }
    }

    /// The partitions of `assignments`, each at its first offset.
    fn assignment_list(&self, assignments: &[Assignment]) -> anyhow::Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for a in assignments {
            let topic = self
                .topics
                .get(a.topic)
                .with_context(|| format!("no topic with index {}", a.topic))?;
            tpl.add_partition_offset(topic, a.partition, Offset::Offset(a.from))
                .with_context(|| {
                    format!("assigning {topic}/{} from offset {}", a.partition, a.from)
                })?;
        }
        Ok(tpl)
    }

    fn topic_index(&mut self, rkt: *mut rd::rd_kafka_topic_t) -> Option<usize> {
        if rkt.is_null() {
            return None;
        }
        if let Some(i) = self.by_rkt.get(&(rkt as usize)) {
            return Some(*i);
        }
        // SAFETY: a non-null topic handle from a live message; the name is copied.
        let name = unsafe { cstr_to_string(rd::rd_kafka_topic_name(rkt)) };
        let i = self.topics.iter().position(|t| *t == name)?;
        self.by_rkt.insert(rkt as usize, i);
        Some(i)
    }

    /// Takes what the queue holds (up to a batch) when nothing is left; when it holds
    /// nothing, waits up to `timeout` for one message. (Asked for a whole batch,
    /// librdkafka waits until the batch is full or the timeout passes.)
    fn fill(&mut self, timeout: Duration) {
        if !self.batch.is_empty() {
            return;
        }
        forward_logs(self.consumer.context(), self.logs);
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        if self.take(0, BATCH) == 0 {
            self.take(ms, 1);
        }
    }

    fn take(&mut self, ms: c_int, max: usize) -> usize {
        // SAFETY: valid queue; scratch has room for BATCH >= max pointers, of which
        // librdkafka fills the first n with messages we then own.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(self.queue, ms, self.scratch.as_mut_ptr(), max)
        };
        let n = usize::try_from(n).unwrap_or(0).min(max);
        self.batch
            .extend(self.scratch[..n].iter().map(|m| m.cast::<RawMessage>()));
        n
    }

    pub fn poll(&mut self, timeout: Duration) -> Polled<'_> {
        self.fill(timeout);
        let Some(msg) = self.batch.pop_front() else {
            return Polled::Idle;
        };
        // SAFETY: non-null message just returned by librdkafka.
        let (err, rkt, partition, offset) =
            unsafe { ((*msg).err, (*msg).rkt, (*msg).partition, (*msg).offset) };
        let topic = self.topic_index(rkt);
        if err == 0 {
            return match topic {
                Some(topic) => Polled::Record(SourceRecord {
                    msg,
                    topic,
                    _reader: PhantomData,
                }),
                None => {
                    // SAFETY: we own msg.
                    unsafe { rd::rd_kafka_message_destroy(msg.cast()) };
                    Polled::Fatal(
                        "the source returned a record of a topic that was not assigned".into(),
                    )
                }
            };
        }
        // SAFETY: errstr reads the message's error text; we own msg and destroy it after.
        let text = unsafe {
            let s = cstr_to_string(rd::rd_kafka_message_errstr(msg.cast()));
            rd::rd_kafka_message_destroy(msg.cast());
            s
        };
        if err == ERR_PARTITION_EOF {
            return match topic {
                Some(topic) => Polled::Eof {
                    topic,
                    partition,
                    offset,
                },
                None => Polled::Idle,
            };
        }
        let what = match topic {
            Some(t) => format!(
                "{}/{partition}: {} {text}",
                self.topics[t],
                describe_err(err)
            ),
            None => format!("{} {text}", describe_err(err)),
        };
        if let (ERR_OUT_OF_RANGE, Some(topic)) = (err, topic) {
            Polled::OutOfRange {
                topic,
                partition,
                what,
            }
        } else if TRANSIENT.iter().any(|e| *e as c_int == err) {
            Polled::Transient(what)
        } else {
            Polled::Fatal(what)
        }
    }

    /// Moves each partition of `at` (topic index, partition, offset) to its offset and
    /// fetches it again if it was paused.
    pub fn rewind(&self, at: &[Assignment]) -> anyhow::Result<()> {
        if at.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for a in at {
            let topic = self
                .topics
                .get(a.topic)
                .with_context(|| format!("no topic with index {}", a.topic))?;
            tpl.add_partition_offset(topic, a.partition, Offset::Offset(a.from))
                .with_context(|| format!("moving {topic}/{} to offset {}", a.partition, a.from))?;
        }
        let tpl = self
            .consumer
            .seek_partitions(tpl, Duration::from_secs(10))
            .with_context(|| format!("moving the reader of {} partition(s)", at.len()))?;
        if let Some(e) = tpl.elements().iter().find_map(|e| e.error().err()) {
            anyhow::bail!("moving the reader of {} partition(s): {e}", at.len());
        }
        self.consumer
            .resume(&tpl)
            .with_context(|| format!("resuming the reader of {} partition(s)", at.len()))
    }

    /// Stops fetching a partition whose range is read completely.
    pub fn pause(&self, topic: usize, partition: i32) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topics[topic], partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::debug!("pausing {}/{partition}: {e}", self.topics[topic]);
        }
    }
}

/// How many records a client may queue for `bytes` of queue: every record counts as at
/// least 512 bytes, since librdkafka's per-record bookkeeping dwarfs small records.
pub(super) fn max_records(bytes: usize) -> String {
    (bytes / 512).max(1000).to_string()
}

impl Drop for SourceReader {
    fn drop(&mut self) {
        self.discard_batch();
        // SAFETY: the reference taken in new, released once, before the consumer.
        unsafe { rd::rd_kafka_queue_destroy(self.queue) };
        if !self.logs.is_null() {
            forward_logs(self.consumer.context(), self.logs);
            // SAFETY: created in new, released once. The client's log queue stays
            // forwarded to it (librdkafka holds its own reference): what the consumer logs
            // while it closes is dropped with the client, not printed past kmigrate's log.
            unsafe { rd::rd_kafka_queue_destroy(self.logs) };
        }
    }
}

/// Gives the consumer's log lines a queue of their own (see [`SourceReader::logs`]); null
/// when librdkafka refuses, and the lines then go where they went before.
fn own_log_queue(consumer: &BaseConsumer<Ctx>) -> *mut rd::rd_kafka_queue_t {
    let rk = consumer.client().native_ptr();
    // SAFETY: valid client handle; the new queue is owned by the reader and released in
    // its drop, after the client's log queue is set back to the main queue.
    unsafe {
        let logs = rd::rd_kafka_queue_new(rk);
        if logs.is_null() {
            return logs;
        }
        if rd::rd_kafka_set_log_queue(rk, logs)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            rd::rd_kafka_queue_destroy(logs);
            return std::ptr::null_mut();
        }
        logs
    }
}

/// Hands every log line waiting in `logs` to the client's context; any other event there is
/// dropped.
fn forward_logs(ctx: &Ctx, logs: *mut rd::rd_kafka_queue_t) {
    if logs.is_null() {
        return;
    }
    loop {
        // SAFETY: valid queue; a non-null event is ours until destroyed below.
        let ev = unsafe { rd::rd_kafka_queue_poll(logs, 0) };
        if ev.is_null() {
            return;
        }
        let (mut fac, mut text, mut level) = (std::ptr::null(), std::ptr::null(), 0);
        // SAFETY: `ev` is a live event; the strings it gives live as long as it does.
        let line = unsafe {
            (rd::rd_kafka_event_type(ev) == rd::RD_KAFKA_EVENT_LOG
                && rd::rd_kafka_event_log(ev, &mut fac, &mut text, &mut level) == 0)
                .then(|| (cstr_to_string(fac), cstr_to_string(text)))
        };
        if let Some((fac, text)) = line {
            ctx.log(context::log_level(level), &fac, &text);
        }
        // SAFETY: destroyed once, after its strings were copied.
        unsafe { rd::rd_kafka_event_destroy(ev) };
    }
}

/// One partition range to read: `[from, end)` of `partition` of topic `topic` (an index
/// into the reader's topic list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub topic: usize,
    pub partition: i32,
    pub from: i64,
    pub end: i64,
}

/// What one poll of a [`RangeReader`] returned.
pub enum Event<'a> {
    /// A record of range `range`, below its end.
    Record { range: usize, rec: SourceRecord<'a> },
    /// Every record of range `range` has been returned.
    Finished(usize),
    /// Nothing within the timeout.
    Idle,
    /// librdkafka reported a condition it recovers from by itself (reconnecting, a leader
    /// moving): worth a warning, not a stop.
    Transient(String),
}

/// Reads ranges of partitions: each from its `from` until a record at or past its `end`
/// arrives, or the partition's end lies at or past it (a range may end in offsets with no
/// record: transaction markers, compaction). A finished partition is paused so that its
/// records stop taking buffer space. The one state machine copy and verify both read with.
pub struct RangeReader {
    reader: Option<SourceReader>,
    book: Book,
}

/// The ranges and how far each is read; apart from the client, so that it can be updated
/// while a record borrowed from the client is handed out.
struct Book {
    topics: Vec<String>,
    ranges: Vec<Range>,
    /// Next offset expected per range (progress), `end` once finished.
    pos: Vec<i64>,
    done: Vec<bool>,
    remaining: usize,
    /// topic index → partition → range index.
    lookup: Vec<Vec<Option<usize>>>,
    /// Ranges finished but not reported yet.
    finished: VecDeque<usize>,
    /// A partition to pause before the next poll (its last record was still borrowed).
    to_pause: Option<usize>,
    /// Records and finished ranges so far, and (when last asked) that count and the time
    /// it was seen to change: reading the clock per record would cost as much as copying
    /// a small one.
    events: u64,
    seen: std::cell::Cell<(u64, Instant)>,
    /// The last transient problem since the last record, to explain a stall.
    trouble: Option<String>,
}

impl RangeReader {
    /// A reader of `ranges` on `cluster`. Ranges with nothing to read are reported finished
    /// by the first polls; with no range to read, no client is created.
    pub fn new(
        cluster: &Endpoint,
        topics: &[String],
        ranges: Vec<Range>,
        tuning: &Tuning,
    ) -> anyhow::Result<RangeReader> {
        RangeReader::reusing(cluster, topics, ranges, tuning, None)
    }

    /// [`RangeReader::new`] through `kept`, a reader an earlier copy left (see
    /// [`RangeReader::into_reader`]), given these ranges instead (see
    /// [`SourceReader::reassign`]); without one, a new client as `new` does.
    pub fn reusing(
        cluster: &Endpoint,
        topics: &[String],
        ranges: Vec<Range>,
        tuning: &Tuning,
        kept: Option<SourceReader>,
    ) -> anyhow::Result<RangeReader> {
        let mut lookup: Vec<Vec<Option<usize>>> = vec![Vec::new(); topics.len()];
        let mut finished = VecDeque::new();
        let mut assignments = Vec::new();
        for (i, r) in ranges.iter().enumerate() {
            let v = lookup
                .get_mut(r.topic)
                .with_context(|| format!("no topic with index {}", r.topic))?;
            let p = usize::try_from(r.partition)
                .with_context(|| format!("negative partition {}", r.partition))?;
            if v.len() <= p {
                v.resize(p + 1, None);
            }
            v[p] = Some(i);
            if r.from >= r.end {
                finished.push_back(i);
            } else {
                assignments.push(Assignment {
                    topic: r.topic,
                    partition: r.partition,
                    from: r.from,
                });
            }
        }
        let reader = match kept {
            Some(mut r) => {
                r.reassign(cluster, topics, &assignments)?;
                Some(r)
            }
            None if assignments.is_empty() => None,
            None => Some(SourceReader::new(cluster, topics, &assignments, tuning)?),
        };
        let done: Vec<bool> = ranges.iter().map(|r| r.from >= r.end).collect();
        Ok(RangeReader {
            reader,
            book: Book {
                topics: topics.to_vec(),
                pos: ranges.iter().map(|r| r.from.min(r.end)).collect(),
                remaining: ranges.len(),
                done,
                ranges,
                lookup,
                finished,
                to_pause: None,
                events: 0,
                seen: std::cell::Cell::new((0, Instant::now())),
                trouble: None,
            },
        })
    }

    /// The client, for a later copy: it reads nothing meanwhile (see
    /// [`SourceReader::park`]).
    pub fn into_reader(self, cluster: &Endpoint) -> anyhow::Result<Option<SourceReader>> {
        let mut reader = self.reader;
        if let Some(r) = reader.as_mut() {
            r.park(cluster)?;
        }
        Ok(reader)
    }

    /// Ranges not reported finished yet.
    pub fn remaining(&self) -> usize {
        self.book.remaining
    }

    /// The next offset expected in range `i` (its end once finished).
    pub fn position(&self, i: usize) -> i64 {
        self.book.pos[i]
    }

    /// How long since a record arrived or a range finished (to within the interval of the
    /// calls to this).
    pub fn idle_for(&self) -> Duration {
        let (count, since) = self.book.seen.get();
        if count != self.book.events {
            self.book.seen.set((self.book.events, Instant::now()));
            return Duration::ZERO;
        }
        since.elapsed()
    }

    /// The last transient problem since the last record.
    pub fn trouble(&self) -> Option<&str> {
        self.book.trouble.as_deref()
    }

    /// Up to `n` unfinished ranges, as "topic/partition at POS of END".
    pub fn unfinished(&self, n: usize) -> Vec<String> {
        let b = &self.book;
        (0..b.ranges.len())
            .filter(|i| !b.done[*i])
            .take(n)
            .map(|i| {
                let r = &b.ranges[i];
                format!(
                    "{}/{} at {} of {}",
                    b.topics[r.topic], r.partition, b.pos[i], r.end
                )
            })
            .collect()
    }

    /// The next event within `timeout`. An error is a condition reading cannot go on from
    /// (an offset out of range, authorization, a record of a partition not being read).
    pub fn poll(&mut self, timeout: Duration) -> anyhow::Result<Event<'_>> {
        let book = &mut self.book;
        if let Some(i) = book.to_pause.take()
            && let Some(reader) = &self.reader
        {
            let r = &book.ranges[i];
            reader.pause(r.topic, r.partition);
        }
        if let Some(i) = book.finished.pop_front() {
            book.remaining -= 1;
            book.events += 1;
            return Ok(Event::Finished(i));
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Event::Idle);
        };
        match reader.poll(timeout) {
            Polled::Record(rec) => {
                let i = range_of(&book.lookup, rec.topic(), rec.partition()).ok_or_else(|| {
                    anyhow::anyhow!("the cluster returned a record of a partition not being read")
                })?;
                book.events += 1;
                book.trouble = None;
                Ok(match book.admit(i, rec.offset()) {
                    Admit::Record => Event::Record { range: i, rec },
                    Admit::Drop => Event::Idle,
                })
            }
            Polled::Eof {
                topic,
                partition,
                offset,
            } => {
                if let Some(i) = range_of(&book.lookup, topic, partition)
                    && !book.done[i]
                    && offset >= book.ranges[i].end
                {
                    book.finish(i);
                }
                Ok(Event::Idle)
            }
            Polled::Idle => Ok(Event::Idle),
            Polled::Transient(msg) => {
                book.trouble = Some(msg.clone());
                Ok(Event::Transient(msg))
            }
            Polled::Fatal(msg) | Polled::OutOfRange { what: msg, .. } => Err(anyhow::anyhow!(msg)),
        }
    }
}

/// What becomes of a record of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// The next record of the range: handed out.
    Record,
    /// Not part of what is read: a range finished already, at or past the range's end, or
    /// below the next offset expected (returned already, or left from an earlier
    /// assignment of a reused client). Never handed out.
    Drop,
}

impl Book {
    /// Whether the record at `offset` of range `i` is handed out, and the range's
    /// progress. Each offset is handed out at most once, in increasing order, and only
    /// within `[from, end)`.
    fn admit(&mut self, i: usize, offset: i64) -> Admit {
        let end = self.ranges[i].end;
        if self.done[i] {
            return Admit::Drop;
        }
        if offset >= end {
            self.finish(i);
            return Admit::Drop;
        }
        if offset < self.pos[i] {
            tracing::debug!(
                "{}/{}: dropped a record at offset {offset}, below the next one expected ({})",
                self.topics[self.ranges[i].topic],
                self.ranges[i].partition,
                self.pos[i]
            );
            return Admit::Drop;
        }
        self.pos[i] = offset + 1;
        if offset + 1 >= end {
            self.finish(i);
        }
        Admit::Record
    }

    /// Range `i` is read completely: report it on the next poll and stop fetching it.
    fn finish(&mut self, i: usize) {
        self.done[i] = true;
        self.pos[i] = self.ranges[i].end;
        self.finished.push_back(i);
        self.to_pause = Some(i);
    }
}

fn range_of(lookup: &[Vec<Option<usize>>], topic: usize, partition: i32) -> Option<usize> {
    lookup
        .get(topic)?
        .get(usize::try_from(partition).ok()?)
        .copied()
        .flatten()
}

impl RangeReader {
    /// The next record's (offset, hash) of any range, or `None` once every range is
    /// finished; an error when nothing arrives for `stall`.
    pub fn next_hash(&mut self, stall: Duration) -> anyhow::Result<Option<(i64, u128)>> {
        loop {
            if self.book.remaining == 0 {
                return Ok(None);
            }
            match self.poll(Duration::from_millis(100))? {
                Event::Record { rec, .. } => {
                    return Ok(Some((rec.offset(), crate::digest::record_hash(&rec))));
                }
                Event::Finished(_) | Event::Transient(_) | Event::Idle => {}
            }
            if self.idle_for() > stall {
                anyhow::bail!(
                    "no record within {} s ({})",
                    stall.as_secs(),
                    self.unfinished(5).join(", ")
                );
            }
        }
    }
}

/// The (offset, hash) of each record of `topic`/`partition` on `cluster` in `[from, end)`,
/// in order: what a resume compares the records it skips with.
pub fn record_hashes(
    cluster: &Endpoint,
    topic: &str,
    partition: i32,
    from: i64,
    end: i64,
    tuning: &Tuning,
) -> anyhow::Result<Vec<(i64, u128)>> {
    let range = Range {
        topic: 0,
        partition,
        from,
        end,
    };
    let mut reader = RangeReader::new(cluster, &[topic.to_string()], vec![range], tuning)?;
    let mut out = Vec::new();
    while let Some(h) = reader.next_hash(cluster.timeout).with_context(|| {
        format!(
            "reading {topic}/{partition} [{from}, {end}) on the {}",
            cluster.describe()
        )
    })? {
        out.push(h);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A book of one range `[from, end)` of partition 0 of topic "t".
    fn book(from: i64, end: i64) -> Book {
        Book {
            topics: vec!["t".into()],
            ranges: vec![Range {
                topic: 0,
                partition: 0,
                from,
                end,
            }],
            pos: vec![from.min(end)],
            done: vec![from >= end],
            remaining: 1,
            lookup: vec![vec![Some(0)]],
            finished: VecDeque::new(),
            to_pause: None,
            events: 0,
            seen: std::cell::Cell::new((0, Instant::now())),
            trouble: None,
        }
    }

    #[test]
    fn records_below_the_range_or_already_returned_are_dropped() {
        let mut b = book(10, 20);
        // Left from an earlier assignment of a reused client: below the range's start.
        assert_eq!(b.admit(0, 9), Admit::Drop);
        assert_eq!(b.admit(0, 10), Admit::Record);
        // Returned already (the same offset again, or an older one).
        assert_eq!(b.admit(0, 10), Admit::Drop);
        // Gaps (transaction markers, compaction) are fine.
        assert_eq!(b.admit(0, 15), Admit::Record);
        assert_eq!(b.admit(0, 12), Admit::Drop);
        assert_eq!(b.pos[0], 16);
        assert_eq!(b.admit(0, 19), Admit::Record);
        assert!(b.done[0]);
        // Past the end, or once finished: never.
        assert_eq!(b.admit(0, 20), Admit::Drop);
        assert_eq!(b.admit(0, 19), Admit::Drop);
    }

    #[test]
    fn a_record_at_the_end_finishes_the_range_without_being_returned() {
        let mut b = book(0, 5);
        assert_eq!(b.admit(0, 7), Admit::Drop);
        assert!(b.done[0]);
        assert_eq!(b.pos[0], 5);
        assert_eq!(b.finished.front(), Some(&0));
    }
}
