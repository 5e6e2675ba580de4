//! The only place that talks to rdkafka. Every other module asks [`Cluster`] for what it
//! needs and gets kmigrate's own types back.
//!
//! - `mod.rs`: building clients from the configuration, the client context, errors;
//! - [`error`]: Kafka errors by code (retriable, refusal, other) and the typed error;
//! - [`admin`]: groups, committed offsets, watermarks, topics (metadata, configs, creation);
//! - [`ffi`]: librdkafka admin calls that rdkafka's safe API lacks;
//! - [`reader`]: reading partition ranges (copy and verify);
//! - [`writer`]: producing records to the target.

pub mod admin;
pub mod error;
pub mod ffi;
pub mod reader;
pub mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;

use crate::config::{ClusterConfig, Origin};
use crate::error::usage;

pub use admin::Admin;

/// Which side of the migration a cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Target => "target",
        }
    }
}

/// How to reach one cluster; builds every kind of client kmigrate uses for it. Clones share
/// one admin session: a command connects (and authenticates) once per cluster, whichever
/// stage asks.
#[derive(Clone)]
pub struct Cluster {
    pub role: Role,
    pub bootstrap: String,
    cfg: ClusterConfig,
    pub timeout: Duration,
    session: Arc<Mutex<Option<Arc<Admin>>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("role", &self.role)
            .field("bootstrap", &self.bootstrap)
            .field("cfg", &self.cfg)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub fn new(role: Role, cfg: &ClusterConfig, timeout: Duration) -> Cluster {
        Cluster {
            role,
            bootstrap: cfg.bootstrap_servers.clone(),
            cfg: cfg.clone(),
            timeout,
            session: Arc::default(),
        }
    }

    /// The same cluster without its admin session: what the session itself keeps, so that
    /// the two do not hold each other alive.
    pub(crate) fn detached(&self) -> Cluster {
        Cluster {
            session: Arc::default(),
            ..self.clone()
        }
    }

    /// "source cluster 127.0.0.1:19092": how errors name this cluster.
    pub fn describe(&self) -> String {
        format!("{} cluster {}", self.role.name(), self.bootstrap)
    }

