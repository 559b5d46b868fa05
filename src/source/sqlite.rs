//! The SQLite engine: the source is a database file opened read-only.
//! SQLite has no date-time type: `cd_time` is compared as text, so the
//! source must write it as `YYYY-MM-DD HH:MM:SS` (fractions of a second
//! allowed) in the source host's local time, which is what its clock
//! (`datetime('now', 'localtime')`) is read in (docs/sql-sources.md).
//! In mark mode the file is opened read-write, to set the mark.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::{Engine, SourceError, SourceRow};
use crate::config::SqlSource;
use crate::state::watermark::Mark;

/// An open SQLite source.
pub struct Sqlite {
    conn: Connection,
    src: SqlSource,
    from: String,
    time: String,
    guid: String,
    /// Mark mode: `AND (mark IS NULL OR mark = 0)`, else empty.
    unmarked: String,
}

/// `name` as an SQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn db(e: rusqlite::Error) -> SourceError {
    SourceError::Database(e.to_string())
}

impl Sqlite {
    pub fn open(src: &SqlSource) -> Result<Sqlite, SourceError> {
        let access = match src.mark_column {
            Some(_) => OpenFlags::SQLITE_OPEN_READ_WRITE,
            None => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
        let conn = Connection::open_with_flags(&src.url, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| SourceError::Database(format!("{}: {e}", src.url)))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        let from = match (&src.table, &src.query) {
            (Some(t), _) => quote(t),
            (None, Some(q)) => format!("({q})"),
            (None, None) => return Err(SourceError::Database("no table or query".into())),
        };
        Ok(Sqlite {
            conn,
            time: quote(src.column_of("cd_time")),
            guid: quote(src.column_of("row_guid")),
            unmarked: unmarked(src, quote),
            src: src.clone(),
            from,
        })
    }
}

/// Mark mode's condition on a page (`AND (m IS NULL OR m = 0)`, the
/// column quoted by `quote` and read through the alias `fepd_source`), or
/// nothing.
pub(super) fn unmarked(src: &SqlSource, quote: fn(&str) -> String) -> String {
    match &src.mark_column {
        Some(m) => {
            let m = format!("fepd_source.{}", quote(m));
            format!("AND ({m} IS NULL OR {m} = 0)")
        }
        None => String::new(),
    }
}

/// Mark mode: the table a mark is set in (a query cannot be marked;
/// `check-config` refuses the pair).
pub(super) fn mark_table(src: &SqlSource) -> Result<(&str, &str), SourceError> {
    match (&src.table, &src.mark_column) {
        (Some(t), Some(m)) => Ok((t, m)),
        _ => Err(SourceError::Mark(
            "mark mode needs sql.table and sql.mark_column".into(),
        )),
    }
}

impl Engine for Sqlite {
    fn clock(&mut self, lag_secs: u64) -> Result<(String, String), SourceError> {
        self.conn
            .query_row(
                "SELECT datetime('now', 'localtime'), datetime('now', 'localtime', ?1)",
                [format!("-{lag_secs} seconds")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db)
    }

    fn minus(&mut self, cd_time: &str, secs: u64) -> Result<String, SourceError> {
        let t: Option<String> = self
            .conn
            .query_row(
                "SELECT datetime(?1, ?2)",
                [cd_time.to_string(), format!("-{secs} seconds")],
                |r| r.get(0),
            )
            .map_err(db)?;
        t.ok_or_else(|| {
            SourceError::Row(format!(
                "cd_time {cd_time:?} is not a date-time SQLite reads (YYYY-MM-DD HH:MM:SS)"
            ))
        })
    }

    fn page(
        &mut self,
        after: Option<&Mark>,
        until: &str,
        limit: u64,
    ) -> Result<Vec<SourceRow>, SourceError> {
        let (t, g) = (&self.time, &self.guid);
        let lower = match after {
            // `{t} >= ?2`, implied by the rest, lets the index start at
            // the position (see `postgres`).
            Some(_) => format!("AND {t} >= ?2 AND ({t} > ?2 OR ({t} = ?2 AND {g} > ?3))"),
            None => "AND ?2 IS NULL AND ?3 IS NULL".to_string(),
        };
        let sql = format!(
            "SELECT * FROM {} AS fepd_source WHERE {t} <= ?1 {lower} {} ORDER BY {t}, {g} LIMIT ?4",
            self.from, self.unmarked
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
        let (at, guid) = match after {
            Some(m) => (Some(m.cd_time.as_str()), Some(m.row_guid.as_str())),
            None => (None, None),
        };
        let mut rows = stmt
            .query(rusqlite::params![until, at, guid, limit as i64])
            .map_err(db)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db)? {
            let mut cols = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let v = match r.get_ref(i).map_err(db)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::from(n),
                    ValueRef::Real(f) => Value::String(f.to_string()),
                    ValueRef::Text(b) => super::row::text_value(&String::from_utf8_lossy(b)),
                    ValueRef::Blob(_) => {
                        return Err(SourceError::Row(format!(
                            "column {name:?} holds binary data (a BLOB), which fepd cannot convert to a field"
                        )));
                    }
                };
                cols.push((name.clone(), v));
            }
            out.push(SourceRow::new(&self.src, cols)?);
        }
        Ok(out)
    }

    fn mark(&mut self, rows: &[Mark]) -> Result<(), SourceError> {
        let (table, column) = mark_table(&self.src)?;
        let mark = |e: rusqlite::Error| SourceError::Mark(e.to_string());
        let (t, g) = (
            quote(self.src.column_of("cd_time")),
            quote(self.src.column_of("row_guid")),
        );
        for batch in rows.chunks(super::MARK_BATCH) {
            let pairs = vec!["(?, ?)"; batch.len()].join(", ");
            let sql = format!(
                "UPDATE {} SET {} = 1 WHERE ({t}, {g}) IN (VALUES {pairs})",
                quote(table),
                quote(column)
            );
            let params = batch
                .iter()
                .flat_map(|m| [m.cd_time.as_str(), m.row_guid.as_str()]);
            self.conn
                .execute(&sql, rusqlite::params_from_iter(params))
                .map_err(mark)?;
        }
        Ok(())
    }
}
