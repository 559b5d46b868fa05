//! Files made the way data staff make them — spreadsheets with title rows
//! and instruction sheets, hand-edited CSVs, Excel's number and date
//! habits — and what fepd tells them back: header verdicts, messages that
//! say what to do, safe error files, 回执 and templates (the library's
//! refusals reported beside the file: `data_staff_reports.rs`).

use std::io::{Cursor, Read, Write};

use crate::data::{self, Enc, Record};
use crate::harness::*;

/// `fepd validate` on `bytes` saved as `name`: (exit code, stdout).
fn validate(env: &Env, dataset: &str, name: &str, bytes: &[u8]) -> (Option<i32>, String) {
    let f = env.root.join(name);
    std::fs::write(&f, bytes).unwrap();
    let out = env.fepd(&["validate", "--dataset", dataset, f.to_str().unwrap()]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub(crate) fn recs(n: u64) -> Vec<Record> {
    (0..n).map(data::case_accept).collect()
}

fn set(r: &mut Record, field: &str, value: &str) {
    r.iter_mut().find(|(k, _)| *k == field).unwrap().1 = value.to_string();
}

/// CSV with Chinese titles, one title replaced by `header`.
fn csv_with_header(records: &[Record], field: &str, header: &str) -> Vec<u8> {
    let text = String::from_utf8(data::csv(records, true, Enc::Utf8)).unwrap();
    let (head, rest) = text.split_once('\n').unwrap();
    let head = head
        .split(',')
        .map(|t| if t == data::title(field) { header } else { t })
        .collect::<Vec<_>>()
        .join(",");
    format!("{head}\n{rest}").into_bytes()
}

/// An XLSX workbook: `sheets` of rows of text cells (a row may be empty).
fn workbook(sheets: &[(&str, Vec<Vec<String>>)]) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    for (name, rows) in sheets {
        let ws = wb.add_worksheet();
        ws.set_name(*name).unwrap();
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                ws.write_string(r as u32, c as u16, v).unwrap();
            }
        }
    }
    wb.save_to_buffer().unwrap()
}

/// The header row and data rows of `records`, Chinese titles.
fn table(records: &[Record]) -> Vec<Vec<String>> {
    let mut rows = vec![
        records[0]
            .iter()
            .map(|(k, _)| data::title(k).to_string())
            .collect(),
    ];
    rows.extend(
        records
            .iter()
            .map(|r| r.iter().map(|(_, v)| v.clone()).collect()),
    );
    rows
}

#[test]
fn a_misspelt_column_is_one_header_verdict_before_any_record_line() {
    let env = Env::new("");
    let bytes = csv_with_header(&recs(50), "applyer_page_code", "申请人证件号");
    let (code, out) = validate(&env, "case_accept", "a.csv", &bytes);
    assert_eq!(code, Some(1), "{out}");
    let first = out.lines().next().unwrap();
    assert!(first.contains("整个文件被拒绝"), "{out}");
    assert!(first.contains("缺少必填列「申请人证件号码」"), "{out}");
    assert!(first.contains("「申请人证件号」是否就是它"), "{out}");
    // Named once, not once per row.
    assert_eq!(out.matches("申请人证件号码").count(), 2, "{out}");
    assert!(!out.contains("第 2 行"), "per-record lines: {out}");
}

