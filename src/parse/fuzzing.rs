//! Fuzzing: the entry points the `fuzz/` targets and the corpus replay
//! tests share. Each takes arbitrary bytes and runs them through the real
//! decoder or a real parser to the end of the stream; the only outcome that
//! counts as a failure is a panic (the checks below panic on purpose when
//! a stage breaks its own contract). Built for tests and with the
//! `fuzzing` feature only.

use std::io::{BufRead, BufReader, Read};

use encoding_rs::Encoding;

use super::{Format, Limits, RecordStream, open_text, open_xlsx};
use crate::decode::{self, Checker};

/// Small limits, so that the limit paths are reached by small inputs.
fn limits(delimiter: u8) -> Limits {
    Limits {
        max_record_bytes: 4096,
        max_xlsx_unpacked_bytes: 1 << 20,
        csv_delimiter: delimiter,
        max_nesting_depth: 8,
        max_columns: 16,
        max_xlsx_shared_strings: 64,
        ..Default::default()
    }
}

/// Splits off the first byte as options for the run (chunk sizes, buffer
/// sizes, defaults), so the fuzzer explores them along with the input.
fn options(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&o, rest)) => (o, rest),
        None => (0, data),
    }
}

/// Reads a stream to its end or its first fault. A parser that yields
/// more items than its input has bytes is looping.
fn drain(stream: &mut dyn RecordStream, input_len: usize) {
    let mut items = 0usize;
    while let Ok(Some(_)) = stream.next_item() {
        items += 1;
        assert!(
            items <= input_len + 1,
            "{items} items from {input_len} bytes: the parser does not advance"
        );
    }
}

/// The decoder: the checker (fed in chunks of a size the first byte picks)
/// decides the encoding and verifies every byte; if it accepts the file,
/// the reader must stream all of it as valid UTF-8 without an error.
pub fn decode(data: &[u8]) {
    let (o, raw) = options(data);
    let default: Option<&'static Encoding> = match o & 3 {
        0 => None,
        1 => Some(encoding_rs::UTF_8),
        _ => Some(encoding_rs::GB18030),
    };
    let xml = o & 4 != 0;
    let chunk = 1 + usize::from(o >> 3);
    let mut checker = Checker::new(default, xml);
    for part in raw.chunks(chunk) {
        if checker.feed(part).is_err() {
            return;
        }
    }
    let Ok(detected) = checker.finish() else {
        return;
    };
    let mut text = String::new();
    decode::reader(Box::new(raw), detected)
        .read_to_string(&mut text)
        .expect("the reader streams every file the checker accepted");
    // Memory stays proportional to the input: one input byte becomes at
    // most three bytes of UTF-8 (GB18030's single byte 0x80 is U+20AC).
    assert!(
        text.len() <= raw.len() * 3,
        "decoded text grew to {} bytes from {}",
        text.len(),
        raw.len()
    );
}

/// A text parser over the input as decoded text (invalid UTF-8 replaced,
/// as the checker would have refused it), read through a buffer of a size
/// the first byte picks so that records straddle buffer boundaries.
pub fn text(format: Format, data: &[u8]) {
    let (o, raw) = options(data);
    let text = String::from_utf8_lossy(raw);
    let capacity = 1 + usize::from(o & 0x3f);
    let delimiter = [b',', b';', b'\t', b'|'][usize::from(o >> 6)];
    let input: Box<dyn BufRead + '_> =
        Box::new(BufReader::with_capacity(capacity, text.as_bytes()));
    let mut stream = open_text(format, input, limits(delimiter));
    drain(&mut *stream, text.len());
}

/// The XLSX parser over the bytes as a file (the parser opens the archive
/// itself), written to a name unique to this process and call.
pub fn xlsx(data: &[u8]) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("fepd-fuzz-{}-{n}.xlsx", std::process::id()));
    std::fs::write(&path, data).expect("write input");
    if let Ok(mut stream) = open_xlsx(&path, limits(b',')) {
        // Rows come from a sheet bounded by the unpacked-size limit.
        drain(&mut *stream, 1 << 20);
    }
    let _ = std::fs::remove_file(&path);
}
