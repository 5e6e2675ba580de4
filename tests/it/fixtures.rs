//! State files written by an earlier build resume exactly with this one.
//!
//! Each fixture in `tests/fixtures/state/<name>/` is what a build left behind when it was
//! stopped in the middle of a migration: `run` killed with SIGKILL mid-copy, `sync` stopped
//! with SIGTERM after it had followed the source, one shard of a sharded `run` killed with
//! SIGKILL. Beside its state file (and plan), `fixture.json` says which build wrote it, how it
//! was stopped, the topic and groups, how many records the source and the target held then
//! and each group's commits. Every record is a function of its partition and offset
//! ([`record`]), so a test rebuilds both clusters exactly as they were, resumes with this
//! build, and checks the target record by record (key, value, headers, timestamp, order),
//! every group's offset on the target and `kmigrate verify`.
//!
//! `scripts/fixtures --bin BUILD` records them with a given build through the ignored
//! `record_*` tests below, which write to a temporary directory unless the script names the
//! repository's. The committed fixtures must never be recorded again with a build that
//! changes the state file: they prove that the files of the build before a change resume.
//!
//! The topic and group names are the fixture's (the state file names them), so a test
//! deletes them on both clusters first. A state file's fingerprint includes the plan's
//! bootstrap strings and a resume under a configuration that names other clusters is
//! refused, so the fixtures hold the test bed's default addresses and run against those.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::support::process::{Bg, Progress, spawn, spawn_bin, while_running};
use crate::support::records::{assert_records, read_parallel};
use crate::support::{Cluster, Rec, Run, STATE, TS, config_for, kmigrate_raw, verify_ok, workdir};

/// Where the committed fixtures are.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state");

/// What a recording says beside its state file (`fixture.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fixture {
    /// `kmigrate --version` of the build that wrote the state file.
    written_by: String,
    /// Where that build came from (`scripts/fixtures --note`) and its SHA-256.
    note: String,
    /// The command it ran and how it was stopped.
    stopped: String,
    /// The bootstrap strings of the clusters (in the state file's plan and fingerprint).
    source: String,
    target: String,
    topic: String,
    partitions: i32,
    /// `run --shard` only: the shard of the state file, "INDEX/COUNT".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<String>,
    /// The files of the fixture, copied into the working directory: the state file first.
    files: Vec<String>,
    /// Records on the source per partition when it stopped: [`record`] `(p, 0..n)`.
    source_records: Vec<i64>,
    /// Records on the target per partition before the copy: [`foreign`] `(p, 0..n)`.
    target_before: Vec<i64>,
    /// The copy's start per partition (the plan's start; that of a partition with nothing
    /// to copy is its end).
    copy_start: Vec<i64>,
    /// The target's high watermark per partition when it stopped: `target_before`, then the
    /// source's records from `copy_start` on, as far as the build had written them.
    target_records: Vec<i64>,
    /// Records written per partition as the state file's last checkpoint says (the target
    /// may hold more: a resume must find those and not write them again).
    checkpointed: Vec<i64>,
    /// Each group's committed offset per partition on the source when it stopped.
    commits: BTreeMap<String, Vec<i64>>,
}

/// Record `i` of partition `p` of a fixture's source topic: keys, values of 40 to 289
/// bytes, every 11th without a key, every 13th a tombstone, a header on every 4th, repeated
/// and null headers on every 12th, timestamps not in offset order.
fn record(p: i32, i: i64) -> Rec {
    let key = (i % 11 != 7).then(|| format!("fx-p{p}-{i:06}").into_bytes());
    let value = (i % 13 != 5).then(|| {
        let mut v = format!("value {i} of partition {p}: ").into_bytes();
        let len = 40 + (i * 37 + i64::from(p) * 11) % 250;
        v.resize(len as usize, b'a' + (i % 26) as u8);
        v
    });
    let mut headers = Vec::new();
    if i % 4 == 0 {
        headers.push(("seq".to_string(), Some(i.to_string().into_bytes())));
    }
    if i % 12 == 0 {
        headers.push(("dup".to_string(), Some(b"one".to_vec())));
        headers.push(("dup".to_string(), Some(b"two".to_vec())));
        headers.push(("null".to_string(), None));
    }
    Rec {
        partition: p,
        key,
        value,
        headers,
        timestamp: Some(TS + i * 10 - (i % 3) * 15 + i64::from(p)),
    }
}

