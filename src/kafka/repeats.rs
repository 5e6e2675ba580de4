//! Keeps a failing connection from flooding the log: the same line is written at most once
//! per [`WINDOW`], and the next one written says how many were held back.
//!
//! While a broker is down, librdkafka says the same thing ("1/1 brokers are down", a
//! connection refused) for every client and every retry, and the copy's readers report it at
//! each poll: hundreds of identical lines a minute that hide the one line that matters. A
//! process-wide gate, keyed by the text of the line, lets the first through and then one
//! per window with the count of repeats.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// At most one line per distinct text in this time.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Distinct texts remembered at once: past that, texts not written in the last window are
/// forgotten (a forgotten text is written again at once, which is harmless).
const REMEMBERED: usize = 256;

/// Whether to write a line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; `held` identical lines were held back since it was last written.
    Write { held: u64 },
    /// Hold it back: the same text was written less than a window ago.
    Hold,
}

/// One text's history.
#[derive(Debug, Clone, Copy)]
struct Seen {
    written_at: Instant,
    held: u64,
}

/// The gate: the texts seen lately and when each was last written.
#[derive(Debug, Default)]
pub struct Repeats {
    seen: Mutex<HashMap<String, Seen>>,
}

impl Repeats {
    /// Decides about `text` seen at `now`.
    pub fn check(&self, text: &str, now: Instant) -> Verdict {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get_mut(text) {
            Some(s) => decide(s, now),
            None => {
                if seen.len() >= REMEMBERED {
                    seen.retain(|_, s| now.saturating_duration_since(s.written_at) < WINDOW);
                }
                seen.insert(
                    text.to_string(),
                    Seen {
                        written_at: now,
                        held: 0,
                    },
                );
                Verdict::Write { held: 0 }
            }
        }
    }
}

/// The rule for a text seen before: written again once a window has passed since it was
/// last written, with the count of those held back meanwhile.
fn decide(s: &mut Seen, now: Instant) -> Verdict {
    if now.saturating_duration_since(s.written_at) < WINDOW {
        s.held += 1;
        return Verdict::Hold;
    }
    let held = std::mem::take(&mut s.held);
    s.written_at = now;
    Verdict::Write { held }
}

/// The process-wide gate every client and the copy's readers share.
pub fn gate() -> &'static Repeats {
    static GATE: OnceLock<Repeats> = OnceLock::new();
    GATE.get_or_init(Repeats::default)
}

/// `text` as written after `held` repeats were held back.
pub fn with_count(text: &str, held: u64) -> String {
    match held {
        0 => text.to_string(),
        n => format!(
            "{text} (and {n} more time(s) in the last {} s)",
            WINDOW.as_secs()
        ),
    }
}

/// Runs `write` with the line to write for `text` now, if the gate lets it through.
pub fn limited(text: &str, write: impl FnOnce(&str)) {
    if let Verdict::Write { held } = gate().check(text, Instant::now()) {
        write(&with_count(text, held));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_written_and_repeats_within_a_window_are_held() {
        let g = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(g.check("down", t0), Verdict::Write { held: 0 });
        for ms in [1, 500, 9_999] {
            assert_eq!(
                g.check("down", t0 + Duration::from_millis(ms)),
                Verdict::Hold
            );
        }
        // Another text is not held by the first.
        assert_eq!(
            g.check("refused", t0 + Duration::from_millis(2)),
            Verdict::Write { held: 0 }
        );
        assert_eq!(g.check("down", t0 + WINDOW), Verdict::Write { held: 3 });
        // The count starts again after each written line.
        assert_eq!(g.check("down", t0 + WINDOW * 2), Verdict::Write { held: 0 });
    }

    #[test]
    fn a_burst_writes_at_most_one_line_per_window() {
        let g = Repeats::default();
        let t0 = Instant::now();
        // 20 lines a second for 30 s, as a reader polling every 50 ms would.
        let written: Vec<u64> = (0..600u64)
            .filter_map(|i| match g.check("x", t0 + Duration::from_millis(i * 50)) {
                Verdict::Write { held } => Some(held),
                Verdict::Hold => None,
            })
            .collect();
        assert_eq!(written, vec![0, 199, 199]);
    }

    #[test]
    fn remembering_is_bounded() {
        let g = Repeats::default();
        let t0 = Instant::now();
        for i in 0..REMEMBERED {
            g.check(&i.to_string(), t0);
        }
        let later = t0 + WINDOW;
        assert_eq!(g.check("new", later), Verdict::Write { held: 0 });
        let len = g.seen.lock().map(|s| s.len()).unwrap_or(usize::MAX);
        assert_eq!(len, 1, "texts older than a window are forgotten");
    }

    #[test]
    fn the_count_is_said_only_when_lines_were_held() {
        assert_eq!(with_count("down", 0), "down");
        assert_eq!(
            with_count("down", 4),
            "down (and 4 more time(s) in the last 10 s)"
        );
    }
}
