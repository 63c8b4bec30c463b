//! Advisory locks on output folders: two runs writing into one folder would interleave
//! checkpoints and results, so the second is refused with a message naming the folder.
//!
//! The lock is an exclusive `flock` on `<dir>/.maple.lock` (std's `File::try_lock`),
//! released when the [`FolderLock`] is dropped or the process dies (also on `kill -9`),
//! so a crashed run never leaves a folder locked. While the lock is held, temporary files
//! of interrupted atomic writes in the folder can only be debris, and are removed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{io, Result, TrainerError};

/// File name of the lock file inside a locked folder.
pub const LOCK_FILE: &str = ".maple.lock";

/// An exclusive lock on a folder, held until dropped.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    dir: PathBuf,
}

impl FolderLock {
    /// Locks `dir` (created when missing) and removes stale temporary files in it.
    ///
    /// # Errors
    /// [`TrainerError::Locked`] when another live process holds the lock; I/O errors.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(TrainerError::Locked {
                    dir: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let removed = clip_model::atomic::remove_stale_temporaries(dir);
        if removed > 0 {
            log::info!(
                "removed {removed} temporary file(s) of an interrupted write in {}",
                dir.display()
            );
        }
        Ok(FolderLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// Whether another live process holds the lock of `dir` (false when there is none).
    pub fn is_held_elsewhere(dir: &Path) -> bool {
        let Ok(file) = OpenOptions::new().write(true).open(dir.join(LOCK_FILE)) else {
            return false;
        };
        matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(tmp.path()).unwrap();
        let err = FolderLock::acquire(tmp.path()).unwrap_err();
        assert!(matches!(err, TrainerError::Locked { .. }), "{err}");
        assert!(err.to_string().contains(&tmp.path().display().to_string()));
        assert!(FolderLock::is_held_elsewhere(tmp.path()));
        drop(first);
        assert!(!FolderLock::is_held_elsewhere(tmp.path()));
        FolderLock::acquire(tmp.path()).unwrap();
    }
}
