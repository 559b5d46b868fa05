//! CSV: a header row, then one record per row (RFC 4180 quoting).
//!
//! This is a small hand-written reader rather than the `csv` crate, for
//! three reasons the bad-input table makes hard requirements: the `csv`
//! crate accepts bad quoting silently (`a"b` and `"a"b` parse without
//! error), it buffers a whole record before one can check its size (an
//! unterminated quote would pull the rest of a 2 GiB file into memory),
//! and it cannot skip an oversized record and go on. Here a row with bad
//! quoting or too many bytes is a bad record, its bytes beyond the limit
//! are never buffered, and parsing continues with the next row.
//!
//! Row terminators are `\n`, `\r\n` or a lone `\r`; empty lines are
//! skipped (they are not records), as the `csv` crate does. Lines are
//! counted at `\n` and at a lone `\r`, so a quoted field with embedded
//! newlines moves the line count on while staying one record.
//!
//! A quoting error can swallow lines: a quote that is never closed runs to
//! the end of the file, and one closed only by a later stray quote runs to
//! that line. Those lines were most likely records of their own, so they
//! are not lost in one bad record: a row with a quoting error (or over the
//! size limit) that spans several lines is reported once per non-blank
//! line it covers — the first naming the problem and the lines swallowed,
//! each following one naming the line that swallowed it — and so the
//! counts of a file always add up to the data lines it physically holds.

use std::io::BufRead;

use super::{BadRecord, FileFault, Item, Limits, Position, RawRecord, RawValue, RecordStream};

pub(crate) struct CsvStream<'r> {
    rows: RowReader<'r>,
    header: Option<Vec<String>>,
    /// The line the header was read from (0 before).
    header_line: u64,
    /// The line the header is on (`Limits::header_row`); 0 = first row.
    header_row: u32,
    /// Records seen so far, bad ones included (the header is not one).
    record: u64,
    /// Lines a bad multi-line row swallowed, still to be reported.
    swallowed: Option<Swallowed>,
}

/// The lines after the first of a bad row that spans several lines.
struct Swallowed {
    /// Line where the bad row starts.
    start: u64,
    /// Next line to report, and the last.
    next: u64,
    last: u64,
    /// Blank lines in between (not records; skipped), ascending.
    blanks: std::vec::IntoIter<u64>,
    problem: &'static str,
}

impl Swallowed {
    /// The next swallowed non-blank line.
    fn next_line(&mut self) -> Option<u64> {
        while self.next <= self.last {
            let line = self.next;
            self.next += 1;
            if self.blanks.as_slice().first() == Some(&line) {
                self.blanks.next();
                continue;
            }
            return Some(line);
        }
        None
    }
}

impl<'r> CsvStream<'r> {
    pub(crate) fn new(input: Box<dyn BufRead + 'r>, limits: Limits) -> Self {
        CsvStream {
            rows: RowReader::new(input, limits),
            header: None,
            header_line: 0,
            header_row: limits.header_row,
            record: 0,
            swallowed: None,
        }
    }

    /// Reads the header row if not yet done; `false` when the file has no
    /// row at (or after) the configured header line.
    fn read_header(&mut self) -> Result<bool, FileFault> {
        if self.header.is_some() {
            return Ok(true);
        }
        let row = loop {
            let Some(row) = self.rows.next_row()? else {
                return Ok(false);
            };
            // Rows above the configured header (a title row, notes) are
            // not data: they are passed over whatever they hold.
            if row.line >= u64::from(self.header_row) {
                break row;
            }
        };
        // Without a header nothing after it can be read.
        if let Some(problem) = row.problem {
            return Err(FileFault {
                line: row.line,
                byte: row.byte,
                message: format!("CSV 表头无法读取：{problem}"),
            });
        }
        let names = row.fields().map_err(|message| FileFault {
            line: row.line,
            byte: row.byte,
            message,
        })?;
        self.header = Some(names.into_iter().map(|n| n.trim().to_owned()).collect());
        self.header_line = row.line;
        Ok(true)
    }

