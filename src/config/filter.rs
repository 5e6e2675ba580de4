//! Which consumer groups and topics are considered (`[filter]`): glob patterns.

use serde::Deserialize;
use wildmatch::WildMatch;

use crate::error::usage;

use super::origin::{Origin, item_place};

/// Which consumer groups and topics are considered. Patterns are globs (`*`, `?`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    pub groups: Vec<String>,
    pub exclude_groups: Vec<String>,
    pub topics: Vec<String>,
    pub exclude_topics: Vec<String>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            groups: vec!["*".into()],
            exclude_groups: Vec::new(),
            topics: vec!["*".into()],
            exclude_topics: Vec::new(),
        }
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
            .find(|(_, p)| p.trim().is_empty())
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
pub fn unmatched_patterns(patterns: &[String], names: &[&str]) -> Vec<(String, Vec<String>)> {
    patterns
        .iter()
        .filter(|p| p.as_str() != "*" && !names.iter().any(|n| glob_match(p, n)))
        .map(|p| {
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
            (p.clone(), near)
        })
        .collect()
}

impl FilterConfig {
    pub fn group_selected(&self, group: &str) -> bool {
        self.groups.iter().any(|p| glob_match(p, group))
            && !self.exclude_groups.iter().any(|p| glob_match(p, group))
    }

    /// Internal topics (`__*`) are never selected, whatever the patterns say.
    pub fn topic_selected(&self, topic: &str) -> bool {
        !is_internal_topic(topic)
            && self.topics.iter().any(|p| glob_match(p, topic))
            && !self.exclude_topics.iter().any(|p| glob_match(p, topic))
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
        let pats = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
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
            groups: vec!["test*".into()],
            exclude_groups: vec!["test34-group".into()],
            topics: vec!["*".into()],
            exclude_topics: vec!["tmp.*".into()],
        };
        assert!(f.group_selected("test123-group"));
        assert!(!f.group_selected("test34-group"));
        assert!(!f.group_selected("other"));
        assert!(f.topic_selected("test1"));
        assert!(!f.topic_selected("tmp.x"));
        assert!(!f.topic_selected("__consumer_offsets"));
        assert!(!f.topic_selected("__transaction_state"));
    }
}
