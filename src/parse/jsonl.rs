//! JSON Lines: one object per line; a bad line is a bad record, not a
//! bad file.
//!
//! Lines are read with a cap: a line longer than `max_record_bytes` is
//! skipped through without being buffered and reported as one bad record.
//! Blank lines are skipped (they are not records and get no number).
//!
//! Lines end at `\n`, `\r\n` or a lone `\r`, as in CSV: a file written
//! with old Mac line ends must not become one giant line whose single
//! error swallows every record in it. JSON text never needs a raw CR
//! inside a value, so no valid record is split by this.

use std::io::BufRead;

use super::object::{Element, nests_deeper_than, too_many_fields};
use super::{BadRecord, FileFault, Item, Limits, Position, RawRecord, RecordStream};

pub(crate) struct JsonLinesStream<'r> {
    input: Box<dyn BufRead + 'r>,
    limits: Limits,
    /// Lines read so far (the line number of the last line read).
    line: u64,
    /// Records seen so far, bad ones included.
    record: u64,
    /// Bytes consumed so far, for fault positions.
    byte: u64,
    /// The current line without its terminator.
    buf: Vec<u8>,
    /// The previous line ended with `\r`; a `\n` right after belongs to it.
    skip_lf: bool,
}

impl<'r> JsonLinesStream<'r> {
    pub(crate) fn new(input: Box<dyn BufRead + 'r>, limits: Limits) -> Self {
        JsonLinesStream {
            input,
            limits,
            line: 0,
            record: 0,
            byte: 0,
            buf: Vec::new(),
            skip_lf: false,
        }
    }

    /// Reads the next line into `buf`; `Some(true)` if it was too long (and
    /// `buf` holds nothing), `None` at the end of the input.
    fn read_line(&mut self) -> Result<Option<bool>, FileFault> {
        self.buf.clear();
        // One byte of slack for the `\r` of a CRLF ending.
        let cap = self.limits.max_record_bytes.saturating_add(1);
        let mut too_long = false;
        let mut any = false;
        loop {
            let available = match self.input.fill_buf() {
                Ok(a) => a,
                Err(e) => {
                    return Err(FileFault {
                        line: self.line + 1,
                        byte: self.byte,
                        message: format!("读取文件失败：{e}"),
                    });
                }
            };
            if available.is_empty() {
                return Ok(any.then_some(too_long));
            }
            if std::mem::take(&mut self.skip_lf) && available[0] == b'\n' {
                self.input.consume(1);
                self.byte += 1;
                continue;
            }
            any = true;
            let newline = memchr::memchr2(b'\n', b'\r', available);
            self.skip_lf = newline.is_some_and(|i| available[i] == b'\r');
            let content = &available[..newline.unwrap_or(available.len())];
            if !too_long {
                if self.buf.len() + content.len() > cap {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(content);
                }
            }
            let used = content.len() + usize::from(newline.is_some());
            self.input.consume(used);
            self.byte += used as u64;
            if newline.is_some() {
                break;
            }
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(
            too_long || self.buf.len() > self.limits.max_record_bytes,
        ))
    }
}

