//! Partition lists: built from `(topic, partition, offset)`, read back as plain Rust, and
//! the failed partitions of a result folded into one error.

use std::ffi::c_int;

use anyhow::{Context, Result, bail};
use rdkafka::bindings as rd;

use crate::kafka::error::{Code, KafkaError, representative};

use super::call::Owned;
use super::text::{cstr_to_string, describe_err, to_cstring};

/// Builds a partition list of `(topic, partition, offset)`.
pub(super) fn build_partition_list<'a>(
    entries: impl ExactSizeIterator<Item = (&'a str, i32, i64)>,
) -> Result<Owned<rd::rd_kafka_topic_partition_list_t>> {
    let size = c_int::try_from(entries.len()).context("too many partitions")?;
    // SAFETY: plain allocation; freed by the guard.
    let list = Owned::new(
        unsafe { rd::rd_kafka_topic_partition_list_new(size) },
        rd::rd_kafka_topic_partition_list_destroy,
        "topic partition list",
    )?;
    for (topic, partition, offset) in entries {
        if partition < 0 {
            bail!("invalid partition {topic}[{partition}]");
        }
        let c_topic = to_cstring(topic, "topic name")?;
        // SAFETY: `list` is live; `c_topic` is valid for the call (copied).
        let tp =
            unsafe { rd::rd_kafka_topic_partition_list_add(list.ptr, c_topic.as_ptr(), partition) };
        if tp.is_null() {
            bail!("failed to add {topic}[{partition}] to partition list");
        }
        // SAFETY: `tp` points to the element just added, owned by `list`.
        unsafe { (*tp).offset = offset };
    }
    Ok(list)
}

/// The failed partitions of one result: their codes decide whether the request is
/// retried, the first few name them in the error.
#[derive(Default)]
pub(super) struct PartitionErrors {
    pub(super) codes: Vec<Code>,
    lines: Vec<String>,
}

impl PartitionErrors {
    pub(super) fn push(&mut self, entry: &PartitionEntry) {
        self.codes.push(Code(entry.err));
        self.lines.push(format!(
            "{}[{}]: {}",
            entry.topic,
            entry.partition,
            describe_err(entry.err)
        ));
    }

    /// `Ok` when no partition failed; else one error whose code speaks for all of them
    /// ([`representative`]).
    pub(super) fn into_result(self, what: &str, hint: &str) -> Result<()> {
        let Some(code) = representative(self.codes.iter().copied()) else {
            return Ok(());
        };
        Err(KafkaError::with_message(
            code,
            what,
            format!(
                "{} for {} partition(s){hint}: {}",
                code.name(),
                self.lines.len(),
                summarize(&self.lines)
            ),
        )
        .into())
    }
}

/// Plain-Rust copy of one `rd_kafka_topic_partition_t`.
pub(super) struct PartitionEntry {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) metadata: Option<String>,
    pub(super) err: c_int,
}

/// # Safety
/// `tp` must be non-null and point to a valid `rd_kafka_topic_partition_t`.
pub(super) unsafe fn read_partition(tp: *const rd::rd_kafka_topic_partition_t) -> PartitionEntry {
    // SAFETY: guaranteed by the caller. Fields are read individually through
    // the raw pointer; `err` is read as its C representation (int) so that
    // unknown broker codes are not turned into an invalid Rust enum.
    unsafe {
        let metadata_ptr = (*tp).metadata.cast::<u8>().cast_const();
        let metadata_len = (*tp).metadata_size;
        let metadata = if metadata_ptr.is_null() || metadata_len == 0 {
            None
        } else {
            let bytes = std::slice::from_raw_parts(metadata_ptr, metadata_len);
            Some(String::from_utf8_lossy(bytes).into_owned())
        };
        PartitionEntry {
            topic: cstr_to_string((*tp).topic),
            partition: (*tp).partition,
            offset: (*tp).offset,
            metadata,
            err: (&raw const (*tp).err).cast::<c_int>().read(),
        }
    }
}

