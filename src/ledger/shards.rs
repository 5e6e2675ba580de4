//! The state files of a plan run by several workers (`--shard INDEX/COUNT`) and the lock
//! beside every state file: where the shards' files are, the lock that keeps two processes
//! off one state file (two workers on one shard, or a `run` beside a `sync`), and the
//! refusal to mix splits of different sizes.

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

/// Another process holds the lock of a state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// The pid it wrote in the lock file, when readable.
    pub pid: Option<u32>,
    /// The lock file.
    pub path: PathBuf,
}

/// Takes the lock of `state_path` for the whole command without waiting; `Ok(Err(busy))`
/// when another process holds it (the caller says who and what to do).
pub fn lock(state_path: &Path) -> anyhow::Result<Result<Lock, Busy>> {
    let path = lock_path(state_path);
    Ok(fsutil::lock_exclusive(&path)?.map_err(|pid| Busy { pid, path }))
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