    /// A bad record at `line`.
    fn bad(&mut self, line: u64, message: String) -> Item {
        self.record += 1;
        let pos = Position::Line {
            line,
            record: self.record,
        };
        Item::Bad(BadRecord { pos, message })
    }
}

impl RecordStream for CsvStream<'_> {
    fn header(&mut self) -> Result<Option<super::Header>, FileFault> {
        self.read_header()?;
        Ok(Some(super::Header {
            names: self.header.clone().unwrap_or_default(),
            row: self.header_line,
            sheet: None,
            sheets: Vec::new(),
        }))
    }

    fn next_item(&mut self) -> Result<Option<Item>, FileFault> {
        if !self.read_header()? {
            return Ok(None);
        }
        if let Some(s) = &mut self.swallowed {
            if let Some(line) = s.next_line() {
                let message = format!(
                    "此行被第 {} 行开始的记录吞没（{}），未能作为记录读取",
                    s.start, s.problem
                );
                return Ok(Some(self.bad(line, message)));
            }
            self.swallowed = None;
        }
        let Some(row) = self.rows.next_row()? else {
            return Ok(None);
        };
        let header = self.header.as_ref().expect("read above");
        self.record += 1;
        let pos = Position::Line {
            line: row.line,
            record: self.record,
        };
        let bad = |message: String| Ok(Some(Item::Bad(BadRecord { pos, message })));
        // A line of only spaces and delimiters is a blank row whatever its
        // field count: a record with no fields, which the caller skips.
        if row.problem.is_none() && row.data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(Item::Record(RawRecord {
                pos,
                fields: Vec::new(),
            })));
        }
        if let Some(problem) = row.problem {
            if row.last_line > row.line {
                let lines = row.last_line - row.line + 1 - row.blanks.len() as u64;
                self.swallowed = Some(Swallowed {
                    start: row.line,
                    next: row.line + 1,
                    last: row.last_line,
                    blanks: row.blanks.into_iter(),
                    problem,
                });
                return bad(format!(
                    "{problem}；这条记录从第 {} 行延续到第 {} 行，吞没了其后的各行（共 {lines} 行数据，均按拒收计）",
                    row.line, row.last_line
                ));
            }
            return bad(problem.to_owned());
        }
        if row.ends.len() != header.len() {
            return bad(format!(
                "CSV 行的字段数为 {}，表头为 {}",
                row.ends.len(),
                header.len()
            ));
        }
        let values = match row.fields() {
            Ok(values) => values,
            Err(message) => return bad(message),
        };
        let fields = header
            .iter()
            .zip(values)
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.clone(), RawValue::Text(value)))
            .collect();
        Ok(Some(Item::Record(RawRecord { pos, fields })))
    }
}

/// One physical record: its fields' bytes back to back, and where each ends.
struct Row {
    /// Line where the row starts (1-based).
    line: u64,
    /// Last line holding any of the row's bytes.
    last_line: u64,
    /// Blank lines inside the row (inside a quoted field), up to
    /// `MAX_BLANKS`; beyond that they are counted as swallowed lines.
    blanks: Vec<u64>,
    /// Offset of the row's first byte in the decoded stream.
    byte: u64,
    /// Raw bytes of the row, terminator excluded.
    size: usize,
    data: Vec<u8>,
    ends: Vec<usize>,
    /// Why the row cannot be used (bad quoting, too long), in Chinese.
    problem: Option<&'static str>,
}

