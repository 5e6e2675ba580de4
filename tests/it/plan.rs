//! `kmigrate plan` against the real test bed: exact offsets for every rule of the plan.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

use crate::support;
use crate::support::{Cluster, Run, config_for, kmigrate, unique, workdir};

const TS: i64 = 1_700_000_000_000;

fn plan_json(groups: &[&str], extra: &str) -> (Run, Value) {
    let dir = workdir("plan");
    let run = kmigrate(
        &dir,
        &config_for(groups, extra),
        &["plan", "--format", "json"],
    );
    assert!(
        run.code == 0 || run.code == 1,
        "plan failed ({}):\n{}",
        run.code,
        run.stderr
    );
    let v = run.json();
    (run, v)
}

fn part<'a>(plan: &'a Value, topic: &str, partition: i64) -> &'a Value {
    plan["partitions"]
        .as_array()
        .expect("partitions array")
        .iter()
        .find(|p| p["topic"] == topic && p["partition"] == partition)
        .unwrap_or_else(|| panic!("{topic}/{partition} not in plan: {plan:#}"))
}

/// (start, end, to_migrate, status, reason)
fn decision(p: &Value) -> (i64, i64, i64, String, Option<String>) {
    (
        p["start"].as_i64().expect("start"),
        p["end"].as_i64().expect("end"),
        p["to_migrate"].as_i64().expect("to_migrate"),
        p["status"].as_str().expect("status").to_string(),
        p["reason"].as_str().map(str::to_string),
    )
}

fn migrate(start: i64, end: i64) -> (i64, i64, i64, String, Option<String>) {
    (start, end, end - start, "migrate".into(), None)
}

fn skip(at: i64, reason: &str) -> (i64, i64, i64, String, Option<String>) {
    (at, at, 0, "skip".into(), Some(reason.into()))
}

/// Creates `topic` with `partitions` partitions on both clusters and `n` records in each
/// source partition.
fn topic_with_records(topic: &str, partitions: i32, n: usize) -> (Cluster, Cluster) {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(topic, partitions, &[]);
    tgt.create_topic(topic, partitions, &[]);
    for p in 0..partitions {
        src.produce_n(topic, p, n, TS);
    }
    (src, tgt)
}

