//! Unit tests of the XML parser.

use super::super::testing::{collect, fields, limits};
use super::*;
use serde_json::json;

fn parse_cap(text: &str, max: usize, cap: usize) -> (Vec<Item>, Option<FileFault>) {
    let input =
        std::io::BufReader::with_capacity(cap, std::io::Cursor::new(text.as_bytes().to_vec()));
    collect(&mut XmlStream::new(Box::new(input), limits(max)))
}

fn parse(text: &str) -> (Vec<Item>, Option<FileFault>) {
    parse_cap(text, 1 << 20, 8192)
}

fn fault(text: &str) -> FileFault {
    parse(text).1.expect("a fault")
}

fn pos(item: &Item) -> Position {
    match item {
        Item::Record(r) => r.pos,
        Item::Bad(b) => b.pos,
    }
}

const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- 导出 -->
<records xmlns="urn:x">
  <record id="1">
    <project_no>P&amp;1</project_no>
    <name><![CDATA[张<三>]]></name>
    <empty/>
    <blank></blank>
    <note>a&#x4e2d;&lt;b&gt;</note>
  </record>
  <record
     id="2"><ns:name xmlns:ns="urn:y">李四</ns:name></record>
  <record/>
</records>
"#;

#[test]
fn records_fields_and_positions() {
    for cap in [1, 2, 7, 8192] {
        let (items, f) = parse_cap(DOC, 1 << 20, cap);
        assert_eq!(f, None, "cap {cap}");
        assert_eq!(items.len(), 3);
        assert_eq!(
            fields(&items[0]),
            vec![
                ("project_no", "P&1"),
                ("name", "张<三>"),
                ("note", "a中<b>")
            ]
        );
        assert_eq!(fields(&items[1]), vec![("name", "李四")]);
        assert_eq!(fields(&items[2]), vec![]);
        let positions: Vec<_> = items.iter().map(pos).collect();
        assert_eq!(
            positions,
            vec![
                Position::Element { line: 4, record: 1 },
                Position::Element {
                    line: 11,
                    record: 2
                },
                Position::Element {
                    line: 13,
                    record: 3
                },
            ],
            "cap {cap}"
        );
    }
}

#[test]
fn nested_field_becomes_json() {
    let text = "<rs><r><no>1</no><medias>\n  <media><media_name>a</media_name><media_url>u</media_url><x/></media>\n  <media><media_name>b</media_name><tags><t>1</t><t>2</t></tags></media>\n</medias></r></rs>";
    let (items, f) = parse(text);
    assert_eq!(f, None);
    let Item::Record(r) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(r.fields[0], ("no".into(), RawValue::Text("1".into())));
    assert_eq!(
        r.fields[1],
        (
            "medias".into(),
            RawValue::Json(json!([
                {"media_name": "a", "media_url": "u"},
                {"media_name": "b", "tags": ["1", "2"]}
            ]))
        )
    );
}

#[test]
fn stray_text_in_a_record_makes_it_bad() {
    let (items, f) = parse("<rs><r>oops<a>1</a></r><r><a>x<b>1</b></a></r><r><a>2</a></r></rs>");
    assert_eq!(f, None);
    assert!(matches!(&items[0], Item::Bad(b) if b.message.contains("字段元素之外")));
    assert!(matches!(&items[1], Item::Bad(b) if b.message.contains("同时含有")));
    assert_eq!(fields(&items[2]), vec![("a", "2")]);
    assert!(fault("<rs>text<r/></rs>").message.contains("记录元素之间"));
}

#[test]
fn doctype_and_entities_are_refused() {
    let f = fault(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY x \"boom\">]>\n<rs><r><a>&x;</a></r></rs>",
    );
    assert_eq!(f.message, "XML 不允许 DOCTYPE/实体声明");
    assert_eq!(f.line, 2);
    let f = fault("<rs><r><a>&x;</a></r></rs>");
    assert!(f.message.contains("未定义的实体"), "{f:?}");
}

