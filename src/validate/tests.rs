//! Record-level tests against the real `schemas/` directory.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::*;
use crate::parse::{Position, RawRecord, RawValue};

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn codes() -> Arc<CodeTable> {
    Arc::new(CodeTable::load(&dir().join("gb2260.csv")).unwrap())
}

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| Catalog::load(&dir(), codes(), ValidateOptions::default()).unwrap())
}

fn ds(name: &str) -> Arc<DatasetSchema> {
    catalog().get(name).unwrap()
}

fn text(fields: &[(&str, &str)]) -> RawRecord {
    RawRecord {
        pos: Position::Line { line: 2, record: 1 },
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), RawValue::Text(v.to_string())))
            .collect(),
    }
}

fn with(mut r: RawRecord, k: &str, v: RawValue) -> RawRecord {
    r.fields.retain(|(n, _)| n != k);
    r.fields.push((k.to_string(), v));
    r
}

fn without(mut r: RawRecord, k: &str) -> RawRecord {
    r.fields.retain(|(n, _)| n != k);
    r
}

fn valid(v: Verdict) -> ValidRecord {
    match v {
        Verdict::Valid(r) => r,
        Verdict::Invalid(e) => panic!("expected valid, got {e:#?}"),
    }
}

fn invalid(v: Verdict) -> Vec<FieldError> {
    match v {
        Verdict::Invalid(e) => e,
        Verdict::Valid(r) => panic!("expected invalid, got {r:#?}"),
    }
}

fn data(r: &ValidRecord) -> Value {
    serde_json::from_str(&r.canonical).unwrap()
}

const ID: &str = "11010519491231002X";
const USCC: &str = "91350100M000100Y43";

fn accept() -> RawRecord {
    text(&[
        ("project_no", "11350100MB0001234X0000120261122000001"),
        ("task_code", "11350100MB0001234X000012345678901"),
        ("task_name", "食品经营许可"),
        ("task_version", "3"),
        ("project_type", "2"),
        ("applyer_type", "1"),
        ("applyer_name", "张三丰"),
        ("applyer_page_type", "111"),
        ("applyer_page_code", ID),
        ("contact_mobile", "13812345678"),
        ("apply_date", "2026-11-22 09:00:00"),
        ("accept_date", "20261122T101530"),
        ("promise_date", "2026-12-22T10:15:30+08:00"),
        ("org_name", "市市场监督管理局"),
        ("org_code", USCC),
        ("area_code", "110105"),
        ("cd_operation", "i"),
        ("cd_time", "2026-11-22 10:20:00"),
        ("row_guid", "r-1"),
    ])
}

fn rules(errs: &[FieldError]) -> Vec<(&str, &str)> {
    errs.iter()
        .map(|e| (e.field.as_str(), e.rule.as_str()))
        .collect()
}

#[test]
fn all_eight_schemas_load() {
    let names: Vec<&str> = catalog().names().collect();
    assert_eq!(
        names,
        [
            "case_accept",
            "case_process",
            "case_result",
            "evaluation",
            "event_report",
            "item_catalog",
            "item_task",
            "service_stats"
        ]
    );
    let a = ds("case_accept");
    assert_eq!(a.title, "办件基本信息（受理）");
    assert_eq!(a.key_fields, ["project_no"]);
    assert_eq!(a.version_field.as_deref(), Some("cd_time"));
    assert_eq!(a.schema_version, "1");
    assert_eq!(ds("case_process").key_fields, ["project_no", "process_seq"]);
    assert_eq!(a.title_of("accept_date"), Some("受理时间"));
    assert!(a.is_pii("applyer_page_code"));
    assert!(!a.is_pii("org_code"));
}