impl RecordStream for JsonLinesStream<'_> {
    fn next_item(&mut self) -> Result<Option<Item>, FileFault> {
        loop {
            let Some(too_long) = self.read_line()? else {
                return Ok(None);
            };
            self.line += 1;
            if !too_long && self.buf.trim_ascii().is_empty() {
                continue;
            }
            self.record += 1;
            let pos = Position::Line {
                line: self.line,
                record: self.record,
            };
            let bad = |message: String| Ok(Some(Item::Bad(BadRecord { pos, message })));
            if too_long {
                let max = self.limits.max_record_bytes;
                return bad(format!("JSON 行超过 max_record_bytes 上限（{max} 字节）"));
            }
            let depth = self.limits.max_nesting_depth;
            if nests_deeper_than(&self.buf, depth) {
                return bad(format!(
                    "JSON 行嵌套超过 max_nesting_depth 上限（{depth} 层）"
                ));
            }
            return match serde_json::from_slice::<Element>(&self.buf) {
                Ok(Element::Object(members)) if members.len() > self.limits.max_columns => {
                    bad(too_many_fields(self.limits.max_columns))
                }
                Ok(Element::Object(members)) => Ok(Some(Item::Record(RawRecord {
                    pos,
                    fields: Element::into_fields(members),
                }))),
                Ok(Element::Other(kind)) => bad(format!("JSON 行应为对象，实际是{kind}")),
                Err(e) => {
                    // serde counts from the line's start: its line 1 is
                    // this file line.
                    let col = super::object::char_column(&self.buf, e.column());
                    bad(format!(
                        "JSON 行无法解析（第 {} 行第 {col} 个字符处）：{}",
                        pos.row(),
                        super::object::syntax_error_text(&e)
                    ))
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{collect, fields, limits};
    use super::*;
    use crate::parse::RawValue;

    fn stream(text: &str, max: usize) -> JsonLinesStream<'static> {
        JsonLinesStream::new(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            limits(max),
        )
    }

    #[test]
    fn happy_path_with_chinese_and_crlf() {
        let text =
            "{\"name\":\"张三\",\"age\":3,\"note\":null,\"x\":\"\"}\r\n\r\n  \n{\"name\":\"李四\"}";
        let (items, fault) = collect(&mut stream(text, 1 << 20));
        assert_eq!(fault, None);
        assert_eq!(items.len(), 2);
        let Item::Record(r) = &items[0] else { panic!() };
        assert_eq!(r.pos, Position::Line { line: 1, record: 1 });
        assert_eq!(
            r.fields,
            vec![
                ("name".into(), RawValue::Text("张三".into())),
                ("age".into(), RawValue::Json(3.into()))
            ]
        );
        let Item::Record(r) = &items[1] else { panic!() };
        assert_eq!(r.pos, Position::Line { line: 4, record: 2 });
        assert_eq!(fields(&items[1]), vec![("name", "李四")]);
    }

    #[test]
    fn malformed_line_is_bad_and_others_go_on() {
        let text = "{\"a\":\"1\"}\n{\"a\":\"2\",\n[1,2]\n{\"a\":\"4\"}\n";
        let (items, fault) = collect(&mut stream(text, 1 << 20));
        assert_eq!(fault, None);
        assert_eq!(items.len(), 4);
        assert!(
            matches!(&items[1], Item::Bad(b) if b.pos == Position::Line { line: 2, record: 2 } && b.message.starts_with("JSON 行无法解析"))
        );
        assert!(
            matches!(&items[2], Item::Bad(b) if b.pos == Position::Line { line: 3, record: 3 } && b.message.contains("数组"))
        );
        assert_eq!(fields(&items[3]), vec![("a", "4")]);
    }

    #[test]
    fn oversized_line_is_bad_and_skipped() {
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(100_000));
        let text = format!("{{\"a\":\"1\"}}\n{long}\n{{\"a\":\"3\"}}\n");
        let (items, fault) = collect(&mut stream(&text, 1000));
        assert_eq!(fault, None);
        assert_eq!(items.len(), 3);
        assert!(
            matches!(&items[1], Item::Bad(b) if b.pos == Position::Line { line: 2, record: 2 } && b.message.contains("max_record_bytes"))
        );
        assert_eq!(fields(&items[2]), vec![("a", "3")]);
        // Exactly at the limit is fine, CRLF not counted.
        let line = "{\"a\":\"12\"}";
        let (items, _) = collect(&mut stream(&format!("{line}\r\n"), line.len()));
        assert_eq!(fields(&items[0]), vec![("a", "12")]);
    }

    #[test]
    fn lone_cr_ends_a_line_so_no_record_is_swallowed() {
        let text = "{\"a\":\"1\"}\r{\"a\":\"2\"}\r\n{\"a\":\"3\"}\r\r{\"a\":\"4\"}\r";
        let (items, fault) = collect(&mut stream(text, 1 << 20));
        assert_eq!(fault, None);
        let got: Vec<_> = items
            .iter()
            .map(|i| match i {
                Item::Record(r) => (r.pos, fields(i)[0].1.to_owned()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Position::Line { line: 1, record: 1 }, "1".into()),
                (Position::Line { line: 2, record: 2 }, "2".into()),
                (Position::Line { line: 3, record: 3 }, "3".into()),
                (Position::Line { line: 5, record: 4 }, "4".into()),
            ]
        );
        // The same with a one-byte buffer: a CRLF split across reads.
        let input =
            std::io::BufReader::with_capacity(1, std::io::Cursor::new(text.as_bytes().to_vec()));
        let (again, _) = collect(&mut JsonLinesStream::new(Box::new(input), limits(1 << 20)));
        assert_eq!(again, items);
    }

    #[test]
    fn deep_or_wide_lines_are_bad_and_others_go_on() {
        let mut l = limits(1 << 20);
        l.max_columns = 2;
        let text = format!(
            "{{\"a\":{}1{}}}\n{{\"a\":1,\"b\":2,\"c\":3}}\n{{\"a\":\"ok\"}}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let s = JsonLinesStream::new(Box::new(std::io::Cursor::new(text.into_bytes())), l);
        let (items, fault) = collect(&mut { s });
        assert_eq!(fault, None);
        assert!(
            matches!(&items[0], Item::Bad(b) if b.message.contains("max_nesting_depth 上限（32 层）"))
        );
        assert!(matches!(&items[1], Item::Bad(b) if b.message.contains("max_columns")));
        assert_eq!(fields(&items[2]), vec![("a", "ok")]);
    }

    #[test]
    fn empty_input_has_no_records() {
        assert_eq!(collect(&mut stream("", 10)), (vec![], None));
        assert_eq!(collect(&mut stream("\n\n", 10)), (vec![], None));
    }
}
