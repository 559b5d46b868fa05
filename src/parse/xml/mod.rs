//! XML: each child element of the root is a record, each of its child
//! elements a field.
//!
//! Reading is event by event with quick-xml, so memory holds one record at
//! a time. Security first: a DOCTYPE is refused outright, and entity
//! references other than the five predefined ones and character references
//! are refused too, so no entity is ever expanded.
//!
//! Shapes (README.md, "How data flows": formats):
//! - `<records><record><a>text</a>…</record>…</records>`; the root's and
//!   the record's names do not matter; attributes are ignored.
//! - An empty field element (`<a/>`, `<a></a>`) is an absent value.
//! - A field element with child elements becomes JSON: an array with one
//!   entry per child; a child with children of its own is an object of
//!   their values (recursively by the same rule), a leaf child is its text.
//!   `<medias><media><name>a</name></media></medias>` is
//!   `[{"name": "a"}]`.
//! - Field names are local names (a namespace prefix is dropped).
//! - Non-blank text where only elements belong (beside the fields of a
//!   record, or mixed with a field's children) makes that record bad;
//!   between records or outside the root it is a fault.
//!
//! A record larger than `max_record_bytes` is a fault. The input is
//! wrapped in [`Counted`], which counts lines incrementally and stops the
//! read once the bytes since the current record (or gap between records)
//! started pass the limit, so even one gigantic text node is never
//! buffered whole.

use std::io::{self, BufRead, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};
use serde_json::{Map, Value};

use super::{BadRecord, FileFault, Item, Limits, Position, RawRecord, RawValue, RecordStream};

pub(crate) struct XmlStream<'r> {
    reader: Reader<Counted<Box<dyn BufRead + 'r>>>,
    buf: Vec<u8>,
    limits: Limits,
    /// Open elements: 0 outside the root, 1 in the root, 2 in a record,
    /// 3 and more in a field.
    depth: usize,
    seen_root: bool,
    /// Records seen so far.
    record: u64,
    /// The record being read.
    current: Option<Partial>,
    done: bool,
}

/// A record being read.
struct Partial {
    pos: Position,
    /// Offset of the record's `<`.
    start: u64,
    fields: Vec<(String, RawValue)>,
    /// The field being read and, below it, the elements open inside it.
    open: Vec<Node>,
    /// Why the record is bad, once something made it so.
    problem: Option<String>,
}

