//! Consumer groups: their committed offsets (all of them, without knowing the topics),
//! their descriptions (state, members, assignments), and committing offsets on behalf of a
//! group without joining it.

use std::collections::HashSet;
use std::ffi::c_char;
use std::ptr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

use crate::kafka::error::{Code, KafkaError};

use super::call::{Owned, raw_slice, run_admin};
use super::partitions::{PartitionErrors, build_partition_list, partition_ptrs, read_partition};
use super::raw;
use super::text::{cstr_to_string, error_of, take_error, to_cstring};

/// Why AlterConsumerGroupOffsets was refused, when it was for the group's members.
const ACTIVE_MEMBERS_HINT: &str =
    " (group has active members; stop its consumers before altering offsets)";

/// A committed offset of a consumer group for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Commit metadata, `None` if empty.
    pub metadata: Option<String>,
}

/// Description of a consumer group as returned by `DescribeConsumerGroups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// librdkafka state name: "Unknown", "PreparingRebalance",
    /// "CompletingRebalance", "Stable", "Dead", "Empty".
    pub state: String,
    pub members: Vec<GroupMember>,
    /// Per-group error with its code (e.g. `NOT_COORDINATOR`,
    /// `GROUP_AUTHORIZATION_FAILED`). Note: a group that does not exist is
    /// reported by Kafka 4.x as state "Dead" with no members and *no* error.
    pub error: Option<KafkaError>,
}

/// One member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub client_id: String,
    /// As reported by the broker, typically `/1.2.3.4`.
    pub host: String,
    /// Assigned `(topic, partition)` pairs.
    pub assignment: Vec<(String, i32)>,
}

/// Returns all committed offsets of `group` (every topic/partition the group
/// has a commit for), using `ListConsumerGroupOffsets` with a NULL partition
/// list. Entries without a commit (negative offset) are dropped. Any
/// per-partition error makes the whole call fail, naming the partitions.
pub fn list_group_offsets<C: ClientContext>(
    client: &Client<C>,
    group: &str,
    timeout: Duration,
) -> Result<Vec<CommittedOffset>> {
    let what = format!("ListConsumerGroupOffsets for group '{group}'");
    let c_group = to_cstring(group, "group id")?;

    // SAFETY: `c_group` is a valid NUL-terminated string; a NULL partition list
    // means "all partitions". The request object copies its inputs.
    let request = Owned::new(
        unsafe { rd::rd_kafka_ListConsumerGroupOffsets_new(c_group.as_ptr(), ptr::null()) },
        rd::rd_kafka_ListConsumerGroupOffsets_destroy,
        "ListConsumerGroupOffsets request",
    )?;

    let event = run_admin(
        client,
        &what,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
        rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
        timeout,
        |options| {
            // SAFETY: `options` is a live AdminOptions created for this API.
            let err = unsafe { rd::rd_kafka_AdminOptions_set_require_stable_offsets(options, 0) };
            take_error(err).map_or(Ok(()), |e| {
                Err(anyhow!("setting require_stable_offsets: {e}"))
            })
        },
        |rk, options, queue| {
            let mut requests = [request.ptr];
            // SAFETY: all handles are live; the array holds exactly one request
            // as the API requires; librdkafka copies the request.
            unsafe {
                rd::rd_kafka_ListConsumerGroupOffsets(rk, requests.as_mut_ptr(), 1, options, queue)
            };
        },
    )?;

    // SAFETY: the event has type LISTCONSUMERGROUPOFFSETS_RESULT (checked by
    // `run_admin`) and outlives every pointer derived from it below.
    let result = unsafe { rd::rd_kafka_event_ListConsumerGroupOffsets_result(event.ptr) };
    if result.is_null() {
        bail!("{what}: result event carried no result");
    }
    let mut count = 0usize;
    // SAFETY: `result` is non-null and valid while `event` lives.
    let groups = unsafe { rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count) };
    // SAFETY: librdkafka returns an array of `count` group results.
    let groups = unsafe { raw_slice(groups.cast_const(), count) };

    let mut offsets = Vec::new();
    let mut errors = PartitionErrors::default();
    for &group_result in groups {
        // SAFETY: element of the result array, valid while `event` lives.
        let (name, partitions) = unsafe { group_result_parts(group_result, &what, false)? };
        if name != group {
            bail!("{what}: broker answered for unexpected group '{name}'");
        }
        for tp in partitions {
            // SAFETY: `tp` points into a partition list owned by `event`.
            let entry = unsafe { read_partition(tp) };
            if entry.err != 0 {
                errors.push(&entry);
            } else if entry.offset >= 0 {
                offsets.push(CommittedOffset {
                    topic: entry.topic,
                    partition: entry.partition,
                    offset: entry.offset,
                    metadata: entry.metadata,
                });
            }
        }
    }
    errors.into_result(&what, "")?;
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(offsets)
}

