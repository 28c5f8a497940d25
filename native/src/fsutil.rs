//! File helpers: atomic writes that leave the previous file intact on any failure, a lock that
//! keeps two runs out of one folder, and reads that name the file in errors.

use anyhow::{Context, Result, anyhow, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

/// What to tell the user about a failed write, by cause.
fn write_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        ErrorKind::StorageFull => {
            "the disk is full: free some space or choose another output folder"
        }
        ErrorKind::QuotaExceeded => {
            "the disk quota is exhausted: free some space or choose another output folder"
        }
        ErrorKind::ReadOnlyFilesystem => {
            "the file system is read-only: choose another output folder"
        }
        ErrorKind::PermissionDenied => "no permission to write there: choose another output folder",
        ErrorKind::FileTooLarge => {
            "the file is larger than this process may write (see `ulimit -f`)"
        }
        _ => "check the output folder",
    }
}

/// Creates `dir` and its parents; the error says why it could not.
fn create_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow!("cannot create folder {}: {e} ({})", dir.display(), write_hint(&e)))
}

/// The temporary file [`write_atomic`] writes `path` through (hidden, in the same folder, named
/// after this process so that concurrent writers never share one).
fn temporary(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over the target, and the folder flushed. A write that fails (disk full,
/// read-only) or is interrupted (the process killed) leaves the previous file intact; a failed
/// write removes its temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_folder(dir)?;
    let tmp = temporary(path);
    let written = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        let kept = if path.exists() {
            format!("; the previous {} is intact", path.display())
        } else {
            String::new()
        };
        bail!("cannot write {}: {e} ({}){kept}", path.display(), write_hint(&e));
    }
    // The rename itself reaches the disk only with the folder (a crash could otherwise lose it).
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a whole file; a missing file is reported with its path.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Exclusive use of a run folder for as long as it lives (see [`lock_folder`]). The operating
/// system releases the lock when the process ends, however it ends, so a killed run never
/// leaves a stale lock behind.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// The name of the lock file in a run folder.
pub const LOCK_FILE: &str = ".lock";

/// Takes `dir` (created if missing) for this process: a second `saad` run pointed at the same
/// folder gets an error naming the process that holds it, instead of both overwriting each
/// other's checkpoints. Temporary files left by killed writers are removed once the lock is held.
pub fn lock_folder(dir: &Path) -> Result<FolderLock> {
    create_folder(dir)?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            anyhow!("cannot create the lock file {}: {e} ({})", path.display(), write_hint(&e))
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.split_whitespace().collect::<Vec<_>>().join(" ");
            let holder = if holder.is_empty() { "another process".to_string() } else { holder };
            bail!(
                "{} is in use by another saad run ({holder}); two runs in one folder would overwrite each other's checkpoints: wait for it to finish, stop it, or choose another --out",
                dir.display()
            );
        }
        Err(TryLockError::Error(e)) => bail!("cannot lock {}: {e}", path.display()),
    }
    let command: Vec<String> = std::env::args().collect();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let note = format!(
        "process {} started at unix time {started}: {}\n",
        std::process::id(),
        command.join(" ")
    );
    // The lock is held; what it says about its holder is informative only.
    let _ = file.set_len(0).and_then(|_| file.write_all(note.as_bytes()));
    remove_stale_temporaries(dir);
    Ok(FolderLock { _file: file, path })
}

/// Removes `.<name>.tmp-<pid>` files of [`write_atomic`] in `dir` whose writer is gone (on
/// Linux, where that can be checked; elsewhere they are left).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) =
            name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-")).map(|(_, pid)| pid)
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let alive = pid == std::process::id()
            || !Path::new("/proc/self").exists()
            || Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
