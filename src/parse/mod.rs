//! Parse: stream records out of a decoded input file.
//!
//! Every parser is streaming: memory does not grow with the file, only with
//! the largest record. A parser yields one [`Item`] at a time; a
//! [`Item::Bad`] is one record that could not be read (a malformed JSON
//! line, a ragged CSV row) and the parser goes on after it, while a
//! [`FileFault`] ends the file: nothing from a file with a fault is sealed
//! (bad input never stops the daemon: README.md, "How data flows"). Parsing never does any IO but reading its
//! input, and never looks at a schema: field names are passed through as
//! found (Chinese titles are mapped to field names by `validate`).

use std::fmt;

/// The input formats data staff drop, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
    JsonLines,
    Csv,
    Xlsx,
}

impl Format {
    /// The format for a file name, by its extension (case-insensitive):
    /// `.xml`, `.json`, `.jsonl`/`.ndjson`, `.csv`, `.xlsx`.
    pub fn from_name(name: &str) -> Option<Format> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "xml" => Format::Xml,
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::JsonLines,
            "csv" => Format::Csv,
            "xlsx" => Format::Xlsx,
            _ => return None,
        })
    }

    /// The format's name in receipts and the state database.
    pub fn name(self) -> &'static str {
        match self {
            Format::Xml => "xml",
            Format::Json => "json",
            Format::JsonLines => "jsonl",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    /// Whether one broken record spoils the whole file (XML, JSON documents)
    /// or only itself (line- and row-oriented formats).
    pub fn is_document(self) -> bool {
        matches!(self, Format::Xml | Format::Json)
    }
}

/// Where a record sits in its file, as a person looking at it would find it
/// (README.md, "How data flows": verdicts give row and position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// CSV and JSON Lines: the physical line where the record starts
    /// (1-based) and the record's number (1-based, header not counted).
    Line { line: u64, record: u64 },
    /// XML: the line of the record's start tag, and the record's number.
    Element { line: u64, record: u64 },
    /// JSON: the index in the records array (0-based, as in the document).
    Index(u64),
    /// XLSX: the sheet row as Excel shows it (1-based, header is row 1).
    Row(u64),
}

impl Position {
    /// 1-based ordinal of the record in its file; used for checkpoints.
    pub fn ordinal(&self) -> u64 {
        match *self {
            Position::Line { record, .. } | Position::Element { record, .. } => record,
            Position::Index(i) => i + 1,
            Position::Row(r) => r - 1,
        }
    }

    /// The row/line number shown in reports (`line` for text formats, the
    /// array index for JSON, the Excel row for XLSX).
    pub fn row(&self) -> u64 {
        match *self {
            Position::Line { line, .. } | Position::Element { line, .. } => line,
            Position::Index(i) => i,
            Position::Row(r) => r,
        }
    }
}

impl fmt::Display for Position {
    /// Chinese, for data staff: "第 12 行（第 11 条记录）".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Position::Line { line, record } => write!(f, "第 {line} 行（第 {record} 条记录）"),
            Position::Element { line, record } => {
                write!(f, "第 {line} 行（第 {record} 个记录元素）")
            }
            Position::Index(i) => write!(f, "数组下标 {i}"),
            Position::Row(r) => write!(f, "工作表第 {r} 行"),
        }
    }
}

/// One field's value as it arrived, before the schema converts it.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// Text from CSV, XML, or a JSON string.
    Text(String),
    /// A typed JSON value that is not a string (number, bool, array, object;
    /// never null: JSON null is reported as an absent field).
    Json(serde_json::Value),
    /// A numeric XLSX cell. Kept apart from text so that the schema can pad
    /// codes Excel stripped of leading zeros (docs/datasets.md).
    Number(f64),
    /// An XLSX date/time cell, already resolved to a calendar date-time
    /// without offset (the configured timezone applies).
    DateTime(chrono::NaiveDateTime),
}

/// One record as parsed: its position and its fields in input order.
/// Empty values (empty string, empty element, JSON null) are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    pub pos: Position,
    pub fields: Vec<(String, RawValue)>,
}

/// A record that could not be read; the parser continues after it.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRecord {
    pub pos: Position,
    /// What was wrong, in Chinese, naming the rule (e.g. "CSV 行的字段数为 5，表头为 7").
    pub message: String,
}

/// What a parser yields per record.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Record(RawRecord),
    Bad(BadRecord),
}

/// A fault that ends the file: nothing from it may be sealed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}（第 {line} 行，字节偏移 {byte}）")]
pub struct FileFault {
    /// 1-based line of the fault (0 when unknown).
    pub line: u64,
    /// 0-based byte offset in the decoded UTF-8 stream.
    pub byte: u64,
    /// In Chinese, naming the rule or limit (e.g. "XML 不允许 DOCTYPE 声明").
    pub message: String,
}