#[test]
fn valid_record_is_normalised() {
    let r = valid(ds("case_accept").check(&accept()));
    assert_eq!(r.op, Op::Upsert);
    assert_eq!(r.key, "11350100MB0001234X0000120261122000001");
    let d = data(&r);
    assert_eq!(d["task_version"], json!(3));
    assert_eq!(d["apply_date"], "2026-11-22T09:00:00+08:00");
    assert_eq!(d["accept_date"], "2026-11-22T10:15:30+08:00");
    // Control fields are not data.
    assert!(d.get("cd_time").is_none() && d.get("row_guid").is_none());
    assert!(d.get("cd_operation").is_none());
    // The version is cd_time, as Unix seconds.
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:20:00+08:00").unwrap();
    assert_eq!(r.version, Some(t.timestamp()));
    assert_eq!(r.hash, crate::canon::sha256_hex(r.canonical.as_bytes()));
    assert_eq!(r.ignored_fields, 0);
    assert!(r.warnings.is_empty());
}

#[test]
fn chinese_headers_map_to_fields() {
    let s = ds("case_accept");
    let rec = RawRecord {
        pos: Position::Row(2),
        fields: accept()
            .fields
            .into_iter()
            .map(|(k, v)| (s.title_of(&k).unwrap().to_string(), v))
            .chain([("备注".to_string(), RawValue::Text("x".into()))])
            .collect(),
    };
    let r = valid(s.check(&rec));
    assert_eq!(r.ignored_fields, 1);
    assert_eq!(r.canonical, valid(s.check(&accept())).canonical);
    // Stray spaces and a UTF-8 BOM around a header still match.
    let rec = without(accept(), "project_no");
    let rec = with(rec, "\u{feff} 办件编号 ", RawValue::Text("P-9".into()));
    assert_eq!(valid(s.check(&rec)).key, "P-9");
}

#[test]
fn the_same_field_twice_is_an_error() {
    let rec = with(accept(), "办件编号", RawValue::Text("X".into()));
    assert_eq!(
        rules(&invalid(ds("case_accept").check(&rec))),
        [("project_no", "duplicate")]
    );
}

#[test]
fn accept_date_before_apply_date() {
    let rec = with(
        accept(),
        "accept_date",
        RawValue::Text("2026-11-22 08:00:00".into()),
    );
    let e = invalid(ds("case_accept").check(&rec));
    assert_eq!(rules(&e), [("accept_date", "accept_date ≥ apply_date")]);
    assert!(
        e[0].message.contains("受理时间（accept_date）"),
        "{}",
        e[0].message
    );
    assert!(e[0].message.contains("申请时间（apply_date）"));
    // The same instant given in another offset is not earlier.
    let rec = with(
        accept(),
        "accept_date",
        RawValue::Text("2026-11-22T01:00:00Z".into()),
    );
    valid(ds("case_accept").check(&rec));
}

#[test]
fn promise_date_before_accept_date() {
    let rec = with(
        accept(),
        "promise_date",
        RawValue::Text("2026-11-22 10:00:00".into()),
    );
    assert_eq!(
        rules(&invalid(ds("case_accept").check(&rec))),
        [("promise_date", "promise_date ≥ accept_date")]
    );
}

fn task() -> RawRecord {
    text(&[
        ("task_code", "11350100MB0001234X000012345678901"),
        ("catalog_code", "000101001000"),
        ("task_name", "食品经营许可"),
        ("task_type", "01"),
        ("task_version", "2"),
        ("dept_name", "市市场监督管理局"),
        ("dept_code", USCC),
        ("dept_type", "1"),
        ("area_code", "110105"),
        ("project_type", "2"),
        ("server_type", " 1 , 2，6 "),
        ("anticipate_day", "20"),
        ("promise_day", "10"),
        ("is_fee", "0"),
        ("accept_condition", "无"),
    ])
}

#[test]
fn promise_day_over_anticipate_day() {
    let r = valid(ds("item_task").check(&task()));
    assert_eq!(data(&r)["server_type"], "1,2,6");
    assert_eq!(r.version, Some(2));
    let rec = with(task(), "promise_day", RawValue::Text("21".into()));
    let e = invalid(ds("item_task").check(&rec));
    assert_eq!(rules(&e), [("promise_day", "promise_day ≤ anticipate_day")]);
    assert!(e[0].message.contains("不得大于"));
}

