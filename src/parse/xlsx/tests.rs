//! Unit tests of the XLSX parser.

use super::super::testing::limits;
use super::*;
use std::io::Write;
use zip::write::SimpleFileOptions;

/// A minimal workbook whose first sheet has `rows` (`<row>` elements)
/// and whose style 1 is a date format.
fn workbook(rows: &str, compression: zip::CompressionMethod) -> tempfile::NamedTempFile {
    workbook_with(rows, None, compression)
}

/// A workbook as [`workbook`] makes, with `xl/sharedStrings.xml` if
/// given.
fn workbook_with(
    rows: &str,
    shared: Option<&str>,
    compression: zip::CompressionMethod,
) -> tempfile::NamedTempFile {
    let mut files = vec![
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#.to_owned(),
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_owned(),
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="办件" sheetId="1" r:id="rId1"/><sheet name="说明" sheetId="2" r:id="rId9"/></sheets></workbook>"#.to_owned(),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#.to_owned(),
            ),
            (
                "xl/styles.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>"#.to_owned(),
            ),
            (
                "xl/worksheets/sheet1.xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
                ),
            ),
        ];
    if let Some(shared) = shared {
        files.push(("xl/sharedStrings.xml", shared.to_owned()));
    }
    let file = tempfile::Builder::new().suffix(".xlsx").tempfile().unwrap();
    let mut zip = zip::ZipWriter::new(file.reopen().unwrap());
    for (name, content) in files {
        zip.start_file(
            name,
            SimpleFileOptions::default().compression_method(compression),
        )
        .unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    file
}

fn inline(cell: &str, text: &str) -> String {
    format!(r#"<c r="{cell}" t="inlineStr"><is><t>{text}</t></is></c>"#)
}

fn read_all(rows: &str) -> Vec<Item> {
    let file = workbook(rows, zip::CompressionMethod::Stored);
    let mut stream = open(file.path(), Limits::default()).unwrap();
    let mut items = Vec::new();
    while let Some(item) = stream.next_item().unwrap() {
        items.push(item);
    }
    items
}

#[test]
fn header_and_typed_cells() {
    let rows = [
            format!("<row r=\"1\">{}{}{}{}{}</row>", inline("A1", " 姓名 "), inline("B1", "办件编号"), inline("C1", "受理时间"), inline("D1", "已办结"), inline("E1", "备注")),
            format!("<row r=\"2\">{}<c r=\"B2\"><v>1234</v></c><c r=\"C2\" s=\"1\"><v>45943.5</v></c><c r=\"D2\" t=\"b\"><v>1</v></c></row>", inline("A2", "张三")),
            "<row r=\"3\"></row>".to_owned(),
            format!("<row r=\"4\">{}<c r=\"B4\" t=\"e\"><v>#N/A</v></c></row>", inline("A4", "李四")),
            format!("<row r=\"5\">{}<c r=\"F5\"><v>1</v></c></row>", inline("A5", "王五")),
            format!("<row r=\"6\">{}<c r=\"B6\"><v>0.5</v></c></row>", inline("A6", "赵六")),
        ]
        .concat();
    let items = read_all(&rows);
    assert_eq!(items.len(), 4, "{items:?}");
    let Item::Record(r) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(r.pos, Position::Row(2));
    let when = NaiveDate::from_ymd_opt(2025, 10, 13)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    assert_eq!(
        r.fields,
        vec![
            ("姓名".into(), RawValue::Text("张三".into())),
            ("办件编号".into(), RawValue::Number(1234.0)),
            ("受理时间".into(), RawValue::DateTime(when)),
            ("已办结".into(), RawValue::Text("1".into())),
        ]
    );
    assert!(
        matches!(&items[1], Item::Bad(b) if b.pos == Position::Row(4) && b.message.contains("B4") && b.message.contains("#N/A"))
    );
    assert!(
        matches!(&items[2], Item::Bad(b) if b.pos == Position::Row(5) && b.message.contains("第 F 列"))
    );
    let Item::Record(r) = &items[3] else { panic!() };
    assert_eq!(r.pos, Position::Row(6));
    assert_eq!(r.fields[1], ("办件编号".into(), RawValue::Number(0.5)));
}

#[test]
fn header_only_and_empty_sheets_have_no_records() {
    assert!(read_all("").is_empty());
    assert!(read_all(&format!("<row r=\"1\">{}</row>", inline("A1", "姓名"))).is_empty());
}

#[test]
fn zip_bomb_guard_names_the_limit() {
    let big = format!("<row r=\"1\">{}</row>", inline("A1", &"x".repeat(200_000)));
    let file = workbook(&big, zip::CompressionMethod::Deflated);
    assert!(std::fs::metadata(file.path()).unwrap().len() < 20_000);
    let mut l = limits(1 << 20);
    l.max_xlsx_unpacked_bytes = 100_000;
    let err = open(file.path(), l).err().expect("a fault");
    assert!(err.message.contains("max_xlsx_unpacked_bytes"), "{err:?}");
    l.max_xlsx_unpacked_bytes = 1 << 20;
    assert!(open(file.path(), l).is_ok());
}

fn read_with(file: &tempfile::NamedTempFile, l: Limits) -> (Vec<Item>, Option<FileFault>) {
    match open(file.path(), l) {
        Ok(mut stream) => super::super::testing::collect(&mut *stream),
        Err(f) => (vec![], Some(f)),
    }
}

#[test]
fn declared_dimension_is_never_allocated() {
    // Issue 11: cells A1 and XFD1048576 made calamine allocate the
    // whole rectangle (~549 GB) and abort the process.
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"1048576\"><c r=\"XFD1048576\"><v>1</v></c></row>",
        inline("A1", "姓名")
    );
    let sheet = format!("<dimension ref=\"A1:XFD1048576\"/>{rows}");
    let file = workbook(&sheet, zip::CompressionMethod::Deflated);
    let (items, fault) = read_with(&file, Limits::default());
    assert_eq!(fault, None);
    assert_eq!(items.len(), 1);
    assert!(
        matches!(&items[0], Item::Bad(b) if b.pos == Position::Row(1_048_576) && b.message.contains("XFD") && b.message.contains("max_columns")),
        "{items:?}"
    );
    // The same far cell under a wide enough limit is a value without
    // a header, still without allocating the rectangle.
    let l = Limits {
        max_columns: 16_384,
        ..Limits::default()
    };
    let (items, _) = read_with(&file, l);
    assert!(matches!(&items[0], Item::Bad(b) if b.message.contains("没有表头")));
}

