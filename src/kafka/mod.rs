//! The only place that talks to rdkafka. Every other module asks [`Cluster`] for what it
//! needs and gets kmigrate's own types back.
//!
//! - `mod.rs`: building clients from the configuration, the client context;
//! - [`error`]: Kafka errors by code (retriable, refusal, other) and the typed error;
//! - [`retry`]: retrying an admin step through a failover, within the timeout;
//! - [`admin`]: groups, committed offsets, watermarks, topics (metadata, configs, creation);
//! - [`ffi`]: librdkafka admin calls that rdkafka's safe API lacks;
//! - [`reader`]: reading partition ranges (copy and verify);
//! - [`writer`]: producing records to the target.

pub mod admin;
pub mod error;
pub mod ffi;
pub mod reader;
pub mod retry;
pub mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError as RdKafkaError;

use crate::config::{ClusterConfig, Origin};
use crate::error::usage;
use error::{Class, Code};

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
    fn refusal(&self, e: RdKafkaError) -> Result<(Option<String>, String), RdKafkaError> {
        let props = &self.cfg.properties;
        let (key, why) = match e {
            RdKafkaError::ClientConfig(_, desc, key, value) => {
                let value = if crate::config::is_secret_key(&key) {
                    crate::config::REDACTED.to_string()
                } else {
                    value
                };
                (Some(key.clone()), format!("{desc} (`{key}` = {value:?})"))
            }
            RdKafkaError::ClientCreation(msg) => {
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
/// `tracing`, remembers the last connection failure, so that a timeout can say why
/// (connection refused, ...) instead of only "timed out", and notes a refusal of kmigrate's
/// credentials by its error code, so that it fails at once.
#[derive(Default)]
pub struct Ctx {
    last_error: Mutex<Option<String>>,
    /// The last authentication or TLS refusal and its code: kept apart because the
    /// disconnects that follow it would overwrite `last_error`.
    auth_error: Mutex<Option<(Code, String)>>,
}

impl Ctx {
    /// librdkafka's last connection failure, for explanations only.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }

    /// The last authentication or TLS refusal, if any: its code and librdkafka's words.
    pub fn auth_error(&self) -> Option<(Code, String)> {
        self.auth_error.lock().ok().and_then(|g| g.clone())
    }

    fn remember(&self, msg: &str) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(tidy(msg));
        }
    }

    /// An error event of the client, with its code and librdkafka's text (empty when the
    /// event came without it: its FAIL log line, delivered just before, says it). The code
    /// decides whether kmigrate's credentials or certificate were refused.
    pub(crate) fn observe(&self, code: Code, reason: &str) {
        // Only the client's own connection failures explain a timeout. "1/1 brokers are
        // down" sums up the failures before it: keep their words.
        if !reason.is_empty() && code.is_local() && code != Code::ALL_BROKERS_DOWN {
            self.remember(reason);
        }
        let why = self.last_error().unwrap_or_else(|| code.description());
        let refused = match error::classify(code) {
            Class::Authentication => Some(code),
            // A broker refuses a TLS 1.3 client certificate (or its absence) after the
            // handshake: librdkafka reports a receive failure, and only OpenSSL's code in
            // its text tells the alert.
            _ if code == Code::TRANSPORT
                && error::tls_alert(&why).is_some_and(error::is_refusing_alert) =>
            {
                Some(Code::SSL)
            }
            _ => None,
        };
        if let Some(code) = refused
            && let Ok(mut g) = self.auth_error.lock()
        {
            *g = Some((code, why));
        }
    }
}

/// librdkafka's failure text without what says nothing to an operator: the
/// "[thrd:...]: " and "sasl_ssl://host:port/bootstrap: " (or "host:port/1: ") prefixes and
/// the "(after 356ms in state AUTH_REQ)" suffix.
fn tidy(msg: &str) -> String {
    let mut m = msg.rsplit_once("]: ").map_or(msg, |(_, m)| m).trim();
    if let Some((head, rest)) = m.split_once(": ")
        && head.contains('/')
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
        // A connection failure is logged (as FAIL) just before its error event, and even
        // on clients whose error events nobody reads: keep the words to explain a later
        // timeout or refusal. What the failure means is decided by the event's code.
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) && fac == "FAIL" {
            self.remember(log_message);
        }
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "client error: {error}: {reason}");
        match error::code_of(&error) {
            Some(code) => self.observe(code, reason),
            None if reason.is_empty() => self.remember(&error.to_string()),
            None => self.remember(reason),
        }
    }
}

impl ConsumerContext for Ctx {}

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
        assert_eq!(
            tidy("127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"),
            "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
        );
    }

    #[test]
    fn refusals_are_recognised_by_code() {
        let ctx = Ctx::default();
        ctx.observe(
            Code::TRANSPORT,
            "Connect to ipv4#127.0.0.1:1 failed: Connection refused",
        );
        assert_eq!(ctx.auth_error(), None);
        // A text that reads like a refusal decides nothing without a refusing code.
        ctx.observe(Code::TIMED_OUT, "SASL authentication error: it looks bad");
        assert_eq!(ctx.auth_error(), None);
        assert_eq!(
            ctx.last_error().as_deref(),
            Some("SASL authentication error: it looks bad")
        );

        // The event without text: its FAIL log line, delivered before it, explains it.
        ctx.log(
            RDKafkaLogLevel::Error,
            "FAIL",
            "[thrd:sasl_plaintext://127.0.0.1:35094/bootstrap]: sasl_plaintext://127.0.0.1:35094/bootstrap: \
             SASL authentication error: Authentication failed (after 356ms in state AUTH_REQ)",
        );
        ctx.observe(Code::AUTHENTICATION, "");
        assert_eq!(
            ctx.auth_error(),
            Some((
                Code::AUTHENTICATION,
                "SASL authentication error: Authentication failed".to_string()
            ))
        );

        let ctx = Ctx::default();
        ctx.observe(
            Code::SSL,
            "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed",
        );
        assert_eq!(ctx.auth_error().map(|(c, _)| c), Some(Code::SSL));

        // TLS 1.3: the broker's alert arrives as a receive failure.
        let ctx = Ctx::default();
        ctx.observe(
            Code::TRANSPORT,
            "Receive failed: error:0A000412:SSL routines::ssl/tls alert bad certificate: SSL alert number 42",
        );
        assert_eq!(ctx.auth_error().map(|(c, _)| c), Some(Code::SSL));
    }
}
