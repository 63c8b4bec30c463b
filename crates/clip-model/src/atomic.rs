//! Atomic file writes, the one implementation every crate of the workspace uses for files a
//! user keeps (checkpoints, results, saved draws, exported weights).
//!
//! The bytes go to a temporary file in the destination folder (`.<name>.<random>.tmp`),
//! are flushed to disk, and the file is renamed over the destination: a reader sees the
//! old file or the new one, never a torn one, and a crash leaves at most a temporary file
//! that [`remove_stale_temporaries`] recognises.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (see the module docs), creating parent folders.
///
/// # Errors
/// The I/O error, with the path it concerns.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(|e| (dir.to_path_buf(), e))?;
    let tmp_path = tmp.path().to_path_buf();
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| (tmp_path.clone(), e))?;
    tmp.persist(path)
        .map_err(|e| (path.to_path_buf(), e.error))?;
    // Make the rename itself durable (best effort: not every platform can sync a folder).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Suffix of the temporary files [`write_atomic`] creates.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Whether `file_name` is a temporary file of [`write_atomic`].
pub fn is_temporary(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.ends_with(TEMP_SUFFIX) && file_name.len() > 5
}

/// Removes temporary files of [`write_atomic`] left in `dir` by a killed writer. Call it
/// only while holding the folder's lock, so that no live writer's file is removed.
/// Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temporary(&name)
            && entry.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
    }

    #[test]
    fn only_our_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".out.json.a1B2c3.tmp"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.tmp"), b"keep").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"keep").unwrap();
        assert_eq!(remove_stale_temporaries(dir.path()), 1);
        assert!(dir.path().join("notes.tmp").exists());
        assert!(dir.path().join(".hidden").exists());
    }
}
