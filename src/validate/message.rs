//! Chinese messages for data staff, one per broken rule, built from our
//! conversion faults and from `jsonschema` errors. Every value of an
//! `x-pii` field goes through [`shown`] first: no message or report ever
//! holds one in clear.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, paths::LocationSegment};
use serde_json::Value;

use super::checks::{CodeFault, check_gb11643, check_uscc};
use super::convert::{ConvError, Fault};
use super::field::{FieldFormat, FieldSpec};
use super::mask::mask;
use super::schema::{Compare, DatasetSchema};
use super::{FieldError, Severity};

const DATETIME_FORMS: &str = "yyyy-MM-dd HH:mm:ss、yyyyMMddHHmmss、yyyyMMddTHHmmss、\
     ISO 8601（如 2026-11-22T10:15:30+08:00）、yyyy/M/d H:mm[:ss] 或 yyyy年M月d日 H:mm[:ss]";
const DATE_FORMS: &str = "yyyy-MM-dd、yyyyMMdd、yyyy/M/d 或 yyyy年M月d日";

/// A value as it may be shown: masked when the field is personal data.
pub(crate) fn shown(spec: &FieldSpec, value: &str) -> String {
    if spec.pii {
        mask(value, spec.mask)
    } else {
        value.to_string()
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn error(spec: &FieldSpec, value: Option<String>, rule: &str, message: String) -> FieldError {
    FieldError {
        field: spec.name.clone(),
        title: spec.title.clone(),
        value,
        rule: rule.to_string(),
        message,
    }
}

/// A value that could not be converted to its field's type.
pub(crate) fn conversion(spec: &FieldSpec, e: &ConvError) -> FieldError {
    let v = shown(spec, &e.value);
    let (rule, what) = describe_fault(spec, &e.fault, &v);
    error(spec, Some(v), rule, format!("{}{what}", spec.label()))
}

/// The rule id and the tail of the sentence for a conversion fault; `v` is
/// the already-masked value.
fn describe_fault(spec: &FieldSpec, fault: &Fault, v: &str) -> (&'static str, String) {
    match fault {
        Fault::NotInteger => ("integer", format!("的值“{v}”不是整数")),
        Fault::NotNumber => ("number", format!("的值“{v}”不是数值")),
        Fault::NotDateTime => (
            "datetime",
            format!("的值“{v}”不是有效的日期时间，应为 {DATETIME_FORMS}"),
        ),
        Fault::NotDate => (
            "date",
            format!("的值“{v}”不是有效的日期，应为 {DATE_FORMS}"),
        ),
        Fault::Impossible(why) => (
            if spec.format == FieldFormat::Date {
                "date"
            } else {
                "datetime"
            },
            if why.starts_with("时间") {
                format!("的值“{v}”：这个时间不存在（{why}），请核对")
            } else {
                format!("的值“{v}”：这个日期不存在（{why}），请核对")
            },
        ),
        Fault::MissingTime => (
            "datetime",
            format!("的值“{v}”只有日期，缺少时间，应写成如 2026-11-25 09:00:00"),
        ),
        Fault::DateWithTime => (
            "date",
            format!("的值“{v}”带有时间，本字段只填日期，如 2026-11-25"),
        ),
        Fault::ExcelNumber => (
            "excel-number",
            format!(
                "的值“{v}”是 Excel 按数字保存的长号码，超过 15 位的部分已丢失，无法还原：请把这一列的单元格格式设为“文本”后重新输入号码（或在号码前加英文单引号 '），再导出"
            ),
        ),
        Fault::WrongType(t) => ("type", format!("的值“{v}”类型不正确，应为{t}")),
        Fault::ListEmptyItem => (
            "codes-list",
            format!("的值“{v}”含有空项，应为以逗号分隔的代码"),
        ),
        Fault::ListRepeat(item) => ("codes-list", format!("的值“{v}”中代码“{item}”重复出现")),
        Fault::ListUnknown(item) => (
            "codes-list",
            format!(
                "的值“{v}”中代码“{item}”不在代码表中，允许的值：{}",
                spec.codes_text
            ),
        ),
        Fault::ItemNotObject(i) => ("type", format!("第 {} 项不是 JSON 对象", i + 1)),
        Fault::ControlChar { ch, position } => (
            "control-char",
            format!(
                "的值在第 {position} 个字符处含有控制字符 U+{:04X}{}，不允许出现在数据中{}",
                *ch as u32,
                control_name(*ch),
                if spec.free_text {
                    "（本字段只允许制表符、换行和回车）"
                } else {
                    "（本字段不允许任何控制字符，包括制表符和换行）"
                }
            ),
        ),
        Fault::Item {
            index,
            field,
            fault,
            value,
        } => {
            let sub = &spec.items[*field];
            let sv = shown(sub, value);
            let (rule, what) = describe_fault(sub, fault, &sv);
            (rule, format!("第 {} 项的{}{what}", index + 1, sub.label()))
        }
    }
}

/// The common name of a control character, for the message.
fn control_name(c: char) -> &'static str {
    match c {
        '\0' => "（NUL 空字符）",
        '\t' => "（制表符）",
        '\n' => "（换行符）",
        '\r' => "（回车符）",
        '\u{7f}' => "（DEL 删除符）",
        _ => "",
    }
}

/// A `jsonschema` error mapped to the field it concerns.
pub(crate) struct Mapped {
    pub error: FieldError,
    /// Index of the top-level field in the dataset, when there is one.
    pub field: Option<usize>,
    /// Downgraded by configuration: goes to warnings, not errors.
    pub warning: bool,
}

/// Maps one `jsonschema` error to a [`FieldError`].
pub(crate) fn schema_error(ds: &DatasetSchema, e: &ValidationError<'_>) -> Mapped {
    let kind = e.kind();
    let mut segs = e.instance_path().iter();
    // Top-level field: the first path segment, or for `required` at the
    // root, the missing property.
    let top = match segs.next() {
        Some(LocationSegment::Property(p)) => Some(p.to_string()),
        _ => match kind {
            ValidationErrorKind::Required { property } => property.as_str().map(str::to_string),
            _ => None,
        },
    };
    let Some(idx) = top.as_deref().and_then(|t| ds.index_of(t)) else {
        let message = format!("记录不符合数据集“{}”的结构：{}", ds.title, e.masked());
        return Mapped {
            error: FieldError {
                field: top.unwrap_or_default(),
                title: String::new(),
                value: None,
                rule: "schema".into(),
                message,
            },
            field: None,
            warning: false,
        };
    };
    let top_spec = &ds.fields[idx];
    // Inside an array of objects: `第 N 项的<sub-field>`.
    let mut prefix = String::new();
    let mut spec = top_spec;
    if let Some(LocationSegment::Index(i)) = segs.next() {
        prefix = format!("第 {} 项的", i + 1);
        let sub = match (segs.next(), kind) {
            (Some(LocationSegment::Property(p)), _) => Some(p.to_string()),
            (None, ValidationErrorKind::Required { property }) => {
                property.as_str().map(str::to_string)
            }
            _ => None,
        };
        if let Some(s) = sub.and_then(|s| top_spec.items.iter().find(|f| f.name == s)) {
            spec = s;
        }
    }
    let required = matches!(kind, ValidationErrorKind::Required { .. });
    let raw = (!required).then(|| text_of(e.instance()));
    let v = raw.as_deref().map(|r| shown(spec, r));
    let vv = v.as_deref().unwrap_or("");
    let name = if std::ptr::eq(spec, top_spec) {
        top_spec.label()
    } else {
        format!("{}{prefix}{}", top_spec.label(), spec.label())
    };
    let mut warning = false;
    let (rule, message): (String, String) = match kind {
        ValidationErrorKind::Required { .. } => {
            let cond = condition_of(ds, e);
            let m = match cond {
                Some(c) => format!("当{c}时，{name}为必填项，但记录中没有该字段的值"),
                None => format!("缺少必填字段{name}"),
            };
            ("required".into(), m)
        }
        ValidationErrorKind::Enum { .. } | ValidationErrorKind::Constant { .. } => (
            "enum".into(),
            format!(
                "{name}的值“{vv}”不在代码表中，允许的值：{}",
                spec.codes_text
            ),
        ),
        ValidationErrorKind::MaxLength { limit } => (
            "maxLength".into(),
            format!(
                "{name}的值超过最大长度：最多 {limit} 个字符，实际 {} 个",
                raw.as_deref().map_or(0, |r| r.chars().count())
            ),
        ),
        ValidationErrorKind::MinLength { limit } => (
            "minLength".into(),
            format!("{name}的值过短：至少 {limit} 个字符"),
        ),
        ValidationErrorKind::Pattern { pattern } => {
            let want = spec
                .hint
                .clone()
                .unwrap_or_else(|| format!("匹配正则表达式 {pattern} 的文本"));
            (
                "pattern".into(),
                format!("{name}的值“{vv}”格式不正确，应为{want}"),
            )
        }
        ValidationErrorKind::Minimum { limit } => (
            "minimum".into(),
            format!("{name}的值 {vv} 小于允许的最小值 {limit}"),
        ),
        ValidationErrorKind::Maximum { limit } => (
            "maximum".into(),
            format!("{name}的值 {vv} 大于允许的最大值 {limit}"),
        ),
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            ("minimum".into(), format!("{name}的值 {vv} 应大于 {limit}"))
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            ("maximum".into(), format!("{name}的值 {vv} 应小于 {limit}"))
        }
        ValidationErrorKind::Format { format } => {
            let (rule, m, w) = format_message(ds, &name, format, raw.as_deref().unwrap_or(""), vv);
            warning = w;
            (rule.into(), m)
        }
        ValidationErrorKind::Type { .. } => ("type".into(), format!("{name}的值“{vv}”类型不正确")),
        _ => (
            "schema".into(),
            format!("{name}的值不符合规则：{}", e.masked()),
        ),
    };
    Mapped {
        error: FieldError {
            field: top_spec.name.clone(),
            title: top_spec.title.clone(),
            value: v,
            rule,
            message,
        },
        field: Some(idx),
        warning,
    }
}

