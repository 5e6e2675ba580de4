//! The TOML configuration: schema, defaults, validation, `${VAR}` secrets and redaction.
//!
//! Loading is two steps: [`load`] reads and validates the file (every error names the file,
//! line and column, and how to fix it), then [`Config::with_overrides`] applies the command
//! line's `--source` / `--target`. Nothing here talks to Kafka.

mod filter;
mod load;
mod origin;
mod secrets;
mod topics;
mod types;

pub use filter::{
    FilterConfig, Pattern, Patterns, glob_match, is_internal_topic, unmatched_patterns,
};
pub use load::{Loaded, load, nearest, parse};
pub use origin::Origin;
pub use secrets::{Properties, REDACTED, expand_env, is_secret_key};
pub use topics::{
    PLACEHOLDER, TopicMapping, check_mapping, check_mapping_written, invalid_topic_name,
    target_topic, unmatched_keys,
};
pub use types::{
    ClusterConfig, Compression, Config, ConfigSource, Engine, MigrationConfig, UncommittedPolicy,
    config_source, default_pipelines,
};
