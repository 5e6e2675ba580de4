//! Writing to the target: a [`TargetWriter`] produces records to the same partitions, with
//! their key, value, headers and timestamp.
//!
//! It goes one level below rdkafka's safe API for speed: rdkafka's `send` allocates the topic
//! name and looks the topic up for every record; the writer creates one topic handle per
//! topic and passes key, value, headers and timestamp straight from the consumed message
//! (librdkafka copies them once). Delivery reports still flow through rdkafka's
//! [`ProducerContext`]: per partition slot they only bump two counters (no lock, no
//! allocation); the copy reconciles them.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientContext;
use rdkafka::bindings as rd;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};

use super::context::Ctx;
use super::endpoint::Endpoint;
use super::error::{self, Code};
use super::ffi::{cstr_to_string, describe_err, raw, take_error, to_cstring};
use super::reader::{DEFAULT_BATCH_BYTES, SourceRecord, Tuning, max_records};

const ERR_QUEUE_FULL: c_int = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL as c_int;
const ERR_NOENT: c_int = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__NOENT as c_int;

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
    /// librdkafka's code for the failure (a timeout while a broker is away heals; a
    /// refusal does not), if it gave one.
    pub code: Option<Code>,
    pub reason: String,
}

/// Delivery reports land here, from `TargetWriter::poll` on the copy thread.
pub struct WriterCtx {
    base: Ctx,
    /// Replaced when the writer is given other partitions (nothing in flight then); read
    /// by the delivery reports, on the thread that polls, so never contended.
    slots: RwLock<Vec<SlotAcks>>,
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
                let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
                if let Some(s) = slots.get(slot) {
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
                        code: error::code_of(e),
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

/// How long a produced record may wait for its acknowledgement: four times the cluster's
/// `timeout_secs`, at least two minutes.
fn delivery_timeout(timeout: std::time::Duration) -> std::time::Duration {
    (timeout * 4).max(std::time::Duration::from_secs(120))
}

/// Produces records to the target: idempotent, acks=all, gapless (a failed record stops
/// the producer rather than leaving a hole that later records would hide).
pub struct TargetWriter {
    producer: BaseProducer<WriterCtx>,
    /// The topic handle of each topic index of the copy.
    rkts: Vec<*mut rd::rd_kafka_topic_t>,
    /// Every topic handle created, by topic: kept until the writer is dropped, so that
    /// giving the writer other topics never destroys a partition's producer state (the
    /// idempotent producer's sequence numbers).
    handles: HashMap<String, *mut rd::rd_kafka_topic_t>,
    cluster: Endpoint,
}

// SAFETY: the raw pointers are librdkafka topic handles of this writer's producer, which may
// be used from any thread; the writer is used by one thread at a time (a copy session hands
// it from one copy's pipeline to the next).
unsafe impl Send for TargetWriter {}

impl TargetWriter {
    /// `slots` is the number of partitions the copy writes; deliveries are counted per slot.
    pub fn new(
        cluster: &Endpoint,
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
            // How long a record may wait for its acknowledgement (librdkafka's default is
            // 5 minutes). A producer that a broker restart left waiting then fails, which
            // stops the copy with its progress saved (exit 3, `kmigrate run` resumes
            // exactly) instead of hanging; a shorter outage is ridden out.
            .set(
                "message.timeout.ms",
                delivery_timeout(cluster.timeout).as_millis().to_string(),
            )
            .set("compression.type", tuning.compression.as_str())
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
            slots: RwLock::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
        };
        let producer: BaseProducer<WriterCtx> =
            cluster.create_with(&config, ctx, "target writer")?;
        let mut writer = TargetWriter {
            producer,
            rkts: Vec::new(),
            handles: HashMap::new(),
            cluster: cluster.clone(),
        };
        writer.retarget(topics, slots)?;
        Ok(writer)
    }

    /// Whether the writer can serve another copy: nothing queued, in flight or waiting to
    /// be reported, no record failed and the producer did not fail. A producer whose
    /// delivery failed is never given another copy.
    pub fn reusable(&self) -> bool {
        let failed = self
            .producer
            .context()
            .failures
            .lock()
            .map_or(true, |f| !f.is_empty());
        self.in_flight() == 0 && !failed && self.fatal_error().is_none()
    }

    /// Gives the writer the topics and the number of partition slots of a copy: topic index
    /// `i` is written to `topics[i]`, and acknowledgements are counted from zero per slot.
    /// Only for a writer with nothing in flight (see [`TargetWriter::reusable`]): the
    /// producer keeps its idempotent producer id and each partition's sequence numbers.
    pub fn retarget(&mut self, topics: &[String], slots: usize) -> anyhow::Result<()> {
        // What the client reported since (a broker closing an idle connection) waits in the
        // same count as records in flight: served first.
        self.poll(Duration::ZERO);
        anyhow::ensure!(
            self.reusable(),
            "the writer to the {} has records in flight or failed",
            self.cluster.describe()
        );
        let mut rkts = Vec::with_capacity(topics.len());
        for t in topics {
            rkts.push(self.handle(t)?);
        }
        self.rkts = rkts;
        let mut acks = self
            .producer
            .context()
            .slots
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *acks = (0..slots).map(|_| SlotAcks::default()).collect();
        Ok(())
    }

    /// The producer's handle for topic `t`, created on first use.
    fn handle(&mut self, t: &str) -> anyhow::Result<*mut rd::rd_kafka_topic_t> {
        if let Some(rkt) = self.handles.get(t) {
            return Ok(*rkt);
        }
        let name = to_cstring(t, "topic")?;
        // SAFETY: valid client handle and NUL-terminated name; the handle is released in
        // drop.
        let rkt = unsafe {
            rd::rd_kafka_topic_new(
                self.producer.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        if rkt.is_null() {
            anyhow::bail!(
                "creating a producer handle for topic {t} on the {}",
                self.cluster.describe()
            );
        }
        self.handles.insert(t.to_string(), rkt);
        Ok(rkt)
    }

    /// Queues `rec` for the same partition of the same topic on the target, with its key,
    /// value, headers and timestamp. Its delivery is counted for `slot`.
    pub fn send(&self, slot: usize, rec: &SourceRecord<'_>) -> Result<(), SendError> {
        let headers = copy_headers(rec)?;
        let mut vus = self.fields(slot, rec, headers);
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
            return Err(SendError::QueueFull);
        }
        Err(SendError::Fatal(format!(
            "producing offset {} of {}/{} to the {}: {text}",
            rec.offset(),
            self.topic_name(rec.topic),
            rec.partition(),
            self.cluster.describe()
        )))
    }

    /// The produce call's fields for `rec`: topic, partition, key, value, the slot as the
    /// delivery opaque, the source timestamp and (last) the headers.
    fn fields(
        &self,
        slot: usize,
        rec: &SourceRecord<'_>,
        headers: *mut rd::rd_kafka_headers_t,
    ) -> [rd::rd_kafka_vu_t; 8] {
        use rd::rd_kafka_vtype_t as T;
        use rd::rd_kafka_vu_s__bindgen_ty_1 as U;
        use rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 as Mem;
        let m = rec.raw();
        // The timestamp is passed explicitly: librdkafka reads 0 (and "none") as "now".
        let ts = crate::digest::RecordView::timestamp(rec).max(0);
        [
            vu(
                T::RD_KAFKA_VTYPE_RKT,
                U {
                    rkt: self.rkts[rec.topic],
                },
            ),
            vu(T::RD_KAFKA_VTYPE_PARTITION, U { i32_: m.partition }),
            vu(
                T::RD_KAFKA_VTYPE_MSGFLAGS,
                U {
                    i: rd::RD_KAFKA_MSG_F_COPY,
                },
            ),
            vu(
                T::RD_KAFKA_VTYPE_VALUE,
                U {
                    mem: Mem {
                        ptr: m.payload,
                        size: m.len,
                    },
                },
            ),
            vu(
                T::RD_KAFKA_VTYPE_KEY,
                U {
                    mem: Mem {
                        ptr: m.key,
                        size: m.key_len,
                    },
                },
            ),
            vu(
                T::RD_KAFKA_VTYPE_OPAQUE,
                U {
                    ptr: slot as *mut c_void,
                },
            ),
            vu(T::RD_KAFKA_VTYPE_TIMESTAMP, U { i64_: ts }),
            vu(T::RD_KAFKA_VTYPE_HEADERS, U { headers }),
        ]
    }

    fn topic_name(&self, topic: usize) -> String {
        self.rkts
            .get(topic)
            // SAFETY: handles live until drop.
            .map(|rkt| unsafe { cstr_to_string(rd::rd_kafka_topic_name(*rkt)) })
            .unwrap_or_default()
    }

    /// Serves delivery reports (counted per slot) for up to `timeout`, then every report
    /// already waiting. One poll serves one event, the reports of one produce request (one
    /// partition): with many partitions, a single poll per call lets the acknowledgements
    /// trail the copy by a call per partition (a 1,000-partition tail took 11 s instead of
    /// 1.4 s). Stops once a poll serves nothing (the messages in flight stop going down),
    /// or after a bound, so that the reader is not starved.
    pub fn poll(&self, timeout: Duration) {
        const MORE: usize = 10_000;
        self.producer.poll(timeout);
        let mut before = self.producer.in_flight_count();
        for _ in 0..MORE {
            if before <= 0 {
                break;
            }
            self.producer.poll(Duration::ZERO);
            let after = self.producer.in_flight_count();
            if after >= before {
                break;
            }
            before = after;
        }
    }

    pub fn acks(&self, slot: usize) -> Acks {
        let slots = self
            .producer
            .context()
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner());
        slots.get(slot).map_or(
            Acks {
                count: 0,
                last_offset: -1,
            },
            |s| Acks {
                count: s.count.load(Ordering::Relaxed),
                last_offset: s.last_offset.load(Ordering::Relaxed),
            },
        )
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

    pub fn cluster(&self) -> &Endpoint {
        &self.cluster
    }
}

impl Drop for TargetWriter {
    fn drop(&mut self) {
        self.rkts.clear();
        for (_, rkt) in self.handles.drain() {
            // SAFETY: handles created in new, released once.
            unsafe { rd::rd_kafka_topic_destroy(rkt) };
        }
    }
}

fn vu(vtype: rd::rd_kafka_vtype_t, u: rd::rd_kafka_vu_s__bindgen_ty_1) -> rd::rd_kafka_vu_t {
    rd::rd_kafka_vu_t { vtype, u }
}

/// A copy of the record's headers for the producer (which takes ownership on success), or
/// NULL when it has none.
fn copy_headers(rec: &SourceRecord<'_>) -> Result<*mut rd::rd_kafka_headers_t, SendError> {
    let mut hdrs: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: valid message; on success hdrs points at headers owned by the message.
    let herr = unsafe { rd::rd_kafka_message_headers(rec.msg.cast(), &mut hdrs) } as c_int;
    if herr == 0 && !hdrs.is_null() {
        // SAFETY: copy of borrowed headers; ownership passes to librdkafka on success.
        return Ok(unsafe { rd::rd_kafka_headers_copy(hdrs) });
    }
    if herr == 0 || herr == ERR_NOENT {
        return Ok(std::ptr::null_mut());
    }
    Err(SendError::Fatal(format!(
        "reading the headers of {}: {}",
        rec.offset(),
        describe_err(herr)
    )))
}
