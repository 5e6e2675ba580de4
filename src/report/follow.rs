//! What `kmigrate sync` shows while it follows the live source: how far the copy is behind
//! the source's last stable offsets, in all and per partition (the partitions furthest
//! behind first), and how fast it copies. A status block redrawn every round on a terminal;
//! a log line every few seconds otherwise.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::copy::{ProgressSink, Snapshot};
use crate::ledger::State;
use crate::model::{Ends, Tp};
use crate::report::thousands;

/// How often a log line is written without a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// Partitions named, furthest behind first.
const NAMED: usize = 5;

/// Offsets each partition of the copy is behind the source's last stable offsets `now`
/// (none behind: 0), in the state's order. A partition missing from `now` counts as caught up
/// to its range's end.
pub fn lags(state: &State, now: &BTreeMap<Tp, Ends>) -> Vec<(Tp, i64)> {
    state
        .partitions
        .iter()
        .map(|p| {
            let tp = Tp::new(&p.topic, p.partition);
            let stable = now.get(&tp).map_or(p.end, |w| w.stable);
            let lag = (stable - p.copied_to()).max(0);
            (tp, lag)
        })
        .collect()
}

/// The partitions behind, furthest first (ties by name), at most `n`.
pub fn furthest(lags: &[(Tp, i64)], n: usize) -> Vec<(Tp, i64)> {
    let mut behind: Vec<(Tp, i64)> = lags.iter().filter(|(_, l)| *l > 0).cloned().collect();
    behind.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    behind.truncate(n);
    behind
}

/// The figures of one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Offsets behind, per partition, when the source was last read.
    pub lags: Vec<(Tp, i64)>,
    pub records_per_s: f64,
    pub bytes_per_s: f64,
    /// Records on the target from this migration.
    pub on_target: u64,
}

impl Figures {
    /// `following the source: 1,234 offset(s) behind over 8 partition(s) (t/3 1,000, t/1
    /// 234); 2,000 records/s, 1.9 MB/s; 50,000 records on the target`.
    pub fn line(&self) -> String {
        let total: i64 = self.lags.iter().map(|(_, l)| *l).sum();
        let behind = self.lags.iter().filter(|(_, l)| *l > 0).count();
        let named: Vec<String> = furthest(&self.lags, NAMED)
            .iter()
            .map(|(tp, l)| format!("{tp} {}", thousands(*l)))
            .collect();
        let more = if behind > NAMED {
            format!(", {} more", behind - NAMED)
        } else {
            String::new()
        };
        let which = if named.is_empty() {
            String::new()
        } else {
            format!(" ({}{more})", named.join(", "))
        };
        format!(
            "following the source: {} offset(s) behind its last stable offsets over {} \
             partition(s){which}; {} records/s, {:.1} MB/s; {} records on the target",
            thousands(total),
            self.lags.len(),
            thousands(self.records_per_s.round() as i64),
            self.bytes_per_s / 1e6,
            thousands(self.on_target as i64)
        )
    }
}

/// Offsets each partition of a copy under way is behind the ends it is copying to (those
/// read from the source when the round began), from its progress snapshot.
pub fn lags_in_copy(s: &Snapshot) -> Vec<(Tp, i64)> {
    s.partitions
        .iter()
        .map(|p| {
            let lag = (p.offsets_total - p.offsets_done).max(0);
            (Tp::new(&p.topic, p.partition), lag)
        })
        .collect()
}

/// The display: a status block on a terminal, log lines otherwise. It is the copy's
/// progress sink during each round (a long first round, the backlog, shows its progress
/// too), and gets the lag read at the start of every round.
pub struct Display {
    bars: Option<(indicatif::MultiProgress, Vec<indicatif::ProgressBar>)>,
    /// Records and key+value bytes copied by the rounds that finished.
    copied: (u64, u64),
    /// The last report: when, and what had been copied by then.
    last: (Instant, (u64, u64)),
}

impl Display {
    /// A status block when stderr is a terminal, log lines otherwise.
    pub fn new() -> Display {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Display {
            bars: terminal.then(|| (indicatif::MultiProgress::new(), Vec::new())),
            copied: (0, 0),
            last: (Instant::now(), (0, 0)),
        }
    }

    /// Between rounds: `lags` as the source was read at the round's start, the records on
    /// the target now.
    pub fn round(&mut self, lags: Vec<(Tp, i64)>, on_target: u64) {
        self.report(lags, self.copied, on_target);
    }

    /// Whether a report is due: a redraw about every second on a terminal, a line every
    /// few seconds otherwise.
    fn due(&self) -> bool {
        let every = if self.bars.is_some() {
            Duration::from_millis(900)
        } else {
            LINE_EVERY
        };
        self.last.0.elapsed() >= every
    }

    /// Reports when one is due: `copied`, records and bytes copied by this sync so far.
    fn report(&mut self, lags: Vec<(Tp, i64)>, copied: (u64, u64), on_target: u64) {
        if !self.due() {
            return;
        }
        let elapsed = self.last.0.elapsed();
        let secs = elapsed.as_secs_f64().max(1e-3);
        let since = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        let figures = Figures {
            lags,
            records_per_s: since(copied.0, self.last.1.0),
            bytes_per_s: since(copied.1, self.last.1.1),
            on_target,
        };
        match &mut self.bars {
            Some((multi, lines)) => draw(multi, lines, &figures),
            None => tracing::info!("{}", figures.line()),
        }
        self.last = (Instant::now(), copied);
    }

    /// While the sync waits for the clusters: the status block's first line says what it
    /// waits for (off a terminal, the wait's own log lines say it).
    pub fn waiting(&mut self, status: &str) {
        if let Some((_, lines)) = &self.bars
            && let Some(top) = lines.first()
        {
            top.set_message(status.to_string());
        }
    }

