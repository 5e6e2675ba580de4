//! The domain types every stage shares: a topic partition, a partition's watermarks, a
//! group's members and state. Plain data, no I/O: the bottom of the dependency graph, so
//! that `kafka/` can hand these back without knowing about plans.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tp {
    pub topic: String,
    pub partition: i32,
}

impl Tp {
    pub fn new(topic: impl Into<String>, partition: i32) -> Tp {
        Tp {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for Tp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A source partition's offsets. `stable` is the last stable offset (what a read_committed
/// consumer can reach): below `high` while a transaction is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    pub low: i64,
    pub high: i64,
    pub stable: i64,
}

impl Watermarks {
    pub fn ends(&self) -> Ends {
        Ends {
            high: self.high,
            stable: self.stable,
        }
    }
}

/// Where a source partition ends now: its high watermark and last stable offset. What a
/// live copy follows and a cutover's quiet window compares (the low watermark plays no
/// part in either).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ends {
    pub high: i64,
    pub stable: i64,
}

/// A live member of a consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub client_id: String,
    pub host: String,
}

/// A consumer group's state as the broker reports it. Classic groups go through
/// Empty / PreparingRebalance / CompletingRebalance / Stable / Dead; groups on the new
/// protocol (KIP-848) also report Assigning and Reconciling. Serialized as the broker's
/// word, so plan files keep their schema; a word this version does not know is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum GroupState {
    Empty,
    Stable,
    PreparingRebalance,
    CompletingRebalance,
    Assigning,
    Reconciling,
    Dead,
    /// The broker did not say (an old broker, or a group that only ever committed).
    #[default]
    Unknown,
    Other(String),
}

impl GroupState {
    /// No live members: safe to migrate and to commit offsets for.
    pub fn is_inactive(&self) -> bool {
        matches!(
            self,
            GroupState::Empty | GroupState::Dead | GroupState::Unknown
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Stable => "Stable",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Dead => "Dead",
            GroupState::Unknown => "",
            GroupState::Other(s) => s,
        }
    }
}

impl From<&str> for GroupState {
    fn from(s: &str) -> GroupState {
        match s {
            "Empty" => GroupState::Empty,
            "Stable" => GroupState::Stable,
            "PreparingRebalance" => GroupState::PreparingRebalance,
            "CompletingRebalance" | "AwaitingSync" => GroupState::CompletingRebalance,
            "Assigning" => GroupState::Assigning,
            "Reconciling" => GroupState::Reconciling,
            "Dead" => GroupState::Dead,
            "" | "Unknown" => GroupState::Unknown,
            other => GroupState::Other(other.to_string()),
        }
    }
}

impl From<String> for GroupState {
    fn from(s: String) -> GroupState {
        GroupState::from(s.as_str())
    }
}

impl From<GroupState> for String {
    fn from(s: GroupState) -> String {
        s.as_str().to_string()
    }
}

impl PartialEq<&str> for GroupState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One worker's share of a plan: shard `index` (0-based, as Kubernetes numbers an Indexed
/// Job's pods) of `count`. Written `INDEX/COUNT` on the command line and `{"index", "count"}`
/// in a state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The state file of this shard beside the migration's `state_file`: the name gets
    /// `.shard-INDEX-of-COUNT`, so that every shard resumes from its own file and a file
    /// names the split it belongs to.
    pub fn state_file(&self, state_file: &std::path::Path) -> std::path::PathBuf {
        let mut name = state_file.as_os_str().to_owned();
        name.push(format!(".shard-{}-of-{}", self.index, self.count));
        std::path::PathBuf::from(name)
    }

    /// The shard a state file name (without its directory) belongs to, given the plain
    /// state file's name: `kmigrate-state.json.shard-2-of-8` gives 2/8. Anything else
    /// (temporary files, locks) gives `None`.
    pub fn of_file_name(name: &str, state_name: &str) -> Option<Shard> {
        let rest = name.strip_prefix(state_name)?.strip_prefix(".shard-")?;
        let (index, count) = rest.split_once("-of-")?;
        let shard = Shard {
            index: index.parse().ok()?,
            count: count.parse().ok()?,
        };
        (shard.index < shard.count && shard.to_suffix() == rest).then_some(shard)
    }

    fn to_suffix(self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "expected INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/3, or \
                 ${{JOB_COMPLETION_INDEX}}/3 in a Kubernetes Indexed Job), not {s:?}"
            )
        };
        let (index, count) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count || count > 10_000 {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_states_round_trip_as_the_brokers_words() {
        for w in [
            "Empty",
            "Stable",
            "PreparingRebalance",
            "CompletingRebalance",
            "Assigning",
            "Reconciling",
            "Dead",
            "",
            "SomethingNew",
        ] {
            let s = GroupState::from(w);
            assert_eq!(String::from(s.clone()), w);
            let json = serde_json::to_string(&s).expect("serialize");
            assert_eq!(json, format!("\"{w}\""));
        }
        assert!(GroupState::from("Empty").is_inactive());
        assert!(GroupState::from("Dead").is_inactive());
        assert!(GroupState::from("").is_inactive());
        assert!(!GroupState::from("Stable").is_inactive());
        assert!(!GroupState::from("Reconciling").is_inactive());
        assert!(!GroupState::from("SomethingNew").is_inactive());
    }

    #[test]
    fn shards_parse_and_name_their_state_files() {
        let s: Shard = "2/8".parse().expect("2/8");
        assert_eq!(s, Shard { index: 2, count: 8 });
        assert_eq!(s.to_string(), "2/8");
        for bad in ["8/8", "1/0", "-1/3", "a/3", "3", "", "1/3/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let p = s.state_file(std::path::Path::new("/d/kmigrate-state.json"));
        assert_eq!(
            p,
            std::path::Path::new("/d/kmigrate-state.json.shard-2-of-8")
        );
        let of = |n: &str| Shard::of_file_name(n, "kmigrate-state.json");
        assert_eq!(of("kmigrate-state.json.shard-2-of-8"), Some(s));
        assert_eq!(of("kmigrate-state.json.shard-2-of-8.lock"), None);
        assert_eq!(of("kmigrate-state.json.shard-02-of-8"), None);
        assert_eq!(of("kmigrate-state.json.shard-9-of-8"), None);
        assert_eq!(of("kmigrate-state.json"), None);
        assert_eq!(of("other.json.shard-2-of-8"), None);
    }
}
