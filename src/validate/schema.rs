//! Loading one dataset schema: the JSON Schema itself (compiled once into
//! a validator with fepd's formats) and its `x-` extensions.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::ValidateOptions;
use super::checks::{check_gb11643, check_uscc};
use super::codes::CodeTable;
use super::field::{FieldFormat, FieldSpec, FieldType};

/// Field names of the 前置库 control fields: never part of `data`.
pub(crate) const OPERATION_FIELD: &str = "cd_operation";

/// A cross-field order rule (`x-compare`).
#[derive(Debug, Clone)]
pub(crate) struct Compare {
    pub field: usize,
    pub other: usize,
    pub op: CmpOp,
    /// Stable rule id, e.g. `accept_date ≥ apply_date`.
    pub rule: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Ge,
    Le,
    Gt,
    Lt,
}

impl CmpOp {
    fn parse(s: &str) -> Option<CmpOp> {
        Some(match s {
            ">=" | "≥" => CmpOp::Ge,
            "<=" | "≤" => CmpOp::Le,
            ">" => CmpOp::Gt,
            "<" => CmpOp::Lt,
            _ => return None,
        })
    }

    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Ge => "≥",
            CmpOp::Le => "≤",
            CmpOp::Gt => ">",
            CmpOp::Lt => "<",
        }
    }

    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Ge => ord != Less,
            CmpOp::Le => ord != Greater,
            CmpOp::Gt => ord == Greater,
            CmpOp::Lt => ord == Less,
        }
    }
}

/// One dataset's schema, ready to check records.
pub struct DatasetSchema {
    /// Dataset name (= file stem = spool folder name).
    pub name: String,
    /// Chinese dataset name.
    pub title: String,
    /// `x-schema-version`, sent as `schemaVersion`.
    pub schema_version: String,
    /// Key fields in wire order.
    pub key_fields: Vec<String>,
    /// The field that orders changes to one key.
    pub version_field: Option<String>,
    pub(crate) fields: Vec<FieldSpec>,
    /// Field name and Chinese title → index in `fields`.
    pub(crate) lookup: HashMap<String, usize>,
    pub(crate) key_idx: Vec<usize>,
    pub(crate) version_idx: Option<usize>,
    pub(crate) op_idx: Option<usize>,
    pub(crate) compares: Vec<Compare>,
    /// `/allOf/N` → the condition of that `if`, in Chinese, for messages
    /// about what its `then` requires.
    pub(crate) conditions: HashMap<String, String>,
    pub(crate) validator: jsonschema::Validator,
    /// The schema a delete is checked against: key fields required,
    /// nothing else (a delete carries only its key).
    pub(crate) delete_validator: jsonschema::Validator,
    /// For a delete: which fields are converted at all.
    pub(crate) delete_fields: Vec<usize>,
    pub(crate) opts: ValidateOptions,
    /// A 1–5 code field whose source uses the reversed scale (declared in
    /// config): its value `n` is read as `6 - n` before any check.
    pub(crate) reversed_scale: Option<usize>,
    /// Top-level `required` fields, for the header check.
    pub(crate) required: Vec<usize>,
}

impl std::fmt::Debug for DatasetSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetSchema")
            .field("name", &self.name)
            .field("title", &self.title)
            .field("schema_version", &self.schema_version)
            .field("key_fields", &self.key_fields)
            .field("version_field", &self.version_field)
            .finish_non_exhaustive()
    }
}

