//! The pages: 总览 (the status report `/status` and `fepd status` show)
//! and 交换日志 (`fepd audit show`, `trace` and `verify`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::access::Action;
use super::html::{page, respond};
use super::session::Who;
use super::{Console, store_failed};

pub async fn overview(State(c): State<Console>, headers: HeaderMap) -> Response {
    let who = match c.allowed(&headers, Action::Overview).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let found = c
        .blocking(|c| -> Result<_, crate::audit::AuditError> {
            let tz = c.cfg().tz();
            let since = (chrono::Utc::now() - chrono::Duration::hours(23)).with_timezone(&tz);
            let since = since.format("%Y-%m-%dT%H").to_string();
            let conn = c.reader()?;
            let hours = crate::state::listing::hourly(&conn, &since)?;
            let today = chrono::Utc::now().with_timezone(&tz).date_naive();
            let names: Vec<String> = c.cfg().datasets.iter().map(|d| d.name.clone()).collect();
            let day = crate::audit::report::report(&conn, today, tz, &names)?;
            let alerts =
                crate::state::episodes::open(&conn).map_err(crate::state::StoreError::from)?;
            let pending = crate::state::listing::pending_by_dataset(&conn)
                .map_err(crate::state::StoreError::from)?;
            Ok((c.admin.report()?, hours, since, day, alerts, pending))
        })
        .await;
    let (report, hours, since, day, alerts, pending) = match found {
        Ok(r) => r,
        Err(e) => return store_failed(Some(&who), &e),
    };
    let throughput = throughput(&since, &hours);
    let datasets: Vec<_> = report
        .datasets
        .iter()
        .filter(|d| who.sees(&d.dataset))
        .collect();
    // With JavaScript, the figures refresh every 30 s in place (htmx).
    let body = html! {
        div #live hx-get="/" hx-trigger="every 30s" hx-select="#live" hx-swap="outerHTML" {
        p {
            "运行状态："
            @if report.healthy { span.ok { "正常" } } @else { span.bad { "异常" } }
            @if let Some(u) = report.daemon.uptime_secs { "　已运行 " (u / 3600) " 小时 " (u % 3600 / 60) " 分" }
        }
        @for p in &report.problems { p.bad { (p) } }
        @if report.intake_paused { p.bad { "收件已暂停（磁盘不足或待发积压达到上限）。" } }
        @if who.role != super::access::Role::DataStaff {
            h2 { "未恢复的告警" }
            @if alerts.is_empty() { p.note { "没有未恢复的告警。" } }
            @else {
                table {
                    tr { th { "告警" } th { "对象" } th { "开始于" } }
                    @for a in &alerts {
                        tr.bad { td { (crate::alerts::message::kind_title(&a.kind).unwrap_or(&a.kind)) }
                                 td { (a.subject) } td { (a.since) } }
                    }
                }
            }
        }
        h2 { "今日（" (day.day) "）" }
        table {
            tr { th { "数据集" } th { "收到" } th { "拒收" } th { "跳过" } th { "封批" }
                 th { "已送达" } th { "资源库拒收" } th { "待发" } th { "搁置" } }
            @for d in day.datasets.iter().filter(|d| who.sees(&d.dataset)) {
                tr {
                    td { (d.dataset) } td { (d.received) } td { (d.rejected) } td { (d.skipped) }
                    td { (d.sealed) } td { (d.delivered) } td { (d.library_rejected) }
                    td { (d.pending) }
                    td { @if d.parked > 0 { span.bad { (d.parked) } } @else { "0" } }
                }
            }
        }
        h2 { "各数据集（累计）" }
        table {
            tr { th { "数据集" } th { "收到" } th { "拒收" } th { "封批" } th { "已送达" }
                 th { "待发批次" } th { "最早待发已等待" } th { "搁置批次" } th { "最近送达" } th { "收件箱文件" } }
            @for d in &datasets {
                tr {
                    td { (d.dataset) } td { (d.received) } td { (d.rejected) } td { (d.sealed) }
                    td { (d.delivered) } td { (d.backlog_batches) }
                    td { (oldest(&pending, &d.dataset)) }
                    td { @if d.parked > 0 { span.bad { (d.parked) } } @else { "0" } }
                    td { (d.last_delivery.as_deref().unwrap_or("—")) } td { (d.inbox_files) }
                }
            }
        }
        @if who.role != super::access::Role::DataStaff {
            h2 { "近 24 小时（每小时记录数）" }
            (throughput)
            h2 { "待发线路" }
            @if report.routes.is_empty() { p.note { "没有待发的批次。" } }
            @else {
                table {
                    tr { th { "线路" } th { "待发批次" } th { "最早一批已等待" } th { "最近送达" } }
                    @for r in &report.routes {
                        tr { td { (r.route) } td { (r.pending_batches) }
                             td { (age(r.oldest_pending_secs)) }
                             td { (r.last_delivery.as_deref().unwrap_or("—")) } }
                    }
                }
            }
            @if let Some(days) = report.credential_days_left { p { "接口凭据剩余有效天数：" (days) } }
            @for s in &report.sql_sources {
                p { "前置库 " (s.dataset) "（" (s.engine) "）延迟："
                    (s.lag_secs.map(|l| format!("{l} 秒")).unwrap_or_else(|| "—".into())) }
            }
        }
        p.note { "更新于 " (chrono::Utc::now().with_timezone(&c.cfg().tz()).format("%H:%M:%S")) }
        }
    };
    respond(StatusCode::OK, page("总览", Some(&who), body))
}

