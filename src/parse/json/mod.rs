//! JSON: an array of objects, or an object with a `records` array, read
//! one element at a time.
//!
//! A JSON document may be gigabytes, so it is never read whole. A small
//! scanner walks the byte stream (tracking strings, escapes and nesting
//! depth) to find each array element's bytes, buffers just that element
//! (at most `max_record_bytes`), and hands it to serde_json, which does the
//! real syntax check. The scanner itself only needs to be right about
//! where an element ends; anything it lets through that is not JSON,
//! serde_json rejects.
//!
//! The document is one unit: any syntax error, truncation or oversized
//! element is a [`FileFault`]. An element that is valid JSON but not an
//! object (`[{…}, 3]`) is a bad record only, since the rest of the
//! document is still well-formed and its records are unaffected. Other
//! top-level keys next to `records` are checked for syntax and ignored;
//! an object without `records` is a fault.

use std::io::BufRead;

use serde::de::IgnoredAny;

use super::object::{Element, too_many_fields};
use super::{BadRecord, FileFault, Item, Limits, Position, RawRecord, RecordStream};

pub(crate) struct JsonStream<'r> {
    src: Source<'r>,
    limits: Limits,
    step: Step,
    /// The records array is the `records` member of a top-level object.
    in_object: bool,
    seen_records: bool,
    /// Index of the next array element.
    index: u64,
    /// The element (or key, or ignored value) being read.
    elem: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    /// Inside the records array; `first` until an element was read.
    Array {
        first: bool,
    },
    /// Inside the top-level object; `first` until a member was read.
    Object {
        first: bool,
    },
    /// After the top-level value: only whitespace may follow.
    End,
    Done,
}

impl<'r> JsonStream<'r> {
    pub(crate) fn new(input: Box<dyn BufRead + 'r>, limits: Limits) -> Self {
        JsonStream {
            src: Source {
                input,
                line: 1,
                byte: 0,
            },
            limits,
            step: Step::Start,
            in_object: false,
            seen_records: false,
            index: 0,
            elem: Vec::new(),
        }
    }

    fn step(&mut self) -> Result<Option<Item>, FileFault> {
        loop {
            self.src.skip_whitespace()?;
            let next = self.src.peek()?;
            match self.step {
                Step::Done => return Ok(None),
                Step::Start => match next {
                    None => {
                        self.step = Step::Done;
                        return Ok(None);
                    }
                    Some(b'[') => {
                        self.src.advance(1)?;
                        self.step = Step::Array { first: true };
                    }
                    Some(b'{') => {
                        self.src.advance(1)?;
                        self.in_object = true;
                        self.step = Step::Object { first: true };
                    }
                    Some(_) => {
                        return Err(self
                            .src
                            .fault("JSON 顶层应为对象数组，或含 records 数组的对象"));
                    }
                },
                Step::Array { first } => match next {
                    None => return Err(self.src.fault("JSON 文档不完整：records 数组未结束")),
                    // `[1,]` does not get here: after a comma an element is
                    // read at once, and an empty one is a fault.
                    Some(b']') => {
                        self.src.advance(1)?;
                        self.step = if self.in_object {
                            Step::Object { first: false }
                        } else {
                            Step::End
                        };
                    }
                    Some(b',') if !first => {
                        self.src.advance(1)?;
                        self.src.skip_whitespace()?;
                        return self.element().map(Some);
                    }
                    Some(_) if first => return self.element().map(Some),
                    Some(_) => {
                        return Err(self.src.fault("JSON 语法错误：数组元素之间应为 , 或 ]"));
                    }
                },
                Step::Object { first } => match next {
                    None => return Err(self.src.fault("JSON 文档不完整：对象未结束")),
                    Some(b'}') => {
                        self.src.advance(1)?;
                        if !self.seen_records {
                            return Err(self.src.fault("JSON 对象中没有 records 数组"));
                        }
                        self.step = Step::End;
                    }
                    Some(b',') if !first => {
                        self.src.advance(1)?;
                        self.src.skip_whitespace()?;
                        self.member()?;
                    }
                    Some(_) if first => self.member()?,
                    Some(_) => {
                        return Err(self.src.fault("JSON 语法错误：对象成员之间应为 , 或 }"));
                    }
                },
                Step::End => match next {
                    None => {
                        self.step = Step::Done;
                        return Ok(None);
                    }
                    Some(_) => return Err(self.src.fault("JSON 文档结束后还有多余内容")),
                },
            }
        }
    }

