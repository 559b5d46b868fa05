//! The file state machine, and the one place that changes a file's state.
//!
//! ```text
//! (inbox) ─claim─► claimed ─identify─► processing ─checkpoint…─► done | rejected
//!                     └─ same bytes as an earlier file ─────────► duplicate
//!  any state but a verdict ─ set aside by the breaker ──────────► rejected
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
use serde_json::json;

use crate::fsio;
use crate::state::files::{self, Counts, FileRow, FileState};
use crate::state::log::{self, Entry, Event};

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
    let mut details = json!({
        "fileId": file_id, "workName": c.work_name, "sha256": c.sha256,
        "size": c.size, "format": c.format,
    });
    if let Some(e) = c.encoding {
        details["encoding"] = json!(e);
    }
    log::append(
        tx,
        tz,
        Event::FileClaimed,
        Entry {
            dataset: Some(c.dataset),
            file: Some(c.name),
            details: Some(details),
            ..Default::default()
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
            Event::RecordsSkipped,
            Entry {
                dataset: Some(&row.dataset),
                file: Some(&row.name),
                counts: Some(json!({"unchanged": delta.skipped, "stale": delta.stale})),
                ..Default::default()
            },
        )?;
    }
    files::checkpoint(tx, row.id, records_done, delta)
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
        changed: Option<serde_json::Value>,
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

impl Why<'_> {
    /// The state the verdict puts the file in, given its counts.
    pub fn state(&self, counts: &Counts) -> FileState {
        match self {
            Why::Read { fault, .. } if fault.is_none() && counts.rejected == 0 => FileState::Done,
            Why::Read { .. } | Why::SetAside { .. } => FileState::Rejected,
            Why::Duplicate { .. } => FileState::Duplicate,
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
    let counts = || Some(serde_json::to_value(row.counts).expect("counts serialise"));
    let (fault, duplicate_of, event, counts, details) = match why {
        Why::Read {
            sha256,
            fault,
            changed,
        } => (
            *fault,
            None,
            match state {
                FileState::Rejected => Event::FileRejected,
                _ if row.counts.received == 0 => Event::FileEmpty,
                _ => Event::FileDone,
            },
            counts(),
            json!({
                "fileId": row.id, "sha256": sha256, "finalName": final_name,
                "fault": fault,
                "changedAfterClaim": changed,
            }),
        ),
        Why::Duplicate { sha256, first } => (
            None,
            Some(first.id),
            Event::FileDuplicate,
            None,
            json!({
                "fileId": row.id, "sha256": sha256, "duplicateOf": first.name,
                "duplicateOfId": first.id, "finalName": final_name,
            }),
        ),
        Why::SetAside {
            sha256,
            fault,
            dead,
        } => (
            Some(*fault),
            None,
            Event::FileRejected,
            counts(),
            json!({
                "fileId": row.id, "sha256": sha256, "finalName": final_name,
                "fault": fault, "deadAttempts": dead,
            }),
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
    log::append(
        tx,
        tz,
        event,
        Entry {
            dataset: Some(&row.dataset),
            file: Some(&row.name),
            counts,
            details: Some(details),
            ..Default::default()
        },
    )?;
    Ok(state)
}
