//! Files seen in the spool: claim rows, checkpoints, verdict counts, and
//! the attempts on files in `work/` that the crash-loop breaker counts.
//!
//! A file's state is a [`FileState`]; these functions are the SQL of its
//! transitions, and `daemon::job::lifecycle` is the one caller that
//! changes it (ARCHITECTURE.md, "Invariants").

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, params};

/// Where a file is in its life: `claimed` → `processing` → `done`,
/// `rejected` or `duplicate` (the verdicts); in cluster mode also
/// `taken_over`. Stored as these words, which databases written by every
/// release hold (`taken_over` is new: older releases never wrote it, and
/// read no database that has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileState {
    /// Claimed into `work/`, not yet identified (a row that the claim and
    /// identity transaction left; older releases committed it apart).
    Claimed,
    /// Identified; its records are being read in checkpointed chunks.
    Processing,
    /// Every record sealed, skipped or stale: in `done/` with a receipt.
    Done,
    /// A file fault or rejected records: in `rejected/` with a report.
    Rejected,
    /// Same bytes as an earlier file: in `done/` with a receipt naming it.
    Duplicate,
    /// Cluster mode (docs/cluster.md): another node took the file over
    /// while this one was dead or paused, and finishes it; this row keeps
    /// what this node committed of it. Not a verdict (the file is another
    /// node's), not in progress either.
    TakenOver,
}

impl FileState {
    pub const ALL: [FileState; 6] = [
        FileState::Claimed,
        FileState::Processing,
        FileState::Done,
        FileState::Rejected,
        FileState::Duplicate,
        FileState::TakenOver,
    ];

    /// The stored word, also the `verdict` of receipts and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Claimed => "claimed",
            FileState::Processing => "processing",
            FileState::Done => "done",
            FileState::Rejected => "rejected",
            FileState::Duplicate => "duplicate",
            FileState::TakenOver => "taken_over",
        }
    }

    pub fn parse(s: &str) -> Option<FileState> {
        FileState::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Whether the file has its verdict (it leaves `work/` after it).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            FileState::Done | FileState::Rejected | FileState::Duplicate
        )
    }

    /// Whether this node is reading the file (claimed, not finished, not
    /// taken over).
    pub fn in_progress(self) -> bool {
        matches!(self, FileState::Claimed | FileState::Processing)
    }
}

impl std::fmt::Display for FileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ToSql for FileState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for FileState {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        FileState::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown file state {s:?}").into()))
    }
}

/// A claimed file's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: i64,
    pub dataset: String,
    pub name: String,
    pub work_name: String,
    pub sha256: Option<String>,
    pub state: FileState,
    pub records_done: i64,
    pub counts: Counts,
    pub fault: Option<String>,
    pub final_name: Option<String>,
    pub duplicate_of: Option<i64>,
}

/// What became of a file's records so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub received: i64,
    pub sealed: i64,
    pub skipped: i64,
    pub stale: i64,
    pub rejected: i64,
    pub ignored_fields: i64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.received += o.received;
        self.sealed += o.sealed;
        self.skipped += o.skipped;
        self.stale += o.stale;
        self.rejected += o.rejected;
        self.ignored_fields += o.ignored_fields;
    }
}

const COLS: &str = "id, dataset, name, work_name, sha256, state, records_done, received, sealed, \
                    skipped, stale, rejected, ignored_fields, fault, final_name, duplicate_of";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        id: r.get(0)?,
        dataset: r.get(1)?,
        name: r.get(2)?,
        work_name: r.get(3)?,
        sha256: r.get(4)?,
        state: r.get(5)?,
        records_done: r.get(6)?,
        counts: Counts {
            received: r.get(7)?,
            sealed: r.get(8)?,
            skipped: r.get(9)?,
            stale: r.get(10)?,
            rejected: r.get(11)?,
            ignored_fields: r.get(12)?,
        },
        fault: r.get(13)?,
        final_name: r.get(14)?,
        duplicate_of: r.get(15)?,
    })
}

