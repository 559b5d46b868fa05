//! `fepd selftest`, the joint-test (联调) checklist, against `fepd
//! simulate-library`: a token, then a zero-record probe batch on every
//! route, which the library does not store.

use crate::harness::*;

/// `fepd selftest` with the test's client secret in the environment.
fn selftest(env: &Env, secret: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(FEPD)
        .arg("selftest")
        .args(args)
        .arg("--config")
        .arg(&env.config)
        .env("FEPD_TEST_SECRET", secret)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn selftest_gets_a_token_and_probes_every_route_without_storing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    let (ok, out) = selftest(&env, "secret", &[]);
    assert!(ok, "{out}");
    assert!(out.contains("✓ token"), "{out}");
    for (name, cat) in DATASETS {
        assert!(
            out.contains(&format!("✓ probe {cat}/{name}: accepted")),
            "{out}"
        );
    }
    let st = lib.stats();
    assert_eq!(st["probes"], DATASETS.len() as u64, "{st}");
    assert_eq!(
        (st["batches"].as_u64(), st["records"].as_u64()),
        (Some(0), Some(0))
    );

    // A bad secret fails at the token, before any probe.
    let (ok, out) = selftest(&env, "wrong", &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("✗ token"), "{out}");
    assert_eq!(lib.stats()["probes"], DATASETS.len() as u64);
}

#[test]
fn selftest_names_the_route_the_library_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(
        &dir.path().join("lib.db"),
        &["--routes", "zwfw/case_accept"],
    );
    let env = Env::http(&lib.base_url, "");
    let (ok, out) = selftest(&env, "secret", &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("✓ probe zwfw/case_accept"), "{out}");
    let bad = out
        .lines()
        .find(|l| l.starts_with("✗ probe zwfw/item_catalog"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(bad.contains("400003"), "{bad}");
    // One route only, by dataset name.
    let (ok, out) = selftest(&env, "secret", &["--route", "case_accept"]);
    assert!(ok, "{out}");
    assert!(out.contains("selftest passed: 1 route(s)"), "{out}");
}
