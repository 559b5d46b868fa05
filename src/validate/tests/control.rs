//! The control-character rule (`docs/datasets.md`, *Values*): refused
//! everywhere, except TAB, LF and CR inside free text.

use super::*;

fn process() -> RawRecord {
    text(&[
        ("project_no", "P-1"),
        ("process_seq", "2"),
        ("process_name", "审核"),
        ("event_name", "2"),
        ("event_start_time", "2026-11-22 09:00:00"),
        ("event_end_time", "2026-11-22 10:00:00"),
        ("handle_user_name", "李四"),
        ("handle_explain", "材料齐全"),
    ])
}

fn set(r: RawRecord, k: &str, v: &str) -> RawRecord {
    with(r, k, RawValue::Text(v.into()))
}

#[test]
fn a_nul_is_refused_with_its_position_and_never_shown_raw() {
    let e = invalid(ds("case_accept").check(&set(accept(), "task_name", "食品\0经营许可")));
    assert_eq!(rules(&e), [("task_name", "control-char")]);
    assert!(e[0].message.contains("第 3 个字符"), "{}", e[0].message);
    assert!(e[0].message.contains("U+0000"), "{}", e[0].message);
    assert_eq!(e[0].value.as_deref(), Some("食品\\u{0000}经营许可"));
}

#[test]
fn line_breaks_and_tabs_pass_in_free_text_only() {
    let r = valid(ds("case_process").check(&set(
        process(),
        "handle_explain",
        "第一行\r\n第二行\t（附件）",
    )));
    assert_eq!(data(&r)["handle_explain"], "第一行\r\n第二行\t（附件）");
    // A key field is not free text, even though its schema is a plain string.
    let e = invalid(ds("case_process").check(&set(process(), "project_no", "P-1\nP-2")));
    assert_eq!(rules(&e), [("project_no", "control-char")]);
    assert!(
        e[0].message.contains("不允许任何控制字符"),
        "{}",
        e[0].message
    );
    // Nor is a code; surrounding white space is trimmed as in any value.
    valid(ds("case_process").check(&set(process(), "event_name", "2\t")));
    let e = invalid(ds("case_process").check(&set(process(), "event_name", "2\t3")));
    assert_eq!(rules(&e), [("event_name", "control-char")]);
}

#[test]
fn other_controls_are_refused_even_in_free_text() {
    for (value, position) in [("a\u{1b}[31m", 2), ("ab\u{7f}", 3), ("说明\u{85}x", 3)] {
        let e = invalid(ds("case_process").check(&set(process(), "handle_explain", value)));
        assert_eq!(rules(&e), [("handle_explain", "control-char")], "{value:?}");
        assert!(
            e[0].message.contains(&format!("第 {position} 个字符")),
            "{value:?}: {}",
            e[0].message
        );
    }
}

#[test]
fn the_position_counts_from_the_value_as_given() {
    let e = invalid(ds("case_process").check(&set(process(), "handle_explain", "  ab\u{1}")));
    assert!(e[0].message.contains("第 5 个字符"), "{}", e[0].message);
}

#[test]
fn a_control_in_a_number_is_named_as_such_and_personal_data_stays_masked() {
    let e = invalid(ds("case_process").check(&set(process(), "process_seq", "2\0")));
    assert_eq!(rules(&e), [("process_seq", "control-char")]);
    let e = invalid(ds("case_accept").check(&set(accept(), "applyer_name", "张三\u{1}丰")));
    assert_eq!(rules(&e), [("applyer_name", "control-char")]);
    let shown = e[0].value.as_deref().unwrap();
    assert!(!shown.contains('三') && !shown.contains('丰'), "{shown}");
    assert!(!e[0].message.contains('三'), "{}", e[0].message);
}
