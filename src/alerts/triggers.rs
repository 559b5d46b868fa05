//! The alert triggers (README.md, "Alerts"): conditions read from the
//! status report — the state database and the daemon's health, the same
//! report `fepd status` prints — and from the config. Each trigger can be
//! switched off in `[alerts]`. A condition names its subject (a dataset, a
//! route, `intake`, `sink.http`) and what holds in counts and words, never
//! a record's values.

use chrono::{DateTime, FixedOffset};

use crate::config::{Config, SinkMode};
use crate::daemon::status::Report;

/// What an alert is about; the names are the `kind` of `alert_raised` and
/// `alert_resolved` exchange-log entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    BatchParked,
    RouteStalled,
    OldestPending,
    IntakePaused,
    CredentialsRefused,
    CredentialExpiry,
    LogBroken,
    Unbalanced,
    CanaryFailed,
    SqlSource,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BatchParked => "batch_parked",
            Kind::RouteStalled => "route_stalled",
            Kind::OldestPending => "oldest_pending",
            Kind::IntakePaused => "intake_paused",
            Kind::CredentialsRefused => "credentials_refused",
            Kind::CredentialExpiry => "credential_expiry",
            Kind::LogBroken => "log_broken",
            Kind::Unbalanced => "reconciliation",
            Kind::CanaryFailed => "canary",
            Kind::SqlSource => "sql_source",
        }
    }

    /// Every kind, in the order of the ops manual's table.
    pub const ALL: [Kind; 10] = [
        Kind::BatchParked,
        Kind::RouteStalled,
        Kind::OldestPending,
        Kind::IntakePaused,
        Kind::CredentialsRefused,
        Kind::CredentialExpiry,
        Kind::LogBroken,
        Kind::Unbalanced,
        Kind::CanaryFailed,
        Kind::SqlSource,
    ];

    /// The kind named `s` in the exchange log.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether delivery or intake stops while it holds (syslog `crit`,
    /// else `warning`).
    pub fn critical(self) -> bool {
        matches!(
            self,
            Kind::RouteStalled
                | Kind::IntakePaused
                | Kind::CredentialsRefused
                | Kind::LogBroken
                | Kind::SqlSource
        )
    }
}

/// One alert's condition as one evaluation found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: Kind,
    pub subject: String,
    /// When it began, when the state knows; else the evaluation that
    /// first saw it.
    pub since: Option<DateTime<FixedOffset>>,
    /// What holds, in Chinese, counts and names only.
    pub what: String,
}

/// The last periodic verification of the exchange log's chain that found
/// it broken: the first bad entry and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBreak {
    pub seq: i64,
    pub message: String,
    pub found: DateTime<FixedOffset>,
}

/// The condition a broken chain holds as, until a verification passes.
pub fn log_broken(b: &LogBreak) -> Condition {
    Condition {
        kind: Kind::LogBroken,
        subject: "exchange_log".into(),
        since: Some(b.found),
        what: format!("交换日志哈希链自第 {} 条起校验失败：{}", b.seq, b.message),
    }
}

/// The conditions of a day's reconciliation (`fepd audit report --day`)
/// whose identities fail, one per dataset.
pub fn unbalanced(r: &crate::audit::report::DayReport) -> Vec<Condition> {
    r.datasets
        .iter()
        .filter(|d| !(d.received_balances && d.sealed_balances))
        .map(|d| {
            let mut why = Vec::new();
            if !d.received_balances {
                why.push(format!(
                    "收到 {} ≠ 拒收 {} + 跳过 {} + 封装 {}",
                    d.received, d.rejected, d.skipped, d.sealed
                ));
            }
            if !d.sealed_balances {
                why.push(format!(
                    "封装 {} ≠ 送达 {} + 资源库拒收 {} + 搁置 {} + 待投递 {}",
                    d.sealed, d.delivered, d.library_rejected, d.parked, d.pending
                ));
            }
            Condition {
                kind: Kind::Unbalanced,
                subject: format!("{} {}", d.dataset, r.day),
                since: None,
                what: format!("{} 的对账不平：{}", r.day, why.join("；")),
            }
        })
        .collect()
}

