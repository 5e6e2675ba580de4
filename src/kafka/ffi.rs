//! Safe wrappers over librdkafka admin APIs that rust-rdkafka 0.39 does not expose.
//!
//! rust-rdkafka's `AdminClient` only covers topic/partition/config/record
//! administration. A backlog migration additionally needs to:
//!
//! * read *all* committed offsets of a consumer group without knowing its topics
//!   (`ListConsumerGroupOffsets` with a NULL partition list; a consumer's
//!   `committed_offsets` needs the partitions up front and a client per
//!   `group.id`),
//! * describe consumer groups (state, members, assignments) to make sure nobody
//!   is consuming while offsets are migrated (`DescribeConsumerGroups`),
//! * read earliest / high-watermark / last-stable offsets of many partitions in
//!   one batched request per leader, with an explicit isolation level
//!   (`ListOffsets`, librdkafka >= 2.3; `fetch_watermarks` is one round trip per
//!   partition and always read_uncommitted),
//! * commit offsets on behalf of a group without joining it
//!   (`AlterConsumerGroupOffsets`).
//!
//! These are all available in the statically linked librdkafka (2.12), so we call
//! them through `rdkafka::bindings` on the client's raw `rd_kafka_t` handle.
//!
//! Every call uses its own temporary result queue (`rd_kafka_queue_new`), so it
//! does not interfere with the polling thread of an `AdminClient` or with a
//! consumer's queues; it works with any rust-rdkafka client
//! (`AdminClient::inner()`, `Consumer::client()`, `Producer::client()`).
//!
//! All native objects are owned by RAII guards, so they are freed on every path
//! (success, error, timeout). Destroying the queue before a late result arrives
//! is safe: librdkafka reference-counts queues.
//!
//! Broker error codes are read as plain integers rather than through the
//! bindgen `rd_kafka_resp_err_t` Rust enum: librdkafka passes broker error codes
//! through unchanged, and a newer broker may send a code that is not a variant
//! of that enum, which would be undefined behaviour to materialise.
//!
//! Failures that carry a code (request-level, per group, per partition) are
//! returned as [`KafkaError`] inside the `anyhow` error, so that the admin layer
//! decides on the code (retry, refuse) and never on the text.

use std::collections::{BTreeSet, HashSet};
use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

use super::error::{Code, KafkaError, representative};

/// librdkafka rejects admin request timeouts above one hour.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// Extra time we wait on the result queue beyond the request timeout, so that
/// librdkafka's own timeout error (with its context) normally wins the race.
const POLL_GRACE: Duration = Duration::from_secs(2);

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

/// Same C symbols as in `rdkafka::bindings`, but with the `rd_kafka_resp_err_t`
/// parameters/results declared as `c_int` (the C ABI of the enum), so unknown
/// broker error codes never become invalid Rust enum values.
pub(super) mod raw {
    use std::ffi::{c_char, c_int};

    use rdkafka::bindings as rd;