#[test]
fn too_wide_header_or_too_large_row() {
    let l = Limits {
        max_columns: 2,
        ..Limits::default()
    };
    let header = format!(
        "<row r=\"1\">{}{}{}</row>",
        inline("A1", "a"),
        inline("B1", "b"),
        inline("C1", "c")
    );
    let (_, fault) = read_with(&workbook(&header, zip::CompressionMethod::Stored), l);
    assert!(fault.unwrap().message.contains("max_columns"));
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"2\">{}</row><row r=\"3\">{}</row>",
        inline("A1", "a"),
        inline("A2", &"x".repeat(200)),
        inline("A3", "ok")
    );
    let (items, fault) = read_with(
        &workbook(&rows, zip::CompressionMethod::Stored),
        super::super::testing::limits(100),
    );
    assert_eq!(fault, None);
    assert!(matches!(&items[0], Item::Bad(b) if b.message.contains("max_record_bytes")));
    assert!(matches!(&items[1], Item::Record(r) if r.pos == Position::Row(3)));
}

#[test]
fn rows_out_of_order_are_a_fault() {
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"3\">{}</row><row r=\"2\">{}</row>",
        inline("A1", "a"),
        inline("A3", "x"),
        inline("A2", "y")
    );
    let (items, fault) = read_with(
        &workbook(&rows, zip::CompressionMethod::Stored),
        Limits::default(),
    );
    // Row 3 is still held when row 2 turns up: the file ends there.
    assert!(items.is_empty(), "{items:?}");
    let fault = fault.unwrap();
    assert!(fault.message.contains("行顺序错乱"), "{fault:?}");
    assert_eq!(fault.line, 2);
}

#[test]
fn shared_strings_are_bounded_before_calamine_loads_them() {
    let rows = "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c></row><row r=\"2\"><c r=\"A2\" t=\"s\"><v>1</v></c></row>";
    let sst = |attrs: &str, items: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" {attrs}>{items}</sst>"#
        )
    };
    let l = Limits {
        max_xlsx_shared_strings: 4,
        ..Limits::default()
    };
    let good = sst(
        r#"count="2" uniqueCount="2""#,
        "<si><t>姓名</t></si><si><t>张三</t></si>",
    );
    let file = workbook_with(rows, Some(&good), zip::CompressionMethod::Deflated);
    let (items, fault) = read_with(&file, l);
    assert_eq!(fault, None);
    assert_eq!(
        fields_of(&items[0]),
        vec![("姓名".to_owned(), RawValue::Text("张三".into()))]
    );
    // Many empty strings (issue 11: 15 M of them peaked at 368 MB).
    let many = sst("", &"<si/>".repeat(5));
    let file = workbook_with(rows, Some(&many), zip::CompressionMethod::Deflated);
    let fault = read_with(&file, l).1.unwrap();
    assert!(
        fault.message.contains("max_xlsx_shared_strings"),
        "{fault:?}"
    );
    // A declared count calamine would reserve room for.
    let lying = sst(r#"uniqueCount="4000000000000""#, "<si><t>a</t></si>");
    let file = workbook_with(rows, Some(&lying), zip::CompressionMethod::Deflated);
    let fault = read_with(&file, l).1.unwrap();
    assert!(fault.message.contains("4000000000000"), "{fault:?}");
    // One string larger than a record may be.
    let long = sst(
        "",
        &format!(
            "<si><r><t>{}</t></r><r><t>{}</t></r></si>",
            "x".repeat(60),
            "y".repeat(60)
        ),
    );
    let file = workbook_with(rows, Some(&long), zip::CompressionMethod::Deflated);
    let mut small = super::super::testing::limits(100);
    small.max_xlsx_shared_strings = 4;
    let fault = read_with(&file, small).1.unwrap();
    assert!(
        fault.message.contains("第 1 项超过 max_record_bytes"),
        "{fault:?}"
    );
}

fn fields_of(item: &Item) -> Vec<(String, RawValue)> {
    match item {
        Item::Record(r) => r.fields.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_a_zip_is_a_fault() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"name,age\n").unwrap();
    let err = open(file.path(), Limits::default()).err().expect("a fault");
    assert!(err.message.contains("zip"), "{err:?}");
}

#[test]
fn column_letters_like_excel() {
    let names: Vec<_> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
        .into_iter()
        .map(column_letters)
        .collect();
    assert_eq!(names, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
}
