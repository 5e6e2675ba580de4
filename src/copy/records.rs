//! The records inside a v2 batch, for the batches the batch path re-encodes: decoded into
//! their bytes as the producer wrote them ([`decode`]) and written into a new batch
//! ([`Builder`]). A record's key, value and headers are carried as one slice, never parsed
//! into names and values on the way: duplicate header names, header names that are not
//! UTF-8 and empty versus null keys all come out as they went in. Only the offset and the
//! timestamp are read and written again. Pure: bytes in, bytes out.
//!
//! A v2 record (Kafka's `DefaultRecord`), varints zigzag-encoded:
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint, key | valueLength varint, value | headers count varint,
//!   (nameLength varint, name, valueLength varint, value)*
//! ```

use std::fmt;
use std::ops::Range;

use bytes::{Buf as _, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use super::batch::{Codec, HEADER_LEN, Header, i32_at, i64_at, varint as varlong};
use crate::digest::{HeaderFn, RecordView};

const FIRST_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;

/// Why a batch's records could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordsError {
    /// Not a whole v2 batch.
    NotABatch(String),
    /// The codec bits name no codec Kafka has.
    UnknownCodec(u16),
    /// The records section does not decompress.
    Decompress(Codec, String),
    /// A record runs past the section's end or holds an impossible length.
    Malformed { record: usize, why: &'static str },
    /// Compressing a new batch failed.
    Compress(Codec, String),
}

impl fmt::Display for RecordsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordsError::NotABatch(why) => write!(f, "not a whole v2 record batch: {why}"),
            RecordsError::UnknownCodec(bits) => {
                write!(
                    f,
                    "the batch names compression codec {bits}, which Kafka does not have"
                )
            }
            RecordsError::Decompress(c, why) => write!(f, "decompressing {c:?} records: {why}"),
            RecordsError::Malformed { record, why } => {
                write!(f, "record {record} of the batch is malformed: {why}")
            }
            RecordsError::Compress(c, why) => write!(f, "compressing records with {c:?}: {why}"),
        }
    }
}

impl std::error::Error for RecordsError {}

/// One record of a decoded batch: its source offset, the timestamp a consumer of the source
/// sees, and its key, value and headers as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a> {
    pub offset: i64,
    pub timestamp: i64,
    /// From the key's length to the end of the headers.
    pub body: &'a [u8],
}

/// A batch's records, decompressed.
#[derive(Debug, Clone)]
pub struct Decoded {
    bytes: Bytes,
    records: Vec<(i64, i64, Range<usize>)>,
}

impl Decoded {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Raw<'_>> {
        self.records.iter().map(|(offset, timestamp, body)| Raw {
            offset: *offset,
            timestamp: *timestamp,
            body: &self.bytes[body.clone()],
        })
    }
}

/// The records of the whole v2 batch at the start of `batch`. A LogAppendTime batch's
/// records all carry the batch's max timestamp: the time the broker appended them, which is
/// what a consumer of the source sees.
pub fn decode(batch: &[u8]) -> Result<Decoded, RecordsError> {
    let h = Header::parse(batch).map_err(|e| RecordsError::NotABatch(e.to_string()))?;
    if h.magic != 2 || h.len > batch.len() {
        return Err(RecordsError::NotABatch(format!(
            "magic {}, {} of {} bytes",
            h.magic,
            batch.len(),
            h.len
        )));
    }
    let codec = h
        .codec()
        .ok_or(RecordsError::UnknownCodec(h.attributes & 0b111))?;
    let bytes = inflate(codec, &batch[HEADER_LEN..h.len])?;
    let first_ts = i64_at(batch, FIRST_TIMESTAMP);
    let max_ts = i64_at(batch, MAX_TIMESTAMP);
    let count = usize::try_from(h.records).unwrap_or(0);
    let mut records = Vec::with_capacity(count.min(bytes.len()));
    let mut at = 0;
    for record in 0..count {
        let bad = |why| RecordsError::Malformed { record, why };
        let len = varint(&bytes, &mut at).ok_or(bad("its length"))?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|n| at.checked_add(n))
            .filter(|e| *e <= bytes.len())
            .ok_or(bad("its length runs past the batch"))?;
        let rec = &bytes[..end];
        at += 1; // attributes: unused in v2
        let ts_delta = varlong(rec, &mut at).ok_or(bad("its timestamp"))?;
        let offset_delta = varint(rec, &mut at).ok_or(bad("its offset"))?;
        check_body(&rec[at.min(end)..]).ok_or(bad("its key, value or headers"))?;
        let timestamp = if h.log_append_time() {
            max_ts
        } else {
            first_ts.wrapping_add(ts_delta)
        };
        let offset = h.base_offset.saturating_add(offset_delta);
        records.push((offset, timestamp, at.min(end)..end));
        at = end;
    }
    Ok(Decoded { bytes, records })
}

