//! The end of a migration, shared by `run` and `cutover`: check what the target holds
//! against the copy, then (unless `translate_offsets = false`) work out every group's
//! offsets on the target, commit them, record the outcomes in the state file, and report.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;

use super::Migration;
use crate::copy::Snapshot;
use crate::error::Outcome;
use crate::kafka::Cluster;
use crate::ledger::{Ledger, Phase, State};
use crate::model::Tp;
use crate::plan::late::{self, Late};
use crate::report::{
    self, GroupResult, Observer, RunPhase, RunSummary, ThisRun, TopicResult, migration as texts,
};
use crate::translate;

/// Group -> partition -> committed offset.
type Finals = BTreeMap<String, BTreeMap<Tp, i64>>;

/// Where the groups' offsets on the target come from.
#[derive(Debug, Clone, Copy)]
pub enum Offsets<'a> {
    /// A `run`: translated from the commits the plan read, each replaced by the group's
    /// commit after the copy when it moved since (read leniently: when the source does not
    /// answer, the plan's stand). `owned`: a shard's partitions, which alone it commits.
    OfPlan { owned: Option<&'a BTreeSet<usize>> },
    /// A `cutover`: translated from every group's final commit, read once the source is
    /// still (an error when the source does not answer).
    Final,
}

/// How one command finishes.
pub struct Finish<'a> {
    /// The command a refused group is told to run again.
    pub command: &'static str,
    pub offsets: Offsets<'a>,
    /// `--force-offsets`: move a group's offset on the target backwards too.
    pub force: bool,
    /// The run's progress display, JSON events and metrics, when it has them.
    pub obs: Option<&'a Observer>,
}

impl Finish<'_> {
    fn observe(&self, summary: &RunSummary) {
        if let Some(obs) = self.obs {
            obs.summary(summary);
        }
    }
}

/// How a migration's end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The target does not match the copy: no group offset was committed.
    Mismatch,
    /// The copy checked out; the groups' offsets were committed (when translated at all):
    /// success when the migration is complete, problems found when a group was refused.
    Checked(Outcome),
}

impl Finished {
    pub fn outcome(self) -> Outcome {
        match self {
            Finished::Mismatch => Outcome::ProblemsFound,
            Finished::Checked(outcome) => outcome,
        }
    }
}

/// Checks the copy; then commits every group's offsets on the target and records them.
pub fn finish(
    m: &Migration,
    ledger: &mut Ledger,
    snap: Option<&Snapshot>,
    how: &Finish,
) -> anyhow::Result<Finished> {
    let reads_ahead = matches!(how.offsets, Offsets::Final)
        && m.cfg.migration.translate_offsets
        && ledger.phase() == Phase::Copied;
    let (mut summary, ahead) = check_reading_ahead(m, &ledger.state, snap, reads_ahead)?;
    if !summary.mismatches.is_empty() {
        report::note(match how.offsets {
            Offsets::OfPlan { .. } => {
                "the target does not match the plan: group offsets were not committed"
            }
            Offsets::Final => {
                "the target does not match the copy: group offsets were not committed"
            }
        });
        how.observe(&summary);
        return Ok(Finished::Mismatch);
    }
    tracing::debug!("target checked");
    if !m.cfg.migration.translate_offsets {
        ledger.complete_without_offsets()?;
        report::note("translate_offsets = false: no group offsets were committed on the target");
        how.observe(&summary);
        return Ok(Finished::Checked(Outcome::Success));
    }
    if let Some(obs) = how.obs {
        obs.phase(RunPhase::Committing);
    }
    if ledger.phase() == Phase::Copied {
        commit_offsets(m, ledger, how, ahead)?;
    }
    summary.groups = ledger.state.offsets.iter().map(GroupResult::from).collect();
    let text = summary.offsets_text();
    report::print(&text);
    m.log(&format!("{} (offsets)", how.command), &text);
    how.observe(&summary);
    Ok(Finished::Checked(if ledger.phase() == Phase::Complete {
        Outcome::Success
    } else {
        Outcome::ProblemsFound
    }))
}

