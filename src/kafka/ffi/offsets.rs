//! Earliest, high-watermark and last-stable offsets of many partitions (`ListOffsets`, one
//! request per leader, with an explicit isolation level).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

use super::call::{raw_slice, run_admin};
use super::partitions::{PartitionErrors, build_partition_list, read_partition, summarize};
use super::text::take_error;

/// Which offset `list_offsets` should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// Log start offset.
    Earliest,
    /// High watermark (read_uncommitted) or last stable offset (read_committed).
    Latest,
}

impl OffsetSpec {
    fn native(self) -> i64 {
        match self {
            OffsetSpec::Earliest => rd::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_EARLIEST as i64,
            OffsetSpec::Latest => rd::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_LATEST as i64,
        }
    }
}

/// Looks up earliest or latest offsets for many partitions with `ListOffsets`
/// (librdkafka batches one request per partition leader).
///
/// With [`OffsetSpec::Latest`], `read_committed = true` returns the last stable
/// offset (LSO: stops before the first open transaction) and
/// `read_committed = false` returns the high watermark. Duplicate inputs are
/// queried once; the result is sorted by `(topic, partition)`. Any
/// per-partition error makes the call fail, naming the partitions. Empty input
/// returns an empty vector without contacting the cluster.
pub fn list_offsets<C: ClientContext>(
    client: &Client<C>,
    partitions: &[(String, i32)],
    spec: OffsetSpec,
    read_committed: bool,
    timeout: Duration,
) -> Result<Vec<((String, i32), i64)>> {
    let unique: BTreeSet<(&str, i32)> = partitions
        .iter()
        .map(|(topic, partition)| (topic.as_str(), *partition))
        .collect();
    if unique.is_empty() {
        return Ok(Vec::new());
    }
    let isolation = if read_committed {
        rd::rd_kafka_IsolationLevel_t::RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED
    } else {
        rd::rd_kafka_IsolationLevel_t::RD_KAFKA_ISOLATION_LEVEL_READ_UNCOMMITTED
    };
    let what = format!(
        "ListOffsets ({spec:?}, {}) for {} partition(s)",
        if read_committed {
            "read_committed"
        } else {
            "read_uncommitted"
        },
        unique.len()
    );
    let tpl = build_partition_list(unique.iter().map(|&(t, p)| (t, p, spec.native())))
        .with_context(|| what.clone())?;

    let event = run_admin(
        client,
        &what,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTOFFSETS,
        rd::RD_KAFKA_EVENT_LISTOFFSETS_RESULT,
        timeout,
        |options| {
            // SAFETY: `options` is a live AdminOptions created for ListOffsets.
            let err = unsafe { rd::rd_kafka_AdminOptions_set_isolation_level(options, isolation) };
            take_error(err).map_or(Ok(()), |e| Err(anyhow!("setting isolation level: {e}")))
        },
        |rk, options, queue| {
            // SAFETY: all handles are live; librdkafka copies the list.
            unsafe { rd::rd_kafka_ListOffsets(rk, tpl.ptr, options, queue) };
        },
    )?;

    // SAFETY: event type checked by `run_admin`; `event` outlives all derived
    // pointers in this function.
    let result = unsafe { rd::rd_kafka_event_ListOffsets_result(event.ptr) };
    if result.is_null() {
        bail!("{what}: result event carried no result");
    }
    let mut count = 0usize;
    // SAFETY: `result` is non-null and valid while `event` lives.
    let infos = unsafe { rd::rd_kafka_ListOffsets_result_infos(result, &mut count) };
    // SAFETY: librdkafka returns an array of `count` result infos.
    let infos = unsafe { raw_slice(infos.cast_const(), count) };

    let mut out = Vec::with_capacity(infos.len());
    let mut errors = PartitionErrors::default();
    for &info in infos {
        if info.is_null() {
            continue;
        }
        // SAFETY: `info` is non-null and owned by `event`.
        let tp = unsafe { rd::rd_kafka_ListOffsetsResultInfo_topic_partition(info) };
        if tp.is_null() {
            continue;
        }
        // SAFETY: `tp` is non-null and owned by `event`.
        let entry = unsafe { read_partition(tp) };
        if entry.err != 0 {
            errors.push(&entry);
        } else {
            out.push(((entry.topic, entry.partition), entry.offset));
        }
    }
    errors.into_result(&what, "")?;
    out.sort();
    let missing: Vec<String> = unique
        .iter()
        .filter(|(t, p)| {
            out.binary_search_by(|((ot, op), _)| (ot.as_str(), *op).cmp(&(*t, *p)))
                .is_err()
        })
        .map(|(t, p)| format!("{t}[{p}]"))
        .collect();
    if !missing.is_empty() {
        bail!("{what}: no result for {}", summarize(&missing));
    }
    Ok(out)
}
