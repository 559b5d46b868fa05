//! 显示原值: one rejected record's field in clear, for a user granted the
//! reveal (`fepd users grant NAME --reveal`; README "Web console"). The
//! state database holds no clear value of a rejected field, so the value
//! is read again from the original file while retention keeps it in
//! `done/` or `rejected/`, by the reader `fepd validate` uses
//! (`daemon::check::field_at`), stopping at that record. Each reveal is a
//! `console_reveal` entry (user, file, record, field — never the value),
//! written before the value is shown; the answer is never cached and
//! nothing else shows the value.
//!
//! A record the library refused (`remote_rejection`) is named only by its
//! batch and index, and the library names no field (docs/protocol.md §5,
//! `rejected[]`). It is found in the original file by its key and content
//! hash (`batch_record`, the validator's `ValidRecord::hash`,
//! `daemon::check::record_by`), and its personal fields are shown; the
//! entry names the record's number in the file and those fields.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::access::Action;
use super::html::{page, respond};
use super::{Console, store_failed};
use crate::daemon::check::{FieldAt, RecordBy, field_at, record_by};
use crate::state::StoreError;
use crate::state::files::FileRow;
use crate::state::listing::Listed;
use crate::state::log::LogEntry;

#[derive(serde::Deserialize, Default)]
pub struct RevealForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ordinal: i64,
    #[serde(default)]
    field: String,
    /// A library refusal: its batch and index (then `ordinal` and
    /// `field` are not used).
    #[serde(default)]
    batch: String,
    #[serde(default)]
    idx: i64,
}

/// What a reveal came to.
enum Outcome {
    Shown {
        file: String,
        position: String,
        /// (field title, value in clear).
        values: Vec<(String, String)>,
    },
    /// Said in Chinese, with the status.
    Not(StatusCode, String),
}

fn not(status: StatusCode, text: &str) -> Result<Outcome, StoreError> {
    Ok(Outcome::Not(status, text.to_string()))
}

/// File `id` as the user may see it, with its state row; no such file,
/// or not among the user's datasets, is one answer for both.
fn file_of(
    conn: &rusqlite::Connection,
    allowed: &str,
    id: i64,
) -> Result<Result<(Listed, FileRow), Outcome>, StoreError> {
    let listed = crate::state::listing::file(conn, allowed, id)?;
    let row = crate::state::files::by_id(conn, id)?;
    Ok(match listed.zip(row) {
        Some(f) => Ok(f),
        None => Err(Outcome::Not(
            StatusCode::NOT_FOUND,
            "没有这个文件，或它不属于您的数据集。".to_string(),
        )),
    })
}

/// The original file of a file row, where retention still keeps it, with
/// what reading it needs — or why it cannot be read.
struct Original {
    dataset: String,
    /// The name the file was dropped under.
    name: String,
    path: std::path::PathBuf,
    schema: std::sync::Arc<crate::validate::DatasetSchema>,
    opts: crate::daemon::read::ReadOptions,
}

fn original(c: &Console, listed: &Listed, final_name: Option<&str>) -> Result<Original, Outcome> {
    let no = |s, t: &str| Outcome::Not(s, t.to_string());
    if c.cfg()
        .dataset(&listed.dataset)
        .is_some_and(|d| d.sql.is_some())
    {
        return Err(no(
            StatusCode::CONFLICT,
            "这个数据集取自前置库，没有可重新读取的原始文件；请在前置库中查看原值。",
        ));
    }
    let spool = crate::spool::Spool::new(&c.cfg().spool_dir, &listed.dataset);
    let kept = final_name.and_then(|n| {
        [spool.rejected.join(n), spool.done.join(n)]
            .into_iter()
            .find(|p| p.is_file())
    });
    let Some(path) = kept else {
        return Err(no(
            StatusCode::GONE,
            "原始文件已不在 done/ 或 rejected/ 中（已按保留期限删除或被移走），无法显示原值。",
        ));
    };
    let Some(schema) = c.loaded.schema(&listed.dataset) else {
        return Err(no(
            StatusCode::CONFLICT,
            "配置中已没有这个数据集，无法读取。",
        ));
    };
    Ok(Original {
        dataset: listed.dataset.clone(),
        name: listed.name.clone(),
        path,
        schema,
        opts: crate::daemon::read::ReadOptions::of(c.cfg(), Some(&listed.dataset)),
    })
}

