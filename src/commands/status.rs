//! `kmigrate status`: how far a migration is, from its state file or its shards' state
//! files, for the operator of a run spread over several workers. Reads files only: no
//! cluster is contacted, so it answers while the workers copy.

use std::path::PathBuf;

use serde::Serialize;

use crate::cli::{Format, StatusArgs};
use crate::config::Config;
use crate::error::{Outcome, usage};
use crate::fsutil;
use crate::ledger::{Phase, State, shards};
use crate::model::Shard;
use crate::report::{self, Align, Table, thousands};

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

pub fn execute(cfg: &Config, args: &StatusArgs) -> anyhow::Result<Outcome> {
    let plain = &cfg.migration.state_file;
    let files: Vec<(Option<Shard>, PathBuf)> = if plain.exists() {
        vec![(None, plain.clone())]
    } else {
        let found = shards::find(plain)?;
        let Some(count) = found.iter().map(|(s, _)| s.count).max() else {
            return Err(usage(format!(
                "no migration to show: neither {} nor shard state files beside it \
                 ({}.shard-INDEX-of-COUNT) exist. Start one with `kmigrate run`, or point \
                 state_file in [migration] at the run's file.",
                plain.display(),
                plain.display()
            )));
        };
        // Every shard of the split, also those whose worker has not written a file yet.
        (0..count)
            .map(|index| {
                let s = Shard { index, count };
                (Some(s), s.state_file(plain))
            })
            .chain(
                found
                    .into_iter()
                    .filter(|(s, _)| s.count != count)
                    .map(|(s, p)| (Some(s), p)),
            )
            .collect()
    };
    let mut shards = Vec::new();
    for (shard, path) in files {
        shards.push(one(shard, &path)?);
    }
    let status = Status {
        records_written: shards.iter().map(|s| s.records_written).sum(),
        offsets_planned: shards.iter().map(|s| s.offsets_planned).sum(),
        offsets_left: shards.iter().map(|s| s.offsets_left).sum(),
        complete: shards.iter().all(|s| s.status == "done"),
        shards,
    };
    match args.format {
        Format::Json => report::print(&format!("{}\n", serde_json::to_string_pretty(&status)?)),
        Format::Table => report::print(&render(&status)),
    }
    Ok(Outcome::Success)
}

fn one(shard: Option<Shard>, path: &std::path::Path) -> anyhow::Result<ShardStatus> {
    let holder = fsutil::lock_holder(&shards::lock_path(path))?;
    let state = State::load(path)?;
    let mut s = ShardStatus {
        shard: shard.map(|s| s.to_string()),
        status: "not-started",
        pid: holder.flatten(),
        phase: state.as_ref().map(|st| st.phase),
        partitions: 0,
        partitions_done: 0,
        records_written: 0,
        offsets_planned: 0,
        offsets_left: 0,
        state_file: path.display().to_string(),
    };
    if let Some(st) = &state {
        for p in &st.partitions {
            let planned = (p.end - p.start).max(0) as u64;
            let next = p.progress.acked.map_or(p.start, |(src, _)| src + 1);
            s.partitions += 1;
            s.partitions_done += usize::from(p.progress.done);
            s.records_written += p.progress.written;
            s.offsets_planned += planned;
            s.offsets_left += if p.progress.done {
                0
            } else {
                ((p.end - next).max(0) as u64).min(planned)
            };
        }
    }
    s.status = match (&holder, &state) {
        (Some(_), _) => "running",
        (None, Some(st)) if st.phase == Phase::Complete => "done",
        (None, Some(_)) => "failed",
        (None, None) => "not-started",
    };
    Ok(s)
}

fn render(st: &Status) -> String {
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