#[test]
fn codes_list_repeat_unknown_and_empty_items() {
    let s = ds("item_task");
    for (v, detail) in [("1,2,1", "重复"), ("1,7", "不在代码表中"), ("1,,2", "空项")] {
        let e = invalid(s.check(&with(task(), "server_type", RawValue::Text(v.into()))));
        assert_eq!(rules(&e), [("server_type", "codes-list")], "{v}");
        assert!(e[0].message.contains(detail), "{}", e[0].message);
        assert!(e[0].message.contains("服务对象（server_type）"));
    }
}

#[test]
fn xlsx_numbers_are_padded_in_code_fields_only() {
    let s = ds("item_task");
    let rec = with(task(), "task_type", RawValue::Number(1.0));
    let rec = with(rec, "area_code", RawValue::Number(110105.0));
    let rec = with(rec, "task_version", RawValue::Number(2.0));
    let rec = with(rec, "server_type", RawValue::Number(2.0));
    let d = data(&valid(s.check(&rec)));
    assert_eq!(d["task_type"], "01");
    assert_eq!(d["area_code"], "110105");
    assert_eq!(d["task_version"], json!(2));
    assert_eq!(d["server_type"], "2");
    // A text field keeps the shortest decimal text.
    let rec = with(task(), "transact_addr", RawValue::Number(12.5));
    assert_eq!(data(&valid(s.check(&rec)))["transact_addr"], "12.5");
    // Text codes match literally: "1" is not "01".
    let rec = with(task(), "task_type", RawValue::Text("1".into()));
    let e = invalid(s.check(&rec));
    assert_eq!(rules(&e), [("task_type", "enum")]);
    assert!(e[0].message.contains("01 行政许可"), "{}", e[0].message);
    // data_source: three digits, padded from a number cell.
    let rec = with(task(), "data_source", RawValue::Number(7.0));
    valid(s.check(&rec));
}

#[test]
fn unconvertible_integers_are_errors_not_defaults() {
    let s = ds("item_task");
    for v in [
        RawValue::Text("12.5".into()),
        RawValue::Text("abc".into()),
        RawValue::Number(2.5),
        RawValue::Json(json!(2.5)),
        RawValue::Json(json!("2")),
    ] {
        let e = invalid(s.check(&with(task(), "task_version", v.clone())));
        let r = rules(&e);
        assert!(
            r == [("task_version", "integer")] || r == [("task_version", "type")],
            "{v:?}: {r:?}"
        );
    }
    let e = invalid(s.check(&with(task(), "task_version", RawValue::Text("abc".into()))));
    assert_eq!(e[0].message, "事项版本（task_version）的值“abc”不是整数");
    // A JSON integer, or an integral JSON float, is fine.
    valid(s.check(&with(task(), "task_version", RawValue::Json(json!(2.0)))));
    let e = invalid(s.check(&with(task(), "task_version", RawValue::Text("0".into()))));
    assert_eq!(rules(&e), [("task_version", "minimum")]);
}

#[test]
fn datetime_forms_and_xlsx_cells() {
    let s = ds("case_accept");
    for v in [
        RawValue::Text("2026-11-22 09:00:00".into()),
        RawValue::Text("20261122090000".into()),
        RawValue::Text("20261122T090000".into()),
        RawValue::Text("2026-11-22T09:00:00".into()),
        RawValue::Text("2026-11-22T01:00:00Z".into()),
        RawValue::Text(" 2026-11-22T09:00:00+08:00 ".into()),
        RawValue::DateTime(
            NaiveDate::from_ymd_opt(2026, 11, 22)
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap(),
        ),
    ] {
        let r = valid(s.check(&with(accept(), "apply_date", v.clone())));
        assert_eq!(data(&r)["apply_date"], "2026-11-22T09:00:00+08:00", "{v:?}");
    }
    let e = invalid(s.check(&with(
        accept(),
        "apply_date",
        RawValue::Text("2026/11/22".into()),
    )));
    assert_eq!(rules(&e), [("apply_date", "datetime")]);
    // Not also reported as missing.
    assert_eq!(e.len(), 1);
}

