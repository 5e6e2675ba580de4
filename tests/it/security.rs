//! kmigrate over the test bed's secure listeners: SASL/SCRAM-SHA-512 (SASL_PLAINTEXT),
//! SASL/PLAIN over TLS (SASL_SSL) and mutual TLS (SSL with a client certificate and key),
//! each on the source and on the target. Credentials reach kmigrate only through `${VAR}`
//! references in the configuration. After every command, stdout, stderr and every file in
//! the working directory (configuration, log, plan, state) are searched for every secret.
//!
//! The listeners, CA, client certificate and passwords come from `scripts/testbed env`
//! (`KMIGRATE_TEST_SOURCE_SCRAM`, `KMIGRATE_TEST_SCRAM_PASSWORD`, ...). With
//! `KMIGRATE_TESTBED=external` and no such variables (docker compose has no secure
//! listeners) these tests say so and pass without running.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Cluster, Rec, Run, TS, kmigrate_env, unique, workdir};

/// The environment variables the configurations refer to. Deliberately not the test
/// bed's names: the value kmigrate gets is the one each test passes.
const SCRAM_PW: &str = "KMSEC_SCRAM_PASSWORD";
const PLAIN_PW: &str = "KMSEC_PLAIN_PASSWORD";
const CLIENT_KEY: &str = "KMSEC_CLIENT_KEY_PEM";

/// The secure side of the test bed.
struct Secure {
    source: Listeners,
    target: Listeners,
    user: String,
    scram_password: String,
    plain_password: String,
    ca: String,
    client_cert: String,
    client_key_pem: String,
}

struct Listeners {
    scram: String,
    sasl_ssl: String,
    ssl: String,
}

fn secure() -> Option<Secure> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let names = [
        "KMIGRATE_TEST_SOURCE_SCRAM",
        "KMIGRATE_TEST_SOURCE_SASL_SSL",
        "KMIGRATE_TEST_SOURCE_SSL",
        "KMIGRATE_TEST_TARGET_SCRAM",
        "KMIGRATE_TEST_TARGET_SASL_SSL",
        "KMIGRATE_TEST_TARGET_SSL",
        "KMIGRATE_TEST_SASL_USER",
        "KMIGRATE_TEST_SCRAM_PASSWORD",
        "KMIGRATE_TEST_PLAIN_PASSWORD",
        "KMIGRATE_TEST_CA",
        "KMIGRATE_TEST_CLIENT_CERT",
        "KMIGRATE_TEST_CLIENT_KEY",
    ];
    let missing: Vec<&str> = names.iter().copied().filter(|n| var(n).is_none()).collect();
    if !missing.is_empty() {
        if std::env::var("KMIGRATE_TESTBED").as_deref() == Ok("external") {
            eprintln!(
                "skipped: KMIGRATE_TESTBED=external provides no secure listeners ({} unset)",
                missing.join(", ")
            );
            return None;
        }
        panic!(
            "\n\nThe security tests need the test bed's secure listeners and credentials: {} \
             unset. Run `scripts/testbed up` and `eval \"$(scripts/testbed env)\"` first.\n\n",
            missing.join(", ")
        );
    }
    let v = |n: &str| var(n).expect("checked above");
    let key_path = v("KMIGRATE_TEST_CLIENT_KEY");
    let client_key_pem = std::fs::read_to_string(&key_path)
        .unwrap_or_else(|e| panic!("reading the test client key {key_path}: {e}"));
    Some(Secure {
        source: Listeners {
            scram: v("KMIGRATE_TEST_SOURCE_SCRAM"),
            sasl_ssl: v("KMIGRATE_TEST_SOURCE_SASL_SSL"),
            ssl: v("KMIGRATE_TEST_SOURCE_SSL"),
        },
        target: Listeners {
            scram: v("KMIGRATE_TEST_TARGET_SCRAM"),
            sasl_ssl: v("KMIGRATE_TEST_TARGET_SASL_SSL"),
            ssl: v("KMIGRATE_TEST_TARGET_SSL"),
        },
        user: v("KMIGRATE_TEST_SASL_USER"),
        scram_password: v("KMIGRATE_TEST_SCRAM_PASSWORD"),
        plain_password: v("KMIGRATE_TEST_PLAIN_PASSWORD"),
        ca: v("KMIGRATE_TEST_CA"),
        client_cert: v("KMIGRATE_TEST_CLIENT_CERT"),
        client_key_pem,
    })
}

