//! What data staff are told once a file has left their hands: the
//! library's refusals reported beside the file, masked even when the
//! library quotes values, and a long file's progress in `fepd status`.

use std::time::Duration;

use crate::data::{self, Enc};
use crate::data_staff::recs;
use crate::harness::*;

#[test]
fn library_refusals_are_reported_beside_the_file_masked() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(
        &dir.path().join("lib.db"),
        &["--reject-keys-matching", "000003"],
    );
    let env = Env::http(&lib.base_url, "");
    let _d = env.start();
    let records = recs(6);
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&records, Enc::Utf8));
    let done = env.spool("case_accept", "done");
    let report = done.join("a.jsonl.library-rejected.json");
    // The JSON, CSV and XLSX are written in that order.
    let xlsx = done.join("a.jsonl.library-rejected.errors.xlsx");
    env.wait("library report", Duration::from_secs(30), || xlsx.exists());
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["libraryRejected"], 1, "{doc:#}");
    let rec = &doc["records"][0];
    assert_eq!(rec["code"], "422001");
    assert!(rec["key"].as_str().unwrap().ends_with("000003"));
    // Personal fields masked; the library's code and message kept.
    let id = data::id_card(3);
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(!text.contains(&id), "ID number in clear: {text}");
    assert!(!text.contains("张三3"), "name in clear: {text}");
    assert_eq!(rec["data"]["applyer_name"], "张**");
    for ext in ["errors.csv", "errors.xlsx"] {
        let p = done.join(format!("a.jsonl.library-rejected.{ext}"));
        let bytes = std::fs::read(&p).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&id), "{ext}");
    }
    let csv = std::fs::read_to_string(done.join("a.jsonl.library-rejected.errors.csv")).unwrap();
    assert!(csv.contains("资源库 422001"), "{csv}");
    // The receipt has the count and the 回执 says where to look.
    env.wait("receipt updated", Duration::from_secs(10), || {
        env.receipt("case_accept", "a.jsonl")["libraryRejected"] == 1
    });
    // The 回执 is rewritten right after the receipt.
    env.wait("回执 updated", Duration::from_secs(10), || {
        std::fs::read_to_string(done.join("a.jsonl.回执.txt"))
            .is_ok_and(|n| n.contains("资源库拒收：1 条"))
    });
    // Nothing unmasked in the spool, as there used to be.
    let rejected = env.spool("case_accept", "rejected");
    assert!(
        files_in(&rejected)
            .iter()
            .all(|f| !f.starts_with("remote-")),
        "{:?}",
        files_in(&rejected)
    );
    // The raw answer stays in state, and audit trace shows the refusal.
    // The raw answer row: no command lists refusals across keys.
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM remote_rejection"), 1);
    let key = rec["key"].as_str().unwrap().to_string();
    let out = env.fepd(&["audit", "trace", &key, "--json"]);
    let trace = String::from_utf8_lossy(&out.stdout);
    assert!(trace.contains("422001"), "{trace}");
}

#[test]
fn status_shows_a_long_file_s_progress() {
    // The outbox fills after the first chunk: the file waits in work/ with
    // 100 of its 1000 records done, long enough to be looked at.
    let admin = free_addr();
    let env = Env::new(&format!(
        "\n[backpressure]\nhigh_water_records = 100\n[admin]\nlisten = \"{admin}\"\n"
    ));
    env.set_intake("chunk_records", 100);
    let _d = env.start();
    env.drop_file(
        "case_accept",
        "long.jsonl",
        &data::jsonl(
            &(0..1000).map(data::case_accept).collect::<Vec<_>>(),
            Enc::Utf8,
        ),
    );
    let mut progress = serde_json::Value::Null;
    env.wait("progress in fepd status", Duration::from_secs(30), || {
        let out = env.fepd(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        progress = status["datasets"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["dataset"] == "case_accept"))
            .map(|d| d["work_progress"][0].clone())
            .unwrap_or_default();
        // A rate (and so an ETA) is given once a second has passed.
        progress["records_done"] == 100 && progress["eta_secs"].is_i64()
    });
    assert_eq!(progress["file"], "long.jsonl", "{progress}");
    let estimated = progress["estimated_records"].as_i64().unwrap();
    assert!((950..=1050).contains(&estimated), "{progress}");
    assert!(progress["eta_secs"].as_i64().is_some(), "{progress}");
    // The table form says it in Chinese.
    let out = env.fepd(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("正在处理 long.jsonl：已完成 100 条"),
        "{table}"
    );
    // And the admin listener's /status.
    let (_, body) = http_get(&admin, "/status");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["work_files"]["case_accept"][0]["records_done"], 100,
        "{status}"
    );
}

#[test]
fn an_ack_s_refusals_are_reported_masked_even_when_the_library_quotes_values() {
    let env = Env::new("");
    let _d = env.start();
    let records = recs(3);
    env.drop_file(
        "case_accept",
        "p.csv",
        &data::csv(&records, true, Enc::Utf8),
    );
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
    let done = env.spool("case_accept", "done");
    let xlsx = done.join("p.csv.library-rejected.errors.xlsx");
    // The receipt is rewritten after the report's files (flaky under load
    // when read at once).
    env.wait("library report", Duration::from_secs(20), || {
        xlsx.exists() && env.receipt("case_accept", "p.csv")["libraryRejected"] == 1
    });
    for name in [
        "p.csv.library-rejected.json",
        "p.csv.library-rejected.errors.csv",
        "p.csv.receipt.json",
        "p.csv.回执.txt",
    ] {
        let text = std::fs::read_to_string(done.join(name)).unwrap();
        assert!(!text.contains(&id), "{name}: ID number in clear: {text}");
    }
    let csv = std::fs::read_to_string(done.join("p.csv.library-rejected.errors.csv")).unwrap();
    assert!(csv.contains("资源库 422007"), "{csv}");
    assert!(csv.contains("与姓名不符"), "{csv}");
    assert!(csv.contains(&records[1][0].1), "key column: {csv}");
    let r = env.receipt("case_accept", "p.csv");
    assert_eq!(r["libraryRejected"], 1, "{r:#}");
}
