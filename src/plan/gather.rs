//! Reading what a plan needs from both clusters. All of the plan's I/O is here; the number
//! of requests grows with the number of groups (librdkafka sends a few per group: find the
//! coordinator, describe, fetch offsets) and only by one per thousand partitions.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use tracing::debug;

use super::{GroupSnapshot, Snapshot, TopicInfo, Tp};
use crate::config::{
    Config, check_mapping, is_internal_topic, target_topic, unmatched_keys, unmatched_patterns,
};
use crate::error::usage;
use crate::kafka::admin::GroupListing;
use crate::kafka::{Admin, Cluster};

/// Reads the source's groups, commits and watermarks, and the target's topics.
pub fn gather(cfg: &Config, source: &Cluster, target: &Cluster) -> anyhow::Result<Snapshot> {
    let source = source.admin()?;
    let target = target.admin()?;

    // Metadata first: it is also the check that both clusters answer.
    let source_topics = source.topics()?;
    let target_topics = target.topics()?;

    let listing = source.groups()?;
    check_patterns(cfg, &source, &source_topics, &listing)?;
    let all_groups: Vec<String> = listing.iter().map(|g| g.name.clone()).collect();
    let selected: Vec<_> = listing
        .iter()
        .filter(|g| g.is_consumer_group() && cfg.filter.group_selected(&g.name))
        .collect();
    debug!(
        groups = listing.len(),
        selected = selected.len(),
        "listed consumer groups on the {}",
        source.cluster().describe()
    );

    // State, members and assignments of every selected group, in one call: the listing's
    // states miss groups of the new consumer protocol.
    let names: Vec<&str> = selected.iter().map(|g| g.name.as_str()).collect();
    let members = source.group_members(&names)?;

    let mut groups = Vec::with_capacity(selected.len());
    for g in selected {
        let commits = source.committed(&g.name)?;
        let (state, members_of, assigned) = match members.get(&g.name) {
            Some(m) => (
                m.state.clone(),
                m.members.clone(),
                m.assigned_topics.clone(),
            ),
            None => (g.state.clone(), g.members.clone(), BTreeSet::new()),
        };
        groups.push(GroupSnapshot {
            name: g.name.clone(),
            state,
            members: members_of,
            commits,
            assigned_topics: assigned,
        });
    }

    // Every partition of every topic a selected group consumes, if the topic still exists.
    let consumed: BTreeSet<&str> = groups
        .iter()
        .flat_map(|g| {
            g.commits
                .keys()
                .map(|tp| tp.topic.as_str())
                .chain(g.assigned_topics.iter().map(String::as_str))
        })
        .collect();
    let tps: Vec<Tp> = consumed
        .iter()
        .filter_map(|t| source_topics.get(*t).map(|n| (*t, *n)))
        .flat_map(|(t, n)| (0..n).map(move |p| Tp::new(t, p)))
        .collect();
    // The names on the target of the topics to copy, refused before the target is read
    // when two would share one.
    let copied: Vec<&str> = consumed
        .iter()
        .copied()
        .filter(|t| source_topics.contains_key(*t) && cfg.filter.topic_selected(t))
        .collect();
    check_mapping(&cfg.topics, &copied, &cfg.origin)?;
    let renames: BTreeMap<String, String> = copied
        .iter()
        .map(|t| (t.to_string(), target_topic(t, &cfg.topics)))
        .filter(|(s, t)| s != t)
        .collect();
    let target_name = |t: &str| -> String { renames.get(t).cloned().unwrap_or_else(|| t.into()) };

    let source_offsets = source.watermarks(&tps)?;
    debug!(
        partitions = tps.len(),
        "read watermarks on the {}",
        source.cluster().describe()
    );

    // Target: the partitions that exist there, and their current extent.
    let on_target: Vec<Tp> = tps
        .iter()
        .map(|tp| Tp::new(target_name(&tp.topic), tp.partition))
        .filter(|tp| {
            target_topics
                .get(&tp.topic)
                .is_some_and(|n| tp.partition < *n)
        })
        .collect();
    let target_offsets = target.low_high(&on_target)?;

    let wanted: BTreeSet<String> = consumed.iter().map(|t| target_name(t)).collect();
    let source_topics = topic_infos(&source, source_topics, &consumed, &target_topics, cfg)?;
    let target_topics: BTreeMap<String, i32> = target_topics
        .into_iter()
        .filter(|(t, _)| wanted.contains(t))
        .collect();
    let names: Vec<String> = target_topics.keys().cloned().collect();
    let mut settings = target
        .topic_settings(&names, REWRITING_CONFIGS)
        .context("reading the target topics' compression.type and message.timestamp.type")?;
    let target_topics = target_topics
        .into_iter()
        .map(|(t, n)| {
            let configs = settings.remove(&t).unwrap_or_default();
            (
                t,
                TopicInfo {
                    partitions: n,
                    configs,
                },
            )
        })
        .collect();

    Ok(Snapshot {
        all_groups,
        groups,
        source_topics,
        source_offsets,
        target_topics,
        target_offsets,
        renames,
    })
}

