//! Text for people: aligned tables and number, byte, time and duration formatting, so that
//! every stage's output looks the same. Plain functions at the bottom of the dependency
//! graph: the plan's renderer and the final reports both use them.

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
