//! What the doctor takes for a half-written temporary file, and the stable
//! names of its rules (the `rule` of `fepd doctor --json`).

use super::*;

#[test]
fn only_the_temporary_names_of_atomic_writes_are_leftovers() {
    assert!(is_temp(".a.jsonl.receipt.json.tmp"));
    assert!(is_temp(".B-1.json.tmp"));
    assert!(!is_temp(".tmp"), "no name inside");
    assert!(!is_temp("a.tmp"), "a data file named by staff");
    assert!(!is_temp(".hidden"));
    assert!(!is_temp("B-1.json"));
}

#[test]
fn rule_names_are_those_of_the_manual() {
    let all = [
        Rule::Database,
        Rule::ExchangeLog,
        Rule::OutboxFile,
        Rule::WorkOrphan,
        Rule::WorkUnconfigured,
        Rule::FileMissing,
        Rule::BatchBody,
        Rule::TempLeftover,
    ];
    for r in all {
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            serde_json::Value::String(r.as_str().into())
        );
    }
    let manual = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/zh/安装与运维手册.md"),
    )
    .unwrap();
    for r in all {
        assert!(
            manual.contains(&format!("`{}`", r.as_str())),
            "the operations manual does not explain rule {}",
            r.as_str()
        );
    }
}
