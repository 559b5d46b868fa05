//! The PostgreSQL source case (docs/sql-sources.md, "Benchmark"): a real
//! PostgreSQL server started into a temp dir as the SQL source tests start
//! theirs (`tests/it/pg.rs`, used as is), `n` case_accept rows loaded into
//! a 前置库 table with `COPY` — random row ids and keys, cd_times spread
//! over the last day in random order (ties included), values varying per
//! row — then `fepd run` polls them into the outbox. Beside fepd's rate,
//! the same rows read by PostgreSQL alone: the ordered `SELECT` through
//! `COPY … TO STDOUT` by `psql` into /dev/null, and fepd's own page queries
//! (`source::postgres`, keyset pages, rows made records) with nothing
//! checked or sealed.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fepd::source::Engine as _;

use super::{Deploy, cpu_secs, data};

#[path = "../../tests/it/pg.rs"]
#[allow(dead_code)]
mod server;

/// The table, its columns those of `data::case_accept` plus the control
/// columns, indexed for the page query as docs/sql-sources.md says.
const TABLE: &str = "up_pro_accept";

/// What the case measured.
pub struct PgTput {
    pub rows: u64,
    /// `COPY … FROM STDIN` of the rows, and the index built after.
    pub load_secs: f64,
    /// Spawn of `fepd run` → every row exported to the outbox.
    pub secs: f64,
    pub fepd_cpu: f64,
    /// `psql` running the ordered `COPY (SELECT …) TO STDOUT` to /dev/null.
    pub copy_secs: f64,
    /// fepd's page queries alone, through `source::postgres`.
    pub pages_secs: f64,
    pub page_rows: u64,
}

/// splitmix64: the bench's random numbers, the same every run.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A value in COPY's text format.
fn copy_text(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn load(pg: &server::Pg, n: u64) -> f64 {
    let cols: Vec<&str> = data::case_accept(0).iter().map(|(k, _)| *k).collect();
    let decl: Vec<String> = cols.iter().map(|c| format!("{c} text")).collect();
    pg.sql(
        "qzk",
        &format!(
            "CREATE TABLE {TABLE} ({}, \"GUID\" varchar(64), cd_operation char(1),
               cd_time timestamp, cd_batch text)",
            decl.join(", ")
        ),
    );
    let mut c = pg.connect("qzk").unwrap();
    let now: String = c
        .query_one(
            "SELECT to_char(LOCALTIMESTAMP(0), 'YYYY-MM-DD HH24:MI:SS')",
            &[],
        )
        .unwrap()
        .get(0);
    let now = chrono::NaiveDateTime::parse_from_str(&now, "%Y-%m-%d %H:%M:%S").unwrap();
    let t = Instant::now();
    let mut w = c
        .copy_in(&format!(
            "COPY {TABLE} ({}, \"GUID\", cd_operation, cd_time, cd_batch) FROM STDIN",
            cols.join(", ")
        ))
        .unwrap();
    let mut seed = 16;
    let mut buf = String::with_capacity(1 << 20);
    // Distinct keys in a random-looking order: i ↦ i·p mod 10⁶ is a
    // permutation of 0..10⁶ (p prime to 10⁶).
    let span = 1_000_000u64.max(n);
    for i in 0..n {
        let k = (i * 999_983) % span;
        let mut rec = data::case_accept(k);
        let r = next(&mut seed);
        for (f, v) in rec.iter_mut() {
            match *f {
                "applyer_name" => {
                    *v = format!(
                        "{}{}",
                        ["张", "李", "王", "赵", "陈"][(r % 5) as usize],
                        r % 9973
                    )
                }
                "apply_date" => *v = format!("2026-11-{:02} 08:{:02}:00", 1 + r % 20, r % 60),
                "accept_date" => *v = format!("2026-11-{:02} 10:{:02}:30", 1 + r % 20, r % 60),
                "promise_date" => *v = format!("2026-11-{:02} 17:00:00", 8 + r % 20),
                _ => {}
            }
        }
        for (_, v) in &rec {
            buf.push_str(&copy_text(v));
            buf.push('\t');
        }
        let guid = format!("{:016x}{:016x}", next(&mut seed), next(&mut seed));
        let at = now - chrono::Duration::seconds((next(&mut seed) % 86_400) as i64 + 60);
        buf.push_str(&format!(
            "{guid}\ti\t{}\tB{}\n",
            at.format("%Y-%m-%d %H:%M:%S"),
            i / 5000
        ));
        if buf.len() > 1 << 20 {
            w.write_all(buf.as_bytes()).unwrap();
            buf.clear();
        }
    }
    w.write_all(buf.as_bytes()).unwrap();
    w.finish().unwrap();
    c.batch_execute(&format!(
        "CREATE INDEX ON {TABLE} (cd_time, \"GUID\" COLLATE \"C\"); ANALYZE {TABLE};"
    ))
    .unwrap();
    t.elapsed().as_secs_f64()
}

