//! `kmigrate status`: how far a migration is, from its state file or its shards' state
//! files, for the operator of a run spread over several workers. Reads files only: no
//! cluster is contacted, so it answers while the workers copy.

use std::path::PathBuf;

use crate::cli::{Format, StatusArgs};
use crate::config::Config;
use crate::error::{Outcome, usage};
use crate::fsutil;
use crate::ledger::{Phase, State, shards};
use crate::model::Shard;
use crate::report;
use crate::report::status::{self as status_report, ShardStatus, Status};

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
        Format::Table => report::print(&status_report::text(&status)),
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
