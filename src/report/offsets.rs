//! `kmigrate offsets export`: the offset map for programs, as JSON or CSV.

use std::fmt::Write as _;

use serde::Serialize;

use crate::ledger::PartitionState;
use crate::offsets::Run;

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

/// The offset map as JSON: every partition with its runs.
pub fn json(parts: &[PartitionState]) -> anyhow::Result<String> {
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

/// The offset map as CSV: one line per run.
pub fn csv(parts: &[PartitionState]) -> String {
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