pub fn by_work_name(conn: &Connection, work_name: &str) -> rusqlite::Result<Option<FileRow>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM file WHERE work_name = ?1"),
        [work_name],
        row,
    )
    .optional()
}

pub fn by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<FileRow>> {
    conn.query_row(&format!("SELECT {COLS} FROM file WHERE id = ?1"), [id], row)
        .optional()
}

/// Records a new claim.
pub fn insert_claim(
    conn: &Connection,
    dataset: &str,
    name: &str,
    work_name: &str,
    claimed_at: &str,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO file (dataset, name, work_name, state, claimed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![dataset, name, work_name, FileState::Claimed, claimed_at],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The earliest other file of `dataset` with this content, if any.
pub fn first_with_sha(
    conn: &Connection,
    dataset: &str,
    sha256: &str,
    except_id: i64,
) -> rusqlite::Result<Option<FileRow>> {
    conn.query_row(
        &format!(
            "SELECT {COLS} FROM file WHERE dataset = ?1 AND sha256 = ?2 AND id != ?3
             AND state != ?4 AND duplicate_of IS NULL ORDER BY id LIMIT 1"
        ),
        params![dataset, sha256, except_id, FileState::Duplicate],
        row,
    )
    .optional()
}

pub fn set_identity(
    conn: &Connection,
    id: i64,
    sha256: &str,
    size: u64,
    format: &str,
    encoding: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE file SET sha256 = ?2, size = ?3, format = ?4, encoding = ?5, state = ?6
         WHERE id = ?1",
        params![
            id,
            sha256,
            size as i64,
            format,
            encoding,
            FileState::Processing
        ],
    )?;
    Ok(())
}

/// Records the content of a claimed file already received as `first`:
/// its hash and size, and the file it duplicates (its state stays
/// `claimed` until its verdict).
pub fn set_duplicate_of(
    conn: &Connection,
    id: i64,
    sha256: &str,
    size: u64,
    first: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE file SET sha256 = ?2, size = ?3, duplicate_of = ?4 WHERE id = ?1",
        params![id, sha256, size as i64, first],
    )?;
    Ok(())
}

/// Reserves the name the file and its receipt or report get in their
/// folder, before anything is written under it.
pub fn set_final_name(conn: &Connection, id: i64, final_name: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE file SET final_name = ?2 WHERE id = ?1",
        params![id, final_name],
    )?;
    Ok(())
}

/// Advances the checkpoint by a committed chunk.
pub fn checkpoint(
    conn: &Connection,
    id: i64,
    records_done: i64,
    delta: &Counts,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE file SET records_done = ?2, received = received + ?3, sealed = sealed + ?4,
         skipped = skipped + ?5, stale = stale + ?6, rejected = rejected + ?7,
         ignored_fields = ignored_fields + ?8 WHERE id = ?1",
        params![
            id,
            records_done,
            delta.received,
            delta.sealed,
            delta.skipped,
            delta.stale,
            delta.rejected,
            delta.ignored_fields
        ],
    )?;
    Ok(())
}

/// Marks the file finished (`done`, `rejected` or `duplicate`) under its
/// final name; the move out of `work/` follows the commit.
pub fn finish(
    conn: &Connection,
    id: i64,
    state: FileState,
    final_name: &str,
    fault: Option<&str>,
    duplicate_of: Option<i64>,
    finished_at: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE file SET state = ?2, final_name = ?3, fault = COALESCE(?4, fault),
         duplicate_of = ?5, finished_at = ?6 WHERE id = ?1",
        params![id, state, final_name, fault, duplicate_of, finished_at],
    )?;
    // A file with a verdict has no attempt left to count.
    conn.execute(
        "DELETE FROM file_attempt WHERE work_name = (SELECT work_name FROM file WHERE id = ?1)",
        [id],
    )?;
    Ok(())
}

