//! The admin listener: `/healthz`, `/metrics` (Prometheus / OpenMetrics
//! text, through `prometheus-client`) and `/status` (the same report as
//! `fepd status --json`). Figures are read from the state database at
//! request time, so what it shows is what is committed; liveness comes
//! from the [`Health`] the running parts keep up to date.
//!
//! Loopback by default; a remote address needs `allow_remote = true` and a
//! bearer token (`token_file`), checked on every request.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::backpressure::Gate;
use super::health::{Health, RouteLabel};
use super::lock::{Beat, Holder, Presence};
use super::status::{self, Live, Report};
use crate::config::Config;
use crate::state::StoreError;

/// What the admin handlers and the heartbeat read.
#[derive(Clone)]
pub struct Admin {
    pub cfg: Arc<Config>,
    pub gate: Arc<Gate>,
    pub health: Arc<Health>,
    pub holder: Holder,
    /// Bearer token every request must carry, when configured.
    pub token: Option<Arc<str>>,
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    admin: Admin,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .layer(axum::middleware::from_fn_with_state(
            admin.clone(),
            require_token,
        ))
        .with_state(admin);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn require_token(State(a): State<Admin>, req: Request, next: Next) -> Response {
    if let Some(token) = &a.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "bearer token required\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// Compares without an early exit, so the time taken does not tell how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Admin {
    /// Why the daemon is not healthy right now; empty when it is.
    pub fn live(&self) -> Result<Live, StoreError> {
        let mut problems = self.health.problems();
        if self.gate.is_disk_full() {
            problems.push("intake paused: disk full or below min_free_bytes".into());
        } else if self.gate.backlog_paused() {
            problems.push("intake paused: the outbox backlog is at its high-water mark".into());
        }
        problems.extend(self.stalled_routes()?);
        Ok(Live {
            intake_paused: self.gate.is_paused(),
            disk_full: self.gate.is_disk_full(),
            problems,
        })
    }

    /// Routes with backlog that have not delivered for `stall_secs`
    /// (counting from this loop's start when they have not delivered in
    /// it), unless all their datasets wait for a closed send window.
    fn stalled_routes(&self) -> Result<Vec<String>, StoreError> {
        let stall = self.cfg.admin.stall_secs;
        if stall == 0 {
            return Ok(Vec::new());
        }
        let db = self.cfg.state_db();
        if !db.exists() {
            return Ok(Vec::new());
        }
        let conn = crate::state::open_read_only(&db)?;
        let routes = status::routes(&conn, chrono::Utc::now().timestamp_millis())?;
        let tz = self.cfg.tz();
        let now = chrono::Utc::now().with_timezone(&tz).time();
        let mut out = Vec::new();
        for r in routes {
            if (r.oldest_pending_secs as u64) < stall {
                continue;
            }
            let quiet = self
                .health
                .last_delivery(&r.route)
                .unwrap_or(self.health.started())
                .elapsed()
                .as_secs();
            if quiet < stall {
                continue;
            }
            let mut datasets = self.cfg.datasets.iter().filter(|d| d.route() == r.route);
            let waiting_for_window = datasets.clone().next().is_some()
                && self.cfg.sink.mode == crate::config::SinkMode::Http
                && datasets.all(|d| d.send_window.is_some_and(|w| !w.contains(now)));
            if waiting_for_window {
                continue;
            }
            out.push(format!(
                "route {}: {} batch(es) pending, the oldest for {} s, no delivery for {} s (stall_secs = {stall})",
                r.route, r.pending_batches, r.oldest_pending_secs, quiet
            ));
        }
        Ok(out)
    }

    /// The heartbeat the intake loop writes: now, and what [`Admin::live`]
    /// says.
    pub fn beat(&self) -> Beat {
        let live = self.live().unwrap_or_else(|e| Live {
            problems: vec![format!("state database unreadable: {e:#}")],
            ..Default::default()
        });
        let tz = self.cfg.tz();
        let now = chrono::Utc::now();
        Beat {
            pid: self.holder.pid,
            time: now
                .with_timezone(&tz)
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            time_ms: now.timestamp_millis(),
            intake_paused: live.intake_paused,
            disk_full: live.disk_full,
            problems: live.problems,
        }
    }

    /// [`Admin::report`] as a shared function (the alerts' and the fleet
    /// heartbeat's source).
    pub fn reporter(&self) -> Arc<dyn Fn() -> Result<Report, StoreError> + Send + Sync> {
        let a = self.clone();
        Arc::new(move || a.report())
    }

    /// The status report as the daemon sees it (what `/status` answers).
    pub fn report(&self) -> Result<Report, StoreError> {
        let beat = self.beat();
        let live = Live {
            intake_paused: beat.intake_paused,
            disk_full: beat.disk_full,
            problems: beat.problems.clone(),
        };
        let presence = Presence::Running {
            holder: self.holder.clone(),
            beat: Some(beat),
        };
        status::report(&self.cfg, &presence, Some(live))
    }
}

async fn blocking<T: Send + 'static>(
    a: &Admin,
    f: impl FnOnce(&Admin) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let a = a.clone();
    match tokio::task::spawn_blocking(move || f(&a)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}\n")).into_response()),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()),
    }
}

