//! Object: one JSON object as a record's fields, keeping the input order.
//!
//! serde_json's `Map` sorts keys unless `preserve_order` is on somewhere
//! in the build, so the record is deserialized straight into a list of
//! pairs instead. Shared by the JSON and JSON Lines parsers.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::RawValue;

/// A JSON value where a record is expected.
#[derive(Debug)]
pub(crate) enum Element {
    /// An object's members in input order (duplicates kept as found).
    Object(Vec<(String, Value)>),
    /// Anything else, named in Chinese for the report ("数组", "字符串"…).
    Other(&'static str),
}

impl Element {
    /// The record's fields: JSON null and empty strings are absent values
    /// and left out; strings are text; anything else stays typed JSON.
    pub(crate) fn into_fields(members: Vec<(String, Value)>) -> Vec<(String, RawValue)> {
        members
            .into_iter()
            .filter_map(|(name, value)| match value {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some((name, RawValue::Text(s))),
                other => Some((name, RawValue::Json(other))),
            })
            .collect()
    }
}

/// Why a record with more members than `max_columns` is bad.
pub(crate) fn too_many_fields(max_columns: usize) -> String {
    format!("JSON 记录的字段数超过 max_columns 上限（{max_columns} 个）")
}

/// Whether a JSON text nests `[`/`{` deeper than `max` (strings skipped).
/// Run before serde_json builds the value, whose own limit (128) would
/// otherwise answer with an English message.
pub(crate) fn nests_deeper_than(text: &[u8], max: usize) -> bool {
    // Each level needs an opening bracket: a text with no more than `max`
    // of them cannot nest deeper, whatever its strings hold. A branch-free
    // count (vectorised) settles that for every ordinary record, so the
    // byte-by-byte walk below runs only on texts that may be deep.
    if text.iter().filter(|&&b| b == b'[' || b == b'{').count() <= max {
        return false;
    }
    let (mut depth, mut in_string, mut escape) = (0usize, false, false);
    for &b in text {
        if in_string {
            if escape {
                escape = false;
            } else if b == b'\\' {
                escape = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(pair) = map.next_entry::<String, Value>()? {
            members.push(pair);
        }
        Ok(Element::Object(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Element::Other("数组"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Element, E> {
        Ok(Element::Other("字符串"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Element, E> {
        Ok(Element::Other("布尔值"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Element, E> {
        Ok(Element::Other("数字"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Element, E> {
        Ok(Element::Other("数字"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Element, E> {
        Ok(Element::Other("数字"))
    }

    fn visit_unit<E>(self) -> Result<Element, E> {
        Ok(Element::Other("null"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_drops_empty() {
        let e: Element =
            serde_json::from_str(r#"{"z":"1","a":null,"m":2,"b":"","c":[1]}"#).unwrap();
        let Element::Object(members) = e else {
            panic!()
        };
        let fields = Element::into_fields(members);
        assert_eq!(
            fields,
            vec![
                ("z".into(), RawValue::Text("1".into())),
                ("m".into(), RawValue::Json(2.into())),
                ("c".into(), RawValue::Json(serde_json::json!([1]))),
            ]
        );
    }

    #[test]
    fn nesting_depth_skips_strings() {
        assert!(!nests_deeper_than(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(nests_deeper_than(br#"{"a":[1,{"b":[2]}]}"#, 3));
        assert!(!nests_deeper_than(br#"{"a":"[[[[\"[[[["}"#, 1));
        assert!(nests_deeper_than(&b"[".repeat(100_000), 32));
    }

    /// The bracket-count shortcut never changes the answer of the walk.
    fn walk(text: &[u8], max: usize) -> bool {
        let (mut depth, mut in_string, mut escape) = (0usize, false, false);
        for &b in text {
            match (in_string, escape, b) {
                (true, true, _) => escape = false,
                (true, false, b'\\') => escape = true,
                (true, false, b'"') => in_string = false,
                (true, ..) => {}
                (false, _, b'"') => in_string = true,
                (false, _, b'[' | b'{') => {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
                (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    proptest::proptest! {
        #[test]
        fn the_shortcut_agrees_with_the_walk(
            text in proptest::collection::vec(proptest::sample::select(b"[]{}\"\\a,".to_vec()), 0..200),
            max in 0usize..12,
        ) {
            proptest::prop_assert_eq!(nests_deeper_than(&text, max), walk(&text, max));
        }
    }

    #[test]
    fn non_objects_are_named() {
        for (text, kind) in [
            ("[1,{}]", "数组"),
            ("\"x\"", "字符串"),
            ("3.5", "数字"),
            ("null", "null"),
            ("true", "布尔值"),
        ] {
            let e: Element = serde_json::from_str(text).unwrap();
            assert!(matches!(e, Element::Other(k) if k == kind), "{text}");
        }
    }
}

/// A serde_json syntax error in Chinese, for data staff: what is wrong,
/// without serde's English or its line count (which is inside the record,
/// not the file; callers give the file's line).
pub(crate) fn syntax_error_text(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    if e.classify() == Category::Eof {
        return "记录不完整：在结尾处缺少 } 或 ]，或字符串的引号没有闭合".to_string();
    }
    let english = e.to_string();
    let what = english
        .rsplit_once(" at line ")
        .map_or(english.as_str(), |(w, _)| w);
    let known = [
        (
            "expected `,` or `}`",
            "此处应为逗号或 }（可能漏了逗号或引号）",
        ),
        ("expected `,` or `]`", "此处应为逗号或 ]（可能漏了逗号）"),
        ("expected `:`", "键后面应为冒号 :"),
        ("key must be a string", "键必须是带英文双引号的字符串"),
        ("trailing comma", "最后一项后面多了逗号"),
        ("trailing characters", "记录结束后还有多余的字符"),
        ("expected value", "此处应为一个值（字符串要加英文双引号）"),
        (
            "expected ident",
            "无法识别的值（true、false、null 要小写，字符串要加英文双引号）",
        ),
        (
            "control character",
            "字符串中有未转义的控制字符（如换行或制表符，应写成 \\n、\\t）",
        ),
        (
            "invalid escape",
            "字符串中有无效的转义（反斜杠 \\ 要写成 \\\\）",
        ),
        ("invalid unicode code point", "字符串中有无效的 \\u 转义"),
        ("invalid number", "无效的数字"),
        ("number out of range", "数字超出范围"),
        ("recursion limit exceeded", "嵌套层数过多"),
    ];
    known.iter().find(|(k, _)| what.starts_with(k)).map_or_else(
        || format!("语法错误（{what}）"),
        |(_, zh)| (*zh).to_string(),
    )
}

/// The 1-based character column of serde's (1-based, byte) column on the
/// first line of `text`.
pub(crate) fn char_column(text: &[u8], byte_column: usize) -> usize {
    let end = byte_column.saturating_sub(1).min(text.len());
    String::from_utf8_lossy(&text[..end]).chars().count() + 1
}

#[cfg(test)]
mod syntax_tests {
    use super::*;

    #[test]
    fn errors_read_in_chinese_without_serde_positions() {
        let e = serde_json::from_str::<serde_json::Value>("{\"a\":1 \"b\":2}").unwrap_err();
        assert_eq!(
            syntax_error_text(&e),
            "此处应为逗号或 }（可能漏了逗号或引号）"
        );
        let e = serde_json::from_str::<serde_json::Value>("{\"a\":\"x").unwrap_err();
        assert!(syntax_error_text(&e).starts_with("记录不完整"));
        assert_eq!(char_column("{\"名\":1".as_bytes(), 6), 4);
    }
}
