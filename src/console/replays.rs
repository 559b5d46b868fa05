//! 补传 by delivery window or source file, for the operator: the batches
//! `fepd replay --dataset D --since T --until T` or `--file NAME` would
//! replay, chosen by the same `outbox::replay_request::choose` and sealed
//! again by the same `outbox::replay_stored`, each `batch_replayed` entry
//! naming the user. The request is shown first — which batches, how many
//! records — and done only when that page's 确认补传 is posted (no
//! JavaScript needed); the confirmation carries how many batches were
//! shown, and a request that names another number by then is shown
//! again. As in the CLI, it is all or nothing: where retention deleted a
//! body, nothing is sent and the page says from when a replay is possible.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::access::Action;
use super::html::{page, respond};
use super::session::Who;
use super::{Console, store_failed};
use crate::outbox::replay_request::{Refused, Request, choose, pruned};
use crate::state::StoreError;
use crate::state::batches::BatchRow;

#[derive(serde::Deserialize, Default, Clone)]
pub struct RangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dataset: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    reason: String,
    /// Empty: show what would be replayed. Otherwise the number of
    /// batches the confirmation page showed.
    #[serde(default)]
    confirm: String,
}

impl RangeForm {
    fn request(&self) -> Option<Request<'_>> {
        fn opt(s: &str) -> Option<&str> {
            Some(s.trim()).filter(|s| !s.is_empty())
        }
        match (opt(&self.file), opt(&self.dataset)) {
            (Some(name), dataset) => Some(Request::File { name, dataset }),
            (None, Some(dataset)) => Some(Request::Window {
                dataset,
                since: opt(&self.since),
                until: opt(&self.until),
            }),
            (None, None) => None,
        }
    }
}

/// The 批次 page's form for it (the operator's only).
pub fn form(who: &Who) -> Markup {
    html! {
        h2 { "按时间段或文件补传" }
        form method="post" action="/batches/replay-range" {
            input type="hidden" name="csrf" value=(who.csrf);
            "数据集 " input name="dataset";
            " 送达时间 从 " input name="since" placeholder="2026-01-31";
            " 到 " input name="until" placeholder="2026-01-31 或 2026-01-31T18:00:00";
            " 或 文件名 " input name="file";
            " 原因 " input name="reason" required;
            " " button { "查看将补传的批次" }
        }
        p.note { "按时间段：填写数据集与送达时间的起止（日期指整天）；按文件：填写文件名（可同时填写数据集）。提交后先列出将补传的批次，确认后才补传。" }
    }
}

/// What a request came to.
enum Outcome {
    /// The batches it names, to be confirmed.
    Shown(Vec<BatchRow>),
    /// Replayed: (original, new id, records).
    Done(Vec<(String, String, i64)>),
    /// Said in Chinese, with the status.
    Not(StatusCode, String),
}

fn said(why: &Refused) -> String {
    match why {
        Refused::UnknownDataset(d) => format!("没有数据集「{d}」。"),
        Refused::NoBatch(id) => format!("没有批次 {id}。"),
        Refused::HalfNotDelivered { batch, half, state } => format!(
            "批次 {batch} 已拆分，其中 {half} 当前状态为 {}：只能补传已送达的记录。",
            state.as_str()
        ),
        Refused::NotDelivered { batch, state } => format!(
            "批次 {batch} 当前状态为 {}：只能补传已送达的批次。",
            state.as_str()
        ),
        Refused::WindowOpen => "按时间段补传需要同时填写起止时间。".into(),
        Refused::BadSince(_) => {
            "无法识别起始时间：请写作 2026-01-31 或 2026-01-31T08:00:00。".into()
        }
        Refused::BadUntil(_) => {
            "无法识别结束时间：请写作 2026-01-31 或 2026-01-31T18:00:00。".into()
        }
        Refused::WindowBackwards => "结束时间早于起始时间。".into(),
    }
}

