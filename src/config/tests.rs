//! Config parsing, defaults and problems.

use std::path::Path;

use super::*;

const MIN: &str = r#"
    sender = "230000-zwfw"
    [[dataset]]
    name = "case_accept"
    category = "zwfw"
    resource = "case_accept"
"#;

#[test]
fn minimal_config_gets_defaults_and_resolved_paths() {
    let cfg = Config::parse(MIN, Path::new("/etc/fepd")).unwrap();
    assert_eq!(cfg.spool_dir, Path::new("/etc/fepd/spool"));
    assert_eq!(cfg.sink.mode, SinkMode::Outbox);
    assert_eq!(cfg.batch.max_records, 1000);
    assert_eq!(cfg.intake.rescan_secs, 30);
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
}

#[test]
fn unknown_keys_are_rejected() {
    let err = Config::parse(&format!("{MIN}\nspool_dri = \"x\""), Path::new(".")).unwrap_err();
    assert!(err.contains("spool_dri"), "{err}");
}

#[test]
fn every_problem_is_listed() {
    let text = r#"
        sender = ""
        timezone = "CST"
        [sink]
        mode = "http"
        [[dataset]]
        name = "a b"
        category = "zwfw"
        resource = "x"
    "#;
    let p = Config::parse(text, Path::new(".")).unwrap().problems();
    assert_eq!(p.len(), 4, "{p:#?}");
}

#[test]
fn typed_values_are_read_once_and_a_bad_one_is_a_problem_named_with_its_text() {
    // `top` goes before MIN's tables, `intake` in an [intake] table after.
    let cfg = |top: &str, intake: &str, dataset: &str| {
        Config::parse(
            &format!("{top}\n{MIN}{dataset}\n[intake]\n{intake}\n"),
            Path::new("."),
        )
        .unwrap()
    };
    let bad = cfg(
        "timezone = \"CST\"",
        "csv_delimiter = \";;\"\ndefault_encoding = \"latin1\"",
        "schedule = \"every night\"",
    )
    .problems();
    assert_eq!(
        bad,
        vec![
            "timezone: \"CST\" is not an offset like +08:00",
            "intake.csv_delimiter: \";;\" is not a delimiter: one ASCII character other than a quote or a line end",
            "intake.default_encoding: unknown encoding \"latin1\" (UTF-8, GB18030, GBK, GB2312 or CP936)",
            "dataset case_accept: schedule \"every night\" needs six fields: sec min hour day month weekday (e.g. \"0 */5 * * * *\")",
        ],
    );

    let ok = cfg(
        "timezone = \"-05:30\"",
        "csv_delimiter = \";\"\ndefault_encoding = \"gbk\"",
        "schedule = \"0 */5 * * * *\"",
    );
    assert!(ok.problems().is_empty(), "{:?}", ok.problems());
    assert_eq!(ok.tz().local_minus_utc(), -(5 * 3600 + 1800));
    assert_eq!(ok.parse_limits().csv_delimiter, b';');
    let enc = ok.intake.default_encoding.as_ref().unwrap().ok().unwrap();
    assert_eq!(enc.encoding(), encoding_rs::GB18030);
    let sched = ok.datasets[0].schedule.as_ref().unwrap().ok().unwrap();
    assert_eq!(sched.as_str(), "0 */5 * * * *");
}

#[test]
fn a_remote_admin_address_needs_allow_remote_and_a_token() {
    let with = |admin: &str| {
        Config::parse(&format!("{MIN}\n[admin]\n{admin}"), Path::new("/etc/fepd"))
            .unwrap()
            .problems()
    };
    assert!(with("listen = \"127.0.0.1:8731\"").is_empty());
    assert!(with("listen = \"[::1]:8731\"").is_empty());
    let p = with("listen = \"0.0.0.0:8731\"");
    assert!(p[0].contains("allow_remote"), "{p:?}");
    let p = with("listen = \"10.0.0.5:8731\"\nallow_remote = true");
    assert!(p[0].contains("token_file"), "{p:?}");
    assert!(with("listen = \"10.0.0.5:8731\"\nallow_remote = true\ntoken_file = \"t\"").is_empty());
    let err = Config::parse(
        &format!("{MIN}\n[admin]\nlisten = \"nowhere\""),
        Path::new("."),
    )
    .unwrap_err();
    assert!(err.contains("nowhere") || err.contains("listen"), "{err}");
}

