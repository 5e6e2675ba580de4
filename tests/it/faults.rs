//! Faults on purpose, against the real test bed: kmigrate killed mid-copy, a damaged or
//! unwritable state file, a full disk, a record too large for the target, records written
//! twice. After each, the target is checked record by record (key, value, headers,
//! timestamp, partition, order) and every group's translated offset exactly: nothing lost,
//! nothing duplicated. The faults that stop the test bed's brokers are in
//! `tests/outage/brokers.rs`.
//!
//! Tests that mount a tmpfs or a read-only bind mount need root and are skipped, saying so,
//! without it. `KMIGRATE_FAULT_SEED` replays the random kill points of a failed run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use serde_json::Value;

use crate::support;
use crate::support::bed::{assert_exact, cleanup, exists, setup};
use crate::support::process::{Progress, spawn, state_json, while_running};
use crate::support::records::{assert_copied, assert_records, counts, highs, noise, produce_bulk};
use crate::support::{
    Cluster, Rec, Rng, STATE, TS, config_for, kmigrate, unique, verify_ok, workdir,
};

// ---------------------------------------------------------------------------------------
// Mounts.

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A mount (tmpfs or bind) under a test directory, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn run(args: &[&str]) {
        let out = Command::new("mount")
            .args(args)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mount {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).expect("mount point");
        let at_s = at.to_str().expect("utf-8 path");
        Mount::run(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", at_s]);
        Mount(at.to_path_buf())
    }

    /// `at` shows `from` read-only.
    fn read_only(from: &Path, at: &Path) -> Mount {
        std::fs::create_dir_all(at).expect("mount point");
        let (from_s, at_s) = (
            from.to_str().expect("utf-8 path"),
            at.to_str().expect("utf-8 path"),
        );
        Mount::run(&["--bind", from_s, at_s]);
        let m = Mount(at.to_path_buf());
        Mount::run(&["-o", "remount,bind,ro", at_s]);
        m
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// ---------------------------------------------------------------------------------------
// Assertions.

/// Asserts a group's committed offsets on the target, partition by partition.
fn assert_group(tgt: &Cluster, group: &str, topic: &str, want: &[i64]) {
    let parts: Vec<(&str, i32)> = (0..want.len() as i32).map(|p| (topic, p)).collect();
    let got = tgt.committed(group, &parts);
    let want: Vec<Option<i64>> = want.iter().map(|o| Some(*o)).collect();
    assert_eq!(
        got, want,
        "group {group}'s offsets on {topic} on the target"
    );
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn sigkill_at_five_points_then_resume_is_exact() {
    // A copy of 120,000 records, throttled so that it lasts several seconds, killed with
    // SIGKILL at five random points (by share of the records on the target), each rerun
    // resuming the state the previous one left. Records sent after the last checkpoint
    // are on the target at each kill: the resume must skip them, not write them again.
    const PARTS: i32 = 3;
    const PER: usize = 40_000;
    let mut rng = Rng::from_env();
    let g1 = unique("f-kill-g1");
    let g2 = unique("f-kill-g2");
    let g3 = unique("f-kill-g3");
    let per = PER as i64;
    let commits: [(&str, &[i64]); 3] = [
        (&g1, &[0, 1000, 7]),
        (&g2, &[500, 1000, 30_000]),
        // Consumed everything: resumes at the target's end.
        (&g3, &[per, per, per]),
    ];
    let topic = setup("f-kill", PARTS, PER, &commits);
    let total: i64 = (PER as i64) * 3 - 1007;
    let dir = workdir("f-kill");
    let config = config_for(
        &[&g1, &g2, &g3],
        "[migration]\nmax_bytes_per_second = 3000000\n",
    );
    std::fs::write(dir.join("migrate.toml"), &config).expect("config");
    let progress = Progress::new(&Cluster::target(), &topic, PARTS);
    let mut points: Vec<f64> = (0..5).map(|_| rng.between(0.0, 0.95)).collect();
    points.sort_by(f64::total_cmp);
    eprintln!("kill points (share of the records on the target): {points:.3?}");
    let t0 = Instant::now();
    for (i, share) in points.iter().enumerate() {
        let mut bg = spawn(&dir, &["run", "--yes"]);
        let at = (total as f64 * share) as i64;
        // At least the state file: a kill before it only repeats planning.
        while_running(&mut bg, &format!("{at} records on the target"), || {
            dir.join(STATE).exists() && progress.total() >= at
        });
        let killed = bg.kill9();
        assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
        let state = state_json(&dir);
        assert_eq!(state["phase"], "copying", "kill {i} came after the copy");
        eprintln!(
            "kill {} at {:?}: {} of {total} on the target",
            i + 1,
            t0.elapsed(),
            progress.total()
        );
    }
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
    eprintln!("completed at {:?}", t0.elapsed());
    assert_exact(&dir, &topic, PER, &commits);
    cleanup(&topic);
}

#[test]
fn damaged_or_foreign_state_file_is_refused_before_any_copy() {
    // A completed migration, then one more record on the source. A fresh start would copy
    // every planned record again (the groups' commits on the source have not moved): each
    // damaged state file must be refused with exit 2 before anything is written, and left
    // as it is.
    let g = unique("f-state-g");
    let commits: [(&str, &[i64]); 1] = [(&g, &[3, 0])];
    let topic = setup("f-state", 2, 50, &commits);
    let (src, tgt) = (Cluster::source(), Cluster::target());
    let dir = workdir("f-state");
    let config = config_for(&[&g], "");
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_exact(&dir, &topic, 50, &commits);
    src.produce(&topic, &[Rec::kv(0, "late", "record", TS + 999)]);
    let good = std::fs::read(dir.join(STATE)).expect("state file");
    let state: Value = serde_json::from_slice(&good).expect("JSON");

    let mut edited_plan = state.clone();
    edited_plan["plan"]["partitions"][0]["start"] = 0.into();
    let mut wrong_version = state.clone();
    wrong_version["version"] = 99.into();
    let mut garbage = good.clone();
    for (i, b) in garbage.iter_mut().enumerate() {
        if i % 7 == 3 {
            *b ^= 0x5a;
        }
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), "damaged"),
        ("empty", Vec::new(), "damaged"),
        ("bytes flipped", garbage, "damaged"),
        ("another file's JSON", b"{\"a\": 1}".to_vec(), "damaged"),
        (
            "plan edited",
            edited_plan.to_string().into_bytes(),
            "does not match the plan it contains",
        ),
        (
            "another version",
            wrong_version.to_string().into_bytes(),
            "version 99",
        ),
    ];
    for (what, bytes, says) in &cases {
        std::fs::write(dir.join(STATE), bytes).expect("writing the state file");
        let run = kmigrate(&dir, &config, &["run", "--yes"]);
        assert_eq!(run.code, 2, "{what}:\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(says) && run.stderr.contains(STATE),
            "{what}: {}",
            run.stderr
        );
        assert_eq!(highs(&tgt, &topic, 2), [47, 50], "{what}: nothing written");
        assert_eq!(
            &std::fs::read(dir.join(STATE)).expect("state"),
            bytes,
            "{what}: the state file is left as it is"
        );
    }

    // The state file of this migration, and --plan of another plan (made after the late
    // record): refused, the state file stays in charge.
    std::fs::write(dir.join(STATE), &good).expect("restoring the state file");
    let planned = kmigrate(&dir, &config, &["plan", "--out", "other.json"]);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let run = kmigrate(&dir, &config, &["run", "--plan", "other.json", "--yes"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("another plan"), "{}", run.stderr);
    assert_eq!(highs(&tgt, &topic, 2), [47, 50], "nothing written");

    // The good state file still completes (nothing to copy: the late record is not in its
    // plan), saying that the record arrived after the plan (exit 1), and verify passes.
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!("{topic}/0 +1 (50 -> 51)")),
        "{}",
        run.stderr
    );
    assert_eq!(highs(&tgt, &topic, 2), [47, 50], "no duplicates");
    verify_ok(&dir);
    cleanup(&topic);
}

