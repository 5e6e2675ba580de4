//! The copy path's Kafka clients: a [`SourceReader`] that reads assigned ranges and a
//! [`TargetWriter`] that produces records to the same partitions.
//!
//! Both go one level below rdkafka's safe API, for two reasons:
//! - exactness: rdkafka reports "end of partition" with the partition number only, and a
//!   range that ends in transaction markers or compacted-away offsets has no last record
//!   to recognise its end by, so the reader returns EOF with its topic and offset;
//! - speed: rdkafka's `send` allocates the topic name and looks the topic up for every
//!   record; the writer creates one topic handle per topic and passes key, value, headers
//!   and timestamp straight from the consumed message (librdkafka copies them once).
//!
//! Delivery reports still flow through rdkafka's [`ProducerContext`]: per partition slot
//! they only bump two counters (no lock, no allocation); the copy loop reconciles them.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::ffi::{cstr_to_string, describe_err, raw, take_error, to_cstring};
use super::{Cluster, Ctx};

/// librdkafka's `rd_kafka_message_t`, with the error code read as a plain integer: an
/// unknown broker code must not become an invalid Rust enum value.
#[repr(C)]
struct RawMessage {
    err: c_int,
    rkt: *mut rd::rd_kafka_topic_t,
    partition: i32,
    payload: *mut c_void,
    len: usize,
    key: *mut c_void,
    key_len: usize,
    offset: i64,
    _private: *mut c_void,
}

const ERR_PARTITION_EOF: c_int = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF as c_int;
const ERR_QUEUE_FULL: c_int = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL as c_int;
const ERR_NOENT: c_int = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__NOENT as c_int;
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
    /// `compression.type` of the producer (lz4, zstd, snappy, gzip, none).
    pub compression: String,
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
    /// The copy cannot go on (offset out of range, authorization, ...).
    Fatal(String),
}

/// A consumed record, borrowed from librdkafka until dropped.
pub struct SourceRecord<'a> {
    msg: *mut RawMessage,
    topic: usize,
    _reader: PhantomData<&'a SourceReader>,
}

impl SourceRecord<'_> {
    fn raw(&self) -> &RawMessage {
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

    /// The key; `None` for a null key (an empty key is `Some(&[])`).
    pub fn key(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: key points at key_len bytes owned by the message while self lives.
        (!m.key.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.key.cast::<u8>(), m.key_len) })
    }

    /// The value; `None` for a null value (tombstone).
    pub fn value(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: payload points at len bytes owned by the message while self lives.
        (!m.payload.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.payload.cast::<u8>(), m.len) })
    }

    /// The record's timestamp in milliseconds, -1 if it has none.
    pub fn timestamp(&self) -> i64 {
        let mut tstype = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: valid message while self lives.
        unsafe { rd::rd_kafka_message_timestamp(self.msg.cast(), &mut tstype) }
    }

    /// Calls `f(name, value)` for each header in order (duplicates included).
    pub fn for_each_header(&self, mut f: impl FnMut(&[u8], Option<&[u8]>)) {
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
            let value = (!value.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) });
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
    topics: Vec<String>,
    /// librdkafka topic handle address → topic index, filled on first sight.
    by_rkt: HashMap<usize, usize>,
}

