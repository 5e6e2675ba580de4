//! The command line as an operator meets it: help text, exit codes, configuration errors.
//! None of these needs a cluster.

use crate::support::{kmigrate, kmigrate_raw, workdir};

#[test]
fn help_documents_every_command_and_exit_codes() {
    let dir = workdir("cli-help");
    let run = kmigrate_raw(&dir, &["--help"]);
    assert_eq!(run.code, 0);
    for word in [
        "plan",
        "run",
        "verify",
        "--config",
        "--source",
        "--target",
        "Exit codes",
    ] {
        assert!(
            run.stdout.contains(word),
            "--help lacks {word}:\n{}",
            run.stdout
        );
    }
    for cmd in ["plan", "run", "verify"] {
        let run = kmigrate_raw(&dir, &[cmd, "--help"]);
        assert_eq!(run.code, 0, "{cmd} --help");
        assert!(
            run.stdout.len() > 200,
            "{cmd} --help is too short:\n{}",
            run.stdout
        );
    }
}

/// Each bad configuration gives one paragraph naming the place, exit code 2, no panic.
#[test]
fn bad_configuration_is_exit_2_with_location() {
    let dir = workdir("cli-config");
    let cases = [
        (
            "[source]\nbootstap_servers = \"a:1\"\n",
            vec!["migrate.toml:2:1", "did you mean `bootstrap_servers`"],
        ),
        (
            "[source]\nbootstrap_servers = \"a:1\"\n[migration]\ncreate_topics = \"yes\"\n",
            vec!["migrate.toml:4:17", "migration.create_topics", "boolean"],
        ),
        (
            "[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n\"sasl.password\" = \"${KMIGRATE_TEST_UNSET_VAR}\"\n",
            vec!["KMIGRATE_TEST_UNSET_VAR", "not set"],
        ),
        ("[source\n", vec!["migrate.toml:1:"]),
    ];
    for (config, expected) in cases {
        let run = kmigrate(&dir, config, &["plan"]);
        assert_eq!(run.code, 2, "{config}\n{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        let first = run.stderr.trim_end();
        assert!(!first.contains('\n'), "one paragraph: {first}");
        for e in expected {
            assert!(first.contains(e), "{e:?} missing from: {first}");
        }
    }
}

#[test]
fn missing_named_config_file_is_exit_2() {
    let dir = workdir("cli-missing");
    let run = kmigrate_raw(&dir, &["--config", "nope.toml", "plan"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("nope.toml"), "{}", run.stderr);
}

#[test]
fn no_config_and_no_flags_says_what_to_do() {
    let dir = workdir("cli-noconfig");
    let run = kmigrate_raw(&dir, &["plan"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--source"), "{}", run.stderr);
    assert!(
        run.stderr.contains("migrate.example.toml"),
        "{}",
        run.stderr
    );
}

#[test]
fn same_cluster_as_source_and_target_is_refused() {
    let dir = workdir("cli-same");
    let run = kmigrate_raw(&dir, &["--source", "h:9092", "--target", "h:9092", "plan"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("same cluster"), "{}", run.stderr);
}

#[test]
fn invalid_librdkafka_property_is_exit_2() {
    let dir = workdir("cli-prop");
    let run = kmigrate(
        &dir,
        "[source]\nbootstrap_servers = \"127.0.0.1:1\"\n[source.properties]\n\"no.such.property\" = \"x\"\n\
         [target]\nbootstrap_servers = \"127.0.0.1:2\"\n",
        &["plan"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("[source.properties]"), "{}", run.stderr);
}

#[test]
fn unknown_command_is_exit_2() {
    let dir = workdir("cli-unknown");
    let run = kmigrate_raw(&dir, &["migrate"]);
    assert_eq!(run.code, 2);
}
