//! Online backup of the state database (`fepd state backup --to FILE`).
//!
//! SQLite's backup API copies every page of the database inside one read
//! transaction, so the copy is one consistent snapshot: the outbox, the
//! checkpoints and the exchange log as they were at a single commit, even
//! while the daemon keeps writing. The copy is written beside its target
//! under a dot-name, checked, fsynced and renamed into place, so an older
//! backup of the same name stays whole until the new one is complete.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::StoreError;
use super::log::{self, Head};

/// What a finished backup holds.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub path: PathBuf,
    pub bytes: u64,
    /// The exchange log's last entry in the copy: a restore resumes here.
    pub head: Head,
    pub batches: i64,
}

/// Why a backup was not written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no state database at {0} (has fepd run with this config?)")]
    Missing(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the copy in {path} failed SQLite's integrity check: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

/// Copies the live database at `db` into `to` (replacing an older file of
/// that name only once the new copy is complete and checked).
pub fn backup(db: &Path, to: &Path) -> std::result::Result<Snapshot, BackupError> {
    if !db.exists() {
        return Err(BackupError::Missing(db.to_owned()));
    }
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "fepd-backup.db".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Store(StoreError::io(&path, source))
    };
    let _ = std::fs::remove_file(&tmp);
    let copied = copy(db, &tmp).and_then(|()| check(&tmp));
    let (head, batches) = match copied {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, to).map_err(io(to))?;
    crate::fsio::sync_dir(&dir).map_err(io(&dir))?;
    let bytes = std::fs::metadata(to).map_err(io(to))?.len();
    Ok(Snapshot {
        path: to.to_owned(),
        bytes,
        head,
        batches,
    })
}

/// One backup step over all pages: a single read transaction on the
/// source, hence a single consistent snapshot. A writer holding the lock
/// only delays it (WAL readers are not blocked by writers, but a
/// checkpoint may be).
fn copy(db: &Path, tmp: &Path) -> std::result::Result<(), BackupError> {
    let src = super::open_read_only(db)?;
    let mut dst = Connection::open(tmp).map_err(|source| StoreError::Open {
        path: tmp.display().to_string(),
        source,
    })?;
    let b = Backup::new(&src, &mut dst).map_err(StoreError::Sql)?;
    for _ in 0..2000 {
        match b.step(-1).map_err(StoreError::Sql)? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Err(StoreError::Sql(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some("the state database stayed locked for 10 s".into()),
    ))
    .into())
}

/// `PRAGMA quick_check` on the copy, and what it holds. The copy is left
/// in rollback-journal mode with nothing pending, so it is one
/// self-contained file; `state::open` turns WAL back on at restore.
fn check(tmp: &Path) -> std::result::Result<(Head, i64), BackupError> {
    let c = Connection::open(tmp).map_err(|source| StoreError::Open {
        path: tmp.display().to_string(),
        source,
    })?;
    let sql = |e| BackupError::Store(StoreError::Sql(e));
    c.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sql)?;
    let verdict: String = c
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(sql)?;
    if verdict != "ok" {
        return Err(BackupError::Corrupt {
            path: tmp.to_owned(),
            detail: verdict,
        });
    }
    let head = log::head(&c).map_err(sql)?;
    let batches = c
        .query_row("SELECT COUNT(*) FROM batch", [], |r| r.get(0))
        .map_err(sql)?;
    Ok((head, batches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_a_self_contained_copy_with_the_log_head() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("fepd.db");
        let conn = super::super::open(&db).unwrap();
        let live = log::head(&conn).unwrap();
        let to = d.path().join("b/backup.db");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let snap = backup(&db, &to).unwrap();
        assert_eq!(snap.head, live);
        assert!(snap.bytes > 0);
        // One file: no WAL beside it, and it opens as a state database.
        assert!(!d.path().join("b/backup.db-wal").exists());
        let names: Vec<_> = std::fs::read_dir(to.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["backup.db"]);
        drop(super::super::open(&to).unwrap());
    }

    #[test]
    fn a_missing_database_is_named() {
        let d = tempfile::tempdir().unwrap();
        let err = backup(&d.path().join("none.db"), &d.path().join("b.db")).unwrap_err();
        assert!(err.to_string().contains("none.db"), "{err}");
        assert!(!d.path().join("b.db").exists());
    }
}
