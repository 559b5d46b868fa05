//! Checking one record: map its fields (by name or Chinese title), convert
//! them, run the compiled JSON Schema, then the cross-field rules, and
//! build the wire form of a valid record.

use serde_json::{Map, Value};

use super::convert::convert;
use super::datetime::wire_to_unix;
use super::field::FieldFormat;
use super::message;
use super::schema::DatasetSchema;
use super::{FieldError, Op, ValidRecord, Verdict};
use crate::canon;
use crate::parse::{RawRecord, RawValue};

impl DatasetSchema {
    /// The verdict on one parsed record. Every broken rule is reported, not
    /// only the first.
    pub fn check(&self, rec: &RawRecord) -> Verdict {
        let n = self.fields.len();
        let mut slots: Vec<Option<&RawValue>> = vec![None; n];
        let mut errors: Vec<(usize, FieldError)> = Vec::new();
        let mut warnings = Vec::new();
        let mut ignored = 0u32;
        // A field's index is also its sort position in the report; record-
        // level errors sort last.
        let mut bad = vec![false; n];

        for (name, value) in &rec.fields {
            // Headers are nearly always exact; trimming is the fallback.
            let found = self.lookup.get(name.as_str()).or_else(|| {
                self.lookup
                    .get(name.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}'))
            });
            match found {
                Some(&i) if slots[i].is_some() => {
                    if !bad[i] {
                        errors.push((i, message::duplicate(&self.fields[i])));
                        bad[i] = true;
                    }
                }
                Some(&i) => slots[i] = Some(value),
                None => ignored += 1,
            }
        }

        let mut obj = Map::new();
        let mut convert_one = |i: usize, obj: &mut Map<String, Value>, errors: &mut Vec<_>| {
            let (Some(raw), false) = (slots[i], bad[i]) else {
                return;
            };
            let spec = &self.fields[i];
            match convert(spec, raw, self.opts.timezone, &mut ignored) {
                Ok(Some(v)) => {
                    let v = if Some(i) == self.reversed_scale {
                        reverse_scale(v)
                    } else {
                        v
                    };
                    obj.insert(spec.name.clone(), v);
                }
                Ok(None) => {}
                Err(e) => {
                    errors.push((i, message::conversion(spec, &e)));
                    bad[i] = true;
                }
            }
        };

        // The operation decides what else is checked.
        if let Some(i) = self.op_idx {
            convert_one(i, &mut obj, &mut errors);
        }
        let op = match obj.get(super::schema::OPERATION_FIELD) {
            Some(Value::String(s)) if s == "d" => Op::Delete,
            _ => Op::Upsert,
        };
        match op {
            Op::Upsert => (0..n)
                .filter(|&i| Some(i) != self.op_idx)
                .for_each(|i| convert_one(i, &mut obj, &mut errors)),
            Op::Delete => self
                .delete_fields
                .iter()
                .filter(|&&i| Some(i) != self.op_idx)
                .for_each(|&i| convert_one(i, &mut obj, &mut errors)),
        }

        let value = Value::Object(obj);
        let validator = match op {
            Op::Upsert => &self.validator,
            Op::Delete => &self.delete_validator,
        };
        // `is_valid` is much cheaper than collecting errors; most records pass.
        if !validator.is_valid(&value) {
            let failed_conversion = bad.clone();
            for e in validator.iter_errors(&value) {
                let m = message::schema_error(self, &e);
                // A value that failed conversion is absent from the object:
                // its `required` error would only repeat the first one.
                if let Some(i) = m.field
                    && failed_conversion[i]
                    && m.error.rule == "required"
                {
                    continue;
                }
                if m.warning {
                    warnings.push(m.error);
                    continue;
                }
                let pos = m.field.unwrap_or(n);
                if let Some(i) = m.field {
                    bad[i] = true;
                }
                errors.push((pos, m.error));
            }
        }
        let Value::Object(mut obj) = value else {
            unreachable!("built as an object above")
        };

        if op == Op::Upsert {
            self.cross_field(&obj, &bad, &mut errors);
        }

        if !errors.is_empty() {
            errors.sort_by_key(|(i, _)| *i);
            return Verdict::Invalid(errors.into_iter().map(|(_, e)| e).collect());
        }

        let key = self
            .key_idx
            .iter()
            .map(|&i| {
                obj.get(&self.fields[i].name)
                    .map(key_text)
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("|");
        let version = self.version_idx.and_then(|i| {
            let f = &self.fields[i];
            match obj.get(&f.name)? {
                Value::Number(n) => n.as_i64(),
                Value::String(s) if f.format == FieldFormat::DateTime => wire_to_unix(s),
                _ => None,
            }
        });
        match op {
            Op::Upsert => obj.retain(|k, _| self.spec(k).is_some_and(|f| !f.control)),
            Op::Delete => obj.retain(|k, _| self.key_fields.iter().any(|f| f == k)),
        }
        let canonical = canon::to_canonical(&Value::Object(obj));
        let hash = canon::sha256_hex(canonical.as_bytes());
        Verdict::Valid(ValidRecord {
            op,
            key,
            version,
            canonical,
            hash,
            ignored_fields: ignored,
            warnings,
        })
    }

    /// `x-compare` and `x-not-future`, on fields that are present and
    /// passed their own rules.
    fn cross_field(
        &self,
        obj: &Map<String, Value>,
        bad: &[bool],
        errors: &mut Vec<(usize, FieldError)>,
    ) {
        let get = |i: usize| {
            if bad[i] {
                None
            } else {
                obj.get(&self.fields[i].name)
            }
        };
        for c in &self.compares {
            let (Some(a), Some(b)) = (get(c.field), get(c.other)) else {
                continue;
            };
            let ord = match self.fields[c.field].format {
                FieldFormat::DateTime => match (
                    a.as_str().and_then(wire_to_unix),
                    b.as_str().and_then(wire_to_unix),
                ) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    _ => continue,
                },
                // yyyy-MM-dd sorts as text.
                FieldFormat::Date => a.as_str().cmp(&b.as_str()),
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => match x.partial_cmp(&y) {
                        Some(o) => o,
                        None => continue,
                    },
                    _ => continue,
                },
            };
            if !c.op.holds(ord) {
                errors.push((c.field, message::compare(self, c, a, b)));
            }
        }
        for (i, f) in self.fields.iter().enumerate() {
            if !f.not_future {
                continue;
            }
            let Some(Value::String(s)) = get(i) else {
                continue;
            };
            let now = chrono::Utc::now().with_timezone(&self.opts.timezone);
            let today = super::datetime::format_date(now.date_naive());
            let future = match f.format {
                FieldFormat::Date => s.as_str() > today.as_str(),
                _ => wire_to_unix(s).is_some_and(|t| t > now.timestamp()),
            };
            if future {
                errors.push((i, message::not_future(f, &Value::String(s.clone()), &today)));
            }
        }
    }
}

/// A key field's value as normalised text (docs/protocol.md §3).
fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `n` on the reversed 1–5 scale is `6 - n` on the standard one; anything
/// else is left for the code check to refuse.
fn reverse_scale(v: Value) -> Value {
    match v.as_str().and_then(|s| s.parse::<u8>().ok()) {
        Some(n @ 1..=5) => Value::String((6 - n).to_string()),
        _ => v,
    }
}
