//! 文件: upload a file and read the verdict `fepd validate` gives it
//! (`daemon::check`, the same function), without sending anything; the
//! operator may also drop it into the dataset's inbox for real (written
//! whole beside the inbox, then renamed in, as the drop contract asks).
//! Values in the verdict are the validator's: masked when personal.

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::access::{Action, Role};
use super::html::{page, respond};
use super::session::Who;
use super::{Console, store_failed};
use crate::daemon::check::{Checked, Finding, check_file};
use crate::daemon::read::ReadOptions;
use crate::state::log::LogEntry;

/// Findings shown at most (the summary counts them all).
const SHOWN: usize = 1000;

fn upload_form(c: &Console, who: &Who) -> Markup {
    let datasets: Vec<&str> = c
        .cfg()
        .datasets
        .iter()
        .map(|d| d.name.as_str())
        .filter(|d| who.sees(d))
        .collect();
    html! {
        form method="post" action="/upload" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(who.csrf);
            p { "数据集 " select name="dataset" { @for d in &datasets { option value=(d) { (d) } } } }
            p { "文件 " input type="file" name="file" required; }
            p {
                button name="enqueue" value="0" { "只校验，不发送" }
                @if who.role == Role::Operator {
                    " " button name="enqueue" value="1" { "校验并放入收件箱" }
                }
            }
        }
        p.note { "上限 " (c.cfg().console.max_upload_bytes >> 20) " MiB；支持 CSV、XLSX、JSON、JSONL、XML。" }
    }
}

async fn form_page(c: &Console, who: &Who, extra: Markup, status: StatusCode) -> Response {
    respond(
        status,
        page(
            "文件上传校验",
            Some(who),
            html! { (upload_form(c, who)) (extra) },
        ),
    )
}

pub async fn form(State(c): State<Console>, headers: HeaderMap) -> Response {
    match c.allowed(&headers, Action::Upload).await {
        Ok(who) => form_page(&c, &who, html! {}, StatusCode::OK).await,
        Err(r) => r,
    }
}

#[derive(Default)]
struct Upload {
    csrf: String,
    dataset: String,
    name: String,
    bytes: Vec<u8>,
    enqueue: bool,
}

/// Reads the form. The file is kept up to `max` bytes; beyond it the rest
/// is read and dropped (`too_big`), so that the browser, still sending,
/// gets the refusal page rather than a closed connection. The request as
/// a whole is bounded by the route's body limit.
async fn read_upload(mut m: Multipart, max: u64) -> Result<(Upload, bool), String> {
    let mut u = Upload::default();
    let mut over = false;
    let too_big = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => "文件超过上传上限，未处理。".to_string(),
        _ => "上传内容无法读取，请重新选择文件。".to_string(),
    };
    while let Some(field) = m.next_field().await.map_err(too_big)? {
        match field.name().unwrap_or_default() {
            "file" => {
                u.name = field.file_name().unwrap_or_default().to_string();
                let mut field = field;
                while let Some(chunk) = field.chunk().await.map_err(too_big)? {
                    if over || (u.bytes.len() + chunk.len()) as u64 > max {
                        over = true;
                        u.bytes = Vec::new();
                        continue;
                    }
                    u.bytes.extend_from_slice(&chunk);
                }
            }
            name => {
                let name = name.to_string();
                let text = field.text().await.map_err(too_big)?;
                match name.as_str() {
                    "csrf" => u.csrf = text,
                    "dataset" => u.dataset = text,
                    "enqueue" => u.enqueue = text == "1",
                    _ => {}
                }
            }
        }
    }
    Ok((u, over))
}

