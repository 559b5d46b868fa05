//! The file state machine, and the one place that changes a file's state.
//!
//! ```text
//! (inbox) ─claim─► claimed ─identify─► processing ─checkpoint…─► done | rejected
//!                     └─ same bytes as an earlier file ─────────► duplicate
//!  any state but a verdict ─ set aside by the breaker ──────────► rejected
//!  claimed, processing ─ another node took it over ─► taken_over ─ held again ─► processing
//! ```
//!
//! Each transition is a function taking the caller's transaction: it
//! changes the row through `state::files` and appends its exchange-log
//! entry in that same transaction (ARCHITECTURE.md, "Every outcome is an
//! exchange-log entry"). A file that changed after its claim gets the
//! verdict of what was claimed (`changedAfterClaim` in its entry) and goes
//! back to the inbox as a new file (`daemon::changed`); nothing else moves
//! a file between states.

use chrono::FixedOffset;
use rusqlite::Connection;

use crate::fsio;
use crate::state::files::{self, Counts, FileRow, FileState};
use crate::state::log::{self, Changed, LogEntry, Verdict};

/// What a claim learnt of a file's bytes.
pub struct Claim<'a> {
    pub dataset: &'a str,
    pub name: &'a str,
    pub work_name: &'a str,
    pub sha256: &'a str,
    pub size: u64,
    pub format: &'a str,
    /// `None` when the file was not decoded (set aside by the breaker):
    /// stored as `unknown`, and left out of the exchange-log entry.
    pub encoding: Option<&'a str>,
    pub claimed_at: &'a str,
}

/// Claim and identity: the new row goes straight to `processing`, with
/// its `file_claimed` entry. Returns the file's id.
pub fn claim(tx: &Connection, tz: FixedOffset, c: &Claim<'_>) -> rusqlite::Result<i64> {
    let file_id = files::insert_claim(tx, c.dataset, c.name, c.work_name, c.claimed_at)?;
    files::set_identity(
        tx,
        file_id,
        c.sha256,
        c.size,
        c.format,
        c.encoding.unwrap_or("unknown"),
    )?;
    log::append(
        tx,
        tz,
        LogEntry::FileClaimed {
            dataset: c.dataset,
            file: c.name,
            file_id,
            work_name: c.work_name,
            sha256: c.sha256,
            size: c.size,
            format: c.format,
            encoding: c.encoding,
        },
    )?;
    Ok(file_id)
}

/// A claim whose bytes an earlier file of the dataset already had: the
/// row stays `claimed`, naming `first`, until its `duplicate` verdict
/// (which carries the entry). Returns the file's id.
pub fn claim_duplicate(tx: &Connection, c: &Claim<'_>, first: i64) -> rusqlite::Result<i64> {
    let file_id = files::insert_claim(tx, c.dataset, c.name, c.work_name, c.claimed_at)?;
    files::set_duplicate_of(tx, file_id, c.sha256, c.size, first)?;
    Ok(file_id)
}

/// A committed chunk: the checkpoint moves to `records_done`, the counts
/// grow by `delta`, and records found unchanged or stale get their
/// `records_skipped` entry.
pub fn checkpoint(
    tx: &Connection,
    tz: FixedOffset,
    row: &FileRow,
    records_done: i64,
    delta: &Counts,
) -> rusqlite::Result<()> {
    if delta.skipped + delta.stale > 0 {
        log::append(
            tx,
            tz,
            LogEntry::RecordsSkipped {
                dataset: &row.dataset,
                file: &row.name,
                unchanged: delta.skipped,
                stale: delta.stale,
            },
        )?;
    }
    files::checkpoint(tx, row.id, records_done, delta)
}

/// Cluster mode: another node holds the file's lease (docs/cluster.md,
/// "Shared spool"); this node leaves it, its row `taken_over` with its
/// `file_taken_over` entry.
pub fn taken_over(tx: &Connection, tz: FixedOffset, row: &FileRow) -> rusqlite::Result<()> {
    files::set_taken_over(tx, row.id, true)?;
    log::append(
        tx,
        tz,
        LogEntry::FileTakenOver {
            dataset: &row.dataset,
            file: &row.name,
            file_id: row.id,
            records_done: row.records_done,
        },
    )?;
    Ok(())
}