/// An element inside a field, or the field itself.
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl<'r> XmlStream<'r> {
    pub(crate) fn new(input: Box<dyn BufRead + 'r>, limits: Limits) -> Self {
        let counted = Counted {
            inner: input,
            newlines: 0,
            consumed: 0,
            budget_end: u64::MAX,
            over_budget: false,
        };
        let mut reader = Reader::from_reader(counted);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = false;
        let mut stream = XmlStream {
            reader,
            buf: Vec::new(),
            limits,
            depth: 0,
            seen_root: false,
            record: 0,
            current: None,
            done: false,
        };
        stream.restart_budget();
        stream
    }

    /// Starts counting the record budget from the current position.
    fn restart_budget(&mut self) {
        let counted = self.reader.get_mut();
        // Slack for the bytes quick-xml has consumed but not yet turned into
        // events; the exact limit is checked at the record's end.
        counted.budget_end = counted
            .consumed
            .saturating_add(self.limits.max_record_bytes as u64)
            .saturating_add(4096);
    }

    fn line(&self) -> u64 {
        self.reader.get_ref().newlines + 1
    }

    fn fault(&self, message: impl Into<String>) -> FileFault {
        FileFault {
            line: self.line(),
            byte: self.reader.buffer_position(),
            message: message.into(),
        }
    }

    fn too_large(&self, line: u64, byte: u64) -> FileFault {
        let max = self.limits.max_record_bytes;
        FileFault {
            line,
            byte,
            message: format!("XML 记录超过 max_record_bytes 上限（{max} 字节）"),
        }
    }

    fn too_deep(&self) -> FileFault {
        let max = self.limits.max_nesting_depth;
        self.fault(format!(
            "XML 元素嵌套超过 max_nesting_depth 上限（{max} 层）"
        ))
    }

    fn step(&mut self) -> Result<Option<Item>, FileFault> {
        // The buffer is lent out so that events can borrow it while `self`
        // is used mutably.
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.step_with(&mut buf);
        self.buf = buf;
        result
    }

    fn step_with(&mut self, buf: &mut Vec<u8>) -> Result<Option<Item>, FileFault> {
        loop {
            buf.clear();
            let event = match self.reader.read_event_into(buf) {
                Ok(event) => event,
                Err(e) => {
                    let counted = self.reader.get_ref();
                    if counted.over_budget {
                        let (line, byte) = match &self.current {
                            Some(p) => (p.pos.row(), p.start),
                            None => (self.line(), self.reader.buffer_position()),
                        };
                        return Err(self.too_large(line, byte));
                    }
                    return Err(FileFault {
                        line: self.line(),
                        byte: self.reader.error_position(),
                        message: format!("XML 格式错误：{e}"),
                    });
                }
            };
            // Attributes are ignored, but must still be well-formed.
            if let Event::Start(start) | Event::Empty(start) = &event
                && let Some(Err(e)) = start.attributes().find(Result::is_err)
            {
                return Err(self.fault(format!("XML 格式错误：{e}")));
            }
            match event {
                Event::DocType(_) => return Err(self.fault("XML 不允许 DOCTYPE/实体声明")),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {
                    if self.depth <= 1 {
                        self.restart_budget();
                    }
                }
                Event::Eof => {
                    if self.depth > 0 {
                        return Err(self.fault("XML 文档不完整：元素未闭合"));
                    }
                    return Ok(None);
                }
                Event::Start(start) if self.depth == 1 => {
                    self.current = Some(self.begin_record(start.len(), &start, 2));
                    self.depth = 2;
                }
                Event::Empty(start) if self.depth == 1 => {
                    // A record without fields: `<record/>`.
                    let partial = self.begin_record(start.len(), &start, 3);
                    self.restart_budget();
                    return Ok(Some(finish(partial)));
                }
                Event::Start(start) => {
                    // Checked before the element is opened: nested fields
                    // are built (and dropped) recursively, so an unbounded
                    // depth would overflow the stack.
                    if self.depth >= self.limits.max_nesting_depth {
                        return Err(self.too_deep());
                    }
                    let name = start.local_name().as_ref().to_owned();
                    match self.depth {
                        0 if self.seen_root => return Err(self.fault("XML 只能有一个根元素")),
                        0 => self.seen_root = true,
                        _ => self.partial().open.push(Node {
                            name,
                            text: String::new(),
                            children: Vec::new(),
                        }),
                    }
                    self.depth += 1;
                }
                Event::Empty(start) => match self.depth {
                    0 if self.seen_root => return Err(self.fault("XML 只能有一个根元素")),
                    0 => self.seen_root = true,
                    // An empty field is an absent value.
                    2 => {}
                    _ if self.depth >= self.limits.max_nesting_depth => {
                        return Err(self.too_deep());
                    }
                    _ => {
                        let name = start.local_name().as_ref().to_owned();
                        let parent = self
                            .partial()
                            .open
                            .last_mut()
                            .expect("depth > 2 has an open field");
                        parent.children.push(Node {
                            name,
                            text: String::new(),
                            children: Vec::new(),
                        });
                    }
                },
                Event::End(_) => {
                    self.depth -= 1;
                    match self.depth {
                        0 | 1 => {
                            if let Some(partial) = self.current.take() {
                                let end = self.reader.buffer_position();
                                if end - partial.start > self.limits.max_record_bytes as u64 {
                                    return Err(self.too_large(partial.pos.row(), partial.start));
                                }
                                self.restart_budget();
                                return Ok(Some(finish(partial)));
                            }
                            self.restart_budget();
                        }
                        2 => {
                            let max_columns = self.limits.max_columns;
                            let partial = self.partial();
                            let field = partial.open.pop().expect("an open field");
                            if partial.fields.len() < max_columns {
                                field_value(partial, field);
                            } else {
                                partial.problem.get_or_insert_with(|| {
                                    format!(
                                        "XML 记录的字段数超过 max_columns 上限（{max_columns} 个）"
                                    )
                                });
                            }
                        }
                        _ => {
                            let partial = self.partial();
                            let node = partial.open.pop().expect("an open element");
                            partial
                                .open
                                .last_mut()
                                .expect("a parent")
                                .children
                                .push(node);
                        }
                    }
                }
                Event::Text(text) => {
                    let text = text.xml10_content();
                    self.text(&text)?;
                }
                Event::CData(cdata) => {
                    let text = cdata.xml10_content();
                    self.text(&text)?;
                }
                Event::GeneralRef(reference) => {
                    let c = resolve(&reference).map_err(|m| self.fault(m))?;
                    let mut utf8 = [0; 4];
                    self.text(c.encode_utf8(&mut utf8))?;
                }
            }
        }
    }

    /// A record whose start tag (`tag`, without its `<`…`>` or `<`…`/>`,
    /// which are `markup` bytes) was just consumed. The line of its `<` is
    /// the current line less the newlines inside the tag.
    fn begin_record(&mut self, len: usize, tag: &str, markup: u64) -> Partial {
        let tag_newlines = tag.bytes().filter(|&b| b == b'\n').count() as u64;
        self.record += 1;
        Partial {
            pos: Position::Element {
                line: self.line() - tag_newlines,
                record: self.record,
            },
            start: self.reader.buffer_position() - len as u64 - markup,
            fields: Vec::new(),
            open: Vec::new(),
            problem: None,
        }
    }

    fn partial(&mut self) -> &mut Partial {
        self.current.as_mut().expect("inside a record")
    }

    /// Text (or a resolved reference) at the current depth.
    fn text(&mut self, text: &str) -> Result<(), FileFault> {
        let blank = text
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        match self.depth {
            0 | 1 if blank => {
                self.restart_budget();
                Ok(())
            }
            0 => Err(self.fault("XML 根元素之外有文本")),
            1 => Err(self.fault("XML 根元素中、记录元素之间有文本")),
            2 => {
                if !blank {
                    self.partial()
                        .problem
                        .get_or_insert_with(|| "XML 记录元素中有字段元素之外的文本".into());
                }
                Ok(())
            }
            _ => {
                let node = self.partial().open.last_mut().expect("an open field");
                node.text.push_str(text);
                Ok(())
            }
        }
    }
}

