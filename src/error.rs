//! Exit codes and the error kinds that choose them.
//!
//! Errors are `anyhow` chains. A chain that contains a [`UsageError`] is the user's to fix
//! (exit 2); any other error is a Kafka or I/O failure (exit 3). Kafka failures carry
//! librdkafka's code, which decides retries and refusals before they get here; whatever the
//! code (refused credentials or ACLs, a
//! failover that outlasted `timeout_secs`, an unreachable cluster), the exit code is 3.
//! "The work found a problem" (exit 1) is not an error: commands report it as
//! [`Outcome::ProblemsFound`].

use std::fmt;
use std::process::ExitCode;

/// Bad usage or configuration: the message says what is wrong and how to fix it.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Builds a usage error (exit code 2).
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked out.
    Success,
    /// The work itself found a problem (e.g. verify mismatch, counts differ).
    ProblemsFound,
    /// Stopped by Ctrl-C / SIGTERM after saving what was done.
    Interrupted,
}

/// The documented, stable exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Success = 0,
    ProblemsFound = 1,
    Usage = 2,
    Failure = 3,
    Interrupted = 130,
}

impl From<ExitKind> for ExitCode {
    fn from(k: ExitKind) -> ExitCode {
        ExitCode::from(k as u8)
    }
}

impl From<Outcome> for ExitKind {
    fn from(o: Outcome) -> ExitKind {
        match o {
            Outcome::Success => ExitKind::Success,
            Outcome::ProblemsFound => ExitKind::ProblemsFound,
            Outcome::Interrupted => ExitKind::Interrupted,
        }
    }
}

/// The exit code an error maps to.
pub fn exit_kind(e: &anyhow::Error) -> ExitKind {
    if e.chain().any(|c| c.is::<UsageError>()) {
        ExitKind::Usage
    } else {
        ExitKind::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_anywhere_in_chain_is_exit_2() {
        let e = usage("bad key").context("loading migrate.toml");
        assert_eq!(exit_kind(&e), ExitKind::Usage);
        let e = anyhow::anyhow!("broker down").context("listing groups");
        assert_eq!(exit_kind(&e), ExitKind::Failure);
        assert_eq!(ExitKind::from(Outcome::ProblemsFound) as u8, 1);
        assert_eq!(ExitKind::Interrupted as u8, 130);
    }
}
