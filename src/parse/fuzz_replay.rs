//! Fuzz replay: the `fuzz/` targets' seed corpus (and every crash found
//! and fixed, which is added to it) replayed as plain tests, plus a short
//! property test with arbitrary bytes per target. This runs on stable in
//! `cargo test`; libFuzzer explores much further (see fuzz/README.md).

use std::path::Path;

use proptest::prelude::*;

use super::Format;
use super::fuzzing;

/// Runs `target` over every file in `fuzz/corpus/<name>/`; the corpus
/// must not be empty.
fn replay(name: &str, target: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            let data = std::fs::read(&path).expect("read corpus file");
            target(&data);
            n += 1;
        }
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

#[test]
fn corpus_decode() {
    replay("decode", fuzzing::decode);
}

#[test]
fn corpus_xml() {
    replay("xml", |d| fuzzing::text(Format::Xml, d));
}

#[test]
fn corpus_json() {
    replay("json", |d| fuzzing::text(Format::Json, d));
}

#[test]
fn corpus_jsonl() {
    replay("jsonl", |d| fuzzing::text(Format::JsonLines, d));
}

#[test]
fn corpus_csv() {
    replay("csv", |d| fuzzing::text(Format::Csv, d));
}

#[test]
fn corpus_xlsx() {
    replay("xlsx", fuzzing::xlsx);
}

/// Bytes biased towards each format's syntax, so that random inputs get
/// past the first token now and then.
fn bytes_with(alphabet: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(alphabet),
            1 => any::<u8>(),
        ],
        0..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_decode(data in bytes_with(b"<?xml encoding=\"GB18030\"\xEF\xBB\xBF\xFF\xFE\x81\x30\xD6\xD0a\n")) {
        fuzzing::decode(&data);
    }

    #[test]
    fn arbitrary_xml(data in bytes_with(b"<>/?!=\"' abrx&;#[]-CDAT\n")) {
        fuzzing::text(Format::Xml, &data);
    }

    #[test]
    fn arbitrary_json(data in bytes_with(b"{}[]\":,records 0.1e-tfn\\u\n")) {
        fuzzing::text(Format::Json, &data);
    }

    #[test]
    fn arbitrary_jsonl(data in bytes_with(b"{}[]\":,ab 0.1e-tfn\\\n\r")) {
        fuzzing::text(Format::JsonLines, &data);
    }

    #[test]
    fn arbitrary_csv(data in bytes_with(b",;\t|\"\n\rab 1")) {
        fuzzing::text(Format::Csv, &data);
    }

    #[test]
    fn arbitrary_xlsx(data in bytes_with(b"PK\x03\x04\x01\x02\x05\x06")) {
        fuzzing::xlsx(&data);
    }
}
