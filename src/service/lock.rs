//! One daemon per state directory: an exclusive lock on `STATE_DIR/newswatch.lock`, held for the
//! life of the process and released by the kernel when it exits, however it exits.
//! The file holds the holder's PID so the refusal can name it; the file is never deleted
//! (deleting a lock file lets two processes lock two different inodes).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "newswatch.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another newswatch{} is already running on state directory {}; stop it first, or give this one another state_dir",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        .dir.display()
    )]
    AlreadyRunning { dir: PathBuf, pid: Option<u32> },
    #[error("state_dir {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The IO error is the `source`, not also part of the message: callers print error chains
    /// (`{:#}`), which said it twice, and `storage_hint` finds its kind there.
    #[error("cannot lock {}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Proof that this process owns the state directory; dropping it releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock without waiting, creating the state directory and lock file if needed.
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock, LockError> {
        let path = state_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // `/dev/null` or a regular file: say so, rather than "File exists" from the mkdir.
        if state_dir.exists() && !state_dir.is_dir() {
            return Err(LockError::NotADirectory(state_dir.to_path_buf()));
        }
        // The lock is taken before the store opens the database, so it may be the one to create
        // the state directory: private (0700) as the store would make it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(io)?;
        // Not truncating on open: until we hold the lock, the PID inside belongs to the holder.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::AlreadyRunning {
                    dir: state_dir.to_path_buf(),
                    pid: read_pid(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(InstanceLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16 item 13: `state_dir = "/dev/null"` (or any file) is refused once, clearly: not
    /// "cannot lock …: File exists (os error 17): File exists (os error 17)".
    #[test]
    fn a_state_dir_that_is_a_file_is_refused_once_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").expect("write");
        for state_dir in [Path::new("/dev/null"), file.as_path()] {
            let err = InstanceLock::acquire(state_dir).expect_err("a file is no state dir");
            let shown = format!("{:#}", anyhow::Error::from(err));
            assert_eq!(
                shown,
                format!("state_dir {} is not a directory", state_dir.display())
            );
        }
        // Below a file: the IO error once, not again as its source.
        let err = InstanceLock::acquire(&file.join("sub")).expect_err("below a file");
        let shown = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(shown.matches("os error").count(), 1, "{shown}");
    }

    #[test]
    fn a_second_lock_is_refused_naming_dir_and_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let first = InstanceLock::acquire(&state).expect("first lock");
        assert_eq!(first.path(), state.join(LOCK_FILE));
        let pid = std::process::id();
        assert_eq!(
            std::fs::read_to_string(first.path()).expect("read"),
            format!("{pid}\n")
        );

        let err = InstanceLock::acquire(&state).expect_err("second lock must fail");
        assert!(
            matches!(&err, LockError::AlreadyRunning { pid: Some(p), .. } if *p == pid),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&state.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("(pid {pid})")), "{msg}");

        // The refused attempt must not have wiped the holder's PID.
        assert_eq!(
            std::fs::read_to_string(first.path()).expect("read"),
            format!("{pid}\n")
        );

        drop(first);
        InstanceLock::acquire(&state).expect("free again after drop");
    }

    #[test]
    fn a_state_dir_created_by_the_lock_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("new/state");
        let _lock = InstanceLock::acquire(&state).expect("lock");
        let mode = std::fs::metadata(&state)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    #[test]
    fn different_state_dirs_do_not_conflict() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _a = InstanceLock::acquire(&dir.path().join("a")).expect("a");
        let _b = InstanceLock::acquire(&dir.path().join("b")).expect("b");
    }

    #[test]
    fn a_stale_pid_from_a_dead_holder_does_not_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(LOCK_FILE), "999999\n").expect("write");
        let lock = InstanceLock::acquire(dir.path()).expect("lock");
        assert_eq!(
            std::fs::read_to_string(lock.path()).expect("read"),
            format!("{}\n", std::process::id())
        );
    }
}
