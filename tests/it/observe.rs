//! Watching a run from outside, against the real test bed: the Prometheus endpoint
//! (`--metrics`) and the JSON events (`--progress json`) report the same figures as the
//! tables and as the target itself.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;
use crate::support::process::spawn;
use crate::support::records::{highs, produce_bulk};
use crate::support::{Cluster, Run, config_for, kmigrate, unique, workdir};

/// A port nobody listens on now (the OS picks it; released before kmigrate binds it).
fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("its address").to_string()
}

/// The body of `GET /metrics`, or `None` when nothing answers (not started or ended).
fn scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    Some(out.split_once("\r\n\r\n")?.1.to_string())
}

/// The value of one sample (`name{labels}` exactly as exposed), if present.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn value(body: &str, series: &str) -> f64 {
    sample(body, series).unwrap_or_else(|| panic!("no {series} in:\n{body}"))
}

/// The SUMMARY row of a topic, split on whitespace: [topic, planned, written, on target, ...].
fn summary_row(run: &Run, topic: &str) -> Vec<i64> {
    run.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&topic))
        .unwrap_or_else(|| panic!("no summary row for {topic}:\n{}", run.stdout))[1..4]
        .iter()
        .map(|c| c.replace(',', "").parse().expect("a count"))
        .collect()
}

