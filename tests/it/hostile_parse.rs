//! Hostile input for the parsers (issue 11): files that used to kill the
//! daemon are refused by a named limit, a file that kills it anyway is set
//! aside by the crash-loop breaker, and a quoting error that swallows
//! lines accounts for every one of them.

use std::io::Write;
use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

/// A workbook whose first sheet is `sheet` (the inside of `<worksheet>`),
/// with `xl/sharedStrings.xml` if given. Written by hand: these files are
/// the kind no spreadsheet program writes.
fn raw_xlsx(sheet: &str, shared: Option<&str>) -> Vec<u8> {
    let mut parts = vec![
        ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_owned()),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_owned()),
        ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_owned()),
        ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_owned()),
        ("xl/worksheets/sheet1.xml", format!(r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{sheet}</worksheet>"#)),
    ];
    if let Some(s) = shared {
        parts.push(("xl/sharedStrings.xml", s.to_owned()));
    }
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in parts {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Excel's column letters for a 0-based column (up to ZZ).
fn column(i: usize) -> String {
    let letter = |n: usize| char::from(b'A' + n as u8);
    if i < 26 {
        letter(i).to_string()
    } else {
        format!("{}{}", letter(i / 26 - 1), letter(i % 26))
    }
}

/// Issue 11's crash files: a 35 KB XML with one field nested 5,000 deep,
/// a 2 KB XLSX whose cells are its header row and XFD1048576, and an XLSX with 15 M
/// empty shared strings.
fn crash_files() -> Vec<(&'static str, Vec<u8>)> {
    let rec = &data::case_accept(1);
    let mut xml = String::from("<records><record>");
    for (k, v) in rec {
        xml.push_str(&format!("<{k}>{v}</{k}>"));
    }
    xml.push_str(&format!(
        "<note>{}deep{}</note></record></records>",
        "<a>".repeat(5000),
        "</a>".repeat(5000)
    ));
    // A header the dataset knows (every field of a record), so that the
    // header check passes and the far cell's row is what is refused.
    let header: String = rec
        .iter()
        .enumerate()
        .map(|(i, (k, _))| {
            format!(
                r#"<c r="{}1" t="inlineStr"><is><t>{k}</t></is></c>"#,
                column(i)
            )
        })
        .collect();
    let far = raw_xlsx(
        &format!(
            r#"<dimension ref="A1:XFD1048576"/><sheetData><row r="1">{header}</row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>"#
        ),
        None,
    );
    let sst = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{}</sst>"#,
        "<si/>".repeat(15_000_000)
    );
    let strings = raw_xlsx(
        r#"<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row></sheetData>"#,
        Some(&sst),
    );
    vec![
        ("deep.xml", xml.into_bytes()),
        ("far-cell.xlsx", far),
        ("strings.xlsx", strings),
    ]
}

#[test]
fn crash_files_are_refused_by_their_limits_and_the_daemon_goes_on() {
    let env = Env::new("");
    let files = crash_files();
    assert!(files[0].1.len() < 40_000 && files[1].1.len() < 2_000);
    // fepd validate reads them the same way and must not abort either.
    for (name, bytes) in &files {
        let p = env.root.join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = env.fepd(&["validate", "--dataset", "case_accept", p.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}");
    }
    let mut d = env.start();
    for (name, bytes) in &files {
        env.drop_file("case_accept", name, bytes);
    }
    let good: Vec<_> = (10..13).map(data::case_accept).collect();
    env.drop_file(
        "case_accept",
        "after.csv",
        &data::csv(&good, false, Enc::Utf8),
    );
    let evals: Vec<_> = (0..2).map(data::evaluation).collect();
    env.drop_file("evaluation", "e.jsonl", &data::jsonl(&evals, Enc::Utf8));

    let deep = env.report("case_accept", "deep.xml");
    let fault = deep["fault"].as_str().unwrap();
    assert!(fault.contains("max_nesting_depth 上限（32 层）"), "{fault}");
    assert_eq!(deep["counts"]["sealed"], 0);

    let far = env.report("case_accept", "far-cell.xlsx");
    assert_eq!(far["counts"]["received"], 1, "{far:#}");
    assert_eq!(far["counts"]["rejected"], 1);
    assert_eq!(far["errors"][0]["row"], 1_048_576);
    let message = far["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("XFD") && message.contains("max_columns"),
        "{message}"
    );

    let strings = env.report("case_accept", "strings.xlsx");
    let fault = strings["fault"].as_str().unwrap();
    assert!(fault.contains("max_xlsx_shared_strings"), "{fault}");

    assert_eq!(
        env.receipt("case_accept", "after.csv")["counts"]["sealed"],
        3
    );
    assert_eq!(env.receipt("evaluation", "e.jsonl")["counts"]["sealed"], 2);
    assert!(d.wait_exit(Duration::ZERO).is_none(), "the daemon died");
    let (st, _) = d.stop();
    assert!(st.success());
}

#[test]
fn a_file_the_worker_dies_on_is_set_aside_and_the_rest_goes_on() {
    // The switch that makes a worker abort exists in debug builds only.
    if !cfg!(debug_assertions) {
        eprintln!("skipped: FEPD_TEST_ABORT_ON needs a debug build of fepd");
        return;
    }
    let env = Env::new("");
    let abort = [("FEPD_TEST_ABORT_ON", "poison")];
    let recs: Vec<_> = (0..6).map(data::case_accept).collect();
    env.drop_file(
        "case_accept",
        "poison.csv",
        &data::csv(&recs[..3], false, Enc::Utf8),
    );

    // First run: the worker takes the poison file and the process dies.
    let mut d = env.start_with_env(&abort);
    let st = d.wait_exit(Duration::from_secs(60)).expect("fepd aborts");
    assert!(!st.success());
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGABRT)
    );

    // Second run: files in the inbox, of this dataset and another, go
    // before the file fepd died on, which then kills it again.
    env.drop_file(
        "case_accept",
        "second.csv",
        &data::csv(&recs[3..], false, Enc::Utf8),
    );
    let evals: Vec<_> = (0..2).map(data::evaluation).collect();
    env.drop_file("evaluation", "e.jsonl", &data::jsonl(&evals, Enc::Utf8));
    let mut d = env.start_with_env(&abort);
    let st = d
        .wait_exit(Duration::from_secs(60))
        .expect("fepd aborts again");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGABRT)
    );
    assert_eq!(
        env.receipt("case_accept", "second.csv")["counts"]["sealed"],
        3
    );
    assert_eq!(env.receipt("evaluation", "e.jsonl")["counts"]["sealed"], 2);
    assert!(env.log_has("poison.csv"), "no log line names the file");

    // Third run: the file is set aside without being read, and the daemon
    // keeps serving.
    let mut d = env.start_with_env(&abort);
    let rep = env.report("case_accept", "poison.csv");
    let fault = rep["fault"].as_str().unwrap();
    assert!(fault.contains("连续 2 次异常终止"), "{fault}");
    assert_eq!(rep["counts"]["received"], 0);
    assert!(files_in(&env.spool("case_accept", "work")).is_empty());
    let more: Vec<_> = (20..22).map(data::case_accept).collect();
    env.drop_file(
        "case_accept",
        "third.csv",
        &data::csv(&more, false, Enc::Utf8),
    );
    assert_eq!(
        env.receipt("case_accept", "third.csv")["counts"]["sealed"],
        2
    );
    assert!(
        d.wait_exit(Duration::ZERO).is_none(),
        "the daemon died a third time"
    );
    let (st, _) = d.stop();
    assert!(st.success());
    let shown = env.fepd(&["audit", "show", "--event", "file_rejected", "--json"]);
    let lines = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(lines.contains("\"deadAttempts\":2"), "{lines}");
    assert_eq!(env.fepd(&["audit", "verify"]).status.code(), Some(0));
}

