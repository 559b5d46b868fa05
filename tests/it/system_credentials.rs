//! Secrets the systemd way: with `client_secret_credential`, the daemon
//! reads the client secret from `$CREDENTIALS_DIRECTORY` (as the unit's
//! `LoadCredential=` provides it) and delivers to the library; without
//! that folder it refuses to push, naming LoadCredential=, and an
//! operator's `fepd check-config` notes it cannot check it.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::data::{self, Enc};
use crate::harness::*;

fn env_with_credential(base_url: &str) -> Env {
    let env = Env::http(base_url, "");
    env.unset("sink.http.client_secret_env");
    env.set("sink.http.client_secret_credential", "fepd.client_secret");
    env
}

#[test]
fn the_secret_comes_from_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = env_with_credential(&lib.base_url);
    // What systemd makes of LoadCredential=: a read-only file, owner only.
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let secret = creds.join("fepd.client_secret");
    std::fs::write(&secret, "secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o400)).unwrap();

    let _d = env.start_with_env(&[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())]);
    let recs: Vec<_> = (0..5).map(data::case_accept).collect();
    env.drop_file("case_accept", "a.jsonl", &data::jsonl(&recs, Enc::Utf8));
    env.wait("5 records delivered", Duration::from_secs(30), || {
        lib.stats()["records"] == 5
    });
}

#[test]
fn without_the_credentials_directory_the_daemon_names_load_credential() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = env_with_credential(&lib.base_url);

    let out = env.fepd(&["check-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("· credential \"fepd.client_secret\" not checked here"),
        "{stdout}"
    );

    let _d = env.start();
    env.wait("the refusal in the log", Duration::from_secs(20), || {
        env.log_has("LoadCredential=fepd.client_secret")
    });
    assert_eq!(lib.stats()["batches"], 0);
}
