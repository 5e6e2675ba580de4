//! The texts a migration's steps show the operator (`run`, `sync`, `cutover`): what
//! happened, and what to do about it. The steps decide; the words are here.

use std::path::Path;
use std::time::Duration;

use crate::ledger::Ledger;
use crate::ledger::shards::Busy;
use crate::model::{Ends, Tp};
use crate::plan::Plan;
use crate::plan::late::Late;
use crate::plan::live::{Growth, Quiet, Reset};
use crate::text::{thousands, time_ms};
use crate::translate::PastCopy;

/// The question's preamble: what `command` is about to copy, from where to where.
pub fn plan_totals(command: &str, plan: &Plan) -> String {
    let t = &plan.totals;
    format!(
        "kmigrate {command}: {} messages in {} partition(s) of {} topic(s) from {} to {}{}",
        thousands(t.messages),
        thousands(t.partitions_to_migrate as i64),
        thousands(t.topics as i64),
        plan.source,
        plan.target,
        if t.topics_to_create > 0 {
            format!(", creating {} topic(s)", t.topics_to_create)
        } else {
            String::new()
        }
    )
}

/// A worker refused because another one runs its shard (`what`: "shard 1/3").
pub fn shard_busy(what: &str, busy: &Busy) -> String {
    format!(
        "{what} is being run by another kmigrate (pid {}, lock {}): two workers on one shard \
         would copy its records twice. Give each worker its own shard index, or wait for the \
         other one to end.",
        busy.pid.map_or("unknown".to_string(), |p| p.to_string()),
        busy.path.display()
    )
}

/// `kmigrate {command}` refused because another kmigrate holds the migration's lock.
pub fn migration_busy(command: &str, busy: &Busy) -> String {
    format!(
        "another kmigrate (pid {}) is running this migration (lock {}), e.g. a `kmigrate \
         sync`: stop it first (Ctrl-C, or `kill -TERM {}`), wait until it has saved and \
         exited, then run `kmigrate {command}` again",
        busy.pid.map_or("unknown".to_string(), |p| p.to_string()),
        busy.path.display(),
        busy.pid.map_or("PID".to_string(), |p| p.to_string()),
    )
}

/// A `run` stopped by Ctrl-C / SIGTERM.
pub fn run_interrupted(records: u64, state_path: &Path) -> String {
    format!(
        "interrupted: {} records are on the target; progress is saved in {}. Run `kmigrate \
         run` again to continue.",
        thousands(records as i64),
        state_path.display()
    )
}

/// A `sync` stopped by Ctrl-C / SIGTERM: how to go on.
pub fn sync_stopped(records: u64, state_path: &Path) -> String {
    format!(
        "sync stopped: {} records are on the target; progress is saved in {}. `kmigrate \
         sync` continues it; once producers and consumers are stopped, `kmigrate cutover` \
         finishes it.",
        thousands(records as i64),
        state_path.display()
    )
}

/// A cutover with no state file before it.
pub const CUTOVER_WITHOUT_SYNC: &str =
    "no `kmigrate sync` state file: migrating as `kmigrate run` does";

/// A cutover after a `kmigrate run` (which found records that arrived after its plan).
pub const CUTOVER_AFTER_RUN: &str = "the run's copy is kept; the cutover copies what arrived \
     on the source after its plan and commits the groups' final offsets";

/// A cutover stopped by Ctrl-C / SIGTERM before the source was still.
pub const CUTOVER_INTERRUPTED_WAITING: &str =
    "interrupted while waiting for the source to stop: nothing was changed";

/// What a cutover finishes (`of_run`: a `kmigrate run`'s state file, else a sync's).
pub fn cutting_over(of_run: bool, ledger: &Ledger) -> String {
    format!(
        "cutting over the {} started at {} (state file {})",
        if of_run { "run" } else { "sync" },
        time_ms(ledger.state.started_at_ms),
        ledger.path().display()
    )
}

/// A cutover stopped by Ctrl-C / SIGTERM while copying the tail.
pub fn cutover_interrupted(state_path: &Path) -> String {
    format!(
        "interrupted: progress is saved in {}; run `kmigrate cutover` again to finish",
        state_path.display()
    )
}

