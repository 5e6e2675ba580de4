//! Which consumer groups and topics are considered (`[filter]`): glob patterns.

use std::fmt;

use serde::Deserialize;
use wildmatch::WildMatch;

use crate::error::usage;

use super::origin::{Origin, item_place};

/// Which consumer groups and topics are considered. Patterns are globs (`*`, `?`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    pub groups: Patterns,
    pub exclude_groups: Patterns,
    pub topics: Patterns,
    pub exclude_topics: Patterns,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            groups: Patterns::new(["*"]),
            exclude_groups: Patterns::default(),
            topics: Patterns::new(["*"]),
            exclude_topics: Patterns::default(),
        }
    }
}

/// One filter pattern: the text as written, and its matcher, built once when the
/// configuration is read rather than for every name it is matched against.
#[derive(Clone)]
pub struct Pattern {
    text: String,
    glob: WildMatch,
}

impl Pattern {
    pub fn new(text: impl Into<String>) -> Pattern {
        let text = text.into();
        let glob = WildMatch::new(&text);
        Pattern { text, glob }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches, by the rules of [`glob_match`].
    pub fn matches(&self, name: &str) -> bool {
        self.glob.matches(name)
    }
}

/// Two patterns are equal when they are written alike (the matcher follows from the text).
impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

/// Printed as the text, as the configuration was before patterns were compiled.
impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// The patterns of one `[filter]` key, read from the file as a list of strings.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "Vec<String>")]
pub struct Patterns(Vec<Pattern>);

impl Patterns {
    pub fn new<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Patterns {
        Patterns(patterns.into_iter().map(Pattern::new).collect())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Pattern> {
        self.0.iter()
    }

    /// Whether any of the patterns matches `name`.
    pub fn any_matches(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.matches(name))
    }
}

impl From<Vec<String>> for Patterns {
    fn from(patterns: Vec<String>) -> Patterns {
        Patterns::new(patterns)
    }
}

impl<S: Into<String>> FromIterator<S> for Patterns {
    fn from_iter<I: IntoIterator<Item = S>>(patterns: I) -> Patterns {
        Patterns::new(patterns)
    }
}

impl<'a> IntoIterator for &'a Patterns {
    type Item = &'a Pattern;
    type IntoIter = std::slice::Iter<'a, Pattern>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Printed as the list of texts, as the configuration was before patterns were compiled.
impl fmt::Debug for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// Refuses empty filter patterns, naming where each is written. Every other text is a valid
/// pattern.
pub(super) fn check_patterns(
    filter: &FilterConfig,
    origin: &Origin,
    text: &str,
) -> anyhow::Result<()> {
    for (key, patterns) in [
        ("filter.groups", &filter.groups),
        ("filter.exclude_groups", &filter.exclude_groups),
        ("filter.topics", &filter.topics),
        ("filter.exclude_topics", &filter.exclude_topics),
    ] {
        if let Some((i, p)) = patterns
            .iter()
            .enumerate()
            .find(|(_, p)| p.as_str().trim().is_empty())
        {
            return Err(usage(format!(
                "invalid configuration at {}: the empty pattern {p:?} selects nothing; remove \
                 it or write \"*\" for all.",
                item_place(origin, text, key, i)
            )));
        }
    }
    Ok(())
}

/// Whether `name` matches the filter pattern: `*` matches any run of characters, dots and
/// slashes included, `?` exactly one character, and every other character only itself (no
/// classes, braces or escapes: consumer group names may contain `[`, `{` or `\`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    WildMatch::new(pattern).matches(name)
}

/// The include patterns (other than "*") that match none of `names`, each with up to five
/// names that look closest to it, so that an error can point at the likely typo.
pub fn unmatched_patterns(patterns: &Patterns, names: &[&str]) -> Vec<(String, Vec<String>)> {
    patterns
        .iter()
        .filter(|p| p.as_str() != "*" && !names.iter().any(|n| p.matches(n)))
        .map(|p| {
            let p = p.as_str();
            let literal: String = p.chars().filter(|c| *c != '*' && *c != '?').collect();
            let len = literal.chars().count();
            // Compare "orders-*" with the start of each name, "*-v1" with its end.
            let part = |n: &str| -> String {
                let chars: Vec<char> = n.chars().collect();
                match (p.starts_with('*'), p.ends_with('*')) {
                    (false, true) => chars.iter().take(len).collect(),
                    (true, false) => chars[chars.len().saturating_sub(len)..].iter().collect(),
                    _ => n.to_string(),
                }
            };
            let mut scored: Vec<(usize, &str)> = names
                .iter()
                .map(|n| (strsim::damerau_levenshtein(&literal, &part(n)), *n))
                .collect();
            scored.sort();
            let near = scored.iter().take(5).map(|(_, n)| n.to_string()).collect();
            (p.to_string(), near)
        })
        .collect()
}

impl FilterConfig {
    pub fn group_selected(&self, group: &str) -> bool {
        self.groups.any_matches(group) && !self.exclude_groups.any_matches(group)
    }