impl Row {
    /// The fields as strings. The whole row is checked at once; fields are
    /// split at ASCII delimiters, so each slice is valid too.
    fn fields(&self) -> Result<Vec<String>, String> {
        let text =
            std::str::from_utf8(&self.data).map_err(|_| "CSV 行含有非 UTF-8 字节".to_owned())?;
        let mut start = 0;
        Ok(self
            .ends
            .iter()
            .map(|&end| {
                let field = text[start..end].to_owned();
                start = end;
                field
            })
            .collect())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: either the closing quote or the
    /// first half of `""`.
    QuoteInQuoted,
}

/// Splits the byte stream into rows.
struct RowReader<'r> {
    input: Box<dyn BufRead + 'r>,
    delimiter: u8,
    max: usize,
    max_columns: usize,
    /// Line of the next byte (1-based).
    line: u64,
    /// Offset of the next byte.
    byte: u64,
    /// The previous row ended with `\r`; a `\n` right after belongs to it.
    skip_lf: bool,
}

const BAD_QUOTE_IN_FIELD: &str = "CSV 引号使用错误：未加引号的字段中出现引号";
const BAD_AFTER_QUOTE: &str = "CSV 引号使用错误：引号字段的结束引号后还有字符";
const UNCLOSED_QUOTE: &str = "CSV 引号使用错误：引号未闭合";
const TOO_LONG: &str = "CSV 记录超过 max_record_bytes 上限";
const TOO_MANY_COLUMNS: &str = "CSV 行的字段数超过 max_columns 上限";
/// Blank lines remembered per row (see [`Row::blanks`]).
const MAX_BLANKS: usize = 4096;

impl<'r> RowReader<'r> {
    fn new(input: Box<dyn BufRead + 'r>, limits: Limits) -> Self {
        RowReader {
            input,
            delimiter: limits.csv_delimiter,
            max: limits.max_record_bytes,
            max_columns: limits.max_columns,
            line: 1,
            byte: 0,
            skip_lf: false,
        }
    }

    /// The next non-empty row, or `None` at the end.
    fn next_row(&mut self) -> Result<Option<Row>, FileFault> {
        loop {
            match self.read_row()? {
                // An empty line: not a record.
                Some(row) if row.size == 0 => {}
                other => return Ok(other),
            }
        }
    }

