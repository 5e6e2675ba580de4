//! `kmigrate sync` and `kmigrate cutover` against the real test bed, with producers and a
//! consumer group running during the sync: every source record from the copy's start is on
//! the target exactly once and in order (key, value, headers, timestamp, partition), and
//! every group resumes on the target at the first record it had not consumed on the source.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::support;
use crate::support::exact;
use crate::support::exact::Sides;
use crate::support::process::{Bg, Progress, spawn, spawn_logging, state_json, while_running};
use crate::support::records::assert_partition_copied;
use crate::support::{
    Cluster, Rng, STATE, TS, config_for, kmigrate, kmigrate_raw, unique, verify_ok, workdir,
};

const PARTS: i32 = 4;

/// A topic of `per` records in each of 4 partitions on the source, the same topic empty on
/// the target, and each group's commits (index = partition).
fn setup(topic: &str, per: usize, groups: &[(&str, [i64; 4])]) -> (Cluster, Cluster) {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    let commits: Vec<(&str, &[i64])> = groups.iter().map(|(g, c)| (*g, &c[..])).collect();
    exact::setup((&src, &tgt), topic, PARTS, per, &commits, |c| {
        c.create_topic(topic, PARTS, &[])
    });
    (src, tgt)
}

/// Producing about 200 records/s over the partitions until stopped; each record unique
/// (key, value, a header on every 10th, its own timestamp).
struct Traffic {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<usize>,
}

impl Traffic {
    fn start(src: &Cluster, topic: &str) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let producer: BaseProducer = src
            .config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("creating the live producer");
        let (flag, topic) = (Arc::clone(&stop), topic.to_string());
        let handle = std::thread::spawn(move || {
            let mut i = 0usize;
            while !flag.load(Ordering::Relaxed) {
                let p = (i % PARTS as usize) as i32;
                let key = format!("live-{p}-{i:07}");
                let value = format!("live value {i}");
                let mut rec = BaseRecord::to(&topic)
                    .partition(p)
                    .key(key.as_bytes())
                    .payload(value.as_bytes())
                    .timestamp(TS + 1_000_000 + i as i64);
                if i.is_multiple_of(10) {
                    rec = rec.headers(OwnedHeaders::new().insert(Header {
                        key: "live",
                        value: Some(i.to_string().as_bytes()),
                    }));
                }
                producer.send(rec).expect("sending a live record");
                producer.poll(Duration::from_millis(0));
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            producer
                .flush(Duration::from_secs(30))
                .expect("flushing the live producer");
            i
        });
        Traffic { stop, handle }
    }

    /// Stops producing; returns how many records were produced (all acknowledged).
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the producer thread")
    }
}

/// A member of `group` consuming `topic` live and committing every 200 ms, until stopped:
/// then it commits what it consumed and leaves the group.
struct LiveConsumer {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<usize>,
}

impl LiveConsumer {
    fn start(src: &Cluster, topic: &str, group: &str) -> LiveConsumer {
        LiveConsumer::start_at(src, topic, group, None)
    }

    /// [`LiveConsumer::start`] processing at most `per_sec` records a second (`None`: as
    /// fast as it can), so that it lags as a real application does.
    fn start_at(src: &Cluster, topic: &str, group: &str, per_sec: Option<f64>) -> LiveConsumer {
        let stop = Arc::new(AtomicBool::new(false));
        let consumer: BaseConsumer = src
            .config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()
            .expect("creating the live consumer");
        consumer.subscribe(&[topic]).expect("subscribing");
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut consumed = 0usize;
            let began = Instant::now();
            let mut last_commit = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let busy =
                    per_sec.is_some_and(|r| consumed as f64 >= r * began.elapsed().as_secs_f64());
                if busy {
                    std::thread::sleep(Duration::from_millis(10));
                } else if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                    m.expect("consuming");
                    consumed += 1;
                }
                if consumed > 0 && last_commit.elapsed() > Duration::from_millis(200) {
                    let _ = consumer.commit_consumer_state(CommitMode::Async);
                    last_commit = Instant::now();
                }
            }
            // "No offset stored": every consumed record was committed already.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {}
                Err(e) => panic!("the final commit: {e}"),
            }
            consumer.unsubscribe();
            drop(consumer);
            consumed
        });
        LiveConsumer { stop, handle }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the consumer thread")
    }
}

