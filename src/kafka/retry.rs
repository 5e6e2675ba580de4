//! Retrying an admin step while the cluster fails over. A coordinator moving, a leader
//! election or a broker restarting answer with codes that a later attempt does not get
//! (NOT_COORDINATOR, NOT_LEADER_OR_FOLLOWER, ...): every admin step goes through [`retry`],
//! which tries again with backoff until the cluster's `timeout_secs` is spent, and stops at
//! once on any other code.

use std::time::{Duration, Instant};

use super::error::{self, Class, Code};

/// How long a step may retry, and the pauses between its attempts.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The step's whole time: the cluster's `timeout_secs`.
    pub budget: Duration,
    /// How long UNKNOWN_TOPIC_OR_PARTITION is retried: long enough for a topic just
    /// created to reach every broker, short enough not to wait `timeout_secs` for a
    /// deleted one.
    pub briefly: Duration,
    /// The first pause; each next one doubles, up to `max`, so a quick failover costs
    /// little and a long one does not flood the brokers.
    pub first: Duration,
    pub max: Duration,
    /// The least time worth giving an attempt: below it, the step stops.
    pub last_attempt: Duration,
}

impl Policy {
    /// kmigrate's policy for a step of at most `budget`.
    pub fn within(budget: Duration) -> Policy {
        Policy {
            budget,
            briefly: Duration::from_secs(5),
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
            last_attempt: Duration::from_millis(200),
        }
    }
}

/// Why a step stopped without a result.
#[derive(Debug)]
pub struct GaveUp {
    /// The last attempt's error.
    pub error: anyhow::Error,
    /// Its code, when it carries one.
    pub code: Option<Code>,
    /// Some attempt got a broker's answer (an error code from a broker, not a local
    /// timeout): the cluster is reachable, whatever the last attempt got.
    pub answered: bool,
    /// The last answer a broker gave, when one did.
    pub last_answer: Option<Code>,
    pub attempts: u32,
    /// From the first attempt to the decision to stop.
    pub waited: Duration,
}

impl GaveUp {
    /// The step stopped on a code a retry could have fixed, because its time was spent.
    pub fn out_of_time(&self) -> bool {
        self.code.is_some_and(error::is_retriable)
    }
}

/// Runs `attempt` until it succeeds, fails with a code a retry cannot fix, or the policy's
/// budget is spent. Each attempt is given the time left, to use as its request timeout, so
/// that the whole step stays within the budget (plus librdkafka's own grace).
pub fn retry<T>(
    policy: Policy,
    mut attempt: impl FnMut(Duration) -> anyhow::Result<T>,
) -> Result<T, GaveUp> {
    let start = Instant::now();
    let deadline = start + policy.budget;
    let mut delay = policy.first;
    let mut attempts = 0;
    let mut last_answer = None;
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let err = match attempt(left) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let code = error::find(&err).map(|k| k.code);
        if let Some(c) = code.filter(|c| c.is_answer()) {
            last_answer = Some(c);
        }
        let waited = start.elapsed();
        let left = deadline.saturating_duration_since(Instant::now());
        // The pause never eats the time a last attempt needs.
        let pause = delay.min(left.saturating_sub(policy.last_attempt));
        let again = match code.map(error::classify) {
            Some(Class::Retriable) => left > policy.last_attempt,
            Some(Class::RetriableBriefly) => {
                left > policy.last_attempt && waited + pause < policy.briefly
            }
            _ => false,
        };
        if !again {
            return Err(GaveUp {
                error: err,
                code,
                answered: last_answer.is_some(),
                last_answer,
                attempts,
                waited,
            });
        }
        tracing::debug!("{err:#} (attempt {attempts}, retrying in {pause:?})");
        std::thread::sleep(pause);
        delay = (delay * 2).min(policy.max);
    }
}

/// What the operator should do about a step that stopped, to follow the error itself.
/// `connected`: the cluster answered earlier in this command (kmigrate's session is up), so
/// its address is right; `last_client_error` is librdkafka's last connection failure.
pub fn advice(
    g: &GaveUp,
    role: &str,
    timeout: Duration,
    connected: bool,
    last_client_error: Option<&str>,
) -> String {
    let Some(code) = g.code else {
        return String::new();
    };
    match error::classify(code) {
        Class::Authentication => format!(
            "The cluster answers, but refuses kmigrate's credentials: check security.protocol, \
             sasl.mechanism, sasl.username and sasl.password (or the ssl.* certificate, key and \
             CA) in [{role}.properties], and the environment variables they name."
        ),
        Class::Authorization => format!(
            "The cluster refuses this to kmigrate's principal ({code}): grant it the ACLs for \
             this operation on the {role} cluster (its authorizer log names the resource), \
             then run the command again."
        ),
        Class::Other => String::new(),
        Class::Retriable | Class::RetriableBriefly => {
            let waited = (g.waited.as_millis() + 500) / 1000;
            let last = last_client_error
                .map(|e| format!(" (last client error: {e})"))
                .unwrap_or_default();
            match g.last_answer {
                Some(answer @ Code::UNKNOWN_TOPIC_OR_PARTITION) => format!(
                    "The cluster answered {answer} for {waited} s: the topic or partition is \
                     not there (deleted or recreated since it was listed?). Check the topic on \
                     the {role} cluster, then run the command again."
                ),
                Some(answer) => format!(
                    "The cluster answered {answer} for {waited} s: {}; run the command again \
                     once it is up (migration.timeout_secs sets how long kmigrate waits).",
                    unsettled(answer)
                ),
                None if connected => format!(
                    "No broker of the cluster answered for {waited} s{last}, though it answered \
                     earlier in this command: a broker down or restarting? Run the command again \
                     once it is up (migration.timeout_secs sets how long kmigrate waits)."
                ),
                None => match last_client_error {
                    Some(e) => format!(
                        "Last client error: {e}. Check bootstrap_servers in [{role}] and that \
                         the cluster is reachable from here."
                    ),
                    None => format!(
                        "No usable answer within {} s: check bootstrap_servers in [{role}] and \
                         that the cluster is reachable from here (migration.timeout_secs sets \
                         the limit).",
                        timeout.as_secs()
                    ),
                },
            }
        }
    }
}