/// Why digits 7–14 of an ID number are not a birth date, quoting them.
fn birth_date_problem(raw: &str) -> String {
    let Some(d) = raw.get(6..14) else {
        return "第 7–14 位应为真实的出生日期".to_string();
    };
    let num = |r: std::ops::Range<usize>| d.get(r).and_then(|t| t.parse::<u32>().ok());
    let why = match (num(0..4), num(4..6), num(6..8)) {
        (Some(y), _, _) if y < 1800 => format!("年份 {y} 早于 1800 年"),
        (_, Some(m), _) if !(1..=12).contains(&m) => format!("没有 {m} 月"),
        (Some(y), Some(m), Some(day))
            if chrono::NaiveDate::from_ymd_opt(y as i32, m, day).is_none() =>
        {
            format!("{y} 年 {m} 月没有 {day} 日")
        }
        _ => "不是真实的日期".to_string(),
    };
    format!("第 7–14 位（出生日期）为「{d}」，这个日期不存在：{why}")
}

/// The rule id, message and whether it is downgraded to a warning, for a
/// failed `format`. `raw` is the value in clear (only inspected, never put
/// in the message), `shown` its masked form.
fn format_message(
    ds: &DatasetSchema,
    name: &str,
    format: &str,
    raw: &str,
    shown: &str,
) -> (&'static str, String, bool) {
    match format {
        "uscc" => {
            let why = match check_uscc(raw) {
                Err(CodeFault::CheckDigit(c)) => format!("校验位应为 {c}"),
                _ => "应为 18 位，由数字和大写字母（不含 I、O、S、V、Z）组成，第 3–8 位为数字"
                    .to_string(),
            };
            let warn = ds.opts.uscc_check == Severity::Warn
                && matches!(check_uscc(raw), Err(CodeFault::CheckDigit(_)));
            (
                "GB 32100",
                format!("{name}的值“{shown}”不符合统一社会信用代码校验规则（GB 32100）：{why}"),
                warn,
            )
        }
        "gb11643" => {
            let why = match check_gb11643(raw) {
                Err(CodeFault::CheckDigit(c)) => format!("校验位应为 {c}"),
                // The mask hides digits 7–14; the message shows just
                // them, since they are what is wrong.
                Err(CodeFault::BadDate) => birth_date_problem(raw),
                _ => "应为 17 位数字加 1 位数字或大写 X".to_string(),
            };
            (
                "GB 11643",
                format!("{name}的值“{shown}”不符合公民身份号码校验规则（GB 11643）：{why}"),
                false,
            )
        }
        "gb2260" => (
            "GB/T 2260",
            format!(
                "{name}的值“{shown}”不在行政区划代码表（GB/T 2260）中，应为 6 位现行行政区划代码"
            ),
            false,
        ),
        "date-time" => (
            "datetime",
            format!("{name}的值“{shown}”不是有效的日期时间，应为 {DATETIME_FORMS}"),
            false,
        ),
        "date" => (
            "date",
            format!("{name}的值“{shown}”不是有效的日期，应为 yyyy-MM-dd"),
            false,
        ),
        other => (
            "format",
            format!("{name}的值“{shown}”不符合格式 {other}"),
            false,
        ),
    }
}

