//! `kmigrate sync`: copy the backlog while producers and consumers keep running, then keep
//! following the source: about every second, extend each partition's range to the source's
//! last stable offset (saved before anything past the old end is copied) and copy the new
//! records with the copy stage's exact resume. Every `rescan_secs` it reads the source's
//! groups and topics again: new groups, topics and partitions enter the state file (saved
//! before anything of them is copied), and a group that committed below the copy's start
//! is reported. It commits no group offsets: `kmigrate cutover` does, once the source is
//! stopped.

use crate::cli::SyncArgs;
use crate::config::Config;
use crate::error::Outcome;
use crate::migration::follow::{Rescan, follow};
use crate::migration::{Clusters, Migration, guards, start};
use crate::report::{self, migration as texts};

pub fn execute(cfg: &Config, clusters: Clusters, args: &SyncArgs) -> anyhow::Result<Outcome> {
    let m = Migration::new(cfg, clusters, args.pipelines)?;
    let state_path = cfg.migration.state_file.as_path();
    let _lock = guards::lock_migration(state_path, "sync")?;
    let (mut ledger, resumed) = start::open_live(&m, args.yes)?;
    // A resumed sync looks for what appeared while it was stopped at once.
    let mut rescan = Rescan::new(cfg.migration.rescan, resumed);
    follow(&m, &mut ledger, &mut rescan)?;
    report::note(&texts::sync_stopped(ledger.state.written(), state_path));
    Ok(Outcome::Interrupted)
}
