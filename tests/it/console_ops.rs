//! The console's operations and status pages against the real daemon:
//! 补传 (replay) of a delivered batch by the operator only, the overview's
//! oldest pending batch per dataset, the witness head the library last
//! acknowledged beside the chain's status, and the 系统 page's alert
//! channels with their last results and the retention status.

use std::time::Duration;

use crate::console::{Browser, PASSWORD, console_env, refusals};
use crate::data::{self, Enc};
use crate::harness::*;

/// The `n`-th cell of `dataset`'s row in the table after `heading`.
fn cell(page: &str, heading: &str, dataset: &str, n: usize) -> String {
    let table = &page[page.find(heading).expect(heading)..];
    let row = &table[table
        .find(&format!("<tr><td>{dataset}</td>"))
        .expect(dataset)..];
    let row = &row[..row.find("</tr>").unwrap()];
    row.split("<td>").nth(n).unwrap_or_default().to_string()
}

#[test]
fn the_operator_replays_a_delivered_batch_and_the_status_pages_show_what_was_missing() {
    let hook = crate::receivers::Recorder::start();
    let (env, addr) = console_env(&format!(
        "\n[alerts]\ninterval = \"1s\"\nrepeat = \"off\"\n[[alerts.webhook]]\nurl = \"http://{}/robot/send?access_token=SECRET-TOKEN\"\n[retention]\ninterval = \"2s\"\n",
        hook.addr
    ));
    let _d = env.start_ready();
    let recs: Vec<_> = (0..3).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("a batch exported", Duration::from_secs(20), || {
        env.batches_in("exported") == 1
    });
    let delivered = env.batches(None)[0]["batch_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ack(
        "case_accept",
        &delivered,
        r#"{"receiptId":"R-1","accepted":3,"rejected":[]}"#,
    );
    env.wait("the batch delivered", Duration::from_secs(20), || {
        env.batches_in("delivered") == 1
    });
    let more: Vec<_> = (10..12).map(data::case_accept).collect();
    env.drop_file("case_accept", "b.jsonl", &data::jsonl(&more, Enc::Utf8));
    env.wait("a second batch exported", Duration::from_secs(20), || {
        env.batches_in("exported") == 1
    });
    let pending = env.batches(Some("exported"))[0]["batch_id"]
        .as_str()
        .unwrap()
        .to_string();

    // 总览: the oldest pending batch per dataset, and its last delivery.
    let mut staff = Browser::new(&addr);
    staff.login("专员", PASSWORD);
    let (_, page) = staff.get("/");
    assert!(page.contains("最早待发已等待"), "{page}");
    let waited = cell(&page, "各数据集（累计）", "case_accept", 7);
    assert!(waited.contains('秒') || waited.contains('分'), "{waited}");
    assert!(
        !cell(&page, "各数据集（累计）", "case_accept", 9).starts_with('—'),
        "{page}"
    );

    // 补传: refused to every role but the operator, checked on the server.
    for user in ["管理员", "审计员", "专员"] {
        let mut b = Browser::new(&addr);
        b.login(user, PASSWORD);
        let token = b.token();
        let (status, page) = b.post(
            "/batches/replay",
            &[("csrf", &token), ("id", &delivered), ("reason", "库方要求")],
        );
        assert_eq!(status, 403, "{user}: {page}");
    }
    assert_eq!(env.events("batch_replayed"), 0);
    let mut op = Browser::new(&addr);
    op.login("操作员", PASSWORD);
    let (_, page) = op.get("/batches?state=delivered");
    assert!(
        page.contains("/batches/replay") && page.contains("补传"),
        "{page}"
    );
    assert_eq!(
        op.post(
            "/batches/replay",
            &[("csrf", "forged"), ("id", &delivered), ("reason", "x")]
        )
        .0,
        403
    );
    let token = op.token();
    let (status, page) = op.post(
        "/batches/replay",
        &[("csrf", &token), ("id", &pending), ("reason", "库方要求")],
    );
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("只能补传已送达的批次"), "{page}");
    let (status, page) = op.post(
        "/batches/replay",
        &[
            ("csrf", &token),
            ("id", &delivered),
            ("reason", "库方要求补传"),
        ],
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("已补传"), "{page}");
    let replayed = env.log_entries(&["--event", "batch_replayed"]);
    assert_eq!(replayed.len(), 1);
    let d = &replayed[0]["details"];
    assert_eq!(d["by"], "操作员");
    assert_eq!(d["reason"], "库方要求补传");
    assert_eq!(d["replayOf"][0].as_str(), Some(delivered.as_str()));
    let r = refusals(&env);
    for want in [
        ("管理员", "batch_replay", "role"),
        ("审计员", "batch_replay", "role"),
        ("专员", "batch_replay", "role"),
        ("操作员", "batch_replay", "csrf"),
    ] {
        let want = (want.0.to_string(), want.1.to_string(), want.2.to_string());
        assert!(r.contains(&want), "{want:?} in {r:?}");
    }

    // 交换日志: the head the delivered batch carried, checked against the log.
    let mut auditor = Browser::new(&addr);
    auditor.login("审计员", PASSWORD);
    let (_, page) = auditor.get("/log");
    assert!(
        page.contains("资源库最近确认的见证头：序号 ")
            && page.contains(&format!("随批次 {delivered} 于"))
            && page.contains("与本地日志一致"),
        "{page}"
    );

    // 系统: the channel by name (no URL, no token) with its last result,
    // and the last retention pass.
    assert!(env.fepd(&["batches", "park", &pending]).status.success());
    env.wait("the alert sent", Duration::from_secs(20), || {
        !hook.at("/robot/send").is_empty()
    });
    env.wait("a retention pass", Duration::from_secs(20), || {
        env.events("retention_pass") >= 1
    });
    let mut admin = Browser::new(&addr);
    admin.login("管理员", PASSWORD);
    let mut page = String::new();
    wait_for("the send's result shown", Duration::from_secs(10), || {
        page = admin.get("/system").1;
        page.contains("成功")
    });
    assert!(
        page.contains("webhook[0]") && page.contains("批次被搁置") && page.contains("127.0.0.1"),
        "{page}"
    );
    assert!(
        !page.contains("SECRET-TOKEN") && !page.contains("/robot/send"),
        "{page}"
    );
    assert!(
        page.contains("最近一次清理：") && page.contains("下一次："),
        "{page}"
    );
}

