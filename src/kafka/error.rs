//! Kafka errors by their code, not their text: which ones a retry can fix (a coordinator or
//! leader moving, a broker restarting), which ones are refusals (credentials, ACLs), and the
//! error value that carries the code through `anyhow` chains to whoever decides.

use std::fmt;

use rdkafka::types::RDKafkaErrorCode as Rd;

/// A librdkafka error code (`rd_kafka_resp_err_t`): Kafka's protocol codes (positive, and -1
/// for UNKNOWN_SERVER_ERROR) as brokers send them, and librdkafka's own local codes
/// (-200..-100, named with a leading underscore: `_TRANSPORT`, `_TIMED_OUT`). Kept as the
/// integer because a newer broker may send a code no enum of ours knows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(pub i32);

impl Code {
    pub const NO_ERROR: Code = Code::of(Rd::NoError);
    pub const UNKNOWN_TOPIC_OR_PARTITION: Code = Code::of(Rd::UnknownTopicOrPartition);
    pub const LEADER_NOT_AVAILABLE: Code = Code::of(Rd::LeaderNotAvailable);
    /// NOT_LEADER_OR_FOLLOWER in today's Kafka.
    pub const NOT_LEADER_FOR_PARTITION: Code = Code::of(Rd::NotLeaderForPartition);
    pub const REQUEST_TIMED_OUT: Code = Code::of(Rd::RequestTimedOut);
    pub const NETWORK_EXCEPTION: Code = Code::of(Rd::NetworkException);
    pub const COORDINATOR_LOAD_IN_PROGRESS: Code = Code::of(Rd::CoordinatorLoadInProgress);
    pub const COORDINATOR_NOT_AVAILABLE: Code = Code::of(Rd::CoordinatorNotAvailable);
    pub const NOT_COORDINATOR: Code = Code::of(Rd::NotCoordinator);
    pub const ILLEGAL_GENERATION: Code = Code::of(Rd::IllegalGeneration);
    pub const UNKNOWN_MEMBER_ID: Code = Code::of(Rd::UnknownMemberId);
    pub const REBALANCE_IN_PROGRESS: Code = Code::of(Rd::RebalanceInProgress);
    pub const TOPIC_AUTHORIZATION_FAILED: Code = Code::of(Rd::TopicAuthorizationFailed);
    pub const GROUP_AUTHORIZATION_FAILED: Code = Code::of(Rd::GroupAuthorizationFailed);
    pub const CLUSTER_AUTHORIZATION_FAILED: Code = Code::of(Rd::ClusterAuthorizationFailed);
    pub const TOPIC_ALREADY_EXISTS: Code = Code::of(Rd::TopicAlreadyExists);
    pub const INVALID_PARTITIONS: Code = Code::of(Rd::InvalidPartitions);
    pub const NOT_CONTROLLER: Code = Code::of(Rd::NotController);
    pub const KAFKA_STORAGE_ERROR: Code = Code::of(Rd::KafkaStorageError);
    pub const SASL_AUTHENTICATION_FAILED: Code = Code::of(Rd::SaslAuthenticationFailed);
    pub const FENCED_LEADER_EPOCH: Code = Code::of(Rd::FencedLeaderEpoch);
    pub const UNKNOWN_LEADER_EPOCH: Code = Code::of(Rd::UnknownLeaderEpoch);
    pub const OFFSET_NOT_AVAILABLE: Code = Code::of(Rd::OffsetNotAvailable);
    pub const FENCED_MEMBER_EPOCH: Code = Code::of(Rd::FencedMemberEpoch);
    /// librdkafka's local "no such entry" (`_NOENT`).
    pub const NOENT: Code = Code::of(Rd::NoEnt);
    pub const STALE_MEMBER_EPOCH: Code = Code::of(Rd::StaleMemberEpoch);
    /// CORRUPT_MESSAGE in today's Kafka.
    pub const INVALID_MESSAGE: Code = Code::of(Rd::InvalidMessage);
    pub const MESSAGE_TOO_LARGE: Code = Code::of(Rd::MessageSizeTooLarge);
    /// RECORD_LIST_TOO_LARGE in today's Kafka.
    pub const MESSAGE_BATCH_TOO_LARGE: Code = Code::of(Rd::MessageBatchTooLarge);
    pub const NOT_ENOUGH_REPLICAS: Code = Code::of(Rd::NotEnoughReplicas);
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: Code = Code::of(Rd::NotEnoughReplicasAfterAppend);
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: Code = Code::of(Rd::OutOfOrderSequenceNumber);
    pub const DUPLICATE_SEQUENCE_NUMBER: Code = Code::of(Rd::DuplicateSequenceNumber);
    pub const INVALID_PRODUCER_EPOCH: Code = Code::of(Rd::InvalidProducerEpoch);
    pub const UNKNOWN_PRODUCER_ID: Code = Code::of(Rd::UnknownProducerId);
    pub const INVALID_RECORD: Code = Code::of(Rd::InvalidRecord);
    pub const PRODUCER_FENCED: Code = Code::of(Rd::ProducerFenced);

