//! SQL sources (前置库): where each dataset's source was read up to, the
//! rows taken inside the re-read window, and each source's last poll
//! (docs/sql-sources.md). The watermark moves only forward, and only in
//! the transaction that seals the rows it covers (`source` calls
//! `advance` and `take` from the chunk transaction).

use rusqlite::{Connection, OptionalExtension, params};

/// The tables, created by `state::open` (schema v4).
pub(super) const SCHEMA: &str = r#"
-- The position each dataset's SQL source was read up to: (cd_time,
-- row_guid) as the source wrote them, in the source's order.
CREATE TABLE IF NOT EXISTS sql_watermark (
    dataset    TEXT PRIMARY KEY,
    cd_time    TEXT NOT NULL,
    row_guid   TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Rows taken (sealed, skipped or rejected) that are still inside the
-- re-read window: one read again with the same content is not taken twice.
CREATE TABLE IF NOT EXISTS sql_taken (
    dataset  TEXT NOT NULL,
    row_guid TEXT NOT NULL,
    cd_time  TEXT NOT NULL,
    hash     TEXT NOT NULL,
    PRIMARY KEY (dataset, row_guid)
);

-- Each source's last poll, for `fepd status`.
CREATE TABLE IF NOT EXISTS sql_poll (
    dataset     TEXT PRIMARY KEY,
    polled_at   TEXT NOT NULL,
    source_now  TEXT,
    rows_read   INTEGER NOT NULL DEFAULT 0,
    rows_taken  INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    error_at    TEXT
);
"#;

/// A position in a source: its `cd_time` and `row_guid`, as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Mark {
    pub cd_time: String,
    pub row_guid: String,
}

/// The stored watermark of `dataset`, if its source was ever read.
pub fn get(conn: &Connection, dataset: &str) -> rusqlite::Result<Option<Mark>> {
    conn.query_row(
        "SELECT cd_time, row_guid FROM sql_watermark WHERE dataset = ?1",
        params![dataset],
        |r| {
            Ok(Mark {
                cd_time: r.get(0)?,
                row_guid: r.get(1)?,
            })
        },
    )
    .optional()
}

/// Moves the watermark to `to` if that is past it (never back).
pub fn advance(conn: &Connection, dataset: &str, to: &Mark, now: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO sql_watermark (dataset, cd_time, row_guid, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(dataset) DO UPDATE SET cd_time = excluded.cd_time,
           row_guid = excluded.row_guid, updated_at = excluded.updated_at
         WHERE (excluded.cd_time, excluded.row_guid) > (sql_watermark.cd_time, sql_watermark.row_guid)",
    )?;
    stmt.execute(params![dataset, to.cd_time, to.row_guid, now])?;
    Ok(())
}

/// The content hash of the row `row_guid` when it was last taken.
pub fn taken(conn: &Connection, dataset: &str, row_guid: &str) -> rusqlite::Result<Option<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT hash FROM sql_taken WHERE dataset = ?1 AND row_guid = ?2")?;
    stmt.query_row(params![dataset, row_guid], |r| r.get(0))
        .optional()
}

/// Remembers that a row was taken with this content.
pub fn take(conn: &Connection, dataset: &str, at: &Mark, hash: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO sql_taken (dataset, row_guid, cd_time, hash) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(dataset, row_guid) DO UPDATE SET cd_time = excluded.cd_time, hash = excluded.hash",
    )?;
    stmt.execute(params![dataset, at.row_guid, at.cd_time, hash])?;
    Ok(())
}

/// Forgets the rows taken before `cd_time` (out of the re-read window).
pub fn forget_before(conn: &Connection, dataset: &str, cd_time: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM sql_taken WHERE dataset = ?1 AND cd_time < ?2",
        params![dataset, cd_time],
    )
}

/// What a poll found, for `fepd status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Poll {
    pub polled_at: String,
    /// The source's own clock when the poll began.
    pub source_now: Option<String>,
    pub rows_read: i64,
    /// Rows handed to validation and dedupe (not re-reads found unchanged).
    pub rows_taken: i64,
    /// The last error, until a poll succeeds.
    pub error: Option<String>,
    pub error_at: Option<String>,
}

