//! The only place that talks to rdkafka. Every other module asks [`Cluster`] for what it
//! needs and gets kmigrate's own types back.
//!
//! - `mod.rs`: a [`Cluster`]: an endpoint and its one admin session;
//! - [`endpoint`]: building clients from the configuration; [`context`]: their context;
//! - [`error`]: Kafka errors by code (retriable, refusal, other) and the typed error;
//! - [`retry`]: retrying an admin step through a failover, within the timeout;
//! - [`fanout`]: many admin steps at once (batches of partitions, groups), a few in flight;
//! - [`admin`]: groups, committed offsets, watermarks, topics (metadata, configs, creation);
//! - [`ffi`]: librdkafka admin calls that rdkafka's safe API lacks;
//! - [`reader`]: reading partition ranges (copy and verify);
//! - [`settle`]: waiting until a replicated target partition holds only committed records;
//! - [`watch`]: which followed source partitions got new records (sync);
//! - [`writer`]: producing records to the target;
//! - [`wire`]: the batch engine's own connections, with [`secure`] (TLS and SASL settings)
//!   and [`scram`] (SCRAM exchanges).

pub mod admin;
pub mod context;
pub mod endpoint;
pub mod error;
mod fanout;
pub mod ffi;
pub mod reader;
pub mod repeats;
pub mod retry;
pub mod scram;
pub mod secure;
pub mod settle;
pub mod watch;
pub mod wire;
pub mod writer;

use std::sync::{Arc, Mutex};

pub use admin::Admin;
pub use context::Ctx;
pub use endpoint::{Endpoint, Role};

use crate::config::ClusterConfig;

/// One cluster as a command sees it: how to reach it (its [`Endpoint`], also reached
/// through this value) and its admin session. Clones share the session: a command
/// connects (and authenticates) once per cluster, whichever stage asks.
#[derive(Clone)]
pub struct Cluster {
    endpoint: Endpoint,
    session: Arc<Mutex<Sessions>>,
}

/// A cluster's admin session, and the ones it replaced ([`Cluster::fresh_admin`]), kept
/// until the cluster is closed ([`close`]): closing a session waits for its client to
/// leave its consumer group (rdkafka polls for that in steps of 100 ms), which is better
/// paid for all of them at once, at the end, than for each one on the way.
#[derive(Default)]
struct Sessions {
    current: Option<Arc<Admin>>,
    retired: Vec<Arc<Admin>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.endpoint.fmt(f)
    }
}

impl std::ops::Deref for Cluster {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Cluster {
    pub fn new(role: Role, cfg: &ClusterConfig, timeout: std::time::Duration) -> Cluster {
        Cluster {
            endpoint: Endpoint::new(role, cfg, timeout),
            session: Arc::default(),
        }
    }

    /// The admin session of this cluster (created on first use): groups, offsets, metadata,
    /// topic creation.
    pub fn admin(&self) -> anyhow::Result<Arc<Admin>> {
        let mut sessions = self.sessions()?;
        if let Some(admin) = sessions.current.as_ref() {
            return Ok(Arc::clone(admin));
        }
        let admin = Arc::new(Admin::new(&self.endpoint)?);
        sessions.current = Some(Arc::clone(&admin));
        Ok(admin)
    }

    /// A new admin session, which becomes this cluster's: its clients look every group's
    /// coordinator up afresh. librdkafka keeps a coordinator it found for as long as it is
    /// asked, even once that broker is down; a session that looked the groups up at the
    /// plan would keep asking a coordinator that failed during the copy. The session it
    /// replaces is closed with the cluster.
    pub fn fresh_admin(&self) -> anyhow::Result<Arc<Admin>> {
        let admin = Arc::new(Admin::new(&self.endpoint)?);
        let mut sessions = self.sessions()?;
        if let Some(old) = sessions.current.replace(Arc::clone(&admin)) {
            sessions.retired.push(old);
        }
        Ok(admin)
    }

    fn sessions(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Sessions>> {
        self.session.lock().map_err(|_| {
            anyhow::anyhow!("the admin session of the {} is poisoned", self.describe())
        })
    }
}

/// Closes the admin sessions of `clusters` (their current and replaced ones), all at once:
/// each waits up to 100 ms for its client to close, so one after the other they add up at
/// the end of every command. A session still used elsewhere closes when that user is done;
/// a cluster asked for its session again afterwards makes a new one.
pub fn close(clusters: &[&Cluster]) {
    let sessions: Vec<Arc<Admin>> = clusters
        .iter()
        .filter_map(|c| c.session.lock().ok())
        .flat_map(|mut s| {
            let current = s.current.take();
            std::mem::take(&mut s.retired).into_iter().chain(current)
        })
        .collect();
    let helpers: Vec<Admin> = sessions.iter().flat_map(|s| s.take_helpers()).collect();
    std::thread::scope(|s| {
        for admin in sessions {
            s.spawn(move || drop(admin));
        }
        for helper in helpers {
            s.spawn(move || drop(helper));
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::context::tidy;
    use super::error::Code;
    use super::*;
    use crate::config::Properties;
    use rdkafka::ClientContext as _;
    use rdkafka::config::RDKafkaLogLevel;

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
    fn a_fresh_session_becomes_the_clusters_and_closing_ends_them_all() {
        let cfg = ClusterConfig {
            bootstrap_servers: "127.0.0.1:1".into(),
            properties: Properties::default(),
        };
        let c = Cluster::new(Role::Source, &cfg, Duration::from_secs(1));
        let clone = c.clone();
        let first = c.admin().expect("a session");
        assert!(Arc::ptr_eq(
            &first,
            &clone.admin().expect("the same session")
        ));
        let fresh = c.fresh_admin().expect("a fresh session");
        assert!(!Arc::ptr_eq(&first, &fresh));
        assert!(Arc::ptr_eq(&fresh, &clone.admin().expect("the fresh one")));
        // The replaced session is kept (the cluster's, and the one held here).
        assert_eq!(Arc::strong_count(&first), 2);
        close(&[&c]);
        assert_eq!(Arc::strong_count(&first), 1);
        assert_eq!(Arc::strong_count(&fresh), 1);
        let after = c.admin().expect("a new session");
        assert!(!Arc::ptr_eq(&after, &fresh));
        close(&[&c, &clone]);
        assert_eq!(Arc::strong_count(&after), 1);
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
