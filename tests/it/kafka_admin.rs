//! `kmigrate::kafka::Admin` (and the librdkafka admin calls under it in `kmigrate::kafka::ffi`)
//! against the real test bed: every value read back is checked exactly against the situation
//! the test set up first.
//!
//! Needs the test bed (`scripts/testbed up`); each test makes its own topics and groups.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kmigrate::config::{ClusterConfig, Properties};
use kmigrate::kafka::{self, Admin, Role, ffi};
use kmigrate::model::{Tp, Watermarks};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::support::{Cluster, TIMEOUT, block, unique};

/// Request timeout of the `Admin` under test.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Local helpers

/// kmigrate's own admin client for a test-bed cluster.
fn admin_for(bootstrap: &str, timeout: Duration) -> std::sync::Arc<Admin> {
    let cfg = ClusterConfig {
        bootstrap_servers: bootstrap.to_string(),
        properties: Properties::default(),
    };
    kafka::Cluster::new(Role::Source, &cfg, timeout)
        .admin()
        .expect("creating kmigrate's admin client")
}

/// A plain rdkafka admin client, for the calls `Admin` does not wrap.
fn raw_admin(cluster: &Cluster) -> AdminClient<DefaultClientContext> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &cluster.bootstrap)
        .create::<AdminClient<DefaultClientContext>>()
        .expect("creating an rdkafka admin client")
}

/// Deletes the test's topics and groups when the test ends, passed or failed.
struct Cleanup<'a> {
    cluster: &'a Cluster,
    topics: Vec<String>,
    groups: Vec<String>,
}