/// Record `i` of partition `p` on the target before the copy: not from the source.
fn foreign(p: i32, i: i64) -> Rec {
    Rec::kv(
        p,
        &format!("foreign-p{p}-{i}"),
        "on the target before the copy",
        TS - 1000 + i,
    )
}

/// Partition `p`'s source records from offset `from` to `to`.
fn records(p: i32, from: i64, to: i64) -> impl Iterator<Item = Rec> {
    (from..to).map(move |i| record(p, i))
}

impl Fixture {
    fn load(name: &str) -> Fixture {
        let path = Path::new(FIXTURES).join(name).join("fixture.json");
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading the fixture {}: {e}", path.display()));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("the fixture {} does not parse: {e}", path.display()))
    }

    fn parts(&self) -> std::ops::Range<i32> {
        0..self.partitions
    }

    fn groups(&self) -> Vec<&str> {
        self.commits.keys().map(String::as_str).collect()
    }

    /// The records the target holds, per partition, once the source's are copied up to
    /// `ends`.
    fn target_with(&self, ends: &[i64]) -> Vec<Vec<Rec>> {
        self.parts()
            .map(|p| {
                let i = p as usize;
                (0..self.target_before[i])
                    .map(|n| foreign(p, n))
                    .chain(records(p, self.copy_start[i], ends[i]))
                    .collect()
            })
            .collect()
    }

    /// The records the target held when the build stopped, per partition.
    fn target_then(&self) -> Vec<Vec<Rec>> {
        let ends: Vec<i64> = self
            .parts()
            .map(|p| {
                let i = p as usize;
                self.copy_start[i] + self.target_records[i] - self.target_before[i]
            })
            .collect();
        self.target_with(&ends)
    }

    /// Both clusters as they were when the build stopped: the source topic with its
    /// records and the groups' commits, the target topic with what it held, both made
    /// afresh, and the groups deleted on both first.
    fn rebuild(&self) -> (Cluster, Cluster) {
        let (src, tgt) = (Cluster::source(), Cluster::target());
        assert_eq!(
            (src.bootstrap.as_str(), tgt.bootstrap.as_str()),
            (self.source.as_str(), self.target.as_str()),
            "the fixture of {} was recorded against source {} and target {}: its state file's \
             fingerprint holds those addresses, and a resume under a configuration naming \
             others is refused. Run it against the test bed at its default addresses.",
            self.topic,
            self.source,
            self.target
        );
        let groups = self.groups();
        src.delete_groups(&groups);
        tgt.delete_groups(&groups);
        src.recreate_topic(&self.topic, self.partitions);
        tgt.recreate_topic(&self.topic, self.partitions);
        let source: Vec<Rec> = self
            .parts()
            .flat_map(|p| records(p, 0, self.source_records[p as usize]))
            .collect();
        src.produce(&self.topic, &source);
        let target: Vec<Rec> = self.target_then().into_iter().flatten().collect();
        tgt.produce(&self.topic, &target);
        self.commit(&src, &self.commits);
        for p in self.parts() {
            assert_eq!(
                tgt.watermarks(&self.topic, p).1,
                self.target_records[p as usize],
                "{}/{p} on the target, rebuilt",
                self.topic
            );
        }
        (src, tgt)
    }

    fn commit(&self, c: &Cluster, commits: &BTreeMap<String, Vec<i64>>) {
        for (g, offsets) in commits {
            let offsets: Vec<(&str, i32, i64)> = self
                .parts()
                .map(|p| (self.topic.as_str(), p, offsets[p as usize]))
                .collect();
            c.commit(g, &offsets);
        }
    }

    /// A working directory with the fixture's files and a configuration for the test bed.
    fn workdir(&self, name: &str) -> PathBuf {
        let dir = workdir(&format!("fixture-{name}"));
        for f in &self.files {
            let from = Path::new(FIXTURES).join(name).join(f);
            std::fs::copy(&from, dir.join(f))
                .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
        }
        std::fs::write(dir.join("migrate.toml"), config_for(&self.groups(), ""))
            .expect("writing migrate.toml");
        dir
    }

