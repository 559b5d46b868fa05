//! A dataset's fields described for people filling them in: what the
//! Excel template (`template`) builds its columns, drop-down lists and
//! 填报说明 sheet from. Read from the schema; nothing here is checked.

use super::field::{FieldFormat, FieldType};
use super::schema::DatasetSchema;

/// How a template column is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Text, including every code and number-like identifier: a text cell
    /// keeps leading zeros and all 18 digits of an ID number.
    Text,
    Integer,
    Number,
    Date,
    DateTime,
}

/// One field as a template column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub title: String,
    pub kind: ColumnKind,
    /// Allowed codes with their labels (a closed list); empty otherwise.
    pub codes: Vec<(String, String)>,
    /// The codes are a comma list (several may be given).
    pub codes_list: bool,
    pub required: bool,
    /// A 前置库 control field (optional bookkeeping, not business data).
    pub control: bool,
    pub pii: bool,
    /// What the value must look like, in Chinese.
    pub rule: String,
}

impl DatasetSchema {
    /// The dataset's fields as template columns, in schema order; arrays
    /// of objects (JSON-only fields) are left out.
    pub fn columns(&self) -> Vec<Column> {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.ty != FieldType::Array)
            .map(|(i, f)| {
                let kind = match (f.ty, f.format) {
                    (FieldType::Integer, _) => ColumnKind::Integer,
                    (FieldType::Number, _) => ColumnKind::Number,
                    (_, FieldFormat::Date) => ColumnKind::Date,
                    (_, FieldFormat::DateTime) => ColumnKind::DateTime,
                    _ => ColumnKind::Text,
                };
                let rule = match (f.format, &f.hint) {
                    (FieldFormat::DateTime, _) => {
                        "日期时间，如 2026-11-25 09:00:00（也可写 2026/11/25 9:00）".to_string()
                    }
                    (FieldFormat::Date, _) => "日期，如 2026-11-25".to_string(),
                    (FieldFormat::Uscc, _) => {
                        "18 位统一社会信用代码（GB 32100 校验位），如 91350100M000100Y43"
                            .to_string()
                    }
                    (FieldFormat::Gb11643, _) => "18 位公民身份号码（GB 11643 校验位）".to_string(),
                    (FieldFormat::Gb2260, _) => "6 位现行行政区划代码（GB/T 2260）".to_string(),
                    (_, Some(h)) => h.clone(),
                    _ if f.codes_list => format!("代码，可填多个，用逗号分隔：{}", f.codes_text),
                    _ if !f.codes.is_empty() => format!("从下拉列表选择：{}", f.codes_text),
                    _ => match f.ty {
                        FieldType::Integer => "整数".to_string(),
                        FieldType::Number => "数值".to_string(),
                        _ => "文本".to_string(),
                    },
                };
                Column {
                    name: f.name.clone(),
                    title: f.title.clone(),
                    kind,
                    codes: f.codes.clone(),
                    codes_list: f.codes_list,
                    required: self.required.contains(&i),
                    control: f.control,
                    pii: f.pii,
                    rule,
                }
            })
            .collect()
    }
}
