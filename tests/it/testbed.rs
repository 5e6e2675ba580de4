//! The test bed itself: both clusters answer, are distinct, and carry every record shape
//! kmigrate must preserve, exactly. If this fails, nothing else can be trusted.

use crate::support::{Cluster, Rec, unique};

fn shapes(partition: i32) -> Vec<Rec> {
    vec![
        Rec::kv(partition, "k1", "v1", 1_600_000_000_000),
        Rec {
            partition,
            key: None,
            value: Some(b"null key".to_vec()),
            headers: vec![],
            timestamp: Some(1_600_000_000_001),
        },
        Rec {
            partition,
            key: Some(b"tombstone".to_vec()),
            value: None,
            headers: vec![],
            timestamp: Some(1_600_000_000_002),
        },
        Rec {
            partition,
            key: Some(Vec::new()),
            value: Some(Vec::new()),
            headers: vec![
                ("dup".into(), Some(b"1".to_vec())),
                ("dup".into(), Some(b"2".to_vec())),
                ("null-header".into(), None),
                ("bin".into(), Some(vec![0, 255, 1])),
            ],
            timestamp: Some(1_000),
        },
        Rec {
            partition,
            key: Some(b"big".to_vec()),
            value: Some(vec![7u8; 900 * 1024]),
            headers: vec![],
            timestamp: Some(1_600_000_000_003),
        },
    ]
}

#[test]
fn both_clusters_store_and_return_every_record_shape() {
    for cluster in [Cluster::source(), Cluster::target()] {
        let topic = unique("testbed-shapes");
        cluster.create_topic(&topic, 2, &[("max.message.bytes", "2000000")]);
        let recs: Vec<Rec> = shapes(1).into_iter().chain(shapes(0)).collect();
        cluster.produce(&topic, &recs);
        for p in [0, 1] {
            let got = cluster.read_all(&topic, p);
            let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
            assert_eq!(
                offsets,
                vec![0, 1, 2, 3, 4],
                "{} {topic}/{p}",
                cluster.bootstrap
            );
            let got: Vec<Rec> = got.into_iter().map(|r| r.rec).collect();
            assert_eq!(got, shapes(p), "{} {topic}/{p}", cluster.bootstrap);
        }
        cluster.delete_topic(&topic);
    }
}

#[test]
fn source_and_target_are_different_clusters() {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    assert_ne!(src.bootstrap, tgt.bootstrap);
    let topic = unique("testbed-distinct");
    src.create_topic(&topic, 1, &[]);
    src.produce_n(&topic, 0, 3, 1_000);
    assert_eq!(src.watermarks(&topic, 0), (0, 3));
    // The topic exists on the source only.
    tgt.create_topic(&topic, 1, &[]);
    assert_eq!(tgt.watermarks(&topic, 0), (0, 0));
    src.delete_topic(&topic);
    tgt.delete_topic(&topic);
}

#[test]
fn group_commits_and_record_deletion() {
    let src = Cluster::source();
    let topic = unique("testbed-commit");
    let group = unique("testbed-group");
    src.create_topic(&topic, 1, &[]);
    src.produce_n(&topic, 0, 10, 1_000);
    src.commit(&group, &[(&topic, 0, 4)]);
    assert_eq!(src.committed(&group, &[(&topic, 0)]), vec![Some(4)]);
    src.delete_records(&topic, 0, 6);
    assert_eq!(src.watermarks(&topic, 0), (6, 10));
    let got = src.read_all(&topic, 0);
    assert_eq!(got.first().map(|r| r.offset), Some(6));
    assert_eq!(got.len(), 4);
    src.delete_topic(&topic);
}
