//! `fepd audit export` and `--prune`: retention without breaking the chain.
//!
//! The archive is JSON lines, one entry per line exactly as stored (with
//! its `hash`), oldest first: the longest prefix of the log whose times are
//! before the cut-off. Pruning deletes that prefix and appends a
//! `log_pruned` checkpoint carrying the pruned head `{seq, hash}`, so the
//! remaining entries still verify (the first chains from that head) and
//! `verify --archive` checks archive and log as one chain. The archive is
//! durable on disk before anything is deleted, and a broken chain is never
//! pruned (that would hide the damage).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use chrono::{DateTime, FixedOffset};
use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;

use sha2::{Digest, Sha256};

use super::{AuditError, Result, instant, io_err};
use crate::state::entries;
use crate::state::log::{self, Head, StoredEntry};

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub entries: i64,
    pub first_seq: Option<i64>,
    /// The last exported entry: the head a prune removes up to.
    pub head: Option<Head>,
    /// SHA-256 of the archive's bytes.
    pub sha256: String,
}

/// Writes the entries whose time is before `end` (the longest such prefix)
/// to `out` as JSON lines.
pub fn export(
    conn: &Connection,
    end: DateTime<FixedOffset>,
    out: &mut dyn Write,
) -> Result<Exported> {
    let mut sha = Sha256::new();
    let mut ex = Exported {
        entries: 0,
        first_seq: None,
        head: None,
        sha256: String::new(),
    };
    entries::each_row(conn, None, |r| -> Result<ControlFlow<()>> {
        let e = StoredEntry::from_row(r)?;
        if instant(&e.time).is_none_or(|t| t >= end) {
            return Ok(ControlFlow::Break(()));
        }
        let mut line = serde_json::to_vec(&e).expect("entries serialise");
        line.push(b'\n');
        sha.update(&line);
        out.write_all(&line)
            .map_err(io_err(std::path::Path::new("archive")))?;
        ex.entries += 1;
        ex.first_seq.get_or_insert(e.seq);
        ex.head = Some(Head {
            seq: e.seq,
            hash: e.hash,
        });
        Ok(ControlFlow::Continue(()))
    })?;
    ex.sha256 = hex::encode(sha.finalize());
    Ok(ex)
}

/// Exports into a new file `path`, durably (temp, fsync, rename, folder
/// fsync). An existing file is never overwritten.
pub fn export_to_file(
    conn: &Connection,
    end: DateTime<FixedOffset>,
    path: &Path,
) -> Result<Exported> {
    if path.exists() {
        return Err(AuditError::Usage(format!(
            "{} exists; archives are never overwritten",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| AuditError::Usage(format!("{} is not a file name", path.display())))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.tmp"));
    let ex = {
        let f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = std::io::BufWriter::new(f);
        let ex = export(conn, end, &mut w)?;
        let f = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        f.sync_all().map_err(io_err(&tmp))?;
        ex
    };
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    crate::fsio::sync_dir(&dir).map_err(io_err(&dir))?;
    Ok(ex)
}

/// How a prune ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Pruned {
    /// Entries up to `pruned.seq` deleted; `checkpoint` is the new entry.
    Done { pruned: Head, checkpoint: Head },
    /// Nothing was exported, so nothing is deleted.
    Nothing,
    /// The chain is broken: pruning would hide the damage.
    ChainBroken { seq: i64, message: String },
    /// The archived head changed in the log meanwhile; nothing deleted.
    Changed,
}

/// Deletes what `ex` archived and appends the checkpoint, in one
/// transaction. `archive` is the archive's file name, kept in the
/// checkpoint so auditors know where the pruned entries went; `by` is the
/// operator who pruned.
pub fn prune(
    conn: &mut Connection,
    tz: FixedOffset,
    ex: &Exported,
    archive: &str,
    until: &str,
    by: &str,
) -> Result<Pruned> {
    let Some(head) = &ex.head else {
        return Ok(Pruned::Nothing);
    };
    if let Err(b) = log::verify(conn)? {
        return Ok(Pruned::ChainBroken {
            seq: b.seq(),
            message: b.to_string(),
        });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let archived = log::Archived {
        archive,
        archive_sha256: &ex.sha256,
        until,
        by,
    };
    let Some(checkpoint) = log::prune_through(&tx, tz, head, archived)? else {
        return Ok(Pruned::Changed);
    };
    tx.commit()?;
    Ok(Pruned::Done {
        pruned: head.clone(),
        checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::log::{ConfigSummary, LogEntry, append};

    fn tz() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn later() -> DateTime<FixedOffset> {
        chrono::Utc::now().with_timezone(&tz()) + chrono::Duration::days(1)
    }

    fn entries(conn: &Connection, n: usize) {
        for _ in 0..n {
            let config = ConfigSummary {
                datasets: vec![],
                sink: "outbox",
            };
            append(conn, tz(), LogEntry::ConfigLoaded(config)).unwrap();
        }
    }

    #[test]
    fn prune_leaves_a_checkpoint_and_archive_plus_rest_verify() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::state::open(&dir.path().join("fepd.db")).unwrap();
        entries(&conn, 5);
        let a1 = dir.path().join("a1.jsonl");
        let ex = export_to_file(&conn, later(), &a1).unwrap();
        assert_eq!(ex.entries, 5);
        let p = prune(&mut conn, tz(), &ex, "a1.jsonl", "x", "ops").unwrap();
        assert!(
            matches!(&p, Pruned::Done { pruned, checkpoint } if pruned.seq == 5 && checkpoint.seq == 6),
            "{p:?}"
        );
        assert_eq!(log::verify(&conn).unwrap(), Ok(1));
        entries(&conn, 3);
        // A second prune archives the first checkpoint too.
        let a2 = dir.path().join("a2.jsonl");
        let ex = export_to_file(&conn, later(), &a2).unwrap();
        assert_eq!(ex.first_seq, Some(6));
        prune(&mut conn, tz(), &ex, "a2.jsonl", "x", "ops").unwrap();
        entries(&conn, 2);
        assert_eq!(log::verify(&conn).unwrap(), Ok(3));
        let v = super::super::verify::verify(&conn, &[a1.clone(), a2.clone()], None).unwrap();
        assert!(v.ok(), "{v:?}");
        assert_eq!(v.with_archives.as_ref().unwrap().entries, 5 + 4 + 3);
        // The later archive alone chains from the checkpoint it holds.
        let v = super::super::verify::verify(&conn, std::slice::from_ref(&a2), None).unwrap();
        assert!(v.ok(), "{v:?}");
        // An edited archive line breaks the combined chain.
        let text = std::fs::read_to_string(&a1)
            .unwrap()
            .replace("config_loaded", "daemon_started");
        std::fs::write(&a1, text).unwrap();
        let v = super::super::verify::verify(&conn, &[a1, a2], None).unwrap();
        assert_eq!(v.with_archives.unwrap().broken.unwrap().seq, 1);
    }

    #[test]
    fn a_broken_chain_is_never_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::state::open(&dir.path().join("fepd.db")).unwrap();
        entries(&conn, 4);
        crate::state::log::tamper::set_event(&conn, 2, "daemon_started");
        let ex = export(&conn, later(), &mut Vec::new()).unwrap();
        let p = prune(&mut conn, tz(), &ex, "a.jsonl", "x", "ops").unwrap();
        assert!(matches!(p, Pruned::ChainBroken { seq: 2, .. }), "{p:?}");
        assert_eq!(crate::state::log::head(&conn).unwrap().seq, 4);
    }
}
