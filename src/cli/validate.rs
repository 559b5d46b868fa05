//! `fepd validate`: the data staff's report, without touching any state.

use std::path::PathBuf;

use crate::cli::Exit;
use crate::config::Config;
use crate::daemon::check::{Finding, check_file};
use crate::daemon::read::ReadOptions;

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
        let checked = check_file(path, &name, &opts, &schema, |f| match f {
            Finding::Fault(f) => emit_fault(a.json, &shown, &f),
            Finding::Record {
                position,
                row,
                field,
                title,
                value,
                rule,
                message,
                warning,
            } => {
                let message = match warning {
                    true => format!("（警告）{message}"),
                    false => message,
                };
                emit(
                    a.json,
                    &shown,
                    &position,
                    row,
                    &field,
                    &title,
                    value.as_deref(),
                    &rule,
                    &message,
                )
            }
        })?;
        any_rejected |= checked.rejected;
        let Some(s) = checked.summary else {
            continue;
        };
        let (total, bad, notes) = (s.records, s.rejected, s.notes);
        if a.json {
            println!(
                "{}",
                serde_json::json!({"file": shown, "records": total, "rejected": bad, "valid": total - bad, "encoding": s.encoding, "format": s.format, "sha256": s.sha256, "ignoredColumns": notes.ignored_columns, "blankRows": notes.blank_rows})
            );
        } else {
            // XLSX is not a text file: it has no encoding to name.
            let enc = s
                .encoding
                .map(|e| format!("，编码 {e}"))
                .unwrap_or_default();
            println!(
                "{shown}: 共 {total} 条记录，通过 {} 条，拒绝 {bad} 条（格式 {}{enc}）",
                total - bad,
                s.format
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
