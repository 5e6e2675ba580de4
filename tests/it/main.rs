//! The integration tests that share the test bed peacefully, in one binary: each test makes
//! its own topics and groups, so they all run in parallel against the same two clusters,
//! and none stops, kills or pauses a broker (those are in `tests/outage/`). One binary links
//! once, and the shared helpers in `tests/support/` are each used here.
//!
//! `cargo test --test it` runs them; `cargo test --test it run::` the tests of one file.

#[path = "../support/mod.rs"]
mod support;

mod admin_retries;
mod bad_input;
mod batch_engine;
mod cli;
mod cli_docs;
mod compat;
mod faults;
mod fixtures;
mod fuzz_corpus;
mod kafka_admin;
mod kubernetes;
mod observe;
mod pipelines;
mod plan;
mod rename;
mod run;
mod security;
mod shards;
mod sync;
mod sync_rescan;
mod testbed;
mod translate_verify;
mod wire;
