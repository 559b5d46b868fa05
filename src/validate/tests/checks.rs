//! Whole-record checks: every error reported, certificate numbers by type, masking,
//! the USCC allow-list, written evaluations and nested `medias` items.

use super::*;

#[test]
fn every_error_is_reported() {
    let rec = with(
        accept(),
        "org_code",
        RawValue::Text("91350100M000100Y44".into()),
    );
    let rec = with(rec, "area_code", RawValue::Text("999999".into()));
    let rec = with(rec, "project_type", RawValue::Text("7".into()));
    let rec = without(rec, "task_name");
    let rec = with(rec, "contact_mobile", RawValue::Text("12812345678".into()));
    let e = invalid(ds("case_accept").check(&rec));
    assert_eq!(
        rules(&e),
        [
            ("task_name", "required"),
            ("project_type", "enum"),
            ("contact_mobile", "pattern"),
            ("org_code", "GB 32100"),
            ("area_code", "GB/T 2260"),
        ]
    );
    let org = &e[3];
    assert_eq!(org.title, "受理部门编码");
    assert_eq!(
        org.message,
        "受理部门编码（org_code）的值“91350100M000100Y44”不符合统一社会信用代码校验规则（GB 32100）：校验位应为 3"
    );
    assert_eq!(e[0].message, "缺少必填字段事项名称（task_name）");
}

#[test]
fn certificate_number_checked_by_its_type() {
    let s = ds("case_accept");
    let bad_id = "110105194912310021";
    let e = invalid(s.check(&with(
        accept(),
        "applyer_page_code",
        RawValue::Text(bad_id.into()),
    )));
    assert_eq!(rules(&e), [("applyer_page_code", "GB 11643")]);
    assert!(e[0].message.contains("校验位应为 X"));
    // A USCC holder: checked by GB 32100 instead.
    let rec = with(accept(), "applyer_page_type", RawValue::Text("001".into()));
    let e = invalid(s.check(&with(
        rec.clone(),
        "applyer_page_code",
        RawValue::Text(bad_id.into()),
    )));
    assert_eq!(rules(&e), [("applyer_page_code", "GB 32100")]);
    valid(s.check(&with(rec, "applyer_page_code", RawValue::Text(USCC.into()))));
    // A passport number is not checked.
    let rec = with(accept(), "applyer_page_type", RawValue::Text("414".into()));
    valid(s.check(&with(
        rec,
        "applyer_page_code",
        RawValue::Text("E12345678".into()),
    )));
}

#[test]
fn pii_never_appears_in_clear() {
    let s = ds("case_accept");
    let bad_id = "110105194912310021";
    let long_name = "张".repeat(101);
    let rec = with(accept(), "applyer_page_code", RawValue::Text(bad_id.into()));
    let rec = with(rec, "contact_mobile", RawValue::Text("1381234567".into()));
    let rec = with(rec, "applyer_name", RawValue::Text(long_name.clone()));
    let e = invalid(s.check(&rec));
    assert_eq!(e.len(), 3, "{e:#?}");
    for err in &e {
        for secret in [bad_id, "1381234567", long_name.as_str()] {
            assert!(!err.message.contains(secret), "{}", err.message);
            assert!(err.value.as_deref() != Some(secret));
        }
    }
    let id = e.iter().find(|e| e.field == "applyer_page_code").unwrap();
    assert_eq!(id.value.as_deref(), Some("110105********0021"));
    assert!(id.message.contains("110105********0021"));
    let name = e.iter().find(|e| e.field == "applyer_name").unwrap();
    assert_eq!(name.rule, "maxLength");
    assert!(name.value.as_deref().unwrap().starts_with("张*"));
    // Conversion faults on PII fields are masked too.
    let s = ds("case_process");
    let rec = text(&[("project_no", "P"), ("process_seq", "王小明")]);
    let _ = s.check(&rec);
    assert_eq!(s.shown_value("handle_user_name", "王小明"), "王**");
}

#[test]
fn uscc_downgraded_to_warning_and_allow_list() {
    let bad = "91350100M000100Y44";
    let opts = ValidateOptions {
        uscc_check: Severity::Warn,
        ..ValidateOptions::default()
    };
    let s = load_one(&dir().join("case_accept.schema.json"), codes(), opts).unwrap();
    let r = valid(s.check(&with(accept(), "org_code", RawValue::Text(bad.into()))));
    assert_eq!(rules(&r.warnings), [("org_code", "GB 32100")]);
    // A malformed code is still an error.
    let e = invalid(s.check(&with(accept(), "org_code", RawValue::Text("123".into()))));
    assert_eq!(rules(&e), [("org_code", "GB 32100")]);

    let opts = ValidateOptions {
        uscc_allow: [bad.to_string()].into(),
        ..ValidateOptions::default()
    };
    let s = load_one(&dir().join("case_accept.schema.json"), codes(), opts).unwrap();
    let r = valid(s.check(&with(accept(), "org_code", RawValue::Text(bad.into()))));
    assert!(r.warnings.is_empty());
}

