//! `kmigrate plan`: read both clusters, compute the plan, print it. Changes nothing on
//! either cluster; writes only `--out` and the log file.

use anyhow::Context as _;

use crate::cli::{Format, PlanArgs};
use crate::config::Config;
use crate::error::Outcome;
use crate::plan::{Plan, compute, gather, render};
use crate::{fsutil, report};

pub fn execute(cfg: &Config, args: &PlanArgs) -> anyhow::Result<Outcome> {
    let plan = make(cfg)?;
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
    log(cfg, "plan", &text);
    Ok(if plan.problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::ProblemsFound
    })
}

/// Reads both clusters and computes a fresh plan.
pub fn make(cfg: &Config) -> anyhow::Result<Plan> {
    let snap = gather::gather(cfg)?;
    Ok(compute::compute(
        &snap,
        &cfg.filter,
        cfg.migration.uncommitted_partitions,
        cfg.migration.create_topics,
        &cfg.source.bootstrap_servers,
        &cfg.target.bootstrap_servers,
        now_ms(),
    ))
}

/// Appends a command's report to the text log, as the reference tool did. A log that cannot
/// be written is a warning, not a reason to stop a migration.
pub fn log(cfg: &Config, command: &str, text: &str) {
    let header = format!(
        "==== kmigrate {command} at {} ====\n",
        report::time_ms(now_ms())
    );
    if let Err(e) = fsutil::append(&cfg.migration.log_file, &format!("{header}{text}\n")) {
        tracing::warn!("{e:#}");
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