/// The ordered read by PostgreSQL alone: `psql` copying the rows out in
/// page order to /dev/null.
fn copy_out(pg: &server::Pg) -> f64 {
    let t = Instant::now();
    let st = Command::new("psql")
        .args(["-X", "-q", "-h", "127.0.0.1", "-p", &pg.port.to_string()])
        .args(["-U", server::USER, "-d", "qzk", "-c"])
        .arg(format!(
            "COPY (SELECT * FROM {TABLE} ORDER BY cd_time, \"GUID\" COLLATE \"C\") TO STDOUT"
        ))
        .env("PGPASSWORD", server::PASSWORD)
        .stdout(Stdio::null())
        .status()
        .expect("psql (Debian's postgresql-client, installed with postgresql)");
    assert!(st.success(), "psql failed");
    t.elapsed().as_secs_f64()
}

/// fepd's page queries alone: every page through `source::postgres`, each
/// row made a record; nothing checked, sealed or stored.
fn pages(src: &fepd::config::SqlSource, n: u64) -> f64 {
    let t = Instant::now();
    let mut e = fepd::source::postgres::Postgres::open(src, Some(server::PASSWORD)).unwrap();
    let (_, until) = e.clock(0).unwrap();
    let mut after = None;
    let mut seen = 0;
    loop {
        let rows = e.page(after.as_ref(), &until, src.page_rows).unwrap();
        let Some(last) = rows.last().map(|r| r.mark.clone()) else {
            break;
        };
        seen += rows.len() as u64;
        for (i, r) in rows.into_iter().enumerate() {
            std::hint::black_box(r.record(i as u64 + 1));
        }
        after = Some(last);
    }
    assert_eq!(seen, n, "the page queries saw a different count");
    t.elapsed().as_secs_f64()
}

/// The case: `n` rows from PostgreSQL into the outbox, under `tmp`.
pub fn pg_outbox(tmp: &Path, n: u64) -> PgTput {
    let root = tmp.join("tput-pg-outbox");
    let pg = server::Pg::start();
    let load_secs = load(&pg, n);
    let dep = Deploy::new(root.clone(), None);
    let pw = root.join("qzk_password");
    std::fs::write(&pw, server::PASSWORD).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sql = format!(
        "engine = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\ntable = \"{TABLE}\"\nlag_secs = 0\n[columns]\n\"GUID\" = \"row_guid\"\n",
        pg.url("qzk"),
        pw.display()
    );
    let src: fepd::config::SqlSource = toml::from_str(&sql).unwrap();
    // The case_accept dataset polls the table (its spool stays as it is).
    let cfg = std::fs::read_to_string(&dep.config).unwrap();
    let at = "resource = \"case_accept\"\n";
    let sql_table = sql.replace("[columns]", "[dataset.sql.columns]");
    let cfg = cfg.replacen(
        at,
        &format!("{at}poll_secs = 1\n[dataset.sql]\n{sql_table}"),
        1,
    );
    std::fs::write(&dep.config, cfg).unwrap();
    let copy_secs = copy_out(&pg);
    let pages_secs = pages(&src, n);
    let t = Instant::now();
    let daemon = dep.start();
    let limit = Duration::from_secs(1800);
    while dep.exported() < n {
        if dep.rejected() > 0 {
            panic!("rows were rejected\n{}", dep.log_tail());
        }
        if t.elapsed() > limit {
            panic!(
                "timed out: {} of {n} rows exported\n{}",
                dep.exported(),
                dep.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t.elapsed().as_secs_f64();
    let fepd_cpu = cpu_secs(daemon.pid);
    daemon.stop();
    super::cleanup(&root);
    PgTput {
        rows: n,
        load_secs,
        secs,
        fepd_cpu,
        copy_secs,
        pages_secs,
        page_rows: src.page_rows,
    }
}