    unsafe extern "C" {
        #[link_name = "rd_kafka_event_error"]
        pub fn event_error(rkev: *mut rd::rd_kafka_event_t) -> c_int;
        #[link_name = "rd_kafka_error_code"]
        pub fn error_code(error: *const rd::rd_kafka_error_t) -> c_int;
        #[link_name = "rd_kafka_err2name"]
        pub fn err2name(err: c_int) -> *const c_char;
        #[link_name = "rd_kafka_err2str"]
        pub fn err2str(err: c_int) -> *const c_char;
    }
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------

/// Owning guard for a librdkafka object with a C destructor.
struct Owned<T> {
    ptr: *mut T,
    free: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    fn new(ptr: *mut T, free: unsafe extern "C" fn(*mut T), what: &str) -> Result<Self> {
        if ptr.is_null() {
            bail!("librdkafka failed to allocate {what}");
        }
        Ok(Owned { ptr, free })
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` is non-null, exclusively owned by this guard and was
        // created by the librdkafka constructor matching `free`.
        unsafe { (self.free)(self.ptr) }
    }
}

/// Creates the options and a private result queue, submits the request via
/// `submit`, and waits for the result event of type `expected_event`. Returns
/// the event only if it carries no request-level error.
fn run_admin<C: ClientContext>(
    client: &Client<C>,
    what: &str,
    op: rd::rd_kafka_admin_op_t,
    expected_event: c_int,
    timeout: Duration,
    configure: impl FnOnce(*mut rd::rd_kafka_AdminOptions_t) -> Result<()>,
    submit: impl FnOnce(
        *mut rd::rd_kafka_t,
        *const rd::rd_kafka_AdminOptions_t,
        *mut rd::rd_kafka_queue_t,
    ),
) -> Result<Owned<rd::rd_kafka_event_t>> {
    let rk = client.native_ptr();
    if rk.is_null() {
        bail!("{what}: client has no native handle");
    }
    let timeout = timeout.clamp(Duration::from_millis(1), MAX_REQUEST_TIMEOUT);

    // SAFETY: `rk` is the live handle owned by `client`, which outlives this call.
    let options = Owned::new(
        unsafe { rd::rd_kafka_AdminOptions_new(rk, op) },
        rd::rd_kafka_AdminOptions_destroy,
        "admin options",
    )
    .with_context(|| what.to_owned())?;
    set_request_timeout(options.ptr, timeout).with_context(|| what.to_owned())?;
    configure(options.ptr).with_context(|| what.to_owned())?;

    // SAFETY: `rk` is live; the queue is destroyed by the guard.
    let queue = Owned::new(
        unsafe { rd::rd_kafka_queue_new(rk) },
        rd::rd_kafka_queue_destroy,
        "result queue",
    )
    .with_context(|| what.to_owned())?;

    submit(rk, options.ptr, queue.ptr);

    let wait = timeout + POLL_GRACE;
    let deadline = Instant::now() + wait;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(KafkaError::new(
                Code::TIMED_OUT,
                what,
                &format!("no result within {wait:?}"),
            )
            .into());
        }
        // SAFETY: `queue` is live.
        let event = unsafe { rd::rd_kafka_queue_poll(queue.ptr, duration_ms(remaining)) };
        if event.is_null() {
            continue;
        }
        let event = Owned::new(event, rd::rd_kafka_event_destroy, "event")?;
        // SAFETY: `event` is a live event.
        let kind = unsafe { rd::rd_kafka_event_type(event.ptr) };
        if kind != expected_event {
            // Nothing else is routed to this private queue; ignore defensively.
            continue;
        }
        // SAFETY: `event` is a live event.
        let code = unsafe { raw::event_error(event.ptr) };
        if code != 0 {
            // SAFETY: `event` is live; the string is owned by it (or static)
            // and copied before the event is dropped.
            let message = unsafe { cstr_to_string(rd::rd_kafka_event_error_string(event.ptr)) };
            return Err(KafkaError::new(Code(code), what, &message).into());
        }
        return Ok(event);
    }
}

fn set_request_timeout(options: *mut rd::rd_kafka_AdminOptions_t, timeout: Duration) -> Result<()> {
    let mut errstr = [0 as c_char; 512];
    // SAFETY: `options` is live; `errstr` is a writable buffer of the given size.
    let err = unsafe {
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            duration_ms(timeout),
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        // SAFETY: librdkafka NUL-terminates `errstr` on error; the buffer was
        // zero-initialised so it is terminated in any case.
        let message = unsafe { cstr_to_string(errstr.as_ptr()) };
        bail!("setting request timeout {timeout:?}: {message}");
    }
    Ok(())
}

/// Builds a partition list of `(topic, partition, offset)`.
fn build_partition_list<'a>(
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
struct PartitionErrors {
    codes: Vec<Code>,
    lines: Vec<String>,
}

impl PartitionErrors {
    fn push(&mut self, entry: &PartitionEntry) {
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
    fn into_result(self, what: &str, hint: &str) -> Result<()> {
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
struct PartitionEntry {
    topic: String,
    partition: i32,
    offset: i64,
    metadata: Option<String>,
    err: c_int,
}

/// # Safety
/// `tp` must be non-null and point to a valid `rd_kafka_topic_partition_t`.
unsafe fn read_partition(tp: *const rd::rd_kafka_topic_partition_t) -> PartitionEntry {
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

/// # Safety
/// `list` must be null or a valid partition list; the returned pointers are
/// valid as long as the list.
unsafe fn partition_ptrs(
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

/// # Safety
/// `ptr` must be null or point to `count` initialised elements that outlive `'a`.
unsafe fn raw_slice<'a, T>(ptr: *const T, count: usize) -> &'a [T] {
    if ptr.is_null() || count == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(ptr, count) }
    }
}

/// Takes ownership of a possibly-NULL `rd_kafka_error_t`, returning its text.
pub(super) fn take_error(error: *mut rd::rd_kafka_error_t) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: non-null error returned to us by librdkafka; we own it and
    // destroy it after copying its text.
    unsafe {
        let text = error_to_string(error);
        rd::rd_kafka_error_destroy(error);
        text
    }
}