impl SourceReader {
    pub fn new(
        cluster: &Cluster,
        topics: &[String],
        assignments: &[Assignment],
        tuning: &Tuning,
    ) -> anyhow::Result<SourceReader> {
        let mut config = cluster.client_config();
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
        let consumer: BaseConsumer<Ctx> = cluster.create(&config, "source reader")?;
        let mut tpl = TopicPartitionList::new();
        for a in assignments {
            let topic = topics
                .get(a.topic)
                .with_context(|| format!("no topic with index {}", a.topic))?;
            tpl.add_partition_offset(topic, a.partition, Offset::Offset(a.from))
                .with_context(|| {
                    format!("assigning {topic}/{} from offset {}", a.partition, a.from)
                })?;
        }
        consumer.assign(&tpl).with_context(|| {
            format!(
                "assigning {} partition(s) on the {}",
                assignments.len(),
                cluster.describe()
            )
        })?;
        Ok(SourceReader {
            consumer,
            topics: topics.to_vec(),
            by_rkt: HashMap::new(),
        })
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

    pub fn poll(&mut self, timeout: Duration) -> Polled<'_> {
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: the consumer handle is valid for self's lifetime; the returned message
        // (if any) is owned by us and destroyed below or by SourceRecord's drop.
        let msg = unsafe { rd::rd_kafka_consumer_poll(self.consumer.client().native_ptr(), ms) }
            .cast::<RawMessage>();
        if msg.is_null() {
            return Polled::Idle;
        }
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
        if TRANSIENT.iter().any(|e| *e as c_int == err) {
            Polled::Transient(what)
        } else {
            Polled::Fatal(what)
        }
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

/// Per partition slot: deliveries acknowledged so far and the last target offset.
#[derive(Default)]
struct SlotAcks {
    count: AtomicU64,
    last_offset: AtomicI64,
}

/// A record the target did not accept.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The partition slot it was sent for.
    pub slot: usize,
    /// Larger than the target topic (or broker) accepts.
    pub too_large: bool,
    /// Key, value and header bytes.
    pub size: usize,
    pub reason: String,
}

/// Delivery reports land here, from `TargetWriter::poll` on the copy thread.
pub struct WriterCtx {
    base: Ctx,
    slots: Vec<SlotAcks>,
    failures: Mutex<Vec<Failure>>,
}

impl ClientContext for WriterCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        self.base.log(level, fac, msg);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.base.error(error, reason);
    }
}

