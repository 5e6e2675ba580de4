//! What a sync says while it waits for a cluster to come back: once when the wait starts,
//! again every minute with how long it has waited and the latest reason, and once when the
//! clusters answer again. A sync runs for days; a broker, a leader or the network away for
//! a while is something it waits out, not a reason to exit.

use std::time::{Duration, Instant};

/// How often a wait is said again.
pub const SAY_EVERY: Duration = Duration::from_secs(60);

/// A wait in progress, if any.
#[derive(Debug, Default)]
pub struct Waiting {
    /// When the first failed round of this wait ended.
    since: Option<Instant>,
    /// When the wait was last said.
    said: Option<Instant>,
    /// The latest reason.
    why: String,
}

impl Waiting {
    /// A round failed with an error the clusters coming back heal (`why`, its text): the
    /// line to log now, if one is due.
    pub fn failed(&mut self, why: &str, now: Instant) -> Option<String> {
        why.clone_into(&mut self.why);
        let since = *self.since.get_or_insert(now);
        let due = self
            .said
            .is_none_or(|at| now.saturating_duration_since(at) >= SAY_EVERY);
        if !due {
            return None;
        }
        self.said = Some(now);
        let waited = now.saturating_duration_since(since).as_secs();
        Some(if waited == 0 {
            format!(
                "waiting for the clusters to answer again: {why}. The copy so far is saved; \
                 sync goes on by itself once they answer (Ctrl-C stops it)"
            )
        } else {
            format!("still waiting for the clusters ({waited} s): {why}")
        })
    }

    /// A round went through: the line saying the wait is over, if there was one.
    pub fn recovered(&mut self, now: Instant) -> Option<String> {
        let since = self.since.take()?;
        self.said = None;
        Some(format!(
            "the clusters answer again after {} s of waiting; sync goes on",
            now.saturating_duration_since(since).as_secs()
        ))
    }

    /// How long to pause before the next try: a second at first, so that a short failover
    /// costs little, then 5 s, so that a long outage costs little.
    pub fn pause(&self, now: Instant) -> Duration {
        match self.since {
            Some(s) if now.saturating_duration_since(s) >= Duration::from_secs(30) => {
                Duration::from_secs(5)
            }
            _ => Duration::from_secs(1),
        }
    }

    /// For the status display: what it waits for and since how long, while it waits.
    pub fn status(&self, now: Instant) -> Option<String> {
        let since = self.since?;
        Some(format!(
            "waiting {} s for the clusters: {}",
            now.saturating_duration_since(since).as_secs(),
            self.why
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_said_at_once_then_every_minute_then_its_end() {
        let mut w = Waiting::default();
        let t0 = Instant::now();
        assert_eq!(w.status(t0), None);
        assert_eq!(w.recovered(t0), None, "no wait, nothing to say");
        let first = w.failed("broker down", t0).expect("said at once");
        assert!(first.starts_with("waiting for the clusters"), "{first}");
        assert!(first.contains("broker down"), "{first}");
        for s in [1, 30, 59] {
            assert_eq!(w.failed("broker down", t0 + Duration::from_secs(s)), None);
        }
        let again = w
            .failed("leader moving", t0 + Duration::from_secs(60))
            .expect("a minute on");
        assert_eq!(
            again,
            "still waiting for the clusters (60 s): leader moving"
        );
        assert_eq!(
            w.status(t0 + Duration::from_secs(61)).as_deref(),
            Some("waiting 61 s for the clusters: leader moving")
        );
        let back = w.recovered(t0 + Duration::from_secs(75)).expect("the end");
        assert!(back.contains("after 75 s"), "{back}");
        assert_eq!(w.status(t0 + Duration::from_secs(76)), None);
        // A new wait is said at once again.
        assert!(w.failed("x", t0 + Duration::from_secs(80)).is_some());
    }

    #[test]
    fn pauses_grow_after_half_a_minute() {
        let mut w = Waiting::default();
        let t0 = Instant::now();
        assert_eq!(w.pause(t0), Duration::from_secs(1));
        w.failed("x", t0);
        assert_eq!(
            w.pause(t0 + Duration::from_secs(29)),
            Duration::from_secs(1)
        );
        assert_eq!(
            w.pause(t0 + Duration::from_secs(30)),
            Duration::from_secs(5)
        );
    }
}
