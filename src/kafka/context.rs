//! The client context every kmigrate client shares: librdkafka's log into `tracing`, the
//! last connection failure kept to explain a timeout, and refused credentials noted by
//! their error code.

use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdKafkaError;

use super::error::{self, Class, Code};
use super::repeats;

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
pub(super) fn tidy(msg: &str) -> String {
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

/// A librdkafka line as the same for every client: [`tidy`], and without the client's
/// name ("kmigrate#consumer-88: "), which differs between the clients a sync builds.
fn plain(msg: &str) -> String {
    let m = tidy(msg);
    match m.split_once(": ") {
        Some((name, rest)) if name.contains('#') && !name.contains(' ') => rest.to_string(),
        _ => m,
    }
}

/// librdkafka's syslog level as rdkafka's enum.
pub(super) fn log_level(level: std::ffi::c_int) -> RDKafkaLogLevel {
    match level {
        0 => RDKafkaLogLevel::Emerg,
        1 => RDKafkaLogLevel::Alert,
        2 => RDKafkaLogLevel::Critical,
        3 => RDKafkaLogLevel::Error,
        4 => RDKafkaLogLevel::Warning,
        5 => RDKafkaLogLevel::Notice,
        6 => RDKafkaLogLevel::Info,
        _ => RDKafkaLogLevel::Debug,
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // Every client of a cluster says the same while a broker is down: one line per
        // text and window, with the count of repeats, whichever client said it.
        repeats::limited(
            &format!("{fac}: {}", plain(log_message)),
            |line| match level {
                RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                    tracing::error!(target: "librdkafka", "{line}")
                }
                _ => tracing::debug!(target: "librdkafka", "{line}"),
            },
        );
        // A connection failure is logged (as FAIL) just before its error event, and even
        // on clients whose error events nobody reads: keep the words to explain a later
        // timeout or refusal. What the failure means is decided by the event's code.
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) && fac == "FAIL" {
            self.remember(log_message);
        }
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        repeats::limited(
            &format!("client error: {error}: {}", plain(reason)),
            |line| tracing::debug!(target: "librdkafka", "{line}"),
        );
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

    #[test]
    fn the_same_line_of_two_clients_is_one_text() {
        let a = "[thrd:app]: kmigrate#consumer-88: 1/1 brokers are down";
        let b = "[thrd:app]: kmigrate#consumer-89: 1/1 brokers are down";
        assert_eq!(plain(a), "1/1 brokers are down");
        assert_eq!(plain(a), plain(b));
        let c = "[thrd:127.0.0.1:31092/bootstrap]: 127.0.0.1:31092/bootstrap: Connect to \
                 ipv4#127.0.0.1:31092 failed: Connection refused (after 0ms in state CONNECT)";
        assert_eq!(
            plain(c),
            "Connect to ipv4#127.0.0.1:31092 failed: Connection refused"
        );
    }
}
