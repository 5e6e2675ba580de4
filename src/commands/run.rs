//! `kmigrate run`: execute a plan (a fresh one, `--plan FILE`, or the one an interrupted run
//! saved in the state file), copying every planned record and then reporting per topic
//! whether what is on the target matches what was planned.

use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::Outcome;
use crate::migration::Clusters;
use crate::migration::fixed::{self, Display};
use crate::migration::start::Fixed;

pub fn execute(cfg: &Config, clusters: Clusters, args: &RunArgs) -> anyhow::Result<Outcome> {
    let how = Fixed {
        plan: args.plan.clone(),
        yes: args.yes,
        replan: args.replan,
        allow_active_groups: args.allow_active_groups,
        shard: args.shard,
        pipelines: args.pipelines,
        force_offsets: args.force_offsets,
    };
    let display = Display {
        progress: args.progress,
        metrics: args.metrics.clone(),
        metrics_linger: args.metrics_linger,
    };
    fixed::execute(cfg, clusters, &how, &display)
}
