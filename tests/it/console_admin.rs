//! The administrator's 用户 page and the reveal of personal values against
//! the real daemon: users added, disabled, enabled and given a new
//! password through the page with the rule and log entries of `fepd
//! users`; the reveal only for a user granted it (never by the
//! administrator to themselves), read again from the original file,
//! logged without the value, and shown nowhere else.

use std::time::Duration;

use crate::console::{Browser, PASSWORD, console_env, drop_mixed_csv, refusals};

/// `user_changed` entries: (user, change, by).
fn changes(env: &crate::harness::Env) -> Vec<(String, String, String)> {
    env.log_entries(&["--event", "user_changed"])
        .iter()
        .map(|e| {
            let d = &e["details"];
            let s = |k: &str| d[k].as_str().unwrap().to_string();
            (s("user"), s("change"), s("by"))
        })
        .collect()
}

fn has(list: &[(String, String, String)], want: (&str, &str, &str)) -> bool {
    list.iter()
        .any(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()) == want)
}

/// The value of the first field named `name` in a page's forms.
fn field(page: &str, name: &str) -> String {
    let pat = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&pat)
        .unwrap_or_else(|| panic!("{name} in {page}"))
        + pat.len();
    page[at..].split('"').next().unwrap().to_string()
}

#[test]
fn the_administrator_manages_users_through_the_page_and_no_one_else_may() {
    let (env, addr) = console_env("");
    let _d = env.start_ready();
    for user in ["审计员", "操作员", "专员"] {
        let mut b = Browser::new(&addr);
        b.login(user, PASSWORD);
        assert_eq!(b.get("/users").0, 403, "{user}");
        let token = b.token();
        let (status, _) = b.post(
            "/users/change",
            &[("csrf", &token), ("name", "操作员"), ("op", "disable")],
        );
        assert_eq!(status, 403, "{user}");
    }
    let mut admin = Browser::new(&addr);
    admin.login("管理员", PASSWORD);
    let (status, page) = admin.get("/users");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("审计员") && page.contains("新增用户"),
        "{page}"
    );
    let token = admin.token();
    // The password rule of `fepd users`, said in Chinese.
    let add = |pw: &'static str, csrf: String| {
        vec![
            ("csrf", csrf),
            ("name", "新人".to_string()),
            ("role", "operator".to_string()),
            ("password", pw.to_string()),
        ]
    };
    let form = add("short1", token.clone());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = admin.post("/users/add", &form);
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("至少 10 个字符"), "{page}");
    let form = add("New-Operator-2026", "forged".into());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(admin.post("/users/add", &form).0, 403);
    let form = add("New-Operator-2026", token.clone());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(admin.post("/users/add", &form).0, 303);
    let mut new = Browser::new(&addr);
    assert_eq!(new.login("新人", "New-Operator-2026").0, 303);
    assert_eq!(new.get("/batches").0, 200);

    // Disabled, the session ends and the login fails; enabled, it works.
    let change = |op: &str| {
        [
            ("csrf", token.clone()),
            ("name", "新人".to_string()),
            ("op", op.to_string()),
        ]
    };
    let f = change("disable");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(admin.post("/users/change", &f).0, 303);
    assert_ne!(new.get("/batches").0, 200);
    assert_ne!(
        Browser::new(&addr).login("新人", "New-Operator-2026").0,
        303
    );
    let f = change("enable");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(admin.post("/users/change", &f).0, 303);
    // A new password: the old one no longer works.
    let (status, _) = admin.post(
        "/users/change",
        &[
            ("csrf", &token),
            ("name", "新人"),
            ("op", "password"),
            ("password", "Reset-Password-77"),
        ],
    );
    assert_eq!(status, 303);
    assert_ne!(
        Browser::new(&addr).login("新人", "New-Operator-2026").0,
        303
    );
    assert_eq!(
        Browser::new(&addr).login("新人", "Reset-Password-77").0,
        303
    );
    // 三员分立: no reveal and no disabling for oneself.
    for op in ["reveal", "disable"] {
        let (status, page) = admin.post(
            "/users/change",
            &[("csrf", &token), ("name", "管理员"), ("op", op)],
        );
        assert_eq!(status, 403, "{op}: {page}");
    }
    let (status, _) = admin.post(
        "/users/change",
        &[("csrf", &token), ("name", "审计员"), ("op", "reveal")],
    );
    assert_eq!(status, 303);
    let list = String::from_utf8_lossy(&env.fepd(&["users", "list"]).stdout).to_string();
    let line = list.lines().find(|l| l.starts_with("审计员")).unwrap();
    assert!(line.contains("reveal"), "{list}");
    let line = list.lines().find(|l| l.starts_with("管理员")).unwrap();
    assert!(!line.contains("reveal"), "{list}");

    let c = changes(&env);
    for want in [
        ("新人", "added", "管理员"),
        ("新人", "disabled", "管理员"),
        ("新人", "enabled", "管理员"),
        ("新人", "password", "管理员"),
        ("审计员", "reveal_granted", "管理员"),
    ] {
        assert!(has(&c, want), "{want:?} in {c:?}");
    }
    assert!(!has(&c, ("管理员", "reveal_granted", "管理员")), "{c:?}");
    let r = refusals(&env);
    for want in [
        ("审计员", "users", "role"),
        ("操作员", "users", "role"),
        ("管理员", "users", "csrf"),
        ("管理员", "users", "self"),
    ] {
        assert!(has(&r, want), "{want:?} in {r:?}");
    }
}