#[test]
fn a_missing_column_and_extra_columns_in_the_daemon() {
    let env = Env::new("");
    let _d = env.start();
    // Missing: the report names the column once and nothing is sealed.
    let mut missing = recs(20);
    for r in &mut missing {
        r.retain(|(k, _)| *k != "org_name");
    }
    env.drop_file(
        "case_accept",
        "missing.csv",
        &data::csv(&missing, true, Enc::Utf8),
    );
    let rep = env.report("case_accept", "missing.csv");
    let fault = rep["fault"].as_str().unwrap();
    assert!(
        fault.contains("缺少必填列「受理部门」（org_name）"),
        "{fault}"
    );
    assert_eq!(rep["counts"]["received"], 0);
    assert_eq!(rep["errors"].as_array().unwrap().len(), 0);

    // Extra columns: ignored, named in the receipt (with the likely title).
    let text = String::from_utf8(data::csv(&recs(3), true, Enc::Utf8)).unwrap();
    let extra: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l},备注,受理部门编号\n")
            } else {
                format!("{l},x,y\n")
            }
        })
        .collect();
    env.drop_file("case_accept", "extra.csv", extra.as_bytes());
    let r = env.receipt("case_accept", "extra.csv");
    assert_eq!(r["counts"]["sealed"], 3, "{r:#}");
    let ignored: Vec<&str> = r["ignoredColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        ignored,
        ["备注", "受理部门编号（是否应为「受理部门编码」？）"]
    );
    // The 回执 beside it says the same in a sentence.
    let notice =
        std::fs::read_to_string(env.spool("case_accept", "done").join("extra.csv.回执.txt"))
            .unwrap();
    assert!(notice.contains("收到 3 条；发送 3 条"), "{notice}");
    assert!(notice.contains("受理部门编号"), "{notice}");
}

#[test]
fn a_headerless_csv_is_refused_not_read_as_data() {
    let env = Env::new("");
    let _d = env.start();
    let text = String::from_utf8(data::csv(&recs(1), false, Enc::Utf8)).unwrap();
    let row = text.lines().nth(1).unwrap();
    env.drop_file("case_accept", "noheader.csv", format!("{row}\n").as_bytes());
    let rep = env.report("case_accept", "noheader.csv");
    let fault = rep["fault"].as_str().unwrap();
    assert!(fault.starts_with("表头无法识别"), "{fault}");
    assert!(fault.contains("header_row"), "{fault}");
    assert_eq!(rep["counts"]["received"], 0);
    // No per-row error: the verdict is about the file.
    assert_eq!(rep["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn a_title_row_needs_header_row_and_is_then_read() {
    let mut rows = vec![
        vec!["东城区办件受理信息表（2026年11月）".to_string()],
        vec![],
    ];
    rows.extend(table(&recs(4)));
    let bytes = workbook(&[("Sheet1", rows)]);

    let env = Env::new("");
    let (code, out) = validate(&env, "case_accept", "t.xlsx", &bytes);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("表头无法识别"), "{out}");
    assert!(out.contains("header_row"), "{out}");
    assert!(!out.contains("编码 binary"), "{out}");

    env.set_dataset("case_accept", "header_row", 3);
    let (code, out) = validate(&env, "case_accept", "t.xlsx", &bytes);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("共 4 条记录，通过 4 条"), "{out}");
    assert!(!out.contains("binary"), "{out}");

    // The same in the daemon; positions are the sheet's rows.
    let _d = env.start();
    env.drop_file("case_accept", "t.xlsx", &bytes);
    let r = env.receipt("case_accept", "t.xlsx");
    assert_eq!(r["counts"]["sealed"], 4, "{r:#}");
    assert!(r.get("encoding").is_none_or(|e| e.is_null()), "{r:#}");
}

#[test]
fn an_instructions_sheet_first_needs_sheet_and_is_then_skipped() {
    let help = vec![
        vec!["填报说明".to_string()],
        vec!["1. 每行一条办件".to_string()],
    ];
    let bytes = workbook(&[("填报说明", help), ("数据", table(&recs(2)))]);
    let env = Env::new("");
    let (code, out) = validate(&env, "case_accept", "s.xlsx", &bytes);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("表头无法识别"), "{out}");
    assert!(out.contains("填报说明、数据"), "sheets named: {out}");
    assert!(out.contains("sheet"), "{out}");

    env.set_dataset("case_accept", "sheet", "数据");
    let (code, out) = validate(&env, "case_accept", "s.xlsx", &bytes);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("通过 2 条"), "{out}");

    let env = Env::new("");
    env.set_dataset("case_accept", "sheet", 2);
    let (code, out) = validate(&env, "case_accept", "s.xlsx", &bytes);
    assert_eq!(code, Some(0), "{out}");
    let env = Env::new("");
    env.set_dataset("case_accept", "sheet", "明细");
    let (code, out) = validate(&env, "case_accept", "s.xlsx", &bytes);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("sheet = \"明细\" 不存在"), "{out}");
}

