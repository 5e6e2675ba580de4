//! Topic renaming against the real test bed: records land in the renamed topics exactly,
//! groups resume there at the translated offsets, `verify` compares the renamed copies, and
//! mappings that would mix topics are refused with the place of the offending key.

use crate::support;
use crate::support::records::assert_copied_to;
use crate::support::{Cluster, Rec, TS, config_for, kmigrate, unique, verify_ok, workdir};

/// Every partition of `target_topic` holds exactly `topic`'s records from `from[p]` on, and
/// something was copied to each.
fn assert_copied_renamed(
    src: &Cluster,
    tgt: &Cluster,
    topic: &str,
    target_topic: &str,
    from: &[i64],
) {
    for (p, got) in assert_copied_to(src, tgt, topic, target_topic, from)
        .iter()
        .enumerate()
    {
        assert!(!got.is_empty(), "{topic}/{p}: the test copies something");
    }
}

/// Records with headers, keys, tombstones and out-of-order timestamps on `partitions`.
fn produce(src: &Cluster, topic: &str, partitions: i32, per: usize) {
    let mut recs = Vec::new();
    for p in 0..partitions {
        for i in 0..per {
            let mut r = Rec::kv(
                p,
                &format!("k{p}-{i}"),
                &format!("v{i}"),
                TS + (i as i64 % 3),
            );
            if i % 4 == 1 {
                r.headers = vec![("h".into(), Some(vec![i as u8])), ("nil".into(), None)];
            }
            if i % 5 == 2 {
                r.value = None;
            }
            recs.push(r);
        }
    }
    src.produce(topic, &recs);
}

/// The 1-based line of the first line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?} in:\n{text}"))
        + 1
}

#[test]
fn renamed_topics_are_copied_resumed_and_verified() {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    let orders = unique("rename-orders");
    let payments = unique("rename-payments");
    let orders_v2 = format!("{orders}.v2");
    let payments_legacy = format!("legacy.{payments}");
    let (g1, g2) = (unique("rename-g1"), unique("rename-g2"));
    src.create_topic(&orders, 2, &[]);
    src.create_topic(&payments, 2, &[]);
    // The explicit name exists on the target already; the templated one is created.
    tgt.create_topic(&orders_v2, 2, &[]);
    produce(&src, &orders, 2, 10);
    produce(&src, &payments, 2, 8);
    src.commit(&g1, &[(&orders, 0, 3), (&orders, 1, 0), (&payments, 0, 5)]);
    src.commit(
        &g2,
        &[(&orders, 0, 6), (&payments, 0, 7), (&payments, 1, 2)],
    );

    let dir = workdir("rename");
    let config = config_for(
        &[&g1, &g2],
        &format!(
            "[migration]\ncreate_topics = true\n[topics]\ntarget = \"legacy.{{topic}}\"\n\
             [topics.map]\n\"{orders}\" = \"{orders_v2}\"\n"
        ),
    );

    let plan = kmigrate(&dir, &config, &["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "plan:\n{}\n{}", plan.stdout, plan.stderr);
    let json = plan.json();
    for t in json["topics"].as_array().expect("topics") {
        let want = if t["topic"] == orders.as_str() {
            &orders_v2
        } else {
            &payments_legacy
        };
        assert_eq!(t["target_topic"], want.as_str(), "{t}");
    }
    for p in json["partitions"].as_array().expect("partitions") {
        assert!(p["target_topic"].as_str().is_some(), "{p}");
    }
    let table = kmigrate(&dir, &config, &["plan"]);
    assert!(
        table
            .stdout
            .contains(&format!("{payments} -> {payments_legacy}")),
        "{}",
        table.stdout
    );

    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 0, "run:\n{}\n{}", run.stdout, run.stderr);

    // orders/0 starts at 3 (g1), orders/1 at 0; payments/0 at 5; payments/1: g2 committed 2,
    // g1 never committed it and `earliest` reads it from 0.
    assert_copied_renamed(&src, &tgt, &orders, &orders_v2, &[3, 0]);
    assert_copied_renamed(&src, &tgt, &payments, &payments_legacy, &[5, 0]);

    // Each group resumes on the renamed topics where it stopped on the source.
    let parts = |t: &str| vec![(t.to_string(), 0), (t.to_string(), 1)];
    let on = |g: &str, t: &str| -> Vec<Option<i64>> {
        let ps = parts(t);
        let refs: Vec<(&str, i32)> = ps.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        tgt.committed(g, &refs)
    };
    assert_eq!(on(&g1, &orders_v2), vec![Some(0), Some(0)]);
    // g2 never committed orders/1: under `earliest` it resumes at its first copied record.
    assert_eq!(on(&g2, &orders_v2), vec![Some(3), Some(0)]);
    assert_eq!(on(&g1, &payments_legacy), vec![Some(0), Some(0)]);
    assert_eq!(on(&g2, &payments_legacy), vec![Some(2), Some(2)]);
    // Nothing is committed under the source names on the target.
    assert_eq!(on(&g1, &orders), vec![None, None]);
    assert_eq!(on(&g2, &payments), vec![None, None]);

    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(support::STATE)).expect("state file"))
            .expect("state JSON");
    for p in state["partitions"].as_array().expect("partitions") {
        assert!(
            [orders_v2.as_str(), payments_legacy.as_str()]
                .contains(&p["target_topic"].as_str().unwrap_or("")),
            "{p}"
        );
    }

    let verified = verify_ok(&dir);
    assert!(
        verified
            .stdout
            .contains(&format!("{orders} -> {orders_v2}")),
        "{}",
        verified.stdout
    );

    // The state file belongs to this mapping: a run under another one is refused.
    let other = config.replace(&format!("= \"{orders_v2}\""), &format!("= \"{orders}.v3\""));
    assert_ne!(other, config);
    let rerun = kmigrate(&dir, &other, &["run", "--yes"]);
    assert_eq!(rerun.code, 2, "{}\n{}", rerun.stdout, rerun.stderr);
    assert!(
        rerun.stderr.contains("state file") && rerun.stderr.contains(&orders_v2),
        "{}",
        rerun.stderr
    );
}