pub async fn submit(State(c): State<Console>, headers: HeaderMap, m: Multipart) -> Response {
    let who = match c.allowed(&headers, Action::Upload).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let max = c.cfg().console.max_upload_bytes;
    let (u, over) = match read_upload(m, max).await {
        Ok(u) => u,
        Err(why) => {
            return form_page(
                &c,
                &who,
                html! { p.bad { (why) } },
                StatusCode::PAYLOAD_TOO_LARGE,
            )
            .await;
        }
    };
    if let Err(r) = c.csrf(&who, &u.csrf, Action::Upload).await {
        return r;
    }
    if over {
        let why = format!("文件超过上传上限（{max} 字节），未处理。");
        return form_page(
            &c,
            &who,
            html! { p.bad { (why) } },
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }
    if u.enqueue && !super::access::allows(who.role, Action::Enqueue) {
        return c.refuse(&who, Action::Enqueue, "role").await;
    }
    if !who.sees(&u.dataset) {
        return c.refuse(&who, Action::Upload, "dataset").await;
    }
    // The name as dropped: its last path component only.
    let name = u
        .name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .to_string();
    if c.loaded.schema(&u.dataset).is_none() || name.is_empty() || name.starts_with('.') {
        let why = "请选择数据集和一个文件（文件名不能以点开头）。";
        return form_page(&c, &who, html! { p.bad { (why) } }, StatusCode::BAD_REQUEST).await;
    }
    let user = who.user.clone();
    let done = c.blocking(move |c| verdict(c, &user, &u, &name)).await;
    match done {
        Ok(markup) => form_page(&c, &who, markup, StatusCode::OK).await,
        Err(e) => store_failed(Some(&who), &e),
    }
}

/// Checks the upload, logs it, enqueues it when asked and it passed;
/// the verdict's markup.
fn verdict(
    c: &Console,
    user: &str,
    u: &Upload,
    name: &str,
) -> Result<Markup, crate::state::StoreError> {
    let cfg = c.cfg();
    let schema = c.loaded.schema(&u.dataset).ok_or_else(|| {
        crate::state::StoreError::io(
            std::path::Path::new(&u.dataset),
            std::io::ErrorKind::NotFound.into(),
        )
    })?;
    let dir = cfg.state_dir.join("console-upload");
    std::fs::create_dir_all(&dir).map_err(crate::state::StoreError::at(&dir))?;
    let tmp = dir.join(super::session::token());
    std::fs::write(&tmp, &u.bytes).map_err(crate::state::StoreError::at(&tmp))?;
    let opts = ReadOptions::of(cfg, Some(&u.dataset));
    let mut findings = Vec::new();
    let checked = check_file(&tmp, name, &opts, &schema, |f| {
        if findings.len() < SHOWN {
            findings.push(f)
        }
    });
    let _ = std::fs::remove_file(&tmp);
    let checked: Checked = checked.map_err(crate::state::StoreError::at(&tmp))?;
    let (records, rejected) = checked
        .summary
        .as_ref()
        .map_or((0, 0), |s| (s.records, s.rejected));
    let enqueue = u.enqueue && !checked.rejected;
    let mut enqueued = None;
    if enqueue {
        let inbox = cfg.spool_dir.join(&u.dataset).join("inbox");
        enqueued = Some(if inbox.join(name).exists() {
            Err(format!("收件箱中已有同名文件 {name}，未放入。"))
        } else {
            crate::fsio::write_atomic(&inbox, name, &u.bytes)
                .map(|_| ())
                .map_err(|_| "无法写入收件箱，请联系运维人员。".to_string())
        });
    }
    c.record(LogEntry::ConsoleUpload {
        user,
        dataset: &u.dataset,
        file: name,
        size: u.bytes.len() as u64,
        records,
        rejected,
        enqueued: matches!(enqueued, Some(Ok(()))),
    })?;
    Ok(html! {
        h2 { (name) " 的校验结果" }
        @if let Some(s) = &checked.summary {
            p { "共 " (s.records) " 条记录，通过 " (s.records - s.rejected) " 条，拒绝 " (s.rejected) " 条（格式 " (s.format)
                @if let Some(e) = s.encoding { "，编码 " (e) } "）" }
            @for w in s.notes.warnings() { p.note { "提示：" (w) } }
        }
        @if checked.rejected { p.bad { "校验未通过。" } } @else { p.ok { "校验通过。" } }
        @if u.enqueue && checked.rejected { p.bad { "未通过校验的文件不放入收件箱。" } }
        @match &enqueued {
            Some(Ok(())) => p.ok { "已放入 " (u.dataset) " 的收件箱，将按正常流程处理。" },
            Some(Err(why)) => p.bad { (why) },
            None => @if !u.enqueue { p.note { "只做了校验，没有发送任何数据。" } },
        }
        @if !findings.is_empty() {
            table {
                tr { th { "位置" } th { "字段" } th { "值" } th { "规则" } th { "说明" } }
                @for f in &findings {
                    @match f {
                        Finding::Fault(m) => tr { td { "整个文件" } td {} td {} td { "file" } td.bad { (m) } },
                        Finding::Record { position, field, title, value, rule, message, warning, .. } => tr {
                            td { (position) }
                            td { @if !field.is_empty() { (title) "（" (field) "）" } }
                            td { (value.as_deref().unwrap_or("")) }
                            td { (rule) }
                            td { @if *warning { "（警告）" } (message) }
                        },
                    }
                }
            }
        }
    })
}
