//! Test data: realistic records with valid check digits, written in every
//! input format and encoding. The check-digit code here is written apart
//! from `src/validate` on purpose, so the two cross-check each other.

use std::fmt::Write as _;

const USCC_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_W: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
const ID_W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// A valid 统一社会信用代码 derived from `n`.
pub fn uscc(n: u64) -> String {
    let mut s = format!("9111010{:010}", n % 10_000_000_000);
    s.truncate(17);
    let sum: u32 = s
        .bytes()
        .zip(USCC_W)
        .map(|(c, w)| USCC_CHARS.iter().position(|&x| x == c).unwrap() as u32 * w)
        .sum();
    s.push(USCC_CHARS[((31 - sum % 31) % 31) as usize] as char);
    s
}

/// The same code with a wrong check digit.
pub fn uscc_bad(n: u64) -> String {
    let good = uscc(n);
    let last = good.as_bytes()[17];
    let i = USCC_CHARS.iter().position(|&x| x == last).unwrap();
    format!("{}{}", &good[..17], USCC_CHARS[(i + 1) % 31] as char)
}

/// A valid 公民身份号码 derived from `n` (born 1980-01-01 … in 110105).
pub fn id_card(n: u64) -> String {
    let day = 1 + (n % 28);
    with_id_check(format!("110105198001{:02}{:03}", day, n % 1000))
}

