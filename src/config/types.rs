//! The validated configuration: its types, their defaults, and how the command line's
//! `--source` / `--target` complete what the file says.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::usage;

use super::filter::FilterConfig;
use super::origin::Origin;
use super::secrets::Properties;
use super::topics::TopicMapping;

/// The whole configuration after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: ClusterConfig,
    pub target: ClusterConfig,
    pub filter: FilterConfig,
    pub migration: MigrationConfig,
    /// Names of the topics on the target.
    pub topics: TopicMapping,
    /// Where each setting was written, for errors found after loading.
    pub origin: Origin,
}

/// How to reach one cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterConfig {
    /// Comma-separated `host:port` list, as librdkafka's `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Any librdkafka client property (security, timeouts, ...). Secrets are redacted by `Debug`.
    pub properties: Properties,
}

/// What to do with a partition of a topic a group consumes but never committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UncommittedPolicy {
    /// Migrate the whole partition from its low watermark: nothing is lost.
    Earliest,
    /// Leave the partition out of the migration.
    Skip,
}

pub use crate::cli::Engine;

/// The producer's `compression.type` on the target. Not `Copy`: the copy's tuning takes
/// its own clone.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Lz4,
    Zstd,
    Snappy,
    Gzip,
    None,
}

impl Compression {
    /// The name librdkafka's `compression.type` and the configuration file use.
    pub fn as_str(&self) -> &'static str {
        match self {
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }
}

/// Printed as its name in quotes, as the configuration's summary always showed it.
impl fmt::Debug for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MigrationConfig {
    pub uncommitted_partitions: UncommittedPolicy,
    pub create_topics: bool,
    pub translate_offsets: bool,
    pub state_file: PathBuf,
    pub log_file: PathBuf,
    /// Upper bound for every request to a cluster, so that nothing hangs.
    pub timeout: Duration,
    /// Producer compression on the target.
    pub compression: Compression,
    /// Throttle for the copy, in bytes of keys and values per second; `None`: unlimited.
    pub max_bytes_per_second: Option<u64>,
    /// Memory for client buffers, split between prefetching and producing.
    pub buffer_mb: u64,
    /// Copy pipelines run in parallel (each its own reader and writer).
    pub pipelines: usize,
    /// How often `kmigrate sync` reads the source's groups and topics again, to follow new
    /// groups, topics and partitions.
    pub rescan: Duration,
    /// How records travel (`--engine` overrides it).
    pub engine: Engine,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            uncommitted_partitions: UncommittedPolicy::Earliest,
            create_topics: false,
            translate_offsets: true,
            state_file: PathBuf::from("kmigrate-state.json"),
            log_file: PathBuf::from("kmigrate.log"),
            timeout: Duration::from_secs(30),
            compression: Compression::Lz4,
            max_bytes_per_second: None,
            buffer_mb: 128,
            pipelines: default_pipelines(),
            rescan: Duration::from_secs(60),
            engine: Engine::Auto,
        }
    }
}

/// Where the configuration comes from, as the command line resolved it.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// True when the user named the file (`--config` or `KMIGRATE_CONFIG`): then it must exist.
    pub explicit: bool,
}

impl Config {
    /// Applies `--source` / `--target` and checks what is needed to talk to both clusters.
    /// `base` is `None` when no file was found.
    pub fn resolve(
        base: Option<Config>,
        source: Option<&str>,
        target: Option<&str>,
        src: &ConfigSource,
    ) -> anyhow::Result<Config> {
        let found = base.is_some();
        let mut cfg = base.unwrap_or_else(|| Config {
            source: ClusterConfig::default(),
            target: ClusterConfig::default(),
            filter: FilterConfig::default(),
            migration: MigrationConfig::default(),
            topics: TopicMapping::default(),
            origin: Origin::default(),
        });
        if let Some(s) = source {
            cfg.source.bootstrap_servers = s.trim().to_string();
        }
        if let Some(t) = target {
            cfg.target.bootstrap_servers = t.trim().to_string();
        }
        for (name, c, flag) in [
            ("source", &cfg.source, "--source"),
            ("target", &cfg.target, "--target"),
        ] {
            let from_flag = if name == "source" { source } else { target }.is_some();
            let key = format!("{name}.bootstrap_servers");
            // Where the address was given: the flag, or its place in the file.
            let place = if from_flag {
                format!("`{flag}`")
            } else {
                cfg.origin.locate(&key, &key)
            };
            if c.bootstrap_servers.is_empty() {
                if found && cfg.origin.keys.contains_key(&key) {
                    return Err(usage(format!(
                        "invalid configuration at {place}: the {name} cluster's address is empty. \
                         Write it like \"broker1:9092,broker2:9092\" (or pass {flag} HOST:PORT)."
                    )));
                }
                let hint = if found {
                    format!(
                        "set `bootstrap_servers` in the [{name}] table of {} or pass {flag} HOST:PORT",
                        src.path.display()
                    )
                } else {
                    format!(
                        "no configuration file was found at {}; create one (see \
                         migrate.example.toml) or pass {flag} HOST:PORT",
                        src.path.display()
                    )
                };
                return Err(usage(format!(
                    "the {name} cluster's address is not set: {hint}."
                )));
            }
            validate_bootstrap(name, &c.bootstrap_servers, &place)?;
        }
        if same_servers(&cfg.source.bootstrap_servers, &cfg.target.bootstrap_servers) {
            let place = if target.is_some() {
                "`--target`".to_string()
            } else {
                cfg.origin
                    .locate("target.bootstrap_servers", "target.bootstrap_servers")
            };
            return Err(usage(format!(
                "invalid configuration at {place}: source and target are the same cluster ({}): \
                 copying a backlog onto itself would duplicate every record. Point --target (or \
                 [target] bootstrap_servers) at the new cluster.",
                cfg.source.bootstrap_servers
            )));
        }
        Ok(cfg)
    }

