//! What "the same record" means: a record's hash over exactly what the copy preserves (key,
//! value, headers in order, timestamp), and an order-sensitive running digest of a sequence
//! of records. Used by `verify` to compare both sides and by the copy's resume to prove
//! that the records it skips are the very source records on the target.

use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// Receives a header's name and value (`None`: a null value).
pub type HeaderFn<'f> = dyn FnMut(&[u8], Option<&[u8]>) + 'f;

/// The parts of a record the copy preserves, however it is held.
pub trait RecordView {
    /// The key; `None` for a null key (an empty key is `Some(&[])`).
    fn key(&self) -> Option<&[u8]>;
    /// The value; `None` for a null value (tombstone).
    fn value(&self) -> Option<&[u8]>;
    /// Calls `f(name, value)` for each header in order (duplicates included).
    fn for_each_header(&self, f: &mut HeaderFn<'_>);
    /// Milliseconds since the epoch, -1 when the record has none.
    fn timestamp(&self) -> i64;
}

/// The running digest of a sequence of records: each record's 128-bit hash folded into the
/// previous digest, so order matters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    pub count: u64,
    pub value: u128,
}

impl Digest {
    pub fn push(&mut self, record_hash: u128) {
        let mut buf = [0u8; 32];
        buf[..16].copy_from_slice(&self.value.to_le_bytes());
        buf[16..].copy_from_slice(&record_hash.to_le_bytes());
        self.value = xxh3_128(&buf);
        self.count += 1;
    }
}

/// A record's hash. Presence is encoded apart from length, so a null key differs from an
/// empty one, and a header's name from its value.
pub fn record_hash(rec: &dyn RecordView) -> u128 {
    let mut h = Xxh3::new();
    hash_bytes(&mut h, rec.key());
    hash_bytes(&mut h, rec.value());
    rec.for_each_header(&mut |name, value| {
        hash_bytes(&mut h, Some(name));
        hash_bytes(&mut h, value);
    });
    h.update(&rec.timestamp().to_le_bytes());
    h.digest128()
}

fn hash_bytes(h: &mut Xxh3, b: Option<&[u8]>) {
    match b {
        None => h.update(&[0]),
        Some(b) => {
            h.update(&[1]);
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R<'a> {
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
        headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
        ts: i64,
    }

    impl RecordView for R<'_> {
        fn key(&self) -> Option<&[u8]> {
            self.key
        }
        fn value(&self) -> Option<&[u8]> {
            self.value
        }
        fn for_each_header(&self, f: &mut HeaderFn<'_>) {
            for (n, v) in &self.headers {
                f(n, *v);
            }
        }
        fn timestamp(&self) -> i64 {
            self.ts
        }
    }

    fn rec<'a>(key: Option<&'a [u8]>, value: Option<&'a [u8]>) -> R<'a> {
        R {
            key,
            value,
            headers: Vec::new(),
            ts: 1,
        }
    }

    #[test]
    fn null_and_empty_differ_and_every_part_counts() {
        let base = record_hash(&rec(Some(b"k"), Some(b"v")));
        assert_ne!(base, record_hash(&rec(None, Some(b"v"))));
        assert_ne!(
            record_hash(&rec(None, Some(b"v"))),
            record_hash(&rec(Some(b""), Some(b"v")))
        );
        assert_ne!(base, record_hash(&rec(Some(b"k"), None)));
        // Bytes moved between key and value change the hash.
        assert_ne!(
            record_hash(&rec(Some(b"ab"), Some(b"c"))),
            record_hash(&rec(Some(b"a"), Some(b"bc")))
        );
        let mut r = rec(Some(b"k"), Some(b"v"));
        r.ts = 2;
        assert_ne!(base, record_hash(&r));
        let mut r = rec(Some(b"k"), Some(b"v"));
        r.headers = vec![(b"h", None)];
        let with_null = record_hash(&r);
        r.headers = vec![(b"h", Some(b""))];
        assert_ne!(with_null, record_hash(&r));
        assert_ne!(with_null, base);
    }

    #[test]
    fn digest_is_order_sensitive() {
        let (a, b) = (1u128, 2u128);
        let mut x = Digest::default();
        x.push(a);
        x.push(b);
        let mut y = Digest::default();
        y.push(b);
        y.push(a);
        assert_ne!(x, y);
        assert_eq!(x.count, 2);
    }
}