/// Cluster mode: the row of a file another node took over (`taken_over`),
/// or (`processing`) one this node holds again; its attempt is forgotten
/// either way (the breaker counts deaths of this node on the file).
pub fn set_taken_over(conn: &Connection, id: i64, taken: bool) -> rusqlite::Result<()> {
    let state = match taken {
        true => FileState::TakenOver,
        false => FileState::Processing,
    };
    conn.execute(
        "UPDATE file SET state = ?2 WHERE id = ?1",
        params![id, state],
    )?;
    conn.execute(
        "DELETE FROM file_attempt WHERE work_name = (SELECT work_name FROM file WHERE id = ?1)",
        [id],
    )?;
    Ok(())
}

/// An attempt on a file in `work/` that has not returned (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The fepd process that made it (see `daemon::breaker`).
    pub process: String,
    /// The file's checkpoint when it started.
    pub checkpoint: i64,
    /// Attempts before it, in a row, that died without the checkpoint
    /// moving.
    pub dead: i64,
}

/// The attempt recorded on `work_name`, if one has not returned.
pub fn attempt_of(conn: &Connection, work_name: &str) -> rusqlite::Result<Option<Attempt>> {
    conn.query_row(
        "SELECT process, checkpoint, dead FROM file_attempt WHERE work_name = ?1",
        [work_name],
        |r| {
            Ok(Attempt {
                process: r.get(0)?,
                checkpoint: r.get(1)?,
                dead: r.get(2)?,
            })
        },
    )
    .optional()
}

/// Records that `process` starts an attempt on `work_name` at
/// `checkpoint`, and returns how many attempts in a row before it died
/// without the checkpoint moving. An attempt left by another process
/// died with it (attempts that return remove their row); one left by
/// `process` itself returned with an error and is not a death.
pub fn begin_attempt(
    conn: &Connection,
    dataset: &str,
    work_name: &str,
    process: &str,
    checkpoint: i64,
    started_at: &str,
) -> rusqlite::Result<i64> {
    let dead = match attempt_of(conn, work_name)? {
        None => 0,
        Some(a) if a.process == process => a.dead,
        Some(a) if checkpoint <= a.checkpoint => a.dead + 1,
        // It died, but only after moving the checkpoint on.
        Some(_) => 0,
    };
    conn.execute(
        "INSERT OR REPLACE INTO file_attempt (work_name, dataset, process, checkpoint, dead, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![work_name, dataset, process, checkpoint, dead, started_at],
    )?;
    Ok(dead)
}

/// The attempt on `work_name` returned (the file is left in `work/`
/// for a retry or the next start, without anything having died).
pub fn end_attempt(conn: &Connection, work_name: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM file_attempt WHERE work_name = ?1", [work_name])?;
    Ok(())
}

/// Batch ids and digests sealed from a file, in seal order.
pub fn batches_of(conn: &Connection, id: i64) -> rusqlite::Result<Vec<(String, i64, String)>> {
    let mut stmt =
        conn.prepare("SELECT batch_id, count, digest FROM batch WHERE file_id = ?1 AND parent_id IS NULL ORDER BY seq")?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// A rejected record's row in a report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejection {
    pub ordinal: i64,
    pub position: String,
    pub row: i64,
    pub key: Option<String>,
    pub field: String,
    pub title: String,
    pub value: Option<String>,
    pub rule: String,
    pub message: String,
    pub warning: bool,
}

pub fn insert_rejection(conn: &Connection, file_id: i64, r: &Rejection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO rejection (file_id, ordinal, position, row, key, field, title, value, rule, message, warning)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    stmt.execute(params![
        file_id, r.ordinal, r.position, r.row, r.key, r.field, r.title, r.value, r.rule, r.message,
        r.warning
    ])?;
    Ok(())
}

/// When the file was claimed.
pub fn claimed_at(conn: &Connection, file_id: i64) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT claimed_at FROM file WHERE id = ?1",
        [file_id],
        |r| r.get(0),
    )
}

pub fn rejections_of(conn: &Connection, file_id: i64) -> rusqlite::Result<Vec<Rejection>> {
    let mut stmt = conn.prepare(
        "SELECT ordinal, position, row, key, field, title, value, rule, message, warning
         FROM rejection WHERE file_id = ?1 ORDER BY ordinal, rowid",
    )?;
    let rows = stmt.query_map([file_id], |r| {
        Ok(Rejection {
            ordinal: r.get(0)?,
            position: r.get(1)?,
            row: r.get(2)?,
            key: r.get(3)?,
            field: r.get(4)?,
            title: r.get(5)?,
            value: r.get(6)?,
            rule: r.get(7)?,
            message: r.get(8)?,
            warning: r.get(9)?,
        })
    })?;
    rows.collect()
}

