//! 文件 (files by dataset, day, state and name; one file with its counts,
//! batches and rejection report, viewable and as the report's own xlsx),
//! 拒收记录 (rejected records across files, filterable, as xlsx) and 对账
//! (`fepd audit report`'s table for a day, identities ticked, as xlsx).
//! Values are as stored: masked when personal.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::access::Action;
use super::html::{page, respond};
use super::session::Who;
use super::{Console, store_failed};
use crate::state::StoreError;
use crate::state::listing::{self, Narrow};

/// Rows a list shows (and an export holds) at most.
const ROWS: i64 = 1000;

#[derive(serde::Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    dataset: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    day: String,
    #[serde(default)]
    rule: String,
}

/// `",a,b,"` for data staff, empty (every dataset) for the others.
pub(super) fn allowed(who: &Who) -> String {
    match who.role {
        super::access::Role::DataStaff => format!(",{},", who.datasets.join(",")),
        _ => String::new(),
    }
}

fn narrow<'a>(allowed: &'a str, f: &'a Filter) -> Narrow<'a> {
    Narrow {
        allowed,
        dataset: f.dataset.trim(),
        state: f.state.trim(),
        name: f.name.trim(),
        day: f.day.trim(),
        rule: f.rule.trim(),
        limit: ROWS,
    }
}

pub async fn files(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    let who = match c.allowed(&headers, Action::Files).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let a = allowed(&who);
    let (a2, f2) = (a.clone(), Filter { ..f });
    let found = c
        .blocking(move |c| -> Result<_, StoreError> {
            Ok((listing::files(&c.reader()?, &narrow(&a2, &f2))?, f2))
        })
        .await;
    let (rows, f) = match found {
        Ok(r) => r,
        Err(e) => return store_failed(Some(&who), &e),
    };
    let body = html! {
        form method="get" action="/files" hx-get="/files" hx-target="#results"
            hx-select="#results" hx-swap="outerHTML" hx-push-url="true" {
            "数据集 " input name="dataset" value=(f.dataset);
            " 日期 " input name="day" value=(f.day) placeholder="2026-01-31";
            " 状态 " input name="state" value=(f.state) placeholder="done / rejected";
            " 文件名 " input name="name" value=(f.name);
            " " button { "查询" }
        }
        div #results {
        table {
            tr { th { "文件" } th { "数据集" } th { "状态" } th { "收到" } th { "拒收" } th { "封批" } th { "领取时间" } th { "完成时间" } }
            @for r in &rows {
                tr { td { a href=(format!("/files/{}", r.id)) { (r.name) } } td { (r.dataset) } td { (r.state) }
                     td { (r.received) } td { (r.rejected) } td { (r.sealed) } td { (r.claimed_at) }
                     td { (r.finished_at.as_deref().unwrap_or("—")) } }
            }
        }
        @if rows.is_empty() { p.note { "没有符合条件的文件。" } }
        }
    };
    respond(StatusCode::OK, page("文件", Some(&who), body))
}

