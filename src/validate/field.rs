//! One property of a dataset schema, read once at load time into the form
//! the per-record code needs (type, format, codes, masking).

use serde_json::{Map, Value};

use super::mask::MaskKind;

/// The JSON type a value is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    String,
    Integer,
    Number,
    /// An array of objects (say, a report's attached media), from JSON input.
    Array,
}

/// The formats that change how text is converted or checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldFormat {
    None,
    DateTime,
    Date,
    Uscc,
    Gb11643,
    Gb2260,
}

#[derive(Debug, Clone)]
pub(crate) struct FieldSpec {
    pub name: String,
    pub title: String,
    pub ty: FieldType,
    pub format: FieldFormat,
    /// Allowed codes with their labels, in schema order (an `enum`, or the
    /// items of a codes list); empty when the field has no code list.
    pub codes: Vec<(String, String)>,
    pub codes_list: bool,
    /// Width numeric XLSX cells are left-padded to (Excel drops zeros).
    pub pad_width: Option<usize>,
    pub pii: bool,
    pub mask: MaskKind,
    pub control: bool,
    /// What the `pattern` means, in Chinese.
    pub hint: Option<String>,
    pub not_future: bool,
    /// `"01 行政许可、02 行政处罚…"`, for messages.
    pub codes_text: String,
    /// Properties of the items of an array of objects.
    pub items: Vec<FieldSpec>,
    /// Free text (`x-multiline`: a written explanation, not a key field):
    /// TAB, LF and CR are allowed in its values; every other control
    /// character is refused in every field.
    pub free_text: bool,
}

impl FieldSpec {
    /// Reads property `name`; problems are pushed to `errs` (prefixed with
    /// the property's path) and a best-effort spec is still returned.
    pub fn parse(name: &str, prop: &Value, path: &str, errs: &mut Vec<String>) -> FieldSpec {
        let mut err = |m: String| errs.push(format!("{path}: {m}"));
        let empty = Map::new();
        let obj = match prop.as_object() {
            Some(o) => o,
            None => {
                err("property is not an object".into());
                &empty
            }
        };
        let str_of = |k: &str| obj.get(k).and_then(Value::as_str);
        let title = match str_of("title") {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                err("missing `title` (the Chinese name)".into());
                name.to_string()
            }
        };
        let ty = match str_of("type") {
            Some("string") => FieldType::String,
            Some("integer") => FieldType::Integer,
            Some("number") => FieldType::Number,
            Some("array") => FieldType::Array,
            other => {
                err(format!(
                    "`type` must be string, integer, number or array, not {other:?}"
                ));
                FieldType::String
            }
        };
        let format = match str_of("format") {
            None => FieldFormat::None,
            Some("date-time") => FieldFormat::DateTime,
            Some("date") => FieldFormat::Date,
            Some("uscc") => FieldFormat::Uscc,
            Some("gb11643") => FieldFormat::Gb11643,
            Some("gb2260") => FieldFormat::Gb2260,
            Some(f) => {
                err(format!("unknown format {f:?}"));
                FieldFormat::None
            }
        };
        if format != FieldFormat::None && ty != FieldType::String {
            err("`format` needs `type: string`".into());
        }
        let flag = |k: &str, err: &mut dyn FnMut(String)| match obj.get(k) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                err(format!("`{k}` must be true or false"));
                false
            }
        };
        let pii = flag("x-pii", &mut err);
        let control = flag("x-control", &mut err);
        let codes_list = flag("x-codes-list", &mut err);
        let not_future = flag("x-not-future", &mut err);
        let mask = MaskKind::from_schema(str_of("x-mask")).unwrap_or_else(|| {
            err("`x-mask` must be id, mobile, name or generic".into());
            MaskKind::Generic
        });
        if not_future && !matches!(format, FieldFormat::Date | FieldFormat::DateTime) {
            err("`x-not-future` needs format date or date-time".into());
        }

        let labels = match obj.get("x-codes") {
            None => Map::new(),
            Some(Value::Object(m)) if m.values().all(Value::is_string) => m.clone(),
            Some(_) => {
                err("`x-codes` must map each code to its label (text)".into());
                Map::new()
            }
        };
        let label = |c: &str| {
            labels
                .get(c)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let is_code = obj.contains_key("enum");
        let codes: Vec<(String, String)> = match obj.get("enum") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v.as_str() {
                    Some(c) => {
                        if !labels.is_empty() && !labels.contains_key(c) {
                            err(format!("enum code {c:?} has no label in `x-codes`"));
                        }
                        Some((c.to_string(), label(c)))
                    }
                    None => {
                        err(format!("enum value {v} is not text (codes are text)"));
                        None
                    }
                })
                .collect(),
            Some(_) => {
                err("`enum` must be an array".into());
                Vec::new()
            }
            None => labels.keys().map(|c| (c.clone(), label(c))).collect(),
        };
        if codes_list && (is_code || ty != FieldType::String) {
            err("`x-codes-list` needs `type: string` and no `enum`".into());
        }
        let uniform = codes.first().map(|(c, _)| c.len()).filter(|&w| {
            codes
                .iter()
                .all(|(c, _)| c.len() == w && c.bytes().all(|b| b.is_ascii_digit()))
        });
        let pad_width = match obj.get("x-pad-width") {
            None => uniform.filter(|_| is_code || codes_list),
            Some(v) => match v.as_u64() {
                Some(w) if (1..=64).contains(&w) => Some(w as usize),
                _ => {
                    err("`x-pad-width` must be an integer 1..64".into());
                    None
                }
            },
        };
        let codes_text = codes
            .iter()
            .map(|(c, l)| {
                if l.is_empty() || l == c {
                    c.clone()
                } else {
                    format!("{c} {l}")
                }
            })
            .collect::<Vec<_>>()
            .join("、");

        // Key fields are excluded afterwards, by the schema that knows them.
        let free_text = flag("x-multiline", &mut err);
        if free_text
            && (ty != FieldType::String
                || format != FieldFormat::None
                || !codes.is_empty()
                || codes_list
                || control
                || obj.contains_key("pattern"))
        {
            err("`x-multiline` is for plain text: no format, codes, pattern or x-control".into());
        }
        let mut items = Vec::new();
        if ty == FieldType::Array {
            match obj
                .get("items")
                .and_then(|i| i.get("properties"))
                .and_then(Value::as_object)
            {
                Some(props) => {
                    for (k, v) in props {
                        items.push(FieldSpec::parse(k, v, &format!("{path}/items/{k}"), errs));
                    }
                }
                None => errs.push(format!(
                    "{path}: an array property needs `items` with `properties`"
                )),
            }
        }

        FieldSpec {
            name: name.to_string(),
            title,
            ty,
            format,
            codes,
            codes_list,
            pad_width,
            pii,
            mask,
            control,
            hint: str_of("x-hint").map(str::to_string),
            not_future,
            codes_text,
            items,
            free_text,
        }
    }

    /// `申请时间（apply_date）`: how messages name a field.
    pub fn label(&self) -> String {
        format!("{}（{}）", self.title, self.name)
    }
}
