//! `kmigrate sync` rescans the source every `rescan_secs` while it runs: a topic that
//! appears, partitions added to a topic and a group that appears are followed from then on,
//! the target gets the topic and the partitions first (or, with `create_topics = false`, a
//! warning says what it lacks until it has it), and a group that resets below the copy's
//! start is reported. After `cutover`, every record of the new topics and partitions is on
//! the target exactly once and in order, and every group, the new ones too, resumes exactly,
//! also after a `kill -9` right after a rescan grew the state.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::support;
use crate::support::process::{Bg, Progress, spawn, state_json, while_running};
use crate::support::records::{assert_copied, produce_bulk};
use crate::support::{
    Cluster, Rng, STATE, TIMEOUT, block, kmigrate_raw, unique, verify_ok, workdir,
};

/// Raises `topic`'s partition count to `count` and waits until its metadata shows them.
fn add_partitions(c: &Cluster, topic: &str, count: i32) {
    let admin: AdminClient<DefaultClientContext> = c.config().create().expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = block(admin.create_partitions(&[NewPartitions::new(topic, count as usize)], &opts))
        .unwrap_or_else(|e| panic!("adding partitions to {topic}: {e}"));
    for r in res {
        if let Err((t, code)) = r {
            panic!("adding partitions to {t}: {code:?}");
        }
    }
    assert_eq!(partitions(c, topic, count), count);
}

