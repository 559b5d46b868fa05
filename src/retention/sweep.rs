//! Deleting old files from one spool folder (`done/`, `rejected/`,
//! `outbox/<dataset>/delivered/`).
//!
//! A file's age is counted from the later of its mtime and ctime: a move
//! into the folder (a rename) sets the ctime, so an original whose producer
//! wrote it weeks before it was dropped is not taken for old the moment it
//! is done. Dot-files (temporary names being written) and folders are
//! never touched.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub files: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for Swept {
    fn add_assign(&mut self, o: Swept) {
        self.files += o.files;
        self.bytes += o.bytes;
    }
}

/// Deletes the regular files in `dir` last changed more than `keep` before
/// `now`. A missing folder is empty; a file that cannot be deleted is
/// logged and left (the next pass tries again).
pub fn sweep(dir: &Path, keep: Duration, now: SystemTime) -> Swept {
    let mut out = Swept::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let keep_secs = keep.as_secs() as i64;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let changed = meta.mtime().max(meta.ctime());
        if now_secs - changed <= keep_secs {
            continue;
        }
        match std::fs::remove_file(e.path()) {
            Ok(()) => {
                out.files += 1;
                out.bytes += meta.len();
            }
            Err(err) => {
                tracing::warn!(file = %e.path().display(), error = %err, "retention could not delete an old file; trying again at the next pass")
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_regular_files_go() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.csv"), b"12345").unwrap();
        std::fs::write(d.path().join(".a.csv.tmp"), b"x").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let now = SystemTime::now();
        // Young: kept.
        assert_eq!(
            sweep(d.path(), Duration::from_secs(60), now),
            Swept::default()
        );
        // Seen from an hour later: the file goes, the dot-file and folder stay.
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            sweep(d.path(), Duration::from_secs(60), later),
            Swept { files: 1, bytes: 5 }
        );
        assert!(d.path().join(".a.csv.tmp").exists() && d.path().join("sub").is_dir());
        assert_eq!(
            sweep(&d.path().join("missing"), Duration::ZERO, later),
            Swept::default()
        );
    }
}
