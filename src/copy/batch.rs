//! Record batches as the source's log holds them (message format v2), and the rules of the
//! batch path: which batch is passed to the target as it is (only its header rewritten),
//! which must be re-encoded, which is dropped, and how a passed batch's header is made the
//! copy's own. Pure: bytes in, bytes and decisions out.
//!
//! The v2 batch header, big-endian (Kafka's `DefaultRecordBatch`):
//!
//! ```text
//!  0 baseOffset i64        21 attributes i16         51 producerEpoch i16
//!  8 batchLength i32       23 lastOffsetDelta i32    53 baseSequence i32
//! 12 partitionLeaderEpoch  27 baseTimestamp i64      57 recordsCount i32
//! 16 magic i8              35 maxTimestamp i64       61 records ...
//! 17 crc u32 (CRC-32C of attributes .. end)          43 producerId i64
//! ```
//!
//! `batchLength` counts the bytes after its own field: a batch is `12 + batchLength` bytes.
//! The CRC leaves out baseOffset, batchLength, partitionLeaderEpoch and magic, so the broker
//! may renumber and re-epoch a batch without touching it (and a client sends base offset 0);
//! a change to the producer id, its epoch, the base sequence or the attributes needs the CRC
//! computed again, and the broker checks it.

use std::fmt;

/// Bytes of a v2 batch header; its records follow.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s count starts (baseOffset and batchLength itself).
const LOG_OVERHEAD: usize = 12;

const BATCH_LENGTH: usize = 8;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

/// Attribute bits (`DefaultRecordBatch`): the codec in bits 0..2, then one flag a bit.
const CODEC_MASK: u16 = 0b111;
const LOG_APPEND_TIME: u16 = 1 << 3;
const TRANSACTIONAL: u16 = 1 << 4;
const CONTROL: u16 = 1 << 5;
/// Bits a passed batch may carry: the codec, the timestamp type and the transactional flag
/// (cleared on the way). Anything else (the delete horizon of KIP-534, bits a later Kafka
/// adds) means the batch is re-encoded rather than passed on with a meaning kmigrate does
/// not know.
const KNOWN: u16 = CODEC_MASK | LOG_APPEND_TIME | TRANSACTIONAL | CONTROL;

/// A batch's compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn of(attributes: u16) -> Option<Codec> {
        match attributes & CODEC_MASK {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// Why bytes are not a v2 batch kmigrate can route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a header, or than the header's length says: the rest of a batch
    /// the fetch cut off (fetched again from its base offset).
    Partial { have: usize, need: usize },
    /// A length that cannot be a batch's.
    BadLength(i32),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Partial { have, need } => {
                write!(f, "a partial record batch: {have} of {need} bytes")
            }
            BatchError::BadLength(n) => write!(f, "a record batch of length {n}"),
        }
    }
}

/// A batch header's fields, as read (format v2; `magic` tells the format of older ones,
/// whose other fields mean nothing here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub base_offset: i64,
    /// Bytes of the whole batch, header included.
    pub len: usize,
    pub magic: i8,
    pub crc: u32,
    pub attributes: u16,
    pub last_offset_delta: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: i32,
}

impl Header {
    /// Reads the header of the batch at the start of `bytes` (which may hold more batches).
    pub fn parse(bytes: &[u8]) -> Result<Header, BatchError> {
        let partial = |need| BatchError::Partial {
            have: bytes.len(),
            need,
        };
        if bytes.len() < MAGIC + 1 {
            return Err(partial(HEADER_LEN));
        }
        let batch_length = i32_at(bytes, BATCH_LENGTH);
        let len = usize::try_from(batch_length)
            .ok()
            .map(|n| n + LOG_OVERHEAD)
            .filter(|n| *n > MAGIC)
            .ok_or(BatchError::BadLength(batch_length))?;
        let magic = bytes[MAGIC] as i8;
        if magic == 2 && len < HEADER_LEN {
            return Err(BatchError::BadLength(batch_length));
        }
        if magic == 2 && bytes.len() < HEADER_LEN {
            return Err(partial(len));
        }
        let header = Header {
            base_offset: i64_at(bytes, 0),
            len,
            magic,
            crc: 0,
            attributes: 0,
            last_offset_delta: 0,
            producer_id: 0,
            producer_epoch: 0,
            base_sequence: 0,
            records: 0,
        };
        if magic != 2 {
            return Ok(header);
        }
        Ok(Header {
            crc: u32_at(bytes, CRC),
            attributes: u16_at(bytes, ATTRIBUTES),
            last_offset_delta: i32_at(bytes, LAST_OFFSET_DELTA),
            producer_id: i64_at(bytes, PRODUCER_ID),
            producer_epoch: i16_at(bytes, PRODUCER_EPOCH),
            base_sequence: i32_at(bytes, BASE_SEQUENCE),
            records: i32_at(bytes, RECORDS_COUNT),
            ..header
        })
    }

