//! The TOML configuration: schema, defaults, validation, `${VAR}` secrets and redaction.
//!
//! Loading is two steps: [`load`] reads and validates the file (every error names the file,
//! line and column, and how to fix it), then [`Config::with_overrides`] applies the command
//! line's `--source` / `--target`. Nothing here talks to Kafka.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use wildmatch::WildMatch;

use crate::error::usage;

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

/// Where the settings were written, so that an error found after loading (librdkafka
/// refusing a property, a pattern that matches nothing) can name the file, line and column.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Origin {
    /// The configuration file, when one was read.
    pub file: Option<String>,
    /// Dotted key (`source.properties.sasl.mechanism`, quotes removed) -> (line, column)
    /// of its name, or of its `[header]` for a table opened by one.
    pub keys: BTreeMap<String, (usize, usize)>,
}

impl Origin {
    /// Reads where every key of a TOML text is written, from the TOML parser's own spans:
    /// keys of tables, of arrays of tables and of inline tables alike. A key stands at its
    /// name, a table opened by a `[header]` at that header. Text that does not parse gives
    /// the keys that could be read.
    pub fn from_toml(file: &str, text: &str) -> Origin {
        let lines = Lines::new(text);
        let mut keys = BTreeMap::new();
        for k in written_keys(text) {
            let at = lines.position(k.name.start.min(k.value.start));
            keys.entry(k.path.join("."))
                .and_modify(|first: &mut (usize, usize)| *first = (*first).min(at))
                .or_insert(at);
        }
        Origin {
            file: Some(file.to_string()),
            keys,
        }
    }

    /// `migrate.toml:12:1 (`source.properties."ssl.ca.location"`)` for a key written in the
    /// file; the enclosing table's place, or the file alone, when the key is not found.
    /// `shown` is the key as the message should spell it.
    pub fn locate(&self, key: &str, shown: &str) -> String {
        let Some(file) = &self.file else {
            return format!("`{shown}`");
        };
        let mut k = key;
        loop {
            if let Some((line, col)) = self.keys.get(k) {
                return format!("{file}:{line}:{col} (`{shown}`)");
            }
            match k.rsplit_once('.') {
                Some((parent, _)) => k = parent,
                None => return format!("{file} (`{shown}`)"),
            }
        }
    }

    /// Where a librdkafka property of `[role.properties]` is written.
    pub fn locate_property(&self, role: &str, key: &str) -> String {
        self.locate(
            &format!("{role}.properties.{key}"),
            &format!("{role}.properties.\"{key}\""),
        )
    }
}

/// How to reach one cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterConfig {
    /// Comma-separated `host:port` list, as librdkafka's `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Any librdkafka client property (security, timeouts, ...). Secrets are redacted by `Debug`.
    pub properties: Properties,
}

/// Which consumer groups and topics are considered. Patterns are globs (`*`, `?`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    pub groups: Vec<String>,
    pub exclude_groups: Vec<String>,
    pub topics: Vec<String>,
    pub exclude_topics: Vec<String>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            groups: vec!["*".into()],
            exclude_groups: Vec::new(),
            topics: vec!["*".into()],
            exclude_topics: Vec::new(),
        }
    }
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

#[derive(Debug, Clone, PartialEq)]
pub struct MigrationConfig {
    pub uncommitted_partitions: UncommittedPolicy,
    pub create_topics: bool,
    pub translate_offsets: bool,
    pub state_file: PathBuf,
    pub log_file: PathBuf,
    /// Upper bound for every request to a cluster, so that nothing hangs.
    pub timeout: Duration,
    /// Producer compression on the target: lz4, zstd, snappy, gzip or none.
    pub compression: String,
    /// Throttle for the copy, in bytes of keys and values per second; `None`: unlimited.
    pub max_bytes_per_second: Option<u64>,
    /// Memory for client buffers, split between prefetching and producing.
    pub buffer_mb: u64,
    /// Copy pipelines run in parallel (each its own reader and writer).
    pub pipelines: usize,
    /// How often `kmigrate sync` reads the source's groups and topics again, to follow new
    /// groups, topics and partitions.
    pub rescan: Duration,
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
            compression: "lz4".into(),
            max_bytes_per_second: None,
            buffer_mb: 128,
            pipelines: default_pipelines(),
            rescan: Duration::from_secs(30),
        }
    }
}

/// librdkafka properties. `Debug` and [`Properties::redacted`] hide secret values.
#[derive(Clone, PartialEq, Default)]
pub struct Properties(pub BTreeMap<String, String>);

impl Properties {
    /// The properties with every secret value replaced, for printing and logging.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_key(k) {
                    REDACTED.to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Every secret value, so that outputs can be checked for leaks.
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(k, v)| is_secret_key(k) && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

pub const REDACTED: &str = "<redacted>";

/// Whether a librdkafka property holds a secret (passwords, keys, JAAS config, tokens).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("token")
        || k == "sasl.jaas.config"
        || k == "sasl.oauthbearer.config"
        || k == "ssl.key.pem"
        || k == "ssl_key"
        || k.ends_with(".key.pem")
}

// ---------------------------------------------------------------------------------------
// The file as written. Separate from `Config` so that serde's errors carry spans and the
// validated form has no `Option`s left.

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    source: Option<FileCluster>,
    target: Option<FileCluster>,
    #[serde(default)]
    filter: FilterConfig,
    #[serde(default)]
    topics: FileTopics,
    #[serde(default)]
    migration: FileMigration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileTopics {
    target: String,
    map: BTreeMap<String, String>,
}

