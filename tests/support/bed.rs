//! One topic on the test bed's own source and target: [`exact`]'s setup and checks with the
//! two clusters filled in, for the fault tests of both test binaries.

use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::exact::{self, Commits};
use super::{Cluster, unique};

/// Whether a topic exists on a cluster (with partitions).
pub fn exists(c: &Cluster, topic: &str) -> bool {
    let client: BaseConsumer = c.config().create().expect("metadata client");
    let md = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
}

/// A topic of `parts` partitions of `per` records on the source, the same topic empty on
/// the target, and groups with the given commits. Returns the topic name.
pub fn setup(prefix: &str, parts: i32, per: usize, groups: &Commits) -> String {
    let topic = unique(prefix);
    let (src, tgt) = (Cluster::source(), Cluster::target());
    exact::setup((&src, &tgt), &topic, parts, per, groups, |c| {
        c.create_topic(&topic, parts, &[])
    });
    topic
}

pub fn cleanup(topic: &str) {
    Cluster::source().delete_topic(topic);
    Cluster::target().delete_topic(topic);
}

/// The copy is exact and every group resumes exactly (see [`exact::assert_exact`]).
pub fn assert_exact(dir: &Path, topic: &str, per: usize, groups: &Commits) {
    let (src, tgt) = (Cluster::source(), Cluster::target());
    exact::assert_exact((&src, &tgt), dir, topic, per, groups);
}
