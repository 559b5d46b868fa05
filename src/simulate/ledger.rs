//! What the simulated library keeps, in SQLite: batches (with their audit
//! heads), the records it accepted, the records it refused, and event
//! counters. Every function here takes the connection and runs on the store
//! thread; nothing here knows about HTTP.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::value::RawValue;

use super::options::Route;
use super::store::StoreError;
use super::verify::VerifiedBatch;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
    id             INTEGER PRIMARY KEY,
    sender         TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    dataset        TEXT NOT NULL,
    route          TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    record_count   INTEGER NOT NULL,
    digest         TEXT NOT NULL,
    audit_seq      INTEGER NOT NULL,
    audit_hash     TEXT NOT NULL,
    receipt_id     TEXT NOT NULL,
    accepted       INTEGER NOT NULL,
    received_at    TEXT NOT NULL,
    replay_of      TEXT,                -- JSON array of batchIds, for a replay (补传)
    UNIQUE (sender, batch_id)
);
CREATE TABLE IF NOT EXISTS records (
    id      INTEGER PRIMARY KEY,
    batch   INTEGER NOT NULL REFERENCES batches (id),
    idx     INTEGER NOT NULL,
    sender  TEXT NOT NULL,
    dataset TEXT NOT NULL,
    key     TEXT NOT NULL,
    op      TEXT NOT NULL,
    hash    TEXT NOT NULL,
    data    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    batch   INTEGER NOT NULL REFERENCES batches (id),
    idx     INTEGER NOT NULL,
    key     TEXT NOT NULL,
    code    TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (batch, idx)
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Opens the database and makes sure the schema exists.
pub(crate) fn open(path: Option<&Path>) -> Result<Connection, StoreError> {
    let open = || -> rusqlite::Result<Connection> {
        let conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        // WAL lets the /sim/* readers of an operator's sqlite3 shell look
        // while pushes commit. synchronous=NORMAL survives the simulator
        // being killed (what rehearsals do) without an fsync per batch,
        // which the throughput target could not afford.
        if path.is_some() {
            let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // A ledger written before replays were counted.
        let has_replay_of: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('batches') WHERE name = 'replay_of'",
            [],
            |r| r.get(0),
        )?;
        if !has_replay_of {
            conn.execute_batch("ALTER TABLE batches ADD COLUMN replay_of TEXT")?;
        }
        Ok(conn)
    };
    open().map_err(|source| StoreError::Open {
        path: path.map_or_else(|| ":memory:".into(), Path::to_path_buf),
        source,
    })
}

/// The library's answer to a stored or recognised batch.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Receipt {
    pub receipt_id: String,
    pub accepted: u64,
    pub rejected: Vec<Rejection>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// A record the library refused (`data.rejected[]`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Rejection {
    pub index: usize,
    pub key: String,
    pub code: String,
    pub message: String,
}

pub(crate) enum Outcome {
    /// Stored now.
    Stored(Receipt),
    /// The same (sender, batchId) with the same digest was stored before;
    /// the receipt is the original one.
    Duplicate(Receipt),
    /// The same (sender, batchId) was stored before with another digest.
    Conflict,
}

