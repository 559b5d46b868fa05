//! Template: the Excel workbook data staff fill for a dataset, built from
//! its schema (`fepd template`).
//!
//! The first sheet is the data sheet, so that fepd reads a filled template
//! with no configuration: row 1 holds the fields' Chinese titles, code
//! fields offer a drop-down list of "code label" items (fepd reads such a
//! value as its code), identifiers and codes are text columns (Excel keeps
//! leading zeros and all 18 digits of an ID number), dates and datetimes
//! are date-formatted. The 填报说明 sheet after it lists every field with
//! whether it is required and the rule it must follow; long code lists
//! live on a hidden 代码表 sheet the drop-downs point at. The workbook's
//! timestamps are fixed, so the same schema gives the same bytes.

use rust_xlsxwriter::{
    DataValidation, DataValidationErrorStyle, DocProperties, ExcelDateTime, Format, Formula,
    Workbook, Worksheet, XlsxError,
};

use crate::validate::{Column, ColumnKind, DatasetSchema};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("building the workbook: {0}")]
    Xlsx(#[from] XlsxError),
}

/// Data rows prepared with formats and drop-down lists. Rows past it can
/// still be filled; they just lack the list.
const ROWS: u32 = 5000;

/// Excel's limit on an inline list (the text of its formula).
const INLINE_LIST_CHARS: usize = 255;

/// The data sheet's name: the dataset's Chinese name, within Excel's
/// rules for sheet names (31 characters, none of `[]:*?/\`).
fn sheet_name(schema: &DatasetSchema) -> String {
    let name: String = schema
        .title
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\'))
        .take(31)
        .collect();
    if name.trim().is_empty() {
        schema.name.clone()
    } else {
        name
    }
}

/// A drop-down item: the code with its label.
fn item(code: &str, label: &str) -> String {
    if label.is_empty() {
        code.to_string()
    } else {
        format!("{code} {label}")
    }
}

/// The template of `schema`, as the bytes of an `.xlsx` file.
pub fn build(schema: &DatasetSchema) -> Result<Vec<u8>, TemplateError> {
    let columns: Vec<Column> = schema
        .columns()
        .into_iter()
        .filter(|c| !c.control)
        .collect();
    let mut book = Workbook::new();
    // Fixed, so that regenerating an unchanged template gives the same file.
    let fixed = ExcelDateTime::from_ymd(2026, 1, 1)?;
    book.set_properties(
        &DocProperties::new()
            .set_title(format!("{}（{}）填报模板", schema.title, schema.name))
            .set_creation_datetime(&fixed),
    );

    let head = Format::new()
        .set_bold()
        .set_num_format("@")
        .set_background_color("#DDEBF7");
    let head_required = head.clone().set_font_color("#C00000");
    let text = Format::new().set_num_format("@");
    let integer = Format::new().set_num_format("0");
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");

    let mut lists: Vec<(usize, Vec<String>)> = Vec::new();
    {
        let data = book.add_worksheet();
        data.set_name(sheet_name(schema))?;
        for (i, c) in columns.iter().enumerate() {
            let col = i as u16;
            let (format, width) = match c.kind {
                ColumnKind::Text => (&text, 18.0),
                ColumnKind::Integer => (&integer, 12.0),
                ColumnKind::Number => (&Format::new(), 12.0),
                ColumnKind::Date => (&date, 14.0),
                ColumnKind::DateTime => (&datetime, 20.0),
            };
            let width: f64 = if c.codes.is_empty() { width } else { 22.0 };
            data.set_column_width(col, width.max(c.title.chars().count() as f64 * 2.2))?;
            data.set_column_format(col, format)?;
            let h = if c.required { &head_required } else { &head };
            data.write_string_with_format(0, col, &c.title, h)?;
            validation(data, col, c, &mut lists, i)?;
        }
        data.set_freeze_panes(1, 0)?;
    }

    instructions(book.add_worksheet(), schema, &columns)?;

    if !lists.is_empty() {
        let codes = book.add_worksheet();
        codes.set_name("代码表")?;
        for (n, (i, items)) in lists.iter().enumerate() {
            let col = n as u16;
            codes.write_string(0, col, &columns[*i].title)?;
            for (r, it) in items.iter().enumerate() {
                codes.write_string(r as u32 + 1, col, it)?;
            }
        }
        codes.set_hidden(true);
    }
    Ok(book.save_to_buffer()?)
}