/// A local rejection's field, re-read by its record number.
fn rejected_field(
    c: &Console,
    user: &str,
    allowed: &str,
    id: i64,
    f: &RevealForm,
) -> Result<Outcome, StoreError> {
    let conn = c.reader()?;
    let (listed, row) = match file_of(&conn, allowed, id)? {
        Ok(f) => f,
        Err(n) => return Ok(n),
    };
    let rejections = crate::state::files::rejections_of(&conn, id)?;
    let Some(r) = rejections
        .iter()
        .find(|r| r.ordinal == f.ordinal && r.field == f.field && !r.field.is_empty())
    else {
        return not(StatusCode::NOT_FOUND, "这个文件没有该条拒收记录的该字段。");
    };
    drop(conn);
    let o = match original(c, &listed, row.final_name.as_deref()) {
        Ok(o) => o,
        Err(n) => return Ok(n),
    };
    let at = field_at(
        &o.path,
        &row.name,
        &o.opts,
        &o.schema,
        f.ordinal as u64,
        &f.field,
    )
    .map_err(StoreError::at(&o.path))?;
    let (value, position) = match at {
        FieldAt::Value { value, position } if position == r.position => (value, position),
        FieldAt::Value { .. } | FieldAt::NoRecord => {
            return not(
                StatusCode::CONFLICT,
                "原始文件与拒收记录对不上（文件可能已被替换），无法显示原值。",
            );
        }
        FieldAt::Absent => return not(StatusCode::NOT_FOUND, "该记录中这个字段为空。"),
    };
    // Logged first: no value is shown that the log does not name.
    c.record(LogEntry::ConsoleReveal {
        user,
        dataset: &o.dataset,
        file: &o.name,
        record: f.ordinal,
        field: &f.field,
    })?;
    Ok(Outcome::Shown {
        file: o.name,
        position,
        values: vec![(r.title.clone(), value)],
    })
}

/// A record the library refused: found in the original file by its key
/// and content hash, its personal fields shown.
fn refused_record(
    c: &Console,
    user: &str,
    allowed: &str,
    id: i64,
    f: &RevealForm,
) -> Result<Outcome, StoreError> {
    let conn = c.reader()?;
    let (listed, row) = match file_of(&conn, allowed, id)? {
        Ok(f) => f,
        Err(n) => return Ok(n),
    };
    let refused = crate::state::batches::refusals_of_file(&conn, id)?;
    if !refused
        .iter()
        .any(|r| r.batch_id == f.batch && r.idx == f.idx)
    {
        return not(StatusCode::NOT_FOUND, "这个文件没有该条资源库拒收记录。");
    }
    let Some((key, hash)) = crate::state::batches::record_line(&conn, &f.batch, f.idx)? else {
        return not(
            StatusCode::GONE,
            "该批次的逐条记录已按保留期限删除，无法在原始文件中找到这条记录。",
        );
    };
    drop(conn);
    let o = match original(c, &listed, row.final_name.as_deref()) {
        Ok(o) => o,
        Err(n) => return Ok(n),
    };
    let found = record_by(&o.path, &row.name, &o.opts, &o.schema, &key, &hash)
        .map_err(StoreError::at(&o.path))?;
    let RecordBy::Found {
        ordinal,
        position,
        personal,
    } = found
    else {
        return not(
            StatusCode::CONFLICT,
            "原始文件中找不到这条记录（文件可能已被替换），无法显示原值。",
        );
    };
    if personal.is_empty() {
        return not(
            StatusCode::NOT_FOUND,
            "这条记录没有填写个人信息字段，没有需要显示的原值。",
        );
    }
    let fields: Vec<&str> = personal.iter().map(|(f, _)| f.as_str()).collect();
    // Logged first: no value is shown that the log does not name.
    c.record(LogEntry::ConsoleReveal {
        user,
        dataset: &o.dataset,
        file: &o.name,
        record: ordinal as i64,
        field: &fields.join(","),
    })?;
    let values = personal
        .into_iter()
        .map(|(f, v)| (o.schema.title_of(&f).unwrap_or(&f).to_string(), v))
        .collect();
    Ok(Outcome::Shown {
        file: o.name,
        position: format!(
            "第 {ordinal} 条记录，{position}（批次 {} 第 {} 条）",
            f.batch,
            f.idx + 1
        ),
        values,
    })
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
        .blocking(move |c| {
            if f.batch.is_empty() {
                rejected_field(c, &user, &allowed, id, &f)
            } else {
                refused_record(c, &user, &allowed, id, &f)
            }
        })
        .await;
    match done {
        Ok(Outcome::Shown {
            file,
            position,
            values,
        }) => respond(
            StatusCode::OK,
            page(
                "原值",
                Some(&who),
                html! {
                    table {
                        tr { th { "文件" } td { (file) } }
                        tr { th { "位置" } td { (position) } }
                        @for (title, value) in &values {
                            tr { th { (title) } td { (value) } }
                        }
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
