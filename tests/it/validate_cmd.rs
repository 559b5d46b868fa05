//! `fepd validate` and `fepd check-config`: what operators and data staff
//! run by hand.

use crate::data::{self, Enc};
use crate::harness::*;

#[test]
fn validate_names_row_field_title_and_rule_for_a_bad_check_digit() {
    let env = Env::new("");
    let mut recs: Vec<_> = (0..3).map(data::case_accept).collect();
    for (k, v) in recs[1].iter_mut() {
        if *k == "org_code" {
            *v = data::uscc_bad(3);
        }
    }
    let f = env.root.join("x.csv");
    std::fs::write(&f, data::csv(&recs, false, Enc::Utf8)).unwrap();
    let out = env.fepd(&["validate", "--dataset", "case_accept", f.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("第 3 行"), "{stdout}");
    assert!(stdout.contains("org_code"), "{stdout}");
    assert!(stdout.contains("受理部门编码"), "{stdout}");
    assert!(stdout.contains("GB 32100"), "{stdout}");
    // No state was created.
    assert!(!env.db().exists());
}

#[test]
fn validate_passes_good_files_with_exit_zero() {
    let env = Env::new("");
    let f = env.root.join("ok.jsonl");
    std::fs::write(
        &f,
        data::jsonl(
            &(0..5).map(data::evaluation).collect::<Vec<_>>(),
            Enc::Gb18030,
        ),
    )
    .unwrap();
    let out = env.fepd(&["validate", "--dataset", "evaluation", f.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn shipped_config_and_samples_check_clean() {
    let out = std::process::Command::new(FEPD)
        .args(["check-config", "--config"])
        .arg(repo().join("config/fepd.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for entry in std::fs::read_dir(repo().join("samples")).unwrap() {
        let p = entry.unwrap().path();
        let ds = p.file_stem().unwrap().to_str().unwrap().to_string();
        let out = std::process::Command::new(FEPD)
            .args(["validate", "--dataset", &ds])
            .arg(&p)
            .arg("--config")
            .arg(repo().join("config/fepd.toml"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn check_config_lists_every_problem() {
    let env = Env::new("");
    env.set("sender", "");
    env.set("timezone", "CST");
    env.add_dataset("name = \"no_schema\"\ncategory = \"x\"\nresource = \"y\"");
    let out = env.fepd(&["check-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("sender"), "{stdout}");
    assert!(stdout.contains("timezone"), "{stdout}");
    assert!(stdout.contains("no_schema"), "{stdout}");
}

#[test]
fn unknown_config_key_is_refused() {
    let env = Env::new("");
    env.set("sendr", "x");
    let out = env.fepd(&["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sendr"));
}

/// docs/datasets.md: a source on the reversed satisfaction scale is declared in
/// config and converted (1 ↔ 5, 2 ↔ 4) before validation, never guessed.
#[test]
fn a_declared_reversed_satisfaction_scale_is_converted_before_validation() {
    let env = Env::new("");
    // Record 0 rates 5 with no comment; record 1 rates 1 with no comment.
    let mut a = data::evaluation(0);
    let mut b = data::evaluation(1);
    for (r, score) in [(&mut a, "5"), (&mut b, "1")] {
        r.retain(|(f, _)| *f != "writing_evaluation");
        r.iter_mut().find(|(f, _)| *f == "satisfaction").unwrap().1 = score.into();
    }
    env.drop_file("evaluation", "e.jsonl", &data::jsonl(&[a, b], Enc::Utf8));
    let file = env.spool("evaluation", "inbox").join("e.jsonl");
    // Standard scale: 1 (非常不满意) needs a written comment.
    let validate = || {
        let out = env.fepd(&[
            "validate",
            "--dataset",
            "evaluation",
            file.to_str().unwrap(),
        ]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = validate();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("第 2 条") || text.contains("第 2 行"),
        "{text}"
    );
    assert!(text.contains("writing_evaluation"), "{text}");

    // Declared reversed: the 5 is a 1 and needs the comment; the 1 is a 5.
    env.set_dataset("evaluation", "satisfaction_scale", "reversed");
    let (code, text) = validate();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("第 1 条") || text.contains("第 1 行"),
        "{text}"
    );
    assert!(
        !text.contains("第 2 条") && !text.contains("第 2 行"),
        "{text}"
    );

    // Through the daemon, the library gets the standard-scale value.
    let _d = env.start();
    let r = env.report("evaluation", "e.jsonl");
    assert_eq!(r["counts"]["sealed"], 1, "{r}");
    let recs = env.wait_outbox_records("evaluation", 1);
    assert_eq!(recs[0]["data"]["satisfaction"], "5", "{}", recs[0]);
}
