//! A file checked the way `fepd validate` checks it, without state: the
//! identity pass, the document and header checks, then every record
//! through the dataset's schema. `fepd validate` prints what it finds;
//! the console's upload page shows the same findings (README "Web
//! console"), so the two verdicts cannot differ.

use std::path::Path;

use super::read::{self, ReadOptions};
use crate::parse::Item;
use crate::validate::{DatasetSchema, Verdict};

/// One thing wrong with a file or one of its records. Values are those
/// the validator reports: masked when the field is personal data.
#[derive(Debug, Clone)]
pub enum Finding {
    /// The whole file is refused (its format, encoding, header or a
    /// broken document), in Chinese.
    Fault(String),
    /// A record's problem; `warning` when it does not reject the record.
    Record {
        position: String,
        row: u64,
        field: String,
        title: String,
        value: Option<String>,
        rule: String,
        message: String,
        warning: bool,
    },
}

/// What was read: `None` in [`Checked::summary`] when the file was refused
/// before its first record.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub records: u64,
    pub rejected: u64,
    pub format: &'static str,
    /// `None` for XLSX, which is not text.
    pub encoding: Option<&'static str>,
    pub sha256: String,
    pub notes: crate::report::ReadNotes,
}

/// The verdict on one file.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub summary: Option<Summary>,
    /// Whether anything rejects the file or a record.
    pub rejected: bool,
}

/// Checks the file at `path` (dropped as `name`), calling `each` with every
/// finding in file order.
pub fn check_file(
    path: &Path,
    name: &str,
    opts: &ReadOptions,
    schema: &DatasetSchema,
    mut each: impl FnMut(Finding),
) -> std::io::Result<Checked> {
    let refused = |f: String, each: &mut dyn FnMut(Finding)| {
        each(Finding::Fault(f));
        Checked {
            summary: None,
            rejected: true,
        }
    };
    let (id, fault) = read::identify(path, name, opts)?;
    let fault = fault.or_else(|| match read::precheck_document(path, &id, opts) {
        Ok(f) => f.map(|f| f.to_string()),
        Err(f) => Some(f.to_string()),
    });
    if let Some(f) = fault {
        return Ok(refused(f, &mut each));
    }
    // A header verdict ends here, before any per-record finding.
    let mut stream = match read::open_records(path, &id, opts, schema) {
        Ok(s) => s,
        Err(f) => return Ok(refused(f.to_string(), &mut each)),
    };
    let (mut total, mut bad, mut faulted) = (0u64, 0u64, false);
    loop {
        let item = match stream.next_item(schema) {
            Ok(Some(i)) => i,
            Ok(None) => break,
            Err(f) => {
                faulted = true;
                each(Finding::Fault(f.to_string()));
                break;
            }
        };
        total += 1;
        match item {
            Item::Bad(b) => {
                bad += 1;
                each(Finding::Record {
                    position: b.pos.to_string(),
                    row: b.pos.row(),
                    field: String::new(),
                    title: String::new(),
                    value: None,
                    rule: "parse".into(),
                    message: b.message,
                    warning: false,
                });
            }
            Item::Record(raw) => {
                let (problems, warning) = match schema.check(&raw) {
                    Verdict::Valid(v) => (v.warnings, true),
                    Verdict::Invalid(errs) => {
                        bad += 1;
                        (errs, false)
                    }
                };
                for p in problems {
                    each(Finding::Record {
                        position: raw.pos.to_string(),
                        row: raw.pos.row(),
                        field: p.field,
                        title: p.title,
                        value: p.value,
                        rule: p.rule,
                        message: p.message,
                        warning,
                    });
                }
            }
        }
    }
    let notes = crate::report::ReadNotes {
        ignored_columns: stream.ignored_names(),
        blank_rows: stream.blank_rows,
    };
    Ok(Checked {
        rejected: faulted || bad > 0,
        summary: Some(Summary {
            records: total,
            rejected: bad,
            format: id.format_name(),
            encoding: id.detected.map(|d| d.encoding.name()),
            sha256: id.sha256,
            notes,
        }),
    })
}

