//! Converting a raw value (text, JSON, XLSX cell) to the typed JSON value
//! its schema property declares, before JSON Schema validation.
//!
//! A value that cannot be converted is an error, never a default
//! (README.md, "How data flows": formats). Empty text after trimming is absent.

use chrono::{FixedOffset, TimeZone};
use serde_json::{Map, Number, Value};

use super::datetime::{format_date, format_datetime, parse_date, parse_datetime};
use super::field::{FieldFormat, FieldSpec, FieldType};
use super::written::{Written, parse_written};
use crate::parse::RawValue;

/// Why a value could not be converted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fault {
    NotInteger,
    NotNumber,
    NotDateTime,
    NotDate,
    /// A date or time in an accepted shape that does not exist (the text
    /// names the part: "2026 年 2 月没有 30 日").
    Impossible(String),
    /// A datetime field given only a date.
    MissingTime,
    /// A date field given a time of day, which would be dropped.
    DateWithTime,
    /// A long number Excel turned into a float (`1.10105198506012E+17`):
    /// its last digits are lost.
    ExcelNumber,
    /// The value has the wrong JSON shape; the text says what was expected.
    WrongType(&'static str),
    ListEmptyItem,
    ListRepeat(String),
    ListUnknown(String),
    /// A fault inside item `index` of an array of objects, in sub-field
    /// `field` (an index into the array's item specs).
    Item {
        index: usize,
        field: usize,
        fault: Box<Fault>,
        value: String,
    },
    ItemNotObject(usize),
    /// A control character (`docs/datasets.md`, *Values*): `position` is
    /// the 1-based character position in the value as given.
    ControlChar {
        ch: char,
        position: usize,
    },
}

/// A conversion failure: the fault and the input as text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvError {
    pub fault: Fault,
    pub value: String,
}

fn fail<T>(fault: Fault, value: impl Into<String>) -> Result<T, ConvError> {
    Err(ConvError {
        fault,
        value: value.into(),
    })
}

/// Converts `raw` for `spec`; `Ok(None)` when the value is absent.
/// Elements of nested objects that are not fields are counted in `ignored`.
pub(crate) fn convert(
    spec: &FieldSpec,
    raw: &RawValue,
    tz: FixedOffset,
    ignored: &mut u32,
) -> Result<Option<Value>, ConvError> {
    // A text value is trimmed once, here; the conversions below read `t`.
    let t = match raw {
        RawValue::Text(s) => s.trim(),
        _ => "",
    };
    if let RawValue::Text(s) = raw
        && let Some((position, ch)) = control_char(t, spec.free_text)
    {
        // Positions count from the value as given, before trimming.
        let lead = s[..s.len() - s.trim_start().len()].chars().count();
        return fail(
            Fault::ControlChar {
                ch,
                position: lead + position,
            },
            escape_controls(t),
        );
    }
    match spec.ty {
        FieldType::Integer => integer(raw, t),
        FieldType::Number => number(raw, t),
        FieldType::Array => array(spec, raw, tz, ignored),
        FieldType::String => string(spec, raw, t, tz),
    }
}

/// `t`: a text value, trimmed (unused for other values).
fn integer(raw: &RawValue, t: &str) -> Result<Option<Value>, ConvError> {
    match raw {
        RawValue::Text(_) => {
            if t.is_empty() {
                return Ok(None);
            }
            match t.parse::<i64>() {
                Ok(i) => Ok(Some(Value::from(i))),
                Err(_) => fail(Fault::NotInteger, t),
            }
        }
        RawValue::Json(Value::Number(n)) => {
            match n.as_i64().or_else(|| n.as_f64().and_then(integral)) {
                Some(i) => Ok(Some(Value::from(i))),
                None => fail(Fault::NotInteger, n.to_string()),
            }
        }
        RawValue::Json(v) => fail(Fault::WrongType("整数"), v.to_string()),
        RawValue::Number(f) => match integral(*f) {
            Some(i) => Ok(Some(Value::from(i))),
            None => fail(Fault::NotInteger, shortest(*f)),
        },
        RawValue::DateTime(d) => fail(Fault::NotInteger, d.to_string()),
    }
}

fn number(raw: &RawValue, t: &str) -> Result<Option<Value>, ConvError> {
    let f = match raw {
        RawValue::Text(_) => {
            if t.is_empty() {
                return Ok(None);
            }
            // `f64::from_str` also takes "inf" and "NaN", which are not
            // numbers a person means; only digits, signs, point, exponent.
            let plain = t
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
            match t.parse::<f64>() {
                Ok(f) if plain && f.is_finite() => f,
                _ => return fail(Fault::NotNumber, t),
            }
        }
        RawValue::Json(Value::Number(n)) => return Ok(Some(Value::Number(n.clone()))),
        RawValue::Json(v) => return fail(Fault::WrongType("数值"), v.to_string()),
        RawValue::Number(f) => *f,
        RawValue::DateTime(d) => return fail(Fault::NotNumber, d.to_string()),
    };
    match Number::from_f64(f) {
        Some(n) => Ok(Some(Value::Number(n))),
        None => fail(Fault::NotNumber, shortest(f)),
    }
}