/// The condition of the `if` whose `then` produced `e`, if any.
fn condition_of<'a>(ds: &'a DatasetSchema, e: &ValidationError<'_>) -> Option<&'a str> {
    let path = e.schema_path().as_str();
    let then = path.find("/then")?;
    ds.conditions.get(&path[..then]).map(String::as_str)
}

/// A broken `x-compare` rule.
pub(crate) fn compare(ds: &DatasetSchema, c: &Compare, a: &Value, b: &Value) -> FieldError {
    let (fa, fb) = (&ds.fields[c.field], &ds.fields[c.other]);
    let (va, vb) = (shown(fa, &text_of(a)), shown(fb, &text_of(b)));
    let temporal = fa.format != super::field::FieldFormat::None;
    use super::schema::CmpOp::*;
    let relation = match (c.op, temporal) {
        (Ge, true) => "不得早于",
        (Le, true) => "不得晚于",
        (Gt, true) => "应晚于",
        (Lt, true) => "应早于",
        (Ge, false) => "不得小于",
        (Le, false) => "不得大于",
        (Gt, false) => "应大于",
        (Lt, false) => "应小于",
    };
    error(
        fa,
        Some(va.clone()),
        &c.rule,
        format!("{}的值“{va}”{relation}{}的值“{vb}”", fa.label(), fb.label()),
    )
}

/// A date or datetime after today.
pub(crate) fn not_future(spec: &FieldSpec, value: &Value, today: &str) -> FieldError {
    let v = shown(spec, &text_of(value));
    error(
        spec,
        Some(v.clone()),
        "not-future",
        format!(
            "{}的值“{v}”晚于今天（{today}），不能是将来的日期",
            spec.label()
        ),
    )
}

/// The same field given twice (e.g. by its name and by its Chinese title).
pub(crate) fn duplicate(spec: &FieldSpec) -> FieldError {
    error(
        spec,
        None,
        "duplicate",
        format!(
            "{}在记录中出现了多次（按字段名或中文名称），无法确定取哪一个值",
            spec.label()
        ),
    )
}