    /// `_TRANSPORT`: a connection failed or broke.
    pub const TRANSPORT: Code = Code::of(Rd::BrokerTransportFailure);
    /// `_RESOLVE`: a broker's host name did not resolve.
    pub const RESOLVE: Code = Code::of(Rd::Resolve);
    /// `_ALL_BROKERS_DOWN`.
    pub const ALL_BROKERS_DOWN: Code = Code::of(Rd::AllBrokersDown);
    /// `_TIMED_OUT`: no answer within the request's timeout.
    pub const TIMED_OUT: Code = Code::of(Rd::OperationTimedOut);
    /// `_SSL`: the TLS handshake or the broker's certificate was refused.
    pub const SSL: Code = Code::of(Rd::SSL);
    /// `_WAIT_COORD`: the group coordinator is not known yet.
    pub const WAIT_COORD: Code = Code::of(Rd::WaitingForCoordinator);
    /// `_NODE_UPDATE`: a broker's address changed under a request.
    pub const NODE_UPDATE: Code = Code::of(Rd::NodeUpdate);
    /// `_AUTHENTICATION`: SASL refused kmigrate's credentials.
    pub const AUTHENTICATION: Code = Code::of(Rd::Authentication);
    /// `_PARTIAL`: only some brokers answered (listing groups).
    pub const PARTIAL: Code = Code::of(Rd::Partial);
    /// `_UNSUPPORTED_FEATURE`: the broker is too old for the request (librdkafka checks
    /// the versions it announced before sending).
    pub const UNSUPPORTED_FEATURE: Code = Code::of(Rd::UnsupportedFeature);
    /// `_TIMED_OUT_QUEUE`.
    pub const TIMED_OUT_QUEUE: Code = Code::of(Rd::TimedOutQueue);
    /// `_MSG_TIMED_OUT`: a record was not acknowledged within `message.timeout.ms`.
    pub const MSG_TIMED_OUT: Code = Code::of(Rd::MessageTimedOut);

    const fn of(c: Rd) -> Code {
        Code(c as i32)
    }

    /// librdkafka's name of the code: `NOT_COORDINATOR`, `_TRANSPORT`.
    pub fn name(self) -> String {
        // SAFETY: err2name accepts any code and returns a static string.
        static_str(unsafe { err2name(self.0) })
    }

    /// librdkafka's one-line description: "Broker: Not coordinator".
    pub fn description(self) -> String {
        // SAFETY: err2str accepts any code and returns a static string.
        static_str(unsafe { err2str(self.0) })
    }

    /// One of librdkafka's own codes: the client gave up (timeout, broken connection)
    /// rather than a broker answering with this code.
    pub fn is_local(self) -> bool {
        self.0 > Rd::Begin as i32 && self.0 < Rd::End as i32
    }

    /// A broker answered with this code: the cluster is there.
    pub fn is_answer(self) -> bool {
        self != Code::NO_ERROR && !self.is_local()
    }