/// The records of the whole message at the start of `message`, in message format v0 or v1
/// (Kafka before 0.11, or a topic kept at `message.format.version` below 0.11), as v2 bodies
/// ready for a [`Builder`]: no headers, the key and value as written. A compressed message
/// (a wrapper) holds a message set of its own, whose offsets are absolute in v0 and
/// relative to the wrapper's (the offset of its last message) in v1. A v1 timestamp is the
/// message's own, or for a LogAppendTime wrapper the wrapper's (the time the broker
/// appended it, what a consumer sees); v0 has none (-1, "no timestamp").
pub fn decode_legacy(message: &[u8]) -> Result<Decoded, RecordsError> {
    let mut bytes = Vec::new();
    let mut records = Vec::new();
    legacy(message, None, &mut bytes, &mut records)?;
    Ok(Decoded {
        bytes: Bytes::from(bytes),
        records,
    })
}

/// Offset(8) size(4) crc(4) magic(1) attributes(1), then v1's timestamp(8).
const LEGACY_ATTRIBUTES: usize = 17;
const LEGACY_TIMESTAMP: usize = 18;

/// The wrapper a message sits in: its offset, what its inner offsets add up to, and its
/// timestamp when it overrides theirs (LogAppendTime).
#[derive(Clone, Copy)]
struct Wrapper {
    base: i64,
    timestamp: Option<i64>,
}

fn legacy(
    set: &[u8],
    wrapper: Option<Wrapper>,
    bytes: &mut Vec<u8>,
    records: &mut Vec<(i64, i64, Range<usize>)>,
) -> Result<(), RecordsError> {
    let mut at = 0;
    while at < set.len() {
        let record = records.len();
        let bad = |why| RecordsError::Malformed { record, why };
        let rest = &set[at..];
        let size = (rest.len() >= 12)
            .then(|| i32_at(rest, 8))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| 12 + n <= rest.len())
            .ok_or(bad("its size runs past the message set"))?;
        let message = &rest[..12 + size];
        at += 12 + size;
        if message.len() <= LEGACY_ATTRIBUTES {
            return Err(bad("shorter than a message's header"));
        }
        let magic = message[16];
        let attributes = message[LEGACY_ATTRIBUTES];
        let mut field = match magic {
            0 => LEGACY_ATTRIBUTES + 1,
            1 => LEGACY_TIMESTAMP + 8,
            _ => return Err(bad("a message set mixing formats")),
        };
        let own_ts = if magic == 1 && message.len() >= field {
            i64_at(message, LEGACY_TIMESTAMP)
        } else {
            -1
        };
        let key = legacy_bytes(message, &mut field).ok_or(bad("its key"))?;
        let value = legacy_bytes(message, &mut field).ok_or(bad("its value"))?;
        let offset = i64_at(message, 0);
        let codec = attributes & 0b111;
        if codec == 0 {
            let offset = wrapper.map_or(offset, |w| w.base.saturating_add(offset));
            let timestamp = wrapper.and_then(|w| w.timestamp).unwrap_or(own_ts);
            let start = bytes.len();
            for part in [key, value] {
                match part {
                    Some(b) => {
                        put_varlong(bytes, b.len() as i64);
                        bytes.extend_from_slice(b);
                    }
                    None => put_varlong(bytes, -1),
                }
            }
            put_varlong(bytes, 0); // no headers
            records.push((offset, timestamp, start..bytes.len()));
            continue;
        }
        if wrapper.is_some() {
            return Err(bad("a compressed message inside a compressed message"));
        }
        let codec = match codec {
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            other => return Err(RecordsError::UnknownCodec(u16::from(other))),
        };
        let inner = inflate(codec, value.unwrap_or_default())?;
        let base = if magic == 1 {
            // v1 inner offsets count from 0; the wrapper carries the last one's absolute.
            let last = last_inner_offset(&inner).ok_or(bad("its inner messages"))?;
            offset.saturating_sub(last)
        } else {
            0
        };
        let log_append_time = magic == 1 && attributes & 0b1000 != 0;
        let inner_wrapper = Wrapper {
            base,
            timestamp: log_append_time.then_some(own_ts),
        };
        legacy(&inner, Some(inner_wrapper), bytes, records)?;
    }
    Ok(())
}

