//! The exchange log: append-only and hash-chained.
//!
//! Each entry's `hash = SHA-256(prev_hash ‖ JCS(entry))`, where `prev_hash`
//! is the previous entry's hash as lowercase hex text (empty for the first
//! entry) and `entry` is the entry's fields without `hash`, absent ones
//! omitted. An entry is appended in the same transaction as the state change
//! it records, so the log never says more or less than what happened.
//! Entries never carry personal data: only names of files, batch ids,
//! counts and rule names.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use crate::canon;

/// What happened. The names are the `event` column, stable for auditors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    DaemonStarted,
    DaemonStopped,
    DaemonRecovered,
    ConfigLoaded,
    FileClaimed,
    FileDuplicate,
    FileDone,
    FileRejected,
    FileEmpty,
    RecordsSkipped,
    BatchSealed,
    BatchExported,
    BatchSent,
    BatchDelivered,
    RecordsLibraryRejected,
    BatchParked,
    BatchRetried,
    BatchSplit,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::DaemonStarted => "daemon_started",
            Event::DaemonStopped => "daemon_stopped",
            Event::DaemonRecovered => "daemon_recovered",
            Event::ConfigLoaded => "config_loaded",
            Event::FileClaimed => "file_claimed",
            Event::FileDuplicate => "file_duplicate",
            Event::FileDone => "file_done",
            Event::FileRejected => "file_rejected",
            Event::FileEmpty => "file_empty",
            Event::RecordsSkipped => "records_skipped",
            Event::BatchSealed => "batch_sealed",
            Event::BatchExported => "batch_exported",
            Event::BatchSent => "batch_sent",
            Event::BatchDelivered => "batch_delivered",
            Event::RecordsLibraryRejected => "records_library_rejected",
            Event::BatchParked => "batch_parked",
            Event::BatchRetried => "batch_retried",
            Event::BatchSplit => "batch_split",
        }
    }
}

/// One entry to append; `seq`, `time` and `hash` are filled in by [`append`].
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub dataset: Option<&'a str>,
    pub file: Option<&'a str>,
    pub batch: Option<&'a str>,
    pub counts: Option<Value>,
    pub details: Option<Value>,
}

/// The log head: the last entry's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// The current head; `seq` 0 and an empty hash for an empty log.
pub fn head(conn: &Connection) -> rusqlite::Result<Head> {
    Ok(conn
        .query_row(
            "SELECT seq, hash FROM exchange_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| {
                Ok(Head {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                })
            },
        )
        .optional()?
        .unwrap_or(Head {
            seq: 0,
            hash: String::new(),
        }))
}

/// The canonical text an entry's hash covers.
#[allow(clippy::too_many_arguments)]
pub fn canonical_entry(
    seq: i64,
    time: &str,
    event: &str,
    dataset: Option<&str>,
    file: Option<&str>,
    batch: Option<&str>,
    counts: Option<&Value>,
    details: Option<&Value>,
) -> String {
    let mut m = Map::new();
    m.insert("seq".into(), json!(seq));
    m.insert("time".into(), json!(time));
    m.insert("event".into(), json!(event));
    for (k, v) in [("dataset", dataset), ("file", file), ("batch", batch)] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [("counts", counts), ("details", details)] {
        if let Some(v) = v {
            m.insert(k.into(), v.clone());
        }
    }
    canon::to_canonical(&Value::Object(m))
}

/// The chained hash of an entry given its predecessor's hash.
pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut buf = Vec::with_capacity(prev_hash.len() + canonical.len());
    buf.extend_from_slice(prev_hash.as_bytes());
    buf.extend_from_slice(canonical.as_bytes());
    canon::sha256_hex(&buf)
}

/// Appends `entry` as event `event`; returns the new head. Call inside the
/// transaction that makes the change the entry records.
pub fn append(
    conn: &Connection,
    tz: chrono::FixedOffset,
    event: Event,
    entry: Entry<'_>,
) -> rusqlite::Result<Head> {
    let prev = head(conn)?;
    let seq = prev.seq + 1;
    let time = super::now_text(tz);
    let canonical = canonical_entry(
        seq,
        &time,
        event.as_str(),
        entry.dataset,
        entry.file,
        entry.batch,
        entry.counts.as_ref(),
        entry.details.as_ref(),
    );
    let hash = chain_hash(&prev.hash, &canonical);
    conn.execute(
        "INSERT INTO exchange_log (seq, time, event, dataset, file, batch, counts, details, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            seq,
            time,
            event.as_str(),
            entry.dataset,
            entry.file,
            entry.batch,
            entry.counts.map(|v| v.to_string()),
            entry.details.map(|v| v.to_string()),
            hash
        ],
    )?;
    Ok(Head { seq, hash })
}

/// Where the chain first fails, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The entry's stored hash does not match its content and predecessor.
    BadHash { seq: i64 },
    /// Sequence numbers are not consecutive (an entry was deleted or inserted).
    Gap { expected: i64, found: i64 },
}

/// Recomputes the whole chain; `Ok(n)` with the number of entries checked.
pub fn verify(conn: &Connection) -> rusqlite::Result<std::result::Result<i64, Break>> {
    let mut stmt = conn.prepare(
        "SELECT seq, time, event, dataset, file, batch, counts, details, hash
         FROM exchange_log ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut prev_hash = String::new();
    let mut expected: Option<i64> = None;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        if let Some(e) = expected
            && seq != e
        {
            return Ok(Err(Break::Gap {
                expected: e,
                found: seq,
            }));
        }
        let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str::<Value>(&s).ok());
        let counts = parse(r.get(6)?);
        let details = parse(r.get(7)?);
        let canonical = canonical_entry(
            seq,
            &r.get::<_, String>(1)?,
            &r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?.as_deref(),
            r.get::<_, Option<String>>(4)?.as_deref(),
            r.get::<_, Option<String>>(5)?.as_deref(),
            counts.as_ref(),
            details.as_ref(),
        );
        let stored: String = r.get(8)?;
        let want = chain_hash(&prev_hash, &canonical);
        if stored != want {
            return Ok(Err(Break::BadHash { seq }));
        }
        prev_hash = stored;
        expected = Some(seq + 1);
        n += 1;
    }
    Ok(Ok(n))
}
