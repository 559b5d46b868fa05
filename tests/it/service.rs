//! Running for months: one daemon per state directory, reloads that never
//! stop the service, honest liveness (`fepd status`, `/healthz`), and the
//! day-one operator details (config lookup, closed pipes, a remote admin
//! address).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::data::{self, Enc};
use crate::harness::*;

fn hup(d: &Daemon) {
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGHUP);
    }
}

/// Runs `fepd ARGS` and waits at most `limit` for it to end.
fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.wait_with_output().unwrap()
}

/// A GET with an optional bearer token: (status line, body).
fn get_with(addr: &str, path: &str, token: Option<&str>) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[test]
fn a_second_daemon_on_the_same_state_is_refused_and_status_names_the_first() {
    let env = Env::new("");
    let d = env.start();
    env.wait("the first heartbeat", Duration::from_secs(20), || {
        env.status()["daemon"]["last_heartbeat"].is_string()
    });
    let s = env.status();
    let daemon = &s["daemon"];
    assert_eq!(daemon["running"], true, "{s}");
    assert_eq!(daemon["pid"], d.pid(), "{s}");
    assert_eq!(daemon["version"], env!("CARGO_PKG_VERSION"), "{s}");
    assert!(daemon["uptime_secs"].is_u64(), "{s}");

    let out = run_bounded(
        Command::new(FEPD)
            .args(["run", "--config"])
            .arg(&env.config)
            .env("FEPD_LOG", "warn"),
        Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second daemon ran: {err}");
    assert!(
        err.contains(&format!("another fepd (pid {}, started ", d.pid())),
        "{err}"
    );
    assert!(
        err.contains(&env.data.join("state").display().to_string()),
        "{err}"
    );

    // The first daemon is unharmed and still takes files; operator and
    // read-only commands work beside it.
    let recs: Vec<_> = (0..5).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    assert_eq!(env.receipt("case_accept", "a.jsonl")["counts"]["sealed"], 5);
    assert!(env.fepd(&["batches", "list"]).status.success());
    assert!(env.fepd(&["audit", "verify"]).status.success());
    assert_eq!(env.log_entries(&["--event", "daemon_started"]).len(), 1);
    let (status, _) = d.stop();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn status_says_plainly_when_no_daemon_runs() {
    let env = Env::new("");
    let s = env.status();
    assert_eq!(s["daemon"]["running"], false, "{s}");
    assert!(s["daemon"]["pid"].is_null(), "{s}");
    assert!(s["daemon"]["uptime_secs"].is_null(), "{s}");
    assert!(s["daemon"]["last_heartbeat"].is_null(), "{s}");
    assert_eq!(s["healthy"], false, "{s}");
    let text = String::from_utf8_lossy(&env.fepd(&["status"]).stdout).into_owned();
    assert!(text.contains("daemon: NOT RUNNING"), "{text}");
    assert!(!text.contains("intake: running"), "{text}");

    // After a daemon ran and stopped: still not running, with the time it
    // was last seen.
    let d = env.start();
    env.wait("the first heartbeat", Duration::from_secs(20), || {
        env.status()["daemon"]["last_heartbeat"].is_string()
    });
    let text = String::from_utf8_lossy(&env.fepd(&["status"]).stdout).into_owned();
    assert!(
        text.contains(&format!("daemon: running — pid {}", d.pid())),
        "{text}"
    );
    d.stop();
    let s = env.status();
    assert_eq!(s["daemon"]["running"], false, "{s}");
    assert!(s["daemon"]["pid"].is_null(), "{s}");
    assert!(s["daemon"]["last_heartbeat"].is_string(), "{s}");
}

#[test]
fn sighup_with_a_missing_secret_variable_keeps_the_daemon_on_the_old_config() {
    let lib_dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&lib_dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    let d = env.start();
    let recs = |from: u64| (from..from + 20).map(data::case_accept).collect::<Vec<_>>();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs(0), Enc::Utf8));
    env.wait("a.jsonl delivered", Duration::from_secs(30), || {
        lib.stats()["records"] == 20
    });

    // The new config names a variable the daemon's environment lacks, and
    // would seal batches of 5.
    env.set("sink.http.client_secret_env", "FEPD_SECRET_NOT_SET");
    env.set("batch.max_records", 5);
    hup(&d);
    env.wait(
        "the refusal in the exchange log",
        Duration::from_secs(20),
        || !env.log_entries(&["--event", "config_refused"]).is_empty(),
    );
    let refused = &env.log_entries(&["--event", "config_refused"])[0];
    assert!(
        refused["details"]["problems"]
            .to_string()
            .contains("FEPD_SECRET_NOT_SET is not set"),
        "{refused}"
    );
    assert!(env.log_entries(&["--event", "config_reloaded"]).is_empty());

    // Still running, on the old config: b.jsonl goes out in one batch.
    env.drop_file("case_accept", "b.jsonl", &data::jsonl(&recs(20), Enc::Utf8));
    env.wait("b.jsonl delivered", Duration::from_secs(30), || {
        lib.stats()["records"] == 40
    });
    assert_eq!(env.status()["daemon"]["pid"], d.pid());
    assert_eq!(env.batches_of("b.jsonl"), 1);
    let (status, _) = d.stop();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(env.log_entries(&["--event", "daemon_started"]).len(), 1);
}

