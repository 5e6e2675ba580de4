//! Replays the committed fuzz corpus (`fuzz/corpus/`) through the same parsers the fuzz
//! targets exercise, so every input that once crashed or that seeds the fuzzer stays covered
//! by `cargo test` without a nightly toolchain. No Kafka needed.

use std::path::{Path, PathBuf};

use kmigrate::copy::resume::resume;
use kmigrate::error::{ExitKind, exit_kind};
use kmigrate::ledger::State;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

fn is_usage(e: &anyhow::Error) -> bool {
    exit_kind(e) == ExitKind::Usage
}

#[test]
fn config_corpus_parses_or_is_a_usage_error() {
    let env = |name: &str| (name == "KAFKA_PASSWORD").then(|| "s3cret".to_string());
    for f in corpus("config") {
        let Ok(text) = String::from_utf8(std::fs::read(&f).expect("read")) else {
            continue;
        };
        if let Err(e) = kmigrate::config::parse(&text, "fuzz.toml", &env) {
            assert!(is_usage(&e), "{}: {e:#}", f.display());
        }
    }
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config/example.toml"),
    )
    .expect("read example");
    kmigrate::config::parse(&example, "example.toml", &env).expect("the example config parses");
}

#[test]
fn plan_corpus_parses_or_is_a_usage_error() {
    for f in corpus("plan") {
        let bytes = std::fs::read(&f).expect("read");
        match kmigrate::plan::parse_plan(&bytes, "plan.json") {
            Ok(plan) => assert!(plan.check().is_ok()),
            Err(e) => assert!(is_usage(&e), "{}: {e:#}", f.display()),
        }
    }
    let demo =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/plan/demo.json"))
            .expect("read demo plan");
    kmigrate::plan::parse_plan(&demo, "demo.json").expect("the demo plan parses");
}

#[test]
fn state_corpus_parses_or_is_a_usage_error() {
    for f in corpus("state") {
        let bytes = std::fs::read(&f).expect("read");
        match State::parse(&bytes, "state.json") {
            Ok(state) => {
                for p in &state.partitions {
                    for high in [0, p.start, p.end, i64::MAX] {
                        let _ = resume(p.start, p.end, &p.progress, high);
                    }
                }
            }
            Err(e) => assert!(is_usage(&e), "{}: {e:#}", f.display()),
        }
    }
    let demo =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/state/demo.json"))
            .expect("read demo state");
    State::parse(&demo, "demo.json").expect("the demo state parses");
}

#[test]
fn inconsistent_plans_and_states_are_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("fuzz/corpus/plan/demo.json")).unwrap())
            .unwrap();
    // start after end
    let mut bad = plan.clone();
    let p = bad["partitions"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["status"] == "migrate")
        .expect("a migrated partition");
    p["start"] = serde_json::json!(p["end"].as_i64().unwrap() + 5);
    let e = kmigrate::plan::parse_plan(&serde_json::to_vec(&bad).unwrap(), "bad.json")
        .expect_err("refused");
    assert!(is_usage(&e));
    assert!(format!("{e:#}").contains("out of order"), "{e:#}");

    // a state whose progress claims more records than the range holds
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("fuzz/corpus/state/demo.json")).unwrap())
            .unwrap();
    state["partitions"][0]["progress"]["written"] = serde_json::json!(u64::MAX);
    let e =
        State::parse(&serde_json::to_vec(&state).unwrap(), "bad-state.json").expect_err("refused");
    assert!(is_usage(&e));
    assert!(format!("{e:#}").contains("damaged"), "{e:#}");
}
