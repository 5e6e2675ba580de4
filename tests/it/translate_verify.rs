//! Offset translation and `kmigrate verify` against the real test bed: after `kmigrate run`,
//! a real consumer of each group on the target receives exactly what that group had not
//! consumed on the source, and `verify` proves the copy or names what differs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmigrate::report::thousands;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::support;
use crate::support::records::{assert_records, high, highs};
use crate::support::{
    Cluster, Rec, Run, STATE, TS, config_for, kmigrate, kmigrate_raw, unique, verify_ok, workdir,
};

// ---------------------------------------------------------------------------------------
// Helpers.

/// (topic, partition) -> records, in partition order.
type ByPartition = BTreeMap<(String, i32), Vec<Rec>>;
/// (topic, partition) -> (offset, record), in partition order.
type Offsets = BTreeMap<(String, i32), Vec<(i64, Rec)>>;

/// Asserts what a consumer received, per partition, is exactly what was expected.
fn assert_received(group: &str, got: &ByPartition, want: &ByPartition) {
    let got_keys: Vec<_> = got.keys().collect();
    let want_keys: Vec<_> = want.keys().collect();
    assert_eq!(got_keys, want_keys, "{group}: partitions assigned");
    for (k, w) in want {
        assert_records(
            &format!("{group} on the target, {}/{}", k.0, k.1),
            &got[k],
            w,
        );
    }
}

/// Creates `topic` with `partitions` partitions on both clusters.
fn both(topic: &str, partitions: i32) -> (Cluster, Cluster) {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(topic, partitions, &[]);
    tgt.create_topic(topic, partitions, &[]);
    (src, tgt)
}

/// Produces, in one go, `n` records `<tag>-p<p>-<i>` (with a header) to each (p, n) of
/// `parts`, timestamps from TS.
fn produce_tagged(c: &Cluster, topic: &str, parts: &[(i32, usize)], tag: &str) {
    let recs: Vec<Rec> = parts
        .iter()
        .flat_map(|(partition, n)| {
            (0..*n).map(move |i| Rec {
                partition: *partition,
                key: Some(format!("{tag}-p{partition}-{i}").into_bytes()),
                value: Some(format!("{tag}-value-{i}").into_bytes()),
                headers: vec![("i".into(), Some(i.to_string().into_bytes()))],
                timestamp: Some(TS + i as i64),
            })
        })
        .collect();
    c.produce(topic, &recs);
}

fn to_rec(m: &BorrowedMessage<'_>) -> Rec {
    Rec::from_message(m)
}

/// Polls `c` until it is assigned `expected` partitions and every one of them has reported
/// its end, then for `idle` more (a record arriving then is a failure). Returns what arrived,
/// with offsets, including an empty entry for every assigned partition. Any error (e.g. no
/// committed offset under `auto.offset.reset=error`) is a failure.
fn drain(c: &BaseConsumer, what: &str, expected: usize, idle: Duration) -> Offsets {
    let mut out = Offsets::new();
    // PartitionEOF carries only the partition number: count them per number. Nothing is
    // produced meanwhile, so each assigned partition reports its end exactly once.
    let mut eofs: BTreeMap<i32, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ended_at: Option<Instant> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "{what}: did not reach the end of {expected} partitions; got so far {:?}, ends \
             {eofs:?}",
            out.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => *eofs.entry(p).or_default() += 1,
            Some(Err(e)) => panic!("{what}: {e}"),
            Some(Ok(m)) => {
                assert!(
                    ended_at.is_none(),
                    "{what}: a record arrived after every partition's end: {}/{}@{}",
                    m.topic(),
                    m.partition(),
                    m.offset()
                );
                out.entry((m.topic().to_string(), m.partition()))
                    .or_default()
                    .push((m.offset(), to_rec(&m)));
            }
        }
        if let Some(at) = ended_at {
            if at.elapsed() >= idle {
                return out;
            }
            continue;
        }
        let assigned: Vec<(String, i32)> = c
            .assignment()
            .expect("assignment")
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        if assigned.len() < expected {
            continue;
        }
        let all_ended = assigned.iter().all(|(_, p)| {
            let n = assigned.iter().filter(|(_, q)| q == p).count();
            eofs.get(p).copied().unwrap_or(0) >= n
        });
        if all_ended {
            for tp in assigned {
                out.entry(tp).or_default();
            }
            ended_at = Some(Instant::now());
        }
    }
}

