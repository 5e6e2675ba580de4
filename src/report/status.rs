//! `kmigrate status`: a migration's progress per shard, as JSON (the data types) and as a
//! table.

use serde::Serialize;

use crate::ledger::Phase;
use crate::text::{Align, Table, thousands};

/// One shard's (or an unsharded run's) progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardStatus {
    /// `INDEX/COUNT`; `null` for an unsharded run.
    pub shard: Option<String>,
    /// `done` (complete), `running` (a worker holds its lock), `failed` (neither: it
    /// failed or was stopped; start its worker again to resume) or `not-started`.
    pub status: &'static str,
    /// Pid of the worker holding the lock, when running and known.
    pub pid: Option<u32>,
    /// `copying`, `copied` or `complete`; `null` before the state file exists.
    pub phase: Option<Phase>,
    pub partitions: usize,
    pub partitions_done: usize,
    pub records_written: u64,
    /// Offsets the plan copies for this shard (an upper bound of records).
    pub offsets_planned: u64,
    /// Offsets still to copy (the lag of the copy).
    pub offsets_left: u64,
    pub state_file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub shards: Vec<ShardStatus>,
    pub records_written: u64,
    pub offsets_planned: u64,
    pub offsets_left: u64,
    /// Every shard is complete.
    pub complete: bool,
}

/// The status as a table, one row per shard, and the totals.
pub fn text(st: &Status) -> String {
    let mut t = Table::new(&[
        ("SHARD", Align::Left),
        ("STATUS", Align::Left),
        ("PHASE", Align::Left),
        ("PARTITIONS DONE", Align::Right),
        ("RECORDS WRITTEN", Align::Right),
        ("OFFSETS PLANNED", Align::Right),
        ("OFFSETS LEFT", Align::Right),
    ]);
    for s in &st.shards {
        t.row(vec![
            s.shard.clone().unwrap_or_else(|| "-".to_string()),
            match s.pid {
                Some(pid) => format!("{} (pid {pid})", s.status),
                None => s.status.to_string(),
            },
            s.phase.map_or("-".to_string(), |p| {
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            }),
            format!("{}/{}", s.partitions_done, s.partitions),
            thousands(s.records_written as i64),
            thousands(s.offsets_planned as i64),
            thousands(s.offsets_left as i64),
        ]);
    }
    let done = st.shards.iter().filter(|s| s.status == "done").count();
    format!(
        "{}\n{} of {} shard(s) done: {} records written, {} of {} offsets left to copy{}\n",
        t.render(0),
        done,
        st.shards.len(),
        thousands(st.records_written as i64),
        thousands(st.offsets_left as i64),
        thousands(st.offsets_planned as i64),
        if st.complete { " (complete)" } else { "" }
    )
}
