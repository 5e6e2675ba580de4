//! kmigrate's admin steps through a failover, against librdkafka's mock cluster (three
//! brokers in this process, no test bed needed): brokers answer NOT_COORDINATOR,
//! COORDINATOR_LOAD_IN_PROGRESS or NOT_LEADER_OR_FOLLOWER for a while, or every broker
//! goes down and comes back, and each step still gets its answer within `timeout_secs`. When the cluster keeps answering an error past the timeout, the error
//! names the cluster, the step and the broker's code, and does not send the operator to
//! `bootstrap_servers`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kmigrate::config::{ClusterConfig, Properties};
use kmigrate::error::{ExitKind, exit_kind};
use kmigrate::kafka::error::{Code, find};
use kmigrate::kafka::{Admin, Cluster, Role};
use kmigrate::model::Tp;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

type Mock = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

const TOPIC: &str = "orders";

/// A three-broker mock cluster with a topic of two partitions, replicated on all three.
fn mock() -> Mock {
    let mock = MockCluster::new(3).expect("creating a mock cluster");
    mock.create_topic(TOPIC, 2, 3).expect("creating the topic");
    mock
}

fn admin(mock: &Mock, timeout: Duration) -> Arc<Admin> {
    let cfg = ClusterConfig {
        bootstrap_servers: mock.bootstrap_servers(),
        properties: Properties::default(),
    };
    Cluster::new(Role::Target, &cfg, timeout)
        .admin()
        .expect("creating kmigrate's admin client")
}

fn errors(code: RDKafkaRespErr, n: usize) -> Vec<RDKafkaRespErr> {
    vec![code; n]
}

fn offsets(list: &[(i32, i64)]) -> Vec<(String, i32, i64)> {
    list.iter()
        .map(|(p, o)| (TOPIC.to_string(), *p, *o))
        .collect()
}

fn tps(list: &[(i32, i64)]) -> BTreeMap<Tp, i64> {
    list.iter().map(|(p, o)| (Tp::new(TOPIC, *p), *o)).collect()
}

/// The group's commits on both partitions, read as the group's own consumer would.
fn committed(mock: &Mock, group: &str) -> BTreeMap<Tp, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", group)
        .create()
        .expect("creating a consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    tpl.add_partition(TOPIC, 1);
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("reading the group's commits")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((Tp::new(e.topic(), e.partition()), o)),
            _ => None,
        })
        .collect()
}

use RDKafkaRespErr::{
    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS as LOAD_IN_PROGRESS,
    RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE as LEADER_NOT_AVAILABLE,
    RD_KAFKA_RESP_ERR_NOT_COORDINATOR as NOT_COORDINATOR,
    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION as NOT_LEADER,
    RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID as UNKNOWN_MEMBER_ID,
};

/// The production bug: committing a group's offsets while its coordinator moved answered
/// NOT_COORDINATOR and failed at once. Commits and reads of committed offsets now ride it
/// out.
#[test]
fn commits_and_reads_ride_out_a_moving_coordinator() {
    let mock = mock();
    let admin = admin(&mock, Duration::from_secs(20));
    let mut answers = errors(NOT_COORDINATOR, 4);
    answers.extend(errors(LOAD_IN_PROGRESS, 2));
    mock.request_errors(RDKafkaApiKey::OffsetCommit, &answers);
    let t0 = Instant::now();
    admin
        .alter_group_offsets("g1", &offsets(&[(0, 5), (1, 7)]))
        .expect("the commit goes through once the coordinator settles");
    eprintln!("committed through 6 failover answers in {:?}", t0.elapsed());

    assert_eq!(committed(&mock, "g1"), tps(&[(0, 5), (1, 7)]));

    // The mock answers no commits to a request for all of a group's partitions (the
    // request `committed` sends), so only its passage through the failover is checked:
    // before the workaround in `Admin::new`, the first NOT_COORDINATOR crashed the process.
    mock.request_errors(RDKafkaApiKey::OffsetFetch, &errors(NOT_COORDINATOR, 5));
    admin
        .committed("g1")
        .expect("reading the commits once the coordinator settles");
}