impl ProducerContext for WriterCtx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: usize) {
        match result {
            Ok(m) => {
                if let Some(s) = self.slots.get(slot) {
                    s.last_offset.store(m.offset(), Ordering::Relaxed);
                    s.count.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err((e, m)) => {
                use rdkafka::message::Headers as _;
                let too_large = matches!(
                    e.rdkafka_error_code(),
                    Some(
                        rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge
                            | rdkafka::types::RDKafkaErrorCode::InvalidMessageSize
                    )
                );
                let headers = m.headers().map_or(0, |hs| {
                    hs.iter()
                        .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
                        .sum()
                });
                let size =
                    m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len) + headers;
                if let Ok(mut f) = self.failures.lock() {
                    f.push(Failure {
                        slot,
                        too_large,
                        size,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}

/// Acknowledgements of one slot since the writer was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acks {
    pub count: u64,
    pub last_offset: i64,
}

pub enum SendError {
    /// The producer's queue is full: poll, then send again.
    QueueFull,
    Fatal(String),
}

/// Produces records to the target: idempotent, acks=all, gapless (a failed record stops
/// the producer rather than leaving a hole that later records would hide).
pub struct TargetWriter {
    producer: BaseProducer<WriterCtx>,
    rkts: Vec<*mut rd::rd_kafka_topic_t>,
    cluster: Cluster,
}

impl TargetWriter {
    /// `slots` is the number of partitions the copy writes; deliveries are counted per slot.
    pub fn new(
        cluster: &Cluster,
        topics: &[String],
        slots: usize,
        tuning: &Tuning,
    ) -> anyhow::Result<TargetWriter> {
        let mut config = cluster.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("enable.gapless.guarantee", "true")
            // One request in flight per broker. With more, a request that fails across a
            // broker restart makes the ones behind it fail with OUT_OF_ORDER_SEQUENCE, and
            // librdkafka then bumps the producer epoch and resends them: the broker can no
            // longer recognise them as retries and writes them twice (librdkafka #4953,
            // seen in the target-outage fault test). Measured on the copy benchmark: no
            // throughput difference (1 KiB and 100-byte records), as every request carries
            // a full batch.
            .set("max.in.flight.requests.per.connection", "1")
            .set("compression.type", &tuning.compression)
            .set("linger.ms", "20")
            .set(
                "batch.size",
                tuning
                    .max_batch_bytes
                    .unwrap_or(DEFAULT_BATCH_BYTES)
                    .min(DEFAULT_BATCH_BYTES)
                    .to_string(),
            )
            .set("batch.num.messages", "100000")
            .set("message.max.bytes", "100000000")
            .set(
                "queue.buffering.max.kbytes",
                (tuning.buffer_bytes / 4 / 1024).max(1024).to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                max_records(tuning.buffer_bytes / 4),
            );
        let ctx = WriterCtx {
            base: Ctx::default(),
            slots: (0..slots).map(|_| SlotAcks::default()).collect(),
            failures: Mutex::new(Vec::new()),
        };
        let producer: BaseProducer<WriterCtx> =
            cluster.create_with(&config, ctx, "target writer")?;
        let mut rkts = Vec::with_capacity(topics.len());
        for t in topics {
            let name = to_cstring(t, "topic")?;
            // SAFETY: valid client handle and NUL-terminated name; the handle is released
            // in drop.
            let rkt = unsafe {
                rd::rd_kafka_topic_new(
                    producer.client().native_ptr(),
                    name.as_ptr(),
                    std::ptr::null_mut(),
                )
            };
            if rkt.is_null() {
                anyhow::bail!(
                    "creating a producer handle for topic {t} on the {}",
                    cluster.describe()
                );
            }
            rkts.push(rkt);
        }
        Ok(TargetWriter {
            producer,
            rkts,
            cluster: cluster.clone(),
        })
    }

    /// Queues `rec` for the same partition of the same topic on the target, with its key,
    /// value, headers and timestamp. Its delivery is counted for `slot`.
    pub fn send(&self, slot: usize, rec: &SourceRecord<'_>) -> Result<(), SendError> {
        let m = rec.raw();
        let mut tstype = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: rec's message is valid while rec lives.
        let ts = unsafe { rd::rd_kafka_message_timestamp(rec.msg.cast(), &mut tstype) };
        let mut hdrs: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
        // SAFETY: valid message; on success hdrs points at headers owned by the message.
        let herr = unsafe { rd::rd_kafka_message_headers(rec.msg.cast(), &mut hdrs) } as c_int;
        let headers = if herr == 0 && !hdrs.is_null() {
            // SAFETY: copy of borrowed headers; ownership passes to librdkafka on success.
            unsafe { rd::rd_kafka_headers_copy(hdrs) }
        } else if herr == 0 || herr == ERR_NOENT {
            std::ptr::null_mut()
        } else {
            return Err(SendError::Fatal(format!(
                "reading the headers of {}: {}",
                rec.offset(),
                describe_err(herr)
            )));
        };
        let mut vus = [
            vu(
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_RKT,
                rd::rd_kafka_vu_s__bindgen_ty_1 {
                    rkt: self.rkts[rec.topic],
                },
            ),
            vu(
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_PARTITION,
                rd::rd_kafka_vu_s__bindgen_ty_1 { i32_: m.partition },
            ),
            vu(
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_MSGFLAGS,
                rd::rd_kafka_vu_s__bindgen_ty_1 {
                    i: rd::RD_KAFKA_MSG_F_COPY,
                },
            ),
            vu(
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE,
                rd::rd_kafka_vu_s__bindgen_ty_1 {
                    mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                        ptr: m.payload,
                        size: m.len,
                    },
                },
            ),
            vu(
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_KEY,
                rd::rd_kafka_vu_s__bindgen_ty_1 {
                    mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                        ptr: m.key,
                        size: m.key_len,
                    },
                },
            ),
            vu(
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_OPAQUE,
                rd::rd_kafka_vu_s__bindgen_ty_1 {
                    ptr: slot as *mut c_void,
                },
            ),
            vu(
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TIMESTAMP,
                rd::rd_kafka_vu_s__bindgen_ty_1 { i64_: ts.max(0) },
            ),
            vu(
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADERS,
                rd::rd_kafka_vu_s__bindgen_ty_1 { headers },
            ),
        ];
        // Without headers the HEADERS entry is left out: a NULL headers list is not allowed.
        let count = if headers.is_null() {
            vus.len() - 1
        } else {
            vus.len()
        };
        // SAFETY: vus holds `count` initialised entries; payload and key are copied
        // (F_COPY) before produceva returns; headers pass to librdkafka on success.
        let error = unsafe {
            rd::rd_kafka_produceva(self.producer.client().native_ptr(), vus.as_mut_ptr(), count)
        };
        if error.is_null() {
            return Ok(());
        }
        // SAFETY: non-null error object returned to us.
        let code = unsafe { raw::error_code(error) };
        let text = take_error(error).unwrap_or_default();
        if !headers.is_null() {
            // SAFETY: produceva failed, so the copy is still ours.
            unsafe { rd::rd_kafka_headers_destroy(headers) };
        }
        if code == ERR_QUEUE_FULL {
            Err(SendError::QueueFull)
        } else {
            Err(SendError::Fatal(format!(
                "producing offset {} of {}/{} to the {}: {text}",
                rec.offset(),
                self.topic_name(rec.topic),
                m.partition,
                self.cluster.describe()
            )))
        }
    }

    fn topic_name(&self, topic: usize) -> String {
        self.rkts
            .get(topic)
            // SAFETY: handles live until drop.
            .map(|rkt| unsafe { cstr_to_string(rd::rd_kafka_topic_name(*rkt)) })
            .unwrap_or_default()
    }

    /// Serves delivery reports (counted per slot) for up to `timeout`.
    pub fn poll(&self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    pub fn acks(&self, slot: usize) -> Acks {
        let s = &self.producer.context().slots[slot];
        Acks {
            count: s.count.load(Ordering::Relaxed),
            last_offset: s.last_offset.load(Ordering::Relaxed),
        }
    }

    /// Failed deliveries since the last call, in the order they were reported (per slot,
    /// the order the records were sent in).
    pub fn take_failures(&self) -> Vec<Failure> {
        self.producer
            .context()
            .failures
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }

    /// The producer's fatal error, if it has one (after which nothing more is written).
    pub fn fatal_error(&self) -> Option<String> {
        let mut buf = [0 as std::ffi::c_char; 512];
        // SAFETY: valid handle; buf is writable for its length.
        let code = unsafe {
            rd::rd_kafka_fatal_error(
                self.producer.client().native_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        } as c_int;
        if code == 0 {
            return None;
        }
        // SAFETY: librdkafka NUL-terminates within the buffer.
        let text = unsafe { cstr_to_string(buf.as_ptr()) };
        Some(format!("{} {text}", describe_err(code)))
    }

    /// Records queued or in flight.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits up to `timeout` for every queued record to be acknowledged.
    pub fn flush(&self, timeout: Duration) -> anyhow::Result<()> {
        self.producer.flush(timeout).with_context(|| {
            format!(
                "waiting for the {} to acknowledge the last records",
                self.cluster.describe()
            )
        })
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

impl Drop for TargetWriter {
    fn drop(&mut self) {
        for rkt in self.rkts.drain(..) {
            // SAFETY: handles created in new, released once.
            unsafe { rd::rd_kafka_topic_destroy(rkt) };
        }
    }
}

/// How many records a client may queue for `bytes` of queue: every record counts as at
/// least 512 bytes, since librdkafka's per-record bookkeeping dwarfs small records.
fn max_records(bytes: usize) -> String {
    (bytes / 512).max(1000).to_string()
}

fn vu(vtype: rd::rd_kafka_vtype_t, u: rd::rd_kafka_vu_s__bindgen_ty_1) -> rd::rd_kafka_vu_t {
    rd::rd_kafka_vu_t { vtype, u }
}
