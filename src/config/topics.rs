//! Topic renaming: which target topic each source topic is copied to (`[topics]`), and the
//! checks that every source topic gets a target topic of its own. Two source topics in one
//! target topic would interleave their partitions' records, and no group offset could then
//! be translated exactly, so a mapping that does that is refused before anything is copied.

use std::collections::BTreeMap;

use crate::error::usage;

use super::filter::{Patterns, is_internal_topic, unmatched_patterns};
use super::origin::Origin;

/// Stands for the source topic's name in the `topics.target` template.
pub const PLACEHOLDER: &str = "{topic}";

/// The longest topic name Kafka accepts.
const MAX_TOPIC_NAME: usize = 249;

/// The `[topics]` table: explicit names first, then the template for every other topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMapping {
    /// Target name of every topic not in `map`; [`PLACEHOLDER`] stands for the source name.
    pub template: String,
    /// Source topic -> target topic.
    pub map: BTreeMap<String, String>,
}

impl Default for TopicMapping {
    fn default() -> Self {
        TopicMapping {
            template: PLACEHOLDER.to_string(),
            map: BTreeMap::new(),
        }
    }
}

/// The target topic `source` is copied to: its explicit name, or else the template's.
pub fn target_topic(source: &str, m: &TopicMapping) -> String {
    match m.map.get(source) {
        Some(t) => t.clone(),
        None => m.template.replace(PLACEHOLDER, source),
    }
}

/// Why `name` cannot be a Kafka topic, if it cannot.
pub fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} is reserved"));
    }
    if name.chars().count() > MAX_TOPIC_NAME {
        return Some(format!("it is longer than {MAX_TOPIC_NAME} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "it contains {c:?}; topic names use only letters, digits, '.', '_' and '-'"
        ));
    }
    None
}

/// The dotted key of the rule that names `source`'s target, and that key as messages
/// spell it.
fn rule_key(source: &str, m: &TopicMapping) -> (String, String) {
    if m.map.contains_key(source) {
        (
            format!("topics.map.{source}"),
            format!("topics.map.\"{source}\""),
        )
    } else {
        ("topics.target".into(), "topics.target".into())
    }
}

fn rule_place(source: &str, m: &TopicMapping, origin: &Origin) -> String {
    let (key, shown) = rule_key(source, m);
    if origin.file.is_some() && !origin.keys.contains_key(&key) {
        // Only the template can be unwritten: its default keeps the source's name.
        return format!("`{shown}`, not set: the topic keeps its name");
    }
    origin.locate(&key, &shown)
}

/// Where the rule is written, to order two rules by their place in the file.
fn rule_position(source: &str, m: &TopicMapping, origin: &Origin) -> (usize, usize) {
    let (key, _) = rule_key(source, m);
    origin.keys.get(&key).copied().unwrap_or((0, 0))
}

/// Checks the `[topics]` table as written, before any cluster is read: every explicit name
/// and the template give legal topic names outside Kafka's internal ones, and no two
/// explicit entries name the same target topic.
pub fn check_mapping_written(m: &TopicMapping, origin: &Origin) -> anyhow::Result<()> {
    let sample = m.template.replace(PLACEHOLDER, "t");
    if is_internal_topic(&sample) {
        return Err(usage(format!(
            "invalid configuration at {}: the template {:?} names internal topics (`__*` topics \
             belong to Kafka itself). Write a template that does not start with \"__\", e.g. \
             \"legacy.{PLACEHOLDER}\".",
            origin.locate("topics.target", "topics.target"),
            m.template
        )));
    }
    if let Some(why) = invalid_topic_name(&sample) {
        return Err(usage(format!(
            "invalid configuration at {}: the template {:?} does not give a valid topic name \
             ({why}). Write a name in which \"{PLACEHOLDER}\" stands for the source topic, e.g. \
             \"legacy.{PLACEHOLDER}\".",
            origin.locate("topics.target", "topics.target"),
            m.template
        )));
    }
    let keys: Vec<&str> = m.map.keys().map(String::as_str).collect();
    check_mapping(m, &keys, origin)
}

