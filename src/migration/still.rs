//! Waiting until the source is still (`cutover`): no planned group has members, and the
//! source's offsets of the copied partitions stay put for a while.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Migration;
use super::follow::{source_ends, source_tps};
use super::guards::active_groups;
use crate::error::usage;
use crate::ledger::State;
use crate::model::{Ends, Tp};
use crate::plan::live::{Quiet, ends_digest};
use crate::report;
use crate::report::migration as texts;

/// How often the source is read while it is not still.
const READ_EVERY_MS: i64 = 250;

/// Waits up to `wait` s until no planned group has members on the source and the source's
/// offsets of the copied partitions stayed still for `quiet` s; returns the offsets read
/// last (`None` when interrupted). Refuses (exit 2) naming the groups or partitions still
/// active.
///
/// The offsets are read every 250 ms, so that a move starts the window again when it
/// happens. The groups are described only by the readings that can close the window:
/// describing 200 groups costs a broker more than reading 5,000 partitions' offsets, and
/// what they were before the window could close decides nothing.
pub fn wait_until_still(
    m: &Migration,
    state: &State,
    (wait, quiet_secs): (u64, u64),
) -> anyhow::Result<Option<BTreeMap<Tp, Ends>>> {
    let t0 = Instant::now();
    let t0_ms = crate::model::now_ms();
    let deadline = t0 + Duration::from_secs(wait);
    let quiet_ms = (quiet_secs * 1000) as i64;
    let tps = source_tps(state);
    let mut quiet: Quiet<Ends> = Quiet::default();
    let mut readings = 0;
    loop {
        let started = t0.elapsed().as_millis() as i64;
        // The second reading describes the groups too, within the window's wait: their
        // coordinators are looked up then (200 groups: about 0.3 s), not in the reading
        // that decides. After a sync, the first reading may decide.
        let groups = quiet.may_close_at(started, quiet_ms)
            || readings == 1
            || (readings == 0 && state.source_still.is_some());
        readings += 1;
        let Reading { active, ends: now } = read_source(m, state, &tps, groups)?;
        let at = t0.elapsed().as_millis() as i64;
        if readings == 1
            && let Some(since) = still_since_sync(state, &now, t0_ms)
        {
            quiet.observe(since.min(at), &now);
        }
        quiet.observe(at, &now);
        let still = quiet.quiet_for(at, quiet_ms);
        if still && active.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Some(now));
        }
        if m.stopped() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            let active = match active {
                Some(active) => active,
                None => active_groups(&m.source, &state.plan)?,
            };
            return Err(usage(texts::not_still(
                (wait, quiet_secs),
                &active,
                (!still).then_some(&quiet),
            )));
        }
        // Complete, but read too early to have described the groups: at once.
        let pause = match (still, &active) {
            (true, None) => 0,
            _ => quiet.next_reading_in(at, quiet_ms, READ_EVERY_MS, at - started),
        };
        std::thread::sleep(Duration::from_millis(pause.max(0) as u64));
    }
}

/// When the sync before this cutover last saw the source's offsets as `now` finds them
/// (ms relative to `t0_ms`, the window's start; negative: before it), if it did: offsets
/// only grow, so none moved since. Says so.
fn still_since_sync(state: &State, now: &BTreeMap<Tp, Ends>, t0_ms: i64) -> Option<i64> {
    let still = state.source_still.as_ref()?;
    let Some(since_ms) = still.still_since(&ends_digest(now)) else {
        tracing::debug!("the source's offsets moved since the sync last read them");
        return None;
    };
    report::note(&texts::still_since_sync(t0_ms - since_ms));
    Some(since_ms - t0_ms)
}

/// One reading of the source.
struct Reading {
    /// The planned groups that are not empty, when they were described.
    active: Option<Vec<String>>,
    /// Where the copied partitions end.
    ends: BTreeMap<Tp, Ends>,
}

/// Reads where the copied partitions end and, with `groups`, describes the planned groups,
/// both at once.
fn read_source(m: &Migration, state: &State, tps: &[Tp], groups: bool) -> anyhow::Result<Reading> {
    let started = Instant::now();
    let (active, ends) = std::thread::scope(|s| {
        let described = groups.then(|| s.spawn(|| active_groups(&m.source, &state.plan)));
        let ends = source_ends(&m.source, tps);
        let ends_took = started.elapsed();
        let active = described.map(|d| d.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        tracing::debug!(groups, ?ends_took, took = ?started.elapsed(), "quiet window: source read");
        (active, ends)
    });
    Ok(Reading {
        active: active.transpose()?,
        ends: ends?,
    })
}