#[test]
fn healthz_is_503_while_the_library_refuses_the_credentials_and_200_after() {
    let lib_dir = tempfile::tempdir().unwrap();
    // A short lock-out: this test is about health, not about back-off.
    let lib = Library::start(&lib_dir.path().join("lib.db"), &["--lockout-secs", "1"]);
    let admin = free_addr();
    let secret = tempfile::tempdir().unwrap();
    let secret_file = secret.path().join("client_secret");
    std::fs::write(&secret_file, "wrong\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = Env::http(&lib.base_url, "");
    env.unset("sink.http.client_secret_env");
    env.set(
        "sink.http.client_secret_file",
        secret_file.display().to_string(),
    );
    env.set("admin.listen", admin.as_str());
    let d = env.start();
    env.wait("the admin listener", Duration::from_secs(20), || {
        std::net::TcpStream::connect(&admin).is_ok()
    });
    assert_eq!(
        http_get(&admin, "/healthz"),
        ("HTTP/1.1 200 OK".into(), "ok\n".into())
    );

    let recs: Vec<_> = (0..10).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("/healthz 503", Duration::from_secs(30), || {
        http_get(&admin, "/healthz").0.contains("503")
    });
    let (_, body) = http_get(&admin, "/healthz");
    assert!(body.contains("credentials refused"), "{body}");
    assert!(!body.contains("wrong"), "the secret leaked: {body}");
    let (_, metrics) = http_get(&admin, "/metrics");
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("fepd_auth_failures_total "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(failures >= 1, "{metrics}");
    assert!(metrics.contains("fepd_build_info{version=\""), "{metrics}");
    assert!(metrics.contains("fepd_uptime_seconds "), "{metrics}");
    assert!(
        metrics.contains("fepd_oldest_pending_batch_age_seconds{route=\"zwfw/case_accept\"}"),
        "{metrics}"
    );
    // `fepd status` tells the same story (from the next heartbeat).
    env.wait(
        "status to show the refusal",
        Duration::from_secs(20),
        || {
            let s = env.status();
            s["healthy"] == false && s["problems"].to_string().contains("credentials refused")
        },
    );

    // The operator fixes the secret and reloads: delivered, healthy.
    std::fs::write(&secret_file, "secret\n").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    hup(&d);
    env.wait("the batch delivered", Duration::from_secs(60), || {
        lib.stats()["records"] == 10
    });
    // The library may hold the records before fepd records the answer (a
    // request the reload cut short is sent again and de-duplicated).
    env.wait(
        "fepd to record the delivery",
        Duration::from_secs(30),
        || env.batches(Some("delivered")).len() == 1,
    );
    env.wait("/healthz 200", Duration::from_secs(30), || {
        http_get(&admin, "/healthz").0.contains("200")
    });
    let (_, metrics) = http_get(&admin, "/metrics");
    assert!(
        metrics.contains("fepd_delivery_latency_seconds_count{route=\"zwfw/case_accept\"} 1"),
        "{metrics}"
    );
    // `/status` is `fepd status --json`.
    let (_, body) = http_get(&admin, "/status");
    let live: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cli = env.status();
    assert_eq!(live["daemon"]["pid"], cli["daemon"]["pid"]);
    assert_eq!(live["healthy"], true, "{live}");
    assert_eq!(live["datasets"], cli["datasets"]);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&live), keys(&cli));
    d.stop();
}