/// Watermarks (ListOffsets) while partition leadership moves.
#[test]
fn watermarks_ride_out_a_leader_election() {
    let mock = mock();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .expect("creating a producer");
    for i in 0..3 {
        producer
            .send(
                BaseRecord::to(TOPIC)
                    .partition(1)
                    .key("k")
                    .payload(&format!("{i}")),
            )
            .map_err(|(e, _)| e)
            .expect("queueing a record");
    }
    producer
        .flush(Duration::from_secs(10))
        .expect("producing to the mock cluster");

    let admin = admin(&mock, Duration::from_secs(20));
    let mut answers = errors(NOT_LEADER, 3);
    answers.extend(errors(LEADER_NOT_AVAILABLE, 2));
    mock.request_errors(RDKafkaApiKey::ListOffsets, &answers);
    let got = admin
        .low_high(&[Tp::new(TOPIC, 0), Tp::new(TOPIC, 1)])
        .expect("watermarks once the leaders settle");
    assert_eq!(got[&Tp::new(TOPIC, 0)], (0, 0));
    assert_eq!(got[&Tp::new(TOPIC, 1)], (0, 3));
}

/// Every broker goes down (the coordinator killed with the rest) for 3 s while a commit is
/// under way, then comes back: the commit completes once they answer.
#[test]
fn a_commit_survives_the_brokers_restarting() {
    let mock = mock();
    let admin = admin(&mock, Duration::from_secs(20));
    // Connect first, so that the outage hits the commit and not the bootstrap.
    admin.committed("g2").expect("reading before the outage");
    mock.broker_down(-1).expect("stopping the brokers");
    let worker = {
        let admin = Arc::clone(&admin);
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let got = admin.alter_group_offsets("g2", &offsets(&[(0, 2), (1, 3)]));
            (got, t0.elapsed())
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    mock.broker_up(-1).expect("starting the brokers");
    let (got, took) = worker.join().expect("the commit thread");
    got.expect("the commit goes through once the brokers are back");
    eprintln!("committed across a 3 s outage in {took:?}");
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(committed(&mock, "g2"), tps(&[(0, 2), (1, 3)]));
}

/// A coordinator that never settles: the step gives up after the timeout with an error that
/// names the cluster, the step and the code, and says the cluster answered.
#[test]
fn a_coordinator_that_never_settles_is_reported_as_such() {
    let mock = mock();
    let timeout = Duration::from_secs(3);
    let admin = admin(&mock, timeout);
    admin.committed("g3").expect("reading before the failover");
    mock.request_errors(RDKafkaApiKey::OffsetFetch, &errors(NOT_COORDINATOR, 10_000));
    let t0 = Instant::now();
    let err = admin
        .committed("g3")
        .expect_err("NOT_COORDINATOR for longer than the timeout");
    let took = t0.elapsed();
    mock.clear_request_errors(RDKafkaApiKey::OffsetFetch);
    let text = format!("{err:#}");
    eprintln!("{text} (after {took:?})");
    assert!(took >= timeout - Duration::from_millis(500), "{took:?}");
    assert!(took < timeout + Duration::from_secs(3), "{took:?}");
    assert!(
        text.contains("listing committed offsets of group g3 on the target cluster")
            && text.contains(&mock.bootstrap_servers())
            && text.contains("answered NOT_COORDINATOR for")
            && text.contains("group coordinator did not settle"),
        "{text}"
    );
    assert!(!text.contains("bootstrap_servers"), "{text}");
    let typed = find(&err).expect("a typed Kafka error");
    assert_eq!(typed.code, Code::NOT_COORDINATOR);
    assert_eq!(exit_kind(&err), ExitKind::Failure);
}

/// A code a retry cannot fix is reported at once, with the broker's words.
#[test]
fn a_refusal_is_not_retried() {
    let mock = mock();
    let admin = admin(&mock, Duration::from_secs(20));
    admin.committed("g4").expect("connecting");
    mock.request_errors(RDKafkaApiKey::OffsetCommit, &errors(UNKNOWN_MEMBER_ID, 1));
    let t0 = Instant::now();
    let err = admin
        .alter_group_offsets("g4", &offsets(&[(0, 1)]))
        .expect_err("UNKNOWN_MEMBER_ID is the group's members refusing the commit");
    let took = t0.elapsed();
    let text = format!("{err:#}");
    assert!(took < Duration::from_secs(2), "{took:?}: {text}");
    assert!(
        text.contains("committing offsets of group g4 on the target cluster")
            && text.contains("active members")
            && text.contains("UNKNOWN_MEMBER_ID"),
        "{text}"
    );
    assert_eq!(find(&err).map(|k| k.code), Some(Code::UNKNOWN_MEMBER_ID));
}
