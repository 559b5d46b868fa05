//! Deleting old files from one spool folder (`done/`, `rejected/`,
//! `outbox/<dataset>/delivered/`).
//!
//! Files go in groups: a file with what was written beside it (its
//! receipt, report and 回执; a batch body with its `.ack`), named by the
//! folder's `owner` function. A group is as old as its youngest member and
//! is deleted whole, so no pass leaves a receipt without its file or an
//! `.ack` without its batch (only a crash between two unlinks can, and
//! `fepd doctor`'s `half_deleted` rule names what it left).
//!
//! A file's age is counted from the later of its mtime and ctime: a move
//! into the folder (a rename) sets the ctime, so an original whose producer
//! wrote it weeks before it was dropped is not taken for old the moment it
//! is done. Dot-files (temporary names being written) and folders are
//! never touched.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Names the group a file of a folder belongs to: the name of the file
/// it was written beside, or its own.
pub type Owner = fn(&str) -> &str;

/// `done/` and `rejected/`: a receipt or report belongs to its file.
pub fn spool_owner(name: &str) -> &str {
    crate::report::companion_of(name).unwrap_or(name)
}

/// `delivered/`: `{batchId}.json` and `{batchId}.ack` are the batch's.
pub fn delivered_owner(name: &str) -> &str {
    name.strip_suffix(".ack")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(name)
}

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

/// One group of files: the youngest member's change time, the members.
#[derive(Default)]
struct Group {
    changed: i64,
    members: Vec<(PathBuf, u64)>,
}

/// Deletes the groups of regular files in `dir` (`owner` names each
/// file's group) whose every member was last changed more than `keep`
/// before `now`. A missing folder is empty; a file that cannot be deleted
/// is logged and left (the next pass tries again).
pub fn sweep(dir: &Path, keep: Duration, now: SystemTime, owner: Owner) -> Swept {
    let mut out = Swept::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let keep_secs = keep.as_secs() as i64;
    let mut groups: HashMap<String, Group> = HashMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let g = groups.entry(owner(&name).to_string()).or_default();
        g.changed = g.changed.max(meta.mtime().max(meta.ctime()));
        g.members.push((e.path(), meta.len()));
    }
    for g in groups.into_values() {
        if now_secs - g.changed <= keep_secs {
            continue;
        }
        for (path, len) in g.members {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    out.files += 1;
                    out.bytes += len;
                }
                Err(err) => {
                    tracing::warn!(file = %path.display(), error = %err, "retention could not delete an old file; trying again at the next pass")
                }
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
            sweep(d.path(), Duration::from_secs(60), now, spool_owner),
            Swept::default()
        );
        // Seen from an hour later: the file goes, the dot-file and folder stay.
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            sweep(d.path(), Duration::from_secs(60), later, spool_owner),
            Swept { files: 1, bytes: 5 }
        );
        assert!(d.path().join(".a.csv.tmp").exists() && d.path().join("sub").is_dir());
        assert_eq!(
            sweep(
                &d.path().join("missing"),
                Duration::ZERO,
                later,
                spool_owner
            ),
            Swept::default()
        );
    }

    #[test]
    fn a_file_and_its_receipts_go_together_when_the_youngest_is_old() {
        let d = tempfile::tempdir().unwrap();
        for n in ["a.csv", "a.csv.receipt.json", "a.csv.回执.txt", "b.csv"] {
            std::fs::write(d.path().join(n), b"x").unwrap();
        }
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        // A library-refusal report written after the others.
        std::thread::sleep(Duration::from_millis(1100));
        let young = d.path().join("a.csv.library-rejected.errors.csv");
        std::fs::write(&young, b"x").unwrap();
        // Second resolution: the others changed at or before `now`'s
        // second, the young one at least a second after it.
        let later = now + hour + Duration::from_secs(1);
        // Seen just past the hour: b.csv goes; a.csv's group waits for its
        // youngest member, all four stay.
        assert_eq!(sweep(d.path(), hour, later, spool_owner).files, 1);
        assert!(d.path().join("a.csv").exists() && young.exists());
        let gone = sweep(d.path(), hour, later + Duration::from_secs(3), spool_owner);
        assert_eq!(gone.files, 4);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_delivered_batch_and_its_ack_are_one_group() {
        assert_eq!(delivered_owner("B1.ack"), "B1");
        assert_eq!(delivered_owner("B1.json"), "B1");
    }
}
