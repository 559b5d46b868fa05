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
}

impl<'r> CsvStream<'r> {
    pub(crate) fn new(input: Box<dyn BufRead + 'r>, limits: Limits) -> Self {
        CsvStream {
            rows: RowReader::new(input, limits),
            header: None,
            header_line: 0,
            header_row: limits.header_row,
            record: 0,
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

impl<'r> RowReader<'r> {
    fn new(input: Box<dyn BufRead + 'r>, limits: Limits) -> Self {
        RowReader {
            input,
            delimiter: limits.csv_delimiter,
            max: limits.max_record_bytes,
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
                row.ends.push(row.data.len());
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
                            i += run;
                            continue;
                        }
                        i += 1;
                        if quoted {
                            if b == b'"' {
                                size += 1;
                                state = State::QuoteInQuoted;
                            } else {
                                self.line += 1;
                                keep(&mut row, &mut size, self.max, &[b]);
                            }
                        } else if b == b'"' {
                            row.problem.get_or_insert(BAD_QUOTE_IN_FIELD);
                            keep(&mut row, &mut size, self.max, &[b]);
                        } else if b == self.delimiter {
                            end_field(&mut row, &mut size, self.max);
                            state = State::FieldStart;
                        } else {
                            ended = self.terminator(b);
                            break;
                        }
                    }
                    State::FieldStart | State::QuoteInQuoted => {
                        i += 1;
                        if b == self.delimiter {
                            end_field(&mut row, &mut size, self.max);
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
                row.ends.push(row.data.len());
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
            row.problem = Some("CSV 记录超过 max_record_bytes 上限");
            row.data = Vec::new();
            row.ends.clear();
        }
        row
    }
}

/// Ends a field at a delimiter. Like the data, field ends stop being kept
/// once the row is over the limit (a line of nothing but delimiters must
/// not grow memory either).
fn end_field(row: &mut Row, size: &mut usize, max: usize) {
    *size += 1;
    if *size <= max {
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
    fn unclosed_quote_is_one_bad_record() {
        let (items, fault) = parse("a,b\n1,2\n3,\"oops\n4,5\n", 1 << 20);
        assert_eq!(fault, None);
        assert_eq!(items.len(), 2);
        assert_eq!(
            bad(&items[1]),
            (&Position::Line { line: 3, record: 2 }, UNCLOSED_QUOTE)
        );
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
