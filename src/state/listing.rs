//! The console's lists (README "Web console"): files by dataset, day,
//! state and name, and rejected records with their file — newest first,
//! each query bounded by its limit so that a page never holds a read
//! transaction for long. `allowed` narrows to a data-staff member's
//! datasets (`",a,b,"`; empty for every dataset).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// What narrows a list; empty texts narrow nothing.
#[derive(Debug, Clone, Default)]
pub struct Narrow<'a> {
    /// `",a,b,"`: only these datasets; empty: all.
    pub allowed: &'a str,
    pub dataset: &'a str,
    /// A file state word (`done`, `rejected`…).
    pub state: &'a str,
    /// Part of the file's name.
    pub name: &'a str,
    /// `YYYY-MM-DD`: files claimed that day (local time, as stored).
    pub day: &'a str,
    /// Rejections: the rule broken.
    pub rule: &'a str,
    pub limit: i64,
}

/// A file in the list.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: i64,
    pub dataset: String,
    pub name: String,
    pub state: String,
    pub received: i64,
    pub rejected: i64,
    pub sealed: i64,
    pub fault: Option<String>,
    pub claimed_at: String,
    pub finished_at: Option<String>,
}

const FILE_COLS: &str =
    "id, dataset, name, state, received, rejected, sealed, fault, claimed_at, finished_at";

fn listed(r: &rusqlite::Row<'_>) -> rusqlite::Result<Listed> {
    Ok(Listed {
        id: r.get(0)?,
        dataset: r.get(1)?,
        name: r.get(2)?,
        state: r.get(3)?,
        received: r.get(4)?,
        rejected: r.get(5)?,
        sealed: r.get(6)?,
        fault: r.get(7)?,
        claimed_at: r.get(8)?,
        finished_at: r.get(9)?,
    })
}

/// Files, newest first.
pub fn files(conn: &Connection, n: &Narrow<'_>) -> rusqlite::Result<Vec<Listed>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {FILE_COLS} FROM file
         WHERE (?1 = '' OR instr(?1, ',' || dataset || ',') > 0)
           AND (?2 = '' OR dataset = ?2)
           AND (?3 = '' OR state = ?3)
           AND (?4 = '' OR instr(name, ?4) > 0)
           AND (?5 = '' OR substr(claimed_at, 1, 10) = ?5)
         ORDER BY id DESC LIMIT ?6"
    ))?;
    let rows = stmt.query_map(
        params![n.allowed, n.dataset, n.state, n.name, n.day, n.limit],
        listed,
    )?;
    rows.collect()
}

/// One file by id, if `allowed` covers its dataset.
pub fn file(conn: &Connection, allowed: &str, id: i64) -> rusqlite::Result<Option<Listed>> {
    conn.query_row(
        &format!(
            "SELECT {FILE_COLS} FROM file
             WHERE id = ?2 AND (?1 = '' OR instr(?1, ',' || dataset || ',') > 0)"
        ),
        params![allowed, id],
        listed,
    )
    .optional()
}

/// A rejected record with its file.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub file_id: i64,
    pub dataset: String,
    pub file: String,
    pub claimed_at: String,
    pub position: String,
    pub key: Option<String>,
    pub title: String,
    /// Masked when the field is personal data (as stored).
    pub value: Option<String>,
    pub rule: String,
    pub message: String,
}

/// Rejected records (not warnings), newest file first.
pub fn rejections(conn: &Connection, n: &Narrow<'_>) -> rusqlite::Result<Vec<Rejected>> {
    let mut stmt = conn.prepare(
        "SELECT f.id, f.dataset, f.name, f.claimed_at, r.position, r.key, r.title, r.value, r.rule, r.message
         FROM rejection r JOIN file f ON f.id = r.file_id
         WHERE r.warning = 0
           AND (?1 = '' OR instr(?1, ',' || f.dataset || ',') > 0)
           AND (?2 = '' OR f.dataset = ?2)
           AND (?3 = '' OR r.rule = ?3)
           AND (?4 = '' OR instr(f.name, ?4) > 0)
           AND (?5 = '' OR substr(f.claimed_at, 1, 10) = ?5)
         ORDER BY f.id DESC, r.ordinal LIMIT ?6",
    )?;
    let rows = stmt.query_map(
        params![n.allowed, n.dataset, n.rule, n.name, n.day, n.limit],
        |r| {
            Ok(Rejected {
                file_id: r.get(0)?,
                dataset: r.get(1)?,
                file: r.get(2)?,
                claimed_at: r.get(3)?,
                position: r.get(4)?,
                key: r.get(5)?,
                title: r.get(6)?,
                value: r.get(7)?,
                rule: r.get(8)?,
                message: r.get(9)?,
            })
        },
    )?;
    rows.collect()
}

