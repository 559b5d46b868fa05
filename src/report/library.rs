//! The library's refusals, fed back to the file the records came from.
//!
//! When the library refuses records of an accepted batch (an `.ack`'s or a
//! push answer's `rejected[]`), the folder where the source file ended up
//! gets `<file>.library-rejected.json`, `.errors.csv` and `.errors.xlsx`,
//! in the shapes of local rejections: one row per refused record with its
//! key, the library's code and message, and the record's values masked as
//! local reports mask them. The file's receipt gains `libraryRejected` and
//! its 回执 says where to look. The library's raw answer stays in state
//! (`remote_rejection`, with the batch body) for auditors; nothing unmasked
//! is written to the spool.
//!
//! The report is rebuilt from state each time (all of the file's batches),
//! so it is complete whichever batch is acknowledged last, and a file still
//! in `work/` gets it when its verdict is written.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::{notice, table};
use crate::fsio;
use crate::state::batches::{self, Refusal};
use crate::state::files::{self, FileState, Rejection};
use crate::validate::DatasetSchema;

#[derive(Debug, thiserror::Error)]
pub enum LibraryReportError {
    #[error(transparent)]
    State(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LibraryReportError + '_ {
    move |source| LibraryReportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The report's file names for a source file named `name`.
pub fn report_names(name: &str) -> [String; 3] {
    [
        format!("{name}.library-rejected.json"),
        format!("{name}.library-rejected.errors.csv"),
        format!("{name}.library-rejected.errors.xlsx"),
    ]
}

/// Writes (or rewrites) the library-refusal report of file `file_id`
/// beside it under `spool/<dataset>/{done,rejected}/`. Returns the number
/// of refused records reported; 0 when there are none or the file has no
/// verdict yet (its verdict will write the report).
pub fn write_for_file(
    conn: &Connection,
    spool: &Path,
    schema: Option<&DatasetSchema>,
    file_id: i64,
) -> Result<usize, LibraryReportError> {
    let Some(file) = files::by_id(conn, file_id)? else {
        return Ok(0);
    };
    let dir: PathBuf = match file.state {
        FileState::Done | FileState::Rejected => crate::spool::Spool::new(spool, &file.dataset)
            .verdict_dir(file.state)
            .to_path_buf(),
        _ => return Ok(0),
    };
    let refusals = batches::refusals_of_file(conn, file_id)?;
    if refusals.is_empty() {
        return Ok(0);
    }
    let name = file.final_name.as_deref().unwrap_or(&file.name);
    let (rows, records) = masked_rows(conn, schema, &refusals)?;
    let [json_name, csv_name, xlsx_name] = report_names(name);
    let doc = json!({
        "file": file.name, "dataset": file.dataset, "libraryRejected": refusals.len(),
        "records": records,
    });
    let key_title = key_title(schema);
    fsio::write_atomic(
        &dir,
        &json_name,
        &serde_json::to_vec_pretty(&doc)
            .map_err(io::Error::other)
            .map_err(io_err(&dir))?,
    )
    .map_err(io_err(&dir))?;
    let csv = table::errors_csv(&key_title, None, &rows).map_err(io_err(&dir))?;
    fsio::write_atomic(&dir, &csv_name, &csv).map_err(io_err(&dir))?;
    let xlsx = table::errors_xlsx(&key_title, None, &rows).map_err(io_err(&dir))?;
    fsio::write_atomic(&dir, &xlsx_name, &xlsx).map_err(io_err(&dir))?;
    update_receipt(&dir, name, refusals.len(), &xlsx_name).map_err(io_err(&dir))?;
    Ok(refusals.len())
}

/// Adds the refusal count to the file's receipt (or report) and re-renders
/// its 回执.
fn update_receipt(dir: &Path, name: &str, n: usize, report: &str) -> io::Result<()> {
    for suffix in [".receipt.json", ".report.json"] {
        let path = dir.join(format!("{name}{suffix}"));
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let Ok(mut v) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        v["libraryRejected"] = json!(n);
        v["libraryReport"] = json!(report);
        let body = serde_json::to_vec_pretty(&v).map_err(io::Error::other)?;
        fsio::write_atomic(dir, &format!("{name}{suffix}"), &body)?;
        notice::write_notice(dir, name, &v)?;
    }
    Ok(())
}

/// The library's refusals of file `file_id`'s records as error-table rows,
/// values masked: what its `.library-rejected.errors.xlsx` holds (the
/// console shows them beside the file's own rejections).
pub fn rows_of_file(
    conn: &Connection,
    schema: Option<&DatasetSchema>,
    file_id: i64,
) -> rusqlite::Result<Vec<Rejection>> {
    let refusals = batches::refusals_of_file(conn, file_id)?;
    Ok(masked_rows(conn, schema, &refusals)?.0)
}

/// The refused records as error-table rows and as the report's JSON
/// records, personal values masked.
fn masked_rows(
    conn: &Connection,
    schema: Option<&DatasetSchema>,
    refusals: &[Refusal],
) -> rusqlite::Result<(Vec<Rejection>, Vec<Value>)> {
    let mut bodies: HashMap<String, Value> = HashMap::new();
    let mut rows = Vec::with_capacity(refusals.len());
    let mut records = Vec::with_capacity(refusals.len());
    for (n, r) in refusals.iter().enumerate() {
        if !bodies.contains_key(&r.batch_id) {
            let body = batches::body(conn, &r.batch_id)?.unwrap_or_default();
            bodies.insert(
                r.batch_id.clone(),
                serde_json::from_slice(&body).unwrap_or_default(),
            );
        }
        let data = &bodies[&r.batch_id]["records"][r.idx as usize]["data"];
        let shown = masked(schema, data);
        let message = mask_in_text(schema, data, &r.message);
        rows.push(row(schema, n, r, &shown, &message));
        records.push(json!({
            "batchId": r.batch_id, "index": r.idx, "key": r.key,
            "code": r.code, "message": message, "data": Value::Object(shown),
        }));
    }
    Ok((rows, records))
}

/// One error-table row for a refused record.
fn row(
    schema: Option<&DatasetSchema>,
    n: usize,
    r: &Refusal,
    shown: &Map<String, Value>,
    message: &str,
) -> Rejection {
    let values: Vec<String> = shown
        .iter()
        .map(|(k, v)| {
            let title = schema.and_then(|s| s.title_of(k)).unwrap_or(k);
            format!("{title}={}", v.as_str().unwrap_or_default())
        })
        .collect();
    Rejection {
        ordinal: n as i64 + 1,
        position: format!("批次 {} 第 {} 条", r.batch_id, r.idx + 1),
        row: 0,
        key: Some(r.key.clone()),
        field: String::new(),
        title: String::new(),
        value: Some(values.join("；")),
        rule: format!("资源库 {}", r.code),
        message: format!(
            "资源库拒收：{message}（该记录未入库，也不会重发；请核对后改正并重新提交）"
        ),
        warning: false,
    }
}

/// A record's `data` as text, personal fields masked. Without the
/// dataset's schema nothing can be told apart, so nothing is shown.
fn masked(schema: Option<&DatasetSchema>, data: &Value) -> Map<String, Value> {
    let (Some(schema), Some(obj)) = (schema, data.as_object()) else {
        return Map::new();
    };
    obj.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), Value::String(schema.shown_value(k, &text)))
        })
        .collect()
}

/// The library's message with any personal value of the record masked:
/// a library may quote the value it refused.
fn mask_in_text(schema: Option<&DatasetSchema>, data: &Value, message: &str) -> String {
    let mut out = message.to_string();
    let Some(obj) = data.as_object() else {
        return out;
    };
    for (k, v) in obj {
        let Some(text) = v.as_str().filter(|t| !t.is_empty()) else {
            continue;
        };
        match schema {
            Some(s) if s.is_pii(k) => out = out.replace(text, &s.shown_value(k, text)),
            Some(_) => {}
            // No schema: every value may be personal.
            None => out = out.replace(text, "***"),
        }
    }
    out
}

fn key_title(schema: Option<&DatasetSchema>) -> String {
    schema.map_or_else(|| "记录键".into(), super::key_title)
}