#[test]
fn check_config_lists_every_problem_and_creates_nothing() {
    let env = Env::http("http://127.0.0.1:9", "");
    env.set("spool_dir", "typo/spool");
    env.set("state_dir", "typo/state");
    env.set("timezone", "Beijing");
    env.set("sink.http.client_secret_env", "FEPD_SECRET_NOT_SET");
    env.set("admin.listen", "0.0.0.0:8731");
    env.add_dataset("name = \"no_schema\"\ncategory = \"x\"\nresource = \"y\"");
    let out = env.fepd(&["check-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expected in [
        "timezone",
        "FEPD_SECRET_NOT_SET is not set",
        "admin.listen: 0.0.0.0:8731 is not a loopback address",
        "no_schema",
        "4 problem(s)",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("typo/spool: does not exist yet"),
        "{stdout}"
    );
    assert!(
        !env.root.join("typo").exists(),
        "check-config created folders"
    );
}

#[test]
fn the_config_is_found_by_flag_then_fepd_config_then_the_working_directory() {
    let env = Env::new("");
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("config")).unwrap();
    let local = cwd.path().join("config/fepd.toml");
    std::fs::copy(&env.config, &local).unwrap();
    let check = |flag: Option<&std::path::Path>, var: Option<&std::path::Path>| {
        let mut c = Command::new(FEPD);
        c.arg("check-config")
            .current_dir(cwd.path())
            .env_remove("FEPD_CONFIG");
        if let Some(f) = flag {
            c.arg("--config").arg(f);
        }
        if let Some(v) = var {
            c.env("FEPD_CONFIG", v);
        }
        let out = c.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = |s: String| s.lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first(check(None, None)),
        "config: ./config/fepd.toml (from the working directory)"
    );
    assert_eq!(
        first(check(None, Some(&env.config))),
        format!("config: {} (from FEPD_CONFIG)", env.config.display())
    );
    assert_eq!(
        first(check(Some(&local), Some(&env.config))),
        format!("config: {} (from --config)", local.display())
    );

    // A missing file named by FEPD_CONFIG is an error, not skipped, and the
    // OS error is printed once.
    let out = Command::new(FEPD)
        .arg("status")
        .current_dir(cwd.path())
        .env("FEPD_CONFIG", cwd.path().join("nope.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("nope.toml"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn commands_end_quietly_when_their_reader_goes_away() {
    let env = Env::new("");
    // Some history, so that the listings have lines to print.
    let d = env.start();
    let recs: Vec<_> = (0..30).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.receipt("case_accept", "a.jsonl");
    d.stop();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["batches", "list"],
        &["audit", "show"],
        &["audit", "trace", "nothing"],
        &["check-config"],
    ] {
        // A pipe whose read end is closed before the command starts: its
        // first write fails.
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        unsafe { libc::close(fds[0]) };
        let write_end = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
        let out = Command::new(FEPD)
            .args(args)
            .arg("--config")
            .arg(&env.config)
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "fepd {args:?}: {err}");
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.code().is_some_and(|c| c <= 1),
            "fepd {args:?}: {:?} {err}",
            out.status
        );
    }
}

#[test]
fn a_remote_admin_address_is_refused_and_a_token_guards_the_listener() {
    // Refused without allow_remote, by `fepd run` and by `check-config`
    // (nothing is bound: tests stay on loopback).
    let env = Env::new("\n[admin]\nlisten = \"0.0.0.0:8731\"\n");
    let out = run_bounded(
        Command::new(FEPD)
            .args(["run", "--config"])
            .arg(&env.config)
            .env("FEPD_LOG", "warn"),
        Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("admin.listen: 0.0.0.0:8731 is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("allow_remote"), "{err}");
    // allow_remote alone is not enough: a token is required.
    env.set("admin.allow_remote", true);
    let out = env.fepd(&["check-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("allow_remote needs admin.token_file"),
        "{stdout}"
    );

    // With a token file, every request must carry the token.
    let addr = free_addr();
    let token = env.root.join("admin.token");
    std::fs::write(&token, "t0ken-for-tests\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.unset("admin.allow_remote");
    env.set("admin.listen", addr.as_str());
    env.set("admin.token_file", token.display().to_string());
    let d = env.start();
    env.wait("the admin listener", Duration::from_secs(20), || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    for path in ["/healthz", "/metrics", "/status"] {
        let (line, _) = get_with(&addr, path, None);
        assert!(line.contains("401"), "{path}: {line}");
        let (line, _) = get_with(&addr, path, Some("wrong"));
        assert!(line.contains("401"), "{path}: {line}");
    }
    let (line, body) = get_with(&addr, "/healthz", Some("t0ken-for-tests"));
    assert!(line.contains("200"), "{line} {body}");
    let (line, body) = get_with(&addr, "/status", Some("t0ken-for-tests"));
    assert!(line.contains("200"), "{line} {body}");
    assert!(!env.log_has("t0ken-for-tests"), "the token was logged");
    d.stop();
}
