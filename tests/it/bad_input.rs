//! Bad configurations through the binary: each is refused before any work with exit code 2
//! and one paragraph that names the file, line and column (or the flag) and the fix.
//! Only the "patterns that match nothing" cases need the test bed.

use crate::support::{Cluster, Run, config_for, kmigrate, kmigrate_raw, unique, workdir};

/// Exit 2, one line on stderr that starts with "error:" and contains every `expected`
/// fragment, nothing on stdout, no panic.
fn assert_refused(what: &str, run: &Run, expected: &[&str]) {
    assert_eq!(
        run.code, 2,
        "{what}: exit {}\n{}\n{}",
        run.code, run.stdout, run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
    assert!(run.stdout.is_empty(), "{what}: stdout {}", run.stdout);
    let err = run.stderr.trim_end();
    assert!(
        err.starts_with("error: ") && !err.contains('\n'),
        "{what}: one paragraph expected:\n{err}"
    );
    for e in expected {
        assert!(err.contains(e), "{what}: {e:?} missing from:\n{err}");
    }
}

const CLUSTERS: &str = "[source]\nbootstrap_servers = \"127.0.0.1:1\"\n[target]\nbootstrap_servers = \"127.0.0.1:2\"\n";

#[test]
fn malformed_toml() {
    let dir = workdir("bad-toml");
    let run = kmigrate(&dir, "[source]\nbootstrap_servers = \"a:1\n", &["plan"]);
    assert_refused("unterminated string", &run, &["migrate.toml:2:"]);
    let run = kmigrate(&dir, "[source\n", &["plan"]);
    assert_refused("unterminated table header", &run, &["migrate.toml:1:"]);
}

#[test]
fn unknown_keys() {
    let dir = workdir("bad-key");
    let run = kmigrate(
        &dir,
        &format!("{CLUSTERS}[migration]\ncreate_topic = true\n"),
        &["plan"],
    );
    assert_refused(
        "unknown key",
        &run,
        &[
            "migrate.toml:6:1",
            "create_topic",
            "did you mean `create_topics`",
        ],
    );
    let run = kmigrate(
        &dir,
        &format!("{CLUSTERS}[migration]\nrescan = 5\n"),
        &["sync"],
    );
    assert_refused(
        "unknown key",
        &run,
        &["migrate.toml:6:1", "did you mean `rescan_secs`"],
    );
    let run = kmigrate(
        &dir,
        &format!("{CLUSTERS}[migration]\nrescan_secs = 0\n"),
        &["sync"],
    );
    assert_refused(
        "a rescan interval of 0",
        &run,
        &["`migration.rescan_secs` is 0", "at least 1"],
    );
    let run = kmigrate(&dir, &format!("{CLUSTERS}[filters]\n"), &["plan"]);
    assert_refused(
        "unknown table",
        &run,
        &["migrate.toml:5:", "did you mean `filter`"],
    );
}

#[test]
fn wrong_types() {
    let dir = workdir("bad-type");
    let cases = [
        (
            "[migration]\ntimeout_secs = \"ten\"\n",
            "migrate.toml:6:16 (`migration.timeout_secs`)",
        ),
        (
            "[migration]\nrescan_secs = \"often\"\n",
            "migrate.toml:6:15 (`migration.rescan_secs`)",
        ),
        (
            "[filter]\ngroups = \"orders\"\n",
            "migrate.toml:6:10 (`filter.groups`)",
        ),
        (
            "[migration]\nuncommitted_partitions = \"latest\"\n",
            "migrate.toml:6:26 (`migration.uncommitted_partitions`)",
        ),
        (
            "[source.properties]\n\"linger.ms\" = [1, 2]\n",
            "migrate.toml:6:15 (`source.properties.linger.ms`): a librdkafka property takes a string",
        ),
    ];
    for (extra, place) in cases {
        let run = kmigrate(&dir, &format!("{CLUSTERS}{extra}"), &["plan"]);
        assert_refused(extra, &run, &[place]);
    }
}

#[test]
fn empty_or_malformed_bootstrap() {
    let dir = workdir("bad-bootstrap");
    for (value, says) in [
        ("\"\"", "address is empty"),
        ("\"   \"", "address is empty"),
        ("\"broker1\"", "lacks a valid port"),
        ("\"a:1,,b:2\"", "lacks a valid port"),
    ] {
        let config = format!(
            "[source]\nbootstrap_servers = \"127.0.0.1:1\"\n[target]\nbootstrap_servers = {value}\n"
        );
        let run = kmigrate(&dir, &config, &["plan"]);
        assert_refused(
            value,
            &run,
            &["migrate.toml:4:1 (`target.bootstrap_servers`)", says],
        );
    }
    // Empty after ${VAR} expansion: the same error, at the same place.
    std::fs::write(
        dir.join("migrate.toml"),
        "[source]\nbootstrap_servers = \"${KMIGRATE_TEST_EMPTY_BOOTSTRAP}\"\n\
         [target]\nbootstrap_servers = \"127.0.0.1:2\"\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kmigrate"))
        .arg("plan")
        .current_dir(&dir)
        .env_remove("KMIGRATE_CONFIG")
        .env("KMIGRATE_TEST_EMPTY_BOOTSTRAP", "")
        .output()
        .expect("kmigrate");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_refused(
        "empty from ${VAR}",
        &run,
        &["migrate.toml:2:1 (`source.bootstrap_servers`)", "empty"],
    );
    // A flag is named as the place.
    let run = kmigrate_raw(&workdir("bad-flag"), &["--source", "nohost", "plan"]);
    assert_refused(
        "--source nohost",
        &run,
        &["`--source`", "lacks a valid port"],
    );
}

