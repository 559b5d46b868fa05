//! `fepd simulate-library` as strict as a real library (docs/protocol.md
//! §2, §2a, §6): lock-out for both token variants, no replayed signature,
//! `sender` bound to the credential, one dataset per route, no duplicate
//! JSON members, `/sim/*` only with the inspection token, and the order
//! check per key (`keys_out_of_order`).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::*;

/// One HTTP/1.1 exchange on loopback: (status, headers, body).
fn http(
    addr: &str,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{request_line} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn form(addr: &str, path: &str, fields: &[(&str, &str)]) -> (u16, String, Value) {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let (status, head, body) = http(
        addr,
        &format!("POST {path}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    (
        status,
        head,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

fn token(lib: &Library) -> String {
    let (status, _, body) = form(
        &lib.addr,
        "/api/v1/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "fep-001"),
            ("client_secret", "secret"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// A well-formed batch of one record, as text, for `dataset` from `sender`.
fn batch(batch_id: &str, dataset: &str, sender: &str) -> String {
    let data = json!({"project_no": "P-0001"});
    let hash = fepd::canon::record_hash(&data);
    json!({
        "batchId": batch_id,
        "sender": sender,
        "dataset": dataset,
        "schemaVersion": "1",
        "createdAt": "2026-11-22T10:15:30+08:00",
        "count": 1,
        "digest": fepd::canon::batch_digest([hash.as_str()]),
        "auditHead": {"seq": 1, "hash": "ab"},
        "records": [{"op": "upsert", "key": "P-0001", "hash": hash, "data": data}],
    })
    .to_string()
}

fn push(lib: &Library, token: &str, route: &str, batch_id: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, _, body) = http(
        &lib.addr,
        &format!("POST /api/v1/resources/{route}/batches"),
        &[
            ("Authorization", &auth),
            ("Idempotency-Key", batch_id),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        body.as_bytes(),
    );
    (status, serde_json::from_str(&body).unwrap())
}

fn now_ms() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string()
}

fn app_token(lib: &Library, ts: &str, key_info: &str) -> (u16, String, Value) {
    form(
        &lib.addr,
        "/apigateway/getAccessToken",
        &[
            ("appId", "app-001"),
            ("timeStamp", ts),
            ("keyInfo", key_info),
            ("sysCode", "230000"),
        ],
    )
}

fn key_info(ts: &str, key: &str) -> String {
    fepd::forward::push::key_info("app-001", key, ts.parse().unwrap())
}

#[test]
fn the_app_key_variant_locks_out_after_five_bad_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    for _ in 0..5 {
        let ts = now_ms();
        let (status, _, body) = app_token(&lib, &ts, &key_info(&ts, "wrong-key"));
        assert_eq!((status, body["retCode"].as_str()), (200, Some("100004")));
    }
    // The right signature now meets the lock, as a guesser would.
    let ts = now_ms();
    let (status, head, body) = app_token(&lib, &ts, &key_info(&ts, "appkey"));
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["retCode"], "100005");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    // The other credential is not locked by the app's failures.
    token(&lib);
    assert_eq!(lib.stats()["token_lockouts"], 1);
}

#[test]
fn the_client_credentials_variant_locks_out_too() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let ask = |secret| {
        form(
            &lib.addr,
            "/api/v1/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "fep-001"),
                ("client_secret", secret),
            ],
        )
    };
    for _ in 0..5 {
        assert_eq!(ask("guess").0, 401);
    }
    let (status, head, body) = ask("secret");
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("temporarily_locked"))
    );
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
}

#[test]
fn a_signature_cannot_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let ts = now_ms();
    let sig = key_info(&ts, "appkey");
    let (status, _, body) = app_token(&lib, &ts, &sig);
    assert_eq!((status, body["retCode"].as_str()), (200, Some("000000")));
    // The same request again, well inside the 300 s window.
    let (_, _, body) = app_token(&lib, &ts, &sig);
    assert_eq!(body["retCode"], "100006", "{body}");
    assert!(body["data"].is_null(), "a replay got a token: {body}");
    // A fresh signature still works.
    std::thread::sleep(Duration::from_millis(2));
    let ts = now_ms();
    let (_, _, body) = app_token(&lib, &ts, &key_info(&ts, "appkey"));
    assert_eq!(body["retCode"], "000000");
}