    /// Reads one array element at the current position.
    fn element(&mut self) -> Result<Item, FileFault> {
        let (line, byte) = (self.src.line, self.src.byte);
        self.capture("JSON 文档不完整：records 数组未结束")?;
        let pos = Position::Index(self.index);
        self.index += 1;
        self.step = Step::Array { first: false };
        match serde_json::from_slice::<Element>(&self.elem) {
            Ok(Element::Object(members)) if members.len() > self.limits.max_columns => {
                Ok(Item::Bad(BadRecord {
                    pos,
                    message: too_many_fields(self.limits.max_columns),
                }))
            }
            Ok(Element::Object(members)) => Ok(Item::Record(RawRecord {
                pos,
                fields: Element::into_fields(members),
            })),
            Ok(Element::Other(kind)) => Ok(Item::Bad(BadRecord {
                pos,
                message: format!("JSON 数组元素应为对象，实际是{kind}"),
            })),
            Err(e) => Err(self.serde_fault(line, byte, &e)),
        }
    }

    /// Reads one member of the top-level object: the `records` array's
    /// opening bracket, or a whole other member.
    fn member(&mut self) -> Result<(), FileFault> {
        if self.src.peek()? != Some(b'"') {
            return Err(self.src.fault("JSON 语法错误：此处应为对象的键（字符串）"));
        }
        let (line, byte) = (self.src.line, self.src.byte);
        self.capture("JSON 文档不完整：对象未结束")?;
        let key: String =
            serde_json::from_slice(&self.elem).map_err(|e| self.serde_fault(line, byte, &e))?;
        self.src.skip_whitespace()?;
        if self.src.peek()? != Some(b':') {
            return Err(self.src.fault("JSON 语法错误：键之后应为 :"));
        }
        self.src.advance(1)?;
        self.src.skip_whitespace()?;
        if key == "records" {
            if self.seen_records {
                return Err(self.src.fault("JSON 对象中有多个 records"));
            }
            if self.src.peek()? != Some(b'[') {
                return Err(self.src.fault("JSON 的 records 应为数组"));
            }
            self.src.advance(1)?;
            self.seen_records = true;
            self.step = Step::Array { first: true };
        } else {
            let (line, byte) = (self.src.line, self.src.byte);
            self.capture("JSON 文档不完整：对象未结束")?;
            serde_json::from_slice::<IgnoredAny>(&self.elem)
                .map_err(|e| self.serde_fault(line, byte, &e))?;
            self.step = Step::Object { first: false };
        }
        Ok(())
    }

    /// Buffers the value starting at the current position into `elem`.
    fn capture(&mut self, truncated: &str) -> Result<(), FileFault> {
        self.elem.clear();
        let max = self.limits.max_record_bytes;
        let (line, byte) = (self.src.line, self.src.byte);
        // Levels already open around the value: the top-level array or
        // object, and the `records` array inside an object.
        let around = match self.step {
            Step::Array { .. } if self.in_object => 2,
            _ => 1,
        };
        let mut scan = Scan {
            max_depth: self.limits.max_nesting_depth.saturating_sub(around) as u32,
            ..Scan::default()
        };
        loop {
            let chunk = self.src.fill()?;
            if chunk.is_empty() {
                // A number or literal may end the input; nothing else may.
                if scan.is_scalar() && !self.elem.is_empty() {
                    break;
                }
                return Err(self.src.fault(truncated));
            }
            let (used, done) = scan.run(chunk);
            if scan.too_deep {
                let at = self.src.byte + used as u64;
                let limit = self.limits.max_nesting_depth;
                self.src.advance(used)?;
                return Err(FileFault {
                    line: self.src.line,
                    byte: at,
                    message: format!("JSON 嵌套超过 max_nesting_depth 上限（{limit} 层）"),
                });
            }
            if self.elem.len() + used > max {
                return Err(FileFault {
                    line,
                    byte,
                    message: format!("JSON 记录超过 max_record_bytes 上限（{max} 字节）"),
                });
            }
            self.elem.extend_from_slice(&chunk[..used]);
            self.src.advance(used)?;
            if done {
                break;
            }
        }
        if self.elem.is_empty() {
            return Err(FileFault {
                line,
                byte,
                message: "JSON 语法错误：此处应为值".into(),
            });
        }
        Ok(())
    }

