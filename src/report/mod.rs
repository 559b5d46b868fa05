//! Report: what data staff and operators read about each file.
//!
//! A file with no rejected record goes to `done/` with
//! `<file>.receipt.json`; a file with rejected records (or rejected whole)
//! goes to `rejected/` with `<file>.report.json`, `<file>.errors.csv`
//! (UTF-8 with BOM so Excel opens it) and `<file>.errors.xlsx`. Either
//! way a short Chinese `<file>.回执.txt` goes beside it ([`notice`]).
//! Records the library refuses later get `<file>.library-rejected.*`
//! beside the file ([`library`]). Everything is built from the state
//! database, so a report written after a crash is as complete as one
//! written in one go. Values of personal fields arrive here already masked.

use std::io;
use std::path::Path;

use serde::Serialize;

use crate::fsio;
use crate::state::files::{Counts, Rejection};

pub mod library;
pub mod notice;
pub mod table;

/// The endings of the files written beside a file under `done/` or
/// `rejected/`, longest first: `<file><ending>` belongs to `<file>`.
/// Retention deletes a file and these together (a file whose reports
/// outlived it, or the other way round, is half-deleted: `fepd doctor`).
pub const COMPANIONS: [&str; 8] = [
    ".library-rejected.errors.xlsx",
    ".library-rejected.errors.csv",
    ".library-rejected.json",
    ".receipt.json",
    ".report.json",
    ".errors.xlsx",
    ".errors.csv",
    ".回执.txt",
];

/// The file that `name` was written beside, if `name` is one of its
/// [`COMPANIONS`].
pub fn companion_of(name: &str) -> Option<&str> {
    COMPANIONS
        .iter()
        .find_map(|c| name.strip_suffix(c))
        .filter(|stem| !stem.is_empty())
}

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
    /// Columns (or element names) that are not fields of the dataset,
    /// ignored; with the likely meant title where one is close.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_columns: Vec<String>,
    /// Rows skipped because every cell was empty or white space.
    #[serde(skip_serializing_if = "is_zero")]
    pub blank_rows: u64,
    /// The record key's column title in the error tables (`办件编号`).
    #[serde(skip)]
    pub key_title: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What reading a file noted beside its records, for its receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadNotes {
    pub ignored_columns: Vec<String>,
    pub blank_rows: u64,
}

impl ReadNotes {
    /// The receipt's warnings about them, in Chinese.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.ignored_columns.is_empty() {
            out.push(format!(
                "以下列不属于本数据集，已忽略：{}",
                self.ignored_columns.join("、")
            ));
        }
        if self.blank_rows > 0 {
            out.push(format!(
                "跳过 {} 个空白行（各列均为空或只有空格），不计为记录",
                self.blank_rows
            ));
        }
        out
    }
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

/// Writes `<name>.receipt.json` and its 回执 into `dir`.
pub fn write_receipt(dir: &Path, name: &str, s: &FileSummary<'_>) -> io::Result<()> {
    let body = serde_json::to_vec_pretty(s).map_err(io::Error::other)?;
    fsio::write_atomic(dir, &format!("{name}.receipt.json"), &body)?;
    notice::write_notice(
        dir,
        name,
        &serde_json::to_value(s).map_err(io::Error::other)?,
    )?;
    Ok(())
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    summary: &'a FileSummary<'a>,
    errors: &'a [Rejection],
}

/// Writes `<name>.report.json`, `<name>.errors.csv`, `<name>.errors.xlsx`
/// and the 回执 into `dir`.
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
    fsio::write_atomic(
        dir,
        &format!("{name}.errors.xlsx"),
        &table::errors_xlsx(key_column(s), s.fault, errors)?,
    )?;
    notice::write_notice(
        dir,
        name,
        &serde_json::to_value(s).map_err(io::Error::other)?,
    )?;
    Ok(())
}

/// The key fields' Chinese titles (`办件编号`), for the key column of the
/// error tables.
pub fn key_title(schema: &crate::validate::DatasetSchema) -> String {
    schema
        .key_fields
        .iter()
        .map(|k| schema.title_of(k).unwrap_or(k))
        .collect::<Vec<_>>()
        .join("+")
}

fn key_column<'a>(s: &'a FileSummary<'_>) -> &'a str {
    if s.key_title.is_empty() {
        "记录键"
    } else {
        &s.key_title
    }
}

/// The CSV data staff open in Excel: one line per problem, Chinese
/// headers, formula-looking cells neutralised ([`table`]).
pub fn errors_csv(s: &FileSummary<'_>, errors: &[Rejection]) -> io::Result<Vec<u8>> {
    table::errors_csv(key_column(s), s.fault, errors)
}

#[cfg(test)]
mod companion_tests {
    use super::*;

    #[test]
    fn every_file_written_beside_a_file_is_known_as_its_companion() {
        let name = "办件.2.csv";
        let mut written = vec![
            format!("{name}.receipt.json"),
            format!("{name}.report.json"),
            format!("{name}.errors.csv"),
            format!("{name}.errors.xlsx"),
            notice::notice_name(name),
        ];
        written.extend(library::report_names(name));
        for w in &written {
            assert_eq!(companion_of(w), Some(name), "{w}");
        }
        assert_eq!(companion_of(name), None);
        assert_eq!(companion_of(".receipt.json"), None);
    }
}