fn evaluation() -> RawRecord {
    text(&[
        ("project_no", "P-1"),
        ("area_code", "110105"),
        ("dept_code", USCC),
        ("task_code", "T"),
        ("task_name", "食品经营许可"),
        ("pro_status", "3"),
        ("pf", "2"),
        ("user_prop", "1"),
        ("user_name", "赵六"),
        ("satisfaction", "2"),
        ("assess_time", "2026-11-23 08:00:00"),
        ("assess_number", "1"),
    ])
}

#[test]
fn written_evaluation_required_for_low_scores() {
    let s = ds("evaluation");
    let e = invalid(s.check(&evaluation()));
    assert_eq!(rules(&e), [("writing_evaluation", "required")]);
    assert!(
        e[0].message
            .starts_with("当满意度（satisfaction）为 1 非常不满意、2 不满意时"),
        "{}",
        e[0].message
    );
    valid(s.check(&with(
        evaluation(),
        "writing_evaluation",
        RawValue::Text("太慢".into()),
    )));
    let r = valid(s.check(&with(
        evaluation(),
        "satisfaction",
        RawValue::Text("4".into()),
    )));
    assert_eq!(r.key, "P-1|1");
}

#[test]
fn medias_items_are_validated() {
    let s = ds("event_report");
    let base = RawRecord {
        pos: Position::Index(0),
        fields: vec![
            ("other_task_num".into(), RawValue::Text("E-1".into())),
            ("event_desc".into(), RawValue::Text("井盖缺失".into())),
            ("address".into(), RawValue::Text("人民路 1 号".into())),
            ("coordinate_x".into(), RawValue::Json(json!(512345.5))),
            ("coordinate_y".into(), RawValue::Text("3312345.25".into())),
            ("longitude".into(), RawValue::Text("120.1".into())),
            ("event_src_id".into(), RawValue::Json(json!(3))),
            ("rec_type_id".into(), RawValue::Json(json!(1))),
            ("event_level_id".into(), RawValue::Json(json!(1))),
            ("event_type_code".into(), RawValue::Text("0101".into())),
            (
                "create_time".into(),
                RawValue::Text("2026-11-22T10:15:30+08:00".into()),
            ),
        ],
    };
    let medias = json!([{"media_name": "a.jpg", "media_url": "http://x/a.jpg",
                         "media_usage": "上报", "media_type": "IMAGE", "extra": 1}]);
    let r = valid(s.check(&with(base.clone(), "medias", RawValue::Json(medias))));
    assert_eq!(r.ignored_fields, 1);
    let d = data(&r);
    assert_eq!(d["medias"][0]["media_type"], "IMAGE");
    assert_eq!(d["coordinate_y"], json!(3312345.25));
    let medias = json!([{"media_name": "a.jpg", "media_usage": "拍照", "media_type": "IMAGE"},
                        {"media_name": "b.mp4", "media_usage": "核查"}]);
    let e = invalid(s.check(&with(base.clone(), "medias", RawValue::Json(medias))));
    assert_eq!(rules(&e), [("medias", "enum"), ("medias", "required")]);
    assert!(
        e[0].message.contains("第 1 项的多媒体用途（media_usage）"),
        "{}",
        e[0].message
    );
    assert!(
        e[1].message.contains("第 2 项的多媒体类型（media_type）"),
        "{}",
        e[1].message
    );
    let e = invalid(s.check(&with(base, "longitude", RawValue::Text("181".into()))));
    assert_eq!(rules(&e), [("longitude", "maximum")]);
}

#[test]
fn catalog_lists_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.schema.json"), "{").unwrap();
    std::fs::write(
        tmp.path().join("b.schema.json"),
        r#"{"title":"B","x-schema-version":"1","x-key":["k","nope"],"x-version":"t",
            "properties":{"k":{"type":"string"},"t":{"title":"T","type":"string","format":"bogus"}}}"#,
    )
    .unwrap();
    let errs = Catalog::load(tmp.path(), codes(), ValidateOptions::default()).unwrap_err();
    let all = errs.join("\n");
    for want in [
        "a.schema.json: not JSON",
        "missing `title`",
        "\"nope\" is not a property",
        "unknown format",
        "x-version field t must be",
    ] {
        assert!(all.contains(want), "{want} not in:\n{all}");
    }
}