#[test]
fn truncated_and_malformed_are_faults_with_position() {
    let text = "<rs>\n<r><a>1</a></r>\n<r><a>张三";
    let (items, f) = parse(text);
    assert_eq!(items.len(), 1);
    let f = f.unwrap();
    assert_eq!(f.line, 3);
    assert_eq!(f.byte, text.len() as u64);
    assert!(f.message.contains("不完整"), "{f:?}");
    let f = fault("<rs>\n<r><a>1</b></r></rs>");
    assert!(f.message.starts_with("XML 格式错误"), "{f:?}");
    assert_eq!((f.line, f.byte), (2, 12));
    let f = fault("<rs>\n<r><a x=>1</a></r></rs>");
    assert!(f.message.starts_with("XML 格式错误"), "{f:?}");
    let f = fault("<rs><r><a>1</a></r></rs>\n<rs/>");
    assert!(f.message.contains("根元素"));
    let f = fault("<rs><r><a>AT&T</a></r></rs>");
    assert!(f.message.starts_with("XML 格式错误"), "{f:?}");
}

#[test]
fn empty_documents_have_no_records() {
    assert_eq!(parse(""), (vec![], None));
    assert_eq!(parse("<?xml version=\"1.0\"?>\n"), (vec![], None));
    assert_eq!(parse("<records/>"), (vec![], None));
    assert_eq!(parse("<records>\n</records>\n"), (vec![], None));
}

#[test]
fn nesting_deeper_than_the_limit_is_a_fault_not_a_stack_overflow() {
    // The hostile file of issue 11: one field nested 5,000 levels deep
    // used to overflow the worker's stack while its value was built.
    let depth = 5000;
    let text = format!(
        "<rs><r><a>{}x{}</a></r></rs>",
        "<n>".repeat(depth),
        "</n>".repeat(depth)
    );
    let f = fault(&text);
    assert!(f.message.contains("max_nesting_depth"), "{f:?}");
    assert!(f.message.contains("32 层"), "{f:?}");
    // Exactly at the limit is fine: rs, r, a and 29 nested elements.
    let ok = |n: usize| {
        format!(
            "<rs><r><a>{}x{}</a></r></rs>",
            "<n>".repeat(n),
            "</n>".repeat(n)
        )
    };
    assert_eq!(parse(&ok(29)).1, None);
    assert!(parse(&ok(30)).1.is_some());
    // An empty element counts as one level too.
    assert!(
        parse(&format!(
            "<rs><r><a>{}<e/>{}</a></r></rs>",
            "<n>".repeat(29),
            "</n>".repeat(29)
        ))
        .1
        .is_some()
    );
}

#[test]
fn too_many_fields_make_the_record_bad() {
    let mut l = limits(1 << 20);
    l.max_columns = 3;
    let run = |text: &str| {
        let input = std::io::Cursor::new(text.as_bytes().to_vec());
        collect(&mut XmlStream::new(Box::new(input), l))
    };
    let (items, f) =
        run("<rs><r><a>1</a><b>2</b><c>3</c></r><r><a>1</a><b>2</b><c>3</c><d>4</d></r></rs>");
    assert_eq!(f, None);
    assert_eq!(fields(&items[0]).len(), 3);
    assert!(matches!(&items[1], Item::Bad(b) if b.message.contains("max_columns")));
}

#[test]
fn oversized_record_is_a_fault() {
    let text = format!(
        "<rs>\n<r><a>1</a></r>\n<r><a>{}</a></r></rs>",
        "长".repeat(1000)
    );
    let (items, f) = parse_cap(&text, 1000, 64);
    assert_eq!(items.len(), 1);
    let f = f.unwrap();
    assert!(f.message.contains("max_record_bytes"), "{f:?}");
    assert_eq!((f.line, f.byte), (3, 21));
    // A text node far larger than the limit is stopped by the budget,
    // not buffered whole.
    let text = format!("<rs><r><a>{}</a></r></rs>", "x".repeat(1 << 20));
    let (_, f) = parse_cap(&text, 1000, 4096);
    assert!(f.unwrap().message.contains("max_record_bytes"));
    // Exactly the limit is fine.
    let record = "<r><a>1</a></r>";
    let (items, f) = parse(&format!("<rs>{record}</rs>"));
    assert_eq!((items.len(), f), (1, None));
    let (items, f) = parse_cap(&format!("<rs>{record}</rs>"), record.len(), 8192);
    assert_eq!((items.len(), f), (1, None));
    let (_, f) = parse_cap(&format!("<rs>{record}</rs>"), record.len() - 1, 8192);
    assert!(f.is_some());
}
