//! The pages: 总览 (the status report `/status` and `fepd status` show),
//! 批次 (`fepd batches list`, retry and park through the same `outbox`
//! transitions, recorded with the user's name), 交换日志 (`fepd audit
//! show`, `trace` and `verify`), 系统 (version, uptime, config with
//! secrets hidden, users).

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use rusqlite::TransactionBehavior;

use super::access::Action;
use super::html::{page, respond, see_other};
use super::session::Who;
use super::{Console, store_failed};
use crate::outbox::{self, BatchState};
use crate::state::batches;
use crate::state::log::Parking;

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
            Ok((c.admin.report()?, hours, since, day, alerts))
        })
        .await;
    let (report, hours, since, day, alerts) = match found {
        Ok(r) => r,
        Err(e) => return store_failed(Some(&who), &e),
    };
    let throughput = throughput(&since, &hours);
    let datasets: Vec<_> = report
        .datasets
        .iter()
        .filter(|d| who.sees(&d.dataset))
        .collect();
    let body = html! {
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
                 th { "待发批次" } th { "搁置批次" } th { "最近送达" } th { "收件箱文件" } }
            @for d in &datasets {
                tr {
                    td { (d.dataset) } td { (d.received) } td { (d.rejected) } td { (d.sealed) }
                    td { (d.delivered) } td { (d.backlog_batches) }
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
                             td { (r.oldest_pending_secs) " 秒" }
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
    };
    respond(StatusCode::OK, page("总览", Some(&who), body))
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
pub struct BatchFilter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    dataset: String,
}

pub async fn batches(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(f): Query<BatchFilter>,
) -> Response {
    let who = match c.allowed(&headers, Action::Batches).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (state, dataset) = (f.state.clone(), f.dataset.clone());
    let rows = c
        .blocking(move |c| -> Result<_, crate::state::StoreError> {
            let conn = c.reader()?;
            let st = match state.as_str() {
                "" => None,
                s => match BatchState::parse(s) {
                    Some(s) => Some(s),
                    // A word that names no state matches no batch.
                    None => return Ok(Vec::new()),
                },
            };
            let ds = Some(dataset.as_str()).filter(|d| !d.is_empty());
            Ok(batches::list(&conn, st, ds, 200)?)
        })
        .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return store_failed(Some(&who), &e),
    };
    let acts = who.role == super::access::Role::Operator;
    let body = html! {
        form method="get" action="/batches" {
            "状态 " input name="state" value=(f.state) placeholder="sealed / parked …";
            " 数据集 " input name="dataset" value=(f.dataset);
            " " button { "筛选" }
        }
        table {
            tr { th { "批次" } th { "数据集" } th { "状态" } th { "记录数" } th { "尝试次数" }
                 th { "封批时间" } th { "最近错误" } @if acts { th { "操作" } } }
            @for b in &rows {
                tr {
                    td { (b.batch_id) } td { (b.dataset) } td { (b.state.as_str()) } td { (b.count) }
                    td { (b.attempts) } td { (b.sealed_at) }
                    td { (b.last_error.as_deref().unwrap_or("—")) }
                    @if acts { td { (actions(&who, &b.batch_id, b.state)) } }
                }
            }
        }
        @if rows.is_empty() { p.note { "没有符合条件的批次。" } }
    };
    respond(StatusCode::OK, page("批次", Some(&who), body))
}