async fn healthz(State(a): State<Admin>) -> Response {
    match blocking(&a, |a| a.live()).await {
        Ok(live) if live.problems.is_empty() => "ok\n".into_response(),
        Ok(live) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy:\n{}\n", live.problems.join("\n")),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn status(State(a): State<Admin>) -> Response {
    match blocking(&a, |a| a.report()).await {
        Ok(r) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string_pretty(&r).unwrap_or_default(),
        )
            .into_response(),
        Err(r) => r,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatasetLabel {
    dataset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

async fn metrics(State(a): State<Admin>) -> Response {
    let report = match blocking(&a, |a| a.report()).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry(&a, &report)) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The metrics of one scrape: figures from the report, plus the histogram
/// and counters the running parts keep.
fn registry(a: &Admin, r: &Report) -> Registry {
    let mut reg = Registry::default();
    type Figure = fn(&status::DatasetStatus) -> i64;
    let counters: [(&str, &str, Figure); 6] = [
        (
            "fepd_records_received",
            "Records read from input files",
            |d| d.received,
        ),
        (
            "fepd_records_rejected",
            "Records rejected by validation",
            |d| d.rejected,
        ),
        ("fepd_records_sealed", "Records sealed into batches", |d| {
            d.sealed
        }),
        (
            "fepd_records_skipped",
            "Records skipped as unchanged or stale",
            |d| d.skipped,
        ),
        (
            "fepd_records_delivered",
            "Records in delivered batches",
            |d| d.delivered,
        ),
        ("fepd_send_retries", "Failed send attempts", |d| d.retries),
    ];
    for (name, help, f) in counters {
        let fam = Family::<DatasetLabel, Counter>::default();
        for d in &r.datasets {
            fam.get_or_create(&DatasetLabel {
                dataset: d.dataset.clone(),
            })
            .inc_by(f(d).max(0) as u64);
        }
        reg.register(name, help, fam);
    }
    let gauges: [(&str, &str, Figure); 3] = [
        (
            "fepd_backlog_batches",
            "Batches waiting for delivery",
            |d| d.backlog_batches,
        ),
        (
            "fepd_backlog_records",
            "Records waiting for delivery",
            |d| d.backlog_records,
        ),
        ("fepd_parked_batches", "Batches parked (dead letter)", |d| {
            d.parked
        }),
    ];
    for (name, help, f) in gauges {
        let fam = Family::<DatasetLabel, Gauge>::default();
        for d in &r.datasets {
            fam.get_or_create(&DatasetLabel {
                dataset: d.dataset.clone(),
            })
            .set(f(d));
        }
        reg.register(name, help, fam);
    }
    // SQL sources (docs/sql-sources.md): per source, rows of the last poll,
    // the lag behind the source's clock and whether the last poll failed.
    type SourceFigure = fn(&status::SqlSourceStatus) -> Option<i64>;
    let sources: [(&str, &str, SourceFigure); 4] = [
        (
            "fepd_sql_source_rows_read",
            "Rows the last poll of a SQL source read (re-reads included)",
            |s| s.last_poll.as_ref().map(|p| p.rows_read),
        ),
        (
            "fepd_sql_source_rows_taken",
            "Rows the last poll of a SQL source took for validation and dedupe",
            |s| s.last_poll.as_ref().map(|p| p.rows_taken),
        ),
        (
            "fepd_sql_source_lag_seconds",
            "The SQL source's clock at the last poll less the watermark's cd_time",
            |s| s.lag_secs,
        ),
        (
            "fepd_sql_source_failing",
            "1 while the SQL source's last poll failed",
            |s| Some(s.last_poll.as_ref().is_some_and(|p| p.error.is_some()) as i64),
        ),
    ];
    for (name, help, f) in sources {
        let fam = Family::<DatasetLabel, Gauge>::default();
        for s in &r.sql_sources {
            if let Some(v) = f(s) {
                fam.get_or_create(&DatasetLabel {
                    dataset: s.dataset.clone(),
                })
                .set(v);
            }
        }
        reg.register(name, help, fam);
    }
    let oldest = Family::<RouteLabel, Gauge>::default();
    for route in &r.routes {
        oldest
            .get_or_create(&RouteLabel {
                route: route.route.clone(),
            })
            .set(route.oldest_pending_secs);
    }
    reg.register(
        "fepd_oldest_pending_batch_age_seconds",
        "Age of the oldest batch waiting for delivery, per route",
        oldest,
    );
    let flag = |v: bool| {
        let g = Gauge::<i64>::default();
        g.set(i64::from(v));
        g
    };
    reg.register(
        "fepd_intake_paused",
        "1 while intake is paused (outbox backlog or disk)",
        flag(r.intake_paused),
    );
    reg.register(
        "fepd_disk_full",
        "1 while a write failed for lack of space or free space is below min_free_bytes",
        flag(r.disk_full),
    );
    reg.register(
        "fepd_healthy",
        "1 while /healthz answers 200",
        flag(r.healthy),
    );
    reg.register(
        "fepd_delivery_latency_seconds",
        "Time from sealing a batch to its delivery (library answer or collector ack), since start",
        a.health.delivery_latency.clone(),
    );
    reg.register(
        "fepd_auth_failures",
        "Token requests the library refused or answered with a lock-out, since start",
        a.health.auth_failures.clone(),
    );
    reg.register(
        "fepd_alert_send_failures",
        "Alert messages a channel failed to send, per channel, since start",
        a.health.alert_failures.clone(),
    );
    if let Some(days) = r.credential_days_left {
        let g = Gauge::<i64>::default();
        g.set(days);
        reg.register(
            "fepd_credential_days_left",
            "Days until [sink.http] credential_expires (negative once past)",
            g,
        );
    }
    let uptime = Gauge::<i64>::default();
    uptime.set(r.daemon.uptime_secs.unwrap_or(0) as i64);
    reg.register(
        "fepd_uptime_seconds",
        "Seconds since the daemon started",
        uptime,
    );
    let build = Family::<VersionLabel, Gauge>::default();
    build
        .get_or_create(&VersionLabel {
            version: r.daemon.version.clone(),
        })
        .set(1);
    reg.register("fepd_build_info", "The running fepd's version", build);
    reg
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
