//! Issue 11, attacked from the inbox and from the library: swapped links
//! and FIFOs, acknowledgements that are FIFOs or `/dev/zero`, names fepd
//! cannot take, oversized files, appending writers, files that grow after
//! the claim, absurd `Retry-After` values and newlines in file names. Each
//! test is one finding, through the real binary.

use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::data::{self, Enc};
use crate::harness::*;

const DS: &str = "case_accept";

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn status_json(env: &Env) -> serde_json::Value {
    let out = env.fepd(&["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `(code, name)` pairs `fepd status --json` lists as not taken.
fn not_taken(env: &Env) -> Vec<(String, String)> {
    let st = status_json(env);
    let ds = st["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dataset"] == DS)
        .unwrap()
        .clone();
    ds["not_taken"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn csv_of(range: std::ops::Range<u64>) -> Vec<u8> {
    let recs: Vec<_> = range.map(data::case_accept).collect();
    data::csv(&recs, false, Enc::Utf8)
}

fn project_no(i: u64) -> String {
    data::case_accept(i)[0].1.clone()
}

/// A writer swapping the file it drops for a symlink to data outside the
/// spool, or for a FIFO, as fast as it can: nothing from outside is ever
/// sealed, intake never freezes, and the swapped-in things are reported.
#[test]
fn swapped_links_and_fifos_are_refused_not_followed() {
    let env = Env::new("");
    let _d = env.start_ready();
    let inbox = env.spool(DS, "inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let secret = env.root.join("outside.csv");
    std::fs::write(&secret, csv_of(900_000..900_001)).unwrap();
    let legit = csv_of(0..1);
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (stop, inbox, secret) = (stop.clone(), inbox.clone(), secret.clone());
        std::thread::spawn(move || {
            let mut rounds = 0u64;
            let deadline = Instant::now() + Duration::from_secs(4);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let target = inbox.join("race.csv");
                std::fs::write(inbox.join(".race.part"), &legit).unwrap();
                std::fs::rename(inbox.join(".race.part"), &target).unwrap();
                // Swap the name for a link or a FIFO at once.
                let swap = inbox.join(".swap.tmp");
                let _ = std::fs::remove_file(&swap);
                if rounds.is_multiple_of(2) {
                    std::os::unix::fs::symlink(&secret, &swap).unwrap();
                } else {
                    mkfifo(&swap);
                }
                let _ = std::fs::rename(&swap, &target);
                rounds += 1;
            }
            rounds
        })
    };
    let rounds = racer.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    assert!(rounds > 50, "the racer ran only {rounds} rounds");
    // Intake is not frozen: a file dropped now is taken and processed.
    env.drop_file(DS, "after.csv", &csv_of(10..12));
    let rec = env.receipt(DS, "after.csv");
    assert_eq!(rec["counts"]["sealed"], 2, "{rec:#}");
    let secret_key = project_no(900_000);
    let leaked: Vec<_> = env
        .outbox_records(DS)
        .into_iter()
        .filter(|r| r.to_string().contains(&secret_key))
        .collect();
    assert!(leaked.is_empty(), "data from outside the spool was sealed");
    for d in [env.spool(DS, "done"), env.spool(DS, "rejected")] {
        for f in files_in(&d) {
            let p = d.join(&f);
            let meta = std::fs::symlink_metadata(&p).unwrap();
            assert!(meta.is_file(), "{} is not a regular file", p.display());
        }
    }
    let codes: Vec<String> = not_taken(&env).into_iter().map(|(c, _)| c).collect();
    assert!(
        codes.iter().all(|c| c == "symlink" || c == "special_file"),
        "{codes:?}"
    );
    assert!(!env.log_has("panicked"));
}

/// A FIFO sitting in an inbox (one swapped in after the scan looked is
/// covered above) is reported and listed; every other file goes on.
#[test]
fn a_fifo_in_the_inbox_is_listed_and_other_files_go_on() {
    let env = Env::new("");
    let inbox = env.spool(DS, "inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    mkfifo(&inbox.join("pipe.csv"));
    let _d = env.start_ready();
    env.drop_file(DS, "a.csv", &csv_of(0..3));
    assert_eq!(env.receipt(DS, "a.csv")["counts"]["sealed"], 3);
    assert_eq!(
        not_taken(&env),
        vec![("special_file".to_string(), "pipe.csv".to_string())]
    );
    env.wait(
        "the FIFO reported in the log",
        Duration::from_secs(10),
        || env.log_has("file not taken"),
    );
    let text = env.fepd(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("未接收的文件") && text.contains("pipe.csv"),
        "{text}"
    );
}

/// In pull mode, an `.ack` that is a FIFO or a link to `/dev/zero` is
/// refused with a warning and left in place; later acknowledgements are
/// still recorded.
#[test]
fn fifo_and_dev_zero_acks_are_refused_and_delivery_goes_on() {
    let env = Env::new("");
    let _d = env.start_ready();
    for (i, name) in ["a.csv", "b.csv", "c.csv"].iter().enumerate() {
        let i = i as u64 * 10;
        env.drop_file(DS, name, &csv_of(i..i + 2));
        env.receipt(DS, name);
        env.wait_outbox_records(DS, (i as usize / 10 + 1) * 2);
    }
    let mut ids: Vec<String> = files_in(&env.outbox(DS))
        .into_iter()
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let out = env.outbox(DS);
    mkfifo(&out.join(format!("{}.ack", ids[0])));
    std::os::unix::fs::symlink("/dev/zero", out.join(format!("{}.ack", ids[1]))).unwrap();
    std::fs::write(
        out.join(format!("{}.ack", ids[2])),
        r#"{"receiptId":"R-3","accepted":2,"rejected":[]}"#,
    )
    .unwrap();
    let t0 = Instant::now();
    env.wait("the good ack delivered", Duration::from_secs(15), || {
        out.join("delivered")
            .join(format!("{}.ack", ids[2]))
            .exists()
    });
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(env.batches_in("delivered"), 1);
    assert_eq!(env.batches_in("exported"), 2);
    env.wait(
        "both bad acks warned about",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(env.log_path())
                .unwrap_or_default()
                .matches("acknowledgement refused")
                .count()
                == 2
        },
    );
    // Left in place, not consumed, and the daemon still answers.
    assert!(std::fs::symlink_metadata(out.join(format!("{}.ack", ids[1]))).is_ok());
    assert!(env.fepd(&["status"]).status.success());
}

/// A GBK-encoded name, a 244-byte Chinese name and `x.ok` in settle mode:
/// each reported once in the log and listed by `fepd status`, in Chinese.
#[test]
fn names_fepd_cannot_take_are_reported_once_and_listed() {
    let env = Env::new("");
    let inbox = env.spool(DS, "inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let csv = csv_of(0..1);
    // 申请表.csv in GBK.
    let gbk = OsStr::from_bytes(b"\xc9\xea\xc7\xeb\xb1\xed.csv");
    std::fs::write(inbox.join(gbk), &csv).unwrap();
    let long = format!("{}.csv", "办".repeat(80));
    assert_eq!(long.len(), 244);
    std::fs::write(inbox.join(&long), &csv).unwrap();
    std::fs::write(inbox.join("data.ok"), &csv).unwrap();
    let _d = env.start_ready();
    env.drop_file(DS, "fine.csv", &csv_of(5..6));
    env.receipt(DS, "fine.csv");
    // Several rescans (every second) later, still one line each.
    std::thread::sleep(Duration::from_millis(2500));
    let log = std::fs::read_to_string(env.log_path()).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("file not taken"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let mut got = not_taken(&env);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("name_not_utf8".to_string(), "申请表.csv".to_string()),
            ("name_reserved".to_string(), "data.ok".to_string()),
            ("name_too_long".to_string(), long.clone()),
        ]
    );
    let st = status_json(&env);
    let reasons = st.to_string();
    assert!(
        reasons.contains("GBK") && reasons.contains("244 字节"),
        "{reasons}"
    );
    for n in [inbox.join(gbk), inbox.join(&long), inbox.join("data.ok")] {
        assert!(n.exists(), "{} left in place", n.display());
    }
}

/// A file over `max_file_bytes` is refused by its size: listed at once,
/// never read (a sparse 64 GiB file would take minutes to read).
#[test]
fn an_oversized_file_is_refused_by_size_before_reading() {
    let env = Env::new("");
    env.set_intake("max_file_bytes", 1000000);
    let inbox = env.spool(DS, "inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let _d = env.start_ready();
    let t0 = Instant::now();
    let f = std::fs::File::create(inbox.join(".big.csv.part")).unwrap();
    f.set_len(64 << 30).unwrap();
    drop(f);
    std::fs::rename(inbox.join(".big.csv.part"), inbox.join("big.csv")).unwrap();
    env.wait("the big file refused", Duration::from_secs(10), || {
        env.log_has("too_large")
    });
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(
        not_taken(&env),
        vec![("too_large".to_string(), "big.csv".to_string())]
    );
    assert!(
        status_json(&env)
            .to_string()
            .contains("max_file_bytes = 1000000")
    );
    env.drop_file(DS, "small.csv", &csv_of(0..2));
    assert_eq!(env.receipt(DS, "small.csv")["counts"]["sealed"], 2);
    assert!(inbox.join("big.csv").exists());
}

/// `cat header > f.csv; cat rows >> f.csv` (closed and reopened), the same
/// with a pause, and a writer that holds the file open through a pause
/// longer than `settle_secs`: every record arrives, in one file each.
#[test]
fn appending_writers_lose_nothing() {
    let env = Env::new("");
    let inbox = env.spool(DS, "inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let _d = env.start_ready();
    // Three files of distinct records (the same content twice would be
    // a duplicate file).
    let parts = |from: u64| {
        let text = String::from_utf8(csv_of(from..from + 3)).unwrap();
        let (h, r) = text.split_once('\n').unwrap();
        (format!("{h}\n"), r.to_string())
    };
    // 1. The shell, literally.
    let (header, rows) = parts(0);
    std::fs::write(env.root.join("h"), &header).unwrap();
    std::fs::write(env.root.join("r"), &rows).unwrap();
    let sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"cat "$H" > shell.csv; cat "$R" >> shell.csv"#)
        .env("H", env.root.join("h"))
        .env("R", env.root.join("r"))
        .current_dir(&inbox)
        .status()
        .unwrap();
    assert!(sh.success());
    // 2. Two writes with a pause between the close and the append.
    let (header, rows) = parts(10);
    let paused = inbox.join("paused.csv");
    std::fs::write(&paused, &header).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // Like the shell's `>>`: creates the file if it was taken meanwhile.
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&paused)
        .unwrap()
        .write_all(rows.as_bytes())
        .unwrap();
    // 3. A writer that keeps the file open through a pause of 1.5 s, past
    // settle_secs = 1: the read lease keeps it in the inbox.
    let (header, rows) = parts(20);
    let mut open = std::fs::File::create(inbox.join("open.csv")).unwrap();
    let (first, rest) = rows.split_once('\n').unwrap();
    writeln!(open, "{header}{first}").unwrap();
    open.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    open.write_all(rest.as_bytes()).unwrap();
    drop(open);
    for name in ["shell.csv", "paused.csv", "open.csv"] {
        let rec = env.receipt(DS, name);
        assert_eq!(rec["counts"]["received"], 3, "{name}: {rec:#}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let done = files_in(&env.spool(DS, "done"));
    assert_eq!(
        done.len(),
        9,
        "one file, one receipt and one 回执 each: {done:?}"
    );
    assert!(files_in(&env.spool(DS, "rejected")).is_empty());
    assert!(files_in(&inbox).is_empty());
}

/// A file that grows after it was claimed (here: while its processing is
/// held back by the outbox's high-water mark) is not cut: the receipt
/// covers what was claimed and says so, the grown file comes back as a new
/// file, and every record is sealed exactly once.
#[test]
fn growth_after_claim_is_taken_as_a_new_file() {
    let env = Env::new("[backpressure]\nhigh_water_records = 5\n");
    env.set("batch.max_records", 5);
    let _d = env.start_ready();
    env.drop_file(DS, "g.csv", &csv_of(0..12));
    // The first batch of 5 puts the outbox at its mark: the file waits
    // between chunks, in work/.
    env.wait_outbox_records(DS, 5);
    let work = env.spool(DS, "work");
    let in_work = files_in(&work);
    assert_eq!(in_work.len(), 1, "{in_work:?}");
    let appended = String::from_utf8(csv_of(12..15)).unwrap();
    let appended = appended.split_once('\n').unwrap().1;
    std::fs::OpenOptions::new()
        .append(true)
        .open(work.join(&in_work[0]))
        .unwrap()
        .write_all(appended.as_bytes())
        .unwrap();
    // The library's collector acknowledges whatever is exported.
    let stop = Arc::new(AtomicBool::new(false));
    let acker = {
        let (stop, out) = (stop.clone(), env.outbox(DS));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for n in files_in(&out) {
                    if let Some(id) = n.strip_suffix(".json") {
                        let ack = out.join(format!("{id}.ack"));
                        if !ack.exists() {
                            std::fs::write(&ack, r#"{"receiptId":"R","rejected":[]}"#).unwrap();
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let first = env.receipt(DS, "g.csv");
    let second = env.receipt(DS, "g.2.csv");
    stop.store(true, Ordering::SeqCst);
    acker.join().unwrap();
    let warn = first["warnings"].to_string();
    assert!(
        warn.contains("增长") && warn.contains("g.csv"),
        "the first receipt says what happened: {first:#}"
    );
    let sealed =
        first["counts"]["sealed"].as_i64().unwrap() + second["counts"]["sealed"].as_i64().unwrap();
    assert_eq!(sealed, 15, "{first:#}\n{second:#}");
    assert_eq!(second["counts"]["received"], 15, "{second:#}");
    let mut keys: Vec<String> = env
        .outbox_records(DS)
        .iter()
        .map(|r| r["key"].as_str().unwrap_or_default().to_string())
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!((n, keys.len()), (15, 15), "each record sealed exactly once");
    // done/ holds the content claimed (12 records, with the receipt's
    // hash) and the grown file, as processed the second time.
    let done = env.spool(DS, "done");
    let claimed = std::fs::read_to_string(done.join("g.csv")).unwrap();
    assert_eq!(claimed.lines().count(), 13);
    assert_eq!(first["counts"]["received"], 12, "{first:#}");
    let grown = std::fs::read_to_string(done.join("g.2.csv")).unwrap();
    assert_eq!(grown.lines().count(), 16);
}

/// `Retry-After: 18446744073709551615` (u64::MAX) is clamped to an hour:
/// no wrap to a negative wait, no burst of retries.
#[test]
fn a_huge_retry_after_is_clamped_to_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(
        &dir.path().join("lib.db"),
        &["--fail-rate", "1", "--retry-after", "18446744073709551615"],
    );
    let env = Env::http(&lib.base_url, "");
    let _d = env.start_ready();
    env.drop_file(DS, "a.csv", &csv_of(0..2));
    env.receipt(DS, "a.csv");
    let failed = || {
        env.log_entries(&["--event", "batch_sent"])
            .iter()
            .filter(|e| e["details"].to_string().contains("\"failed\""))
            .count()
    };
    env.wait("a failed send", Duration::from_secs(15), || failed() >= 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(failed(), 1, "retried despite Retry-After");
    let out = env.fepd(&["audit", "show", "--event", "batch_sent", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"retryInMs\":3600000"), "{text}");
    let next = env.batches(None)[0]["next_attempt_ms"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        next > now + 3_500_000 && next <= now + 3_600_000,
        "next attempt in {} ms",
        next - now
    );
}

/// A newline in a file name does not forge a line in the text log nor a
/// row in `fepd audit show`.
#[test]
fn a_newline_in_a_file_name_forges_no_line() {
    let env = Env::new("");
    let _d = env.start_ready();
    let name = "x\nFORGED file_done 0 records.csv";
    env.drop_file(DS, name, &csv_of(0..1));
    env.receipt(DS, name);
    let forged = |text: &str| text.lines().any(|l| l.starts_with("FORGED"));
    let log = std::fs::read_to_string(env.log_path()).unwrap();
    assert!(log.contains("x\\nFORGED"), "the name is shown, escaped");
    assert!(!forged(&log), "{log}");
    let out = env.fepd(&["audit", "show"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("x\\nFORGED"), "{table}");
    assert!(!forged(&table), "{table}");
    let out = env.fepd(&["audit", "show", "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("x\\nFORGED"));
}