    /// The target holds, per partition, what it held before the copy, then every source
    /// record from the copy's start to `ends` once, in order; each group's offset on the
    /// target is where its `commits` on the source landed; `kmigrate verify` passes.
    fn assert_exact(&self, dir: &Path, ends: &[i64], commits: &BTreeMap<String, Vec<i64>>) {
        let tgt = Cluster::target();
        let reads: Vec<(&Cluster, &str, i32)> = self
            .parts()
            .map(|p| (&tgt, self.topic.as_str(), p))
            .collect();
        let got = read_parallel(&reads);
        for ((p, got), want) in self.parts().zip(got).zip(self.target_with(ends)) {
            let got: Vec<Rec> = got.into_iter().map(|r| r.rec).collect();
            assert_records(&format!("{}/{p} on the target", self.topic), &got, &want);
        }
        let tps: Vec<(&str, i32)> = self.parts().map(|p| (self.topic.as_str(), p)).collect();
        for (g, offsets) in commits {
            let want: Vec<Option<i64>> = self
                .parts()
                .map(|p| {
                    let i = p as usize;
                    Some(self.target_before[i] + offsets[i] - self.copy_start[i])
                })
                .collect();
            assert_eq!(
                tgt.committed(g, &tps),
                want,
                "group {g}'s offsets on {} on the target (source commits {offsets:?})",
                self.topic
            );
        }
        verify_ok(dir);
    }

    fn cleanup(&self) {
        Cluster::source().delete_topic(&self.topic);
        Cluster::target().delete_topic(&self.topic);
    }
}

fn assert_resumed(what: &str, run: &Run) {
    assert_eq!(run.code, 0, "{what}:\n{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("resuming"),
        "{what} did not resume the fixture's state file:\n{}",
        run.stderr
    );
}

#[test]
fn a_run_killed_mid_copy_by_the_earlier_build_resumes_exactly() {
    let f = Fixture::load("run");
    f.rebuild();
    let dir = f.workdir("run");
    let run = kmigrate_raw(&dir, &["run", "--yes"]);
    assert_resumed("run", &run);
    f.assert_exact(&dir, &f.source_records, &f.commits);
    f.cleanup();
}

/// Records the resumed sync copies while it follows, and then the tail the cutover copies,
/// per partition.
const SYNC_MORE: i64 = 200;
const CUTOVER_TAIL: i64 = 100;

#[test]
fn a_sync_stopped_by_the_earlier_build_follows_again_and_cuts_over_exactly() {
    let f = Fixture::load("sync");
    let (src, tgt) = f.rebuild();
    let dir = f.workdir("sync");
    let on_target = Progress::new(&tgt, &f.topic, f.partitions);
    let mut bg = spawn(&dir, &["sync", "--yes"]);
    // Producers keep writing: the resumed sync copies their records after the old build's.
    let mut ends = f.source_records.clone();
    let more: Vec<Rec> = f
        .parts()
        .flat_map(|p| records(p, ends[p as usize], ends[p as usize] + SYNC_MORE))
        .collect();
    src.produce(&f.topic, &more);
    ends.iter_mut().for_each(|e| *e += SYNC_MORE);
    let want: i64 = f.target_with(&ends).iter().map(|p| p.len() as i64).sum();
    while_running(&mut bg, "the resumed sync copied the new records", || {
        on_target.total() >= want
    });
    let stopped = stop(bg);
    assert_eq!(
        stopped.code, 130,
        "sync:\n{}\n{}",
        stopped.stdout, stopped.stderr
    );
    assert!(
        stopped.stderr.contains("resuming the sync"),
        "{}",
        stopped.stderr
    );
    // Consumers moved on, producers wrote a tail, then both stopped.
    let commits: BTreeMap<String, Vec<i64>> = f
        .commits
        .iter()
        .enumerate()
        .map(|(n, (g, c))| {
            let moved = f
                .parts()
                .map(|p| c[p as usize].max(ends[p as usize] - 50 * (n as i64 + 1)))
                .collect();
            (g.clone(), moved)
        })
        .collect();
    f.commit(&src, &commits);
    let tail: Vec<Rec> = f
        .parts()
        .flat_map(|p| records(p, ends[p as usize], ends[p as usize] + CUTOVER_TAIL))
        .collect();
    src.produce(&f.topic, &tail);
    ends.iter_mut().for_each(|e| *e += CUTOVER_TAIL);
    let cutover = kmigrate_raw(&dir, &["cutover", "--yes", "--quiet", "1"]);
    assert_eq!(
        cutover.code, 0,
        "cutover:\n{}\n{}",
        cutover.stdout, cutover.stderr
    );
    f.assert_exact(&dir, &ends, &commits);
    f.cleanup();
}