/// Works out every group's offsets on the target (a cutover's from what it read `ahead`,
/// when it did), commits them and records the outcomes.
fn commit_offsets(
    m: &Migration,
    ledger: &mut Ledger,
    how: &Finish,
    ahead: Option<Ahead>,
) -> anyhow::Result<()> {
    let state = &ledger.state;
    let (mut targets, live) = match how.offsets {
        Offsets::OfPlan { owned } => (of_plan(&m.source, &m.target, state, owned)?, None),
        Offsets::Final => {
            let ahead = ahead.unwrap_or_else(|| read_ahead(m, state));
            (of_final_commits(state, ahead.finals)?, Some(ahead.live))
        }
    };
    translate::drop_done(&mut targets, &state.offsets);
    tracing::debug!(groups = targets.len(), "group offsets translated");
    let live = match live {
        Some(live) => live?,
        None => {
            let names: Vec<&str> = targets.keys().map(String::as_str).collect();
            translate::live_on_target(&m.target, &names)?
        }
    };
    let rerun = format!("kmigrate {}", how.command);
    let results = translate::commit(&m.target, &targets, &live, how.force, &rerun)?;
    tracing::debug!("groups committed on the target");
    ledger.record_offsets(results)?;
    tracing::debug!("outcomes saved in the state file");
    Ok(())
}

/// A `run`'s group offsets: the plan's commits translated, replaced by the commits after
/// the copy where the groups moved on.
fn of_plan(
    source: &Cluster,
    target: &Cluster,
    state: &State,
    owned: Option<&BTreeSet<usize>>,
) -> anyhow::Result<BTreeMap<String, BTreeMap<Tp, i64>>> {
    // A shard's worker commits its own partitions' offsets only; the other shards'
    // workers commit theirs.
    let skipped = translate::skipped_partitions_to_commit(&state.plan, owned);
    let ends = target
        .admin()?
        .highs(&skipped)
        .context("reading the target's end of partitions with nothing to copy")?;
    let mut targets = translate::group_targets(&state.plan, state, &ends, owned);
    // The groups' commits now, not the plan's: one that kept consuming during the copy
    // resumes after what it consumed.
    let finals = final_commits(source, state).unwrap_or_else(|e| {
        report::warning(&texts::final_commits_unread(&e));
        BTreeMap::new()
    });
    let past = translate::apply_final_commits(state, &mut targets, &finals);
    if !past.is_empty() {
        report::warning(&texts::past_copy(&past));
    }
    Ok(targets)
}

/// A cutover's group offsets: every group's final commit on the source, translated through
/// the offset map; warns about commits the copy does not cover or that lie below its start.
fn of_final_commits(state: &State, finals: anyhow::Result<Finals>) -> anyhow::Result<Finals> {
    let finals = finals?;
    tracing::debug!(groups = finals.len(), "final commits read on the source");
    let uncovered = translate::uncovered_commits(state, &finals);
    if !uncovered.is_empty() {
        report::warning(&texts::uncovered(&uncovered));
    }
    // A commit below the copy's start translates to the first copied record: say what the
    // group misses (the low watermarks as planned: below them the source expired records).
    let ranges = super::follow::ranges(state, &state.plan);
    for r in crate::plan::live::resets(&ranges, &finals) {
        report::warning(&texts::reset_at_cutover(&r));
    }
    translate::final_targets(state, &finals)
        .map_err(|problems| anyhow::anyhow!(texts::untranslatable(&problems)))
}

/// The committed offsets on the source now of every planned group whose offsets are not on
/// the target yet (a rerun does not ask again for those committed before).
fn final_commits(
    source: &Cluster,
    state: &State,
) -> anyhow::Result<BTreeMap<String, BTreeMap<Tp, i64>>> {
    // Read after the copy, which may have outlived a coordinator: asked through a new
    // session, so that each group's coordinator is looked up now.
    let admin = source.fresh_admin()?;
    let pending = pending_groups(state);
    let answers = admin
        .each(
            "listing committed offsets of groups",
            &pending,
            |session, g| session.committed(g),
        )
        .context("reading the final committed offsets of the groups on the source")?;
    pending
        .iter()
        .zip(answers)
        .map(|(g, commits)| {
            let commits = commits.with_context(|| {
                format!("reading the final committed offsets of group {g} on the source")
            })?;
            Ok((g.to_string(), commits))
        })
        .collect()
}