/// A v0/v1 key or value: an i32 length (-1 for null) and the bytes.
fn legacy_bytes<'a>(message: &'a [u8], at: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = i32_at(message.get(*at..*at + 4)?, 0);
    *at += 4;
    if len < 0 {
        return Some(None);
    }
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let b = message.get(*at..end)?;
    *at = end;
    Some(Some(b))
}

/// The offset field of the last message of an uncompressed message set.
fn last_inner_offset(set: &[u8]) -> Option<i64> {
    let mut at = 0;
    let mut last = None;
    while at + 12 <= set.len() {
        last = Some(i64_at(set, at));
        let size = i32_at(set, at + 8);
        at += 12 + usize::try_from(size).ok()?;
    }
    last
}

/// A new batch being filled with records (as a producer would write them: offset deltas
/// from 0, timestamps as deltas from the first record's, CreateTime).
#[derive(Debug, Default)]
pub struct Builder {
    body: Vec<u8>,
    count: i32,
    first_ts: Option<i64>,
    max_ts: i64,
    /// Source offsets of the first and last record in it.
    pub first: i64,
    pub last: i64,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    pub fn count(&self) -> i32 {
        self.count
    }

    /// Bytes of its records, uncompressed.
    pub fn size(&self) -> usize {
        self.body.len()
    }

    pub fn push(&mut self, r: &Raw<'_>) {
        let first_ts = *self.first_ts.get_or_insert(r.timestamp);
        if self.count == 0 {
            self.first = r.offset;
            self.max_ts = r.timestamp;
        }
        self.max_ts = self.max_ts.max(r.timestamp);
        self.last = r.offset;
        let ts_delta = r.timestamp.wrapping_sub(first_ts);
        let offset_delta = i64::from(self.count);
        let len = 1 + varlong_len(ts_delta) + varlong_len(offset_delta) + r.body.len();
        put_varlong(&mut self.body, len as i64);
        self.body.push(0);
        put_varlong(&mut self.body, ts_delta);
        put_varlong(&mut self.body, offset_delta);
        self.body.extend_from_slice(r.body);
        self.count += 1;
    }

    /// The batch, its records compressed with `codec`: base offset 0, no producer yet and
    /// its CRC computed (`super::batch::rewritten_header` makes it the copy's, deriving the
    /// new CRC from this one).
    pub fn finish(self, codec: Codec) -> Result<Vec<u8>, RecordsError> {
        let records = deflate(codec, &self.body)?;
        let mut out = Vec::with_capacity(HEADER_LEN + records.len());
        let batch_length = (HEADER_LEN - 12 + records.len()) as i32;
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
        out.extend_from_slice(&codec_bits(codec).to_be_bytes());
        out.extend_from_slice(&(self.count - 1).to_be_bytes());
        out.extend_from_slice(&self.first_ts.unwrap_or(-1).to_be_bytes());
        out.extend_from_slice(&self.max_ts.to_be_bytes());
        out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&records);
        super::batch::seal(&mut out);
        Ok(out)
    }
}

fn codec_bits(codec: Codec) -> u16 {
    match codec {
        Codec::None => 0,
        Codec::Gzip => 1,
        Codec::Snappy => 2,
        Codec::Lz4 => 3,
        Codec::Zstd => 4,
    }
}

fn inflate(codec: Codec, section: &[u8]) -> Result<Bytes, RecordsError> {
    fn with<D: Decompressor<Bytes, Buf = Bytes>>(section: &[u8]) -> anyhow::Result<Bytes> {
        D::decompress(&mut Bytes::copy_from_slice(section), |b| {
            Ok(b.copy_to_bytes(b.remaining()))
        })
    }
    let out = match codec {
        Codec::None => return Ok(Bytes::copy_from_slice(section)),
        Codec::Gzip => with::<Gzip>(section),
        Codec::Snappy => with::<Snappy>(section),
        Codec::Lz4 => with::<Lz4>(section),
        Codec::Zstd => with::<Zstd>(section),
    };
    out.map_err(|e| RecordsError::Decompress(codec, format!("{e:#}")))
}