    /// The offset of the batch's last record (as first written: compaction keeps it).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// No record was removed since the producer wrote it (the log cleaner keeps a
    /// compacted batch's offset span with fewer records, which a broker refuses from a
    /// client).
    pub fn dense(&self) -> bool {
        i64::from(self.last_offset_delta) == i64::from(self.records) - 1
    }

    pub fn codec(&self) -> Option<Codec> {
        Codec::of(self.attributes)
    }

    pub fn control(&self) -> bool {
        self.attributes & CONTROL != 0
    }

    pub fn transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL != 0
    }

    pub fn log_append_time(&self) -> bool {
        self.attributes & LOG_APPEND_TIME != 0
    }
}

/// The complete batches at the start of `bytes` (a Fetch response's records for one
/// partition), and how many bytes they take: a trailing partial batch (the broker cuts a
/// response at its size limit) is left out, to be fetched again from its base offset.
pub fn complete(bytes: &[u8]) -> Result<(Vec<Header>, usize), BatchError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = match Header::parse(&bytes[at..]) {
            Ok(h) if at + h.len <= bytes.len() => h,
            Ok(_) | Err(BatchError::Partial { .. }) => break,
            Err(e) => return Err(e),
        };
        at += h.len;
        out.push(h);
    }
    Ok((out, at))
}

/// The transactions a Fetch response says were aborted in the records it returned, followed
/// batch by batch as Kafka's consumer does under read_committed: a producer's transaction
/// is aborted from its first offset until that producer's ABORT marker, and its batches in
/// between are dropped.
#[derive(Debug, Clone, Default)]
pub struct Aborts {
    /// (first offset, producer id) not reached yet, in offset order.
    pending: std::collections::VecDeque<(i64, i64)>,
    /// Producers whose transaction is aborted and not ended yet.
    ongoing: std::collections::BTreeSet<i64>,
}

/// The control record type of a transaction's ABORT marker.
const ABORT_MARKER: i16 = 0;

impl Aborts {
    /// From the Fetch response's aborted transactions: (producer id, first offset).
    pub fn new(aborted: &[(i64, i64)]) -> Aborts {
        let mut pending: Vec<(i64, i64)> = aborted.iter().map(|(p, f)| (*f, *p)).collect();
        pending.sort_unstable();
        Aborts {
            pending: pending.into(),
            ongoing: Default::default(),
        }
    }

    /// Whether batch `h` (whose bytes start `batch`) holds records of an aborted
    /// transaction; batches must be given in offset order.
    pub fn aborted(&mut self, h: &Header, batch: &[u8]) -> bool {
        if h.producer_id < 0 {
            return false;
        }
        while let Some(&(first, pid)) = self.pending.front() {
            if first > h.last_offset() {
                break;
            }
            self.ongoing.insert(pid);
            self.pending.pop_front();
        }
        if h.control() {
            if control_type(batch) == Some(ABORT_MARKER) {
                self.ongoing.remove(&h.producer_id);
            }
            return false;
        }
        h.transactional() && self.ongoing.contains(&h.producer_id)
    }
}

/// The type of the control record that starts a control batch's records (its key: version
/// i16, type i16); `None` when the bytes do not hold one. Control batches are never
/// compressed.
fn control_type(batch: &[u8]) -> Option<i16> {
    let mut at = HEADER_LEN;
    let _length = varint(batch, &mut at)?;
    at += 1; // attributes
    let _timestamp_delta = varint(batch, &mut at)?;
    let _offset_delta = varint(batch, &mut at)?;
    let key_len = usize::try_from(varint(batch, &mut at)?).ok()?;
    let key = batch.get(at..at.checked_add(key_len)?)?;
    (key.len() >= 4).then(|| i16::from_be_bytes([key[2], key[3]]))
}

