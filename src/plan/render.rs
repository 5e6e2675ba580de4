//! Printing a plan: tables for people, JSON for machines.

use std::fmt::Write as _;

use super::{Plan, Status, TopicAction};
use crate::text::{Align, Table, plural, thousands, time_ms};

/// Above this many partition rows, the table shows one row per topic unless `--verbose`.
const MAX_PARTITION_ROWS: usize = 100;

/// The plan as a person reads it before a cutover.
pub fn text(plan: &Plan, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kmigrate plan: source {} -> target {}, read at {}",
        plan.source,
        plan.target,
        time_ms(plan.created_at_ms)
    );
    let _ = writeln!(
        out,
        "partitions no group committed: {}",
        match plan.uncommitted_partitions {
            crate::config::UncommittedPolicy::Earliest => "migrated from the low watermark",
            crate::config::UncommittedPolicy::Skip => "skipped",
        }
    );

    if verbose || plan.partitions.len() <= MAX_PARTITION_ROWS {
        out.push_str("\nPARTITIONS\n");
        out.push_str(&partition_table(plan).render(2));
    } else {
        let _ = writeln!(
            out,
            "\nPARTITIONS ({} in all: one row per topic, --verbose for one per partition)",
            thousands(plan.partitions.len() as i64)
        );
    }

    out.push_str("\nTOPICS\n");
    let mut t = Table::new(&[
        ("TOPIC", Align::Left),
        ("PARTITIONS", Align::Right),
        ("MIGRATE", Align::Right),
        ("TARGET", Align::Right),
        ("ON TARGET", Align::Left),
        ("TO MIGRATE", Align::Right),
    ]);
    for tp in &plan.topics {
        let migrate = plan
            .partitions
            .iter()
            .filter(|p| p.topic == tp.topic && p.status == Status::Migrate)
            .count();
        // A renamed topic shows where it goes: `orders -> orders.v2`.
        let name = if tp.target() == tp.topic || tp.action == TopicAction::None {
            tp.topic.clone()
        } else {
            format!("{} -> {}", tp.topic, tp.target())
        };
        t.row(vec![
            name,
            tp.source_partitions.to_string(),
            migrate.to_string(),
            tp.target_partitions
                .map_or("-".to_string(), |n| n.to_string()),
            match tp.action {
                TopicAction::Ready => "ready".to_string(),
                TopicAction::Create => {
                    if tp.create_configs.is_empty() {
                        "will be created".to_string()
                    } else {
                        let cfg: Vec<String> = tp
                            .create_configs
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        format!("will be created with {}", cfg.join(", "))
                    }
                }
                TopicAction::Missing => "MISSING".to_string(),
                TopicAction::TooFewPartitions => "TOO FEW PARTITIONS".to_string(),
                TopicAction::None => "not migrated".to_string(),
            },
            thousands(tp.to_migrate),
        ]);
    }
    out.push_str(&t.render(2));

    out.push_str("\nGROUPS\n");
    let mut t = Table::new(&[
        ("GROUP", Align::Left),
        ("STATE", Align::Left),
        ("MEMBERS", Align::Right),
        ("TOPICS", Align::Left),
        ("BACKLOG", Align::Right),
        ("LOST", Align::Right),
    ]);
    for g in &plan.groups {
        t.row(vec![
            g.group.clone(),
            g.state.to_string(),
            g.members.len().to_string(),
            g.topics.join(","),
            thousands(g.backlog),
            thousands(g.lost),
        ]);
    }
    if t.is_empty() {
        out.push_str("  (none selected)\n");
    } else {
        out.push_str(&t.render(2));
    }

    let rows: usize = plan.groups.iter().map(|g| g.resume_at.len()).sum();
    if rows > 0 && (verbose || rows <= MAX_PARTITION_ROWS) {
        out.push_str("\nWHERE GROUPS WILL RESUME ON THE TARGET (provisional: gaps in the source move it down; run commits the exact offsets)\n");
        let mut t = Table::new(&[
            ("GROUP", Align::Left),
            ("TOPIC", Align::Left),
            ("PART", Align::Right),
            ("TARGET OFFSET", Align::Right),
        ]);
        for g in &plan.groups {
            for r in &g.resume_at {
                t.row(vec![
                    g.group.clone(),
                    r.topic.clone(),
                    r.partition.to_string(),
                    thousands(r.target_offset),
                ]);
            }
        }
        out.push_str(&t.render(2));
    }

    let tot = &plan.totals;
    out.push_str("\nTOTALS\n");
    let _ = writeln!(
        out,
        "  {} to migrate, {} of {} partitions, {} topics, {} groups",
        plural(tot.messages, "message", "messages"),
        thousands(tot.partitions_to_migrate as i64),
        thousands(tot.partitions as i64),
        thousands(tot.topics as i64),
        thousands(tot.groups as i64),
    );
    if tot.lost > 0 {
        let _ = writeln!(
            out,
            "  {} lost to expiry before the migration (see LOST above)",
            plural(tot.lost, "message", "messages")
        );
    }
    if !tot.skipped.is_empty() {
        let parts: Vec<String> = tot
            .skipped
            .iter()
            .map(|(r, n)| format!("{} {r}", thousands(*n as i64)))
            .collect();
        let _ = writeln!(out, "  skipped partitions: {}", parts.join(", "));
    }
    if tot.topics_to_create > 0 {
        let _ = writeln!(
            out,
            "  {} created on the target",
            plural(tot.topics_to_create as i64, "topic", "topics")
        );
    }
    if plan.partitions.iter().any(|p| p.status == Status::Migrate) {
        out.push_str(
            "  (counts are offsets: compacted topics and transaction markers leave gaps, so \
             fewer records may exist)\n",
        );
    }

    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\nWARNINGS ({})", plan.warnings.len());
        for w in &plan.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    if !plan.problems.is_empty() {
        let _ = writeln!(
            out,
            "\nPROBLEMS ({}): `kmigrate run` refuses until they are fixed",
            plan.problems.len()
        );
        for p in &plan.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    out
}