/// What did not settle, for a failover code the cluster kept answering.
fn unsettled(code: Code) -> &'static str {
    match code {
        Code::NOT_COORDINATOR
        | Code::COORDINATOR_LOAD_IN_PROGRESS
        | Code::COORDINATOR_NOT_AVAILABLE => {
            "its group coordinator did not settle (a broker restarting?)"
        }
        Code::NOT_LEADER_FOR_PARTITION
        | Code::LEADER_NOT_AVAILABLE
        | Code::FENCED_LEADER_EPOCH
        | Code::UNKNOWN_LEADER_EPOCH
        | Code::OFFSET_NOT_AVAILABLE => {
            "the partitions' leaders did not settle (a broker restarting or a leader election?)"
        }
        Code::NOT_CONTROLLER => "its controller did not settle (a controller election?)",
        _ => "its brokers did not settle (a broker restarting?)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::error::KafkaError;

    fn failing(code: Code) -> anyhow::Error {
        anyhow::Error::new(KafkaError::new(code, "DescribeConsumerGroups", ""))
    }

    fn quick(budget: Duration) -> Policy {
        Policy {
            budget,
            briefly: Duration::from_millis(200),
            first: Duration::from_millis(1),
            max: Duration::from_millis(4),
            last_attempt: Duration::from_millis(2),
        }
    }

    #[test]
    fn retriable_failures_are_retried_until_success() {
        let mut calls = 0;
        let got = retry(quick(Duration::from_secs(5)), |left| {
            assert!(left <= Duration::from_secs(5));
            calls += 1;
            match calls {
                1 => Err(failing(Code::NOT_COORDINATOR)),
                2 => Err(failing(Code::COORDINATOR_LOAD_IN_PROGRESS)),
                3 => Err(failing(Code::TRANSPORT)),
                _ => Ok(calls),
            }
        });
        assert_eq!(got.expect("succeeds on the fourth attempt"), 4);
    }

    #[test]
    fn other_failures_stop_at_once() {
        for code in [
            Code::UNKNOWN_MEMBER_ID,
            Code::GROUP_AUTHORIZATION_FAILED,
            Code::AUTHENTICATION,
        ] {
            let mut calls = 0;
            let t0 = Instant::now();
            let gave_up = retry(quick(Duration::from_secs(5)), |_| -> anyhow::Result<()> {
                calls += 1;
                Err(failing(code))
            })
            .expect_err("fails");
            assert_eq!(calls, 1, "{code:?}");
            assert!(t0.elapsed() < Duration::from_secs(1), "{code:?}");
            assert_eq!(gave_up.code, Some(code));
            assert_eq!(gave_up.attempts, 1);
            assert!(!gave_up.out_of_time());
        }
    }

    #[test]
    fn errors_without_a_code_are_not_retried() {
        let mut calls = 0;
        let gave_up = retry(quick(Duration::from_secs(5)), |_| -> anyhow::Result<()> {
            calls += 1;
            Err(anyhow::anyhow!("group id contains a NUL byte"))
        })
        .expect_err("fails");
        assert_eq!((calls, gave_up.code, gave_up.answered), (1, None, false));
    }

    #[test]
    fn a_failover_longer_than_the_budget_gives_up_in_time() {
        let budget = Duration::from_millis(300);
        let t0 = Instant::now();
        let mut calls = 0;
        let gave_up = retry(quick(budget), |left| -> anyhow::Result<()> {
            assert!(left <= budget);
            calls += 1;
            if calls % 2 == 0 {
                Err(failing(Code::NOT_COORDINATOR))
            } else {
                Err(failing(Code::TIMED_OUT))
            }
        })
        .expect_err("never succeeds");
        let took = t0.elapsed();
        assert!(took >= budget - Duration::from_millis(10), "{took:?}");
        assert!(took < budget + Duration::from_millis(200), "{took:?}");
        assert!(gave_up.attempts > 2 && gave_up.out_of_time());
        // The cluster answered NOT_COORDINATOR at least once: it is reachable, whatever the
        // last attempt got.
        assert!(gave_up.answered);
        assert_eq!(gave_up.last_answer, Some(Code::NOT_COORDINATOR));
    }

    #[test]
    fn local_timeouts_alone_are_not_an_answer() {
        let gave_up = retry(
            quick(Duration::from_millis(50)),
            |_| -> anyhow::Result<()> { Err(failing(Code::TRANSPORT)) },
        )
        .expect_err("never succeeds");
        assert!(!gave_up.answered && gave_up.out_of_time());
        assert_eq!(gave_up.code, Some(Code::TRANSPORT));
    }

    fn gave_up(code: Code, last_answer: Option<Code>) -> GaveUp {
        GaveUp {
            error: failing(code),
            code: Some(code),
            answered: last_answer.is_some(),
            last_answer,
            attempts: 12,
            waited: Duration::from_millis(29_800),
        }
    }

    const T: Duration = Duration::from_secs(30);

    #[test]
    fn a_cluster_that_answered_is_not_sent_to_its_bootstrap_servers() {
        let g = gave_up(Code::NOT_COORDINATOR, Some(Code::NOT_COORDINATOR));
        let a = advice(&g, "target", T, true, Some("Connect to ... refused"));
        assert!(
            a.contains("answered NOT_COORDINATOR for 30 s")
                && a.contains("group coordinator did not settle")
                && a.contains("run the command again once it is up"),
            "{a}"
        );
        assert!(!a.contains("bootstrap_servers"), "{a}");

        // The last attempts got no answer, an earlier one did.
        let g = gave_up(Code::TIMED_OUT, Some(Code::NOT_LEADER_FOR_PARTITION));
        let a = advice(&g, "source", T, true, None);
        assert!(a.contains("leaders did not settle"), "{a}");
        assert!(!a.contains("bootstrap_servers"), "{a}");

        let g = gave_up(
            Code::UNKNOWN_TOPIC_OR_PARTITION,
            Some(Code::UNKNOWN_TOPIC_OR_PARTITION),
        );
        let a = advice(&g, "target", T, true, None);
        assert!(
            a.contains("not there") && a.contains("Check the topic on the target cluster"),
            "{a}"
        );

        // No answer in this step, but the session answered before it.
        let g = gave_up(Code::TRANSPORT, None);
        let a = advice(
            &g,
            "source",
            T,
            true,
            Some("Connect to 127.0.0.1:9092 refused"),
        );
        assert!(
            a.contains("No broker of the cluster answered for 30 s")
                && a.contains("Connect to 127.0.0.1:9092 refused")
                && a.contains("answered earlier"),
            "{a}"
        );
        assert!(!a.contains("bootstrap_servers"), "{a}");
    }

    #[test]
    fn a_cluster_that_never_answered_is() {
        let g = gave_up(Code::TRANSPORT, None);
        let a = advice(
            &g,
            "source",
            T,
            false,
            Some("Connect to 127.0.0.1:1 refused"),
        );
        assert!(
            a.contains("Last client error: Connect to 127.0.0.1:1 refused")
                && a.contains("bootstrap_servers in [source]"),
            "{a}"
        );
        let a = advice(&g, "target", T, false, None);
        assert!(
            a.contains("No usable answer within 30 s")
                && a.contains("bootstrap_servers in [target]"),
            "{a}"
        );
    }

    #[test]
    fn refusals_name_what_to_fix() {
        let g = gave_up(Code::SASL_AUTHENTICATION_FAILED, None);
        let a = advice(&g, "source", T, false, None);
        assert!(
            a.contains("refuses kmigrate's credentials") && a.contains("[source.properties]"),
            "{a}"
        );
        let g = gave_up(
            Code::GROUP_AUTHORIZATION_FAILED,
            Some(Code::GROUP_AUTHORIZATION_FAILED),
        );
        let a = advice(&g, "target", T, true, None);
        assert!(
            a.contains("ACLs") && a.contains("GROUP_AUTHORIZATION_FAILED"),
            "{a}"
        );
        // Any other answer speaks for itself.
        let g = gave_up(Code::UNKNOWN_MEMBER_ID, Some(Code::UNKNOWN_MEMBER_ID));
        assert_eq!(advice(&g, "target", T, true, None), "");
    }

    #[test]
    fn unknown_topic_is_retried_only_briefly() {
        let t0 = Instant::now();
        let policy = Policy {
            first: Duration::from_millis(20),
            max: Duration::from_millis(20),
            ..quick(Duration::from_secs(60))
        };
        let gave_up = retry(policy, |_| -> anyhow::Result<()> {
            Err(failing(Code::UNKNOWN_TOPIC_OR_PARTITION))
        })
        .expect_err("never succeeds");
        let took = t0.elapsed();
        assert!(
            took < policy.briefly + Duration::from_millis(100),
            "{took:?}"
        );
        assert!(
            took >= policy.briefly - Duration::from_millis(40),
            "{took:?}"
        );
        assert!(gave_up.attempts > 3);
        assert!(gave_up.answered);
    }
}