/// Stores `batch` unless its (sender, batchId) is already known, all in one
/// transaction: either the batch and every record are kept, or nothing is.
pub(crate) fn accept(
    conn: &mut Connection,
    route: &Route,
    batch: &VerifiedBatch,
    rejected: Vec<Rejection>,
    receipt_id: String,
) -> rusqlite::Result<Outcome> {
    let tx = conn.transaction()?;
    let existing = tx
        .query_row(
            "SELECT id, digest, receipt_id, accepted FROM batches
             WHERE sender = ?1 AND batch_id = ?2",
            params![batch.sender, batch.batch_id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)? as u64,
                ))
            },
        )
        .optional()?;
    if let Some((id, digest, receipt_id, accepted)) = existing {
        if digest != batch.digest {
            return Ok(Outcome::Conflict);
        }
        let rejected = rejections_of(&tx, id)?;
        bump(&tx, "duplicates_answered")?;
        tx.commit()?;
        return Ok(Outcome::Duplicate(Receipt {
            receipt_id,
            accepted,
            rejected,
            duplicate: true,
        }));
    }

    let accepted = (batch.records.len() - rejected.len()) as u64;
    tx.execute(
        "INSERT INTO batches (sender, batch_id, dataset, route, schema_version,
             created_at, record_count, digest, audit_seq, audit_hash,
             receipt_id, accepted, received_at, replay_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            batch.sender,
            batch.batch_id,
            batch.dataset,
            route.path(),
            batch.schema_version,
            batch.created_at,
            batch.records.len() as i64,
            batch.digest,
            batch.audit_seq,
            batch.audit_hash,
            receipt_id,
            accepted as i64,
            chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            (!batch.replay_of.is_empty())
                .then(|| serde_json::to_string(&batch.replay_of).expect("ids serialise")),
        ],
    )?;
    let id = tx.last_insert_rowid();
    {
        let mut refused = vec![false; batch.records.len()];
        let mut insert = tx.prepare_cached(
            "INSERT INTO rejections (batch, idx, key, code, message)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for r in &rejected {
            refused[r.index] = true;
            insert.execute(params![id, r.index as i64, r.key, r.code, r.message])?;
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO records (batch, idx, sender, dataset, key, op, hash, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (i, r) in batch.records.iter().enumerate() {
            if refused[i] {
                continue;
            }
            insert.execute(params![
                id,
                i as i64,
                batch.sender,
                batch.dataset,
                r.key,
                r.op.as_str(),
                r.hash,
                r.data
            ])?;
        }
    }
    tx.commit()?;
    Ok(Outcome::Stored(Receipt {
        receipt_id,
        accepted,
        rejected,
        duplicate: false,
    }))
}

fn rejections_of(conn: &Connection, batch: i64) -> rusqlite::Result<Vec<Rejection>> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, key, code, message FROM rejections WHERE batch = ?1 ORDER BY idx",
    )?;
    stmt.query_map([batch], |r| {
        Ok(Rejection {
            index: r.get::<_, i64>(0)? as usize,
            key: r.get(1)?,
            code: r.get(2)?,
            message: r.get(3)?,
        })
    })?
    .collect()
}

/// Adds one to an event counter.
pub(crate) fn bump(conn: &Connection, counter: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
    )?
    .execute([counter])?;
    Ok(())
}

/// The counters of `GET /sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SimStats {
    /// Batches stored (probes and duplicates are not stored).
    pub batches: u64,
    /// Records stored (accepted).
    pub records: u64,
    /// Distinct (sender, dataset, key) among stored records.
    pub distinct_keys: u64,
    /// Surplus copies of a record (same sender, dataset, key and hash) that
    /// arrived in more than one stored batch: each such record counts once
    /// per batch beyond the first. Zero proves exactly-once in effect.
    /// Replays (`replayOf`) are asked for, and counted apart.
    pub records_delivered_more_than_once: u64,
    /// Stored batches marked `replayOf` (补传, docs/protocol.md §3).
    #[serde(default)]
    pub replay_batches: u64,
    /// Records those replays carried.
    #[serde(default)]
    pub records_replayed: u64,
    /// Pushes answered `duplicate: true`.
    pub duplicates_answered: u64,
    /// Records refused one by one (`data.rejected[]`).
    pub rejected: u64,
    /// Zero-record probe batches answered.
    pub probes: u64,
    /// 409 409001 answers.
    pub conflicts: u64,
    /// 400 400001 answers.
    pub malformed: u64,
    /// 400 400002 answers.
    pub mismatched: u64,
    /// 400 400003 answers.
    pub unknown_route: u64,
    /// 401 401001 answers.
    pub unauthorized: u64,
    /// 403 403001 answers: a batch whose `sender` is not the credential's.
    #[serde(default)]
    pub foreign_sender: u64,
    /// 413 413001 answers.
    pub too_large: u64,
    /// Injected 503 answers.
    pub faults_injected: u64,
    /// Answers withheld by closing the connection after storing.
    pub responses_dropped: u64,
    /// Tokens issued, both variants.
    pub tokens_issued: u64,
    /// Token requests refused (bad credentials, bad signature, stale time).
    pub token_failures: u64,
    /// Token requests answered 429 because the client was locked out.
    pub token_lockouts: u64,
    /// 500 answers (the simulator's own failures).
    pub internal_errors: u64,
    /// Keys (per sender and dataset) whose records arrived out of seal
    /// order: a stored batch carried the key after a batch sealed later
    /// that carried it too (docs/protocol.md §4 rule 3). Seal order is
    /// `batchId` order: a ULID, increasing as the sender seals, and the
    /// halves of a split (`PARENT.1`, `PARENT.2`) sort right after their
    /// parent. Zero proves the sender kept order per key.
    #[serde(default)]
    pub keys_out_of_order: u64,
}

