//! How to reach one cluster: its role, address, properties and timeout, and the clients
//! built from them. Refusals of the configuration are usage errors naming the property.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError as RdKafkaError;

use super::context::Ctx;
use super::secure;
use super::wire::Conn;
use crate::config::{ClusterConfig, Origin};
use crate::error::usage;

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

/// How to reach one cluster; builds every kind of client kmigrate uses for it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub role: Role,
    pub bootstrap: String,
    cfg: ClusterConfig,
    pub timeout: Duration,
}

impl Endpoint {
    pub fn new(role: Role, cfg: &ClusterConfig, timeout: Duration) -> Endpoint {
        Endpoint {
            role,
            bootstrap: cfg.bootstrap_servers.clone(),
            cfg: cfg.clone(),
            timeout,
        }
    }

    /// "source cluster 127.0.0.1:19092": how errors name this cluster.
    pub fn describe(&self) -> String {
        format!("{} cluster {}", self.role.name(), self.bootstrap)
    }

    /// Why the batch engine's own connections cannot reach this cluster, if they cannot
    /// (a security property they do not honour).
    pub fn wire_refusal(&self) -> Option<String> {
        secure::from_properties(&self.cfg.properties.0)
            .err()
            .map(|why| format!("the {} is reached with {why}", self.describe()))
    }

    /// A batch engine connection to the broker at `address` of this cluster, over the TLS
    /// and SASL its properties ask for.
    pub fn wire(&self, address: &str) -> anyhow::Result<Conn> {
        let security = secure::from_properties(&self.cfg.properties.0)
            .map_err(|why| anyhow::anyhow!("the {} is reached with {why}", self.describe()))?;
        Conn::connect(address, self.timeout, &security)
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
}
