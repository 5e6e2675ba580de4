//! The batch path's own connection to a broker: Kafka's protocol spoken directly (the
//! `kafka-protocol` crate encodes and decodes the messages), so that record batches go from
//! a Fetch response to a Produce request as bytes, never decoded into records. One blocking
//! connection, requests pipelined, answers read in order; PLAINTEXT, TLS (`secure`) and
//! SASL PLAIN or SCRAM (`scram`) with re-authentication when the broker asks (KIP-368).
//! Admin work stays on librdkafka.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IoSlice, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, FetchRequest, InitProducerIdRequest, MetadataRequest,
    ProduceRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use openssl::ssl::{HandshakeError, SslStream};

use super::scram::{self, Scram};
use super::secure::{Mechanism, Sasl, WireSecurity};
use crate::kafka::error::{Code, KafkaError};

/// The versions kmigrate speaks of each API: from the oldest broker it supports (1.1.1)
/// to the last version that names topics (later ones address them by topic id).
fn ours(key: ApiKey) -> (i16, i16) {
    match key {
        ApiKey::ApiVersions => (0, 0),
        ApiKey::Metadata => (1, 12),
        ApiKey::Fetch => (4, 12),
        // v3 to v8 share one request layout, which [`Conn::send_batches`] writes itself.
        ApiKey::Produce => (3, 8),
        ApiKey::InitProducerId => (0, 4),
        ApiKey::SaslHandshake => (1, 1),
        // v1 (Kafka 2.2) tells the session's lifetime; 1.1.1 speaks v0.
        ApiKey::SaslAuthenticate => (0, 2),
        _ => (0, -1),
    }
}

/// The largest response read: above every Fetch's `max_bytes` kmigrate asks for. A larger
/// size is not a Kafka answer (a TLS listener's bytes read as a size, say), and is not
/// allocated.
const MAX_RESPONSE: usize = 256 << 20;

/// Re-authentication starts once this share of the session the broker granted has passed
/// (the Java client picks 85 to 95 %): the rest covers the answers still to be read first.
const REAUTH_AT: f64 = 0.85;

