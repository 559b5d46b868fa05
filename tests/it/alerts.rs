//! Alerts (README.md, "Alerts"): the real daemon sending to real receivers
//! on loopback — 钉钉 and 企业微信 webhooks (shapes, signature), SMTP
//! (aiosmtpd) and syslog over UDP; an episode raised once, repeated,
//! resolved with 恢复; dead channels not slowing delivery; credential
//! expiry in the channels, `fepd status`, `/metrics` and `check-config`.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::data::{self, Enc};
use crate::harness::*;
use crate::receivers::{Recorder, SmtpServer, SyslogTcp, SyslogUdp};

/// Titles of the markdown messages a 钉钉 robot got.
fn ding_titles(r: &Recorder) -> Vec<String> {
    r.at("/ding")
        .iter()
        .map(|q| {
            q.body["markdown"]["title"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn query(uri: &str, key: &str) -> String {
    let q = uri.split_once('?').unwrap().1;
    let v = q
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} in {uri}"));
    // The sign is base64, URL-encoded: only + / = are escaped.
    v.replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=")
}

/// A deployment whose alerts are evaluated every second and repeated every
/// two, to `hook`'s JSON webhook at `/json`; `extra` is more of `[alerts]`.
fn alerting_to(hook: &Recorder, extra: &str) -> Env {
    Env::new(&format!(
        "\n[alerts]\ninterval = \"1s\"\nrepeat = \"2s\"\n{extra}\n[[alerts.webhook]]\nurl = \"http://{}/json\"\n",
        hook.addr
    ))
}

/// How many messages of `kind` in `state` (raised, resolved, …) the JSON
/// webhook got.
fn sent(hook: &Recorder, kind: &str, state: &str) -> usize {
    hook.at("/json")
        .into_iter()
        .filter(|r| r.body["kind"] == kind && r.body["state"] == state)
        .count()
}

/// Three case_accept records, dropped and finished.
fn three_records(env: &Env, name: &str) -> serde_json::Value {
    let recs: Vec<_> = (0..3).map(data::case_accept).collect();
    env.drop_file("case_accept", name, &data::jsonl(&recs, Enc::Utf8));
    env.receipt("case_accept", name)
}

#[test]
fn a_parked_batch_alerts_dingtalk_and_wecom_repeats_and_resolves_while_dead_channels_never_slow_delivery()
 {
    let hook = Recorder::start();
    let dead_http = free_addr();
    // A black hole: connections are accepted by the kernel, never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let dead_smtp = free_addr();
    let dead_port = dead_smtp.rsplit_once(':').unwrap().1;
    let admin = free_addr();
    let env = Env::new(&format!(
        r#"
[admin]
listen = "{admin}"

[alerts]
interval = "1s"
repeat = "3s"
send_timeout_secs = 3

[[alerts.webhook]]
url = "http://{a}/ding?access_token=T0KEN"
format = "dingtalk"
secret_file = "ding.secret"

[[alerts.webhook]]
url = "http://{a}/wecom?key=K3Y"
format = "wecom"

[[alerts.webhook]]
url = "http://{dead_http}/dead"

[[alerts.webhook]]
url = "http://{silent_addr}/silent"

[[alerts.smtp]]
server = "127.0.0.1"
port = {dead_port}
tls = "none"
from = "fepd@example.cn"
to = ["ops@example.cn"]
"#,
        a = hook.addr
    ));
    let secret = env.root.join("ding.secret");
    std::fs::write(&secret, "SECtest-robot-secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.fepd(&["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let _d = env.start();
    // Dead channels (a closed webhook port, a silent one, a closed SMTP
    // port) do not slow delivery: the file is sealed and exported in the usual time.
    let t0 = Instant::now();
    let recs: Vec<_> = (0..3).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.csv", &data::csv(&recs, false, Enc::Utf8));
    let r = env.receipt("case_accept", "a.csv");
    let id = r["batches"][0]["batchId"].as_str().unwrap().to_string();
    let exported = env.outbox("case_accept").join(format!("{id}.json"));
    env.wait("exported", Duration::from_secs(10), || exported.exists());
    assert!(t0.elapsed() < Duration::from_secs(10));

    std::fs::write(
        env.outbox("case_accept").join(format!("{id}.nack")),
        r#"{"code":"400002","message":"digest mismatch"}"#,
    )
    .unwrap();
    env.wait("parked", Duration::from_secs(10), || {
        env.batches_in("parked") == 1
    });
    let raised = "【fepd 告警】批次被搁置：case_accept";
    env.wait(
        "the alert at the 钉钉 robot",
        Duration::from_secs(15),
        || ding_titles(&hook).iter().any(|t| t == raised),
    );
    // 钉钉: a markdown message, signed with the robot's secret.
    let ding = hook.at("/ding");
    let first = &ding[0];
    assert_eq!(first.body["msgtype"], "markdown");
    let text = first.body["markdown"]["text"].as_str().unwrap();
    for part in [
        "发生了什么：",
        "开始时间：",
        "影响：",
        "处理：",
        "安装与运维手册.md#10-告警",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert!(first.uri.contains("access_token=T0KEN"));
    let ts = query(&first.uri, "timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"SECtest-robot-secret").unwrap();
    mac.update(format!("{ts}\nSECtest-robot-secret").as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(query(&first.uri, "sign"), want);
    // 企业微信: markdown content, no signature.
    env.wait(
        "the alert at the 企业微信 robot",
        Duration::from_secs(10),
        || !hook.at("/wecom").is_empty(),
    );
    let wecom = &hook.at("/wecom")[0];
    assert_eq!(wecom.body["msgtype"], "markdown");
    assert!(
        wecom.body["markdown"]["content"]
            .as_str()
            .unwrap()
            .starts_with(raised)
    );
    assert_eq!(wecom.uri, "/wecom?key=K3Y");

    // Repeated while it lasts (repeat = 3s), raised only once.
    env.wait("a repeat", Duration::from_secs(15), || {
        ding_titles(&hook)
            .iter()
            .any(|t| t.ends_with("（仍未恢复）"))
    });
    assert_eq!(
        ding_titles(&hook).iter().filter(|t| *t == raised).count(),
        1
    );

    // Retried, the batch is no longer parked: 恢复.
    let out = env.fepd(&["batches", "retry", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resolved = "【fepd 恢复】批次被搁置：case_accept";
    env.wait(
        "恢复 at the 钉钉 robot",
        Duration::from_secs(15),
        || ding_titles(&hook).iter().any(|t| t == resolved),
    );
    std::thread::sleep(Duration::from_secs(4));
    let titles = ding_titles(&hook);
    assert_eq!(titles.iter().filter(|t| *t == resolved).count(), 1);
    assert_eq!(titles.last().unwrap(), resolved, "{titles:?}");
    assert_eq!(env.events("alert_raised"), 1);
    assert_eq!(env.events("alert_resolved"), 1);
    // The dead channels failed and were counted, by name only.
    let (_, metrics) = http_get(&admin, "/metrics");
    for ch in ["webhook[2]", "webhook[3]", "smtp[0]"] {
        assert!(
            metrics.contains(&format!(
                "fepd_alert_send_failures_total{{channel=\"{ch}\"}}"
            )),
            "{ch} in {metrics}"
        );
    }
    assert!(!env.log_has("T0KEN") && !env.log_has("K3Y"));
    drop(silent);
}

#[test]
fn credential_expiry_reaches_smtp_and_syslog_and_shows_in_status_metrics_and_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path());
    let mut syslog = SyslogUdp::start();
    let syslog_tcp = SyslogTcp::start();
    let admin = free_addr();
    let tz = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let in_three = (chrono::Utc::now().with_timezone(&tz).date_naive() + chrono::Days::new(3))
        .format("%Y-%m-%d")
        .to_string();
    let env = Env::new(&format!(
        r#"
[admin]
listen = "{admin}"

[alerts]
interval = "1s"

[[alerts.smtp]]
server = "127.0.0.1"
port = {port}
tls = "none"
from = "fepd@example.cn"
to = ["ops@example.cn", "duty@example.cn"]

[[alerts.syslog]]
address = "udp://{sys}"

[[alerts.syslog]]
address = "tcp://{tcp}"
{http}"#,
        tcp = syslog_tcp.addr,
        port = smtp.port,
        sys = syslog.addr,
        http = http_sink(
            "http://127.0.0.1:9",
            &format!("credential_expires = \"{in_three}\"")
        ),
    ));
    let out = env.fepd(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("⚠ sink.http.credential_expires: the library credentials expire in 3 day(s)"),
        "{text}"
    );

    let _d = env.start();
    let subject = "【fepd 告警】资源库凭据即将过期：sink.http";
    env.wait(
        "the expiry warning by mail",
        Duration::from_secs(20),
        || smtp.mails().iter().any(|m| m.contains(subject)),
    );
    let mail = smtp
        .mails()
        .into_iter()
        .find(|m| m.contains(subject))
        .unwrap();
    assert!(
        mail.contains("To: ops@example.cn,duty@example.cn"),
        "{mail}"
    );
    assert!(mail.contains("资源库凭据将在 3 天后过期"), "{mail}");
    assert!(mail.contains("处理："), "{mail}");
    env.wait(
        "the expiry warning by syslog",
        Duration::from_secs(10),
        || {
            syslog
                .lines()
                .iter()
                .any(|l| l.contains(" credential_expiry - ") && l.contains(subject))
        },
    );
    let line = syslog
        .lines()
        .iter()
        .find(|l| l.contains(" credential_expiry - "))
        .unwrap()
        .clone();
    // Facility daemon (3), severity warning (4): <28>, RFC 5424 version 1.
    assert!(line.starts_with("<28>1 "), "{line}");
    // Over TCP the same line, framed by its length in octets (RFC 6587).
    env.wait(
        "the expiry warning by syslog over TCP",
        Duration::from_secs(10),
        || !syslog_tcp.streams().is_empty(),
    );
    let stream = String::from_utf8(syslog_tcp.streams().remove(0)).unwrap();
    let (len, rest) = stream.split_once(' ').unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), rest.len(), "{stream}");
    // The same line but for its timestamp (each channel stamps its send).
    let after_time = |l: &str| l.splitn(4, ' ').nth(3).unwrap().to_string();
    assert!(rest.starts_with("<28>1 "), "{rest}");
    assert_eq!(after_time(rest), after_time(&line));
    // Once a day, not every evaluation.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        smtp.mails().iter().filter(|m| m.contains(subject)).count(),
        1
    );

    assert_eq!(env.status()["credential_days_left"], 3);
    let out = env.fepd(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("credentials: expire in 3 day(s)"), "{text}");
    let (_, metrics) = http_get(&admin, "/metrics");
    assert!(metrics.contains("fepd_credential_days_left 3"), "{metrics}");

    // A date in the past is a problem for check-config.
    env.set("sink.http.credential_expires", "2020-01-01");
    let out = env.fepd(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("✗ sink.http.credential_expires: the library credentials have expired"),
        "{text}"
    );
}

#[test]
fn the_heartbeat_reports_the_days_counts_to_a_json_webhook_a_local_syslog_socket_and_a_dead_mans_switch()
 {
    let hook = Recorder::start();
    // A local syslog socket, as /dev/log is: a Unix datagram socket.
    let sock_dir = tempfile::tempdir().unwrap();
    let sock_path = sock_dir.path().join("log");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let env = Env::new(&format!(
        r#"
[alerts]
interval = "1s"
heartbeat = "2s"
heartbeat_url = "http://{a}/alive"

[[alerts.webhook]]
url = "http://{a}/json"

[[alerts.syslog]]
address = "unix:{s}"
"#,
        a = hook.addr,
        s = sock_path.display()
    ));
    let _d = env.start();
    let recs: Vec<_> = (0..3).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.csv", &data::csv(&recs, false, Enc::Utf8));
    env.receipt("case_accept", "a.csv");
    let counted = |r: &crate::receivers::Request| {
        r.body["state"] == "heartbeat"
            && r.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("case_accept：3 / 3 / 0"))
    };
    env.wait(
        "a heartbeat with the day's counts",
        Duration::from_secs(15),
        || hook.at("/json").iter().any(counted),
    );
    let beat = hook.at("/json").into_iter().find(counted).unwrap();
    assert_eq!(beat.body["kind"], "heartbeat");
    assert!(
        beat.body["title"]
            .as_str()
            .unwrap()
            .starts_with("【fepd 运行正常】")
    );
    assert!(!hook.at("/alive").is_empty());
    let mut buf = vec![0u8; 65536];
    let n = sock
        .recv(&mut buf)
        .expect("a datagram on the local syslog socket");
    let line = String::from_utf8_lossy(&buf[..n]);
    // RFC 5424: <PRI>1 TIMESTAMP HOST fepd …; facility daemon (3).
    assert!(line.starts_with('<') && line.contains(">1 "), "{line}");
    assert!(line.contains(" fepd "), "{line}");
}

#[test]
fn an_exchange_log_edited_behind_fepd_s_back_raises_an_alert_until_it_verifies_again() {
    let hook = Recorder::start();
    let env = alerting_to(&hook, "verify_log = \"1s\"");
    let d = env.start();
    three_records(&env, "a.jsonl");
    let of = |state: &str| sent(&hook, "log_broken", state);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(of("raised"), 0, "an intact log raised an alert");

    // The attack no command offers: a sealed batch's counts rewritten in
    // place, its hash left as it was.
    let conn = rusqlite::Connection::open(env.db()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let (seq, counts): (i64, String) = conn
        .query_row(
            "SELECT seq, counts FROM exchange_log WHERE event = 'batch_sealed' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    conn.execute(
        "UPDATE exchange_log SET counts = '{\"records\":999}' WHERE seq = ?1",
        [seq],
    )
    .unwrap();
    env.wait("the log_broken alert", Duration::from_secs(15), || {
        of("raised") == 1
    });
    let raised = hook
        .at("/json")
        .into_iter()
        .find(|r| r.body["kind"] == "log_broken")
        .unwrap();
    let text = raised.body["text"].as_str().unwrap();
    assert!(text.contains(&format!("第 {seq} 条")), "{text}");
    assert!(text.contains("fepd audit verify"), "{text}");
    // Repeated while it lasts (repeat = 2s), raised only once.
    env.wait("a repeat", Duration::from_secs(15), || of("repeated") >= 1);
    assert_eq!(of("raised"), 1);

    // Put back as it was: the next verification passes, and 恢复 follows.
    conn.execute(
        "UPDATE exchange_log SET counts = ?2 WHERE seq = ?1",
        rusqlite::params![seq, counts],
    )
    .unwrap();
    env.wait("the 恢复 message", Duration::from_secs(15), || {
        of("resolved") == 1
    });
    assert_eq!(of("raised"), 1, "raised once per episode");
    let (status, _) = d.stop();
    assert!(status.success());
    let out = env.fepd(&["audit", "verify"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(env.events("alert_raised"), 1);
    assert_eq!(env.events("alert_resolved"), 1);
}

#[test]
fn a_reconciliation_that_no_longer_balances_raises_an_alert_until_it_does() {
    let hook = Recorder::start();
    let env = alerting_to(&hook, "verify_log = \"1s\"");
    let d = env.start();
    three_records(&env, "a.jsonl");
    let of = |state: &str| sent(&hook, "reconciliation", state);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(of("raised"), 0, "a balanced day raised an alert");

    // No command can unbalance a day: a file's received count is raised
    // by hand, as a damaged or edited state database would show it.
    let conn = rusqlite::Connection::open(env.db()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute("UPDATE file SET received = received + 1", [])
        .unwrap();
    env.wait("the reconciliation alert", Duration::from_secs(15), || {
        of("raised") == 1
    });
    let raised = hook
        .at("/json")
        .into_iter()
        .find(|r| r.body["kind"] == "reconciliation")
        .unwrap();
    let text = raised.body["text"].as_str().unwrap();
    assert!(text.contains("收到 4 ≠ 拒收 0 + 跳过 0 + 封装 3"), "{text}");
    assert!(
        raised.body["subject"]
            .as_str()
            .unwrap()
            .starts_with("case_accept ")
    );
    env.wait("a repeat", Duration::from_secs(15), || of("repeated") >= 1);
    assert_eq!(of("raised"), 1, "raised once per episode");
    conn.execute("UPDATE file SET received = received - 1", [])
        .unwrap();
    env.wait("the 恢复 message", Duration::from_secs(15), || {
        of("resolved") == 1
    });
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn the_canary_probes_every_route_and_alerts_while_the_library_does_not_answer() {
    let hook = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let lib = Library::start_on(&listen, &dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    let alerts = crate::config::parse_toml(&format!(
        r#"
[alerts]
interval = "1s"
canary = "*/2 * * * * *"
repeat = "2s"

[[alerts.webhook]]
url = "http://{a}/json"
"#,
        a = hook.addr
    ));
    env.edit_config(|t| crate::config::merge(t, alerts));
    let d = env.start();
    let routes = DATASETS.len() as u64;
    env.wait("a round of probes", Duration::from_secs(15), || {
        lib.stats()["probes"].as_u64().unwrap_or(0) >= routes
    });
    let of = |state: &str| sent(&hook, "canary", state);
    assert_eq!(
        of("raised"),
        0,
        "an answering library raised a canary alert"
    );
    assert!(
        env.events("selftest") >= 1,
        "the probes are in the exchange log"
    );

    // The library goes away: every route's probe fails.
    lib.stop();
    env.wait("a canary alert per route", Duration::from_secs(20), || {
        of("raised") as u64 == routes
    });
    let one = hook
        .at("/json")
        .into_iter()
        .find(|r| r.body["kind"] == "canary")
        .unwrap();
    assert!(
        one.body["text"].as_str().unwrap().contains("fepd selftest"),
        "{}",
        one.body
    );
    // Repeated for every route while it lasts, each raised once.
    env.wait("a repeat per route", Duration::from_secs(20), || {
        let subjects: std::collections::BTreeSet<String> = hook
            .at("/json")
            .into_iter()
            .filter(|r| r.body["kind"] == "canary" && r.body["state"] == "repeated")
            .map(|r| r.body["subject"].to_string())
            .collect();
        subjects.len() as u64 == routes
    });
    assert_eq!(of("raised") as u64, routes, "raised once per route");

    // Back on the same address: the next probes pass, each route resolves.
    let _lib = Library::start_on(&listen, &dir.path().join("lib.db"), &[]);
    env.wait("恢复 per route", Duration::from_secs(20), || {
        of("resolved") as u64 == routes
    });
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn a_collector_that_stops_taking_batches_raises_stall_oldest_pending_and_paused_intake_until_it_acks()
 {
    let hook = Recorder::start();
    let env = Env::new(&format!(
        r#"
[backpressure]
high_water_records = 5
min_free_bytes = 0

[alerts]
interval = "1s"
stall = "3s"
oldest_pending = "2s"
repeat = "2s"

[[alerts.webhook]]
url = "http://{a}/json"
"#,
        a = hook.addr
    ));
    let d = env.start();
    let of = |kind: &str, state: &str| sent(&hook, kind, state);
    // Ten records sealed and exported; nobody collects them.
    let recs: Vec<_> = (0..10).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.receipt("case_accept", "a.jsonl");
    env.wait("the three alerts", Duration::from_secs(30), || {
        of("oldest_pending", "raised") == 1
            && of("route_stalled", "raised") == 1
            && of("intake_paused", "raised") == 1
    });
    let paused = hook
        .at("/json")
        .into_iter()
        .find(|r| r.body["kind"] == "intake_paused")
        .unwrap();
    assert!(
        paused.body["text"].as_str().unwrap().contains("高水位"),
        "{}",
        paused.body
    );
    // Each is repeated while it lasts (repeat = 2s), and raised only once.
    env.wait("a repeat of each", Duration::from_secs(20), || {
        ["oldest_pending", "route_stalled", "intake_paused"]
            .iter()
            .all(|k| of(k, "repeated") >= 1)
    });
    // The collector acknowledges everything: each alert resolves once.
    for b in env.batches(Some("exported")) {
        let id = b["batch_id"].as_str().unwrap();
        let n = b["count"].as_i64().unwrap();
        std::fs::write(
            env.outbox("case_accept").join(format!("{id}.ack")),
            format!(r#"{{"receiptId":"R-{id}","accepted":{n},"rejected":[]}}"#),
        )
        .unwrap();
    }
    env.wait("恢复 of all three", Duration::from_secs(30), || {
        of("oldest_pending", "resolved") == 1
            && of("route_stalled", "resolved") == 1
            && of("intake_paused", "resolved") == 1
    });
    for kind in ["oldest_pending", "route_stalled", "intake_paused"] {
        assert_eq!(of(kind, "raised"), 1, "{kind} raised once");
    }
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn an_episode_open_at_a_restart_goes_on_and_is_resolved_once() {
    let hook = Recorder::start();
    let env = alerting_to(&hook, "");
    let of = |state: &str| sent(&hook, "batch_parked", state);
    let d = env.start();
    let r = three_records(&env, "a.jsonl");
    let id = r["batches"][0]["batchId"].as_str().unwrap().to_string();
    let exported = env.outbox("case_accept").join(format!("{id}.json"));
    env.wait("exported", Duration::from_secs(10), || exported.exists());
    std::fs::write(
        env.outbox("case_accept").join(format!("{id}.nack")),
        r#"{"code":"400002","message":"digest mismatch"}"#,
    )
    .unwrap();
    env.wait("the alert", Duration::from_secs(15), || of("raised") == 1);
    let (status, _) = d.stop();
    assert!(status.success());

    // Restarted with the batch still parked: the episode goes on.
    let d = env.start();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(of("raised"), 1, "raised again after the restart");
    let out = env.fepd(&["batches", "retry", &id]);
    assert!(out.status.success(), "{out:?}");
    env.wait("恢复", Duration::from_secs(15), || of("resolved") == 1);
    assert!(of("repeated") >= 1, "repeated while it lasted");
    let (status, _) = d.stop();
    assert!(status.success());
    assert_eq!(env.events("alert_raised"), 1);
    assert_eq!(env.events("alert_resolved"), 1);
}

/// A test CA and a certificate it signed for `localhost` / 127.0.0.1, made
/// with the openssl command: (ca.pem, server.pem, server.key).
pub(crate) fn test_ca(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (Debian package openssl) must run");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=fepd test CA",
        "-days",
        "2",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn mail_goes_over_starttls_and_implicit_tls_to_a_server_signed_by_the_site_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(certs.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let starttls = SmtpServer::start_with(d1.path(), &["--tlscert", cert, "--tlskey", key]);
    let implicit = SmtpServer::start_with(d2.path(), &["--smtpscert", cert, "--smtpskey", key]);
    let expires = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let env = Env::http(
        "http://127.0.0.1:9",
        &format!("credential_expires = \"{expires}\""),
    );
    let alerts = crate::config::parse_toml(&format!(
        r#"
[alerts]
interval = "1s"

[[alerts.smtp]]
server = "localhost"
port = {p1}
tls = "starttls"
ca_file = "{ca}"
from = "fepd@example.gov.cn"
to = ["ops@example.gov.cn"]

[[alerts.smtp]]
server = "localhost"
port = {p2}
tls = "tls"
ca_file = "{ca}"
from = "fepd@example.gov.cn"
to = ["ops@example.gov.cn"]
"#,
        p1 = starttls.port,
        p2 = implicit.port,
        ca = ca.display()
    ));
    env.edit_config(|t| crate::config::merge(t, alerts));
    let d = env.start();
    env.wait("the warning over both", Duration::from_secs(20), || {
        !starttls.mails().is_empty() && !implicit.mails().is_empty()
    });
    for m in starttls.mails().iter().chain(&implicit.mails()) {
        assert!(m.contains("资源库凭据即将过期"), "{m}");
    }
    let (status, _) = d.stop();
    assert!(status.success());
}