/// Keys of which some batch arrived (stored or refused one by one) after a
/// batch with a greater `batchId` (sealed later) that carried the same key.
/// Computed when asked, so a push pays nothing for it.
const KEYS_OUT_OF_ORDER: &str = "
    SELECT COUNT(*) FROM (
        SELECT DISTINCT sender, dataset, key FROM (
            SELECT b.sender, b.dataset, x.key, b.batch_id,
                   MAX(b.batch_id) OVER (
                       PARTITION BY b.sender, b.dataset, x.key ORDER BY b.id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS sealed_later
            FROM (SELECT batch, key FROM records
                  UNION ALL SELECT batch, key FROM rejections) x
            JOIN batches b ON b.id = x.batch)
        WHERE sealed_later > batch_id)";

pub(crate) fn stats(conn: &Connection) -> rusqlite::Result<SimStats> {
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0).map(|n| n as u64));
    let mut stats = SimStats {
        batches: count("SELECT COUNT(*) FROM batches")?,
        records: count("SELECT COUNT(*) FROM records")?,
        distinct_keys: count(
            "SELECT COUNT(*) FROM (SELECT DISTINCT sender, dataset, key FROM records)",
        )?,
        records_delivered_more_than_once: count(
            "SELECT COALESCE(SUM(n - 1), 0) FROM (
                 SELECT COUNT(DISTINCT r.batch) AS n
                 FROM records r JOIN batches b ON b.id = r.batch
                 WHERE b.replay_of IS NULL
                 GROUP BY r.sender, r.dataset, r.key, r.hash HAVING n > 1)",
        )?,
        replay_batches: count("SELECT COUNT(*) FROM batches WHERE replay_of IS NOT NULL")?,
        records_replayed: count(
            "SELECT COUNT(*) FROM records r JOIN batches b ON b.id = r.batch
             WHERE b.replay_of IS NOT NULL",
        )?,
        rejected: count("SELECT COUNT(*) FROM rejections")?,
        keys_out_of_order: count(KEYS_OUT_OF_ORDER)?,
        ..SimStats::default()
    };
    let mut stmt = conn.prepare("SELECT name, value FROM counters")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    for row in rows {
        let (name, value) = row?;
        let slot = match name.as_str() {
            "duplicates_answered" => &mut stats.duplicates_answered,
            "probes" => &mut stats.probes,
            "conflicts" => &mut stats.conflicts,
            "malformed" => &mut stats.malformed,
            "mismatched" => &mut stats.mismatched,
            "unknown_route" => &mut stats.unknown_route,
            "unauthorized" => &mut stats.unauthorized,
            "foreign_sender" => &mut stats.foreign_sender,
            "too_large" => &mut stats.too_large,
            "faults_injected" => &mut stats.faults_injected,
            "responses_dropped" => &mut stats.responses_dropped,
            "tokens_issued" => &mut stats.tokens_issued,
            "token_failures" => &mut stats.token_failures,
            "token_lockouts" => &mut stats.token_lockouts,
            "internal_errors" => &mut stats.internal_errors,
            _ => continue,
        };
        *slot = value;
    }
    Ok(stats)
}

