//! Records as the copy tests write, compare and read them back.

use super::{Cluster, ReadRec, Rec, TS};

/// A short description of a record: big payloads are not printed whole.
pub fn brief(r: &Rec) -> String {
    fn bytes(b: &Option<Vec<u8>>) -> String {
        match b {
            None => "null".into(),
            Some(b) if b.len() <= 48 => format!("{:?}", String::from_utf8_lossy(b)),
            Some(b) => format!(
                "{:?}...({} bytes)",
                String::from_utf8_lossy(&b[..48]),
                b.len()
            ),
        }
    }
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}={}", bytes(v)))
        .collect();
    format!(
        "p{} key={} value={} headers=[{}] ts={:?}",
        r.partition,
        bytes(&r.key),
        bytes(&r.value),
        headers.join(", "),
        r.timestamp
    )
}

/// Asserts two record sequences are equal, naming the first difference.
pub fn assert_records(what: &str, got: &[Rec], want: &[Rec]) {
    if got == want {
        return;
    }
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!(
            "{what}: record {i} differs ({} records, expected {})\n  got:  {}\n  want: {}",
            got.len(),
            want.len(),
            brief(&got[i]),
            brief(&want[i])
        );
    }
    let n = got.len().min(want.len());
    panic!(
        "{what}: {} records, expected {}; the first {n} agree (so {}); next got: {}, next \
         expected: {}",
        got.len(),
        want.len(),
        if got.len() > want.len() {
            "duplicated or foreign records"
        } else {
            "records lost"
        },
        got.get(n).map_or("-".into(), brief),
        want.get(n).map_or("-".into(), brief)
    );
}

/// Reads whole partitions, all at once: each `read_all` mostly waits for its end of
/// partition, so reading them one after the other would make the suite slow.
pub fn read_parallel(reads: &[(&Cluster, &str, i32)]) -> Vec<Vec<ReadRec>> {
    std::thread::scope(|s| {
        let readers: Vec<_> = reads
            .iter()
            .map(|(c, t, p)| s.spawn(move || c.read_all(t, *p)))
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("a reader thread panicked"))
            .collect()
    })
}

/// Asserts each target partition `p` holds exactly the source's records from offset
/// `from[p]` on, in order, and nothing else; returns the target's records per partition.
pub fn assert_copied(src: &Cluster, tgt: &Cluster, topic: &str, from: &[i64]) -> Vec<Vec<Rec>> {
    assert_copied_to(src, tgt, topic, topic, from)
}

/// [`assert_copied`] for a topic copied under another name: partition `p` of
/// `target_topic` on the target holds exactly the records of `topic` from `from[p]` on.
pub fn assert_copied_to(
    src: &Cluster,
    tgt: &Cluster,
    topic: &str,
    target_topic: &str,
    from: &[i64],
) -> Vec<Vec<Rec>> {
    let mut reads = Vec::new();
    for p in 0..from.len() as i32 {
        reads.push((src, topic, p));
        reads.push((tgt, target_topic, p));
    }
    let mut read = read_parallel(&reads).into_iter();
    let mut out = Vec::new();
    for (p, f) in from.iter().enumerate() {
        let (source, target) = (read.next().expect("source"), read.next().expect("target"));
        let what = format!("{target_topic}/{p} on the target");
        assert_partition_copied(&what, &source, &target, *f);
        out.push(target.into_iter().map(|r| r.rec).collect());
    }
    out
}

/// Asserts a target partition's records (`target`) are exactly the source partition's
/// (`source`) from offset `from` on, in order, and nothing else.
pub fn assert_partition_copied(what: &str, source: &[ReadRec], target: &[ReadRec], from: i64) {
    let want: Vec<Rec> = source
        .iter()
        .filter(|r| r.offset >= from)
        .map(|r| r.rec.clone())
        .collect();
    let got: Vec<Rec> = target.iter().map(|r| r.rec.clone()).collect();
    assert_records(what, &got, &want);
}

/// How many records per partition.
pub fn counts(per_partition: &[Vec<Rec>]) -> Vec<i64> {
    per_partition.iter().map(|p| p.len() as i64).collect()
}

/// How many records in all.
pub fn count(per_partition: &[Vec<Rec>]) -> usize {
    per_partition.iter().map(Vec::len).sum()
}

/// The end of a partition as a read_committed consumer sees it (`Cluster::watermarks` uses
/// librdkafka's default isolation): the high watermark wherever no transaction is open,
/// which is always so on the target (kmigrate writes without transactions).
pub fn high(c: &Cluster, topic: &str, partition: i32) -> i64 {
    c.watermarks(topic, partition).1
}

pub fn highs(c: &Cluster, topic: &str, partitions: i32) -> Vec<i64> {
    (0..partitions).map(|p| high(c, topic, p)).collect()
}

/// A value of `len` bytes that compresses poorly (xorshift), different per `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `parts` partitions of `per` records of about 200 bytes (key `p<p>-<i>`, a header
/// on every 1000th record, one with a null value every 777th), timestamps `TS + i`.
pub fn produce_bulk(src: &Cluster, topic: &str, parts: i32, per: usize) {
    for p in 0..parts {
        let recs: Vec<Rec> = (0..per)
            .map(|i| Rec {
                partition: p,
                key: Some(format!("p{p}-{i:06}").into_bytes()),
                value: (i % 777 != 5).then(|| format!("{p}:{i:0>186}").into_bytes()),
                headers: if i % 1000 == 0 {
                    vec![
                        ("seq".into(), Some(i.to_string().into_bytes())),
                        ("empty".into(), None),
                    ]
                } else {
                    Vec::new()
                },
                timestamp: Some(TS + i as i64),
            })
            .collect();
        src.produce(topic, &recs);
    }
}
