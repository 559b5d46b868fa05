//! The console's records pages against the real daemon: files and their
//! rejection reports, 拒收记录 and 对账 read back from their xlsx
//! downloads, the library's refusals beside a file, the exchange log's
//! export — personal values masked in each.

use std::time::Duration;

use crate::console::{Browser, PASSWORD, console_env, drop_mixed_csv};
use crate::data::{self, Enc};

/// The sheet's cells, row by row, as text.
pub(crate) fn read_xlsx(bytes: &[u8]) -> Vec<Vec<String>> {
    use calamine::{Reader, Xlsx};
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let range = book.worksheet_range_at(0).unwrap().unwrap();
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[test]
fn files_rejections_and_reconciliation_read_back_as_xlsx_masked() {
    let (env, addr) = console_env("");
    let _d = env.start_ready();
    let (_, bad_id) = drop_mixed_csv(&env);
    env.wait("mixed.csv finished", Duration::from_secs(20), || {
        !env.log_entries(&["--event", "file_rejected", "--file", "mixed.csv"])
            .is_empty()
    });
    let mut staff = Browser::new(&addr);
    staff.login("专员", PASSWORD);
    let (s, page) = staff.get("/files?name=mixed");
    assert_eq!(s, 200, "{page}");
    let at = page.find("/files/").unwrap() + 7;
    let id: String = page[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let (s, page) = staff.get(&format!("/files/{id}"));
    assert_eq!(s, 200, "{page}");
    assert!(
        page.contains("GB 11643") && !page.contains(&bad_id),
        "{page}"
    );
    // The report as xlsx: the rejected row, its value masked.
    let (_, bytes) = staff.bytes(&format!("/files/{id}/errors.xlsx"));
    let rows = read_xlsx(&bytes);
    assert!(rows.len() >= 2, "{rows:?}");
    let flat = rows.concat().join("|");
    assert!(
        flat.contains("GB 11643") && !flat.contains(&bad_id),
        "{flat}"
    );
    assert!(
        flat.contains(&bad_id[..6]),
        "masked keeps the first six: {flat}"
    );
    // 拒收记录, exported.
    let (_, page) = staff.get("/rejections?dataset=case_accept");
    assert!(
        page.contains("mixed.csv") && !page.contains(&bad_id),
        "{page}"
    );
    let (_, bytes) = staff.bytes("/rejections?xlsx=1");
    let flat = read_xlsx(&bytes).concat().join("|");
    assert!(
        flat.contains("mixed.csv") && !flat.contains(&bad_id),
        "{flat}"
    );
    // Another dataset's file is not theirs.
    let other = staff.get("/files?dataset=evaluation").1;
    assert!(!other.contains("mixed.csv"));
    // 对账 for today, as the auditor, balanced, and as xlsx.
    let mut auditor = Browser::new(&addr);
    auditor.login("审计员", PASSWORD);
    let (s, page) = auditor.get("/reconcile");
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("全部平衡"), "{page}");
    let rows = read_xlsx(&auditor.bytes("/reconcile?xlsx=1").1);
    let row = rows.iter().find(|r| r[0] == "case_accept").unwrap();
    assert_eq!((row[2].as_str(), row[3].as_str()), ("3", "1"), "{rows:?}");
    assert_eq!(staff.get("/reconcile").0, 403);
}

#[test]
fn a_file_page_shows_the_library_s_refusals_masked_even_when_it_quotes_values() {
    let (env, addr) = console_env("");
    let _d = env.start_ready();
    let recs: Vec<_> = (0..3).map(data::case_accept).collect();
    env.drop_file("case_accept", "p.csv", &data::csv(&recs, true, Enc::Utf8));
    let receipt = env.receipt("case_accept", "p.csv");
    let batch = receipt["batches"][0]["batchId"]
        .as_str()
        .unwrap()
        .to_string();
    // The collector refuses record 1 and quotes its ID number back.
    let id = data::id_card(1);
    let ack = serde_json::json!({
        "receiptId": "R-9", "accepted": 2,
        "rejected": [{"index": 1, "code": "422007", "message": format!("证件号码 {id} 与姓名不符")}],
    });
    let dir = env.outbox("case_accept");
    std::fs::write(dir.join(format!(".{batch}.ack.tmp")), ack.to_string()).unwrap();
    std::fs::rename(
        dir.join(format!(".{batch}.ack.tmp")),
        dir.join(format!("{batch}.ack")),
    )
    .unwrap();
    env.wait("delivered", Duration::from_secs(20), || {
        env.batch(&batch)["state"] == "delivered"
    });
    let mut staff = Browser::new(&addr);
    staff.login("专员", PASSWORD);
    let (_, list) = staff.get("/files?name=p.csv");
    let at = list.find("/files/").unwrap() + 7;
    let file_id: String = list[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let (s, page) = staff.get(&format!("/files/{file_id}"));
    assert_eq!(s, 200, "{page}");
    assert!(
        page.contains("资源库 422007") && page.contains("与姓名不符"),
        "{page}"
    );
    for (f, v) in &recs[1] {
        if matches!(*f, "applyer_page_code" | "contact_mobile" | "applyer_name") {
            assert!(!page.contains(v.as_str()), "{f} in clear: {page}");
        }
    }
}

#[test]
fn the_auditor_exports_the_log_s_entries_with_their_hashes() {
    let (env, addr) = console_env("");
    let _d = env.start_ready();
    let mut auditor = crate::console::Browser::new(&addr);
    auditor.login("审计员", PASSWORD);
    let (s, bytes) = auditor.bytes("/log?event=console_login&export=1");
    assert_eq!(s, 200);
    let lines: Vec<serde_json::Value> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The same entries `fepd audit show --json` prints.
    assert_eq!(lines, env.log_entries(&["--event", "console_login"]));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["details"]["user"], "审计员");
    assert!(lines[0]["hash"].as_str().is_some_and(|h| h.len() == 64));
    let mut staff = crate::console::Browser::new(&addr);
    staff.login("专员", PASSWORD);
    assert_eq!(staff.bytes("/log?export=1").0, 403);
}
