//! The verify stage: prove the copy. For every copied partition, read the source range and
//! the range the copy wrote on the target, and compare the record count and an
//! order-sensitive digest of (key, value, headers, timestamp). Where the digests differ, a
//! second, lockstep pass finds the first differing record. Memory stays bounded: only
//! running digests are kept.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::Serialize;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use crate::copy::state::State;
use crate::kafka::Cluster;
use crate::kafka::copier::{Assignment, Polled, SourceReader, SourceRecord, Tuning};
use crate::plan::Tp;
use crate::translate::CommitOutcome;

/// One partition's range on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    pub tp: Tp,
    pub source: (i64, i64),
    pub target: (i64, i64),
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

/// A record's hash over exactly what the copy preserves. Presence is encoded apart from
/// length, so a null key differs from an empty one.
pub fn record_hash(rec: &SourceRecord<'_>) -> u128 {
    let mut h = Xxh3::new();
    hash_bytes(&mut h, rec.key());
    hash_bytes(&mut h, rec.value());
    rec.for_each_header(|name, value| {
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

/// The first position where the two sides of a partition differ.
struct Difference {
    /// Records equal before it.
    index: u64,
    /// Offsets of the differing records; `None`: that side has no more records.
    source: Option<i64>,
    target: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub source_records: u64,
    pub target_records: u64,
    /// `None` when equal; otherwise what differs.
    pub mismatch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupResult {
    pub group: String,
    pub mismatch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub partitions: Vec<PartitionResult>,
    pub groups: Vec<GroupResult>,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.partitions.iter().all(|p| p.mismatch.is_none())
            && self.groups.iter().all(|g| g.mismatch.is_none())
    }
}

const TUNING_BYTES: usize = 64 << 20;

fn tuning() -> Tuning {
    Tuning {
        buffer_bytes: TUNING_BYTES,
        compression: "none".into(),
        max_batch_bytes: None,
    }
}

/// Reads `ranges` (from, end) of one cluster and returns each range's digest and the bytes
/// read. A range is complete when a record at or past its end arrives, or the reader is at
/// the partition's end beyond it.
fn digest_side(
    cluster: &Cluster,
    ranges: &[(Tp, i64, i64)],
    stall: Duration,
) -> anyhow::Result<(Vec<Digest>, u64)> {
    let mut topics: Vec<String> = ranges.iter().map(|(tp, _, _)| tp.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    let index: BTreeMap<(usize, i32), usize> = ranges
        .iter()
        .enumerate()
        .map(|(i, (tp, _, _))| {
            let t = topics.binary_search(&tp.topic).unwrap_or_default();
            ((t, tp.partition), i)
        })
        .collect();
    let mut digests = vec![Digest::default(); ranges.len()];
    let mut done: Vec<bool> = ranges.iter().map(|(_, from, end)| from >= end).collect();
    let assignments: Vec<Assignment> = ranges
        .iter()
        .zip(&done)
        .filter(|(_, d)| !**d)
        .map(|((tp, from, _), _)| Assignment {
            topic: topics.binary_search(&tp.topic).unwrap_or_default(),
            partition: tp.partition,
            from: *from,
        })
        .collect();
    let mut remaining = done.iter().filter(|d| !**d).count();
    if remaining == 0 {
        return Ok((digests, 0));
    }
    let mut reader = SourceReader::new(cluster, &topics, &assignments, &tuning())?;
    let mut bytes = 0u64;
    let mut last = Instant::now();
    while remaining > 0 {
        let mut finished: Option<(usize, i32)> = None;
        match reader.poll(Duration::from_millis(100)) {
            Polled::Record(rec) => {
                last = Instant::now();
                if let Some(i) = index.get(&(rec.topic(), rec.partition())).copied()
                    && !done[i]
                {
                    let end = ranges[i].2;
                    if rec.offset() < end {
                        digests[i].push(record_hash(&rec));
                        bytes += rec.size() as u64;
                    }
                    if rec.offset() + 1 >= end {
                        done[i] = true;
                        remaining -= 1;
                        finished = Some((rec.topic(), rec.partition()));
                    }
                }
            }
            Polled::Eof {
                topic,
                partition,
                offset,
            } => {
                if let Some(i) = index.get(&(topic, partition)).copied()
                    && !done[i]
                    && offset >= ranges[i].2
                {
                    done[i] = true;
                    remaining -= 1;
                    finished = Some((topic, partition));
                }
            }
            Polled::Idle => {
                if last.elapsed() > stall {
                    let open: Vec<String> = ranges
                        .iter()
                        .zip(&done)
                        .filter(|(_, d)| !**d)
                        .take(5)
                        .map(|((tp, _, end), _)| format!("{tp} (up to {end})"))
                        .collect();
                    bail!(
                        "reading the {} stalled: no record for {} s while {} are unfinished",
                        cluster.describe(),
                        stall.as_secs(),
                        open.join(", ")
                    );
                }
            }
            Polled::Transient(msg) => tracing::warn!("{}: {msg} (retrying)", cluster.describe()),
            Polled::Fatal(msg) => bail!("reading the {}: {msg}", cluster.describe()),
        }
        if let Some((t, p)) = finished {
            reader.pause(t, p);
        }
    }
    Ok((digests, bytes))
}

/// Reads the next record hash of a single-partition reader, or `None` at the range's end.
fn next_hash(
    reader: &mut SourceReader,
    end: i64,
    stall: Duration,
) -> anyhow::Result<Option<(i64, u128)>> {
    let started = Instant::now();
    loop {
        match reader.poll(Duration::from_millis(100)) {
            Polled::Record(rec) => {
                if rec.offset() >= end {
                    return Ok(None);
                }
                return Ok(Some((rec.offset(), record_hash(&rec))));
            }
            Polled::Eof { offset, .. } if offset >= end => return Ok(None),
            Polled::Fatal(msg) => return Err(anyhow!(msg)),
            _ => {
                if started.elapsed() > stall {
                    bail!("no record within {} s", stall.as_secs());
                }
            }
        }
    }
}

/// The hashes of the records of `tp` on `cluster` in `[from, end)`, in order, with their
/// offsets: what a resume compares the records it skips with.
pub fn record_hashes(
    cluster: &Cluster,
    tp: &Tp,
    from: i64,
    end: i64,
) -> anyhow::Result<Vec<(i64, u128)>> {
    let mut out = Vec::new();
    if from >= end {
        return Ok(out);
    }
    let topics = [tp.topic.clone()];
    let assignment = [Assignment {
        topic: 0,
        partition: tp.partition,
        from,
    }];
    let mut reader = SourceReader::new(cluster, &topics, &assignment, &tuning())?;
    while let Some(h) = next_hash(&mut reader, end, cluster.timeout)
        .with_context(|| format!("reading {tp} [{from}, {end}) on the {}", cluster.describe()))?
    {
        out.push(h);
    }
    Ok(out)
}

/// Walks both sides of one partition in step and returns the first position where they
/// differ: (index, source offset, target offset), `None` standing for "no record".
fn first_difference(
    source: &Cluster,
    target: &Cluster,
    r: &Ranges,
    stall: Duration,
) -> anyhow::Result<Option<Difference>> {
    let topics = vec![r.tp.topic.clone()];
    let one = |from: i64| Assignment {
        topic: 0,
        partition: r.tp.partition,
        from,
    };
    let mut s = SourceReader::new(source, &topics, &[one(r.source.0)], &tuning())?;
    let mut t = SourceReader::new(target, &topics, &[one(r.target.0)], &tuning())?;
    let mut i = 0u64;
    loop {
        let a = next_hash(&mut s, r.source.1, stall)?;
        let b = next_hash(&mut t, r.target.1, stall)?;
        match (a, b) {
            (None, None) => return Ok(None),
            (Some((_, ha)), Some((_, hb))) if ha == hb => i += 1,
            (a, b) => {
                return Ok(Some(Difference {
                    index: i,
                    source: a.map(|x| x.0),
                    target: b.map(|x| x.0),
                }));
            }
        }
    }
}

/// Verifies every copied partition and every committed group offset of a run.
pub fn verify(source: &Cluster, target: &Cluster, state: &State) -> anyhow::Result<Report> {
    let started = Instant::now();
    let stall = source.timeout.max(Duration::from_secs(30));
    let tps: Vec<Tp> = state
        .partitions
        .iter()
        .map(|p| Tp::new(&p.topic, p.partition))
        .collect();
    let src_marks = source
        .admin()?
        .low_high(&tps)
        .context("reading the source's offsets")?;
    let tgt_marks = target
        .admin()?
        .low_high(&tps)
        .context("reading the target's offsets")?;

    let mut results: Vec<PartitionResult> = Vec::new();
    // (index into results, ranges) of the partitions that can be read.
    let mut ranges: Vec<(usize, Ranges)> = Vec::new();
    for (p, tp) in state.partitions.iter().zip(&tps) {
        let mut result = PartitionResult {
            topic: p.topic.clone(),
            partition: p.partition,
            source_records: 0,
            target_records: 0,
            mismatch: None,
        };
        let (Some(base), Some((slow, _)), Some((tlow, thigh))) = (
            p.progress.base,
            src_marks.get(tp).copied(),
            tgt_marks.get(tp).copied(),
        ) else {
            result.mismatch = Some("not copied yet (run `kmigrate run` first) or missing".into());
            results.push(result);
            continue;
        };
        if slow > p.start {
            result.mismatch = Some(format!(
                "cannot verify: source records from {} to {slow} expired since the copy",
                p.start
            ));
        } else if tlow > base {
            result.mismatch = Some(format!(
                "records were removed from the target: it now starts at {tlow}, the copy \
                 began at {base}"
            ));
        }
        if result.mismatch.is_none() {
            ranges.push((
                results.len(),
                Ranges {
                    tp: tp.clone(),
                    source: (p.start, p.end),
                    target: (base, thigh),
                },
            ));
        }
        results.push(result);
    }

    // Both sides at once: each cluster is read by its own thread.
    let src_ranges: Vec<(Tp, i64, i64)> = ranges
        .iter()
        .map(|(_, r)| (r.tp.clone(), r.source.0, r.source.1))
        .collect();
    let tgt_ranges: Vec<(Tp, i64, i64)> = ranges
        .iter()
        .map(|(_, r)| (r.tp.clone(), r.target.0, r.target.1))
        .collect();
    let (src, tgt) = std::thread::scope(|s| {
        let a = s.spawn(|| digest_side(source, &src_ranges, stall));
        let b = s.spawn(|| digest_side(target, &tgt_ranges, stall));
        (
            a.join()
                .unwrap_or_else(|_| Err(anyhow!("the source reader panicked"))),
            b.join()
                .unwrap_or_else(|_| Err(anyhow!("the target reader panicked"))),
        )
    });
    let (src, src_bytes) = src?;
    let (tgt, _) = tgt?;

    for (k, (ri, r)) in ranges.iter().enumerate() {
        let (a, b) = (src[k], tgt[k]);
        let res = &mut results[*ri];
        res.source_records = a.count;
        res.target_records = b.count;
        if a == b {
            continue;
        }
        let at = first_difference(source, target, r, stall)?;
        res.mismatch = Some(match at {
            Some(Difference {
                index: i,
                source: so,
                target: to,
            }) => format!(
                "record #{i} differs (source offset {}, target offset {}); {} record(s) on the \
                 source, {} on the target",
                so.map_or("none".to_string(), |o| o.to_string()),
                to.map_or("none".to_string(), |o| o.to_string()),
                a.count,
                b.count
            ),
            None => format!("digests differ ({} vs {} records)", a.count, b.count),
        });
    }

    let groups = verify_groups(target, state)?;
    Ok(Report {
        records: results.iter().map(|r| r.source_records).sum(),
        partitions: results,
        groups,
        bytes: src_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Every committed translation must be what the group has on the target now.
fn verify_groups(target: &Cluster, state: &State) -> anyhow::Result<Vec<GroupResult>> {
    let admin = target.admin()?;
    let mut out = Vec::new();
    for g in &state.offsets {
        let expect_exact = match &g.outcome {
            CommitOutcome::Committed => true,
            CommitOutcome::KeptAhead(_) => false,
            CommitOutcome::Refused(why) => {
                out.push(GroupResult {
                    group: g.group.clone(),
                    mismatch: Some(format!("offsets not committed: {why}")),
                });
                continue;
            }
            CommitOutcome::Pending => {
                out.push(GroupResult {
                    group: g.group.clone(),
                    mismatch: Some("offsets not committed yet: run `kmigrate run` again".into()),
                });
                continue;
            }
        };
        let now = admin.committed(&g.group)?;
        let wrong: Vec<String> = g
            .offsets
            .iter()
            .filter_map(|(t, p, o)| {
                let tp = Tp::new(t, *p);
                let have = now.get(&tp).copied();
                let ok = match have {
                    Some(h) => h == *o || (!expect_exact && h > *o),
                    None => false,
                };
                (!ok).then(|| {
                    format!(
                        "{tp} is at {} instead of {o}",
                        have.map_or("no commit".to_string(), |h| h.to_string())
                    )
                })
            })
            .collect();
        out.push(GroupResult {
            group: g.group.clone(),
            mismatch: (!wrong.is_empty()).then(|| wrong.join(", ")),
        });
    }
    Ok(out)
}