/// Every condition holding now, by the `[alerts]` thresholds.
pub fn evaluate(cfg: &Config, r: &Report, now: DateTime<FixedOffset>) -> Vec<Condition> {
    let a = &cfg.alerts;
    let secs = |p: &crate::config::Checked<crate::config::Period>| {
        p.ok().and_then(|p| p.0).map(|d| d.as_secs() as i64)
    };
    let mut out = Vec::new();
    let mut add = |kind, subject: &str, since, what: String| {
        out.push(Condition {
            kind,
            subject: subject.to_string(),
            since,
            what,
        })
    };
    if a.parked {
        for d in r.datasets.iter().filter(|d| d.parked > 0) {
            add(
                Kind::BatchParked,
                &d.dataset,
                None,
                format!(
                    "数据集 {} 有 {} 个批次被搁置（不再自动重发）",
                    d.dataset, d.parked
                ),
            );
        }
    }
    let uptime = r.daemon.uptime_secs.unwrap_or(0) as i64;
    let ago = |s: i64| Some(now - chrono::Duration::seconds(s));
    if let Some(stall) = secs(&a.stall) {
        for route in &r.routes {
            let quiet = route
                .last_delivery
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| (now - t).num_seconds())
                .unwrap_or(route.oldest_pending_secs);
            if route.oldest_pending_secs < stall
                || quiet < stall
                || uptime < stall
                || waiting_for_window(cfg, &route.route, now)
            {
                continue;
            }
            add(
                Kind::RouteStalled,
                &route.route,
                ago(quiet.min(route.oldest_pending_secs)),
                format!(
                    "路由 {} 有 {} 个批次待投递，已 {} 分钟没有投递成功",
                    route.route,
                    route.pending_batches,
                    quiet / 60
                ),
            );
        }
    }
    if let Some(limit) = secs(&a.oldest_pending) {
        for route in r.routes.iter().filter(|x| x.oldest_pending_secs >= limit) {
            add(
                Kind::OldestPending,
                &route.route,
                ago(route.oldest_pending_secs),
                format!(
                    "路由 {} 最早的待投递批次已等待 {} 分钟（{} 个批次待投递）",
                    route.route,
                    route.oldest_pending_secs / 60,
                    route.pending_batches
                ),
            );
        }
    }
    if a.intake_paused && r.intake_paused {
        let why = if r.disk_full || r.disk_low {
            "磁盘已满或剩余空间低于 min_free_bytes"
        } else {
            "待投递积压达到高水位（backpressure.high_water_*）"
        };
        add(
            Kind::IntakePaused,
            "intake",
            None,
            format!(
                "接收已暂停：{why}；积压 {} 条记录、{} 字节",
                r.backlog_records, r.backlog_bytes
            ),
        );
    }
    if a.credentials_refused {
        for c in &r.credentials_refused {
            add(
                Kind::CredentialsRefused,
                &c.route,
                DateTime::parse_from_rfc3339(&c.since).ok(),
                format!(
                    "资源库拒绝前置机的凭据（路由 {}，{}），下次申请令牌：{}",
                    c.route,
                    c.reason,
                    c.next_attempt.as_deref().unwrap_or("-")
                ),
            );
        }
    }
    // SQL sources: a poll that fails (its error stays until one succeeds),
    // or no poll for `sql_lag`. The error's words are left to `fepd
    // status`: a source's message may quote a row's value.
    let sql_lag = secs(&a.sql_lag);
    for q in &r.sql_sources {
        let Some(p) = &q.last_poll else { continue };
        if p.error.is_some() {
            add(
                Kind::SqlSource,
                &q.dataset,
                None,
                format!(
                    "数据集 {} 的前置库（{}）轮询失败，水位未前移（原因见 fepd status）",
                    q.dataset, q.engine
                ),
            );
            continue;
        }
        let quiet = DateTime::parse_from_rfc3339(&p.polled_at)
            .ok()
            .map(|t| (now - t).num_seconds());
        if let (Some(limit), Some(quiet)) = (sql_lag, quiet)
            && quiet >= limit
            && uptime >= limit
        {
            add(
                Kind::SqlSource,
                &q.dataset,
                ago(quiet),
                format!(
                    "数据集 {} 的前置库（{}）已 {} 分钟没有完成轮询",
                    q.dataset,
                    q.engine,
                    quiet / 60
                ),
            );
        }
    }
    if let Some(days) = r.credential_days_left
        && days <= i64::from(a.credential_warn_days)
        && a.credential_warn_days > 0
    {
        let what = if days < 0 {
            "资源库凭据已过期（sink.http.credential_expires）".to_string()
        } else {
            format!("资源库凭据将在 {days} 天后过期（sink.http.credential_expires）")
        };
        add(Kind::CredentialExpiry, "sink.http", None, what);
    }
    out
}

/// Whether every dataset of `route` waits for a closed send window (push
/// mode): a route holding for its window is not stalled.
fn waiting_for_window(cfg: &Config, route: &str, now: DateTime<FixedOffset>) -> bool {
    let time = now.with_timezone(&cfg.tz()).time();
    let mut on_route = cfg
        .datasets
        .iter()
        .filter(|d| d.route() == route)
        .peekable();
    cfg.sink.mode == SinkMode::Http
        && on_route.peek().is_some()
        && on_route.all(|d| d.send_window.is_some_and(|w| !w.contains(time)))
}

