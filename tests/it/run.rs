//! `kmigrate run` against the real test bed: what arrives on the target, record for record
//! (key, value, headers, timestamp, partition, order), after clean runs, interruptions and
//! refusals.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

use crate::support;
use crate::support::process::{Progress, spawn, state_json, while_running};
use crate::support::records::{
    assert_copied, assert_records, count, high, highs, noise, produce_bulk,
};
use crate::support::{Cluster, Rec, Run, STATE, TS, config_for, kmigrate, unique, workdir};

// ---------------------------------------------------------------------------------------
// Helpers.

fn rec(
    partition: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
    ts: i64,
) -> Rec {
    Rec {
        partition,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
            .collect(),
        timestamp: Some(ts),
    }
}

/// `115000` -> `115,000`, as the summary prints counts.
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The SUMMARY row of a topic, split on whitespace: [topic, planned, written, on target, ...].
fn summary_row(run: &Run, topic: &str) -> Vec<String> {
    run.stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| cells.first().map(String::as_str) == Some(topic))
        .unwrap_or_else(|| panic!("no summary row for {topic}:\n{}", run.stdout))
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn content_equality_for_every_record_shape() {
    let topic = unique("run-shapes");
    let g = unique("run-shapes-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    let big = [("max.message.bytes", "2000000")];
    src.create_topic(&topic, 3, &big);
    tgt.create_topic(&topic, 3, &big);

    let payload = noise(900 * 1024, 7);
    let many_headers: &[(&str, Option<&[u8]>)] = &[
        ("trace", Some(b"1")),
        ("dup", Some(b"first")),
        ("nil", None),
        ("dup", Some(b"second")),
        ("empty", Some(b"")),
        ("dup", Some(b"first")),
        ("bin", Some(&[0, 255, 1, 254])),
        ("nil", None),
    ];
    let records = vec![
        // Partition 0: the group committed 2, so the first two stay behind.
        rec(0, Some(b"consumed-0"), Some(b"x"), &[], TS),
        rec(
            0,
            Some(b"consumed-1"),
            Some(b"y"),
            &[("h", Some(b"v"))],
            TS + 1,
        ),
        rec(0, None, Some(b"no key"), &[], 1_000),
        rec(0, Some(b"tombstone"), None, &[], 1_600_000_000_000),
        rec(0, Some(b""), Some(b""), &[], TS + 2),
        rec(0, Some(b"headers"), Some(b"many"), many_headers, TS + 3),
        rec(
            0,
            Some(b"big"),
            Some(&payload),
            &[("size", Some(b"900KiB"))],
            1_000,
        ),
        rec(0, None, None, &[("only", Some(b"headers"))], TS - 5),
        rec(
            0,
            Some(&[0, 159, 146, 150]),
            Some(&[255, 0, 254]),
            &[],
            TS + 4,
        ),
        // Partition 1: committed at 0, all of it is copied. Timestamps go backwards.
        rec(1, Some(b"k"), Some(b"1"), &[], 1_600_000_000_000),
        rec(1, Some(b"k"), Some(b"2"), &[], 1_000),
        rec(1, Some(b"k"), None, &[("nil", None)], 2_000),
        rec(1, None, Some(b""), &[("", Some(b"empty name"))], TS),
        rec(1, Some(b""), None, &[], TS),
        // Partition 2: committed at 3 of 7.
        rec(2, Some(b"a"), Some(b"1"), &[], TS),
        rec(2, Some(b"b"), Some(b"2"), &[], TS),
        rec(2, Some(b"c"), Some(b"3"), &[], TS),
        rec(2, Some(b"d"), Some(&payload[..1000]), many_headers, 1_000),
        rec(2, None, None, &[], 1_000),
        rec(2, Some(b"big-too"), Some(&payload), many_headers, TS + 9),
        rec(2, Some(b"last"), Some(b"7"), &[], TS + 10),
    ];
    src.produce(&topic, &records);
    let committed = [2, 0, 3];
    src.commit(
        &g,
        &[
            (&topic, 0, committed[0]),
            (&topic, 1, committed[1]),
            (&topic, 2, committed[2]),
        ],
    );
    let by_p = support::by_partition(&records);

    let dir = workdir("run-shapes");
    let run = kmigrate(&dir, &config_for(&[&g], ""), &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // The target holds what the source holds from the group's position on...
    let copied = assert_copied(&src, &tgt, &topic, &committed);
    // ... and that is exactly what the test produced: every shape survived both trips.
    for p in 0..3 {
        let want = &by_p[&p][committed[p as usize] as usize..];
        assert_records(
            &format!("{topic}/{p} on the target"),
            &copied[p as usize],
            want,
        );
    }
    assert_eq!(count(&copied), 7 + 5 + 4);
    let row = summary_row(&run, &topic);
    assert_eq!(row[1..4], ["16", "16", "16"], "{}", run.stdout);
    let state = state_json(&dir);
    assert_ne!(state["phase"], "copying", "{state:#}");
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn seed_example_in_miniature_from_a_saved_plan() {
    // The procedure's example at small scale: test1/0 expired, test3 shared by both groups
    // with different commits, test4 consumed by the second group only.
    let (t1, t3, t4) = (
        unique("run-test1"),
        unique("run-test3"),
        unique("run-test4"),
    );
    let (g123, g34) = (unique("run-test123-group"), unique("run-test34-group"));
    let (src, tgt) = (Cluster::source(), Cluster::target());
    for (t, partitions) in [(&t1, 1), (&t3, 2), (&t4, 1)] {
        src.create_topic(t, partitions, &[]);
        tgt.create_topic(t, partitions, &[]);
    }
    src.produce_n(&t1, 0, 52, TS);
    src.produce_n(&t3, 0, 300, TS);
    src.produce_n(&t3, 1, 100, TS + 1_000_000);
    src.produce_n(&t4, 0, 80, TS);
    src.commit(&g123, &[(&t1, 0, 37), (&t3, 0, 250), (&t3, 1, 10)]);
    src.commit(&g34, &[(&t3, 0, 240), (&t3, 1, 90), (&t4, 0, 30)]);
    src.delete_records(&t1, 0, 52);

    let dir = workdir("run-seed");
    let config = config_for(&[&g123, &g34], "");
    let planned = kmigrate(&dir, &config, &["plan", "--out", "plan.json"]);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let plan: Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).expect("saved plan"))
            .expect("plan JSON");
    assert_eq!(plan["totals"]["messages"], 60 + 90 + 50, "{plan:#}");

    let run = kmigrate(&dir, &config, &["run", "--plan", "plan.json", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for (t, n) in [(&t3, 150), (&t4, 50)] {
        let topic_plan = plan["topics"]
            .as_array()
            .expect("topics")
            .iter()
            .find(|x| x["topic"] == t.as_str())
            .unwrap_or_else(|| panic!("{t} not in the plan"));
        assert_eq!(topic_plan["to_migrate"], n, "{topic_plan:#}");
        let row = summary_row(&run, t);
        let n = n.to_string();
        assert_eq!(row[1..4], [n.as_str(); 3], "{}", run.stdout);
        assert_eq!(row[4..6], ["all", "written"], "{}", run.stdout);
    }
    assert!(
        !run.stdout.lines().any(|l| l.trim_start().starts_with(&t1)),
        "the expired topic is not in the summary:\n{}",
        run.stdout
    );
    assert_eq!(count(&assert_copied(&src, &tgt, &t3, &[240, 10])), 150);
    assert_eq!(count(&assert_copied(&src, &tgt, &t4, &[30])), 50);
    assert_eq!(highs(&tgt, &t1, 1), [0], "nothing of the expired partition");
    for t in [&t1, &t3, &t4] {
        src.delete_topic(t);
        tgt.delete_topic(t);
    }
}

#[test]
fn compacted_source_copies_exactly_the_live_records() {
    let topic = unique("run-compact");
    let g = unique("run-compact-g");
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
    // Five rounds, each in a segment of its own: a segment rolls when a record's timestamp
    // is more than segment.ms after the segment's first one, so 10 s apart does it. Round r
    // rewrites key-0 .. key-(4-r) and adds once-r, so the survivors are spread out.
    let mut all = Vec::new();
    for round in 0..5i64 {
        let keys = (0..5 - round)
            .map(|k| format!("key-{k}"))
            .chain([format!("once-{round}")]);
        let recs: Vec<Rec> = keys
            .map(|k| {
                let v = format!("{k}@{round}");
                let r = round.to_string();
                rec(
                    0,
                    Some(k.as_bytes()),
                    Some(v.as_bytes()),
                    &[("round", Some(r.as_bytes()))],
                    TS + round * 10_000,
                )
            })
            .collect();
        src.produce(&topic, &recs);
        all.extend(recs);
    }
    // The last segment must not be the active one (never cleaned): one more record rolls it.
    let sentinel = rec(0, Some(b"sentinel"), Some(b"end"), &[], TS + 100_000);
    src.produce(&topic, std::slice::from_ref(&sentinel));
    all.push(sentinel);
    // What compaction leaves: the last record of each key.
    let survivors: Vec<(i64, Rec)> = all
        .iter()
        .enumerate()
        .filter(|(i, r)| !all[i + 1..].iter().any(|later| later.key == r.key))
        .map(|(i, r)| (i as i64, r.clone()))
        .collect();
    let offsets: Vec<i64> = survivors.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, [4, 5, 9, 10, 13, 14, 16, 17, 18, 19, 20]);

    let t0 = Instant::now();
    loop {
        let now: Vec<(i64, Rec)> = src
            .read_all(&topic, 0)
            .into_iter()
            .map(|r| (r.offset, r.rec))
            .collect();
        if now == survivors {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the log cleaner did not compact {topic} within 60 s; offsets now: {:?}",
            now.iter().map(|(o, _)| *o).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("compacted after {:?}", t0.elapsed());

    // The group's position is an offset compaction removed.
    src.commit(&g, &[(&topic, 0, 6)]);
    let dir = workdir("run-compact");
    let run = kmigrate(&dir, &config_for(&[&g], ""), &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let want: Vec<Rec> = survivors
        .iter()
        .filter(|(o, _)| *o >= 6)
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(want.len(), 9);
    let copied = assert_copied(&src, &tgt, &topic, &[6]);
    assert_records(&format!("{topic}/0 on the target"), &copied[0], &want);
    let row = summary_row(&run, &topic);
    assert_eq!(row[1..4], ["15", "9", "9"], "{}", run.stdout);
    assert!(
        row.join(" ").contains("(6 offsets were gaps)"),
        "{}",
        run.stdout
    );
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

/// The high watermarks of a topic's partitions once no transaction is open in them: the
/// transaction coordinator writes the markers after the producer's commit or abort returns,
/// and until then the last stable offset lags. (`Cluster::watermarks` reads with librdkafka's
/// default isolation, read_committed: its "high" is the last stable offset.)
fn settled_highs(c: &Cluster, topic: &str, partitions: i32) -> Vec<i64> {
    let uncommitted: BaseConsumer = c
        .config()
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("creating a consumer");
    let deadline = Instant::now() + support::TIMEOUT;
    loop {
        let high: Vec<i64> = (0..partitions)
            .map(|p| {
                uncommitted
                    .fetch_watermarks(topic, p, support::TIMEOUT)
                    .expect("watermarks")
                    .1
            })
            .collect();
        let stable = highs(c, topic, partitions);
        if stable == high {
            return high;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: transactions still open: high {high:?}, last stable {stable:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends records with a producer (e.g. a transactional one), keeping every field.
fn send_all(producer: &BaseProducer, topic: &str, recs: &[Rec]) {
    for r in recs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .partition(r.partition)
            .headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        producer
            .send(record)
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("producing to {topic}: {e}"));
    }
    producer.flush(support::TIMEOUT).expect("flush");
}

#[test]
fn transactional_source_copies_committed_records_only() {
    let topic = unique("run-txn");
    let g = unique("run-txn-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 3, &[]);
    tgt.create_topic(&topic, 3, &[]);
    let producer: BaseProducer = src
        .config()
        .set("transactional.id", unique("run-txn-id"))
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(support::TIMEOUT)
        .expect("init transactions");
    let txn = |name: &str, parts: &[(i32, usize)], commit: bool| -> Vec<Rec> {
        let mut recs = Vec::new();
        for (p, n) in parts {
            for i in 0..*n {
                let k = format!("{name}-{p}-{i}");
                let h = format!("{name}{i}");
                let value = (i != 1).then_some(k.as_bytes());
                recs.push(rec(
                    *p,
                    Some(k.as_bytes()),
                    value,
                    &[("txn", Some(h.as_bytes())), ("nil", None)],
                    TS + i as i64,
                ));
            }
        }
        producer.begin_transaction().expect("begin");
        send_all(&producer, &topic, &recs);
        if commit {
            producer
                .commit_transaction(support::TIMEOUT)
                .expect("commit");
        } else {
            producer.abort_transaction(support::TIMEOUT).expect("abort");
        }
        recs
    };
    // Partition 0: A, B (aborted), C: its range ends with C's commit marker.
    // Partition 1: A, B (aborted): ends with aborted records and the abort marker.
    // Partition 2: like 1, but the group's position is inside B: not one record to copy.
    let a = txn("a", &[(0, 3), (1, 2), (2, 2)], true);
    let b = txn("b", &[(0, 3), (1, 3), (2, 3)], false);
    let c = txn("c", &[(0, 3)], true);
    drop(producer);
    // p0: A 0-2, marker 3, B 4-6, marker 7, C 8-10, marker 11; p1 and p2: A 0-1, marker 2,
    // B 3-5, marker 6.
    assert_eq!(settled_highs(&src, &topic, 3), [12, 7, 7]);
    let committed = [0, 0, 4];
    src.commit(
        &g,
        &[
            (&topic, 0, committed[0]),
            (&topic, 1, committed[1]),
            (&topic, 2, committed[2]),
        ],
    );

    let dir = workdir("run-txn");
    let t0 = Instant::now();
    let run = kmigrate(&dir, &config_for(&[&g], ""), &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Terminates promptly: no waiting for a record after the range's last marker.
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());

    let of = |recs: &[Rec], p: i32| -> Vec<Rec> {
        recs.iter().filter(|r| r.partition == p).cloned().collect()
    };
    let want0: Vec<Rec> = of(&a, 0).into_iter().chain(of(&c, 0)).collect();
    let copied = assert_copied(&src, &tgt, &topic, &committed);
    assert_records("partition 0", &copied[0], &want0);
    assert_records("partition 1", &copied[1], &of(&a, 1));
    assert_records("partition 2", &copied[2], &[]);
    assert_eq!(count(&copied), 8);
    assert!(
        copied.iter().flatten().all(|r| !b.contains(r)),
        "no record of the aborted transaction"
    );
    assert_eq!(
        highs(&tgt, &topic, 3),
        [6, 2, 0],
        "no markers, no aborted records"
    );
    let row = summary_row(&run, &topic);
    assert_eq!(row[1..4], ["22", "8", "8"], "{}", run.stdout);
    assert_offset_map(&dir, (&src, &tgt), &topic, &committed, &g);
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

/// `kmigrate offsets translate` for every source offset of each partition's copy, records
/// and gaps (markers, aborted records) alike, agrees with where the record is on the target
/// (key, value, headers, timestamp equal) and with the group's committed translation;
/// offsets outside the copy are refused with exit 1; `offsets export` lists the same runs.
fn assert_offset_map(
    dir: &Path,
    (src, tgt): (&Cluster, &Cluster),
    topic: &str,
    starts: &[i64],
    group: &str,
) {
    let translate = |p: i32, o: i64| {
        let run = support::kmigrate_raw(
            dir,
            &[
                "offsets",
                "translate",
                topic,
                &p.to_string(),
                &o.to_string(),
            ],
        );
        match run.code {
            0 => Some(run.stdout.trim().parse::<i64>().expect("a target offset")),
            1 => {
                assert!(
                    run.stderr.contains("has no target offset")
                        || run.stderr.contains("is not part of the copy"),
                    "{}",
                    run.stderr
                );
                None
            }
            c => panic!("offsets translate exit {c}: {}", run.stderr),
        }
    };
    for (p, start) in starts.iter().enumerate() {
        let p = p as i32;
        let source = src.read_all(topic, p);
        let target = tgt.read_all(topic, p);
        let end = src.watermarks(topic, p).1;
        for o in *start..=end {
            let t = translate(p, o).unwrap_or_else(|| panic!("{topic}/{p}: offset {o} refused"));
            // The first source record at or after o is the target record at t.
            match source.iter().find(|r| r.offset >= o) {
                Some(r) => {
                    let at = target.iter().find(|x| x.offset == t);
                    assert_eq!(
                        at.map(|x| &x.rec),
                        Some(&r.rec),
                        "{topic}/{p}: source {o} -> target {t}"
                    );
                }
                None => assert_eq!(
                    t,
                    target.last().map_or(0, |x| x.offset + 1),
                    "{topic}/{p}: {o} past the last record"
                ),
            }
        }
        assert_eq!(translate(p, end + 1), None, "{topic}/{p}: past the end");
        if *start > 0 {
            assert_eq!(
                translate(p, start - 1),
                None,
                "{topic}/{p}: below the start"
            );
        }
        let committed = tgt.committed(group, &[(topic, p)])[0];
        let src_commit = starts[p as usize];
        assert_eq!(
            translate(p, src_commit),
            committed,
            "{topic}/{p}: the group's translation"
        );
    }
    let export = support::kmigrate_raw(dir, &["offsets", "export"]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let doc = export.json();
    let parts = doc["partitions"].as_array().expect("partitions");
    let records: u64 = parts
        .iter()
        .flat_map(|p| p["runs"].as_array().expect("runs").iter())
        .map(|r| r[2].as_u64().expect("count"))
        .sum();
    assert_eq!(records, 8, "{doc}");
    let csv = support::kmigrate_raw(dir, &["offsets", "export", "--format", "csv"]);
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "topic,partition,target_topic,source_offset,target_offset,count"
    );
    let runs: usize = parts
        .iter()
        .map(|p| p["runs"].as_array().expect("runs").len())
        .sum();
    assert_eq!(lines.len(), runs + 1, "{}", csv.stdout);
    assert_eq!(translate(99, 0), None, "a partition not in the copy");
}

/// Per partition of the state file: records on the target past the last checkpoint (what a
/// resume has to skip). Panics if the target has fewer records than the checkpoint says.
fn past_checkpoint(dir: &Path, tgt: &Cluster, topic: &str) -> Vec<i64> {
    let state = state_json(dir);
    state["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            let partition = p["partition"].as_i64().expect("partition") as i32;
            let h = high(tgt, topic, partition);
            let progress = &p["progress"];
            let next = match (progress["base"].as_i64(), progress["acked"].as_array()) {
                (None, _) => h,
                (Some(base), None) => base,
                (Some(_), Some(acked)) => acked[1].as_i64().expect("target offset") + 1,
            };
            assert!(
                h >= next,
                "{topic}/{partition}: target {h} < checkpoint {next}"
            );
            h - next
        })
        .collect()
}

#[test]
fn resumes_exactly_after_sigkill_early_mid_and_late() {
    // One copy killed three times, each resume continuing the previous one's state: states
    // that were themselves resumed get resumed, and the data is made (and read back) once.
    // The copy is throttled (max_bytes_per_second) so that it lasts several seconds on a
    // fast machine too and the kill points are reachable; a slower machine only makes it
    // longer. Each kill leaves records on the target past the last checkpoint (checkpoints
    // are 2 s apart), which the resume must count and skip, not write again.
    const PARTS: i32 = 3;
    const PER: usize = 30_000;
    let topic = unique("run-kill");
    let g = unique("run-kill-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, PARTS, &[]);
    tgt.create_topic(&topic, PARTS, &[]);
    produce_bulk(&src, &topic, PARTS, PER);
    let committed = [0i64, 1000, 7];
    src.commit(
        &g,
        &[
            (&topic, 0, committed[0]),
            (&topic, 1, committed[1]),
            (&topic, 2, committed[2]),
        ],
    );
    let total: i64 = committed.iter().map(|c| PER as i64 - c).sum();
    let dir = workdir("run-kill");
    std::fs::write(
        dir.join("migrate.toml"),
        config_for(&[&g], "[migration]\nmax_bytes_per_second = 2500000\n"),
    )
    .expect("config");
    let progress = Progress::new(&tgt, &topic, PARTS);
    let t0 = Instant::now();

    // Early: as soon as the state file exists.
    let mut bg = spawn(&dir, &["run", "--yes"]);
    while_running(&mut bg, "the state file appears", || {
        dir.join(STATE).exists()
    });
    let killed = bg.kill9();
    assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
    let mut skipped = past_checkpoint(&dir, &tgt, &topic);
    eprintln!(
        "early kill at {:?}: {} on the target, past checkpoint {skipped:?}",
        t0.elapsed(),
        progress.total()
    );

    // Mid and late: when the target holds half, then 90%, of the records.
    for (what, fraction) in [("half", 0.5), ("90%", 0.9)] {
        let mut bg = spawn(&dir, &["run", "--yes"]);
        let at = (total as f64 * fraction) as i64;
        while_running(&mut bg, &format!("{what} on the target"), || {
            progress.total() >= at
        });
        let killed = bg.kill9();
        assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
        let past = past_checkpoint(&dir, &tgt, &topic);
        eprintln!(
            "{what} kill at {:?}: {} on the target, past checkpoint {past:?}",
            t0.elapsed(),
            progress.total()
        );
        skipped.extend(past);
    }
    assert!(
        skipped.iter().sum::<i64>() > 0,
        "no kill left records past a checkpoint: the resume's skip was not exercised"
    );

    let run = kmigrate(&dir, &config_for(&[&g], ""), &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
    eprintln!("completed at {:?}", t0.elapsed());
    assert_eq!(progress.total(), total, "no duplicates");
    assert_eq!(
        count(&assert_copied(&src, &tgt, &topic, &committed)) as i64,
        total
    );
    let row = summary_row(&run, &topic);
    let n = thousands(total);
    assert_eq!(row[1..4], [n.as_str(); 3], "{}", run.stdout);
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn sigint_saves_progress_and_the_rerun_completes() {
    const PARTS: i32 = 2;
    const PER: usize = 25_000;
    let topic = unique("run-sigint");
    let g = unique("run-sigint-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, PARTS, &[]);
    tgt.create_topic(&topic, PARTS, &[]);
    produce_bulk(&src, &topic, PARTS, PER);
    src.commit(&g, &[(&topic, 0, 0), (&topic, 1, 100)]);
    let total = (2 * PER - 100) as i64;
    let dir = workdir("run-sigint");
    std::fs::write(
        dir.join("migrate.toml"),
        config_for(&[&g], "[migration]\nmax_bytes_per_second = 1000000\n"),
    )
    .expect("config");
    let progress = Progress::new(&tgt, &topic, PARTS);

    let mut bg = spawn(&dir, &["run", "--yes"]);
    while_running(&mut bg, "records on the target", || {
        progress.total() >= total / 10
    });
    bg.signal("-INT");
    eprintln!("SIGINT with {} on the target", progress.total());
    let run = bg.wait();
    assert_eq!(run.code, 130, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("interrupted") && run.stderr.contains("kmigrate run"),
        "{}",
        run.stderr
    );

    // A clean stop checkpoints every acknowledged record: the state matches the target.
    let state = state_json(&dir);
    assert_eq!(
        state["phase"], "copying",
        "the copy was not stopped midway (SIGINT too late?): {run:?}"
    );
    let mut written = 0;
    for p in state["partitions"].as_array().expect("partitions") {
        let partition = p["partition"].as_i64().expect("partition") as i32;
        let h = high(&tgt, &topic, partition);
        let pr = &p["progress"];
        let w = pr["written"].as_i64().expect("written");
        assert_eq!(pr["base"], 0, "{p}");
        assert_eq!(w, h, "{topic}/{partition}: state {p} vs target high {h}");
        if w > 0 {
            assert_eq!(pr["acked"][1], h - 1, "{p}");
        }
        written += w;
    }
    assert!(written > 0 && written < total, "{written} of {total}");
    assert_eq!(past_checkpoint(&dir, &tgt, &topic), [0, 0]);

    // The rest at full speed: the state file, not the configuration, says what to copy.
    let run = kmigrate(&dir, &config_for(&[&g], ""), &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        count(&assert_copied(&src, &tgt, &topic, &[0, 100])) as i64,
        total
    );
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn refuses_a_plan_the_source_moved_away_from_unless_replan() {
    let topic = unique("run-moved");
    let g = unique("run-moved-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 2, &[]);
    tgt.create_topic(&topic, 2, &[]);
    src.produce_n(&topic, 0, 10, TS);
    src.produce_n(&topic, 1, 10, TS);
    src.commit(&g, &[(&topic, 0, 3), (&topic, 1, 0)]);
    let dir = workdir("run-moved");
    let config = config_for(&[&g], "");
    let planned = kmigrate(&dir, &config, &["plan", "--out", "plan.json"]);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    src.produce(&topic, &[Rec::kv(1, "late", "after the plan", TS + 50)]);

    let run = kmigrate(&dir, &config, &["run", "--plan", "plan.json", "--yes"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!("{topic}/1 (high 10 -> 11")),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(&format!("{topic}/0 (")),
        "{}",
        run.stderr
    );
    assert_eq!(highs(&tgt, &topic, 2), [0, 0], "nothing written");
    assert!(!dir.join(STATE).exists(), "no state file");

    let run = kmigrate(
        &dir,
        &config,
        &["run", "--plan", "plan.json", "--yes", "--replan"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("planning again"), "{}", run.stderr);
    assert_eq!(count(&assert_copied(&src, &tgt, &topic, &[3, 0])), 7 + 11);
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

/// Waits until a topic is gone from a cluster's metadata.
fn wait_gone(c: &Cluster, topic: &str) {
    let client: BaseConsumer = c.config().create().expect("metadata client");
    let deadline = Instant::now() + support::TIMEOUT;
    loop {
        let md = client
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("metadata");
        if md
            .topics()
            .iter()
            .all(|t| t.name() != topic || t.partitions().is_empty())
        {
            return;
        }
        assert!(Instant::now() < deadline, "{topic} was not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn refuses_a_target_with_too_few_partitions_before_writing() {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    // A fresh plan that finds the problem.
    let topic = unique("run-few");
    let g = unique("run-few-g");
    src.create_topic(&topic, 3, &[]);
    tgt.create_topic(&topic, 1, &[]);
    for p in 0..3 {
        src.produce_n(&topic, p, 5, TS);
    }
    tgt.produce_n(&topic, 0, 2, TS);
    src.commit(&g, &[(&topic, 0, 0), (&topic, 1, 0), (&topic, 2, 0)]);
    let dir = workdir("run-few");
    let run = kmigrate(&dir, &config_for(&[&g], ""), &["run", "--yes"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&topic) && run.stderr.contains("problem"),
        "{}",
        run.stderr
    );
    assert_eq!(highs(&tgt, &topic, 1), [2], "nothing written");
    assert!(!dir.join(STATE).exists(), "no state file");

    // A saved plan that was right when made, but the target topic was recreated smaller
    // since: run's own check, before the first record.
    let topic2 = unique("run-shrunk");
    let g2 = unique("run-shrunk-g");
    src.create_topic(&topic2, 2, &[]);
    tgt.create_topic(&topic2, 2, &[]);
    src.produce_n(&topic2, 0, 5, TS);
    src.produce_n(&topic2, 1, 5, TS);
    src.commit(&g2, &[(&topic2, 0, 0), (&topic2, 1, 0)]);
    let dir = workdir("run-shrunk");
    // run waits up to timeout_secs for partitions to show (topics it created take a moment);
    // shorter than the default 30 s, long enough for a busy test bed.
    let config = config_for(&[&g2], "[migration]\ntimeout_secs = 10\n");
    let planned = kmigrate(&dir, &config, &["plan", "--out", "plan.json"]);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    tgt.delete_topic(&topic2);
    wait_gone(&tgt, &topic2);
    tgt.create_topic(&topic2, 1, &[]);
    let run = kmigrate(&dir, &config, &["run", "--plan", "plan.json", "--yes"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains(&format!("{topic2} has 1 of 2 partitions"))
            && run.stderr.contains("nothing was written"),
        "{}",
        run.stderr
    );
    assert_eq!(highs(&tgt, &topic2, 1), [0], "nothing written");
    assert!(!dir.join(STATE).exists(), "no state file");
    for t in [&topic, &topic2] {
        src.delete_topic(t);
        tgt.delete_topic(t);
    }
}

#[test]
fn refuses_without_a_terminal_and_without_yes() {
    let topic = unique("run-noyes");
    let g = unique("run-noyes-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 1, &[]);
    tgt.create_topic(&topic, 1, &[]);
    src.produce_n(&topic, 0, 5, TS);
    src.commit(&g, &[(&topic, 0, 1)]);
    let dir = workdir("run-noyes");
    let run = kmigrate(&dir, &config_for(&[&g], ""), &["run"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("no terminal") && run.stderr.contains("--yes"),
        "{}",
        run.stderr
    );
    assert_eq!(highs(&tgt, &topic, 1), [0], "nothing written");
    assert!(!dir.join(STATE).exists(), "no state file");
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn refuses_a_state_file_of_another_plan_or_a_damaged_one() {
    let topic = unique("run-state");
    let g = unique("run-state-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 1, &[]);
    tgt.create_topic(&topic, 1, &[]);
    src.produce_n(&topic, 0, 10, TS);
    src.commit(&g, &[(&topic, 0, 0)]);
    let dir = workdir("run-state");
    let config = config_for(&[&g], "");
    let planned = kmigrate(&dir, &config, &["plan", "--out", "a.json"]);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let run = kmigrate(&dir, &config, &["run", "--plan", "a.json", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(highs(&tgt, &topic, 1), [10]);

    // More records, another plan: the state file of the first one stays in charge.
    src.produce(&topic, &[Rec::kv(0, "more", "records", TS + 99)]);
    let planned = kmigrate(&dir, &config, &["plan", "--out", "b.json"]);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let state = std::fs::read(dir.join(STATE)).expect("state file");
    let run = kmigrate(&dir, &config, &["run", "--plan", "b.json", "--yes"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("another plan"), "{}", run.stderr);
    assert_eq!(highs(&tgt, &topic, 1), [10], "nothing written");
    assert_eq!(std::fs::read(dir.join(STATE)).expect("state"), state);

    // A damaged state file: without it the new record would be copied, so refuse.
    for len in [state.len() / 2, 0] {
        std::fs::write(dir.join(STATE), &state[..len]).expect("truncating the state file");
        let run = kmigrate(&dir, &config, &["run", "--yes"]);
        assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("damaged") && run.stderr.contains(STATE),
            "{}",
            run.stderr
        );
        assert_eq!(highs(&tgt, &topic, 1), [10], "nothing written");
        assert_eq!(
            std::fs::read(dir.join(STATE)).expect("state").len(),
            len,
            "the damaged file is left as it is"
        );
    }
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn foreign_records_past_a_checkpoint_are_refused_at_once() {
    // A range with a gap in the middle (an aborted transaction) that ends on a record. The
    // state says one record was checkpointed; the target holds that one, the two kmigrate
    // wrote after the checkpoint, and one more from another producer. The resume must not
    // count the foreign record as one of its own: there are not enough source records left
    // to skip, and that is an error as soon as the range is read, not a stall.
    let topic = unique("run-foreign");
    let g = unique("run-foreign-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 1, &[]);
    tgt.create_topic(&topic, 1, &[]);
    let producer: BaseProducer = src
        .config()
        .set("transactional.id", unique("run-foreign-id"))
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(support::TIMEOUT)
        .expect("init transactions");
    for (i, commit) in [(0, true), (1, false)] {
        producer.begin_transaction().expect("begin");
        let recs: Vec<Rec> = (0..2 + i)
            .map(|j| Rec::kv(0, &format!("t{i}-{j}"), "v", TS + j as i64))
            .collect();
        send_all(&producer, &topic, &recs);
        if commit {
            producer
                .commit_transaction(support::TIMEOUT)
                .expect("commit");
        } else {
            producer.abort_transaction(support::TIMEOUT).expect("abort");
        }
    }
    drop(producer);
    assert_eq!(settled_highs(&src, &topic, 1), [7]);
    src.produce(&topic, &[Rec::kv(0, "last", "record", TS + 9)]);
    // Records at 0, 1 and 7.
    src.commit(&g, &[(&topic, 0, 0)]);
    let dir = workdir("run-foreign");
    let config = config_for(&[&g], "");
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(count(&assert_copied(&src, &tgt, &topic, &[0])), 3);

    let mut state = state_json(&dir);
    state["phase"] = "copying".into();
    state["partitions"][0]["progress"] = serde_json::json!({
        "base": 0, "acked": [0, 0], "written": 1, "done": false
    });
    state["partitions"][0]["map"] = serde_json::json!([[0, 0, 1]]);
    std::fs::write(dir.join(STATE), state.to_string()).expect("state file");
    tgt.produce(&topic, &[Rec::kv(0, "foreign", "record", TS)]);

    let t0 = Instant::now();
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("holds 1 more record(s) than the source range has"),
        "{}",
        run.stderr
    );
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    assert_eq!(highs(&tgt, &topic, 1), [4], "nothing written");
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn records_arriving_during_the_run_are_named_and_exit_1() {
    // An operator forgot one producer: it writes to partition 1 while the copy runs, and a
    // consumer moved the group on. The run copies the plan exactly, commits the group's
    // commits read after the copy, translated, and exits 1 naming the partition and how many
    // offsets arrived after the plan, instead of reporting success. `kmigrate cutover` then
    // copies the late records and commits the group's final offsets.
    let topic = unique("run-late");
    let g = unique("run-late-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 2, &[]);
    tgt.create_topic(&topic, 2, &[]);
    produce_bulk(&src, &topic, 2, 20_000);
    src.commit(&g, &[(&topic, 0, 100), (&topic, 1, 5)]);
    let dir = workdir("run-late");
    std::fs::write(
        dir.join("migrate.toml"),
        config_for(&[&g], "[migration]\nmax_bytes_per_second = 2000000\n"),
    )
    .expect("config");
    let progress = Progress::new(&tgt, &topic, 2);
    let mut bg = spawn(&dir, &["run", "--yes"]);
    while_running(&mut bg, "the copy under way", || {
        dir.join(STATE).exists() && progress.total() > 0
    });
    let late = src.produce_n(&topic, 1, 37, TS);
    src.commit(&g, &[(&topic, 0, 150), (&topic, 1, 5)]);
    let run = bg.wait();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("production has not stopped: 37 offset(s) arrived on the source after the plan, in 1 partition(s)")
            && run.stderr.contains(&format!("{topic}/1 +37 (20000 -> 20037)")),
        "{}",
        run.stderr
    );
    // The plan's records exactly, none of the late ones; the group's commits after the copy,
    // translated, committed.
    for (p, from) in [(0, 100), (1, 5)] {
        let planned: Vec<Rec> = src
            .read_all(&topic, p)
            .into_iter()
            .filter(|r| r.offset >= from && r.offset < 20_000)
            .map(|r| r.rec)
            .collect();
        let copied = tgt.read_records(&topic, p);
        assert_records(&format!("{topic}/{p} on the target"), &copied, &planned);
        assert!(
            copied.iter().all(|r| !late.contains(r)),
            "no late record copied"
        );
    }
    assert_eq!(
        tgt.committed(&g, &[(&topic, 0), (&topic, 1)]),
        [Some(50), Some(0)]
    );
    // A rerun says the same: the source still holds records the migration does not.
    let again = support::kmigrate_raw(&dir, &["run", "--yes"]);
    assert_eq!(again.code, 1, "{}\n{}", again.stdout, again.stderr);
    assert!(again.stderr.contains("+37"), "{}", again.stderr);
    assert!(
        again.stderr.contains("kmigrate cutover"),
        "{}",
        again.stderr
    );

    // The producer stopped; the group consumed into the late records. The cutover copies
    // them after the run's copy, exactly once, and commits the group's final offsets.
    src.commit(&g, &[(&topic, 0, 150), (&topic, 1, 20_010)]);
    let cut = support::kmigrate_raw(&dir, &["cutover", "--yes", "--quiet", "1"]);
    assert_eq!(cut.code, 0, "{}\n{}", cut.stdout, cut.stderr);
    assert!(
        cut.stdout.contains("37 record(s) copied in the tail"),
        "{}",
        cut.stdout
    );
    for (p, from) in [(0, 100), (1, 5)] {
        let all: Vec<Rec> = src
            .read_all(&topic, p)
            .into_iter()
            .filter(|r| r.offset >= from)
            .map(|r| r.rec)
            .collect();
        let copied = tgt.read_records(&topic, p);
        assert_records(&format!("{topic}/{p} after the cutover"), &copied, &all);
    }
    assert_eq!(
        tgt.committed(&g, &[(&topic, 0), (&topic, 1)]),
        [Some(50), Some(20_005)]
    );
    support::verify_ok(&dir);
    // Cut over: a rerun is refused, nothing more is written.
    let again = support::kmigrate_raw(&dir, &["cutover", "--yes"]);
    assert_eq!(again.code, 2, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(tgt.read_records(&topic, 1).len(), 20_032);
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}