#[test]
fn mappings_that_mix_topics_are_refused_where_written() {
    let (src, _) = (Cluster::source(), Cluster::target());
    let a = unique("rename-bad-a");
    let b = unique("rename-bad-b");
    let g = unique("rename-bad-g");
    src.create_topic(&a, 1, &[]);
    src.create_topic(&b, 1, &[]);
    src.produce_n(&a, 0, 3, TS);
    src.produce_n(&b, 0, 3, TS);
    src.commit(&g, &[(&a, 0, 1), (&b, 0, 1)]);
    let dir = workdir("rename-bad");

    // Two explicit names onto one target topic: the later key is named.
    let config = config_for(
        &[&g],
        &format!("[topics.map]\n\"{a}\" = \"merged\"\n\"{b}\" = \"merged\"\n"),
    );
    let run = kmigrate(&dir, &config, &["plan"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let at = format!("migrate.toml:{}:1", line_of(&config, &format!("\"{b}\"")));
    assert!(run.stderr.contains(&at), "{at} in:\n{}", run.stderr);
    assert!(run.stderr.contains("\"merged\""), "{}", run.stderr);

    // Onto Kafka's own topic.
    let config = config_for(
        &[&g],
        &format!("[topics.map]\n\"{a}\" = \"__consumer_offsets\"\n"),
    );
    let run = kmigrate(&dir, &config, &["run", "--yes"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let at = format!("migrate.toml:{}:1", line_of(&config, &format!("\"{a}\"")));
    assert!(run.stderr.contains(&at), "{at} in:\n{}", run.stderr);
    assert!(run.stderr.contains("internal"), "{}", run.stderr);

    // A template without {topic}, with two topics to copy: known once the groups are read.
    let config = config_for(&[&g], "[topics]\ntarget = \"everything\"\n");
    let run = kmigrate(&dir, &config, &["plan"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let at = format!("migrate.toml:{}:1", line_of(&config, "target ="));
    assert!(run.stderr.contains(&at), "{at} in:\n{}", run.stderr);
    assert!(run.stderr.contains("{topic}"), "{}", run.stderr);

    // A key that names no source topic, like a filter pattern that matches nothing.
    let config = config_for(&[&g], &format!("[topics.map]\n\"{a}-typo\" = \"x\"\n"));
    let run = kmigrate(&dir, &config, &["plan"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let at = format!(
        "migrate.toml:{}:1",
        line_of(&config, &format!("\"{a}-typo\""))
    );
    assert!(run.stderr.contains(&at), "{at} in:\n{}", run.stderr);

    // Nothing was written: no state file.
    assert!(!dir.join(support::STATE).exists());
}
