//! Output for people and machines: where it goes (stdout, stderr, the log file), the
//! copy's live progress, and a run's summary. Tables and number formatting are in
//! [`crate::text`]; JSON events ([`json`]) and Prometheus metrics ([`metrics`]) are made
//! from the same data types as the tables.

pub mod follow;
pub mod json;
pub mod metrics;
pub mod migration;
pub mod offsets;
pub mod status;
mod summary;
pub mod verify;
pub mod waiting;

pub use self::summary::{GroupResult, RunPhase, RunSummary, ThisRun, TopicResult};
pub use crate::text::{Align, Table, bytes, duration, plural, thousands, time_ms};

use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::ProgressMode;

/// Writes a command's output to stdout. A closed pipe (`kmigrate plan | head`) is not an
/// error worth a message.
pub fn print(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A line for the operator on stderr, apart from the command's output. With
/// `--progress json` it is a `note` event, so that every stderr line parses.
pub fn note(text: &str) {
    if json::enabled() {
        json::emit("note", serde_json::json!({ "message": text }));
    } else {
        eprintln!("{text}");
    }
}

/// A warning for the operator: a `warning` event with `--progress json`.
pub fn warning(text: &str) {
    if json::enabled() {
        json::emit("warning", serde_json::json!({ "message": text }));
    } else {
        eprintln!("  warning: {text}");
    }
}

/// Progress of a copy: a live bar per topic and overall on a terminal, a line every few
/// seconds otherwise (logs, CI), or JSON events; `auto` picks bars or lines.
pub fn copy_progress(mode: ProgressMode) -> Box<dyn crate::copy::ProgressSink> {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match mode {
        ProgressMode::Json => Box::new(json::Events::default()),
        ProgressMode::Bar => Box::new(Bars::default()),
        ProgressMode::Auto if terminal => Box::new(Bars::default()),
        ProgressMode::Auto | ProgressMode::Lines => Box::new(Lines { last: None }),
    }
}

/// What a run shows beyond its tables: the progress display, JSON events and the metrics
/// endpoint, each fed from the same snapshots, phases and summary.
pub struct Observer {
    mode: ProgressMode,
    metrics: Option<metrics::Exporter>,
}

impl Observer {
    /// Starts the metrics endpoint when asked; an address that cannot be bound is a usage
    /// error (exit 2) before anything is planned or copied.
    pub fn start(mode: ProgressMode, metrics_addr: Option<&str>) -> anyhow::Result<Observer> {
        json::enable(mode == ProgressMode::Json);
        let metrics = metrics_addr.map(metrics::Exporter::start).transpose()?;
        Ok(Observer { mode, metrics })
    }

    pub fn phase(&self, phase: RunPhase) {
        if json::enabled() {
            json::emit("phase", serde_json::json!({ "phase": phase.name() }));
        }
        if let Some(m) = &self.metrics {
            m.phase(phase);
        }
    }

    /// A failure that ends the run: counted as an error and shown as an event (the message
    /// itself is printed by main, as for every command).
    pub fn failed(&self, e: &anyhow::Error) {
        if json::enabled() {
            json::emit("error", serde_json::json!({ "message": format!("{e:#}") }));
        }
        if let Some(m) = &self.metrics {
            m.error();
        }
    }

    /// The copy's progress sink: the display chosen, and the metrics when served.
    pub fn sink(&self) -> Box<dyn crate::copy::ProgressSink> {
        let display = copy_progress(self.mode);
        match &self.metrics {
            Some(m) => Box::new(Tee(vec![display, Box::new(m.sink())])),
            None => display,
        }
    }

    /// The end of a run: the summary as an event and in the metrics.
    pub fn summary(&self, s: &RunSummary) {
        if json::enabled() {
            json::summary(s);
        }
        if let Some(m) = &self.metrics {
            m.summary(s);
        }
    }

    /// Keeps the metrics endpoint answering for `linger` after the run, so that a scraper
    /// sees the final figures, unless `stop` (Ctrl-C, SIGTERM) says to end now; then
    /// stops it.
    pub fn close(self, linger: Option<std::time::Duration>, stop: &AtomicBool) {
        if let (Some(_), Some(d)) = (&self.metrics, linger) {
            let until = std::time::Instant::now() + d;
            while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// Feeds several sinks the same snapshots.
struct Tee(Vec<Box<dyn crate::copy::ProgressSink>>);

impl crate::copy::ProgressSink for Tee {
    fn update(&mut self, s: &crate::copy::Snapshot) {
        for sink in &mut self.0 {
            sink.update(s);
        }
    }

    fn finish(&mut self, s: &crate::copy::Snapshot) {
        for sink in &mut self.0 {
            sink.finish(s);
        }
    }
}

fn rate_and_eta(s: &crate::copy::Snapshot) -> (f64, f64, Option<std::time::Duration>) {
    let secs = s.elapsed.as_secs_f64().max(0.001);
    let recs = s.records_this_run as f64 / secs;
    let mbs = s.bytes_this_run as f64 / secs / 1e6;
    let left = (s.offsets_total - s.offsets_done).max(0) as f64;
    let done_here = s.offsets_done as f64;
    let eta = (done_here > 0.0 && s.offsets_done < s.offsets_total)
        .then(|| std::time::Duration::from_secs_f64(left * secs / done_here.max(1.0)));
    (recs, mbs, eta)
}

/// One status line: `42% 1,234/2,900 offsets, 1,200 records written, 95,000 rec/s, 12.0 MB/s, ETA 0:12`.
pub fn progress_line(s: &crate::copy::Snapshot) -> String {
    let pct = if s.offsets_total > 0 {
        100.0 * s.offsets_done as f64 / s.offsets_total as f64
    } else {
        100.0
    };
    let (recs, mbs, eta) = rate_and_eta(s);
    format!(
        "copy {pct:.0}%: {}/{} offsets, {} records on the target, {} rec/s, {mbs:.1} MB/s, ETA {}",
        thousands(s.offsets_done),
        thousands(s.offsets_total),
        thousands(s.records as i64),
        thousands(recs as i64),
        eta.map_or("-".to_string(), duration)
    )
}

struct Lines {
    last: Option<std::time::Instant>,
}

impl crate::copy::ProgressSink for Lines {
    fn update(&mut self, s: &crate::copy::Snapshot) {
        if self
            .last
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(5))
        {
            self.last = Some(std::time::Instant::now());
            note(&progress_line(s));
        }
    }

    fn finish(&mut self, s: &crate::copy::Snapshot) {
        note(&progress_line(s));
    }
}

#[derive(Default)]
struct Bars {
    multi: Option<indicatif::MultiProgress>,
    overall: Option<indicatif::ProgressBar>,
    topics: Vec<(String, indicatif::ProgressBar)>,
}

/// Up to this many topics get a bar of their own.
const MAX_TOPIC_BARS: usize = 8;

impl crate::copy::ProgressSink for Bars {
    fn update(&mut self, s: &crate::copy::Snapshot) {
        let multi = self.multi.get_or_insert_with(indicatif::MultiProgress::new);
        let style =
            indicatif::ProgressStyle::with_template("{prefix:>24} [{bar:30}] {percent:>3}% {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
        if self.overall.is_none() {
            let bar = multi.add(indicatif::ProgressBar::new(s.offsets_total.max(0) as u64));
            bar.set_style(style.clone());
            bar.set_prefix("all topics");
            self.overall = Some(bar);
            if s.topics.len() <= MAX_TOPIC_BARS {
                for (t, (_, total, _)) in &s.topics {
                    let bar = multi.add(indicatif::ProgressBar::new((*total).max(0) as u64));
                    bar.set_style(style.clone());
                    let name: String = t.chars().take(24).collect();
                    bar.set_prefix(name);
                    self.topics.push((t.clone(), bar));
                }
            }
        }
        let (recs, mbs, eta) = rate_and_eta(s);
        if let Some(bar) = &self.overall {
            bar.set_position(s.offsets_done.max(0) as u64);
            bar.set_message(format!(
                "{} records, {} rec/s, {mbs:.1} MB/s, ETA {}",
                thousands(s.records as i64),
                thousands(recs as i64),
                eta.map_or("-".to_string(), duration)
            ));
        }
        for (t, bar) in &self.topics {
            if let Some((done, _, written)) = s.topics.get(t) {
                bar.set_position((*done).max(0) as u64);
                bar.set_message(format!("{} records", thousands(*written as i64)));
            }
        }
    }

    fn finish(&mut self, s: &crate::copy::Snapshot) {
        self.update(s);
        if let Some(bar) = &self.overall {
            bar.finish();
        }
        for (_, bar) in &self.topics {
            bar.finish();
        }
    }
}

/// Appends a command's report to the text log, as the reference tool did. A log that cannot
/// be written is a warning, not a reason to stop a migration.
pub fn log(log_file: &std::path::Path, command: &str, text: &str) {
    let header = format!(
        "==== kmigrate {command} at {} ====\n",
        time_ms(crate::model::now_ms())
    );
    if let Err(e) = crate::fsutil::append(log_file, &format!("{header}{text}\n")) {
        tracing::warn!("{e:#}");
    }
}