/// An include pattern that matches no group or no topic on the source is a configuration
/// error (a typo would otherwise plan nothing for that group): named with its place in the
/// file and the names that look closest.
fn check_patterns(
    cfg: &Config,
    source: &Admin,
    topics: &BTreeMap<String, i32>,
    listing: &[GroupListing],
) -> anyhow::Result<()> {
    let groups: Vec<&str> = listing
        .iter()
        .filter(|g| g.is_consumer_group())
        .map(|g| g.name.as_str())
        .collect();
    let topics: Vec<&str> = topics
        .keys()
        .map(String::as_str)
        .filter(|t| !is_internal_topic(t))
        .collect();
    let mut found = Vec::new();
    for (key, patterns, names, what) in [
        (
            "filter.groups",
            &cfg.filter.groups,
            &groups,
            "consumer group",
        ),
        ("filter.topics", &cfg.filter.topics, &topics, "topic"),
    ] {
        for (pattern, near) in unmatched_patterns(patterns, names) {
            let nearby = if near.is_empty() {
                format!("the source has no {what} at all")
            } else {
                format!(
                    "the closest of its {} {what}(s): {}",
                    names.len(),
                    near.join(", ")
                )
            };
            found.push(format!(
                "invalid configuration at {}: the pattern {pattern:?} matches no {what} on the {} \
                 ({nearby})",
                cfg.origin.locate(key, key),
                source.cluster().describe()
            ));
        }
    }
    // Each unmatched [topics.map] key carries its own fix.
    let mut messages = Vec::new();
    if !found.is_empty() {
        messages.push(format!(
            "{}. Correct the pattern or remove it; \"*\" selects everything.",
            found.join("; ")
        ));
    }
    messages.extend(
        unmatched_keys(&cfg.topics, &topics, &cfg.origin)
            .into_iter()
            .map(|m| format!("{m}.")),
    );
    if messages.is_empty() {
        return Ok(());
    }
    Err(usage(messages.join(" ")))
}

/// The target topics' configs read for the plan: those that make the target's broker
/// rewrite what it is given ([`crate::plan::compute`] warns of them).
const REWRITING_CONFIGS: &[&str] = &["compression.type", "message.timestamp.type"];

/// Source topics that groups consume, with their configs when the target lacks them and
/// `create_topics` will create them.
fn topic_infos(
    source: &Admin,
    counts: BTreeMap<String, i32>,
    consumed: &BTreeSet<&str>,
    target_topics: &BTreeMap<String, i32>,
    cfg: &Config,
) -> anyhow::Result<BTreeMap<String, TopicInfo>> {
    let to_create: Vec<String> = if cfg.migration.create_topics {
        consumed
            .iter()
            .filter(|t| {
                counts.contains_key(**t)
                    && !target_topics.contains_key(&target_topic(t, &cfg.topics))
                    && cfg.filter.topic_selected(t)
            })
            .map(|t| t.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let mut configs = source
        .topic_configs(&to_create)
        .context("reading the configs of topics to create on the target")?;
    Ok(counts
        .into_iter()
        .filter(|(t, _)| consumed.contains(t.as_str()))
        .map(|(t, n)| {
            let configs = configs.remove(&t).unwrap_or_default();
            (
                t,
                TopicInfo {
                    partitions: n,
                    configs,
                },
            )
        })
        .collect())
}
