//! `fepd audit trace KEY`: one record's history across files and batches.
//!
//! The record is found by its business key in `rejection.key` (records
//! validation refused), `batch_record.key` (records sealed into batches)
//! and `remote_rejection.key` (records the library refused). Each file and
//! batch involved contributes its exchange-log entries (claimed, verdict;
//! sealed, exported, sent, delivered with the receipt, parked, retried,
//! split), so a record rejected, corrected and re-sent shows both
//! histories in one timeline. Steps are ordered by time, then by log seq.
//! When the log was pruned, the file and batch rows stand in for the
//! entries that are gone. When retention deleted the key's per-record rows
//! (`[retention] record_rows`), its last sealed version (`record_state`,
//! kept for dedupe) still leads to its batch and that batch's entries;
//! earlier versions and validation verdicts of the key are then gone from
//! the trace (their exchange-log entries remain, by file and batch).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset};
use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Result, instant};
use crate::state::log::{ENTRY_COLS, StoredEntry};

/// The index of a record whose per-record row retention deleted (only
/// its last sealed version is known, from `record_state`).
const PRUNED: i64 = -1;

/// One step of a record's history.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub time: String,
    pub event: String,
    pub dataset: String,
    /// The file the step belongs to (its name as dropped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// The exchange-log entry this step is, if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    pub details: Value,
    #[serde(skip)]
    order: Order,
}

/// Sort key: instant, then log seq (steps without an entry of their own
/// sit right after the entry they belong to), then a tie-breaker.
type Order = (Option<DateTime<FixedOffset>>, i64, i64, i64);

struct FileInfo {
    dataset: String,
    name: String,
    claimed_at: String,
    finished_at: Option<String>,
    state: String,
    final_name: Option<String>,
}

struct BatchInfo {
    dataset: String,
    file_id: Option<i64>,
    parent_id: Option<String>,
    sealed_at: String,
    state: String,
    receipt_id: Option<String>,
    delivered_at: Option<String>,
    last_error: Option<String>,
    /// This key's place in the batch: idx, op, record hash.
    records: Vec<(i64, String, String)>,
}

fn log_entries(conn: &Connection, column: &str, value: &str) -> rusqlite::Result<Vec<StoredEntry>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENTRY_COLS} FROM exchange_log WHERE {column} = ?1 ORDER BY seq"
    ))?;
    let rows = stmt.query_map([value], StoredEntry::from_row)?;
    rows.collect()
}

fn step_of(e: &StoredEntry, dataset: &str, file: Option<&str>) -> Step {
    let mut details = serde_json::Map::new();
    if let Some(c) = &e.counts {
        details.insert("counts".into(), c.clone());
    }
    if let Some(Value::Object(d)) = &e.details {
        for (k, v) in d {
            details.insert(k.clone(), v.clone());
        }
    }
    Step {
        time: e.time.clone(),
        event: e.event.clone(),
        dataset: e.dataset.clone().unwrap_or_else(|| dataset.to_string()),
        file: e.file.clone().or_else(|| file.map(str::to_string)),
        batch: e.batch.clone(),
        seq: Some(e.seq),
        details: Value::Object(details),
        order: (instant(&e.time), e.seq, 0, 0),
    }
}

