//! The test bed's own brokers stopped, against the real test bed: a broker stopped for 20 s
//! mid-copy (on each side), and clusters unreachable at start (wrong ports, then each broker
//! stopped). After each, the target is checked record by record (key, value, headers,
//! timestamp, partition, order) and every group's translated offset exactly: nothing lost,
//! nothing duplicated.
//!
//! A test that stops a broker (`scripts/testbed stop|start`) holds the binary's outage lock
//! ([`crate::outage_lock`]), so no other test of this binary runs during its outage, and
//! restarts the broker from a guard's `Drop`, so a failing test leaves the test bed up.
//! Stopping brokers needs the local test bed (not `KMIGRATE_TESTBED=external`): without it
//! these tests are skipped, saying so. The 20 s outages take about a minute each: they are
//! `#[ignore]`d, and `KMIGRATE_FAULT_TESTS=long scripts/test` (CI) runs them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::outage_lock;
use crate::support::bed::{assert_exact, cleanup, exists, setup};
use crate::support::process::{Progress, spawn, state_json, while_running};
use crate::support::{self, Cluster, STATE, TS, config_for, kmigrate, unique, workdir};

// ---------------------------------------------------------------------------------------
// Broker outages: always undone.

fn testbed(args: &[&str]) -> std::process::Output {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running scripts/testbed {args:?}: {e}"))
}

/// Whether this run may stop and start the test bed's brokers; says why not when it may not.
fn can_stop_brokers(test: &str) -> bool {
    if std::env::var("KMIGRATE_TESTBED").as_deref() == Ok("external") {
        eprintln!(
            "SKIPPED {test}: KMIGRATE_TESTBED=external, the clusters are managed elsewhere and \
             scripts/testbed cannot stop and start them"
        );
        return false;
    }
    // The test bed scripts/testbed manages must be the one the tests talk to (same
    // KMIGRATE_CACHE), or stopping "the target" would stop nothing the test sees.
    let env = String::from_utf8_lossy(&testbed(&["env"]).stdout).into_owned();
    let (s, t) = (support::source_bootstrap(), support::target_bootstrap());
    assert!(
        env.contains(&format!("KMIGRATE_TEST_SOURCE={s}\n"))
            && env.contains(&format!("KMIGRATE_TEST_TARGET={t}\n")),
        "scripts/testbed manages other clusters than the tests use ({s}, {t}):\n{env}\
         export the same KMIGRATE_CACHE (and ports) as when the test bed was started"
    );
    true
}

/// A stopped broker, started again when this is dropped (also when the test panics).
struct Outage {
    cluster: &'static str,
    up: bool,
}