fn string(
    spec: &FieldSpec,
    raw: &RawValue,
    t: &str,
    tz: FixedOffset,
) -> Result<Option<Value>, ConvError> {
    // XLSX date cells first: their meaning depends on the format.
    if let RawValue::DateTime(d) = raw {
        let text = match spec.format {
            FieldFormat::DateTime => match tz.from_local_datetime(d).single() {
                Some(dt) => format_datetime(&dt, tz),
                None => return fail(Fault::NotDateTime, d.to_string()),
            },
            FieldFormat::Date => format_date(d.date()),
            _ if d.time() == chrono::NaiveTime::MIN => format_date(d.date()),
            _ => d.format("%Y-%m-%d %H:%M:%S").to_string(),
        };
        return Ok(Some(Value::String(text)));
    }
    let text: std::borrow::Cow<str> = match raw {
        RawValue::Text(_) if looks_like_excel_number(t) => {
            return fail(Fault::ExcelNumber, t);
        }
        // Past 15 significant digits a spreadsheet number is not exact:
        // a certificate number typed into a numeric cell lost its tail.
        RawValue::Number(f) if f.abs() >= 1e15 => return fail(Fault::ExcelNumber, shortest(*f)),
        RawValue::Text(_) => t.into(),
        RawValue::Json(Value::Number(n)) => n.to_string().into(),
        RawValue::Json(v) => return fail(Fault::WrongType("文本"), v.to_string()),
        RawValue::Number(f) => match (spec.pad_width, integral(*f)) {
            (Some(w), Some(i)) if i >= 0 => format!("{i:0w$}").into(),
            _ => shortest(*f).into(),
        },
        RawValue::DateTime(_) => unreachable!("handled above"),
    };
    if text.is_empty() {
        return Ok(None);
    }
    let out = match spec.format {
        FieldFormat::DateTime => match parse_datetime(&text, tz) {
            Some(dt) => format_datetime(&dt, tz),
            None => match parse_written(&text) {
                Written::DateTime(d) => match tz.from_local_datetime(&d).single() {
                    Some(dt) => format_datetime(&dt, tz),
                    None => return fail(Fault::NotDateTime, text),
                },
                Written::Date(_) => return fail(Fault::MissingTime, text),
                Written::Impossible(why) => return fail(Fault::Impossible(why), text),
                Written::Unknown => return fail(Fault::NotDateTime, text),
            },
        },
        FieldFormat::Date => match parse_date(&text) {
            Some(d) => format_date(d),
            None => match parse_written(&text) {
                Written::Date(d) => format_date(d),
                // Excel's text for a date cell carries a midnight time.
                Written::DateTime(d) if d.time() == chrono::NaiveTime::MIN => format_date(d.date()),
                Written::DateTime(_) => return fail(Fault::DateWithTime, text),
                Written::Impossible(why) => return fail(Fault::Impossible(why), text),
                Written::Unknown => return fail(Fault::NotDate, text),
            },
        },
        _ if spec.codes_list => codes_list(spec, &text)?,
        // A template's drop-down list offers "01 行政许可": the code with
        // its label is the code. Codes never hold a space, so other values
        // pay nothing for this.
        _ if !spec.codes.is_empty() && text.contains([' ', '\u{3000}']) => {
            labelled_code(spec, &text).unwrap_or_else(|| text.into_owned())
        }
        _ => text.into_owned(),
    };
    Ok(Some(Value::String(out)))
}

/// The code of a "code label" value whose label is that code's.
fn labelled_code(spec: &FieldSpec, text: &str) -> Option<String> {
    let (code, label) = text.split_once([' ', '\u{3000}'])?;
    spec.codes
        .iter()
        .find(|(c, l)| c == code && l == label.trim())
        .map(|(c, _)| c.clone())
}

/// Excel's scientific display of a long number, exported as text
/// (`1.10105198506012E+17`): never a real value of a text field.
fn looks_like_excel_number(s: &str) -> bool {
    // `d.ddd…E+dd` or `dE+dd`: two bytes rule out nearly every other value
    // before anything is scanned.
    let b = s.as_bytes();
    if b.len() < 4 || !b[0].is_ascii_digit() || !matches!(b[1], b'.' | b'E' | b'e') {
        return false;
    }
    let Some((mantissa, exp)) = s.split_once(['E', 'e']) else {
        return false;
    };
    let Some(exp) = exp.strip_prefix('+') else {
        return false;
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    int.len() == 1
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c.is_ascii_digit())
        && !exp.is_empty()
        && exp.bytes().all(|c| c.is_ascii_digit())
}

/// The first control character in `text` that the field may not hold, with
/// its 1-based character position. Refused: C0 controls (NUL included),
/// DEL and C1 controls; TAB, LF and CR only outside free text. They would
/// reach the library and the reports, where they can hide or forge text.
fn control_char(text: &str, free_text: bool) -> Option<(usize, char)> {
    if !may_hold_control(text.as_bytes()) {
        return None;
    }
    text.chars().enumerate().find_map(|(i, c)| {
        let allowed = free_text && matches!(c, '\t' | '\n' | '\r');
        (c.is_control() && !allowed).then_some((i + 1, c))
    })
}