/// Joins `group` on the target as a real consumer (subscribe; `auto.offset.reset=error`,
/// so a partition without a commit fails instead of silently resetting), reads until every
/// assigned partition is at its end and stays idle, and returns what arrived. It never
/// commits.
fn consume_as(tgt: &Cluster, group: &str, topics: &[(&str, i32)]) -> ByPartition {
    let c: BaseConsumer = tgt
        .config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("creating a target consumer");
    let names: Vec<&str> = topics.iter().map(|(t, _)| *t).collect();
    c.subscribe(&names).expect("subscribe");
    let expected: usize = topics.iter().map(|(_, n)| *n as usize).sum();
    let got = drain(
        &c,
        &format!("{group} consuming on the target"),
        expected,
        Duration::from_millis(500),
    );
    got.into_iter()
        .map(|(k, v)| (k, v.into_iter().map(|(_, r)| r).collect()))
        .collect()
}

/// Every live record (read_committed) of every partition of `topics`, with one reader.
fn read_live(c: &Cluster, topics: &[(&str, i32)]) -> Offsets {
    let reader: BaseConsumer = c
        .config()
        .set("group.id", unique("tv-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("creating a reader");
    let mut tpl = TopicPartitionList::new();
    for (t, n) in topics {
        for p in 0..*n {
            tpl.add_partition_offset(t, p, Offset::Beginning)
                .expect("partition list");
        }
    }
    reader.assign(&tpl).expect("assign");
    drain(
        &reader,
        &format!("reading {topics:?} on {}", c.bootstrap),
        tpl.count(),
        Duration::ZERO,
    )
}

/// The live offsets of one partition.
fn live_offsets(live: &Offsets, topic: &str, partition: i32) -> Vec<i64> {
    live[&(topic.to_string(), partition)]
        .iter()
        .map(|(o, _)| *o)
        .collect()
}

/// What a group that committed these (topic, partition, offset) has not consumed: the live
/// source records at offsets >= its commit, per partition.
fn unconsumed(live: &Offsets, commits: &[(&str, i32, i64)]) -> ByPartition {
    commits
        .iter()
        .map(|(t, p, c)| {
            let k = (t.to_string(), *p);
            let recs = live[&k]
                .iter()
                .filter(|(o, _)| o >= c)
                .map(|(_, r)| r.clone())
                .collect();
            (k, recs)
        })
        .collect()
}

/// The committed offsets of `group` on `c` for the given (topic, partition, _) entries.
fn committed(c: &Cluster, group: &str, parts: &[(&str, i32, i64)]) -> Vec<Option<i64>> {
    let tps: Vec<(&str, i32)> = parts.iter().map(|(t, p, _)| (*t, *p)).collect();
    c.committed(group, &tps)
}

/// Asserts `group`'s committed offsets on the target are exactly `want` (topic, partition,
/// offset).
fn assert_committed(tgt: &Cluster, group: &str, want: &[(&str, i32, i64)]) {
    let got = committed(tgt, group, want);
    let want_o: Vec<Option<i64>> = want.iter().map(|(_, _, o)| Some(*o)).collect();
    assert_eq!(
        got, want_o,
        "{group}: committed offsets on the target {want:?}"
    );
}

fn run_ok(dir: &Path, config: &str) -> Run {
    let run = kmigrate(dir, config, &["run", "--yes"]);
    assert_eq!(run.code, 0, "run:\n{}\n{}", run.stdout, run.stderr);
    run
}

/// The row of the CONSUMER GROUPS table for `group`.
fn group_row<'a>(run: &'a Run, group: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(group))
        .unwrap_or_else(|| panic!("no row for {group}:\n{}", run.stdout))
}

/// The verify row of (topic, partition).
fn verify_row<'a>(run: &'a Run, topic: &str, partition: i32) -> &'a str {
    let p = partition.to_string();
    run.stdout
        .lines()
        .find(|l| {
            let mut cells = l.split_whitespace();
            cells.next() == Some(topic) && cells.next() == Some(p.as_str())
        })
        .unwrap_or_else(|| panic!("no verify row for {topic}/{partition}:\n{}", run.stdout))
}