/// Describes consumer groups (state, members with their hosts and assignments)
/// in a single `DescribeConsumerGroups` request. Duplicate names are described
/// once; results are returned in input order. Per-group errors are reported in
/// [`GroupDescription::error`], not as an `Err`.
pub fn describe_groups<C: ClientContext>(
    client: &Client<C>,
    groups: &[&str],
    timeout: Duration,
) -> Result<Vec<GroupDescription>> {
    let mut seen = HashSet::new();
    let unique: Vec<&str> = groups.iter().copied().filter(|g| seen.insert(*g)).collect();
    if unique.is_empty() {
        return Ok(Vec::new());
    }
    let what = format!("DescribeConsumerGroups for {unique:?}");
    let c_groups = unique
        .iter()
        .map(|g| to_cstring(g, "group id"))
        .collect::<Result<Vec<_>>>()?;

    let event = run_admin(
        client,
        &what,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
        rd::RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
        timeout,
        |_| Ok(()),
        |rk, options, queue| {
            let mut names: Vec<*const c_char> = c_groups.iter().map(|g| g.as_ptr()).collect();
            // SAFETY: `names` holds `names.len()` valid C strings that outlive
            // the call; librdkafka copies them.
            unsafe {
                rd::rd_kafka_DescribeConsumerGroups(
                    rk,
                    names.as_mut_ptr(),
                    names.len(),
                    options,
                    queue,
                )
            };
        },
    )?;

    // SAFETY: event type checked by `run_admin`; `event` outlives all derived
    // pointers in this function.
    let result = unsafe { rd::rd_kafka_event_DescribeConsumerGroups_result(event.ptr) };
    if result.is_null() {
        bail!("{what}: result event carried no result");
    }
    let mut count = 0usize;
    // SAFETY: `result` is non-null and valid while `event` lives.
    let descs = unsafe { rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count) };
    // SAFETY: librdkafka returns an array of `count` descriptions.
    let descs = unsafe { raw_slice(descs.cast_const(), count) };

    let mut out = Vec::with_capacity(descs.len());
    for &desc in descs {
        if desc.is_null() {
            continue;
        }
        // SAFETY: `desc` is a non-null description owned by `event`; all
        // accessors return data owned by it (or NULL, handled by the helpers).
        let description = unsafe {
            let group = cstr_to_string(rd::rd_kafka_ConsumerGroupDescription_group_id(desc));
            let error = error_of(
                rd::rd_kafka_ConsumerGroupDescription_error(desc),
                &format!("DescribeConsumerGroups for group '{group}'"),
            );
            let state = cstr_to_string(rd::rd_kafka_consumer_group_state_name(
                rd::rd_kafka_ConsumerGroupDescription_state(desc),
            ));
            let member_count = rd::rd_kafka_ConsumerGroupDescription_member_count(desc);
            let mut members = Vec::with_capacity(member_count);
            for i in 0..member_count {
                let member = rd::rd_kafka_ConsumerGroupDescription_member(desc, i);
                if member.is_null() {
                    continue;
                }
                let assignment = rd::rd_kafka_MemberDescription_assignment(member);
                let partitions = if assignment.is_null() {
                    ptr::null()
                } else {
                    rd::rd_kafka_MemberAssignment_partitions(assignment)
                };
                members.push(GroupMember {
                    client_id: cstr_to_string(rd::rd_kafka_MemberDescription_client_id(member)),
                    host: cstr_to_string(rd::rd_kafka_MemberDescription_host(member)),
                    assignment: partition_ptrs(partitions)
                        .into_iter()
                        .map(|tp| (cstr_to_string((*tp).topic), (*tp).partition))
                        .collect(),
                });
            }
            GroupDescription {
                group,
                state,
                members,
                error,
            }
        };
        out.push(description);
    }
    out.sort_by_key(|d| {
        unique
            .iter()
            .position(|g| *g == d.group)
            .unwrap_or(usize::MAX)
    });
    Ok(out)
}

