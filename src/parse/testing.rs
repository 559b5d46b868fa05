//! Testing: helpers shared by the parsers' unit tests.

use super::{FileFault, Item, Limits, RawValue, RecordStream};

/// Limits with the given `max_record_bytes`.
pub(crate) fn limits(max_record_bytes: usize) -> Limits {
    Limits {
        max_record_bytes,
        ..Limits::default()
    }
}

/// Every item up to the end or the first fault.
pub(crate) fn collect(stream: &mut dyn RecordStream) -> (Vec<Item>, Option<FileFault>) {
    let mut items = Vec::new();
    loop {
        match stream.next_item() {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return (items, None),
            Err(fault) => return (items, Some(fault)),
        }
    }
}

/// A record's text fields as `(name, text)` pairs; panics on other values
/// or on a bad record.
pub(crate) fn fields(item: &Item) -> Vec<(&str, &str)> {
    let Item::Record(record) = item else {
        panic!("not a record: {item:?}")
    };
    record
        .fields
        .iter()
        .map(|(name, value)| match value {
            RawValue::Text(text) => (name.as_str(), text.as_str()),
            other => panic!("not text: {other:?}"),
        })
        .collect()
}