/// A stored record, as `GET /sim/records` lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredRecord {
    pub batch_id: String,
    pub receipt_id: String,
    pub sender: String,
    pub dataset: String,
    pub index: i64,
    pub key: String,
    pub op: String,
    pub hash: String,
    pub data: Box<RawValue>,
}

/// Filters of `GET /sim/records` and `GET /sim/batches`; unset matches all.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct Filter {
    pub sender: Option<String>,
    pub dataset: Option<String>,
    pub key: Option<String>,
}

/// Stored records in arrival order.
pub(crate) fn records(conn: &Connection, f: &Filter) -> rusqlite::Result<Vec<StoredRecord>> {
    let mut stmt = conn.prepare(
        "SELECT b.batch_id, b.receipt_id, r.sender, r.dataset, r.idx, r.key, r.op,
                r.hash, r.data
         FROM records r JOIN batches b ON b.id = r.batch
         WHERE (?1 IS NULL OR r.sender = ?1)
           AND (?2 IS NULL OR r.dataset = ?2)
           AND (?3 IS NULL OR r.key = ?3)
         ORDER BY r.id",
    )?;
    stmt.query_map(params![f.sender, f.dataset, f.key], |r| {
        let data: String = r.get(8)?;
        Ok(StoredRecord {
            batch_id: r.get(0)?,
            receipt_id: r.get(1)?,
            sender: r.get(2)?,
            dataset: r.get(3)?,
            index: r.get(4)?,
            key: r.get(5)?,
            op: r.get(6)?,
            hash: r.get(7)?,
            // The text was produced by our own canonical serialiser.
            data: RawValue::from_string(data).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, e.into())
            })?,
        })
    })?
    .collect()
}

/// A stored batch, as `GET /sim/batches` lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredBatch {
    pub batch_id: String,
    pub receipt_id: String,
    pub sender: String,
    pub dataset: String,
    pub route: String,
    pub count: i64,
    pub accepted: i64,
    pub digest: String,
    pub audit_head: AuditHead,
    pub received_at: String,
    /// The batches a replay re-sends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replay_of: Vec<String>,
}

/// A sender's exchange-log head as carried by one batch.
#[derive(Debug, Serialize)]
pub(crate) struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

/// Stored batches in arrival order.
pub(crate) fn batches(conn: &Connection, f: &Filter) -> rusqlite::Result<Vec<StoredBatch>> {
    let mut stmt = conn.prepare(
        "SELECT batch_id, receipt_id, sender, dataset, route, record_count, accepted,
                digest, audit_seq, audit_hash, received_at, replay_of
         FROM batches
         WHERE (?1 IS NULL OR sender = ?1) AND (?2 IS NULL OR dataset = ?2)
         ORDER BY id",
    )?;
    stmt.query_map(params![f.sender, f.dataset], |r| {
        Ok(StoredBatch {
            batch_id: r.get(0)?,
            receipt_id: r.get(1)?,
            sender: r.get(2)?,
            dataset: r.get(3)?,
            route: r.get(4)?,
            count: r.get(5)?,
            accepted: r.get(6)?,
            digest: r.get(7)?,
            audit_head: AuditHead {
                seq: r.get(8)?,
                hash: r.get(9)?,
            },
            received_at: r.get(10)?,
            replay_of: r
                .get::<_, Option<String>>(11)?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
        })
    })?
    .collect()
}

/// The audit heads one sender's batches carried, in arrival order.
pub(crate) fn audit_heads(conn: &Connection, sender: &str) -> rusqlite::Result<Vec<AuditHead>> {
    let mut stmt =
        conn.prepare("SELECT audit_seq, audit_hash FROM batches WHERE sender = ?1 ORDER BY id")?;
    stmt.query_map([sender], |r| {
        Ok(AuditHead {
            seq: r.get(0)?,
            hash: r.get(1)?,
        })
    })?
    .collect()
}
