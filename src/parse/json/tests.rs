//! Unit tests of the JSON parser.

use super::super::testing::{collect, fields, limits};
use super::*;
use proptest::prelude::*;
use serde_json::Value;

fn parse_cap(text: &str, max: usize, cap: usize) -> (Vec<Item>, Option<FileFault>) {
    let input =
        std::io::BufReader::with_capacity(cap, std::io::Cursor::new(text.as_bytes().to_vec()));
    collect(&mut JsonStream::new(Box::new(input), limits(max)))
}

fn parse(text: &str) -> (Vec<Item>, Option<FileFault>) {
    parse_cap(text, 1 << 20, 8192)
}

fn fault(text: &str) -> FileFault {
    parse(text).1.expect("a fault")
}

#[test]
fn top_level_array() {
    let (items, f) = parse("[{\"姓名\":\"张三\",\"n\":1,\"x\":null},\n {\"姓名\":\"李四\"}]\n");
    assert_eq!(f, None);
    assert_eq!(items.len(), 2);
    let Item::Record(r) = &items[0] else { panic!() };
    assert_eq!(r.pos, Position::Index(0));
    assert_eq!(r.fields.len(), 2);
    let Item::Record(r) = &items[1] else { panic!() };
    assert_eq!(r.pos, Position::Index(1));
    assert_eq!(fields(&items[1]), vec![("姓名", "李四")]);
}

#[test]
fn records_member_with_other_keys() {
    let text =
        r#"{"total": 2, "meta": {"a": [1, "]"]}, "records": [{"a":"1"}, {"a":"2"}], "page": 1}"#;
    let (items, f) = parse(text);
    assert_eq!(f, None);
    assert_eq!(
        items.iter().map(|i| fields(i)[0].1).collect::<Vec<_>>(),
        vec!["1", "2"]
    );
}