#[test]
fn aliases_map_a_province_s_titles() {
    let env = Env::new("");
    let aliases = toml::Table::from_iter([("办件流水号".to_string(), "project_no".into())]);
    env.set_dataset("case_accept", "aliases", aliases);
    let bytes = csv_with_header(&recs(2), "project_no", "办件流水号");
    let (code, out) = validate(&env, "case_accept", "a.csv", &bytes);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn blank_looking_rows_are_skipped_and_counted() {
    let env = Env::new("");
    let _d = env.start();
    let text = String::from_utf8(data::csv(&recs(3), true, Enc::Utf8)).unwrap();
    let cols = text.lines().next().unwrap().split(',').count();
    let blank = vec![" "; cols].join(",");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2, &blank);
    lines.push(",,,");
    let mixed = format!(
        "{}\n",
        lines.join("\n").replace(",,,", &",".repeat(cols - 1))
    );
    env.drop_file("case_accept", "blank.csv", mixed.as_bytes());
    let r = env.receipt("case_accept", "blank.csv");
    assert_eq!(r["counts"]["received"], 3, "{r:#}");
    assert_eq!(r["counts"]["sealed"], 3, "{r:#}");
    assert_eq!(r["blankRows"], 2, "{r:#}");

    // XLSX: a space typed in an otherwise empty row.
    let others: Vec<Record> = (10..12).map(data::case_accept).collect();
    let mut rows = table(&others);
    rows.insert(2, vec![String::new(), String::new(), " ".to_string()]);
    env.drop_file("case_accept", "blank.xlsx", &workbook(&[("Sheet1", rows)]));
    let r = env.receipt("case_accept", "blank.xlsx");
    assert_eq!(r["counts"]["sealed"], 2, "{r:#}");
    assert_eq!(r["blankRows"], 1, "{r:#}");
}

#[test]
fn formula_looking_values_cannot_run_in_the_error_files() {
    let env = Env::new("");
    let _d = env.start();
    let mut r = recs(2);
    set(&mut r[0], "task_version", "=1+1");
    set(&mut r[1], "area_code", "+8613800000000");
    env.drop_file("case_accept", "f.csv", &data::csv(&r, true, Enc::Utf8));
    let rep = env.report("case_accept", "f.csv");
    assert_eq!(rep["counts"]["rejected"], 2, "{rep:#}");
    let dir = env.spool("case_accept", "rejected");
    let csv = std::fs::read_to_string(dir.join("f.csv.errors.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.contains("办件编号"), "key column: {header}");
    assert!(csv.contains(",'=1+1,"), "{csv}");
    assert!(csv.contains(",'+8613800000000,"), "{csv}");
    assert!(!csv.contains(",=1+1,"), "{csv}");

    // The XLSX holds the original value in a text cell.
    use calamine::{Data, Reader, Xlsx};
    let mut book: Xlsx<_> = calamine::open_workbook(dir.join("f.csv.errors.xlsx")).unwrap();
    let range = book.worksheet_range_at(0).unwrap().unwrap();
    let cells: Vec<&Data> = range.cells().map(|(_, _, d)| d).collect();
    assert!(cells.contains(&&Data::String("=1+1".into())), "{cells:?}");
    assert!(
        cells.contains(&&Data::String("+8613800000000".into())),
        "{cells:?}"
    );
    // Key column: the record key (办件编号) of each rejected record.
    let key = r[0][0].1.clone();
    assert!(cells.contains(&&Data::String(key)), "{cells:?}");
    // The XML says text: no formula element anywhere in the sheet.
    let sheet = zip_entry(
        &std::fs::read(dir.join("f.csv.errors.xlsx")).unwrap(),
        "xl/worksheets/sheet1.xml",
    );
    assert!(!sheet.contains("<f>"), "{sheet}");
    assert!(
        sheet.contains("autoFilter") && sheet.contains("pane"),
        "{sheet}"
    );
}

fn zip_entry(bytes: &[u8], name: &str) -> String {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut s = String::new();
    z.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn an_excel_numeric_id_number_says_to_format_the_column_as_text() {
    let env = Env::new("");
    let mut r = recs(1);
    set(&mut r[0], "applyer_page_code", "1.10105198001010E+17");
    let (code, out) = validate(
        &env,
        "case_accept",
        "n.csv",
        &data::csv(&r, true, Enc::Utf8),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("excel-number"), "{out}");
    assert!(out.contains("“文本”"), "{out}");
    assert!(!out.contains("校验位"), "{out}");

    // The same typed into a numeric XLSX cell.
    let rows = table(&recs(1));
    let id_col = rows[0]
        .iter()
        .position(|t| t == data::title("applyer_page_code"))
        .unwrap();
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if r == 1 && c == id_col {
                ws.write_number(1, c as u16, 110105198001010000.0).unwrap();
            } else {
                ws.write_string(r as u32, c as u16, v).unwrap();
            }
        }
    }
    let bytes = wb.save_to_buffer().unwrap();
    let (code, out) = validate(&env, "case_accept", "n.xlsx", &bytes);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("excel-number"), "{out}");
    // The whole number never appears: it is personal data.
    assert!(!out.contains("110105198001010000"), "{out}");
}