fn partition_table(plan: &Plan) -> Table {
    let mut t = Table::new(&[
        ("TOPIC", Align::Left),
        ("PART", Align::Right),
        ("COMMITTED (group=offset)", Align::Left),
        ("LOW", Align::Right),
        ("HIGH", Align::Right),
        ("START", Align::Right),
        ("END", Align::Right),
        ("TO MIGRATE", Align::Right),
        ("STATUS", Align::Left),
    ]);
    for p in &plan.partitions {
        let mut committed: Vec<String> = p
            .committed
            .iter()
            .map(|(g, o)| format!("{g}={}", thousands(*o)))
            .collect();
        committed.extend(p.uncommitted_groups.iter().map(|g| format!("{g}=none")));
        let status = match (p.status, p.reason) {
            (Status::Migrate, _) => "migrate".to_string(),
            (Status::Skip, Some(r)) => format!("skip: {}", r.as_str()),
            (Status::Skip, None) => "skip".to_string(),
        };
        let lost: i64 = p.lost.values().copied().max().unwrap_or(0);
        let status = if lost > 0 {
            format!("{status} ({} lost)", thousands(lost))
        } else {
            status
        };
        let high = if p.stable < p.high {
            format!("{} (LSO {})", thousands(p.high), thousands(p.stable))
        } else {
            thousands(p.high)
        };
        t.row(vec![
            p.topic.clone(),
            p.partition.to_string(),
            committed.join(" "),
            thousands(p.low),
            high,
            thousands(p.start),
            thousands(p.end),
            thousands(p.to_migrate),
            status,
        ]);
    }
    t
}

/// The plan JSON (the schema documented in docs/plan.md).
pub fn json(plan: &Plan) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(plan)?;
    s.push('\n');
    Ok(s)
}