/// Limits a parser enforces (from config). Each is checked before the
/// thing it bounds is allocated, so a hostile file is refused by the limit
/// it breaks, never by the allocator or the stack.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest record, in bytes of UTF-8 text. JSONL/CSV: that record is
    /// `Bad`; XML/JSON: a `FileFault`. No single field or XLSX cell can be
    /// larger, so this is also the field-size limit.
    pub max_record_bytes: usize,
    /// Largest total decompressed size of an XLSX archive.
    pub max_xlsx_unpacked_bytes: u64,
    /// CSV delimiter (default b',').
    pub csv_delimiter: u8,
    /// CSV line / XLSX sheet row (1-based) holding the header; rows above
    /// it (a title row, notes) are not read. 0: the first non-empty row.
    pub header_row: u32,
    /// Deepest nesting of XML elements or JSON arrays/objects, counted from
    /// the document's top (`<records>` or `[` is 1). Deeper: XML/JSON the
    /// file is rejected, JSONL that line.
    pub max_nesting_depth: usize,
    /// Most fields (columns) in one record or header. A wider header is a
    /// `FileFault`; a wider record is `Bad`.
    pub max_columns: usize,
    /// Most shared strings an XLSX workbook may declare or hold.
    pub max_xlsx_shared_strings: u64,
}

/// Default of [`Limits::max_nesting_depth`]: a record's nested fields
/// (`<records><record><medias><media><name>`) need 5.
pub const DEFAULT_MAX_NESTING_DEPTH: usize = 32;
/// Default of [`Limits::max_columns`]: the widest dataset has under 100
/// fields; Excel allows 16,384 columns.
pub const DEFAULT_MAX_COLUMNS: usize = 1024;
/// Default of [`Limits::max_xlsx_shared_strings`]: about 24 MiB of string
/// headers in memory before their text.
pub const DEFAULT_MAX_XLSX_SHARED_STRINGS: u64 = 1_000_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 1 << 20,
            max_xlsx_unpacked_bytes: 256 << 20,
            csv_delimiter: b',',
            header_row: 0,
            max_nesting_depth: DEFAULT_MAX_NESTING_DEPTH,
            max_columns: DEFAULT_MAX_COLUMNS,
            max_xlsx_shared_strings: DEFAULT_MAX_XLSX_SHARED_STRINGS,
        }
    }
}

/// The header row of a tabular file (CSV, XLSX), as found: what the
/// header check in `validate` judges before any record is read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Header {
    /// Column titles in order, trimmed; empty for a column without one.
    pub names: Vec<String>,
    /// The CSV line or sheet row of the header (1-based); 0 for a file with
    /// no row at all.
    pub row: u64,
    /// XLSX: the sheet read, and every sheet of the workbook in order.
    pub sheet: Option<String>,
    pub sheets: Vec<String>,
}

/// A stream of records from one file.
pub trait RecordStream {
    /// The next record, `Ok(None)` at the end, `Err` on a fault that ends
    /// the file (after which the stream must not be polled again).
    fn next_item(&mut self) -> Result<Option<Item>, FileFault>;

    /// The header row, read now if it was not yet, for formats that have
    /// one; `None` for XML and JSON, whose records name their own fields.
    /// Call before the first `next_item`.
    fn header(&mut self) -> Result<Option<Header>, FileFault> {
        Ok(None)
    }
}

/// Which sheet of a workbook holds the data (`[[dataset]] sheet`): its
/// name, or its 1-based position. Default: the first sheet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
pub enum SheetRef {
    Index(u32),
    Name(String),
}

mod csv;
#[cfg(test)]
mod end_to_end;
#[cfg(test)]
mod fuzz_replay;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod json;
mod jsonl;
mod object;
#[cfg(test)]
mod testing;
mod xlsx;
mod xml;

/// Opens a stream over decoded UTF-8 text for the text formats.
/// For [`Format::Xlsx`] use [`open_xlsx`] instead (it reads the zip itself).
pub fn open_text<'r>(
    format: Format,
    input: Box<dyn std::io::BufRead + 'r>,
    limits: Limits,
) -> Box<dyn RecordStream + 'r> {
    match format {
        Format::Xml => Box::new(xml::XmlStream::new(input, limits)),
        Format::Json => Box::new(json::JsonStream::new(input, limits)),
        Format::JsonLines => Box::new(jsonl::JsonLinesStream::new(input, limits)),
        Format::Csv => Box::new(csv::CsvStream::new(input, limits)),
        Format::Xlsx => panic!("open_text called for XLSX; use open_xlsx"),
    }
}

/// Opens the first sheet of an XLSX file, after checking the archive's
/// decompressed size against `limits.max_xlsx_unpacked_bytes`.
pub fn open_xlsx(
    path: &std::path::Path,
    limits: Limits,
) -> Result<Box<dyn RecordStream>, FileFault> {
    xlsx::open(path, limits)
}

/// Opens the named (or numbered) sheet of an XLSX file, or the first one
/// when `sheet` is `None`; the size check is as for [`open_xlsx`].
pub fn open_xlsx_sheet(
    path: &std::path::Path,
    limits: Limits,
    sheet: Option<&SheetRef>,
) -> Result<Box<dyn RecordStream>, FileFault> {
    xlsx::open_sheet(path, limits, sheet)
}
