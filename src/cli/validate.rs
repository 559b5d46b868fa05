//! `fepd validate`: the data staff's report, without touching any state.

use std::path::PathBuf;

use crate::cli::Exit;
use crate::config::Config;
use crate::daemon::read::{self, ReadOptions};
use crate::parse::Item;
use crate::validate::Verdict;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset whose schema applies (= its spool folder name).
    #[arg(long)]
    dataset: String,
    /// Print JSON lines (one per problem) instead of a table.
    #[arg(long)]
    json: bool,
    /// Files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(cfg: Config, a: &Args) -> anyhow::Result<Exit> {
    let loaded = crate::config::load(cfg)?;
    let Some(schema) = loaded.schema(&a.dataset) else {
        anyhow::bail!("unknown dataset {:?} (no schema loaded for it)", a.dataset);
    };
    let opts = ReadOptions::of(&loaded.cfg, Some(&a.dataset));
    let mut any_rejected = false;
    for path in &a.files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let shown = path.display().to_string();
        let (id, fault) = read::identify(path, &name, &opts)?;
        let fault = fault.or_else(|| match read::precheck_document(path, &id, &opts) {
            Ok(f) => f.map(|f| f.to_string()),
            Err(f) => Some(f.to_string()),
        });
        if let Some(f) = fault {
            any_rejected = true;
            emit_fault(a.json, &shown, &f);
            continue;
        }
        // A header verdict ends here, before any per-record line.
        let mut stream = match read::open_records(path, &id, &opts, &schema) {
            Ok(s) => s,
            Err(f) => {
                any_rejected = true;
                emit_fault(a.json, &shown, &f.to_string());
                continue;
            }
        };
        let (mut total, mut bad) = (0u64, 0u64);
        loop {
            let item = match stream.next_item(&schema) {
                Ok(Some(i)) => i,
                Ok(None) => break,
                Err(f) => {
                    any_rejected = true;
                    emit_fault(a.json, &shown, &f.to_string());
                    break;
                }
            };
            total += 1;
            match item {
                Item::Bad(b) => {
                    bad += 1;
                    emit(
                        a.json,
                        &shown,
                        &b.pos.to_string(),
                        b.pos.row(),
                        "",
                        "",
                        None,
                        "parse",
                        &b.message,
                    );
                }
                Item::Record(raw) => match schema.check(&raw) {
                    Verdict::Valid(v) => {
                        for w in &v.warnings {
                            emit(
                                a.json,
                                &shown,
                                &raw.pos.to_string(),
                                raw.pos.row(),
                                &w.field,
                                &w.title,
                                w.value.as_deref(),
                                &w.rule,
                                &format!("（警告）{}", w.message),
                            );
                        }
                    }
                    Verdict::Invalid(errs) => {
                        bad += 1;
                        for e in &errs {
                            emit(
                                a.json,
                                &shown,
                                &raw.pos.to_string(),
                                raw.pos.row(),
                                &e.field,
                                &e.title,
                                e.value.as_deref(),
                                &e.rule,
                                &e.message,
                            );
                        }
                    }
                },
            }
        }
        any_rejected |= bad > 0;
        let notes = crate::report::ReadNotes {
            ignored_columns: stream.ignored_names(),
            blank_rows: stream.blank_rows,
        };
        // XLSX is not a text file: it has no encoding to name.
        let encoding = id.detected.map(|d| d.encoding.name());
        if a.json {
            println!(
                "{}",
                serde_json::json!({"file": shown, "records": total, "rejected": bad, "valid": total - bad, "encoding": encoding, "format": id.format_name(), "sha256": id.sha256, "ignoredColumns": notes.ignored_columns, "blankRows": notes.blank_rows})
            );
        } else {
            let enc = encoding.map(|e| format!("，编码 {e}")).unwrap_or_default();
            println!(
                "{shown}: 共 {total} 条记录，通过 {} 条，拒绝 {bad} 条（格式 {}{enc}）",
                total - bad,
                id.format_name()
            );
            for w in notes.warnings() {
                println!("{shown}: 提示：{w}");
            }
        }
    }
    Ok(if any_rejected {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

fn emit_fault(json: bool, file: &str, fault: &str) {
    if json {
        println!(
            "{}",
            serde_json::json!({"file": file, "rule": "file", "message": fault})
        );
    } else {
        println!("{file}: 整个文件被拒绝：{fault}");
    }
}

#[allow(clippy::too_many_arguments)]
fn emit(
    json: bool,
    file: &str,
    pos: &str,
    row: u64,
    field: &str,
    title: &str,
    value: Option<&str>,
    rule: &str,
    message: &str,
) {
    if json {
        println!(
            "{}",
            serde_json::json!({"file": file, "position": pos, "row": row, "field": field, "title": title, "value": value, "rule": rule, "message": message})
        );
    } else {
        let field_part = if field.is_empty() {
            String::new()
        } else {
            format!(" 字段 {title}（{field}）")
        };
        let value_part = value.map(|v| format!(" 值「{v}」")).unwrap_or_default();
        println!("{file}: {pos}{field_part}{value_part} 规则 {rule}：{message}");
    }
}
