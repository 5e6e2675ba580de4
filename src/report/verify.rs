//! `kmigrate verify`: the comparison of source and target as tables (its JSON is the
//! report itself).

use crate::text::{Align, Table, thousands};
use crate::verify::Report;

/// Above this many partitions, only mismatches get a row unless `--verbose`.
const MAX_ROWS: usize = 100;

/// The report as tables: the partitions (only mismatches past [`MAX_ROWS`] unless
/// `verbose`), the groups, and the verdict.
pub fn text(rep: &Report, verbose: bool) -> String {
    let mut out = String::from("PARTITIONS\n");
    let mut t = Table::new(&[
        ("TOPIC", Align::Left),
        ("PART", Align::Right),
        ("SOURCE RECORDS", Align::Right),
        ("TARGET RECORDS", Align::Right),
        ("RESULT", Align::Left),
    ]);
    let all = verbose || rep.partitions.len() <= MAX_ROWS;
    for p in rep
        .partitions
        .iter()
        .filter(|p| all || p.mismatch.is_some())
    {
        let topic = if p.target_topic == p.topic {
            p.topic.clone()
        } else {
            format!("{} -> {}", p.topic, p.target_topic)
        };
        t.row(vec![
            topic,
            p.partition.to_string(),
            thousands(p.source_records as i64),
            thousands(p.target_records as i64),
            match &p.mismatch {
                None => "ok".to_string(),
                Some(m) => format!("MISMATCH: {m}"),
            },
        ]);
    }
    if t.is_empty() {
        out.push_str("  (all ok)\n");
    } else {
        out.push_str(&t.render(2));
    }
    if !rep.groups.is_empty() {
        out.push_str("\nGROUP OFFSETS ON THE TARGET\n");
        let mut t = Table::new(&[("GROUP", Align::Left), ("RESULT", Align::Left)]);
        for g in &rep.groups {
            t.row(vec![
                g.group.clone(),
                match &g.mismatch {
                    None => "ok: at the translated offsets".to_string(),
                    Some(m) => format!("MISMATCH: {m}"),
                },
            ]);
        }
        out.push_str(&t.render(2));
    }
    let bad = rep
        .partitions
        .iter()
        .filter(|p| p.mismatch.is_some())
        .count()
        + rep.groups.iter().filter(|g| g.mismatch.is_some()).count();
    let secs = rep.seconds.max(0.001);
    out.push_str(&format!(
        "\n{}: {} partitions, {} records compared on both sides in {:.1} s ({:.1} MB/s of source data)\n",
        if bad == 0 {
            "VERIFIED".to_string()
        } else {
            format!("{bad} MISMATCH(ES)")
        },
        thousands(rep.partitions.len() as i64),
        thousands(rep.records as i64),
        rep.seconds,
        rep.bytes as f64 / secs / 1e6
    ));
    out
}
