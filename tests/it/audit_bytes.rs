//! `fepd audit verify` checks the exchange log as stored, byte for byte:
//! a row edited so that it still parses to the hashed entry (a duplicate
//! JSON member placed first, re-spacing, a column that is not JSON) is
//! caught; and a log written by the previous release still verifies.
//!
//! The fixture `tests/fixtures/exchange-log-v0.1.0/` was written by fepd
//! 0.1.0 (main at c46383b): a run in outbox mode with delivered, parked,
//! retried, rejected and duplicate files, then `audit export --until …
//! --prune` (entries 1–24 into `archive-1.jsonl`) and a second run.

use std::path::PathBuf;

use crate::harness::*;

/// A deployment whose state folder holds a copy of the fixture, and the
/// path of the copied archive.
fn fixture() -> (Env, PathBuf) {
    let env = Env::new("");
    let src = repo().join("tests/fixtures/exchange-log-v0.1.0");
    std::fs::create_dir_all(env.db().parent().unwrap()).unwrap();
    std::fs::copy(src.join("fepd.db"), env.db()).unwrap();
    let archive = env.root.join("archive-1.jsonl");
    std::fs::copy(src.join("archive-1.jsonl"), &archive).unwrap();
    (env, archive)
}

fn verify(env: &Env, args: &[&str]) -> (i32, String) {
    let mut all = vec!["audit", "verify"];
    all.extend_from_slice(args);
    let out = env.fepd(&all);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The fixture's state database, to forge rows in: these tests are about
/// rows edited behind fepd's back, which only SQL can do.
fn sql(env: &Env) -> rusqlite::Connection {
    rusqlite::Connection::open(env.db()).unwrap()
}

#[test]
fn a_log_written_by_the_previous_release_still_verifies() {
    let (env, archive) = fixture();
    let (code, out) = verify(&env, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("16 entries (seq 25–40), chain intact"),
        "{out}"
    );
    let (code, out) = verify(&env, &["--archive", archive.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("40 entries (seq 1–40), chain intact"), "{out}");
}

#[test]
fn a_forged_duplicate_member_placed_first_is_caught() {
    let (env, _) = fixture();
    let c = sql(&env);
    // Entry 34 records an operator's retry. SQLite's JSON functions read the
    // first of two equal members, serde_json the last: before this check,
    // SQL showed the forged value while verify said intact.
    c.execute(
        "UPDATE exchange_log SET details = replace(details, '{\"by\":', '{\"by\":\"intruder\",\"by\":') WHERE seq = 34",
        [],
    )
    .unwrap();
    let by: String = c
        .query_row(
            "SELECT json_extract(details, '$.by') FROM exchange_log WHERE seq = 34",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(by, "intruder", "the forgery is what SQL reads");
    let (code, out) = verify(&env, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("entry 34"), "{out}");
    assert!(out.contains("not the text fepd wrote"), "{out}");
}

#[test]
fn re_spacing_or_text_that_is_not_json_in_a_stored_row_is_caught() {
    for (seq, update) in [
        // Same members, other spacing: parses to the hashed entry.
        (
            "29",
            "UPDATE exchange_log SET counts = replace(counts, ',', ', ') WHERE seq = 29",
        ),
        // An entry without counts given text that is not JSON: it used to
        // read as absent, which is what the hash covers.
        (
            "38",
            "UPDATE exchange_log SET counts = 'forged' WHERE seq = 38",
        ),
        // Another SQL type for the same text.
        (
            "39",
            "UPDATE exchange_log SET event = CAST(event AS BLOB) WHERE seq = 39",
        ),
    ] {
        let (env, _) = fixture();
        sql(&env).execute(update, []).unwrap();
        let (code, out) = verify(&env, &[]);
        assert_eq!(code, 1, "{update}: {out}");
        assert!(out.contains(&format!("entry {seq}")), "{update}: {out}");
    }
}

#[test]
fn a_forged_member_in_an_archive_line_is_caught() {
    let (env, archive) = fixture();
    let text = std::fs::read_to_string(&archive).unwrap();
    // Entry 21 is the delivery of a batch with its receipt id R-1.
    let forged: String = text
        .lines()
        .map(|l| {
            if l.starts_with("{\"seq\":21,") {
                l.replacen(
                    "\"receiptId\":",
                    "\"receiptId\":\"R-FORGED\",\"receiptId\":",
                    1,
                )
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    assert_ne!(forged, text, "the archive has entry 21 with a receipt id");
    std::fs::write(&archive, forged).unwrap();
    let (code, out) = verify(&env, &["--archive", archive.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 21"), "{out}");
    assert!(out.contains("not the text the export wrote"), "{out}");
}
