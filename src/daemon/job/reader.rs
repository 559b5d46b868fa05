//! The reader thread of a file: decode, parse and validate, one bounded
//! channel ahead of the worker thread that commits (see the module doc of
//! `daemon::job`). It never touches state; it only sends what it read.

use std::path::Path;

use crate::daemon::read::{self, Identity, ReadOptions};
use crate::parse::{FileFault, Item, Position, RawRecord};
use crate::report::ReadNotes;
use crate::validate::{DatasetSchema, FieldError, ValidRecord, Verdict};

/// Records go to the committing thread in groups of `GROUP`, so that the two
/// threads hand over (and wake each other) once per group, not per record;
/// the reader may run `READ_AHEAD` groups ahead: enough to keep it busy
/// through a commit, few enough for flat memory.
pub(super) const GROUP: usize = 64;
pub(super) const READ_AHEAD: usize = 8;

/// What the reader thread sends, in order: `Opened` (or a `Fault` if the
/// file cannot be opened or ends while skipping), then the records in
/// groups, then `End` or `Fault`.
pub(super) enum Read {
    Opened { skipped: u64 },
    Items(Vec<Checked>),
    End,
    Fault(FileFault),
}

/// A record with its verdict, as the committing thread needs it.
pub(super) enum Checked {
    Bad(crate::parse::BadRecord),
    Invalid {
        pos: Position,
        key: Option<String>,
        errors: Vec<FieldError>,
    },
    Valid {
        pos: Position,
        rec: ValidRecord,
    },
}

/// The reader thread: opens the stream, skips what earlier runs committed,
/// then parses and validates records into `tx` until the end, a fault, or
/// the committing thread hanging up.
pub(super) fn read_ahead(
    path: &Path,
    id: &Identity,
    opts: &ReadOptions,
    schema: &DatasetSchema,
    skip: u64,
    tx: std::sync::mpsc::SyncSender<Read>,
    notes: &std::sync::Mutex<ReadNotes>,
) {
    let mut stream = match read::open_records(path, id, opts, schema) {
        Ok(s) => s,
        Err(f) => {
            let _ = tx.send(Read::Fault(f));
            return;
        }
    };
    let mut skipped = 0;
    while skipped < skip {
        match stream.next_item(schema) {
            Ok(Some(_)) => skipped += 1,
            Ok(None) => break,
            Err(f) => {
                let _ = tx.send(Read::Fault(f));
                return;
            }
        }
    }
    if tx.send(Read::Opened { skipped }).is_err() {
        return;
    }
    let mut group = Vec::with_capacity(GROUP);
    loop {
        let last = match stream.next_item(schema) {
            Ok(Some(Item::Bad(bad))) => {
                group.push(Checked::Bad(bad));
                None
            }
            Ok(Some(Item::Record(raw))) => {
                group.push(check(schema, raw));
                None
            }
            Ok(None) => {
                if let Ok(mut n) = notes.lock() {
                    *n = ReadNotes {
                        ignored_columns: stream.ignored_names(),
                        blank_rows: stream.blank_rows,
                    };
                }
                Some(Read::End)
            }
            Err(f) => Some(Read::Fault(f)),
        };
        if (group.len() >= GROUP || last.is_some())
            && !group.is_empty()
            && tx
                .send(Read::Items(std::mem::replace(
                    &mut group,
                    Vec::with_capacity(GROUP),
                )))
                .is_err()
        {
            return;
        }
        if let Some(last) = last {
            let _ = tx.send(last);
            return;
        }
    }
}

/// A record's verdict, as the committing thread needs it (also for a SQL
/// source's rows, `rows`).
pub(super) fn check(schema: &DatasetSchema, raw: RawRecord) -> Checked {
    match schema.check(&raw) {
        Verdict::Invalid(errors) => Checked::Invalid {
            pos: raw.pos,
            key: raw_key(schema, &raw),
            errors,
        },
        Verdict::Valid(rec) => Checked::Valid { pos: raw.pos, rec },
    }
}

/// The key of a record that failed validation, from its raw key fields,
/// so that `audit trace` can follow a record that was rejected and later
/// corrected. `None` when a key field is missing.
fn raw_key(schema: &DatasetSchema, raw: &RawRecord) -> Option<String> {
    let mut parts = Vec::with_capacity(schema.key_fields.len());
    for k in &schema.key_fields {
        let v = raw
            .fields
            .iter()
            .find_map(|(h, v)| (schema.field_for_header(h) == Some(k.as_str())).then_some(v))?;
        parts.push(match v {
            crate::parse::RawValue::Text(t) => t.trim().to_string(),
            crate::parse::RawValue::Json(j) => j.to_string(),
            crate::parse::RawValue::Number(n) => n.to_string(),
            crate::parse::RawValue::DateTime(d) => d.to_string(),
        });
    }
    Some(parts.join("|"))
}
