//! 批次 (`fepd batches list`), and the operator's actions on a batch —
//! retry and park through the same `outbox` transitions `fepd batches`
//! makes, 补传 (replay) of a delivered batch through `outbox::replay_stored`
//! as `fepd replay --batch` does — each recorded with the user's name;
//! 补传 by window or file is `replays`'.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use rusqlite::TransactionBehavior;

use super::access::Action;
use super::html::{page, respond, see_other};
use super::session::Who;
use super::{Console, store_failed};
use crate::outbox::{self, BatchState};
use crate::state::batches;
use crate::state::log::Parking;

#[derive(serde::Deserialize, Default)]
pub struct BatchFilter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    dataset: String,
}

pub async fn list(
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
        // With JavaScript, the table is replaced in place (htmx).
        form method="get" action="/batches" hx-get="/batches" hx-target="#results"
            hx-select="#results" hx-swap="outerHTML" hx-push-url="true" {
            "状态 " input name="state" value=(f.state) placeholder="sealed / parked …";
            " 数据集 " input name="dataset" value=(f.dataset);
            " " button { "筛选" }
        }
        div #results {
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
        }
        @if acts { (super::replays::form(&who)) }
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
        @if state == BatchState::Delivered {
            form.inline.confirm method="post" action="/batches/replay"
                data-confirm="确定补传该批次吗？补传会生成新批次并再次发送其记录。" {
                input type="hidden" name="csrf" value=(who.csrf);
                input type="hidden" name="id" value=(id);
                input name="reason" placeholder="补传原因" required;
                button { "补传" }
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

pub async fn replay(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<BatchForm>,
) -> Response {
    let who = match c.allowed(&headers, Action::BatchReplay).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = c.csrf(&who, &f.csrf, Action::BatchReplay).await {
        return r;
    }
    let user = who.user.clone();
    let done = c
        .blocking(move |c| -> Result<Result<String, String>, crate::state::StoreError> {
            let cfg = c.cfg();
            let mut conn = crate::state::open(&cfg.state_db())?;
            let Some(b) = batches::get(&conn, &f.id)? else {
                return Ok(Err(format!("没有批次 {}。", f.id)));
            };
            if b.state != BatchState::Delivered {
                return Ok(Err(format!(
                    "批次 {} 当前状态为 {}：只能补传已送达的批次（搁置的批次请用“重发”）。",
                    b.batch_id, b.state
                )));
            }
            let reason = match f.reason.trim() {
                "" => return Ok(Err("请填写补传原因（记入交换日志）。".into())),
                r => r.to_string(),
            };
            // `fepd replay --batch`: the same transition, `by` the user.
            Ok(
                match outbox::replay_stored(&mut conn, cfg.tz(), &b, &user, &reason)? {
                    Ok(id) => Ok(id),
                    Err(outbox::Unreplayable::BodyGone) => Err(format!(
                        "批次 {} 的报文已按保留期限删除（[retention] batch_bodies = {}），无法补传；\
                         原始文件在 done/ 中保留期内可重新放入收件箱。",
                        b.batch_id, cfg.retention.batch_bodies
                    )),
                    Err(outbox::Unreplayable::NotABody) => {
                        Err(format!("批次 {} 保存的报文无法识别，无法补传。", b.batch_id))
                    }
                },
            )
        })
        .await;
    match done {
        Ok(Ok(id)) => respond(
            StatusCode::OK,
            page(
                "批次",
                Some(&who),
                html! {
                    p.ok { "已补传：新批次 " (id) " 已封批，将按顺序发送。" }
                    p { a href="/batches" { "返回批次" } }
                },
            ),
        ),
        Ok(Err(why)) => respond(
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