#[test]
fn dates_as_people_type_them() {
    let env = Env::new("");
    for (apply, accept) in [
        ("2026/11/20 9:30", "2026/11/20 10:15"),
        ("2026年11月20日 9:30", "2026年11月20日 10:15:30"),
        ("2026-11-20 09:30:00", "2026/11/20 10:15:30"),
        ("20261120093000", "2026-11-20T10:15:30+08:00"),
    ] {
        let mut r = recs(1);
        set(&mut r[0], "apply_date", apply);
        set(&mut r[0], "accept_date", accept);
        let (code, out) = validate(
            &env,
            "case_accept",
            "d.csv",
            &data::csv(&r, true, Enc::Utf8),
        );
        assert_eq!(code, Some(0), "{apply} / {accept}: {out}");
    }
    let cases = [
        (
            "2026-02-30 10:00:00",
            "这个日期不存在（2026 年 2 月没有 30 日）",
        ),
        ("2026/11/20", "只有日期，缺少时间"),
        ("11/20/2026 9:30", "不是有效的日期时间"),
    ];
    for (apply, want) in cases {
        let mut r = recs(1);
        set(&mut r[0], "apply_date", apply);
        let (code, out) = validate(
            &env,
            "case_accept",
            "d.csv",
            &data::csv(&r, true, Enc::Utf8),
        );
        assert_eq!(code, Some(1), "{apply}: {out}");
        assert!(out.contains(want), "{apply}: {out}");
    }
}

#[test]
fn an_id_number_with_an_impossible_birth_date_shows_those_digits() {
    let env = Env::new("");
    let mut r = recs(1);
    // Digits 7–14 say 1980-13-01; the rest is masked.
    set(&mut r[0], "applyer_page_code", "110105198013010012");
    let (code, out) = validate(
        &env,
        "case_accept",
        "b.csv",
        &data::csv(&r, true, Enc::Utf8),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("「19801301」"), "{out}");
    assert!(out.contains("没有 13 月"), "{out}");
    assert!(!out.contains("110105198013010012"), "{out}");
}

#[test]
fn xls_and_disguised_workbooks_say_save_as() {
    let env = Env::new("");
    let (code, out) = validate(
        &env,
        "case_accept",
        "old.xls",
        &[0xD0, 0xCF, 0x11, 0xE0, 0, 0],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("另存为") && out.contains(".xlsx"), "{out}");
    let (code, out) = validate(&env, "case_accept", "wps.et", b"whatever");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("WPS"), "{out}");
    // An .xlsx renamed to .csv.
    let bytes = workbook(&[("Sheet1", table(&recs(1)))]);
    let (code, out) = validate(&env, "case_accept", "renamed.csv", &bytes);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("内容是Excel 工作簿"), "{out}");
}

