//! The copy with several pipelines, against the real test bed: 3 topics × 8 partitions of
//! very different record sizes (tiny, 1 KiB, and mixed up to 3 KiB with headers, null keys
//! and tombstones), copied by 4 pipelines, then the same killed with SIGKILL at 3 seeded
//! points and resumed. Each time the target is checked record by record (key, value,
//! headers, timestamp, partition, order) and every group's translated offset exactly.
//! `KMIGRATE_FAULT_SEED` replays the kill points of a failed run.

use std::time::Instant;

use crate::support::mixed::{PARTS, PER, assert_exact, cleanup, group_names, setup};
use crate::support::process::{Progress, spawn, state_json, while_running};
use crate::support::{Cluster, Rng, STATE, config_for, kmigrate, workdir};

#[test]
fn four_pipelines_copy_mixed_sizes_exactly() {
    let (topics, groups) = setup("pl-four");
    let dir = workdir("pl-four");
    let config = config_for(&group_names(&groups), "");
    let run = kmigrate(&dir, &config, &["run", "--yes", "--pipelines", "4"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let verify = kmigrate(&dir, &config, &["verify", "--pipelines", "4"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert_exact(&dir, &topics, &groups);
    cleanup(&topics);
}

#[test]
fn four_pipelines_killed_at_three_points_then_resumed_exactly() {
    let mut rng = Rng::from_env();
    let (topics, groups) = setup("pl-kill");
    let dir = workdir("pl-kill");
    // About 20 MB: throttled so that the copy lasts several seconds.
    let config = config_for(
        &group_names(&groups),
        "[migration]\nmax_bytes_per_second = 4000000\npipelines = 4\n",
    );
    std::fs::write(dir.join("migrate.toml"), &config).expect("config");
    let tgt = Cluster::target();
    let progress: Vec<Progress> = topics
        .iter()
        .map(|t| Progress::new(&tgt, t, PARTS))
        .collect();
    let on_target = || progress.iter().map(Progress::total).sum::<i64>();
    let mut points: Vec<f64> = (0..3).map(|_| rng.between(0.05, 0.9)).collect();
    points.sort_by(f64::total_cmp);
    eprintln!("kill points (share of the records on the target): {points:.3?}");
    // Fewer than 3 × 8 × PER records are planned (the copy starts at the smallest commit).
    let planned = (3 * PARTS as usize * PER) as f64 * 0.8;
    let t0 = Instant::now();
    for (i, share) in points.iter().enumerate() {
        let mut bg = spawn(&dir, &["run", "--yes"]);
        let at = (planned * share) as i64;
        while_running(&mut bg, &format!("{at} records on the target"), || {
            dir.join(STATE).exists() && on_target() >= at
        });
        let killed = bg.kill9();
        assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
        assert_eq!(
            state_json(&dir)["phase"],
            "copying",
            "kill {i} came after the copy"
        );
        eprintln!(
            "kill {} at {:?}: {} on the target",
            i + 1,
            t0.elapsed(),
            on_target()
        );
    }
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
    assert_exact(&dir, &topics, &groups);
    cleanup(&topics);
}