/// The copy's start per partition, from the state file.
fn starts(dir: &Path) -> Vec<i64> {
    let state = state_json(dir);
    let parts = state["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), PARTS as usize, "every partition is followed");
    parts
        .iter()
        .map(|p| p["start"].as_i64().expect("start"))
        .collect()
}

/// Records written so far, from the state file (None while it is being replaced).
fn written(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join(STATE)).ok()?;
    let state: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    state["partitions"]
        .as_array()?
        .iter()
        .map(|p| p["progress"]["written"].as_u64())
        .sum()
}

/// Offsets in the ranges the state file holds now (a lower bound of what the sync copies).
fn planned(dir: &Path) -> u64 {
    let state = state_json(dir);
    state["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| (p["end"].as_i64().expect("end") - p["start"].as_i64().expect("start")) as u64)
        .sum()
}

fn start_sync(dir: &Path) -> Bg {
    let mut bg = spawn(dir, &["sync", "--yes"]);
    while_running(&mut bg, "the sync's state file exists", || {
        dir.join(STATE).exists()
    });
    bg
}

/// Waits until the sync has written at least `n` records.
fn until_written(bg: &mut Bg, dir: &Path, n: u64) {
    while_running(bg, &format!("{n} records written"), || {
        written(dir).is_some_and(|w| w >= n)
    });
}

/// SIGTERM: the sync saves and exits 130.
fn stop_sync(bg: Bg) {
    stop_sync_with(bg, "-TERM");
}

/// A signal that stops the sync (`"-INT"`: Ctrl-C): it saves and exits 130.
fn stop_sync_with(bg: Bg, sig: &str) {
    bg.signal(sig);
    let run = bg.wait_within(Duration::from_secs(60));
    assert_eq!(
        run.code, 130,
        "sync after kill {sig}:\n{}\n{}",
        run.stdout, run.stderr
    );
}

fn cutover(dir: &Path, args: &[&str]) -> support::Run {
    let mut all = vec!["cutover", "--yes"];
    all.extend_from_slice(args);
    kmigrate_raw(dir, &all)
}

/// Every record from the copy's starts is on the target once, in order; each group's
/// offset on the target is that of the first record it had not consumed on the source
/// (the target was empty: source offset `c` is target offset `c - start`), and `kmigrate
/// offsets translate` agrees; `kmigrate verify` passes. Returns both sides as read.
fn assert_exact(
    dir: &Path,
    (src, tgt): (&Cluster, &Cluster),
    topic: &str,
    groups: &[&str],
) -> Sides {
    let start = starts(dir);
    let sides = Sides::read((src, tgt), topic, PARTS);
    for (p, s) in start.iter().enumerate() {
        let what = format!("{topic}/{p} on the target");
        assert_partition_copied(&what, &sides.source[p], &sides.target[p], *s);
    }
    let parts: Vec<(&str, i32)> = (0..PARTS).map(|p| (topic, p)).collect();
    for g in groups {
        let on_source = src.committed(g, &parts);
        let on_target = tgt.committed(g, &parts);
        for (p, (c, s)) in on_source.iter().zip(&start).enumerate() {
            let c = c.unwrap_or_else(|| panic!("group {g} committed {topic}/{p} on the source"));
            let want = (c - s).max(0);
            assert_eq!(
                on_target[p],
                Some(want),
                "group {g} on {topic}/{p}: source commit {c}, copy from {s}"
            );
            assert!(want <= sides.target[p].len() as i64);
            let run = kmigrate_raw(
                dir,
                &[
                    "offsets",
                    "translate",
                    topic,
                    &p.to_string(),
                    &c.max(*s).to_string(),
                ],
            );
            assert_eq!(run.code, 0, "offsets translate: {}", run.stderr);
            assert_eq!(
                run.stdout.trim(),
                want.to_string(),
                "offsets translate {p} {c}"
            );
        }
    }
    verify_ok(dir);
    sides
}

/// The backlog: 4 partitions of 50,000 records.
const BACKLOG_PER: usize = 50_000;

#[test]
fn sync_then_cutover_with_live_traffic_is_exact() {
    let topic = unique("sync-live");
    let (live, idle) = (unique("sync-live-g"), unique("sync-idle-g"));
    // Partition 3 was consumed to its end by both groups: followed from its end.
    let (src, tgt) = setup(
        &topic,
        BACKLOG_PER,
        &[
            (&live, [12_500, 12_500, 12_500, 50_000]),
            (&idle, [5_000, 25_000, 50_000, 50_000]),
        ],
    );
    let dir = workdir("sync-live");
    std::fs::write(dir.join("migrate.toml"), config_for(&[&live, &idle], "")).expect("config");
    let traffic = Traffic::start(&src, &topic);
    let mut bg = start_sync(&dir);
    assert_eq!(starts(&dir), vec![5_000, 12_500, 12_500, 50_000]);
    // Slower than the backlog grows back: it still lags when it stops.
    let consumer = LiveConsumer::start_at(&src, &topic, &live, Some(5_000.0));
    until_written(&mut bg, &dir, 45_000 + 37_500 + 37_500 + 100);
    std::thread::sleep(Duration::from_secs(3));
    let produced = traffic.stop();
    let consumed = consumer.stop();
    assert!(
        produced > 200 && consumed > 5_000,
        "{produced} produced, {consumed} consumed"
    );
    stop_sync_with(bg, "-INT");

    let run = cutover(&dir, &["--quiet", "1"]);
    assert_eq!(run.code, 0, "cutover:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("cutover: "), "{}", run.stdout);
    let sides = assert_exact(&dir, (&src, &tgt), &topic, &[&live, &idle]);
    // A librdkafka consumer of each group resumes on the target where the group stopped.
    let read = exact::assert_resumes((&src, &tgt), &sides, &topic, &[&live, &idle]);
    let (live_left, idle_left): (usize, usize) = (read[0].iter().sum(), read[1].iter().sum());
    assert!(
        live_left > 0 && idle_left > 45_000 + 25_000,
        "records left to read on the target: {live_left} by the live group, {idle_left} by \
         the idle one"
    );
    eprintln!(
        "{produced} live records produced, {consumed} consumed by the live group; read on \
         resuming on the target, per partition: live group {:?}, idle group {:?}",
        read[0], read[1]
    );
    let mut rng = Rng::from_env();
    let checked = exact::assert_translations(&dir, &sides, &topic, &starts(&dir), 20, &mut rng);
    assert_eq!(
        checked,
        4 * 22,
        "source offsets translated and found on the target"
    );
    // A second cutover finds it done.
    let again = cutover(&dir, &[]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again.stderr.contains("cut over already"),
        "{}",
        again.stderr
    );
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn sync_killed_at_seeded_points_resumes_exactly() {
    let mut rng = Rng::from_env();
    let topic = unique("sync-kill");
    let group = unique("sync-kill-g");
    let (src, tgt) = setup(&topic, 5_000, &[(&group, [1_000, 0, 4_000, 5_000])]);
    let dir = workdir("sync-kill");
    std::fs::write(dir.join("migrate.toml"), config_for(&[&group], "")).expect("config");
    let traffic = Traffic::start(&src, &topic);
    // The group has a live member when the sync plans: allowed.
    let consumer = LiveConsumer::start(&src, &topic, &group);
    let deadline = Instant::now() + Duration::from_secs(30);
    while src.committed(&group, &[(topic.as_str(), 1)])[0] == Some(0) {
        assert!(
            Instant::now() < deadline,
            "the live consumer never committed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for round in 0..3 {
        let mut bg = start_sync(&dir);
        let members = &state_json(&dir)["plan"]["groups"][0]["members"];
        assert!(
            members.as_array().is_some_and(|m| !m.is_empty()),
            "planned with its member: {members}"
        );
        let wait = Duration::from_secs_f64(rng.between(0.3, 2.5));
        let until = Instant::now() + wait;
        while_running(&mut bg, &format!("kill point {round}"), || {
            Instant::now() >= until
        });
        bg.kill9();
    }
    // One more sync after the last kill, stopped cleanly while traffic goes on.
    let mut bg = start_sync(&dir);
    let planned = planned(&dir);
    until_written(&mut bg, &dir, planned);
    let produced = traffic.stop();
    assert!(produced > 100);
    consumer.stop();
    stop_sync(bg);
    let run = cutover(&dir, &["--quiet", "1"]);
    assert_eq!(run.code, 0, "cutover:\n{}\n{}", run.stdout, run.stderr);
    assert_exact(&dir, (&src, &tgt), &topic, &[&group]);
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn cutover_refuses_while_sync_runs_or_the_source_is_active() {
    let topic = unique("sync-refuse");
    let group = unique("sync-refuse-g");
    let (src, tgt) = setup(&topic, 1_000, &[(&group, [100, 200, 300, 1_000])]);
    let dir = workdir("sync-refuse");
    std::fs::write(dir.join("migrate.toml"), config_for(&[&group], "")).expect("config");
    let mut bg = start_sync(&dir);
    until_written(&mut bg, &dir, 900 + 800 + 700);

    // While sync holds the state file: refused, naming its pid.
    let run = cutover(&dir, &[]);
    assert_eq!(
        run.code, 2,
        "cutover during sync:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(&format!("pid {}", bg.id())),
        "{}",
        run.stderr
    );
    stop_sync(bg);

    // A consumer still in the group: refused, naming the group and its host.
    let consumer = LiveConsumer::start(&src, &topic, &group);
    let deadline = Instant::now() + Duration::from_secs(30);
    let parts = [(topic.as_str(), 0)];
    while src.committed(&group, &parts)[0] == Some(100) {
        assert!(
            Instant::now() < deadline,
            "the live consumer never committed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = cutover(&dir, &["--wait", "3"]);
    assert_eq!(
        run.code, 2,
        "cutover with a member:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(&group) && run.stderr.contains("hosts:"),
        "{}",
        run.stderr
    );
    consumer.stop();

    // Producers still running (they have written since the sync stopped): refused, naming a
    // partition that moves. The sync's last reading gives no credit: the offsets moved.
    let before: i64 = crate::support::records::highs(&src, &topic, PARTS)
        .iter()
        .sum();
    let traffic = Traffic::start(&src, &topic);
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::support::records::highs(&src, &topic, PARTS)
        .iter()
        .sum::<i64>()
        == before
    {
        assert!(Instant::now() < deadline, "the producer never wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = cutover(&dir, &["--wait", "3", "--quiet", "2"]);
    assert!(!run.stderr.contains(STILL_SINCE_SYNC), "{}", run.stderr);
    assert_eq!(
        run.code, 2,
        "cutover while producing:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.contains(&format!("{topic}/")), "{}", run.stderr);
    traffic.stop();

    // Stopped: the cutover copies the tail (the sync is not running) and is exact.
    let run = cutover(&dir, &["--quiet", "1"]);
    assert_eq!(run.code, 0, "cutover:\n{}\n{}", run.stdout, run.stderr);
    assert_exact(&dir, (&src, &tgt), &topic, &[&group]);
    // No command left `kmigrate run` able to take this state file over.
    let run = kmigrate(&dir, &config_for(&[&group], ""), &["run", "--yes"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

/// Groups enough that committing them all on the target takes a while: a kill can land
/// between two of them.
const GROUPS: usize = 40;

#[test]
fn cutover_killed_mid_tail_and_mid_commit_then_rerun_is_exact() {
    let mut rng = Rng::from_env();
    let topic = unique("sync-cut-kill");
    let names: Vec<String> = (0..GROUPS).map(|_| unique("sync-cut-kill-g")).collect();
    // When the sync plans: the first group's commits are the copy's starts, the others'
    // are seeded between them and the end (2,000).
    let first = [500, 0, 2_000, 1_000];
    let planned: Vec<[i64; 4]> = (0..GROUPS)
        .map(|i| {
            std::array::from_fn(|p| match i {
                0 => first[p],
                _ => first[p] + (rng.next_u64() % (2_001 - first[p]) as u64) as i64,
            })
        })
        .collect();
    let commits: Vec<(&str, [i64; 4])> = names
        .iter()
        .map(String::as_str)
        .zip(planned.iter().copied())
        .collect();
    let (src, tgt) = setup(&topic, 2_000, &commits);
    let dir = workdir("sync-cut-kill");
    let groups: Vec<&str> = names.iter().map(String::as_str).collect();
    std::fs::write(dir.join("migrate.toml"), config_for(&groups, "")).expect("config");
    let mut bg = start_sync(&dir);
    until_written(&mut bg, &dir, 1_500 + 2_000 + 1_000);
    stop_sync(bg);
    // A tail of 15,000 records per partition arrives after the sync stopped, and the groups
    // consumed part of it: the first group up to 2,000 + 3,000 x partition, the second to
    // its end, every 4th group nothing, the others up to seeded offsets.
    for p in 0..PARTS {
        let tail: Vec<support::Rec> = (0..15_000)
            .map(|i| support::Rec::kv(p, &format!("tail-{p}-{i}"), &format!("{i:0>120}"), TS + i))
            .collect();
        src.produce(&topic, &tail);
    }
    for (i, g) in groups.iter().enumerate() {
        let last: [i64; 4] = match i {
            0 => std::array::from_fn(|p| 2_000 + 3_000 * p as i64),
            1 => [17_000; 4],
            _ if i % 4 == 0 => continue,
            _ => std::array::from_fn(|p| {
                planned[i][p] + (rng.next_u64() % (17_001 - planned[i][p]) as u64) as i64
            }),
        };
        let offsets: Vec<(&str, i32, i64)> = (0..PARTS)
            .map(|p| (topic.as_str(), p, last[p as usize]))
            .collect();
        src.commit(g, &offsets);
    }
    // Two kills mid-tail, at seeded shares of it (watched on the target).
    let on_target = Progress::new(&tgt, &topic, PARTS);
    let before = on_target.total();
    let tail = 15_000 * i64::from(PARTS);
    let mut shares = [rng.between(0.05, 0.9), rng.between(0.05, 0.9)];
    shares.sort_by(f64::total_cmp);
    for share in shares {
        let mut bg = spawn(&dir, &["cutover", "--yes", "--quiet", "1"]);
        let at = before + (share * tail as f64) as i64;
        while_running(&mut bg, &format!("{at} records on the target"), || {
            on_target.try_total().is_some_and(|t| t >= at)
        });
        bg.kill9();
    }
    // One kill mid-commit: as soon as it logs a group committed on the target.
    let mut bg = spawn_logging(&dir, &["cutover", "--yes", "--quiet", "1"], "info");
    let committed_line = "committed offsets of group ";
    while bg.exited().is_none() && !bg.stderr().contains(committed_line) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = bg.kill9();
    assert_eq!(
        killed.code, -1,
        "cutover ended before the kill:\n{}\n{}",
        killed.stdout, killed.stderr
    );
    let tps: Vec<(&str, i32)> = (0..PARTS).map(|p| (topic.as_str(), p)).collect();
    let done = groups
        .iter()
        .filter(|g| tgt.committed(g, &tps).iter().any(Option::is_some))
        .count();
    eprintln!(
        "killed mid-commit: {done} of {GROUPS} groups committed on the target ({} logged)",
        killed.stderr.matches(committed_line).count()
    );
    assert!(
        done > 0 && done < GROUPS,
        "killed mid-commit, yet {done} of {GROUPS} groups are committed on the target:\n{}",
        killed.stderr
    );
    let run = cutover(&dir, &["--quiet", "1"]);
    assert_eq!(run.code, 0, "cutover:\n{}\n{}", run.stdout, run.stderr);
    let sides = assert_exact(&dir, (&src, &tgt), &topic, &groups);
    // The offset map kept through the kills finds any copied record.
    let checked = exact::assert_translations(&dir, &sides, &topic, &starts(&dir), 20, &mut rng);
    assert_eq!(
        checked,
        4 * 22,
        "source offsets translated and found on the target"
    );
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn cutover_without_a_sync_migrates_as_run_does() {
    let topic = unique("sync-none");
    let group = unique("sync-none-g");
    let (src, tgt) = setup(&topic, 500, &[(&group, [0, 100, 250, 499])]);
    let dir = workdir("sync-none");
    std::fs::write(dir.join("migrate.toml"), config_for(&[&group], "")).expect("config");
    let run = cutover(&dir, &[]);
    assert_eq!(run.code, 0, "cutover:\n{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("as `kmigrate run` does"),
        "{}",
        run.stderr
    );
    let state = state_json(&dir);
    assert!(
        state["plan"].get("live").is_none(),
        "a run's plan: {}",
        state["plan"]
    );
    assert_exact(&dir, (&src, &tgt), &topic, &[&group]);
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

/// A sync that has caught up copies records as they arrive, partition after partition,
/// several times over the same partitions: what tells it where records arrived is its
/// watcher, since every partition's offsets are read only once a minute.
#[test]
fn sync_follows_each_partition_as_records_arrive() {
    let topic = unique("sync-watch");
    let group = unique("sync-watch-g");
    let (src, tgt) = setup(&topic, 100, &[(&group, [0, 50, 100, 100])]);
    let dir = workdir("sync-watch");
    std::fs::write(dir.join("migrate.toml"), config_for(&[&group], "")).expect("config");
    let mut bg = start_sync(&dir);
    let mut want = 100 + 50;
    until_written(&mut bg, &dir, want);
    let t0 = now_ms();
    // Each partition twice, one after another: each burst must be copied before the next.
    for round in 0..2 {
        for p in 0..PARTS {
            src.produce_n(&topic, p, 3, t0 + i64::from(10 * round + p));
            want += 3;
            let asked = Instant::now();
            while_running(&mut bg, &format!("{want} records written"), || {
                written(&dir).is_some_and(|w| w >= want)
            });
            assert!(
                asked.elapsed() < Duration::from_secs(30),
                "records produced to {topic}/{p} took {:?} to be copied: the sync did not \
                 see them arrive",
                asked.elapsed()
            );
        }
    }
    stop_sync(bg);
    let run = cutover(&dir, &["--quiet", "1"]);
    assert_eq!(run.code, 0, "cutover:\n{}\n{}", run.stdout, run.stderr);
    let sides = assert_exact(&dir, (&src, &tgt), &topic, &[&group]);
    let copied: usize = sides.target.iter().map(Vec::len).sum();
    assert_eq!(copied, 150 + 24, "the backlog and every burst, once");
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

/// What a cutover says when it counts its quiet window from the sync's last reading.
const STILL_SINCE_SYNC: &str = "sync read the same ones before it stopped";

/// A topic named after `prefix` with a backlog of 150 records for one group, copied by a
/// sync that then follows the idle source for `idle` and is stopped (SIGTERM): the topic,
/// the group, both clusters and the work directory.
fn backlog_synced(
    prefix: &str,
    idle: Duration,
) -> (String, String, (Cluster, Cluster), std::path::PathBuf) {
    let topic = unique(prefix);
    let group = unique(&format!("{prefix}-g"));
    let clusters = setup(&topic, 100, &[(&group, [0, 50, 100, 100])]);
    let dir = workdir(prefix);
    std::fs::write(dir.join("migrate.toml"), config_for(&[&group], "")).expect("config");
    let mut bg = start_sync(&dir);
    until_written(&mut bg, &dir, 150);
    std::thread::sleep(idle);
    stop_sync(bg);
    (topic, group, clusters, dir)
}

/// A sync stopped on an idle source leaves its last reading of the source's ends in the
/// state file, with since when they had not moved; a cutover whose first reading finds
/// the same ends counts its quiet window from then (here 3 s, already over) instead of
/// waiting it out, and the migration is exact.
#[test]
fn cutover_counts_its_quiet_window_from_the_syncs_last_reading_of_an_idle_source() {
    let (topic, group, (src, tgt), dir) = backlog_synced("sync-still", Duration::from_secs(4));
    let still = &state_json(&dir)["source_still"];
    let (since, read) = (still["since_ms"].as_i64(), still["read_at_ms"].as_i64());
    assert!(
        since.zip(read).is_some_and(|(s, r)| r - s >= 3_000),
        "the state file's source_still: {still}"
    );
    let run = cutover(&dir, &["--quiet", "3"]);
    assert_eq!(run.code, 0, "cutover:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(STILL_SINCE_SYNC), "{}", run.stderr);
    let sides = assert_exact(&dir, (&src, &tgt), &topic, &[&group]);
    let copied: usize = sides.target.iter().map(Vec::len).sum();
    assert_eq!(copied, 150, "the backlog, once");
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

/// Records produced after the sync stopped move the source's ends: the cutover gives the
/// sync's reading no credit, waits its own quiet window, and copies them as the tail.
#[test]
fn cutover_waits_its_own_quiet_window_when_the_source_moved_after_the_sync() {
    let (topic, group, (src, tgt), dir) = backlog_synced("sync-moved", Duration::from_secs(2));
    assert!(state_json(&dir)["source_still"]["since_ms"].is_i64());
    src.produce_n(&topic, 3, 5, now_ms());
    let run = cutover(&dir, &["--quiet", "1"]);
    assert_eq!(run.code, 0, "cutover:\n{}\n{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains(STILL_SINCE_SYNC), "{}", run.stderr);
    let sides = assert_exact(&dir, (&src, &tgt), &topic, &[&group]);
    let copied: usize = sides.target.iter().map(Vec::len).sum();
    assert_eq!(copied, 150 + 5, "the backlog and the tail, once");
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

/// The debug line of a copy that reads and writes through the clients an earlier copy left.
const REUSED: &str = "reusing the pipeline's source consumer and target producer";

/// A sync's rounds after the first read and write through the clients an earlier round
/// left, each given other partitions: small bursts go to one partition, then another, or
/// two at once, some while a round copies (its consumer then holds records past its ranges
/// when it ends), so that consecutive rounds copy different partition sets through the same
/// consumer and producer. Every record is on the target once, in order.
#[test]
fn sync_rounds_reuse_their_clients_exactly() {
    rounds_reuse_their_clients("record");
}

/// The batch engine's rounds keep their connections and producer id: one producer per
/// pipeline for the whole sync, not one per round (the target keeps each producer's state
/// per partition for a week by default).
#[test]
fn sync_rounds_on_the_batch_engine_keep_one_producer_per_pipeline() {
    rounds_reuse_their_clients("batch");
}

fn rounds_reuse_their_clients(engine: &str) {
    let topic = unique("sync-reuse");
    let group = unique("sync-reuse-g");
    let (src, tgt) = setup(&topic, 100, &[(&group, [0, 0, 50, 100])]);
    let dir = workdir("sync-reuse");
    std::fs::write(dir.join("migrate.toml"), config_for(&[&group], "")).expect("config");
    let args = ["sync", "--yes", "--pipelines", "2", "--engine", engine];
    let mut bg = spawn_logging(&dir, &args, "kmigrate=debug");
    while_running(&mut bg, "the sync's state file exists", || {
        dir.join(STATE).exists()
    });
    let mut want = 100 + 100 + 50;
    until_written(&mut bg, &dir, want);
    let t0 = now_ms();
    for burst in 0..30usize {
        let first = (burst * 3 % PARTS as usize) as i32;
        let parts = if burst % 4 == 0 {
            vec![first, (first + 1) % PARTS]
        } else {
            vec![first]
        };
        for p in parts {
            let n = 1 + burst % 5;
            let recs: Vec<support::Rec> = (0..n)
                .map(|i| {
                    let (k, v) = (format!("b{burst}-{p}-{i}"), format!("burst {burst} #{i}"));
                    support::Rec::kv(p, &k, &v, t0 + (burst * 10 + i) as i64)
                })
                .collect();
            src.produce(&topic, &recs);
            want += n as u64;
        }
        if burst % 3 == 2 {
            until_written(&mut bg, &dir, want);
        } else {
            std::thread::sleep(Duration::from_millis(40 * (burst % 4) as u64));
        }
    }
    until_written(&mut bg, &dir, want);
    bg.signal("-TERM");
    let run = bg.wait_within(Duration::from_secs(60));
    assert_eq!(run.code, 130, "sync:\n{}\n{}", run.stdout, run.stderr);
    if engine == "record" {
        let reused = run.stderr.matches(REUSED).count();
        assert!(
            reused >= 5,
            "only {reused} copies reused their clients:\n{}",
            run.stderr
        );
    } else {
        let rounds: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("copying with the batch engine"))
            .filter_map(|l| l.split("producer_id=").nth(1))
            .collect();
        let mut producers = rounds.clone();
        producers.sort_unstable();
        producers.dedup();
        assert!(
            rounds.len() >= 10 && producers.len() <= 2,
            "{} copies with {} producer ids:\n{}",
            rounds.len(),
            producers.len(),
            run.stderr
        );
    }
    let run = cutover(&dir, &["--quiet", "1"]);
    assert_eq!(run.code, 0, "cutover:\n{}\n{}", run.stdout, run.stderr);
    let sides = assert_exact(&dir, (&src, &tgt), &topic, &[&group]);
    let copied: usize = sides.target.iter().map(Vec::len).sum();
    assert_eq!(copied as u64, want, "the backlog and every burst, once");
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
