//! The steps the commands that migrate share (`run`, `sync`, `cutover`), built once per
//! command. A command is the order of these steps and its flags:
//!
//! - `mod.rs`: [`Clusters`] (both clusters, built and checked once) and [`Migration`]: the
//!   clusters, the copy options, the log file and the stop flag, read from the
//!   configuration once;
//! - [`guards`]: the refusals before anything is copied (state file writable and not
//!   locked, plan made for these clusters and this `[topics]` table, source unchanged,
//!   groups inactive) and the operator's confirmation;
//! - [`start`]: a migration's state file opened and checked, or a new one planned and
//!   started;
//! - [`target`]: the target made ready (topics created, partitions added, metadata awaited);
//! - [`follow`]: following the live source (`sync`);
//! - [`still`]: waiting until the source is still (`cutover`);
//! - [`finish`]: after the copy: check it, translate and commit the groups' offsets, record
//!   them, report;
//! - [`fixed`]: a migration of a fixed plan from start to end (`run`, and `cutover` without
//!   a sync before it).

pub mod finish;
pub mod fixed;
pub mod follow;
pub mod guards;
pub mod start;
pub mod still;
pub mod target;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Config;
use crate::copy::{self, Ended, Options, ProgressSink, Snapshot};
use crate::kafka::reader::Tuning;
use crate::kafka::{Cluster, Role};
use crate::ledger::Ledger;
use crate::plan::Plan;
use crate::plan::compute::{Rules, compute};

/// The source and the target cluster of a configuration. Built once per command, by
/// `main`: a property librdkafka refuses is reported before the command starts, where it
/// is written in the file.
#[derive(Debug, Clone)]
pub struct Clusters {
    pub source: Cluster,
    pub target: Cluster,
}

impl Clusters {
    pub fn new(cfg: &Config) -> anyhow::Result<Clusters> {
        let clusters = Clusters {
            source: Cluster::new(Role::Source, &cfg.source, cfg.migration.timeout),
            target: Cluster::new(Role::Target, &cfg.target, cfg.migration.timeout),
        };
        for c in [&clusters.source, &clusters.target] {
            c.check_properties(&cfg.origin)?;
        }
        Ok(clusters)
    }

    /// Reads both clusters and computes a fresh plan.
    pub fn plan(&self, cfg: &Config) -> anyhow::Result<Plan> {
        plan(cfg, &self.source, &self.target)
    }
}

/// What every step of a migrating command works with: the configuration, both clusters,
/// how the copy runs, and the stop flag that Ctrl-C / SIGTERM raise.
pub struct Migration<'a> {
    pub cfg: &'a Config,
    pub source: Cluster,
    pub target: Cluster,
    pub opts: Options,
    stop: Arc<AtomicBool>,
    /// What one copy leaves to the next (a sync's rounds): clients and the batch limit.
    session: copy::Session,
}

impl<'a> Migration<'a> {
    /// Installs the signal handlers (from now on, the first Ctrl-C asks the steps to stop
    /// cleanly); `pipelines`: the command line's choice, if any.
    pub fn new(
        cfg: &'a Config,
        clusters: Clusters,
        pipelines: Option<u16>,
    ) -> anyhow::Result<Migration<'a>> {
        let stop = install_signal_handlers()?;
        Ok(Migration {
            cfg,
            source: clusters.source,
            target: clusters.target,
            opts: copy_options(cfg, pipelines),
            stop,
            session: copy::Session::new(),
        })
    }

    pub fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// Ctrl-C or SIGTERM asked to stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Reads both clusters and computes a fresh plan.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        plan(self.cfg, &self.source, &self.target)
    }

    /// Appends `text` to the log file, headed by `command`.
    pub fn log(&self, command: &str, text: &str) {
        crate::report::log(&self.cfg.migration.log_file, command, text);
    }

    /// Closes the clients the copies kept (see [`copy::Session::release`]); whether there
    /// were any.
    pub fn release_clients(&self) -> bool {
        self.session.release()
    }

    /// Copies what the ledger has left to copy (see [`copy::run`]).
    pub fn copy(
        &self,
        ledger: &mut Ledger,
        sink: &mut dyn ProgressSink,
    ) -> anyhow::Result<(Ended, Snapshot)> {
        copy::run(
            &self.source,
            &self.target,
            ledger,
            &self.opts,
            &self.session,
            &self.stop,
            sink,
        )
    }
}

/// The command is done with both clusters: their sessions close at once (see
/// [`crate::kafka::close`]).
impl Drop for Migration<'_> {
    fn drop(&mut self) {
        crate::kafka::close(&[&self.source, &self.target]);
    }
}

/// Reads both clusters and computes a fresh plan.
fn plan(cfg: &Config, source: &Cluster, target: &Cluster) -> anyhow::Result<Plan> {
    let snap = crate::plan::gather::gather(cfg, source, target)?;
    let rules = Rules::of(cfg);
    Ok(compute(&snap, &rules, crate::model::now_ms()))
}

/// How the copy runs under `cfg` (`pipelines`: the command line's choice, if any).
fn copy_options(cfg: &Config, pipelines: Option<u16>) -> Options {
    Options {
        tuning: Tuning {
            buffer_bytes: (cfg.migration.buffer_mb as usize) << 19,
            compression: cfg.migration.compression.clone(),
            max_batch_bytes: None,
        },
        pipelines: pipelines.map_or(cfg.migration.pipelines, usize::from),
        max_bytes_per_second: cfg.migration.max_bytes_per_second,
        checkpoint_every: Duration::from_secs(2),
        flush_timeout: cfg.migration.timeout,
        engine: cfg.migration.engine,
    }
}

/// SIGINT / SIGTERM ask the copy to stop cleanly (flush, checkpoint, exit 130); a second
/// one stops at once (the checkpoint and the target's offsets still allow an exact resume).
fn install_signal_handlers() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing the signal handler")?;
    }
    Ok(stop)
}