fn verify(dir: &Path) -> Run {
    kmigrate_raw(dir, &["verify"])
}

fn cleanup(topics: &[&str]) {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    for t in topics {
        src.delete_topic(t);
        tgt.delete_topic(t);
    }
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn seed_example_each_group_resumes_exactly_where_it_stopped() {
    // t3: shared by both groups, different commits per partition; g123 consumed t3/2 fully
    // (it resumes at the end of what was copied there for g34). t4: g34 only; t4/1 fully
    // consumed, nothing copied: g34 resumes at the target's end. The target already holds
    // foreign records in t3/0 and t4/1, so target offsets differ from source offsets.
    let (t3, t4) = (unique("tv-test3"), unique("tv-test4"));
    let (g123, g34) = (unique("tv-test123-group"), unique("tv-test34-group"));
    let (src, tgt) = both(&t3, 3);
    both(&t4, 2);
    produce_tagged(&src, &t3, &[(0, 20), (1, 20), (2, 20)], "t3");
    produce_tagged(&src, &t4, &[(0, 10), (1, 10)], "t4");
    produce_tagged(&tgt, &t3, &[(0, 2)], "foreign");
    produce_tagged(&tgt, &t4, &[(1, 3)], "foreign");
    let c123: [(&str, i32, i64); 3] = [(&t3, 0, 5), (&t3, 1, 12), (&t3, 2, 20)];
    let c34: [(&str, i32, i64); 5] = [
        (&t3, 0, 8),
        (&t3, 1, 3),
        (&t3, 2, 15),
        (&t4, 0, 4),
        (&t4, 1, 10),
    ];
    src.commit(&g123, &c123);
    src.commit(&g34, &c34);

    let dir = workdir("tv-seed");
    let run = run_ok(&dir, &config_for(&[&g123, &g34], ""));
    assert!(
        group_row(&run, &g123).contains("committed"),
        "{}",
        run.stdout
    );
    assert!(
        group_row(&run, &g34).contains("committed"),
        "{}",
        run.stdout
    );
    // Copied: t3/0 source 5..20 at target 2..17; t3/1 3..20 at 0..17; t3/2 15..20 at
    // 0..5; t4/0 4..10 at 0..6; t4/1 nothing.
    assert_eq!(highs(&tgt, &t3, 3), [17, 17, 5]);
    assert_eq!(highs(&tgt, &t4, 2), [6, 3]);

    let c123_target: [(&str, i32, i64); 3] = [(&t3, 0, 2), (&t3, 1, 9), (&t3, 2, 5)];
    assert_committed(&tgt, &g123, &c123_target);
    assert_eq!(
        committed(&tgt, &g123, &[(&t4, 0, 0), (&t4, 1, 0)]),
        [None, None],
        "{g123} never consumed {t4}"
    );
    assert_committed(
        &tgt,
        &g34,
        &[
            (&t3, 0, 5),
            (&t3, 1, 0),
            (&t3, 2, 0),
            (&t4, 0, 0),
            (&t4, 1, 3),
        ],
    );

    let live = read_live(&src, &[(&t3, 3), (&t4, 2)]);
    let (want123, want34) = (unconsumed(&live, &c123), unconsumed(&live, &c34));
    // What the test means, not only "both sides agree".
    let counts = |w: &ByPartition| w.values().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(counts(&want123), [15, 8, 0]);
    assert_eq!(counts(&want34), [12, 17, 5, 6, 0]);
    assert_received(&g123, &consume_as(&tgt, &g123, &[(&t3, 3)]), &want123);
    assert_received(
        &g34,
        &consume_as(&tgt, &g34, &[(&t3, 3), (&t4, 2)]),
        &want34,
    );
    // Consuming committed nothing: the translated offsets stand.
    assert_committed(&tgt, &g123, &c123_target);
    // verify compares from each partition's base, after the foreign records.
    let ok = verify_ok(&dir);
    let row: Vec<&str> = verify_row(&ok, &t3, 0).split_whitespace().collect();
    assert_eq!(row[2..], ["15", "15", "ok"]);
    cleanup(&[&t3, &t4]);
}

#[test]
fn compacted_source_commit_inside_a_gap_resumes_at_the_next_live_record() {
    let topic = unique("tv-compact");
    let (g_live, g_gap, g_gap2) = (
        unique("tv-compact-live"),
        unique("tv-compact-gap"),
        unique("tv-compact-gap2"),
    );
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "100"),
        ],
    );
    tgt.create_topic(&topic, 1, &[]);
    // Five rounds, each in a segment of its own (a segment rolls when a record's timestamp
    // is more than segment.ms past the segment's first). Round r rewrites key-0 ..
    // key-(4-r) and adds once-r; a sentinel rolls the last round's segment (the active
    // segment is never cleaned).
    let mut all: Vec<Rec> = Vec::new();
    for round in 0..5i64 {
        all.extend(
            (0..5 - round)
                .map(|k| format!("key-{k}"))
                .chain([format!("once-{round}")])
                .map(|k| {
                    let v = format!("{k}@{round}");
                    Rec::kv(0, &k, &v, TS + round * 10_000)
                }),
        );
    }
    all.push(Rec::kv(0, "sentinel", "end", TS + 100_000));
    // One produce call per round: one batch, one segment each.
    let mut at = 0;
    for n in [6, 5, 4, 3, 2, 1] {
        src.produce(&topic, &all[at..at + n]);
        at += n;
    }
    let survivors: Vec<i64> = (0..all.len())
        .filter(|i| !all[i + 1..].iter().any(|later| later.key == all[*i].key))
        .map(|i| i as i64)
        .collect();
    // Gaps: 0..=3, 6..=8, 11..=12, 15.
    assert_eq!(survivors, [4, 5, 9, 10, 13, 14, 16, 17, 18, 19, 20]);

    let t0 = Instant::now();
    let live = loop {
        let live = read_live(&src, &[(&topic, 1)]);
        let now = live_offsets(&live, &topic, 0);
        if now == survivors {
            break live;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the log cleaner did not compact {topic} within 60 s; offsets now: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("compacted after {:?}", t0.elapsed());

    // g_live at a live record (the copy's start); g_gap and g_gap2 inside gaps.
    let commits = [(&g_live, 5), (&g_gap, 7), (&g_gap2, 15)];
    for (g, c) in commits {
        src.commit(g, &[(&topic, 0, c)]);
    }
    let dir = workdir("tv-compact");
    run_ok(&dir, &config_for(&[&g_live, &g_gap, &g_gap2], ""));
    // Copied: source 5, 9, 10, 13, 14, 16, 17, 18, 19, 20 at target 0..10.
    assert_eq!(high(&tgt, &topic, 0), 10);
    assert_committed(&tgt, &g_live, &[(&topic, 0, 0)]);
    assert_committed(&tgt, &g_gap, &[(&topic, 0, 1)]);
    assert_committed(&tgt, &g_gap2, &[(&topic, 0, 5)]);
    for (g, c) in commits {
        let want = unconsumed(&live, &[(&topic, 0, c)]);
        assert_received(g, &consume_as(&tgt, g, &[(&topic, 1)]), &want);
    }
    // g_gap (7) resumes at source 9, key-3@1; g_gap2 (15) at source 16, key-1@3.
    assert_eq!(
        unconsumed(&live, &[(&topic, 0, 7)])[&(topic.clone(), 0)][0],
        all[9]
    );
    assert_eq!(
        unconsumed(&live, &[(&topic, 0, 15)])[&(topic.clone(), 0)][0],
        all[16]
    );
    verify_ok(&dir);
    cleanup(&[&topic]);
}

#[test]
fn transactional_source_commit_inside_an_aborted_transaction() {
    let topic = unique("tv-txn");
    let (g_early, g_mid, g_marker) = (
        unique("tv-txn-early"),
        unique("tv-txn-mid"),
        unique("tv-txn-marker"),
    );
    let (src, tgt) = both(&topic, 1);
    let producer: BaseProducer = src
        .config()
        .set("transactional.id", unique("tv-txn-id"))
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(support::TIMEOUT)
        .expect("init transactions");
    let txn = |name: &str, commit: bool| {
        producer.begin_transaction().expect("begin");
        for i in 0..3i64 {
            let (k, v) = (format!("{name}-{i}"), format!("{name}-value-{i}"));
            producer
                .send(
                    BaseRecord::<str, str>::to(&topic)
                        .partition(0)
                        .key(&k)
                        .payload(&v)
                        .timestamp(TS + i),
                )
                .map_err(|(e, _)| e)
                .expect("send");
        }
        producer.flush(support::TIMEOUT).expect("flush");
        if commit {
            producer
                .commit_transaction(support::TIMEOUT)
                .expect("commit");
        } else {
            producer.abort_transaction(support::TIMEOUT).expect("abort");
        }
    };
    // A: 0, 1, 2 + commit marker 3; B (aborted): 4, 5, 6 + abort marker 7; C: 8, 9, 10 + 11.
    txn("a", true);
    txn("b", false);
    txn("c", true);
    drop(producer);
    assert_eq!(high(&src, &topic, 0), 12, "offsets with markers");
    let live = read_live(&src, &[(&topic, 1)]);
    assert_eq!(live_offsets(&live, &topic, 0), [0, 1, 2, 8, 9, 10]);
    // g_early puts the copy's start at 1; g_mid is inside the aborted B; g_marker at A's
    // commit marker.
    let commits = [(&g_early, 1), (&g_mid, 5), (&g_marker, 3)];
    for (g, c) in commits {
        src.commit(g, &[(&topic, 0, c)]);
    }
    let dir = workdir("tv-txn");
    run_ok(&dir, &config_for(&[&g_early, &g_mid, &g_marker], ""));
    // Copied: a-1, a-2, c-0, c-1, c-2 at target 0..5.
    assert_eq!(high(&tgt, &topic, 0), 5);
    assert_committed(&tgt, &g_early, &[(&topic, 0, 0)]);
    assert_committed(&tgt, &g_mid, &[(&topic, 0, 2)]);
    assert_committed(&tgt, &g_marker, &[(&topic, 0, 2)]);
    let want = unconsumed(&live, &[(&topic, 0, 5)]);
    let keys: Vec<&[u8]> = want[&(topic.clone(), 0)]
        .iter()
        .filter_map(|r| r.key.as_deref())
        .collect();
    assert_eq!(keys, [b"c-0", b"c-1", b"c-2"]);
    assert_received(&g_mid, &consume_as(&tgt, &g_mid, &[(&topic, 1)]), &want);
    let want = unconsumed(&live, &[(&topic, 0, 1)]);
    assert_received(&g_early, &consume_as(&tgt, &g_early, &[(&topic, 1)]), &want);
    verify_ok(&dir);
    cleanup(&[&topic]);
}

#[test]
fn commit_below_an_expired_low_watermark_resumes_at_the_first_migrated_record() {
    let topic = unique("tv-expired");
    let g = unique("tv-expired-g");
    let (src, tgt) = both(&topic, 1);
    produce_tagged(&src, &topic, &[(0, 20)], "exp");
    // One foreign record on the target: the copy lands at 1.., not 0...
    produce_tagged(&tgt, &topic, &[(0, 1)], "foreign");
    src.commit(&g, &[(&topic, 0, 5)]);
    src.delete_records(&topic, 0, 12);
    assert_eq!(src.watermarks(&topic, 0), (12, 20));

    let dir = workdir("tv-expired");
    run_ok(&dir, &config_for(&[&g], ""));
    assert_eq!(high(&tgt, &topic, 0), 1 + 8);
    assert_committed(&tgt, &g, &[(&topic, 0, 1)]);
    let live = read_live(&src, &[(&topic, 1)]);
    let want = unconsumed(&live, &[(&topic, 0, 5)]);
    assert_eq!(want[&(topic.clone(), 0)].len(), 8, "source 12..20");
    assert_received(&g, &consume_as(&tgt, &g, &[(&topic, 1)]), &want);
    verify_ok(&dir);
    cleanup(&[&topic]);
}

/// Waits until `group` is Empty (no members) on `c`.
fn wait_empty(c: &Cluster, group: &str) {
    let client: BaseConsumer = c.config().create().expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = client
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .expect("listing groups");
        let state = list
            .groups()
            .first()
            .map(|g| g.state().to_string())
            .unwrap_or_default();
        if matches!(state.as_str(), "Empty" | "Dead" | "") {
            return;
        }
        assert!(Instant::now() < deadline, "{group} is still {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn active_group_on_the_target_is_refused_and_committed_on_the_rerun() {
    // topic: both groups, copied. done: g1 only, fully consumed (nothing copied: g1 resumes
    // at the target's end as it was when the copy completed).
    let (topic, done) = (unique("tv-active"), unique("tv-active-done"));
    let other = unique("tv-active-unrelated");
    let (g1, g2) = (unique("tv-active-g1"), unique("tv-active-g2"));
    let (src, tgt) = both(&topic, 2);
    both(&done, 1);
    tgt.create_topic(&other, 1, &[]);
    produce_tagged(&src, &topic, &[(0, 10), (1, 10)], "a");
    produce_tagged(&src, &done, &[(0, 4)], "d");
    produce_tagged(&tgt, &done, &[(0, 1)], "foreign");
    let c1: [(&str, i32, i64); 3] = [(&topic, 0, 3), (&topic, 1, 6), (&done, 0, 4)];
    let c2: [(&str, i32, i64); 2] = [(&topic, 0, 7), (&topic, 1, 2)];
    src.commit(&g1, &c1);
    src.commit(&g2, &c2);

    // g1 is live on the target, consuming something else.
    let member: BaseConsumer = tgt
        .config()
        .set("group.id", &g1)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    member.subscribe(&[&other]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(30);
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "no assignment");
        member.poll(Duration::from_millis(100));
    }

    let dir = workdir("tv-active");
    let config = config_for(&[&g1, &g2], "");
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(group_row(&run, &g1).contains("REFUSED"), "{}", run.stdout);
    assert!(group_row(&run, &g2).contains("committed"), "{}", run.stdout);
    // Copied: topic/0 source 3..10 at 0..7, topic/1 source 2..10 at 0..8.
    let copied = highs(&tgt, &topic, 2);
    assert_eq!(copied, [7, 8]);
    assert_committed(&tgt, &g2, &[(&topic, 0, 4), (&topic, 1, 0)]);
    assert_eq!(
        committed(&tgt, &g1, &c1),
        [None, None, None],
        "nothing committed for the refused group"
    );
    member.poll(Duration::from_millis(100));
    drop(member);
    wait_empty(&tgt, &g1);
    // Meanwhile producers moved to the target write to done/0: records g1 never saw.
    produce_tagged(&tgt, &done, &[(0, 2)], "new");

    let rerun = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(rerun.code, 0, "{}\n{}", rerun.stdout, rerun.stderr);
    assert!(
        rerun.stderr.contains("copied every planned record already"),
        "{}",
        rerun.stderr
    );
    assert!(
        group_row(&rerun, &g1).contains("committed"),
        "{}",
        rerun.stdout
    );
    assert!(!rerun.stdout.contains("REFUSED"), "{}", rerun.stdout);
    assert_eq!(highs(&tgt, &topic, 2), copied, "the rerun copied nothing");
    assert_committed(&tgt, &g1, &[(&topic, 0, 0), (&topic, 1, 4), (&done, 0, 1)]);
    assert_committed(&tgt, &g2, &[(&topic, 0, 4), (&topic, 1, 0)]);
    let live = read_live(&src, &[(&topic, 2)]);
    let mut want = unconsumed(&live, &c1[..2]);
    let new = read_live(&tgt, &[(&done, 1)]).remove(&(done.clone(), 0));
    let new: Vec<Rec> = new
        .expect("done/0")
        .into_iter()
        .skip(1)
        .map(|(_, r)| r)
        .collect();
    assert_eq!(new.len(), 2);
    want.insert((done.clone(), 0), new);
    let got = consume_as(&tgt, &g1, &[(&topic, 2), (&done, 1)]);
    assert_received(&g1, &got, &want);
    cleanup(&[&topic, &done, &other]);
}

#[test]
fn verify_passes_after_a_run_and_names_each_damaged_partition() {
    let topic = unique("tv-verify");
    let g = unique("tv-verify-g");
    let (src, tgt) = both(&topic, 3);
    produce_tagged(&src, &topic, &[(0, 30), (1, 30), (2, 30)], "v");
    src.commit(&g, &[(&topic, 0, 2), (&topic, 1, 0), (&topic, 2, 10)]);
    let dir = workdir("tv-verify");
    run_ok(&dir, &config_for(&[&g], ""));

    let ok = verify_ok(&dir);
    for (p, n) in [(0, 28), (1, 30), (2, 20)] {
        let row = verify_row(&ok, &topic, p);
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[2..], [&n.to_string(), &n.to_string(), "ok"], "{row}");
    }

    // One record more on the target's partition 1.
    produce_tagged(&tgt, &topic, &[(1, 1)], "extra");
    let bad = verify(&dir);
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    assert!(!bad.stdout.contains("VERIFIED"), "{}", bad.stdout);
    let row = verify_row(&bad, &topic, 1);
    assert!(
        row.contains("MISMATCH") && row.contains("30") && row.contains("31"),
        "{row}"
    );
    assert!(row.contains("target offset 30"), "{row}");
    assert!(
        verify_row(&bad, &topic, 0).ends_with("ok"),
        "{}",
        bad.stdout
    );
    assert!(
        verify_row(&bad, &topic, 2).ends_with("ok"),
        "{}",
        bad.stdout
    );

    // The first copied record removed from the target's partition 2.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(STATE)).expect("state file"))
            .expect("state JSON");
    let base = state["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["partition"] == 2)
        .and_then(|p| p["progress"]["base"].as_i64())
        .expect("partition 2's base");
    assert_eq!(base, 0);
    tgt.delete_records(&topic, 2, base + 1);
    let bad = verify(&dir);
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    let row = verify_row(&bad, &topic, 2);
    assert!(row.contains("MISMATCH") && row.contains("removed"), "{row}");
    assert!(
        verify_row(&bad, &topic, 0).ends_with("ok"),
        "{}",
        bad.stdout
    );
    assert!(
        verify_row(&bad, &topic, 1).contains("MISMATCH"),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("2 MISMATCH(ES)"), "{}", bad.stdout);

    // Without the state file there is nothing to compare.
    let empty = workdir("tv-verify-none");
    let none = kmigrate(&empty, &config_for(&[&g], ""), &["verify"]);
    assert_eq!(none.code, 2, "{}\n{}", none.stdout, none.stderr);
    assert!(none.stderr.contains("state file"), "{}", none.stderr);
    assert!(none.stderr.contains(STATE), "{}", none.stderr);
    assert!(none.stdout.is_empty(), "{}", none.stdout);
    cleanup(&[&topic]);
}

#[test]
fn verify_passes_after_a_killed_and_resumed_run() {
    const N: usize = 200_000;
    let topic = unique("tv-resume");
    let g = unique("tv-resume-g");
    let (src, tgt) = both(&topic, 2);
    // Small records: the point is the count, not the bytes.
    for p in 0..2 {
        let recs: Vec<Rec> = (0..N / 2)
            .map(|i| Rec::kv(p, &format!("r{p}-{i}"), &format!("{i:08}"), TS + i as i64))
            .collect();
        src.produce(&topic, &recs);
    }
    src.commit(&g, &[(&topic, 0, 100), (&topic, 1, 5_000)]);
    let total = N as i64 - 100 - 5_000;
    let dir = workdir("tv-resume");
    // Throttled so that the kill lands mid-copy on any machine.
    let throttled = config_for(&[&g], "[migration]\nmax_bytes_per_second = 1000000\n");
    std::fs::write(dir.join("migrate.toml"), &throttled).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmigrate"))
        .args(["run", "--yes"])
        .current_dir(&dir)
        .env_remove("KMIGRATE_CONFIG")
        .env("KMIGRATE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting kmigrate");
    let watcher: BaseConsumer = tgt.config().create().expect("watermark client");
    let on_target = || -> i64 {
        (0..2)
            .map(|p| {
                watcher
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .map_or(0, |(_, h)| h)
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while on_target() < total / 4 {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "kmigrate ended before the kill"
        );
        assert!(Instant::now() < deadline, "the copy did not progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let at_kill = on_target();
    assert!(at_kill < total, "killed mid-copy: {at_kill} of {total}");
    assert!(dir.join(STATE).exists());

    let rerun = kmigrate(&dir, &config_for(&[&g], ""), &["run", "--yes"]);
    assert_eq!(rerun.code, 0, "{}\n{}", rerun.stdout, rerun.stderr);
    assert!(rerun.stderr.contains("resuming"), "{}", rerun.stderr);
    assert_eq!(on_target(), total, "no record lost or duplicated");
    assert_committed(&tgt, &g, &[(&topic, 0, 0), (&topic, 1, 0)]);

    let ok = verify_ok(&dir);
    for (p, n) in [(0, N / 2 - 100), (1, N / 2 - 5_000)] {
        let row = verify_row(&ok, &topic, p);
        let n = thousands(n as i64);
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[2..], [n.as_str(), n.as_str(), "ok"], "{row}");
    }
    cleanup(&[&topic]);
}

/// The rows of plan's "WHERE GROUPS WILL RESUME ON THE TARGET" table: (group, topic,
/// partition, target offset).
fn resume_rows(plan: &Run) -> Vec<(String, String, i32, i64)> {
    let mut lines = plan
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("WHERE GROUPS WILL RESUME ON THE TARGET"));
    assert!(
        lines.next().is_some(),
        "plan shows no resume table:\n{}",
        plan.stdout
    );
    lines
        .skip(1) // the column headers
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(c.len(), 4, "{l}");
            let n = |s: &str| s.replace(',', "").parse::<i64>().expect("a number");
            (c[0].to_string(), c[1].to_string(), n(c[2]) as i32, n(c[3]))
        })
        .collect()
}

#[test]
fn plan_shows_where_each_group_will_resume_and_run_commits_it() {
    // t: gA and gB with different commits; gA consumed t/1 fully. u: gC only, fully
    // consumed (nothing copied). The target holds foreign records in t/0 and u/0.
    let (t, u) = (unique("tv-plan-t"), unique("tv-plan-u"));
    let (ga, gb, gc) = (
        unique("tv-plan-ga"),
        unique("tv-plan-gb"),
        unique("tv-plan-gc"),
    );
    let (src, tgt) = both(&t, 2);
    both(&u, 1);
    produce_tagged(&src, &t, &[(0, 20), (1, 10)], "t");
    produce_tagged(&src, &u, &[(0, 5)], "u");
    produce_tagged(&tgt, &t, &[(0, 3)], "foreign");
    produce_tagged(&tgt, &u, &[(0, 2)], "foreign");
    src.commit(&ga, &[(&t, 0, 5), (&t, 1, 10)]);
    src.commit(&gb, &[(&t, 0, 12), (&t, 1, 4)]);
    src.commit(&gc, &[(&u, 0, 5)]);

    let dir = workdir("tv-plan");
    let config = config_for(&[&ga, &gb, &gc], "");
    let plan = kmigrate(&dir, &config, &["plan"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("provisional"), "{}", plan.stdout);
    // t/0 copies 5..20 after 3 foreign records; t/1 copies 4..10; u/0 nothing.
    let mut want = vec![
        (ga.clone(), t.clone(), 0, 3),
        (ga.clone(), t.clone(), 1, 6),
        (gb.clone(), t.clone(), 0, 10),
        (gb.clone(), t.clone(), 1, 0),
        (gc.clone(), u.clone(), 0, 2),
    ];
    want.sort();
    let mut shown = resume_rows(&plan);
    shown.sort();
    assert_eq!(shown, want, "{}", plan.stdout);

    // Without gaps in the source, run commits exactly what plan showed.
    run_ok(&dir, &config);
    for (g, topic, p, o) in &want {
        assert_committed(&tgt, g, &[(topic, *p, *o)]);
    }
    let live = read_live(&src, &[(&t, 2), (&u, 1)]);
    let c_gb: [(&str, i32, i64); 2] = [(&t, 0, 12), (&t, 1, 4)];
    assert_received(
        &gb,
        &consume_as(&tgt, &gb, &[(&t, 2)]),
        &unconsumed(&live, &c_gb),
    );
    let c_gc: [(&str, i32, i64); 1] = [(&u, 0, 5)];
    assert_received(
        &gc,
        &consume_as(&tgt, &gc, &[(&u, 1)]),
        &unconsumed(&live, &c_gc),
    );
    cleanup(&[&t, &u]);
}
