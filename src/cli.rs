//! The command line. Each flag is defined once here; its doc comment is its `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Move the unconsumed backlog of Kafka topics from a source cluster to a target cluster.
///
/// Stop production and consumption on the source first. Then `plan` shows, for every topic
/// partition that a consumer group has not fully consumed, which offsets will be copied;
/// `run` copies exactly those records to the same partition on the target and moves every
/// group's committed offset to the matching target position; `verify` proves the copy.
#[derive(Debug, Parser)]
#[command(name = "kmigrate", version, about, long_about)]
#[command(
    after_help = "Exit codes: 0 success, 1 the work found a problem (e.g. a verify \
mismatch), 2 bad usage or configuration, 3 a Kafka or I/O failure, 130 interrupted."
)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./migrate.toml if present.
    /// See migrate.example.toml for every key.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "KMIGRATE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Source cluster bootstrap servers (HOST:PORT[,HOST:PORT...]); overrides [source] in the file.
    #[arg(long, global = true, value_name = "BOOTSTRAP")]
    pub source: Option<String>,

    /// Target cluster bootstrap servers; overrides [target] in the file.
    #[arg(long, global = true, value_name = "BOOTSTRAP")]
    pub target: Option<String>,

    /// Log level for messages on stderr (error, warn, info, debug, trace), or a tracing filter.
    #[arg(
        long,
        global = true,
        env = "KMIGRATE_LOG",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: String,

    /// How records travel: `batch` passes the source's record batches to the target with
    /// only their header rewritten; `record` reads and produces every record through
    /// librdkafka; `auto` (the default) is `batch` wherever it applies. Overrides
    /// `migration.engine`.
    #[arg(
        long,
        global = true,
        env = "KMIGRATE_ENGINE",
        value_enum,
        value_name = "ENGINE"
    )]
    pub engine: Option<Engine>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what would be migrated, changing nothing (the review step before a cutover).
    ///
    /// Reads every consumer group on the source and the offsets it committed, and the low and
    /// high watermarks of those partitions. Per partition, the copy starts at the smallest
    /// committed offset across groups (raised to the low watermark when older records have
    /// expired: the loss is reported) and ends at the high watermark. Partitions with nothing
    /// left to copy are skipped with the reason. Also checks the target's topics.
    Plan(PlanArgs),

    /// Copy the planned backlog to the target and translate the groups' offsets.
    ///
    /// Consumes every planned range and produces each record to the same topic and partition
    /// on the target with its key, value, headers and timestamp, in order. Progress is
    /// checkpointed so that a run stopped by Ctrl-C or a crash resumes without losing or
    /// duplicating a record.
    Run(RunArgs),

    /// Copy the backlog and keep following the live source, until `kmigrate cutover`.
    ///
    /// Plans as `run` does (producers and consumers may keep running), then copies every
    /// committed record (up to the last stable offset) and, about every second, extends each
    /// partition's range to the source's new last stable offset and copies the new records,
    /// with the same checkpoints and exact resume as `run`. Partitions whose groups had
    /// consumed everything are followed too. Every `rescan_secs` (30) it reads the source's
    /// groups and topics again and follows new groups, topics and partitions (creating them
    /// on the target when create_topics = true), and warns once about a group that
    /// committed below the copy's start. Commits no group offsets. Ctrl-C or SIGTERM saves
    /// and exits 130; running it again resumes.
    Sync(SyncArgs),

    /// Finish a `sync`: copy the tail, commit the groups' final offsets on the target.
    ///
    /// Run it after stopping the source's producers and consumers, and after stopping
    /// `sync`. Waits (up to --wait) until every planned group is empty on the source and the
    /// source's last stable offsets stayed still for --quiet seconds, otherwise refuses
    /// (exit 2) naming what is still active. Then copies what is left, translates each
    /// group's final committed offsets through the offset map, commits them on the target,
    /// and prints the downtime it measured. Without a `sync` before it, does what `run` does.
    Cutover(CutoverArgs),

    /// Prove the copy: compare source and target record by record, and the groups' offsets.
    ///
    /// Reads every range the run copied on both clusters and compares the record count and
    /// an order-sensitive digest of key, value, headers and timestamp per partition; where
    /// they differ, names the first differing record. Then checks every group's committed
    /// offset on the target. Needs the run's state file. Exit code 1 on any mismatch.
    Verify(VerifyArgs),

    /// Show how far a migration is, per shard when several workers run it (needs no cluster).
    ///
    /// Reads the state file, or the shards' state files (`STATE_FILE.shard-I-of-N`) when
    /// `run --shard` wrote them, and shows per shard whether it is done, running (a worker
    /// holds its lock), stopped or not started, the records written of those planned, the
    /// offsets left to copy, and the phase.
    Status(StatusArgs),

    /// The offset map: where each copied source record is on the target (needs no cluster).
    ///
    /// For consumers that keep their positions outside Kafka (Flink and Spark checkpoints,
    /// Kafka Connect sinks, `assign()` users): `export` writes the map of every copied
    /// partition, `translate` prints the target offset of one source offset. Reads the state
    /// file `run` writes (or its shards' files), so it also answers during a copy.
    Offsets(OffsetsArgs),

    /// Print a shell completion script to stdout (needs no configuration file).
    ///
    /// For example: `kmigrate completions bash > /etc/bash_completion.d/kmigrate`, or for zsh
    /// into a directory on `$fpath` as `_kmigrate`, or for fish into
    /// `~/.config/fish/completions/kmigrate.fish`.
    Completions(CompletionsArgs),

    /// Print the manual page (roff) to stdout (needs no configuration file).
    ///
    /// One page covers every command. Read it with `kmigrate man | man -l -`, or install it
    /// with `kmigrate man > /usr/local/share/man/man1/kmigrate.1`.
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables for people.
    Table,
    /// One JSON document for machines (the plan's schema is in docs/plan.md).
    Json,
}