/// A character reference or one of the five predefined entities; anything
/// else would need a DTD, which is never read.
fn resolve(reference: &BytesRef) -> Result<char, String> {
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|e| format!("XML 字符引用无效：{e}"))?
    {
        return Ok(c);
    }
    match &**reference {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(format!(
            "XML 引用了未定义的实体 &{other};（不允许 DOCTYPE/实体声明）"
        )),
    }
}

/// Adds a finished field to its record.
fn field_value(partial: &mut Partial, field: Node) {
    if field.children.is_empty() {
        if !field.text.is_empty() {
            partial
                .fields
                .push((field.name, RawValue::Text(field.text)));
        }
        return;
    }
    if !is_blank(&field.text) {
        partial
            .problem
            .get_or_insert_with(|| format!("XML 字段 {} 同时含有文本和子元素", field.name));
    }
    let name = field.name.clone();
    match list(field) {
        Ok(value) => partial.fields.push((name, RawValue::Json(value))),
        Err(message) => {
            partial.problem.get_or_insert(message);
        }
    }
}

/// An element with children as a JSON array, one entry per child.
fn list(node: Node) -> Result<Value, String> {
    node.children
        .into_iter()
        .map(item)
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// One child of a list: its text if it is a leaf, else an object.
fn item(node: Node) -> Result<Value, String> {
    if node.children.is_empty() {
        return Ok(Value::String(node.text));
    }
    if !is_blank(&node.text) {
        return Err(format!("XML 元素 {} 同时含有文本和子元素", node.name));
    }
    let mut object = Map::new();
    for child in node.children {
        let name = child.name.clone();
        let value = if child.children.is_empty() {
            if child.text.is_empty() {
                continue;
            }
            Value::String(child.text)
        } else {
            if !is_blank(&child.text) {
                return Err(format!("XML 元素 {} 同时含有文本和子元素", child.name));
            }
            list(child)?
        };
        object.insert(name, value);
    }
    Ok(Value::Object(object))
}

fn is_blank(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn finish(partial: Partial) -> Item {
    match partial.problem {
        Some(message) => Item::Bad(BadRecord {
            pos: partial.pos,
            message,
        }),
        None => Item::Record(RawRecord {
            pos: partial.pos,
            fields: partial.fields,
        }),
    }
}

impl RecordStream for XmlStream<'_> {
    fn next_item(&mut self) -> Result<Option<Item>, FileFault> {
        if self.done {
            return Ok(None);
        }
        let result = self.step();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }
}

/// A `BufRead` that counts the newlines in what was consumed and refuses
/// to read past a byte budget.
struct Counted<R> {
    inner: R,
    newlines: u64,
    consumed: u64,
    /// Reading stops once `consumed` passes this.
    budget_end: u64,
    /// The budget stopped a read (the error quick-xml reports is ours).
    over_budget: bool,
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.consumed > self.budget_end {
            self.over_budget = true;
            return Err(io::Error::other("XML 记录超过 max_record_bytes 上限"));
        }
        self.inner.fill_buf()
    }

    #[inline]
    fn consume(&mut self, amt: usize) {
        if amt == 0 {
            return;
        }
        // The buffer is non-empty (amt bytes were handed out), so this
        // fill_buf returns it again without reading.
        if let Ok(available) = self.inner.fill_buf() {
            let n = amt.min(available.len());
            self.newlines += memchr::memchr_iter(b'\n', &available[..n]).count() as u64;
        }
        self.consumed += amt as u64;
        self.inner.consume(amt);
    }
}

#[cfg(test)]
mod tests;