/// How kmigrate authenticates to one cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mech {
    /// SASL_PLAINTEXT with SCRAM-SHA-512.
    Scram,
    /// SASL_SSL with PLAIN, the broker verified against the test CA.
    PlainTls,
    /// SASL_SSL with SCRAM-SHA-512, the broker verified against the test CA; the broker
    /// ends its sessions after 3 s, so clients re-authenticate (KIP-368).
    ScramTls,
    /// SSL with a client certificate; the key is a PEM string from the environment.
    MutualTls,
    /// SSL without a client certificate: the broker refuses the handshake.
    TlsWithoutCertificate,
}

impl Secure {
    /// The `[side]` and `[side.properties]` tables for a mechanism. Every secret is a
    /// `${VAR}` reference.
    fn cluster_toml(&self, side: &str, mech: Mech) -> String {
        let l = if side == "source" {
            &self.source
        } else {
            &self.target
        };
        let (bootstrap, props) = match mech {
            Mech::Scram => (
                &l.scram,
                format!(
                    "\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
                     \"sasl.username\" = {:?}\n\"sasl.password\" = \"${{{SCRAM_PW}}}\"\n",
                    self.user
                ),
            ),
            Mech::PlainTls => (
                &l.sasl_ssl,
                format!(
                    "\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"PLAIN\"\n\
                     \"sasl.username\" = {:?}\n\"sasl.password\" = \"${{{PLAIN_PW}}}\"\n\
                     \"ssl.ca.location\" = {:?}\n",
                    self.user, self.ca
                ),
            ),
            Mech::ScramTls => (
                &l.sasl_ssl,
                format!(
                    "\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
                     \"sasl.username\" = {:?}\n\"sasl.password\" = \"${{{SCRAM_PW}}}\"\n\
                     \"ssl.ca.location\" = {:?}\n",
                    self.user, self.ca
                ),
            ),
            Mech::MutualTls => (
                &l.ssl,
                format!(
                    "\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = {:?}\n\
                     \"ssl.certificate.location\" = {:?}\n\"ssl.key.pem\" = \"${{{CLIENT_KEY}}}\"\n",
                    self.ca, self.client_cert
                ),
            ),
            Mech::TlsWithoutCertificate => (
                &l.ssl,
                format!(
                    "\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = {:?}\n",
                    self.ca
                ),
            ),
        };
        format!("[{side}]\nbootstrap_servers = {bootstrap:?}\n[{side}.properties]\n{props}")
    }

    /// A whole configuration: `source` over one mechanism, `target` over another, only the
    /// groups matching `groups`, a log file and topic creation on.
    fn config(&self, source: Mech, target: Mech, groups: &str, extra: &str) -> String {
        format!(
            "{}{}[filter]\ngroups = [{groups:?}]\n[migration]\nlog_file = \"kmigrate.log\"\n\
             create_topics = true\n{extra}",
            self.cluster_toml("source", source),
            self.cluster_toml("target", target)
        )
    }

    /// The environment kmigrate gets: the real secrets.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (SCRAM_PW, self.scram_password.clone()),
            (PLAIN_PW, self.plain_password.clone()),
            (CLIENT_KEY, self.client_key_pem.clone()),
        ]
    }

    /// Every secret value, and every line of the key's base64 body on its own (a key
    /// printed in pieces is leaked too).
    fn secrets(&self) -> Vec<String> {
        let mut s = vec![
            self.scram_password.clone(),
            self.plain_password.clone(),
            self.client_key_pem.trim().to_string(),
        ];
        s.extend(
            self.client_key_pem
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                .map(str::to_string),
        );
        s
    }
}