    /// The librdkafka configuration shared by all clients of this cluster: the user's
    /// properties first, then what kmigrate needs to stay bounded in time.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.cfg.properties.0 {
            c.set(k, v);
        }
        let ms = self.timeout.as_millis().min(i32::MAX as u128).to_string();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "kmigrate")
            .set("socket.connection.setup.timeout.ms", &ms)
            .set_log_level(RDKafkaLogLevel::Warning);
        if !self.cfg.properties.0.contains_key("socket.timeout.ms") {
            c.set("socket.timeout.ms", &ms);
        }
        c
    }

    /// Creates a client, turning librdkafka's refusal of a property into a usage error that
    /// names the configuration table to fix.
    pub(crate) fn create<T>(&self, config: &ClientConfig, what: &str) -> anyhow::Result<T>
    where
        T: rdkafka::config::FromClientConfigAndContext<Ctx>,
    {
        self.create_with(config, Ctx::default(), what)
    }

    /// [`Cluster::create`] with a context of the caller's choosing.
    pub(crate) fn create_with<C, T>(
        &self,
        config: &ClientConfig,
        ctx: C,
        what: &str,
    ) -> anyhow::Result<T>
    where
        C: ClientContext,
        T: rdkafka::config::FromClientConfigAndContext<C>,
    {
        config
            .create_with_context(ctx)
            .map_err(|e| match self.refusal(e) {
                Ok((_, why)) => {
                    let role = self.role.name();
                    usage(format!(
                        "the {role} configuration is not accepted by librdkafka: {why}. Check \
                         [{role}.properties] (librdkafka's CONFIGURATION.md lists every property)."
                    ))
                }
                Err(other) => anyhow::Error::new(other),
            })
            .with_context(|| format!("creating a {what} for the {}", self.describe()))
    }

    /// Reads librdkafka's refusal of a configuration: the property it names, if it is one of
    /// the user's, and why, on one line with every secret value replaced. Other errors are
    /// handed back.
    fn refusal(&self, e: KafkaError) -> Result<(Option<String>, String), KafkaError> {
        let props = &self.cfg.properties;
        let (key, why) = match e {
            KafkaError::ClientConfig(_, desc, key, value) => {
                let value = if crate::config::is_secret_key(&key) {
                    crate::config::REDACTED.to_string()
                } else {
                    value
                };
                (Some(key.clone()), format!("{desc} (`{key}` = {value:?})"))
            }
            KafkaError::ClientCreation(msg) => {
                // "ssl.ca.location failed: ..." names the property in its text;
                // "Unsupported SASL mechanism: FOO" only its value.
                let named = props
                    .0
                    .keys()
                    .filter(|k| msg.contains(k.as_str()))
                    .max_by_key(|k| k.len());
                let by_value = || {
                    props
                        .0
                        .iter()
                        .filter(|(k, v)| {
                            !crate::config::is_secret_key(k) && v.len() >= 3 && msg.contains(*v)
                        })
                        .max_by_key(|(_, v)| v.len())
                        .map(|(k, _)| k)
                };
                let key = named.or_else(by_value).cloned();
                (key, msg)
            }
            other => return Err(other),
        };
        let mut why = why.replace(['\n', '\r'], " ");
        for secret in props.secret_values() {
            why = why.replace(secret, crate::config::REDACTED);
        }
        Ok((key.filter(|k| props.0.contains_key(k)), why))
    }

    /// Creates (and drops) a client with this cluster's configuration, so that a property
    /// librdkafka refuses is reported before any work, where it is written. Sends nothing.
    pub fn check_properties(&self, origin: &Origin) -> anyhow::Result<()> {
        let Err(e) = self
            .client_config()
            .create_with_context::<Ctx, BaseConsumer<Ctx>>(Ctx::default())
        else {
            return Ok(());
        };
        let role = self.role.name();
        let (key, why) = self.refusal(e).map_err(anyhow::Error::new)?;
        let place = match &key {
            Some(k) => origin.locate_property(role, k),
            None => origin.locate(&format!("{role}.properties"), &format!("{role}.properties")),
        };
        let fix = match &key {
            Some(k) => format!("fix or remove `{k}` in [{role}.properties]"),
            None => format!("check [{role}.properties]"),
        };
        Err(usage(format!(
            "invalid configuration at {place}: librdkafka refuses the {role} cluster's \
             properties: {why}. To fix: {fix} (librdkafka's CONFIGURATION.md lists every \
             property and its values)."
        )))
    }

    /// The admin session of this cluster (created on first use): groups, offsets, metadata,
    /// topic creation.
    pub fn admin(&self) -> anyhow::Result<Arc<Admin>> {
        let mut slot = self.session.lock().map_err(|_| {
            anyhow::anyhow!("the admin session of the {} is poisoned", self.describe())
        })?;
        if let Some(admin) = slot.as_ref() {
            return Ok(Arc::clone(admin));
        }
        let admin = Arc::new(Admin::new(self)?);
        *slot = Some(Arc::clone(&admin));
        Ok(admin)
    }
}

/// Client context shared by all of kmigrate's clients: forwards librdkafka's log to
/// `tracing` and remembers the last client-level error, so that a timeout can say why
/// (connection refused, authentication failed, ...) instead of only "timed out".
#[derive(Default)]
pub struct Ctx {
    last_error: Mutex<Option<String>>,
    /// The last authentication failure: kept apart because the disconnects that follow it
    /// would overwrite `last_error`.
    auth_error: Mutex<Option<String>>,
}

impl Ctx {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }

    /// The last authentication or TLS failure, if any.
    pub fn auth_error(&self) -> Option<String> {
        self.auth_error.lock().ok().and_then(|g| g.clone())
    }

    fn remember(&self, msg: &str) {
        let msg = tidy(msg);
        if is_auth_error(&msg)
            && let Ok(mut g) = self.auth_error.lock()
        {
            *g = Some(msg.clone());
        }
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(msg);
        }
    }
}

