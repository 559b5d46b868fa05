//! XLSX: one sheet (the first, or the one `[[dataset]] sheet` names), laid
//! out like CSV (the first non-empty row, or `header_row`, is the header).
//!
//! calamine loads the whole sheet into memory. That is accepted because
//! the archive's decompressed size is checked first against
//! `max_xlsx_unpacked_bytes` (the zip-bomb guard), by actually inflating
//! every entry into a sink with that cap, not by trusting the sizes the
//! archive declares. Rows are then handed out one at a time.
//!
//! Cells: text → `Text`, numbers → `Number` (so that the schema can pad
//! codes Excel stripped of leading zeros), date/time cells → `DateTime`,
//! booleans → `Text("1"/"0")`, empty → absent. An error cell (`#N/A`…), an
//! impossible date, or a value in a column without a header makes the row
//! a bad record. Rows that are entirely empty are skipped, as blank CSV
//! lines are.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use calamine::{Data, Range, Reader, Xlsx};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::{
    BadRecord, FileFault, Header, Item, Limits, Position, RawRecord, RawValue, RecordStream,
    SheetRef,
};

/// Opens the first sheet of the workbook at `path`.
pub(crate) fn open(path: &Path, limits: Limits) -> Result<Box<dyn RecordStream>, FileFault> {
    open_sheet(path, limits, None)
}

/// Opens a sheet of the workbook at `path`: the one `sheet` names, or the
/// first.
pub(crate) fn open_sheet(
    path: &Path,
    limits: Limits,
    sheet: Option<&SheetRef>,
) -> Result<Box<dyn RecordStream>, FileFault> {
    check_unpacked_size(path, limits.max_xlsx_unpacked_bytes)?;
    let mut workbook: Xlsx<BufReader<File>> =
        calamine::open_workbook(path).map_err(|e| whole_file(format!("XLSX 文件无法读取：{e}")))?;
    let sheets = workbook.sheet_names();
    let listed = || sheets.join("、");
    let index = match sheet {
        None => 0,
        Some(SheetRef::Index(n)) => match (*n as usize).checked_sub(1) {
            Some(i) if i < sheets.len() => i,
            _ => {
                return Err(whole_file(format!(
                    "配置的 sheet = {n} 不存在：工作簿只有 {} 个工作表（{}）",
                    sheets.len(),
                    listed()
                )));
            }
        },
        Some(SheetRef::Name(name)) => sheets
            .iter()
            .position(|s| s.trim() == name.trim())
            .ok_or_else(|| {
                whole_file(format!(
                    "配置的 sheet = \"{name}\" 不存在：工作簿中的工作表为 {}",
                    listed()
                ))
            })?,
    };
    let range = workbook
        .worksheet_range_at(index)
        .ok_or_else(|| whole_file("XLSX 文件中没有工作表".to_owned()))?
        .map_err(|e| whole_file(format!("XLSX 工作表无法读取：{e}")))?;
    let mut stream = XlsxStream::new(range, limits.header_row);
    stream.sheet = sheets.get(index).cloned();
    stream.sheets = sheets;
    Ok(Box::new(stream))
}

/// A fault about the file as a whole (no line or byte applies).
fn whole_file(message: String) -> FileFault {
    FileFault {
        line: 0,
        byte: 0,
        message,
    }
}

/// The zip-bomb guard: the declared sizes first (cheap, catches honest
/// bombs), then the real inflated sizes, stopping as soon as the limit is
/// passed. Memory stays constant: the data goes to a sink.
fn check_unpacked_size(path: &Path, max: u64) -> Result<(), FileFault> {
    let too_big = || {
        whole_file(format!(
            "XLSX 解压后的大小超过 max_xlsx_unpacked_bytes 上限（{max} 字节）"
        ))
    };
    let file = File::open(path).map_err(|e| whole_file(format!("XLSX 文件无法打开：{e}")))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| whole_file(format!("XLSX 文件不是有效的 zip 压缩包：{e}")))?;
    let mut declared = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| whole_file(format!("XLSX 压缩包条目无法读取：{e}")))?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > max {
        return Err(too_big());
    }
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| whole_file(format!("XLSX 压缩包条目无法读取：{e}")))?;
        let left = max - total;
        let n = io::copy(&mut entry.take(left + 1), &mut io::sink())
            .map_err(|e| whole_file(format!("XLSX 压缩包条目无法解压：{e}")))?;
        total += n;
        if total > max {
            return Err(too_big());
        }
    }
    Ok(())
}

struct XlsxStream {
    range: Range<Data>,
    /// Header names by column (relative to the range); `None` until read.
    header: Option<Vec<String>>,
    /// The sheet row of the header (Excel's 1-based number) once read.
    header_at: u64,
    /// `Limits::header_row`: sheet rows above it are not read; 0 = the
    /// first non-empty row is the header.
    header_row: u32,
    /// Next row to read (relative to the range).
    next: usize,
    sheet: Option<String>,
    sheets: Vec<String>,
}