/// The operator's buttons for a batch in `state`.
fn actions(who: &Who, id: &str, state: BatchState) -> Markup {
    html! {
        @if state == BatchState::Parked {
            form.inline method="post" action="/batches/retry" {
                input type="hidden" name="csrf" value=(who.csrf);
                input type="hidden" name="id" value=(id);
                button { "重发" }
            }
        }
        @if matches!(state, BatchState::Sealed | BatchState::Exported) {
            form.inline method="post" action="/batches/park" {
                input type="hidden" name="csrf" value=(who.csrf);
                input type="hidden" name="id" value=(id);
                input name="reason" placeholder="搁置原因" required;
                button { "搁置" }
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub struct BatchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    reason: String,
}

pub async fn retry(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<BatchForm>,
) -> Response {
    act(c, headers, f, Action::BatchRetry).await
}

pub async fn park(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<BatchForm>,
) -> Response {
    act(c, headers, f, Action::BatchPark).await
}

/// Retry or park one batch: the transitions `fepd batches retry|park`
/// make, in one transaction with their entry, `by` the user's name.
async fn act(c: Console, headers: HeaderMap, f: BatchForm, action: Action) -> Response {
    let who = match c.allowed(&headers, action).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = c.csrf(&who, &f.csrf, action).await {
        return r;
    }
    let user = who.user.clone();
    let done = c
        .blocking(
            move |c| -> Result<Option<String>, crate::state::StoreError> {
                let tz = c.cfg().tz();
                let mut conn = crate::state::open(&c.cfg().state_db())?;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let Some(b) = batches::get(&tx, &f.id)? else {
                    return Ok(Some(format!("没有批次 {}。", f.id)));
                };
                let reason = match f.reason.trim() {
                    "" => "parked by operator",
                    r => r,
                };
                let moved = match action {
                    Action::BatchRetry => outbox::retry(&tx, tz, &b, &user)?,
                    _ => outbox::park(&tx, tz, &b, Parking::Operator { reason, by: &user })?,
                };
                if !moved {
                    return Ok(Some(format!(
                        "批次 {} 当前状态为 {}，不能执行此操作。",
                        b.batch_id, b.state
                    )));
                }
                tx.commit()?;
                Ok(None)
            },
        )
        .await;
    match done {
        Ok(None) => see_other("/batches"),
        Ok(Some(why)) => respond(
            StatusCode::CONFLICT,
            page(
                "批次",
                Some(&who),
                html! { p.bad { (why) } p { a href="/batches" { "返回批次" } } },
            ),
        ),
        Err(e) => store_failed(Some(&who), &e),
    }
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
        let json =
            |v: &Option<serde_json::Value>| v.as_ref().map_or("—".into(), |v| v.to_string());
        Ok(html! {
            (status)
            table {
                tr { th { "序号" } th { "时间" } th { "事件" } th { "数据集" } th { "文件" } th { "批次" } th { "计数" } th { "详情" } }
                @for e in &rows {
                    tr { td { (e.seq) } td { (e.time) } td { (e.event) }
                         td { (e.dataset.as_deref().unwrap_or("—")) } td { (e.file.as_deref().unwrap_or("—")) }
                         td { (e.batch.as_deref().unwrap_or("—")) } td { (json(&e.counts)) } td { (json(&e.details)) } }
                }
            }
            @if rows.len() == LOG_ROWS { p.note { "只显示前 " (LOG_ROWS) " 条，请缩小查询范围。" } }
        })
    })();
    (form, result)
}

pub async fn system(State(c): State<Console>, headers: HeaderMap) -> Response {
    let who = match c.allowed(&headers, Action::System).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let found = c
        .blocking(|c| -> Result<_, crate::state::StoreError> {
            let conn = c.reader()?;
            Ok((c.admin.report()?, crate::state::users::list(&conn)?))
        })
        .await;
    let (report, users) = match found {
        Ok(f) => f,
        Err(e) => return store_failed(Some(&who), &e),
    };
    let cfg = c.cfg();
    let body = html! {
        table {
            tr { th { "版本" } td { (report.daemon.version) } }
            tr { th { "进程号" } td { (report.daemon.pid.map(|p| p.to_string()).unwrap_or_default()) } }
            tr { th { "已运行" } td { (report.daemon.uptime_secs.unwrap_or(0)) " 秒" } }
            tr { th { "状态目录" } td { (cfg.state_dir.display()) } }
            tr { th { "收件目录" } td { (cfg.spool_dir.display()) } }
            tr { th { "发送方式" } td { (format!("{:?}", cfg.sink.mode)) } }
            tr { th { "可用磁盘" } td { (report.disk_free_bytes.map(|b| format!("{} MiB", b >> 20)).unwrap_or_default()) } }
            tr { th { "数据集" } td { (cfg.datasets.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join("、")) } }
        }
        p.note { "密钥与令牌不在此显示（配置中只保存其文件路径或环境变量名）。" }
        h2 { "控制台用户" }
        table {
            tr { th { "用户" } th { "角色" } th { "数据集" } th { "状态" } th { "最近变更" } }
            @for u in &users {
                tr { td { (u.name) }
                     td { (super::access::Role::parse(&u.role).map_or(u.role.as_str(), |r| r.title())) }
                     td { (u.datasets.join("、")) }
                     td { @if u.disabled { "已停用" } @else if u.locked_until_ms > crate::state::now_ms() { "已锁定" } @else { "正常" } }
                     td { (u.changed_at) } }
            }
        }
    };
    respond(StatusCode::OK, page("系统", Some(&who), body))
}