/// Cluster mode: a file this node had left to another is this node's
/// again (that node died too): `processing` from this node's checkpoint.
/// Its verdict entry records the end.
pub fn take_back(tx: &Connection, row: &FileRow) -> rusqlite::Result<()> {
    files::set_taken_over(tx, row.id, false)
}

/// The name the file and its receipt or report get under `dir`: chosen
/// once and committed before anything is written under it, so that a
/// crash between writing the report and committing the verdict is finished
/// under the same name rather than a second one.
pub fn reserve_final_name(
    conn: &Connection,
    row: &FileRow,
    dir: &std::path::Path,
) -> rusqlite::Result<String> {
    if let Some(n) = &row.final_name {
        return Ok(n.clone());
    }
    let n = fsio::free_name(dir, &row.name, &[".receipt.json", ".report.json"]);
    files::set_final_name(conn, row.id, &n)?;
    Ok(n)
}

/// Why a file got its verdict, for its exchange-log entry.
pub enum Why<'a> {
    /// Its records were read to the end or to a file fault; `changed`
    /// describes a change after the claim (the file goes back to the
    /// inbox as a new file).
    Read {
        sha256: &'a str,
        fault: Option<&'a str>,
        changed: Option<Changed<'a>>,
    },
    /// Same bytes as `first`.
    Duplicate { sha256: &'a str, first: &'a FileRow },
    /// The breaker set it aside after `dead` attempts died on it.
    SetAside {
        sha256: &'a str,
        fault: &'a str,
        dead: i64,
    },
}

/// The state a verdict puts a file in: `duplicate` for a duplicate,
/// `rejected` for a file fault (the breaker's included) or any rejected
/// record, `done` otherwise.
pub fn verdict_state(duplicate: bool, fault: bool, counts: &Counts) -> FileState {
    if duplicate {
        FileState::Duplicate
    } else if fault || counts.rejected > 0 {
        FileState::Rejected
    } else {
        FileState::Done
    }
}

impl Why<'_> {
    /// The state the verdict puts the file in, given its counts.
    pub fn state(&self, counts: &Counts) -> FileState {
        match self {
            Why::Read { fault, .. } => verdict_state(false, fault.is_some(), counts),
            Why::SetAside { .. } => verdict_state(false, true, counts),
            Why::Duplicate { .. } => verdict_state(true, false, counts),
        }
    }
}

