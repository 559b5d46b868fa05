//! The error table data staff open in Excel or WPS, in two forms from the
//! same rows: `errors.csv` (UTF-8 with BOM) and `errors.xlsx` (every cell a
//! text cell, frozen header, autofilter).
//!
//! Values come from outside: a cell starting with `=`, `+`, `-`, `@`, tab
//! or CR would run as a formula when the CSV is opened (CSV injection), so
//! the CSV prefixes such cells with `'` (OWASP's rule) — the value is still
//! all there after the prefix — and the XLSX writes them as text cells,
//! which Excel never evaluates, holding the value unchanged.

use std::io;

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use crate::state::files::Rejection;

/// Column titles, in order.
fn columns(key_title: &str) -> [&str; 10] {
    [
        "行号",
        "记录序号",
        key_title,
        "位置",
        "字段",
        "字段名称",
        "值",
        "规则",
        "说明",
        "级别",
    ]
}

/// One table row per problem, the whole-file fault first.
fn rows<'a>(fault: Option<&'a str>, errors: &'a [Rejection]) -> Vec<[String; 10]> {
    let mut out = Vec::with_capacity(errors.len() + 1);
    if let Some(f) = fault {
        out.push([
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            "file".into(),
            f.to_string(),
            "错误".into(),
        ]);
    }
    for e in errors {
        out.push([
            e.row.to_string(),
            e.ordinal.to_string(),
            e.key.clone().unwrap_or_default(),
            e.position.clone(),
            e.field.clone(),
            e.title.clone(),
            e.value.clone().unwrap_or_default(),
            e.rule.clone(),
            e.message.clone(),
            if e.warning { "警告" } else { "错误" }.into(),
        ]);
    }
    out
}

/// OWASP's CSV-injection rule: a cell that a spreadsheet would read as a
/// formula gets a leading `'`, which shows the rest as text.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The CSV form: BOM, Chinese headers, one line per problem.
pub fn errors_csv(
    key_title: &str,
    fault: Option<&str>,
    errors: &[Rejection],
) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256 + errors.len() * 160);
    out.extend_from_slice("\u{feff}".as_bytes());
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(columns(key_title))?;
        for row in rows(fault, errors) {
            w.write_record(row.iter().map(|c| neutralise(c).into_owned()))?;
        }
        w.flush()?;
    }
    Ok(out)
}

/// Excel's limit on the text of one cell.
const MAX_CELL_CHARS: usize = 32_767;

/// The XLSX form: the same rows, every cell text.
pub fn errors_xlsx(
    key_title: &str,
    fault: Option<&str>,
    errors: &[Rejection],
) -> io::Result<Vec<u8>> {
    build_xlsx(key_title, fault, errors).map_err(io::Error::other)
}

fn build_xlsx(
    key_title: &str,
    fault: Option<&str>,
    errors: &[Rejection],
) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let text = Format::new().set_num_format("@");
    let head = Format::new().set_num_format("@").set_bold();
    let sheet = book.add_worksheet();
    sheet.set_name("错误清单")?;
    let titles = columns(key_title);
    let widths = [8.0, 8.0, 24.0, 22.0, 18.0, 16.0, 24.0, 14.0, 60.0, 6.0];
    for (c, (title, width)) in titles.iter().zip(widths).enumerate() {
        let c = c as u16;
        sheet.set_column_width(c, width)?;
        sheet.set_column_format(c, &text)?;
        sheet.write_string_with_format(0, c, *title, &head)?;
    }
    let rows = rows(fault, errors);
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, cell) in row.iter().enumerate() {
            if cell.is_empty() {
                continue;
            }
            let cell: String = cell.chars().take(MAX_CELL_CHARS).collect();
            sheet.write_string_with_format(r, c as u16, cell, &text)?;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofilter(0, 0, rows.len() as u32, titles.len() as u16 - 1)?;
    book.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(value: &str) -> Rejection {
        Rejection {
            ordinal: 1,
            position: "第 2 行（第 1 条记录）".into(),
            row: 2,
            key: Some("K-1".into()),
            field: "task_name".into(),
            title: "事项名称".into(),
            value: Some(value.into()),
            rule: "maxLength".into(),
            message: "太长".into(),
            warning: false,
        }
    }

    #[test]
    fn formula_looking_cells_are_prefixed_and_keep_their_value() {
        for v in [
            "=HYPERLINK(\"http://x\")",
            "+8613800000000",
            "-1",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(neutralise(v), format!("'{v}"));
        }
        for v in ["01", "办件", "a=b", ""] {
            assert_eq!(neutralise(v), v);
        }
        let csv = errors_csv("办件编号", None, &[rejection("=1+1")]).unwrap();
        let text = String::from_utf8(csv).unwrap();
        assert!(text.contains(",'=1+1,"), "{text}");
        assert!(text.lines().next().unwrap().contains("办件编号"));
        assert!(text.contains(",K-1,"), "{text}");
    }

    #[test]
    fn xlsx_holds_text_cells_with_the_original_value() {
        use calamine::{Data, Reader, Xlsx};
        let bytes = errors_xlsx("办件编号", Some("整个文件"), &[rejection("=1+1")]).unwrap();
        let mut book: Xlsx<_> = calamine::open_workbook_from_rs(io::Cursor::new(bytes)).unwrap();
        let range = book.worksheet_range("错误清单").unwrap();
        assert_eq!(range.get((0, 2)), Some(&Data::String("办件编号".into())));
        assert_eq!(range.get((1, 8)), Some(&Data::String("整个文件".into())));
        assert_eq!(range.get((2, 6)), Some(&Data::String("=1+1".into())));
        assert_eq!(range.get((2, 0)), Some(&Data::String("2".into())));
    }
}
