//! XLSX: one sheet (the first, or the one `[[dataset]] sheet` names), laid
//! out like CSV (the first non-empty row, or `header_row`, is the header).
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

use super::{
    BadRecord, FileFault, Header, Item, Limits, Position, RawRecord, RawValue, RecordStream,
    SheetRef,
};

/// Rows the sheet thread may read ahead of the stream.
const ROWS_AHEAD: usize = 256;

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
    archive::check(path, &limits)?;
    let workbook: Xlsx<BufReader<File>> =
        calamine::open_workbook(path).map_err(|e| whole_file(format!("XLSX 文件无法读取：{e}")))?;
    let sheets = workbook.sheet_names();
    let listed = || sheets.join("、");
    let index = match sheet {
        None if sheets.is_empty() => {
            return Err(whole_file("XLSX 文件中没有工作表".to_owned()));
        }
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
    let sheet = sheets[index].clone();
    let thread_sheet = sheet.clone();
    let (tx, rx) = sync_channel(ROWS_AHEAD);
    std::thread::Builder::new()
        .name("xlsx-sheet".into())
        .spawn(move || read_sheet(workbook, &thread_sheet, limits, &tx))
        .map_err(|e| whole_file(format!("XLSX 读取线程无法启动：{e}")))?;
    Ok(Box::new(XlsxStream {
        rows: rx,
        max_columns: limits.max_columns,
        header: None,
        header_at: 0,
        header_row: limits.header_row,
        sheet: Some(sheet),
        sheets,
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
    /// The sheet row of the header (Excel's 1-based number) once read.
    header_at: u64,
    /// `Limits::header_row`: sheet rows above it are not read; 0 = the
    /// first non-empty row is the header.
    header_row: u32,
    /// The sheet read, and every sheet of the workbook in order.
    sheet: Option<String>,
    sheets: Vec<String>,
    done: bool,
}

impl XlsxStream {
    /// The next row from the sheet thread; `None` at the end.
    fn next_row(&mut self) -> Result<Option<SheetRow>, FileFault> {
        if self.done {
            return Ok(None);
        }
        match self.rows.recv() {
            Ok(Sheet::Row(row)) => Ok(Some(row)),
            Ok(Sheet::End) => {
                self.done = true;
                Ok(None)
            }
            Ok(Sheet::Fault(f)) => {
                self.done = true;
                Err(f)
            }
            Err(_) => {
                // The thread ended without saying so: it panicked.
                self.done = true;
                Err(whole_file("XLSX 工作表读取意外中断".to_owned()))
            }
        }
    }

    /// Reads the header row if not yet done: the first non-empty row at
    /// or below `header_row`; rows above it (a title, notes) are passed
    /// over whatever they hold.
    fn read_header(&mut self) -> Result<(), FileFault> {
        while self.header.is_none() {
            let Some(row) = self.next_row()? else {
                return Ok(());
            };
            let sheet_row = u64::from(row.row) + 1;
            if sheet_row < u64::from(self.header_row) || is_blank(&row) {
                continue;
            }
            match self.header_names(row) {
                Ok(names) => {
                    self.header = Some(names);
                    self.header_at = sheet_row;
                }
                Err(f) => {
                    self.done = true;
                    return Err(f);
                }
            }
        }
        Ok(())
    }

    /// The header row's names, indexed by column.
    fn header_names(&self, row: SheetRow) -> Result<Vec<String>, FileFault> {
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

/// A row with no value in any cell (only empty text).
fn is_blank(row: &SheetRow) -> bool {
    row.problem.is_none()
        && row
            .cells
            .iter()
            .all(|(_, d)| matches!(d, Data::Empty) || matches!(d, Data::String(s) if s.is_empty()))
}

impl RecordStream for XlsxStream {
    fn header(&mut self) -> Result<Option<Header>, FileFault> {
        self.read_header()?;
        Ok(Some(Header {
            names: self.header.clone().unwrap_or_default(),
            row: self.header_at,
            sheet: self.sheet.clone(),
            sheets: self.sheets.clone(),
        }))
    }

    fn next_item(&mut self) -> Result<Option<Item>, FileFault> {
        self.read_header()?;
        // read_header consumed every row up to the header.
        if self.header.is_none() {
            return Ok(None);
        }
        let Some(row) = self.next_row()? else {
            return Ok(None);
        };
        let header = self.header.as_ref().expect("read above");
        let pos = Position::Row(u64::from(row.row) + 1);
        Ok(Some(match record(&row, header) {
            Ok(fields) => Item::Record(RawRecord { pos, fields }),
            Err(message) => Item::Bad(BadRecord { pos, message }),
        }))
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
mod tests;
