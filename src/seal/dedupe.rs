//! Dedupe: is this record new, changed, unchanged or stale?

use rusqlite::Connection;

use crate::state::records;
use crate::validate::ValidRecord;

/// What to do with a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// New key, or changed content: seal it.
    Seal,
    /// Same key and content as last sealed: skip, count as unchanged.
    Unchanged,
    /// Lower version than last sealed: skip, count as stale.
    Stale,
}

/// Decides against the last sealed state of the record's key. Runs inside
/// the chunk's transaction, so records earlier in the same chunk count.
pub fn decide(conn: &Connection, dataset: &str, rec: &ValidRecord) -> rusqlite::Result<Decision> {
    let Some(last) = records::last_sealed(conn, dataset, &rec.key)? else {
        return Ok(Decision::Seal);
    };
    if last.hash == rec.hash {
        return Ok(Decision::Unchanged);
    }
    if let (Some(now), Some(then)) = (rec.version, last.version)
        && now < then
    {
        return Ok(Decision::Stale);
    }
    Ok(Decision::Seal)
}