/// `properties` in file order (serde_json's map sorts keys); the order is
/// the one messages and templates follow.
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry()? {
                    v.push(e);
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct PropertyOrder {
    properties: Option<Ordered>,
}

impl DatasetSchema {
    /// Loads `<dir>/<name>.schema.json`; every problem is listed.
    pub fn load(
        path: &Path,
        codes: Arc<CodeTable>,
        opts: ValidateOptions,
    ) -> Result<DatasetSchema, Vec<String>> {
        let file = path.display().to_string();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".schema.json"))
            .ok_or_else(|| vec![format!("{file}: name must be <dataset>.schema.json")])?;
        let text =
            std::fs::read_to_string(path).map_err(|e| vec![format!("{file}: cannot read: {e}")])?;
        Self::from_text(name, &text, codes, opts)
            .map_err(|errs| errs.into_iter().map(|e| format!("{file}: {e}")).collect())
    }

    /// Builds a dataset schema from its JSON text.
    pub fn from_text(
        name: &str,
        text: &str,
        codes: Arc<CodeTable>,
        opts: ValidateOptions,
    ) -> Result<DatasetSchema, Vec<String>> {
        let root: Value = serde_json::from_str(text).map_err(|e| vec![format!("not JSON: {e}")])?;
        let order: PropertyOrder =
            serde_json::from_str(text).map_err(|e| vec![format!("`properties`: {e}")])?;
        let mut errs = Vec::new();
        let top_str = |k: &str| root.get(k).and_then(Value::as_str).map(str::to_string);

        let title = top_str("title").unwrap_or_else(|| {
            errs.push("missing top-level `title` (the Chinese dataset name)".into());
            name.to_string()
        });
        let schema_version = top_str("x-schema-version").unwrap_or_else(|| {
            errs.push("missing `x-schema-version` (text)".into());
            String::new()
        });

        let mut fields = Vec::new();
        for (k, v) in order.properties.map(|o| o.0).unwrap_or_default() {
            fields.push(FieldSpec::parse(
                &k,
                &v,
                &format!("properties/{k}"),
                &mut errs,
            ));
        }
        if fields.is_empty() {
            errs.push("no `properties`".into());
        }

        let mut lookup = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            lookup.insert(f.name.clone(), i);
        }
        for (i, f) in fields.iter().enumerate() {
            match lookup.get(&f.title) {
                Some(&j) if j != i => errs.push(format!(
                    "title {:?} of {} is also the name or title of {}",
                    f.title, f.name, fields[j].name
                )),
                _ => {
                    lookup.insert(f.title.clone(), i);
                }
            }
        }
        let index = |n: &str, what: &str, errs: &mut Vec<String>| {
            let i = lookup.get(n).copied().filter(|&i| fields[i].name == n);
            if i.is_none() {
                errs.push(format!("{what} {n:?} is not a property"));
            }
            i
        };

        let key_fields: Vec<String> = match root.get("x-key").and_then(Value::as_array) {
            Some(a) if !a.is_empty() && a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => {
                errs.push("`x-key` must be a non-empty array of field names".into());
                Vec::new()
            }
        };
        let key_idx: Vec<usize> = key_fields
            .iter()
            .filter_map(|k| index(k, "x-key field", &mut errs))
            .collect();
        for &i in &key_idx {
            let f = &fields[i];
            if f.ty == FieldType::Array || f.control {
                errs.push(format!("x-key field {} must be a plain data field", f.name));
            }
        }

        let version_field = top_str("x-version");
        let version_idx = version_field
            .as_deref()
            .and_then(|v| index(v, "x-version field", &mut errs));
        if let Some(i) = version_idx {
            let f = &fields[i];
            if f.ty != FieldType::Integer && f.format != FieldFormat::DateTime {
                errs.push(format!(
                    "x-version field {} must be an integer or a date-time",
                    f.name
                ));
            }
        }

        let mut compares = Vec::new();
        for c in root
            .get("x-compare")
            .map(|c| c.as_array().cloned().unwrap_or_else(|| vec![c.clone()]))
            .unwrap_or_default()
        {
            let s = |k: &str| c.get(k).and_then(Value::as_str);
            let (Some(field), Some(op), Some(other)) = (s("field"), s("op"), s("other")) else {
                errs.push(format!("x-compare entry {c} needs field, op and other"));
                continue;
            };
            let Some(op) = CmpOp::parse(op) else {
                errs.push(format!("x-compare op {op:?} is not one of >= <= > <"));
                continue;
            };
            let (Some(a), Some(b)) = (
                index(field, "x-compare field", &mut errs),
                index(other, "x-compare field", &mut errs),
            ) else {
                continue;
            };
            let kind = |f: &FieldSpec| match (f.ty, f.format) {
                (FieldType::Integer | FieldType::Number, _) => 1,
                (FieldType::String, FieldFormat::DateTime) => 2,
                (FieldType::String, FieldFormat::Date) => 3,
                _ => 0,
            };
            if kind(&fields[a]) == 0 || kind(&fields[a]) != kind(&fields[b]) {
                errs.push(format!(
                    "x-compare {field} {} {other}: both must be numbers, both datetimes or both dates",
                    op.symbol()
                ));
                continue;
            }
            compares.push(Compare {
                field: a,
                other: b,
                op,
                rule: format!("{field} {} {other}", op.symbol()),
            });
        }

        let mut required = Vec::new();
        if let Some(req) = root.get("required") {
            for r in req.as_array().into_iter().flatten() {
                if let Some(r) = r.as_str() {
                    required.extend(index(r, "required field", &mut errs));
                }
            }
        }

        let conditions = describe_conditions(&root, &fields, &lookup);

        let op_idx = lookup.get(OPERATION_FIELD).copied();
        let mut delete_fields: Vec<usize> = key_idx.clone();
        for (i, f) in fields.iter().enumerate() {
            if (f.control || Some(i) == version_idx) && !delete_fields.contains(&i) {
                delete_fields.push(i);
            }
        }
        let delete_schema = {
            let props: Map<String, Value> = delete_fields
                .iter()
                .filter_map(|&i| {
                    let n = &fields[i].name;
                    Some((n.clone(), root.get("properties")?.get(n)?.clone()))
                })
                .collect();
            json!({
                "$schema": root.get("$schema").cloned().unwrap_or(Value::Null),
                "type": "object",
                "properties": props,
                "required": key_fields,
            })
        };

        if !errs.is_empty() {
            return Err(errs);
        }
        // A line break in a key would split the key's line in every report
        // and log that shows it.
        for &i in &key_idx {
            fields[i].free_text = false;
        }
        let validator = build_validator(&root, &codes, &opts).map_err(|e| vec![e])?;
        let delete_validator = build_validator(&delete_schema, &codes, &opts)
            .map_err(|e| vec![format!("(delete form) {e}")])?;
        Ok(DatasetSchema {
            name: name.to_string(),
            title,
            schema_version,
            key_fields,
            version_field,
            fields,
            lookup,
            key_idx,
            version_idx,
            op_idx,
            compares,
            conditions,
            validator,
            delete_validator,
            delete_fields,
            opts,
            reversed_scale: None,
            required,
        })
    }

    /// Adds column titles a deployment's templates use for fields
    /// (`[dataset.aliases]`, title → field name). A title that already
    /// names another field, or a field that does not exist, is refused.
    pub fn add_aliases<'a>(
        &mut self,
        aliases: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), String> {
        for (title, field) in aliases {
            let title = title.trim();
            let Some(i) = self.index_of(field) else {
                return Err(format!(
                    "alias {title:?}: dataset {} has no field {field:?}",
                    self.name
                ));
            };
            match self.lookup.get(title) {
                Some(&j) if j != i => {
                    return Err(format!(
                        "alias {title:?} → {field}: already the name or title of {}",
                        self.fields[j].name
                    ));
                }
                _ => {
                    self.lookup.insert(title.to_string(), i);
                }
            }
        }
        Ok(())
    }

    /// Declares that the source of this dataset uses the reversed 1–5
    /// scale for `field` (GB/T 39046 A.8 reversed: 1 = 非常满意): values
    /// are converted, never guessed. The field must be a code list of
    /// exactly `1`…`5`.
    pub fn reverse_scale(&mut self, field: &str) -> Result<(), String> {
        let Some(&i) = self.lookup.get(field) else {
            return Err(format!("dataset {} has no field {field}", self.name));
        };
        let spec = &self.fields[i];
        let codes: Vec<&str> = spec.codes.iter().map(|(c, _)| c.as_str()).collect();
        if spec.codes_list || codes != ["1", "2", "3", "4", "5"] {
            return Err(format!(
                "dataset {}: field {field} is not a 1–5 scale",
                self.name
            ));
        }
        self.reversed_scale = Some(i);
        Ok(())
    }

    /// The Chinese title of a field.
    pub fn title_of(&self, field: &str) -> Option<&str> {
        self.spec(field).map(|f| f.title.as_str())
    }

    /// Whether a field holds personal data (`x-pii`).
    pub fn is_pii(&self, field: &str) -> bool {
        self.spec(field).is_some_and(|f| f.pii)
    }

    /// Whether a field is a 前置库 control field (`x-control`).
    pub fn is_control(&self, field: &str) -> bool {
        self.spec(field).is_some_and(|f| f.control)
    }

    /// Fields as (name, Chinese title), in schema order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|f| (f.name.as_str(), f.title.as_str()))
    }

    /// A value of `field` as it may be shown to a person or logged: masked
    /// when the field is `x-pii`, as is otherwise.
    pub fn shown_value(&self, field: &str, value: &str) -> String {
        match self.spec(field) {
            Some(f) => super::message::shown(f, value),
            None => value.to_string(),
        }
    }

    /// The field a column header or element name stands for: its
    /// snake_case name or its Chinese title.
    pub fn field_for_header(&self, header: &str) -> Option<&str> {
        self.lookup
            .get(header.trim())
            .map(|&i| self.fields[i].name.as_str())
    }

    pub(crate) fn spec(&self, field: &str) -> Option<&FieldSpec> {
        self.lookup
            .get(field)
            .map(|&i| &self.fields[i])
            .filter(|f| f.name == field)
    }

    pub(crate) fn index_of(&self, field: &str) -> Option<usize> {
        self.lookup
            .get(field)
            .copied()
            .filter(|&i| self.fields[i].name == field)
    }
}