    /// The broker asked is not (or no longer) the group's coordinator: the coordinator
    /// must be looked up again.
    pub fn is_coordinator_moving(self) -> bool {
        matches!(
            self,
            Code::NOT_COORDINATOR | Code::COORDINATOR_NOT_AVAILABLE
        )
    }
}

impl From<Rd> for Code {
    fn from(c: Rd) -> Code {
        Code(c as i32)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What a code means for the step that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A broker moving or restarting: retried until the step's time is spent.
    Retriable,
    /// Retried only for a few seconds: right after a topic is created, brokers learn of it
    /// one by one; past that, the topic or partition really is not there.
    RetriableBriefly,
    /// The cluster refused kmigrate's credentials or certificate (SASL, TLS).
    Authentication,
    /// The cluster knows who kmigrate is and refuses the operation (ACLs).
    Authorization,
    /// Anything else: retrying gives the same answer.
    Other,
}

/// Sorts a code into what kmigrate does about it.
pub fn classify(code: Code) -> Class {
    match code {
        Code::NOT_COORDINATOR
        | Code::COORDINATOR_LOAD_IN_PROGRESS
        | Code::COORDINATOR_NOT_AVAILABLE
        | Code::NOT_LEADER_FOR_PARTITION
        | Code::LEADER_NOT_AVAILABLE
        | Code::FENCED_LEADER_EPOCH
        | Code::UNKNOWN_LEADER_EPOCH
        | Code::OFFSET_NOT_AVAILABLE
        | Code::NOT_CONTROLLER
        | Code::KAFKA_STORAGE_ERROR
        | Code::REQUEST_TIMED_OUT
        | Code::NETWORK_EXCEPTION
        | Code::TRANSPORT
        | Code::RESOLVE
        | Code::ALL_BROKERS_DOWN
        | Code::TIMED_OUT
        | Code::TIMED_OUT_QUEUE
        | Code::MSG_TIMED_OUT
        | Code::WAIT_COORD
        | Code::NODE_UPDATE
        | Code::PARTIAL => Class::Retriable,
        Code::UNKNOWN_TOPIC_OR_PARTITION => Class::RetriableBriefly,
        Code::AUTHENTICATION | Code::SASL_AUTHENTICATION_FAILED | Code::SSL => {
            Class::Authentication
        }
        Code::TOPIC_AUTHORIZATION_FAILED
        | Code::GROUP_AUTHORIZATION_FAILED
        | Code::CLUSTER_AUTHORIZATION_FAILED => Class::Authorization,
        _ => Class::Other,
    }
}

/// A retry may get another answer: a coordinator or leader moving, a broker restarting.
pub fn is_retriable(code: Code) -> bool {
    matches!(classify(code), Class::Retriable | Class::RetriableBriefly)
}

/// A wait that ran out for something the cluster does by itself once it is whole again,
/// such as a target partition's followers confirming what its leader holds: a command with
/// bounded waits fails with it, one that follows the source for days waits longer.
#[derive(Debug)]
pub struct Awaiting(pub String);

impl fmt::Display for Awaiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Awaiting {}

/// Whether a cluster that comes back heals `e`: a broker, a leader or the network was away
/// for longer than a step's time (a retriable code), or replicas were not yet in sync
/// ([`Awaiting`]). Never a refusal (credentials, ACLs), a topic or partition that is not
/// there, a usage error, nor an error without a code: those stop a command whatever it is.
pub fn heals(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Awaiting>())
        || find(e).is_some_and(|k| classify(k.code) == Class::Retriable)
}

/// A refusal of kmigrate itself (credentials, certificate or ACLs): never retried, fails the
/// command at once.
pub fn is_auth(code: Code) -> bool {
    matches!(classify(code), Class::Authentication | Class::Authorization)
}

/// The code that speaks for several per-partition or per-group errors: the first that a
/// retry cannot fix, else the first. A retry is only worth it when every one is retriable.
pub fn representative(codes: impl IntoIterator<Item = Code>) -> Option<Code> {
    let mut first = None;
    for c in codes {
        if !is_retriable(c) {
            return Some(c);
        }
        first.get_or_insert(c);
    }
    first
}