#[test]
fn metrics_follow_a_throttled_run_and_end_on_the_target_totals() {
    // Two topics of two partitions, about 6 MB in all, copied at about 1 MB/s: the copy
    // lasts several seconds, so that scrapes every few hundred milliseconds see it move.
    const PARTS: i32 = 2;
    const PER: usize = 7_500;
    let topics = [unique("obs-metrics-a"), unique("obs-metrics-b")];
    let g = unique("obs-metrics-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    let mut commits = Vec::new();
    for t in &topics {
        src.create_topic(t, PARTS, &[]);
        tgt.create_topic(t, PARTS, &[]);
        produce_bulk(&src, t, PARTS, PER);
        commits.extend((0..PARTS).map(|p| (t.as_str(), p, 0)));
    }
    src.commit(&g, &commits);
    let secret = unique("not-a-secret-client-id");
    let dir = workdir("obs-metrics");
    std::fs::write(
        dir.join("migrate.toml"),
        config_for(
            &[&g],
            &format!(
                "[migration]\nmax_bytes_per_second = 1100000\n\
                 [source.properties]\n\"client.id\" = {secret:?}\n"
            ),
        ),
    )
    .expect("config");
    let addr = free_addr();
    let mut bg = spawn(
        &dir,
        &["run", "--yes", "--metrics", &addr, "--metrics-linger", "5s"],
    );

    let mut scrapes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while bg.exited().is_none() {
        assert!(Instant::now() < deadline, "the run did not end");
        if let Some(body) = scrape(&addr) {
            scrapes.push(body);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = bg.output();
    let run = bg.wait();
    assert_eq!(run.code, 0, "{out}");
    assert!(!scrapes.is_empty(), "no scrape answered:\n{out}");

    // While copying: the copied counter rises and the lag falls between scrapes.
    let copying: Vec<(f64, f64)> = scrapes
        .iter()
        .filter(|b| sample(b, r#"kmigrate_phase{phase="copying"}"#) == Some(1.0))
        // Before the copy's first snapshot (250 ms) nothing is known yet: all zero.
        .filter(|b| sample(b, "kmigrate_offsets_planned") > Some(0.0))
        .filter_map(|b| {
            Some((
                sample(b, "kmigrate_records_copied_total")?,
                sample(b, "kmigrate_lag_records")?,
            ))
        })
        .collect();
    let moves = copying
        .windows(2)
        .filter(|w| w[1].0 > w[0].0 && w[1].1 < w[0].1)
        .count();
    assert!(
        moves >= 1 && copying.len() >= 2,
        "scrapes while copying (copied, lag): {copying:?}"
    );
    for (a, b) in copying.iter().zip(copying.iter().skip(1)) {
        assert!(b.0 >= a.0 && b.1 <= a.1, "went backwards: {copying:?}");
    }

    // After the run (the endpoint lingers): the totals are the target's.
    let last = scrapes.last().expect("a scrape");
    assert_eq!(
        value(last, r#"kmigrate_phase{phase="done"}"#),
        1.0,
        "{last}"
    );
    let on_target: i64 = topics.iter().flat_map(|t| highs(&tgt, t, PARTS)).sum();
    assert_eq!(on_target, 2 * PARTS as i64 * PER as i64);
    assert_eq!(
        value(last, "kmigrate_records_copied_total"),
        on_target as f64
    );
    assert_eq!(value(last, "kmigrate_records_on_target"), on_target as f64);
    assert_eq!(value(last, "kmigrate_offsets_planned"), on_target as f64);
    assert_eq!(value(last, "kmigrate_lag_records"), 0.0);
    assert_eq!(value(last, "kmigrate_errors_total"), 0.0);
    assert!(value(last, "kmigrate_bytes_copied_total") > on_target as f64 * 150.0);
    for t in &topics {
        for p in 0..PARTS {
            let series =
                format!(r#"kmigrate_partition_lag_records{{topic="{t}",partition="{p}"}}"#);
            assert_eq!(value(last, &series), 0.0, "{series}");
        }
    }
    assert_eq!(value(last, r#"kmigrate_groups{result="committed"}"#), 1.0);

    // Nothing from the configuration is exposed: no bootstrap address, no property value.
    for body in &scrapes {
        for s in [
            support::source_bootstrap(),
            support::target_bootstrap(),
            secret.clone(),
        ] {
            assert!(!body.contains(&s), "a scrape exposes {s}:\n{body}");
        }
        let ports: BTreeSet<&str> = ["19092", "29092"].into();
        assert!(ports.iter().all(|p| !body.contains(p)), "{body}");
    }
}

#[test]
fn metrics_address_in_use_is_refused_before_anything_is_done() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let addr = busy.local_addr().expect("its address").to_string();
    let topic = unique("obs-busy");
    let g = unique("obs-busy-g");
    let src = Cluster::source();
    src.create_topic(&topic, 1, &[]);
    src.produce_n(&topic, 0, 10, support::TS);
    src.commit(&g, &[(&topic, 0, 0)]);
    let dir = workdir("obs-busy");
    let run = kmigrate(
        &dir,
        &config_for(&[&g], ""),
        &["run", "--yes", "--metrics", &addr],
    );
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&addr) && run.stderr.contains("--metrics"),
        "{}",
        run.stderr
    );
    assert!(!dir.join(support::STATE).exists(), "a state file was made");
}

#[test]
fn json_events_tell_the_phases_progress_partitions_and_the_table_figures() {
    const PARTS: i32 = 3;
    let topic = unique("obs-json");
    let g = unique("obs-json-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, PARTS, &[]);
    tgt.create_topic(&topic, PARTS, &[]);
    produce_bulk(&src, &topic, PARTS, 2_000);
    let committed = [0i64, 500, 1_999];
    src.commit(
        &g,
        &[
            (&topic, 0, committed[0]),
            (&topic, 1, committed[1]),
            (&topic, 2, committed[2]),
        ],
    );
    let dir = workdir("obs-json");
    let run = kmigrate(
        &dir,
        &config_for(&[&g], ""),
        &["run", "--yes", "--progress", "json"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // Every stderr line is one JSON object with an event name and a time.
    let events: Vec<Value> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{}", run.stderr));
            assert!(v["event"].is_string() && v["ts_ms"].is_i64(), "{l}");
            v
        })
        .collect();
    let of = |name: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == name).collect() };

    let phases: Vec<&str> = of("phase")
        .iter()
        .filter_map(|e| e["phase"].as_str())
        .collect();
    assert_eq!(phases, ["planning", "copying", "committing", "done"]);

    let progress = of("progress");
    let last = progress.last().unwrap_or_else(|| panic!("{}", run.stderr));
    let want: i64 = committed.iter().map(|c| 2_000 - c).sum();
    assert_eq!(last["offsets_total"], want);
    assert_eq!(last["offsets_done"], want);
    assert_eq!(last["records_this_run"], want);

    // One partition_done per planned partition, with what the target partition got.
    let target_highs = highs(&tgt, &topic, PARTS);
    let done: BTreeMap<i64, i64> = of("partition_done")
        .iter()
        .map(|e| {
            assert_eq!(e["topic"], topic.as_str(), "{e}");
            (
                e["partition"].as_i64().unwrap_or(-1),
                e["records"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(of("partition_done").len(), done.len(), "{}", run.stderr);
    let expected: BTreeMap<i64, i64> = (0..PARTS as usize)
        .map(|p| (p as i64, target_highs[p]))
        .collect();
    assert_eq!(done, expected, "{}", run.stderr);

    // The summary event has the table's figures, and the group's commit.
    let summaries = of("summary");
    assert_eq!(summaries.len(), 1, "{}", run.stderr);
    let s = summaries[0];
    let row = summary_row(&run, &topic);
    let t = &s["topics"][0];
    assert_eq!(t["topic"], topic.as_str());
    assert_eq!(
        [
            t["planned_offsets"].as_i64(),
            t["written_records"].as_i64(),
            t["target_growth"].as_i64()
        ],
        [Some(row[0]), Some(row[1]), Some(row[2])],
        "{s}"
    );
    assert_eq!(row[2], target_highs.iter().sum::<i64>());
    assert_eq!(s["mismatches"], serde_json::json!([]));
    assert_eq!(s["this_run"]["records"], want);
    assert_eq!(s["groups"][0]["group"], g.as_str());
    assert_eq!(s["groups"][0]["result"], "committed");
    assert_eq!(
        s["groups"][0]["offsets"].as_array().map(Vec::len),
        Some(PARTS as usize),
        "{s}"
    );
    // Stdout keeps the tables for people.
    assert!(run.stdout.contains("SUMMARY") && run.stdout.contains("CONSUMER GROUPS"));
}
