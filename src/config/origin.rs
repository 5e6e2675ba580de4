//! Where each key of the TOML file is written, from the TOML parser's own spans, so that
//! every error names the file, line and column.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// Where the settings were written, so that an error found after loading (librdkafka
/// refusing a property, a pattern that matches nothing) can name the file, line and column.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Origin {
    /// The configuration file, when one was read.
    pub file: Option<String>,
    /// Dotted key (`source.properties.sasl.mechanism`, quotes removed) -> (line, column)
    /// of its name, or of its `[header]` for a table opened by one.
    pub keys: BTreeMap<String, (usize, usize)>,
}

impl Origin {
    /// Reads where every key of a TOML text is written, from the TOML parser's own spans:
    /// keys of tables, of arrays of tables and of inline tables alike. A key stands at its
    /// name, a table opened by a `[header]` at that header. Text that does not parse gives
    /// the keys that could be read.
    pub fn from_toml(file: &str, text: &str) -> Origin {
        let lines = Lines::new(text);
        let mut keys = BTreeMap::new();
        for k in written_keys(text) {
            let at = lines.position(k.name.start.min(k.value.start));
            keys.entry(k.path.join("."))
                .and_modify(|first: &mut (usize, usize)| *first = (*first).min(at))
                .or_insert(at);
        }
        Origin {
            file: Some(file.to_string()),
            keys,
        }
    }

    /// `migrate.toml:12:1 (`source.properties."ssl.ca.location"`)` for a key written in the
    /// file; the enclosing table's place, or the file alone, when the key is not found.
    /// `shown` is the key as the message should spell it.
    pub fn locate(&self, key: &str, shown: &str) -> String {
        let Some(file) = &self.file else {
            return format!("`{shown}`");
        };
        let mut k = key;
        loop {
            if let Some((line, col)) = self.keys.get(k) {
                return format!("{file}:{line}:{col} (`{shown}`)");
            }
            match k.rsplit_once('.') {
                Some((parent, _)) => k = parent,
                None => return format!("{file} (`{shown}`)"),
            }
        }
    }

    /// Where a librdkafka property of `[role.properties]` is written.
    pub fn locate_property(&self, role: &str, key: &str) -> String {
        self.locate(
            &format!("{role}.properties.{key}"),
            &format!("{role}.properties.\"{key}\""),
        )
    }
}

/// Byte offsets of a text as 1-based (line, column), the column counted in characters.
pub(super) struct Lines<'t> {
    text: &'t str,
    /// Where each line starts.
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// Never fails: an offset past the end, or inside a character, counts the characters
    /// that start before it.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = self.text.get(start..).map_or(0, |rest| {
            rest.char_indices()
                .take_while(|(i, _)| start + i < offset)
                .count()
        });
        (line, col + 1)
    }
}

/// A key as the TOML parser read it: its dotted path (quotes removed) and the byte spans of
/// its name and of its value (a table opened by a header: the header).
struct WrittenKey {
    path: Vec<String>,
    name: Range<usize>,
    value: Range<usize>,
}

/// Every key of the text, nested ones included. Text that does not parse gives what the
/// parser could recover, so that syntax errors still name the key they are in.
fn written_keys(text: &str) -> Vec<WrittenKey> {
    let (root, _errors) = DeTable::parse_recoverable(text);
    let mut out = Vec::new();
    collect_table(root.get_ref(), &[], &mut out);
    out
}

fn collect_table(table: &DeTable<'_>, parent: &[String], out: &mut Vec<WrittenKey>) {
    for (name, value) in table.iter() {
        let mut path = parent.to_vec();
        path.push(name.get_ref().to_string());
        collect_value(value.get_ref(), &path, out);
        out.push(WrittenKey {
            path,
            name: name.span(),
            value: value.span(),
        });
    }
}