/// A zigzag varint or varlong (Kafka's record fields, `ByteUtils.readVarlong`) at `*at`,
/// moving past it.
pub(super) fn varint(b: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// What the target takes, as far as batches go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The target topic's `max.message.bytes`: the largest batch it accepts.
    pub max_batch_bytes: usize,
    /// Whether the target's brokers take zstd batches (2.1 and later).
    pub zstd: bool,
    /// Batches smaller than this are re-encoded together with their neighbours rather
    /// than sent one request each (a producer with linger 0 writes one-record batches).
    pub min_pass_bytes: usize,
}

/// Why a batch is not passed on as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reencode {
    /// Its first records are below the range's start.
    StraddlesStart,
    /// Its last records are at or past the range's end.
    StraddlesEnd,
    /// Compacted: fewer records than its offset span.
    Compacted,
    /// LogAppendTime: a client may not send that type, and the records must keep the time
    /// a consumer saw on the source.
    LogAppendTime,
    /// Attribute bits kmigrate does not pass on.
    UnknownAttributes,
    /// A codec the target's brokers do not take.
    Codec,
    /// Larger than the target topic accepts: split.
    TooLarge,
    /// Small: coalesced with its neighbours.
    Small,
}

/// Why a batch is left out: none of its records is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A transaction marker: the target's own markers are not the source's.
    Control,
    /// Records of an aborted transaction (told by the Fetch response).
    Aborted,
    /// No record left (the cleaner kept an empty batch).
    Empty,
    /// Entirely below the range's start or at or past its end.
    OutsideRange,
}

/// What the batch path does with one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Passed on as it is, its header made the copy's ([`rewrite`]).
    Pass,
    /// Decoded and written again (with the records the range holds).
    Reencode(Reencode),
    Drop(Dropped),
    /// Message format v0/v1 (magic `.0`): no batch header to pass on; its records are
    /// decoded ([`super::records::decode_legacy`]) and written in a v2 batch.
    Legacy(i8),
}

/// The route of batch `h` of a partition copied over `[start, end)`; `aborted`: the Fetch
/// response's aborted-transactions list covers it. The first rule that applies decides:
/// what is dropped, then the old formats, then each reason to re-encode, in the order of
/// [`Reencode`].
pub fn route(h: &Header, (start, end): (i64, i64), aborted: bool, target: &Target) -> Route {
    if h.magic != 2 {
        return Route::Legacy(h.magic);
    }
    let drop = if h.control() {
        Some(Dropped::Control)
    } else if aborted {
        Some(Dropped::Aborted)
    } else if h.records <= 0 {
        Some(Dropped::Empty)
    } else if h.last_offset() < start || h.base_offset >= end {
        Some(Dropped::OutsideRange)
    } else {
        None
    };
    if let Some(d) = drop {
        return Route::Drop(d);
    }
    let codec_taken = match h.codec() {
        Some(Codec::Zstd) => target.zstd,
        Some(_) => true,
        None => false,
    };
    let reason = [
        (h.base_offset < start, Reencode::StraddlesStart),
        (h.last_offset() >= end, Reencode::StraddlesEnd),
        (!h.dense(), Reencode::Compacted),
        (h.log_append_time(), Reencode::LogAppendTime),
        (h.attributes & !KNOWN != 0, Reencode::UnknownAttributes),
        (!codec_taken, Reencode::Codec),
        (h.len > target.max_batch_bytes, Reencode::TooLarge),
        (h.len < target.min_pass_bytes, Reencode::Small),
    ]
    .into_iter()
    .find_map(|(applies, why)| applies.then_some(why));
    reason.map_or(Route::Pass, Route::Reencode)
}

