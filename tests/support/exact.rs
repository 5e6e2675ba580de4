//! A topic of known records with groups' commits, and the checks that a migration of it is
//! exact: records, the groups' committed offsets, the offset map, `kmigrate verify`, a
//! group's consumer resuming on the target, `kmigrate offsets translate` of any record.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use super::records::{
    assert_copied, assert_partition_copied, brief, counts, produce_bulk, read_parallel,
};
use super::{Cluster, ReadRec, Rec, Rng, kmigrate_raw, verify_ok};

/// Each group's committed offset per partition (index = partition).
pub type Commits<'a> = [(&'a str, &'a [i64])];

/// `per` records in each of `parts` partitions of `topic` on `src` (made with `create`
/// on both clusters first), and the groups' commits.
pub fn setup(
    (src, tgt): (&Cluster, &Cluster),
    topic: &str,
    parts: i32,
    per: usize,
    groups: &Commits,
    create: impl Fn(&Cluster),
) {
    create(src);
    create(tgt);
    produce_bulk(src, topic, parts, per);
    for (g, commits) in groups {
        let offsets: Vec<(&str, i32, i64)> = commits
            .iter()
            .enumerate()
            .map(|(p, c)| (topic, p as i32, *c))
            .collect();
        src.commit(g, &offsets);
    }
}

/// The copy of a [`setup`] topic is exact and every group resumes exactly: the copy of each
/// partition starts at its smallest commit; a group that committed `c` resumes at
/// `c - start` on the (empty before the copy) target, and `kmigrate offsets translate`
/// says the same; `kmigrate verify` passes.
pub fn assert_exact(
    (src, tgt): (&Cluster, &Cluster),
    dir: &Path,
    topic: &str,
    per: usize,
    groups: &Commits,
) {
    let parts = groups[0].1.len();
    let start: Vec<i64> = (0..parts)
        .map(|p| groups.iter().map(|(_, c)| c[p]).min().expect("a group"))
        .collect();
    let counts = counts(&assert_copied(src, tgt, topic, &start));
    let want: Vec<i64> = start.iter().map(|s| per as i64 - s).collect();
    assert_eq!(counts, want, "records per partition on the target");
    for (g, commits) in groups {
        let parts: Vec<(&str, i32)> = (0..commits.len() as i32).map(|p| (topic, p)).collect();
        let want: Vec<i64> = commits.iter().zip(&start).map(|(c, s)| c - s).collect();
        let got = tgt.committed(g, &parts);
        assert_eq!(
            got,
            want.iter().map(|o| Some(*o)).collect::<Vec<_>>(),
            "group {g}'s offsets on {topic} on the target"
        );
        // The offset map kept through the run (and its kills) translates them the same.
        for (p, c) in commits.iter().enumerate() {
            let (p_s, c_s) = (p.to_string(), c.to_string());
            let out = kmigrate_raw(dir, &["offsets", "translate", topic, &p_s, &c_s]);
            assert_eq!(
                out.code, 0,
                "offsets translate {topic} {p} {c}: {}",
                out.stderr
            );
            assert_eq!(out.stdout.trim(), want[p].to_string(), "{topic}/{p}: {c}");
        }
    }
    verify_ok(dir);
}

/// Both sides of a copied topic, every partition read whole once (with offsets), for the
/// checks that compare a source record with its copy.
pub struct Sides {
    pub source: Vec<Vec<ReadRec>>,
    pub target: Vec<Vec<ReadRec>>,
}

impl Sides {
    pub fn read((src, tgt): (&Cluster, &Cluster), topic: &str, parts: i32) -> Sides {
        let mut reads = Vec::new();
        for p in 0..parts {
            reads.push((src, topic, p));
            reads.push((tgt, topic, p));
        }
        let mut read = read_parallel(&reads).into_iter();
        let (mut source, mut target) = (Vec::new(), Vec::new());
        for _ in 0..parts {
            source.push(read.next().expect("a source partition"));
            target.push(read.next().expect("a target partition"));
        }
        Sides { source, target }
    }

    /// The target's record at `offset` of partition `p`.
    fn target_at(&self, p: usize, offset: i64) -> Option<&Rec> {
        let t = &self.target[p];
        t.binary_search_by_key(&offset, |r| r.offset)
            .ok()
            .map(|i| &t[i].rec)
    }
}

