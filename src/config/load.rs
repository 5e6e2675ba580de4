//! Reading the configuration file: the file as written (serde, with spans), its
//! validation, and errors that name the file, line and column and say how to fix them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::usage;

use super::filter::{FilterConfig, check_patterns};
use super::origin::{Lines, Origin, key_at};
use super::secrets::{Properties, expand_env, is_secret_key};
use super::topics::{TopicMapping, check_mapping_written};
use super::types::{
    ClusterConfig, Compression, Config, ConfigSource, Engine, MigrationConfig, UncommittedPolicy,
    default_pipelines,
};

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
    compression: Compression,
    max_bytes_per_second: u64,
    buffer_mb: u64,
    pipelines: usize,
    rescan_secs: u64,
    engine: Engine,
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
            engine: d.engine,
        }
    }
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
            "{file}: `migration.rescan_secs` is 0; it must be at least 1 (the default is 60): \
             it is how often `kmigrate sync` looks for new groups, topics and partitions."
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
        engine: m.engine,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::topics::target_topic;
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
        let text = include_str!("../../migrate.example.toml");
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
    fn compression_is_one_of_the_named_codecs() {
        for (name, want) in [
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
            ("snappy", Compression::Snappy),
            ("gzip", Compression::Gzip),
            ("none", Compression::None),
        ] {
            let c = parse(
                &format!("[migration]\ncompression = \"{name}\"\n"),
                "f",
                &no_env,
            )
            .expect("valid");
            assert_eq!(c.migration.compression, want);
            assert_eq!(c.migration.compression.as_str(), name);
        }
        let s = err("[migration]\ncompression = \"lzo\"\n");
        assert!(
            s.contains("migrate.toml:2:15 (`migration.compression`)"),
            "{s}"
        );
        for name in ["lz4", "zstd", "snappy", "gzip", "none"] {
            assert!(s.contains(name), "{s}");
        }
        assert!(err("[migration]\ncompression = \"LZ4\"\n").contains("lz4"));
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
            let mut chars: Vec<char> = include_str!("../../migrate.example.toml").chars().collect();
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
}