#[test]
fn configured_timezone_renders_the_wire_form() {
    let opts = ValidateOptions {
        timezone: chrono::FixedOffset::east_opt(0).unwrap(),
        ..ValidateOptions::default()
    };
    let s = load_one(&dir().join("case_accept.schema.json"), codes(), opts).unwrap();
    let rec = with(
        accept(),
        "accept_date",
        RawValue::Text("2026-11-22T10:15:30+08:00".into()),
    );
    let rec = with(
        rec,
        "apply_date",
        RawValue::Text("2026-11-22 01:00:00".into()),
    );
    let d = data(&valid(s.check(&rec)));
    assert_eq!(d["accept_date"], "2026-11-22T02:15:30+00:00");
    assert_eq!(d["apply_date"], "2026-11-22T01:00:00+00:00");
}

#[test]
fn dates_and_not_in_the_future() {
    let s = ds("service_stats");
    let base = text(&[
        ("platform_code", "P1"),
        ("platform_name", "文化云"),
        ("stat_date", "20260101"),
        ("page_views", "100"),
        ("unique_visitors", "50"),
        ("unique_ips", "40"),
    ]);
    let r = valid(s.check(&base));
    assert_eq!(r.key, "P1|2026-01-01");
    assert_eq!(data(&r)["stat_date"], "2026-01-01");
    let cell = NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    assert_eq!(
        valid(s.check(&with(base.clone(), "stat_date", RawValue::DateTime(cell)))).key,
        "P1|2026-01-01"
    );
    let e = invalid(s.check(&with(
        base.clone(),
        "stat_date",
        RawValue::Text("2999-01-01".into()),
    )));
    assert_eq!(rules(&e), [("stat_date", "not-future")]);
    let e = invalid(s.check(&with(
        base.clone(),
        "stat_date",
        RawValue::Text("2026-13-01".into()),
    )));
    assert_eq!(rules(&e), [("stat_date", "date")]);
    let e = invalid(s.check(&with(
        base.clone(),
        "unique_visitors",
        RawValue::Text("101".into()),
    )));
    assert_eq!(
        rules(&e),
        [("unique_visitors", "unique_visitors ≤ page_views")]
    );
    let e = invalid(s.check(&with(base, "unique_ips", RawValue::Text("101".into()))));
    assert_eq!(rules(&e), [("unique_ips", "unique_ips ≤ page_views")]);
}

#[test]
fn event_times_in_order() {
    let s = ds("case_process");
    let base = text(&[
        ("project_no", "P-1"),
        ("process_seq", "2"),
        ("process_name", "审核"),
        ("event_name", "2"),
        ("event_start_time", "2026-11-22 10:00:00"),
        ("event_end_time", "2026-11-22 09:59:59"),
        ("handle_user_name", "李四"),
        ("handle_explain", "同意"),
    ]);
    let e = invalid(s.check(&base));
    assert_eq!(
        rules(&e),
        [("event_end_time", "event_end_time ≥ event_start_time")]
    );
    let r = valid(s.check(&with(
        base,
        "event_end_time",
        RawValue::Text("2026-11-22 10:00:00".into()),
    )));
    assert_eq!(r.key, "P-1|2");
    assert_eq!(r.version, None);
}

#[test]
fn a_delete_needs_only_its_key() {
    let s = ds("case_process");
    let rec = text(&[
        ("project_no", "P-1"),
        ("process_seq", "2"),
        ("cd_operation", "d"),
        ("event_name", "not a code"),
    ]);
    let r = valid(s.check(&rec));
    assert_eq!(r.op, Op::Delete);
    assert_eq!(r.key, "P-1|2");
    assert_eq!(r.canonical, r#"{"process_seq":2,"project_no":"P-1"}"#);
    let e = invalid(s.check(&without(rec, "process_seq")));
    assert_eq!(rules(&e), [("process_seq", "required")]);
    let e = invalid(s.check(&text(&[("project_no", "P-1"), ("cd_operation", "x")])));
    assert!(rules(&e).contains(&("cd_operation", "enum")));
}

mod control;

mod checks;