/// How long the oldest pending batch of `dataset` has waited, or "—".
fn oldest(pending: &[(String, i64, String)], dataset: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    pending
        .iter()
        .find(|(d, _, _)| d == dataset)
        .and_then(|(_, _, t)| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(|| "—".into(), |t| age((now - t.timestamp()).max(0)))
}

/// A duration in words: "45 秒", "12 分 3 秒", "5 小时 7 分", "3 天 2 小时".
pub(super) fn age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} 秒"),
        s if s < 3600 => format!("{} 分 {} 秒", s / 60, s % 60),
        s if s < 86_400 => format!("{} 小时 {} 分", s / 3600, s % 3600 / 60),
        s => format!("{} 天 {} 小时", s / 86_400, s % 86_400 / 3600),
    }
}

/// The 24-hour chart: records sealed and delivered in each hour from
/// `since` (`YYYY-MM-DDTHH`, local) on.
fn throughput(since: &str, hours: &[(String, i64, i64)]) -> Markup {
    let start = chrono::NaiveDateTime::parse_from_str(&format!("{since}:00"), "%Y-%m-%dT%H:%M")
        .unwrap_or_default();
    let mut labels = Vec::with_capacity(24);
    let (mut sealed, mut delivered) = (vec![0; 24], vec![0; 24]);
    for i in 0..24 {
        let h = start + chrono::Duration::hours(i);
        let key = h.format("%Y-%m-%dT%H").to_string();
        if let Some((_, s, d)) = hours.iter().find(|(k, _, _)| *k == key) {
            (sealed[i as usize], delivered[i as usize]) = (*s, *d);
        }
        labels.push(h.format("%H时").to_string());
    }
    super::chart::bars(
        &labels,
        &[
            super::chart::Series {
                name: "封批",
                colour: "#1f5a9a",
                values: sealed,
            },
            super::chart::Series {
                name: "送达",
                colour: "#2a8a3a",
                values: delivered,
            },
        ],
        &[],
    )
}

#[derive(serde::Deserialize, Default)]
pub struct LogFilter {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    dataset: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    batch: String,
    /// A record key to trace instead.
    #[serde(default)]
    key: String,
    /// `1`: the matching entries as JSON lines (what `fepd audit show
    /// --json` prints), for an auditor to keep.
    #[serde(default)]
    export: String,
    /// `1`: verify the whole chain (as `fepd audit verify`), which reads
    /// every entry — asked for, not done on every search.
    #[serde(default)]
    verify: String,
}

