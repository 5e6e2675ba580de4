//! Output for people: aligned text tables and number formatting. Every command renders
//! through here so that tables look the same everywhere; JSON comes from the same data
//! types via serde.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A plain text table: a header line, then rows, columns padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[(&str, Align)]) -> Table {
        Table {
            headers: headers.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders with `indent` spaces before each line; trailing spaces are trimmed.
    pub fn render(&self, indent: usize) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self
            .headers
            .iter()
            .map(|(h, _)| h.chars().count())
            .collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
            let mut s = " ".repeat(indent);
            for (i, c) in cells.enumerate().take(n) {
                let pad = widths[i].saturating_sub(c.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                match self.headers[i].1 {
                    Align::Left => {
                        s.push_str(c);
                        s.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        s.push_str(&" ".repeat(pad));
                        s.push_str(c);
                    }
                }
            }
            let _ = writeln!(out, "{}", s.trim_end());
        };
        line(&mut self.headers.iter().map(|(h, _)| h.as_str()), &mut out);
        for r in &self.rows {
            line(&mut r.iter().map(String::as_str), &mut out);
        }
        out
    }
}

/// Writes a command's output to stdout. A closed pipe (`kmigrate plan | head`) is not an
/// error worth a message.
pub fn print(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A line for the operator on stderr, apart from the command's output.
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// `76522` -> `76,522`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
pub fn time_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `n thing` / `n things`.
pub fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(76522), "76,522");
        assert_eq!(thousands(-1234567), "-1,234,567");
    }

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        t.row(vec!["a".into(), "1,000".into()]);
        t.row(vec!["bbbb".into(), "2".into()]);
        assert_eq!(t.render(2), "  NAME      N\n  a     1,000\n  bbbb      2\n");
    }

    #[test]
    fn time() {
        assert_eq!(time_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(plural(1, "record", "records"), "1 record");
        assert_eq!(plural(2, "record", "records"), "2 records");
    }
}

/// `1536000` -> `1.5 MB` (decimal units, as throughput is usually quoted).
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

/// `h:mm:ss` or `m:ss`.
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Progress of a copy: a live bar per topic and overall on a terminal, a line every few
/// seconds otherwise (logs, CI).
pub fn copy_progress() -> Box<dyn crate::copy::ProgressSink> {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        Box::new(Bars::default())
    } else {
        Box::new(Lines { last: None })
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