/// The history of the record `key`, optionally in one dataset only.
pub fn trace(conn: &Connection, key: &str, dataset: Option<&str>) -> Result<Vec<Step>> {
    let mut files: BTreeMap<i64, FileInfo> = BTreeMap::new();
    let mut batches: BTreeMap<String, BatchInfo> = BTreeMap::new();
    let mut steps = Vec::new();

    // Validation verdicts on this key.
    struct Rej {
        file_id: i64,
        ordinal: i64,
        position: String,
        field: String,
        title: String,
        rule: String,
        message: String,
        warning: bool,
    }
    let mut rejections = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT r.file_id, r.ordinal, r.position, r.field, r.title, r.rule, r.message, r.warning
             FROM rejection r JOIN file f ON f.id = r.file_id
             WHERE r.key = ?1 AND (?2 IS NULL OR f.dataset = ?2) ORDER BY r.file_id, r.ordinal",
        )?;
        let rows = stmt.query_map(params![key, dataset], |r| {
            Ok(Rej {
                file_id: r.get(0)?,
                ordinal: r.get(1)?,
                position: r.get(2)?,
                field: r.get(3)?,
                title: r.get(4)?,
                rule: r.get(5)?,
                message: r.get(6)?,
                warning: r.get::<_, i64>(7)? != 0,
            })
        })?;
        for r in rows {
            rejections.push(r?);
        }
    }

    // Batches holding this key.
    {
        let mut stmt = conn.prepare(
            "SELECT br.batch_id, br.idx, br.op, br.hash, b.dataset, b.file_id, b.parent_id, b.sealed_at,
                    b.state, b.receipt_id, b.delivered_at, b.last_error
             FROM batch_record br JOIN batch b ON b.batch_id = br.batch_id
             WHERE br.key = ?1 AND (?2 IS NULL OR b.dataset = ?2) ORDER BY b.seq, br.idx",
        )?;
        let mut rows = stmt.query(params![key, dataset])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let rec = (r.get(1)?, r.get(2)?, r.get(3)?);
            if let Some(b) = batches.get_mut(&id) {
                b.records.push(rec);
                continue;
            }
            batches.insert(
                id,
                BatchInfo {
                    dataset: r.get(4)?,
                    file_id: r.get(5)?,
                    parent_id: r.get(6)?,
                    sealed_at: r.get(7)?,
                    state: r.get(8)?,
                    receipt_id: r.get(9)?,
                    delivered_at: r.get(10)?,
                    last_error: r.get(11)?,
                    records: vec![rec],
                },
            );
        }
    }

    // The key's last sealed version, kept for dedupe when retention
    // (`record_rows`) has deleted its per-record rows: its batch still
    // shows, with the earlier history marked as pruned (index -1).
    {
        let mut stmt = conn.prepare(
            "SELECT rs.batch_id, rs.op, rs.hash, b.dataset, b.file_id, b.parent_id, b.sealed_at,
                    b.state, b.receipt_id, b.delivered_at, b.last_error
             FROM record_state rs JOIN batch b ON b.batch_id = rs.batch_id
             WHERE rs.key = ?1 AND (?2 IS NULL OR rs.dataset = ?2)",
        )?;
        let mut rows = stmt.query(params![key, dataset])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            if batches.contains_key(&id) {
                continue;
            }
            batches.insert(
                id,
                BatchInfo {
                    dataset: r.get(3)?,
                    file_id: r.get(4)?,
                    parent_id: r.get(5)?,
                    sealed_at: r.get(6)?,
                    state: r.get(7)?,
                    receipt_id: r.get(8)?,
                    delivered_at: r.get(9)?,
                    last_error: r.get(10)?,
                    records: vec![(PRUNED, r.get(1)?, r.get(2)?)],
                },
            );
        }
    }

    // The files these came from.
    let file_ids: BTreeSet<i64> = rejections
        .iter()
        .map(|r| r.file_id)
        .chain(batches.values().filter_map(|b| b.file_id))
        .collect();
    for id in file_ids {
        let f = conn.query_row(
            "SELECT dataset, name, claimed_at, finished_at, state, final_name FROM file WHERE id = ?1",
            [id],
            |r| {
                Ok(FileInfo {
                    dataset: r.get(0)?,
                    name: r.get(1)?,
                    claimed_at: r.get(2)?,
                    finished_at: r.get(3)?,
                    state: r.get(4)?,
                    final_name: r.get(5)?,
                })
            },
        )?;
        files.insert(id, f);
    }

    // Each file's own entries: claimed and its verdict.
    let mut claim_order: BTreeMap<i64, Order> = BTreeMap::new();
    for (id, f) in &files {
        let mine: Vec<StoredEntry> = log_entries(conn, "file", &f.name)?
            .into_iter()
            .filter(|e| {
                e.details
                    .as_ref()
                    .and_then(|d| d.get("fileId"))
                    .and_then(Value::as_i64)
                    == Some(*id)
                    && e.event != "records_skipped"
            })
            .collect();
        let mut claimed = false;
        let mut finished = false;
        for e in &mine {
            let s = step_of(e, &f.dataset, Some(&f.name));
            if e.event == "file_claimed" {
                claimed = true;
                claim_order.insert(*id, s.order);
            } else {
                finished = true;
            }
            steps.push(s);
        }
        // Pruned from the log: the file row stands in.
        let fallback = (instant(&f.claimed_at), i64::MAX, *id, 0);
        if !claimed {
            claim_order.insert(*id, fallback);
            steps.push(Step {
                time: f.claimed_at.clone(),
                event: "file_claimed".into(),
                dataset: f.dataset.clone(),
                file: Some(f.name.clone()),
                batch: None,
                seq: None,
                details: json!({"fileId": id}),
                order: fallback,
            });
        }
        if !finished && let Some(t) = &f.finished_at {
            steps.push(Step {
                time: t.clone(),
                event: format!("file_{}", f.state),
                dataset: f.dataset.clone(),
                file: Some(f.name.clone()),
                batch: None,
                seq: None,
                details: json!({"fileId": id, "finalName": f.final_name}),
                order: (instant(t), i64::MAX, *id, 3),
            });
        }
    }

    // The record's verdicts, right after its file's claim.
    for r in &rejections {
        let f = &files[&r.file_id];
        let (t, seq, _, _) = claim_order[&r.file_id];
        steps.push(Step {
            time: f.claimed_at.clone(),
            event: if r.warning {
                "record_warning"
            } else {
                "record_rejected"
            }
            .into(),
            dataset: f.dataset.clone(),
            file: Some(f.name.clone()),
            batch: None,
            seq: None,
            details: json!({
                "position": r.position, "ordinal": r.ordinal, "field": r.field,
                "title": r.title, "rule": r.rule, "message": r.message,
            }),
            order: (t, seq, 1, r.ordinal),
        });
    }

    // Each batch's entries, and the record's place in it.
    let mut delivered_order: BTreeMap<String, Order> = BTreeMap::new();
    let mut split_order: BTreeMap<String, Order> = BTreeMap::new();
    for (id, b) in &batches {
        let file = b
            .file_id
            .and_then(|f| files.get(&f))
            .map(|f| f.name.as_str());
        let mine = log_entries(conn, "batch", id)?;
        let mut sealed_at: Option<Order> = None;
        let mut outcome_logged = false;
        for e in &mine {
            let s = step_of(e, &b.dataset, file);
            match e.event.as_str() {
                "batch_sealed" => sealed_at = Some(s.order),
                "batch_delivered" => {
                    delivered_order.insert(id.clone(), s.order);
                    outcome_logged = true;
                }
                "batch_parked" => outcome_logged = true,
                "batch_split" => {
                    split_order.insert(id.clone(), s.order);
                }
                _ => {}
            }
            steps.push(s);
        }
        let placed = sealed_at
            .or_else(|| {
                b.parent_id
                    .as_ref()
                    .and_then(|p| split_order.get(p).copied())
            })
            .unwrap_or((instant(&b.sealed_at), i64::MAX, b.file_id.unwrap_or(0), 2));
        for (n, (idx, op, hash)) in b.records.iter().enumerate() {
            steps.push(Step {
                time: b.sealed_at.clone(),
                event: "record_sealed".into(),
                dataset: b.dataset.clone(),
                file: file.map(str::to_string),
                batch: Some(id.clone()),
                seq: None,
                details: if *idx == PRUNED {
                    json!({"index": null, "op": op, "hash": hash, "splitFrom": b.parent_id,
                           "note": "earlier history of this key deleted by retention (record_rows)"})
                } else {
                    json!({"index": idx, "op": op, "hash": hash, "splitFrom": b.parent_id})
                },
                order: (placed.0, placed.1, 1, n as i64),
            });
        }
        if !outcome_logged {
            let (event, time, details) = match b.state.as_str() {
                "delivered" => (
                    "batch_delivered",
                    b.delivered_at
                        .clone()
                        .unwrap_or_else(|| b.sealed_at.clone()),
                    json!({"receiptId": b.receipt_id}),
                ),
                "parked" => (
                    "batch_parked",
                    b.sealed_at.clone(),
                    json!({"reason": b.last_error}),
                ),
                _ => continue,
            };
            let order = (instant(&time), i64::MAX, b.file_id.unwrap_or(0), 5);
            if event == "batch_delivered" {
                delivered_order.insert(id.clone(), order);
            }
            steps.push(Step {
                time,
                event: event.into(),
                dataset: b.dataset.clone(),
                file: file.map(str::to_string),
                batch: Some(id.clone()),
                seq: None,
                details,
                order,
            });
        }
    }

    // Refusals by the library, right after the delivery that carried them.
    {
        let mut stmt = conn.prepare(
            "SELECT rr.batch_id, rr.idx, rr.code, rr.message, b.dataset, b.delivered_at, b.file_id
             FROM remote_rejection rr JOIN batch b ON b.batch_id = rr.batch_id
             WHERE rr.key = ?1 AND (?2 IS NULL OR b.dataset = ?2)",
        )?;
        let mut rows = stmt.query(params![key, dataset])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let idx: i64 = r.get(1)?;
            let time: Option<String> = r.get(5)?;
            let file_id: Option<i64> = r.get(6)?;
            let time = time.unwrap_or_default();
            let (t, seq, _, _) =
                delivered_order
                    .get(&id)
                    .copied()
                    .unwrap_or((instant(&time), i64::MAX, 0, 0));
            steps.push(Step {
                time,
                event: "record_library_rejected".into(),
                dataset: r.get(4)?,
                file: file_id.and_then(|f| files.get(&f)).map(|f| f.name.clone()),
                batch: Some(id),
                seq: None,
                details: json!({"index": idx, "code": r.get::<_, String>(2)?, "message": r.get::<_, String>(3)?}),
                order: (t, seq, 2, idx),
            });
        }
    }

    steps.sort_by_key(|s| s.order);
    Ok(steps)
}

