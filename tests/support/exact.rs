//! A topic of known records with groups' commits, and the check that a migration of it is
//! exact: records, the groups' committed offsets, the offset map, `kmigrate verify`.

use std::path::Path;

use super::records::{assert_copied, counts, produce_bulk};
use super::{Cluster, kmigrate_raw, verify_ok};

/// Each group's committed offset per partition (index = partition).
pub type Commits<'a> = [(&'a str, &'a [i64])];

/// `per` records in each of `parts` partitions of `topic` on `src` (made with `create`
/// on both clusters first), and the groups' commits.
pub fn setup(
    (src, tgt): (&Cluster, &Cluster),
    topic: &str,
    parts: i32,
    per: usize,
    groups: &Commits,
    create: impl Fn(&Cluster),
) {
    create(src);
    create(tgt);
    produce_bulk(src, topic, parts, per);
    for (g, commits) in groups {
        let offsets: Vec<(&str, i32, i64)> = commits
            .iter()
            .enumerate()
            .map(|(p, c)| (topic, p as i32, *c))
            .collect();
        src.commit(g, &offsets);
    }
}

/// The copy of a [`setup`] topic is exact and every group resumes exactly: the copy of each
/// partition starts at its smallest commit; a group that committed `c` resumes at
/// `c - start` on the (empty before the copy) target, and `kmigrate offsets translate`
/// says the same; `kmigrate verify` passes.
pub fn assert_exact(
    (src, tgt): (&Cluster, &Cluster),
    dir: &Path,
    topic: &str,
    per: usize,
    groups: &Commits,
) {
    let parts = groups[0].1.len();
    let start: Vec<i64> = (0..parts)
        .map(|p| groups.iter().map(|(_, c)| c[p]).min().expect("a group"))
        .collect();
    let counts = counts(&assert_copied(src, tgt, topic, &start));
    let want: Vec<i64> = start.iter().map(|s| per as i64 - s).collect();
    assert_eq!(counts, want, "records per partition on the target");
    for (g, commits) in groups {
        let parts: Vec<(&str, i32)> = (0..commits.len() as i32).map(|p| (topic, p)).collect();
        let want: Vec<i64> = commits.iter().zip(&start).map(|(c, s)| c - s).collect();
        let got = tgt.committed(g, &parts);
        assert_eq!(
            got,
            want.iter().map(|o| Some(*o)).collect::<Vec<_>>(),
            "group {g}'s offsets on {topic} on the target"
        );
        // The offset map kept through the run (and its kills) translates them the same.
        for (p, c) in commits.iter().enumerate() {
            let (p_s, c_s) = (p.to_string(), c.to_string());
            let out = kmigrate_raw(dir, &["offsets", "translate", topic, &p_s, &c_s]);
            assert_eq!(
                out.code, 0,
                "offsets translate {topic} {p} {c}: {}",
                out.stderr
            );
            assert_eq!(out.stdout.trim(), want[p].to_string(), "{topic}/{p}: {c}");
        }
    }
    verify_ok(dir);
}
