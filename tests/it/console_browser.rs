//! The web console in a real browser (headless Chromium over WebDriver):
//! log in, see the overview, upload a file with a bad row and read the
//! verdict, retry a parked batch as the operator and be refused as the
//! auditor, trace a record key, lock an account out with wrong passwords.

use std::time::Duration;

use serde_json::json;

use crate::console::{PASSWORD, console_env, drop_mixed_csv};
use crate::data::{self, Enc};
use crate::webdriver::Browser;

/// With `FEPD_CONSOLE_SHOTS=DIR` (scripts/console-shots.sh), a PNG of
/// the page now as `DIR/NAME.png`.
fn shot(b: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("FEPD_CONSOLE_SHOTS") {
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        std::fs::write(&path, b.screenshot()).unwrap();
    }
}

fn login(b: &Browser, base: &str, user: &str, password: &str) -> String {
    b.clear_cookies();
    b.goto(&format!("{base}/login"));
    b.type_into("input[name=username]", user);
    b.type_into("input[name=password]", password);
    b.submit("form[action='/login'] button");
    b.text()
}

#[test]
fn the_console_in_a_browser() {
    let (env, addr) = console_env("");
    let base = format!("http://{addr}");
    let _d = env.start_ready();
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

    let b = Browser::start();
    // Data staff: the overview of their dataset, then an upload's verdict.
    b.goto(&format!("{base}/login"));
    shot(&b, "01-login");
    let page = login(&b, &base, "专员", PASSWORD);
    assert!(
        page.contains("总览") && page.contains("case_accept"),
        "{page}"
    );
    shot(&b, "02-overview-data-staff");
    assert!(!page.contains("evaluation"), "{page}");
    let mut bad = recs.clone();
    for (f, v) in bad[2].iter_mut() {
        if *f == "area_code" {
            *v = "999999".into();
        }
    }
    let file = env.root.join("带错行.csv");
    std::fs::write(&file, data::csv(&bad, true, Enc::Utf8)).unwrap();
    b.goto(&format!("{base}/upload"));
    b.choose_file("input[type=file]", &file);
    b.submit("button[value='0']");
    let page = b.text();
    assert!(page.contains("共 3 条记录，通过 2 条，拒绝 1 条"), "{page}");
    assert!(page.contains("GB/T 2260"), "{page}");
    assert!(page.contains("只做了校验"), "{page}");
    shot(&b, "03-upload-verdict");

    // The auditor sees the parked batch but is refused a retry, even by a
    // form made in the page.
    let page = login(&b, &base, "审计员", PASSWORD);
    assert!(page.contains("安全审计员"), "{page}");
    b.goto(&format!("{base}/batches?state=parked"));
    let page = b.text();
    assert!(page.contains(&id) && !page.contains("重发"), "{page}");
    let forged = "const f = document.createElement('form'); f.method = 'post'; \
                  f.action = '/batches/retry'; \
                  for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value], ['id', arguments[0]]]) \
                  { const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); } \
                  document.body.appendChild(f); f.submit();";
    b.run_submit(forged, json!([id]));
    let page = b.text();
    assert!(page.contains("无权"), "{page}");
    shot(&b, "04-refused");
    assert_eq!(env.batch(&id)["state"], "parked");
    // The auditor traces a record key.
    let key = recs[0]
        .iter()
        .find(|(f, _)| *f == "project_no")
        .map(|(_, v)| v.clone())
        .unwrap();
    b.goto(&format!("{base}/log"));
    b.type_into("input[name=key]", &key);
    b.submit("#trace button");
    let page = b.text();
    assert!(
        page.contains("batch_sealed") && page.contains(&key),
        "{page}"
    );
    shot(&b, "05-trace");

    // The operator retries it with the button.
    login(&b, &base, "操作员", PASSWORD);
    b.goto(&format!("{base}/batches?state=parked"));
    shot(&b, "06-batches-operator");
    b.submit("form[action='/batches/retry'] button");
    let page = b.text();
    assert!(page.contains("批次"), "{page}");
    assert_ne!(env.batch(&id)["state"], "parked");
    if std::env::var_os("FEPD_CONSOLE_SHOTS").is_some() {
        for (path, name) in [
            ("/", "07-overview-operator"),
            ("/files", "08-files"),
            ("/rejections", "09-rejections"),
            ("/reconcile", "10-reconcile"),
            ("/log", "11-log"),
        ] {
            b.goto(&format!("{base}{path}"));
            shot(&b, name);
        }
        login(&b, &base, "管理员", PASSWORD);
        b.goto(&format!("{base}/system"));
        shot(&b, "12-system");
        b.goto(&format!("{base}/users"));
        shot(&b, "14-users");
    }

    // Three wrong passwords lock an account.
    for _ in 0..2 {
        let page = login(&b, &base, "审计员", "Not-The-Password-1");
        assert!(page.contains("用户名或密码错误"), "{page}");
    }
    let page = login(&b, &base, "审计员", "Not-The-Password-1");
    assert!(page.contains("已被锁定"), "{page}");
    shot(&b, "13-locked-out");
    let page = login(&b, &base, "审计员", PASSWORD);
    assert!(page.contains("已被锁定"), "{page}");
}

