//! The web console (README "Web console") against the real daemon, spoken
//! to over HTTP as a browser without JavaScript would: users made with
//! `fepd users`, each role's pages and actions allowed or refused (and the
//! refusals in the exchange log), CSRF, lock-out, session expiry, the
//! upload verdict with personal data masked.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::blocking::{Client, multipart};

use crate::data::{self, Enc};
use crate::harness::*;

/// A browser without JavaScript: its cookies, no redirects followed.
pub(crate) struct Browser {
    client: Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    pub(crate) fn new(addr: &str) -> Browser {
        Browser {
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: format!("http://{addr}"),
            cookies: BTreeMap::new(),
        }
    }

    /// A browser that trusts the test CA at `ca`, speaking HTTPS.
    fn https(addr: &str, ca: &std::path::Path) -> Browser {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
        Browser {
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .add_root_certificate(ca)
                .build()
                .unwrap(),
            base: format!("https://{addr}"),
            cookies: BTreeMap::new(),
        }
    }

    fn send(&mut self, req: reqwest::blocking::RequestBuilder) -> (u16, String) {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let r = req.header("cookie", cookie.join("; ")).send().unwrap();
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, flags) = c.split_once(';').unwrap_or((c, ""));
            assert!(
                flags.contains("HttpOnly") && flags.contains("SameSite=Strict"),
                "{c}"
            );
            let (k, v) = pair.split_once('=').unwrap();
            if flags.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    }

    pub(crate) fn get(&mut self, path: &str) -> (u16, String) {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req)
    }

    /// A download's status and bytes.
    pub(crate) fn bytes(&mut self, path: &str) -> (u16, Vec<u8>) {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie.join("; "))
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    }

    pub(crate) fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let req = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(req)
    }

    /// Logs in through the form; the status of the answer to the POST.
    pub(crate) fn login(&mut self, user: &str, password: &str) -> (u16, String) {
        let (s, page) = self.get("/login");
        assert_eq!(s, 200, "{page}");
        let token = csrf(&page);
        self.post(
            "/login",
            &[("csrf", &token), ("username", user), ("password", password)],
        )
    }

    /// The CSRF token of the session, from a page's logout form.
    pub(crate) fn token(&mut self) -> String {
        let (_, page) = self.get("/");
        csrf(&page)
    }

    pub(crate) fn upload(
        &mut self,
        dataset: &str,
        name: &str,
        bytes: Vec<u8>,
        enqueue: bool,
    ) -> (u16, String) {
        let token = self.token();
        let form = multipart::Form::new()
            .text("csrf", token)
            .text("dataset", dataset.to_string())
            .text("enqueue", if enqueue { "1" } else { "0" })
            .part(
                "file",
                multipart::Part::bytes(bytes).file_name(name.to_string()),
            );
        let req = self
            .client
            .post(format!("{}/upload", self.base))
            .multipart(form);
        self.send(req)
    }
}

/// The value of the first `csrf` field in a page.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

pub(crate) const PASSWORD: &str = "Gov-Exchange-2026";