/// LZ4 frames at LZ4's fast level, as librdkafka (the record engine) writes them by
/// default: `kafka-protocol`'s own compressor uses level 4, LZ4 HC, whose setup alone
/// (a 256 KiB state zeroed per batch) took a tenth of the batch engine's CPU on 100-byte
/// records, all of it for the few small batches it re-encodes. Independent blocks without
/// checksums, as librdkafka writes them.
fn lz4_fast(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = lz4::EncoderBuilder::new()
        .block_mode(lz4::BlockMode::Independent)
        .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
        .checksum(lz4::ContentChecksum::NoChecksum)
        .build(Vec::with_capacity(body.len() / 2 + 64))?;
    encoder.write_all(body)?;
    let (out, done) = encoder.finish();
    done?;
    Ok(out)
}

fn deflate(codec: Codec, body: &[u8]) -> Result<Vec<u8>, RecordsError> {
    fn with<C: Compressor<BytesMut, BufMut = BytesMut>>(body: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut out = BytesMut::new();
        C::compress(&mut out, |tmp| {
            tmp.extend_from_slice(body);
            Ok(())
        })?;
        Ok(out.to_vec())
    }
    let out = match codec {
        Codec::None => return Ok(body.to_vec()),
        Codec::Gzip => with::<Gzip>(body),
        Codec::Snappy => with::<Snappy>(body),
        Codec::Lz4 => lz4_fast(body),
        Codec::Zstd => with::<Zstd>(body),
    };
    out.map_err(|e| RecordsError::Compress(codec, format!("{e:#}")))
}

/// Whether `body` is a key, a value and headers, ending exactly at its end.
fn check_body(body: &[u8]) -> Option<()> {
    let mut at = 0;
    bytes_field(body, &mut at)?;
    bytes_field(body, &mut at)?;
    let headers = varint(body, &mut at)?;
    for _ in 0..headers.max(0) {
        bytes_field(body, &mut at)?.ok_or(()).ok()?;
        bytes_field(body, &mut at)?;
    }
    (at == body.len()).then_some(())
}

/// A length-prefixed field (`-1`: null).
fn bytes_field<'a>(b: &'a [u8], at: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = varint(b, at)?;
    if len < 0 {
        return (len == -1).then_some(None);
    }
    let end = at.checked_add(len as usize).filter(|e| *e <= b.len())?;
    let field = &b[*at..end];
    *at = end;
    Some(Some(field))
}

fn varint(b: &[u8], at: &mut usize) -> Option<i64> {
    varlong(b, at).filter(|v| i32::try_from(*v).is_ok())
}