/// A run in `dir` whose state file is `state_file`, creating the target topic.
fn config_with_state(g: &str, state_file: &str, extra: &str) -> String {
    config_for(
        &[g],
        &format!("[migration]\nstate_file = {state_file:?}\ncreate_topics = true\n{extra}"),
    )
}

#[test]
fn unwritable_state_file_is_refused_before_any_copy() {
    // create_topics = true: the topic's absence on the target proves nothing was done there.
    const PER: usize = 10_000;
    let g = unique("f-ro-g");
    let topic = unique("f-ro");
    let src = Cluster::source();
    let tgt = Cluster::target();
    src.create_topic(&topic, 2, &[]);
    produce_bulk(&src, &topic, 2, PER);
    src.commit(&g, &[(&topic, 0, 0), (&topic, 1, 10)]);
    let dir = workdir("f-ro");

    let refused = |what: &str, state_file: &str| {
        let config = config_with_state(&g, state_file, "");
        let run = kmigrate(&dir, &config, &["run", "--yes"]);
        eprintln!("{what}: exit {}: {}", run.code, run.stderr.trim());
        assert_eq!(run.code, 2, "{what}:\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(state_file) && run.stderr.contains("cannot be written"),
            "{what}: the error names the state file:\n{}",
            run.stderr
        );
        run
    };

    // Without root too: a state file whose directory is a regular file.
    std::fs::write(dir.join("a-file"), "not a directory").expect("file");
    refused("parent is a file", "a-file/kmigrate-state.json");
    assert!(!exists(&tgt, &topic), "nothing created on the target");

    if !is_root() {
        eprintln!(
            "SKIPPED the read-only directory cases of unwritable_state_file_is_refused_before_\
             any_copy: they mount a read-only bind mount, which needs root (root ignores \
             permission bits, so chmod cannot make a directory read-only for it)"
        );
        cleanup(&topic);
        return;
    }
    // A fresh run, the state directory read-only.
    std::fs::create_dir_all(dir.join("rw")).expect("dir");
    let ro = Mount::read_only(&dir.join("rw"), &dir.join("ro"));
    refused("fresh run, read-only directory", "ro/kmigrate-state.json");
    assert!(!exists(&tgt, &topic), "nothing created on the target");

    // A run stopped midway (SIGINT), its state directory then read-only: the resume is
    // refused before anything more is copied.
    let config = config_with_state(
        &g,
        "rw/kmigrate-state.json",
        "max_bytes_per_second = 1000000\n",
    );
    std::fs::write(dir.join("migrate.toml"), &config).expect("config");
    let progress = Progress::new(&tgt, &topic, 2);
    let mut bg = spawn(&dir, &["run", "--yes"]);
    // kmigrate creates the topic: until its partitions have leaders, no count.
    while_running(&mut bg, "records on the target", || {
        progress.try_total().unwrap_or(0) > PER as i64 / 2
    });
    bg.signal("-INT");
    let run = bg.wait_within(Duration::from_secs(60));
    assert_eq!(run.code, 130, "{}\n{}", run.stdout, run.stderr);
    let before = highs(&tgt, &topic, 2);
    let state = std::fs::read(dir.join("rw").join(STATE)).expect("state");
    refused("resume, read-only directory", "ro/kmigrate-state.json");
    assert_eq!(highs(&tgt, &topic, 2), before, "nothing more written");
    assert_eq!(
        std::fs::read(dir.join("ro").join(STATE)).expect("state"),
        state,
        "state unchanged"
    );
    drop(ro);

    let run = kmigrate(
        &dir,
        &config_with_state(&g, "rw/kmigrate-state.json", ""),
        &["run", "--yes"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
    assert_exact(&dir, &topic, PER, &[(&g, &[0, 10])]);
    cleanup(&topic);
}

#[test]
fn disk_full_while_saving_state_keeps_the_previous_state() {
    // The state file lives on a 64 KiB tmpfs. Mid-copy the tmpfs is filled: the next
    // checkpoint cannot be written. The previous state must stay whole (temporary file and
    // rename), kmigrate must stop with exit 3 naming the file and the cause, and once
    // space is freed the rerun resumes exactly.
    if !is_root() {
        eprintln!(
            "SKIPPED disk_full_while_saving_state_keeps_the_previous_state: it mounts a small \
             tmpfs to fill, which needs root"
        );
        return;
    }
    const PER: usize = 15_000;
    let g = unique("f-full-g");
    let commits: [(&str, &[i64]); 1] = [(&g, &[0, 3])];
    let topic = setup("f-full", 2, PER, &commits);
    let dir = workdir("f-full");
    let small = dir.join("small");
    let _tmpfs = Mount::tmpfs(&small, "64k");
    let config = config_with_state(
        &g,
        "small/kmigrate-state.json",
        "max_bytes_per_second = 1000000\n",
    );
    std::fs::write(dir.join("migrate.toml"), &config).expect("config");
    let tgt = Cluster::target();
    let progress = Progress::new(&tgt, &topic, 2);
    let state_path = small.join(STATE);

    let mut bg = spawn(&dir, &["run", "--yes"]);
    while_running(&mut bg, "a fifth of the records on the target", || {
        state_path.exists() && progress.total() >= (2 * PER as i64) / 5
    });
    fill(&small.join("filler"));
    std::thread::sleep(Duration::from_millis(200));
    let kept = std::fs::read(&state_path).expect("state");
    let run = bg.wait_within(Duration::from_secs(60));
    eprintln!("disk full: exit {}: {}", run.code, run.stderr.trim());
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("No space left on device")
            && run.stderr.contains("small/kmigrate-state.json")
            && run.stderr.contains("kmigrate run"),
        "the error names the state file, the cause and how to resume:\n{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&state_path).expect("state"),
        kept,
        "the state file is the last one written before the disk filled"
    );
    let state: Value = serde_json::from_slice(&kept).expect("the kept state is whole JSON");
    assert_eq!(state["phase"], "copying");
    let mut left: Vec<String> = std::fs::read_dir(&small)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["filler", STATE], "no temporary file left behind");

    std::fs::remove_file(small.join("filler")).expect("freeing space");
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
    assert_exact(&dir, &topic, PER, &commits);
    cleanup(&topic);
}