/// Whether `b` may hold a control character: a C0 byte, DEL, or the lead
/// byte 0xC2 of U+0080..U+00BF (the C1 controls are C2 80..C2 9F). Almost
/// every value is clean, so this runs on every value: branch-free over
/// 16-byte blocks, which the compiler turns into vector compares.
fn may_hold_control(b: &[u8]) -> bool {
    let suspect = |x: u8| (x < 0x20) | (x == 0x7f) | (x == 0xc2);
    let mut blocks = b.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |any, &x| any | suspect(x)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&x| suspect(x))
}

/// `text` with every control character written as `\u{…}` text, so the
/// value can be shown in a report without carrying the character itself.
pub(crate) fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits a codes list on commas (ASCII or full-width), trims the items,
/// rejects empty, repeated and unknown items, and rejoins with `,`.
fn codes_list(spec: &FieldSpec, text: &str) -> Result<String, ConvError> {
    let mut out = String::with_capacity(text.len());
    let mut seen: Vec<&str> = Vec::new();
    for item in text.split([',', '，']).map(str::trim) {
        if item.is_empty() {
            return fail(Fault::ListEmptyItem, text);
        }
        if seen.contains(&item) {
            return fail(Fault::ListRepeat(item.to_string()), text);
        }
        if !spec.codes.is_empty() && !spec.codes.iter().any(|(c, _)| c == item) {
            return fail(Fault::ListUnknown(item.to_string()), text);
        }
        if !seen.is_empty() {
            out.push(',');
        }
        out.push_str(item);
        seen.push(item);
    }
    Ok(out)
}

fn array(
    spec: &FieldSpec,
    raw: &RawValue,
    tz: FixedOffset,
    ignored: &mut u32,
) -> Result<Option<Value>, ConvError> {
    let parsed;
    let items = match raw {
        RawValue::Json(Value::Array(a)) => a,
        // XML and CSV carry the array as JSON text, if at all.
        RawValue::Text(s) if s.trim().is_empty() => return Ok(None),
        RawValue::Text(s) => match serde_json::from_str::<Value>(s.trim()) {
            Ok(Value::Array(a)) => {
                parsed = a;
                &parsed
            }
            _ => return fail(Fault::WrongType("JSON 数组"), s.trim()),
        },
        RawValue::Json(v) => return fail(Fault::WrongType("JSON 数组"), v.to_string()),
        RawValue::Number(f) => return fail(Fault::WrongType("JSON 数组"), shortest(*f)),
        RawValue::DateTime(d) => return fail(Fault::WrongType("JSON 数组"), d.to_string()),
    };
    if items.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            return fail(Fault::ItemNotObject(index), item.to_string());
        };
        let mut conv = Map::new();
        for (k, v) in obj {
            let Some(field) = spec.items.iter().position(|f| f.name == *k) else {
                *ignored += 1;
                continue;
            };
            let raw = match v {
                Value::Null => continue,
                Value::String(s) => RawValue::Text(s.clone()),
                other => RawValue::Json(other.clone()),
            };
            match convert(&spec.items[field], &raw, tz, ignored) {
                Ok(Some(v)) => {
                    conv.insert(k.clone(), v);
                }
                Ok(None) => {}
                Err(e) => {
                    return fail(
                        Fault::Item {
                            index,
                            field,
                            fault: Box::new(e.fault),
                            value: e.value,
                        },
                        item.to_string(),
                    );
                }
            }
        }
        out.push(Value::Object(conv));
    }
    Ok(Some(Value::Array(out)))
}

/// `Some(i)` when `f` is a whole number that fits an i64.
fn integral(f: f64) -> Option<i64> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Shortest decimal text of a number (`110101`, not `110101.0`).
pub(crate) fn shortest(f: f64) -> String {
    match integral(f) {
        Some(i) => i.to_string(),
        // Rust prints the shortest text that reads back as the same f64.
        None => f.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::may_hold_control;

    proptest::proptest! {
        /// The block-wise check says yes exactly when some byte is suspect,
        /// wherever in the value (and in whichever block) it is.
        #[test]
        fn the_block_check_finds_every_suspect_byte(
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
        ) {
            let naive = b.iter().any(|&x| x < 0x20 || x == 0x7f || x == 0xc2);
            proptest::prop_assert_eq!(may_hold_control(&b), naive);
        }

        #[test]
        fn a_clean_value_with_one_suspect_byte_is_found(
            len in 1usize..80, at in 0usize..80, x in proptest::sample::select(vec![0u8, 9, 0x1f, 0x7f, 0xc2]),
        ) {
            let mut b = "报".repeat(len).into_bytes();
            let at = at % b.len();
            b[at] = x;
            proptest::prop_assert!(may_hold_control(&b));
        }
    }
}