/// Commits `(topic, partition, offset)` for `group` without joining it, using
/// `AlterConsumerGroupOffsets`.
///
/// The broker only accepts this while the group has no active members; if it
/// has, the error says "group has active members" and keeps the broker's
/// error name (`UNKNOWN_MEMBER_ID` on Kafka 4.x, for both classic and KIP-848
/// consumer groups). Any per-partition error makes the call fail, naming the
/// partitions. Partitions not listed keep their committed offsets; commit
/// metadata of the listed partitions is reset to empty. Empty input is a no-op.
pub fn alter_group_offsets<C: ClientContext>(
    client: &Client<C>,
    group: &str,
    offsets: &[(String, i32, i64)],
    timeout: Duration,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let what = format!(
        "AlterConsumerGroupOffsets for group '{group}' ({} partition(s))",
        offsets.len()
    );
    let mut seen = HashSet::new();
    for (topic, partition, offset) in offsets {
        if *partition < 0 || *offset < 0 {
            bail!(
                "{what}: invalid entry {topic}[{partition}] = {offset} (partition and offset must be >= 0)"
            );
        }
        if !seen.insert((topic.as_str(), *partition)) {
            bail!("{what}: partition {topic}[{partition}] listed more than once");
        }
    }
    let c_group = to_cstring(group, "group id")?;
    let tpl = build_partition_list(offsets.iter().map(|(t, p, o)| (t.as_str(), *p, *o)))
        .with_context(|| what.clone())?;
    // SAFETY: `c_group` and `tpl` are valid; the request copies both.
    let request = Owned::new(
        unsafe { rd::rd_kafka_AlterConsumerGroupOffsets_new(c_group.as_ptr(), tpl.ptr) },
        rd::rd_kafka_AlterConsumerGroupOffsets_destroy,
        "AlterConsumerGroupOffsets request",
    )?;

    let event = run_admin(
        client,
        &what,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS,
        rd::RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT,
        timeout,
        |_| Ok(()),
        |rk, options, queue| {
            let mut requests = [request.ptr];
            // SAFETY: all handles are live; exactly one request as required;
            // librdkafka copies it.
            unsafe {
                rd::rd_kafka_AlterConsumerGroupOffsets(rk, requests.as_mut_ptr(), 1, options, queue)
            };
        },
    )?;

    // SAFETY: event type checked by `run_admin`; `event` outlives all derived
    // pointers in this function.
    let result = unsafe { rd::rd_kafka_event_AlterConsumerGroupOffsets_result(event.ptr) };
    if result.is_null() {
        bail!("{what}: result event carried no result");
    }
    let mut count = 0usize;
    // SAFETY: `result` is non-null and valid while `event` lives.
    let groups =
        unsafe { rd::rd_kafka_AlterConsumerGroupOffsets_result_groups(result, &mut count) };
    // SAFETY: librdkafka returns an array of `count` group results.
    let groups = unsafe { raw_slice(groups.cast_const(), count) };
    if groups.is_empty() {
        bail!("{what}: broker returned no group result");
    }

    let mut errors = PartitionErrors::default();
    for &group_result in groups {
        // SAFETY: element of the result array, valid while `event` lives.
        let (_, partitions) = unsafe { group_result_parts(group_result, &what, true)? };
        for tp in partitions {
            // SAFETY: `tp` points into a partition list owned by `event`.
            let entry = unsafe { read_partition(tp) };
            if entry.err != 0 {
                errors.push(&entry);
            }
        }
    }
    let hint = if errors.codes.iter().any(|c| is_active_member_error(*c)) {
        ACTIVE_MEMBERS_HINT
    } else {
        ""
    };
    errors.into_result(&what, hint)
}

/// Returns the group name and partition pointers of a group result, or an
/// error if the group itself failed.
///
/// # Safety
/// `group_result` must be null or a valid group result; the returned pointers
/// live as long as the owning event.
unsafe fn group_result_parts(
    group_result: *const rd::rd_kafka_group_result_t,
    what: &str,
    altering: bool,
) -> Result<(String, Vec<*const rd::rd_kafka_topic_partition_t>)> {
    if group_result.is_null() {
        bail!("{what}: NULL group result");
    }
    // SAFETY: `group_result` is non-null and valid per the caller.
    unsafe {
        let name = cstr_to_string(rd::rd_kafka_group_result_name(group_result));
        let error = rd::rd_kafka_group_result_error(group_result);
        if !error.is_null() {
            let code = Code(raw::error_code(error));
            let hint = if altering && is_active_member_error(code) {
                ACTIVE_MEMBERS_HINT
            } else {
                ""
            };
            let message = cstr_to_string(rd::rd_kafka_error_string(error));
            return Err(KafkaError::with_message(
                code,
                what,
                format!("group '{name}'{hint}: {}: {message}", code.name()),
            )
            .into());
        }
        let partitions = partition_ptrs(rd::rd_kafka_group_result_partitions(group_result));
        Ok((name, partitions))
    }
}

/// The codes a broker refuses AlterConsumerGroupOffsets with when the group has members:
/// `UNKNOWN_MEMBER_ID` on Kafka 4.x, the others on older brokers and for KIP-848 groups.
fn is_active_member_error(code: Code) -> bool {
    matches!(
        code,
        Code::UNKNOWN_MEMBER_ID
            | Code::ILLEGAL_GENERATION
            | Code::REBALANCE_IN_PROGRESS
            | Code::STALE_MEMBER_EPOCH
            | Code::FENCED_MEMBER_EPOCH
    )
}
