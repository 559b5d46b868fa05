//! Templates against the real `schemas/`, and the shipped `templates/`.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use calamine::{Data, Reader, Xlsx};

use super::build;
use crate::validate::{Catalog, CodeTable, ValidateOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn catalog() -> Catalog {
    let dir = root().join("schemas");
    let codes = Arc::new(CodeTable::load(&dir.join("gb2260.csv")).unwrap());
    Catalog::load(&dir, codes, ValidateOptions::default()).unwrap()
}

/// Every entry of a zip archive by name.
fn entries(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut e = z.by_index(i).unwrap();
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            (e.name().unwrap().to_string(), v)
        })
        .collect()
}

#[test]
fn case_accept_template_has_titles_lists_and_instructions_after_the_data() {
    let c = catalog();
    let schema = c.get("case_accept").unwrap();
    let bytes = build(&schema).unwrap();
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes.clone())).unwrap();
    let names = book.sheet_names();
    assert_eq!(names[0], schema.title);
    assert_eq!(names[1], "填报说明");
    let data = book.worksheet_range_at(0).unwrap().unwrap();
    let header: Vec<String> = (0..data.width())
        .map(|c| data.get((0, c)).map(|d| d.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(header[0], "办件编号");
    assert!(header.contains(&"申请人证件号码".to_string()));
    // Control fields are not for data staff.
    assert!(!header.contains(&"入库时间".to_string()));
    assert_eq!(
        data.height(),
        1,
        "no example row that would be read as data"
    );
    let help = book.worksheet_range("填报说明").unwrap();
    let text: String = help
        .cells()
        .filter_map(|(_, _, d)| match d {
            Data::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!(
        text.contains("申请人证件号码") && text.contains("必填"),
        "{text}"
    );

    let xml = String::from_utf8(entries(&bytes)["xl/worksheets/sheet1.xml"].clone()).unwrap();
    assert!(xml.contains("<dataValidation type=\"list\""), "{xml}");
    assert!(xml.contains("111 居民身份证"), "ID type list: {xml}");
    assert!(xml.contains("1 即办件"), "{xml}");
}

#[test]
fn long_code_lists_point_at_the_hidden_code_sheet() {
    // Forty codes with labels are more than Excel's 255-character inline list.
    let codes: serde_json::Map<String, serde_json::Value> = (10..50)
        .map(|i| (i.to_string(), format!("第{i}类事项名称").into()))
        .collect();
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "测试", "x-schema-version": "1", "x-key": ["k"], "type": "object",
        "required": ["k"],
        "properties": {
            "k": {"title": "编号", "type": "string"},
            "kind": {"title": "类别", "type": "string",
                     "enum": codes.keys().collect::<Vec<_>>(), "x-codes": codes},
        },
    });
    let dir = root().join("schemas");
    let table = Arc::new(CodeTable::load(&dir.join("gb2260.csv")).unwrap());
    let schema = crate::validate::DatasetSchema::from_text(
        "t",
        &schema.to_string(),
        table,
        ValidateOptions::default(),
    )
    .unwrap();
    let bytes = build(&schema).unwrap();
    let all = entries(&bytes);
    let xml = String::from_utf8(all["xl/worksheets/sheet1.xml"].clone()).unwrap();
    assert!(xml.contains("<dataValidation type=\"list\""), "{xml}");
    assert!(xml.contains("代码表'!$A$2:$A$41"), "{xml}");
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), ["测试", "填报说明", "代码表"]);
    let codes = book.worksheet_range("代码表").unwrap();
    assert_eq!(
        codes.get((1, 0)),
        Some(&Data::String("10 第10类事项名称".into()))
    );
}

/// `templates/<dataset>.xlsx` are what `fepd template` writes today. Run
/// with `FEPD_WRITE_TEMPLATES=1` to rewrite them after a schema change.
#[test]
fn shipped_templates_are_current() {
    let dir = root().join("templates");
    let write = std::env::var_os("FEPD_WRITE_TEMPLATES").is_some();
    let all = catalog();
    for name in all.names() {
        let schema = all.get(name).unwrap();
        let fresh = build(&schema).unwrap();
        let path: &Path = &dir.join(format!("{name}.xlsx"));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(path, &fresh).unwrap();
            continue;
        }
        let shipped = std::fs::read(path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run FEPD_WRITE_TEMPLATES=1 cargo test --lib template",
                path.display()
            )
        });
        assert!(
            entries(&shipped) == entries(&fresh),
            "{} is stale; run FEPD_WRITE_TEMPLATES=1 cargo test --lib template",
            path.display()
        );
    }
}

#[test]
fn column_letters_like_excel() {
    assert_eq!(super::column_letters(0), "A");
    assert_eq!(super::column_letters(25), "Z");
    assert_eq!(super::column_letters(26), "AA");
}
