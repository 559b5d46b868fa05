//! The admin listener (loopback): `/healthz`, `/metrics` (Prometheus text)
//! and `/status` (JSON). Every figure is read from the state database at
//! request time, so what it shows is what is committed.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rusqlite::Connection;
use serde_json::json;

use super::backpressure::Gate;

#[derive(Clone)]
struct Admin {
    db: PathBuf,
    gate: Arc<Gate>,
    /// For the progress of files in `work/` in `/status`.
    spool: PathBuf,
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    db: PathBuf,
    gate: Arc<Gate>,
    spool: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(Admin { db, gate, spool });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Per-dataset figures: (dataset, received, rejected, sealed, skipped,
/// delivered records, backlog batches, backlog records, parked batches,
/// retries).
type Row = (String, i64, i64, i64, i64, i64, i64, i64, i64, i64);

/// A metric: name, type, help text, and how to read it off a row.
type Series = (&'static str, &'static str, &'static str, fn(&Row) -> i64);

fn rows(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare(
        "WITH d AS (SELECT dataset FROM file UNION SELECT dataset FROM batch)
         SELECT d.dataset,
           (SELECT COALESCE(SUM(received), 0) FROM file f WHERE f.dataset = d.dataset),
           (SELECT COALESCE(SUM(rejected), 0) FROM file f WHERE f.dataset = d.dataset),
           (SELECT COALESCE(SUM(sealed), 0) FROM file f WHERE f.dataset = d.dataset),
           (SELECT COALESCE(SUM(skipped + stale), 0) FROM file f WHERE f.dataset = d.dataset),
           (SELECT COALESCE(SUM(count), 0) FROM batch b WHERE b.dataset = d.dataset AND state = 'delivered'),
           (SELECT COUNT(*) FROM batch b WHERE b.dataset = d.dataset AND state IN ('sealed', 'exported')),
           (SELECT COALESCE(SUM(count), 0) FROM batch b WHERE b.dataset = d.dataset AND state IN ('sealed', 'exported')),
           (SELECT COUNT(*) FROM batch b WHERE b.dataset = d.dataset AND state = 'parked'),
           (SELECT COALESCE(SUM(attempts), 0) FROM batch b WHERE b.dataset = d.dataset)
         FROM d ORDER BY d.dataset",
    )?;
    let r = stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
        ))
    })?;
    r.collect()
}

async fn read(a: &Admin) -> Result<Vec<Row>, (StatusCode, String)> {
    let db = a.db.clone();
    tokio::task::spawn_blocking(move || {
        let conn = crate::state::open_read_only(&db).map_err(|e| e.to_string())?;
        rows(&conn).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e))
}

async fn metrics(State(a): State<Admin>) -> impl IntoResponse {
    let rows = match read(&a).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut out = String::new();
    let series: [Series; 9] = [
        (
            "fepd_records_received_total",
            "counter",
            "Records read from input files.",
            |r| r.1,
        ),
        (
            "fepd_records_rejected_total",
            "counter",
            "Records rejected by validation.",
            |r| r.2,
        ),
        (
            "fepd_records_sealed_total",
            "counter",
            "Records sealed into batches.",
            |r| r.3,
        ),
        (
            "fepd_records_skipped_total",
            "counter",
            "Records skipped as unchanged or stale.",
            |r| r.4,
        ),
        (
            "fepd_records_delivered_total",
            "counter",
            "Records in delivered batches.",
            |r| r.5,
        ),
        (
            "fepd_backlog_batches",
            "gauge",
            "Batches waiting for delivery.",
            |r| r.6,
        ),
        (
            "fepd_backlog_records",
            "gauge",
            "Records waiting for delivery.",
            |r| r.7,
        ),
        (
            "fepd_parked_batches",
            "gauge",
            "Batches parked (dead letter).",
            |r| r.8,
        ),
        (
            "fepd_send_retries_total",
            "counter",
            "Failed send attempts.",
            |r| r.9,
        ),
    ];
    for (name, kind, help, f) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in &rows {
            let _ = writeln!(out, "{name}{{dataset=\"{}\"}} {}", r.0, f(r));
        }
    }
    let _ = writeln!(
        out,
        "# HELP fepd_intake_paused 1 while intake is paused (outbox backlog or disk).\n# TYPE fepd_intake_paused gauge\nfepd_intake_paused {}",
        u8::from(a.gate.is_paused())
    );
    let _ = writeln!(
        out,
        "# HELP fepd_disk_full 1 while a write failed for lack of space or free space is below min_free_bytes.\n# TYPE fepd_disk_full gauge\nfepd_disk_full {}",
        u8::from(a.gate.is_disk_full())
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn status(State(a): State<Admin>) -> impl IntoResponse {
    let (db, spool) = (a.db.clone(), a.spool.clone());
    // Files being read, per dataset (empty when none or unreadable).
    let work = tokio::task::spawn_blocking(move || {
        let conn = crate::state::open_read_only(&db).ok()?;
        let names = crate::state::files::datasets_in_progress(&conn).ok()?;
        let mut out = serde_json::Map::new();
        for d in names {
            let files = crate::daemon::progress::work_files(&conn, &spool, &d).ok()?;
            out.insert(d, json!(files));
        }
        Some(out)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    match read(&a).await {
        Ok(rows) => axum::Json(json!({
            "work_files": work,
            "intake_paused": a.gate.is_paused(),
            "disk_full": a.gate.is_disk_full(),
            "datasets": rows.iter().map(|r| json!({
                "dataset": r.0, "received": r.1, "rejected": r.2, "sealed": r.3, "skipped": r.4,
                "delivered": r.5, "backlog_batches": r.6, "backlog_records": r.7, "parked": r.8,
                "retries": r.9,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}
