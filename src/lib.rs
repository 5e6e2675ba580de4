//! kmigrate moves the unconsumed backlog of Kafka topics from a source cluster to a target
//! cluster. The pipeline, one module per stage:
//!
//! config → gather → plan → copy → translate → verify → report
//!
//! - [`config`]: the TOML file, validation, secrets;
//! - [`plan`]: `gather` (I/O), `compute` (pure rules), `render`;
//! - [`kafka`]: the only module that talks to rdkafka;
//! - [`migration`]: the steps the migrating commands share (guards, target, follow, finish);
//! - [`report`]: tables and numbers for people;
//! - [`commands`]: one entry point per CLI command.
//!
//! The binary (`src/main.rs`) is a thin dispatcher over this library; the library exists so
//! that integration tests can exercise the same code against real clusters.

pub mod cli;
pub mod commands;
pub mod config;
pub mod copy;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod kafka;
pub mod ledger;
pub mod migration;
pub mod model;
pub mod offsets;
pub mod plan;
pub mod report;
pub mod text;
pub mod translate;
pub mod verify;