/// The drop-down list of a code column (inline when short enough, else a
/// range on the 代码表 sheet, recorded in `lists`), or an input message
/// for a codes list (a drop-down cannot pick several).
fn validation(
    sheet: &mut Worksheet,
    col: u16,
    c: &Column,
    lists: &mut Vec<(usize, Vec<String>)>,
    index: usize,
) -> Result<(), XlsxError> {
    if c.codes.is_empty() {
        return Ok(());
    }
    let items: Vec<String> = c.codes.iter().map(|(k, l)| item(k, l)).collect();
    let prompt: String = c.rule.chars().take(250).collect();
    let v = if c.codes_list {
        DataValidation::new()
            .allow_any_value()
            .set_input_title(c.title.chars().take(32).collect::<String>())?
            .set_input_message(prompt)?
    } else {
        let inline_len = items.iter().map(|s| s.chars().count() + 1).sum::<usize>();
        let list = if inline_len <= INLINE_LIST_CHARS {
            DataValidation::new().allow_list_strings(&items)?
        } else {
            let n = lists.len();
            let letters = column_letters(n);
            let f = format!("='代码表'!${letters}$2:${letters}${}", items.len() + 1);
            lists.push((index, items));
            DataValidation::new().allow_list_formula(Formula::new(f))
        };
        list.set_error_style(DataValidationErrorStyle::Stop)
            .set_error_title("不在代码表中")?
            .set_error_message("请从下拉列表中选择")?
    };
    sheet.add_data_validation(1, col, ROWS, col, &v)?;
    Ok(())
}

/// The 填报说明 sheet: how to fill the template, then one row per field.
fn instructions(
    sheet: &mut Worksheet,
    schema: &DatasetSchema,
    columns: &[Column],
) -> Result<(), XlsxError> {
    sheet.set_name("填报说明")?;
    let bold = Format::new().set_bold();
    let wrap = Format::new().set_text_wrap();
    sheet.write_string_with_format(
        0,
        0,
        format!("{}（{}）填报说明", schema.title, schema.name),
        &bold,
    )?;
    let notes = [
        "1. 数据填在第一个工作表，第 1 行是表头，请勿修改、删除或调换表头；每行一条记录。",
        "2. 红色表头为必填列。带下拉列表的列请从列表中选择（“代码 名称”均可识别）。",
        "3. 证件号码、编码等列已设为“文本”格式，请勿改为数字，否则 Excel 会丢掉 15 位以后的数字和开头的 0。",
        "4. 日期写成 2026-11-25，日期时间写成 2026-11-25 09:00:00（也可写 2026/11/25 9:00、2026年11月25日）。",
        "5. 填好后保存为 .xlsx（不要另存为 .xls 或 .et），放入本数据集的 inbox 文件夹；结果见 done/ 或 rejected/ 中的回执。",
    ];
    for (i, n) in notes.iter().enumerate() {
        sheet.write_string(i as u32 + 1, 0, *n)?;
    }
    let top = notes.len() as u32 + 2;
    for (c, (title, width)) in [
        ("字段名称", 18.0),
        ("字段名", 22.0),
        ("是否必填", 10.0),
        ("填写要求", 80.0),
    ]
    .into_iter()
    .enumerate()
    {
        sheet.set_column_width(c as u16, width)?;
        sheet.write_string_with_format(top, c as u16, title, &bold)?;
    }
    for (i, c) in columns.iter().enumerate() {
        let r = top + 1 + i as u32;
        sheet.write_string(r, 0, &c.title)?;
        sheet.write_string(r, 1, &c.name)?;
        sheet.write_string(r, 2, if c.required { "必填" } else { "选填" })?;
        let mut rule = c.rule.clone();
        if c.pii {
            rule.push_str("（个人信息：回执和错误清单中会部分隐藏）");
        }
        sheet.write_string_with_format(r, 3, rule, &wrap)?;
    }
    Ok(())
}

/// Spreadsheet column letters of a 0-based index (`0` → `A`, `26` → `AA`).
fn column_letters(mut n: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}

#[cfg(test)]
mod tests;
