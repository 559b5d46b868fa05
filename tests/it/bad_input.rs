//! The product's bad-input rules, row by row: what each bad input gets, and
//! that nothing else is lost.

use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

#[test]
fn malformed_jsonl_line_rejects_only_that_record() {
    let env = Env::new("");
    let _d = env.start();
    let recs: Vec<_> = (0..3).map(data::case_accept).collect();
    let mut text = String::from_utf8(data::jsonl(&recs, Enc::Utf8)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    text = format!(
        "{}\n{{\"project_no\": \"broken\n{}\n{}\n",
        lines[0], lines[1], lines[2]
    );
    env.drop_file("case_accept", "m.jsonl", text.as_bytes());
    let rep = env.report("case_accept", "m.jsonl");
    assert_eq!(rep["counts"]["sealed"], 3);
    assert_eq!(rep["counts"]["rejected"], 1);
    assert_eq!(rep["errors"][0]["row"], 2, "{rep:#}");
    assert_eq!(rep["errors"][0]["rule"], "parse");
}

#[test]
fn ragged_csv_row_rejects_only_that_record() {
    let env = Env::new("");
    let _d = env.start();
    let recs: Vec<_> = (0..3).map(data::case_accept).collect();
    let text = String::from_utf8(data::csv(&recs, false, Enc::Utf8)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = lines[2].split(',').take(4).collect::<Vec<_>>().join(",");
    env.drop_file("case_accept", "r.csv", (lines.join("\n") + "\n").as_bytes());
    let rep = env.report("case_accept", "r.csv");
    assert_eq!(rep["counts"]["sealed"], 2);
    assert_eq!(rep["counts"]["rejected"], 1);
    assert_eq!(rep["errors"][0]["row"], 3);
}

#[test]
fn truncated_xml_and_json_reject_the_whole_file() {
    let env = Env::new("");
    let _d = env.start();
    let recs: Vec<_> = (0..5).map(data::case_accept).collect();
    let xml = data::xml(&recs, Enc::Utf8);
    env.drop_file("case_accept", "t.xml", &xml[..xml.len() - 40]);
    let json = data::json(&recs, false, Enc::Utf8);
    env.drop_file("case_accept", "t.json", &json[..json.len() - 30]);
    for name in ["t.xml", "t.json"] {
        let rep = env.report("case_accept", name);
        let fault = rep["fault"].as_str().unwrap();
        assert!(
            fault.contains("行") && fault.contains("字节"),
            "{name}: {fault}"
        );
        assert_eq!(rep["counts"]["sealed"], 0, "{name}");
    }
    assert!(env.outbox_records("case_accept").is_empty());
}

#[test]
fn undecodable_byte_rejects_the_file_with_its_offset() {
    let env = Env::new("");
    let _d = env.start();
    let recs: Vec<_> = (0..2).map(data::case_accept).collect();
    let mut bytes = data::csv(&recs, false, Enc::Utf8);
    let at = bytes.len() - 10;
    bytes[at] = 0xFF;
    env.drop_file("case_accept", "u.csv", &bytes);
    let rep = env.report("case_accept", "u.csv");
    let fault = rep["fault"].as_str().unwrap();
    assert!(
        fault.contains(&at.to_string()),
        "offset {at} not named: {fault}"
    );
    assert_eq!(rep["counts"]["sealed"], 0);
}

#[test]
fn empty_file_and_header_only_csv_are_done_with_zero() {
    let env = Env::new("");
    let _d = env.start();
    env.drop_file("case_accept", "empty.jsonl", b"");
    // A complete header (an incomplete one is a header verdict now).
    let fields: Vec<&str> = data::case_accept(0).iter().map(|(k, _)| *k).collect();
    let header = format!("{}\n", fields.join(","));
    env.drop_file("case_accept", "header.csv", header.as_bytes());
    for name in ["empty.jsonl", "header.csv"] {
        let r = env.receipt("case_accept", name);
        assert_eq!(r["counts"]["received"], 0, "{name}");
        assert!(
            !r["warnings"].as_array().unwrap().is_empty(),
            "{name}: no warning"
        );
    }
    assert_eq!(env.events("file_empty"), 2);
}

#[test]
fn oversized_records() {
    let env = Env::new("");
    env.set_intake("max_record_bytes", 2000);
    let _d = env.start();
    // Each file its own records, so that none is skipped as unchanged.
    let recs = |from: u64| {
        let mut recs: Vec<_> = (from..from + 3).map(data::case_accept).collect();
        for (k, v) in recs[1].iter_mut() {
            if *k == "task_name" {
                *v = "长".repeat(900);
            }
        }
        recs
    };
    env.drop_file(
        "case_accept",
        "big.jsonl",
        &data::jsonl(&recs(0), Enc::Utf8),
    );
    env.drop_file(
        "case_accept",
        "big.csv",
        &data::csv(&recs(10), false, Enc::Utf8),
    );
    env.drop_file("case_accept", "big.xml", &data::xml(&recs(20), Enc::Utf8));
    env.drop_file(
        "case_accept",
        "big.json",
        &data::json(&recs(30), false, Enc::Utf8),
    );
    for name in ["big.jsonl", "big.csv"] {
        let rep = env.report("case_accept", name);
        assert_eq!(rep["counts"]["rejected"], 1, "{name}");
        assert_eq!(rep["counts"]["sealed"], 2, "{name}");
    }
    for name in ["big.xml", "big.json"] {
        let rep = env.report("case_accept", name);
        assert!(rep["fault"].is_string(), "{name}");
        assert_eq!(rep["counts"]["sealed"], 0, "{name}");
    }
}

#[test]
fn invalid_records_name_field_title_value_and_rule() {
    let env = Env::new("");
    let _d = env.start();
    let mut recs: Vec<_> = (0..4).map(data::case_accept).collect();
    recs[0].retain(|(k, _)| *k != "org_name"); // missing required field
    for (k, v) in recs[1].iter_mut() {
        if *k == "project_type" {
            *v = "7".into(); // not in the code list
        }
    }
    for (k, v) in recs[2].iter_mut() {
        if *k == "accept_date" {
            *v = "2026-13-40 25:00:00".into(); // not a date
        }
    }
    env.drop_file("case_accept", "inv.jsonl", &data::jsonl(&recs, Enc::Utf8));
    let rep = env.report("case_accept", "inv.jsonl");
    assert_eq!(rep["counts"]["rejected"], 3);
    assert_eq!(rep["counts"]["sealed"], 1);
    let errs = rep["errors"].as_array().unwrap();
    let find = |f: &str| {
        errs.iter()
            .find(|e| e["field"] == f)
            .unwrap_or_else(|| panic!("no error for {f}: {errs:#?}"))
    };
    assert_eq!(find("org_name")["title"], "受理部门");
    assert_eq!(find("org_name")["rule"], "required");
    assert_eq!(find("project_type")["value"], "7");
    assert_eq!(find("project_type")["title"], "办件类型");
    assert_eq!(find("accept_date")["title"], "受理时间");
    for e in errs {
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
}

#[test]
fn personal_data_is_masked_in_reports() {
    let env = Env::new("");
    let _d = env.start();
    let mut rec = data::case_accept(1);
    let id = data::id_card(1);
    let bad = format!("{}{}", &id[..17], if id.ends_with('0') { "1" } else { "0" });
    for (k, v) in rec.iter_mut() {
        if *k == "applyer_page_code" {
            *v = bad.clone();
        }
    }
    env.drop_file("case_accept", "pii.jsonl", &data::jsonl(&[rec], Enc::Utf8));
    let rep = env.report("case_accept", "pii.jsonl");
    let text = rep.to_string();
    assert!(!text.contains(&bad), "ID number in clear: {text}");
    let e = &rep["errors"][0];
    assert_eq!(e["field"], "applyer_page_code");
    assert_eq!(e["rule"], "GB 11643");
    let v = e["value"].as_str().unwrap();
    assert!(
        v.starts_with(&bad[..6]) && v.ends_with(&bad[14..]) && v.contains('*'),
        "{v}"
    );
    let csv = std::fs::read_to_string(
        env.spool("case_accept", "rejected")
            .join("pii.jsonl.errors.csv"),
    )
    .unwrap();
    assert!(!csv.contains(&bad));
}

#[test]
fn doctype_rejects_xml() {
    let env = Env::new("");
    let _d = env.start();
    let xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY x \"boom\">]>\n<records><record><project_no>&x;</project_no></record></records>\n";
    env.drop_file("case_accept", "dt.xml", xml.as_bytes());
    let rep = env.report("case_accept", "dt.xml");
    assert!(
        rep["fault"].as_str().unwrap().contains("DOCTYPE"),
        "{rep:#}"
    );
}

#[test]
fn oversized_file_is_refused_with_the_limit_named() {
    let env = Env::new("");
    env.set_intake("max_file_bytes", 1000);
    let _d = env.start();
    let recs: Vec<_> = (0..20).map(data::case_accept).collect();
    env.drop_file(
        "case_accept",
        "huge.csv",
        &data::csv(&recs, false, Enc::Utf8),
    );
    // Refused by its size before anything is read: left in the inbox,
    // logged once and listed by `fepd status` with the limit named.
    env.wait(
        "the oversized file refused",
        Duration::from_secs(10),
        || env.log_has("too_large"),
    );
    let st = env.fepd(&["status", "--json"]);
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(st.contains("max_file_bytes = 1000"), "{st}");
    assert!(env.spool("case_accept", "inbox").join("huge.csv").exists());
    assert!(env.outbox_records("case_accept").is_empty());
}

#[test]
fn xlsx_bomb_is_rejected_with_the_limit_named() {
    let env = Env::new("");
    env.set_intake("max_xlsx_unpacked_bytes", 1000);
    let _d = env.start();
    let recs: Vec<_> = (0..20).map(data::case_accept).collect();
    let x = env.root.join("b.xlsx");
    data::xlsx(&recs, &x);
    env.drop_file("case_accept", "bomb.xlsx", &std::fs::read(&x).unwrap());
    let rep = env.report("case_accept", "bomb.xlsx");
    assert!(
        rep["fault"]
            .as_str()
            .unwrap()
            .contains("max_xlsx_unpacked_bytes"),
        "{rep:#}"
    );
    assert_eq!(rep["counts"]["sealed"], 0);
}

#[test]
fn symlinks_fifos_directories_unknown_folders_and_unreadable_files_are_left_alone() {
    let env = Env::new("");
    let inbox = env.spool("case_accept", "inbox");
    std::fs::create_dir_all(inbox.join("subdir")).unwrap();
    let target = env.root.join("secret.csv");
    let recs: Vec<_> = (0..2).map(data::case_accept).collect();
    std::fs::write(&target, data::csv(&recs, false, Enc::Utf8)).unwrap();
    std::os::unix::fs::symlink(&target, inbox.join("link.csv")).unwrap();
    let fifo = inbox.join("pipe.csv");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let unknown = env.root.join("spool/not_a_dataset/inbox");
    std::fs::create_dir_all(&unknown).unwrap();
    std::fs::write(unknown.join("x.csv"), "a,b\n1,2\n").unwrap();
    let d = env.start();
    // A good file dropped after them still flows.
    env.drop_file(
        "case_accept",
        "good.csv",
        &data::csv(&recs, false, Enc::Utf8),
    );
    assert_eq!(
        env.receipt("case_accept", "good.csv")["counts"]["sealed"],
        2
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (st, stderr) = d.stop();
    assert!(st.success());
    assert!(inbox.join("link.csv").is_symlink());
    assert!(inbox.join("pipe.csv").exists());
    assert!(inbox.join("subdir").is_dir());
    assert!(unknown.join("x.csv").exists());
    assert!(
        stderr.contains("file not taken") && stderr.contains("symlink"),
        "{stderr}"
    );
    assert!(stderr.contains("special_file"), "{stderr}");
    assert!(stderr.contains("not_a_dataset"), "{stderr}");
    assert!(target.exists());
}
