//! `kmigrate offsets`: the offset map, for consumers that keep their positions outside
//! Kafka (Flink and Spark checkpoints, Kafka Connect sinks, `assign()` users). Reads the
//! state file (or the shards' state files) only: no cluster is contacted.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::cli::{MapFormat, OffsetsArgs, OffsetsCommand};
use crate::config::Config;
use crate::error::{Outcome, usage};
use crate::ledger::{PartitionState, State, shards};
use crate::offsets::{Run, translate_one};
use crate::report;

pub fn execute(cfg: &Config, args: &OffsetsArgs) -> anyhow::Result<Outcome> {
    let partitions = load(cfg)?;
    match &args.command {
        OffsetsCommand::Export { format } => {
            report::print(&match format {
                MapFormat::Json => json(&partitions)?,
                MapFormat::Csv => csv(&partitions),
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

#[derive(Serialize)]
struct Export<'a> {
    partitions: Vec<ExportPartition<'a>>,
}

/// One partition of `offsets export --format json`.
#[derive(Serialize)]
struct ExportPartition<'a> {
    topic: &'a str,
    partition: i32,
    target_topic: String,
    /// The planned source range `[start, end)`.
    start: i64,
    end: i64,
    /// Every record of the range is on the target.
    done: bool,
    /// `[source, target, count]`: source offsets `source..source+count` are target offsets
    /// `target..target+count`.
    runs: &'a [Run],
}

fn json(parts: &[PartitionState]) -> anyhow::Result<String> {
    let doc = Export {
        partitions: parts
            .iter()
            .map(|p| ExportPartition {
                topic: &p.topic,
                partition: p.partition,
                target_topic: p.target_tp().topic,
                start: p.start,
                end: p.end,
                done: p.progress.done,
                runs: p.map.runs(),
            })
            .collect(),
    };
    Ok(format!("{}\n", serde_json::to_string_pretty(&doc)?))
}

fn csv(parts: &[PartitionState]) -> String {
    let mut out = String::from("topic,partition,target_topic,source_offset,target_offset,count\n");
    for p in parts {
        let target = p.target_tp().topic;
        for Run(s, t, n) in p.map.runs() {
            let _ = writeln!(
                out,
                "{},{},{},{s},{t},{n}",
                csv_field(&p.topic),
                p.partition,
                csv_field(&target)
            );
        }
    }
    out
}

/// A topic name as a CSV field (RFC 4180). Kafka topic names are `[a-zA-Z0-9._-]`, so this
/// only matters for hand-made state files.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_field("orders.v1"), "orders.v1");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
