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
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Result, instant};
use crate::state::log::StoredEntry;
use crate::state::trace::{self as q, TracedBatch, TracedFile};

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

struct BatchInfo {
    row: TracedBatch,
    /// This key's place in the batch: idx (`None`: only its last sealed
    /// version is known), op, record hash.
    records: Vec<(Option<i64>, String, String)>,
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
    let mut files: BTreeMap<i64, TracedFile> = BTreeMap::new();
    let mut batches: BTreeMap<String, BatchInfo> = BTreeMap::new();
    let mut steps = Vec::new();

    // Validation verdicts on this key.
    let rejections = q::rejections_of_key(conn, key, dataset)?;

    // Batches holding this key.
    let datasets = q::datasets(conn, dataset)?;
    for r in q::records_of_key(conn, key, &datasets)? {
        let rec = (r.idx, r.op, r.hash);
        match batches.get_mut(&r.batch_id) {
            Some(b) => b.records.push(rec),
            None => {
                batches.insert(
                    r.batch_id,
                    BatchInfo {
                        row: r.batch,
                        records: vec![rec],
                    },
                );
            }
        }
    }

    // The key's last sealed version, kept for dedupe when retention
    // (`record_rows`) has deleted its per-record rows: its batch still
    // shows, with the earlier history marked as pruned (no index).
    for r in q::last_sealed_of_key(conn, key, &datasets)? {
        if batches.contains_key(&r.batch_id) {
            continue;
        }
        batches.insert(
            r.batch_id,
            BatchInfo {
                row: r.batch,
                records: vec![(r.idx, r.op, r.hash)],
            },
        );
    }

    // The files these came from.
    let file_ids: BTreeSet<i64> = rejections
        .iter()
        .map(|r| r.file_id)
        .chain(batches.values().filter_map(|b| b.row.file_id))
        .collect();
    for id in file_ids {
        files.insert(id, q::file(conn, id)?);
    }

    // Each file's own entries: claimed and its verdict.
    let mut claim_order: BTreeMap<i64, Order> = BTreeMap::new();
    for (id, f) in &files {
        let mine: Vec<StoredEntry> = q::entries_of_file(conn, &f.name)?
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
    for (id, BatchInfo { row: b, records }) in &batches {
        let file = b
            .file_id
            .and_then(|f| files.get(&f))
            .map(|f| f.name.as_str());
        let mine = q::entries_of_batch(conn, id)?;
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
        for (n, (idx, op, hash)) in records.iter().enumerate() {
            steps.push(Step {
                time: b.sealed_at.clone(),
                event: "record_sealed".into(),
                dataset: b.dataset.clone(),
                file: file.map(str::to_string),
                batch: Some(id.clone()),
                seq: None,
                details: match idx {
                    None => {
                        json!({"index": null, "op": op, "hash": hash, "splitFrom": b.parent_id,
                               "note": "earlier history of this key deleted by retention (record_rows)"})
                    }
                    Some(idx) => {
                        json!({"index": idx, "op": op, "hash": hash, "splitFrom": b.parent_id})
                    }
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
    for r in q::refusals_of_key(conn, key, dataset)? {
        let time = r.delivered_at.unwrap_or_default();
        let (t, seq, _, _) =
            delivered_order
                .get(&r.batch_id)
                .copied()
                .unwrap_or((instant(&time), i64::MAX, 0, 0));
        steps.push(Step {
            time,
            event: "record_library_rejected".into(),
            dataset: r.dataset,
            file: r
                .file_id
                .and_then(|f| files.get(&f))
                .map(|f| f.name.clone()),
            batch: Some(r.batch_id),
            seq: None,
            details: json!({"index": r.idx, "code": r.code, "message": r.message}),
            order: (t, seq, 2, r.idx),
        });
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