    /// Clears the status block.
    pub fn close(&mut self) {
        if let Some((_, lines)) = &self.bars {
            for l in lines {
                l.finish_and_clear();
            }
        }
    }
}

impl Default for Display {
    fn default() -> Self {
        Display::new()
    }
}

impl ProgressSink for Display {
    fn update(&mut self, s: &Snapshot) {
        // Four times a second from the copy: the lags are worked out only when shown.
        if !self.due() {
            return;
        }
        let copied = (
            self.copied.0 + s.records_this_run,
            self.copied.1 + s.bytes_this_run,
        );
        self.report(lags_in_copy(s), copied, s.records);
    }

    fn finish(&mut self, s: &Snapshot) {
        self.copied.0 += s.records_this_run;
        self.copied.1 += s.bytes_this_run;
    }
}

/// Redraws the block: the total line, then a bar per partition furthest behind (its lag
/// against the largest).
fn draw(multi: &indicatif::MultiProgress, lines: &mut Vec<indicatif::ProgressBar>, f: &Figures) {
    let text_style = indicatif::ProgressStyle::with_template("{msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    let bar_style = indicatif::ProgressStyle::with_template("{prefix:>28} [{bar:30}] {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("#  ");
    while lines.len() < NAMED + 1 {
        let bar = multi.add(indicatif::ProgressBar::new(1));
        bar.set_style(if lines.is_empty() {
            text_style.clone()
        } else {
            bar_style.clone()
        });
        lines.push(bar);
    }
    let top = furthest(&f.lags, NAMED);
    let most = top.first().map_or(1, |(_, l)| (*l).max(1));
    lines[0].set_message(f.line());
    for (i, bar) in lines.iter().enumerate().skip(1) {
        match top.get(i - 1) {
            Some((tp, lag)) => {
                let name: String = tp.to_string().chars().take(28).collect();
                bar.set_prefix(name);
                bar.set_length(most as u64);
                bar.set_position((*lag).max(0) as u64);
                bar.set_message(format!("{} behind", thousands(*lag)));
            }
            None => {
                bar.set_prefix("");
                bar.set_length(1);
                bar.set_position(0);
                bar.set_message("");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::live::tests::live_plan;

    fn now(stables: &[(i32, i64)]) -> BTreeMap<Tp, Ends> {
        stables
            .iter()
            .map(|(p, s)| {
                let w = Ends {
                    high: *s,
                    stable: *s,
                };
                (Tp::new("t", *p), w)
            })
            .collect()
    }

    #[test]
    fn lag_counts_offsets_past_what_is_copied() {
        let mut state = State::new(&live_plan(), 0);
        // t/0 [20, 50) copied up to 29; t/1 [40, 40) and t/2 [30, 30) empty.
        state.partitions[0].progress.base = Some(0);
        state.partitions[0].progress.acked = Some((29, 9));
        let got = lags(&state, &now(&[(0, 60), (1, 45), (2, 30)]));
        let want: Vec<(Tp, i64)> = vec![
            (Tp::new("t", 0), 30),
            (Tp::new("t", 1), 5),
            (Tp::new("t", 2), 0),
        ];
        assert_eq!(got, want);
        state.partitions[0].progress.done = true;
        assert_eq!(lags(&state, &now(&[(0, 60), (1, 45), (2, 30)]))[0].1, 10);
        // A partition the source did not answer for: caught up to its end.
        assert_eq!(lags(&state, &now(&[(1, 45)]))[0].1, 0);
    }

    #[test]
    fn the_line_names_the_partitions_furthest_behind() {
        let lags: Vec<(Tp, i64)> = (0..8)
            .map(|p| (Tp::new("t", p), i64::from(p) * 100))
            .collect();
        let f = Figures {
            lags,
            records_per_s: 1999.6,
            bytes_per_s: 1_900_000.0,
            on_target: 50_000,
        };
        assert_eq!(
            f.line(),
            "following the source: 2,800 offset(s) behind its last stable offsets over 8 \
             partition(s) (t/7 700, t/6 600, t/5 500, t/4 400, t/3 300, 2 more); 2,000 \
             records/s, 1.9 MB/s; 50,000 records on the target"
        );
        let caught_up = Figures {
            lags: vec![(Tp::new("t", 0), 0)],
            ..f
        };
        assert!(caught_up.line().starts_with(
            "following the source: 0 offset(s) behind its last stable offsets over 1 partition(s); "
        ));
    }

    #[test]
    fn a_copy_under_way_is_behind_by_what_it_has_not_read() {
        let part = |p: i32, done: i64, total: i64| crate::copy::PartitionSnapshot {
            topic: "t".into(),
            partition: p,
            offsets_done: done,
            offsets_total: total,
            ..Default::default()
        };
        let s = Snapshot {
            partitions: vec![part(0, 10, 30), part(1, 5, 5)],
            ..Snapshot::default()
        };
        assert_eq!(
            lags_in_copy(&s),
            vec![(Tp::new("t", 0), 20), (Tp::new("t", 1), 0)]
        );
    }

    #[test]
    fn ties_are_named_in_order() {
        let lags = vec![
            (Tp::new("b", 0), 5),
            (Tp::new("a", 1), 5),
            (Tp::new("a", 0), 9),
            (Tp::new("c", 0), 0),
        ];
        assert_eq!(
            furthest(&lags, 5),
            vec![
                (Tp::new("a", 0), 9),
                (Tp::new("a", 1), 5),
                (Tp::new("b", 0), 5)
            ]
        );
    }
}