#[test]
fn gbk_declared_as_utf8_says_it_looks_like_gbk() {
    let env = Env::new("");
    env.set_dataset("case_accept", "default_encoding", "utf-8");
    let bytes = data::csv(&recs(2), true, Enc::Gb18030);
    let (code, out) = validate(&env, "case_accept", "g.csv", &bytes);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("看起来是 GBK/GB18030"), "{out}");
    assert!(out.contains("default_encoding = \"gb18030\""), "{out}");
}

#[test]
fn json_lines_syntax_errors_give_the_file_line_in_chinese() {
    let env = Env::new("");
    let good = String::from_utf8(data::jsonl(&recs(2), Enc::Utf8)).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    // Line 2 loses its closing brace.
    lines[1].pop();
    let (code, out) = validate(
        &env,
        "case_accept",
        "j.jsonl",
        format!("{}\n", lines.join("\n")).as_bytes(),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("JSON 行无法解析（第 2 行"), "{out}");
    assert!(out.contains("记录不完整"), "{out}");
    assert!(!out.contains("line 1 column"), "{out}");
}

/// Unzips `bytes`, lets `edit` change the entry `name`, zips it back.
fn rezip(bytes: &[u8], name: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let entry = e.name().unwrap().to_string();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        if entry == name {
            body = edit(String::from_utf8(body).unwrap()).into_bytes();
        }
        out.start_file(entry, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(&body).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn a_filled_template_is_read_back_with_no_configuration() {
    let env = Env::new("");
    let t = env.root.join("case_accept.xlsx");
    let out = env.fepd(&[
        "template",
        "--dataset",
        "case_accept",
        "--out",
        t.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let bytes = std::fs::read(&t).unwrap();

    use calamine::{Reader, Xlsx};
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes.clone())).unwrap();
    assert_eq!(book.sheet_names()[1], "填报说明");
    let header: Vec<String> = book
        .worksheet_range_at(0)
        .unwrap()
        .unwrap()
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml");
    assert!(sheet.contains("<dataValidation type=\"list\""), "{sheet}");
    assert!(sheet.contains("111 居民身份证"), "{sheet}");

    // Fill one row as a person would: codes picked from the drop-downs
    // ("code label"), dates typed the Excel way.
    let rec = &recs(1)[0];
    let value = |title: &str| -> String {
        let (field, v) = rec
            .iter()
            .find(|(k, _)| data::title(k) == title)
            .unwrap_or_else(|| panic!("template column {title}"));
        match *field {
            "project_type" => "2 承诺件".into(),
            "applyer_page_type" => "111 居民身份证".into(),
            "apply_date" => "2026/11/20 9:30".into(),
            _ => v.clone(),
        }
    };
    let cells: String = header
        .iter()
        .enumerate()
        .map(|(c, title)| {
            let col = (b'A' + c as u8) as char;
            format!(
                "<c r=\"{col}2\" t=\"inlineStr\"><is><t>{}</t></is></c>",
                value(title)
            )
        })
        .collect();
    let filled = rezip(&bytes, "xl/worksheets/sheet1.xml", |xml| {
        xml.replacen("</row>", &format!("</row><row r=\"2\">{cells}</row>"), 1)
    });
    let f = env.root.join("filled.xlsx");
    std::fs::write(&f, filled).unwrap();
    let out = env.fepd(&["validate", "--dataset", "case_accept", f.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("共 1 条记录，通过 1 条"), "{stdout}");
}

#[test]
fn check_config_refuses_an_alias_to_no_field() {
    let env = Env::new("");
    let aliases = toml::Table::from_iter([("流水号".to_string(), "no_such_field".into())]);
    env.set_dataset("case_accept", "aliases", aliases);
    let out = env.fepd(&["check-config"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("aliases") && text.contains("no_such_field"),
        "{text}"
    );
}