pub async fn file(State(c): State<Console>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let who = match c.allowed(&headers, Action::Files).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let a = allowed(&who);
    let found = c
        .blocking(move |c| -> Result<_, StoreError> {
            let conn = c.reader()?;
            let Some(f) = listing::file(&conn, &a, id)? else {
                return Ok(None);
            };
            let batches = crate::state::files::batches_of(&conn, id)?;
            let rejections = crate::state::files::rejections_of(&conn, id)?;
            let schema = c.loaded.schema(&f.dataset);
            let rows = crate::report::library::rows_of_file(&conn, schema.as_deref(), id)?;
            // The same refusals, in the same order: their batch and index
            // name a record for the reveal.
            let lines = crate::state::batches::refusals_of_file(&conn, id)?;
            let refused: Vec<_> = rows.into_iter().zip(lines).collect();
            Ok(Some((f, batches, rejections, refused)))
        })
        .await;
    let (f, batches, rejections, refused) = match found {
        Ok(Some(x)) => x,
        Ok(None) => {
            return respond(
                StatusCode::NOT_FOUND,
                page(
                    "文件",
                    Some(&who),
                    html! { p.bad { "没有这个文件，或它不属于您的数据集。" } },
                ),
            );
        }
        Err(e) => return store_failed(Some(&who), &e),
    };
    let body = html! {
        table {
            tr { th { "数据集" } td { (f.dataset) } }
            tr { th { "状态" } td { (f.state) } }
            tr { th { "收到 / 拒收 / 封批" } td { (f.received) " / " (f.rejected) " / " (f.sealed) } }
            tr { th { "领取时间" } td { (f.claimed_at) } }
            tr { th { "完成时间" } td { (f.finished_at.as_deref().unwrap_or("—")) } }
            @if let Some(fault) = &f.fault { tr { th { "整个文件被拒绝" } td.bad { (fault) } } }
        }
        h2 { "批次" }
        @if batches.is_empty() { p.note { "没有封批。" } }
        ul { @for (b, n, _) in &batches { li { (b) "（" (n) " 条）" } } }
        h2 { "拒收报告" }
        @if rejections.is_empty() && f.fault.is_none() { p.note { "没有被拒绝的记录。" } }
        @else {
            p { a href=(format!("/files/{}/errors.xlsx", f.id)) { "下载 Excel（errors.xlsx）" } }
            table {
                tr { th { "位置" } th { "字段" } th { "值" } th { "规则" } th { "说明" } @if who.reveal { th { "原值" } } }
                @for r in &rejections {
                    tr { td { (r.position) } td { (r.title) } td { (r.value.as_deref().unwrap_or("")) }
                         td { (r.rule) } td { @if r.warning { "（警告）" } (r.message) }
                         @if who.reveal {
                             td { @if !r.field.is_empty() && r.value.is_some() {
                                 form.inline method="post" action=(format!("/files/{}/reveal", f.id)) {
                                     input type="hidden" name="csrf" value=(who.csrf);
                                     input type="hidden" name="ordinal" value=(r.ordinal);
                                     input type="hidden" name="field" value=(r.field);
                                     button { "显示原值" }
                                 }
                             } }
                         }
                    }
                }
            }
        }
        h2 { "资源库拒收" }
        @if refused.is_empty() { p.note { "资源库没有拒收这个文件的记录。" } }
        @else {
            table {
                tr { th { "位置" } th { "记录键" } th { "值（已打码）" } th { "代码" } th { "说明" } @if who.reveal { th { "原值" } } }
                @for (r, line) in &refused {
                    tr { td { (r.position) } td { (r.key.as_deref().unwrap_or("")) }
                         td { (r.value.as_deref().unwrap_or("")) } td { (r.rule) } td { (r.message) }
                         @if who.reveal {
                             td { form.inline method="post" action=(format!("/files/{}/reveal", f.id)) {
                                 input type="hidden" name="csrf" value=(who.csrf);
                                 input type="hidden" name="batch" value=(line.batch_id);
                                 input type="hidden" name="idx" value=(line.idx);
                                 button { "显示原值" }
                             } }
                         }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(&format!("文件 {}", f.name), Some(&who), body),
    )
}

/// An xlsx download.
fn xlsx(name: &str, bytes: Vec<u8>) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = format!("attachment; filename=\"{name}\"").parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// The file's rejection report as the verdict wrote it (`errors.xlsx`),
/// rebuilt from state.
pub async fn file_xlsx(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let who = match c.allowed(&headers, Action::Files).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let a = allowed(&who);
    let built = c
        .blocking(move |c| -> Result<_, StoreError> {
            let conn = c.reader()?;
            let Some(f) = listing::file(&conn, &a, id)? else {
                return Ok(None);
            };
            let rejections = crate::state::files::rejections_of(&conn, id)?;
            let key_title = c
                .loaded
                .schema(&f.dataset)
                .map(|s| crate::report::key_title(&s))
                .unwrap_or_default();
            let bytes =
                crate::report::table::errors_xlsx(&key_title, f.fault.as_deref(), &rejections)
                    .map_err(StoreError::at(std::path::Path::new("errors.xlsx")))?;
            Ok(Some(bytes))
        })
        .await;
    match built {
        Ok(Some(b)) => xlsx("errors.xlsx", b),
        Ok(None) => respond(
            StatusCode::NOT_FOUND,
            page("文件", Some(&who), html! { p.bad { "没有这个文件。" } }),
        ),
        Err(e) => store_failed(Some(&who), &e),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct Export {
    #[serde(default)]
    xlsx: String,
}

pub async fn rejections(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
    Query(x): Query<Export>,
) -> Response {
    let who = match c.allowed(&headers, Action::Files).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let a = allowed(&who);
    let found = c
        .blocking(move |c| -> Result<_, StoreError> {
            let conn = c.reader()?;
            let n = narrow(&a, &f);
            let mut rows = listing::rejections(&conn, &n)?;
            rows.extend(library_refusals(c, &conn, &n)?);
            // Newest file first; in a file, its own rejections, then the
            // library's refusals in seal order.
            rows.sort_by_key(|r| std::cmp::Reverse(r.file_id));
            rows.truncate(n.limit.max(0) as usize);
            Ok((rows, f))
        })
        .await;
    let (rows, f) = match found {
        Ok(r) => r,
        Err(e) => return store_failed(Some(&who), &e),
    };
    if !x.xlsx.is_empty() {
        return match rejections_xlsx(&rows) {
            Ok(b) => xlsx("拒收记录.xlsx", b),
            Err(e) => store_failed(Some(&who), &e),
        };
    }
    let query = format!(
        "dataset={}&day={}&name={}&rule={}&xlsx=1",
        enc(&f.dataset),
        enc(&f.day),
        enc(&f.name),
        enc(&f.rule)
    );
    let body = html! {
        form method="get" action="/rejections" hx-get="/rejections" hx-target="#results"
            hx-select="#results" hx-swap="outerHTML" hx-push-url="true" {
            "数据集 " input name="dataset" value=(f.dataset);
            " 日期 " input name="day" value=(f.day) placeholder="2026-01-31";
            " 文件名 " input name="name" value=(f.name);
            " 规则 " input name="rule" value=(f.rule);
            " " button { "查询" }
        }
        div #results {
        p { a href=(format!("/rejections?{query}")) { "导出 Excel" } }
        table {
            tr { th { "数据集" } th { "文件" } th { "位置" } th { "记录键" } th { "字段" } th { "值" } th { "规则" } th { "说明" } }
            @for r in &rows {
                tr { td { (r.dataset) } td { a href=(format!("/files/{}", r.file_id)) { (r.file) } } td { (r.position) }
                     td { (r.key.as_deref().unwrap_or("")) } td { (r.title) } td { (r.value.as_deref().unwrap_or("")) }
                     td { (r.rule) } td { (r.message) } }
            }
        }
        @if rows.is_empty() { p.note { "没有符合条件的拒收记录。" } }
        }
    };
    respond(StatusCode::OK, page("拒收记录", Some(&who), body))
}

/// The library's refusals of the narrowed files' records, as the file's
/// own page and its `.library-rejected.errors.xlsx` show them: values
/// masked (those the library's message quotes too), the rule `资源库 CODE`.
/// A rule filter matches that text, the code alone, or `资源库` for all.
fn library_refusals(
    c: &Console,
    conn: &rusqlite::Connection,
    n: &listing::Narrow<'_>,
) -> Result<Vec<listing::Rejected>, StoreError> {
    let mut out = Vec::new();
    for f in listing::files_with_refusals(conn, n)? {
        let schema = c.loaded.schema(&f.dataset);
        for r in crate::report::library::rows_of_file(conn, schema.as_deref(), f.id)? {
            let code = r.rule.strip_prefix("资源库 ").unwrap_or(&r.rule);
            if !(n.rule.is_empty() || n.rule == r.rule || n.rule == code || n.rule == "资源库") {
                continue;
            }
            out.push(listing::Rejected {
                file_id: f.id,
                dataset: f.dataset.clone(),
                file: f.name.clone(),
                claimed_at: f.claimed_at.clone(),
                position: r.position,
                key: r.key,
                title: String::new(),
                value: r.value,
                rule: r.rule,
                message: r.message,
            });
        }
    }
    Ok(out)
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A sheet of text cells: a bold title row, then the rows.
fn sheet(name: &str, titles: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let text = Format::new().set_num_format("@");
    let head = Format::new().set_num_format("@").set_bold();
    let s = book.add_worksheet();
    s.set_name(name)?;
    for (c, t) in titles.iter().enumerate() {
        s.set_column_width(c as u16, 16)?;
        s.write_string_with_format(0, c as u16, *t, &head)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            s.write_string_with_format(r as u32 + 1, c as u16, cell, &text)?;
        }
    }
    s.set_freeze_panes(1, 0)?;
    book.save_to_buffer()
}

fn rejections_xlsx(rows: &[listing::Rejected]) -> Result<Vec<u8>, XlsxError> {
    let titles = [
        "数据集",
        "文件",
        "领取时间",
        "位置",
        "记录键",
        "字段",
        "值",
        "规则",
        "说明",
    ];
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.dataset.clone(),
                r.file.clone(),
                r.claimed_at.clone(),
                r.position.clone(),
                r.key.clone().unwrap_or_default(),
                r.title.clone(),
                r.value.clone().unwrap_or_default(),
                r.rule.clone(),
                r.message.clone(),
            ]
        })
        .collect();
    sheet("拒收记录", &titles, &rows)
}

/// Days the reconciliation chart covers.
const DAYS: usize = 14;

/// Received, rejected and sealed records per day; unbalanced days marked.
fn over_days(days: &[crate::audit::report::DayReport]) -> maud::Markup {
    use super::chart::{Series, bars};
    let labels: Vec<String> = days.iter().map(|d| d.day[5..].to_string()).collect();
    let marked: Vec<bool> = days.iter().map(|d| !d.balances()).collect();
    let series = |name, colour, f: fn(&crate::audit::report::DatasetDay) -> i64| Series {
        name,
        colour,
        values: days.iter().map(|d| f(&d.total)).collect(),
    };
    bars(
        &labels,
        &[
            series("收到", "#1f5a9a", |t| t.received),
            series("拒收", "#b04020", |t| t.rejected),
            series("送达", "#2a8a3a", |t| t.delivered),
        ],
        &marked,
    )
}

#[derive(serde::Deserialize, Default)]
pub struct Day {
    #[serde(default)]
    day: String,
    #[serde(default)]
    xlsx: String,
}

pub async fn reconcile(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<Day>,
) -> Response {
    let who = match c.allowed(&headers, Action::Reconcile).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let tz = c.cfg().tz();
    let day = match q.day.trim() {
        "" => chrono::Utc::now().with_timezone(&tz).date_naive(),
        d => match crate::audit::parse_day(d) {
            Ok(d) => d,
            Err(_) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    page(
                        "对账",
                        Some(&who),
                        html! { p.bad { "无法识别的日期「" (d) "」：请写作 2026-01-31。" } },
                    ),
                );
            }
        },
    };
    let report = c
        .blocking(move |c| {
            let conn = c.reader().map_err(|e| e.to_string())?;
            let names: Vec<String> = c.cfg().datasets.iter().map(|d| d.name.clone()).collect();
            // The day asked for, and the 13 before it for the chart.
            let mut days = Vec::with_capacity(DAYS);
            for back in (0..DAYS as u64).rev() {
                let d = day - chrono::Days::new(back);
                let r = crate::audit::report::report(&conn, d, tz, &names)
                    .map_err(|e| e.to_string())?;
                days.push(r);
            }
            Ok::<_, String>(days)
        })
        .await;
    let mut days = match report {
        Ok(r) => r,
        Err(e) => return store_failed(Some(&who), &e),
    };
    let chart = over_days(&days);
    let Some(r) = days.pop() else {
        return store_failed(Some(&who), &"no report");
    };
    let titles = [
        "数据集",
        "文件",
        "收到",
        "拒收",
        "跳过",
        "封批",
        "送达",
        "接收方拒收",
        "搁置",
        "待送达",
        "收到平衡",
        "封批平衡",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for d in r.datasets.iter().chain([&r.total]) {
        let tick = |ok: bool| if ok { "✓" } else { "✗" }.to_string();
        rows.push(vec![
            d.dataset.clone(),
            d.files.to_string(),
            d.received.to_string(),
            d.rejected.to_string(),
            d.skipped.to_string(),
            d.sealed.to_string(),
            d.delivered.to_string(),
            d.library_rejected.to_string(),
            d.parked.to_string(),
            d.pending.to_string(),
            tick(d.received_balances),
            tick(d.sealed_balances),
        ]);
    }
    if !q.xlsx.is_empty() {
        return match sheet("对账", &titles, &rows) {
            Ok(b) => xlsx(&format!("对账-{}.xlsx", r.day), b),
            Err(e) => store_failed(Some(&who), &e),
        };
    }
    let body = html! {
        form method="get" action="/reconcile" {
            "日期 " input name="day" value=(r.day); " " button { "查看" }
        }
        p { (r.from) " 至 " (r.until) "；收到 = 拒收 + 跳过 + 封批，封批 = 送达 + 接收方拒收 + 搁置 + 待送达。 "
            a href=(format!("/reconcile?day={}&xlsx=1", r.day)) { "导出 Excel" } }
        @if r.balances() { p.ok { "当日各数据集全部平衡。" } } @else { p.bad { "有数据集不平衡，请核查。" } }
        h2 { "近 " (DAYS) " 天（日期为红色的一天不平衡）" }
        (chart)
        h2 { (r.day) }
        table {
            tr { @for t in titles { th { (t) } } }
            @for row in &rows {
                tr { @for cell in row {
                    @if cell == "✗" { td.bad { (cell) } } @else { td { (cell) } }
                } }
            }
        }
    };
    respond(StatusCode::OK, page("对账", Some(&who), body))
}
