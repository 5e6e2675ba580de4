//! The integration tests that stop, kill or pause brokers, in a binary of their own: cargo
//! runs test binaries one after another, so an outage here never hits a test of `tests/it/`.
//!
//! `brokers` stops the test bed's own brokers; `replicated` stalls, kills and restarts
//! brokers of 3-broker clusters while copying from or to the test bed's other cluster. So a
//! test that stops a broker of the test bed holds [`outage_lock`] exclusively, and every
//! other test that needs the test bed's brokers holds [`brokers_up`], shared.
//!
//! The long tests (a minute or more each) are `#[ignore]`d, so a plain run reports them as
//! not run: `KMIGRATE_FAULT_TESTS=long scripts/test` runs them (`.ci/run` does), and so does
//! `cargo test --test outage -- --include-ignored` against a running test bed.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `pub`: this binary uses only a part of the shared helpers, and `tests/it`, which uses
/// every one of them, is where a helper no test needs shows up as dead code.
#[path = "../support/mod.rs"]
pub mod support;

mod brokers;
mod replicated;

/// Held exclusively while one of the test bed's brokers is stopped, shared otherwise.
static BROKERS: RwLock<()> = RwLock::new(());

/// The test bed's brokers for this test alone: it is about to stop one.
fn outage_lock() -> RwLockWriteGuard<'static, ()> {
    BROKERS.write().unwrap_or_else(|e| e.into_inner())
}

/// The test bed's brokers up for as long as this is held.
fn brokers_up() -> RwLockReadGuard<'static, ()> {
    BROKERS.read().unwrap_or_else(|e| e.into_inner())
}