    /// Internal topics (`__*`) are never selected, whatever the patterns say.
    pub fn topic_selected(&self, topic: &str) -> bool {
        !is_internal_topic(topic)
            && self.topics.any_matches(topic)
            && !self.exclude_topics.any_matches(topic)
    }
}

/// `__consumer_offsets`, `__transaction_state` and every other `__*` topic.
pub fn is_internal_topic(topic: &str) -> bool {
    topic.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "orders"));
        assert!(glob_match("test?", "test3"));
        assert!(!glob_match("test?", "test"));
        assert!(glob_match("orders.*.v1", "orders.eu.v1"));
        assert!(!glob_match("orders.*.v1", "orders.eu.v2"));
        assert!(glob_match("*-group", "test123-group"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn unmatched_patterns_name_the_closest_names() {
        let names = ["orders-eu", "orders-us", "payments", "audit"];
        let pats = |v: &[&str]| Patterns::new(v.iter().copied());
        assert!(unmatched_patterns(&pats(&["*", "orders-*", "audit"]), &names).is_empty());
        let got = unmatched_patterns(&pats(&["ordrs-*", "paymnts"]), &names);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "ordrs-*");
        assert_eq!(&got[0].1[..2], ["orders-eu", "orders-us"]);
        assert_eq!(got[1].1[0], "payments");
        assert_eq!(
            unmatched_patterns(&pats(&["x*"]), &[]),
            vec![("x*".into(), vec![])]
        );
    }

    #[test]
    fn glob_special_characters_other_than_star_and_question_mark_are_literal() {
        assert!(glob_match("grp[1]", "grp[1]"));
        assert!(!glob_match("grp[1]", "grp1"));
        assert!(glob_match("{a,b}*", "{a,b}-x"));
        assert!(!glob_match("{a,b}*", "a-x"));
        assert!(glob_match("dom\\*", "dom\\user"));
        assert!(glob_match("a/**/b", "a/x/y/b"));
        assert!(glob_match("a**", "a"));
        assert!(glob_match("*", "a/b.c\nd"));
        assert!(glob_match("caf?", "café"));
        assert!(glob_match("?", "é"));
        assert!(!glob_match("??", "é"));
    }

    #[test]
    fn filters() {
        let f = FilterConfig {
            groups: Patterns::new(["test*"]),
            exclude_groups: Patterns::new(["test34-group"]),
            topics: Patterns::new(["*"]),
            exclude_topics: Patterns::new(["tmp.*"]),
        };
        assert!(f.group_selected("test123-group"));
        assert!(!f.group_selected("test34-group"));
        assert!(!f.group_selected("other"));
        assert!(f.topic_selected("test1"));
        assert!(!f.topic_selected("tmp.x"));
        assert!(!f.topic_selected("__consumer_offsets"));
        assert!(!f.topic_selected("__transaction_state"));
    }

    #[test]
    fn compiled_patterns_read_compare_and_print_as_written() {
        let f: FilterConfig =
            toml::from_str("groups = [\"orders-*\", \"audit\"]\nexclude_topics = [\"tmp.?\"]\n")
                .expect("valid");
        assert_eq!(f.groups, Patterns::new(["orders-*", "audit"]));
        assert_eq!(f.topics, FilterConfig::default().topics);
        let texts: Vec<&str> = f.groups.iter().map(Pattern::as_str).collect();
        assert_eq!(texts, ["orders-*", "audit"]);
        assert!(f.group_selected("orders-eu") && f.group_selected("audit"));
        assert!(!f.group_selected("orders") && !f.group_selected("audit2"));
        assert!(f.topic_selected("tmp") && !f.topic_selected("tmp.1"));
        // Printed (in the configuration's summary) exactly as a list of strings was.
        assert_eq!(format!("{:?}", f.groups), r#"["orders-*", "audit"]"#);
        assert_eq!(
            format!("{:?}", FilterConfig::default()),
            r#"FilterConfig { groups: ["*"], exclude_groups: [], topics: ["*"], exclude_topics: [] }"#
        );
        for (pattern, name) in [("a*b?", "axxbc"), ("a*b?", "ab"), ("[x]", "[x]"), ("*", "")] {
            assert_eq!(
                Pattern::new(pattern).matches(name),
                glob_match(pattern, name),
                "{pattern} {name}"
            );
        }
    }
}