fn varlong_len(v: i64) -> usize {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while raw >= 0x80 {
        raw >>= 7;
        n += 1;
    }
    n
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

impl RecordView for Raw<'_> {
    fn key(&self) -> Option<&[u8]> {
        bytes_field(self.body, &mut 0).flatten()
    }

    fn value(&self) -> Option<&[u8]> {
        let mut at = 0;
        bytes_field(self.body, &mut at);
        bytes_field(self.body, &mut at).flatten()
    }

    fn for_each_header(&self, f: &mut HeaderFn<'_>) {
        let mut at = 0;
        bytes_field(self.body, &mut at);
        bytes_field(self.body, &mut at);
        let n = varint(self.body, &mut at).unwrap_or(0);
        for _ in 0..n.max(0) {
            let name = bytes_field(self.body, &mut at)
                .flatten()
                .unwrap_or_default();
            let value = bytes_field(self.body, &mut at).flatten();
            f(name, value);
        }
    }

    fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::batch::rewrite;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn record(i: i64) -> Record {
        let mut headers = IndexMap::new();
        headers.insert(
            StrBytes::from_string(format!("h{i}")),
            Some(Bytes::from("v")),
        );
        headers.insert(StrBytes::from_static_str("null"), None);
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 100 + i,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + 7 * i - (i % 3) * 11,
            key: (i % 4 != 0).then(|| Bytes::from(format!("key-{i}"))),
            value: (i % 5 != 0).then(|| Bytes::from(vec![i as u8; (i * 37 % 300) as usize])),
            headers,
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    const CODECS: [(Compression, Codec); 5] = [
        (Compression::None, Codec::None),
        (Compression::Gzip, Codec::Gzip),
        (Compression::Snappy, Codec::Snappy),
        (Compression::Lz4, Codec::Lz4),
        (Compression::Zstd, Codec::Zstd),
    ];

    #[test]
    fn every_codec_decodes_to_the_records_written() {
        let records: Vec<Record> = (0..50).map(record).collect();
        for (compression, _) in CODECS {
            let batch = encode(&records, compression);
            let decoded = decode(&batch).unwrap();
            assert_eq!(decoded.len(), 50, "{compression:?}");
            for (raw, r) in decoded.iter().zip(&records) {
                assert_eq!(raw.offset, r.offset);
                assert_eq!(raw.timestamp, r.timestamp);
                assert_eq!(raw.key(), r.key.as_deref());
                assert_eq!(raw.value(), r.value.as_deref());
                let mut headers = Vec::new();
                raw.for_each_header(&mut |n, v| headers.push((n.to_vec(), v.map(<[u8]>::to_vec))));
                let want: Vec<_> = r
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_ref().map(|v| v.to_vec())))
                    .collect();
                assert_eq!(headers, want);
            }
        }
    }

    #[test]
    fn a_built_batch_holds_exactly_the_records_pushed_and_a_broker_would_read_it() {
        let records: Vec<Record> = (0..30).map(record).collect();
        let source = encode(&records, Compression::Lz4);
        let decoded = decode(&source).unwrap();
        for (_, codec) in CODECS {
            let mut b = Builder::new();
            // A range starting mid-batch: records 7.. only.
            for raw in decoded.iter().skip(7) {
                b.push(&raw);
            }
            assert_eq!((b.first, b.last, b.count()), (107, 129, 23));
            let mut out = b.finish(codec).unwrap();
            assert!(crate::copy::batch::crc_ok(&out), "{codec:?}");
            let head = crate::copy::batch::rewritten_header(&out, (42, 3), 1000).unwrap();
            rewrite(&mut out, (42, 3), 1000).unwrap();
            assert!(crate::copy::batch::crc_ok(&out), "{codec:?}");
            assert_eq!(&out[..HEADER_LEN], &head[..], "{codec:?}");
            let h = Header::parse(&out).unwrap();
            assert_eq!((h.base_offset, h.records, h.last_offset_delta), (0, 23, 22));
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, 1000)
            );
            assert_eq!(h.codec(), Some(codec));
            // Kafka's own codec (the crate's) reads the same records back.
            let set = RecordBatchDecoder::decode(&mut Bytes::from(out.clone())).unwrap();
            assert_eq!(set.records.len(), 23);
            for (i, r) in set.records.iter().enumerate() {
                let want = &records[7 + i];
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.timestamp, want.timestamp);
                assert_eq!(
                    (&r.key, &r.value, &r.headers),
                    (&want.key, &want.value, &want.headers)
                );
            }
            // And ours: the same bytes of every record.
            let again = decode(&out).unwrap();
            let bodies: Vec<_> = again
                .iter()
                .map(|r| (r.timestamp, r.body.to_vec()))
                .collect();
            let want: Vec<_> = decoded
                .iter()
                .skip(7)
                .map(|r| (r.timestamp, r.body.to_vec()))
                .collect();
            assert_eq!(bodies, want);
        }
    }

    #[test]
    fn log_append_time_records_carry_the_batchs_time() {
        let records: Vec<Record> = (0..3).map(record).collect();
        let mut batch = encode(&records, Compression::None);
        batch[21 + 1] |= 1 << 3; // the LogAppendTime bit (low byte of attributes)
        batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&99i64.to_be_bytes());
        let ts: Vec<i64> = decode(&batch)
            .unwrap()
            .iter()
            .map(|r| r.timestamp)
            .collect();
        assert_eq!(ts, vec![99, 99, 99]);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let records: Vec<Record> = (0..5).map(record).collect();
        let batch = encode(&records, Compression::None);
        for cut in 0..batch.len() {
            let _ = decode(&batch[..cut]);
        }
        for at in HEADER_LEN..batch.len() {
            for v in [0u8, 0x7f, 0x80, 0xff] {
                let mut b = batch.clone();
                b[at] = v;
                if let Ok(d) = decode(&b) {
                    for r in d.iter() {
                        let _ = (r.key(), r.value());
                        r.for_each_header(&mut |_, _| {});
                    }
                }
            }
        }
        let mut b = batch.clone();
        b[22] |= 0b111;
        assert_eq!(decode(&b).unwrap_err(), RecordsError::UnknownCodec(7));
    }

    #[test]
    fn varlongs_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_len(v));
            assert_eq!(varlong(&out, &mut 0), Some(v));
        }
    }

    /// A v0/v1 message as Kafka wrote them (CRC left 0: the decoder does not read it).
    fn legacy_message(
        offset: i64,
        magic: u8,
        attributes: u8,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0, magic, attributes];
        if magic == 1 {
            body.extend_from_slice(&timestamp.to_be_bytes());
        }
        for part in [key, value] {
            match part {
                Some(b) => {
                    body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    body.extend_from_slice(b);
                }
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        let mut out = offset.to_be_bytes().to_vec();
        out.extend_from_slice(&(body.len() as i32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Offset, timestamp, key, value and number of headers of a record.
    type Seen = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, usize);

    fn seen(d: &Decoded) -> Vec<Seen> {
        d.iter()
            .map(|r| {
                let mut headers = 0;
                r.for_each_header(&mut |_, _| headers += 1);
                (
                    r.offset,
                    r.timestamp,
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                    headers,
                )
            })
            .collect()
    }

    #[test]
    fn plain_v1_and_v0_messages_decode_with_their_offsets_and_times() {
        let mut set = legacy_message(5, 1, 0, 100, None, Some(b"a"));
        set.extend(legacy_message(6, 1, 0, 200, Some(b"k"), Some(b"")));
        let d = decode_legacy(&set[..]).unwrap();
        assert_eq!(
            seen(&d),
            vec![
                (5, 100, None, Some(b"a".to_vec()), 0),
                (6, 200, Some(b"k".to_vec()), Some(vec![]), 0),
            ]
        );
        let v0 = legacy_message(9, 0, 0, 0, Some(b"k"), None);
        assert_eq!(
            seen(&decode_legacy(&v0).unwrap()),
            vec![(9, -1, Some(b"k".to_vec()), None, 0)]
        );
    }

    #[test]
    fn compressed_wrappers_give_absolute_offsets_and_the_times_consumers_saw() {
        // v1: inner offsets 0..2 relative to the wrapper, whose offset is the last's.
        let mut inner = Vec::new();
        for i in 0..3 {
            inner.extend(legacy_message(i, 1, 0, 1000 + i, None, Some(&[i as u8; 3])));
        }
        for (codec, bits) in [(Codec::Gzip, 1), (Codec::Snappy, 2), (Codec::Lz4, 3)] {
            let packed = deflate(codec, &inner).unwrap();
            let create = legacy_message(12, 1, bits, 1002, None, Some(&packed));
            let want: Vec<_> = (0..3)
                .map(|i| (10 + i, 1000 + i, None, Some(vec![i as u8; 3]), 0))
                .collect();
            assert_eq!(seen(&decode_legacy(&create).unwrap()), want, "{codec:?}");
            // LogAppendTime: every message carries the wrapper's time.
            let appended = legacy_message(12, 1, bits | 0b1000, 5555, None, Some(&packed));
            let times: Vec<i64> = decode_legacy(&appended)
                .unwrap()
                .iter()
                .map(|r| r.timestamp)
                .collect();
            assert_eq!(times, vec![5555; 3], "{codec:?}");
        }
        // v0: inner offsets are absolute.
        let mut inner = legacy_message(7, 0, 0, 0, None, Some(b"x"));
        inner.extend(legacy_message(8, 0, 0, 0, None, Some(b"y")));
        let wrapper = legacy_message(
            8,
            0,
            1,
            0,
            None,
            Some(&deflate(Codec::Gzip, &inner).unwrap()),
        );
        let offsets: Vec<i64> = decode_legacy(&wrapper)
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, vec![7, 8]);
    }

    #[test]
    fn legacy_records_go_into_a_v2_batch_unchanged() {
        let mut set = legacy_message(40, 1, 0, 77, Some(b"key"), Some(b"value"));
        set.extend(legacy_message(41, 1, 0, 78, None, None));
        let d = decode_legacy(&set).unwrap();
        let mut b = Builder::new();
        for r in d.iter() {
            b.push(&r);
        }
        let out = b.finish(Codec::Zstd).unwrap();
        assert!(crate::copy::batch::crc_ok(&out));
        let back = decode(&out).unwrap();
        let bodies: Vec<_> = seen(&back)
            .into_iter()
            .map(|(_, t, k, v, h)| (t, k, v, h))
            .collect();
        assert_eq!(
            bodies,
            vec![
                (77, Some(b"key".to_vec()), Some(b"value".to_vec()), 0),
                (78, None, None, 0)
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn damaged_legacy_messages_are_errors_not_panics(
            cut in 0usize..60,
            flip in 0usize..60,
            bits in proptest::prelude::any::<u8>(),
        ) {
            let mut m = legacy_message(3, 1, 0, 9, Some(b"key"), Some(b"a value here"));
            if flip < m.len() {
                m[flip] ^= bits;
            }
            m.truncate(cut.max(1));
            let _ = decode_legacy(&m);
        }
    }
}
