//! `kmigrate plan`: read both clusters, compute the plan, print it. Changes nothing on
//! either cluster; writes only `--out` and the log file.

use anyhow::Context as _;

use crate::cli::{Format, PlanArgs};
use crate::config::Config;
use crate::error::Outcome;
use crate::migration::Clusters;
use crate::plan::render;
use crate::{fsutil, report};

pub fn execute(cfg: &Config, clusters: &Clusters, args: &PlanArgs) -> anyhow::Result<Outcome> {
    let plan = clusters.plan(cfg)?;
    let text = render::text(&plan, args.verbose);
    match args.format {
        Format::Table => report::print(&text),
        Format::Json => report::print(&render::json(&plan)?),
    }
    if let Some(out) = &args.out {
        fsutil::write_atomic(out, render::json(&plan)?.as_bytes())
            .with_context(|| format!("saving the plan to {}", out.display()))?;
        report::note(&format!(
            "plan saved to {}: run it with `kmigrate run --plan {}`",
            out.display(),
            out.display()
        ));
    }
    report::log(&cfg.migration.log_file, "plan", &text);
    Ok(if plan.problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::ProblemsFound
    })
}