impl<'a> Cleanup<'a> {
    fn new(cluster: &'a Cluster) -> Cleanup<'a> {
        Cleanup {
            cluster,
            topics: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// A new unique topic, created now and deleted at the end.
    fn topic(&mut self, prefix: &str, partitions: i32, configs: &[(&str, &str)]) -> String {
        let t = unique(prefix);
        self.topics.push(t.clone());
        self.cluster.create_topic(&t, partitions, configs);
        t
    }

    /// A new unique topic created with no topic config at all (the support module's
    /// `create_topic` pins `retention.ms`), deleted at the end. Waits until `admin` sees it.
    fn bare_topic(&mut self, prefix: &str, partitions: i32, admin: &Admin) -> String {
        let t = unique(prefix);
        self.topics.push(t.clone());
        let new = NewTopic::new(&t, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        for r in block(raw_admin(self.cluster).create_topics([&new], &opts))
            .unwrap_or_else(|e| panic!("creating topic {t}: {e}"))
        {
            if let Err((name, code)) = r {
                panic!("creating topic {name}: {code:?}");
            }
        }
        eventually(&format!("topic {t} visible"), || {
            let topics = admin.topics().expect("listing topics");
            (topics.get(&t) == Some(&partitions)).then_some(())
        });
        t
    }

    /// A new unique group name, deleted (best effort) at the end.
    fn group(&mut self, prefix: &str) -> String {
        let g = unique(prefix);
        self.groups.push(g.clone());
        g
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.groups.is_empty() {
            let names: Vec<&str> = self.groups.iter().map(String::as_str).collect();
            let _ = block(raw_admin(self.cluster).delete_groups(&names, &AdminOptions::new()));
        }
        for t in &self.topics {
            self.cluster.delete_topic(t);
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .expect("clock after 1970")
}

fn tps(topic: &str, partitions: i32) -> Vec<Tp> {
    (0..partitions).map(|p| Tp::new(topic, p)).collect()
}

fn wm(low: i64, high: i64, stable: i64) -> Watermarks {
    Watermarks { low, high, stable }
}

/// A consumer of `group` subscribed to `topic`, without auto commit. `protocol` is
/// librdkafka's `group.protocol`: "classic" or "consumer" (KIP-848).
fn subscribed_consumer(
    cluster: &Cluster,
    group: &str,
    client_id: &str,
    topic: &str,
    protocol: &str,
) -> BaseConsumer {
    let mut config = cluster.config();
    config
        .set("group.id", group)
        .set("client.id", client_id)
        .set("group.protocol", protocol)
        .set("enable.auto.commit", "false");
    if protocol == "classic" {
        config.set("session.timeout.ms", "10000");
    }
    let consumer: BaseConsumer = config.create().expect("creating a subscribed consumer");
    consumer.subscribe(&[topic]).expect("subscribing");
    consumer
}

/// Polls the consumer until the group has given it at least one partition; returns the
/// assignment.
fn wait_for_assignment(consumer: &BaseConsumer) -> BTreeSet<(String, i32)> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            msg.expect("consumer poll error");
        }
        let assigned: BTreeSet<(String, i32)> = consumer
            .assignment()
            .expect("reading the assignment")
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        if !assigned.is_empty() {
            return assigned;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer got no assignment within {TIMEOUT:?}"
        );
    }
}

/// Leaves the group and closes the consumer, as a stopping application does.
fn close(consumer: BaseConsumer) {
    consumer.close_queue().expect("closing the consumer");
    let deadline = Instant::now() + TIMEOUT;
    while !consumer.closed() {
        let _ = consumer.poll(Duration::from_millis(100));
        assert!(
            Instant::now() < deadline,
            "the consumer did not close within {TIMEOUT:?}"
        );
    }
}

/// Retries `f` until it returns true; false if it never did within [`TIMEOUT`].
fn eventually_or_timeout(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Retries `f` until it returns `Some`, for states the broker reaches asynchronously.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------
// committed()

#[test]
fn committed_lists_every_commit_of_a_group_across_topics() {
    let source = Cluster::source();
    let mut cleanup = Cleanup::new(&source);
    let orders = cleanup.topic("kmigrate-admin-orders", 2, &[]);
    let payments = cleanup.topic("kmigrate-admin-payments", 1, &[]);
    let group = cleanup.group("kmigrate-admin-committer");
    let never = cleanup.group("kmigrate-admin-never-committed");
    let ts = now_ms();
    source.produce_n(&orders, 0, 5, ts);
    source.produce_n(&orders, 1, 3, ts);
    source.produce_n(&payments, 0, 4, ts);
    source.commit(
        &group,
        &[
            (orders.as_str(), 0, 3),
            (orders.as_str(), 1, 1),
            (payments.as_str(), 0, 4),
        ],
    );

    let admin = admin_for(&source.bootstrap, ADMIN_TIMEOUT);
    let got = admin.committed(&group).expect("committed offsets");
    let want = BTreeMap::from([
        (Tp::new(&orders, 0), 3),
        (Tp::new(&orders, 1), 1),
        (Tp::new(&payments, 0), 4),
    ]);
    assert_eq!(got, want);

    let none = admin
        .committed(&never)
        .expect("committed offsets of an unknown group");
    assert_eq!(none, BTreeMap::new());
}

// ---------------------------------------------------------------------------------------
// watermarks() / low_high()

#[test]
fn watermarks_follow_produce_delete_records_and_open_transactions() {
    let source = Cluster::source();
    let mut cleanup = Cleanup::new(&source);
    let topic = cleanup.topic("kmigrate-admin-watermarks", 3, &[]);
    let ts = now_ms();
    source.produce_n(&topic, 0, 5, ts);
    source.produce_n(&topic, 1, 3, ts);
    source.produce_n(&topic, 2, 4, ts);
    let parts = tps(&topic, 3);
    let admin = admin_for(&source.bootstrap, ADMIN_TIMEOUT);

    let got = admin.watermarks(&parts).expect("watermarks after produce");
    let want = BTreeMap::from([
        (Tp::new(&topic, 0), wm(0, 5, 5)),
        (Tp::new(&topic, 1), wm(0, 3, 3)),
        (Tp::new(&topic, 2), wm(0, 4, 4)),
    ]);
    assert_eq!(got, want, "after produce");

    // Deleting records moves the low watermark only; deleting everything empties the partition.
    source.delete_records(&topic, 0, 2);
    source.delete_records(&topic, 1, 3);
    let got = admin
        .watermarks(&parts)
        .expect("watermarks after delete_records");
    let want = BTreeMap::from([
        (Tp::new(&topic, 0), wm(2, 5, 5)),
        (Tp::new(&topic, 1), wm(3, 3, 3)),
        (Tp::new(&topic, 2), wm(0, 4, 4)),
    ]);
    assert_eq!(got, want, "after delete_records");
    let low_high = admin
        .low_high(&parts)
        .expect("low_high after delete_records");
    assert_eq!(
        low_high,
        BTreeMap::from([
            (Tp::new(&topic, 0), (2, 5)),
            (Tp::new(&topic, 1), (3, 3)),
            (Tp::new(&topic, 2), (0, 4)),
        ])
    );
    assert_eq!(
        source.watermarks(&topic, 0),
        (2, 5),
        "rdkafka's own view agrees"
    );

    // An open transaction: the high watermark covers its records, the last stable offset
    // stops before the first of them.
    let txn: BaseProducer = source
        .config()
        .set("transactional.id", unique("kmigrate-admin-txn"))
        .create()
        .expect("creating a transactional producer");
    txn.init_transactions(TIMEOUT).expect("init_transactions");
    txn.begin_transaction().expect("begin_transaction");
    for i in 0..2 {
        let payload = format!("open-{i}");
        txn.send(
            BaseRecord::<(), _>::to(&topic)
                .partition(2)
                .payload(&payload),
        )
        .map_err(|(e, _)| e)
        .expect("sending in a transaction");
    }
    txn.flush(TIMEOUT)
        .expect("flushing the transaction's records");

    let open = admin
        .watermarks(&parts)
        .expect("watermarks with an open transaction");
    let want = BTreeMap::from([
        (Tp::new(&topic, 0), wm(2, 5, 5)),
        (Tp::new(&topic, 1), wm(3, 3, 3)),
        (Tp::new(&topic, 2), wm(0, 6, 4)),
    ]);
    assert_eq!(open, want, "with an open transaction on partition 2");
    txn.abort_transaction(TIMEOUT).expect("abort_transaction");

    // After the abort the marker takes one more offset and the LSO catches up with it.
    // watermarks() reads high and stable in separate requests, so a read racing the marker
    // write can see the old high watermark with the new LSO: wait for the settled state.
    let want = BTreeMap::from([(Tp::new(&topic, 2), wm(0, 7, 7))]);
    let mut last = None;
    let settled = eventually_or_timeout(|| {
        let w = admin
            .watermarks(&parts[2..])
            .expect("watermarks after abort");
        let done = w == want;
        last = Some(w);
        done
    });
    assert!(settled, "after abort: want {want:?}, last read {last:?}");
}

// ---------------------------------------------------------------------------------------
// groups() / group_members()

#[test]
fn groups_and_members_show_empty_and_live_groups() {
    let source = Cluster::source();
    let mut cleanup = Cleanup::new(&source);
    let topic = cleanup.topic("kmigrate-admin-members", 2, &[]);
    let empty = cleanup.group("kmigrate-admin-empty");
    let live = cleanup.group("kmigrate-admin-live");
    let missing = cleanup.group("kmigrate-admin-missing");
    let client_id = unique("kmigrate-admin-member");
    source.produce_n(&topic, 0, 2, now_ms());
    source.commit(&empty, &[(topic.as_str(), 0, 1)]);

    let consumer = subscribed_consumer(&source, &live, &client_id, &topic, "classic");
    let assigned = wait_for_assignment(&consumer);
    assert_eq!(
        assigned,
        BTreeSet::from([(topic.clone(), 0), (topic.clone(), 1)]),
        "a single member gets every partition"
    );

    let admin = admin_for(&source.bootstrap, ADMIN_TIMEOUT);

    let listed = admin.groups().expect("listing groups");
    let find = |name: &str| {
        listed
            .iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("group {name} not listed in {listed:#?}"))
    };
    let e = find(&empty);
    assert_eq!(
        (e.state.as_str(), e.protocol_type.as_str(), e.members.len()),
        ("Empty", "", 0),
        "{e:?}"
    );
    assert!(e.is_consumer_group());
    let l = find(&live);
    assert_eq!(
        (l.state.as_str(), l.protocol_type.as_str(), l.members.len()),
        ("Stable", "consumer", 1),
        "{l:?}"
    );
    assert_eq!(l.members[0].client_id, client_id);
    assert!(l.members[0].host.contains("127.0.0.1"), "{l:?}");
    assert!(
        listed.iter().all(|g| g.name != missing),
        "a group that never existed is not listed"
    );

    let members = admin
        .group_members(&[&empty, &live, &missing])
        .expect("describing groups");
    assert_eq!(members.keys().collect::<Vec<_>>(), {
        let mut want = vec![&empty, &live, &missing];
        want.sort();
        want
    });
    let e = &members[&empty];
    assert_eq!(e.state, "Empty");
    assert!(
        e.members.is_empty() && e.assigned_topics.is_empty(),
        "{e:?}"
    );
    let l = &members[&live];
    assert_eq!(l.state, "Stable");
    assert_eq!(l.members.len(), 1, "{l:?}");
    assert_eq!(l.members[0].client_id, client_id);
    assert!(l.members[0].host.contains("127.0.0.1"), "{l:?}");
    assert_eq!(l.assigned_topics, BTreeSet::from([topic.clone()]));
    // Kafka 4.x describes a group that never existed as Dead, without an error.
    let m = &members[&missing];
    assert_eq!(m.state, "Dead");
    assert!(
        m.members.is_empty() && m.assigned_topics.is_empty(),
        "{m:?}"
    );

    close(consumer);
}

// ---------------------------------------------------------------------------------------
// ffi::alter_group_offsets()

#[test]
fn alter_group_offsets_needs_a_group_without_members() {
    let source = Cluster::source();
    let mut cleanup = Cleanup::new(&source);
    let topic = cleanup.topic("kmigrate-admin-alter", 3, &[]);
    let empty = cleanup.group("kmigrate-admin-alter-empty");
    let live = cleanup.group("kmigrate-admin-alter-live");
    let ts = now_ms();
    for p in 0..3 {
        source.produce_n(&topic, p, 5, ts);
    }
    source.commit(&empty, &[(topic.as_str(), 0, 3), (topic.as_str(), 1, 1)]);
    let admin = admin_for(&source.bootstrap, ADMIN_TIMEOUT);
    let raw = raw_admin(&source);

    // Empty group: listed partitions change, the others keep their commit.
    ffi::alter_group_offsets(
        raw.inner(),
        &empty,
        &[(topic.clone(), 0, 1), (topic.clone(), 2, 4)],
        ADMIN_TIMEOUT,
    )
    .expect("altering the offsets of an Empty group");
    assert_eq!(
        admin.committed(&empty).expect("committed after alter"),
        BTreeMap::from([
            (Tp::new(&topic, 0), 1),
            (Tp::new(&topic, 1), 1),
            (Tp::new(&topic, 2), 4),
        ])
    );

    // Live group: the broker refuses and nothing is committed.
    let consumer = subscribed_consumer(
        &source,
        &live,
        &unique("kmigrate-admin-alter"),
        &topic,
        "classic",
    );
    wait_for_assignment(&consumer);
    let err = ffi::alter_group_offsets(raw.inner(), &live, &[(topic.clone(), 0, 2)], ADMIN_TIMEOUT)
        .expect_err("altering the offsets of a group with a live member must fail");
    let text = format!("{err:#}");
    assert!(text.contains("active members"), "{text}");
    assert!(text.contains(&live), "the error names the group: {text}");
    assert_eq!(
        admin.committed(&live).expect("committed of the live group"),
        BTreeMap::new()
    );

    // Once the member has left, the same call succeeds.
    close(consumer);
    eventually("the live group becomes Empty", || {
        let m = admin.group_members(&[&live]).expect("describing the group");
        (m[&live].state == "Empty").then_some(())
    });
    ffi::alter_group_offsets(raw.inner(), &live, &[(topic.clone(), 0, 2)], ADMIN_TIMEOUT)
        .expect("altering after the member left");
    assert_eq!(
        admin.committed(&live).expect("committed after alter"),
        BTreeMap::from([(Tp::new(&topic, 0), 2)])
    );
}

/// Consumers on the KIP-848 protocol (`group.protocol=consumer`, Kafka 4's new group
/// coordinator): described with their member and assignment, and their offsets protected.
#[test]
fn kip848_consumer_group_is_described_and_protects_its_offsets() {
    let source = Cluster::source();
    let mut cleanup = Cleanup::new(&source);
    let topic = cleanup.topic("kmigrate-admin-kip848", 2, &[]);
    let live = cleanup.group("kmigrate-admin-kip848-live");
    let client_id = unique("kmigrate-admin-kip848-member");
    let admin = admin_for(&source.bootstrap, ADMIN_TIMEOUT);
    let raw = raw_admin(&source);

    let consumer = subscribed_consumer(&source, &live, &client_id, &topic, "consumer");
    let assigned = wait_for_assignment(&consumer);
    assert_eq!(
        assigned,
        BTreeSet::from([(topic.clone(), 0), (topic.clone(), 1)])
    );
    // The member holds its assignment before the coordinator may call the group Stable.
    let g = eventually("the KIP-848 group becomes Stable", || {
        let m = admin.group_members(&[&live]).expect("describing the group");
        let g = m[&live].clone();
        (g.state == "Stable").then_some(g)
    });
    assert_eq!(g.members.len(), 1, "{g:?}");
    assert_eq!(g.members[0].client_id, client_id);
    assert!(g.members[0].host.contains("127.0.0.1"), "{g:?}");
    assert_eq!(g.assigned_topics, BTreeSet::from([topic.clone()]));
    // groups() lists it. Its state there is not checked: groups() reads the classic
    // DescribeGroups API, which on Kafka 4.4 reports a live KIP-848 group as "Dead" with
    // protocol type "" and no members (group_members() above is right).
    let listed = admin.groups().expect("listing groups");
    assert!(listed.iter().any(|l| l.name == live), "{live} not listed");

    let err = ffi::alter_group_offsets(raw.inner(), &live, &[(topic.clone(), 0, 1)], ADMIN_TIMEOUT)
        .expect_err("altering the offsets of a group with a live member must fail");
    let text = format!("{err:#}");
    assert!(text.contains("active members"), "{text}");
    assert_eq!(admin.committed(&live).expect("committed"), BTreeMap::new());

    close(consumer);
    eventually("the KIP-848 group becomes Empty", || {
        let m = admin.group_members(&[&live]).expect("describing the group");
        (m[&live].state == "Empty" && m[&live].members.is_empty()).then_some(())
    });
    ffi::alter_group_offsets(raw.inner(), &live, &[(topic.clone(), 0, 1)], ADMIN_TIMEOUT)
        .expect("altering after the member left");
    assert_eq!(
        admin.committed(&live).expect("committed after alter"),
        BTreeMap::from([(Tp::new(&topic, 0), 1)])
    );
}

// ---------------------------------------------------------------------------------------
// topic_configs()

#[test]
fn topic_configs_returns_only_the_configs_set_on_the_topic() {
    let source = Cluster::source();
    let mut cleanup = Cleanup::new(&source);
    let configured = cleanup.topic(
        "kmigrate-admin-configured",
        1,
        &[("retention.ms", "86400000"), ("cleanup.policy", "compact")],
    );
    let admin = admin_for(&source.bootstrap, ADMIN_TIMEOUT);
    let plain = cleanup.bare_topic("kmigrate-admin-plain", 1, &admin);

    let got = admin
        .topic_configs(&[configured.clone(), plain.clone()])
        .expect("describing topic configs");
    let want = BTreeMap::from([
        (
            configured.clone(),
            BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("retention.ms".to_string(), "86400000".to_string()),
            ]),
        ),
        (plain.clone(), BTreeMap::new()),
    ]);
    assert_eq!(got, want);
    assert_eq!(
        admin.topic_configs(&[]).expect("no topics"),
        BTreeMap::new()
    );
}

// ---------------------------------------------------------------------------------------
// Unreachable cluster

#[test]
fn unreachable_cluster_fails_fast_and_names_the_cluster() {
    let admin = admin_for("127.0.0.1:1", Duration::from_secs(3));
    let start = Instant::now();
    let err = admin
        .topics()
        .expect_err("topics() on an unreachable cluster must fail");
    let took = start.elapsed();
    let text = format!("{err:#}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {text}");
    assert!(text.contains("source cluster 127.0.0.1:1"), "{text}");
}