/// Checks the mapping for the source topics to be copied: each gets a legal target topic
/// outside Kafka's internal ones, and no two get the same one. Every problem is named with
/// the file, line and column of its rule.
pub fn check_mapping(m: &TopicMapping, sources: &[&str], origin: &Origin) -> anyhow::Result<()> {
    let mut sources = sources.to_vec();
    sources.sort_unstable();
    sources.dedup();
    let mut problems = Vec::new();
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    for s in sources {
        let t = target_topic(s, m);
        if is_internal_topic(&t) {
            problems.push(format!(
                "invalid configuration at {}: the source topic {s:?} would be copied to {t:?}, \
                 an internal topic of the target (`__*` topics belong to Kafka itself). Map it to \
                 a name that does not start with \"__\".",
                rule_place(s, m, origin)
            ));
            continue;
        }
        if let Some(why) = invalid_topic_name(&t) {
            problems.push(format!(
                "invalid configuration at {}: the source topic {s:?} would be copied to {t:?}, \
                 which is not a valid topic name ({why}). Map it to a valid name.",
                rule_place(s, m, origin)
            ));
            continue;
        }
        let Some(first) = taken.get(&t).copied() else {
            taken.insert(t, s);
            continue;
        };
        // The rule written later in the file is the one that collides.
        let (earlier, later) = if rule_position(first, m, origin) <= rule_position(s, m, origin) {
            (first, s)
        } else {
            (s, first)
        };
        let hint = if !m.map.contains_key(s)
            && !m.map.contains_key(first)
            && !m.template.contains(PLACEHOLDER)
        {
            format!(
                " The template {:?} has no \"{PLACEHOLDER}\", so it names every topic alike: \
                 put \"{PLACEHOLDER}\" in it, or name the topics one by one in [topics.map].",
                m.template
            )
        } else {
            String::new()
        };
        problems.push(format!(
            "invalid configuration at {}: the source topics {earlier:?} and {later:?} would both \
             be copied to the target topic {t:?} (the rule for {earlier:?} is at {}); their \
             records would mix and no group could resume at an exact offset. Give each source \
             topic a target topic of its own.{hint}",
            rule_place(later, m, origin),
            rule_place(earlier, m, origin),
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(usage(problems.join(" ")))
    }
}

/// The `[topics.map]` entries that name no topic of `names` (the source's), each with the
/// names that look closest, as messages ready to print; empty when all match.
pub fn unmatched_keys(m: &TopicMapping, names: &[&str], origin: &Origin) -> Vec<String> {
    let keys: Patterns = m.map.keys().cloned().collect();
    unmatched_patterns(&keys, names)
        .into_iter()
        .map(|(key, near)| {
            let nearby = if near.is_empty() {
                "the source has no topic at all".to_string()
            } else {
                format!("the closest source topics: {}", near.join(", "))
            };
            format!(
                "invalid configuration at {}: [topics.map] renames {key:?}, which is no topic on \
                 the source ({nearby}). Correct the name or remove the entry",
                origin.locate(
                    &format!("topics.map.{key}"),
                    &format!("topics.map.\"{key}\"")
                )
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitKind, exit_kind};
    use proptest::prelude::*;

    fn mapping(template: &str, map: &[(&str, &str)]) -> TopicMapping {
        TopicMapping {
            template: template.into(),
            map: map
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The origin of a file with `[topics]` written as in the tests below.
    fn origin(text: &str) -> Origin {
        Origin::from_toml("m.toml", text)
    }

    fn refused(r: anyhow::Result<()>) -> String {
        let e = r.expect_err("refused");
        assert_eq!(exit_kind(&e), ExitKind::Usage);
        format!("{e:#}")
    }

    #[test]
    fn explicit_names_win_over_the_template() {
        let m = mapping("legacy.{topic}", &[("orders", "orders.v2")]);
        assert_eq!(target_topic("orders", &m), "orders.v2");
        assert_eq!(target_topic("payments", &m), "legacy.payments");
        assert_eq!(target_topic("x", &TopicMapping::default()), "x");
        assert_eq!(target_topic("a", &mapping("{topic}-{topic}", &[])), "a-a");
    }

    #[test]
    fn topic_names() {
        assert!(invalid_topic_name("orders.v2_x-1").is_none());
        for bad in ["", ".", "..", "a b", "a/b", "é", "{topic}"] {
            assert!(invalid_topic_name(bad).is_some(), "{bad:?}");
        }
        assert!(invalid_topic_name(&"a".repeat(250)).is_some());
        assert!(invalid_topic_name(&"a".repeat(249)).is_none());
    }

    #[test]
    fn two_explicit_names_onto_one_name_the_later_key() {
        let text = "[topics]\n[topics.map]\n\"a\" = \"x\"\n\"b\" = \"x\"\n";
        let m = mapping("{topic}", &[("a", "x"), ("b", "x")]);
        let s = refused(check_mapping_written(&m, &origin(text)));
        assert!(s.contains("m.toml:4:1 (`topics.map.\"b\"`)"), "{s}");
        assert!(s.contains("m.toml:3:1"), "{s}");
        assert!(s.contains("\"x\""), "{s}");
    }

    #[test]
    fn explicit_name_onto_an_internal_topic() {
        let text = "[topics.map]\norders = \"__consumer_offsets\"\n";
        let m = mapping("{topic}", &[("orders", "__consumer_offsets")]);
        let s = refused(check_mapping_written(&m, &origin(text)));
        assert!(s.contains("m.toml:2:1 (`topics.map.\"orders\"`)"), "{s}");
        assert!(s.contains("internal"), "{s}");
    }

    #[test]
    fn template_onto_internal_or_invalid_names() {
        let text = "[topics]\ntarget = \"__{topic}\"\n";
        let s = refused(check_mapping_written(
            &mapping("__{topic}", &[]),
            &origin(text),
        ));
        assert!(s.contains("m.toml:2:1 (`topics.target`)"), "{s}");
        let s = refused(check_mapping_written(
            &mapping("a b.{topic}", &[]),
            &origin(text),
        ));
        assert!(s.contains("m.toml:2:1 (`topics.target`)"), "{s}");
        let text = "[topics.map]\n\"o\" = \"o/v2\"\n";
        let s = refused(check_mapping_written(
            &mapping("{topic}", &[("o", "o/v2")]),
            &origin(text),
        ));
        assert!(s.contains("m.toml:2:1 (`topics.map.\"o\"`)"), "{s}");
    }

    #[test]
    fn template_without_placeholder_is_fine_for_one_topic_only() {
        let text = "[topics]\ntarget = \"all\"\n";
        let m = mapping("all", &[]);
        check_mapping_written(&m, &origin(text)).expect("one name is fine as written");
        check_mapping(&m, &["a"], &origin(text)).expect("one topic");
        let s = refused(check_mapping(&m, &["a", "b"], &origin(text)));
        assert!(s.contains("m.toml:2:1 (`topics.target`)"), "{s}");
        assert!(s.contains("has no \"{topic}\""), "{s}");
    }

    #[test]
    fn explicit_name_onto_a_templated_name() {
        // "a" -> "b" and "b" -> "b" by the default template.
        let text = "[topics.map]\na = \"b\"\n";
        let m = mapping("{topic}", &[("a", "b")]);
        check_mapping_written(&m, &origin(text)).expect("fine alone");
        let s = refused(check_mapping(&m, &["a", "b"], &origin(text)));
        assert!(s.contains("m.toml:2:1 (`topics.map.\"a\"`)"), "{s}");
        assert!(
            s.contains(
                "(the rule for \"b\" is at `topics.target`, not set: the topic keeps its name)"
            ),
            "{s}"
        );
    }

    #[test]
    fn unmatched_keys_name_their_place_and_the_nearest_topics() {
        let text = "[topics.map]\nordres = \"x\"\npayments = \"y\"\n";
        let m = mapping("{topic}", &[("ordres", "x"), ("payments", "y")]);
        let got = unmatched_keys(&m, &["orders", "payments"], &origin(text));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("m.toml:2:1 (`topics.map.\"ordres\"`)"),
            "{got:?}"
        );
        assert!(got[0].contains("orders"), "{got:?}");
    }

    proptest! {
        /// Whenever the mapping passes the check, no two source topics share a target topic.
        #[test]
        fn accepted_mappings_are_injective(
            template in prop::sample::select(vec![
                "{topic}", "legacy.{topic}", "{topic}.v2", "all", "x{topic}{topic}", "a",
            ]),
            map in prop::collection::btree_map("[abc]{1,2}", "[abcx]{1,2}", 0..4),
            sources in prop::collection::vec("[abc]{1,2}", 0..6),
        ) {
            let m = TopicMapping { template: template.to_string(), map };
            let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
            if check_mapping(&m, &sources, &Origin::default()).is_ok() {
                let mut seen = BTreeMap::new();
                for s in &sources {
                    let t = target_topic(s, &m);
                    if let Some(other) = seen.insert(t.clone(), *s) {
                        prop_assert_eq!(other, *s, "{} and {} both go to {}", other, s, t);
                    }
                }
            }
        }
    }
}
