//! The batch engine (`--engine batch`) on what its rules single out: batches of every codec
//! in one partition, one-record batches (linger 0), a range starting inside a batch, a
//! LogAppendTime source topic, and source batches larger than the target topic accepts.
//! Each copy is compared record for record (key, value, headers, timestamp, partition,
//! order) with the source, the groups' offsets with `verify`. The other tests run with the
//! batch engine too when KMIGRATE_ENGINE=batch is set (`.ci/run` does so for a subset).

use crate::support::records::{assert_copied, noise};
use crate::support::{Cluster, Rec, Run, TS, config_for, kmigrate_env, unique, verify_ok, workdir};

/// `kmigrate run --yes --engine batch` in `dir`; asserts it copied with the batch engine
/// and exited 0.
fn run_batch(dir: &std::path::Path, config: &str) -> Run {
    std::fs::write(dir.join("migrate.toml"), config).expect("writing migrate.toml");
    let run = kmigrate_env(dir, &["run", "--yes", "--engine", "batch"], &[], "info");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("copying with the batch engine"),
        "{}",
        run.stderr
    );
    run
}

fn shaped(partition: i32, i: usize, ts0: i64) -> Rec {
    let mut headers = vec![("n".to_string(), Some(i.to_string().into_bytes()))];
    if i.is_multiple_of(7) {
        // Duplicate names and a null value: carried as written.
        headers.push(("n".to_string(), None));
        headers.push(("dup".to_string(), Some(b"x".to_vec())));
    }
    Rec {
        partition,
        key: (!i.is_multiple_of(5)).then(|| format!("k{i}").into_bytes()),
        value: (!i.is_multiple_of(11)).then(|| noise(50 + i % 300, i as u64)),
        headers,
        timestamp: Some(ts0 + i as i64),
    }
}

#[test]
fn every_codec_one_record_batches_and_a_start_inside_a_batch_copy_exactly() {
    let topic = unique("be-codecs");
    let g = unique("be-codecs-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 1, &[]);
    tgt.create_topic(&topic, 1, &[]);
    let mut i = 0;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let recs: Vec<Rec> = (i..i + 150).map(|n| shaped(0, n, TS)).collect();
        src.produce_with(
            &topic,
            &recs,
            &[("compression.type", codec), ("linger.ms", "20")],
        );
        i += 150;
    }
    // A producer with linger 0 that sends each record alone: one-record batches.
    let recs: Vec<Rec> = (i..i + 60).map(|n| shaped(0, n, TS)).collect();
    src.produce_with(
        &topic,
        &recs,
        &[("linger.ms", "0"), ("batch.num.messages", "1")],
    );
    // The group stopped inside the first gzip batch: the copy starts mid-batch.
    src.commit(&g, &[(&topic, 0, 163)]);
    let dir = workdir("be-codecs");
    run_batch(&dir, &config_for(&[&g], ""));
    let got = assert_copied(&src, &tgt, &topic, &[163]);
    assert_eq!(got[0].len(), 150 * 5 + 60 - 163);
    verify_ok(&dir);
}

#[test]
fn a_log_append_time_source_keeps_the_times_its_consumers_saw() {
    let topic = unique("be-lat");
    let g = unique("be-lat-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 2, &[("message.timestamp.type", "LogAppendTime")]);
    tgt.create_topic(&topic, 2, &[]);
    let recs: Vec<Rec> = (0..400).map(|n| shaped((n % 2) as i32, n, TS)).collect();
    src.produce_with(&topic, &recs, &[("linger.ms", "20")]);
    src.commit(&g, &[(&topic, 0, 0), (&topic, 1, 10)]);
    let dir = workdir("be-lat");
    run_batch(&dir, &config_for(&[&g], ""));
    // The source's records, as read, carry the brokers' append times (not TS + n): the
    // target's are those.
    let got = assert_copied(&src, &tgt, &topic, &[0, 10]);
    assert!(got[0].iter().all(|r| r.timestamp.unwrap_or(0) > TS + 1000));
    verify_ok(&dir);
}

#[test]
fn source_batches_larger_than_the_target_accepts_are_split() {
    let topic = unique("be-split");
    let g = unique("be-split-g");
    let (src, tgt) = (Cluster::source(), Cluster::target());
    src.create_topic(&topic, 1, &[]);
    tgt.create_topic(&topic, 1, &[("max.message.bytes", "20000")]);
    // Incompressible 600-byte values batched up to 1 MB: batches of about 1,600 records.
    let recs: Vec<Rec> = (0..3000)
        .map(|n| Rec {
            partition: 0,
            key: Some(format!("k{n}").into_bytes()),
            value: Some(noise(600, n as u64)),
            headers: Vec::new(),
            timestamp: Some(TS + n as i64),
        })
        .collect();
    src.produce_with(
        &topic,
        &recs,
        &[
            ("linger.ms", "200"),
            ("batch.size", "1000000"),
            ("compression.type", "none"),
        ],
    );
    src.commit(&g, &[(&topic, 0, 0)]);
    let dir = workdir("be-split");
    run_batch(&dir, &config_for(&[&g], ""));
    assert_copied(&src, &tgt, &topic, &[0]);
    verify_ok(&dir);
}
