//! Before the first record: where every unfinished partition continues, from its saved
//! progress and the target's current extent (the arithmetic is in [`super::resume`]).

use anyhow::{Context as _, bail};

use super::resume;
use crate::kafka::reader::{Tuning, record_hashes};
use crate::kafka::{Cluster, settle};
use crate::ledger::State;
use crate::model::Tp;

/// How long a resume waits for a replicated target's followers to confirm what the leader
/// holds: longer than a follower needs to be dropped from the in-sync replicas with Kafka's
/// defaults (`replica.lag.time.max.ms` 30 s, checked every 15 s; in KRaft a stopped broker
/// is fenced after `broker.session.timeout.ms`, 9 s), and never less than `timeout_secs`.
fn settle_wait(timeout: std::time::Duration) -> std::time::Duration {
    timeout.max(std::time::Duration::from_secs(60))
}

/// One partition to copy in this run.
#[derive(Debug, Clone)]
pub struct Work {
    /// Index of the partition in the state.
    pub state: usize,
    pub topic: String,
    /// The topic's name on the target.
    pub target_topic: String,
    pub partition: i32,
    /// First source offset to read, and the range's end.
    pub from: i64,
    pub end: i64,
    /// Records to read and drop: already on the target (a resume after a crash).
    pub skip: u64,
    /// Those records as the target holds them (offset, hash), to prove each skipped source
    /// record is the very one there.
    pub tail: Vec<(i64, u128)>,
    /// Target offset of the next record written or skipped.
    pub next_target: i64,
}

/// Decides where each unfinished partition of `state` continues and records each one's
/// target base in the state (the caller saves it before any record is written). Refuses,
/// writing nothing, when a target partition is missing, shrank, or grew more than kmigrate
/// could have written.
pub fn prepare(target: &Cluster, state: &mut State, tuning: &Tuning) -> anyhow::Result<Vec<Work>> {
    let open: Vec<usize> = (0..state.partitions.len())
        .filter(|i| !state.partitions[*i].progress.done)
        .collect();
    let tps: Vec<Tp> = open
        .iter()
        .map(|i| state.partitions[*i].target_tp())
        .collect();
    // Partitions kmigrate wrote to before: records it sent before an interruption may
    // still be on their leader only. The count below must come after they settle. A copy
    // that drained (every record sent was acknowledged) left none.
    let started: Vec<Tp> = open
        .iter()
        .zip(&tps)
        .filter(|(i, _)| resume::may_hold_unconfirmed(&state.partitions[**i].progress))
        .map(|(_, tp)| tp.clone())
        .collect();
    settle::wait_until_committed(target, &started, settle_wait(target.timeout))?;
    let highs = target
        .admin()?
        .low_high(&tps)
        .context("reading the target partitions' high watermarks before copying")?;
    let mut work = Vec::with_capacity(open.len());
    let mut problems = Vec::new();
    for (i, tp) in open.iter().zip(&tps) {
        let ps = &mut state.partitions[*i];
        let Some((_, high)) = highs.get(tp) else {
            problems.push(format!("{tp}: the target has no such partition"));
            continue;
        };
        match resume::resume(ps.start, ps.end, &ps.progress, *high) {
            Ok(r) => {
                ps.progress.base = Some(r.base);
                // Saved before the first record is sent: a copy killed from then on may
                // have left records on the leader only.
                ps.progress.settled = false;
                if r.skip > 0 {
                    tracing::info!(
                        "{tp}: {} record(s) past the last checkpoint are already on the \
                         target; continuing after them",
                        r.skip
                    );
                }
                work.push(Work {
                    state: *i,
                    topic: ps.topic.clone(),
                    target_topic: tp.topic.clone(),
                    partition: ps.partition,
                    from: r.from,
                    end: ps.end,
                    skip: r.skip,
                    tail: Vec::new(),
                    next_target: r.next_target,
                });
            }
            Err(e) => problems.push(format!("{tp}: {e}")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "cannot resume the copy: {}. Nothing was written.",
            problems.join("; ")
        );
    }
    for w in work.iter_mut().filter(|w| w.skip > 0) {
        let end = w.next_target + w.skip as i64;
        w.tail = record_hashes(
            target,
            &w.target_topic,
            w.partition,
            w.next_target,
            end,
            tuning,
        )
        .context("reading the records past the last checkpoint on the target")?;
    }
    Ok(work)
}