fn decide(c: &Console, user: &str, f: &RangeForm) -> Result<Outcome, StoreError> {
    let not = |s, t: String| Ok(Outcome::Not(s, t));
    let Some(request) = f.request() else {
        return not(
            StatusCode::BAD_REQUEST,
            "请填写数据集与送达时间的起止，或文件名。".into(),
        );
    };
    let reason = f.reason.trim();
    if reason.is_empty() {
        return not(
            StatusCode::BAD_REQUEST,
            "请填写补传原因（记入交换日志）。".into(),
        );
    }
    let cfg = c.cfg();
    let tz = cfg.tz();
    let known = |d: &str| cfg.dataset(d).is_some();
    if f.confirm.is_empty() {
        let conn = c.reader()?;
        return match choose(&conn, tz, known, &request)? {
            Err(why) => not(StatusCode::CONFLICT, said(&why)),
            Ok(chosen) if chosen.is_empty() => {
                not(StatusCode::NOT_FOUND, "没有符合条件的已送达批次。".into())
            }
            Ok(chosen) => match refused_for_retention(c, &conn, &chosen)? {
                Some(why) => not(StatusCode::CONFLICT, why),
                None => Ok(Outcome::Shown(chosen)),
            },
        };
    }
    let mut conn = crate::state::open(&cfg.state_db())?;
    let chosen = match choose(&conn, tz, known, &request)? {
        Err(why) => return not(StatusCode::CONFLICT, said(&why)),
        Ok(chosen) => chosen,
    };
    if chosen.is_empty() {
        return not(StatusCode::NOT_FOUND, "没有符合条件的已送达批次。".into());
    }
    if chosen.len().to_string() != f.confirm.trim() {
        // Not what was confirmed: shown again.
        return Ok(Outcome::Shown(chosen));
    }
    if let Some(why) = refused_for_retention(c, &conn, &chosen)? {
        return not(StatusCode::CONFLICT, why);
    }
    let mut made = Vec::with_capacity(chosen.len());
    for b in &chosen {
        // `fepd replay`'s step for each batch, `by` the user.
        match crate::outbox::replay_stored(&mut conn, tz, b, user, reason)? {
            Ok(id) => made.push((b.batch_id.clone(), id, b.count)),
            Err(_) => {
                return not(
                    StatusCode::CONFLICT,
                    format!(
                        "批次 {} 的报文在补传过程中被删除或无法识别；此前的 {} 个批次已补传。",
                        b.batch_id,
                        made.len()
                    ),
                );
            }
        }
    }
    Ok(Outcome::Done(made))
}

/// The all-or-nothing refusal when retention deleted a chosen body.
fn refused_for_retention(
    c: &Console,
    conn: &rusqlite::Connection,
    chosen: &[BatchRow],
) -> Result<Option<String>, StoreError> {
    let p = pruned(conn, chosen)?;
    if p.batches.is_empty() {
        return Ok(None);
    }
    let (first, last) = p.span();
    let mut why = format!(
        "未补传任何批次：所选 {} 个批次中有 {} 个的报文已按保留期限删除（[retention] batch_bodies = {}），{first} 至 {last} 送达的批次无法补传。",
        chosen.len(),
        p.batches.len(),
        c.cfg().retention.batch_bodies
    );
    for (d, kept) in &p.kept_from {
        match kept {
            Some(t) => why.push_str(&format!(" {d}：{t} 起送达的批次仍可补传。")),
            None => why.push_str(&format!(" {d}：没有仍保留报文的已送达批次。")),
        }
    }
    Ok(Some(why))
}

pub async fn replay_range(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<RangeForm>,
) -> Response {
    let who = match c.allowed(&headers, Action::BatchReplay).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = c.csrf(&who, &f.csrf, Action::BatchReplay).await {
        return r;
    }
    let user = who.user.clone();
    let form = f.clone();
    let done = c.blocking(move |c| decide(c, &user, &form)).await;
    let back = html! { p { a href="/batches" { "返回批次" } } };
    match done {
        Ok(Outcome::Shown(chosen)) => {
            let records: i64 = chosen.iter().map(|b| b.count).sum();
            respond(
                StatusCode::OK,
                page(
                    "补传确认",
                    Some(&who),
                    html! {
                        p { "将补传以下 " (chosen.len()) " 个已送达批次，共 " (records) " 条记录（原因：" (f.reason.trim()) "）。补传会生成新批次并按顺序再次发送。" }
                        table {
                            tr { th { "批次" } th { "数据集" } th { "记录数" } th { "送达时间" } }
                            @for b in &chosen {
                                tr { td { (b.batch_id) } td { (b.dataset) } td { (b.count) }
                                     td { (b.delivered_at.as_deref().unwrap_or("—")) } }
                            }
                        }
                        form method="post" action="/batches/replay-range" {
                            input type="hidden" name="csrf" value=(who.csrf);
                            input type="hidden" name="dataset" value=(f.dataset);
                            input type="hidden" name="since" value=(f.since);
                            input type="hidden" name="until" value=(f.until);
                            input type="hidden" name="file" value=(f.file);
                            input type="hidden" name="reason" value=(f.reason);
                            input type="hidden" name="confirm" value=(chosen.len());
                            button { "确认补传" }
                        }
                        (back)
                    },
                ),
            )
        }
        Ok(Outcome::Done(made)) => respond(
            StatusCode::OK,
            page(
                "批次",
                Some(&who),
                html! {
                    p.ok { "已补传 " (made.len()) " 个批次：新批次已封批，将按顺序发送。" }
                    table {
                        tr { th { "原批次" } th { "新批次" } th { "记录数" } }
                        @for (from, to, n) in &made { tr { td { (from) } td { (to) } td { (n) } } }
                    }
                    (back)
                },
            ),
        ),
        Ok(Outcome::Not(status, why)) => respond(
            status,
            page("批次", Some(&who), html! { p.bad { (why) } (back) }),
        ),
        Err(e) => store_failed(Some(&who), &e),
    }
}
