//! Dedupe: is this record new, changed, unchanged or stale?

use rusqlite::Connection;

use crate::state::recent::RecentKeys;
use crate::validate::ValidRecord;

/// What to do with a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// New key, or changed content: seal it. `version` is the version
    /// order of the key's last sealed version, which a record without a
    /// version of its own keeps.
    Seal { version: Option<i64> },
    /// Same key and content as last sealed: skip, count as unchanged.
    Unchanged,
    /// Lower version than last sealed: skip, count as stale.
    Stale,
}

/// Decides against the last sealed state of the record's key (the tail's
/// newest row in `keys`, else `record_state`). Runs inside the chunk's
/// transaction, so records sealed earlier in the same chunk count.
pub fn decide(
    conn: &Connection,
    keys: &RecentKeys,
    rec: &ValidRecord,
) -> rusqlite::Result<Decision> {
    let Some(last) = keys.last_sealed(conn, &rec.key)? else {
        return Ok(Decision::Seal { version: None });
    };
    if last.hash == rec.hash {
        return Ok(Decision::Unchanged);
    }
    if let (Some(now), Some(then)) = (rec.version, last.version)
        && now < then
    {
        return Ok(Decision::Stale);
    }
    Ok(Decision::Seal {
        version: last.version,
    })
}