fn collect_value(value: &DeValue<'_>, path: &[String], out: &mut Vec<WrittenKey>) {
    match value {
        DeValue::Table(table) => collect_table(table, path, out),
        // The tables of an array (`[[name]]` or `[{..}, {..}]`) share the array's path.
        DeValue::Array(items) => {
            for item in items.iter() {
                collect_value(item.get_ref(), path, out);
            }
        }
        _ => {}
    }
}

/// The dotted key an error at `offset` is about (`migration.create_topics`): the deepest
/// key whose name or value covers the offset.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    written_keys(text)
        .into_iter()
        .filter(|k| k.name.contains(&offset) || k.value.contains(&offset))
        .max_by_key(|k| k.path.len())
        .map(|k| k.path.join("."))
}

/// Where the `index`-th element of the array at the dotted `key` is written, as
/// `file:line:column (`key`)`; the key's own place when the element is not found.
pub(super) fn item_place(origin: &Origin, text: &str, key: &str, index: usize) -> String {
    match (item_offset(text, key, index), &origin.file) {
        (Some(offset), Some(file)) => {
            let (line, col) = Lines::new(text).position(offset);
            format!("{file}:{line}:{col} (`{key}`)")
        }
        _ => origin.locate(key, key),
    }
}

fn item_offset(text: &str, key: &str, index: usize) -> Option<usize> {
    let (root, _errors) = DeTable::parse_recoverable(text);
    let mut parts = key.split('.');
    let mut value = root.get_ref().get(parts.next()?)?;
    for part in parts {
        value = value.get_ref().get(part)?;
    }
    Some(value.get_ref().get(index)?.span().start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_finds_keys_of_tables_and_arrays() {
        let text = "# c\n[source]\nbootstrap_servers = \"a:1\"\n[source.properties]\n  \"ssl.ca.location\" = \"x\"\n\
                    [filter]\ngroups = [\n  \"a\",\n  \"b = c\",\n]\ntopics = [\"t\"]\n";
        let o = Origin::from_toml("m.toml", text);
        assert_eq!(
            o.locate_property("source", "ssl.ca.location"),
            "m.toml:5:3 (`source.properties.\"ssl.ca.location\"`)"
        );
        assert_eq!(
            o.locate("filter.groups", "filter.groups"),
            "m.toml:7:1 (`filter.groups`)"
        );
        assert_eq!(
            o.locate("filter.topics", "filter.topics"),
            "m.toml:11:1 (`filter.topics`)"
        );
        // Not written: the enclosing table.
        assert_eq!(
            o.locate_property("source", "linger.ms"),
            "m.toml:4:1 (`source.properties.\"linger.ms\"`)"
        );
        assert_eq!(
            Origin::default().locate("filter.groups", "filter.groups"),
            "`filter.groups`"
        );
    }

    #[test]
    fn origin_finds_keys_inside_inline_tables() {
        let text = "[source]\nbootstrap_servers = \"a:1\"\n\
                    properties = { \"ssl.ca.location\" = \"x\", \"linger.ms\" = 5 }\n\
                    [migration]\ncreate_topics = true\n";
        let o = Origin::from_toml("m.toml", text);
        assert_eq!(
            o.locate_property("source", "linger.ms"),
            "m.toml:3:41 (`source.properties.\"linger.ms\"`)"
        );
        assert_eq!(
            o.locate_property("source", "ssl.ca.location"),
            "m.toml:3:16 (`source.properties.\"ssl.ca.location\"`)"
        );
        assert_eq!(
            o.locate("migration.create_topics", "migration.create_topics"),
            "m.toml:5:1 (`migration.create_topics`)"
        );
    }

    proptest::proptest! {
        #[test]
        fn positions_of_any_offset(text in "(?s).{0,60}", offset in 0usize..200) {
            let (line, col) = Lines::new(&text).position(offset);
            proptest::prop_assert!(line >= 1 && col >= 1);
            let _ = key_at(&text, offset);
            let _ = Origin::from_toml("f.toml", &text);
        }
    }
}