#[test]
fn a_restart_mid_file_is_not_a_death() {
    // Killed twice and drained once in the middle of one file, each time
    // after progress: the breaker counts none of it, the file completes.
    let env = Env::new("");
    env.set_intake("chunk_records", 200);
    let recs: Vec<_> = (0..10_000).map(data::case_accept).collect();
    let done = env.spool("case_accept", "done").join("big.jsonl");
    let mut mid_file = 0;
    for round in 0..3 {
        let d = env.start();
        if round == 0 {
            env.drop_file("case_accept", "big.jsonl", &data::jsonl(&recs, Enc::Utf8));
        }
        let before = env.records_committed();
        env.wait("a chunk committed", Duration::from_secs(60), || {
            env.records_committed() > before || done.exists()
        });
        if !done.exists() {
            mid_file += 1;
        }
        if round == 1 {
            let (st, _) = d.stop();
            assert!(st.success());
        } else {
            d.kill();
        }
    }
    assert!(mid_file >= 2, "the file finished too soon to test anything");
    let _d = env.start();
    assert_eq!(
        env.receipt("case_accept", "big.jsonl")["counts"]["sealed"],
        10_000
    );
}

#[test]
fn an_unclosed_quote_accounts_for_every_line_it_swallowed() {
    let env = Env::new("");
    let _d = env.start();
    let recs: Vec<_> = (0..10).map(data::case_accept).collect();
    let text = String::from_utf8(data::csv(&recs, false, Enc::Utf8)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Record 3 (line 4): its second field opens a quote that never closes.
    let mut fields: Vec<&str> = lines[3].split(',').collect();
    let opened = format!("\"{}", fields[1]);
    fields[1] = &opened;
    lines[3] = fields.join(",");
    env.drop_file("case_accept", "q.csv", (lines.join("\n") + "\n").as_bytes());
    let rep = env.report("case_accept", "q.csv");
    assert_eq!(rep["counts"]["received"], 10, "{rep:#}");
    assert_eq!(rep["counts"]["sealed"], 2);
    assert_eq!(rep["counts"]["rejected"], 8);
    let rows: Vec<i64> = rep["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, (4..=11).collect::<Vec<_>>());
    let first = rep["errors"][0]["message"].as_str().unwrap();
    assert!(
        first.contains("引号未闭合") && first.contains("第 4 行延续到第 11 行"),
        "{first}"
    );

    // JSON Lines written with old Mac line ends (CR only): every record is
    // read, none swallowed into one giant line.
    let evals: Vec<_> = (0..4).map(data::evaluation).collect();
    let text = String::from_utf8(data::jsonl(&evals, Enc::Utf8))
        .unwrap()
        .replace('\n', "\r");
    env.drop_file("evaluation", "mac.jsonl", text.as_bytes());
    assert_eq!(
        env.receipt("evaluation", "mac.jsonl")["counts"]["sealed"],
        4
    );
}
