//! Cluster-level reads and changes: groups, committed offsets, watermarks, topics.
//! Every call is bounded by the cluster's timeout and batched: one request per group for
//! commits, one ListOffsets per broker for any number of partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigResource, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::ffi::{self, OffsetSpec};
use super::{Cluster, Ctx, auth_failed, explain};
use crate::model::{GroupState, Member, Tp, Watermarks};

/// A consumer group as listed by the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupListing {
    pub name: String,
    pub state: GroupState,
    /// "consumer" for consumer groups, "" for groups that only ever committed offsets,
    /// "connect" for Kafka Connect workers, ...
    pub protocol_type: String,
    pub members: Vec<Member>,
}

impl GroupListing {
    /// Groups whose commits are topic offsets (not Kafka Connect or other protocols).
    pub fn is_consumer_group(&self) -> bool {
        matches!(self.protocol_type.as_str(), "consumer" | "")
    }
}

/// A group's live members and the topics they are assigned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupMembers {
    pub state: GroupState,
    pub members: Vec<Member>,
    pub assigned_topics: BTreeSet<String>,
}

/// Reads and changes cluster-level state. Requests go through a group-less consumer handle
/// (librdkafka's admin calls work on any client), because polling it also delivers the
/// client's log and error events: that is how a timeout learns it was "connection refused"
/// or "authentication failed". rdkafka's `AdminClient` is kept for the calls it wraps
/// (configs, topic creation).
pub struct Admin {
    cluster: Cluster,
    client: BaseConsumer<Ctx>,
    admin: AdminClient<Ctx>,
    /// Set once a request got an answer: the connection is up and authenticated.
    connected: AtomicBool,
}

impl Admin {
    pub(super) fn new(cluster: &Cluster) -> anyhow::Result<Admin> {
        let config = cluster.client_config();
        Ok(Admin {
            cluster: cluster.detached(),
            client: cluster.create(&config, "client")?,
            admin: cluster.create(&config, "admin client")?,
            connected: AtomicBool::new(false),
        })
    }