/// Makes the batch at the start of `batch` the copy's own: its producer id and epoch and
/// base sequence, the transactional flag cleared (the copy writes what was committed, as an
/// idempotent producer), and the CRC computed again; its base offset 0, as a client sends
/// it (the broker assigns offsets, and Kafka 4 refuses a client's batch with any other:
/// "The baseOffset of the record batch in the append ... should be 0"; the base offset is
/// outside the CRC). The records, compressed as the producer wrote them, are not touched:
/// their offsets are deltas from the base.
pub fn rewrite(
    batch: &mut [u8],
    producer: (i64, i16),
    base_sequence: i32,
) -> Result<(), BatchError> {
    let h = Header::parse(batch)?;
    if h.magic != 2 || h.len > batch.len() {
        return Err(BatchError::Partial {
            have: batch.len(),
            need: h.len.max(HEADER_LEN),
        });
    }
    let batch = &mut batch[..h.len];
    batch[..8].copy_from_slice(&0i64.to_be_bytes());
    let attributes = u16_at(batch, ATTRIBUTES) & !TRANSACTIONAL;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&producer.0.to_be_bytes());
    batch[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&producer.1.to_be_bytes());
    batch[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// [`rewrite`] without touching `batch`: the rewritten header (the first [`HEADER_LEN`]
/// bytes), its CRC computed over the new header's fields and the records as they are, so
/// that the batch goes out as this header followed by `batch[HEADER_LEN..]`, never copied.
pub fn rewritten_header(
    batch: &[u8],
    producer: (i64, i16),
    base_sequence: i32,
) -> Result<[u8; HEADER_LEN], BatchError> {
    let h = Header::parse(batch)?;
    if h.magic != 2 || h.len > batch.len() {
        return Err(BatchError::Partial {
            have: batch.len(),
            need: h.len.max(HEADER_LEN),
        });
    }
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&batch[..HEADER_LEN]);
    head[..8].copy_from_slice(&0i64.to_be_bytes());
    let attributes = u16_at(&head, ATTRIBUTES) & !TRANSACTIONAL;
    head[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    head[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&producer.0.to_be_bytes());
    head[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&producer.1.to_be_bytes());
    head[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc_with_new_head(
        h.crc,
        &batch[ATTRIBUTES..HEADER_LEN],
        &head[ATTRIBUTES..],
        h.len - HEADER_LEN,
    );
    head[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(head)
}

/// The CRC-32C of a message whose first bytes `old` became `new` (as long) and whose
/// `rest` bytes after them did not change, from the old message's CRC alone: CRC is linear,
/// so the change is the CRC of `old` XOR `new` carried through `rest` zero bytes, found in
/// about 30 steps instead of a pass over the records (a tenth of the batch engine's CPU).
///
/// The source's CRC is taken as it is, never recomputed: a batch damaged since its producer
/// wrote it gets a CRC that still does not match, and the target broker refuses it
/// (CORRUPT_MESSAGE) instead of accepting damaged records under a fresh CRC.
fn crc_with_new_head(crc: u32, old: &[u8], new: &[u8], rest: usize) -> u32 {
    let change = crc32c::crc32c(old) ^ crc32c::crc32c(new);
    crc ^ multiply(zeros_operator(rest), change)
}

/// CRC-32C's polynomial, bits reversed (as the register holds it).
const POLY: u32 = 0x82F6_3B78;

/// a·b modulo the polynomial, both in the register's reversed bit order (zlib's `multmodp`).
const fn multiply(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = 1u32 << 31;
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
        }
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        bit >>= 1;
    }
    product
}

/// x^(2^k) modulo the polynomial for every k a length can need, computed at build time.
const POWERS: [u32; 64] = {
    let mut p = [0u32; 64];
    p[0] = 1 << 30; // x^1
    let mut k = 1;
    while k < 64 {
        p[k] = multiply(p[k - 1], p[k - 1]);
        k += 1;
    }
    p
};

/// x^(8·bytes) modulo the polynomial: what passing `bytes` zero bytes does to a register
/// (zlib's `x2nmodp`), from the powers x^(2^k).
fn zeros_operator(bytes: usize) -> u32 {
    let mut result = 1u32 << 31; // x^0
    let mut n = bytes;
    let mut k = 3; // a byte is x^8 = x^(2^3)
    while n != 0 {
        if n & 1 != 0 {
            result = multiply(POWERS[k], result);
        }
        n >>= 1;
        k += 1;
    }
    result
}

/// Computes and writes the CRC of a batch built whole in `batch`.
pub fn seal(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Whether the batch's CRC matches its bytes (what the broker checks).
pub fn crc_ok(batch: &[u8]) -> bool {
    Header::parse(batch).is_ok_and(|h| {
        h.magic == 2 && h.len <= batch.len() && crc32c::crc32c(&batch[ATTRIBUTES..h.len]) == h.crc
    })
}

/// The sequence after `count` records from `sequence`: sequences run from 0 to i32::MAX
/// and then start again at 0, as the broker counts them (`DefaultRecordBatch
/// .incrementSequence`).
pub fn next_sequence(sequence: i32, count: i32) -> i32 {
    let modulus = i64::from(i32::MAX) + 1;
    ((i64::from(sequence) + i64::from(count)).rem_euclid(modulus)) as i32
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(super) fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(super) fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A v2 batch's bytes: the header's fields as given, `body` as its records, and a
    /// CRC that matches.
    fn batch(base: i64, delta: i32, records: i32, attributes: u16, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + body.len());
        b.extend_from_slice(&base.to_be_bytes());
        b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes()); // partition leader epoch
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&delta.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_500i64.to_be_bytes());
        b.extend_from_slice(&4242i64.to_be_bytes());
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(&100i32.to_be_bytes());
        b.extend_from_slice(&records.to_be_bytes());
        b.extend_from_slice(body);
        let crc = crc32c::crc32c(&b[ATTRIBUTES..]);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    const TARGET: Target = Target {
        max_batch_bytes: 1 << 20,
        zstd: true,
        min_pass_bytes: 0,
    };

    fn header(bytes: &[u8]) -> Header {
        Header::parse(bytes).expect("a batch")
    }

    #[test]
    fn a_header_is_read_as_written() {
        let b = batch(1000, 9, 10, 3 | TRANSACTIONAL, b"records");
        let h = header(&b);
        assert_eq!(h.base_offset, 1000);
        assert_eq!(h.len, b.len());
        assert_eq!((h.magic, h.records, h.last_offset()), (2, 10, 1009));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (4242, 3, 100)
        );
        assert_eq!(h.codec(), Some(Codec::Lz4));
        assert!(h.transactional() && !h.control() && !h.log_append_time() && h.dense());
        assert!(crc_ok(&b));
    }

    #[test]
    fn a_cut_off_batch_is_partial_and_left_to_fetch_again() {
        let one = batch(0, 1, 2, 0, b"ab");
        let two = batch(2, 0, 1, 0, b"cde");
        let mut bytes = [one.clone(), two.clone()].concat();
        let (all, used) = complete(&bytes).expect("batches");
        assert_eq!((all.len(), used), (2, bytes.len()));
        bytes.truncate(one.len() + 20);
        let (got, used) = complete(&bytes).expect("batches");
        assert_eq!((got.len(), used), (1, one.len()));
        assert!(matches!(
            Header::parse(&two[..30]),
            Err(BatchError::Partial { have: 30, .. })
        ));
        assert_eq!(complete(&[]).expect("none"), (Vec::new(), 0));
    }

    #[test]
    fn a_negative_or_tiny_length_is_refused() {
        let mut b = batch(0, 0, 1, 0, b"x");
        b[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(Header::parse(&b), Err(BatchError::BadLength(-5)));
        b[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(Header::parse(&b), Err(BatchError::BadLength(10)));
        assert!(complete(&b).is_err());
    }

    #[test]
    fn old_formats_go_to_the_record_path() {
        let mut b = batch(0, 0, 1, 0, b"x");
        b[MAGIC] = 1;
        assert_eq!(
            route(&header(&b), (0, 10), false, &TARGET),
            Route::Legacy(1)
        );
    }

    #[test]
    fn each_rule_routes_as_the_issue_lists_it() {
        let range = (100, 200);
        let r = |b: &[u8], aborted: bool, t: &Target| route(&header(b), range, aborted, t);
        let plain = batch(110, 9, 10, 3, b"body");
        assert_eq!(r(&plain, false, &TARGET), Route::Pass);
        assert_eq!(r(&plain, true, &TARGET), Route::Drop(Dropped::Aborted));
        let control = batch(110, 0, 1, CONTROL | TRANSACTIONAL, b"m");
        assert_eq!(r(&control, false, &TARGET), Route::Drop(Dropped::Control));
        let empty = batch(110, 9, 0, 0, b"");
        assert_eq!(r(&empty, false, &TARGET), Route::Drop(Dropped::Empty));
        for (base, delta) in [(80, 19), (200, 4), (300, 0)] {
            let outside = batch(base, delta, delta + 1, 0, b"o");
            assert_eq!(
                r(&outside, false, &TARGET),
                Route::Drop(Dropped::OutsideRange),
                "{base}+{delta}"
            );
        }
        let cases: [(Vec<u8>, Target, Reencode); 8] = [
            (batch(95, 9, 10, 0, b"s"), TARGET, Reencode::StraddlesStart),
            (batch(195, 9, 10, 0, b"e"), TARGET, Reencode::StraddlesEnd),
            (batch(110, 9, 4, 0, b"c"), TARGET, Reencode::Compacted),
            (
                batch(110, 9, 10, LOG_APPEND_TIME, b"l"),
                TARGET,
                Reencode::LogAppendTime,
            ),
            (
                batch(110, 9, 10, 1 << 6, b"h"),
                TARGET,
                Reencode::UnknownAttributes,
            ),
            (
                batch(110, 9, 10, 4, b"z"),
                Target {
                    zstd: false,
                    ..TARGET
                },
                Reencode::Codec,
            ),
            (
                batch(110, 9, 10, 2, &[0u8; 200]),
                Target {
                    max_batch_bytes: 200,
                    ..TARGET
                },
                Reencode::TooLarge,
            ),
            (
                batch(110, 0, 1, 3, b"tiny"),
                Target {
                    min_pass_bytes: 512,
                    ..TARGET
                },
                Reencode::Small,
            ),
        ];
        for (b, t, why) in cases {
            assert_eq!(r(&b, false, &t), Route::Reencode(why));
        }
        // A codec value no Kafka defines cannot be passed on.
        let odd = batch(110, 9, 10, 5, b"?");
        assert_eq!(r(&odd, false, &TARGET), Route::Reencode(Reencode::Codec));
        // zstd passes where the target takes it.
        let zstd = batch(110, 9, 10, 4, b"z");
        assert_eq!(r(&zstd, false, &TARGET), Route::Pass);
    }

    #[test]
    fn a_rewritten_batch_is_the_copys_with_its_records_untouched() {
        let body = b"compressed records, as the producer wrote them";
        let mut b = batch(5000, 9, 10, 3 | TRANSACTIONAL, body);
        let before = b.clone();
        rewrite(&mut b, (77, 2), 123_456).expect("a v2 batch");
        let h = header(&b);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (77, 2, 123_456)
        );
        assert!(!h.transactional());
        assert_eq!(h.codec(), Some(Codec::Lz4));
        assert!(crc_ok(&b));
        assert_eq!(h.base_offset, 0);
        assert_eq!(&b[8..CRC], &before[8..CRC], "length, epoch, magic");
        assert_eq!(&b[HEADER_LEN..], &before[HEADER_LEN..], "the records");
        assert_eq!(
            &b[LAST_OFFSET_DELTA..PRODUCER_ID],
            &before[LAST_OFFSET_DELTA..PRODUCER_ID]
        );
    }

    #[test]
    fn only_a_whole_v2_batch_is_rewritten() {
        let whole = batch(0, 1, 2, 0, b"payload");
        let mut cut = whole[..whole.len() - 3].to_vec();
        assert!(rewrite(&mut cut, (1, 0), 0).is_err());
        assert_eq!(cut, whole[..whole.len() - 3], "left as it was");
        let mut old = whole.clone();
        old[MAGIC] = 1;
        assert!(rewrite(&mut old, (1, 0), 0).is_err());
        assert!(rewrite(&mut [0u8; 10], (1, 0), 0).is_err());
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut b = batch(0, 1, 2, 0, b"payload");
        assert!(crc_ok(&b));
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(!crc_ok(&b));
    }

    /// A zigzag varint's bytes.
    fn zigzag(v: i64, out: &mut Vec<u8>) {
        let mut raw = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let byte = (raw & 0x7f) as u8;
            raw >>= 7;
            if raw == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// A transaction marker of producer `pid` at `offset`: COMMIT (1) or ABORT (0).
    fn marker(offset: i64, pid: i64, kind: i16) -> Vec<u8> {
        let mut record = Vec::new();
        record.push(0); // attributes
        zigzag(0, &mut record); // timestamp delta
        zigzag(0, &mut record); // offset delta
        zigzag(4, &mut record);
        record.extend_from_slice(&0i16.to_be_bytes());
        record.extend_from_slice(&kind.to_be_bytes());
        zigzag(6, &mut record);
        record.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        zigzag(0, &mut record); // headers
        let mut body = Vec::new();
        zigzag(record.len() as i64, &mut body);
        body.extend_from_slice(&record);
        with_producer(batch(offset, 0, 1, CONTROL | TRANSACTIONAL, &body), pid)
    }

    fn with_producer(mut b: Vec<u8>, pid: i64) -> Vec<u8> {
        b[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&pid.to_be_bytes());
        b
    }

    #[test]
    fn aborted_transactions_are_followed_to_their_markers() {
        // Offsets: 0-4 plain (no producer id); 5-9 txn of 7; 10-14 txn of 8; 15 ABORT of
        // 7; 16-19 txn of 7 again; 20 COMMIT of 8; 21 COMMIT of 7; 22-23 txn of 8, 24
        // ABORT of 8.
        let txn = |base: i64, n: i32, pid: i64| {
            with_producer(batch(base, n - 1, n, TRANSACTIONAL, b"r"), pid)
        };
        let batches: Vec<(Vec<u8>, bool)> = vec![
            (with_producer(batch(0, 4, 5, 0, b"p"), -1), false),
            (txn(5, 5, 7), true),
            (txn(10, 5, 8), false),
            (marker(15, 7, 0), false),
            (txn(16, 4, 7), false),
            (marker(20, 8, 1), false),
            (marker(21, 7, 1), false),
            (txn(22, 2, 8), true),
            (marker(24, 8, 0), false),
        ];
        let mut aborts = Aborts::new(&[(7, 5), (8, 22)]);
        for (b, want) in &batches {
            let h = header(b);
            assert_eq!(aborts.aborted(&h, b), *want, "batch at {}", h.base_offset);
        }
        assert_eq!(control_type(&marker(0, 1, 0)), Some(0));
        assert_eq!(control_type(&marker(0, 1, 1)), Some(1));
        assert_eq!(control_type(&batch(0, 0, 1, CONTROL, b"")), None);
    }

    #[test]
    fn varints_read_as_kafka_writes_them() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut bytes = Vec::new();
            zigzag(v, &mut bytes);
            let mut at = 0;
            assert_eq!(varint(&bytes, &mut at), Some(v), "{v}");
            assert_eq!(at, bytes.len());
        }
        assert_eq!(varint(&[0x80], &mut 0), None);
    }

    #[test]
    fn sequences_wrap_from_the_largest_to_zero() {
        assert_eq!(next_sequence(0, 1), 1);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 2, 5), 2);
        assert_eq!(next_sequence(i32::MAX, 0), i32::MAX);
    }

    proptest! {
        /// Whatever the header, a rewrite keeps every byte outside the rewritten fields and
        /// the CRC, and leaves a batch whose CRC the broker accepts.
        #[test]
        fn rewrite_touches_only_its_fields(
            base in any::<i64>(),
            delta in 0i32..1000,
            attributes in any::<u16>(),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            pid in any::<i64>(),
            epoch in any::<i16>(),
            seq in 0i32..=i32::MAX,
        ) {
            let mut b = batch(base, delta, delta + 1, attributes, &body);
            let before = b.clone();
            rewrite(&mut b, (pid, epoch), seq).expect("a v2 batch");
            prop_assert!(crc_ok(&b));
            let h = header(&b);
            prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (pid, epoch, seq));
            prop_assert_eq!(h.attributes, attributes & !TRANSACTIONAL);
            prop_assert_eq!(h.base_offset, 0);
            let kept = |b: &[u8]| {
                [&b[8..CRC], &b[LAST_OFFSET_DELTA..PRODUCER_ID], &b[RECORDS_COUNT..]].concat()
            };
            prop_assert_eq!(kept(&b), kept(&before));
        }

        /// A batch passed on holds only records of the range, all of them present, and
        /// nothing the target must not receive.
        #[test]
        fn a_passed_batch_is_whole_inside_the_range_and_plain(
            base in 0i64..400,
            delta in 0i32..50,
            missing in 0i32..3,
            attributes in any::<u16>(),
            start in 0i64..300,
            len in 0i64..300,
            aborted in any::<bool>(),
            body in 0usize..600,
            max in 61usize..700,
            min in 0usize..200,
            zstd in any::<bool>(),
        ) {
            let b = batch(base, delta, delta + 1 - missing, attributes, &vec![0u8; body]);
            let h = header(&b);
            let t = Target { max_batch_bytes: max, zstd, min_pass_bytes: min };
            let end = start + len;
            match route(&h, (start, end), aborted, &t) {
                Route::Pass => {
                    prop_assert!(start <= h.base_offset && h.last_offset() < end);
                    prop_assert!(h.dense() && h.records > 0 && !aborted);
                    prop_assert!(!h.control() && !h.log_append_time());
                    prop_assert_eq!(h.attributes & !KNOWN, 0);
                    prop_assert!(h.len <= max && h.len >= min);
                    prop_assert!(zstd || h.codec() != Some(Codec::Zstd));
                    prop_assert!(h.codec().is_some());
                }
                Route::Drop(Dropped::OutsideRange) => {
                    prop_assert!(h.last_offset() < start || h.base_offset >= end);
                }
                Route::Drop(_) => prop_assert!(h.control() || aborted || h.records <= 0),
                Route::Reencode(_) => {
                    prop_assert!(h.last_offset() >= start && h.base_offset < end);
                }
                Route::Legacy(_) => prop_assert!(false, "a v2 batch"),
            }
        }

        /// Sequences count modulo 2^31, as the broker's.
        #[test]
        fn sequences_count_modulo_two_to_the_31(seq in 0i32..=i32::MAX, n in 0i32..=i32::MAX) {
            let next = next_sequence(seq, n);
            prop_assert!(next >= 0);
            prop_assert_eq!((i64::from(seq) + i64::from(n)) % (1i64 << 31), i64::from(next));
        }
    }

    #[test]
    fn a_rewritten_header_is_the_rewritten_batchs() {
        for seed in 0..20u64 {
            let body: Vec<u8> = (0..seed * 37).map(|i| (i * 7 + seed) as u8).collect();
            let batch = batch(
                seed as i64 * 10,
                4,
                5,
                (seed % 5) as u16 | TRANSACTIONAL,
                &body,
            );
            let mut whole = batch.clone();
            rewrite(&mut whole, (77 + seed as i64, 3), seed as i32 * 1000).unwrap();
            let head = rewritten_header(&batch, (77 + seed as i64, 3), seed as i32 * 1000).unwrap();
            assert_eq!(&whole[..HEADER_LEN], &head[..]);
            assert_eq!(&whole[HEADER_LEN..], &batch[HEADER_LEN..]);
        }
        assert!(rewritten_header(&[0u8; 10], (1, 1), 0).is_err());
    }

    proptest! {
        #[test]
        fn the_crc_from_the_old_one_is_the_crc_of_the_new_bytes(
            old in proptest::collection::vec(any::<u8>(), 40),
            new in proptest::collection::vec(any::<u8>(), 40),
            rest in proptest::collection::vec(any::<u8>(), 0..5000),
        ) {
            let whole = |head: &[u8]| crc32c::crc32c(&[head, &rest[..]].concat());
            prop_assert_eq!(crc_with_new_head(whole(&old), &old, &new, rest.len()), whole(&new));
        }

        #[test]
        fn a_damaged_batch_keeps_a_crc_that_does_not_match(
            seed in 0u64..1000,
            at in 0usize..1000,
        ) {
            let body: Vec<u8> = (0..1000).map(|i| (i * 13 + seed) as u8).collect();
            let mut damaged = batch(5, 9, 10, 3, &body);
            let at = HEADER_LEN + at;
            damaged[at] ^= 0x40;
            let head = rewritten_header(&damaged, (9, 1), 0).unwrap();
            let out = [&head[..], &damaged[HEADER_LEN..]].concat();
            prop_assert!(!crc_ok(&out));
        }
    }
}
