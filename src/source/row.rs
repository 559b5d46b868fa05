//! A source row as a dataset record: columns renamed by
//! `[dataset.sql.columns]`, NULLs left out (absent, as in a file), scalars
//! as text (as a CSV cell, so the schema converts them the same way), JSON
//! arrays and objects (a JSON column such as `medias`) as JSON. The
//! position comes from `cd_time` and `row_guid`; the content hash, over the
//! record's canonical JSON, tells a re-read row that did not change.

use serde_json::{Map, Value};

use super::SourceError;
use crate::config::SqlSource;
use crate::parse::{Position, RawRecord, RawValue};
use crate::state::watermark::Mark;

/// One row read from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub mark: Mark,
    /// SHA-256 of the record's canonical JSON.
    pub hash: String,
    /// The record's canonical JSON (for the page's identity).
    pub canonical: String,
    /// Dataset field → value, NULLs left out.
    pub fields: Vec<(String, Value)>,
}

impl SourceRow {
    /// Builds the row from its columns (source name, value), in the order
    /// the source gave them.
    pub fn new(src: &SqlSource, columns: Vec<(String, Value)>) -> Result<SourceRow, SourceError> {
        let mut fields = Vec::with_capacity(columns.len());
        let mut object = Map::new();
        for (column, value) in columns {
            if value.is_null() {
                continue;
            }
            let field = src.columns.get(&column).cloned().unwrap_or(column);
            object.insert(field.clone(), value.clone());
            fields.push((field, value));
        }
        let text = |name: &str| -> Result<String, SourceError> {
            match object.get(name) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(SourceError::Row(format!(
                    "a row has no {name} (column {:?}); every row needs cd_time and row_guid",
                    src.column_of(name)
                ))),
            }
        };
        let mark = Mark {
            cd_time: text("cd_time")?,
            row_guid: text("row_guid")?,
        };
        let canonical = crate::canon::to_canonical(&Value::Object(object));
        Ok(SourceRow {
            mark,
            hash: crate::canon::sha256_hex(canonical.as_bytes()),
            canonical,
            fields,
        })
    }

    /// The record the schema checks; `n` is its 1-based place in its page.
    pub fn record(self, n: u64) -> RawRecord {
        let fields = self
            .fields
            .into_iter()
            .map(|(f, v)| {
                let raw = match v {
                    Value::String(s) => RawValue::Text(s),
                    Value::Number(n) => RawValue::Text(n.to_string()),
                    other => RawValue::Json(other),
                };
                (f, raw)
            })
            .collect();
        RawRecord {
            pos: Position::Line { line: n, record: n },
            fields,
        }
    }
}

/// Text as a field value: a JSON array or object (a JSON column kept as
/// text) as JSON, anything else as the text it is.
pub(super) fn text_value(s: &str) -> Value {
    let t = s.trim_start();
    if (t.starts_with('[') || t.starts_with('{'))
        && let Ok(v @ (Value::Array(_) | Value::Object(_))) = serde_json::from_str::<Value>(s)
    {
        return v;
    }
    Value::String(s.to_string())
}