impl XlsxStream {
    fn new(range: Range<Data>, header_row: u32) -> Self {
        XlsxStream {
            range,
            header: None,
            header_at: 0,
            header_row,
            next: 0,
            sheet: None,
            sheets: Vec::new(),
        }
    }

    /// Reads the header row if not yet done (the first non-empty row at
    /// or below `header_row`).
    fn read_header(&mut self) {
        while self.header.is_none() && self.next < self.range.height() {
            let row = self.next;
            self.next += 1;
            if self.sheet_row(row) < u64::from(self.header_row)
                || self.cells(row).all(|(_, d)| matches!(d, Data::Empty))
            {
                continue;
            }
            self.header = Some(self.cells(row).map(|(_, d)| header_name(d)).collect());
            self.header_at = self.sheet_row(row);
        }
    }

    /// The sheet row number (Excel's, 1-based) of a row of the range.
    fn sheet_row(&self, row: usize) -> u64 {
        let first = self.range.start().map_or(0, |(r, _)| r);
        u64::from(first) + row as u64 + 1
    }

    /// The column letters of a column of the range.
    fn column_name(&self, col: usize) -> String {
        let first = self.range.start().map_or(0, |(_, c)| c) as usize;
        column_letters(first + col)
    }

    fn cells(&self, row: usize) -> impl Iterator<Item = (usize, &Data)> {
        let width = self.range.width();
        (0..width).filter_map(move |c| self.range.get((row, c)).map(|d| (c, d)))
    }

    /// A data row as a record, or why it is bad.
    fn record(&self, row: usize, header: &[String]) -> Result<Vec<(String, RawValue)>, String> {
        let mut fields = Vec::new();
        for (col, cell) in self.cells(row) {
            let Some(value) = value(cell).map_err(|m| {
                format!(
                    "XLSX 单元格 {}{}：{m}",
                    self.column_name(col),
                    self.sheet_row(row)
                )
            })?
            else {
                continue;
            };
            match header.get(col) {
                Some(name) if !name.is_empty() => fields.push((name.clone(), value)),
                _ => {
                    return Err(format!(
                        "XLSX 第 {} 列有数据但没有表头",
                        self.column_name(col)
                    ));
                }
            }
        }
        Ok(fields)
    }
}

impl RecordStream for XlsxStream {
    fn header(&mut self) -> Result<Option<Header>, FileFault> {
        self.read_header();
        // Columns left of the range's first are absent from the sheet:
        // header names are relative to the range, as records are.
        Ok(Some(Header {
            names: self.header.clone().unwrap_or_default(),
            row: self.header_at,
            sheet: self.sheet.clone(),
            sheets: self.sheets.clone(),
        }))
    }

    fn next_item(&mut self) -> Result<Option<Item>, FileFault> {
        self.read_header();
        while self.next < self.range.height() {
            let row = self.next;
            self.next += 1;
            if self.cells(row).all(|(_, d)| matches!(d, Data::Empty)) {
                continue;
            }
            // read_header consumed every row up to the header.
            let Some(header) = &self.header else {
                return Ok(None);
            };
            let pos = Position::Row(self.sheet_row(row));
            return Ok(Some(match self.record(row, header) {
                Ok(fields) => Item::Record(RawRecord { pos, fields }),
                Err(message) => Item::Bad(BadRecord { pos, message }),
            }));
        }
        Ok(None)
    }
}

/// A header cell as a name; numbers are written as Excel shows them.
fn header_name(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        other => other.to_string().trim().to_owned(),
    }
}

/// A cell's value; `None` for an empty cell, `Err` for a cell that holds
/// no usable value.
fn value(cell: &Data) -> Result<Option<RawValue>, String> {
    Ok(Some(match cell {
        Data::Empty => return Ok(None),
        Data::String(s) if s.is_empty() => return Ok(None),
        Data::String(s) => RawValue::Text(s.clone()),
        Data::Float(f) => RawValue::Number(*f),
        Data::Int(i) => RawValue::Number(*i as f64),
        Data::Bool(b) => RawValue::Text(if *b { "1" } else { "0" }.to_owned()),
        // A duration is a number of days, not a point in time.
        Data::DateTime(dt) if dt.is_duration() => RawValue::Number(dt.as_f64()),
        Data::DateTime(dt) => {
            let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
            let datetime = NaiveDate::from_ymd_opt(i32::from(y), u32::from(mo), u32::from(d))
                .and_then(|date| {
                    date.and_hms_milli_opt(u32::from(h), u32::from(mi), u32::from(s), u32::from(ms))
                })
                .ok_or_else(|| format!("日期 {y}-{mo:02}-{d:02} 不存在"))?;
            RawValue::DateTime(datetime)
        }
        Data::DateTimeIso(s) => {
            iso_datetime(s).map_or_else(|| RawValue::Text(s.clone()), RawValue::DateTime)
        }
        Data::DurationIso(s) => RawValue::Text(s.clone()),
        Data::Error(e) => return Err(format!("含有错误值 {e}")),
    }))
}

fn iso_datetime(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN))
        })
}

/// Excel's column letters for a 0-based column: 0 → A, 26 → AA.
fn column_letters(mut col: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII letters")
}