/// A borrowed, possibly-NULL `rd_kafka_error_t` as a [`KafkaError`] of `step`.
///
/// # Safety
/// `error` must be null or a valid error object.
unsafe fn error_of(error: *const rd::rd_kafka_error_t, step: &str) -> Option<KafkaError> {
    if error.is_null() {
        return None;
    }
    // SAFETY: `error` is non-null and valid per the caller; the code is read as its C
    // representation, the text copied.
    unsafe {
        let code = Code(raw::error_code(error));
        let message = cstr_to_string(rd::rd_kafka_error_string(error));
        Some(KafkaError::new(code, step, &message))
    }
}

/// Formats a borrowed, possibly-NULL `rd_kafka_error_t` as `NAME: message`.
///
/// # Safety
/// `error` must be null or a valid error object.
unsafe fn error_to_string(error: *const rd::rd_kafka_error_t) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: `error` is non-null and valid per the caller.
    unsafe {
        let name = cstr_to_string(rd::rd_kafka_error_name(error));
        let message = cstr_to_string(rd::rd_kafka_error_string(error));
        Some(format!("{name}: {message}"))
    }
}

/// `NAME (description)` for an error code, e.g.
/// `UNKNOWN_MEMBER_ID (Broker: Unknown member)`.
pub(super) fn describe_err(code: c_int) -> String {
    // SAFETY: err2str accepts any int and returns a static string.
    let description = unsafe { cstr_to_string(raw::err2str(code)) };
    format!("{} ({description})", err_name(code))
}

/// librdkafka's name of a code: `NOT_COORDINATOR`, `_TRANSPORT`.
pub(super) fn err_name(code: c_int) -> String {
    // SAFETY: err2name accepts any int and returns a static or thread-local
    // string, copied immediately.
    unsafe { cstr_to_string(raw::err2name(code)) }
}

/// # Safety
/// `p` must be null or a valid NUL-terminated string.
pub(super) unsafe fn cstr_to_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated per the caller.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

pub(super) fn to_cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("{what} {s:?} contains a NUL byte"))
}

/// The first few items of a long list of per-partition errors, and how many more there are:
/// an error about thousands of partitions must stay readable.
fn summarize(items: &[String]) -> String {
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

/// A Metadata request for no topic (brokers and controller only): the cheapest request
/// that shows a connection is up and, with SASL or TLS, authenticated. Fails when no
/// broker answered within `timeout`.
pub fn broker_metadata<C: ClientContext>(client: &Client<C>, timeout: Duration) -> Result<()> {
    let rk = client.native_ptr();
    if rk.is_null() {
        bail!("reading cluster metadata: client has no native handle");
    }
    let mut md: *const rd::rd_kafka_metadata_t = ptr::null();
    // SAFETY: `rk` is the live handle owned by `client`; with all_topics = 0 and no
    // topic handle librdkafka asks for the topics it knows locally, none for our
    // admin clients, i.e. brokers only. `md` is set only on success and freed below.
    let err = unsafe {
        rd::rd_kafka_metadata(
            rk,
            0,
            ptr::null_mut(),
            &mut md,
            duration_ms(timeout.max(Duration::from_millis(1))),
        )
    };
    if !md.is_null() {
        // SAFETY: `md` was returned by rd_kafka_metadata and is freed exactly once.
        unsafe { rd::rd_kafka_metadata_destroy(md) };
    }
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(KafkaError::new(Code(err as i32), "reading cluster metadata", "").into());
    }
    Ok(())
}

/// How many events wait on the client's main queue (log lines, errors).
pub fn queued_events<C: ClientContext>(client: &Client<C>) -> usize {
    let rk = client.native_ptr();
    if rk.is_null() {
        return 0;
    }
    // SAFETY: `rk` is the live handle owned by `client`; the queue handle is a new
    // reference to its main queue, released right after reading its length.
    unsafe {
        let queue = rd::rd_kafka_queue_get_main(rk);
        if queue.is_null() {
            return 0;
        }
        let len = rd::rd_kafka_queue_length(queue);
        rd::rd_kafka_queue_destroy(queue);
        len
    }
}

fn duration_ms(d: Duration) -> c_int {
    c_int::try_from(d.as_millis()).unwrap_or(c_int::MAX)
}
