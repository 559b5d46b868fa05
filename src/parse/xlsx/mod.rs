//! XLSX: the first sheet, laid out like CSV (the first row is the header).
//!
//! Nothing about a workbook is taken on trust before it is bounded:
//! `archive` inflates every entry under a cap and checks the shared-strings
//! table before calamine opens the file, and the sheet is then read cell by
//! cell with calamine's streaming reader, one row at a time. The sheet's
//! declared `<dimension>` is never used to size anything (a 1.5 KB file
//! whose cells are `A1` and `XFD1048576` declares 17 billion cells), a
//! row's cells stop being kept past `max_columns` or `max_record_bytes`
//! (the row is then a bad record), and memory holds one row ahead of the
//! reader, not the sheet.
//!
//! calamine's cell reader borrows the workbook, so it runs on a thread of
//! its own that owns both and hands rows over a bounded channel; the
//! thread ends when the stream is dropped (its next send fails).
//!
//! Cells: text → `Text`, numbers → `Number` (so that the schema can pad
//! codes Excel stripped of leading zeros), date/time cells → `DateTime`,
//! booleans → `Text("1"/"0")`, empty → absent. An error cell (`#N/A`…), an
//! impossible date, or a value in a column without a header makes the row
//! a bad record. Rows without a value are skipped, as blank CSV lines are.
//! Rows must come in ascending order, as every spreadsheet writes them.

mod archive;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use calamine::{Data, DataRef, Reader, Xlsx};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::{BadRecord, FileFault, Item, Limits, Position, RawRecord, RawValue, RecordStream};

/// Rows the sheet thread may read ahead of the stream.
const ROWS_AHEAD: usize = 256;

/// Opens the first sheet of the workbook at `path`.
pub(crate) fn open(path: &Path, limits: Limits) -> Result<Box<dyn RecordStream>, FileFault> {
    archive::check(path, &limits)?;
    let workbook: Xlsx<BufReader<File>> =
        calamine::open_workbook(path).map_err(|e| whole_file(format!("XLSX 文件无法读取：{e}")))?;
    let sheet = workbook
        .sheet_names()
        .into_iter()
        .next()
        .ok_or_else(|| whole_file("XLSX 文件中没有工作表".to_owned()))?;
    let (tx, rx) = sync_channel(ROWS_AHEAD);
    std::thread::Builder::new()
        .name("xlsx-sheet".into())
        .spawn(move || read_sheet(workbook, &sheet, limits, &tx))
        .map_err(|e| whole_file(format!("XLSX 读取线程无法启动：{e}")))?;
    Ok(Box::new(XlsxStream {
        rows: rx,
        max_columns: limits.max_columns,
        header: None,
        done: false,
    }))
}

/// A fault about the file as a whole (no line or byte applies).
fn whole_file(message: String) -> FileFault {
    FileFault {
        line: 0,
        byte: 0,
        message,
    }
}

/// A fault at a sheet row (0-based), shown as Excel numbers it.
fn at_row(row: u32, message: String) -> FileFault {
    FileFault {
        line: u64::from(row) + 1,
        byte: 0,
        message,
    }
}

/// What the sheet thread sends: rows in order, then `End` or a `Fault`.
enum Sheet {
    Row(SheetRow),
    End,
    Fault(FileFault),
}

/// One sheet row's non-empty cells, in column order.
struct SheetRow {
    /// 0-based sheet row.
    row: u32,
    cells: Vec<(u32, Data)>,
    /// Why the row cannot be used (too wide, too large); its cells are
    /// then no longer kept.
    problem: Option<String>,
    /// Bytes of the row's values so far.
    bytes: usize,
}

/// The sheet thread: reads cells in document order and groups them into
/// rows, bounding each row, until the sheet ends or the stream hangs up.
fn read_sheet(
    mut workbook: Xlsx<BufReader<File>>,
    sheet: &str,
    limits: Limits,
    tx: &SyncSender<Sheet>,
) {
    let last = match rows(&mut workbook, sheet, &limits, tx) {
        Ok(()) => Sheet::End,
        Err(Some(fault)) => Sheet::Fault(fault),
        // The stream was dropped: nobody to tell.
        Err(None) => return,
    };
    let _ = tx.send(last);
}