/// Writes to `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
    let _ = f.sync_all();
}

/// Sets a topic config on a cluster.
fn set_topic_config(c: &Cluster, topic: &str, key: &str, value: &str) {
    let admin: AdminClient<DefaultClientContext> = c.config().create().expect("admin client");
    let res = support::block(admin.alter_configs(
        &[AlterConfig::new(ResourceSpecifier::Topic(topic)).set(key, value)],
        &AdminOptions::new().operation_timeout(Some(support::TIMEOUT)),
    ))
    .unwrap_or_else(|e| panic!("setting {key} of {topic}: {e}"));
    for r in res {
        if let Err((_, code)) = r {
            panic!("setting {key} of {topic}: {code:?}");
        }
    }
}

#[test]
fn record_larger_than_target_max_message_bytes_stops_at_that_record() {
    // Partition 0: 10 small records, one of 60 KB (incompressible), 10 small. The target
    // topic takes at most 20,000 bytes per batch. The run must stop naming the topic,
    // partition and offset 10 and the setting to change, with records 0..10 on the target
    // and nothing after the big one (no silent skip). After raising the limit the rerun
    // completes the copy exactly.
    let topic = unique("f-big");
    let g = unique("f-big-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 2, &[]);
    tgt.create_topic(&topic, 2, &[("max.message.bytes", "20000")]);
    let small = |p: i32, i: usize| Rec::kv(p, &format!("k{i}"), &format!("v{i}"), TS + i as i64);
    let mut p0: Vec<Rec> = (0..10).map(|i| small(0, i)).collect();
    p0.push(Rec {
        partition: 0,
        key: Some(b"big".to_vec()),
        value: Some(noise(60_000, 1)),
        headers: vec![("h".into(), Some(b"x".to_vec()))],
        timestamp: Some(TS + 10),
    });
    p0.extend((11..21).map(|i| small(0, i)));
    src.produce(&topic, &p0);
    // Partition 1: 1,000 incompressible records of 200 bytes, each well within the limit
    // but 200 KB together: batched as kmigrate batches by default, the target would refuse
    // them as "too large".
    let p1: Vec<Rec> = (0..1000)
        .map(|i| Rec {
            partition: 1,
            key: Some(format!("k{i}").into_bytes()),
            value: Some(noise(200, i as u64 + 2)),
            headers: Vec::new(),
            timestamp: Some(TS + i as i64),
        })
        .collect();
    src.produce(&topic, &p1);
    src.commit(&g, &[(&topic, 0, 0), (&topic, 1, 0)]);
    let dir = workdir("f-big");
    let config = config_for(&[&g], "");

    let t0 = Instant::now();
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    let took = t0.elapsed();
    eprintln!(
        "too large: exit {} in {took:?}: {}",
        run.code,
        run.stderr.trim()
    );
    // It stops as soon as the record is refused; it used to wait out the 30 s timeout for
    // records the stopped producer would never deliver.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    for needle in [
        format!("offset 10 of {topic}/0"),
        "max.message.bytes".to_string(),
        "kmigrate run".to_string(),
    ] {
        assert!(
            run.stderr.contains(&needle),
            "names {needle}:\n{}",
            run.stderr
        );
    }
    // Nothing after the big record on the target: exactly the 10 before it (batches fit
    // the topic, so the big record went alone); partition 1 a prefix of its records.
    let got0 = tgt.read_records(&topic, 0);
    assert_records(&format!("{topic}/0"), &got0, &p0[..10]);
    let got1 = tgt.read_records(&topic, 1);
    assert_records(&format!("{topic}/1"), &got1, &p1[..got1.len()]);
    let state = state_json(&dir);
    assert_eq!(state["phase"], "copying");

    set_topic_config(&tgt, &topic, "max.message.bytes", "200000");
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        counts(&assert_copied(&src, &tgt, &topic, &[0, 0])),
        [21, 1000]
    );
    assert_group(&tgt, &g, &topic, &[0, 0]);
    verify_ok(&dir);
    cleanup(&topic);
}