/// Compiles a schema with fepd's formats, asserted.
fn build_validator(
    schema: &Value,
    codes: &Arc<CodeTable>,
    opts: &ValidateOptions,
) -> Result<jsonschema::Validator, String> {
    let table = Arc::clone(codes);
    let allow = opts.uscc_allow.clone();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_format("uscc", move |s: &str| {
            allow.contains(s) || check_uscc(s).is_ok()
        })
        .with_format("gb11643", |s: &str| check_gb11643(s).is_ok())
        .with_format("gb2260", move |s: &str| table.contains(s))
        .build(schema)
        .map_err(|e| format!("invalid JSON Schema: {e} (at {})", e.schema_path()))
}

/// For each `allOf[N]` with an `if` on constant values, a Chinese
/// description of the condition: `满意度（satisfaction）为 1 非常不满意、2 不满意`.
fn describe_conditions(
    root: &Value,
    fields: &[FieldSpec],
    lookup: &HashMap<String, usize>,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(all) = root.get("allOf").and_then(Value::as_array) else {
        return out;
    };
    for (n, sub) in all.iter().enumerate() {
        let Some(props) = sub
            .get("if")
            .and_then(|i| i.get("properties"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let mut parts = Vec::new();
        for (k, cond) in props {
            let Some(spec) = lookup.get(k).map(|&i| &fields[i]) else {
                continue;
            };
            let values: Vec<&Value> = match (cond.get("const"), cond.get("enum")) {
                (Some(c), _) => vec![c],
                (None, Some(Value::Array(a))) => a.iter().collect(),
                _ => continue,
            };
            let shown: Vec<String> = values
                .iter()
                .map(|v| {
                    let c = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    match spec.codes.iter().find(|(code, _)| *code == c) {
                        Some((_, l)) if !l.is_empty() => format!("{c} {l}"),
                        _ => c,
                    }
                })
                .collect();
            parts.push(format!("{}为 {}", spec.label(), shown.join("、")));
        }
        if !parts.is_empty() {
            out.insert(format!("/allOf/{n}"), parts.join("且"));
        }
    }
    out
}
