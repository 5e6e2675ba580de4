//! kmigrate: move the unconsumed backlog of Kafka topics to another cluster.
//!
//! `main` only parses the command line, sets up logging, dispatches to one function per
//! command, and maps the result to an exit code (see `error.rs`).

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use kmigrate::cli::{Cli, Command, ProgressMode};
use kmigrate::commands;
use kmigrate::config::{self, Config};
use kmigrate::error::{ExitKind, Outcome, exit_kind};
use kmigrate::migration::Clusters;

fn main() -> ExitCode {
    limit_malloc_arenas();
    keep_freed_memory();
    let cli = Cli::parse();
    init_logging(&cli.log_level, json_events(&cli));
    match dispatch(&cli) {
        Ok(outcome) => ExitKind::from(outcome).into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_kind(&e).into()
        }
    }
}

/// Keeps glibc to two malloc arenas, a common precaution for many-threaded C clients. On the
/// tuned copy path it measured neutral (117-125 vs 120-125 MiB peak at 3 GiB); the memory
/// bound comes from the client buffer sizes. Set before any thread exists; the
/// environment's MALLOC_ARENA_MAX still wins when given.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tuning; called before other threads start.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Keeps the memory of freed Fetch responses for the next ones instead of giving it back to
/// the kernel: glibc maps an allocation of a response's size afresh (or trims the heap
/// under it) and the kernel then faults and zeroes every page the socket's bytes land in,
/// about a fifth of the batch engine's CPU at 1 KiB records. The peak stays what the copy's
/// queues allow (`Retained`); only the return of that peak to the kernel waits for the end
/// of the command. The environment's MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ still
/// win when given.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: as above: allocator tuning only, before other threads start. 32 MiB is
            // glibc's largest threshold on 64-bit (a larger value is refused, harmlessly).
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            }
        }
        if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
            // SAFETY: as above.
            unsafe {
                libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
            }
        }
    }
}

/// `run --progress json`: stderr carries only JSON lines, log messages included.
fn json_events(cli: &Cli) -> bool {
    matches!(&cli.command, Command::Run(args) if args.progress == ProgressMode::Json)
}

fn init_logging(level: &str, json: bool) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    if json {
        tracing_subscriber::registry()
            .with(filter)
            .with(kmigrate::report::json::LogEvents)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .with_target(false)
            .init();
    }
}

/// The configuration, and its two clusters (built once, handed to the command).
fn load_config(cli: &Cli) -> anyhow::Result<(Config, Clusters)> {
    let src = config::config_source(cli.config.as_deref(), None);
    let loaded = config::load(&src)?;
    for warning in &loaded.warnings {
        kmigrate::report::note(warning);
    }
    let mut cfg = Config::resolve(
        loaded.config,
        cli.source.as_deref(),
        cli.target.as_deref(),
        &src,
    )?;
    if let Some(engine) = cli.engine {
        cfg.migration.engine = engine;
    }
    // librdkafka's refusal of a property is a configuration error: report it now, with its
    // place in the file, rather than in the middle of a command.
    let clusters = Clusters::new(&cfg)?;
    tracing::debug!(config = %cfg.redacted_summary(), "configuration loaded");
    Ok((cfg, clusters))
}

fn dispatch(cli: &Cli) -> anyhow::Result<Outcome> {
    // Documents about the program itself: they must work before any configuration exists
    // (packaging, a fresh install), so they come before the file is looked for.
    match &cli.command {
        Command::Completions(args) => {
            return commands::docs::completions(args.shell, &mut std::io::stdout().lock());
        }
        Command::Man => return commands::docs::man(&mut std::io::stdout().lock()),
        Command::Plan(_)
        | Command::Run(_)
        | Command::Sync(_)
        | Command::Cutover(_)
        | Command::Verify(_)
        | Command::Status(_)
        | Command::Offsets(_) => {}
    }
    let (cfg, clusters) = load_config(cli)?;
    match &cli.command {
        Command::Plan(args) => commands::plan::execute(&cfg, &clusters, args),
        Command::Run(args) => commands::run::execute(&cfg, clusters, args),
        Command::Sync(args) => commands::sync::execute(&cfg, clusters, args),
        Command::Cutover(args) => commands::cutover::execute(&cfg, clusters, args),
        Command::Verify(args) => commands::verify::execute(&cfg, &clusters, args),
        Command::Status(args) => commands::status::execute(&cfg, args),
        Command::Offsets(args) => commands::offsets::execute(&cfg, args),
        // Handled above, before the configuration is loaded.
        Command::Completions(_) | Command::Man => Ok(Outcome::Success),
    }
}