#[test]
fn shared_topic_smallest_commit_wins_per_partition() {
    let topic = unique("plan-shared");
    let (g1, g2) = (unique("plan-g1"), unique("plan-g2"));
    let (src, _) = topic_with_records(&topic, 3, 10);
    src.commit(&g1, &[(&topic, 0, 3), (&topic, 1, 8), (&topic, 2, 5)]);
    src.commit(&g2, &[(&topic, 0, 6), (&topic, 1, 2)]);

    let (run, plan) = plan_json(&[&g1, &g2], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(decision(part(&plan, &topic, 0)), migrate(3, 10));
    assert_eq!(decision(part(&plan, &topic, 1)), migrate(2, 10));
    // g2 never committed partition 2: under the default "earliest" it needs all of it.
    assert_eq!(decision(part(&plan, &topic, 2)), migrate(0, 10));
    let p0 = part(&plan, &topic, 0);
    assert_eq!(p0["committed"][&g1], 3);
    assert_eq!(p0["committed"][&g2], 6);
    assert_eq!(p0["low"], 0);
    assert_eq!(p0["high"], 10);
    assert_eq!(part(&plan, &topic, 2)["uncommitted_groups"][0], g2.as_str());
    assert_eq!(plan["totals"]["messages"], 7 + 8 + 10);
    assert_eq!(plan["totals"]["partitions_to_migrate"], 3);
    let groups = plan["groups"].as_array().expect("groups");
    let g1p = groups
        .iter()
        .find(|g| g["group"] == g1.as_str())
        .expect("g1");
    assert_eq!(g1p["state"], "Empty");
    assert_eq!(g1p["backlog"], 7 + 2 + 5);
    src.delete_topic(&topic);
}

#[test]
fn seed_example_in_miniature() {
    // The procedure's example at small scale: test1/0 expired (committed 37, low = high = 52),
    // test3 shared by both groups, test4 consumed by the second group only.
    let (t1, t3, t4) = (
        unique("plan-test1"),
        unique("plan-test3"),
        unique("plan-test4"),
    );
    let (g123, g34) = (unique("plan-test123-group"), unique("plan-test34-group"));
    let (src, _) = topic_with_records(&t1, 1, 52);
    topic_with_records(&t3, 1, 300);
    topic_with_records(&t4, 1, 80);
    src.commit(&g123, &[(&t1, 0, 37), (&t3, 0, 250)]);
    src.commit(&g34, &[(&t3, 0, 240), (&t4, 0, 80)]);
    src.delete_records(&t1, 0, 52);

    let dir = workdir("plan-seed");
    let run = kmigrate(&dir, &config_for(&[&g123, &g34], ""), &["plan"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = |t: &str| {
        run.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{t} ")))
            .unwrap_or_else(|| panic!("no row for {t}:\n{}", run.stdout))
            .to_string()
    };
    assert!(
        line(&t1).contains("skip: expired (15 lost)"),
        "{}",
        line(&t1)
    );
    assert!(line(&t3).ends_with("migrate"), "{}", line(&t3));
    assert!(
        line(&t4).contains("skip: nothing-unconsumed"),
        "{}",
        line(&t4)
    );
    assert!(
        run.stdout.contains("60 messages to migrate"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("15 messages lost to expiry"),
        "{}",
        run.stdout
    );
    // The same text goes to the log file, as the reference tool's text log.
    let log = std::fs::read_to_string(dir.join("kmigrate.log")).expect("log file written");
    assert!(log.contains("skip: expired (15 lost)"), "{log}");

    let (_, plan) = plan_json(&[&g123, &g34], "");
    assert_eq!(decision(part(&plan, &t1, 0)), skip(52, "expired"));
    assert_eq!(part(&plan, &t1, 0)["lost"][&g123], 15);
    assert_eq!(decision(part(&plan, &t3, 0)), migrate(240, 300));
    assert_eq!(
        decision(part(&plan, &t4, 0)),
        skip(80, "nothing-unconsumed")
    );
    for t in [&t1, &t3, &t4] {
        src.delete_topic(t);
    }
}

#[test]
fn partially_expired_starts_at_low_and_counts_loss() {
    let topic = unique("plan-partial");
    let g = unique("plan-partial-g");
    let (src, _) = topic_with_records(&topic, 1, 20);
    src.commit(&g, &[(&topic, 0, 5)]);
    src.delete_records(&topic, 0, 12);

    let (_, plan) = plan_json(&[&g], "");
    let p = part(&plan, &topic, 0);
    assert_eq!(decision(p), migrate(12, 20));
    assert_eq!(p["low"], 12);
    assert_eq!(p["lost"][&g], 7);
    assert_eq!(plan["totals"]["lost"], 7);
    src.delete_topic(&topic);
}

#[test]
fn fully_consumed_partition_is_skipped() {
    let topic = unique("plan-consumed");
    let g = unique("plan-consumed-g");
    let (src, _) = topic_with_records(&topic, 1, 10);
    src.commit(&g, &[(&topic, 0, 10)]);
    let (_, plan) = plan_json(&[&g], "");
    assert_eq!(
        decision(part(&plan, &topic, 0)),
        skip(10, "nothing-unconsumed")
    );
    assert_eq!(plan["totals"]["skipped"]["nothing-unconsumed"], 1);
    src.delete_topic(&topic);
}

#[test]
fn uncommitted_partition_follows_policy() {
    let topic = unique("plan-uncommitted");
    let g = unique("plan-uncommitted-g");
    let (src, _) = topic_with_records(&topic, 2, 10);
    src.commit(&g, &[(&topic, 0, 4)]);
    src.delete_records(&topic, 1, 3);

    let (_, plan) = plan_json(&[&g], "");
    assert_eq!(decision(part(&plan, &topic, 0)), migrate(4, 10));
    assert_eq!(decision(part(&plan, &topic, 1)), migrate(3, 10));
    assert_eq!(plan["uncommitted_partitions"], "earliest");

    let (_, plan) = plan_json(&[&g], "[migration]\nuncommitted_partitions = \"skip\"\n");
    assert_eq!(decision(part(&plan, &topic, 0)), migrate(4, 10));
    assert_eq!(decision(part(&plan, &topic, 1)), skip(10, "uncommitted"));
    src.delete_topic(&topic);
}

#[test]
fn group_and_topic_filters() {
    let (ta, tb) = (unique("plan-filter-a"), unique("plan-filter-b"));
    let prefix = unique("plan-filter");
    let (ga, gb) = (format!("{prefix}-keep"), format!("{prefix}-drop"));
    let (src, _) = topic_with_records(&ta, 1, 10);
    topic_with_records(&tb, 1, 10);
    src.commit(&ga, &[(&ta, 0, 1), (&tb, 0, 2)]);
    src.commit(&gb, &[(&ta, 0, 0)]);

    let extra = format!("exclude_groups = [\"*-drop\"]\nexclude_topics = [{tb:?}]\n");
    let (_, plan) = plan_json(&[&format!("{prefix}-*")], &extra);
    let groups: Vec<&str> = plan["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["group"].as_str().expect("name"))
        .collect();
    assert_eq!(groups, vec![ga.as_str()]);
    // The excluded group's smaller commit (0) does not count.
    assert_eq!(decision(part(&plan, &ta, 0)), migrate(1, 10));
    assert_eq!(decision(part(&plan, &tb, 0)), skip(10, "filtered"));
    assert_eq!(plan["totals"]["messages"], 9);

    // An include pattern that matches nothing is a configuration error naming the pattern
    // (tests/bad_input.rs checks the whole message).
    let run = kmigrate(
        &workdir("plan"),
        &config_for(&[&ga, "no-such-group-*"], ""),
        &["plan", "--format", "json"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("\"no-such-group-*\""), "{}", run.stderr);
    src.delete_topic(&ta);
    src.delete_topic(&tb);
}

#[test]
fn internal_topics_are_never_migrated() {
    let topic = unique("plan-internal");
    let g = unique("plan-internal-g");
    let (src, _) = topic_with_records(&topic, 1, 5);
    src.commit(&g, &[(&topic, 0, 1), ("__consumer_offsets", 0, 0)]);
    let (_, plan) = plan_json(&[&g], "");
    let internal = part(&plan, "__consumer_offsets", 0);
    assert_eq!(internal["status"], "skip");
    assert_eq!(internal["reason"], "internal");
    assert_eq!(plan["totals"]["messages"], 4);
    assert!(plan["problems"].as_array().expect("problems").is_empty());
    src.delete_topic(&topic);
}

#[test]
fn open_transaction_is_reported() {
    let topic = unique("plan-txn");
    let g = unique("plan-txn-g");
    let (src, _) = topic_with_records(&topic, 1, 10);
    src.commit(&g, &[(&topic, 0, 2)]);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &src.bootstrap)
        .set("transactional.id", unique("plan-txn-id"))
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init transactions");
    producer.begin_transaction().expect("begin");
    for i in 0..3 {
        let v = format!("open-{i}");
        producer
            .send(BaseRecord::<str, str>::to(&topic).partition(0).payload(&v))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");

    let (_, plan) = plan_json(&[&g], "");
    let p = part(&plan, &topic, 0);
    assert_eq!(p["stable"], 10, "{p}");
    assert!(p["high"].as_i64().expect("high") > 10, "{p}");
    assert_eq!(decision(p), migrate(2, 10));
    let warnings = plan["warnings"].to_string();
    assert!(warnings.contains("open transaction"), "{warnings}");
    producer
        .abort_transaction(Duration::from_secs(30))
        .expect("abort");
    src.delete_topic(&topic);
}

#[test]
fn target_problems_are_listed_together() {
    let (missing, few) = (unique("plan-missing"), unique("plan-few"));
    let g = unique("plan-target-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&missing, 2, &[("retention.ms", "86400000")]);
    src.create_topic(&few, 3, &[]);
    tgt.create_topic(&few, 1, &[]);
    src.produce_n(&missing, 0, 5, TS);
    src.produce_n(&few, 2, 5, TS);
    src.commit(&g, &[(&missing, 0, 0), (&few, 2, 0)]);

    let (run, plan) = plan_json(&[&g], "");
    assert_eq!(run.code, 1, "problems make plan exit 1");
    let problems = plan["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 2, "{problems:?}");
    let text = plan["problems"].to_string();
    assert!(
        text.contains(&missing) && text.contains("does not exist"),
        "{text}"
    );
    assert!(
        text.contains(&few) && text.contains("1 partition(s)"),
        "{text}"
    );

    let (run, plan) = plan_json(&[&g], "[migration]\ncreate_topics = true\n");
    assert_eq!(run.code, 1, "the partition count is still a problem");
    assert_eq!(plan["problems"].as_array().expect("problems").len(), 1);
    let t = plan["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .find(|t| t["topic"] == missing.as_str())
        .expect("topic in plan");
    assert_eq!(t["action"], "create");
    assert_eq!(t["source_partitions"], 2);
    assert_eq!(t["create_configs"]["retention.ms"], "86400000");
    src.delete_topic(&missing);
    src.delete_topic(&few);
    tgt.delete_topic(&few);
}

#[test]
fn non_empty_target_partition_is_a_warning() {
    let topic = unique("plan-nonempty");
    let g = unique("plan-nonempty-g");
    let (src, tgt) = topic_with_records(&topic, 1, 5);
    tgt.produce_n(&topic, 0, 2, TS);
    src.commit(&g, &[(&topic, 0, 0)]);
    let (run, plan) = plan_json(&[&g], "");
    assert_eq!(run.code, 0);
    assert_eq!(part(&plan, &topic, 0)["target_high"], 2);
    let warnings = plan["warnings"].to_string();
    assert!(warnings.contains("already holds 2 record(s)"), "{warnings}");
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn active_group_is_a_warning_naming_hosts() {
    let topic = unique("plan-active");
    let g = unique("plan-active-g");
    let (src, _) = topic_with_records(&topic, 1, 5);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &src.bootstrap)
        .set("group.id", &g)
        .set("client.id", "plan-active-member")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "no assignment");
        consumer.poll(Duration::from_millis(100));
    }
    let (_, plan) = plan_json(&[&g], "");
    let grp = &plan["groups"][0];
    assert_eq!(grp["state"], "Stable");
    assert!(
        grp["members"][0]["host"]
            .as_str()
            .expect("host")
            .contains("127.0.0.1")
    );
    // It never committed, but its members' assignment says what it consumes.
    assert_eq!(decision(part(&plan, &topic, 0)), migrate(0, 5));
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains(&g)
            && warnings.contains("127.0.0.1")
            && warnings.contains("--allow-active-groups"),
        "{warnings}"
    );
    drop(consumer);
    src.delete_topic(&topic);
}

#[test]
fn saved_plan_matches_printed_json() {
    let topic = unique("plan-out");
    let g = unique("plan-out-g");
    let (src, _) = topic_with_records(&topic, 1, 3);
    src.commit(&g, &[(&topic, 0, 1)]);
    let dir = workdir("plan-out");
    let run = kmigrate(
        &dir,
        &config_for(&[&g], ""),
        &["plan", "--format", "json", "--out", "saved.json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.join("saved.json")).expect("saved plan"))
            .expect("saved plan is JSON");
    assert_eq!(saved, run.json());
    assert_eq!(saved["version"], 1);
    assert!(
        run.stderr.contains("kmigrate run --plan saved.json"),
        "{}",
        run.stderr
    );
    src.delete_topic(&topic);
}

#[test]
fn unreachable_source_fails_fast_with_exit_3() {
    let dir = workdir("plan-unreachable");
    let config = format!(
        "[source]\nbootstrap_servers = \"127.0.0.1:1\"\n[target]\nbootstrap_servers = {:?}\n\
         [migration]\ntimeout_secs = 3\n",
        support::target_bootstrap()
    );
    let t0 = Instant::now();
    let run = kmigrate(&dir, &config, &["plan"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t0.elapsed()
    );
    assert!(
        run.stderr.contains("source cluster 127.0.0.1:1"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}
