//! `kmigrate verify`: prove that the target holds exactly what the run copied, record by
//! record, and that every group's offset on the target is the translated one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cli::{Format, VerifyArgs};
use crate::config::Config;
use crate::error::{Outcome, usage};
use crate::ledger::{State, shards};
use crate::migration::Clusters;
use crate::report;
use crate::verify::{self, Report};

pub fn execute(cfg: &Config, clusters: &Clusters, args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let plain = &cfg.migration.state_file;
    // A sharded run left one state file per shard: without --shard, all of them are
    // verified (the plain file, when there is one, is an unsharded run's and wins).
    let paths: Vec<PathBuf> = match args.shard {
        Some(s) => vec![s.state_file(plain)],
        None if plain.exists() => vec![plain.clone()],
        None => match shards::complete_split(plain)? {
            Some(found) => found.into_iter().map(|(_, p)| p).collect(),
            None => vec![plain.clone()],
        },
    };
    let mut states = Vec::new();
    for path in &paths {
        let Some(state) = State::load(path)? else {
            return Err(usage(format!(
                "verify compares what a run copied, and needs that run's state file: {} does \
                 not exist. Run `kmigrate run` first, or point state_file in [migration] at \
                 the file the run wrote.",
                path.display()
            )));
        };
        if let Some(s) = args.shard
            && state.shard != Some(s)
        {
            return Err(usage(format!(
                "the state file {} is not shard {s}'s: move it back to where its worker wrote it",
                path.display()
            )));
        }
        states.push(state);
    }
    let readers = args.pipelines.map_or(cfg.migration.pipelines, usize::from);
    let mut reports = Vec::new();
    for state in &states {
        reports.push(verify::verify(
            &clusters.source,
            &clusters.target,
            state,
            readers,
        )?);
    }
    let rep = merge(reports);
    match args.format {
        Format::Json => report::print(&format!("{}\n", serde_json::to_string_pretty(&rep)?)),
        Format::Table => {
            let text = report::verify::text(&rep, args.verbose);
            report::print(&text);
            report::log(&cfg.migration.log_file, "verify", &text);
        }
    }
    Ok(if rep.ok() {
        Outcome::Success
    } else {
        Outcome::ProblemsFound
    })
}

/// One report of several shards' reports: every partition once (each belongs to one
/// shard), and a group spread over shards once, with every shard's mismatches.
fn merge(reports: Vec<Report>) -> Report {
    let mut out = Report {
        partitions: Vec::new(),
        groups: Vec::new(),
        records: 0,
        bytes: 0,
        seconds: 0.0,
    };
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in reports {
        out.partitions.extend(r.partitions);
        for g in r.groups {
            let e = groups.entry(g.group).or_default();
            e.extend(g.mismatch);
        }
        out.records += r.records;
        out.bytes += r.bytes;
        out.seconds += r.seconds;
    }
    out.partitions
        .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out.groups = groups
        .into_iter()
        .map(|(group, m)| verify::GroupResult {
            group,
            mismatch: (!m.is_empty()).then(|| m.join("; ")),
        })
        .collect();
    out
}