/// The first 17 digits of a 公民身份号码 with their GB 11643 check digit.
pub fn with_id_check(s: String) -> String {
    let sum: u32 = s
        .bytes()
        .zip(ID_W)
        .map(|(c, w)| (c - b'0') as u32 * w)
        .sum();
    format!("{s}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

pub type Record = Vec<(&'static str, String)>;

/// A case_accept record (~600 bytes as JSON), number `i`.
pub fn case_accept(i: u64) -> Record {
    vec![
        (
            "project_no",
            format!("11110105MB0000000X4000110012026112{:06}", i),
        ),
        ("task_code", "11110105MB0000000X400011001000001".into()),
        (
            "task_name",
            "对《政府信息公开》申请的受理，含中文测试文本".into(),
        ),
        ("task_version", "3".into()),
        ("project_type", "2".into()),
        ("applyer_type", "1".into()),
        ("applyer_name", format!("张三{i}")),
        ("applyer_page_type", "111".into()),
        ("applyer_page_code", id_card(i)),
        ("contact_mobile", format!("138{:08}", i % 100_000_000)),
        ("apply_date", "2026-11-20 09:30:00".into()),
        ("accept_date", "2026-11-20 10:15:30".into()),
        ("promise_date", "2026-11-27 17:00:00".into()),
        ("org_name", "北京市东城区政务服务管理局".into()),
        ("org_code", uscc(1000 + i % 50)),
        ("area_code", "110101".into()),
    ]
}

/// An evaluation record, number `i`.
pub fn evaluation(i: u64) -> Record {
    vec![
        (
            "project_no",
            format!("11110105MB0000000X4000110012026112{:06}", i),
        ),
        ("area_code", "110105".into()),
        ("dept_code", uscc(2000 + i % 50)),
        ("task_code", "11110105MB0000000X400011001000001".into()),
        ("task_name", "不动产登记（好差评）".into()),
        ("pro_status", "3".into()),
        ("pf", "2".into()),
        ("user_prop", "1".into()),
        ("user_name", format!("李四{i}")),
        ("satisfaction", "5".into()),
        ("writing_evaluation", "服务很好，办事效率高".into()),
        ("assess_time", "20261121T083000".into()),
        ("assess_number", "1".into()),
    ]
}

/// Chinese titles (docs/datasets.md) for CSV/XLSX headers.
pub fn title(field: &str) -> &'static str {
    match field {
        "project_no" => "办件编号",
        "task_code" => "实施编码",
        "task_name" => "事项名称",
        "task_version" => "事项版本",
        "project_type" => "办件类型",
        "applyer_type" => "申请人类型",
        "applyer_name" => "申请人名称",
        "applyer_page_type" => "申请人证件类型",
        "applyer_page_code" => "申请人证件号码",
        "contact_mobile" => "联系人手机",
        "apply_date" => "申请时间",
        "accept_date" => "受理时间",
        "promise_date" => "承诺办结时间",
        "org_name" => "受理部门",
        "org_code" => "受理部门编码",
        "area_code" => "行政区划代码",
        "dept_code" => "部门编码",
        "pro_status" => "办件状态",
        "pf" => "评价渠道",
        "user_prop" => "评价人属性",
        "user_name" => "评价人",
        "satisfaction" => "满意度",
        "writing_evaluation" => "文字评价",
        "assess_time" => "评价时间",
        "assess_number" => "评价次数",
        "cd_operation" => "操作类型",
        "cd_time" => "入库时间",
        other => panic!("no title for {other}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    Utf8,
    Utf8Bom,
    Gb18030,
}

fn encode(text: &str, enc: Enc) -> Vec<u8> {
    match enc {
        Enc::Utf8 => text.as_bytes().to_vec(),
        Enc::Utf8Bom => {
            let mut v = "\u{feff}".as_bytes().to_vec();
            v.extend_from_slice(text.as_bytes());
            v
        }
        Enc::Gb18030 => encoding_rs::GB18030.encode(text).0.into_owned(),
    }
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV with English (or Chinese, `titles`) headers.
pub fn csv(records: &[Record], titles: bool, enc: Enc) -> Vec<u8> {
    let mut out = String::new();
    let header: Vec<String> = records[0]
        .iter()
        .map(|(k, _)| {
            if titles {
                title(k).to_string()
            } else {
                k.to_string()
            }
        })
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for r in records {
        let row: Vec<String> = r.iter().map(|(_, v)| csv_quote(v)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    encode(&out, enc)
}

fn json_obj(r: &Record) -> serde_json::Value {
    serde_json::Value::Object(
        r.iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

pub fn jsonl(records: &[Record], enc: Enc) -> Vec<u8> {
    let mut out = String::new();
    for r in records {
        out.push_str(&json_obj(r).to_string());
        out.push('\n');
    }
    encode(&out, enc)
}

pub fn json(records: &[Record], wrapped: bool, enc: Enc) -> Vec<u8> {
    let arr = serde_json::Value::Array(records.iter().map(json_obj).collect());
    let v = if wrapped {
        serde_json::json!({"records": arr})
    } else {
        arr
    };
    encode(&serde_json::to_string_pretty(&v).unwrap(), enc)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn xml(records: &[Record], enc: Enc) -> Vec<u8> {
    let decl = match enc {
        Enc::Gb18030 => "<?xml version=\"1.0\" encoding=\"GB18030\"?>\n",
        _ => "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    };
    let mut out = String::from(decl);
    out.push_str("<records>\n");
    for r in records {
        out.push_str("  <record>\n");
        for (k, v) in r {
            let _ = writeln!(out, "    <{k}>{}</{k}>", xml_escape(v));
        }
        out.push_str("  </record>\n");
    }
    out.push_str("</records>\n");
    encode(&out, enc)
}

/// XLSX with Chinese title headers; numeric-looking cells are written as
/// numbers, as Excel users end up with.
pub fn xlsx(records: &[Record], path: &std::path::Path) {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, (k, _)) in records[0].iter().enumerate() {
        ws.write_string(0, c as u16, title(k)).unwrap();
    }
    for (r, rec) in records.iter().enumerate() {
        for (c, (k, v)) in rec.iter().enumerate() {
            let numeric = matches!(
                *k,
                "task_version" | "project_type" | "applyer_type" | "area_code"
            );
            if numeric {
                ws.write_number(r as u32 + 1, c as u16, v.parse::<f64>().unwrap())
                    .unwrap();
            } else {
                ws.write_string(r as u32 + 1, c as u16, v).unwrap();
            }
        }
    }
    wb.save(path).unwrap();
}