impl Outage {
    fn stop(cluster: &'static str) -> Outage {
        let out = testbed(&["stop", cluster]);
        assert!(
            out.status.success(),
            "scripts/testbed stop {cluster}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Outage { cluster, up: false }
    }

    fn start(&mut self) {
        if self.up {
            return;
        }
        self.up = true;
        let out = testbed(&["start", self.cluster]);
        assert!(
            out.status.success(),
            "scripts/testbed start {}: {}",
            self.cluster,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if !self.up {
            self.up = true;
            let out = testbed(&["start", self.cluster]);
            if !out.status.success() {
                eprintln!(
                    "could not start the {} broker again: {}",
                    self.cluster,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
// ---------------------------------------------------------------------------------------
// Tests.

/// A broker stopped for 20 s while a copy runs, then started again. kmigrate either rides it
/// out or stops with exit 3, a message naming the cluster, and a state that resumes; after
/// the (possibly resumed) run, verify passes and the copy and the groups are exact.
fn broker_down_20s_mid_copy(cluster: &'static str) {
    const PARTS: i32 = 3;
    const PER: usize = 20_000;
    let g1 = unique("f-down-g1");
    let g2 = unique("f-down-g2");
    let commits: [(&str, &[i64]); 2] = [(&g1, &[0, 10, 100]), (&g2, &[7, 10, 19_000])];
    let topic = setup(&format!("f-down-{cluster}"), PARTS, PER, &commits);
    let total: i64 = (PER as i64) * 3 - 110;
    let dir = workdir("f-down");
    let config = config_for(&[&g1, &g2], "[migration]\nmax_bytes_per_second = 1000000\n");
    std::fs::write(dir.join("migrate.toml"), &config).expect("config");
    let progress = Progress::new(&Cluster::target(), &topic, PARTS);

    // The copy takes about 13 s at this rate; a broker takes a few seconds to shut down.
    let mut bg = spawn(&dir, &["run", "--yes"]);
    while_running(&mut bg, "a sixth of the records on the target", || {
        progress.total() >= total / 6
    });
    let t0 = Instant::now();
    let mut outage = Outage::stop(cluster);
    // The outage must come mid-copy: with the source down, the target shows how far the
    // copy got; with the target down, kmigrate cannot have finished.
    let copied = (cluster == "source").then(|| progress.total());
    eprintln!(
        "{cluster} stopped in {:?} ({:?} of {total} records on the target)",
        t0.elapsed(),
        copied
    );
    assert!(
        copied.is_none_or(|c| c < total),
        "the copy was over before the {cluster} stopped"
    );
    assert_ne!(
        bg.exited(),
        Some(0),
        "kmigrate completed before the outage:\n{}",
        bg.output()
    );
    std::thread::sleep(Duration::from_secs(20).saturating_sub(t0.elapsed()));
    let during = bg.exited();
    outage.start();
    eprintln!(
        "{cluster} answering again after {:?} (kmigrate {})",
        t0.elapsed(),
        match during {
            Some(code) => format!("exited {code} during the outage"),
            None => "still running".into(),
        }
    );
    let first = bg.wait_within(Duration::from_secs(240));
    match first.code {
        0 => eprintln!("kmigrate rode the outage out"),
        3 => {
            eprintln!("kmigrate stopped: {}", first.stderr.trim());
            assert!(
                first.stderr.contains(&format!("{cluster} cluster"))
                    || first.stderr.contains("written twice"),
                "the error names the {cluster} cluster or the records written twice:\n{}",
                first.stderr
            );
            assert!(
                first.stderr.contains("kmigrate run"),
                "says how to go on:\n{}",
                first.stderr
            );
            let state = state_json(&dir);
            assert_eq!(state["phase"], "copying", "{state}");
            let run = kmigrate(&dir, &config, &["run", "--yes"]);
            assert!(
                !run.stderr.contains("is not source record"),
                "the producer wrote records twice across the {cluster} broker's restart \
                 (librdkafka's idempotent producer retried a batch under a new epoch, see \
                 confluentinc/librdkafka#4953); kmigrate detected it and stopped without \
                 losing a record, but the target is not an exact copy:\n{}",
                run.stderr
            );
            assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
            assert!(run.stderr.contains("resuming"), "{}", run.stderr);
        }
        code => panic!(
            "kmigrate exit {code} after a {cluster} outage:\n{}\n{}",
            first.stdout, first.stderr
        ),
    }
    assert_exact(&dir, &topic, PER, &commits);
    cleanup(&topic);
}

#[test]
#[ignore = "long fault test (stops a broker): KMIGRATE_FAULT_TESTS=long scripts/test runs it"]
fn target_broker_down_20s_mid_copy() {
    let name = "target_broker_down_20s_mid_copy";
    if !can_stop_brokers(name) {
        return;
    }
    let _alone = outage_lock();
    broker_down_20s_mid_copy("target");
}

#[test]
#[ignore = "long fault test (stops a broker): KMIGRATE_FAULT_TESTS=long scripts/test runs it"]
fn source_broker_down_20s_mid_copy() {
    let name = "source_broker_down_20s_mid_copy";
    if !can_stop_brokers(name) {
        return;
    }
    let _alone = outage_lock();
    broker_down_20s_mid_copy("source");
}

/// A port nothing listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let addr = l.local_addr().expect("local address");
    drop(l);
    addr.to_string()
}

/// `kmigrate run` against an unreachable cluster: exit 3 within the timeout, an error
/// naming the cluster and the fix, nothing on the target, no state file.
fn assert_unreachable(
    what: &str,
    dir: &Path,
    config: &str,
    role: &str,
    bootstrap: &str,
    topic: &str,
) {
    let t0 = Instant::now();
    let run = kmigrate(dir, config, &["run", "--yes"]);
    let took = t0.elapsed();
    eprintln!(
        "{what}: exit {} in {took:?}: {}",
        run.code,
        run.stderr.trim()
    );
    assert_eq!(run.code, 3, "{what}:\n{}\n{}", run.stdout, run.stderr);
    // timeout_secs = 5; process start and the answering cluster's requests on top.
    assert!(took < Duration::from_secs(5 + 3), "{what}: took {took:?}");
    assert!(
        run.stderr.contains(&format!("{role} cluster {bootstrap}"))
            && run
                .stderr
                .contains(&format!("bootstrap_servers in [{role}]")),
        "{what}: the error names the {role} cluster and the fix:\n{}",
        run.stderr
    );
    assert!(!dir.join(STATE).exists(), "{what}: no state file");
    if role == "source" {
        assert!(
            !exists(&Cluster::target(), topic),
            "{what}: no topic created on the target"
        );
    }
}

#[test]
fn unreachable_cluster_at_start_fails_within_timeout_with_exit_3() {
    // Wrong bootstrap ports (nothing listens) for either side, and each real broker
    // stopped. create_topics = true: a run that got far enough would create the topic on
    // the target, so its absence proves nothing was written there.
    let _alone = outage_lock();
    let topic = unique("f-unreach");
    let g = unique("f-unreach-g");
    let src = Cluster::source();
    src.create_topic(&topic, 2, &[]);
    src.produce_n(&topic, 0, 10, TS);
    src.produce_n(&topic, 1, 10, TS);
    src.commit(&g, &[(&topic, 0, 2), (&topic, 1, 0)]);
    let dir = workdir("f-unreach");
    let migration = "[migration]\ntimeout_secs = 5\ncreate_topics = true\n";
    let good = config_for(&[&g], migration);
    let (s, t) = (support::source_bootstrap(), support::target_bootstrap());

    let wrong = closed_port();
    let config = good.replace(&format!("{s:?}"), &format!("{wrong:?}"));
    assert_unreachable("wrong source port", &dir, &config, "source", &wrong, &topic);
    let config = good.replace(&format!("{t:?}"), &format!("{wrong:?}"));
    assert_unreachable("wrong target port", &dir, &config, "target", &wrong, &topic);

    let name = "unreachable_cluster_at_start (stopped brokers)";
    if can_stop_brokers(name) {
        for (role, bootstrap) in [("source", &s), ("target", &t)] {
            let mut outage = Outage::stop(role);
            assert_unreachable(
                &format!("{role} broker stopped"),
                &dir,
                &good,
                role,
                bootstrap,
                &topic,
            );
            outage.start();
            assert!(
                !exists(&Cluster::target(), &topic),
                "{role} broker stopped: no topic created on the target"
            );
        }
    }
    // The same configuration works once both answer.
    let run = kmigrate(&dir, &good, &["run", "--yes"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_exact(&dir, &topic, 10, &[(&g, &[2, 0])]);
    cleanup(&topic);
}