/// SIGTERM: a sync saves and exits 130.
fn stop(bg: Bg) -> Run {
    bg.signal("-TERM");
    bg.wait_within(Duration::from_secs(60))
}

#[test]
fn a_shard_killed_mid_copy_by_the_earlier_build_resumes_and_the_other_shards_complete() {
    let f = Fixture::load("shard");
    f.rebuild();
    let dir = f.workdir("shard");
    let shard = f.shard.clone().expect("the shard fixture names its shard");
    let (index, count) = shard.split_once('/').expect("INDEX/COUNT");
    let (index, count): (u32, u32) = (index.parse().expect("INDEX"), count.parse().expect("COUNT"));
    let worker = |i: u32| {
        let s = format!("{i}/{count}");
        kmigrate_raw(
            &dir,
            &["run", "--yes", "--plan", "plan.json", "--shard", &s],
        )
    };
    assert_resumed(&format!("run --shard {shard}"), &worker(index));
    for i in (0..count).filter(|i| *i != index) {
        let run = worker(i);
        assert_eq!(run.code, 0, "shard {i}:\n{}\n{}", run.stdout, run.stderr);
    }
    let status = kmigrate_raw(&dir, &["status", "--format", "json"]).json();
    assert_eq!(status["complete"], true, "{status:#}");
    f.assert_exact(&dir, &f.source_records, &f.commits);
    f.cleanup();
}

// The recordings, run by `scripts/fixtures` with the build to record (KMIGRATE_FIXTURE_BIN)
// into tests/fixtures/state (KMIGRATE_FIXTURE_DIR); without those, with this build into a
// temporary directory, which checks that the recordings still work.

/// A recording: the build it runs and where it saves the fixture.
struct Recorder {
    bin: PathBuf,
    out: PathBuf,
}

