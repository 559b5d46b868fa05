//! End-to-end tests of the simulator: each starts it on 127.0.0.1:0 and
//! talks to it with reqwest, as fepd's forwarder would.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::canon::{batch_digest, record_hash};

const PUSH_PATH: &str = "/api/v1/resources/zwfw/case_accept/batches";
/// The inspection token every test simulator is started with.
const INSPECT: &str = "inspect-token";

async fn sim_with(configure: impl FnOnce(&mut SimOptions)) -> RunningSimulator {
    let mut opts = SimOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        inspect_token: Some(Secret::new(INSPECT)),
        ..SimOptions::default()
    };
    configure(&mut opts);
    start(opts).await.expect("simulator starts")
}

async fn sim() -> RunningSimulator {
    sim_with(|_| {}).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn token(c: &reqwest::Client, sim: &RunningSimulator) -> String {
    let res = c
        .post(format!("{}/api/v1/token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "fep-001"),
            ("client_secret", "secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn record(n: u32) -> (String, Value) {
    let key = format!("P{n:04}");
    let data = json!({"project_no": key, "apply_count": n, "item_name": "户籍迁移"});
    (key, data)
}

/// A well-formed batch of `records`, all upserts.
fn batch(batch_id: &str, records: &[(String, Value)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(key, data)| json!({"op": "upsert", "key": key, "hash": record_hash(data), "data": data}))
        .collect();
    let hashes: Vec<String> = records
        .iter()
        .map(|r| r["hash"].as_str().unwrap().to_owned())
        .collect();
    json!({
        "batchId": batch_id,
        "sender": "230000-zwfw",
        "dataset": "case_accept",
        "schemaVersion": "1",
        "createdAt": "2026-11-22T10:15:30+08:00",
        "count": records.len(),
        "digest": batch_digest(hashes.iter().map(String::as_str)),
        "auditHead": {"seq": 7, "hash": "9f0e"},
        "records": records,
    })
}

/// Pushes `body` to the case_accept route with the batch id as
/// Idempotency-Key, and returns the status and the JSON answer.
async fn push(
    c: &reqwest::Client,
    sim: &RunningSimulator,
    token: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let res = c
        .post(format!("{}{PUSH_PATH}", sim.base_url()))
        .bearer_auth(token)
        .header("Idempotency-Key", body["batchId"].as_str().unwrap())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

async fn stats(c: &reqwest::Client, sim: &RunningSimulator) -> SimStats {
    c.get(format!("{}/sim/stats", sim.base_url()))
        .bearer_auth(INSPECT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn options_have_the_documented_defaults() {
    let o = SimOptions::default();
    assert_eq!(o.listen.to_string(), "127.0.0.1:8730");
    assert_eq!(o.client_id, "fep-001");
    assert_eq!(o.client_secret.expose(), "secret");
    assert_eq!(o.token_ttl, 7200);
    assert_eq!(o.routes.len(), 8);
    assert!(o.routes.contains(&Route::new("cgdsj", "event_report")));
    assert!(
        !format!("{o:?}").contains("\"secret\""),
        "Debug must not show secrets"
    );
    assert!("zwfw".parse::<Route>().is_err());
    assert!("a/b/c".parse::<Route>().is_err());
}

#[test]
fn key_info_matches_an_independent_hmac() {
    // Computed with Python's hmac module: key = appKey, message = appId +
    // appKey + timeStamp.
    assert_eq!(
        auth::key_info("app-001", "appkey", "1700000000000"),
        "9094c219f8b683c0a43e2149415d6660eb55da07d6883103e8102c50516fdb8f"
    );
}

#[test]
fn the_same_seed_rolls_the_same_faults() {
    let rolls = |seed| {
        let f = Faults::new(Some(seed), 0.5, 0.5, Duration::ZERO, 0);
        (0..64)
            .map(|_| {
                let r = f.roll();
                (r.fail, r.drop)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(rolls(42), rolls(42));
    assert_ne!(rolls(42), rolls(43));
}

#[tokio::test]
async fn client_credentials_issue_refuse_and_lock_out() {
    let sim = sim_with(|o| o.lockout_secs = 1).await;
    let c = client();
    let url = format!("{}/api/v1/token", sim.base_url());
    let ask = |secret: &'static str| {
        c.post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "fep-001"),
                ("client_secret", secret),
            ])
            .send()
    };

    let res = ask("secret").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 7200);
    assert!(body["access_token"].as_str().unwrap().len() >= 32);

    for _ in 0..5 {
        let res = ask("wrong").await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, json!({"error": "invalid_client"}));
    }
    // Locked now: even the right secret is refused, with Retry-After.
    let res = ask("secret").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry_after));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"error": "temporarily_locked"}));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask("secret").await.unwrap().status(), StatusCode::OK);

    let res = c
        .post(&url)
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let s = stats(&c, &sim).await;
    assert_eq!(
        (s.tokens_issued, s.token_failures, s.token_lockouts),
        (2, 5, 1)
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn app_key_hmac_token_and_query_parameter_auth() {
    let sim = sim_with(|o| o.sys_code = Some("230000".into())).await;
    let c = client();
    let url = format!("{}/apigateway/getAccessToken", sim.base_url());
    let ask = |ts: String, key_info: String, sys_code: &'static str| {
        c.post(&url)
            .form(&[
                ("appId", "app-001".to_owned()),
                ("timeStamp", ts),
                ("keyInfo", key_info),
                ("sysCode", sys_code.to_owned()),
            ])
            .send()
    };
    let ts = now_millis().to_string();
    let good = auth::key_info("app-001", "appkey", &ts);

    let res = ask(ts.clone(), good.clone(), "230000").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["retCode"], "000000");
    assert_eq!(body["retDesc"], "成功");
    assert_eq!(body["data"]["expiresIn"], 7200);
    let token = body["data"]["accessToken"].as_str().unwrap().to_owned();

    let ret_code = |res: reqwest::Response| async move {
        let body: Value = res.json().await.unwrap();
        body["retCode"].as_str().unwrap().to_owned()
    };
    // Bad signature, upper-case signature, wrong sysCode, stale timestamp.
    let bad = auth::key_info("app-001", "other", &ts);
    assert_eq!(
        ret_code(ask(ts.clone(), bad, "230000").await.unwrap()).await,
        "100004"
    );
    let upper = good.to_uppercase();
    assert_eq!(
        ret_code(ask(ts.clone(), upper, "230000").await.unwrap()).await,
        "100004"
    );
    assert_eq!(
        ret_code(ask(ts.clone(), good, "110000").await.unwrap()).await,
        "100002"
    );
    let stale = (now_millis() - 301_000).to_string();
    let stale_sig = auth::key_info("app-001", "appkey", &stale);
    assert_eq!(
        ret_code(ask(stale, stale_sig, "230000").await.unwrap()).await,
        "100003"
    );
    let future = (now_millis() + 301_000).to_string();
    let future_sig = auth::key_info("app-001", "appkey", &future);
    assert_eq!(
        ret_code(ask(future, future_sig, "230000").await.unwrap()).await,
        "100003"
    );
    let res = c
        .post(&url)
        .form(&[("appId", "app-001")])
        .send()
        .await
        .unwrap();
    assert_eq!(ret_code(res).await, "100001");

    // The token travels as ?accessToken=.
    let body = batch("B-HMAC", &[record(1)]);
    let res = c
        .post(format!("{}{PUSH_PATH}", sim.base_url()))
        .query(&[("accessToken", token.as_str())])
        .header("Idempotency-Key", "B-HMAC")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn happy_push_is_stored_and_exported() {
    let sim = sim().await;
    let c = client();
    let t = token(&c, &sim).await;
    let body = batch("B-1", &[record(1), record(2)]);
    let (status, answer) = push(&c, &sim, &t, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["code"], "000000");
    assert_eq!(answer["message"], "成功");
    assert_eq!(answer["data"]["accepted"], 2);
    assert_eq!(answer["data"]["rejected"], json!([]));
    assert!(answer["data"].get("duplicate").is_none());
    let receipt = answer["data"]["receiptId"].as_str().unwrap();

    let records: Value = c
        .get(format!(
            "{}/sim/records?dataset=case_accept",
            sim.base_url()
        ))
        .bearer_auth(INSPECT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["batchId"], "B-1");
    assert_eq!(records[0]["receiptId"], receipt);
    assert_eq!(records[0]["key"], "P0001");
    assert_eq!(records[0]["op"], "upsert");
    assert_eq!(records[1]["data"], record(2).1);
    assert_eq!(records[1]["hash"], record_hash(&record(2).1));

    let other: Value = c
        .get(format!("{}/sim/records?dataset=item_task", sim.base_url()))
        .bearer_auth(INSPECT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other, json!([]));

    let batches: Value = c
        .get(format!("{}/sim/batches", sim.base_url()))
        .bearer_auth(INSPECT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batches[0]["route"], "zwfw/case_accept");
    assert_eq!(batches[0]["auditHead"], json!({"seq": 7, "hash": "9f0e"}));

    let s = stats(&c, &sim).await;
    assert_eq!((s.batches, s.records, s.distinct_keys), (1, 2, 2));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn duplicates_answer_the_original_receipt_and_conflicts_409() {
    let sim = sim().await;
    let c = client();
    let t = token(&c, &sim).await;
    let body = batch("B-1", &[record(1), record(2)]);
    let (_, first) = push(&c, &sim, &t, &body).await;
    let (status, again) = push(&c, &sim, &t, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["data"]["duplicate"], true);
    assert_eq!(again["data"]["receiptId"], first["data"]["receiptId"]);
    assert_eq!(again["data"]["accepted"], 2);

    let changed = batch("B-1", &[record(1), record(3)]);
    let (status, answer) = push(&c, &sim, &t, &changed).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["code"], "409001");

    let s = stats(&c, &sim).await;
    assert_eq!(s.batches, 1);
    assert_eq!(s.records, 2);
    assert_eq!(s.duplicates_answered, 1);
    assert_eq!(s.conflicts, 1);
    assert_eq!(s.records_delivered_more_than_once, 0);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_same_record_in_two_batches_counts_as_delivered_twice() {
    let sim = sim().await;
    let c = client();
    let t = token(&c, &sim).await;
    push(&c, &sim, &t, &batch("B-1", &[record(1), record(2)])).await;
    push(&c, &sim, &t, &batch("B-2", &[record(2), record(3)])).await;
    push(&c, &sim, &t, &batch("B-3", &[record(2)])).await;
    let s = stats(&c, &sim).await;
    assert_eq!((s.batches, s.records, s.distinct_keys), (3, 5, 3));
    assert_eq!(s.records_delivered_more_than_once, 2);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn idempotency_key_must_be_present_and_equal_to_batch_id() {
    let sim = sim().await;
    let c = client();
    let t = token(&c, &sim).await;
    let body = batch("B-1", &[record(1)]);
    let url = format!("{}{PUSH_PATH}", sim.base_url());
    for key in [None, Some("B-2")] {
        let mut req = c.post(&url).bearer_auth(&t).json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["code"], "400001", "{answer}");
    }
    assert_eq!(stats(&c, &sim).await.batches, 0);
    sim.shutdown().await.unwrap();
}

mod refusals;

/// `--latency-ms`: each push is answered that late, and requests wait side
/// by side, not one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_each_answer_without_holding_the_others() {
    let sim = sim_with(|o| o.latency_ms = 400).await;
    let c = client();
    let t = token(&c, &sim).await;
    let started = std::time::Instant::now();
    let bodies: Vec<Value> = (0..4)
        .map(|i| batch(&format!("L-{i}"), &[record(i)]))
        .collect();
    let (a, b, c2, d) = tokio::join!(
        push(&c, &sim, &t, &bodies[0]),
        push(&c, &sim, &t, &bodies[1]),
        push(&c, &sim, &t, &bodies[2]),
        push(&c, &sim, &t, &bodies[3]),
    );
    let answers = [a, b, c2, d];
    let took = started.elapsed();
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "{answers:?}"
    );
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(
        took < Duration::from_millis(1200),
        "answered one after another: {took:?}"
    );
    assert_eq!(stats(&c, &sim).await.batches, 4);
    sim.shutdown().await.unwrap();
}
