//! Cluster-level reads and changes: groups, committed offsets, watermarks, topics.
//! Every call is bounded by the cluster's timeout and batched: one request per group for
//! commits, one ListOffsets per broker for any number of partitions. Every call is one
//! step of [`Admin::step`]: failover codes (a coordinator or leader moving) are retried
//! within the timeout, refusals and other codes fail at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::anyhow;
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigEntry, ConfigResource, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::context::Ctx;
use super::endpoint::Endpoint;
use super::error::{self, Code, KafkaError, representative};
use super::fanout;
use super::ffi::{self, OffsetSpec};
use super::retry::{self, GaveUp, Policy};
use crate::model::{Ends, GroupState, Member, Tp, Watermarks};

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
/// (configs, topic creation), made when one of them is first asked for: it is a client of
/// its own (connections, threads), and dropping it waits for its polling thread (up to
/// 100 ms), which commands that never use it (a cutover) should not pay.
pub struct Admin {
    cluster: Endpoint,
    client: BaseConsumer<Ctx>,
    admin: OnceLock<AdminClient<Ctx>>,
    /// Set once a request got an answer: the connection is up and authenticated.
    connected: AtomicBool,
    /// Sessions of their own that [`Admin::each`] spreads its steps over, made on its first
    /// call: a broker serves one request of a connection at a time, so steps in flight on
    /// one client still wait for each other there.
    helpers: Mutex<Option<Arc<Vec<Admin>>>>,
}

/// How many sessions [`Admin::each`] adds to this one.
const HELPERS: usize = 3;

/// Groups per description when [`Admin::group_members`] spreads many over the helpers.
const DESCRIBE_BATCH: usize = 50;

/// Partitions per ListOffsets request: few enough that librdkafka's quadratic matching of
/// the answer stays cheap, enough that 5,000 partitions take few round trips.
const BATCH: usize = 250;

/// The group id of the admin session's client, which never joins it. librdkafka (2.12,
/// confluentinc/librdkafka#5040) dereferences the client's consumer group when a
/// ListConsumerGroupOffsets answer carries NOT_COORDINATOR or another coordinator error:
/// on a client without a group id that is a null pointer, and the process dies in the very
/// failover the answer reports. With a group id the client has one, and the answer only
/// makes it look up this group's coordinator again.
pub const SESSION_GROUP: &str = "kmigrate-admin-session";

impl Admin {
    pub(super) fn new(cluster: &Endpoint) -> anyhow::Result<Admin> {
        Ok(Admin {
            cluster: cluster.clone(),
            client: session_client(cluster)?,
            admin: OnceLock::new(),
            connected: AtomicBool::new(false),
            helpers: Mutex::new(None),
        })
    }

    /// This session's helpers ([`Admin::each`]), made (and connected) at once on first use.
    fn helpers(&self, doing: &str) -> anyhow::Result<Arc<Vec<Admin>>> {
        if let Some(helpers) = self.helpers.lock().ok().and_then(|h| h.clone()) {
            return Ok(helpers);
        }
        let made = fanout::each(&[(); HELPERS], HELPERS, |_, _| {
            let helper = Admin::new(&self.cluster)?;
            helper.connect(doing)?;
            Ok(helper)
        });
        let made = Arc::new(made.into_iter().collect::<anyhow::Result<Vec<Admin>>>()?);
        if let Ok(mut slot) = self.helpers.lock() {
            *slot = Some(Arc::clone(&made));
        }
        Ok(made)
    }

    /// This session's helpers, taken out to be closed with it (see [`super::close`]).
    pub(super) fn take_helpers(&self) -> Vec<Admin> {
        let taken = self.helpers.lock().ok().and_then(|mut h| h.take());
        taken
            .and_then(|h| Arc::try_unwrap(h).ok())
            .unwrap_or_default()
    }

