//! A kmigrate process in the background, its state file, and the copy's progress on the
//! target, for the tests that interrupt a copy.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use super::{Cluster, Run, STATE, TIMEOUT, unique};

/// The state file in `dir`, parsed.
pub fn state_json(dir: &Path) -> Value {
    let bytes = std::fs::read(dir.join(STATE)).expect("the state file exists");
    serde_json::from_slice(&bytes).expect("the state file is JSON")
}

/// A kmigrate process running in the background, its output going to files in `dir`.
pub struct Bg {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

pub fn spawn(dir: &Path, args: &[&str]) -> Bg {
    spawn_logging(dir, args, "warn")
}

/// [`spawn`] with the given log level (`KMIGRATE_LOG`), for a test that watches its log
/// lines.
pub fn spawn_logging(dir: &Path, args: &[&str], log_level: &str) -> Bg {
    spawn_bin(
        Path::new(env!("CARGO_BIN_EXE_kmigrate")),
        dir,
        args,
        log_level,
    )
}

/// [`spawn_logging`] of another kmigrate binary (an earlier build, for the state file
/// fixtures).
pub fn spawn_bin(bin: &Path, dir: &Path, args: &[&str], log_level: &str) -> Bg {
    let tag = unique("bg");
    let (out, err) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("KMIGRATE_CONFIG")
        .env("KMIGRATE_LOG", log_level)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("starting kmigrate");
    Bg { child, out, err }
}

impl Bg {
    /// Exited already? (with its exit code; -1 for a signal)
    pub fn exited(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .expect("checking on kmigrate")
            .map(|s| s.code().unwrap_or(-1))
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// What it wrote so far: stdout, then stderr.
    pub fn output(&self) -> String {
        format!(
            "{}\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// Waits for the process to end, however long that takes.
    pub fn wait(mut self) -> Run {
        let status = self.child.wait().expect("waiting for kmigrate");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.err).unwrap_or_default(),
        }
    }

    /// Waits up to `limit` for the process to end; SIGKILL and panic if it does not (a hang).
    pub fn wait_within(mut self, limit: Duration) -> Run {
        let deadline = Instant::now() + limit;
        while self.exited().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "kmigrate did not end within {limit:?} (hang):\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait()
    }

    /// SIGKILL (what `Child::kill` sends on unix), then reap.
    pub fn kill9(mut self) -> Run {
        let _ = self.child.kill();
        self.wait_within(Duration::from_secs(10))
    }

    /// Sends a signal with kill(1), e.g. `"-INT"`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill {sig}: {e}"));
        assert!(status.success(), "kill {sig}");
    }
}

/// Waits until `cond` holds while `bg` still runs; panics (with its output) if it ends first.
pub fn while_running(bg: &mut Bg, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if cond() {
            return;
        }
        if let Some(code) = bg.exited() {
            panic!(
                "kmigrate ended (exit {code}) before {what}:\n{}",
                bg.output()
            );
        }
        assert!(Instant::now() < deadline, "never reached {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sums a target topic's high watermarks (as [`super::records::high`]) with one long-lived
/// client: polled every few milliseconds to pick the moment to interrupt a copy.
pub struct Progress {
    consumer: BaseConsumer,
    topic: String,
    partitions: i32,
}

impl Progress {
    pub fn new(c: &Cluster, topic: &str, partitions: i32) -> Progress {
        Progress {
            consumer: c
                .config()
                .set("socket.connection.setup.timeout.ms", "2000")
                .create()
                .expect("creating a watermark client"),
            topic: topic.to_string(),
            partitions,
        }
    }

    /// `None` when the cluster does not answer within a few seconds.
    pub fn try_total(&self) -> Option<i64> {
        let mut sum = 0;
        for p in 0..self.partitions {
            sum += self
                .consumer
                .fetch_watermarks(&self.topic, p, Duration::from_secs(3))
                .ok()?
                .1;
        }
        Some(sum)
    }

    pub fn total(&self) -> i64 {
        (0..self.partitions)
            .map(|p| {
                self.consumer
                    .fetch_watermarks(&self.topic, p, TIMEOUT)
                    .unwrap_or_else(|e| panic!("watermarks of {}/{p}: {e}", self.topic))
                    .1
            })
            .sum()
    }
}