/// librdkafka's refusals, whether of the property name, its value, or what the value
/// points at (a missing CA file), are configuration errors at the property's line.
#[test]
fn invalid_librdkafka_property_or_value() {
    let dir = workdir("bad-prop");
    let cases = [
        (
            "\"no.such.property\" = \"x\"",
            "No such configuration property",
        ),
        (
            "\"security.protocol\" = \"SASL_FOO\"",
            "Invalid value \"SASL_FOO\"",
        ),
        ("\"linger.ms\" = \"soon\"", "Invalid value"),
        (
            "\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"/nonexistent/ca.pem\"",
            "ssl.ca.location failed",
        ),
        (
            "\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"FOO\"",
            "Unsupported SASL mechanism",
        ),
    ];
    for (props, says) in cases {
        let config = format!(
            "[source]\nbootstrap_servers = \"127.0.0.1:1\"\n[target]\nbootstrap_servers = \"127.0.0.1:2\"\n\
             [target.properties]\n# a comment\n{props}\n"
        );
        // The offending key is the last one written.
        let line = 6 + props.lines().count();
        let key = props
            .lines()
            .last()
            .and_then(|l| l.split('"').nth(1))
            .expect("key");
        let place = format!("migrate.toml:{line}:1 (`target.properties.\"{key}\"`)");
        let run = kmigrate(&dir, &config, &["plan"]);
        assert_refused(props, &run, &[&place, says, "[target.properties]"]);
    }
}

#[test]
fn missing_environment_variable() {
    let dir = workdir("bad-env");
    let run = kmigrate(
        &dir,
        &format!(
            "{CLUSTERS}[source.properties]\n\"sasl.password\" = \"${{KMIGRATE_TEST_NEVER_SET}}\"\n"
        ),
        &["plan"],
    );
    assert_refused(
        "unset ${VAR}",
        &run,
        &[
            "KMIGRATE_TEST_NEVER_SET",
            "source.properties.\"sasl.password\"",
        ],
    );
}

#[test]
fn same_cluster_as_source_and_target() {
    let dir = workdir("bad-same");
    let run = kmigrate(
        &dir,
        "[source]\nbootstrap_servers = \"localhost:9092, b:9092\"\n[target]\n\
         bootstrap_servers = \"127.0.0.1:9092\"\n",
        &["plan"],
    );
    assert_refused(
        "same cluster in the file",
        &run,
        &[
            "migrate.toml:4:1 (`target.bootstrap_servers`)",
            "same cluster",
            "duplicate",
        ],
    );
    let run = kmigrate_raw(&dir, &["--source", "h:1", "--target", "H:1", "plan"]);
    assert_refused(
        "same cluster by flags",
        &run,
        &["`--target`", "same cluster"],
    );
}

/// An include pattern that matches no group or no topic on the source: the pattern, its
/// place, and the names that come closest (the likely typo).
#[test]
fn patterns_that_match_nothing() {
    let topic = unique("bad-pattern-orders");
    let group = unique("bad-pattern-billing");
    let src = Cluster::source();
    src.create_topic(&topic, 1, &[]);
    src.produce_n(&topic, 0, 3, 1_700_000_000_000);
    src.commit(&group, &[(&topic, 0, 1)]);
    let dir = workdir("bad-pattern");

    // A typo in a group name.
    let typo = group.replace("billing", "biling");
    let run = kmigrate(&dir, &config_for(&[&typo], ""), &["plan"]);
    assert_refused(
        "group typo",
        &run,
        &[
            "migrate.toml:6:1 (`filter.groups`)",
            &format!("the pattern {typo:?} matches no consumer group on the source cluster"),
            &group,
        ],
    );

    // The group exists, the topic pattern has a typo.
    let topic_typo = format!("{}*", topic.replace("orders", "ordrs"));
    let run = kmigrate(
        &dir,
        &config_for(&[&group], &format!("topics = [{topic_typo:?}]\n")),
        &["plan"],
    );
    assert_refused(
        "topic typo",
        &run,
        &[
            "migrate.toml:7:1 (`filter.topics`)",
            &format!("the pattern {topic_typo:?} matches no topic"),
            &topic,
        ],
    );

    // Both right: the plan works.
    let run = kmigrate(
        &dir,
        &config_for(
            &[&group],
            &format!("topics = [{topic:?}]\n[migration]\ncreate_topics = true\n"),
        ),
        &["plan"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    src.delete_topic(&topic);
}