#[test]
fn records_written_twice_past_a_checkpoint_are_refused_not_skipped() {
    // What the target outage left once (librdkafka's idempotent producer retried a batch
    // under a new epoch after the broker restarted): past the checkpoint, the target holds
    // records 50..60 and then 50..60 again. Counting them as 20 records written would skip
    // source records 60..70, which are not on the target: a silent loss. The resume must
    // compare each record it skips with the target's and refuse at the first duplicate.
    let g = unique("f-dup-g");
    let topic = unique("f-dup");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 1, &[]);
    tgt.create_topic(&topic, 1, &[]);
    src.produce_n(&topic, 0, 100, TS);
    src.commit(&g, &[(&topic, 0, 0)]);
    let dir = workdir("f-dup");
    let config = config_for(&[&g], "");
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let source = src.read_records(&topic, 0);
    assert_eq!(source.len(), 100);

    // The target as the outage left it, and the state of the last checkpoint before it.
    tgt.delete_topic(&topic);
    let deadline = Instant::now() + support::TIMEOUT;
    while exists(&tgt, &topic) {
        assert!(Instant::now() < deadline, "{topic} was not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    tgt.create_topic(&topic, 1, &[]);
    let mut on_target = source[..60].to_vec();
    on_target.extend_from_slice(&source[50..60]);
    tgt.produce(&topic, &on_target);
    let mut state = state_json(&dir);
    state["phase"] = "copying".into();
    state["offsets"] = serde_json::json!([]);
    state["partitions"][0]["progress"] = serde_json::json!({
        "base": 0, "acked": [49, 49], "written": 50, "done": false
    });
    state["partitions"][0]["map"] = serde_json::json!([[0, 0, 50]]);
    std::fs::write(dir.join(STATE), state.to_string()).expect("state file");

    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    eprintln!("duplicates: exit {}: {}", run.code, run.stderr.trim());
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "{topic}/0: the target record at offset 60 is not source record 60"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(highs(&tgt, &topic, 1), [70], "nothing written");
    assert_records(
        &format!("{topic}/0"),
        &tgt.read_records(&topic, 0),
        &on_target,
    );
    cleanup(&topic);
}
