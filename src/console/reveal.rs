//! 显示原值: one rejected record's field in clear, for a user granted the
//! reveal (`fepd users grant NAME --reveal`; README "Web console"). The
//! state database holds no clear value of a rejected field, so the value
//! is read again from the original file while retention keeps it in
//! `done/` or `rejected/`, by the reader `fepd validate` uses
//! (`daemon::check::field_at`), stopping at that record. Each reveal is a
//! `console_reveal` entry (user, file, record, field — never the value),
//! written before the value is shown; the answer is never cached and
//! nothing else shows the value.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::access::Action;
use super::html::{page, respond};
use super::{Console, store_failed};
use crate::daemon::check::{FieldAt, field_at};
use crate::state::log::LogEntry;

#[derive(serde::Deserialize, Default)]
pub struct RevealForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ordinal: i64,
    #[serde(default)]
    field: String,
}

/// What a reveal came to.
enum Outcome {
    Shown {
        file: String,
        position: String,
        title: String,
        value: String,
    },
    /// Said in Chinese, with the status.
    Not(StatusCode, String),
}

pub async fn reveal(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<RevealForm>,
) -> Response {
    let who = match c.allowed(&headers, Action::Reveal).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = c.csrf(&who, &f.csrf, Action::Reveal).await {
        return r;
    }
    if !who.reveal {
        return c.refuse(&who, Action::Reveal, "grant").await;
    }
    let allowed = super::records::allowed(&who);
    let user = who.user.clone();
    let done = c
        .blocking(move |c| -> Result<Outcome, crate::state::StoreError> {
            let not = |s, t: &str| Ok(Outcome::Not(s, t.to_string()));
            let conn = c.reader()?;
            let Some(listed) = crate::state::listing::file(&conn, &allowed, id)? else {
                return not(StatusCode::NOT_FOUND, "没有这个文件，或它不属于您的数据集。");
            };
            let rejections = crate::state::files::rejections_of(&conn, id)?;
            let Some(r) = rejections
                .iter()
                .find(|r| r.ordinal == f.ordinal && r.field == f.field && !r.field.is_empty())
            else {
                return not(StatusCode::NOT_FOUND, "这个文件没有该条拒收记录的该字段。");
            };
            let Some(row) = crate::state::files::by_id(&conn, id)? else {
                return not(StatusCode::NOT_FOUND, "没有这个文件。");
            };
            drop(conn);
            if c.cfg().dataset(&listed.dataset).is_some_and(|d| d.sql.is_some()) {
                return not(
                    StatusCode::CONFLICT,
                    "这个数据集取自前置库，没有可重新读取的原始文件；请在前置库中查看原值。",
                );
            }
            let spool = crate::spool::Spool::new(&c.cfg().spool_dir, &listed.dataset);
            let kept = row.final_name.as_deref().and_then(|n| {
                [spool.rejected.join(n), spool.done.join(n)]
                    .into_iter()
                    .find(|p| p.is_file())
            });
            let Some(path) = kept else {
                return not(
                    StatusCode::GONE,
                    "原始文件已不在 done/ 或 rejected/ 中（已按保留期限删除或被移走），无法显示原值。",
                );
            };
            let Some(schema) = c.loaded.schema(&listed.dataset) else {
                return not(StatusCode::CONFLICT, "配置中已没有这个数据集，无法读取。");
            };
            let opts = crate::daemon::read::ReadOptions::of(c.cfg(), Some(&listed.dataset));
            let at = field_at(&path, &row.name, &opts, &schema, f.ordinal as u64, &f.field)
                .map_err(crate::state::StoreError::at(&path))?;
            let (value, position) = match at {
                FieldAt::Value { value, position } if position == r.position => (value, position),
                FieldAt::Value { .. } | FieldAt::NoRecord => {
                    return not(StatusCode::CONFLICT, "原始文件与拒收记录对不上（文件可能已被替换），无法显示原值。");
                }
                FieldAt::Absent => return not(StatusCode::NOT_FOUND, "该记录中这个字段为空。"),
            };
            // Logged first: no value is shown that the log does not name.
            c.record(LogEntry::ConsoleReveal {
                user: &user,
                dataset: &listed.dataset,
                file: &listed.name,
                record: f.ordinal,
                field: &f.field,
            })?;
            Ok(Outcome::Shown {
                file: listed.name,
                position,
                title: r.title.clone(),
                value,
            })
        })
        .await;
    match done {
        Ok(Outcome::Shown {
            file,
            position,
            title,
            value,
        }) => respond(
            StatusCode::OK,
            page(
                "原值",
                Some(&who),
                html! {
                    table {
                        tr { th { "文件" } td { (file) } }
                        tr { th { "位置" } td { (position) } }
                        tr { th { "字段" } td { (title) } }
                        tr { th { "原值" } td { (value) } }
                    }
                    p.note { "此次查看已记入交换日志（用户、文件、记录、字段，不含值）。本页不缓存，离开后不再显示。" }
                    p { a href=(format!("/files/{id}")) { "返回文件" } }
                },
            ),
        ),
        Ok(Outcome::Not(status, why)) => respond(
            status,
            page(
                "原值",
                Some(&who),
                html! { p.bad { (why) } p { a href=(format!("/files/{id}")) { "返回文件" } } },
            ),
        ),
        Err(e) => store_failed(Some(&who), &e),
    }
}