#[test]
fn empty_inputs() {
    assert_eq!(parse(""), (vec![], None));
    assert_eq!(parse(" \n "), (vec![], None));
    assert_eq!(parse("[]"), (vec![], None));
    assert_eq!(parse(r#"{"records": []}"#), (vec![], None));
}

#[test]
fn non_object_element_is_a_bad_record() {
    let (items, f) = parse(r#"[{"a":"1"}, 3, "x", {"a":"2"}]"#);
    assert_eq!(f, None);
    assert_eq!(items.len(), 4);
    assert!(
        matches!(&items[1], Item::Bad(b) if b.pos == Position::Index(1) && b.message.contains("数字"))
    );
    assert!(
        matches!(&items[2], Item::Bad(b) if b.pos == Position::Index(2) && b.message.contains("字符串"))
    );
    assert_eq!(fields(&items[3]), vec![("a", "2")]);
}

#[test]
fn truncated_document_is_a_fault_with_position() {
    let text = "[{\"a\":\"1\"},\n{\"a\":\"2\"";
    let (items, f) = parse(text);
    assert_eq!(items.len(), 1);
    let f = f.unwrap();
    assert_eq!((f.line, f.byte), (2, text.len() as u64));
    assert!(f.message.contains("不完整"), "{f:?}");
    let f = fault("[{\"a\":\"1\"}");
    assert_eq!(f.line, 1);
    assert!(f.message.contains("不完整"));
    assert!(fault("{\"records\": [").message.contains("不完整"));
}

#[test]
fn malformed_documents_are_faults() {
    let f = fault("[{\"a\":\"1\"},\n {\"a\": tru}]");
    assert_eq!(f.line, 2);
    assert_eq!(f.byte, 22, "{f:?}");
    assert!(f.message.starts_with("JSON 语法错误"));
    assert!(fault("[1,]").message.contains("应为值"));
    assert!(fault("[,1]").message.contains("应为值"));
    assert!(fault("[{} {}]").message.contains(", 或 ]"));
    assert!(fault("[{}] x").message.contains("多余"));
    assert!(fault("3").message.contains("顶层"));
    assert!(fault(r#"{"data": []}"#).message.contains("没有 records"));
    assert!(fault(r#"{"records": {}}"#).message.contains("应为数组"));
    assert!(
        fault(r#"{"records": [], "records": []}"#)
            .message
            .contains("多个")
    );
    assert!(
        fault(r#"{"a": [1,}, "records": []}"#)
            .message
            .starts_with("JSON 语法错误")
    );
    assert!(
        fault(r#"{"records": [] "a": 1}"#)
            .message
            .contains(", 或 }")
    );
}

#[test]
fn oversized_element_is_a_fault() {
    let big = format!("[{{\"a\":\"1\"}},\n{{\"a\":\"{}\"}}]", "x".repeat(5000));
    let (items, f) = parse_cap(&big, 1000, 64);
    assert_eq!(items.len(), 1);
    let f = f.unwrap();
    assert_eq!((f.line, f.byte), (2, 12));
    assert!(f.message.contains("max_record_bytes"));
}

#[test]
fn escapes_and_brackets_in_strings() {
    let text = r#"[{"a":"x\"]}[{\\","b":"\\"}, {"c":"\u4e2d"}]"#;
    let (items, f) = parse_cap(text, 1 << 20, 1);
    assert_eq!(f, None);
    assert_eq!(fields(&items[0]), vec![("a", "x\"]}[{\\"), ("b", "\\")]);
    assert_eq!(fields(&items[1]), vec![("c", "中")]);
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z\"\\\\\\[\\]{},:中 ]{0,8}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn nesting_deeper_than_the_limit_is_a_fault() {
    let deep = |n: usize| format!("[{{\"a\":{}1{}}}]", "[".repeat(n), "]".repeat(n));
    // The array and the record are 2 levels; 30 more make 32.
    assert_eq!(parse(&deep(30)).1, None);
    let f = parse(&deep(31)).1.expect("a fault");
    assert!(
        f.message.contains("max_nesting_depth 上限（32 层）"),
        "{f:?}"
    );
    assert_eq!(f.byte, 36);
    let f = parse(&deep(100_000)).1.expect("a fault");
    assert!(f.message.contains("max_nesting_depth"), "{f:?}");
    // Inside {"records": [...]} the object is one more level.
    let wrapped = |n: usize| format!("{{\"records\":{}}}", deep(n));
    assert_eq!(parse(&wrapped(29)).1, None);
    assert!(parse(&wrapped(30)).1.is_some());
    // Other members of the top-level object are bounded too.
    let other = format!(
        "{{\"x\":{}1{},\"records\":[]}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    assert!(
        parse(&other)
            .1
            .expect("a fault")
            .message
            .contains("max_nesting_depth")
    );
}

#[test]
fn too_many_fields_make_the_record_bad() {
    let mut l = limits(1 << 20);
    l.max_columns = 2;
    let input = std::io::Cursor::new(br#"[{"a":1,"b":2},{"a":1,"b":2,"c":3}]"#.to_vec());
    let (items, f) = collect(&mut JsonStream::new(Box::new(input), l));
    assert_eq!(f, None);
    assert!(matches!(&items[0], Item::Record(_)));
    assert!(matches!(&items[1], Item::Bad(b) if b.message.contains("max_columns")));
}

proptest! {
    #[test]
    fn agrees_with_serde_json(
        elements in proptest::collection::vec(value(), 0..6),
        pretty in any::<bool>(),
        wrapped in any::<bool>(),
        cap in 1usize..40,
    ) {
        let array = Value::Array(elements);
        let doc = if wrapped { serde_json::json!({"n": 1, "records": array, "z": [1]}) } else { array.clone() };
        let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { doc.to_string() };
        let expected: Vec<Element> = serde_json::from_value(array).unwrap();
        let (items, f) = parse_cap(&text, 1 << 20, cap);
        prop_assert_eq!(f, None);
        prop_assert_eq!(items.len(), expected.len());
        for (i, (item, want)) in items.iter().zip(expected).enumerate() {
            match (item, want) {
                (Item::Record(r), Element::Object(members)) => {
                    prop_assert_eq!(r.pos, Position::Index(i as u64));
                    prop_assert_eq!(&r.fields, &Element::into_fields(members));
                }
                (Item::Bad(b), Element::Other(_)) => prop_assert_eq!(b.pos, Position::Index(i as u64)),
                (got, _) => prop_assert!(false, "unexpected {:?}", got),
            }
        }
    }
}
