//! `kmigrate completions` and `kmigrate man`: generated from the clap definitions, they must
//! run without a configuration file and name every command and every long flag. The list of
//! flags comes from clap itself, so a flag added later is checked without touching this test.

use std::path::PathBuf;
use std::process::{Command, Output};

use clap::CommandFactory;
use kmigrate::cli::Cli;

/// Runs the binary in an empty directory, with a configuration path that does not exist:
/// the documents must not look for one.
fn kmigrate(args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("kmigrate-cli-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the temporary directory");
    let missing: PathBuf = dir.join("no-such-config.toml");
    Command::new(env!("CARGO_BIN_EXE_kmigrate"))
        .args(args)
        .current_dir(&dir)
        .env("KMIGRATE_CONFIG", &missing)
        .env_remove("KMIGRATE_LOG")
        .output()
        .expect("run kmigrate")
}

/// Every command name, and per command the long flags it accepts (its own and the global
/// ones), as clap defines them.
fn commands_and_flags() -> Vec<(String, Vec<String>)> {
    let cli = Cli::command();
    let global: Vec<String> = cli
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    let subs: Vec<(String, Vec<String>)> = cli
        .get_subcommands()
        .map(|sub| {
            let mut flags: Vec<String> = sub
                .get_arguments()
                .filter_map(|a| a.get_long().map(str::to_owned))
                .collect();
            flags.extend(global.iter().cloned());
            (sub.get_name().to_owned(), flags)
        })
        .collect();
    let names: Vec<&str> = subs.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["plan", "run", "verify", "completions", "man"] {
        assert!(names.contains(&expected), "clap lacks command {expected}");
    }
    subs
}

fn stdout_of(args: &[&str]) -> String {
    let out = kmigrate(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "kmigrate {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn completions_name_every_command_and_flag() {
    let commands = commands_and_flags();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for (name, flags) in &commands {
            assert!(script.contains(name.as_str()), "{shell}: no command {name}");
            for flag in flags {
                // fish declares a long option as `-l NAME`; bash and zsh spell `--NAME`.
                let spelled = match shell {
                    "fish" => format!("-l {flag}"),
                    _ => format!("--{flag}"),
                };
                assert!(
                    script.contains(&spelled),
                    "{shell}: no {spelled} (command {name})"
                );
            }
        }
    }
}

#[test]
fn completions_refuse_an_unknown_shell() {
    let out = kmigrate(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_page_names_every_command_and_flag() {
    let page = stdout_of(&["man"]);
    assert!(
        page.lines().any(|l| l.starts_with(".TH kmigrate 1")),
        "not a man page:\n{page}"
    );
    // roff writes a hyphen that must stay a hyphen as `\-`.
    let text = page.replace("\\-", "-");
    for (name, flags) in commands_and_flags() {
        let heading = format!(".SH \"KMIGRATE {}\"", name.to_uppercase());
        assert!(text.contains(&heading), "no section {heading}");
        for flag in flags {
            assert!(text.contains(&format!("--{flag}")), "no --{flag} ({name})");
        }
    }
}
