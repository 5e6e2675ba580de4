//! `kmigrate offsets`: the offset map, for consumers that keep their positions outside
//! Kafka (Flink and Spark checkpoints, Kafka Connect sinks, `assign()` users). Reads the
//! state file (or the shards' state files) only: no cluster is contacted.

use std::path::PathBuf;

use crate::cli::{MapFormat, OffsetsArgs, OffsetsCommand};
use crate::config::Config;
use crate::error::{Outcome, usage};
use crate::ledger::{PartitionState, State, shards};
use crate::offsets::translate_one;
use crate::report::{self, offsets as offset_map};

pub fn execute(cfg: &Config, args: &OffsetsArgs) -> anyhow::Result<Outcome> {
    let partitions = load(cfg)?;
    match &args.command {
        OffsetsCommand::Export { format } => {
            report::print(&match format {
                MapFormat::Json => offset_map::json(&partitions)?,
                MapFormat::Csv => offset_map::csv(&partitions),
            });
            Ok(Outcome::Success)
        }
        OffsetsCommand::Translate {
            topic,
            partition,
            offset,
        } => translate(&partitions, topic, *partition, *offset),
    }
}

/// Every partition of the migration's state file, or of its shards' files.
fn load(cfg: &Config) -> anyhow::Result<Vec<PartitionState>> {
    let plain = &cfg.migration.state_file;
    let files: Vec<PathBuf> = if plain.exists() {
        vec![plain.clone()]
    } else {
        shards::find(plain)?.into_iter().map(|(_, p)| p).collect()
    };
    let mut out = Vec::new();
    for path in &files {
        if let Some(state) = State::load(path)? {
            out.extend(state.partitions);
        }
    }
    if out.is_empty() {
        return Err(usage(format!(
            "no offset map: {} does not exist (nor shard state files beside it). It is \
             written by `kmigrate run`; point state_file in [migration] at the run's file.",
            plain.display()
        )));
    }
    if let Some(p) = out.iter().find(|p| p.map.records() != p.progress.written) {
        return Err(usage(format!(
            "{}/{}: the state file has no offset map for the records copied so far (it was \
             written by a kmigrate that did not keep one); the groups' offsets it committed \
             are exact, but other offsets cannot be translated from it",
            p.topic, p.partition
        )));
    }
    Ok(out)
}

fn translate(
    parts: &[PartitionState],
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<Outcome> {
    let Some(p) = parts
        .iter()
        .find(|p| p.topic == topic && p.partition == partition)
    else {
        report::note(&format!(
            "{topic}/{partition} is not part of the copy: the plan did not copy it (nothing \
             to copy, or not selected)"
        ));
        return Ok(Outcome::ProblemsFound);
    };
    let next = p.progress.acked.map(|(_, t)| t + 1).or(p.progress.base);
    match translate_one(&p.map, (p.start, p.end), next, p.progress.done, offset) {
        Ok(t) => {
            report::print(&format!("{t}\n"));
            Ok(Outcome::Success)
        }
        Err(why) => {
            report::note(&format!(
                "source offset {offset} of {topic}/{partition} has no target offset: {why}"
            ));
            Ok(Outcome::ProblemsFound)
        }
    }
}