#[test]
fn the_operator_replays_by_delivery_window_or_file_after_confirming_and_no_one_else_may() {
    let (env, addr) = console_env("");
    let _d = env.start_ready();
    // Two files, each delivered as one batch.
    let mut delivered = Vec::new();
    for (name, first) in [("a.jsonl", 0), ("b.jsonl", 10)] {
        let recs: Vec<_> = (first..first + 3).map(data::case_accept).collect();
        env.drop_file("case_accept", name, &data::jsonl(&recs, Enc::Utf8));
        env.wait("a batch exported", Duration::from_secs(20), || {
            env.batches_in("exported") == 1
        });
        let id = env.batches(Some("exported"))[0]["batch_id"]
            .as_str()
            .unwrap()
            .to_string();
        env.ack(
            "case_accept",
            &id,
            r#"{"receiptId":"R-1","accepted":3,"rejected":[]}"#,
        );
        env.wait("the batch delivered", Duration::from_secs(20), || {
            env.batches_in("delivered") == delivered.len() as i64 + 1
        });
        delivered.push(id);
    }
    let window = [
        ("dataset", "case_accept"),
        ("since", "2000-01-01"),
        ("until", "2100-12-31"),
        ("reason", "库方要求按时段补传"),
    ];
    let with = |token: &str, extra: &[(&'static str, &'static str)]| {
        let mut f = vec![("csrf", token.to_string())];
        f.extend(window.iter().map(|(k, v)| (*k, v.to_string())));
        f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        f
    };
    let post = |b: &mut Browser, f: Vec<(&str, String)>| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post("/batches/replay-range", &f)
    };

    // Refused to every role but the operator, and to a forged form.
    for user in ["管理员", "审计员", "专员"] {
        let mut b = Browser::new(&addr);
        b.login(user, PASSWORD);
        let token = b.token();
        let (status, page) = post(&mut b, with(&token, &[("confirm", "2")]));
        assert_eq!(status, 403, "{user}: {page}");
    }
    let mut op = Browser::new(&addr);
    op.login("操作员", PASSWORD);
    let (_, page) = op.get("/batches");
    assert!(
        page.contains("/batches/replay-range") && page.contains("按时间段或文件补传"),
        "{page}"
    );
    assert_eq!(post(&mut op, with("forged", &[("confirm", "2")])).0, 403);
    assert_eq!(env.events("batch_replayed"), 0);

    // The window: first the batches it names, nothing replayed yet.
    let token = op.token();
    let (status, page) = post(&mut op, with(&token, &[]));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("确认补传")
            && page.contains("共 6 条记录")
            && delivered.iter().all(|id| page.contains(id.as_str())),
        "{page}"
    );
    assert_eq!(env.events("batch_replayed"), 0);
    // A confirmation of another number shows the batches again.
    let (status, page) = post(&mut op, with(&token, &[("confirm", "5")]));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("确认补传"), "{page}");
    assert_eq!(env.events("batch_replayed"), 0);
    let (status, page) = post(&mut op, with(&token, &[("confirm", "2")]));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("已补传 2 个批次"), "{page}");
    let replayed = env.log_entries(&["--event", "batch_replayed"]);
    assert_eq!(replayed.len(), 2);
    for (e, id) in replayed.iter().zip(&delivered) {
        assert_eq!(e["details"]["by"], "操作员");
        assert_eq!(e["details"]["reason"], "库方要求按时段补传");
        assert_eq!(e["details"]["replayOf"][0].as_str(), Some(id.as_str()));
    }

    // By file: its batch only (the replays belong to no file).
    let by_file = |token: &str, confirm: &'static str| {
        let mut f = vec![
            ("csrf", token.to_string()),
            ("file", "a.jsonl".to_string()),
            ("reason", "库方要求按文件补传".to_string()),
        ];
        if !confirm.is_empty() {
            f.push(("confirm", confirm.to_string()));
        }
        f
    };
    let (status, page) = post(&mut op, by_file(&token, ""));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(delivered[0].as_str()) && !page.contains(delivered[1].as_str()),
        "{page}"
    );
    let (status, page) = post(&mut op, by_file(&token, "1"));
    assert_eq!(status, 200, "{page}");
    let replayed = env.log_entries(&["--event", "batch_replayed"]);
    assert_eq!(replayed.len(), 3);
    assert_eq!(
        replayed[2]["details"]["replayOf"][0].as_str(),
        Some(delivered[0].as_str())
    );

    // What cannot be met gets a page in Chinese, and nothing is replayed.
    for (f, said) in [
        (
            vec![
                ("dataset", "case_accept"),
                ("since", "2026-01-02"),
                ("until", "2026-01-01"),
            ],
            "早于",
        ),
        (
            vec![
                ("dataset", "no_such"),
                ("since", "2026-01-01"),
                ("until", "2026-01-02"),
            ],
            "没有数据集",
        ),
        (vec![("dataset", "case_accept"), ("since", "明天")], "起止"),
        (vec![("file", "never.jsonl")], "没有符合条件"),
    ] {
        let mut form = vec![("csrf", token.clone()), ("reason", "x".to_string())];
        form.extend(f.iter().map(|(k, v)| (*k, v.to_string())));
        let (status, page) = post(&mut op, form);
        assert!(status == 409 || status == 404, "{status}: {page}");
        assert!(page.contains(said), "{said}: {page}");
    }
    assert_eq!(env.events("batch_replayed"), 3);
    let r = refusals(&env);
    for want in [
        ("管理员", "batch_replay", "role"),
        ("审计员", "batch_replay", "role"),
        ("专员", "batch_replay", "role"),
        ("操作员", "batch_replay", "csrf"),
    ] {
        let want = (want.0.to_string(), want.1.to_string(), want.2.to_string());
        assert!(r.contains(&want), "{want:?} in {r:?}");
    }
}