    /// rdkafka's `AdminClient` of this session, made on first use.
    fn admin_client(&self) -> anyhow::Result<&AdminClient<Ctx>> {
        if let Some(admin) = self.admin.get() {
            return Ok(admin);
        }
        let made = self
            .cluster
            .create(&self.cluster.client_config(), "admin client")?;
        Ok(self.admin.get_or_init(|| made))
    }

    /// Waits until the cluster answers, failing at once when it refuses the credentials.
    /// librdkafka keeps retrying a refused login until the request's timeout, so a wrong
    /// password would otherwise look like an unreachable cluster after `timeout_secs`.
    /// The wait is cut into short Metadata requests (brokers only, no topics) and the
    /// client's error events are checked for an authentication code between them.
    fn connect(&self, doing: &str) -> anyhow::Result<()> {
        if self.connected.load(Ordering::Relaxed) {
            return Ok(());
        }
        // The growing slices pace the attempts; a pause between them would only delay
        // noticing a refused login.
        let pace = Policy {
            first: Duration::from_millis(50),
            max: Duration::from_millis(50),
            ..Policy::within(self.cluster.timeout)
        };
        let mut slice = Duration::from_millis(200);
        self.attempts(doing, pace, |left| {
            let got = ffi::broker_metadata(self.client.client(), slice.min(left));
            slice = (slice * 2).min(Duration::from_secs(2));
            got
        })?;
        self.connected.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// One admin step: connects first, then runs `attempt` (given the time left, its
    /// request timeout) until it succeeds, fails with a code a retry cannot fix, or the
    /// cluster's timeout is spent; then says what failed where, why, and what to do.
    fn step<T>(
        &self,
        doing: &str,
        attempt: impl FnMut(Duration) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.connect(doing)?;
        self.attempts(doing, Policy::within(self.cluster.timeout), attempt)
    }

    fn attempts<T>(
        &self,
        doing: &str,
        policy: Policy,
        mut attempt: impl FnMut(Duration) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut told = false;
        retry::retry(policy, |left| {
            attempt(left).map_err(|e| {
                // A refused login shows as a request without an answer; the client's error
                // events carry its code. A broker's answer means the login went through.
                self.drain_events();
                let code = error::find(&e).map(|k| k.code);
                if let Some((refused, why)) = self.client.context().auth_error()
                    && !code.is_some_and(Code::is_answer)
                {
                    tracing::debug!("{doing}: {e:#}");
                    return KafkaError::new(refused, doing, &why).into();
                }
                // A failover can hold a step for up to timeout_secs: say why it waits.
                if let Some(c) = code.filter(|c| error::is_retriable(*c))
                    && !told
                    && self.connected.load(Ordering::Relaxed)
                {
                    told = true;
                    tracing::info!(
                        "{doing} on the {}: {c}; retrying for up to {} s",
                        self.cluster.describe(),
                        self.cluster.timeout.as_secs()
                    );
                }
                e
            })
        })
        .map_err(|g| self.give_up(g, doing))
    }

    /// Delivers queued log and error events to the context. A group-less consumer hands
    /// librdkafka's error events back from `poll` (their codes are passed on here), and a
    /// `poll` that only delivered a log line reports nothing: the queue's length says when
    /// it is empty.
    fn drain_events(&self) {
        let ctx = self.client.context();
        for _ in 0..1000 {
            if ffi::queued_events(self.client.client()) == 0 {
                break;
            }
            if let Some(Err(e)) = self.client.poll(Duration::ZERO)
                && let Some(code) = error::code_of(&e)
            {
                ctx.observe(code, "");
            }
        }
    }

    pub fn cluster(&self) -> &Endpoint {
        &self.cluster
    }

    /// The error of a step that stopped: the cluster and step named, the last broker error,
    /// and advice that fits what happened (an answer, no answer, a refusal).
    fn give_up(&self, g: GaveUp, doing: &str) -> anyhow::Error {
        let cluster = self.cluster.describe();
        let Some(last) = error::find(&g.error) else {
            return anyhow!("{doing} on the {cluster} failed: {:#}", g.error);
        };
        tracing::debug!("{doing} on the {cluster}: {:#}", g.error);
        let connected = self.connected.load(Ordering::Relaxed);
        let ctx = self.client.context();
        let hint = retry::advice(
            &g,
            self.cluster.role.name(),
            self.cluster.timeout,
            connected,
            ctx.last_error().as_deref(),
        );
        anyhow::Error::new(KafkaError {
            code: last.code,
            step: doing.to_string(),
            cluster,
            message: last.message.clone(),
            hint,
        })
    }

    /// Every topic with its partition count (internal topics included).
    pub fn topics(&self) -> anyhow::Result<BTreeMap<String, i32>> {
        let doing = "reading topic metadata";
        let md = self.step(doing, |left| {
            self.client
                .client()
                .fetch_metadata(None, left)
                .map_err(|e| rd_error(e, "Metadata"))
        })?;
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
        let list = self.step("listing consumer groups", |left| {
            self.client
                .client()
                .fetch_group_list(None, left)
                .map_err(|e| rd_error(e, "ListGroups"))
        })?;
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

    /// State, members and assigned topics of the given groups; right for classic and
    /// new-protocol (KIP-848) groups alike. A group that does not exist is "Dead" with no
    /// members. librdkafka asks for each group in a request of its own: more than
    /// [`DESCRIBE_BATCH`] groups are described in batches spread over the session's helpers
    /// ([`Admin::each`]), so that the broker serves them on several connections at once.
    pub fn group_members(&self, groups: &[&str]) -> anyhow::Result<BTreeMap<String, GroupMembers>> {
        if groups.len() <= DESCRIBE_BATCH {
            return self.describe_groups(groups);
        }
        let batches: Vec<&[&str]> = groups.chunks(DESCRIBE_BATCH).collect();
        let described = self.each(
            &format!("describing {} consumer groups", groups.len()),
            &batches,
            |session, batch| session.describe_groups(batch),
        )?;
        let mut out = BTreeMap::new();
        for got in described {
            out.extend(got?);
        }
        Ok(out)
    }

    /// [`Admin::group_members`] of a few groups, in one call. Groups whose coordinator is
    /// moving are asked again; those already described are kept.
    fn describe_groups(&self, groups: &[&str]) -> anyhow::Result<BTreeMap<String, GroupMembers>> {
        if groups.is_empty() {
            return Ok(BTreeMap::new());
        }
        let doing = match groups {
            [one] => format!("describing consumer group {one}"),
            _ => format!("describing {} consumer groups", groups.len()),
        };
        let mut out = BTreeMap::new();
        let mut pending: Vec<&str> = groups.to_vec();
        self.step(&doing, |left| {
            let descs = ffi::describe_groups(self.client.client(), &pending, left)?;
            let mut failed = Vec::new();
            for d in descs {
                match &d.error {
                    Some(e) => failed.push((d.group.clone(), e.clone())),
                    None => {
                        out.insert(d.group.clone(), members_of(&d));
                    }
                }
            }
            pending.retain(|g| !out.contains_key(*g));
            match representative(failed.iter().map(|(_, e)| e.code)) {
                None => Ok(()),
                Some(code) => {
                    let (group, e) = failed
                        .into_iter()
                        .find(|(_, e)| e.code == code)
                        .ok_or_else(|| anyhow!("no group failed with {code}"))?;
                    Err(KafkaError::with_message(
                        code,
                        e.step,
                        format!("group {group}: {}", e.message),
                    )
                    .into())
                }
            }
        })?;
        Ok(out)
    }

    /// Every committed offset of a group (all topics and partitions), in one request.
    ///
    /// librdkafka caches each group's coordinator, and a coordinator error in the answer to
    /// ListConsumerGroupOffsets does not clear that entry (it looks up the client's own
    /// group's coordinator instead, see [`SESSION_GROUP`]); an entry in use does not age
    /// out either. Once the coordinator moved, every attempt through the same client would
    /// ask the old one again (seen for 30 s after a source broker restarted). So an attempt
    /// after a coordinator error asks through a new client, whose cache is empty.
    pub fn committed(&self, group: &str) -> anyhow::Result<BTreeMap<Tp, i64>> {
        let mut fresh: Option<BaseConsumer<Ctx>> = None;
        let offsets = self.step(
            &format!("listing committed offsets of group {group}"),
            |left| {
                let client = fresh.as_ref().unwrap_or(&self.client);
                let answer = ffi::list_group_offsets(client.client(), group, left);
                let moved = answer
                    .as_ref()
                    .err()
                    .and_then(error::find)
                    .is_some_and(|k| k.code.is_coordinator_moving());
                if moved {
                    fresh = Some(session_client(&self.cluster)?);
                }
                answer
            },
        )?;
        Ok(offsets
            .into_iter()
            .map(|o| (Tp::new(o.topic, o.partition), o.offset))
            .collect())
    }

    /// Commits offsets for a group without joining it (AlterConsumerGroupOffsets). The
    /// broker refuses while the group has members. Setting the same offsets twice is
    /// harmless, so a commit whose answer was lost in a failover is simply sent again.
    pub fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> anyhow::Result<()> {
        self.step(&format!("committing offsets of group {group}"), |left| {
            ffi::alter_group_offsets(self.client.client(), group, offsets, left)
        })
    }

    /// Offsets of many partitions. Sent in batches, a few in flight at once: librdkafka
    /// matches a ListOffsets response to its request with a nested loop, so one request for
    /// thousands of partitions costs quadratic time (450 ms at 5,000 partitions, 19 ms at
    /// 1,000), and batches that follow each other cost a round trip each.
    fn list_offsets(
        &self,
        tps: &[Tp],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> anyhow::Result<BTreeMap<Tp, i64>> {
        let batches: Vec<&[Tp]> = tps.chunks(BATCH).collect();
        if batches.is_empty() {
            return Ok(BTreeMap::new());
        }
        // On this session alone: a batch costs the broker little, and a sync reads offsets
        // for days (helpers would be clients kept for as long).
        self.connect("listing partition offsets")?;
        let mut out = BTreeMap::new();
        for got in fanout::each(&batches, fanout::IN_FLIGHT, |_, batch| {
            self.list_offsets_batch(batch, spec, read_committed)
        }) {
            out.extend(got?);
        }
        Ok(out)
    }

    /// `f` of every item (a few steps each: a group's commits read, or altered), a few at a
    /// time ([`fanout::each`]), spread over this session and its helpers, each on its own
    /// connection; the results in the order of `items`. `f` is given the session to ask
    /// through. The sessions are connected first, once: the steps in flight neither
    /// connect each on their own nor each say that they wait for the cluster. No item:
    /// nothing is asked.
    pub fn each<T: Sync, R: Send>(
        &self,
        doing: &str,
        items: &[T],
        f: impl Fn(&Admin, &T) -> R + Sync,
    ) -> anyhow::Result<Vec<R>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.connect(doing)?;
        let helpers = self.helpers(doing)?;
        let sessions: Vec<&Admin> = std::iter::once(self).chain(helpers.iter()).collect();
        Ok(fanout::each(items, fanout::IN_FLIGHT, |worker, item| {
            f(sessions[worker % sessions.len()], item)
        }))
    }

    /// [`Admin::list_offsets`] of one batch, in one step: a batch with a partition whose
    /// leader is moving (or not elected yet, for a topic just created) is sent again.
    fn list_offsets_batch(
        &self,
        batch: &[Tp],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> anyhow::Result<Vec<(Tp, i64)>> {
        let parts: Vec<(String, i32)> = batch
            .iter()
            .map(|t| (t.topic.clone(), t.partition))
            .collect();
        let mut again = false;
        let got = self.step("listing partition offsets", |left| {
            // The session's cached leaders (and their epochs) may predate a leader's
            // restart (FENCED_LEADER_EPOCH): a retry asks for the metadata again first.
            if std::mem::replace(&mut again, true) {
                self.refresh_metadata(batch);
            }
            ffi::list_offsets(self.client.client(), &parts, spec, read_committed, left)
                .map_err(leaderless_is_retriable)
                .and_then(answered)
        })?;
        Ok(got
            .into_iter()
            .map(|((t, p), o)| (Tp::new(t, p), o))
            .collect())
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

    /// Low watermark, high watermark and last stable offset of every partition: the low
    /// watermark, then [`Admin::ends`].
    pub fn watermarks(&self, tps: &[Tp]) -> anyhow::Result<BTreeMap<Tp, Watermarks>> {
        let low = self.list_offsets(tps, OffsetSpec::Earliest, false)?;
        let ends = self.ends(tps)?;
        let mut out = BTreeMap::new();
        for (tp, e) in ends {
            let Some(l) = low.get(&tp) else {
                return Err(self.no_offsets(&tp));
            };
            let w = Watermarks {
                low: *l,
                high: e.high,
                stable: e.stable,
            };
            out.insert(tp, w);
        }
        Ok(out)
    }

    /// High watermark and last stable offset of every partition. The last stable offset is
    /// read before the high watermark: both only grow, so the result never has
    /// stable > high.
    pub fn ends(&self, tps: &[Tp]) -> anyhow::Result<BTreeMap<Tp, Ends>> {
        let stable = self.list_offsets(tps, OffsetSpec::Latest, true)?;
        let high = self.list_offsets(tps, OffsetSpec::Latest, false)?;
        let mut out = BTreeMap::new();
        for tp in tps {
            let (Some(h), Some(s)) = (high.get(tp), stable.get(tp)) else {
                return Err(self.no_offsets(tp));
            };
            out.insert(
                tp.clone(),
                Ends {
                    high: *h,
                    stable: *s,
                },
            );
        }
        Ok(out)
    }

    fn no_offsets(&self, tp: &Tp) -> anyhow::Error {
        anyhow!(
            "listing partition offsets on the {} failed: it returned no offsets for {tp}",
            self.cluster.describe()
        )
    }

    /// The high watermark of every partition.
    pub fn highs(&self, tps: &[Tp]) -> anyhow::Result<BTreeMap<Tp, i64>> {
        self.list_offsets(tps, OffsetSpec::Latest, false)
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

    /// The effective values (topic override or broker default) of the configs `names` of
    /// each topic.
    pub fn topic_settings(
        &self,
        topics: &[String],
        names: &[&str],
    ) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
        self.topic_configs_where(topics, |e| names.contains(&e.name.as_str()))
    }

    /// The configs set on each topic (not inherited from broker defaults), for creating
    /// the same topic on the target.
    pub fn topic_configs(
        &self,
        topics: &[String],
    ) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
        self.topic_configs_where(topics, |e| {
            e.source == ConfigSource::DynamicTopic && !e.is_sensitive
        })
    }

    /// The configs of each topic that `keep` selects, with their values.
    fn topic_configs_where(
        &self,
        topics: &[String],
        keep: impl Fn(&ConfigEntry) -> bool,
    ) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
        Ok(self
            .describe_topic_configs(topics)?
            .into_iter()
            .map(|(topic, res)| {
                let cfg: BTreeMap<String, String> = res
                    .entries
                    .into_iter()
                    .filter(|e| keep(e))
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
        let specs: Vec<ResourceSpecifier<'_>> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let admin = self.admin_client()?;
        self.step("describing topic configs", |left| {
            let opts = AdminOptions::new().request_timeout(Some(left));
            let results = futures_executor::block_on(admin.describe_configs(&specs, &opts))
                .map_err(|e| rd_error(e, "DescribeConfigs"))?;
            let mut out = Vec::with_capacity(topics.len());
            let mut failed = Vec::new();
            for (topic, r) in topics.iter().zip(results) {
                match r {
                    Ok(res) => out.push((topic.clone(), res)),
                    Err(code) => failed.push((topic.as_str(), Code::from(code))),
                }
            }
            match representative(failed.iter().map(|(_, c)| *c)) {
                None => Ok(out),
                Some(code) => Err(KafkaError::with_message(
                    code,
                    "DescribeConfigs",
                    format!("{code} for {}", per_topic(&failed)),
                )
                .into()),
            }
        })
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
        match self.create_topics_replicated(topics, -1) {
            // "The broker's default" (-1, KIP-464) needs CreateTopics v4, Kafka 2.4+:
            // librdkafka refuses the request to an older cluster before sending it, so
            // nothing was created. Read the default from a broker and pass it instead.
            Err(e) if error::find(&e).is_some_and(|k| k.code == Code::UNSUPPORTED_FEATURE) => {
                let factor = self.default_replication_factor()?;
                tracing::info!(
                    "the {} predates Kafka 2.4: creating topics with its \
                     default.replication.factor, {factor}, given explicitly",
                    self.cluster.describe()
                );
                self.create_topics_replicated(topics, factor)
            }
            done => done,
        }
    }

    /// Raises topics' partition counts (CreatePartitions): `(topic, count)`. A topic that
    /// has that many already, e.g. raised by an attempt whose answer was lost, is not asked.
    pub fn create_partitions(&self, topics: &[(String, i32)]) -> anyhow::Result<()> {
        let have = self.topics()?;
        let wanted: Vec<&(String, i32)> = topics
            .iter()
            .filter(|(t, n)| have.get(t).is_none_or(|h| h < n))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut pending: BTreeSet<&str> = wanted.iter().map(|(t, _)| t.as_str()).collect();
        let mut maybe_done: BTreeSet<String> = BTreeSet::new();
        let admin = self.admin_client()?;
        self.step("adding partitions to topics", |left| {
            let new: Vec<NewPartitions<'_>> = wanted
                .iter()
                .filter(|(t, _)| pending.contains(t.as_str()))
                .map(|(t, n)| NewPartitions::new(t, (*n).max(0) as usize))
                .collect();
            let opts = AdminOptions::new()
                .request_timeout(Some(left))
                .operation_timeout(Some(left));
            let answer = futures_executor::block_on(admin.create_partitions(&new, &opts));
            settle(
                ("CreatePartitions", Code::INVALID_PARTITIONS),
                answer,
                &mut pending,
                &mut maybe_done,
            )
        })
    }

    /// The cluster's `default.replication.factor`, from one of its brokers' configs.
    fn default_replication_factor(&self) -> anyhow::Result<i32> {
        let doing = "reading the default replication factor";
        let broker = self.step(doing, |left| {
            let md = self
                .client
                .client()
                .fetch_metadata(None, left)
                .map_err(|e| rd_error(e, "Metadata"))?;
            md.brokers()
                .first()
                .map(|b| b.id())
                .ok_or_else(|| anyhow!("the cluster's metadata lists no broker"))
        })?;
        let spec = [ResourceSpecifier::Broker(broker)];
        let admin = self.admin_client()?;
        let config = self.step(doing, |left| {
            let opts = AdminOptions::new().request_timeout(Some(left));
            let answer = futures_executor::block_on(admin.describe_configs(&spec, &opts))
                .map_err(|e| rd_error(e, "DescribeConfigs"))?;
            match answer.into_iter().next() {
                Some(Ok(config)) => Ok(config),
                Some(Err(code)) => {
                    let code = Code::from(code);
                    Err(KafkaError::with_message(
                        code,
                        "DescribeConfigs",
                        format!("{code} for broker {broker}"),
                    )
                    .into())
                }
                None => Err(anyhow!(
                    "DescribeConfigs of broker {broker} answered nothing"
                )),
            }
        })?;
        config
            .get("default.replication.factor")
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                anyhow!(
                    "broker {broker} of the {} does not show its default.replication.factor",
                    self.cluster.describe()
                )
            })
    }

    /// [`Admin::create_topics`] with this replication factor (-1: the broker's default).
    fn create_topics_replicated(
        &self,
        topics: &[(String, i32, BTreeMap<String, String>)],
        replication: i32,
    ) -> anyhow::Result<()> {
        // Topics still to create, and those whose last attempt may have created them
        // without kmigrate hearing back (a timeout, a broken connection).
        let mut pending: BTreeSet<&str> = topics.iter().map(|(n, _, _)| n.as_str()).collect();
        let mut maybe_created: BTreeSet<String> = BTreeSet::new();
        let admin = self.admin_client()?;
        self.step("creating topics", |left| {
            let new: Vec<NewTopic<'_>> = topics
                .iter()
                .filter(|(name, _, _)| pending.contains(name.as_str()))
                .map(|(name, partitions, configs)| {
                    configs.iter().fold(
                        NewTopic::new(name, *partitions, TopicReplication::Fixed(replication)),
                        |t, (k, v)| t.set(k, v),
                    )
                })
                .collect();
            let opts = AdminOptions::new()
                .request_timeout(Some(left))
                .operation_timeout(Some(left));
            let answer = futures_executor::block_on(admin.create_topics(&new, &opts));
            settle(
                ("CreateTopics", Code::TOPIC_ALREADY_EXISTS),
                answer,
                &mut pending,
                &mut maybe_created,
            )
        })
    }
}

/// Closing a session waits for its client to close (up to 100 ms, see [`super::close`]):
/// its helpers close at once.
impl Drop for Admin {
    fn drop(&mut self) {
        let helpers = self.take_helpers();
        std::thread::scope(|s| {
            for helper in helpers {
                s.spawn(move || drop(helper));
            }
        });
    }
}

/// Settles one attempt of a per-topic admin request (CreateTopics, CreatePartitions): the
/// topics it did leave `pending`; a topic refused with `done_code` (what the broker answers
/// when the change is there already) counts as done when an earlier attempt may have made
/// it without kmigrate hearing back (`maybe_done`, kept up to date here). Errs with the
/// failures, per topic, for the retry policy to judge.
fn settle(
    (request, done_code): (&'static str, Code),
    answer: rdkafka::error::KafkaResult<Vec<rdkafka::admin::TopicResult>>,
    pending: &mut BTreeSet<&str>,
    maybe_done: &mut BTreeSet<String>,
) -> anyhow::Result<()> {
    let results = match answer {
        Ok(r) => r,
        Err(e) => {
            let e = rd_error(e, request);
            if error::find(&e).is_some_and(|k| may_have_applied(k.code)) {
                maybe_done.extend(pending.iter().map(|t| t.to_string()));
            }
            return Err(e);
        }
    };
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(t) => {
                pending.remove(t.as_str());
            }
            Err((t, code)) if Code::from(code) == done_code && maybe_done.contains(&t) => {
                pending.remove(t.as_str());
            }
            Err((t, code)) => {
                let code = Code::from(code);
                if may_have_applied(code) {
                    maybe_done.insert(t.clone());
                }
                failed.push((t, code));
            }
        }
    }
    match representative(failed.iter().map(|(_, c)| *c)) {
        None => Ok(()),
        Some(code) => {
            let failed: Vec<(&str, Code)> = failed.iter().map(|(t, c)| (t.as_str(), *c)).collect();
            Err(KafkaError::with_message(
                code,
                request,
                format!("{code} for {}", per_topic(&failed)),
            )
            .into())
        }
    }
}

/// The admin session's client: a consumer with the session's group id (never joined).
fn session_client(cluster: &Endpoint) -> anyhow::Result<BaseConsumer<Ctx>> {
    let mut session = cluster.client_config();
    session.set("group.id", SESSION_GROUP);
    cluster.create(&session, "client")
}

/// The description of a group as kmigrate keeps it.
fn members_of(d: &ffi::GroupDescription) -> GroupMembers {
    GroupMembers {
        state: GroupState::from(d.state.as_str()),
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
    }
}

/// rust-rdkafka's error as a [`KafkaError`] of librdkafka's request `api`, when it has a
/// code.
fn rd_error(e: rdkafka::error::KafkaError, api: &str) -> anyhow::Error {
    match error::code_of(&e) {
        Some(code) => KafkaError::new(code, api, "").into(),
        None => anyhow::Error::new(e).context(api.to_string()),
    }
}

/// "t1: NOT_CONTROLLER; t2: TOPIC_ALREADY_EXISTS".
fn per_topic(failed: &[(&str, Code)]) -> String {
    failed
        .iter()
        .map(|(t, c)| format!("{t}: {} ({})", c.name(), c.description()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The request may have been carried out though no answer said so: a retry of a creation
/// can then find the topic already there.
fn may_have_applied(code: Code) -> bool {
    matches!(
        code,
        Code::TIMED_OUT | Code::TRANSPORT | Code::REQUEST_TIMED_OUT | Code::NETWORK_EXCEPTION
    )
}

/// librdkafka's ListOffsets looks up each partition's leader before it asks, and while a
/// failover leaves a partition without a reachable leader it fails the whole request with
/// `_NOENT` ("Failed to query partition leaders: No leaders found"). For this request that
/// is LEADER_NOT_AVAILABLE, which new metadata and a retry fix.
/// Fails, as a leader that is not there yet (retried), when a partition came back with a
/// negative offset and no error: librdkafka's "no offset" (-1001) for a partition whose
/// leader it could not ask. An offset is never negative: taken as an answer, a target that
/// did not answer looked emptier than kmigrate had left it.
fn answered(got: Vec<((String, i32), i64)>) -> anyhow::Result<Vec<((String, i32), i64)>> {
    let missing: Vec<String> = got
        .iter()
        .filter(|(_, o)| *o < 0)
        .map(|((t, p), o)| format!("{t}/{p} ({o})"))
        .collect();
    if missing.is_empty() {
        return Ok(got);
    }
    Err(anyhow::Error::new(KafkaError::with_message(
        Code::LEADER_NOT_AVAILABLE,
        "ListOffsets",
        format!(
            "no offset came back for {} partition(s): {}; their leaders did not answer",
            missing.len(),
            missing
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )))
}

fn leaderless_is_retriable(e: anyhow::Error) -> anyhow::Error {
    match error::find(&e) {
        Some(k) if k.code == Code::NOENT => anyhow::Error::new(KafkaError::with_message(
            Code::LEADER_NOT_AVAILABLE,
            k.step.clone(),
            k.message.clone(),
        )),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_offset_is_no_answer_and_is_retried() {
        let ok = vec![(("t".to_string(), 0), 0), (("t".to_string(), 1), 40_774)];
        assert_eq!(answered(ok.clone()).expect("all answered"), ok);
        let e = answered(vec![
            (("t".to_string(), 0), 12),
            (("t".to_string(), 1), -1001),
        ])
        .expect_err("-1001 is no offset");
        let k = error::find(&e).expect("a Kafka error");
        assert_eq!(k.code, Code::LEADER_NOT_AVAILABLE);
        assert!(error::is_retriable(k.code));
        assert!(k.message.contains("t/1 (-1001)"), "{}", k.message);
        assert!(!k.message.contains("t/0"), "{}", k.message);
    }

    #[test]
    fn a_listoffsets_without_leaders_is_retried_as_leader_not_available() {
        let e = anyhow::Error::new(KafkaError::new(
            Code::NOENT,
            "ListOffsets (Latest) for 4 partition(s)",
            "Failed to query partition leaders: No leaders found",
        ));
        let e = leaderless_is_retriable(e);
        let k = error::find(&e).expect("a Kafka error");
        assert_eq!(k.code, Code::LEADER_NOT_AVAILABLE);
        assert!(error::is_retriable(k.code));
        assert!(k.message.contains("No leaders found"), "{}", k.message);
        // Other codes pass as they are.
        let other = anyhow::Error::new(KafkaError::new(Code::NOT_CONTROLLER, "x", ""));
        let k = error::find(&leaderless_is_retriable(other)).map(|k| k.code);
        assert_eq!(k, Some(Code::NOT_CONTROLLER));
    }
}
