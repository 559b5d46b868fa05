//! The simulator refuses what a strict library refuses (docs/protocol.md §4): malformed
//! batches, mismatched hashes, unknown routes, oversize batches, rejected keys; and its
//! fault injection, gzip, probes, exports and restarts.

use super::*;

#[tokio::test]
async fn malformed_batches_are_400001() {
    let sim = sim().await;
    let c = client();
    let t = token(&c, &sim).await;
    let good = batch("B-1", &[record(1), record(2)]);
    let mut cases = Vec::new();
    let mut b = good.clone();
    b.as_object_mut().unwrap().remove("auditHead");
    cases.push(b);
    let mut b = good.clone();
    b["count"] = json!(3);
    cases.push(b);
    let mut b = good.clone();
    b["records"][0]["op"] = json!("insert");
    cases.push(b);
    let mut b = good.clone();
    b["createdAt"] = json!("2026-11-22 10:15:30");
    cases.push(b);
    // A null in data is refused even with a hash that matches it.
    let data = json!({"project_no": "P0001", "item_name": null});
    let b = batch("B-1", &[("P0001".into(), data)]);
    cases.push(b);
    for case in cases {
        let (status, answer) = push(&c, &sim, &t, &case).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["code"], "400001", "{answer}");
    }
    let res = c
        .post(format!("{}{PUSH_PATH}", sim.base_url()))
        .bearer_auth(&t)
        .header("Idempotency-Key", "B-1")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(stats(&c, &sim).await.malformed, 6);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn hash_and_digest_mismatches_are_400002() {
    let sim = sim().await;
    let c = client();
    let t = token(&c, &sim).await;
    let good = batch("B-1", &[record(1), record(2)]);

    let mut bad_hash = good.clone();
    bad_hash["records"][1]["data"]["apply_count"] = json!(99);
    let (status, answer) = push(&c, &sim, &t, &bad_hash).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("400002"))
    );

    let mut bad_digest = good.clone();
    bad_digest["digest"] = json!(batch_digest(["00"]));
    let (status, answer) = push(&c, &sim, &t, &bad_digest).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("400002"))
    );

    // Swapping two records keeps every hash right but changes the digest.
    let mut swapped = good.clone();
    let records = swapped["records"].as_array_mut().unwrap();
    records.swap(0, 1);
    let (_, answer) = push(&c, &sim, &t, &swapped).await;
    assert_eq!(answer["code"], "400002");

    let mut upper = good.clone();
    let h = upper["records"][0]["hash"].as_str().unwrap().to_uppercase();
    upper["records"][0]["hash"] = json!(h);
    let (_, answer) = push(&c, &sim, &t, &upper).await;
    assert_eq!(answer["code"], "400002");

    let s = stats(&c, &sim).await;
    assert_eq!((s.mismatched, s.batches), (4, 0));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_route_is_400003() {
    let sim = sim().await;
    let c = client();
    let t = token(&c, &sim).await;
    let body = batch("B-1", &[record(1)]);
    let res = c
        .post(format!(
            "{}/api/v1/resources/zwfw/nope/batches",
            sim.base_url()
        ))
        .bearer_auth(&t)
        .header("Idempotency-Key", "B-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["code"], "400003");
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_many_records_is_413001() {
    let sim = sim_with(|o| o.max_records = Some(2)).await;
    let c = client();
    let t = token(&c, &sim).await;
    let (status, answer) = push(
        &c,
        &sim,
        &t,
        &batch("B-1", &[record(1), record(2), record(3)]),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["code"], "413001");
    // The halves, as a sender splits them, go through.
    let (status, _) = push(&c, &sim, &t, &batch("B-1.1", &[record(1), record(2)])).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = push(&c, &sim, &t, &batch("B-1.2", &[record(3)])).await;
    assert_eq!(status, StatusCode::OK);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_large_body_is_413001() {
    let sim = sim_with(|o| o.max_body_bytes = 1024).await;
    let c = client();
    let t = token(&c, &sim).await;
    let records: Vec<_> = (0..40).map(record).collect();
    let (status, answer) = push(&c, &sim, &t, &batch("B-1", &records)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["code"], "413001");
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_probe_is_answered_and_not_stored() {
    let sim = sim().await;
    let c = client();
    let t = token(&c, &sim).await;
    let probe = batch("PROBE-1", &[]);
    assert_eq!(
        probe["digest"],
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let (status, answer) = push(&c, &sim, &t, &probe).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["data"]["accepted"], 0);
    assert_eq!(answer["data"]["rejected"], json!([]));
    // Probes are not remembered, so the same probe again is not a duplicate.
    let (_, again) = push(&c, &sim, &t, &probe).await;
    assert!(again["data"].get("duplicate").is_none());

    let mut bad = probe.clone();
    bad["digest"] = json!("sha256:00");
    let (_, answer) = push(&c, &sim, &t, &bad).await;
    assert_eq!(answer["code"], "400002");

    let s = stats(&c, &sim).await;
    assert_eq!((s.batches, s.records, s.probes), (0, 0, 2));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn tokens_wear_out_expire_and_must_be_presented() {
    let sim = sim_with(|o| o.token_max_uses = Some(2)).await;
    let c = client();
    let t = token(&c, &sim).await;
    for i in 0..2 {
        let (status, _) = push(&c, &sim, &t, &batch(&format!("B-{i}"), &[record(i)])).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, answer) = push(&c, &sim, &t, &batch("B-2", &[record(2)])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["code"], "401001");
    // A renewed token works again.
    let t2 = token(&c, &sim).await;
    let (status, _) = push(&c, &sim, &t2, &batch("B-2", &[record(2)])).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = push(&c, &sim, "not-a-token", &batch("B-3", &[record(3)])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let res = c
        .post(format!("{}{PUSH_PATH}", sim.base_url()))
        .header("Idempotency-Key", "B-3")
        .json(&batch("B-3", &[record(3)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    sim.shutdown().await.unwrap();

    let sim = sim_with(|o| o.token_ttl = 0).await;
    let t = token(&c, &sim).await;
    let (status, _) = push(&c, &sim, &t, &batch("B-1", &[record(1)])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn keys_matching_the_rule_are_rejected_one_by_one() {
    let sim = sim_with(|o| o.reject_keys_matching = Some("0002".into())).await;
    let c = client();
    let t = token(&c, &sim).await;
    let body = batch("B-1", &[record(1), record(2), record(3)]);
    let (status, answer) = push(&c, &sim, &t, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["data"]["accepted"], 2);
    let rejected = &answer["data"]["rejected"];
    assert_eq!(rejected.as_array().unwrap().len(), 1);
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["key"], "P0002");
    assert_eq!(rejected[0]["code"], "422001");
    assert!(rejected[0]["message"].as_str().is_some());

    let (_, again) = push(&c, &sim, &t, &body).await;
    assert_eq!(again["data"]["duplicate"], true);
    assert_eq!(again["data"]["rejected"], *rejected);

    let s = stats(&c, &sim).await;
    assert_eq!((s.records, s.rejected), (2, 1));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn gzip_bodies_are_accepted() {
    let sim = sim().await;
    let c = client();
    let t = token(&c, &sim).await;
    let body = batch("B-GZ", &[record(1), record(2)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(&body).unwrap()).unwrap();
    let res = c
        .post(format!("{}{PUSH_PATH}", sim.base_url()))
        .bearer_auth(&t)
        .header("Idempotency-Key", "B-GZ")
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Content-Encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["data"]["accepted"], 2);

    let res = c
        .post(format!("{}{PUSH_PATH}", sim.base_url()))
        .bearer_auth(&t)
        .header("Idempotency-Key", "B-GZ2")
        .header("Content-Encoding", "gzip")
        .body("not gzip at all")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn injected_overload_is_503_with_retry_after() {
    let sim = sim_with(|o| {
        o.fail_rate = 1.0;
        o.retry_after = 0;
    })
    .await;
    let c = client();
    let t = token(&c, &sim).await;
    let res = c
        .post(format!("{}{PUSH_PATH}", sim.base_url()))
        .bearer_auth(&t)
        .header("Idempotency-Key", "B-1")
        .json(&batch("B-1", &[record(1)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "0");
    let s = stats(&c, &sim).await;
    assert_eq!((s.faults_injected, s.batches), (1, 0));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_dropped_answer_is_a_connection_error_but_the_batch_is_stored() {
    let sim = sim_with(|o| o.drop_rate = 1.0).await;
    let c = client();
    let t = token(&c, &sim).await;
    let body = batch("B-1", &[record(1)]);
    for _ in 0..2 {
        let err = c
            .post(format!("{}{PUSH_PATH}", sim.base_url()))
            .bearer_auth(&t)
            .header("Idempotency-Key", "B-1")
            .json(&body)
            .send()
            .await
            .expect_err("the answer is dropped");
        assert!(err.status().is_none() && !err.is_timeout(), "{err:?}");
    }
    let s = stats(&c, &sim).await;
    assert_eq!((s.batches, s.records), (1, 1));
    assert_eq!((s.responses_dropped, s.duplicates_answered), (2, 1));
    assert_eq!(s.records_delivered_more_than_once, 0);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn audit_heads_are_exported_per_sender_in_arrival_order() {
    // Two platforms on one library, each credential bound to its sender.
    let sim = sim_with(|o| o.app_sender = Some("110000-zwfw".into())).await;
    let c = client();
    let t = token(&c, &sim).await;
    for (i, seq) in [(1, 10), (2, 11), (3, 15)] {
        let mut b = batch(&format!("B-{i}"), &[record(i)]);
        b["auditHead"] = json!({"seq": seq, "hash": format!("{seq:02x}")});
        push(&c, &sim, &t, &b).await;
    }
    let mut other = batch("B-1", &[record(9)]);
    other["sender"] = json!("110000-zwfw");
    // With the first credential's token, the other sender is refused.
    let (status, answer) = push(&c, &sim, &t, &other).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["code"], "403001");
    let ts = now_millis().to_string();
    let res = c
        .post(format!("{}/apigateway/getAccessToken", sim.base_url()))
        .form(&[
            ("appId", "app-001"),
            ("timeStamp", ts.as_str()),
            ("keyInfo", auth::key_info("app-001", "appkey", &ts).as_str()),
            ("sysCode", "230000"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let app_token = body["data"]["accessToken"].as_str().unwrap().to_owned();
    let res = c
        .post(format!("{}{PUSH_PATH}", sim.base_url()))
        .query(&[("accessToken", app_token.as_str())])
        .header("Idempotency-Key", "B-1")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "idempotency is per sender");

    let res = c
        .get(format!(
            "{}/sim/audit-heads?sender=230000-zwfw",
            sim.base_url()
        ))
        .bearer_auth(INSPECT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    assert_eq!(
        text,
        "{\"seq\":10,\"hash\":\"0a\"}\n{\"seq\":11,\"hash\":\"0b\"}\n{\"seq\":15,\"hash\":\"0f\"}\n"
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn what_was_stored_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("library.sqlite");
    let c = client();
    let body = batch("B-1", &[record(1), record(2)]);

    let sim = sim_with(|o| o.db = Some(db.clone())).await;
    let t = token(&c, &sim).await;
    let (_, first) = push(&c, &sim, &t, &body).await;
    sim.shutdown().await.unwrap();

    let sim = sim_with(|o| o.db = Some(db.clone())).await;
    // Tokens do not survive the restart.
    let (status, _) = push(&c, &sim, &t, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let t = token(&c, &sim).await;
    let (status, again) = push(&c, &sim, &t, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["data"]["duplicate"], true);
    assert_eq!(again["data"]["receiptId"], first["data"]["receiptId"]);
    assert_eq!(stats(&c, &sim).await.records, 2);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn run_stops_when_its_shutdown_future_completes() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let opts = SimOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..SimOptions::default()
    };
    let task = tokio::spawn(run(opts, async {
        let _ = rx.await;
    }));
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run returns after shutdown")
        .unwrap()
        .unwrap();
}