/// The bytes to and from a broker: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Stream {
    /// Reads up to `size` bytes into `body`'s spare capacity. On TCP the standard library
    /// fills it without zeroing it first (`TcpStream` reads into uninitialised memory):
    /// through this enum's own `Read` every response would be `memset` first, 14 % of the
    /// batch engine's CPU at 1 KiB records. TLS decrypts into it either way.
    fn read_body(&mut self, size: usize, body: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.take(size as u64).read_to_end(body),
            Stream::Tls(s) => s.take(size as u64).read_to_end(body),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    /// TCP writes every slice in one call; TLS encrypts them one by one.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write_vectored(bufs),
            Stream::Tls(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connection to one broker.
pub struct Conn {
    stream: Stream,
    address: String,
    correlation: i32,
    /// The broker's (min, max) version of each API it named.
    versions: BTreeMap<i16, (i16, i16)>,
    /// Requests sent whose answers are not read yet.
    outstanding: usize,
    /// Answers read ahead of their caller (to re-authenticate between requests), in order.
    early: VecDeque<Bytes>,
    /// The credentials, kept for re-authentication, and when it is due.
    sasl: Option<Sasl>,
    reauth_at: Option<Instant>,
    /// How long a request may take, and a retried one in all.
    timeout: Duration,
}

impl Conn {
    /// Connects to `address` (host:port) over TLS and SASL as `security` says, and asks
    /// which API versions the broker speaks.
    pub fn connect(
        address: &str,
        timeout: Duration,
        security: &WireSecurity,
    ) -> anyhow::Result<Conn> {
        let addr = address
            .to_socket_addrs()
            .map_err(|e| {
                let what = format!("resolving broker address {address}");
                anyhow::Error::new(KafkaError::new(Code::RESOLVE, what, &e.to_string()))
            })?
            .next()
            .ok_or_else(|| anyhow!("broker address {address} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| transport(&e, &format!("connecting to broker {address}")))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let stream = match &security.tls {
            None => Stream::Plain(stream),
            Some(tls) => {
                let connector = tls
                    .connector()
                    .with_context(|| format!("setting up TLS for broker {address}"))?;
                let mut config = connector.configure()?;
                config.set_verify_hostname(tls.verify_host());
                let tls = config
                    .connect(host_of(address), stream)
                    .map_err(|e| handshake(e, address))?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut conn = Conn {
            stream,
            address: address.to_string(),
            correlation: 0,
            versions: BTreeMap::new(),
            outstanding: 0,
            early: VecDeque::new(),
            sasl: security.sasl.clone(),
            reauth_at: None,
            timeout,
        };
        let answer = conn.call(&ApiVersionsRequest::default(), 0)?;
        if answer.error_code != 0 {
            bail!(
                "broker {address} refused ApiVersions (error code {})",
                answer.error_code
            );
        }
        conn.versions = answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some(sasl) = security.sasl.clone() {
            conn.authenticate(&sasl)?;
        }
        Ok(conn)
    }

    /// SaslHandshake and SaslAuthenticate with `sasl`'s mechanism; notes when the broker
    /// wants the next authentication.
    fn authenticate(&mut self, sasl: &Sasl) -> anyhow::Result<()> {
        let started = Instant::now();
        let what = format!(
            "authenticating as {} with {} to broker {}",
            sasl.username,
            sasl.mechanism.name(),
            self.address
        );
        let v = self.version(ApiKey::SaslHandshake)?;
        let req = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name()));
        let answer = self.call(&req, v)?;
        if answer.error_code != 0 {
            let enabled: Vec<String> = answer.mechanisms.iter().map(|m| m.to_string()).collect();
            let code = Code(i32::from(answer.error_code));
            let why = format!("the broker enables {}", enabled.join(", "));
            return Err(anyhow::Error::new(KafkaError::new(code, what, &why)));
        }
        let lifetime_ms = match sasl.mechanism {
            Mechanism::Plain => {
                let token = format!("\0{}\0{}", sasl.username, sasl.password);
                self.sasl_step(token.into_bytes(), &what)?.1
            }
            Mechanism::Scram(hash) => {
                let mut s = Scram::new(hash, &sasl.username, &sasl.password, &scram::nonce()?);
                let (first, _) = self.sasl_step(s.client_first(), &what)?;
                let proof = s.client_final(&first).with_context(|| what.clone())?;
                let (last, lifetime) = self.sasl_step(proof, &what)?;
                s.check_server_final(&last).with_context(|| what.clone())?;
                lifetime
            }
        };
        self.reauth_at = u64::try_from(lifetime_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| started + Duration::from_millis(ms).mul_f64(REAUTH_AT));
        Ok(())
    }

    /// One SaslAuthenticate round: the broker's bytes and the session's lifetime (ms, 0:
    /// none), or the broker's refusal typed with its code.
    fn sasl_step(&mut self, token: Vec<u8>, what: &str) -> anyhow::Result<(Bytes, i64)> {
        let v = self.version(ApiKey::SaslAuthenticate)?;
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let answer = self.call(&req, v)?;
        if answer.error_code != 0 {
            let code = Code(i32::from(answer.error_code));
            let why = answer
                .error_message
                .map(|m| m.to_string())
                .unwrap_or_default();
            return Err(anyhow::Error::new(KafkaError::new(code, what, &why)));
        }
        Ok((answer.auth_bytes, answer.session_lifetime_ms))
    }

    /// Before a request: re-authenticates when the session the broker granted is close to
    /// its end (KIP-368), after reading ahead the answers still due on this connection (no
    /// request may be in flight while the broker authenticates again).
    fn reauthenticate_if_due(&mut self) -> anyhow::Result<()> {
        let due = self.reauth_at.is_some_and(|at| Instant::now() >= at);
        let Some(sasl) = self.sasl.clone().filter(|_| due) else {
            return Ok(());
        };
        self.reauth_at = None;
        while self.outstanding > 0 {
            let what = format!(
                "reading answers before re-authenticating to broker {}",
                self.address
            );
            let frame = self.read_frame(&what)?;
            self.early.push_back(frame);
        }
        self.authenticate(&sasl)?;
        tracing::debug!(broker = %self.address, "re-authenticated ({})", sasl.mechanism.name());
        Ok(())
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the broker takes zstd batches: Produce v7 and later (Kafka 2.1).
    pub fn speaks_zstd(&self) -> bool {
        self.versions
            .get(&(ApiKey::Produce as i16))
            .is_some_and(|(_, max)| *max >= 7)
    }

    /// The version of `key` to speak with this broker: the highest both know.
    fn version(&self, key: ApiKey) -> anyhow::Result<i16> {
        let (lo, hi) = ours(key);
        let (b_lo, b_hi) = self
            .versions
            .get(&(key as i16))
            .copied()
            .ok_or_else(|| anyhow!("broker {} does not offer {key:?}", self.address))?;
        let v = hi.min(b_hi);
        if v < lo.max(b_lo) {
            bail!(
                "broker {} speaks {key:?} versions {b_lo}..={b_hi}, kmigrate {lo}..={hi}",
                self.address
            );
        }
        Ok(v)
    }

    /// Sends `req` at `version` and reads its answer.
    fn call<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<R::Response> {
        let id = self.send(req, version)?;
        self.receive::<R>(id, version)
    }

    /// Sends `req` at `version` without waiting for its answer: its correlation id. The
    /// broker answers a connection's requests in the order it received them.
    fn send<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<i32> {
        self.reauthenticate_if_due()?;
        self.correlation = self.correlation.wrapping_add(1);
        let id = self.correlation;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("kmigrate")));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        header.encode(&mut buf, R::header_version(version))?;
        req.encode(&mut buf, version)?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).map_err(|e| {
            transport(
                &e,
                &format!("API {} v{version} to broker {}", R::KEY, self.address),
            )
        })?;
        self.outstanding += 1;
        Ok(id)
    }

    /// Reads the answer to request `id` (the next one the broker sends).
    fn receive<R: Request>(&mut self, id: i32, version: i16) -> anyhow::Result<R::Response> {
        let what = format!("API {} v{version} to broker {}", R::KEY, self.address);
        let mut body = match self.early.pop_front() {
            Some(frame) => frame,
            None => self.read_frame(&what)?,
        };
        let answer = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        if answer.correlation_id != id {
            bail!(
                "broker {} answered request {} to request {id}",
                self.address,
                answer.correlation_id
            );
        }
        R::Response::decode(&mut body, version).context(what)
    }

    /// Reads the next answer on the connection, whole: its header and body.
    fn read_frame(&mut self, what: &str) -> anyhow::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| transport(&e, what))?;
        let size = usize::try_from(i32::from_be_bytes(size))
            .ok()
            .filter(|n| *n <= MAX_RESPONSE)
            .ok_or_else(|| {
                anyhow!(
                    "broker {} announced a response of {} bytes (at most {MAX_RESPONSE} \
                     expected): not a Kafka broker speaking this security.protocol on \
                     this address?",
                    self.address,
                    i32::from_be_bytes(size)
                )
            })?;
        let mut body = Vec::with_capacity(size);
        self.stream
            .read_body(size, &mut body)
            .map_err(|e| transport(&e, what))?;
        if body.len() != size {
            let closed = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
            return Err(transport(
                &closed,
                &format!(
                    "broker {} closed the connection {} bytes into a response of {size}",
                    self.address,
                    body.len()
                ),
            ));
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        Ok(Bytes::from(body))
    }

    /// The leader of every partition of `topics`, as (broker id, host:port); a partition
    /// without a leader right now is left out.
    pub fn leaders_of(
        &mut self,
        topics: &[String],
    ) -> anyhow::Result<BTreeMap<(String, i32), (i32, String)>> {
        let v = self.version(ApiKey::Metadata)?;
        // Never create a topic by asking for it (brokers do with auto.create.topics.enable,
        // Kafka's default): a topic deleted on either side stays deleted.
        let req = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                    .collect(),
            ));
        let answer = self.call(&req, v)?;
        let brokers: BTreeMap<i32, String> = answer
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        let mut out = BTreeMap::new();
        for t in &answer.topics {
            let Some(topic) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0 {
                let code = Code(i32::from(t.error_code));
                let what = format!("reading the metadata of topic {topic}");
                return Err(anyhow::Error::new(KafkaError::new(code, what, "")));
            }
            for p in &t.partitions {
                if let Some(address) = brokers.get(&p.leader_id.0) {
                    out.insert(
                        (topic.clone(), p.partition_index),
                        (p.leader_id.0, address.clone()),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Reads the record batches of several partitions of this broker, each from its offset
    /// (`(topic, partition, offset)`), at most `partition_max` bytes each and `max_bytes` in
    /// all (the first batch of a partition comes whole whatever its size), committed
    /// records only, with the transactions aborted among them. Waits up to `wait` for
    /// records when there are none.
    pub fn fetch_many(
        &mut self,
        wants: &[(&str, i32, i64)],
        partition_max: i32,
        max_bytes: i32,
        wait: Duration,
    ) -> anyhow::Result<Vec<(String, i32, Fetched)>> {
        let v = self.version(ApiKey::Fetch)?;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (topic, partition, offset) in wants {
            let p = FetchPartition::default()
                .with_partition(*partition)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(partition_max);
            match topics.last_mut() {
                Some(t) if t.topic.0.as_str() == *topic => t.partitions.push(p),
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic(name(topic))
                        .with_partitions(vec![p]),
                ),
            }
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(i32::try_from(wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(1)
            .with_session_epoch(-1)
            .with_topics(topics);
        let answer = self.call(&req, v)?;
        if answer.error_code != 0 {
            let code = Code(i32::from(answer.error_code));
            let what = format!("fetching from broker {}", self.address);
            return Err(anyhow::Error::new(KafkaError::new(code, what, "")));
        }
        Ok(answer
            .responses
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| {
                    let fetched = Fetched {
                        error_code: p.error_code,
                        high_watermark: p.high_watermark,
                        last_stable_offset: p.last_stable_offset,
                        aborted: p
                            .aborted_transactions
                            .iter()
                            .flatten()
                            .map(|a| (a.producer_id.0, a.first_offset))
                            .collect(),
                        records: p.records.unwrap_or_default(),
                    };
                    (topic.clone(), p.partition_index, fetched)
                })
            })
            .collect())
    }

    /// Sends one record batch per partition, acks from every in-sync replica, without
    /// waiting (read the answer with [`Conn::produced`]). Each batch goes out as its new
    /// header followed by its records as the source's log held them: the request is written
    /// from those slices (`writev`), never copied into one buffer.
    pub fn send_batches(
        &mut self,
        batches: &[Outgoing<'_>],
        timeout: Duration,
    ) -> anyhow::Result<i32> {
        let v = self.version(ApiKey::Produce)?;
        self.reauthenticate_if_due()?;
        self.correlation = self.correlation.wrapping_add(1);
        let id = self.correlation;
        let mut by_topic: BTreeMap<&str, Vec<&Outgoing<'_>>> = BTreeMap::new();
        for b in batches {
            by_topic.entry(b.topic).or_default().push(b);
        }
        // Everything but the records, with where each batch's records go.
        let mut meta: Vec<u8> = Vec::with_capacity(64 + batches.len() * 80);
        meta.extend_from_slice(&[0; 4]); // size, below
        meta.extend_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
        meta.extend_from_slice(&v.to_be_bytes());
        meta.extend_from_slice(&id.to_be_bytes());
        put_str(&mut meta, "kmigrate");
        meta.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
        meta.extend_from_slice(&(-1i16).to_be_bytes()); // acks: all in-sync replicas
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        meta.extend_from_slice(&ms.to_be_bytes());
        meta.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
        let mut cuts: Vec<(usize, &[u8])> = Vec::with_capacity(batches.len());
        for (topic, parts) in &by_topic {
            put_str(&mut meta, topic);
            meta.extend_from_slice(&(parts.len() as i32).to_be_bytes());
            for b in parts {
                meta.extend_from_slice(&b.partition.to_be_bytes());
                let len = i32::try_from(b.head.len() + b.rest.len())
                    .map_err(|_| anyhow!("a batch of {} bytes", b.rest.len()))?;
                meta.extend_from_slice(&len.to_be_bytes());
                meta.extend_from_slice(b.head);
                cuts.push((meta.len(), b.rest));
            }
        }
        let total = meta.len() - 4 + cuts.iter().map(|(_, r)| r.len()).sum::<usize>();
        let total = i32::try_from(total).map_err(|_| anyhow!("a request of {total} bytes"))?;
        meta[..4].copy_from_slice(&total.to_be_bytes());
        let mut slices = Vec::with_capacity(cuts.len() * 2 + 1);
        let mut from = 0;
        for (at, rest) in &cuts {
            slices.push(IoSlice::new(&meta[from..*at]));
            slices.push(IoSlice::new(rest));
            from = *at;
        }
        slices.push(IoSlice::new(&meta[from..]));
        let mut bufs = &mut slices[..];
        while !bufs.is_empty() {
            let n = self.stream.write_vectored(bufs).map_err(|e| {
                transport(&e, &format!("API Produce v{v} to broker {}", self.address))
            })?;
            if n == 0 {
                let closed = std::io::Error::from(std::io::ErrorKind::WriteZero);
                return Err(transport(
                    &closed,
                    &format!("writing to broker {}", self.address),
                ));
            }
            IoSlice::advance_slices(&mut bufs, n);
        }
        self.outstanding += 1;
        Ok(id)
    }

    /// The answer to the produce request `id`: per partition, its error code and the
    /// offset its batch got.
    pub fn produced(&mut self, id: i32) -> anyhow::Result<Vec<(String, i32, Produced)>> {
        let v = self.version(ApiKey::Produce)?;
        let answer = self.receive::<ProduceRequest>(id, v)?;
        Ok(answer
            .responses
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partition_responses.into_iter().map(move |p| {
                    let produced = Produced {
                        error_code: p.error_code,
                        base_offset: p.base_offset,
                        message: p.error_message.as_ref().map(|m| m.to_string()),
                    };
                    (topic.clone(), p.index, produced)
                })
            })
            .collect())
    }

    /// The leader of each partition of `topic`, as (broker id, host:port).
    pub fn leaders(&mut self, topic: &str) -> anyhow::Result<BTreeMap<i32, (i32, String)>> {
        let all = self.leaders_of(&[topic.to_string()])?;
        Ok(all
            .into_iter()
            .map(|((_, p), leader)| (p, leader))
            .collect())
    }

    /// Reads the record batches of `topic`/`partition` from `offset` (at most `max_bytes`,
    /// what a transaction aborted named, committed records only).
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
    ) -> anyhow::Result<Fetched> {
        let wait = Duration::from_millis(500);
        let answers = self.fetch_many(&[(topic, partition, offset)], max_bytes, max_bytes, wait)?;
        answers
            .into_iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, f)| f)
            .ok_or_else(|| anyhow!("the fetch of {topic}/{partition} answered nothing for it"))
    }

    /// A producer id and epoch of the copy's own (idempotent, not transactional).
    pub fn init_producer_id(&mut self) -> anyhow::Result<(i64, i16)> {
        let v = self.version(ApiKey::InitProducerId)?;
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        // A broker that is loading its producer-id state or has just lost the controller
        // answers so for a few seconds: asked again every half second within the
        // connection's timeout, as librdkafka's producer would.
        let until = Instant::now() + self.timeout;
        loop {
            let answer = self.call(&req, v)?;
            let code = Code(i32::from(answer.error_code));
            if answer.error_code == 0 {
                return Ok((answer.producer_id.0, answer.producer_epoch));
            }
            let passing = [
                Code::COORDINATOR_LOAD_IN_PROGRESS,
                Code::COORDINATOR_NOT_AVAILABLE,
                Code::NOT_COORDINATOR,
            ];
            if !passing.contains(&code) || Instant::now() >= until {
                let what = format!("asking broker {} for a producer id", self.address);
                return Err(anyhow::Error::new(KafkaError::new(code, what, "")));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Writes one record batch to `topic`/`partition` (acks from every in-sync replica):
    /// the partition's error code and, when 0, the offset of the batch's first record.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> anyhow::Result<Produced> {
        let one = Outgoing {
            topic,
            partition,
            head: &[],
            rest: &batch,
        };
        let id = self.send_batches(&[one], timeout)?;
        self.produced(id)?
            .into_iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, a)| a)
            .ok_or_else(|| anyhow!("the produce to {topic}/{partition} answered nothing for it"))
    }
}

