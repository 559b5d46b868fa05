//! End to end: raw bytes through the decode checker and reader into each
//! parser, as the daemon chains them.

use encoding_rs::{Encoding, GB18030};

use super::testing::{collect, fields};
use super::{FileFault, Format, Item, Limits, Position, open_text};
use crate::decode::{self, Checker, DecodeError, Evidence};

fn run(
    raw: &[u8],
    format: Format,
    default: Option<&'static Encoding>,
) -> Result<(Vec<Item>, Option<FileFault>), DecodeError> {
    let mut checker = Checker::new(default, format == Format::Xml);
    for chunk in raw.chunks(5) {
        checker.feed(chunk)?;
    }
    let detected = checker.finish()?;
    let input = decode::reader(Box::new(raw), detected);
    Ok(collect(&mut *open_text(format, input, Limits::default())))
}

#[test]
fn gb18030_xml_by_declaration() {
    let text = "<?xml version=\"1.0\" encoding=\"GB18030\"?>\n<办件列表>\n  <办件><姓名>张三</姓名><部门>市政务服务中心</部门></办件>\n</办件列表>\n";
    let raw = GB18030.encode(text).0.into_owned();
    let (items, fault) = run(&raw, Format::Xml, None).unwrap();
    assert_eq!(fault, None);
    assert_eq!(
        fields(&items[0]),
        vec![("姓名", "张三"), ("部门", "市政务服务中心")]
    );
    let Item::Record(r) = &items[0] else { panic!() };
    assert_eq!(r.pos, Position::Element { line: 3, record: 1 });
}

#[test]
fn utf8_bom_csv() {
    let raw = "\u{FEFF}姓名,年龄\r\n张三,30\r\n".as_bytes();
    let (items, fault) = run(raw, Format::Csv, None).unwrap();
    assert_eq!(fault, None);
    assert_eq!(fields(&items[0]), vec![("姓名", "张三"), ("年龄", "30")]);
}

#[test]
fn gb18030_csv_and_jsonl_by_detection_and_default() {
    let csv = GB18030
        .encode("姓名,受理部门\n张三,市政务服务中心\n李四,区行政审批局\n")
        .0
        .into_owned();
    let (items, fault) = run(&csv, Format::Csv, None).unwrap();
    assert_eq!(fault, None);
    assert_eq!(
        fields(&items[1]),
        vec![("姓名", "李四"), ("受理部门", "区行政审批局")]
    );
    let jsonl = GB18030.encode("{\"姓名\":\"张三\"}\n").0.into_owned();
    let (items, _) = run(&jsonl, Format::JsonLines, Some(GB18030)).unwrap();
    assert_eq!(fields(&items[0]), vec![("姓名", "张三")]);
}

#[test]
fn undecodable_byte_rejects_the_file_with_its_offset() {
    let mut raw = "姓名,受理部门\n张三,市政务服务中心\n".as_bytes().to_vec();
    raw.extend_from_slice(b"\xE5\x8Fx\n");
    assert_eq!(
        run(&raw, Format::Csv, None).unwrap_err(),
        DecodeError::Undecodable {
            encoding: "UTF-8",
            offset: 49
        }
    );
    let mut checker = Checker::new(None, false);
    checker.feed(b"").unwrap();
    assert_eq!(checker.finish().unwrap().evidence, Evidence::Detected);
}

#[test]
fn zero_byte_files_have_no_records() {
    for format in [Format::Xml, Format::Json, Format::JsonLines, Format::Csv] {
        assert_eq!(
            run(b"", format, None).unwrap(),
            (vec![], None),
            "{format:?}"
        );
    }
}