/// The TLS alert a broker sent when it refused the connection, read from librdkafka's
/// failure text: with TLS 1.3 a broker refuses a client certificate (or its absence) after
/// the handshake, so librdkafka reports a plain `_TRANSPORT` receive failure and the only
/// code is OpenSSL's packed error in the text, "error:0A000412:SSL routines::...". Parsed as
/// that number (OpenSSL 3's layout: library in bits 23-30, reason below; TLS alert `n` is
/// SSL reason 1000 + n), not by looking for words.
pub fn tls_alert(text: &str) -> Option<u8> {
    const ERR_LIB_SSL: u32 = 20;
    const SSL_AD_REASON_OFFSET: u32 = 1000;
    text.match_indices("error:").find_map(|(i, _)| {
        let hex = text.get(i + 6..i + 14)?;
        if text.as_bytes().get(i + 14) != Some(&b':') {
            return None;
        }
        let packed = u32::from_str_radix(hex, 16).ok()?;
        let lib = (packed >> 23) & 0xFF;
        let reason = packed & 0x7F_FFFF;
        (lib == ERR_LIB_SSL && (SSL_AD_REASON_OFFSET..SSL_AD_REASON_OFFSET + 256).contains(&reason))
            .then(|| (reason - SSL_AD_REASON_OFFSET) as u8)
    })
}

/// TLS alerts by which a broker refuses kmigrate's certificate or TLS settings: retrying
/// with the same configuration gets the same alert.
pub fn is_refusing_alert(alert: u8) -> bool {
    matches!(
        alert,
        40 // handshake_failure
            | 42 // bad_certificate
            | 43 // unsupported_certificate
            | 44 // certificate_revoked
            | 45 // certificate_expired
            | 46 // certificate_unknown
            | 48 // unknown_ca
            | 49 // access_denied
            | 116 // certificate_required
    )
}

/// A Kafka error with its code: what kmigrate was doing, on which cluster, what the broker
/// or librdkafka said and, once the admin layer gave up, what the operator should do.
/// Travels inside `anyhow` chains; [`find`] gets it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: Code,
    /// "describing consumer group g1", or librdkafka's request ("ListOffsets for 3
    /// partition(s)") below the admin layer.
    pub step: String,
    /// "target cluster 127.0.0.1:29092"; empty below the admin layer, which knows it.
    pub cluster: String,
    /// What the broker or librdkafka said, with the code's name.
    pub message: String,
    /// What to do about it; empty until the admin layer gives up on the step.
    pub hint: String,
}

impl KafkaError {
    /// An error with librdkafka's text for it (`detail`), or the code's own description.
    pub fn new(code: Code, step: impl Into<String>, detail: &str) -> KafkaError {
        let detail = if detail.is_empty() {
            code.description()
        } else {
            detail.to_string()
        };
        KafkaError {
            code,
            step: step.into(),
            cluster: String::new(),
            message: format!("{}: {detail}", code.name()),
            hint: String::new(),
        }
    }

    /// An error whose message is already written (several partitions, a hint inside).
    pub fn with_message(code: Code, step: impl Into<String>, message: String) -> KafkaError {
        KafkaError {
            code,
            step: step.into(),
            cluster: String::new(),
            message,
            hint: String::new(),
        }
    }

