//! One plan run by three workers (`run --plan plan.json --shard i/3`) as three processes at
//! once, against the real test bed: 3 topics × 8 partitions of tiny, 1 KiB and mixed
//! records, groups spanning every shard. One worker is killed with SIGKILL mid-copy and
//! restarted; a fourth worker started on an occupied shard, and a worker of another split,
//! are refused. Then every record is on the target exactly once, every group's offsets are
//! exact, `verify` without --shard checks all the shards, and `status` merges them.

use std::time::Duration;

use crate::support::mixed::{PARTS, assert_exact, cleanup, group_names, setup};
use crate::support::process::{Progress, spawn, while_running};
use crate::support::{Cluster, STATE, TS, config_for, kmigrate, kmigrate_raw, unique, workdir};

fn shard_state(dir: &std::path::Path, index: u32) -> std::path::PathBuf {
    dir.join(format!("{STATE}.shard-{index}-of-3"))
}

fn shard_json(dir: &std::path::Path, index: u32) -> Option<serde_json::Value> {
    let bytes = std::fs::read(shard_state(dir, index)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[test]
fn three_workers_one_killed_and_restarted_copy_exactly_once() {
    let (topics, groups) = setup("sh");
    // A topic g1 consumed entirely: nothing to copy, but g1 must get the target's end on
    // every partition, each committed by exactly one worker.
    let done = unique("sh-done");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&done, PARTS, &[]);
    tgt.create_topic(&done, PARTS, &[]);
    for p in 0..PARTS {
        src.produce_n(&done, p, 10, TS);
        tgt.produce_n(&done, p, 3 + p as usize, TS);
    }
    let done_commits: Vec<(&str, i32, i64)> = (0..PARTS).map(|p| (done.as_str(), p, 10)).collect();
    src.commit(&groups[0].0, &done_commits);
    let dir = workdir("shards");
    // About 7 MB per worker at 1.5 MB/s each: the copy lasts several seconds.
    let config = config_for(
        &group_names(&groups),
        "[migration]\nmax_bytes_per_second = 1500000\npipelines = 2\n",
    );
    let plan = kmigrate(&dir, &config, &["plan", "--out", "plan.json"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);

    // Without a plan file a shard does not start: the workers would each plan on their own.
    let refused = kmigrate_raw(&dir, &["run", "--yes", "--shard", "0/3"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("--plan"), "{}", refused.stderr);

    let progress: Vec<Progress> = topics
        .iter()
        .map(|t| Progress::new(&tgt, t, PARTS))
        .collect();
    let on_target = || progress.iter().map(Progress::total).sum::<i64>();
    let worker = |i: u32| {
        let shard = format!("{i}/3");
        spawn(
            &dir,
            &["run", "--yes", "--plan", "plan.json", "--shard", &shard],
        )
    };
    let mut workers: Vec<_> = (0..3).map(worker).collect();
    let mut victim = workers.remove(1);
    while_running(&mut victim, "shard 1 has written records", || {
        shard_json(&dir, 1).is_some_and(|s| {
            s["partitions"].as_array().is_some_and(|ps| {
                ps.iter()
                    .map(|p| p["progress"]["written"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    > 500
            })
        })
    });

    // A second worker on shard 1 is refused while the first holds it, naming its pid.
    let twin = kmigrate_raw(
        &dir,
        &["run", "--yes", "--plan", "plan.json", "--shard", "1/3"],
    );
    assert_eq!(twin.code, 2, "{twin:?}");
    assert!(
        twin.stderr.contains("another kmigrate (pid "),
        "{}",
        twin.stderr
    );
    // So is a worker of a split into another number of shards.
    let other = kmigrate_raw(
        &dir,
        &["run", "--yes", "--plan", "plan.json", "--shard", "0/2"],
    );
    assert_eq!(other.code, 2, "{other:?}");
    assert!(
        other.stderr.contains("another number of shards"),
        "{}",
        other.stderr
    );

    let status = kmigrate_raw(&dir, &["status", "--format", "json"]).json();
    assert_eq!(status["shards"][1]["status"], "running", "{status:#}");
    assert!(status["shards"][1]["pid"].is_u64(), "{status:#}");
    let killed = victim.kill9();
    assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
    assert_eq!(
        shard_json(&dir, 1).map(|s| s["phase"].clone()),
        Some(serde_json::json!("copying")),
        "the kill came after shard 1's copy"
    );
    eprintln!("shard 1 killed with {} records on the target", on_target());
    let status = kmigrate_raw(&dir, &["status", "--format", "json"]).json();
    assert_eq!(status["shards"][1]["status"], "failed", "{status:#}");
    assert_eq!(status["complete"], false);

    let restarted = kmigrate_raw(
        &dir,
        &["run", "--yes", "--plan", "plan.json", "--shard", "1/3"],
    );
    assert_eq!(
        restarted.code, 0,
        "{}\n{}",
        restarted.stdout, restarted.stderr
    );
    assert!(
        restarted.stderr.contains("resuming"),
        "{}",
        restarted.stderr
    );
    for w in workers {
        let run = w.wait_within(Duration::from_secs(180));
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }

    let status = kmigrate_raw(&dir, &["status", "--format", "json"]).json();
    assert_eq!(status["complete"], true, "{status:#}");
    assert_eq!(status["offsets_left"], 0, "{status:#}");
    let shards = status["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 3);
    // Every shard got a share of the copy (balanced by bytes, so none is empty here).
    assert!(
        shards
            .iter()
            .all(|s| s["records_written"].as_u64().unwrap_or(0) > 0),
        "{status:#}"
    );
    assert!(!std::path::Path::new(&dir.join(STATE)).exists());
    // An unsharded run does not start over a sharded migration.
    let plain = kmigrate_raw(&dir, &["run", "--yes"]);
    assert_eq!(plain.code, 2, "{plain:?}");
    assert!(plain.stderr.contains("--shard INDEX/3"), "{}", plain.stderr);

    // Exactly once, exact offsets, and verify without --shard checks every shard.
    assert_exact(&dir, &topics, &groups);
    let done_parts: Vec<(&str, i32)> = (0..PARTS).map(|p| (done.as_str(), p)).collect();
    let want: Vec<Option<i64>> = (0..PARTS).map(|p| Some(3 + p as i64)).collect();
    assert_eq!(
        tgt.committed(&groups[0].0, &done_parts),
        want,
        "g1 on {done}: the target's end"
    );
    let one = kmigrate_raw(&dir, &["verify", "--shard", "2/3", "--format", "json"]);
    assert_eq!(one.code, 0, "{one:?}");
    let all = kmigrate_raw(&dir, &["verify", "--format", "json"]).json();
    let n_one = one.json()["partitions"].as_array().map_or(0, Vec::len);
    let n_all = all["partitions"].as_array().map_or(0, Vec::len);
    assert!(n_one > 0 && n_one < n_all, "{n_one} of {n_all} partitions");
    cleanup(&topics);
    src.delete_topic(&done);
    tgt.delete_topic(&done);
}