/// `topic`'s partition count on `c` once it is at least `at_least` and every partition
/// has a leader; what it is after the timeout otherwise (0: no such topic).
fn partitions(c: &Cluster, topic: &str, at_least: i32) -> i32 {
    let client: BaseConsumer = c.config().create().expect("metadata client");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let md = client
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("reading metadata");
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .filter(|t| t.partitions().iter().all(|p| p.leader() >= 0))
            .map_or(0, |t| t.partitions().len() as i32);
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (topic/partition, start, end, written) of every partition in the state file.
fn followed(dir: &Path) -> Vec<(String, i64, i64, u64)> {
    let Some(state) = std::fs::read(dir.join(STATE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return Vec::new();
    };
    state["partitions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        format!("{}/{}", p["topic"].as_str().unwrap_or(""), p["partition"]),
                        p["start"].as_i64().unwrap_or(-1),
                        p["end"].as_i64().unwrap_or(-1),
                        p["progress"]["written"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the state file follows exactly `want` (topic/partition, start, end) and
/// every record of those ranges is on the target (the topics have no gaps).
fn until_copied(bg: &mut Bg, dir: &Path, want: &[(String, i64, i64)]) {
    while_running(
        bg,
        &format!("the state follows and has copied {want:?}"),
        || {
            let now = followed(dir);
            now.len() == want.len()
                && now.iter().zip(want).all(|((tp, s, e, w), (wtp, ws, we))| {
                    tp == wtp && s == ws && e == we && *w == (e - s) as u64
                })
        },
    );
}

/// The planned groups' names, from the state file.
fn planned_groups(dir: &Path) -> Vec<String> {
    let state = state_json(dir);
    let mut names: Vec<String> = state["plan"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["group"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn sync_follows_new_topics_partitions_and_groups_and_reports_resets() {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    let prefix = unique("rescan");
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let (g, h, k) = (
        format!("{prefix}-g"),
        format!("{prefix}-h"),
        format!("{prefix}-k"),
    );
    // At the start: topic a of 2 partitions (1,000 records each) on both clusters, group g.
    src.create_topic(&a, 2, &[]);
    tgt.create_topic(&a, 2, &[]);
    produce_bulk(&src, &a, 2, 1_000);
    src.commit(&g, &[(&a, 0, 200), (&a, 1, 300)]);
    let dir = workdir("sync-rescan");
    let config = format!(
        "[source]\nbootstrap_servers = {:?}\n[target]\nbootstrap_servers = {:?}\n\
         [filter]\ngroups = [\"{prefix}-*\"]\n\
         [migration]\nrescan_secs = 2\ncreate_topics = true\n",
        support::source_bootstrap(),
        support::target_bootstrap(),
    );
    std::fs::write(dir.join("migrate.toml"), config).expect("config");
    let mut bg = spawn(&dir, &["sync", "--yes"]);
    let tp = |t: &str, p: i32| format!("{t}/{p}");
    until_copied(
        &mut bg,
        &dir,
        &[(tp(&a, 0), 200, 1_000), (tp(&a, 1), 300, 1_000)],
    );

    // While it runs: topic b appears (500 records in each of 2 partitions) with group h on
    // it; a gets a third partition of 300 records (followed from its start: no group
    // committed it, "earliest"); group k appears on a; group g resets a/0 below the
    // copy's start.
    src.create_topic(&b, 2, &[]);
    produce_bulk(&src, &b, 2, 500);
    src.commit(&h, &[(&b, 0, 100), (&b, 1, 0)]);
    add_partitions(&src, &a, 3);
    let extra: Vec<support::Rec> = (0..300)
        .map(|i| support::Rec::kv(2, &format!("new-{i}"), &format!("v{i}"), support::TS + i))
        .collect();
    src.produce(&a, &extra);
    src.commit(&k, &[(&a, 0, 500), (&a, 1, 1_000)]);
    src.commit(&g, &[(&a, 0, 50)]);
    until_copied(
        &mut bg,
        &dir,
        &[
            (tp(&a, 0), 200, 1_000),
            (tp(&a, 1), 300, 1_000),
            (tp(&a, 2), 0, 300),
            (tp(&b, 0), 100, 500),
            (tp(&b, 1), 0, 500),
        ],
    );
    let reset = format!("group {g} committed 50 on {a}/0, below the copy's start 200");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bg.output().contains(&reset) {
        assert!(bg.exited().is_none(), "sync ended:\n{}", bg.output());
        assert!(
            Instant::now() < deadline,
            "no reset reported:\n{}",
            bg.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(planned_groups(&dir), vec![g.clone(), h.clone(), k.clone()]);
    assert_eq!(partitions(&tgt, &b, 0), 2, "b was created on the target");
    assert_eq!(
        partitions(&tgt, &a, 0),
        3,
        "a got its third partition on the target"
    );
    // Records that arrive afterwards in the new partitions are followed as in the others.
    let more: Vec<support::Rec> = (0..2)
        .flat_map(|p| (0..50).map(move |i| (p, i)))
        .map(|(p, i)| {
            support::Rec::kv(p, &format!("more-{p}-{i}"), "more", support::TS + 9_000 + i)
        })
        .collect();
    src.produce(&b, &more);
    until_copied(
        &mut bg,
        &dir,
        &[
            (tp(&a, 0), 200, 1_000),
            (tp(&a, 1), 300, 1_000),
            (tp(&a, 2), 0, 300),
            (tp(&b, 0), 100, 550),
            (tp(&b, 1), 0, 550),
        ],
    );
    bg.signal("-TERM");
    let run = bg.wait_within(Duration::from_secs(60));
    assert_eq!(run.code, 130, "sync:\n{}\n{}", run.stdout, run.stderr);
    // Reported once, not at every rescan.
    assert_eq!(run.stderr.matches(&reset).count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("rescan: following"), "{}", run.stderr);

    let cut = kmigrate_raw(&dir, &["cutover", "--yes", "--quiet", "1"]);
    assert_eq!(cut.code, 0, "cutover:\n{}\n{}", cut.stdout, cut.stderr);
    assert!(cut.stderr.contains(&reset), "{}", cut.stderr);

    // Exact records, from each partition's start.
    assert_copied(&src, &tgt, &a, &[200, 300, 0]);
    assert_copied(&src, &tgt, &b, &[100, 0]);
    // Exact offsets: the target was empty, so source offset c is target offset c - start;
    // g's reset resumes at the first copied record; a/2, never committed, from its start
    // ("earliest") for g and k.
    let parts_a: Vec<(&str, i32)> = (0..3).map(|p| (a.as_str(), p)).collect();
    let parts_b: Vec<(&str, i32)> = (0..2).map(|p| (b.as_str(), p)).collect();
    assert_eq!(tgt.committed(&g, &parts_a), vec![Some(0), Some(0), Some(0)]);
    assert_eq!(
        tgt.committed(&k, &parts_a),
        vec![Some(300), Some(700), Some(0)]
    );
    assert_eq!(tgt.committed(&h, &parts_b), vec![Some(0), Some(0)]);
    let run = kmigrate_raw(&dir, &["offsets", "translate", &b, "0", "120"]);
    assert_eq!(run.code, 0, "offsets translate: {}", run.stderr);
    assert_eq!(run.stdout.trim(), "20");
    verify_ok(&dir);
    for t in [&a, &b] {
        src.delete_topic(t);
        tgt.delete_topic(t);
    }
}

#[test]
fn a_topic_the_target_lacks_is_followed_once_there_and_a_kill_after_the_rescan_resumes_exactly() {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    let prefix = unique("rescan-held");
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let (g, h) = (format!("{prefix}-g"), format!("{prefix}-h"));
    src.create_topic(&a, 2, &[]);
    tgt.create_topic(&a, 2, &[]);
    produce_bulk(&src, &a, 2, 500);
    src.commit(&g, &[(&a, 0, 100), (&a, 1, 0)]);
    let dir = workdir("sync-rescan-held");
    let config = format!(
        "[source]\nbootstrap_servers = {:?}\n[target]\nbootstrap_servers = {:?}\n\
         [filter]\ngroups = [\"{prefix}-*\"]\n[migration]\nrescan_secs = 2\n",
        support::source_bootstrap(),
        support::target_bootstrap(),
    );
    std::fs::write(dir.join("migrate.toml"), config).expect("config");
    let tp = |t: &str, p: i32| format!("{t}/{p}");
    let mut bg = spawn(&dir, &["sync", "--yes"]);
    until_copied(&mut bg, &dir, &[(tp(&a, 0), 100, 500), (tp(&a, 1), 0, 500)]);

    // Topic b appears with group h on it, but the target has no b (create_topics = false):
    // a warning, and b is not followed.
    src.create_topic(&b, 2, &[]);
    produce_bulk(&src, &b, 2, 20_000);
    src.commit(&h, &[(&b, 0, 50), (&b, 1, 20_000)]);
    let held = format!("topic {b} does not exist on the target");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bg.output().contains(&held) {
        assert!(bg.exited().is_none(), "sync ended:\n{}", bg.output());
        assert!(
            Instant::now() < deadline,
            "b not reported:\n{}",
            bg.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(followed(&dir).len(), 2, "b is not followed yet");
    // Once the target has it, the next rescan follows it. Killed once the state follows it
    // and a seeded share (from none to most) of b/0's 19,950 records is on the target.
    tgt.create_topic(&b, 2, &[]);
    let on_target = Progress::new(&tgt, &b, 2);
    let at = (Rng::from_env().between(0.0, 0.8) * 19_950.0) as i64;
    while_running(
        &mut bg,
        &format!("b is followed, {at} records copied"),
        || followed(&dir).len() == 4 && on_target.try_total().is_some_and(|t| t >= at),
    );
    let first = bg.kill9();
    assert_eq!(
        first.stderr.matches(&held).count(),
        1,
        "reported once:\n{}",
        first.stderr
    );
    let before = followed(&dir);
    assert_eq!(
        (before[2].1, before[3].1),
        (50, 20_000),
        "b/0 from h's commit, b/1 from its end: {before:?}"
    );
    // More records while sync is down; the rerun resumes exactly.
    let more: Vec<support::Rec> = (0..2)
        .flat_map(|p| (0..40).map(move |i| (p, i)))
        .map(|(p, i)| support::Rec::kv(p, &format!("late-{p}-{i}"), "late", support::TS + i))
        .collect();
    src.produce(&b, &more);
    let mut bg = spawn(&dir, &["sync", "--yes"]);
    until_copied(
        &mut bg,
        &dir,
        &[
            (tp(&a, 0), 100, 500),
            (tp(&a, 1), 0, 500),
            (tp(&b, 0), 50, 20_040),
            (tp(&b, 1), 20_000, 20_040),
        ],
    );
    bg.signal("-TERM");
    let run = bg.wait_within(Duration::from_secs(60));
    assert_eq!(run.code, 130, "sync:\n{}\n{}", run.stdout, run.stderr);

    let cut = kmigrate_raw(&dir, &["cutover", "--yes", "--quiet", "1"]);
    assert_eq!(cut.code, 0, "cutover:\n{}\n{}", cut.stdout, cut.stderr);
    assert_copied(&src, &tgt, &a, &[100, 0]);
    assert_copied(&src, &tgt, &b, &[50, 20_000]);
    let parts_a: Vec<(&str, i32)> = (0..2).map(|p| (a.as_str(), p)).collect();
    let parts_b: Vec<(&str, i32)> = (0..2).map(|p| (b.as_str(), p)).collect();
    assert_eq!(tgt.committed(&g, &parts_a), vec![Some(0), Some(0)]);
    assert_eq!(tgt.committed(&h, &parts_b), vec![Some(0), Some(0)]);
    verify_ok(&dir);
    for t in [&a, &b] {
        src.delete_topic(t);
        tgt.delete_topic(t);
    }
}