/// The entries shown at most on one page.
const LOG_ROWS: usize = 500;

pub async fn log(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(f): Query<LogFilter>,
) -> Response {
    let who = match c.allowed(&headers, Action::Log).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if f.export == "1" {
        return export(&c, &who, f).await;
    }
    let q = LogFilter { ..f };
    let found = c.blocking(move |c| search(c, q)).await;
    let (form, found) = (found.0, found.1);
    let body = match found {
        Ok(b) => b,
        Err(e) => html! { p.bad { (e) } },
    };
    respond(
        StatusCode::OK,
        page("交换日志", Some(&who), html! { (form) (body) }),
    )
}

/// Entries one export holds at most (`fepd audit export` archives all).
const EXPORT_ROWS: usize = 100_000;

/// The filter's entries as JSON lines, each with its hash, as `fepd audit
/// show --json` prints them.
async fn export(c: &Console, who: &Who, f: LogFilter) -> Response {
    use crate::audit::{End, parse_bound, show};
    let tz = c.cfg().tz();
    let built = c
        .blocking(move |c| -> Result<Vec<u8>, String> {
            let bound = |t: &str, end| match t.trim() {
                "" => Ok(None),
                t => parse_bound(t, end, tz)
                    .map(Some)
                    .map_err(|_| format!("无法识别的时间「{t}」")),
            };
            let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
            let filter = show::Filter {
                since: bound(&f.since, End::Start)?,
                until: bound(&f.until, End::End)?,
                dataset: opt(&f.dataset),
                event: opt(&f.event),
                file: opt(&f.file),
                batch: opt(&f.batch),
            };
            let conn = c
                .reader()
                .map_err(|_| "暂时无法读取状态数据库。".to_string())?;
            let mut out = Vec::new();
            show::entries(&conn, &filter, Some(EXPORT_ROWS), |e| {
                serde_json::to_writer(&mut out, e).map_err(std::io::Error::other)?;
                out.push(b'\n');
                Ok(())
            })
            .map_err(|e| e.to_string())?;
            Ok(out)
        })
        .await;
    match built {
        Ok(bytes) => {
            let mut r = bytes.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
            );
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"exchange-log.jsonl\""),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(why) => respond(
            StatusCode::BAD_REQUEST,
            page("交换日志", Some(who), html! { p.bad { (why) } }),
        ),
    }
}

