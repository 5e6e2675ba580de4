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
use crate::plan::live::Quiet;
use crate::report::migration as texts;

/// How often the source is read while it is not still.
const READ_EVERY_MS: i64 = 250;

/// Waits up to `wait` s until no planned group has members on the source and the source's
/// offsets of the copied partitions stayed still for `quiet` s; returns the offsets read
/// last (`None` when interrupted). Refuses (exit 2) naming the groups or partitions still
/// active.
pub fn wait_until_still(
    m: &Migration,
    state: &State,
    (wait, quiet_secs): (u64, u64),
) -> anyhow::Result<Option<BTreeMap<Tp, Ends>>> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(wait);
    let quiet_ms = (quiet_secs * 1000) as i64;
    let tps = source_tps(state);
    let mut quiet: Quiet<Ends> = Quiet::default();
    loop {
        let (active, now) = read_source(m, state, &tps)?;
        let at = t0.elapsed().as_millis() as i64;
        quiet.observe(at, &now);
        let still = quiet.quiet_for(at, quiet_ms);
        if active.is_empty() && still {
            return Ok(Some(now));
        }
        if m.stopped() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(usage(texts::not_still(
                (wait, quiet_secs),
                &active,
                (!still).then_some(&quiet),
            )));
        }
        let pause = quiet.next_reading_in(at, quiet_ms, READ_EVERY_MS);
        std::thread::sleep(Duration::from_millis(pause.max(1) as u64));
    }
}

/// One reading of the source, both halves asked at once: the planned groups that are not
/// empty, and where the copied partitions end.
fn read_source(
    m: &Migration,
    state: &State,
    tps: &[Tp],
) -> anyhow::Result<(Vec<String>, BTreeMap<Tp, Ends>)> {
    let started = Instant::now();
    let (active, ends) = std::thread::scope(|s| {
        let groups = s.spawn(|| {
            let active = active_groups(&m.source, &state.plan);
            (active, started.elapsed())
        });
        let ends = source_ends(&m.source, tps);
        let ends_took = started.elapsed();
        match groups.join() {
            Ok((active, groups_took)) => {
                tracing::debug!(?groups_took, ?ends_took, "quiet window: source read");
                (active, ends)
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    Ok((active?, ends?))
}