/// What [`field_at`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldAt {
    /// The field's value as it arrived, and the record's position.
    Value { value: String, position: String },
    /// The record has no such field (it was absent or empty).
    Absent,
    /// The file ends, or breaks, before record `ordinal`.
    NoRecord,
}

/// The value of `field` in record `ordinal` (1-based, as a file's
/// rejections number them, parse failures counted) of the file at `path`,
/// read as [`check_file`] reads it and stopping at that record: what the
/// console shows once to a user granted the reveal. Nothing is kept.
pub fn field_at(
    path: &Path,
    name: &str,
    opts: &ReadOptions,
    schema: &DatasetSchema,
    ordinal: u64,
    field: &str,
) -> std::io::Result<FieldAt> {
    let (id, fault) = read::identify(path, name, opts)?;
    if fault.is_some() {
        return Ok(FieldAt::NoRecord);
    }
    let Ok(mut stream) = read::open_records(path, &id, opts, schema) else {
        return Ok(FieldAt::NoRecord);
    };
    let mut n = 0u64;
    while let Ok(Some(item)) = stream.next_item(schema) {
        n += 1;
        if n < ordinal {
            continue;
        }
        let Item::Record(raw) = item else {
            return Ok(FieldAt::Absent);
        };
        let found = raw
            .fields
            .iter()
            .find(|(h, _)| h == field || schema.field_for_header(h) == Some(field));
        return Ok(match found {
            Some((_, v)) => FieldAt::Value {
                value: raw_text(v),
                position: raw.pos.to_string(),
            },
            None => FieldAt::Absent,
        });
    }
    Ok(FieldAt::NoRecord)
}

/// A value as it arrived, as text.
fn raw_text(v: &crate::parse::RawValue) -> String {
    use crate::parse::RawValue as V;
    match v {
        V::Text(s) => s.clone(),
        V::Json(j) => j.to_string(),
        V::Number(f) => f.to_string(),
        V::DateTime(d) => d.to_string(),
    }
}

/// What [`record_by`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordBy {
    /// The record's number in the file (1-based, parse failures counted,
    /// as [`field_at`] numbers them), its position, and its personal
    /// (`x-pii`) fields with their values as they arrived, in file order.
    Found {
        ordinal: u64,
        position: String,
        personal: Vec<(String, String)>,
    },
    /// No record of the file validates to that key and hash.
    NotFound,
}

/// The record of the file at `path` that the validator turns into key
/// `key` with content hash `hash` (`ValidRecord::hash`, which sealing
/// stores in `batch_record`), read as [`check_file`] reads it and stopping
/// there: how the console finds a record the library refused, whose
/// refusal names only its batch and index. Only its personal fields are
/// returned (the console shows the others unmasked anyway). Nothing is
/// kept.
pub fn record_by(
    path: &Path,
    name: &str,
    opts: &ReadOptions,
    schema: &DatasetSchema,
    key: &str,
    hash: &str,
) -> std::io::Result<RecordBy> {
    let (id, fault) = read::identify(path, name, opts)?;
    if fault.is_some() {
        return Ok(RecordBy::NotFound);
    }
    let Ok(mut stream) = read::open_records(path, &id, opts, schema) else {
        return Ok(RecordBy::NotFound);
    };
    let mut n = 0u64;
    while let Ok(Some(item)) = stream.next_item(schema) {
        n += 1;
        let Item::Record(raw) = item else {
            continue;
        };
        let Verdict::Valid(v) = schema.check(&raw) else {
            continue;
        };
        if v.key != key || v.hash != hash {
            continue;
        }
        let personal = raw
            .fields
            .iter()
            .filter_map(|(h, v)| {
                let field = schema.field_for_header(h)?;
                let text = raw_text(v);
                (schema.is_pii(field) && !text.trim().is_empty()).then(|| (field.to_string(), text))
            })
            .collect();
        return Ok(RecordBy::Found {
            ordinal: n,
            position: raw.pos.to_string(),
            personal,
        });
    }
    Ok(RecordBy::NotFound)
}