impl Default for FileTopics {
    fn default() -> Self {
        let d = TopicMapping::default();
        FileTopics {
            target: d.template,
            map: d.map,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCluster {
    bootstrap_servers: String,
    #[serde(default)]
    properties: BTreeMap<String, PropertyValue>,
}

/// librdkafka takes every value as a string; the file may also say `5` or `true`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PropertyValue {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl PropertyValue {
    fn into_string(self) -> String {
        match self {
            PropertyValue::String(s) => s,
            PropertyValue::Integer(i) => i.to_string(),
            PropertyValue::Float(f) => f.to_string(),
            PropertyValue::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileMigration {
    uncommitted_partitions: UncommittedPolicy,
    create_topics: bool,
    translate_offsets: bool,
    state_file: String,
    log_file: String,
    timeout_secs: u64,
    compression: String,
    max_bytes_per_second: u64,
    buffer_mb: u64,
    pipelines: usize,
    rescan_secs: u64,
}

impl Default for FileMigration {
    fn default() -> Self {
        let d = MigrationConfig::default();
        FileMigration {
            uncommitted_partitions: d.uncommitted_partitions,
            create_topics: d.create_topics,
            translate_offsets: d.translate_offsets,
            state_file: d.state_file.display().to_string(),
            log_file: d.log_file.display().to_string(),
            timeout_secs: d.timeout.as_secs(),
            compression: d.compression,
            max_bytes_per_second: 0,
            buffer_mb: d.buffer_mb,
            pipelines: d.pipelines,
            rescan_secs: d.rescan.as_secs(),
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

/// What [`load`] read.
#[derive(Debug)]
pub struct Loaded {
    /// `None` when the default file does not exist.
    pub config: Option<Config>,
    /// Warnings for the user (e.g. a secret in a file others may read), for the caller to
    /// print: this module only reads.
    pub warnings: Vec<String>,
}

/// Reads and validates the configuration file. A missing default file is not an error
/// (`--source`/`--target` may be enough); a missing named file is.
pub fn load(src: &ConfigSource) -> anyhow::Result<Loaded> {
    let text = match std::fs::read_to_string(&src.path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !src.explicit => {
            return Ok(Loaded {
                config: None,
                warnings: Vec::new(),
            });
        }
        Err(e) => {
            return Err(usage(format!(
                "cannot read the configuration file {}: {e}. Check the path given with --config \
                 or KMIGRATE_CONFIG (migrate.example.toml shows every key).",
                src.path.display()
            )));
        }
    };
    let cfg = parse(&text, &src.path.display().to_string(), &|name| {
        std::env::var(name).ok()
    })?;
    Ok(Loaded {
        config: Some(cfg),
        warnings: exposed_secrets_warning(&src.path, &text)
            .into_iter()
            .collect(),
    })
}

/// A warning when the file holds a secret written out (not only `${VAR}` references) and
/// other users may read it. Names the file and the keys, never the values.
fn exposed_secrets_warning(path: &Path, text: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    if mode & 0o044 == 0 {
        return None;
    }
    let keys = literal_secrets(text);
    if keys.is_empty() {
        return None;
    }
    let file = path.display();
    Some(format!(
        "warning: the configuration file {file} is readable by other users (mode {mode:04o}) and \
         holds a secret written in it ({}): run `chmod 600 {file}`, or take the value from the \
         environment with \"${{VAR}}\".",
        keys.join(", ")
    ))
}

/// The secret properties whose value is written in the file, wholly or partly, rather than
/// only taken from the environment.
fn literal_secrets(text: &str) -> Vec<String> {
    let Ok(raw) = toml::from_str::<FileConfig>(text) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for (name, cluster) in [("source", raw.source), ("target", raw.target)] {
        for (k, v) in cluster.map(|c| c.properties).unwrap_or_default() {
            // What is left once every ${VAR} is replaced by nothing was written in the file.
            let written = expand_env(&v.into_string(), &|_| Some(String::new()))
                .is_ok_and(|rest| !rest.trim().is_empty());
            if is_secret_key(&k) && written {
                keys.push(format!("`{name}.properties.\"{k}\"`"));
            }
        }
    }
    keys
}

/// Parses and validates configuration text. `file` names it in errors; `env` looks up
/// `${VAR}` references (a closure so tests need not touch the process environment).
pub fn parse(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Config> {
    let raw: FileConfig =
        toml::from_str(text).map_err(|e| usage(describe_toml_error(&e, text, file)))?;
    let expand = |key: &str, value: &str| -> anyhow::Result<String> {
        expand_env(value, env).map_err(|var| {
            usage(format!(
                "{file}: `{key}` refers to the environment variable `{var}`, which is not set. \
                 Export it before running kmigrate (e.g. `export {var}=...`), or write the value \
                 in the file."
            ))
        })
    };
    let cluster = |name: &str, c: Option<FileCluster>| -> anyhow::Result<ClusterConfig> {
        let Some(c) = c else {
            return Ok(ClusterConfig::default());
        };
        let mut properties = BTreeMap::new();
        for (k, v) in c.properties {
            let v = expand(&format!("{name}.properties.\"{k}\""), &v.into_string())?;
            properties.insert(k, v);
        }
        Ok(ClusterConfig {
            bootstrap_servers: expand(&format!("{name}.bootstrap_servers"), &c.bootstrap_servers)?
                .trim()
                .to_string(),
            properties: Properties(properties),
        })
    };
    let source = cluster("source", raw.source)?;
    let target = cluster("target", raw.target)?;
    let m = raw.migration;
    if m.timeout_secs == 0 {
        return Err(usage(format!(
            "{file}: `migration.timeout_secs` is 0; it must be at least 1 (the default is 30)."
        )));
    }
    if m.rescan_secs == 0 {
        return Err(usage(format!(
            "{file}: `migration.rescan_secs` is 0; it must be at least 1 (the default is 30): \
             it is how often `kmigrate sync` looks for new groups, topics and partitions."
        )));
    }
    const COMPRESSIONS: [&str; 5] = ["lz4", "zstd", "snappy", "gzip", "none"];
    if !COMPRESSIONS.contains(&m.compression.as_str()) {
        return Err(usage(format!(
            "{file}: `migration.compression` is {:?}; use one of {}.",
            m.compression,
            COMPRESSIONS.join(", ")
        )));
    }
    if !(16..=4096).contains(&m.buffer_mb) {
        return Err(usage(format!(
            "{file}: `migration.buffer_mb` is {}; use a value from 16 to 4096 (the default is 128).",
            m.buffer_mb
        )));
    }
    if !(1..=64).contains(&m.pipelines) {
        return Err(usage(format!(
            "{file}: `migration.pipelines` is {}; use a value from 1 to 64 (the default is the \
             number of cores, {}).",
            m.pipelines,
            default_pipelines()
        )));
    }
    let migration = MigrationConfig {
        uncommitted_partitions: m.uncommitted_partitions,
        create_topics: m.create_topics,
        translate_offsets: m.translate_offsets,
        state_file: PathBuf::from(expand("migration.state_file", &m.state_file)?),
        log_file: PathBuf::from(expand("migration.log_file", &m.log_file)?),
        timeout: Duration::from_secs(m.timeout_secs),
        compression: m.compression,
        max_bytes_per_second: (m.max_bytes_per_second > 0).then_some(m.max_bytes_per_second),
        buffer_mb: m.buffer_mb,
        pipelines: m.pipelines,
        rescan: Duration::from_secs(m.rescan_secs),
    };
    let origin = Origin::from_toml(file, text);
    check_patterns(&raw.filter, &origin, text)?;
    let topics = TopicMapping {
        template: raw.topics.target,
        map: raw.topics.map,
    };
    check_mapping_written(&topics, &origin)?;
    Ok(Config {
        source,
        target,
        filter: raw.filter,
        migration,
        topics,
        origin,
    })
}

/// Refuses empty filter patterns, naming where each is written. Every other text is a valid
/// pattern.
fn check_patterns(filter: &FilterConfig, origin: &Origin, text: &str) -> anyhow::Result<()> {
    for (key, patterns) in [
        ("filter.groups", &filter.groups),
        ("filter.exclude_groups", &filter.exclude_groups),
        ("filter.topics", &filter.topics),
        ("filter.exclude_topics", &filter.exclude_topics),
    ] {
        if let Some((i, p)) = patterns
            .iter()
            .enumerate()
            .find(|(_, p)| p.trim().is_empty())
        {
            return Err(usage(format!(
                "invalid configuration at {}: the empty pattern {p:?} selects nothing; remove \
                 it or write \"*\" for all.",
                item_place(origin, text, key, i)
            )));
        }
    }
    Ok(())
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

/// Replaces `${NAME}` with the environment's value; `$${` stands for a literal `${`.
/// Returns the name of the first variable that is not set.
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(body) = after.strip_prefix("${") {
            match body.find('}') {
                Some(end) => {
                    let name = &body[..end];
                    match env(name) {
                        Some(v) => out.push_str(&v),
                        None => return Err(name.to_string()),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    // An unterminated reference is kept as written: it is not a variable.
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Turns a TOML/serde error into one paragraph: `file:line:column: problem. fix.`
fn describe_toml_error(e: &toml::de::Error, text: &str, file: &str) -> String {
    let msg = e.message().trim().replace('\n', " ");
    let loc = match e.span() {
        Some(span) => {
            let (line, col) = Lines::new(text).position(span.start);
            match key_at(text, span.start) {
                Some(key) => format!("{file}:{line}:{col} (`{key}`)"),
                None => format!("{file}:{line}:{col}"),
            }
        }
        None => file.to_string(),
    };
    let hint = if let Some((unknown, expected)) = parse_unknown_field(&msg) {
        match nearest(&unknown, &expected) {
            Some(best) => format!(
                "unknown key `{unknown}`; did you mean `{best}`? Valid keys here: {}.",
                expected.join(", ")
            ),
            None => format!(
                "unknown key `{unknown}`. Valid keys here: {}.",
                expected.join(", ")
            ),
        }
    } else if msg.starts_with("missing field") {
        format!("{msg}: add it (migrate.example.toml shows every key with its default).")
    } else if msg.contains("untagged enum PropertyValue") {
        "a librdkafka property takes a string, a number or a boolean, not an array or a table."
            .to_string()
    } else if msg.contains("unknown variant") {
        format!("{msg}.")
    } else {
        format!("{msg} (migrate.example.toml shows every key with its type and default).")
    };
    format!("invalid configuration at {loc}: {hint}")
}

/// Byte offsets of a text as 1-based (line, column), the column counted in characters.
struct Lines<'t> {
    text: &'t str,
    /// Where each line starts.
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// Never fails: an offset past the end, or inside a character, counts the characters
    /// that start before it.
    fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = self.text.get(start..).map_or(0, |rest| {
            rest.char_indices()
                .take_while(|(i, _)| start + i < offset)
                .count()
        });
        (line, col + 1)
    }
}

/// A key as the TOML parser read it: its dotted path (quotes removed) and the byte spans of
/// its name and of its value (a table opened by a header: the header).
struct WrittenKey {
    path: Vec<String>,
    name: Range<usize>,
    value: Range<usize>,
}

/// Every key of the text, nested ones included. Text that does not parse gives what the
/// parser could recover, so that syntax errors still name the key they are in.
fn written_keys(text: &str) -> Vec<WrittenKey> {
    let (root, _errors) = DeTable::parse_recoverable(text);
    let mut out = Vec::new();
    collect_table(root.get_ref(), &[], &mut out);
    out
}

fn collect_table(table: &DeTable<'_>, parent: &[String], out: &mut Vec<WrittenKey>) {
    for (name, value) in table.iter() {
        let mut path = parent.to_vec();
        path.push(name.get_ref().to_string());
        collect_value(value.get_ref(), &path, out);
        out.push(WrittenKey {
            path,
            name: name.span(),
            value: value.span(),
        });
    }
}

fn collect_value(value: &DeValue<'_>, path: &[String], out: &mut Vec<WrittenKey>) {
    match value {
        DeValue::Table(table) => collect_table(table, path, out),
        // The tables of an array (`[[name]]` or `[{..}, {..}]`) share the array's path.
        DeValue::Array(items) => {
            for item in items.iter() {
                collect_value(item.get_ref(), path, out);
            }
        }
        _ => {}
    }
}

/// The dotted key an error at `offset` is about (`migration.create_topics`): the deepest
/// key whose name or value covers the offset.
fn key_at(text: &str, offset: usize) -> Option<String> {
    written_keys(text)
        .into_iter()
        .filter(|k| k.name.contains(&offset) || k.value.contains(&offset))
        .max_by_key(|k| k.path.len())
        .map(|k| k.path.join("."))
}

/// Where the `index`-th element of the array at the dotted `key` is written, as
/// `file:line:column (`key`)`; the key's own place when the element is not found.
fn item_place(origin: &Origin, text: &str, key: &str, index: usize) -> String {
    match (item_offset(text, key, index), &origin.file) {
        (Some(offset), Some(file)) => {
            let (line, col) = Lines::new(text).position(offset);
            format!("{file}:{line}:{col} (`{key}`)")
        }
        _ => origin.locate(key, key),
    }
}

fn item_offset(text: &str, key: &str, index: usize) -> Option<usize> {
    let (root, _errors) = DeTable::parse_recoverable(text);
    let mut parts = key.split('.');
    let mut value = root.get_ref().get(parts.next()?)?;
    for part in parts {
        value = value.get_ref().get(part)?;
    }
    Some(value.get_ref().get(index)?.span().start)
}

/// Reads serde's "unknown field `x`, expected `a`, `b` or `c`" (also "expected one of ...").
fn parse_unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected: Vec<String> = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((unknown.to_string(), expected))
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn nearest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

/// Whether `name` matches the filter pattern: `*` matches any run of characters, dots and
/// slashes included, `?` exactly one character, and every other character only itself (no
/// classes, braces or escapes: consumer group names may contain `[`, `{` or `\`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    WildMatch::new(pattern).matches(name)
}

/// The include patterns (other than "*") that match none of `names`, each with up to five
/// names that look closest to it, so that an error can point at the likely typo.
pub fn unmatched_patterns(patterns: &[String], names: &[&str]) -> Vec<(String, Vec<String>)> {
    patterns
        .iter()
        .filter(|p| p.as_str() != "*" && !names.iter().any(|n| glob_match(p, n)))
        .map(|p| {
            let literal: String = p.chars().filter(|c| *c != '*' && *c != '?').collect();
            let len = literal.chars().count();
            // Compare "orders-*" with the start of each name, "*-v1" with its end.
            let part = |n: &str| -> String {
                let chars: Vec<char> = n.chars().collect();
                match (p.starts_with('*'), p.ends_with('*')) {
                    (false, true) => chars.iter().take(len).collect(),
                    (true, false) => chars[chars.len().saturating_sub(len)..].iter().collect(),
                    _ => n.to_string(),
                }
            };
            let mut scored: Vec<(usize, &str)> = names
                .iter()
                .map(|n| (strsim::damerau_levenshtein(&literal, &part(n)), *n))
                .collect();
            scored.sort();
            let near = scored.iter().take(5).map(|(_, n)| n.to_string()).collect();
            (p.clone(), near)
        })
        .collect()
}

impl FilterConfig {
    pub fn group_selected(&self, group: &str) -> bool {
        self.groups.iter().any(|p| glob_match(p, group))
            && !self.exclude_groups.iter().any(|p| glob_match(p, group))
    }

    /// Internal topics (`__*`) are never selected, whatever the patterns say.
    pub fn topic_selected(&self, topic: &str) -> bool {
        !is_internal_topic(topic)
            && self.topics.iter().any(|p| glob_match(p, topic))
            && !self.exclude_topics.iter().any(|p| glob_match(p, topic))
    }
}

/// One copy pipeline per core by default.
pub fn default_pipelines() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(64))
}

/// `__consumer_offsets`, `__transaction_state` and every other `__*` topic.
pub fn is_internal_topic(topic: &str) -> bool {
    topic.starts_with("__")
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

// ---------------------------------------------------------------------------------------
// Topic renaming: which target topic each source topic is copied to (`[topics]`), and the
// checks that every source topic gets a target topic of its own. Two source topics in one
// target topic would interleave their partitions' records, and no group offset could then
// be translated exactly, so a mapping that does that is refused before anything is copied.

/// Stands for the source topic's name in the `topics.target` template.
pub const PLACEHOLDER: &str = "{topic}";

/// The longest topic name Kafka accepts.
const MAX_TOPIC_NAME: usize = 249;

/// The `[topics]` table: explicit names first, then the template for every other topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMapping {
    /// Target name of every topic not in `map`; [`PLACEHOLDER`] stands for the source name.
    pub template: String,
    /// Source topic -> target topic.
    pub map: BTreeMap<String, String>,
}

impl Default for TopicMapping {
    fn default() -> Self {
        TopicMapping {
            template: PLACEHOLDER.to_string(),
            map: BTreeMap::new(),
        }
    }
}

/// The target topic `source` is copied to: its explicit name, or else the template's.
pub fn target_topic(source: &str, m: &TopicMapping) -> String {
    match m.map.get(source) {
        Some(t) => t.clone(),
        None => m.template.replace(PLACEHOLDER, source),
    }
}

/// Why `name` cannot be a Kafka topic, if it cannot.
pub fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} is reserved"));
    }
    if name.chars().count() > MAX_TOPIC_NAME {
        return Some(format!("it is longer than {MAX_TOPIC_NAME} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "it contains {c:?}; topic names use only letters, digits, '.', '_' and '-'"
        ));
    }
    None
}

/// The dotted key of the rule that names `source`'s target, and that key as messages
/// spell it.
fn rule_key(source: &str, m: &TopicMapping) -> (String, String) {
    if m.map.contains_key(source) {
        (
            format!("topics.map.{source}"),
            format!("topics.map.\"{source}\""),
        )
    } else {
        ("topics.target".into(), "topics.target".into())
    }
}

fn rule_place(source: &str, m: &TopicMapping, origin: &Origin) -> String {
    let (key, shown) = rule_key(source, m);
    if origin.file.is_some() && !origin.keys.contains_key(&key) {
        // Only the template can be unwritten: its default keeps the source's name.
        return format!("`{shown}`, not set: the topic keeps its name");
    }
    origin.locate(&key, &shown)
}

/// Where the rule is written, to order two rules by their place in the file.
fn rule_position(source: &str, m: &TopicMapping, origin: &Origin) -> (usize, usize) {
    let (key, _) = rule_key(source, m);
    origin.keys.get(&key).copied().unwrap_or((0, 0))
}

/// Checks the `[topics]` table as written, before any cluster is read: every explicit name
/// and the template give legal topic names outside Kafka's internal ones, and no two
/// explicit entries name the same target topic.
pub fn check_mapping_written(m: &TopicMapping, origin: &Origin) -> anyhow::Result<()> {
    let sample = m.template.replace(PLACEHOLDER, "t");
    if is_internal_topic(&sample) {
        return Err(usage(format!(
            "invalid configuration at {}: the template {:?} names internal topics (`__*` topics \
             belong to Kafka itself). Write a template that does not start with \"__\", e.g. \
             \"legacy.{PLACEHOLDER}\".",
            origin.locate("topics.target", "topics.target"),
            m.template
        )));
    }
    if let Some(why) = invalid_topic_name(&sample) {
        return Err(usage(format!(
            "invalid configuration at {}: the template {:?} does not give a valid topic name \
             ({why}). Write a name in which \"{PLACEHOLDER}\" stands for the source topic, e.g. \
             \"legacy.{PLACEHOLDER}\".",
            origin.locate("topics.target", "topics.target"),
            m.template
        )));
    }
    let keys: Vec<&str> = m.map.keys().map(String::as_str).collect();
    check_mapping(m, &keys, origin)
}

/// Checks the mapping for the source topics to be copied: each gets a legal target topic
/// outside Kafka's internal ones, and no two get the same one. Every problem is named with
/// the file, line and column of its rule.
pub fn check_mapping(m: &TopicMapping, sources: &[&str], origin: &Origin) -> anyhow::Result<()> {
    let mut sources = sources.to_vec();
    sources.sort_unstable();
    sources.dedup();
    let mut problems = Vec::new();
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    for s in sources {
        let t = target_topic(s, m);
        if is_internal_topic(&t) {
            problems.push(format!(
                "invalid configuration at {}: the source topic {s:?} would be copied to {t:?}, \
                 an internal topic of the target (`__*` topics belong to Kafka itself). Map it to \
                 a name that does not start with \"__\".",
                rule_place(s, m, origin)
            ));
            continue;
        }
        if let Some(why) = invalid_topic_name(&t) {
            problems.push(format!(
                "invalid configuration at {}: the source topic {s:?} would be copied to {t:?}, \
                 which is not a valid topic name ({why}). Map it to a valid name.",
                rule_place(s, m, origin)
            ));
            continue;
        }
        let Some(first) = taken.get(&t).copied() else {
            taken.insert(t, s);
            continue;
        };
        // The rule written later in the file is the one that collides.
        let (earlier, later) = if rule_position(first, m, origin) <= rule_position(s, m, origin) {
            (first, s)
        } else {
            (s, first)
        };
        let hint = if !m.map.contains_key(s)
            && !m.map.contains_key(first)
            && !m.template.contains(PLACEHOLDER)
        {
            format!(
                " The template {:?} has no \"{PLACEHOLDER}\", so it names every topic alike: \
                 put \"{PLACEHOLDER}\" in it, or name the topics one by one in [topics.map].",
                m.template
            )
        } else {
            String::new()
        };
        problems.push(format!(
            "invalid configuration at {}: the source topics {earlier:?} and {later:?} would both \
             be copied to the target topic {t:?} (the rule for {earlier:?} is at {}); their \
             records would mix and no group could resume at an exact offset. Give each source \
             topic a target topic of its own.{hint}",
            rule_place(later, m, origin),
            rule_place(earlier, m, origin),
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(usage(problems.join(" ")))
    }
}

/// The `[topics.map]` entries that name no topic of `names` (the source's), each with the
/// names that look closest, as messages ready to print; empty when all match.
pub fn unmatched_keys(m: &TopicMapping, names: &[&str], origin: &Origin) -> Vec<String> {
    let keys: Vec<String> = m.map.keys().cloned().collect();
    unmatched_patterns(&keys, names)
        .into_iter()
        .map(|(key, near)| {
            let nearby = if near.is_empty() {
                "the source has no topic at all".to_string()
            } else {
                format!("the closest source topics: {}", near.join(", "))
            };
            format!(
                "invalid configuration at {}: [topics.map] renames {key:?}, which is no topic on \
                 the source ({nearby}). Correct the name or remove the entry",
                origin.locate(
                    &format!("topics.map.{key}"),
                    &format!("topics.map.\"{key}\"")
                )
            )
        })
        .collect()
}

#[cfg(test)]
mod topic_mapping_tests {
    use super::*;
    use crate::error::{ExitKind, exit_kind};
    use proptest::prelude::*;

    fn mapping(template: &str, map: &[(&str, &str)]) -> TopicMapping {
        TopicMapping {
            template: template.into(),
            map: map
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The origin of a file with `[topics]` written as in the tests below.
    fn origin(text: &str) -> Origin {
        Origin::from_toml("m.toml", text)
    }

    fn refused(r: anyhow::Result<()>) -> String {
        let e = r.expect_err("refused");
        assert_eq!(exit_kind(&e), ExitKind::Usage);
        format!("{e:#}")
    }

    #[test]
    fn explicit_names_win_over_the_template() {
        let m = mapping("legacy.{topic}", &[("orders", "orders.v2")]);
        assert_eq!(target_topic("orders", &m), "orders.v2");
        assert_eq!(target_topic("payments", &m), "legacy.payments");
        assert_eq!(target_topic("x", &TopicMapping::default()), "x");
        assert_eq!(target_topic("a", &mapping("{topic}-{topic}", &[])), "a-a");
    }

    #[test]
    fn topic_names() {
        assert!(invalid_topic_name("orders.v2_x-1").is_none());
        for bad in ["", ".", "..", "a b", "a/b", "é", "{topic}"] {
            assert!(invalid_topic_name(bad).is_some(), "{bad:?}");
        }
        assert!(invalid_topic_name(&"a".repeat(250)).is_some());
        assert!(invalid_topic_name(&"a".repeat(249)).is_none());
    }

    #[test]
    fn two_explicit_names_onto_one_name_the_later_key() {
        let text = "[topics]\n[topics.map]\n\"a\" = \"x\"\n\"b\" = \"x\"\n";
        let m = mapping("{topic}", &[("a", "x"), ("b", "x")]);
        let s = refused(check_mapping_written(&m, &origin(text)));
        assert!(s.contains("m.toml:4:1 (`topics.map.\"b\"`)"), "{s}");
        assert!(s.contains("m.toml:3:1"), "{s}");
        assert!(s.contains("\"x\""), "{s}");
    }

    #[test]
    fn explicit_name_onto_an_internal_topic() {
        let text = "[topics.map]\norders = \"__consumer_offsets\"\n";
        let m = mapping("{topic}", &[("orders", "__consumer_offsets")]);
        let s = refused(check_mapping_written(&m, &origin(text)));
        assert!(s.contains("m.toml:2:1 (`topics.map.\"orders\"`)"), "{s}");
        assert!(s.contains("internal"), "{s}");
    }

    #[test]
    fn template_onto_internal_or_invalid_names() {
        let text = "[topics]\ntarget = \"__{topic}\"\n";
        let s = refused(check_mapping_written(
            &mapping("__{topic}", &[]),
            &origin(text),
        ));
        assert!(s.contains("m.toml:2:1 (`topics.target`)"), "{s}");
        let s = refused(check_mapping_written(
            &mapping("a b.{topic}", &[]),
            &origin(text),
        ));
        assert!(s.contains("m.toml:2:1 (`topics.target`)"), "{s}");
        let text = "[topics.map]\n\"o\" = \"o/v2\"\n";
        let s = refused(check_mapping_written(
            &mapping("{topic}", &[("o", "o/v2")]),
            &origin(text),
        ));
        assert!(s.contains("m.toml:2:1 (`topics.map.\"o\"`)"), "{s}");
    }

    #[test]
    fn template_without_placeholder_is_fine_for_one_topic_only() {
        let text = "[topics]\ntarget = \"all\"\n";
        let m = mapping("all", &[]);
        check_mapping_written(&m, &origin(text)).expect("one name is fine as written");
        check_mapping(&m, &["a"], &origin(text)).expect("one topic");
        let s = refused(check_mapping(&m, &["a", "b"], &origin(text)));
        assert!(s.contains("m.toml:2:1 (`topics.target`)"), "{s}");
        assert!(s.contains("has no \"{topic}\""), "{s}");
    }

    #[test]
    fn explicit_name_onto_a_templated_name() {
        // "a" -> "b" and "b" -> "b" by the default template.
        let text = "[topics.map]\na = \"b\"\n";
        let m = mapping("{topic}", &[("a", "b")]);
        check_mapping_written(&m, &origin(text)).expect("fine alone");
        let s = refused(check_mapping(&m, &["a", "b"], &origin(text)));
        assert!(s.contains("m.toml:2:1 (`topics.map.\"a\"`)"), "{s}");
        assert!(
            s.contains(
                "(the rule for \"b\" is at `topics.target`, not set: the topic keeps its name)"
            ),
            "{s}"
        );
    }

    #[test]
    fn unmatched_keys_name_their_place_and_the_nearest_topics() {
        let text = "[topics.map]\nordres = \"x\"\npayments = \"y\"\n";
        let m = mapping("{topic}", &[("ordres", "x"), ("payments", "y")]);
        let got = unmatched_keys(&m, &["orders", "payments"], &origin(text));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("m.toml:2:1 (`topics.map.\"ordres\"`)"),
            "{got:?}"
        );
        assert!(got[0].contains("orders"), "{got:?}");
    }

    proptest! {
        /// Whenever the mapping passes the check, no two source topics share a target topic.
        #[test]
        fn accepted_mappings_are_injective(
            template in prop::sample::select(vec![
                "{topic}", "legacy.{topic}", "{topic}.v2", "all", "x{topic}{topic}", "a",
            ]),
            map in prop::collection::btree_map("[abc]{1,2}", "[abcx]{1,2}", 0..4),
            sources in prop::collection::vec("[abc]{1,2}", 0..6),
        ) {
            let m = TopicMapping { template: template.to_string(), map };
            let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
            if check_mapping(&m, &sources, &Origin::default()).is_ok() {
                let mut seen = BTreeMap::new();
                for s in &sources {
                    let t = target_topic(s, &m);
                    if let Some(other) = seen.insert(t.clone(), *s) {
                        prop_assert_eq!(other, *s, "{} and {} both go to {}", other, s, t);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitKind, exit_kind};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(text: &str) -> String {
        let e = parse(text, "migrate.toml", &no_env).expect_err("should fail");
        assert_eq!(exit_kind(&e), ExitKind::Usage);
        let s = format!("{e:#}");
        assert!(!s.contains('\n'), "one paragraph: {s}");
        s
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = parse(
            "[source]\nbootstrap_servers = \"a:1\"\n[target]\nbootstrap_servers = \"b:2\"\n",
            "f",
            &no_env,
        )
        .expect("valid");
        assert_eq!(c.source.bootstrap_servers, "a:1");
        assert_eq!(c.filter, FilterConfig::default());
        assert_eq!(c.migration, MigrationConfig::default());
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../migrate.example.toml");
        let c = parse(text, "migrate.example.toml", &|_| Some("pw".into())).expect("valid example");
        assert_eq!(c.source.bootstrap_servers, "127.0.0.1:19092");
        assert_eq!(c.target.bootstrap_servers, "127.0.0.1:29092");
        assert_eq!(c.migration, MigrationConfig::default());
        assert_eq!(c.filter, FilterConfig::default());
    }

    #[test]
    fn unknown_key_names_line_and_nearest() {
        let s = err("[source]\nbootstap_servers = \"a:1\"\n");
        assert!(s.contains("migrate.toml:2:1"), "{s}");
        assert!(s.contains("did you mean `bootstrap_servers`"), "{s}");
    }

    #[test]
    fn unknown_table_names_nearest() {
        let s = err("[migraton]\ncreate_topics = true\n");
        assert!(s.contains("migrate.toml:1:"), "{s}");
        assert!(s.contains("did you mean `migration`"), "{s}");
    }

    #[test]
    fn unknown_key_far_from_all_lists_valid_keys() {
        let s = err("[migration]\nzzzzzzzzzzzzzz = 1\n");
        assert!(s.contains("Valid keys here"), "{s}");
        assert!(!s.contains("did you mean"), "{s}");
    }

    #[test]
    fn wrong_type_names_location() {
        let s = err("[migration]\ncreate_topics = \"yes\"\n");
        assert!(
            s.contains("migrate.toml:2:17 (`migration.create_topics`)"),
            "{s}"
        );
        assert!(s.contains("bool"), "{s}");
    }

    #[test]
    fn wrong_enum_value_lists_variants() {
        let s = err("[migration]\nuncommitted_partitions = \"latest\"\n");
        assert!(s.contains("migrate.toml:2:"), "{s}");
        assert!(s.contains("earliest") && s.contains("skip"), "{s}");
    }

    #[test]
    fn missing_required_key_names_table() {
        let s = err("[source]\nproperties = {}\n");
        assert!(s.contains("migrate.toml:1:1"), "{s}");
        assert!(s.contains("bootstrap_servers"), "{s}");
    }

    #[test]
    fn malformed_toml_names_location() {
        let s = err("[source\nbootstrap_servers = 1\n");
        assert!(s.contains("migrate.toml:1:"), "{s}");
    }

    #[test]
    fn missing_env_var_is_named() {
        let s = err(
            "[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n\"sasl.password\" = \"${NOPE_PW}\"\n",
        );
        assert!(s.contains("`NOPE_PW`"), "{s}");
        assert!(s.contains("source.properties.\"sasl.password\""), "{s}");
    }

    #[test]
    fn rescan_is_read_and_zero_is_refused() {
        let c = parse("[migration]\nrescan_secs = 2\n", "f", &|_| None).expect("valid");
        assert_eq!(c.migration.rescan, Duration::from_secs(2));
        let s = err("[migration]\nrescan_secs = 0\n");
        assert!(s.contains("rescan_secs") && s.contains("at least 1"), "{s}");
        let s = err("[migration]\nrescan = 2\n");
        assert!(s.contains("did you mean `rescan_secs`"), "{s}");
    }

    #[test]
    fn zero_timeout_is_refused() {
        let s = err("[migration]\ntimeout_secs = 0\n");
        assert!(s.contains("timeout_secs"), "{s}");
    }

    #[test]
    fn empty_pattern_is_refused() {
        let s = err("[filter]\ngroups = [\"\"]\n");
        assert!(s.contains("filter.groups"), "{s}");
    }

    #[test]
    fn env_expansion() {
        let env = |n: &str| (n == "PW").then(|| "s3cret".to_string());
        assert_eq!(expand_env("a${PW}b", &env), Ok("as3cretb".into()));
        assert_eq!(expand_env("$${PW}", &env), Ok("${PW}".into()));
        assert_eq!(expand_env("cost $5", &env), Ok("cost $5".into()));
        assert_eq!(expand_env("${PW", &env), Ok("${PW".into()));
        assert_eq!(expand_env("${X}", &env), Err("X".into()));
    }

    #[test]
    fn property_values_of_any_scalar_type() {
        let c = parse(
            "[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n\"linger.ms\" = 5\n\"enable.idempotence\" = true\n",
            "f",
            &no_env,
        )
        .expect("valid");
        assert_eq!(c.source.properties.0["linger.ms"], "5");
        assert_eq!(c.source.properties.0["enable.idempotence"], "true");
    }

    #[test]
    fn secrets_are_redacted_everywhere_config_is_printed() {
        let env = |n: &str| (n == "PW").then(|| "hunter2-very-secret".to_string());
        let c = parse(
            "[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n\"sasl.username\" = \"migrator\"\n\"sasl.password\" = \"${PW}\"\n\"ssl.key.pem\" = \"KEYDATA\"\n\"sasl.jaas.config\" = \"JAAS\"\n\"sasl.oauthbearer.client.secret\" = \"OAUTH\"\n[target]\nbootstrap_servers = \"b:1\"\n",
            "f",
            &env,
        )
        .expect("valid");
        assert_eq!(
            c.source.properties.0["sasl.password"],
            "hunter2-very-secret"
        );
        let printed = [
            format!("{c:?}"),
            format!("{c:#?}"),
            c.redacted_summary(),
            format!("{:?}", c.source.properties.redacted()),
        ];
        for p in printed {
            for secret in ["hunter2-very-secret", "KEYDATA", "JAAS", "OAUTH"] {
                assert!(!p.contains(secret), "{secret} leaked in {p}");
            }
            assert!(p.contains("migrator"), "non-secrets stay visible: {p}");
        }
        let secrets: Vec<&str> = c.source.properties.secret_values().collect();
        assert_eq!(secrets.len(), 4);
    }

    #[test]
    fn literal_secrets_are_found_and_env_references_are_not() {
        let text = "[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n\
                    \"sasl.password\" = \"${PW}\"\n\"sasl.username\" = \"me\"\n\
                    [target]\nbootstrap_servers = \"b:1\"\n[target.properties]\n\
                    \"sasl.password\" = \"hunter2\"\n\"ssl.key.pem\" = \"pre-${KEY}\"\n";
        assert_eq!(
            literal_secrets(text),
            vec![
                "`target.properties.\"sasl.password\"`".to_string(),
                "`target.properties.\"ssl.key.pem\"`".to_string()
            ]
        );
        assert!(literal_secrets("[source]\nbootstrap_servers = \"a:1\"\n").is_empty());
    }

    #[test]
    fn readable_file_with_literal_secret_warns_without_the_value() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("kmigrate-cfgperm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("migrate.toml");
        let text = "[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n\
                    \"sasl.password\" = \"hunter2-literal\"\n";
        std::fs::write(&path, text).expect("write");
        let set = |mode| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        set(0o644);
        let w = exposed_secrets_warning(&path, text).expect("warns");
        assert!(w.contains("migrate.toml") && w.contains("chmod 600"), "{w}");
        assert!(w.contains("source.properties.\"sasl.password\""), "{w}");
        assert!(!w.contains("hunter2-literal"), "{w}");
        set(0o640);
        assert!(exposed_secrets_warning(&path, text).is_some());
        set(0o600);
        assert!(exposed_secrets_warning(&path, text).is_none());
        set(0o644);
        let from_env = "[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n\
                        \"sasl.password\" = \"${PW}\"\n";
        assert!(exposed_secrets_warning(&path, from_env).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn secret_keys() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.jaas.config",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "sasl.username",
            "security.protocol",
            "ssl.ca.location",
            "linger.ms",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    fn src() -> ConfigSource {
        ConfigSource {
            path: PathBuf::from("migrate.toml"),
            explicit: false,
        }
    }

    #[test]
    fn flags_override_and_no_file_needed() {
        let c = Config::resolve(None, Some("s:1"), Some("t:2"), &src()).expect("valid");
        assert_eq!(c.source.bootstrap_servers, "s:1");
        assert_eq!(c.target.bootstrap_servers, "t:2");
        let base = parse(
            "[source]\nbootstrap_servers = \"a:1\"\n[target]\nbootstrap_servers = \"b:2\"\n",
            "f",
            &no_env,
        )
        .expect("valid");
        let c = Config::resolve(Some(base), None, Some("t:9"), &src()).expect("valid");
        assert_eq!(c.source.bootstrap_servers, "a:1");
        assert_eq!(c.target.bootstrap_servers, "t:9");
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
    fn missing_explicit_file_is_an_error_default_is_not() {
        let missing = PathBuf::from("/nonexistent/kmigrate/migrate.toml");
        let e = load(&ConfigSource {
            path: missing.clone(),
            explicit: true,
        })
        .expect_err("explicit");
        assert_eq!(exit_kind(&e), ExitKind::Usage);
        assert!(
            load(&ConfigSource {
                path: missing,
                explicit: false
            })
            .expect("default may be absent")
            .config
            .is_none()
        );
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

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "orders"));
        assert!(glob_match("test?", "test3"));
        assert!(!glob_match("test?", "test"));
        assert!(glob_match("orders.*.v1", "orders.eu.v1"));
        assert!(!glob_match("orders.*.v1", "orders.eu.v2"));
        assert!(glob_match("*-group", "test123-group"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn unmatched_patterns_name_the_closest_names() {
        let names = ["orders-eu", "orders-us", "payments", "audit"];
        let pats = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(unmatched_patterns(&pats(&["*", "orders-*", "audit"]), &names).is_empty());
        let got = unmatched_patterns(&pats(&["ordrs-*", "paymnts"]), &names);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "ordrs-*");
        assert_eq!(&got[0].1[..2], ["orders-eu", "orders-us"]);
        assert_eq!(got[1].1[0], "payments");
        assert_eq!(
            unmatched_patterns(&pats(&["x*"]), &[]),
            vec![("x*".into(), vec![])]
        );
    }

    #[test]
    fn origin_finds_keys_of_tables_and_arrays() {
        let text = "# c\n[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n  \"ssl.ca.location\" = \"x\"\n\
                    [filter]\ngroups = [\n  \"a\",\n  \"b = c\",\n]\ntopics = [\"t\"]\n";
        let o = Origin::from_toml("m.toml", text);
        assert_eq!(
            o.locate_property("source", "ssl.ca.location"),
            "m.toml:5:3 (`source.properties.\"ssl.ca.location\"`)"
        );
        assert_eq!(
            o.locate("filter.groups", "filter.groups"),
            "m.toml:7:1 (`filter.groups`)"
        );
        assert_eq!(
            o.locate("filter.topics", "filter.topics"),
            "m.toml:11:1 (`filter.topics`)"
        );
        // Not written: the enclosing table.
        assert_eq!(
            o.locate_property("source", "linger.ms"),
            "m.toml:4:1 (`source.properties.\"linger.ms\"`)"
        );
        assert_eq!(
            Origin::default().locate("filter.groups", "filter.groups"),
            "`filter.groups`"
        );
    }

    #[test]
    fn glob_special_characters_other_than_star_and_question_mark_are_literal() {
        assert!(glob_match("grp[1]", "grp[1]"));
        assert!(!glob_match("grp[1]", "grp1"));
        assert!(glob_match("{a,b}*", "{a,b}-x"));
        assert!(!glob_match("{a,b}*", "a-x"));
        assert!(glob_match("dom\\*", "dom\\user"));
        assert!(glob_match("a/**/b", "a/x/y/b"));
        assert!(glob_match("a**", "a"));
        assert!(glob_match("*", "a/b.c\nd"));
        assert!(glob_match("caf?", "café"));
        assert!(glob_match("?", "é"));
        assert!(!glob_match("??", "é"));
    }

    #[test]
    fn origin_finds_keys_inside_inline_tables() {
        let text = "[source]\nbootstrap_servers = \"a:1\"\n\
                    properties = { \"ssl.ca.location\" = \"x\", \"linger.ms\" = 5 }\n\
                    [migration]\ncreate_topics = true\n";
        let o = Origin::from_toml("m.toml", text);
        assert_eq!(
            o.locate_property("source", "linger.ms"),
            "m.toml:3:41 (`source.properties.\"linger.ms\"`)"
        );
        assert_eq!(
            o.locate_property("source", "ssl.ca.location"),
            "m.toml:3:16 (`source.properties.\"ssl.ca.location\"`)"
        );
        assert_eq!(
            o.locate("migration.create_topics", "migration.create_topics"),
            "m.toml:5:1 (`migration.create_topics`)"
        );
    }

    #[test]
    fn error_inside_an_inline_table_names_the_inner_key() {
        let s =
            err("[source]\nbootstrap_servers = \"a:1\"\nproperties = { \"linger.ms\" = [1] }\n");
        assert!(
            s.contains("migrate.toml:3:30 (`source.properties.linger.ms`)"),
            "{s}"
        );
        let s = err("migration.create_topics = \"yes\"\n");
        assert!(
            s.contains("migrate.toml:1:27 (`migration.create_topics`)"),
            "{s}"
        );
    }

    #[test]
    fn nearest_key_suggestions() {
        let keys: Vec<String> = ["bootstrap_servers", "properties"].map(String::from).into();
        assert_eq!(
            nearest("bootstrap_server", &keys).as_deref(),
            Some("bootstrap_servers")
        );
        assert_eq!(nearest("proprety", &keys).as_deref(), Some("properties"));
        assert_eq!(nearest("prpoerties", &keys).as_deref(), Some("properties"));
        assert_eq!(nearest("zzzzzzzzzzzz", &keys), None);
        // Two swapped pairs in a short word: Levenshtein counts 4 edits, too many for a typo.
        let filter_keys: Vec<String> = ["groups", "topics"].map(String::from).into();
        assert_eq!(nearest("tpoisc", &filter_keys).as_deref(), Some("topics"));
        let s = err("[migration]\ncompresion = \"lz4\"\n");
        assert!(s.contains("migrate.toml:2:1"), "{s}");
        assert!(s.contains("did you mean `compression`"), "{s}");
        let s = err(
            "[source]\nbootstrap_servers = \"a:1\"\nproperties = {}\nbootstrap_sevrers = \"b\"\n",
        );
        assert!(
            s.contains("migrate.toml:4:1 (`source.bootstrap_sevrers`)"),
            "{s}"
        );
        assert!(s.contains("did you mean `bootstrap_servers`"), "{s}");
    }

    #[test]
    fn bad_pattern_names_its_place() {
        let s = err("[filter]\ngroups = [\"a*\",\n  \" \"]\n");
        assert!(s.contains("migrate.toml:3:3 (`filter.groups`)"), "{s}");
        assert!(s.contains("empty pattern"), "{s}");
    }

    proptest::proptest! {
        /// Spans from a damaged file (multi-byte characters, unclosed tables) never make a
        /// position lookup panic: every text is a config or a usage error.
        #[test]
        fn edited_example_parses_or_is_a_usage_error(
            edits in proptest::collection::vec(
                (0usize..5000, "[\\[\\]{}=\"'., \n#a-zé*]{0,3}", 0usize..4),
                1..6,
            ),
        ) {
            let mut chars: Vec<char> = include_str!("../migrate.example.toml").chars().collect();
            for (at, insert, delete) in edits {
                let at = at % (chars.len() + 1);
                let end = (at + delete).min(chars.len());
                chars.splice(at..end, insert.chars());
            }
            let text: String = chars.into_iter().collect();
            if let Err(e) = parse(&text, "f.toml", &|_| Some("pw".into())) {
                proptest::prop_assert_eq!(exit_kind(&e), ExitKind::Usage, "{:#}", e);
            }
        }

        #[test]
        fn positions_of_any_offset(text in "(?s).{0,60}", offset in 0usize..200) {
            let (line, col) = Lines::new(&text).position(offset);
            proptest::prop_assert!(line >= 1 && col >= 1);
            let _ = key_at(&text, offset);
            let _ = Origin::from_toml("f.toml", &text);
        }
    }

    #[test]
    fn load_returns_warnings_for_the_caller_to_print() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("kmigrate-cfgwarn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("migrate.toml");
        std::fs::write(
            &path,
            "[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n\
             \"sasl.password\" = \"hunter2-literal\"\n",
        )
        .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let loaded = load(&ConfigSource {
            path: path.clone(),
            explicit: true,
        })
        .expect("valid");
        assert!(loaded.config.is_some());
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("chmod 600"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn topics_table_is_read_and_checked_where_written() {
        let c = parse(
            "[topics]\ntarget = \"legacy.{topic}\"\n[topics.map]\n\"orders\" = \"orders.v2\"\n",
            "f",
            &no_env,
        )
        .expect("valid");
        assert_eq!(target_topic("orders", &c.topics), "orders.v2");
        assert_eq!(target_topic("payments", &c.topics), "legacy.payments");
        assert_eq!(
            parse("", "f", &no_env).expect("valid").topics,
            TopicMapping::default()
        );
        let s = err("[topics.map]\na = \"x\"\nb = \"x\"\n");
        assert!(s.contains("migrate.toml:3:1 (`topics.map.\"b\"`)"), "{s}");
        let s = err("[topics]\nmap = { orders = \"__consumer_offsets\" }\n");
        assert!(
            s.contains("migrate.toml:2:9 (`topics.map.\"orders\"`)"),
            "{s}"
        );
        let s = err("[topics]\ntraget = \"x\"\n");
        assert!(s.contains("did you mean `target`"), "{s}");
    }

    #[test]
    fn filters() {
        let f = FilterConfig {
            groups: vec!["test*".into()],
            exclude_groups: vec!["test34-group".into()],
            topics: vec!["*".into()],
            exclude_topics: vec!["tmp.*".into()],
        };
        assert!(f.group_selected("test123-group"));
        assert!(!f.group_selected("test34-group"));
        assert!(!f.group_selected("other"));
        assert!(f.topic_selected("test1"));
        assert!(!f.topic_selected("tmp.x"));
        assert!(!f.topic_selected("__consumer_offsets"));
        assert!(!f.topic_selected("__transaction_state"));
    }
}