/// Records arrived on the source after a `run`'s plan: they are not on the target.
pub fn late(late: &[Late]) -> String {
    let offsets: i64 = late.iter().map(Late::offsets).sum();
    let mut named: Vec<String> = late
        .iter()
        .take(10)
        .map(|l| {
            format!(
                "{} +{} ({} -> {})",
                l.tp,
                thousands(l.offsets()),
                l.planned,
                l.now
            )
        })
        .collect();
    if late.len() > 10 {
        named.push(format!("and {} more", late.len() - 10));
    }
    format!(
        "production has not stopped: {} offset(s) arrived on the source after the plan, in {} \
         partition(s): {}. kmigrate copied the planned records only: these records are NOT on \
         the target. Stop every producer and consumer of these topics, then run `kmigrate \
         cutover --yes`: it keeps what was copied, copies these records and commits the \
         groups' final offsets",
        thousands(offsets),
        late.len(),
        named.join(", ")
    )
}

/// Group commits read after a `run`'s copy that lie past what it copied.
pub fn past_copy(past: &[PastCopy]) -> String {
    let named: Vec<String> = past
        .iter()
        .take(10)
        .map(|p| {
            format!(
                "{} at {} offset {} (the copy ends at {})",
                p.group, p.tp, p.commit, p.end
            )
        })
        .collect();
    format!(
        "{} group commit(s) lie past the copy: the groups consumed records that arrived after \
         the plan: {}{}. On the target they resume at the copy's end; `kmigrate cutover` \
         copies the rest and commits their final offsets",
        past.len(),
        named.join(", "),
        if past.len() > 10 { ", ..." } else { "" }
    )
}

/// The groups' final commits could not be read after a `run`'s copy (`e`: why).
pub fn final_commits_unread(e: &anyhow::Error) -> String {
    format!(
        "{e:#}. The groups' offsets committed on the target are translated from the commits \
         the plan read; if a group consumed on the source during the copy, `kmigrate cutover \
         --yes` commits its final offsets once the source answers"
    )
}

/// Final commits on partitions a sync did not copy.
pub fn uncovered(uncovered: &[(String, Tp)]) -> String {
    let named: Vec<String> = uncovered
        .iter()
        .take(10)
        .map(|(g, tp)| format!("{g} at {tp}"))
        .collect();
    format!(
        "{} group commit(s) on partitions the sync did not copy (no group had committed them \
         when it was planned, and uncommitted_partitions = \"skip\"): {}. Those groups get no \
         offset there on the target; migrate those partitions separately",
        uncovered.len(),
        named.join(", ")
    )
}

/// A final commit below the copy's start, at a cutover.
pub fn reset_at_cutover(r: &Reset) -> String {
    format!(
        "{}. Those records are not on the target: if the group must still read them, have it \
         read them on the source (they stay there) before it moves to the target",
        r.text()
    )
}

/// The final commits could not all be translated (`problems`: each one and why).
pub fn untranslatable(problems: &[String]) -> String {
    format!(
        "translating the groups' final offsets: {}. Nothing was committed; the copy is saved. \
         Check that producers are stopped, then run `kmigrate cutover` again",
        problems.join("; ")
    )
}

/// How long a cutover took, and how much of the copy was its tail.
pub fn downtime(downtime: Duration, tail: u64, total: u64) -> String {
    format!(
        "cutover: {:.1} s from its start until the groups' offsets were committed on the \
         target (the downtime, after producers and consumers stopped); {} record(s) copied in \
         the tail, {} in all\n",
        downtime.as_secs_f64(),
        thousands(tail as i64),
        thousands(total as i64)
    )
}

/// A cutover's first reading found the source's offsets where the sync before it last
/// read them, unchanged for `ago_ms` since.
pub fn still_since_sync(ago_ms: i64) -> String {
    format!(
        "the source's offsets have not moved for {:.1} s (sync read the same ones before it \
         stopped): the quiet window counts from then",
        ago_ms.max(0) as f64 / 1000.0
    )
}