/// One step as a table row.
pub fn table_row(s: &Step) -> String {
    let mut what = Vec::new();
    let d = &s.details;
    let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    match s.event.as_str() {
        "record_rejected" | "record_warning" => {
            what.push(format!(
                "{} {}({}) rule {}: {}",
                text("position").unwrap_or_default(),
                text("title").unwrap_or_default(),
                text("field").unwrap_or_default(),
                text("rule").unwrap_or_default(),
                text("message").unwrap_or_default()
            ));
        }
        "record_sealed" if d["index"].is_null() => what.push(format!(
            "{} {} (last sealed version; earlier history deleted by retention)",
            text("op").unwrap_or_default(),
            text("hash").unwrap_or_default()
        )),
        "record_sealed" => what.push(format!(
            "#{} {} {}",
            d["index"],
            text("op").unwrap_or_default(),
            text("hash").unwrap_or_default()
        )),
        "record_library_rejected" => what.push(format!(
            "{} {}",
            text("code").unwrap_or_default(),
            text("message").unwrap_or_default()
        )),
        _ => {
            for k in ["receiptId", "finalName", "reason", "outcome", "halves"] {
                if let Some(v) = d.get(k).filter(|v| !v.is_null()) {
                    what.push(format!(
                        "{k}={}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_string)
                    ));
                }
            }
        }
    }
    // File names, values and the library's messages come from outside:
    // escaped, so that none can start a forged row.
    use crate::oneline::escape;
    format!(
        "{:<25}  {:<24}  {:<14}  {:<24}  {:<30}  {}",
        escape(&s.time),
        escape(&s.event),
        escape(&s.dataset),
        escape(s.file.as_deref().unwrap_or("-")),
        escape(s.batch.as_deref().unwrap_or("-")),
        escape(&what.join(" "))
    )
}

pub fn table_header() -> String {
    format!(
        "{:<25}  {:<24}  {:<14}  {:<24}  {:<30}  what",
        "time", "event", "dataset", "file", "batch"
    )
}
