//! What was last sealed per record key: the memory behind dedupe.

use rusqlite::{Connection, OptionalExtension, params};

/// The last sealed version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub hash: String,
    pub version: Option<i64>,
}

pub fn last_sealed(
    conn: &Connection,
    dataset: &str,
    key: &str,
) -> rusqlite::Result<Option<Sealed>> {
    let mut stmt = conn
        .prepare_cached("SELECT hash, version FROM record_state WHERE dataset = ?1 AND key = ?2")?;
    stmt.query_row(params![dataset, key], |r| {
        Ok(Sealed {
            hash: r.get(0)?,
            version: r.get(1)?,
        })
    })
    .optional()
}

#[allow(clippy::too_many_arguments)]
pub fn remember(
    conn: &Connection,
    dataset: &str,
    key: &str,
    hash: &str,
    version: Option<i64>,
    op: &str,
    batch_id: &str,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO record_state (dataset, key, hash, version, op, batch_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(dataset, key) DO UPDATE SET hash = excluded.hash,
           version = COALESCE(excluded.version, record_state.version), op = excluded.op,
           batch_id = excluded.batch_id",
    )?;
    stmt.execute(params![dataset, key, hash, version, op, batch_id])?;
    Ok(())
}