/// The verdict: the row gets its final state and name (and forgets its
/// attempt, see `breaker`), with its `file_done`, `file_empty`,
/// `file_rejected` or `file_duplicate` entry. Returns the state; the move
/// out of `work/` follows the commit.
pub fn verdict(
    tx: &Connection,
    tz: FixedOffset,
    row: &FileRow,
    final_name: &str,
    why: &Why<'_>,
    finished_at: &str,
) -> rusqlite::Result<FileState> {
    let state = why.state(&row.counts);
    let (fault, duplicate_of, entry) = match why {
        Why::Read {
            sha256,
            fault,
            changed,
        } => {
            let v = Verdict {
                dataset: &row.dataset,
                file: &row.name,
                counts: row.counts,
                file_id: row.id,
                sha256,
                final_name,
                fault: *fault,
                changed_after_claim: changed.clone(),
            };
            let entry = match state {
                FileState::Rejected => LogEntry::FileRejected(v),
                _ if row.counts.received == 0 => LogEntry::FileEmpty(v),
                _ => LogEntry::FileDone(v),
            };
            (*fault, None, entry)
        }
        Why::Duplicate { sha256, first } => (
            None,
            Some(first.id),
            LogEntry::FileDuplicate {
                dataset: &row.dataset,
                file: &row.name,
                file_id: row.id,
                sha256,
                duplicate_of: &first.name,
                duplicate_of_id: first.id,
                final_name,
            },
        ),
        Why::SetAside {
            sha256,
            fault,
            dead,
        } => (
            Some(*fault),
            None,
            LogEntry::FileSetAside {
                dataset: &row.dataset,
                file: &row.name,
                counts: row.counts,
                file_id: row.id,
                sha256,
                final_name,
                fault,
                dead_attempts: *dead,
            },
        ),
    };
    files::finish(
        tx,
        row.id,
        state,
        final_name,
        fault,
        duplicate_of,
        finished_at,
    )?;
    log::append(tx, tz, entry)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use serde_json::json;

    use super::*;
    use crate::state::entries::{self, Match};
    use crate::state::log::StoredEntry;

    fn tz() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn logged(conn: &Connection) -> Vec<StoredEntry> {
        let mut out = Vec::new();
        entries::each_matching(conn, &Match::default(), |e| {
            out.push(e);
            Ok::<_, rusqlite::Error>(ControlFlow::Continue(()))
        })
        .unwrap();
        out
    }

    fn claim_of<'a>(work_name: &'a str, encoding: Option<&'a str>) -> Claim<'a> {
        Claim {
            dataset: "ds",
            name: "a.csv",
            work_name,
            sha256: "ab",
            size: 4,
            format: "csv",
            encoding,
            claimed_at: "t",
        }
    }

    /// The entries are the ones releases before the lifecycle module
    /// wrote, member for member: old logs and new ones read alike.
    #[test]
    fn each_transition_appends_the_entry_it_always_did() {
        let d = tempfile::tempdir().unwrap();
        let c = crate::state::open(&d.path().join("fepd.db")).unwrap();
        let id = claim(&c, tz(), &claim_of("w1~a.csv", Some("UTF-8"))).unwrap();
        let set_aside = claim(&c, tz(), &claim_of("w2~a.csv", None)).unwrap();
        let row = files::by_id(&c, id).unwrap().unwrap();
        assert_eq!(row.state, FileState::Processing);
        let delta = Counts {
            received: 2,
            sealed: 1,
            skipped: 1,
            ..Counts::default()
        };
        checkpoint(&c, tz(), &row, 2, &delta).unwrap();
        let row = files::by_id(&c, id).unwrap().unwrap();
        let read = Why::Read {
            sha256: "ab",
            fault: None,
            changed: None,
        };
        assert_eq!(
            verdict(&c, tz(), &row, "a.csv", &read, "t").unwrap(),
            FileState::Done
        );
        let aside = files::by_id(&c, set_aside).unwrap().unwrap();
        let why = Why::SetAside {
            sha256: "ab",
            fault: "x",
            dead: 2,
        };
        assert_eq!(
            verdict(&c, tz(), &aside, "a.2.csv", &why, "t").unwrap(),
            FileState::Rejected
        );
        let dup = claim_duplicate(&c, &claim_of("w3~a.csv", Some("UTF-8")), id).unwrap();
        let dup = files::by_id(&c, dup).unwrap().unwrap();
        assert_eq!(dup.state, FileState::Claimed);
        let first = files::by_id(&c, id).unwrap().unwrap();
        let why = Why::Duplicate {
            sha256: "ab",
            first: &first,
        };
        verdict(&c, tz(), &dup, "a.3.csv", &why, "t").unwrap();

        let got: Vec<(String, Option<serde_json::Value>, Option<serde_json::Value>)> = logged(&c)
            .into_iter()
            .map(|e| (e.event, e.counts, e.details))
            .collect();
        let counts = |r, s, k| json!({"received": r, "sealed": s, "skipped": k, "stale": 0, "rejected": 0, "ignored_fields": 0});
        let want = vec![
            (
                "file_claimed",
                None,
                Some(
                    json!({"fileId": id, "workName": "w1~a.csv", "sha256": "ab", "size": 4, "format": "csv", "encoding": "UTF-8"}),
                ),
            ),
            (
                "file_claimed",
                None,
                Some(
                    json!({"fileId": set_aside, "workName": "w2~a.csv", "sha256": "ab", "size": 4, "format": "csv"}),
                ),
            ),
            (
                "records_skipped",
                Some(json!({"unchanged": 1, "stale": 0})),
                None,
            ),
            (
                "file_done",
                Some(counts(2, 1, 1)),
                Some(
                    json!({"fileId": id, "sha256": "ab", "finalName": "a.csv", "fault": null, "changedAfterClaim": null}),
                ),
            ),
            (
                "file_rejected",
                Some(counts(0, 0, 0)),
                Some(
                    json!({"fileId": set_aside, "sha256": "ab", "finalName": "a.2.csv", "fault": "x", "deadAttempts": 2}),
                ),
            ),
            (
                "file_duplicate",
                None,
                Some(
                    json!({"fileId": dup.id, "sha256": "ab", "duplicateOf": "a.csv", "duplicateOfId": id, "finalName": "a.3.csv"}),
                ),
            ),
        ];
        let want: Vec<_> = want
            .into_iter()
            .map(|(e, c, d)| (e.to_string(), c, d))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            files::by_id(&c, dup.id).unwrap().unwrap().state,
            FileState::Duplicate
        );
    }
}