/// Records a poll that ran to its end: the error is cleared.
pub fn polled(conn: &Connection, dataset: &str, p: &Poll) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO sql_poll (dataset, polled_at, source_now, rows_read, rows_taken, error, error_at)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL)
         ON CONFLICT(dataset) DO UPDATE SET polled_at = excluded.polled_at,
           source_now = excluded.source_now, rows_read = excluded.rows_read,
           rows_taken = excluded.rows_taken, error = NULL, error_at = NULL",
        params![dataset, p.polled_at, p.source_now, p.rows_read, p.rows_taken],
    )?;
    Ok(())
}

/// Records a poll that failed (the watermark stays where it was).
pub fn failed(conn: &Connection, dataset: &str, error: &str, at: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO sql_poll (dataset, polled_at, error, error_at) VALUES (?1, ?2, ?3, ?2)
         ON CONFLICT(dataset) DO UPDATE SET error = excluded.error, error_at = excluded.error_at",
        params![dataset, at, error],
    )?;
    Ok(())
}

/// A source's watermark and last poll, for `fepd status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceState {
    pub dataset: String,
    pub watermark: Option<Mark>,
    pub last_poll: Poll,
}

/// Every polled source, by dataset.
pub fn sources(conn: &Connection) -> rusqlite::Result<Vec<SourceState>> {
    let mut stmt = conn.prepare(
        "SELECT p.dataset, w.cd_time, w.row_guid, p.polled_at, p.source_now, p.rows_read,
                p.rows_taken, p.error, p.error_at
         FROM sql_poll p LEFT JOIN sql_watermark w ON w.dataset = p.dataset
         ORDER BY p.dataset",
    )?;
    let rows = stmt.query_map([], |r| {
        let time: Option<String> = r.get(1)?;
        let guid: Option<String> = r.get(2)?;
        Ok(SourceState {
            dataset: r.get(0)?,
            watermark: time
                .zip(guid)
                .map(|(cd_time, row_guid)| Mark { cd_time, row_guid }),
            last_poll: Poll {
                polled_at: r.get(3)?,
                source_now: r.get(4)?,
                rows_read: r.get(5)?,
                rows_taken: r.get(6)?,
                error: r.get(7)?,
                error_at: r.get(8)?,
            },
        })
    })?;
    rows.collect()
}

/// The pages of `dataset`'s source left unfinished by a stop or a crash
/// (`format = 'sql'` file rows still `processing`): their verdict is given
/// at the source's next start, for the rows they committed.
pub fn unfinished_pages(conn: &Connection, dataset: &str) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare(
        "SELECT id FROM file WHERE dataset = ?1 AND format = 'sql' AND state IN ('claimed', 'processing')
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![dataset], |r| r.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(t: &str, g: &str) -> Mark {
        Mark {
            cd_time: t.into(),
            row_guid: g.into(),
        }
    }

    #[test]
    fn the_watermark_never_moves_back() {
        let d = tempfile::tempdir().unwrap();
        let c = crate::state::open(&d.path().join("fepd.db")).unwrap();
        assert_eq!(get(&c, "ds").unwrap(), None);
        advance(&c, "ds", &mark("2026-01-01 10:00:00", "b"), "t").unwrap();
        advance(&c, "ds", &mark("2026-01-01 10:00:00", "a"), "t").unwrap();
        assert_eq!(
            get(&c, "ds").unwrap(),
            Some(mark("2026-01-01 10:00:00", "b"))
        );
        advance(&c, "ds", &mark("2026-01-01 10:00:01", "a"), "t").unwrap();
        assert_eq!(
            get(&c, "ds").unwrap(),
            Some(mark("2026-01-01 10:00:01", "a"))
        );
        take(&c, "ds", &mark("2026-01-01 10:00:01", "a"), "h1").unwrap();
        assert_eq!(taken(&c, "ds", "a").unwrap().as_deref(), Some("h1"));
        assert_eq!(forget_before(&c, "ds", "2026-01-01 10:00:02").unwrap(), 1);
        assert_eq!(taken(&c, "ds", "a").unwrap(), None);
    }

    /// A v3 database (no SQL source tables) opens as v4 with them.
    #[test]
    fn a_v3_database_gains_the_sql_source_tables() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("fepd.db");
        {
            let c = crate::state::open(&path).unwrap();
            c.execute_batch(
                "DROP TABLE sql_watermark; DROP TABLE sql_taken; DROP TABLE sql_poll;
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        }
        let c = crate::state::open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 5);
        assert_eq!(get(&c, "ds").unwrap(), None);
        assert!(sources(&c).unwrap().is_empty());
    }
}