/// Runs kmigrate in `dir` with debug logging (the most that could leak) and the given
/// environment.
fn run(dir: &Path, args: &[&str], env: &[(&'static str, String)]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    kmigrate_env(dir, args, &env, "debug")
}

/// No secret in the command's stdout and stderr, nor in any file of its working
/// directory (configuration, log file, plan, state file, temporary files).
fn assert_no_secrets(what: &str, dir: &Path, out: &Run, secrets: &[String]) {
    let mut places = vec![
        ("stdout".to_string(), out.stdout.clone()),
        ("stderr".to_string(), out.stderr.clone()),
    ];
    for entry in std::fs::read_dir(dir).expect("listing the test directory") {
        let path = entry.expect("directory entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("reading an output file");
            places.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    for (place, text) in &places {
        for secret in secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what}: a secret ({} characters, starting {:?}) appears in {place}",
                secret.len(),
                &secret[..4.min(secret.len())]
            );
        }
    }
}

/// The files kmigrate wrote are readable by their owner only.
fn assert_private(what: &str, dir: &Path, files: &[&str]) {
    for f in files {
        let path = dir.join(f);
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{what}: {} was not written: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(
            mode,
            0o600,
            "{what}: {} has mode {mode:04o}",
            path.display()
        );
    }
}

fn write_config(dir: &Path, text: &str, mode: u32) {
    let path = dir.join("migrate.toml");
    std::fs::write(&path, text).expect("writing migrate.toml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A topic of two partitions on the source with two groups: `-behind` committed at 3 and
/// 2, `-ahead` at 8 and at the end (6). Returns (topic, group prefix, records per partition).
fn seed(name: &str) -> (String, String, Vec<Vec<Rec>>) {
    seed_with_bulk(name, 0)
}

/// [`seed`] with `bulk` records of 8 KiB more in partition 1, after the groups' commits.
fn seed_with_bulk(name: &str, bulk: usize) -> (String, String, Vec<Vec<Rec>>) {
    let topic = unique(name);
    let prefix = unique(&format!("{name}-g"));
    let src = Cluster::source();
    src.create_topic(&topic, 2, &[]);
    let mut p0: Vec<Rec> = (0..10)
        .map(|i| Rec::kv(0, &format!("k{i}"), &format!("secure-{i}"), TS + i))
        .collect();
    p0[4].headers = vec![
        ("trace".to_string(), Some(b"abc".to_vec())),
        ("empty".to_string(), None),
    ];
    p0[5].key = None;
    let p1: Vec<Rec> = (0..6)
        .map(|i| Rec::kv(1, &format!("q{i}"), &format!("one-{i}"), TS + 100 + i))
        .collect();
    src.produce(&topic, &p0);
    src.produce(&topic, &p1);
    src.commit(
        &format!("{prefix}-behind"),
        &[(&topic, 0, 3), (&topic, 1, 2)],
    );
    src.commit(
        &format!("{prefix}-ahead"),
        &[(&topic, 0, 8), (&topic, 1, 6)],
    );
    let big: Vec<Rec> = (0..bulk as i64)
        .map(|i| {
            let value = format!("{i:08}").repeat(1024);
            Rec::kv(1, &format!("b{i}"), &value, TS + 200 + i)
        })
        .collect();
    src.produce(&topic, &big);
    let mut p1 = p1;
    p1.extend(big);
    (topic, prefix, vec![p0, p1])
}

/// plan, run and verify with the source over one mechanism and the target over another:
/// exact records on the target, translated group offsets, no secret anywhere, private files.
fn migrate_over(name: &str, source: Mech, target: Mech) {
    migrate_over_with(name, source, target, 0, "");
}

/// [`migrate_over`] with `bulk` records of 8 KiB more to copy and `extra` lines in
/// `[migration]`; returns the run's log.
fn migrate_over_with(name: &str, source: Mech, target: Mech, bulk: usize, extra: &str) -> String {
    let Some(sec) = secure() else {
        return String::new();
    };
    let (topic, prefix, recs) = seed_with_bulk(name, bulk);
    let dir = workdir(name);
    write_config(
        &dir,
        &sec.config(source, target, &format!("{prefix}-*"), extra),
        0o600,
    );
    let env = sec.env();
    let secrets = sec.secrets();
    let what = format!("{source:?} -> {target:?}");

    let plan = run(
        &dir,
        &["plan", "--format", "json", "--out", "plan.json"],
        &env,
    );
    assert_eq!(plan.code, 0, "{what} plan:\n{}", plan.stderr);
    assert_no_secrets(&format!("{what} plan"), &dir, &plan, &secrets);
    let json = plan.json();
    assert_eq!(json["totals"]["messages"], 7 + 4 + bulk, "{what}: {json}");
    assert_eq!(json["source"], sec.source_bootstrap(source));
    assert_private(
        &format!("{what} plan"),
        &dir,
        &["plan.json", "kmigrate.log"],
    );

    let copy = run(&dir, &["run", "--plan", "plan.json", "--yes"], &env);
    assert_eq!(
        copy.code, 0,
        "{what} run:\n{}\n{}",
        copy.stdout, copy.stderr
    );
    assert_no_secrets(&format!("{what} run"), &dir, &copy, &secrets);
    assert_private(
        &format!("{what} run"),
        &dir,
        &["plan.json", "kmigrate.log", "kmigrate-state.json"],
    );

    let verify = run(&dir, &["verify"], &env);
    assert_eq!(
        verify.code, 0,
        "{what} verify:\n{}\n{}",
        verify.stdout, verify.stderr
    );
    assert!(verify.stdout.contains("VERIFIED"), "{}", verify.stdout);
    assert_no_secrets(&format!("{what} verify"), &dir, &verify, &secrets);
    assert_private(
        &format!("{what} verify"),
        &dir,
        &["plan.json", "kmigrate.log", "kmigrate-state.json"],
    );

    // Exactly the backlog, from the smallest commit on, in order, with keys, values,
    // headers and timestamps.
    let tgt = Cluster::target();
    assert_eq!(tgt.read_records(&topic, 0), recs[0][3..].to_vec(), "{what}");
    assert_eq!(tgt.read_records(&topic, 1), recs[1][2..].to_vec(), "{what}");
    // Each group resumes where it stopped: behind at the first copied record, ahead 5
    // and 4 records later (source 8 and 6, the copy starting at 3 and 2).
    let parts = [(topic.as_str(), 0), (topic.as_str(), 1)];
    assert_eq!(
        tgt.committed(&format!("{prefix}-behind"), &parts),
        vec![Some(0), Some(0)],
        "{what}"
    );
    assert_eq!(
        tgt.committed(&format!("{prefix}-ahead"), &parts),
        vec![Some(5), Some(4)],
        "{what}"
    );
    Cluster::source().delete_topic(&topic);
    tgt.delete_topic(&topic);
    let log = std::fs::read_to_string(dir.join("kmigrate.log")).unwrap_or_default();
    format!("{}{log}", copy.stderr)
}

impl Secure {
    fn source_bootstrap(&self, mech: Mech) -> String {
        match mech {
            Mech::Scram => self.source.scram.clone(),
            Mech::PlainTls | Mech::ScramTls => self.source.sasl_ssl.clone(),
            Mech::MutualTls | Mech::TlsWithoutCertificate => self.source.ssl.clone(),
        }
    }
}

// Each mechanism is used on the source once and on the target once.

#[test]
fn scram_source_to_plain_over_tls_target() {
    migrate_over("sec-scram-plain", Mech::Scram, Mech::PlainTls);
}

#[test]
fn plain_over_tls_source_to_mutual_tls_target() {
    migrate_over("sec-plain-mtls", Mech::PlainTls, Mech::MutualTls);
}

#[test]
fn mutual_tls_source_to_scram_target() {
    migrate_over("sec-mtls-scram", Mech::MutualTls, Mech::Scram);
}

/// The batch engine's own connections over SCRAM-SHA-512 and TLS on both sides, with a
/// copy throttled to last about 4 s while the brokers end every session after 3 s: the
/// connections re-authenticate mid-copy (the broker would close them otherwise) and the
/// copy is exact.
#[test]
fn batch_engine_over_scram_and_tls_reauthenticates_mid_copy() {
    let log = migrate_over_with(
        "sec-scram-tls-batch",
        Mech::ScramTls,
        Mech::ScramTls,
        300,
        "engine = \"batch\"\nmax_bytes_per_second = 600000\n",
    );
    if log.is_empty() {
        return;
    }
    assert!(
        log.contains("copying with the batch engine"),
        "the batch engine did not copy:\n{log}"
    );
    assert!(
        log.contains("re-authenticated (SCRAM-SHA-512)"),
        "no connection re-authenticated:\n{log}"
    );
}

/// A wrong password or a missing client certificate is an authentication error naming the
/// cluster and where to fix it, at once (the timeout is 30 s), exit 3; the wrong password
/// is not printed either.
#[test]
fn refused_credentials_fail_fast_with_an_authentication_error() {
    let Some(sec) = secure() else { return };
    let wrong = unique("wrong-password");
    let cases = [
        ("source", Mech::Scram, Mech::PlainTls, SCRAM_PW),
        ("target", Mech::Scram, Mech::PlainTls, PLAIN_PW),
        ("source", Mech::PlainTls, Mech::Scram, PLAIN_PW),
        ("target", Mech::PlainTls, Mech::Scram, SCRAM_PW),
        ("source", Mech::TlsWithoutCertificate, Mech::Scram, ""),
        ("target", Mech::Scram, Mech::TlsWithoutCertificate, ""),
    ];
    let mut secrets = sec.secrets();
    secrets.push(wrong.clone());
    for (side, source, target, bad_var) in cases {
        let what = format!("{source:?} -> {target:?}, refused on the {side}");
        let dir = workdir("sec-refused");
        // The pattern matches no group: authentication fails before it matters.
        write_config(&dir, &sec.config(source, target, "*", ""), 0o600);
        let env: Vec<(&'static str, String)> = sec
            .env()
            .into_iter()
            .map(|(k, v)| {
                if k == bad_var {
                    (k, wrong.clone())
                } else {
                    (k, v)
                }
            })
            .collect();
        for args in [&["plan"][..], &["run", "--yes"][..]] {
            let t0 = Instant::now();
            let out = run(&dir, args, &env);
            let took = t0.elapsed();
            eprintln!("{what}: {args:?} exit {} after {took:?}", out.code);
            assert_eq!(out.code, 3, "{what} {args:?}:\n{}", out.stderr);
            let err = out
                .stderr
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or_else(|| panic!("{what}: no error line in:\n{}", out.stderr));
            assert!(
                err.contains(&format!("authentication to the {side} cluster"))
                    && err.contains(&format!("[{side}.properties]")),
                "{what}: {err}"
            );
            assert!(
                took < Duration::from_secs(10),
                "{what}: took {took:?}, the timeout is 30 s: {err}"
            );
            assert_no_secrets(&what, &dir, &out, &secrets);
            assert!(!dir.join("kmigrate-state.json").exists(), "{what}");
        }
    }
}

/// A configuration file that others can read and that holds a password written in it
/// works, with a warning naming the file and the key, never the value; `chmod 600`
/// silences it, and `${VAR}` references never warn.
#[test]
fn readable_config_with_a_written_password_warns() {
    let Some(sec) = secure() else { return };
    let (topic, prefix, _) = seed("sec-perm");
    let dir = workdir("sec-perm");
    let groups = format!("{prefix}-*");
    let literal = sec
        .config(Mech::Scram, Mech::PlainTls, &groups, "")
        .replace(&format!("${{{PLAIN_PW}}}"), &sec.plain_password);
    assert!(literal.contains(&sec.plain_password));
    let env = sec.env();
    let key = "target.properties.\"sasl.password\"";

    write_config(&dir, &literal, 0o644);
    let out = run(&dir, &["plan"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let warning = out
        .stderr
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("chmod 600"))
        .unwrap_or_else(|| panic!("no warning in:\n{}", out.stderr));
    assert!(
        warning.contains("migrate.toml") && warning.contains(key),
        "{warning}"
    );
    assert!(!out.stderr.contains(&sec.plain_password), "{}", out.stderr);
    assert!(!out.stdout.contains(&sec.plain_password));

    write_config(&dir, &literal, 0o600);
    let out = run(&dir, &["plan"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("chmod"), "{}", out.stderr);

    write_config(
        &dir,
        &sec.config(Mech::Scram, Mech::PlainTls, &groups, ""),
        0o644,
    );
    let out = run(&dir, &["plan"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("chmod"), "{}", out.stderr);
    Cluster::source().delete_topic(&topic);
}
