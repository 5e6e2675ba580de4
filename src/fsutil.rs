//! Files kmigrate writes: atomically (a reader never sees half a file, a crash leaves the
//! previous version) and readable by the owner only (they may name hosts and groups).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use tempfile::NamedTempFile;

/// Replaces `path` with `bytes`: write a temporary file beside it (same file system, mode
/// 0600), fsync, rename, fsync the directory. On any error the previous content is intact
/// and the temporary file is gone.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let (dir, name) = dir_and_name(path)?;
    let mut tmp = private_temp(dir, &name)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("flushing {} to disk", tmp.path().display()))?;
    let tmp_path = tmp.path().to_path_buf();
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming {} to {}", tmp_path.display(), path.display()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Checks that `path` can be replaced by [`write_atomic`]: a file can be created beside it
/// (and is removed again). Nothing else is changed.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    let (dir, name) = dir_and_name(path)?;
    let probe = private_temp(dir, &name)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let probe_path = probe.path().to_path_buf();
    probe
        .close()
        .with_context(|| format!("removing {}", probe_path.display()))
}

/// `path`'s directory and file name.
fn dir_and_name(path: &Path) -> anyhow::Result<(&Path, String)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// A new hidden file in `dir`, named after `name`, readable by the owner only; removed
/// when dropped unless persisted.
fn private_temp(dir: &Path, name: &str) -> std::io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
}

/// Appends text to a log file created readable by the owner only.
pub fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening the log file {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing the log file {}", path.display()))
}

/// An exclusive lock on a file (`File::try_lock`, which is `flock` on Linux), held until
/// dropped or the process ends, however it ends (the kernel releases it on SIGKILL too, so a
/// stale lock never needs cleaning up). The file holds the holder's pid, for the message of
/// whoever finds it taken.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the lock at `path` (creating the file) without waiting. `Ok(Err(pid))`: another
/// process holds it; `pid` is the one it wrote, when readable.
pub fn lock_exclusive(path: &Path) -> anyhow::Result<Result<Lock, Option<u32>>> {
    use std::io::{Read as _, Seek as _};
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            return Ok(Err(text.trim().parse().ok()));
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    let mut write_pid = || -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        f.flush()
    };
    write_pid().with_context(|| format!("writing the lock file {}", path.display()))?;
    Ok(Ok(Lock { _file: f }))
}

/// Whether a process holds the lock at `path` now: `Some(pid)` (the pid it wrote, if
/// readable), `None` when free or absent. Reading only; the probe holds a shared lock for
/// an instant (closing the file releases it).
pub fn lock_holder(path: &Path) -> anyhow::Result<Option<Option<u32>>> {
    use std::io::Read as _;
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    match f.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            Ok(Some(text.trim().parse().ok()))
        }
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("probing the lock {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("kmigrate-fsutil-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn atomic_write_replaces_and_is_private() {
        let d = tmpdir("atomic");
        let p = d.join("state.json");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(&d).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn failed_write_keeps_previous_content() {
        let d = tmpdir("fail");
        // A directory where the file should go: the rename fails after the temporary
        // file was written.
        let p = d.join("state.json");
        fs::create_dir(&p).expect("blocker");
        fs::write(p.join("inside"), b"good").expect("write");
        assert!(write_atomic(&p, b"bad").is_err());
        assert_eq!(fs::read(p.join("inside")).expect("read"), b"good");
        let left: Vec<_> = fs::read_dir(&d).expect("ls").collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        // A file where the directory should be: nothing can be created.
        let e = write_atomic(&p.join("inside").join("x.json"), b"bad").expect_err("not a dir");
        assert!(
            format!("{e:#}").contains("creating a temporary file"),
            "{e:#}"
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_state_file_written_before_is_replaced() {
        // Files written by the former writer (or by hand) are replaced the same way.
        let d = tmpdir("former");
        let p = d.join("state.json");
        fs::write(&p, b"old").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomic(&p, b"new").expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"new");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn writable_check_leaves_nothing_and_refuses_a_file_as_directory() {
        let d = tmpdir("probe");
        check_writable(&d.join("state.json")).expect("writable");
        assert_eq!(fs::read_dir(&d).expect("ls").count(), 0, "nothing left");
        fs::write(d.join("file"), "x").expect("file");
        let e = check_writable(&d.join("file").join("state.json")).expect_err("not a dir");
        assert!(format!("{e:#}").contains("file"), "{e:#}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn append_log_is_private() {
        let d = tmpdir("append");
        let p = d.join("k.log");
        append(&p, "a\n").expect("append");
        append(&p, "b\n").expect("append");
        assert_eq!(fs::read_to_string(&p).expect("read"), "a\nb\n");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_lock_taken_with_flock_is_seen_taken() {
        // kmigrate took its locks with flock(2) before File::try_lock: a newer kmigrate
        // started beside an older one still running must find the lock taken.
        use std::os::fd::AsRawFd as _;
        let dir = tmpdir("flock");
        let path = dir.join("s.json.lock");
        fs::write(&path, "4242\n").expect("pid");
        let f = File::open(&path).expect("open");
        // SAFETY: flock on a descriptor this test owns; it changes no memory.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(rc, 0);
        assert_eq!(lock_exclusive(&path).expect("lock").err(), Some(Some(4242)));
        assert_eq!(lock_holder(&path).expect("probe"), Some(Some(4242)));
        drop(f);
        assert_eq!(lock_holder(&path).expect("probe"), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_lock_is_exclusive_names_its_holder_and_ends_with_its_holder() {
        let dir = tmpdir("lock");
        let path = dir.join("s.json.lock");
        assert_eq!(lock_holder(&path).expect("probe"), None);
        let held = lock_exclusive(&path).expect("lock").expect("free");
        let me = Some(std::process::id());
        assert_eq!(lock_exclusive(&path).expect("lock").err(), Some(me));
        assert_eq!(lock_holder(&path).expect("probe"), Some(me));
        drop(held);
        assert_eq!(lock_holder(&path).expect("probe"), None);
        assert!(lock_exclusive(&path).expect("lock").is_ok());
        let _ = fs::remove_dir_all(&dir);
    }
}
