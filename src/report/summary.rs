//! A run's phases and summary: what was planned, written and found on the target per
//! topic, and each group's commit. One data type, rendered as the stdout tables here and
//! as the `summary` event in [`super::json`], so that people and scripts read the same
//! figures.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::copy::Routes;
use crate::ledger::{CommitOutcome, GroupOffsets};
use crate::text::{Align, Table, thousands};

/// Where a run is; each phase is shown as an event and as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    Planning,
    Copying,
    Committing,
    Done,
}

impl RunPhase {
    pub const ALL: [RunPhase; 4] = [
        RunPhase::Planning,
        RunPhase::Copying,
        RunPhase::Committing,
        RunPhase::Done,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RunPhase::Planning => "planning",
            RunPhase::Copying => "copying",
            RunPhase::Committing => "committing",
            RunPhase::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Per topic, sorted by name.
    pub topics: Vec<TopicResult>,
    /// Partitions whose target growth differs from the records written.
    pub mismatches: Vec<String>,
    /// This run's own figures (absent when an earlier run had copied everything).
    pub this_run: Option<ThisRun>,
    /// Each group's commit on the target (empty until offsets are committed, or with
    /// `translate_offsets = false`).
    pub groups: Vec<GroupResult>,
    /// Per source topic: how this run's copies moved its records (the batch engine's
    /// passed and re-encoded batches, the record engine's records).
    pub routes: BTreeMap<String, Routes>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicResult {
    pub topic: String,
    /// The topic's name on the target (the same unless `[topics]` renames it).
    pub target_topic: String,
    /// Offsets in the planned ranges.
    pub planned_offsets: i64,
    /// Records acknowledged by the target (this run and before).
    pub written_records: u64,
    /// How much the target partitions grew since the copy began.
    pub target_growth: i64,
}

impl TopicResult {
    pub fn matches(&self) -> bool {
        self.target_growth == self.written_records as i64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ThisRun {
    pub records: u64,
    pub bytes: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupResult {
    pub group: String,
    /// (topic, partition, offset on the target) where the group resumes.
    pub offsets: Vec<(String, i32, i64)>,
    #[serde(flatten)]
    pub outcome: CommitOutcome,
}

impl From<&GroupOffsets> for GroupResult {
    fn from(g: &GroupOffsets) -> GroupResult {
        GroupResult {
            group: g.group.clone(),
            offsets: g.offsets.clone(),
            outcome: g.outcome.clone(),
        }
    }
}

impl RunSummary {
    /// The SUMMARY table (stdout and the log file).
    pub fn copy_text(&self) -> String {
        let mut out = String::new();
        out.push_str("\nSUMMARY\n");
        let mut t = Table::new(&[
            ("TOPIC", Align::Left),
            ("PLANNED (offsets)", Align::Right),
            ("WRITTEN (records)", Align::Right),
            ("ON TARGET", Align::Right),
            ("RESULT", Align::Left),
        ]);
        for r in &self.topics {
            let written = r.written_records as i64;
            let result = if !r.matches() {
                "MISMATCH".to_string()
            } else if written == r.planned_offsets {
                "all written".to_string()
            } else {
                format!(
                    "all written ({} offsets were gaps)",
                    thousands(r.planned_offsets - written)
                )
            };
            t.row(vec![
                r.topic.clone(),
                thousands(r.planned_offsets),
                thousands(written),
                thousands(r.target_growth),
                result,
            ]);
        }
        out.push_str(&t.render(2));
        for r in self.topics.iter().filter(|r| r.matches()) {
            out.push_str(&format!(
                "  {}: {} unconsumed messages migrated, all written to {} on the target\n",
                r.topic,
                thousands(r.written_records as i64),
                r.target_topic
            ));
        }
        if let Some(s) = &self.this_run {
            let elapsed = std::time::Duration::from_millis(s.elapsed_ms);
            let secs = elapsed.as_secs_f64().max(0.001);
            out.push_str(&format!(
                "  this run: {} records, {} in {} ({} rec/s, {:.1} MB/s)\n",
                thousands(s.records as i64),
                crate::text::bytes(s.bytes),
                crate::text::duration(elapsed),
                thousands((s.records as f64 / secs) as i64),
                s.bytes as f64 / secs / 1e6
            ));
        }
        out.push_str(&self.routes_text());
        if !self.mismatches.is_empty() {
            out.push_str(&format!("\nMISMATCHES ({})\n", self.mismatches.len()));
            for m in &self.mismatches {
                out.push_str(&format!("  - {m}\n"));
            }
        }
        out
    }

    /// How the records travelled, per topic; nothing when this run copied nothing.
    fn routes_text(&self) -> String {
        if self.routes.is_empty() {
            return String::new();
        }
        let mut t = Table::new(&[
            ("TOPIC", Align::Left),
            ("PASSED ON (batches)", Align::Right),
            ("BYTES", Align::Right),
            ("RE-ENCODED (batches)", Align::Right),
            ("BYTES", Align::Right),
            ("RECORD ENGINE (records)", Align::Right),
        ]);
        for (topic, r) in &self.routes {
            t.row(vec![
                topic.clone(),
                thousands(r.passed_batches as i64),
                crate::text::bytes(r.passed_bytes),
                thousands(r.reencoded_batches as i64),
                crate::text::bytes(r.reencoded_bytes),
                thousands(r.record_engine_records as i64),
            ]);
        }
        format!("\nHOW THE RECORDS TRAVELLED (this run)\n{}", t.render(2))
    }

    /// Where each group resumes on the target, and whether it is committed.
    pub fn offsets_text(&self) -> String {
        const SHOWN: usize = 6;
        let mut t = Table::new(&[
            ("GROUP", Align::Left),
            (
                "RESUMES ON THE TARGET AT (topic/partition@offset)",
                Align::Left,
            ),
            ("RESULT", Align::Left),
        ]);
        for g in &self.groups {
            let mut at: Vec<String> = g
                .offsets
                .iter()
                .take(SHOWN)
                .map(|(t, p, o)| format!("{t}/{p}@{}", thousands(*o)))
                .collect();
            if g.offsets.len() > SHOWN {
                at.push(format!("... ({} partitions)", g.offsets.len()));
            }
            let result = match &g.outcome {
                CommitOutcome::Committed => "committed".to_string(),
                CommitOutcome::KeptAhead(kept) => {
                    format!("committed; kept ahead: {}", kept.join(", "))
                }
                CommitOutcome::Refused(why) => format!("REFUSED: {why}"),
                CommitOutcome::Pending => "pending".to_string(),
            };
            t.row(vec![g.group.clone(), at.join(" "), result]);
        }
        let mut out = String::from("\nCONSUMER GROUPS ON THE TARGET\n");
        if t.is_empty() {
            out.push_str("  (no group offsets to commit)\n");
        } else {
            out.push_str(&t.render(2));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_carries_the_table_figures_and_each_commit_result() {
        let s = RunSummary {
            topics: vec![TopicResult {
                topic: "orders".into(),
                target_topic: "orders.v2".into(),
                planned_offsets: 1200,
                written_records: 1000,
                target_growth: 1000,
            }],
            groups: vec![
                GroupResult {
                    group: "billing".into(),
                    offsets: vec![("orders".into(), 0, 7)],
                    outcome: CommitOutcome::Committed,
                },
                GroupResult {
                    group: "audit".into(),
                    offsets: Vec::new(),
                    outcome: CommitOutcome::Refused("has members".into()),
                },
            ],
            ..RunSummary::default()
        };
        let mut s = s;
        s.routes.insert(
            "orders".into(),
            Routes {
                passed_batches: 12,
                passed_bytes: 3 << 20,
                reencoded_batches: 2,
                reencoded_bytes: 4096,
                record_engine_records: 0,
            },
        );
        let text = s.copy_text();
        assert!(text.contains("1,200") && text.contains("all written (200 offsets were gaps)"));
        let travelled = text
            .lines()
            .find(|l| l.trim_start().starts_with("orders") && l.contains(" MB"))
            .unwrap_or_else(|| panic!("no routes row in:\n{text}"));
        let cells: Vec<&str> = travelled.split_whitespace().collect();
        assert_eq!(cells[1], "12", "{travelled}");
        assert_eq!(cells[2..4], ["3.1", "MB"], "{travelled}");
        assert_eq!(cells[4], "2", "{travelled}");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["topics"][0]["planned_offsets"], 1200);
        assert_eq!(v["topics"][0]["written_records"], 1000);
        assert_eq!(v["topics"][0]["target_growth"], 1000);
        assert_eq!(v["groups"][0]["result"], "committed");
        assert_eq!(
            v["groups"][0]["offsets"][0],
            serde_json::json!(["orders", 0, 7])
        );
        assert_eq!(v["routes"]["orders"]["passed_batches"], 12);
        assert_eq!(v["routes"]["orders"]["reencoded_bytes"], 4096);
        assert_eq!(v["groups"][1]["result"], "refused");
        assert_eq!(v["groups"][1]["detail"], "has members");
        assert!(s.offsets_text().contains("REFUSED: has members"));
    }
}