/// What a Fetch answered for one partition.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// (producer id, first offset) of each aborted transaction in the records.
    pub aborted: Vec<(i64, i64)>,
    /// The record batches as the log holds them (the last one may be cut off).
    pub records: Bytes,
}

/// One partition's batch for [`Conn::send_batches`]: its new header and the records after
/// the source's header.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub head: &'a [u8],
    pub rest: &'a [u8],
}

/// A failure of the connection itself (refused, reset, timed out): typed as the transport
/// failure it is, which a `sync` waits out like any broker outage.
fn transport(e: &std::io::Error, what: &str) -> anyhow::Error {
    anyhow::Error::new(KafkaError::new(Code::TRANSPORT, what, &e.to_string()))
}

/// A TLS handshake that failed: a connection that broke is a transport failure (a sync
/// waits it out); a refused certificate or protocol is a TLS error that names why.
fn handshake(e: HandshakeError<TcpStream>, address: &str) -> anyhow::Error {
    let what = format!("TLS handshake with broker {address}");
    match e {
        HandshakeError::Failure(mid) => {
            let verify = mid.ssl().verify_result();
            let err = mid.into_error();
            if let Some(io) = err.io_error() {
                return transport(io, &what);
            }
            let why = if verify.as_raw() == 0 {
                err.to_string()
            } else {
                format!("{err}; certificate verification: {}", verify.error_string())
            };
            anyhow::Error::new(KafkaError::new(Code::SSL, what, &why))
        }
        HandshakeError::SetupFailure(stack) => {
            anyhow::Error::new(KafkaError::new(Code::SSL, what, &stack.to_string()))
        }
        HandshakeError::WouldBlock(_) => {
            let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
            transport(&timed_out, &what)
        }
    }
}

/// The host of `host:port` (brackets of an IPv6 address removed): the name a broker's
/// certificate is checked against.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A string as Kafka's non-flexible versions write it: i16 length, bytes.
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// What a Produce answered for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    pub error_code: i16,
    pub base_offset: i64,
    /// The broker's words on an error (Produce v8 and later).
    pub message: Option<String>,
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}