/// librdkafka's failure text without what says nothing to an operator: the
/// "[thrd:...]: " and "sasl_ssl://host:port/bootstrap: " prefixes and the
/// "(after 356ms in state AUTH_REQ)" suffix.
fn tidy(msg: &str) -> String {
    let mut m = msg.rsplit_once("]: ").map_or(msg, |(_, m)| m).trim();
    if let Some((head, rest)) = m.split_once(": ")
        && head.contains("://")
        && !head.contains(' ')
    {
        m = rest;
    }
    if let Some(i) = m.rfind(" (after ")
        && m.ends_with(')')
    {
        m = &m[..i];
    }
    m.trim().to_string()
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(target: "librdkafka", "{fac}: {log_message}")
            }
            _ => tracing::debug!(target: "librdkafka", "{fac}: {log_message}"),
        }
        // Connection and authentication failures arrive here even on clients whose event
        // queue nobody polls (the admin client): keep them to explain a later timeout.
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32)
            && (fac == "FAIL" || is_auth_error(log_message))
        {
            self.remember(log_message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "client error: {error}: {reason}");
        if reason.is_empty() {
            self.remember(&error.to_string());
        } else {
            self.remember(reason);
        }
    }
}

impl ConsumerContext for Ctx {}

/// Turns a failed request into one sentence: what failed where, why, and what to check.
pub(crate) fn explain(
    cluster: &Cluster,
    ctx: &Ctx,
    e: anyhow::Error,
    doing: &str,
) -> anyhow::Error {
    if let Some(why) = ctx.auth_error() {
        tracing::debug!("{doing} on the {} failed: {e:#}", cluster.describe());
        return auth_failed(cluster, &why);
    }
    let role = cluster.role.name();
    let hint = match ctx.last_error() {
        Some(last) => format!(
            "Last client error: {last}. Check bootstrap_servers in [{role}] and that the cluster \
             is reachable from here."
        ),
        None => format!(
            "No usable answer within {} s: check bootstrap_servers in [{role}] and that the \
             cluster is reachable from here (migration.timeout_secs sets the limit).",
            cluster.timeout.as_secs()
        ),
    };
    anyhow::anyhow!(
        "{doing} on the {} failed: {e:#}. {hint}",
        cluster.describe()
    )
}

/// The cluster answered but refused kmigrate's credentials or certificate: say so, and
/// where they are configured (exit 3, like any failure to talk to a cluster).
pub(crate) fn auth_failed(cluster: &Cluster, why: &str) -> anyhow::Error {
    let role = cluster.role.name();
    anyhow::anyhow!(
        "authentication to the {} failed: {why}. The cluster answers, but refuses kmigrate's \
         credentials: check security.protocol, sasl.mechanism, sasl.username and sasl.password \
         (or the ssl.* certificate, key and CA) in [{role}.properties], and the environment \
         variables they name.",
        cluster.describe()
    )
}

/// Failures that retrying cannot fix: a refused login or a refused TLS handshake.
fn is_auth_error(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("authenticat")
        || m.contains("sasl")
        || m.contains("ssl handshake")
        || m.contains("certificate")
        || m.contains("ssl alert")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Properties;

    #[test]
    fn invalid_property_is_a_usage_error_naming_the_table() {
        let mut cfg = ClusterConfig {
            bootstrap_servers: "127.0.0.1:1".into(),
            properties: Properties::default(),
        };
        cfg.properties
            .0
            .insert("no.such.property".into(), "1".into());
        let c = Cluster::new(Role::Target, &cfg, Duration::from_secs(1));
        let e = c.admin().err().expect("refused");
        assert_eq!(crate::error::exit_kind(&e), crate::error::ExitKind::Usage);
        let s = format!("{e:#}");
        assert!(
            s.contains("[target.properties]") && s.contains("no.such.property"),
            "{s}"
        );
    }

    #[test]
    fn failures_are_tidied_for_operators() {
        assert_eq!(
            tidy(
                "[thrd:sasl_plaintext://127.0.0.1:35094/bootstrap]: sasl_plaintext://127.0.0.1:35094/bootstrap: \
                 SASL authentication error: Authentication failed (after 356ms in state AUTH_REQ)"
            ),
            "SASL authentication error: Authentication failed"
        );
        assert_eq!(
            tidy("Connect to ipv4#127.0.0.1:1 failed: Connection refused"),
            "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
        );
    }

    #[test]
    fn auth_errors_are_recognised() {
        assert!(is_auth_error(
            "SASL authentication error: Authentication failed during authentication due to invalid credentials"
        ));
        assert!(is_auth_error(
            "Receive failed: error:0A000412:SSL routines::sslv3 alert bad certificate: SSL alert number 42"
        ));
        assert!(is_auth_error(
            "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"
        ));
        assert!(!is_auth_error(
            "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
        ));
    }
}