#[test]
fn only_a_user_granted_the_reveal_sees_a_rejected_value_and_each_reveal_is_logged() {
    let (env, addr) = console_env("");
    let out = env.fepd(&["users", "grant", "审计员", "--reveal", "--by", "root"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _d = env.start_ready();
    let (_, bad_id) = drop_mixed_csv(&env);
    env.wait("mixed.csv finished", Duration::from_secs(20), || {
        !env.log_entries(&["--event", "file_rejected", "--file", "mixed.csv"])
            .is_empty()
    });
    let mut auditor = Browser::new(&addr);
    auditor.login("审计员", PASSWORD);
    let (_, page) = auditor.get("/files?name=mixed");
    let at = page.find("/files/").unwrap() + 7;
    let id: String = page[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let (_, page) = auditor.get(&format!("/files/{id}"));
    assert!(
        page.contains("显示原值") && !page.contains(&bad_id),
        "{page}"
    );
    let (ordinal, name) = (field(&page, "ordinal"), field(&page, "field"));
    assert_eq!(name, "applyer_page_code");
    let token = auditor.token();
    let reveal = format!("/files/{id}/reveal");
    assert_eq!(
        auditor
            .post(
                &reveal,
                &[("csrf", "forged"), ("ordinal", &ordinal), ("field", &name)]
            )
            .0,
        403
    );
    let (status, page) = auditor.post(
        &reveal,
        &[("csrf", &token), ("ordinal", &ordinal), ("field", &name)],
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&bad_id), "{page}");
    let logged = env.log_entries(&["--event", "console_reveal"]);
    assert_eq!(logged.len(), 1);
    let e = &logged[0];
    assert_eq!(e["details"]["user"], "审计员");
    assert_eq!(e["details"]["field"], "applyer_page_code");
    assert_eq!(e["details"]["record"].to_string(), ordinal);
    assert_eq!(e["file"], "mixed.csv");
    assert!(!e.to_string().contains(&bad_id), "{e}");

    // No other page or download shows it, even to the granted user.
    for path in [
        format!("/files/{id}"),
        "/rejections".to_string(),
        "/log?event=console_reveal".to_string(),
        "/log?export=1".to_string(),
        format!("/files/{id}/errors.xlsx"),
        "/rejections?xlsx=1".to_string(),
    ] {
        let (_, bytes) = auditor.bytes(&path);
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&bad_id), "{path}");
    }

    // Not granted: no button, and the POST is refused and logged.
    let mut op = Browser::new(&addr);
    op.login("操作员", PASSWORD);
    let (_, page) = op.get(&format!("/files/{id}"));
    assert!(!page.contains("显示原值"), "{page}");
    let token = op.token();
    let (status, page) = op.post(
        &reveal,
        &[("csrf", &token), ("ordinal", &ordinal), ("field", &name)],
    );
    assert_eq!(status, 403, "{page}");
    assert!(!page.contains(&bad_id));
    let mut admin = Browser::new(&addr);
    admin.login("管理员", PASSWORD);
    let token = admin.token();
    assert_eq!(
        admin
            .post(
                &reveal,
                &[("csrf", &token), ("ordinal", &ordinal), ("field", &name)]
            )
            .0,
        403
    );
    let r = refusals(&env);
    for want in [
        ("操作员", "reveal", "grant"),
        ("管理员", "reveal", "role"),
        ("审计员", "reveal", "csrf"),
    ] {
        assert!(has(&r, want), "{want:?} in {r:?}");
    }
    assert_eq!(env.events("console_reveal"), 1);

    // Once the original is gone, the page says so.
    for sub in ["rejected", "done"] {
        for f in std::fs::read_dir(env.spool("case_accept", sub)).unwrap() {
            let p = f.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().contains("mixed") {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    let token = auditor.token();
    let (status, page) = auditor.post(
        &reveal,
        &[("csrf", &token), ("ordinal", &ordinal), ("field", &name)],
    );
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("已不在"), "{page}");
    assert_eq!(env.events("console_reveal"), 1);
}

#[test]
fn a_record_the_library_refused_is_found_in_its_file_and_revealed_only_with_the_grant() {
    let (env, addr) = console_env("");
    let out = env.fepd(&["users", "grant", "审计员", "--reveal", "--by", "root"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _d = env.start_ready();
    // Three valid records; the library refuses the second by its own rule.
    let recs: Vec<_> = (0..3).map(crate::data::case_accept).collect();
    let value = |i: usize, f: &str| recs[i].iter().find(|(k, _)| *k == f).unwrap().1.clone();
    let (id_no, name) = (value(1, "applyer_page_code"), value(1, "applyer_name"));
    env.drop_file(
        "case_accept",
        "lib.jsonl",
        &crate::data::jsonl(&recs, crate::data::Enc::Utf8),
    );
    env.wait("a batch exported", Duration::from_secs(20), || {
        env.batches_in("exported") == 1
    });
    let batch = env.batches(None)[0]["batch_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ack(
        "case_accept",
        &batch,
        &format!(
            r#"{{"receiptId":"R-1","accepted":2,"rejected":[{{"index":1,"key":"{}","code":"422001","message":"库内规则不通过"}}]}}"#,
            value(1, "project_no")
        ),
    );
    env.wait("the refusal recorded", Duration::from_secs(20), || {
        env.events("records_library_rejected") == 1
    });

    let mut auditor = Browser::new(&addr);
    auditor.login("审计员", PASSWORD);
    let (_, page) = auditor.get("/files?name=lib.jsonl");
    let at = page.find("/files/").unwrap() + 7;
    let id: String = page[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let (_, page) = auditor.get(&format!("/files/{id}"));
    assert!(
        page.contains("资源库 422001") && page.contains("显示原值"),
        "{page}"
    );
    assert!(!page.contains(&id_no) && !page.contains(&name), "{page}");
    // 拒收记录 lists the library's refusal beside the local rejections,
    // masked, on the page and in its xlsx; a rule filter finds it by code.
    let key = value(1, "project_no");
    for query in ["/rejections", "/rejections?rule=422001"] {
        let (_, list) = auditor.get(query);
        assert!(
            list.contains("资源库 422001") && list.contains(&key) && list.contains("lib.jsonl"),
            "{list}"
        );
        assert!(!list.contains(&id_no) && !list.contains(&name), "{list}");
    }
    let (_, list) = auditor.get("/rejections?rule=required");
    assert!(!list.contains("资源库 422001"), "{list}");
    let flat = crate::console_records::read_xlsx(&auditor.bytes("/rejections?xlsx=1").1)
        .concat()
        .join("|");
    assert!(
        flat.contains("资源库 422001") && flat.contains(&key),
        "{flat}"
    );
    assert!(!flat.contains(&id_no) && !flat.contains(&name), "{flat}");
    assert_eq!(field(&page, "batch"), batch);
    assert_eq!(field(&page, "idx"), "1");
    let reveal = format!("/files/{id}/reveal");
    let form = |token: &str| {
        vec![
            ("csrf", token.to_string()),
            ("batch", batch.clone()),
            ("idx", "1".to_string()),
        ]
    };
    let post = |b: &mut Browser, token: &str| {
        let f = form(token);
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post(&reveal, &f)
    };
    let token = auditor.token();
    let (status, page) = post(&mut auditor, &token);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&id_no) && page.contains(&name), "{page}");
    // Its number in the file, found by key and content hash.
    assert!(page.contains("第 2 条记录"), "{page}");
    let logged = env.log_entries(&["--event", "console_reveal"]);
    assert_eq!(logged.len(), 1);
    let e = &logged[0];
    assert_eq!(e["details"]["user"], "审计员");
    assert_eq!(e["details"]["record"], 2);
    let fields = e["details"]["field"].as_str().unwrap();
    assert!(
        fields.contains("applyer_page_code") && fields.contains("applyer_name"),
        "{e}"
    );
    assert_eq!(e["file"], "lib.jsonl");
    assert!(
        !e.to_string().contains(&id_no) && !e.to_string().contains(&name),
        "{e}"
    );
    // The file's page still shows it masked only.
    let (_, page) = auditor.get(&format!("/files/{id}"));
    assert!(!page.contains(&id_no), "{page}");

    // Not granted: no button, refused and logged; a forged form too.
    let mut op = Browser::new(&addr);
    op.login("操作员", PASSWORD);
    let (_, page) = op.get(&format!("/files/{id}"));
    assert!(
        page.contains("资源库 422001") && !page.contains("显示原值"),
        "{page}"
    );
    let token = op.token();
    let (status, page) = post(&mut op, &token);
    assert_eq!(status, 403, "{page}");
    assert!(!page.contains(&id_no));
    assert_eq!(post(&mut auditor, "forged").0, 403);
    let r = refusals(&env);
    for want in [("操作员", "reveal", "grant"), ("审计员", "reveal", "csrf")] {
        assert!(has(&r, want), "{want:?} in {r:?}");
    }
    assert_eq!(env.events("console_reveal"), 1);

    // Once the original is gone, the page says so and nothing is logged.
    for f in std::fs::read_dir(env.spool("case_accept", "done")).unwrap() {
        let p = f.unwrap().path();
        if p.file_name().unwrap().to_string_lossy() == "lib.jsonl" {
            std::fs::remove_file(p).unwrap();
        }
    }
    let token = auditor.token();
    let (status, page) = post(&mut auditor, &token);
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("已不在"), "{page}");
    assert_eq!(env.events("console_reveal"), 1);
}
