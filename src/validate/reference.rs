//! The dataset field reference in `docs/datasets.md`, rendered from
//! `schemas/*.schema.json`. The tables between the document's GENERATED
//! markers are this module's output; the test below fails when they
//! disagree with the schemas, and `FEPD_BLESS=1 cargo test --lib
//! validate::reference` rewrites them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::field::{FieldFormat, FieldSpec, FieldType};
use super::schema::DatasetSchema;

const BEGIN: &str = "<!-- BEGIN GENERATED from schemas/ by src/validate/reference.rs: \
                     FEPD_BLESS=1 cargo test --lib validate::reference rewrites it -->";
const END: &str = "<!-- END GENERATED -->";

/// The field tables of every dataset in `dir`, in name order.
fn render(dir: &Path) -> String {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".schema.json"))
        .collect();
    paths.sort();
    let codes = std::sync::Arc::new(super::CodeTable::load(&dir.join("gb2260.csv")).unwrap());
    let mut out = String::new();
    for (n, path) in paths.iter().enumerate() {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".schema.json")
            .to_string();
        let ds = DatasetSchema::from_text(&name, &text, codes.clone(), Default::default())
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let root: Value = serde_json::from_str(&text).unwrap();
        dataset(&mut out, n + 1, &ds, &root);
    }
    out
}