    /// Waits until the cluster answers, failing at once when it refuses the credentials.
    /// librdkafka keeps retrying a refused login until the request's timeout, so a wrong
    /// password would otherwise look like an unreachable cluster after `timeout_secs`.
    /// The wait is cut into short Metadata requests (brokers only, no topics) and the
    /// client's log is checked for an authentication failure between them.
    fn connect(&self, doing: &str) -> anyhow::Result<()> {
        if self.connected.load(Ordering::Relaxed) {
            return Ok(());
        }
        let deadline = Instant::now() + self.cluster.timeout;
        let mut slice = Duration::from_millis(200);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match ffi::broker_metadata(self.client.client(), slice.min(left)) {
                Ok(()) => {
                    self.connected.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    self.drain_events();
                    if let Some(why) = self.client.context().auth_error() {
                        return Err(auth_failed(&self.cluster, &why));
                    }
                    if Instant::now() >= deadline {
                        return Err(self.fail(e, doing));
                    }
                }
            }
            slice = (slice * 2).min(Duration::from_secs(2));
        }
    }

    /// Delivers queued log and error events to the context.
    fn drain_events(&self) {
        for _ in 0..100 {
            if self.client.poll(Duration::ZERO).is_none() {
                break;
            }
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn fail(&self, e: impl Into<anyhow::Error>, doing: &str) -> anyhow::Error {
        // Deliver queued log and error events to the context before asking it why.
        self.drain_events();
        explain(&self.cluster, self.client.context(), e.into(), doing)
    }

    /// Every topic with its partition count (internal topics included).
    pub fn topics(&self) -> anyhow::Result<BTreeMap<String, i32>> {
        self.connect("reading topic metadata")?;
        let md = self
            .client
            .client()
            .fetch_metadata(None, self.cluster.timeout)
            .map_err(|e| self.fail(e, "reading topic metadata"))?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none() || !t.partitions().is_empty())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    /// Every group on the cluster, in any state (Empty groups too). The state and members
    /// come from the classic DescribeGroups, which does not see groups of the new consumer
    /// protocol (KIP-848): use [`Admin::group_members`] for anything that depends on them.
    pub fn groups(&self) -> anyhow::Result<Vec<GroupListing>> {
        self.connect("listing consumer groups")?;
        let list = self
            .client
            .client()
            .fetch_group_list(None, self.cluster.timeout)
            .map_err(|e| self.fail(e, "listing consumer groups"))?;
        let mut out: Vec<GroupListing> = list
            .groups()
            .iter()
            .map(|g| GroupListing {
                name: g.name().to_string(),
                state: GroupState::from(g.state()),
                protocol_type: g.protocol_type().to_string(),
                members: g
                    .members()
                    .iter()
                    .map(|m| Member {
                        client_id: m.client_id().to_string(),
                        host: m.client_host().to_string(),
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// State, members and assigned topics of the given groups, in one request; right for
    /// classic and new-protocol (KIP-848) groups alike. A group that does not exist is
    /// "Dead" with no members.
    pub fn group_members(&self, groups: &[&str]) -> anyhow::Result<BTreeMap<String, GroupMembers>> {
        if groups.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.connect("describing consumer groups")?;
        let descs = ffi::describe_groups(self.client.client(), groups, self.cluster.timeout)
            .map_err(|e| self.fail(e, "describing consumer groups"))?;
        let mut out = BTreeMap::new();
        for d in descs {
            if let Some(err) = &d.error {
                return Err(self.fail(
                    anyhow!("{err}"),
                    &format!("describing consumer group {}", d.group),
                ));
            }
            out.insert(
                d.group.clone(),
                GroupMembers {
                    state: GroupState::from(d.state),
                    members: d
                        .members
                        .iter()
                        .map(|m| Member {
                            client_id: m.client_id.clone(),
                            host: m.host.clone(),
                        })
                        .collect(),
                    assigned_topics: d
                        .members
                        .iter()
                        .flat_map(|m| m.assignment.iter().map(|(t, _)| t.clone()))
                        .collect(),
                },
            );
        }
        Ok(out)
    }

    /// Every committed offset of a group (all topics and partitions), in one request.
    pub fn committed(&self, group: &str) -> anyhow::Result<BTreeMap<Tp, i64>> {
        self.connect(&format!("listing committed offsets of group {group}"))?;
        let offsets = ffi::list_group_offsets(self.client.client(), group, self.cluster.timeout)
            .map_err(|e| self.fail(e, &format!("listing committed offsets of group {group}")))?;
        Ok(offsets
            .into_iter()
            .map(|o| (Tp::new(o.topic, o.partition), o.offset))
            .collect())
    }

    /// Commits offsets for a group without joining it (AlterConsumerGroupOffsets). The
    /// broker refuses while the group has members.
    pub fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> anyhow::Result<()> {
        self.connect(&format!("committing offsets of group {group}"))?;
        ffi::alter_group_offsets(self.client.client(), group, offsets, self.cluster.timeout)
            .map_err(|e| self.fail(e, &format!("committing offsets of group {group}")))
    }

    /// Offsets of many partitions. Sent in batches: librdkafka matches a ListOffsets
    /// response to its request with a nested loop, so one request for thousands of
    /// partitions costs quadratic time (450 ms at 5,000 partitions, 19 ms at 1,000).
    /// A partition whose leader is not ready yet (a topic just created, a leader election)
    /// is retried briefly.
    fn list_offsets(
        &self,
        tps: &[Tp],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> anyhow::Result<BTreeMap<Tp, i64>> {
        const BATCH: usize = 1000;
        // FENCED_LEADER_EPOCH: a session older than a leader's restart asked with the old
        // epoch; the retry goes out with refreshed metadata.
        const RETRYABLE: [&str; 5] = [
            "NOT_LEADER",
            "LEADER_NOT_AVAILABLE",
            "UNKNOWN_TOPIC_OR_PART",
            "FENCED_LEADER_EPOCH",
            "UNKNOWN_LEADER_EPOCH",
        ];
        let mut out = BTreeMap::new();
        if !tps.is_empty() {
            self.connect("listing partition offsets")?;
        }
        for chunk in tps.chunks(BATCH) {
            let parts: Vec<(String, i32)> = chunk
                .iter()
                .map(|t| (t.topic.clone(), t.partition))
                .collect();
            let mut attempt = 0;
            let got = loop {
                match ffi::list_offsets(
                    self.client.client(),
                    &parts,
                    spec,
                    read_committed,
                    self.cluster.timeout,
                ) {
                    Ok(got) => break got,
                    Err(e)
                        if attempt < 10
                            && RETRYABLE.iter().any(|r| format!("{e:#}").contains(r)) =>
                    {
                        attempt += 1;
                        tracing::debug!("listing offsets: {e:#} (retrying)");
                        std::thread::sleep(Duration::from_millis(300));
                        // The session's cached leaders (and their epochs) may predate a
                        // leader's restart: ask for the partitions' metadata again.
                        self.refresh_metadata(chunk);
                    }
                    Err(e) => return Err(self.fail(e, "listing partition offsets")),
                }
            };
            out.extend(got.into_iter().map(|((t, p), o)| (Tp::new(t, p), o)));
        }
        Ok(out)
    }

    /// Reads the metadata of the topics of `tps` again, which refreshes the session's view of
    /// their leaders. A failure only means the retry will fail the same way.
    fn refresh_metadata(&self, tps: &[Tp]) {
        let mut topics: Vec<&str> = tps.iter().map(|t| t.topic.as_str()).collect();
        topics.dedup();
        for t in topics {
            if let Err(e) = self
                .client
                .client()
                .fetch_metadata(Some(t), self.cluster.timeout)
            {
                tracing::debug!("refreshing the metadata of {t}: {e}");
            }
        }
    }

    /// Low watermark, high watermark and last stable offset of every partition: three
    /// batched requests whatever the partition count. The last stable offset is read before
    /// the high watermark: both only grow, so the result never has stable > high.
    pub fn watermarks(&self, tps: &[Tp]) -> anyhow::Result<BTreeMap<Tp, Watermarks>> {
        let low = self.list_offsets(tps, OffsetSpec::Earliest, false)?;
        let stable = self.list_offsets(tps, OffsetSpec::Latest, true)?;
        let high = self.list_offsets(tps, OffsetSpec::Latest, false)?;
        let mut out = BTreeMap::new();
        for tp in tps {
            let (Some(l), Some(h), Some(s)) = (low.get(tp), high.get(tp), stable.get(tp)) else {
                return Err(self.fail(
                    anyhow!("the cluster returned no offsets for {tp}"),
                    "listing partition offsets",
                ));
            };
            out.insert(
                tp.clone(),
                Watermarks {
                    low: *l,
                    high: *h,
                    stable: *s,
                },
            );
        }
        Ok(out)
    }

    /// (low, high) of every partition: two batched requests.
    pub fn low_high(&self, tps: &[Tp]) -> anyhow::Result<BTreeMap<Tp, (i64, i64)>> {
        let low = self.list_offsets(tps, OffsetSpec::Earliest, false)?;
        let high = self.list_offsets(tps, OffsetSpec::Latest, false)?;
        Ok(low
            .into_iter()
            .filter_map(|(tp, l)| high.get(&tp).map(|h| (tp, (l, *h))))
            .collect())
    }

    /// The effective `max.message.bytes` of each topic (topic override or broker default):
    /// the largest record batch the topic accepts.
    pub fn max_message_bytes(&self, topics: &[String]) -> anyhow::Result<BTreeMap<String, usize>> {
        Ok(self
            .describe_topic_configs(topics)?
            .into_iter()
            .filter_map(|(topic, res)| {
                res.get("max.message.bytes")
                    .and_then(|e| e.value.as_deref())
                    .and_then(|v| v.parse().ok())
                    .map(|v| (topic, v))
            })
            .collect())
    }

    /// The configs set on each topic (not inherited from broker defaults), for creating
    /// the same topic on the target.
    pub fn topic_configs(
        &self,
        topics: &[String],
    ) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
        Ok(self
            .describe_topic_configs(topics)?
            .into_iter()
            .map(|(topic, res)| {
                let cfg: BTreeMap<String, String> = res
                    .entries
                    .into_iter()
                    .filter(|e| e.source == ConfigSource::DynamicTopic && !e.is_sensitive)
                    .filter_map(|e| e.value.map(|v| (e.name, v)))
                    .collect();
                (topic, cfg)
            })
            .collect())
    }

    /// DescribeConfigs for each topic, in the order given.
    fn describe_topic_configs(
        &self,
        topics: &[String],
    ) -> anyhow::Result<Vec<(String, ConfigResource)>> {
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        self.connect("describing topic configs")?;
        let specs: Vec<ResourceSpecifier<'_>> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let opts = AdminOptions::new().request_timeout(Some(self.cluster.timeout));
        let results = futures_executor::block_on(self.admin.describe_configs(&specs, &opts))
            .map_err(|e| self.fail(e, "describing topic configs"))?;
        topics
            .iter()
            .zip(results)
            .map(|(topic, r)| {
                let res = r.map_err(|code| {
                    self.fail(
                        anyhow!("{code:?}"),
                        &format!("describing the configs of topic {topic}"),
                    )
                })?;
                Ok((topic.clone(), res))
            })
            .collect()
    }

    /// Creates topics with the given partition counts and configs, with the cluster's
    /// default replication factor. A topic that already exists is an error.
    pub fn create_topics(
        &self,
        topics: &[(String, i32, BTreeMap<String, String>)],
    ) -> anyhow::Result<()> {
        if topics.is_empty() {
            return Ok(());
        }
        self.connect("creating topics")?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(name, partitions, configs)| {
                configs.iter().fold(
                    NewTopic::new(name, *partitions, TopicReplication::Fixed(-1)),
                    |t, (k, v)| t.set(k, v),
                )
            })
            .collect();
        let opts = AdminOptions::new()
            .request_timeout(Some(self.cluster.timeout))
            .operation_timeout(Some(self.cluster.timeout));
        let results = futures_executor::block_on(self.admin.create_topics(&new, &opts))
            .map_err(|e| self.fail(e, "creating topics"))?;
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|(t, code)| format!("{t}: {code}")))
            .collect();
        if !failed.is_empty() {
            return Err(self.fail(anyhow!("{}", failed.join("; ")), "creating topics"));
        }
        Ok(())
    }
}