/// What a member of `group` subscribing to `topic` on `c` reads: per partition, every record
/// from the group's committed offset to the partition's end. `auto.offset.reset` is "error":
/// a partition without a commit fails the test instead of silently starting elsewhere.
pub fn resume(c: &Cluster, group: &str, topic: &str, parts: i32) -> Vec<Vec<ReadRec>> {
    let consumer: BaseConsumer = c
        .config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "true")
        .set("fetch.message.max.bytes", "2000000")
        .create()
        .expect("creating the resuming consumer");
    consumer
        .subscribe(&[topic])
        .unwrap_or_else(|e| panic!("group {group} subscribing to {topic}: {e}"));
    let mut out = vec![Vec::new(); parts as usize];
    let mut at_end = vec![false; parts as usize];
    let deadline = Instant::now() + Duration::from_secs(120);
    while !at_end.iter().all(|e| *e) {
        assert!(
            Instant::now() < deadline,
            "group {group} did not reach the end of every partition of {topic} on {} (at \
             the end: {at_end:?})",
            c.bootstrap
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => at_end[p as usize] = true,
            Some(Err(e)) => panic!("group {group} resuming {topic} on {}: {e}", c.bootstrap),
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                at_end[p] = false;
                out[p].push(ReadRec {
                    offset: m.offset(),
                    rec: Rec::from_message(&m),
                });
            }
        }
    }
    out
}

/// Every group resumes on the target exactly where it stopped on the source: a member of
/// the group subscribing on the target gets, per partition, first the record at the group's
/// target commit, which is the first record the group had not consumed on the source, then
/// every later record once up to the end: no gap, no re-read (key, value, headers,
/// timestamp). Returns, per group, how many records it read per partition.
pub fn assert_resumes(
    (src, tgt): (&Cluster, &Cluster),
    sides: &Sides,
    topic: &str,
    groups: &[&str],
) -> Vec<Vec<usize>> {
    let parts = sides.source.len() as i32;
    let tps: Vec<(&str, i32)> = (0..parts).map(|p| (topic, p)).collect();
    let mut out = Vec::new();
    for g in groups {
        let on_source = src.committed(g, &tps);
        let on_target = tgt.committed(g, &tps);
        let got = resume(tgt, g, topic, parts);
        let mut read = Vec::new();
        for (p, got) in got.iter().enumerate() {
            let c = on_source[p].unwrap_or_else(|| panic!("group {g} committed {topic}/{p}"));
            let t = on_target[p]
                .unwrap_or_else(|| panic!("group {g} committed {topic}/{p} on the target"));
            let what = format!("group {g} resuming {topic}/{p} on the target (commit {t})");
            if let Some(first) = got.first() {
                assert_eq!(first.offset, t, "{what}: its first record's offset");
            }
            let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
            let held: Vec<i64> = sides.target[p]
                .iter()
                .map(|r| r.offset)
                .filter(|o| *o >= t)
                .collect();
            assert_eq!(offsets, held, "{what}: the offsets it read");
            assert_partition_copied(&what, &sides.source[p], got, c);
            read.push(got.len());
        }
        out.push(read);
    }
    out
}

/// `kmigrate offsets translate` finds the copy of a source record: for the first and the
/// last copied record of every partition and `samples` seeded random ones between them, the
/// target offset it prints holds a record equal to the source's (key, value, headers,
/// timestamp). `start`: the copy's start per partition. Returns how many offsets it checked.
pub fn assert_translations(
    dir: &Path,
    sides: &Sides,
    topic: &str,
    start: &[i64],
    samples: usize,
    rng: &mut Rng,
) -> usize {
    let mut checked = 0;
    for (p, source) in sides.source.iter().enumerate() {
        let copied: Vec<&ReadRec> = source.iter().filter(|r| r.offset >= start[p]).collect();
        if copied.is_empty() {
            continue;
        }
        let mut picks = vec![0, copied.len() - 1];
        picks.extend((0..samples).map(|_| (rng.next_u64() % copied.len() as u64) as usize));
        for i in picks {
            let at = copied[i];
            let (p_s, o_s) = (p.to_string(), at.offset.to_string());
            let out = kmigrate_raw(dir, &["offsets", "translate", topic, &p_s, &o_s]);
            assert_eq!(
                out.code, 0,
                "offsets translate {topic} {p} {o_s}: {}",
                out.stderr
            );
            let x: i64 = out.stdout.trim().parse().unwrap_or_else(|e| {
                panic!(
                    "offsets translate {topic} {p} {o_s} printed {:?}: {e}",
                    out.stdout
                )
            });
            let copy = sides.target_at(p, x).unwrap_or_else(|| {
                panic!("{topic}/{p}: source offset {o_s} translates to {x}: no record there")
            });
            assert_eq!(
                brief(copy),
                brief(&at.rec),
                "{topic}/{p}: source offset {o_s} translates to {x}"
            );
            assert_eq!(copy, &at.rec, "{topic}/{p}: source offset {o_s} -> {x}");
            checked += 1;
        }
    }
    checked
}