/// The planned groups whose offsets are not on the target yet.
fn pending_groups(state: &State) -> Vec<&str> {
    let done: BTreeSet<&str> = state
        .offsets
        .iter()
        .filter(|g| g.outcome.is_done())
        .map(|g| g.group.as_str())
        .collect();
    state
        .plan
        .groups
        .iter()
        .map(|g| g.group.as_str())
        .filter(|g| !done.contains(g))
        .collect()
}

/// The partitions a group reads on the target that grew on the source since the plan
/// (`owned`: a shard's, as in [`Offsets::OfPlan`]).
pub fn arrived_after_plan(
    source: &Cluster,
    state: &State,
    owned: Option<&BTreeSet<usize>>,
) -> anyhow::Result<Vec<Late>> {
    let watched = late::watched(&state.plan, owned);
    let tps: Vec<Tp> = watched.iter().map(|(tp, _)| tp.clone()).collect();
    let now = source
        .admin()?
        .watermarks(&tps)
        .context("re-reading the source's offsets after the copy")?;
    Ok(late::arrived_after_plan(&watched, &now))
}

/// What a cutover reads before it works out the groups' offsets.
struct Ahead {
    /// The groups' final commits on the source.
    finals: anyhow::Result<Finals>,
    /// Which of them have members on the target.
    live: anyhow::Result<translate::LiveOnTarget>,
}

/// Reads, at once, the groups' final commits on the source and which of them have members
/// on the target.
fn read_ahead(m: &Migration, state: &State) -> Ahead {
    std::thread::scope(|s| {
        let finals = s.spawn(|| final_commits(&m.source, state));
        let live = translate::live_on_target(&m.target, &pending_groups(state));
        Ahead {
            finals: finals
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            live,
        }
    })
}

/// [`check_copy`]; with `ahead`, what a cutover reads before it works out the groups'
/// offsets ([`read_ahead`]) is read at the same time: none of it needs the other. Only
/// once the check passed is what was read used.
fn check_reading_ahead(
    m: &Migration,
    state: &State,
    snap: Option<&Snapshot>,
    ahead: bool,
) -> anyhow::Result<(RunSummary, Option<Ahead>)> {
    std::thread::scope(|s| {
        let reading = ahead.then(|| s.spawn(|| read_ahead(m, state)));
        let summary = check_copy(m, state, snap);
        let ahead = reading.map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        Ok((summary?, ahead))
    })
}

/// Compares what the target holds with what was copied, per topic, and reports it (the
/// reference procedure's step 5).
fn check_copy(m: &Migration, state: &State, snap: Option<&Snapshot>) -> anyhow::Result<RunSummary> {
    let tps: Vec<Tp> = state.partitions.iter().map(|p| p.target_tp()).collect();
    let highs = m
        .target
        .admin()?
        .highs(&tps)
        .context("reading the target's offsets to check the copy")?;
    // (source topic, target topic) -> (planned offsets, written, target growth)
    let mut per_topic: BTreeMap<(&str, &str), (i64, u64, i64)> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for (p, tp) in state.partitions.iter().zip(&tps) {
        let e = per_topic
            .entry((p.topic.as_str(), tp.topic.as_str()))
            .or_default();
        e.0 += p.end - p.start;
        e.1 += p.progress.written;
        let growth = highs
            .get(tp)
            .map_or(0, |h| h - p.progress.base.unwrap_or(*h));
        e.2 += growth;
        if growth != p.progress.written as i64 {
            mismatches.push(format!(
                "{tp}: {} record(s) written but the target partition grew by {growth}",
                p.progress.written
            ));
        }
    }
    let summary = RunSummary {
        topics: per_topic
            .into_iter()
            .map(
                |((topic, target_topic), (planned, written, growth))| TopicResult {
                    topic: topic.to_string(),
                    target_topic: target_topic.to_string(),
                    planned_offsets: planned,
                    written_records: written,
                    target_growth: growth,
                },
            )
            .collect(),
        mismatches,
        this_run: snap.map(|s| ThisRun {
            records: s.records_this_run,
            bytes: s.bytes_this_run,
            elapsed_ms: s.elapsed.as_millis() as u64,
        }),
        groups: Vec::new(),
        routes: snap.map(|s| s.routes.clone()).unwrap_or_default(),
    };
    let out = summary.copy_text();
    report::print(&out);
    m.log("run", &out);
    Ok(summary)
}