/// A cutover that waited `wait` s in vain for the source to stop: the groups still
/// `active`, and the partitions `moving` within the last `quiet` s.
pub fn not_still(
    (wait, quiet): (u64, u64),
    active: &[String],
    moving: Option<&Quiet<Ends>>,
) -> String {
    let mut why = Vec::new();
    if !active.is_empty() {
        why.push(format!(
            "consumer group(s) still have members on the source: {}",
            active.join("; ")
        ));
    }
    if let Some(q) = moving {
        let mut names: Vec<String> = q
            .moving()
            .iter()
            .take(10)
            .map(|tp| match q.last().get(tp) {
                Some(e) => format!("{tp} (high {}, last stable {})", e.high, e.stable),
                None => format!("{tp} (gone)"),
            })
            .collect();
        if q.moving().len() > 10 {
            names.push(format!("and {} more", q.moving().len() - 10));
        }
        why.push(format!(
            "the source's offsets moved within the last {quiet} s in: {}",
            names.join(", ")
        ));
    }
    format!(
        "cannot cut over after waiting {wait} s: {}. Stop every producer and consumer of the \
         migrated topics on the source, then run `kmigrate cutover` again (the sync's \
         progress is kept; nothing was committed)",
        why.join("; ")
    )
}

/// The note for what a sync's rescan added.
pub fn growth(growth: &Growth) -> String {
    let mut parts = Vec::new();
    if !growth.partitions.is_empty() {
        let mut named: Vec<String> = growth
            .partitions
            .iter()
            .take(10)
            .map(|p| format!("{} from offset {}", p.tp(), p.start))
            .collect();
        if growth.partitions.len() > 10 {
            named.push(format!("and {} more", growth.partitions.len() - 10));
        }
        parts.push(format!(
            "{} new partition(s): {}",
            growth.partitions.len(),
            named.join(", ")
        ));
    }
    if !growth.groups.is_empty() {
        let names: Vec<&str> = growth.groups.iter().map(|g| g.group.as_str()).collect();
        parts.push(format!(
            "{} new group(s), whose final offsets `kmigrate cutover` translates too: {}",
            names.len(),
            names.join(", ")
        ));
    }
    format!("rescan: following {}", parts.join("; "))
}

/// The warning for a reset seen while syncing, with what the operator can do.
/// A rescan that failed with what the clusters coming back would not heal (a pattern that
/// matches nothing for a moment, a new topic whose name on the target collides): sync keeps
/// following what it follows already.
pub fn rescan_failed(e: &anyhow::Error, every: Duration) -> String {
    format!(
        "{e:#}. sync goes on following the partitions and groups it follows already; the \
         next rescan, in {} s, tries again",
        every.as_secs()
    )
}

pub fn reset_while_syncing(r: &Reset, state_path: &Path) -> String {
    format!(
        "{}. If the group is to read them on the target, start the migration over (stop \
         `kmigrate sync`, delete what it copied to the target and move {} away, then run \
         `kmigrate sync` again: it copies from the groups' commits then); if the reset was a \
         mistake, commit the group at {} or later on the source before `kmigrate cutover`",
        r.text(),
        state_path.display(),
        r.start
    )
}

/// A `run` refused because its state file cannot be written (`e`: why).
pub fn state_unwritable_for_run(state_path: &Path, e: &anyhow::Error) -> String {
    format!(
        "the state file {} cannot be written ({e:#}): kmigrate saves its progress there \
         before it copies anything. Make its directory writable (or, if a state file exists, \
         move it to a writable place and point migration.state_file at it), then run again. \
         Nothing was copied.",
        state_path.display()
    )
}

/// `kmigrate {command}` refused because its state file cannot be written (`e`: why).
pub fn state_unwritable(command: &str, state_path: &Path, e: &anyhow::Error) -> String {
    format!(
        "the state file {} cannot be written ({e:#}): kmigrate saves its progress there. \
         Make its directory writable, then run `kmigrate {command}` again.",
        state_path.display()
    )
}

/// Target topics that lack partitions to be written (`short`: each, and how many it has);
/// `rescan`: a sync's rescan created them just now.
pub fn target_short(short: &[String], rescan: bool) -> String {
    if rescan {
        format!(
            "on the target, {} after creating them: nothing of them was copied. Check the \
             target's topics, then run `kmigrate sync` again",
            short.join("; ")
        )
    } else {
        format!(
            "on the target, {}: nothing was written. Add partitions or exclude the topics, \
             then run again",
            short.join("; ")
        )
    }
}
