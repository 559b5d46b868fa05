//! Reading the exchange log back, oldest first, one row at a time (a log
//! can be long: nothing here collects it). Used by `audit` — verification,
//! export, `show` — which reads rows as stored (`StoredEntry::verbatim`)
//! or parsed (`StoredEntry::from_row`). Appending and pruning are
//! `log`'s.

use std::ops::ControlFlow;

use rusqlite::{Connection, Row, params};

use super::log::{ENTRY_COLS, StoredEntry};

/// Calls `each` with every row after `after` (every row when `None`), in
/// seq order, until it breaks. Columns are [`ENTRY_COLS`].
pub fn each_row<E: From<rusqlite::Error>>(
    conn: &Connection,
    after: Option<i64>,
    mut each: impl FnMut(&Row<'_>) -> Result<ControlFlow<()>, E>,
) -> Result<(), E> {
    // Apart, so that each is a plain scan or a range of the primary key.
    let (mut stmt, after) = match after {
        Some(seq) => (
            conn.prepare(&format!(
                "SELECT {ENTRY_COLS} FROM exchange_log WHERE seq > ?1 ORDER BY seq"
            ))?,
            vec![seq],
        ),
        None => (
            conn.prepare(&format!(
                "SELECT {ENTRY_COLS} FROM exchange_log ORDER BY seq"
            ))?,
            vec![],
        ),
    };
    let mut rows = stmt.query(rusqlite::params_from_iter(after))?;
    while let Some(r) = rows.next()? {
        if each(r)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// Which entries [`each_matching`] reads; every part is optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct Match<'a> {
    pub dataset: Option<&'a str>,
    pub event: Option<&'a str>,
    pub file: Option<&'a str>,
    pub batch: Option<&'a str>,
}

/// Calls `each` with every entry that matches `m`, in seq order, until it
/// breaks.
pub fn each_matching<E: From<rusqlite::Error>>(
    conn: &Connection,
    m: &Match<'_>,
    mut each: impl FnMut(StoredEntry) -> Result<ControlFlow<()>, E>,
) -> Result<(), E> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENTRY_COLS} FROM exchange_log
         WHERE (?1 IS NULL OR dataset = ?1) AND (?2 IS NULL OR event = ?2)
           AND (?3 IS NULL OR file = ?3) AND (?4 IS NULL OR batch = ?4)
         ORDER BY seq"
    ))?;
    let mut rows = stmt.query(params![m.dataset, m.event, m.file, m.batch])?;
    while let Some(r) = rows.next()? {
        if each(StoredEntry::from_row(r)?)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// The entry `seq`, if the table holds it.
pub fn entry(conn: &Connection, seq: i64) -> rusqlite::Result<Option<StoredEntry>> {
    let mut found = None;
    each_row(conn, Some(seq - 1), |r| {
        let e = StoredEntry::from_row(r)?;
        if e.seq == seq {
            found = Some(e);
        }
        Ok::<_, rusqlite::Error>(ControlFlow::Break(()))
    })?;
    Ok(found)
}