#[cfg(test)]
mod tests {
    use super::super::testing::limits;
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    /// A minimal workbook whose first sheet has `rows` (`<row>` elements)
    /// and whose style 1 is a date format.
    fn workbook(rows: &str, compression: zip::CompressionMethod) -> tempfile::NamedTempFile {
        let files = [
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#.to_owned(),
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_owned(),
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="办件" sheetId="1" r:id="rId1"/><sheet name="说明" sheetId="2" r:id="rId9"/></sheets></workbook>"#.to_owned(),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#.to_owned(),
            ),
            (
                "xl/styles.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>"#.to_owned(),
            ),
            (
                "xl/worksheets/sheet1.xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
                ),
            ),
        ];
        let file = tempfile::Builder::new().suffix(".xlsx").tempfile().unwrap();
        let mut zip = zip::ZipWriter::new(file.reopen().unwrap());
        for (name, content) in files {
            zip.start_file(
                name,
                SimpleFileOptions::default().compression_method(compression),
            )
            .unwrap();
            zip.write_all(content.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        file
    }

    fn inline(cell: &str, text: &str) -> String {
        format!(r#"<c r="{cell}" t="inlineStr"><is><t>{text}</t></is></c>"#)
    }

    fn read_all(rows: &str) -> Vec<Item> {
        let file = workbook(rows, zip::CompressionMethod::Stored);
        let mut stream = open(file.path(), Limits::default()).unwrap();
        let mut items = Vec::new();
        while let Some(item) = stream.next_item().unwrap() {
            items.push(item);
        }
        items
    }

    #[test]
    fn header_and_typed_cells() {
        let rows = [
            format!("<row r=\"1\">{}{}{}{}{}</row>", inline("A1", " 姓名 "), inline("B1", "办件编号"), inline("C1", "受理时间"), inline("D1", "已办结"), inline("E1", "备注")),
            format!("<row r=\"2\">{}<c r=\"B2\"><v>1234</v></c><c r=\"C2\" s=\"1\"><v>45943.5</v></c><c r=\"D2\" t=\"b\"><v>1</v></c></row>", inline("A2", "张三")),
            "<row r=\"3\"></row>".to_owned(),
            format!("<row r=\"4\">{}<c r=\"B4\" t=\"e\"><v>#N/A</v></c></row>", inline("A4", "李四")),
            format!("<row r=\"5\">{}<c r=\"F5\"><v>1</v></c></row>", inline("A5", "王五")),
            format!("<row r=\"6\">{}<c r=\"B6\"><v>0.5</v></c></row>", inline("A6", "赵六")),
        ]
        .concat();
        let items = read_all(&rows);
        assert_eq!(items.len(), 4, "{items:?}");
        let Item::Record(r) = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(r.pos, Position::Row(2));
        let when = NaiveDate::from_ymd_opt(2025, 10, 13)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        assert_eq!(
            r.fields,
            vec![
                ("姓名".into(), RawValue::Text("张三".into())),
                ("办件编号".into(), RawValue::Number(1234.0)),
                ("受理时间".into(), RawValue::DateTime(when)),
                ("已办结".into(), RawValue::Text("1".into())),
            ]
        );
        assert!(
            matches!(&items[1], Item::Bad(b) if b.pos == Position::Row(4) && b.message.contains("B4") && b.message.contains("#N/A"))
        );
        assert!(
            matches!(&items[2], Item::Bad(b) if b.pos == Position::Row(5) && b.message.contains("第 F 列"))
        );
        let Item::Record(r) = &items[3] else { panic!() };
        assert_eq!(r.pos, Position::Row(6));
        assert_eq!(r.fields[1], ("办件编号".into(), RawValue::Number(0.5)));
    }

    #[test]
    fn header_only_and_empty_sheets_have_no_records() {
        assert!(read_all("").is_empty());
        assert!(read_all(&format!("<row r=\"1\">{}</row>", inline("A1", "姓名"))).is_empty());
    }

    #[test]
    fn zip_bomb_guard_names_the_limit() {
        let big = format!("<row r=\"1\">{}</row>", inline("A1", &"x".repeat(200_000)));
        let file = workbook(&big, zip::CompressionMethod::Deflated);
        assert!(std::fs::metadata(file.path()).unwrap().len() < 20_000);
        let mut l = limits(1 << 20);
        l.max_xlsx_unpacked_bytes = 100_000;
        let err = open(file.path(), l).err().expect("a fault");
        assert!(err.message.contains("max_xlsx_unpacked_bytes"), "{err:?}");
        l.max_xlsx_unpacked_bytes = 1 << 20;
        assert!(open(file.path(), l).is_ok());
    }

    #[test]
    fn not_a_zip_is_a_fault() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"name,age\n").unwrap();
        let err = open(file.path(), Limits::default()).err().expect("a fault");
        assert!(err.message.contains("zip"), "{err:?}");
    }

    #[test]
    fn column_letters_like_excel() {
        let names: Vec<_> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .into_iter()
            .map(column_letters)
            .collect();
        assert_eq!(names, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
    }
}
