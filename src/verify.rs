//! The verify stage: prove the copy. For every copied partition, read the source range and
//! the range the copy wrote on the target, and compare the record count and an
//! order-sensitive digest of (key, value, headers, timestamp). Where the digests differ, a
//! second, lockstep pass finds the first differing record. Memory stays bounded: only
//! running digests are kept.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::Serialize;

use crate::config::Compression;
use crate::copy::assign::balance;
use crate::digest::{Digest, record_hash};
use crate::kafka::Cluster;
use crate::kafka::reader::{Event, Range, RangeReader, Tuning};
use crate::ledger::{CommitOutcome, State};
use crate::model::Tp;

/// One partition's range on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    pub tp: Tp,
    /// The partition on the target (the topic may be renamed there).
    pub target_tp: Tp,
    pub source: (i64, i64),
    pub target: (i64, i64),
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
    /// The topic's name on the target (`[topics]` may rename it).
    pub target_topic: String,
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

/// Read-ahead memory for all of verify's readers together.
const TUNING_BYTES: usize = 64 << 20;

fn tuning(readers: usize) -> Tuning {
    Tuning {
        buffer_bytes: (TUNING_BYTES / readers.max(1)).max(4 << 20),
        compression: Compression::None,
        max_batch_bytes: None,
    }
}

/// Reads `ranges` (tp, from, end) of one cluster with `readers` readers in parallel, and
/// returns each range's digest and the bytes read.
fn digest_side(
    cluster: &Cluster,
    ranges: &[(Tp, i64, i64)],
    readers: usize,
    stall: Duration,
) -> anyhow::Result<(Vec<Digest>, u64)> {
    let weights: Vec<u64> = ranges
        .iter()
        .map(|(_, from, end)| (end - from).max(0) as u64)
        .collect();
    let bins = balance(&weights, readers.clamp(1, ranges.len().max(1)));
    let n = bins.len();
    let results: Vec<anyhow::Result<(Vec<Digest>, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = bins
            .iter()
            .map(|bin| {
                let mine: Vec<(Tp, i64, i64)> = bin.iter().map(|i| ranges[*i].clone()).collect();
                s.spawn(move || digest_ranges(cluster, &mine, n, stall))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(anyhow!("a reader of the {} panicked", cluster.describe()))
                })
            })
            .collect()
    });
    let mut digests = vec![Digest::default(); ranges.len()];
    let mut bytes = 0;
    for (bin, result) in bins.iter().zip(results) {
        let (d, b) = result?;
        for (i, digest) in bin.iter().zip(d) {
            digests[*i] = digest;
        }
        bytes += b;
    }
    Ok((digests, bytes))
}

/// One reader's share of [`digest_side`].
fn digest_ranges(
    cluster: &Cluster,
    ranges: &[(Tp, i64, i64)],
    readers: usize,
    stall: Duration,
) -> anyhow::Result<(Vec<Digest>, u64)> {
    let mut topics: Vec<String> = ranges.iter().map(|(tp, _, _)| tp.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    let to_read: Vec<Range> = ranges
        .iter()
        .map(|(tp, from, end)| Range {
            topic: topics.binary_search(&tp.topic).unwrap_or_default(),
            partition: tp.partition,
            from: *from,
            end: *end,
        })
        .collect();
    let mut digests = vec![Digest::default(); ranges.len()];
    let mut bytes = 0u64;
    let mut reader = RangeReader::new(cluster, &topics, to_read, &tuning(readers))?;
    while reader.remaining() > 0 {
        match reader
            .poll(Duration::from_millis(100))
            .with_context(|| format!("reading the {}", cluster.describe()))?
        {
            Event::Record { range, rec } => {
                digests[range].push(record_hash(&rec));
                bytes += rec.size() as u64;
            }
            Event::Transient(msg) => tracing::warn!("{}: {msg} (retrying)", cluster.describe()),
            Event::Finished(_) | Event::Idle => {}
        }
        if reader.idle_for() > stall {
            bail!(
                "reading the {} stalled: no record for {} s while {} are unfinished",
                cluster.describe(),
                stall.as_secs(),
                reader.unfinished(5).join(", ")
            );
        }
    }
    Ok((digests, bytes))
}

/// A reader of one range of one partition, for the lockstep pass.
fn one_range(cluster: &Cluster, tp: &Tp, (from, end): (i64, i64)) -> anyhow::Result<RangeReader> {
    let range = Range {
        topic: 0,
        partition: tp.partition,
        from,
        end,
    };
    RangeReader::new(
        cluster,
        std::slice::from_ref(&tp.topic),
        vec![range],
        &tuning(1),
    )
}

/// Walks both sides of one partition in step and returns the first position where they
/// differ: (index, source offset, target offset), `None` standing for "no record".
fn first_difference(
    source: &Cluster,
    target: &Cluster,
    r: &Ranges,
    stall: Duration,
) -> anyhow::Result<Option<Difference>> {
    let mut s = one_range(source, &r.tp, r.source)?;
    let mut t = one_range(target, &r.target_tp, r.target)?;
    let mut i = 0u64;
    loop {
        let a = s.next_hash(stall)?;
        let b = t.next_hash(stall)?;
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
pub fn verify(
    source: &Cluster,
    target: &Cluster,
    state: &State,
    readers: usize,
) -> anyhow::Result<Report> {
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
    let target_tps: Vec<Tp> = state.partitions.iter().map(|p| p.target_tp()).collect();
    let tgt_marks = target
        .admin()?
        .low_high(&target_tps)
        .context("reading the target's offsets")?;

    let mut results: Vec<PartitionResult> = Vec::new();
    // (index into results, ranges) of the partitions that can be read.
    let mut ranges: Vec<(usize, Ranges)> = Vec::new();
    for ((p, tp), target_tp) in state.partitions.iter().zip(&tps).zip(&target_tps) {
        let mut result = PartitionResult {
            topic: p.topic.clone(),
            target_topic: target_tp.topic.clone(),
            partition: p.partition,
            source_records: 0,
            target_records: 0,
            mismatch: None,
        };
        let (Some(base), Some((slow, _)), Some((tlow, thigh))) = (
            p.progress.base,
            src_marks.get(tp).copied(),
            tgt_marks.get(target_tp).copied(),
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
                    target_tp: target_tp.clone(),
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
        .map(|(_, r)| (r.target_tp.clone(), r.target.0, r.target.1))
        .collect();
    let (src, tgt) = std::thread::scope(|s| {
        let a = s.spawn(|| digest_side(source, &src_ranges, readers, stall));
        let b = s.spawn(|| digest_side(target, &tgt_ranges, readers, stall));
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