    pub fn class(&self) -> Class {
        classify(self.code)
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.cluster.is_empty(), self.class()) {
            // A refused login is about the connection, whichever step needed it.
            (false, Class::Authentication) => {
                write!(f, "authentication to the {} failed", self.cluster)?
            }
            (false, _) => write!(f, "{} on the {} failed", self.step, self.cluster)?,
            (true, _) => write!(f, "{} failed", self.step)?,
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, ". {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for KafkaError {}

/// The Kafka error in an `anyhow` chain, if any.
pub fn find(e: &anyhow::Error) -> Option<&KafkaError> {
    e.chain().find_map(|c| c.downcast_ref::<KafkaError>())
}

/// The code of rust-rdkafka's error, including the admin results it keeps apart.
pub fn code_of(e: &rdkafka::error::KafkaError) -> Option<Code> {
    match e {
        rdkafka::error::KafkaError::AdminOp(c) => Some(Code::from(*c)),
        other => other.rdkafka_error_code().map(Code::from),
    }
}

// librdkafka's names and descriptions of error codes, declared with the code as a plain
// int: a code this build does not know must not become an invalid Rust enum value.
unsafe extern "C" {
    #[link_name = "rd_kafka_err2name"]
    fn err2name(err: std::ffi::c_int) -> *const std::ffi::c_char;
    #[link_name = "rd_kafka_err2str"]
    fn err2str(err: std::ffi::c_int) -> *const std::ffi::c_char;
}

/// A string librdkafka returns with static lifetime, copied.
fn static_str(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated (librdkafka's static strings).
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_heal_and_refusals_do_not() {
        let with = |c: Code| {
            anyhow::Error::new(KafkaError::new(c, "listing partition offsets", ""))
                .context("reading the source's last stable offsets")
        };
        for c in [
            Code::ALL_BROKERS_DOWN,
            Code::TRANSPORT,
            Code::TIMED_OUT,
            Code::MSG_TIMED_OUT,
            Code::LEADER_NOT_AVAILABLE,
            Code::NOT_COORDINATOR,
        ] {
            assert!(heals(&with(c)), "{c:?}");
        }
        for c in [
            Code::SASL_AUTHENTICATION_FAILED,
            Code::SSL,
            Code::TOPIC_AUTHORIZATION_FAILED,
            Code::UNKNOWN_TOPIC_OR_PARTITION,
            Code::INVALID_PARTITIONS,
        ] {
            assert!(!heals(&with(c)), "{c:?}");
        }
        let waiting = anyhow::Error::new(Awaiting("replicas behind".into())).context("resuming");
        assert!(heals(&waiting));
        assert!(!heals(&anyhow::anyhow!("records were deleted")));
        assert!(!heals(&crate::error::usage("bad key")));
    }

    #[test]
    fn kafka_failures_of_any_code_are_exit_3() {
        use crate::error::{ExitKind, exit_kind};
        for code in [
            Code::AUTHENTICATION,
            Code::GROUP_AUTHORIZATION_FAILED,
            Code::NOT_COORDINATOR,
            Code::TRANSPORT,
            Code::UNKNOWN_MEMBER_ID,
        ] {
            let e = anyhow::Error::new(KafkaError::new(code, "committing offsets", ""))
                .context("translating offsets");
            assert_eq!(exit_kind(&e), ExitKind::Failure, "{code:?}");
        }
    }

    #[test]
    fn failovers_are_retriable() {
        for c in [
            Code::NOT_COORDINATOR,
            Code::COORDINATOR_LOAD_IN_PROGRESS,
            Code::COORDINATOR_NOT_AVAILABLE,
            Code::NOT_LEADER_FOR_PARTITION,
            Code::LEADER_NOT_AVAILABLE,
            Code::REQUEST_TIMED_OUT,
            Code::NETWORK_EXCEPTION,
            Code::TRANSPORT,
            Code::TIMED_OUT,
            Code::ALL_BROKERS_DOWN,
            Code::NOT_CONTROLLER,
        ] {
            assert_eq!(classify(c), Class::Retriable, "{c:?}");
            assert!(is_retriable(c) && !is_auth(c), "{c:?}");
        }
        assert_eq!(
            classify(Code::UNKNOWN_TOPIC_OR_PARTITION),
            Class::RetriableBriefly
        );
        assert!(is_retriable(Code::UNKNOWN_TOPIC_OR_PARTITION));
    }

    #[test]
    fn refusals_are_not_retried() {
        for c in [
            Code::AUTHENTICATION,
            Code::SASL_AUTHENTICATION_FAILED,
            Code::SSL,
        ] {
            assert_eq!(classify(c), Class::Authentication, "{c:?}");
            assert!(is_auth(c) && !is_retriable(c), "{c:?}");
        }
        for c in [
            Code::TOPIC_AUTHORIZATION_FAILED,
            Code::GROUP_AUTHORIZATION_FAILED,
            Code::CLUSTER_AUTHORIZATION_FAILED,
        ] {
            assert_eq!(classify(c), Class::Authorization, "{c:?}");
            assert!(is_auth(c) && !is_retriable(c), "{c:?}");
        }
    }

    #[test]
    fn other_codes_are_neither() {
        // Active members (AlterConsumerGroupOffsets), an existing topic, a code no
        // librdkafka knows yet: the same answer on every retry.
        for c in [
            Code::UNKNOWN_MEMBER_ID,
            Code::REBALANCE_IN_PROGRESS,
            Code::TOPIC_ALREADY_EXISTS,
            Code(4242),
        ] {
            assert_eq!(classify(c), Class::Other, "{c:?}");
            assert!(!is_retriable(c) && !is_auth(c), "{c:?}");
        }
    }

    #[test]
    fn codes_have_librdkafka_names_and_sides() {
        assert_eq!(Code::NOT_COORDINATOR.0, 16);
        assert_eq!(Code::NOT_COORDINATOR.name(), "NOT_COORDINATOR");
        assert_eq!(Code::TRANSPORT.name(), "_TRANSPORT");
        assert!(Code::TRANSPORT.is_local() && !Code::TRANSPORT.is_answer());
        assert!(Code::TIMED_OUT.is_local());
        assert!(Code::NOT_COORDINATOR.is_answer());
        // UNKNOWN_SERVER_ERROR is the broker's -1, not a local code.
        assert!(Code(-1).is_answer());
        assert!(!Code::NO_ERROR.is_answer());
    }

    #[test]
    fn one_code_speaks_for_many() {
        let c = [
            Code::NOT_COORDINATOR,
            Code::UNKNOWN_MEMBER_ID,
            Code::TRANSPORT,
        ];
        assert_eq!(representative(c), Some(Code::UNKNOWN_MEMBER_ID));
        let c = [Code::LEADER_NOT_AVAILABLE, Code::NOT_LEADER_FOR_PARTITION];
        assert_eq!(representative(c), Some(Code::LEADER_NOT_AVAILABLE));
        assert_eq!(representative([]), None);
    }

    #[test]
    fn tls_alerts_are_read_from_openssl_codes() {
        let missing_cert = "Receive failed: error:0A000412:SSL routines::ssl/tls alert bad \
                            certificate: SSL alert number 42";
        assert_eq!(tls_alert(missing_cert), Some(42));
        assert!(is_refusing_alert(42));
        assert_eq!(
            tls_alert("error:0A00045C:SSL routines::tlsv13 alert certificate required"),
            Some(116)
        );
        // Not an alert: a certificate verification failure of our own (that one comes
        // with the _SSL code), a reset, a malformed number.
        assert_eq!(
            tls_alert(
                "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"
            ),
            None
        );
        assert_eq!(tls_alert("Connection reset by peer"), None);
        assert_eq!(tls_alert("error:0A0004:"), None);
        assert!(!is_refusing_alert(0));
    }

    #[test]
    fn the_error_travels_in_anyhow_chains() {
        let e = anyhow::Error::new(KafkaError::new(
            Code::NOT_COORDINATOR,
            "describing consumer group g",
            "",
        ))
        .context("committing offsets");
        let k = find(&e).expect("found in the chain");
        assert_eq!(k.code, Code::NOT_COORDINATOR);
        assert_eq!(
            k.to_string(),
            "describing consumer group g failed: NOT_COORDINATOR: Broker: Not coordinator"
        );
        let mut k = k.clone();
        k.cluster = "target cluster 127.0.0.1:1".into();
        k.hint = "run it again".into();
        assert_eq!(
            k.to_string(),
            "describing consumer group g on the target cluster 127.0.0.1:1 failed: \
             NOT_COORDINATOR: Broker: Not coordinator. run it again"
        );
        assert!(find(&anyhow::anyhow!("plain")).is_none());
    }
}
