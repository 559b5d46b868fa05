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
            record: 0,
            swallowed: None,
        }
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
    fn next_item(&mut self) -> Result<Option<Item>, FileFault> {
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
        let Some(header) = &self.header else {
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
            return self.next_item();
        };
        self.record += 1;
        let pos = Position::Line {
            line: row.line,
            record: self.record,
        };
        let bad = |message: String| Ok(Some(Item::Bad(BadRecord { pos, message })));
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
mod tests {
    use super::super::testing::{collect, fields, limits};
    use super::*;

    fn parse(text: &str, max: usize) -> (Vec<Item>, Option<FileFault>) {
        collect(&mut CsvStream::new(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            limits(max),
        ))
    }

    fn bad(item: &Item) -> (&Position, &str) {
        match item {
            Item::Bad(b) => (&b.pos, &b.message),
            other => panic!("not bad: {other:?}"),
        }
    }

    #[test]
    fn chinese_header_and_values() {
        let (items, fault) = parse(
            " 姓名 ,受理部门,备注\n张三,市政务服务中心,\n李四,\"区,县\",\"说\"\"好\"\"\"\n",
            1 << 20,
        );
        assert_eq!(fault, None);
        assert_eq!(items.len(), 2);
        assert_eq!(
            fields(&items[0]),
            vec![("姓名", "张三"), ("受理部门", "市政务服务中心")]
        );
        assert_eq!(
            fields(&items[1]),
            vec![
                ("姓名", "李四"),
                ("受理部门", "区,县"),
                ("备注", "说\"好\"")
            ]
        );
        let Item::Record(r) = &items[1] else { panic!() };
        assert_eq!(r.pos, Position::Line { line: 3, record: 2 });
    }

    #[test]
    fn multiline_quoted_field_positions() {
        let text = "a,b\r\n1,\"x\r\ny\"\r\n2,\"p\nq\nr\"\r\n3,z";
        let (items, fault) = parse(text, 1 << 20);
        assert_eq!(fault, None);
        let positions: Vec<_> = items
            .iter()
            .map(|i| match i {
                Item::Record(r) => r.pos,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            positions,
            vec![
                Position::Line { line: 2, record: 1 },
                Position::Line { line: 4, record: 2 },
                Position::Line { line: 7, record: 3 },
            ]
        );
        assert_eq!(fields(&items[0]), vec![("a", "1"), ("b", "x\r\ny")]);
        assert_eq!(fields(&items[1]), vec![("a", "2"), ("b", "p\nq\nr")]);
        assert_eq!(fields(&items[2]), vec![("a", "3"), ("b", "z")]);
    }

    #[test]
    fn ragged_and_badly_quoted_rows_are_bad_and_others_go_on() {
        let text = "a,b,c\n1,2,3\n1,2\n1,x\"y,3\n1,\"x\"y,3\n\n7,8,9\n";
        let (items, fault) = parse(text, 1 << 20);
        assert_eq!(fault, None);
        assert_eq!(items.len(), 5);
        assert_eq!(
            bad(&items[1]),
            (
                &Position::Line { line: 3, record: 2 },
                "CSV 行的字段数为 2，表头为 3"
            )
        );
        assert_eq!(
            bad(&items[2]),
            (&Position::Line { line: 4, record: 3 }, BAD_QUOTE_IN_FIELD)
        );
        assert_eq!(
            bad(&items[3]),
            (&Position::Line { line: 5, record: 4 }, BAD_AFTER_QUOTE)
        );
        let Item::Record(r) = &items[4] else { panic!() };
        assert_eq!(r.pos, Position::Line { line: 7, record: 5 });
    }

    #[test]
    fn unclosed_quote_reports_every_line_it_swallowed() {
        // Issue 11: one unterminated quote in a 10-record CSV. Before, the
        // report said 3 received; now all 10 data lines are accounted for.
        let mut text = String::from("no,name\n1,a\n2,b\n3,\"oops\n");
        for i in 4..=10 {
            text.push_str(&format!("{i},x\n"));
        }
        let (items, fault) = parse(&text, 1 << 20);
        assert_eq!(fault, None);
        assert_eq!(items.len(), 10);
        assert_eq!(fields(&items[1]), vec![("no", "2"), ("name", "b")]);
        let (pos, message) = bad(&items[2]);
        assert_eq!(*pos, Position::Line { line: 4, record: 3 });
        assert!(message.starts_with(UNCLOSED_QUOTE), "{message}");
        assert!(message.contains("从第 4 行延续到第 11 行"), "{message}");
        assert!(message.contains("共 8 行"), "{message}");
        for (k, item) in items[3..].iter().enumerate() {
            let (pos, message) = bad(item);
            let line = 5 + k as u64;
            assert_eq!(
                *pos,
                Position::Line {
                    line,
                    record: line - 1
                }
            );
            assert!(message.contains("第 4 行开始的记录吞没"), "{message}");
        }
    }

    #[test]
    fn swallowed_lines_skip_blank_ones_and_end_where_the_quote_closes() {
        // A quote closed by a later stray quote swallows up to that line;
        // the rows after it are read normally. Blank lines are not records.
        let text = "a,b\n1,\"x\n\n3,y\r\n\r\n5,\"z\n6,7\n";
        let (items, fault) = parse(text, 1 << 20);
        assert_eq!(fault, None);
        assert_eq!(items.len(), 4, "{items:?}");
        let lines: Vec<_> = items[..3].iter().map(|i| bad(i).0.row()).collect();
        assert_eq!(lines, vec![2, 4, 6]);
        assert!(bad(&items[0]).1.starts_with(BAD_AFTER_QUOTE));
        assert!(bad(&items[0]).1.contains("第 2 行延续到第 6 行"));
        assert!(bad(&items[0]).1.contains("共 3 行"));
        let (pos, message) = bad(&items[2]);
        assert_eq!(*pos, Position::Line { line: 6, record: 3 });
        assert!(message.contains("第 2 行开始的记录吞没"), "{message}");
        let Item::Record(r) = &items[3] else { panic!() };
        assert_eq!(r.pos, Position::Line { line: 7, record: 4 });
        // Trailing blank lines inside an unclosed quote are not counted.
        let (items, _) = parse("a,b\n1,\"x\n2,y\n\n\n", 1 << 20);
        assert_eq!(items.len(), 2);
        // An oversized unclosed quote is still reported as unclosed, with
        // the lines it swallowed, none of them buffered.
        let text = format!("a,b\n1,\"{}\n", "长\n".repeat(1000));
        let (items, _) = parse(&text, 100);
        assert_eq!(items.len(), 1000);
        assert!(bad(&items[0]).1.starts_with(UNCLOSED_QUOTE));
    }

    #[test]
    fn too_many_columns() {
        let mut l = limits(1 << 20);
        l.max_columns = 3;
        let run = |text: &str| {
            collect(&mut CsvStream::new(
                Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
                l,
            ))
        };
        let (items, fault) = run("a,b,c\n1,2,3\n1,2,3,4\n");
        assert_eq!(fault, None);
        assert_eq!(fields(&items[0]).len(), 3);
        assert_eq!(bad(&items[1]).1, TOO_MANY_COLUMNS);
        let (_, fault) = run("a,b,c,d\n1,2,3,4\n");
        assert!(fault.unwrap().message.contains("max_columns"));
        // A header of a million empty names is refused, not allocated.
        let (_, fault) = run(&",".repeat(1_000_000));
        assert!(fault.unwrap().message.contains("max_columns"));
    }

    #[test]
    fn oversized_record_is_bad_and_not_buffered() {
        let text = format!("a,b\n1,2\n3,\"{}\"\n5,6\n", "长".repeat(10_000));
        let (items, fault) = parse(&text, 100);
        assert_eq!(fault, None);
        assert_eq!(items.len(), 3);
        assert_eq!(
            bad(&items[1]),
            (
                &Position::Line { line: 3, record: 2 },
                "CSV 记录超过 max_record_bytes 上限"
            )
        );
        assert_eq!(fields(&items[2]), vec![("a", "5"), ("b", "6")]);
        // A record of exactly the limit passes: "12,34" is 5 bytes.
        let (items, _) = parse("a,b\n12,34\n", 5);
        assert_eq!(fields(&items[0]), vec![("a", "12"), ("b", "34")]);
        let (items, _) = parse("a,b\n12,345\n", 5);
        assert!(matches!(items[0], Item::Bad(_)));
    }

    #[test]
    fn a_line_of_delimiters_is_bounded() {
        let text = format!("a,b\n{}\n1,2\n", ",".repeat(100_000));
        let mut stream = CsvStream::new(
            Box::new(std::io::Cursor::new(text.into_bytes())),
            limits(100),
        );
        let first = stream.next_item().unwrap().unwrap();
        assert_eq!(bad(&first).1, "CSV 记录超过 max_record_bytes 上限");
        let (items, _) = collect(&mut stream);
        assert_eq!(fields(&items[0]), vec![("a", "1"), ("b", "2")]);
    }

    #[test]
    fn header_only_and_empty_files_have_no_records() {
        assert_eq!(parse("", 100), (vec![], None));
        assert_eq!(parse("姓名,年龄\n", 100), (vec![], None));
        assert_eq!(parse("姓名,年龄", 100), (vec![], None));
        assert_eq!(parse("\n\n姓名,年龄\r\n\r\n", 100), (vec![], None));
    }

    #[test]
    fn other_delimiter_and_lone_cr() {
        let mut l = limits(100);
        l.csv_delimiter = b';';
        let mut s = CsvStream::new(
            Box::new(std::io::Cursor::new(b"a;b\r1;x,y\r2;3".to_vec())),
            l,
        );
        let (items, fault) = collect(&mut s);
        assert_eq!(fault, None);
        assert_eq!(fields(&items[0]), vec![("a", "1"), ("b", "x,y")]);
        let Item::Record(r) = &items[1] else { panic!() };
        assert_eq!(r.pos, Position::Line { line: 3, record: 2 });
    }

    #[test]
    fn small_buffers_give_same_result() {
        let text = "姓名,备注\r\n张三,\"多\r\n行\"\r\n李四,\"a\"\"b\"\r\n王五,x\"y\r\n";
        let whole = parse(text, 1 << 20);
        for cap in 1..8 {
            let input = std::io::BufReader::with_capacity(
                cap,
                std::io::Cursor::new(text.as_bytes().to_vec()),
            );
            assert_eq!(
                collect(&mut CsvStream::new(Box::new(input), limits(1 << 20))),
                whole,
                "cap {cap}"
            );
        }
    }
}