/// Files with records the library refused (`remote_rejection`), newest
/// first, under the same narrowing as `rejections` (the rule aside): the
/// 拒收记录 page lists their refusals beside the local rejections.
pub fn files_with_refusals(conn: &Connection, n: &Narrow<'_>) -> rusqlite::Result<Vec<Listed>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {FILE_COLS} FROM file f
         WHERE f.id IN (SELECT b.file_id FROM remote_rejection rr
                        JOIN batch b ON b.batch_id = rr.batch_id)
           AND (?1 = '' OR instr(?1, ',' || f.dataset || ',') > 0)
           AND (?2 = '' OR f.dataset = ?2)
           AND (?3 = '' OR instr(f.name, ?3) > 0)
           AND (?4 = '' OR substr(f.claimed_at, 1, 10) = ?4)
         ORDER BY f.id DESC LIMIT ?5"
    ))?;
    let rows = stmt.query_map(
        params![n.allowed, n.dataset, n.name, n.day, n.limit],
        listed,
    )?;
    rows.collect()
}

/// Records sealed and delivered per hour since `since` (a stored time
/// text, in the configured offset): `(hour "YYYY-MM-DDTHH", sealed,
/// delivered)`, hours with neither left out.
pub fn hourly(conn: &Connection, since: &str) -> rusqlite::Result<Vec<(String, i64, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT h, SUM(s), SUM(d) FROM (
             SELECT substr(sealed_at, 1, 13) AS h, count AS s, 0 AS d
             FROM batch WHERE sealed_at >= ?1 AND parent_id IS NULL
             UNION ALL
             SELECT substr(delivered_at, 1, 13), 0, COALESCE(accepted, count)
             FROM batch WHERE state = 'delivered' AND delivered_at >= ?1)
         GROUP BY h ORDER BY h",
    )?;
    let rows = stmt.query_map([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Per dataset with pending batches (`sealed` or `exported`): how many,
/// and the `sealed_at` of the oldest — the overview's "oldest pending"
/// per dataset, beside `figures::pending_routes`' per route.
pub fn pending_by_dataset(conn: &Connection) -> rusqlite::Result<Vec<(String, i64, String)>> {
    let mut stmt = conn.prepare(
        "SELECT dataset, COUNT(*), MIN(sealed_at) FROM batch
         WHERE state IN ('sealed', 'exported') GROUP BY dataset ORDER BY dataset",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// The library's last acknowledged witness head (docs/protocol.md §3
/// `auditHead`): the head carried by the delivered batch sealed last
/// (heads only grow in seal order), with its id and delivery time, and
/// whether the local log still holds that hash at that seq (`None`: the
/// entry was pruned by `fepd audit export --prune`). `None` before any
/// delivery, or when retention deleted that batch's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    pub batch_id: String,
    pub delivered_at: String,
    pub seq: i64,
    pub hash: String,
    pub matches: Option<bool>,
}

pub fn last_witness(conn: &Connection) -> rusqlite::Result<Option<Witnessed>> {
    let found: Option<(String, String, Vec<u8>)> = conn
        .query_row(
            "SELECT b.batch_id, b.delivered_at, bb.body FROM batch b
             JOIN batch_body bb ON bb.seq = b.seq
             WHERE b.state = 'delivered' AND b.delivered_at IS NOT NULL
             ORDER BY b.seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some(mut w) = found.and_then(|(batch_id, delivered_at, body)| {
        let body = super::packed::unpack(body).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let head = v.get("auditHead")?;
        Some(Witnessed {
            batch_id,
            delivered_at,
            seq: head.get("seq")?.as_i64()?,
            hash: head.get("hash")?.as_str()?.to_string(),
            matches: None,
        })
    }) else {
        return Ok(None);
    };
    let local: Option<String> = conn
        .query_row(
            "SELECT hash FROM exchange_log WHERE seq = ?1",
            [w.seq],
            |r| r.get(0),
        )
        .optional()?;
    w.matches = local.map(|h| h == w.hash);
    Ok(Some(w))
}

/// The last `retention_pass` entry: its time and its counts (what it
/// deleted), or `None` before the first pass.
pub fn last_retention(conn: &Connection) -> rusqlite::Result<Option<(String, serde_json::Value)>> {
    conn.query_row(
        "SELECT time, counts FROM exchange_log WHERE event = 'retention_pass'
         ORDER BY seq DESC LIMIT 1",
        [],
        |r| {
            let counts: Option<String> = r.get(1)?;
            let counts = counts
                .and_then(|c| serde_json::from_str(&c).ok())
                .unwrap_or_default();
            Ok((r.get(0)?, counts))
        },
    )
    .optional()
}