/// `Err(None)`: the receiving stream is gone.
fn rows(
    workbook: &mut Xlsx<BufReader<File>>,
    sheet: &str,
    limits: &Limits,
    tx: &SyncSender<Sheet>,
) -> Result<(), Option<FileFault>> {
    let unreadable = |e: calamine::XlsxError| Some(whole_file(format!("XLSX 工作表无法读取：{e}")));
    let mut cells = workbook.worksheet_cells_reader(sheet).map_err(unreadable)?;
    let mut current: Option<SheetRow> = None;
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let (r, c) = cell.get_position();
        let value = cell.get_value();
        if matches!(value, DataRef::Empty) {
            continue;
        }
        match &current {
            Some(row) if row.row == r => {}
            Some(row) if row.row > r => {
                return Err(Some(at_row(
                    r,
                    format!(
                        "XLSX 工作表的行顺序错乱：第 {} 行出现在第 {} 行之后",
                        r + 1,
                        row.row + 1
                    ),
                )));
            }
            _ => {
                if let Some(done) = current.take() {
                    tx.send(Sheet::Row(done)).map_err(|_| None)?;
                }
                current = Some(SheetRow {
                    row: r,
                    cells: Vec::new(),
                    problem: None,
                    bytes: 0,
                });
            }
        }
        let row = current.as_mut().expect("a row was just started");
        add_cell(row, c, value, limits);
    }
    if let Some(done) = current {
        tx.send(Sheet::Row(done)).map_err(|_| None)?;
    }
    Ok(())
}

/// Adds a cell to its row, unless the row is already unusable or the cell
/// makes it so.
fn add_cell(row: &mut SheetRow, col: u32, value: &DataRef<'_>, limits: &Limits) {
    if row.problem.is_some() {
        return;
    }
    let fail = |row: &mut SheetRow, message: String| {
        row.problem = Some(message);
        row.cells = Vec::new();
    };
    if col as usize >= limits.max_columns {
        let max = limits.max_columns;
        return fail(
            row,
            format!(
                "XLSX 第 {} 列超出 max_columns 上限（{max} 列）",
                column_letters(col as usize)
            ),
        );
    }
    if row.cells.last().is_some_and(|&(prev, _)| prev >= col) {
        return fail(
            row,
            format!(
                "XLSX 单元格 {}{} 重复或顺序错乱",
                column_letters(col as usize),
                row.row + 1
            ),
        );
    }
    row.bytes += match value {
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.len(),
        DataRef::SharedString(s) => s.len(),
        _ => 8,
    };
    if row.bytes > limits.max_record_bytes {
        let max = limits.max_record_bytes;
        return fail(
            row,
            format!("XLSX 行超过 max_record_bytes 上限（{max} 字节）"),
        );
    }
    row.cells.push((col, Data::from(value.clone())));
}

struct XlsxStream {
    rows: Receiver<Sheet>,
    max_columns: usize,
    /// Header names by column; `None` until read.
    header: Option<Vec<String>>,
    done: bool,
}

impl XlsxStream {
    /// The header row's names, indexed by column.
    fn header(&self, row: SheetRow) -> Result<Vec<String>, FileFault> {
        if let Some(problem) = row.problem {
            return Err(at_row(row.row, format!("XLSX 表头无法读取：{problem}")));
        }
        let width = row.cells.last().map_or(0, |&(c, _)| c as usize + 1);
        debug_assert!(width <= self.max_columns);
        let mut names = vec![String::new(); width];
        for (col, cell) in &row.cells {
            names[*col as usize] = header_name(cell);
        }
        Ok(names)
    }
}