/// Polls `cond` every 100 ms for up to 20 s.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    crate::harness::wait_for(what, Duration::from_secs(20), &mut cond);
}

#[test]
fn with_javascript_lists_filter_in_place_actions_ask_first_and_xlsx_downloads() {
    let (env, addr) = console_env("");
    let base = format!("http://{addr}");
    let _d = env.start_ready();
    let (recs, bad_id) = drop_mixed_csv(&env);
    env.drop_file(
        "case_accept",
        "other.jsonl",
        &data::jsonl(&recs[..1], Enc::Utf8),
    );
    env.wait("both files finished", Duration::from_secs(20), || {
        env.events("file_rejected") + env.events("file_done") >= 2
    });

    let b = Browser::start();
    login(&b, &base, "审计员", PASSWORD);
    // htmx came from the binary, past the page's content security policy.
    b.goto(&format!("{base}/files"));
    assert_eq!(b.script("return typeof htmx", json!([])), json!("object"));
    let before = b.script(
        "return document.body === window.__kept || (window.__kept = document.body, 'kept')",
        json!([]),
    );
    assert_eq!(before, json!("kept"));
    // The filter replaces the list in place and the address follows it.
    b.type_into("input[name=name]", "mixed");
    b.click("form[action='/files'] button");
    until("the list filtered in place", || {
        let t = b.text();
        t.contains("mixed.csv") && !t.contains("other.jsonl")
    });
    assert_eq!(
        b.script("return document.body === window.__kept", json!([])),
        json!(true),
        "the page was not reloaded"
    );
    let url = b.script("return location.search", json!([]));
    assert!(url.as_str().unwrap().contains("name=mixed"), "{url}");

    // The report downloads as xlsx, read back, the value masked.
    b.click("a[href^='/files/']");
    until("the file page", || b.text().contains("下载 Excel"));
    b.click("a[href$='errors.xlsx']");
    let saved = b.downloads.path().join("errors.xlsx");
    // Whole: Chromium may show the file before its last bytes (the zip's
    // end record, 22 bytes from the end of a comment-less archive).
    until("errors.xlsx downloaded", || {
        std::fs::read(&saved)
            .is_ok_and(|b| b.len() >= 22 && b[b.len() - 22..].starts_with(b"PK\x05\x06"))
    });
    let rows = crate::console_records::read_xlsx(&std::fs::read(&saved).unwrap());
    let flat = rows.concat().join("|");
    assert!(
        flat.contains("GB 11643") && !flat.contains(&bad_id),
        "{flat}"
    );

    // An action asks first: cancelled, nothing changes; confirmed, done.
    login(&b, &base, "管理员", PASSWORD);
    b.goto(&format!("{base}/users"));
    let disable = "form.confirm:has(input[value='专员']) button[value=disable]";
    b.click(disable);
    until("the question", || b.dialog().is_some());
    assert_eq!(b.dialog().unwrap(), "确定变更该用户吗？");
    b.answer_dialog(false);
    assert!(
        env.log_entries(&["--event", "user_changed", "--since", "2000-01-01"])
            .iter()
            .all(|e| e["details"]["change"] != "disabled")
    );
    b.click(disable);
    until("the question again", || b.dialog().is_some());
    b.answer_dialog(true);
    until("the user disabled", || {
        env.log_entries(&["--event", "user_changed"])
            .iter()
            .any(|e| e["details"]["user"] == "专员" && e["details"]["change"] == "disabled")
    });
}
