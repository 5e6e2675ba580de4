//! A migration shaped like production data, for the tests of parallel copies (pipelines,
//! shards): 3 topics × 8 partitions of tiny, 1 KiB and mixed records (0 to 3 KiB, null
//! keys, tombstones, repeated and null headers), and three groups whose commits span every
//! topic and partition; then the exact check of records and group offsets.

use super::records::{assert_copied, counts, noise};
use super::{Cluster, Rec, TS, unique, verify_ok};

pub const PARTS: i32 = 8;
pub const PER: usize = 1500;

/// A group and its commits: per topic (an index into the topics), one offset per partition.
pub type Group = (String, Vec<(usize, Vec<i64>)>);

/// The record `i` of partition `p` of a topic of the given shape.
pub fn record(shape: usize, p: i32, i: usize) -> Rec {
    let seed = (shape as u64) << 40 | (p as u64) << 20 | i as u64;
    let (key, value, headers) = match shape {
        // Tiny records.
        0 => (
            Some(format!("{p}-{i}").into_bytes()),
            Some(format!("v{i}").into_bytes()),
            Vec::new(),
        ),
        // 1 KiB records that compress poorly.
        1 => (
            Some(format!("k{p}-{i:05}").into_bytes()),
            Some(noise(1024, seed)),
            Vec::new(),
        ),
        // Mixed: 0 to 3 KiB, null keys, tombstones, headers with null and repeated names.
        _ => (
            (!i.is_multiple_of(5)).then(|| format!("m{i}").into_bytes()),
            (i % 97 != 3).then(|| noise((i * 37) % 3072, seed)),
            match i % 4 {
                0 => vec![
                    ("h".to_string(), Some(i.to_string().into_bytes())),
                    ("h".to_string(), None),
                ],
                1 => vec![("empty".to_string(), Some(Vec::new()))],
                _ => Vec::new(),
            },
        ),
    };
    Rec {
        partition: p,
        key,
        value,
        headers,
        timestamp: Some(TS + (i as i64) * 3 + p as i64),
    }
}

/// Three topics (tiny, 1 KiB, mixed) on the source with the same empty topics on the
/// target, and three groups: g1 on every topic, g2 on the mixed and 1 KiB ones, g3 on the
/// tiny one having consumed everything but partition 0. Returns the topics and the groups'
/// commits per topic (one offset per partition).
pub fn setup(prefix: &str) -> (Vec<String>, Vec<Group>) {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    let topics: Vec<String> = ["tiny", "kib", "mixed"]
        .iter()
        .map(|s| unique(&format!("{prefix}-{s}")))
        .collect();
    for (shape, topic) in topics.iter().enumerate() {
        src.create_topic(topic, PARTS, &[]);
        tgt.create_topic(topic, PARTS, &[]);
        for p in 0..PARTS {
            let recs: Vec<Rec> = (0..PER).map(|i| record(shape, p, i)).collect();
            src.produce(topic, &recs);
        }
    }
    let per = PER as i64;
    let commits_of = |f: &dyn Fn(i64) -> i64| -> Vec<i64> { (0..PARTS as i64).map(f).collect() };
    let groups = vec![
        (
            unique(&format!("{prefix}-g1")),
            vec![
                (0, commits_of(&|p| p * 100)),
                (1, commits_of(&|p| (p * 173) % per)),
                (2, commits_of(&|p| if p == 7 { per } else { p * 11 })),
            ],
        ),
        (
            unique(&format!("{prefix}-g2")),
            vec![
                (1, commits_of(&|p| (p * 173) % per + 40)),
                (2, commits_of(&|p| 5 + p)),
            ],
        ),
        (
            unique(&format!("{prefix}-g3")),
            vec![(0, commits_of(&|p| if p == 0 { 900 } else { per }))],
        ),
    ];
    for (g, per_topic) in &groups {
        let offsets: Vec<(&str, i32, i64)> = per_topic
            .iter()
            .flat_map(|(t, commits)| {
                commits
                    .iter()
                    .enumerate()
                    .map(|(p, c)| (topics[*t].as_str(), p as i32, *c))
            })
            .collect();
        src.commit(g, &offsets);
    }
    (topics, groups)
}

/// Every topic copied exactly from the smallest commit of each partition, and every group
/// resumes at its commit's place on the (empty before) target; then verify passes.
pub fn assert_exact(dir: &std::path::Path, topics: &[String], groups: &[Group]) {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    for (t, topic) in topics.iter().enumerate() {
        let on_topic: Vec<&Vec<i64>> = groups
            .iter()
            .flat_map(|(_, per_topic)| per_topic.iter().filter(|(x, _)| *x == t))
            .map(|(_, c)| c)
            .collect();
        let start: Vec<i64> = (0..PARTS as usize)
            .map(|p| on_topic.iter().map(|c| c[p]).min().unwrap_or(0))
            .collect();
        let got = counts(&assert_copied(&src, &tgt, topic, &start));
        let want: Vec<i64> = start.iter().map(|s| PER as i64 - s).collect();
        assert_eq!(got, want, "records per partition of {topic} on the target");
        for (g, per_topic) in groups {
            for (_, commits) in per_topic.iter().filter(|(x, _)| *x == t) {
                let parts: Vec<(&str, i32)> = (0..PARTS).map(|p| (topic.as_str(), p)).collect();
                let want: Vec<Option<i64>> = commits
                    .iter()
                    .zip(&start)
                    .map(|(c, s)| Some(c - s))
                    .collect();
                assert_eq!(
                    tgt.committed(g, &parts),
                    want,
                    "group {g}'s offsets on {topic} on the target"
                );
            }
        }
    }
    verify_ok(dir);
}

pub fn cleanup(topics: &[String]) {
    for t in topics {
        Cluster::source().delete_topic(t);
        Cluster::target().delete_topic(t);
    }
}

pub fn group_names(groups: &[Group]) -> Vec<&str> {
    groups.iter().map(|(g, _)| g.as_str()).collect()
}