/// A data row as a record, or why it is bad.
fn record(row: &SheetRow, header: &[String]) -> Result<Vec<(String, RawValue)>, String> {
    if let Some(problem) = &row.problem {
        return Err(problem.clone());
    }
    let mut fields = Vec::with_capacity(row.cells.len());
    for (col, cell) in &row.cells {
        let col = *col as usize;
        let Some(value) = value(cell)
            .map_err(|m| format!("XLSX 单元格 {}{}：{m}", column_letters(col), row.row + 1))?
        else {
            continue;
        };
        match header.get(col) {
            Some(name) if !name.is_empty() => fields.push((name.clone(), value)),
            _ => {
                return Err(format!(
                    "XLSX 第 {} 列有数据但没有表头",
                    column_letters(col)
                ));
            }
        }
    }
    Ok(fields)
}

impl RecordStream for XlsxStream {
    fn next_item(&mut self) -> Result<Option<Item>, FileFault> {
        while !self.done {
            let row = match self.rows.recv() {
                Ok(Sheet::Row(row)) => row,
                Ok(Sheet::End) => {
                    self.done = true;
                    break;
                }
                Ok(Sheet::Fault(f)) => {
                    self.done = true;
                    return Err(f);
                }
                Err(_) => {
                    // The thread ended without saying so: it panicked.
                    self.done = true;
                    return Err(whole_file("XLSX 工作表读取意外中断".to_owned()));
                }
            };
            let Some(header) = &self.header else {
                match self.header(row) {
                    Ok(names) => self.header = Some(names),
                    Err(f) => {
                        self.done = true;
                        return Err(f);
                    }
                }
                continue;
            };
            let pos = Position::Row(u64::from(row.row) + 1);
            return Ok(Some(match record(&row, header) {
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
        workbook_with(rows, None, compression)
    }

    /// A workbook as [`workbook`] makes, with `xl/sharedStrings.xml` if
    /// given.
    fn workbook_with(
        rows: &str,
        shared: Option<&str>,
        compression: zip::CompressionMethod,
    ) -> tempfile::NamedTempFile {
        let mut files = vec![
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
        if let Some(shared) = shared {
            files.push(("xl/sharedStrings.xml", shared.to_owned()));
        }
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

    fn read_with(file: &tempfile::NamedTempFile, l: Limits) -> (Vec<Item>, Option<FileFault>) {
        match open(file.path(), l) {
            Ok(mut stream) => super::super::testing::collect(&mut *stream),
            Err(f) => (vec![], Some(f)),
        }
    }

    #[test]
    fn declared_dimension_is_never_allocated() {
        // Issue 11: cells A1 and XFD1048576 made calamine allocate the
        // whole rectangle (~549 GB) and abort the process.
        let rows = format!(
            "<row r=\"1\">{}</row><row r=\"1048576\"><c r=\"XFD1048576\"><v>1</v></c></row>",
            inline("A1", "姓名")
        );
        let sheet = format!("<dimension ref=\"A1:XFD1048576\"/>{rows}");
        let file = workbook(&sheet, zip::CompressionMethod::Deflated);
        let (items, fault) = read_with(&file, Limits::default());
        assert_eq!(fault, None);
        assert_eq!(items.len(), 1);
        assert!(
            matches!(&items[0], Item::Bad(b) if b.pos == Position::Row(1_048_576) && b.message.contains("XFD") && b.message.contains("max_columns")),
            "{items:?}"
        );
        // The same far cell under a wide enough limit is a value without
        // a header, still without allocating the rectangle.
        let l = Limits {
            max_columns: 16_384,
            ..Limits::default()
        };
        let (items, _) = read_with(&file, l);
        assert!(matches!(&items[0], Item::Bad(b) if b.message.contains("没有表头")));
    }

    #[test]
    fn too_wide_header_or_too_large_row() {
        let l = Limits {
            max_columns: 2,
            ..Limits::default()
        };
        let header = format!(
            "<row r=\"1\">{}{}{}</row>",
            inline("A1", "a"),
            inline("B1", "b"),
            inline("C1", "c")
        );
        let (_, fault) = read_with(&workbook(&header, zip::CompressionMethod::Stored), l);
        assert!(fault.unwrap().message.contains("max_columns"));
        let rows = format!(
            "<row r=\"1\">{}</row><row r=\"2\">{}</row><row r=\"3\">{}</row>",
            inline("A1", "a"),
            inline("A2", &"x".repeat(200)),
            inline("A3", "ok")
        );
        let (items, fault) = read_with(
            &workbook(&rows, zip::CompressionMethod::Stored),
            super::super::testing::limits(100),
        );
        assert_eq!(fault, None);
        assert!(matches!(&items[0], Item::Bad(b) if b.message.contains("max_record_bytes")));
        assert!(matches!(&items[1], Item::Record(r) if r.pos == Position::Row(3)));
    }

    #[test]
    fn rows_out_of_order_are_a_fault() {
        let rows = format!(
            "<row r=\"1\">{}</row><row r=\"3\">{}</row><row r=\"2\">{}</row>",
            inline("A1", "a"),
            inline("A3", "x"),
            inline("A2", "y")
        );
        let (items, fault) = read_with(
            &workbook(&rows, zip::CompressionMethod::Stored),
            Limits::default(),
        );
        // Row 3 is still held when row 2 turns up: the file ends there.
        assert!(items.is_empty(), "{items:?}");
        let fault = fault.unwrap();
        assert!(fault.message.contains("行顺序错乱"), "{fault:?}");
        assert_eq!(fault.line, 2);
    }

    #[test]
    fn shared_strings_are_bounded_before_calamine_loads_them() {
        let rows = "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c></row><row r=\"2\"><c r=\"A2\" t=\"s\"><v>1</v></c></row>";
        let sst = |attrs: &str, items: &str| {
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" {attrs}>{items}</sst>"#
            )
        };
        let l = Limits {
            max_xlsx_shared_strings: 4,
            ..Limits::default()
        };
        let good = sst(
            r#"count="2" uniqueCount="2""#,
            "<si><t>姓名</t></si><si><t>张三</t></si>",
        );
        let file = workbook_with(rows, Some(&good), zip::CompressionMethod::Deflated);
        let (items, fault) = read_with(&file, l);
        assert_eq!(fault, None);
        assert_eq!(
            fields_of(&items[0]),
            vec![("姓名".to_owned(), RawValue::Text("张三".into()))]
        );
        // Many empty strings (issue 11: 15 M of them peaked at 368 MB).
        let many = sst("", &"<si/>".repeat(5));
        let file = workbook_with(rows, Some(&many), zip::CompressionMethod::Deflated);
        let fault = read_with(&file, l).1.unwrap();
        assert!(
            fault.message.contains("max_xlsx_shared_strings"),
            "{fault:?}"
        );
        // A declared count calamine would reserve room for.
        let lying = sst(r#"uniqueCount="4000000000000""#, "<si><t>a</t></si>");
        let file = workbook_with(rows, Some(&lying), zip::CompressionMethod::Deflated);
        let fault = read_with(&file, l).1.unwrap();
        assert!(fault.message.contains("4000000000000"), "{fault:?}");
        // One string larger than a record may be.
        let long = sst(
            "",
            &format!(
                "<si><r><t>{}</t></r><r><t>{}</t></r></si>",
                "x".repeat(60),
                "y".repeat(60)
            ),
        );
        let file = workbook_with(rows, Some(&long), zip::CompressionMethod::Deflated);
        let mut small = super::super::testing::limits(100);
        small.max_xlsx_shared_strings = 4;
        let fault = read_with(&file, small).1.unwrap();
        assert!(
            fault.message.contains("第 1 项超过 max_record_bytes"),
            "{fault:?}"
        );
    }

    fn fields_of(item: &Item) -> Vec<(String, RawValue)> {
        match item {
            Item::Record(r) => r.fields.clone(),
            other => panic!("{other:?}"),
        }
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
