//! Making the target ready before the first record is written there: create the topics a
//! plan (or a sync's rescan) needs, add partitions, tolerate another process that created
//! the same topics at the same time, and wait until the target's metadata shows every
//! partition to be written.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::error::usage;
use crate::kafka::Cluster;
use crate::plan::live::Growth;
use crate::plan::{Plan, TopicAction};
use crate::report::{self, migration as texts};

/// What the target needs before anything is written there.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// Topics to create: (name, partitions, configs).
    pub create: Vec<(String, i32, BTreeMap<String, String>)>,
    /// Topics whose partition count is to be raised: (name, new count).
    pub raise: Vec<(String, i32)>,
    /// Every target topic written to, with the partitions it needs at least.
    pub partitions: Vec<(String, i32)>,
    /// Whether a topic created meanwhile by another process is fine (other workers of a
    /// sharded run, a rescan racing another tool).
    shared: bool,
    /// The needs of a sync's rescan (else of a plan): says so in its refusals.
    rescan: bool,
}

impl Needs {
    /// What a plan needs on the target. `shared`: other workers of a sharded run create the
    /// same topics at the same time, so a topic one of them created already is not a
    /// failure.
    pub fn of_plan(target: &Cluster, plan: &Plan, shared: bool) -> anyhow::Result<Needs> {
        let existing = if shared {
            target.admin()?.topics()?
        } else {
            BTreeMap::new()
        };
        Ok(Needs {
            create: plan
                .topics
                .iter()
                .filter(|t| t.action == TopicAction::Create)
                .filter(|t| !existing.contains_key(t.target()))
                .map(|t| {
                    (
                        t.target().to_string(),
                        t.source_partitions,
                        t.create_configs.clone(),
                    )
                })
                .collect(),
            raise: Vec::new(),
            partitions: plan
                .topics
                .iter()
                .filter(|t| t.action != TopicAction::None)
                .map(|t| (t.target().to_string(), t.source_partitions))
                .collect(),
            shared,
            rescan: false,
        })
    }

    /// What a sync's rescan needs on the target for the partitions it found.
    pub fn of_growth(growth: &Growth) -> Needs {
        Needs {
            create: growth.create.clone(),
            raise: growth.raise.clone(),
            partitions: growth.needs().into_iter().collect(),
            shared: true,
            rescan: true,
        }
    }
}

/// Creates the topics and adds the partitions `needs` says (`allowed`: whether the
/// configuration lets kmigrate create topics), then checks that the target's metadata
/// shows every partition to be written, waiting up to the timeout for what was just
/// created. Refused (exit 2) when a partition is still missing.
pub fn prepare_target(target: &Cluster, needs: &Needs, allowed: bool) -> anyhow::Result<()> {
    let created = create_topics(target, needs, allowed)?;
    let raised = raise_partitions(target, &needs.raise)?;
    if needs.partitions.is_empty() {
        return Ok(());
    }
    wait_for_partitions(target, needs, created || raised)
}

/// Creates `needs.create`; returns whether it created any.
fn create_topics(target: &Cluster, needs: &Needs, allowed: bool) -> anyhow::Result<bool> {
    if needs.create.is_empty() {
        return Ok(false);
    }
    if !allowed {
        return Err(usage(
            "the plan creates topics but create_topics is false in this configuration: plan again",
        ));
    }
    let names: Vec<&str> = needs.create.iter().map(|t| t.0.as_str()).collect();
    report::note(&format!(
        "creating topic(s) on the target: {}",
        names.join(", ")
    ));
    let admin = target.admin()?;
    let Err(e) = admin.create_topics(&needs.create) else {
        return Ok(true);
    };
    // Another process won the race: fine once every topic is there with its partitions.
    let now = admin.topics()?;
    let there = needs
        .create
        .iter()
        .all(|(t, n, _)| now.get(t).is_some_and(|have| have >= n));
    match (needs.shared && there, needs.rescan) {
        (true, _) => Ok(true),
        (false, false) => Err(e),
        (false, true) => Err(e.context(format!(
            "creating the new topic(s) {} on the target",
            names.join(", ")
        ))),
    }
}

/// Raises the partition counts of `raise`; returns whether it raised any.
fn raise_partitions(target: &Cluster, raise: &[(String, i32)]) -> anyhow::Result<bool> {
    if raise.is_empty() {
        return Ok(false);
    }
    let raised: Vec<String> = raise.iter().map(|(t, n)| format!("{t} to {n}")).collect();
    report::note(&format!(
        "adding partitions on the target: {}",
        raised.join(", ")
    ));
    target.admin()?.create_partitions(raise).with_context(|| {
        format!(
            "adding partitions on the target ({}), as the source's topics grew",
            raised.join(", ")
        )
    })?;
    Ok(true)
}

/// Every partition of `needs` must be in the target's metadata before the first record is
/// written. Topics just created (or raised) take a moment to show: then it waits up to the
/// timeout.
fn wait_for_partitions(target: &Cluster, needs: &Needs, just_changed: bool) -> anyhow::Result<()> {
    let admin = target.admin()?;
    let deadline = Instant::now() + target.timeout;
    loop {
        let counts = admin.topics()?;
        let short: Vec<String> = needs
            .partitions
            .iter()
            .filter_map(|(t, n)| {
                let have = counts.get(t).copied().unwrap_or(0);
                (have < *n).then(|| format!("{t} has {have} of {n} partitions"))
            })
            .collect();
        if short.is_empty() {
            return Ok(());
        }
        if !just_changed || Instant::now() > deadline {
            return Err(usage(texts::target_short(&short, needs.rescan)));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
