//! What `run`, `verify` and `status` share about a plan run by several workers
//! (`--shard INDEX/COUNT`): where the shards' state files are, the lock that keeps two
//! workers off one shard, and the refusal to mix splits of different sizes.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::error::usage;
use crate::fsutil::{self, Lock};
use crate::model::Shard;

/// The lock file beside a state file: held by the worker that runs it.
pub fn lock_path(state_path: &Path) -> PathBuf {
    let mut name = state_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `state_path` for the whole command; refused (exit 2) when another
/// process holds it, naming that process.
pub fn lock(state_path: &Path, what: &str) -> anyhow::Result<Lock> {
    let path = lock_path(state_path);
    match fsutil::lock_exclusive(&path)? {
        Ok(lock) => Ok(lock),
        Err(pid) => Err(usage(format!(
            "{what} is being run by another kmigrate (pid {}, lock {}): two workers on one \
             shard would copy its records twice. Give each worker its own shard index, or wait \
             for the other one to end.",
            pid.map_or("unknown".to_string(), |p| p.to_string()),
            path.display()
        ))),
    }
}

/// The shards' state files beside the migration's `state_file`, sorted by (count, index).
pub fn find(state_file: &Path) -> anyhow::Result<Vec<(Shard, PathBuf)>> {
    let dir = match state_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = state_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
    else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("listing {} for shard state files", dir.display()));
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if let Some(shard) = Shard::of_file_name(&entry.file_name().to_string_lossy(), &name) {
            out.push((shard, dir.join(entry.file_name())));
        }
    }
    out.sort_by_key(|(s, _)| (s.count, s.index));
    Ok(out)
}

/// A worker of a split into `shard.count` refuses to start beside state files of a split
/// into another count: their shares differ, so both would copy some partitions.
pub fn check_count(state_file: &Path, shard: Shard) -> anyhow::Result<()> {
    let other: Vec<String> = find(state_file)?
        .into_iter()
        .filter(|(s, _)| s.count != shard.count)
        .map(|(_, p)| p.display().to_string())
        .collect();
    if other.is_empty() {
        return Ok(());
    }
    Err(usage(format!(
        "this worker is shard {shard}, but state files of a split into another number of \
         shards exist: {}. A started migration keeps its number of shards: run it with the \
         COUNT those files name (or finish it), or move them away to start over on an empty \
         target.",
        other.join(", ")
    )))
}

/// The shards' state files of one split, complete: every index of the count they name.
/// `None` when there are none; an error when they name several counts or one is missing.
pub fn complete_split(state_file: &Path) -> anyhow::Result<Option<Vec<(Shard, PathBuf)>>> {
    let found = find(state_file)?;
    let Some((first, _)) = found.first() else {
        return Ok(None);
    };
    let count = first.count;
    if found.iter().any(|(s, _)| s.count != count) {
        let names: Vec<String> = found.iter().map(|(_, p)| p.display().to_string()).collect();
        return Err(usage(format!(
            "state files of splits into different numbers of shards: {}. Keep those of the \
             split that ran, and move the others away.",
            names.join(", ")
        )));
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !found.iter().any(|(s, _)| s.index == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(usage(format!(
            "shard(s) {} have no state file beside {}: run those workers \
             (`kmigrate run --plan FILE --shard INDEX/{count}`), or name one shard with --shard",
            missing.join(", "),
            state_file.display()
        )));
    }
    Ok(Some(found))
}