/// # Safety
/// `list` must be null or a valid partition list; the returned pointers are
/// valid as long as the list.
pub(super) unsafe fn partition_ptrs(
    list: *const rd::rd_kafka_topic_partition_list_t,
) -> Vec<*const rd::rd_kafka_topic_partition_t> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: `list` is non-null and valid per the caller; `elems` holds `cnt`
    // elements.
    unsafe {
        let count = usize::try_from((*list).cnt).unwrap_or(0);
        let elems = (*list).elems.cast_const();
        if elems.is_null() {
            return Vec::new();
        }
        (0..count).map(|i| elems.add(i)).collect()
    }
}

/// The first few items of a long list of per-partition errors, and how many more there are:
/// an error about thousands of partitions must stay readable.
pub(super) fn summarize(items: &[String]) -> String {
    const SHOWN: usize = 5;
    if items.len() <= SHOWN {
        return items.join("; ");
    }
    format!(
        "{}; ... and {} more",
        items[..SHOWN].join("; "),
        items.len() - SHOWN
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::error::find;

    /// The entries of a list as `read_partition` copies them.
    fn read_back(list: &Owned<rd::rd_kafka_topic_partition_list_t>) -> Vec<PartitionEntry> {
        // SAFETY: `list` is a live list; the element pointers are read while it lives.
        unsafe {
            partition_ptrs(list.ptr)
                .into_iter()
                .map(|tp| read_partition(tp))
                .collect()
        }
    }

    fn triples(entries: &[PartitionEntry]) -> Vec<(&str, i32, i64)> {
        entries
            .iter()
            .map(|e| (e.topic.as_str(), e.partition, e.offset))
            .collect()
    }

    #[test]
    fn a_built_list_reads_back_as_written() {
        let written = [
            ("orders", 0, 42),
            ("orders", 7, -1),
            ("pay.ments_v2-x", 3, i64::MAX),
            ("orders", 0, 0),
            ("é", 2_147_483_647, -2),
        ];
        let list = build_partition_list(written.iter().copied()).expect("a list");
        let read = read_back(&list);
        assert_eq!(triples(&read), written);
        assert!(read.iter().all(|e| e.err == 0 && e.metadata.is_none()));
        let empty = build_partition_list(std::iter::empty()).expect("an empty list");
        assert!(read_back(&empty).is_empty());
        // SAFETY: a NULL list is allowed and has no partitions.
        assert!(unsafe { partition_ptrs(std::ptr::null()) }.is_empty());
    }

    #[test]
    fn a_list_refuses_what_librdkafka_cannot_hold() {
        let e = build_partition_list([("orders", -1, 0)].into_iter()).err();
        let e = format!("{:#}", e.expect("a negative partition is refused"));
        assert!(e.contains("invalid partition orders[-1]"), "{e}");
        let e = build_partition_list([("ord\0ers", 0, 0)].into_iter()).err();
        let e = format!("{:#}", e.expect("a NUL byte is refused"));
        assert!(e.contains("topic name") && e.contains("NUL"), "{e}");
    }

    #[test]
    fn errors_and_metadata_read_back_including_codes_librdkafka_does_not_know() {
        let list = build_partition_list([("t", 0, 5), ("t", 1, 6), ("u", 0, 7)].into_iter())
            .expect("a list");
        let mut meta = *b"v1;from-source";
        // SAFETY: the list is live and holds three elements. The error codes are written
        // as the C enum's int, as a broker's code arrives; the metadata points into `meta`,
        // which outlives every read, and is reset below before the list frees its elements.
        unsafe {
            let elems = (*list.ptr).elems;
            (&raw mut (*elems).err)
                .cast::<c_int>()
                .write(Code::UNKNOWN_MEMBER_ID.0);
            (&raw mut (*elems.add(2)).err).cast::<c_int>().write(9_999);
            (*elems.add(1)).metadata = meta.as_mut_ptr().cast();
            (*elems.add(1)).metadata_size = meta.len();
        }
        let read = read_back(&list);
        // SAFETY: as above; the list no longer points at `meta` when it is destroyed.
        unsafe {
            let elems = (*list.ptr).elems;
            (*elems.add(1)).metadata = std::ptr::null_mut();
            (*elems.add(1)).metadata_size = 0;
        }
        assert_eq!(triples(&read), [("t", 0, 5), ("t", 1, 6), ("u", 0, 7)]);
        let errs: Vec<c_int> = read.iter().map(|e| e.err).collect();
        assert_eq!(errs, [Code::UNKNOWN_MEMBER_ID.0, 0, 9_999]);
        let metadata: Vec<Option<&str>> = read.iter().map(|e| e.metadata.as_deref()).collect();
        assert_eq!(metadata, [None, Some("v1;from-source"), None]);
    }

    fn failed(topic: &str, partition: i32, code: Code) -> PartitionEntry {
        PartitionEntry {
            topic: topic.to_string(),
            partition,
            offset: -1,
            metadata: None,
            err: code.0,
        }
    }

    /// The error the failed `entries` fold into, as the admin layer finds it.
    fn folded(entries: &[PartitionEntry], hint: &str) -> KafkaError {
        let mut errors = PartitionErrors::default();
        for e in entries {
            errors.push(e);
        }
        let e = errors
            .into_result("listing offsets", hint)
            .expect_err("partitions failed");
        find(&e).expect("a KafkaError").clone()
    }

    fn line(topic: &str, partition: i32, code: Code) -> String {
        format!("{topic}[{partition}]: {}", describe_err(code.0))
    }

    #[test]
    fn no_failed_partition_folds_into_ok() {
        assert!(
            PartitionErrors::default()
                .into_result("listing offsets", "")
                .is_ok()
        );
    }

    #[test]
    fn one_failed_partition_is_named_with_its_code() {
        let code = Code::UNKNOWN_TOPIC_OR_PARTITION;
        let e = folded(&[failed("orders", 3, code)], "");
        assert_eq!(e.code, code);
        assert_eq!(e.step, "listing offsets");
        assert_eq!(
            e.message,
            format!(
                "{} for 1 partition(s): {}",
                code.name(),
                line("orders", 3, code)
            )
        );
        assert!(e.message.contains("orders[3]"), "{}", e.message);
    }

    #[test]
    fn many_failed_partitions_name_the_first_five_and_count_the_rest() {
        let code = Code::NOT_LEADER_FOR_PARTITION;
        let entries: Vec<PartitionEntry> = (0..7).map(|p| failed("t", p, code)).collect();
        let e = folded(&entries, " (after a leader change)");
        assert_eq!(e.code, code);
        let shown: Vec<String> = (0..5).map(|p| line("t", p, code)).collect();
        assert_eq!(
            e.message,
            format!(
                "{} for 7 partition(s) (after a leader change): {}; ... and 2 more",
                code.name(),
                shown.join("; ")
            )
        );
        assert!(!e.message.contains("t[5]") && !e.message.contains("t[6]"));
    }

    #[test]
    fn mixed_codes_fold_into_the_one_a_retry_cannot_change() {
        // A refusal among retriable codes speaks for all: retrying would not help.
        let e = folded(
            &[
                failed("a", 0, Code::NOT_LEADER_FOR_PARTITION),
                failed("b", 1, Code::TOPIC_AUTHORIZATION_FAILED),
                failed("c", 2, Code::LEADER_NOT_AVAILABLE),
            ],
            "",
        );
        assert_eq!(e.code, Code::TOPIC_AUTHORIZATION_FAILED);
        for (t, p, c) in [
            ("a", 0, Code::NOT_LEADER_FOR_PARTITION),
            ("b", 1, Code::TOPIC_AUTHORIZATION_FAILED),
            ("c", 2, Code::LEADER_NOT_AVAILABLE),
        ] {
            assert!(e.message.contains(&line(t, p, c)), "{}", e.message);
        }
        assert!(e.message.contains("for 3 partition(s)"), "{}", e.message);
        // Only retriable codes: the first one speaks for all, and the request is retried.
        let e = folded(
            &[
                failed("a", 0, Code::LEADER_NOT_AVAILABLE),
                failed("a", 1, Code::NOT_LEADER_FOR_PARTITION),
            ],
            "",
        );
        assert_eq!(e.code, Code::LEADER_NOT_AVAILABLE);
        // A code librdkafka does not know is kept as it is, and named by its number.
        let e = folded(&[failed("a", 0, Code(9_999))], "");
        assert_eq!(e.code, Code(9_999));
        assert!(e.message.contains("a[0]: "), "{}", e.message);
    }
}