/// Days until `[sink.http] credential_expires` (negative once past), for
/// `fepd status`, `/metrics` and the expiry alert.
pub fn credential_days_left(cfg: &Config, now: DateTime<FixedOffset>) -> Option<i64> {
    let e = cfg.sink.http.as_ref()?.credential_expires.as_ref()?.ok()?;
    Some(e.days_left(now.with_timezone(&cfg.tz())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_and_has_its_row_in_the_operations_manual() {
        let manual = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/zh/安装与运维手册.md"),
        )
        .unwrap();
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert!(
                manual.contains(&format!("`{}`", k.as_str())),
                "§10 does not explain {}",
                k.as_str()
            );
        }
    }
    use crate::daemon::status::{DaemonInfo, RouteStatus};

    fn report(uptime: u64, routes: Vec<RouteStatus>) -> Report {
        Report {
            daemon: DaemonInfo {
                running: true,
                pid: Some(1),
                version: "t".into(),
                uptime_secs: Some(uptime),
                last_heartbeat: None,
            },
            healthy: true,
            problems: Vec::new(),
            intake_paused: false,
            disk_full: false,
            backlog_records: 0,
            backlog_bytes: 0,
            disk_free_bytes: None,
            disk_low: false,
            routes,
            credentials_refused: Vec::new(),
            credential_days_left: None,
            sql_sources: Vec::new(),
            datasets: Vec::new(),
            work_files: Default::default(),
        }
    }

    fn route(oldest: i64, last_delivery: Option<&str>) -> RouteStatus {
        RouteStatus {
            route: "zwfw/case_accept".into(),
            pending_batches: 2,
            oldest_pending_secs: oldest,
            last_delivery: last_delivery.map(str::to_string),
        }
    }

    fn kinds(c: &[Condition]) -> Vec<(Kind, &str)> {
        c.iter().map(|c| (c.kind, c.subject.as_str())).collect()
    }

    #[test]
    fn stalls_and_old_batches_by_their_thresholds() {
        let cfg = Config::parse("sender = \"s\"\n", std::path::Path::new(".")).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00+08:00").unwrap();
        // Backlog 11 min old, last delivery 20 min ago: stalled (10m), not
        // yet old (1h).
        let r = report(3600, vec![route(660, Some("2026-12-01T09:40:00+08:00"))]);
        let c = evaluate(&cfg, &r, now);
        assert_eq!(kinds(&c), [(Kind::RouteStalled, "zwfw/case_accept")]);
        assert_eq!(
            c[0].since,
            Some(DateTime::parse_from_rfc3339("2026-12-01T09:49:00+08:00").unwrap())
        );
        // Delivered 5 minutes ago: not stalled.
        let r = report(3600, vec![route(660, Some("2026-12-01T09:55:00+08:00"))]);
        assert!(evaluate(&cfg, &r, now).is_empty());
        // Just started: not stalled yet.
        let r = report(60, vec![route(660, None)]);
        assert!(evaluate(&cfg, &r, now).is_empty());
        // Two hours old, never delivered: stalled and old.
        let r = report(9000, vec![route(7200, None)]);
        let c = evaluate(&cfg, &r, now);
        assert_eq!(
            kinds(&c),
            [
                (Kind::RouteStalled, "zwfw/case_accept"),
                (Kind::OldestPending, "zwfw/case_accept")
            ]
        );
        // Switched off.
        let off = Config::parse(
            "sender = \"s\"\n[alerts]\nstall = \"off\"\noldest_pending = \"off\"\n",
            std::path::Path::new("."),
        )
        .unwrap();
        assert!(evaluate(&off, &r, now).is_empty());
    }

    #[test]
    fn paused_intake_refused_and_expiring_credentials() {
        let cfg = Config::parse("sender = \"s\"\n", std::path::Path::new(".")).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00+08:00").unwrap();
        let mut r = report(60, Vec::new());
        r.intake_paused = true;
        r.disk_low = true;
        r.credentials_refused.push(crate::state::auth::Refusal {
            route: "zwfw/case_accept".into(),
            since: "2026-12-01T09:00:00+08:00".into(),
            reason: "HTTP 401 invalid_client".into(),
            next_attempt: None,
        });
        r.credential_days_left = Some(8);
        let c = evaluate(&cfg, &r, now);
        assert_eq!(
            kinds(&c),
            [
                (Kind::IntakePaused, "intake"),
                (Kind::CredentialsRefused, "zwfw/case_accept")
            ]
        );
        assert!(c[0].what.contains("磁盘"));
        r.credential_days_left = Some(7);
        let c = evaluate(&cfg, &r, now);
        assert_eq!(c[2].kind, Kind::CredentialExpiry);
        assert!(c[2].what.contains("7 天后过期"));
    }
}