/// The simulator's order check can fail: two batches carrying the same
/// key, the later-sealed one (greater `batchId`) pushed first, make one
/// key out of order (docs/protocol.md §4 rule 3); a third batch with the
/// key, sealed after both, changes nothing.
#[test]
fn a_key_arriving_out_of_seal_order_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let t = token(&lib);
    for id in ["01JD2V6T2M8Q3XK7B1Y4N5P6R8", "01JD2V6T2M8Q3XK7B1Y4N5P6R7"] {
        let (status, body) = push(
            &lib,
            &t,
            "zwfw/case_accept",
            id,
            &batch(id, "case_accept", "230000-zwfw"),
        );
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(lib.stats()["keys_out_of_order"], 1);
    let id = "01JD2V6T2M8Q3XK7B1Y4N5P6R9";
    let (status, _) = push(
        &lib,
        &t,
        "zwfw/case_accept",
        id,
        &batch(id, "case_accept", "230000-zwfw"),
    );
    assert_eq!(status, 200);
    let stats = lib.stats();
    assert_eq!(
        (
            stats["batches"].as_u64(),
            stats["keys_out_of_order"].as_u64()
        ),
        (Some(3), Some(1))
    );
}

#[test]
fn a_batch_of_another_sender_is_refused_403001() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let t = token(&lib);
    let (status, body) = push(
        &lib,
        &t,
        "zwfw/case_accept",
        "B-1",
        &batch("B-1", "case_accept", "110000-other"),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("403001")),
        "{body}"
    );
    let (status, _) = push(
        &lib,
        &t,
        "zwfw/case_accept",
        "B-2",
        &batch("B-2", "case_accept", "230000-zwfw"),
    );
    assert_eq!(status, 200);
    let stats = lib.stats();
    assert_eq!(
        (stats["foreign_sender"].as_u64(), stats["batches"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn fepd_with_a_sender_not_bound_to_its_credential_parks_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    env.set("sender", "110000-other");
    let _d = env.start();
    env.drop_file(
        "case_accept",
        "a.jsonl",
        &crate::data::jsonl(&[crate::data::case_accept(1)], crate::data::Enc::Utf8),
    );
    wait_for("the batch parked", Duration::from_secs(30), || {
        env.batches_in("parked") == 1
    });
    assert_eq!(lib.stats()["batches"], 0);
    assert_eq!(lib.stats()["foreign_sender"], 1);
}

#[test]
fn a_batch_on_another_datasets_route_is_refused_400003() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(
        &dir.path().join("lib.db"),
        &["--routes", "zwfw/case_accept,zwfw/pj=evaluation"],
    );
    let t = token(&lib);
    let (status, body) = push(
        &lib,
        &t,
        "zwfw/pj",
        "B-1",
        &batch("B-1", "case_accept", "230000-zwfw"),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("400003")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("evaluation"),
        "{body}"
    );
    let (status, _) = push(
        &lib,
        &t,
        "zwfw/case_accept",
        "B-1",
        &batch("B-1", "case_accept", "230000-zwfw"),
    );
    assert_eq!(status, 200);
}

#[test]
fn duplicate_json_members_are_refused_400001() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let t = token(&lib);
    let good = batch("B-1", "case_accept", "230000-zwfw");
    // A second batchId at the top, and a second project_no inside data: a
    // parser keeping the first member reads another batch than one keeping
    // the last.
    for (what, body) in [
        ("top", good.replacen("{", "{\"batchId\":\"B-X\",", 1)),
        (
            "data",
            good.replacen("\"data\":{", "\"data\":{\"project_no\":\"P-9999\",", 1),
        ),
    ] {
        let (status, answer) = push(&lib, &t, "zwfw/case_accept", "B-1", &body);
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("400001")),
            "{what}: {answer}"
        );
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("appears twice"),
            "{answer}"
        );
    }
    assert_eq!(lib.stats()["batches"], 0);
}

#[test]
fn inspection_endpoints_need_the_token_and_are_off_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    for path in [
        "/sim/records",
        "/sim/stats",
        "/sim/batches",
        "/sim/audit-heads?sender=x",
    ] {
        let (status, _, _) = http(&lib.addr, &format!("GET {path}"), &[], b"");
        assert_eq!(status, 401, "{path} without the token");
        let (status, _, _) = http(
            &lib.addr,
            &format!("GET {path}"),
            &[("Authorization", "Bearer not-the-token")],
            b"",
        );
        assert_eq!(status, 401, "{path} with another token");
    }
    let auth = format!("Bearer {}", lib.inspect_token);
    let (status, _, _) = http(
        &lib.addr,
        "GET /sim/records",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(status, 200);

    // Started without --inspect-token, the endpoints do not exist.
    let mut child = Command::new(FEPD)
        .args(["simulate-library", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("other.db"))
        .env("FEPD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    let (status, _, body) = http(&addr, "GET /sim/records", &[("Authorization", &auth)], b"");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("--inspect-token"), "{body}");
}