#[test]
fn loading_names_each_problem_by_kind_with_the_line_an_operator_reads() {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let text = format!(
        r#"
        sender = "230000-zwfw"
        schemas_dir = "{}"
        [spool]
        group = "no-such-group-fepd-test"
        [[dataset]]
        name = "case_accept"
        category = "zwfw"
        resource = "case_accept"
        aliases = {{ "受理编号" = "no_such_field" }}
        [[dataset]]
        name = "not_a_dataset"
        category = "zwfw"
        resource = "not_a_dataset"
    "#,
        schemas.display()
    );
    let cfg = Config::parse(&text, Path::new("/etc/fepd")).unwrap();
    let Err(found) = load(cfg) else {
        panic!("a config with problems loaded")
    };
    assert!(
        found
            .0
            .iter()
            .any(|p| matches!(p, Problem::NoGroup { group } if group == "no-such-group-fepd-test")),
        "{found}"
    );
    assert!(
        found.0.iter().any(|p| matches!(p,
            Problem::Option { dataset, key: "aliases", .. } if dataset == "case_accept")),
        "{found}"
    );
    let missing = found
        .0
        .iter()
        .find(|p| matches!(p, Problem::NoSchema { dataset, .. } if dataset == "not_a_dataset"))
        .expect("the dataset without a schema is named");
    assert_eq!(
        missing.to_string(),
        format!(
            "dataset not_a_dataset: no schema {}",
            schemas.join("not_a_dataset.schema.json").display()
        )
    );
    assert_eq!(found.lines().len(), found.0.len());
}

#[test]
fn inflight_defaults_to_four_per_route_and_zero_is_a_problem_in_both_places() {
    let http = r#"
        sender = "230000-zwfw"
        [sink]
        mode = "http"
        [sink.http]
        base_url = "http://127.0.0.1:8730"
        client_id = "fep-001"
        client_secret_env = "FEPD_CLIENT_SECRET"
    "#;
    let dataset = |extra: &str| {
        format!(
            "[[dataset]]\nname = \"case_accept\"\ncategory = \"zwfw\"\nresource = \"case_accept\"\n{extra}\n"
        )
    };
    let cfg = Config::parse(&format!("{http}\n{}", dataset("")), Path::new(".")).unwrap();
    assert_eq!(cfg.sink.http.as_ref().map(|h| h.inflight), Some(4));
    assert_eq!(cfg.datasets[0].inflight, None);
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());

    let zero = http.replace("client_id", "inflight = 0\n        client_id");
    let p = Config::parse(
        &format!("{zero}\n{}", dataset("inflight = 0")),
        Path::new("."),
    )
    .unwrap()
    .problems();
    assert!(
        p.iter()
            .any(|l| l.starts_with("sink.http.inflight: must be ≥ 1")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|l| l.starts_with("dataset case_accept: inflight must be ≥ 1")),
        "{p:#?}"
    );
    let one = Config::parse(
        &format!("{http}\n{}", dataset("inflight = 1")),
        Path::new("."),
    )
    .unwrap();
    assert_eq!(one.datasets[0].inflight, Some(1));
}

#[test]
fn a_console_beyond_loopback_needs_tls() {
    let with = |console: &str| {
        Config::parse(
            &format!("{MIN}\n[console]\n{console}"),
            Path::new("/etc/fepd"),
        )
        .unwrap()
        .problems()
    };
    assert!(with("listen = \"127.0.0.1:8732\"").is_empty());
    let p = with("listen = \"0.0.0.0:8732\"");
    assert!(p.iter().any(|p| p.contains("only over HTTPS")), "{p:?}");
    let p = with("listen = \"0.0.0.0:8732\"\ntls_cert_file = \"c.pem\"");
    assert!(p.iter().any(|p| p.contains("go together")), "{p:?}");
    let tls = Config::parse(
        &format!("{MIN}\n[console]\nlisten = \"0.0.0.0:8732\"\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\""),
        Path::new("/etc/fepd"),
    )
    .unwrap();
    assert!(tls.problems().is_empty());
    assert_eq!(tls.console.tls().unwrap().0, Path::new("/etc/fepd/c.pem"));
}

#[test]
fn the_sealing_cache_defaults_to_8_mib_and_out_of_range_is_a_problem() {
    let base = "sender = \"230000-zwfw\"\n[[dataset]]\nname = \"case_accept\"\ncategory = \"zwfw\"\nresource = \"case_accept\"\n";
    let cfg = Config::parse(base, Path::new(".")).unwrap();
    assert_eq!(cfg.state.cache_mib, 8);
    let big = Config::parse(&format!("{base}[state]\ncache_mib = 256\n"), Path::new(".")).unwrap();
    assert_eq!(big.state.cache_mib, 256);
    assert!(big.problems().is_empty(), "{:?}", big.problems());
    for bad in [0, 5000] {
        let p = Config::parse(
            &format!("{base}[state]\ncache_mib = {bad}\n"),
            Path::new("."),
        )
        .unwrap()
        .problems();
        assert_eq!(
            p,
            vec!["state.cache_mib: must be 1..=4096".to_string()],
            "{bad}"
        );
    }
}