    /// The configuration as it may be printed or logged: secrets replaced.
    pub fn redacted_summary(&self) -> String {
        format!(
            "source={} {:?}; target={} {:?}; filter={:?}; topics={:?}; migration={:?}",
            self.source.bootstrap_servers,
            self.source.properties,
            self.target.bootstrap_servers,
            self.target.properties,
            self.filter,
            self.topics,
            self.migration
        )
    }
}

fn validate_bootstrap(name: &str, servers: &str, place: &str) -> anyhow::Result<()> {
    for s in servers.split(',') {
        let s = s.trim();
        let s = s.rsplit_once("://").map_or(s, |(_, rest)| rest);
        let ok = s.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            return Err(usage(format!(
                "invalid configuration at {place}: the {name} cluster's address {servers:?} is not \
                 a list of HOST:PORT: `{s}` lacks a valid port. Write it like \
                 \"broker1:9092,broker2:9092\"."
            )));
        }
    }
    Ok(())
}

fn same_servers(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let mut v: Vec<String> = s
            .split(',')
            .map(|x| {
                x.trim()
                    .to_ascii_lowercase()
                    .replace("localhost", "127.0.0.1")
            })
            .collect();
        v.sort();
        v
    };
    norm(a).iter().any(|x| norm(b).contains(x))
}

/// One copy pipeline per core by default.
pub fn default_pipelines() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(64))
}

/// Resolves the config path: `--config`, then `KMIGRATE_CONFIG`, then `./migrate.toml`.
pub fn config_source(flag: Option<&Path>, env: Option<String>) -> ConfigSource {
    match (flag, env.filter(|e| !e.is_empty())) {
        (Some(p), _) => ConfigSource {
            path: p.to_path_buf(),
            explicit: true,
        },
        (None, Some(e)) => ConfigSource {
            path: PathBuf::from(e),
            explicit: true,
        },
        (None, None) => ConfigSource {
            path: PathBuf::from("migrate.toml"),
            explicit: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitKind, exit_kind};

    fn src() -> ConfigSource {
        ConfigSource {
            path: PathBuf::from("migrate.toml"),
            explicit: false,
        }
    }

    #[test]
    fn missing_address_says_how_to_fix() {
        let e = Config::resolve(None, Some("s:1"), None, &src()).expect_err("no target");
        assert_eq!(exit_kind(&e), ExitKind::Usage);
        let s = format!("{e:#}");
        assert!(
            s.contains("--target") && s.contains("migrate.example.toml"),
            "{s}"
        );
    }

    #[test]
    fn bad_bootstrap_is_refused() {
        for bad in [
            "nohost",
            "host:",
            ":9092",
            "host:99999",
            "host:0",
            "a:1,,b:2",
        ] {
            let e = Config::resolve(None, Some(bad), Some("t:1"), &src()).expect_err(bad);
            assert_eq!(exit_kind(&e), ExitKind::Usage, "{bad}");
        }
        assert!(Config::resolve(None, Some("SSL://h:1, h2:2"), Some("t:1"), &src()).is_ok());
    }

    #[test]
    fn same_cluster_is_refused() {
        for (s, t) in [
            ("a:1", "a:1"),
            ("localhost:1", "127.0.0.1:1"),
            ("a:1,b:2", "b:2"),
        ] {
            let e = Config::resolve(None, Some(s), Some(t), &src()).expect_err(s);
            assert!(format!("{e:#}").contains("same cluster"));
        }
    }

    #[test]
    fn config_path_precedence() {
        let p = PathBuf::from("x.toml");
        assert_eq!(config_source(Some(&p), Some("y.toml".into())).path, p);
        assert!(config_source(None, Some("y.toml".into())).explicit);
        assert!(!config_source(None, Some(String::new())).explicit);
        assert_eq!(
            config_source(None, None).path,
            PathBuf::from("migrate.toml")
        );
    }
}
