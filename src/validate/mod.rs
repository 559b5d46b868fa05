//! Validate: give each parsed record a verdict against its dataset's schema.
//!
//! A dataset is a JSON Schema file in `schemas/` (`<name>.schema.json`);
//! adding a dataset needs no code. The schema declares, besides standard
//! JSON Schema, the extensions fepd reads:
//! - `x-key`: the key fields in wire order; `x-version`: the version field;
//! - per property: `title` (Chinese name), `x-pii` (masked in every message),
//!   `x-control` (a 前置库 control field, never part of `data`),
//!   `x-codes` (code → label, for messages), `x-codes-list` (a comma list);
//! - `x-compare`: cross-field order rules (`accept_date ≥ apply_date`).
//!
//! Conditional rules (a certificate number checked by its type, a written
//! evaluation required for a low score) are plain `if`/`then`.
//!
//! Text values are converted by the schema's types before validation; a
//! value that cannot be converted is an error, never a default. Validation
//! never does IO: schemas and the code table are loaded once, up front.

use std::collections::HashSet;

use chrono::FixedOffset;

mod catalog;
mod checks;
mod codes;
mod convert;
mod datetime;
mod describe;
mod field;
mod header;
mod mask;
mod message;
mod record;
// Renders docs/datasets.md's field tables; its test keeps them in step.
#[cfg(test)]
mod reference;
mod schema;
#[cfg(test)]
mod tests;
mod written;

pub use catalog::{Catalog, load_one};
pub use checks::{CodeFault, check_gb11643, check_uscc};
pub use codes::{CodeTable, CodeTableError};
pub use describe::{Column, ColumnKind};
pub use header::IgnoredColumn;
pub use mask::{MaskKind, mask};
pub use schema::DatasetSchema;

/// How a rule that can be downgraded is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Error,
    Warn,
}

/// Deployment choices that change validation (from config).
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Offset for input datetimes without one, and for rendering on the wire.
    pub timezone: FixedOffset,
    /// GB 32100 check-digit failures: error (default) or warning.
    pub uscc_check: Severity,
    /// 统一社会信用代码 accepted whatever their check digit (early pilot codes).
    pub uscc_allow: HashSet<String>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            timezone: FixedOffset::east_opt(8 * 3600).expect("valid offset"),
            uscc_check: Severity::Error,
            uscc_allow: HashSet::new(),
        }
    }
}

/// The wire operation of a record (docs/protocol.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upsert,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }
}

/// One thing wrong with a record, as data staff read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Field name (snake_case); empty when the fault is the whole record.
    pub field: String,
    /// The field's Chinese title from the schema; empty as above.
    pub title: String,
    /// The offending value, masked when the field is `x-pii`; `None` when
    /// the value is absent.
    pub value: Option<String>,
    /// The rule broken, short and stable: `required`, `enum`, `maxLength`,
    /// `pattern`, `integer`, `datetime`, `GB 32100`, `GB 11643`, `GB/T 2260`,
    /// `accept_date ≥ apply_date`, `parse`, …
    pub rule: String,
    /// A sentence in Chinese naming the field, the rule and what is allowed.
    pub message: String,
}

/// A record that passed: ready for dedupe and sealing.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRecord {
    pub op: Op,
    /// Key field values (normalised text) joined with `|`.
    pub key: String,
    /// The version field as a sortable number (integer as is, datetime as
    /// Unix seconds); `None` when the dataset has none or the record lacks it.
    pub version: Option<i64>,
    /// The record's `data` in canonical JSON (RFC 8785); for a delete, only
    /// the key fields.
    pub canonical: String,
    /// Lowercase hex SHA-256 of `canonical`.
    pub hash: String,
    /// Columns/elements that are not fields of the dataset (counted in the
    /// receipt).
    pub ignored_fields: u32,
    /// Rules downgraded to warnings that this record broke.
    pub warnings: Vec<FieldError>,
}

/// A record's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Valid(ValidRecord),
    Invalid(Vec<FieldError>),
}