impl Recorder {
    fn new(name: &str) -> Recorder {
        let bin = std::env::var_os("KMIGRATE_FIXTURE_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_kmigrate")),
            PathBuf::from,
        );
        let out = std::env::var_os("KMIGRATE_FIXTURE_DIR")
            .map_or_else(|| workdir("fixtures-recorded"), PathBuf::from)
            .join(name);
        eprintln!("recording {} with {}", out.display(), bin.display());
        Recorder { bin, out }
    }

    fn spawn(&self, dir: &Path, args: &[&str]) -> Bg {
        spawn_bin(&self.bin, dir, args, "warn")
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Run {
        let run = self.spawn(dir, args).wait_within(Duration::from_secs(120));
        assert_eq!(run.code, 0, "{args:?}:\n{}\n{}", run.stdout, run.stderr);
        run
    }

    /// A fixture not started yet: the source with `source_records`, the target with
    /// `target_before`, the groups' commits; rebuilt on the clusters.
    fn start(
        &self,
        topic: &str,
        source_records: Vec<i64>,
        target_before: Vec<i64>,
        commits: BTreeMap<String, Vec<i64>>,
    ) -> (Fixture, Cluster, Cluster) {
        let parts = source_records.len();
        let f = Fixture {
            written_by: String::new(),
            note: std::env::var("KMIGRATE_FIXTURE_NOTE").unwrap_or_default(),
            stopped: String::new(),
            source: crate::support::source_bootstrap(),
            target: crate::support::target_bootstrap(),
            topic: topic.to_string(),
            partitions: parts as i32,
            shard: None,
            files: vec![STATE.to_string()],
            source_records,
            target_records: target_before.clone(),
            target_before,
            copy_start: vec![0; parts],
            checkpointed: vec![0; parts],
            commits,
        };
        let (src, tgt) = f.rebuild();
        (f, src, tgt)
    }

    /// Completes the fixture from the stopped build's state file (the first of `f.files`
    /// in `dir`) and the target, and saves it with its files.
    fn save(&self, mut f: Fixture, dir: &Path) {
        let state: Value =
            serde_json::from_slice(&std::fs::read(dir.join(&f.files[0])).expect("the state file"))
                .expect("the state file is JSON");
        let tgt = Cluster::target();
        for p in f.parts() {
            let i = p as usize;
            f.target_records[i] = tgt.watermarks(&f.topic, p).1;
            let planned = state["plan"]["partitions"]
                .as_array()
                .expect("plan.partitions")
                .iter()
                .find(|x| x["topic"] == f.topic.as_str() && x["partition"] == p)
                .unwrap_or_else(|| panic!("{}/{p} is not in the plan", f.topic));
            f.copy_start[i] = planned["start"].as_i64().expect("start");
            f.checkpointed[i] = state["partitions"]
                .as_array()
                .expect("partitions")
                .iter()
                .find(|x| x["partition"] == p)
                .map_or(0, |x| x["progress"]["written"].as_i64().expect("written"));
        }
        f.written_by = self.run(dir, &["--version"]).stdout.trim().to_string();
        eprintln!("recorded: {f:#?}");
        if self.out.exists() {
            std::fs::remove_dir_all(&self.out).expect("removing the old recording");
        }
        std::fs::create_dir_all(&self.out).expect("creating the fixture's directory");
        for name in &f.files {
            std::fs::copy(dir.join(name), self.out.join(name)).expect("saving a file");
        }
        let mut json = serde_json::to_string_pretty(&f).expect("fixture.json");
        json.push('\n');
        std::fs::write(self.out.join("fixture.json"), json).expect("writing fixture.json");
        f.cleanup();
    }
}

/// Records written so far, summed over a state file's partitions (`None` while it is
/// missing or being replaced).
fn written(path: &Path) -> Option<i64> {
    let state: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    state["partitions"]
        .as_array()?
        .iter()
        .map(|p| p["progress"]["written"].as_i64())
        .sum()
}

fn commits(groups: &[(&str, &[i64])]) -> BTreeMap<String, Vec<i64>> {
    groups
        .iter()
        .map(|(g, c)| (g.to_string(), c.to_vec()))
        .collect()
}

/// Waits until the copy's last checkpoint in `state` holds `checkpointed` records or more
/// and the target `past` records beyond it, then kills the build with SIGKILL.
fn kill_past_checkpoint(
    mut bg: Bg,
    state: &Path,
    on_target: impl Fn() -> i64,
    (checkpointed, past): (i64, i64),
) {
    while_running(&mut bg, "records past a checkpoint", || {
        written(state).is_some_and(|w| w >= checkpointed && on_target() >= w + past)
    });
    let killed = bg.kill9();
    assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
}

#[test]
#[ignore = "run by scripts/fixtures: records a state file fixture with a given build"]
fn record_run() {
    let r = Recorder::new("run");
    let name = crate::support::unique("fixture-run");
    let (g1, g2) = (format!("{name}-g1"), format!("{name}-g2"));
    let (mut f, _, tgt) = r.start(
        &name,
        vec![6000; 3],
        vec![0, 4, 0],
        commits(&[(&g1, &[0, 1200, 300]), (&g2, &[2500, 1500, 6000])]),
    );
    let dir = workdir("fixture-run");
    // Throttled, the copy lasts several seconds: checkpoints are 2 s apart.
    let extra = "[migration]\nmax_bytes_per_second = 500000\npipelines = 2\n";
    std::fs::write(dir.join("migrate.toml"), config_for(&f.groups(), extra)).expect("config");
    let on_target = Progress::new(&tgt, &f.topic, f.partitions);
    let bg = r.spawn(&dir, &["run", "--yes"]);
    kill_past_checkpoint(bg, &dir.join(STATE), || on_target.total() - 4, (1000, 200));
    f.stopped = format!(
        "kmigrate run --yes ({}), killed with SIGKILL mid-copy with records on the target \
         past its last checkpoint",
        extra.trim().replace('\n', " ")
    );
    r.save(f, &dir);
}

