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