    /// A serde_json error inside `elem`, placed in the whole document.
    fn serde_fault(&self, line: u64, byte: u64, e: &serde_json::Error) -> FileFault {
        // serde_json counts lines and (byte) columns from 1 within the slice.
        let err_line = e.line().max(1);
        let line_start = if err_line == 1 {
            0
        } else {
            self.elem
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'\n')
                .nth(err_line - 2)
                .map_or(self.elem.len(), |(i, _)| i + 1)
        };
        let at = (line_start + e.column().saturating_sub(1)).min(self.elem.len());
        FileFault {
            line: line + err_line as u64 - 1,
            byte: byte + at as u64,
            message: format!("JSON 语法错误：{}", super::object::syntax_error_text(e)),
        }
    }
}

impl RecordStream for JsonStream<'_> {
    fn next_item(&mut self) -> Result<Option<Item>, FileFault> {
        let result = self.step();
        if result.is_err() {
            self.step = Step::Done;
        }
        result
    }
}

/// Finds where one JSON value ends, chunk by chunk.
#[derive(Default)]
struct Scan {
    /// Nesting depth of `{`/`[`.
    depth: u32,
    /// Deepest nesting allowed inside the value.
    max_depth: u32,
    /// The value nests deeper than `max_depth`; the scan stopped at the
    /// bracket that went too deep.
    too_deep: bool,
    in_string: bool,
    escape: bool,
    /// Bytes seen so far.
    seen: usize,
    /// The value is a bare number or literal.
    scalar: bool,
}

impl Scan {
    fn is_scalar(&self) -> bool {
        self.scalar
    }

    /// How much of `chunk` belongs to the value, and whether it ended.
    fn run(&mut self, chunk: &[u8]) -> (usize, bool) {
        for (i, &b) in chunk.iter().enumerate() {
            let first = self.seen == 0;
            self.seen += 1;
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        return (i + 1, true);
                    }
                }
                continue;
            }
            match b {
                b'"' if !self.scalar => self.in_string = true,
                b'{' | b'[' if !self.scalar => {
                    self.depth += 1;
                    if self.depth > self.max_depth {
                        self.too_deep = true;
                        return (i, true);
                    }
                }
                b'}' | b']' | b',' | b':' | b' ' | b'\t' | b'\r' | b'\n' if self.depth == 0 => {
                    // The end of a bare scalar (or no value at all, which
                    // the caller reports).
                    self.seen -= 1;
                    return (i, true);
                }
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return (i + 1, true);
                    }
                }
                _ if first => self.scalar = true,
                _ => {}
            }
        }
        (chunk.len(), false)
    }
}

/// The input with the line and byte of the next unread byte.
struct Source<'r> {
    input: Box<dyn BufRead + 'r>,
    /// Line of the next byte (1-based).
    line: u64,
    /// Offset of the next byte.
    byte: u64,
}

impl Source<'_> {
    fn fault(&self, message: &str) -> FileFault {
        FileFault {
            line: self.line,
            byte: self.byte,
            message: message.to_owned(),
        }
    }

    fn fill(&mut self) -> Result<&[u8], FileFault> {
        let (line, byte) = (self.line, self.byte);
        self.input.fill_buf().map_err(|e| FileFault {
            line,
            byte,
            message: format!("读取文件失败：{e}"),
        })
    }

    fn peek(&mut self) -> Result<Option<u8>, FileFault> {
        Ok(self.fill()?.first().copied())
    }

    /// Consumes `n` bytes of the current buffer, counting lines.
    fn advance(&mut self, n: usize) -> Result<(), FileFault> {
        let chunk = self.fill()?;
        let newlines = chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        self.line += newlines;
        self.byte += n as u64;
        self.input.consume(n);
        Ok(())
    }

    fn skip_whitespace(&mut self) -> Result<(), FileFault> {
        loop {
            let chunk = self.fill()?;
            let n = chunk
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .count();
            let all = n == chunk.len() && n > 0;
            if n > 0 {
                self.advance(n)?;
            }
            if !all {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
