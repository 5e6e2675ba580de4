//! One file per command: each reads the configuration it is given, runs its pipeline stages
//! and returns how it ended (see `error::Outcome`).

pub mod cutover;
pub mod docs;
pub mod offsets;
pub mod plan;
pub mod run;
pub mod status;
pub mod sync;
pub mod verify;