/// How `run` shows the copy's progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, else a line every 5 seconds.
    Auto,
    /// Live bars, per topic and overall.
    Bar,
    /// A status line every 5 seconds.
    Lines,
    /// One JSON event per line (schema in docs/observability.md).
    Json,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Also save the plan as JSON to FILE, for `kmigrate run --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Show one row per partition even for topics with many partitions.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Execute exactly this saved plan (from `kmigrate plan --out FILE`) instead of planning
    /// now. Refused if the source's offsets moved since it was made.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<std::path::PathBuf>,

    /// Do not ask for confirmation. Required when there is no terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// With --plan: if the source moved since the plan was made, plan again instead of
    /// refusing.
    #[arg(long)]
    pub replan: bool,

    /// Copy even though some consumer groups still have members on the source.
    #[arg(long)]
    pub allow_active_groups: bool,

    /// Commit translated offsets even where a group's existing commit on the target is
    /// ahead of them (moving the group backwards).
    #[arg(long)]
    pub force_offsets: bool,

    /// Copy pipelines to run in parallel, each with its own source reader and target
    /// writer over a share of the partitions (default: `migration.pipelines`, else the
    /// number of cores). Memory stays within `buffer_mb` in all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub pipelines: Option<u16>,

    /// How progress is shown on stderr: `json` prints one event per line (phases,
    /// progress, finished partitions, warnings, the summary) for programs; stdout keeps
    /// the tables.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE")]
    pub progress: ProgressMode,

    /// Serve Prometheus metrics on http://ADDR/metrics while the run lasts
    /// (e.g. 127.0.0.1:9464): records and bytes copied, lag per partition, phase, errors.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// With --metrics: keep answering this long after the run ends (e.g. 30s), so that
    /// the last scrape sees the final figures.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "metrics")]
    pub metrics_linger: Option<std::time::Duration>,

    /// Run one share of the plan: shard INDEX (0-based) of COUNT workers that all run the
    /// same `--plan FILE`, e.g. `--shard ${JOB_COMPLETION_INDEX}/4` in a Kubernetes Indexed
    /// Job. Each shard keeps its own state file (STATE_FILE.shard-INDEX-of-COUNT), resumes
    /// from it, and commits its own partitions' group offsets.
    #[arg(long, env = "KMIGRATE_SHARD", value_name = "INDEX/COUNT")]
    pub shard: Option<crate::model::Shard>,
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Do not ask for confirmation. Required when there is no terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Copy pipelines to run in parallel (default: `migration.pipelines`, else the number
    /// of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub pipelines: Option<u16>,
}

#[derive(Debug, clap::Args)]
pub struct CutoverArgs {
    /// Do not ask for confirmation. Required when there is no terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// How long to wait, in seconds, for the groups to become empty and the source to stop
    /// moving before refusing.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub wait: u64,

    /// How long, in seconds, the source's last stable offsets must stay still before the
    /// tail is copied (counted from the sync's last reading when they have not moved since).
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub quiet: u64,

    /// Commit translated offsets even where a group's existing commit on the target is
    /// ahead of them (moving the group backwards).
    #[arg(long)]
    pub force_offsets: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Readers per cluster (default: `migration.pipelines`, else the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub pipelines: Option<u16>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// One row per partition even when there are many (default: only mismatches then).
    #[arg(long)]
    pub verbose: bool,

    /// Verify only this shard's share of a sharded run (default: every shard's, when the
    /// shards' state files are there and no plain state file is).
    #[arg(long, env = "KMIGRATE_SHARD", value_name = "INDEX/COUNT")]
    pub shard: Option<crate::model::Shard>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct OffsetsArgs {
    #[command(subcommand)]
    pub command: OffsetsCommand,
}

#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// Write the offset map of every copied partition to stdout.
    ///
    /// Per partition, runs of consecutive offsets: source offsets SOURCE..SOURCE+COUNT are
    /// target offsets TARGET..TARGET+COUNT. A new run starts only where the source has a gap
    /// (transaction markers, compaction).
    Export {
        /// Output format: json (one document, per partition its runs as [source, target,
        /// count]) or csv (topic,partition,target_topic,source_offset,target_offset,count).
        #[arg(long, value_enum, default_value_t = MapFormat::Json)]
        format: MapFormat,
    },

    /// Print the target offset of a source offset: where a consumer that would read OFFSET
    /// next on the source reads next on the target.
    ///
    /// Exit code 1, with the reason on stderr, when the offset is below the copy's start,
    /// past what was copied, or the partition is not part of the copy.
    Translate {
        /// The topic's name on the source.
        topic: String,
        partition: i32,
        /// A source offset, e.g. a position a checkpoint holds.
        offset: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MapFormat {
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// How records travel from the source to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The batch engine wherever it applies; the record engine for a cluster whose
    /// security settings the batch engine does not apply, or a source in message format
    /// v0/v1 (one line says which).
    Auto,
    /// Record batches passed to the target as the source's log holds them, with only their
    /// header rewritten (re-encoded where they must be).
    Batch,
    /// Every record read and produced again through librdkafka.
    Record,
}