pub(crate) fn add_user(env: &Env, name: &str, role: &str, extra: &[&str]) {
    let pw = env.root.join(format!("{name}.pw"));
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let mut args = vec!["users", "add", name, "--role", role, "--password-file"];
    args.push(pw.to_str().unwrap());
    args.extend(extra);
    let out = env.fepd(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn console_env(extra: &str) -> (Env, String) {
    let addr = free_addr();
    let env = Env::new(&format!(
        "[console]\nlisten = \"{addr}\"\nlockout_failures = 3\n{extra}"
    ));
    add_user(&env, "管理员", "admin", &[]);
    add_user(&env, "审计员", "auditor", &[]);
    add_user(&env, "操作员", "operator", &[]);
    add_user(&env, "专员", "data_staff", &["--datasets", "case_accept"]);
    (env, addr)
}

/// Three case_accept records dropped as `mixed.csv` (Chinese headers),
/// the second with a 身份证号 whose check digit is wrong, so the file is
/// rejected with one GB 11643 refusal; returns the records and that value.
pub(crate) fn drop_mixed_csv(env: &Env) -> (Vec<data::Record>, String) {
    let mut recs: Vec<_> = (0..3).map(data::case_accept).collect();
    let good = data::id_card(4);
    let last = if good.ends_with('0') { '1' } else { '0' };
    let bad_id = format!("{}{last}", &good[..17]);
    for (f, v) in recs[1].iter_mut() {
        if *f == "applyer_page_code" {
            *v = bad_id.clone();
        }
    }
    env.drop_file(
        "case_accept",
        "mixed.csv",
        &data::csv(&recs, true, Enc::Utf8),
    );
    (recs, bad_id)
}

/// `console_refused` entries: (user, action, reason).
pub(crate) fn refusals(env: &Env) -> Vec<(String, String, String)> {
    env.log_entries(&["--event", "console_refused"])
        .iter()
        .map(|e| {
            let d = &e["details"];
            let s = |k: &str| d[k].as_str().unwrap().to_string();
            (s("user"), s("action"), s("reason"))
        })
        .collect()
}

#[test]
fn users_are_managed_with_a_password_rule_and_listed() {
    let env = Env::new("");
    let weak = env.root.join("weak.pw");
    std::fs::write(&weak, "short1\n").unwrap();
    let out = env.fepd(&[
        "users",
        "add",
        "甲",
        "--role",
        "auditor",
        "--password-file",
        weak.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("至少 10 个字符"));
    add_user(&env, "甲", "auditor", &[]);
    let out = env.fepd(&["users", "disable", "甲", "--by", "root"]);
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&env.fepd(&["users", "list"]).stdout).to_string();
    assert!(list.contains("甲") && list.contains("disabled"), "{list}");
    assert!(!list.contains("argon2"), "{list}");
    let changes = env.log_entries(&["--event", "user_changed"]);
    let what: Vec<_> = changes
        .iter()
        .map(|e| e["details"]["change"].as_str().unwrap())
        .collect();
    assert_eq!(what, ["added", "disabled"]);
    assert_eq!(changes[1]["details"]["by"], "root");
}

#[test]
fn each_role_sees_and_does_only_what_it_may() {
    let (env, addr) = console_env("");
    let _d = env.start_ready();
    // A batch to act on, parked by the CLI.
    let recs: Vec<_> = (0..3).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("a batch", Duration::from_secs(20), || {
        !env.batches(None).is_empty()
    });
    let id = env.batches(None)[0]["batch_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(env.fepd(&["batches", "park", &id]).status.success());

    // Without a session, every page sends to the login form.
    let mut anon = Browser::new(&addr);
    assert_eq!(anon.get("/batches").0, 303);

    // Pages: (path, roles allowed).
    let pages = [
        ("/", ["管理员", "审计员", "操作员", "专员"].as_slice()),
        ("/batches", &["审计员", "操作员"]),
        ("/log", &["审计员", "操作员"]),
        ("/upload", &["操作员", "专员"]),
        ("/system", &["管理员", "审计员"]),
    ];
    for user in ["管理员", "审计员", "操作员", "专员"] {
        let mut b = Browser::new(&addr);
        assert_eq!(b.login(user, PASSWORD).0, 303, "{user}");
        for (path, allowed) in pages {
            let (status, page) = b.get(path);
            let want = if allowed.contains(&user) { 200 } else { 403 };
            assert_eq!(status, want, "{user} {path}: {page}");
            if want == 403 {
                assert!(page.contains("无权"), "{page}");
            }
        }
    }
    // Actions (on a batch that does not exist, so nothing moves): only the
    // operator passes the role check.
    for user in ["管理员", "审计员", "操作员", "专员"] {
        let mut b = Browser::new(&addr);
        b.login(user, PASSWORD);
        let token = b.token();
        for path in ["/batches/retry", "/batches/park"] {
            let (status, page) = b.post(path, &[("csrf", &token), ("id", "NO-SUCH-BATCH")]);
            let want = if user == "操作员" { 409 } else { 403 };
            assert_eq!(status, want, "{user} {path}: {page}");
        }
    }
    // The overview of data staff names their dataset only.
    let mut staff = Browser::new(&addr);
    staff.login("专员", PASSWORD);
    let (_, page) = staff.get("/");
    assert!(
        page.contains("case_accept") && !page.contains("evaluation"),
        "{page}"
    );

    // The auditor may not retry; the operator does, recorded with the name.
    let mut auditor = Browser::new(&addr);
    auditor.login("审计员", PASSWORD);
    let token = auditor.token();
    assert_eq!(
        auditor
            .post("/batches/retry", &[("csrf", &token), ("id", &id)])
            .0,
        403
    );
    assert_eq!(env.batch(&id)["state"], "parked");
    let mut op = Browser::new(&addr);
    op.login("操作员", PASSWORD);
    let (_, page) = op.get("/batches?state=parked");
    assert!(page.contains(&id) && page.contains("重发"), "{page}");
    // A forged form (no or a wrong token) is refused.
    assert_eq!(
        op.post("/batches/retry", &[("csrf", "forged"), ("id", &id)])
            .0,
        403
    );
    assert_eq!(env.batch(&id)["state"], "parked");
    let token = op.token();
    assert_eq!(
        op.post("/batches/retry", &[("csrf", &token), ("id", &id)])
            .0,
        303
    );
    assert_ne!(env.batch(&id)["state"], "parked");
    let retried = env.log_entries(&["--event", "batch_retried"]);
    assert_eq!(retried.last().unwrap()["details"]["by"], "操作员");
    // Overreach is logged by name, action and reason.
    let r = refusals(&env);
    for want in [
        ("管理员", "batches", "role"),
        ("专员", "log", "role"),
        ("审计员", "batch_retry", "role"),
        ("操作员", "batch_retry", "csrf"),
    ] {
        let want = (want.0.to_string(), want.1.to_string(), want.2.to_string());
        assert!(r.contains(&want), "{want:?} in {r:?}");
    }
    // The log page traces a record key and shows the chain's status.
    let key = recs[0]
        .iter()
        .find(|(f, _)| *f == "project_no")
        .map(|(_, v)| v.clone())
        .unwrap();
    let (_, page) = auditor.get(&format!("/log?key={key}"));
    assert!(page.contains("batch_sealed"), "{page}");
    let (_, page) = auditor.get("/log?verify=1");
    assert!(
        page.contains("哈希链校验：") && page.contains("完整"),
        "{page}"
    );
    let logins = env.log_entries(&["--event", "console_login"]);
    assert!(logins.iter().any(|e| e["details"]["user"] == "审计员"));
}

#[test]
fn uploads_get_the_validate_verdict_masked_and_only_the_operator_enqueues() {
    let (env, addr) = console_env("");
    let _d = env.start_ready();
    let mut recs: Vec<_> = (0..3).map(data::case_accept).collect();
    // Row 2: an ID number with a wrong check digit.
    let good_id = data::id_card(1);
    let bad_id = format!(
        "{}{}",
        &good_id[..17],
        if good_id.ends_with('0') { '1' } else { '0' }
    );
    for (f, v) in recs[1].iter_mut() {
        if *f == "applyer_page_code" {
            *v = bad_id.clone();
        }
    }
    let bytes = data::csv(&recs, true, Enc::Utf8);
    let mut staff = Browser::new(&addr);
    staff.login("专员", PASSWORD);
    let (s, page) = staff.upload("case_accept", "bad.csv", bytes.clone(), false);
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("共 3 条记录，通过 2 条，拒绝 1 条"), "{page}");
    assert!(page.contains("GB 11643"), "{page}");
    // Values of personal fields appear masked only.
    for (f, v) in &recs[1] {
        if matches!(*f, "applyer_page_code" | "contact_mobile" | "applyer_name") {
            assert!(!page.contains(v.as_str()), "{f} in clear: {page}");
        }
    }
    // The CLI's verdict is the same.
    let file = env.root.join("bad.csv");
    std::fs::write(&file, &bytes).unwrap();
    let out = env.fepd(&[
        "validate",
        "--dataset",
        "case_accept",
        file.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("共 3 条记录，通过 2 条，拒绝 1 条"));
    // Nothing was sent or dropped.
    assert!(files_in(&env.spool("case_accept", "inbox")).is_empty());
    // Data staff may not enqueue, nor upload to another dataset.
    assert_eq!(
        staff
            .upload("case_accept", "bad.csv", bytes.clone(), true)
            .0,
        403
    );
    assert_eq!(
        staff.upload("evaluation", "e.csv", bytes.clone(), false).0,
        403
    );
    // The operator drops a good file into the inbox for real.
    let good = data::csv(&[data::case_accept(7)], true, Enc::Utf8);
    let mut op = Browser::new(&addr);
    op.login("操作员", PASSWORD);
    let (s, page) = op.upload("case_accept", "good.csv", good, true);
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("已放入"), "{page}");
    env.wait("good.csv done", Duration::from_secs(20), || {
        env.log_entries(&["--event", "file_done", "--file", "good.csv"])
            .len()
            == 1
    });
    let uploads = env.log_entries(&["--event", "console_upload"]);
    let who: Vec<_> = uploads
        .iter()
        .map(|e| {
            (
                e["details"]["user"].as_str().unwrap(),
                e["details"]["enqueued"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(who, [("专员", false), ("操作员", true)]);
    let r = refusals(&env);
    assert!(
        r.contains(&("专员".into(), "enqueue".into(), "role".into())),
        "{r:?}"
    );
    assert!(
        r.contains(&("专员".into(), "upload".into(), "dataset".into())),
        "{r:?}"
    );
}

#[test]
fn wrong_passwords_lock_an_account_and_idle_sessions_end() {
    let (env, addr) = console_env("idle_timeout_secs = 1\n");
    let _d = env.start_ready();
    let mut b = Browser::new(&addr);
    for _ in 0..2 {
        let (s, page) = b.login("专员", "Wrong-Password-1");
        assert_eq!(s, 401);
        assert!(page.contains("用户名或密码错误"), "{page}");
    }
    let (_, page) = b.login("专员", "Wrong-Password-1");
    assert!(page.contains("已被锁定"), "{page}");
    // Even the right password is refused while locked.
    let (s, page) = b.login("专员", PASSWORD);
    assert_eq!(s, 401);
    assert!(page.contains("已被锁定"), "{page}");
    let locked = env.log_entries(&["--event", "console_locked_out"]);
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0]["details"]["user"], "专员");
    let failed = env.log_entries(&["--event", "console_login_failed"]);
    let reasons: Vec<_> = failed
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["password", "password", "password", "locked"]);
    // A login form without its token is refused.
    let mut forged = Browser::new(&addr);
    let (s, _) = forged.post(
        "/login",
        &[
            ("csrf", "x"),
            ("username", "审计员"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(s, 403);
    // A new password ends the lock-out.
    let pw = env.root.join("new.pw");
    std::fs::write(&pw, "Another-Pass-2026\n").unwrap();
    assert!(
        env.fepd(&[
            "users",
            "passwd",
            "专员",
            "--password-file",
            pw.to_str().unwrap()
        ])
        .status
        .success()
    );
    assert_eq!(b.login("专员", "Another-Pass-2026").0, 303);
    // Idle past the timeout: the session is over.
    assert_eq!(b.get("/").0, 200);
    std::thread::sleep(Duration::from_millis(2500));
    let (s, page) = b.get("/");
    assert_eq!(s, 401);
    assert!(page.contains("会话已超时"), "{page}");
    let ended = env.log_entries(&["--event", "console_logout"]);
    assert_eq!(ended.last().unwrap()["details"]["reason"], "idle");
}

#[test]
fn beyond_loopback_the_console_needs_tls_and_over_tls_its_cookies_are_secure() {
    let env = Env::new("[console]\nlisten = \"0.0.0.0:8732\"\n");
    let out = env.fepd(&["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("only over HTTPS"));

    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::alerts::test_ca(certs.path());
    let addr = free_addr();
    let env = Env::new(&format!(
        "[console]\nlisten = \"{addr}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    add_user(&env, "审计员", "auditor", &[]);
    let _d = env.start_ready();
    // Plain HTTP on the TLS port gets no page.
    let mut plain = Browser::new(&addr);
    let req = plain.client.get(format!("{}/login", plain.base));
    assert!(req.send().is_err() || plain.get("/login").0 != 200);
    let mut b = Browser::https(&addr, &ca);
    let req = b.client.get(format!("{}/login", b.base));
    let r = req.send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert_eq!(b.login("审计员", PASSWORD).0, 303);
    let (s, page) = b.get("/log");
    assert_eq!(s, 200, "{page}");
}

#[test]
fn an_oversized_or_unknown_upload_gets_a_clear_page() {
    let (env, addr) = console_env("max_upload_bytes = 2000\n");
    let _d = env.start_ready();
    let mut staff = Browser::new(&addr);
    staff.login("专员", PASSWORD);
    // Over the limit, within the request's margin, and far over it.
    for size in [3000, 200_000] {
        let (s, page) = staff.upload("case_accept", "big.csv", vec![b'a'; size], false);
        assert_eq!(s, 413, "{page}");
        assert!(page.contains("文件超过上传上限"), "{page}");
    }
    let (s, page) = staff.upload("case_accept", "notes.txt", b"hello".to_vec(), false);
    assert_eq!(s, 200, "{page}");
    assert!(
        page.contains("整个文件") && page.contains("校验未通过"),
        "{page}"
    );
    // The daemon went on: a file dropped now is still processed.
    let recs: Vec<_> = (0..2).map(data::case_accept).collect();
    env.drop_file("case_accept", "after.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("after.jsonl done", Duration::from_secs(20), || {
        env.log_entries(&["--event", "file_done", "--file", "after.jsonl"])
            .len()
            == 1
    });
}

#[test]
fn the_overview_shows_today_s_figures_and_the_alerts_still_open() {
    let hook = crate::receivers::Recorder::start();
    let (env, addr) = console_env(&format!(
        "\n[alerts]\ninterval = \"1s\"\nrepeat = \"off\"\n[[alerts.webhook]]\nurl = \"http://{}/json\"\n",
        hook.addr
    ));
    let _d = env.start_ready();
    let recs: Vec<_> = (0..3).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.receipt("case_accept", "a.jsonl");
    let id = env.batches(None)[0]["batch_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(env.fepd(&["batches", "park", &id]).status.success());
    env.wait("the alert raised", Duration::from_secs(20), || {
        env.events("alert_raised") == 1
    });

    let mut op = Browser::new(&addr);
    assert_eq!(op.login("操作员", PASSWORD).0, 303);
    let (status, page) = op.get("/");
    assert_eq!(status, 200, "{page}");
    // Today's row: received 3, rejected 0, skipped 0, sealed 3.
    assert!(page.contains("今日（"), "{page}");
    assert!(
        page.contains("<td>case_accept</td><td>3</td><td>0</td><td>0</td><td>3</td>"),
        "{page}"
    );
    assert!(
        page.contains("未恢复的告警") && page.contains("批次被搁置"),
        "{page}"
    );
    // Data staff see their datasets' figures, not the alerts.
    let mut staff = Browser::new(&addr);
    assert_eq!(staff.login("专员", PASSWORD).0, 303);
    let (_, page) = staff.get("/");
    assert!(
        page.contains("今日（") && !page.contains("未恢复的告警"),
        "{page}"
    );

    // Retried, the episode ends and the overview says so.
    assert!(env.fepd(&["batches", "retry", &id]).status.success());
    env.wait("the alert resolved", Duration::from_secs(20), || {
        env.events("alert_resolved") == 1
    });
    let (_, page) = op.get("/");
    assert!(page.contains("没有未恢复的告警"), "{page}");
}
