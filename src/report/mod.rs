//! Report: what data staff and operators read about each file.
//!
//! A file with no rejected record goes to `done/` with
//! `<file>.receipt.json`; a file with rejected records (or rejected whole)
//! goes to `rejected/` with `<file>.report.json` and `<file>.errors.csv`
//! (UTF-8 with BOM so Excel opens it). Both are built from the state
//! database, so a report written after a crash is as complete as one
//! written in one go. Values of personal fields arrive here already masked.

use std::io;
use std::path::Path;

use serde::Serialize;

use crate::fsio;
use crate::state::files::{Counts, Rejection};

/// Everything a receipt or report says about a file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSummary<'a> {
    pub file: &'a str,
    pub dataset: &'a str,
    pub sha256: Option<&'a str>,
    pub size: Option<u64>,
    pub format: Option<&'a str>,
    pub encoding: Option<&'a str>,
    pub verdict: &'a str,
    pub counts: Counts,
    /// Why the whole file was rejected, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<&'a str>,
    /// The first file with the same content, for a duplicate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<DuplicateOf<'a>>,
    pub batches: Vec<BatchRef>,
    pub claimed_at: &'a str,
    pub finished_at: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DuplicateOf<'a> {
    pub file: &'a str,
    pub claimed_at: &'a str,
    pub final_name: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRef {
    pub batch_id: String,
    pub count: i64,
    pub digest: String,
}

/// Writes `<name>.receipt.json` into `dir`.
pub fn write_receipt(dir: &Path, name: &str, s: &FileSummary<'_>) -> io::Result<()> {
    let body = serde_json::to_vec_pretty(s).map_err(io::Error::other)?;
    fsio::write_atomic(dir, &format!("{name}.receipt.json"), &body)?;
    Ok(())
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    summary: &'a FileSummary<'a>,
    errors: &'a [Rejection],
}

/// Writes `<name>.report.json` and `<name>.errors.csv` into `dir`.
pub fn write_report(
    dir: &Path,
    name: &str,
    s: &FileSummary<'_>,
    errors: &[Rejection],
) -> io::Result<()> {
    let body =
        serde_json::to_vec_pretty(&Report { summary: s, errors }).map_err(io::Error::other)?;
    fsio::write_atomic(dir, &format!("{name}.report.json"), &body)?;
    fsio::write_atomic(dir, &format!("{name}.errors.csv"), &errors_csv(s, errors)?)?;
    Ok(())
}

/// The CSV data staff open in Excel: one line per problem, Chinese headers.
pub fn errors_csv(s: &FileSummary<'_>, errors: &[Rejection]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256 + errors.len() * 160);
    out.extend_from_slice("\u{feff}".as_bytes());
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record([
            "行号",
            "记录序号",
            "位置",
            "字段",
            "字段名称",
            "值",
            "规则",
            "说明",
            "级别",
        ])?;
        if let Some(fault) = s.fault {
            w.write_record(["", "", "", "", "", "", "file", fault, "错误"])?;
        }
        for e in errors {
            w.write_record([
                e.row.to_string().as_str(),
                e.ordinal.to_string().as_str(),
                e.position.as_str(),
                e.field.as_str(),
                e.title.as_str(),
                e.value.as_deref().unwrap_or(""),
                e.rule.as_str(),
                e.message.as_str(),
                if e.warning { "警告" } else { "错误" },
            ])?;
        }
        w.flush()?;
    }
    Ok(out)
}