/// A file being read (claimed, not finished), for progress reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProgress {
    pub name: String,
    pub work_name: String,
    pub records_done: i64,
    pub claimed_at: String,
    pub size: Option<i64>,
    pub format: Option<String>,
}

/// The files of `dataset` claimed and not yet finished, oldest first.
pub fn in_progress(conn: &Connection, dataset: &str) -> rusqlite::Result<Vec<InProgress>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, work_name, records_done, claimed_at, size, format FROM file
         WHERE dataset = ?1 AND state IN (?2, ?3) ORDER BY id",
    )?;
    stmt.query_map(
        params![dataset, FileState::Claimed, FileState::Processing],
        |r| {
            Ok(InProgress {
                name: r.get(0)?,
                work_name: r.get(1)?,
                records_done: r.get(2)?,
                claimed_at: r.get(3)?,
                size: r.get(4)?,
                format: r.get(5)?,
            })
        },
    )?
    .collect()
}

/// Datasets with a file claimed and not yet finished.
pub fn datasets_in_progress(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT dataset FROM file WHERE state IN (?1, ?2) ORDER BY dataset",
    )?;
    stmt.query_map(params![FileState::Claimed, FileState::Processing], |r| {
        r.get(0)
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(c: &Connection, process: &str, checkpoint: i64) -> i64 {
        begin_attempt(c, "ds", "w~f.csv", process, checkpoint, "t").unwrap()
    }

    #[test]
    fn only_attempts_that_died_without_progress_count() {
        let d = tempfile::tempdir().unwrap();
        let c = crate::state::open(&d.path().join("fepd.db")).unwrap();
        assert_eq!(attempt(&c, "p1", 0), 0);
        // p1 died; p2 finds no progress.
        assert_eq!(attempt(&c, "p2", 0), 1);
        // p2 retries after an error of its own: not a death.
        assert_eq!(attempt(&c, "p2", 0), 1);
        assert_eq!(attempt(&c, "p3", 0), 2);
        // p3 died after committing chunks: the count starts again.
        assert_eq!(attempt(&c, "p4", 5000), 0);
        assert_eq!(attempt(&c, "p5", 5000), 1);
        // An attempt that returned leaves nothing behind.
        end_attempt(&c, "w~f.csv").unwrap();
        assert_eq!(attempt_of(&c, "w~f.csv").unwrap(), None);
        assert_eq!(attempt(&c, "p6", 5000), 0);
        // A verdict clears it too.
        let id = insert_claim(&c, "ds", "f.csv", "w~f.csv", "t").unwrap();
        finish(&c, id, FileState::Done, "f.csv", None, None, "t").unwrap();
        assert_eq!(attempt_of(&c, "w~f.csv").unwrap(), None);
    }

    #[test]
    fn states_are_stored_as_the_words_older_releases_wrote() {
        let d = tempfile::tempdir().unwrap();
        let c = crate::state::open(&d.path().join("fepd.db")).unwrap();
        let words: Vec<&str> = FileState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            [
                "claimed",
                "processing",
                "done",
                "rejected",
                "duplicate",
                "taken_over"
            ]
        );
        for s in FileState::ALL {
            let id = insert_claim(&c, "ds", "f.csv", &format!("w~{s}"), "t").unwrap();
            assert_eq!(by_id(&c, id).unwrap().unwrap().state, FileState::Claimed);
            finish(&c, id, s, "f.csv", None, None, "t").unwrap();
            let row = by_id(&c, id).unwrap().unwrap();
            assert_eq!(row.state, s);
            assert_eq!(FileState::parse(s.as_str()), Some(s));
        }
        // A word no release wrote is an error, not a guess.
        assert_eq!(FileState::parse("finished"), None);
    }
}