/// The search form, and the chain's status with the entries (or the
/// trace) it asks for; a bad date is said in Chinese.
fn search(c: &Console, f: LogFilter) -> (Markup, Result<Markup, String>) {
    use crate::audit::{End, parse_bound, show, trace, verify};
    let form = html! {
        form method="get" action="/log" {
            "起 " input name="since" value=(f.since) placeholder="2026-01-31";
            " 止 " input name="until" value=(f.until);
            " 数据集 " input name="dataset" value=(f.dataset);
            " 事件 " input name="event" value=(f.event);
            " 文件 " input name="file" value=(f.file);
            " 批次 " input name="batch" value=(f.batch);
            " " button { "查询" }
            " " button name="export" value="1" { "导出（JSON 行）" }
        }
        form #trace method="get" action="/log" {
            "追踪记录键 " input name="key" value=(f.key);
            " " button { "追踪" }
        }
    };
    let tz = c.cfg().tz();
    let result = (|| -> Result<Markup, String> {
        let conn = c
            .reader()
            .map_err(|_| "暂时无法读取状态数据库。".to_string())?;
        let bound = |t: &str, end| match t.trim() {
            "" => Ok(None),
            t => parse_bound(t, end, tz).map(Some).map_err(|_| {
                format!("无法识别的时间「{t}」：请写作 2026-01-31 或 2026-01-31T08:00:00+08:00")
            }),
        };
        let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let status = match f.verify.as_str() {
            "1" => {
                let chain = verify::verify(&conn, &[], None).map_err(|e| e.to_string())?;
                html! {
                    p {
                        "哈希链校验："
                        @if chain.ok() { span.ok { "完整" } } @else { span.bad { "发现断裂" } }
                        "（共 " (chain.log.entries) " 条"
                        @if let Some(h) = &chain.log.head { "，最新序号 " (h.seq) } "）"
                    }
                    @if let Some(b) = &chain.log.broken { p.bad { (format!("{b:?}")) } }
                }
            }
            _ => html! {
                form method="get" action="/log" {
                    input type="hidden" name="verify" value="1";
                    button { "校验哈希链" }
                    span.note { "（逐条重算全部日志的哈希，日志很长时需要一些时间）" }
                }
            },
        };
        let witness = crate::state::listing::last_witness(&conn).map_err(|e| e.to_string())?;
        let status = html! {
            (status)
            p {
                "资源库最近确认的见证头："
                @match &witness {
                    None => span.note { "尚无（还没有送达的批次，或其报文已按保留期限删除）" },
                    Some(w) => {
                        "序号 " (w.seq) "，哈希 " code { (w.hash) }
                        "（随批次 " (w.batch_id) " 于 " (w.delivered_at) " 送达）"
                        @match w.matches {
                            Some(true) => span.ok { "　与本地日志一致" },
                            Some(false) => span.bad { "　与本地日志不一致！请运行 fepd audit verify --witness" },
                            None => span.note { "　本地日志中该条已归档删除" },
                        }
                    }
                }
            }
        };
        if let Some(key) = opt(&f.key) {
            let steps =
                trace::trace(&conn, &key, opt(&f.dataset).as_deref()).map_err(|e| e.to_string())?;
            return Ok(html! {
                (status)
                h2 { "记录键 " (key) " 的经过" }
                @if steps.is_empty() { p.note { "交换日志中没有这个记录键。" } }
                table {
                    tr { th { "时间" } th { "事件" } th { "数据集" } th { "文件" } th { "批次" } th { "详情" } }
                    @for s in &steps {
                        tr { td { (s.time) } td { (s.event) } td { (s.dataset) }
                             td { (s.file.as_deref().unwrap_or("—")) } td { (s.batch.as_deref().unwrap_or("—")) }
                             td { (s.details.to_string()) } }
                    }
                }
            });
        }
        let filter = show::Filter {
            since: bound(&f.since, End::Start)?,
            until: bound(&f.until, End::End)?,
            dataset: opt(&f.dataset),
            event: opt(&f.event),
            file: opt(&f.file),
            batch: opt(&f.batch),
        };
        let mut rows = Vec::new();
        show::entries(&conn, &filter, Some(LOG_ROWS), |e| {
            rows.push(e.clone());
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(html! {
            (status)
            table {
                tr { (entry_head()) }
                @for e in &rows { tr { (entry_cells(e)) } }
            }
            @if rows.len() == LOG_ROWS { p.note { "只显示前 " (LOG_ROWS) " 条，请缩小查询范围。" } }
        })
    })();
    (form, result)
}

/// The header cells of an exchange-log entry's row (交换日志, and the
/// 集群 page after its node column).
pub(super) fn entry_head() -> Markup {
    html! { th { "序号" } th { "时间" } th { "事件" } th { "数据集" } th { "文件" } th { "批次" } th { "计数" } th { "详情" } }
}

/// An entry's cells, as stored: ids, counts and rule names, never a
/// record's value (ARCHITECTURE.md, "No personal data in logs").
pub(super) fn entry_cells(e: &crate::state::log::StoredEntry) -> Markup {
    let json = |v: &Option<serde_json::Value>| v.as_ref().map_or("—".into(), |v| v.to_string());
    html! {
        td { (e.seq) } td { (e.time) } td { (e.event) }
        td { (e.dataset.as_deref().unwrap_or("—")) } td { (e.file.as_deref().unwrap_or("—")) }
        td { (e.batch.as_deref().unwrap_or("—")) } td { (json(&e.counts)) } td { (json(&e.details)) }
    }
}
