//! The 回执: a short Chinese text beside the JSON receipt or report
//! (`<file>.回执.txt`), for the person who dropped the file — what arrived,
//! what was sent, what was refused and where to look. It is rendered from
//! the receipt's JSON, so a receipt updated later (the library refusing
//! records) re-renders it from the same source.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde_json::Value;

use crate::fsio;

/// The 回执's file name for a source file named `name`.
pub fn notice_name(name: &str) -> String {
    format!("{name}.回执.txt")
}

/// Writes `<name>.回执.txt` into `dir` (UTF-8 with BOM and CRLF line
/// ends, so Notepad and WPS on Windows show it as written).
pub fn write_notice(dir: &Path, name: &str, receipt: &Value) -> io::Result<()> {
    let text = render(name, receipt);
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend_from_slice(text.replace('\n', "\r\n").as_bytes());
    fsio::write_atomic(dir, &notice_name(name), &body)?;
    Ok(())
}

/// The 回执's text.
pub fn render(name: &str, r: &Value) -> String {
    let n = |k: &str| r["counts"][k].as_i64().unwrap_or(0);
    let mut t = String::new();
    let _ = writeln!(t, "数据交换回执");
    let _ = writeln!(t, "文件：{}", r["file"].as_str().unwrap_or(name));
    let _ = writeln!(t, "数据集：{}", r["dataset"].as_str().unwrap_or(""));
    let verdict = match (r["verdict"].as_str(), r["fault"].as_str()) {
        (Some("duplicate"), _) => "与已接收的文件内容相同，未重复发送".to_string(),
        (_, Some(f)) => format!("整个文件被拒绝：{f}"),
        (Some("rejected"), None) => "部分记录被拒绝，其余已接收".to_string(),
        _ => "已全部接收".to_string(),
    };
    let _ = writeln!(t, "结果：{verdict}");
    if r["verdict"].as_str() != Some("duplicate") {
        let _ = writeln!(
            t,
            "记录：收到 {} 条；发送 {} 条；内容未变跳过 {} 条；旧版本跳过 {} 条；拒绝 {} 条",
            n("received"),
            n("sealed"),
            n("skipped"),
            n("stale"),
            n("rejected")
        );
    }
    if let Some(b) = r["batches"].as_array().filter(|b| !b.is_empty()) {
        let _ = writeln!(t, "发送批次：{} 个", b.len());
    }
    let library = r["libraryRejected"].as_i64().unwrap_or(0);
    if library > 0 {
        let _ = writeln!(
            t,
            "资源库拒收：{library} 条，明细见 {name}.library-rejected.errors.xlsx（或同名 .csv）"
        );
    }
    if n("rejected") > 0 || r["fault"].is_string() {
        let _ = writeln!(
            t,
            "拒绝明细：{name}.errors.xlsx（或同名 .csv），改正后请重新提交被拒绝的记录"
        );
    }
    for w in r["warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            let _ = writeln!(t, "提示：{w}");
        }
    }
    if let Some(at) = r["finishedAt"].as_str() {
        let _ = writeln!(t, "处理完成：{at}");
    }
    t
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn names_counts_refusals_and_where_to_look() {
        let r = json!({
            "file": "a.csv", "dataset": "case_accept", "verdict": "rejected",
            "counts": {"received": 10, "sealed": 8, "skipped": 1, "stale": 0, "rejected": 1},
            "batches": [{"batchId": "B"}], "libraryRejected": 2,
            "warnings": ["以下列不属于本数据集，已忽略：备注"], "finishedAt": "2026-12-01 08:00:00",
        });
        let t = super::render("a.csv", &r);
        assert!(t.contains("收到 10 条；发送 8 条"), "{t}");
        assert!(t.contains("部分记录被拒绝"), "{t}");
        assert!(t.contains("资源库拒收：2 条"), "{t}");
        assert!(t.contains("a.csv.errors.xlsx"), "{t}");
        assert!(t.contains("提示：以下列不属于本数据集"), "{t}");
    }
}