#[test]
#[ignore = "run by scripts/fixtures: records a state file fixture with a given build"]
fn record_sync() {
    let r = Recorder::new("sync");
    let name = crate::support::unique("fixture-sync");
    let (live, idle) = (format!("{name}-live"), format!("{name}-idle"));
    // Partition 2 was consumed to its end: the sync follows it from there.
    let (mut f, src, tgt) = r.start(
        &name,
        vec![3000; 3],
        vec![0, 0, 2],
        commits(&[(&live, &[1000, 2000, 3000]), (&idle, &[500, 2500, 3000])]),
    );
    let dir = workdir("fixture-sync");
    let extra = "[migration]\npipelines = 2\n";
    std::fs::write(dir.join("migrate.toml"), config_for(&f.groups(), extra)).expect("config");
    let on_target = Progress::new(&tgt, &f.topic, f.partitions);
    let copied = || on_target.total() - 2;
    let mut bg = r.spawn(&dir, &["sync", "--yes"]);
    while_running(&mut bg, "the backlog copied", || copied() >= 2500 + 1000);
    // Live traffic while it follows: producers write, the live group consumes.
    const LIVE: i64 = 400;
    let more: Vec<Rec> = f
        .parts()
        .flat_map(|p| records(p, 3000, 3000 + LIVE))
        .collect();
    src.produce(&f.topic, &more);
    f.source_records = vec![3000 + LIVE; 3];
    f.commits.insert(live.clone(), vec![3100, 3200, 3300]);
    f.commit(&src, &f.commits);
    while_running(&mut bg, "the live records copied", || {
        copied() >= 2500 + 1000 + 3 * LIVE
    });
    // One more round of following, then stopped.
    std::thread::sleep(Duration::from_millis(1500));
    let stopped = stop(bg);
    assert_eq!(
        stopped.code, 130,
        "sync:\n{}\n{}",
        stopped.stdout, stopped.stderr
    );
    f.stopped = format!(
        "kmigrate sync --yes ({}), stopped with SIGTERM after it copied the backlog and \
         followed the live source",
        extra.trim().replace('\n', " ")
    );
    r.save(f, &dir);
}

#[test]
#[ignore = "run by scripts/fixtures: records a state file fixture with a given build"]
fn record_shard() {
    let r = Recorder::new("shard");
    let name = crate::support::unique("fixture-shard");
    let (g1, g2) = (format!("{name}-g1"), format!("{name}-g2"));
    // Partition 5 was consumed to its end: nothing to copy, but one shard commits its
    // groups' offsets there (the target's end, after its records from before).
    let (mut f, _, tgt) = r.start(
        &name,
        vec![4000, 3000, 2500, 2000, 1500, 1000],
        vec![2, 0, 0, 0, 0, 3],
        commits(&[
            (&g1, &[0, 0, 500, 0, 0, 1000]),
            (&g2, &[1000, 100, 0, 200, 300, 1000]),
        ]),
    );
    let dir = workdir("fixture-shard");
    let extra = "[migration]\nmax_bytes_per_second = 200000\npipelines = 2\n";
    std::fs::write(dir.join("migrate.toml"), config_for(&f.groups(), extra)).expect("config");
    r.run(&dir, &["plan", "--out", "plan.json"]);
    let on_target = Progress::new(&tgt, &f.topic, f.partitions);
    let shard = "1/3";
    let state = format!("{STATE}.shard-1-of-3");
    let bg = r.spawn(
        &dir,
        &["run", "--yes", "--plan", "plan.json", "--shard", shard],
    );
    kill_past_checkpoint(bg, &dir.join(&state), || on_target.total() - 5, (500, 100));
    f.shard = Some(shard.to_string());
    f.files = vec![state, "plan.json".to_string()];
    f.stopped = format!(
        "kmigrate plan --out plan.json, then kmigrate run --yes --plan plan.json --shard \
         {shard} ({}), killed with SIGKILL mid-copy with records on the target past its last \
         checkpoint; the other shards never started",
        extra.trim().replace('\n', " ")
    );
    r.save(f, &dir);
}
