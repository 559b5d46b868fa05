//! The raw limits a throughput case is set against, measured on the same
//! file (single thread): read + SHA-256, parse only, and SQLite inserts of
//! the file's keys as fepd's state database takes them (batched
//! transactions, `synchronous=FULL`, WAL) — each a ceiling fepd's rate is
//! printed as a ratio of.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Instant;

use crate::input::Fmt;

pub struct Limit {
    pub sha_secs: f64,
    pub parse_secs: f64,
    pub sqlite_secs: f64,
}

/// The limits on `path` (`records` records of `fmt`, whose keys are
/// `keys`).
pub fn limits(path: &Path, fmt: Fmt, records: u64, keys: &[String]) -> Limit {
    use sha2::{Digest, Sha256};
    // Read + SHA-256, 1 MiB reads.
    let t = Instant::now();
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
    }
    std::hint::black_box(h.finalize());
    let sha_secs = t.elapsed().as_secs_f64();

    // Parse only: each record into its generic form, nothing else.
    let t = Instant::now();
    let mut seen = 0u64;
    let rd = BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap());
    match fmt {
        Fmt::Jsonl => {
            for line in rd.lines() {
                let line = line.unwrap();
                if line.is_empty() {
                    continue;
                }
                let v: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&line).unwrap();
                std::hint::black_box(&v);
                seen += 1;
            }
        }
        Fmt::Csv => {
            let mut r = csv::Reader::from_reader(rd);
            let mut rec = csv::StringRecord::new();
            while r.read_record(&mut rec).unwrap() {
                std::hint::black_box(&rec);
                seen += 1;
            }
        }
        Fmt::Xlsx => {
            use calamine::Reader as _;
            let mut wb: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
            let sheet = wb.sheet_names()[0].clone();
            let mut cells = wb.worksheet_cells_reader(&sheet).unwrap();
            let mut row = 0u32;
            while let Some(c) = cells.next_cell().unwrap() {
                if c.get_position().0 != row {
                    row = c.get_position().0;
                    seen += 1;
                }
                std::hint::black_box(c.get_value());
            }
        }
        Fmt::Xml => {
            use quick_xml::events::Event;
            let mut r = quick_xml::Reader::from_reader(rd);
            let mut ev = Vec::new();
            let mut text = String::new();
            loop {
                match r.read_event_into(&mut ev).unwrap() {
                    Event::Eof => break,
                    Event::Text(t) => {
                        text.clear();
                        text.push_str(&t.xml10_content());
                        std::hint::black_box(&text);
                    }
                    Event::End(e) if e.local_name().into_inner() == "record" => seen += 1,
                    _ => {}
                }
                ev.clear();
            }
        }
    }
    assert_eq!(seen, records, "parse-only pass saw a different count");
    let parse_secs = t.elapsed().as_secs_f64();
    Limit {
        sha_secs,
        parse_secs,
        sqlite_secs: sqlite_inserts(path, keys),
    }
}

/// Seconds to insert `keys` with a record hash each into a fresh SQLite
/// table keyed on (dataset, key), 1,000 rows per transaction, as fepd's
/// chunks commit: one B-tree insert per record, nothing else.
fn sqlite_inserts(beside: &Path, keys: &[String]) -> f64 {
    use sha2::{Digest, Sha256};
    let db = beside.with_extension("limit.db");
    let _ = std::fs::remove_file(&db);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE r(dataset TEXT NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL,
                        PRIMARY KEY (dataset, key)) WITHOUT ROWID;",
    )
    .unwrap();
    let hashes: Vec<String> = keys
        .iter()
        .map(|k| hex::encode(Sha256::digest(k.as_bytes())))
        .collect();
    let t = Instant::now();
    for (ks, hs) in keys.chunks(1000).zip(hashes.chunks(1000)) {
        let tx = c.unchecked_transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO r(dataset, key, hash) VALUES ('case_accept', ?1, ?2)",
                )
                .unwrap();
            for (k, h) in ks.iter().zip(hs) {
                st.execute((k, h)).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    drop(c);
    for ext in ["limit.db", "limit.db-wal", "limit.db-shm"] {
        let _ = std::fs::remove_file(beside.with_extension(ext));
    }
    secs
}
