//! Credential back-off against `fepd simulate-library` with its lock-out
//! on (5 bad secrets in 10 minutes): a wrong secret is retried on a
//! growing schedule (base, 2×, 4×…), never reaching the lock-out, shown in
//! `fepd status`, alerted once, and cleared by a reload with the fix.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::data::{self, Enc};
use crate::harness::*;

/// Routes whose credentials the library refuses, as `fepd status` shows.
fn refused_routes(env: &Env) -> usize {
    env.status()["credentials_refused"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_wrong_secret_backs_off_below_the_lockout_and_a_reload_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    // A 1 s base stands in for the default 60 s: requests at 0, 1, 3, 7,
    // 15 s (minutes with the default).
    let env = Env::http(
        &lib.base_url,
        "credential_backoff_secs = 1\nclient_secret_file = \"secret.txt\"",
    );
    let secret = env.root.join("secret.txt");
    std::fs::write(&secret, "wrong\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = env.start();
    let recs: Vec<_> = (0..10).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("first token refusal", Duration::from_secs(20), || {
        lib.stats()["token_failures"].as_i64().unwrap_or(0) >= 1
    });
    let first = Instant::now();
    // Ten base units after the first request: 4 requests (0, 1, 3, 7),
    // where the old 1 s transient backoff made the library lock us out.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(first.elapsed()));
    let st = lib.stats();
    assert_eq!(st["token_failures"], 4, "{st}");
    assert_eq!(st["token_lockouts"].as_i64().unwrap_or(0), 0, "{st}");

    // Shown in status per route, alerted once.
    let out = env.fepd(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refused = s["credentials_refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{s}");
    assert_eq!(refused[0]["route"], "zwfw/case_accept");
    assert!(refused[0]["since"].as_str().unwrap().starts_with("20"));
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid_client")
    );
    let text = String::from_utf8_lossy(&env.fepd(&["status"]).stdout).to_string();
    assert!(
        text.contains("credentials: REFUSED on route zwfw/case_accept"),
        "{text}"
    );
    assert_eq!(env.events("credentials_refused"), 1);
    let alerts = std::fs::read_to_string(env.log_path())
        .unwrap()
        .matches("ALERT: the library refuses fepd's credentials")
        .count();
    assert_eq!(alerts, 1);

    // The operator fixes the secret and reloads: cleared, delivered.
    std::fs::write(&secret, "secret\n").unwrap();
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGHUP);
    }
    env.wait(
        "delivered after the reload",
        Duration::from_secs(30),
        || lib.stats()["records"] == 10,
    );
    env.wait("refusal cleared", Duration::from_secs(10), || {
        refused_routes(&env) == 0
    });
    let out = env.fepd(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["credentials_refused"], serde_json::json!([]));
    assert_eq!(lib.stats()["token_lockouts"].as_i64().unwrap_or(0), 0);
    d.stop();
}

/// Without a reload, the next granted token ends the episode: here the
/// library comes to accept the secret the daemon has (as when the library
/// side fixes a mis-registered secret).
#[test]
fn a_granted_token_ends_the_episode() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let lib = Library::start_on(
        &addr,
        &dir.path().join("lib.db"),
        &["--client-secret", "other"],
    );
    let env = Env::http(&lib.base_url, "credential_backoff_secs = 1");
    // The people on call hear of it (docs/zh/安装与运维手册.md §10).
    let hook = crate::receivers::Recorder::start();
    let alerts = crate::config::parse_toml(&format!(
        "[alerts]\ninterval = \"1s\"\nrepeat = \"2s\"\n[[alerts.webhook]]\nurl = \"http://{}/json\"\n",
        hook.addr
    ));
    env.edit_config(|t| crate::config::merge(t, alerts));
    let of = |state: &str| {
        hook.at("/json")
            .into_iter()
            .filter(|r| r.body["kind"] == "credentials_refused" && r.body["state"] == state)
            .count()
    };
    let d = env.start();
    let recs: Vec<_> = (0..5).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("refusal recorded", Duration::from_secs(20), || {
        refused_routes(&env) == 1
    });
    env.wait("the refusal alerted", Duration::from_secs(15), || {
        of("raised") == 1
    });
    // Repeated while the library keeps refusing (repeat = 2s).
    env.wait("a repeat", Duration::from_secs(15), || of("repeated") >= 1);
    lib.stop();
    let lib = Library::start_on(&addr, &dir.path().join("lib.db"), &[]);
    env.wait("delivered", Duration::from_secs(30), || {
        lib.stats()["records"] == 5
    });
    env.wait("episode ended", Duration::from_secs(10), || {
        env.events("credentials_accepted") == 1
    });
    assert_eq!(refused_routes(&env), 0);
    env.wait("恢复", Duration::from_secs(15), || of("resolved") == 1);
    assert_eq!(of("raised"), 1, "raised once per episode");
    d.stop();
}
