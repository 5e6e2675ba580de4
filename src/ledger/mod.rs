//! The ledger: the state file of a migration. It holds the plan being executed, every
//! partition's progress and translation, and each group's commit outcome; it is saved
//! atomically so that an interrupted run resumes without losing or duplicating a record.
//!
//! [`Ledger`] owns the file: every save and every phase change goes through it, so the
//! order "bases on disk before the first record, checkpoint, copied, complete" is
//! written in one place.

mod file;
mod fingerprint;
mod live;
pub mod shards;
mod state;

pub use file::Ledger;
pub use fingerprint::{plan_id, state_id};
pub use state::{
    CommitOutcome, GroupOffsets, PartitionState, Phase, Progress, STATE_VERSION, State,
    write_checkpoint,
};
