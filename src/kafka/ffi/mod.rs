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

mod call;
mod cluster;
mod groups;
mod offsets;
mod partitions;
pub(super) mod raw;
mod text;

pub use cluster::{broker_metadata, queued_events};
pub use groups::{
    CommittedOffset, GroupDescription, GroupMember, alter_group_offsets, describe_groups,
    list_group_offsets,
};
pub use offsets::{OffsetSpec, list_offsets};
pub(super) use text::{cstr_to_string, describe_err, take_error, to_cstring};