fn dataset(out: &mut String, n: usize, ds: &DatasetSchema, root: &Value) {
    let key = ds
        .key_fields
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(" + ");
    let _ = writeln!(out, "### {n}. `{}` — {}\n", ds.name, ds.title);
    let mut facts = vec![format!("Key {key}")];
    match &ds.version_field {
        Some(v) => facts.push(format!("version `{v}`")),
        None => facts.push("no version field (arrival order decides)".into()),
    }
    facts.push(format!("`schemaVersion` {}", ds.schema_version));
    let _ = writeln!(out, "{}.\n", facts.join(" · "));
    let required: Vec<&str> = root["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    table(out, ds, root, &ds.fields, &required, &root["properties"]);
    for f in ds.fields.iter().filter(|f| !f.items.is_empty()) {
        let _ = writeln!(out, "Each item of `{}` ({}):\n", f.name, f.title);
        let item = &root["properties"][&f.name]["items"];
        let req: Vec<&str> = item["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        table(out, ds, &Value::Null, &f.items, &req, &item["properties"]);
    }
}

fn table(
    out: &mut String,
    ds: &DatasetSchema,
    root: &Value,
    fields: &[FieldSpec],
    required: &[&str],
    props: &Value,
) {
    out.push_str("| field | 中文 | type | R | rule |\n|---|---|---|---|---|\n");
    for f in fields {
        let prop = &props[&f.name];
        let r = if required.contains(&f.name.as_str()) {
            "R"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {r} | {} |",
            f.name,
            cell(&f.title),
            cell(&type_of(f, prop)),
            cell(&rules_of(ds, root, f, prop))
        );
    }
    out.push('\n');
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn bound(prop: &Value) -> String {
    let mut s = String::new();
    if let Some(m) = prop.get("minimum") {
        let _ = write!(s, " ≥{m}");
    }
    if let Some(m) = prop.get("maximum") {
        let _ = write!(s, " ≤{m}");
    }
    s
}

fn type_of(f: &FieldSpec, prop: &Value) -> String {
    match f.ty {
        FieldType::Integer => format!("integer{}", bound(prop)),
        FieldType::Number => format!("number{}", bound(prop)),
        FieldType::Array => "array of objects".into(),
        FieldType::String => {
            let base = match f.format {
                FieldFormat::DateTime => "datetime",
                FieldFormat::Date => "date",
                FieldFormat::Uscc => "USCC (GB 32100)",
                FieldFormat::Gb11643 => "ID number (GB 11643)",
                FieldFormat::Gb2260 => "GB/T 2260 code",
                FieldFormat::None if f.codes_list => "codes list",
                FieldFormat::None if !f.codes.is_empty() => "code",
                FieldFormat::None => "text",
            };
            match prop.get("maxLength") {
                Some(m) => format!("{base} ≤{m}"),
                None => base.to_string(),
            }
        }
    }
}

fn rules_of(ds: &DatasetSchema, root: &Value, f: &FieldSpec, prop: &Value) -> String {
    let mut r: Vec<String> = Vec::new();
    if let Some(i) = ds.key_fields.iter().position(|k| *k == f.name)
        && root.is_object()
    {
        r.push(if ds.key_fields.len() > 1 {
            format!("key ({} of {})", i + 1, ds.key_fields.len())
        } else {
            "key".into()
        });
    }
    if root.is_object() && ds.version_field.as_deref() == Some(&f.name) {
        r.push("version".into());
    }
    if f.control {
        r.push("control field (not in `data`)".into());
    }
    if !f.codes.is_empty() {
        let list = f
            .codes
            .iter()
            .map(|(c, l)| {
                if l.is_empty() || l == c {
                    format!("`{c}`")
                } else {
                    format!("`{c}` {l}")
                }
            })
            .collect::<Vec<_>>()
            .join(" · ");
        r.push(if f.codes_list {
            format!("comma list of {list}")
        } else {
            list
        });
    }
    if let Some(p) = prop.get("pattern").and_then(Value::as_str) {
        r.push(match &f.hint {
            Some(h) => format!("`{p}` ({h})"),
            None => format!("`{p}`"),
        });
    }
    if root.is_object() {
        for c in &ds.compares {
            if ds.fields[c.field].name == f.name {
                r.push(format!("{} {}", c.op.symbol(), ds.fields[c.other].name));
            }
        }
    }
    if f.not_future {
        r.push("not in the future".into());
    }
    r.extend(conditions(root, &f.name));
    if f.pii {
        r.push(format!("personal data, masked ({:?})", f.mask).to_lowercase());
    }
    if f.free_text {
        r.push("free text: TAB, LF, CR allowed".into());
    }
    r.join("; ")
}

/// What the `allOf` `if`/`then` rules of the schema say about `field`.
fn conditions(root: &Value, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sub in root["allOf"].as_array().into_iter().flatten() {
        let Some(cond) = sub["if"]["properties"].as_object() else {
            continue;
        };
        let when = cond
            .iter()
            .map(|(k, v)| {
                let values: Vec<String> = match (&v["const"], &v["enum"]) {
                    (Value::Null, Value::Array(a)) => a.iter().map(plain).collect(),
                    (c, _) => vec![plain(c)],
                };
                format!("{k} = {}", values.join(" or "))
            })
            .collect::<Vec<_>>()
            .join(" and ");
        let then = &sub["then"];
        if then["required"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r == field))
        {
            out.push(format!("required when {when}"));
        }
        if let Some(p) = then["properties"].get(field) {
            let what = match p["format"].as_str() {
                Some("gb11643") => "GB 11643 check".to_string(),
                Some("uscc") => "GB 32100 check".to_string(),
                _ => format!("also `{p}`"),
            };
            out.push(format!("when {when}: {what}"));
        }
    }
    out
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_datasets_md_matches_the_schemas() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc_path = root.join("docs/datasets.md");
        let doc = std::fs::read_to_string(&doc_path).unwrap();
        let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
            panic!("docs/datasets.md lacks the GENERATED markers:\n{BEGIN}\n…\n{END}");
        };
        let body = &doc[b + BEGIN.len()..e];
        let want = format!("\n\n{}", render(&root.join("schemas")));
        if body == want {
            return;
        }
        if std::env::var_os("FEPD_BLESS").is_some_and(|v| v == "1") {
            let new = format!("{}{want}{}", &doc[..b + BEGIN.len()], &doc[e..]);
            std::fs::write(&doc_path, new).unwrap();
            return;
        }
        let first = body
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(body.lines().count().min(want.lines().count()));
        panic!(
            "docs/datasets.md disagrees with schemas/ at generated line {}:\n  doc:     {:?}\n  schemas: {:?}\n\
             Run `FEPD_BLESS=1 cargo test --lib validate::reference` to regenerate it.",
            first + 1,
            body.lines().nth(first).unwrap_or(""),
            want.lines().nth(first).unwrap_or("")
        );
    }
}