    fn read_row(&mut self) -> Result<Option<Row>, FileFault> {
        let mut row = Row {
            line: self.line,
            last_line: self.line,
            blanks: Vec::new(),
            byte: self.byte,
            size: 0,
            data: Vec::new(),
            ends: Vec::new(),
            problem: None,
        };
        let mut state = State::FieldStart;
        // Bytes of the row so far, terminator excluded; counted even after
        // the data stops being kept.
        let mut size = 0usize;
        let mut started = false;
        // Inside quotes: the row size where the current physical line
        // started, and the last byte seen, to tell blank lines.
        let mut line_start = 0usize;
        let mut last = 0u8;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) => {
                    return Err(FileFault {
                        line: self.line,
                        byte: self.byte,
                        message: format!("读取文件失败：{e}"),
                    });
                }
            };
            if chunk.is_empty() {
                if !started {
                    return Ok(None);
                }
                if state == State::Quoted {
                    row.problem.get_or_insert(UNCLOSED_QUOTE);
                }
                // A final line end inside the quote leaves an empty line.
                row.last_line = if size == line_start && self.line > row.line {
                    self.line - 1
                } else {
                    self.line
                };
                while row.blanks.last() == Some(&row.last_line) {
                    row.blanks.pop();
                    row.last_line -= 1;
                }
                end_field(&mut row, true, self.max_columns);
                return Ok(Some(self.finish(row, size)));
            }
            if self.skip_lf {
                self.skip_lf = false;
                if chunk[0] == b'\n' {
                    self.input.consume(1);
                    self.byte += 1;
                    row.byte += 1;
                    continue;
                }
            }
            started = true;
            let mut i = 0;
            let mut ended = false;
            while i < chunk.len() {
                let b = chunk[i];
                match state {
                    State::Unquoted | State::Quoted => {
                        // Copy the run of ordinary bytes in one go.
                        let quoted = state == State::Quoted;
                        let delimiter = self.delimiter;
                        let run = chunk[i..]
                            .iter()
                            .position(|&c| {
                                c == b'"'
                                    || c == b'\n'
                                    || (!quoted && (c == delimiter || c == b'\r'))
                            })
                            .unwrap_or(chunk.len() - i);
                        if run > 0 {
                            keep(&mut row, &mut size, self.max, &chunk[i..i + run]);
                            last = chunk[i + run - 1];
                            i += run;
                            continue;
                        }
                        i += 1;
                        if quoted {
                            if b == b'"' {
                                size += 1;
                                last = b;
                                state = State::QuoteInQuoted;
                            } else {
                                let len = size - line_start;
                                if (len == 0 || (len == 1 && last == b'\r'))
                                    && row.blanks.len() < MAX_BLANKS
                                {
                                    row.blanks.push(self.line);
                                }
                                self.line += 1;
                                keep(&mut row, &mut size, self.max, &[b]);
                                line_start = size;
                                last = b;
                            }
                        } else if b == b'"' {
                            row.problem.get_or_insert(BAD_QUOTE_IN_FIELD);
                            keep(&mut row, &mut size, self.max, &[b]);
                        } else if b == self.delimiter {
                            size += 1;
                            end_field(&mut row, size <= self.max, self.max_columns);
                            state = State::FieldStart;
                        } else {
                            ended = self.terminator(b);
                            break;
                        }
                    }
                    State::FieldStart | State::QuoteInQuoted => {
                        i += 1;
                        if b == self.delimiter {
                            size += 1;
                            end_field(&mut row, size <= self.max, self.max_columns);
                            state = State::FieldStart;
                        } else if b == b'\n' || b == b'\r' {
                            ended = self.terminator(b);
                            break;
                        } else if b == b'"' {
                            if state == State::QuoteInQuoted {
                                // `""` inside quotes: one literal quote.
                                keep(&mut row, &mut size, self.max, b"\"");
                            } else {
                                size += 1;
                            }
                            last = b;
                            state = State::Quoted;
                        } else {
                            if state == State::QuoteInQuoted {
                                row.problem.get_or_insert(BAD_AFTER_QUOTE);
                            }
                            keep(&mut row, &mut size, self.max, &[b]);
                            state = State::Unquoted;
                        }
                    }
                }
            }
            self.input.consume(i);
            self.byte += i as u64;
            if ended {
                // The terminator already moved the line count on.
                row.last_line = self.line - 1;
                end_field(&mut row, true, self.max_columns);
                return Ok(Some(self.finish(row, size)));
            }
        }
    }

    /// Handles a row terminator: counts the line, arranges for the `\n` of
    /// a `\r\n` to be skipped. Always ends the row.
    fn terminator(&mut self, b: u8) -> bool {
        self.line += 1;
        self.skip_lf = b == b'\r';
        true
    }

    fn finish(&self, mut row: Row, size: usize) -> Row {
        row.size = size;
        if size > self.max {
            // An unclosed quote says more about what went wrong than the
            // size it caused.
            if row.problem != Some(UNCLOSED_QUOTE) {
                row.problem = Some(TOO_LONG);
            }
            row.data = Vec::new();
            row.ends.clear();
        }
        row
    }
}

/// Ends a field (at a delimiter, or the row's end). Like the data, field
/// ends stop being kept once the row is over the size limit or has
/// `max_columns` fields (a line of nothing but delimiters must not grow
/// memory either). `within_size`: the row is not over the size limit yet.
fn end_field(row: &mut Row, within_size: bool, max_columns: usize) {
    if row.ends.len() >= max_columns {
        row.problem.get_or_insert(TOO_MANY_COLUMNS);
    } else if within_size {
        row.ends.push(row.data.len());
    }
}

/// Appends to the row's data unless the row is already over the limit;
/// the size is counted either way.
fn keep(row: &mut Row, size: &mut usize, max: usize, bytes: &[u8]) {
    *size += bytes.len();
    if *size <= max {
        row.data.extend_from_slice(bytes);
    } else if !row.data.is_empty() {
        row.data = Vec::new();
    }
}

#[cfg(test)]
mod tests;
