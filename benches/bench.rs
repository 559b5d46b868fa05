//! End-to-end benchmark of the real `fepd` binary (issue 6; targets in
//! README.md, "Benchmarks"): throughput per format and sink, drop-to-delivered
//! latency, peak RSS on a big file, restart-to-ready time with history,
//! and the raw limits (read + SHA-256, parse only) on the same files; and
//! rows/s from a PostgreSQL source into the outbox beside PostgreSQL's own
//! read of the same rows (`pg`).
//!
//! `scripts/bench.sh [--quick]` runs it (`cargo bench` too). Under
//! `cargo test --bench bench` (no `--bench` argument) or with `--smoke` it
//! runs a tiny form that only proves the command works.

#[path = "../tests/it/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "bench/input.rs"]
mod input;
#[path = "bench/limits.rs"]
mod limits;
#[path = "bench/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use input::{Fmt, Input, generate};
use limits::{Limit, limits};

const FEPD: &str = env!("CARGO_BIN_EXE_fepd");
const DATASET: &str = "case_accept";
const MIB: f64 = 1024.0 * 1024.0;
/// Rows of an XLSX case at most (see `main`).
const XLSX_ROWS: u64 = 75_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Smoke,
    Quick,
    Full,
}

struct Sizes {
    throughput: u64,
    drops: usize,
    per_drop: u64,
    big_bytes: u64,
    restarts: usize,
}

impl Mode {
    fn sizes(self) -> Sizes {
        match self {
            Mode::Smoke => Sizes {
                throughput: 2_000,
                drops: 5,
                per_drop: 5,
                big_bytes: 3 << 20,
                restarts: 1,
            },
            Mode::Quick => Sizes {
                throughput: 20_000,
                drops: 100,
                per_drop: 5,
                big_bytes: 50 << 20,
                restarts: 3,
            },
            Mode::Full => Sizes {
                throughput: 200_000,
                drops: 100,
                per_drop: 5,
                big_bytes: 2 << 30,
                restarts: 3,
            },
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    Outbox,
    Http,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Sink::Outbox => "outbox",
            Sink::Http => "http",
        }
    }
}

// ---------------------------------------------------------------- processes

fn clk_tck() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of `pid`, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(i) = s.rfind(')') else { return 0.0 };
    let f: Vec<&str> = s[i + 2..].split_whitespace().collect();
    // Fields after the command: state is [0]; utime [11], stime [12].
    let t = |k: usize| f.get(k).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / clk_tck()
}

/// A `VmXXX:` line of /proc/<pid>/status, in KiB.
fn vm_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

/// Busy and total jiffies of the whole machine (/proc/stat `cpu` line).
fn machine_jiffies() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// Cores kept busy by the whole machine between two snapshots.
fn busy_cores(a: (f64, f64), b: (f64, f64), secs: f64) -> f64 {
    (b.0 - a.0) / clk_tck() / secs.max(1e-9)
}

struct Deploy {
    root: PathBuf,
    config: PathBuf,
}

impl Deploy {
    fn new(root: PathBuf, http: Option<&str>) -> Deploy {
        std::fs::create_dir_all(&root).unwrap();
        let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mode = if http.is_some() { "http" } else { "outbox" };
        // The embedded default's intake and batch settings: watch mode.
        let mut cfg = format!(
            r#"spool_dir = "spool"
state_dir = "state"
schemas_dir = "{}"
sender = "230000-zwfw"
timezone = "+08:00"

[intake]
rescan_secs = 30
settle_secs = 5

[sink]
mode = "{mode}"
outbox_dir = "spool/outbox"

[batch]
max_records = 1000
max_bytes = 4000000
max_age_ms = 1000

# Nothing acknowledges the outbox here; with the default high-water mark
# (1,000,000 records) intake would rightly pause partway through the 2 GiB
# file, and the big-file case would wait forever.
[backpressure]
high_water_records = 0
high_water_bytes = 0
"#,
            schemas.display()
        );
        // `FEPD_BENCH_CHUNK_RECORDS=N` and `FEPD_BENCH_CACHE_MIB=N`:
        // `[intake] chunk_records` and `[state] cache_mib` (default fepd's),
        // to compare them on one binary.
        let knob = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = knob("FEPD_BENCH_CHUNK_RECORDS") {
            cfg = cfg.replace("[intake]\n", &format!("[intake]\nchunk_records = {n}\n"));
        }
        if let Some(n) = knob("FEPD_BENCH_CACHE_MIB") {
            cfg.push_str(&format!("\n[state]\ncache_mib = {n}\n"));
        }
        if let Some(url) = http {
            cfg.push_str(&format!(
                "\n[sink.http]\nbase_url = \"{url}\"\nclient_id = \"fep-001\"\nclient_secret_env = \"FEPD_BENCH_SECRET\"\n"
            ));
            if let Some(n) = push_knobs().inflight {
                cfg.push_str(&format!("inflight = {n}\n"));
            }
        }
        for name in [
            "item_catalog",
            "item_task",
            "case_accept",
            "case_process",
            "case_result",
            "evaluation",
        ] {
            cfg.push_str(&format!(
                "\n[[dataset]]\nname = \"{name}\"\ncategory = \"zwfw\"\nresource = \"{name}\"\n"
            ));
        }
        let config = root.join("fepd.toml");
        std::fs::write(&config, cfg).unwrap();
        Deploy { root, config }
    }

    fn inbox(&self) -> PathBuf {
        let p = self.root.join("spool").join(DATASET).join("inbox");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn rejected(&self) -> usize {
        std::fs::read_dir(self.root.join("spool").join(DATASET).join("rejected"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Starts `fepd run`; returns once it logged "fepd ready".
    fn start(&self) -> Daemon {
        let spawned = Instant::now();
        let mut child = Command::new(FEPD)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("FEPD_LOG", "info")
            .env("NO_COLOR", "1")
            .env("FEPD_BENCH_SECRET", "secret")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if line.contains("fepd ready") {
                    let _ = tx.send(Instant::now());
                }
                let _ = writeln!(log, "{line}");
            }
        });
        let ready = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(t) => t,
            Err(_) => panic!(
                "fepd did not log \"fepd ready\" within 120 s\n{}",
                self.log_tail()
            ),
        };
        let pid = child.id();
        Daemon {
            child,
            pid,
            ready_secs: ready.duration_since(spawned).as_secs_f64(),
        }
    }

    /// Records sealed and written to the outbox (or delivered).
    fn exported(&self) -> u64 {
        self.batch_records("'exported','delivered'")
    }

    /// Records in batches whose state is in `states` (an SQL list).
    fn batch_records(&self, states: &str) -> u64 {
        let db = self.root.join("state/fepd.db");
        let Ok(c) =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        else {
            return 0;
        };
        let _ = c.busy_timeout(Duration::from_secs(5));
        c.query_row(
            &format!("SELECT COALESCE(SUM(count),0) FROM batch WHERE state IN ({states})"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0) as u64
    }
}

struct Daemon {
    child: Child,
    pid: u32,
    ready_secs: f64,
}

impl Daemon {
    fn stop(mut self) {
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Push-case settings from the command line: `--latency-ms N` (the round
/// trip of the distant-library cases: the simulator delays each push
/// answer by N ms; default 20) and `--inflight N` (`[sink.http] inflight`;
/// unset: fepd's default).
struct PushKnobs {
    latency_ms: u64,
    inflight: Option<usize>,
}

static PUSH: std::sync::OnceLock<PushKnobs> = std::sync::OnceLock::new();

fn push_knobs() -> &'static PushKnobs {
    PUSH.get_or_init(|| PushKnobs {
        latency_ms: 20,
        inflight: None,
    })
}

/// `fepd simulate-library` on a loopback port.
struct Library {
    child: Child,
    addr: String,
}

impl Library {
    fn start(db: &Path, latency_ms: u64) -> Library {
        let mut child = Command::new(FEPD)
            .args(["simulate-library", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(["--inspect-token", "bench"])
            .args(["--latency-ms", &latency_ms.to_string()])
            .env("FEPD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().rsplit(' ').next().unwrap_or("").to_string();
        assert!(addr.contains(':'), "simulator said {line:?}");
        Library { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `records` of `GET /sim/stats`.
    fn records(&self) -> u64 {
        let Ok(mut s) = std::net::TcpStream::connect(&self.addr) else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = write!(
            s,
            "GET /sim/stats HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer bench\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        let Some((_, body)) = text.split_once("\r\n\r\n") else {
            return 0;
        };
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["records"].as_u64())
            .unwrap_or(0)
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One deployment with its sink, daemon running.
struct Rig {
    dep: Deploy,
    lib: Option<Library>,
    daemon: Option<Daemon>,
}

impl Rig {
    /// `latency_ms`: the simulated round trip to the library (push only).
    fn new(root: PathBuf, sink: Sink, latency_ms: u64) -> Rig {
        std::fs::create_dir_all(&root).unwrap();
        let lib =
            (sink == Sink::Http).then(|| Library::start(&root.join("library.db"), latency_ms));
        let dep = Deploy::new(root, lib.as_ref().map(|l| l.url()).as_deref());
        let daemon = Some(dep.start());
        Rig { dep, lib, daemon }
    }

    /// Records delivered: exported to the outbox, or (HTTP) acknowledged
    /// by the library in fepd's state DB. `/sim/stats` is O(records) per
    /// call (COUNT DISTINCT over the simulator's table), so it is asked
    /// only to confirm once the state DB says all is there: polling it
    /// would load the simulator and slow the very run being measured.
    fn delivered(&self) -> u64 {
        match &self.lib {
            Some(_) => self.dep.batch_records("'delivered'"),
            None => self.dep.batch_records("'exported','delivered'"),
        }
    }

    fn pid(&self) -> u32 {
        self.daemon.as_ref().unwrap().pid
    }

    fn lib_cpu(&self) -> f64 {
        self.lib
            .as_ref()
            .map(|l| cpu_secs(l.child.id()))
            .unwrap_or(0.0)
    }

    /// Moves a prepared file into the inbox (one rename) and waits until
    /// `want` records are delivered; returns the seconds taken.
    fn drop_and_wait(&self, staged: &Path, name: &str, want: u64, poll: Duration) -> f64 {
        let inbox = self.dep.inbox();
        let t = Instant::now();
        std::fs::rename(staged, inbox.join(name)).unwrap();
        self.wait_delivered(want, t, poll);
        t.elapsed().as_secs_f64()
    }

    fn wait_delivered(&self, want: u64, since: Instant, poll: Duration) {
        let limit = Duration::from_secs(1800);
        loop {
            if self.delivered() >= want && self.lib.as_ref().is_none_or(|l| l.records() >= want) {
                return;
            }
            if self.dep.rejected() > 0 {
                panic!("input was rejected\n{}", self.dep.log_tail());
            }
            if since.elapsed() > limit {
                panic!(
                    "timed out waiting for {want} delivered records (have {})\n{}",
                    self.delivered(),
                    self.dep.log_tail()
                );
            }
            std::thread::sleep(poll);
        }
    }

    fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop();
        }
    }
}

// ---------------------------------------------------------------- measures

struct Tput {
    case: Case,
    records: u64,
    bytes: u64,
    secs: f64,
    fepd_cpu: f64,
    lib_cpu: f64,
    rss_kib: u64,
    machine_cores: f64,
    limit: Limit,
}

/// One throughput case: input, format, sink and the library's round trip.
#[derive(Clone, Copy)]
struct Case {
    input: Input,
    fmt: Fmt,
    sink: Sink,
    latency_ms: u64,
}

impl Case {
    /// The name `--only` takes: `jsonl-outbox`, `xlsx-http`,
    /// `jsonl-http-20ms`, `uniform-csv-outbox`.
    fn name(&self) -> String {
        let mut n = format!("{}-{}", self.fmt.ext(), self.sink.name());
        if self.latency_ms > 0 {
            n.push_str(&format!("-{}ms", self.latency_ms));
        }
        if self.input == Input::Uniform {
            n = format!("uniform-{n}");
        }
        n
    }
}

impl Case {
    /// The records/s the case is judged against (README.md "Benchmarks"):
    /// the format's outbox target; push on loopback ≥ 100,000 for JSON
    /// Lines and CSV, ≥ 80,000 over a round trip. The uniform lines are
    /// not judged.
    fn target(&self) -> Option<f64> {
        let tabular = matches!(self.fmt, Fmt::Jsonl | Fmt::Csv);
        match (self.input, self.sink) {
            (Input::Uniform, _) => None,
            (_, Sink::Outbox) => Some(self.fmt.target()),
            (_, Sink::Http) if !tabular => None,
            (_, Sink::Http) if self.latency_ms > 0 => Some(80_000.0),
            (_, Sink::Http) => Some(100_000.0),
        }
    }
}

/// The throughput cases of a run: every format into both sinks on
/// realistic input, push again over a distant library's round trip, then
/// the uniform template's lines.
fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let c = |input, fmt, sink, latency_ms| Case {
        input,
        fmt,
        sink,
        latency_ms,
    };
    for sink in [Sink::Outbox, Sink::Http] {
        for fmt in [Fmt::Jsonl, Fmt::Csv, Fmt::Xml, Fmt::Xlsx] {
            v.push(c(Input::Realistic, fmt, sink, 0));
        }
    }
    for fmt in [Fmt::Jsonl, Fmt::Csv] {
        v.push(c(
            Input::Realistic,
            fmt,
            Sink::Http,
            push_knobs().latency_ms,
        ));
    }
    for sink in [Sink::Outbox, Sink::Http] {
        for fmt in [Fmt::Jsonl, Fmt::Csv, Fmt::Xml] {
            v.push(c(Input::Uniform, fmt, sink, 0));
        }
    }
    v
}

fn throughput(tmp: &Path, case: Case, n: u64, key0: u64) -> Tput {
    let Case {
        input, fmt, sink, ..
    } = case;
    let root = tmp.join(format!("tput-{}", case.name()));
    let rig = Rig::new(root.clone(), sink, case.latency_ms);
    let staged = root.join(format!("bench.{}", fmt.ext()));
    let (records, bytes) = generate(&staged, fmt, input, key0, n, 0);
    let keys: Vec<String> = (key0..key0 + records)
        .map(|i| input::key(input, i))
        .collect();
    let limit = limits(&staged, fmt, records, &keys);
    let (c0, l0, m0) = (cpu_secs(rig.pid()), rig.lib_cpu(), machine_jiffies());
    let secs = rig.drop_and_wait(
        &staged,
        &format!("bench.{}", fmt.ext()),
        records,
        Duration::from_millis(20),
    );
    let r = Tput {
        case,
        records,
        bytes,
        secs,
        fepd_cpu: cpu_secs(rig.pid()) - c0,
        lib_cpu: rig.lib_cpu() - l0,
        rss_kib: vm_kib(rig.pid(), "VmHWM:"),
        machine_cores: busy_cores(m0, machine_jiffies(), secs),
        limit,
    };
    rig.stop();
    cleanup(&root);
    r
}

struct Latency {
    sink: Sink,
    samples: Vec<f64>,
}

fn latency(tmp: &Path, sink: Sink, drops: usize, per: u64) -> Latency {
    let root = tmp.join(format!("latency-{}", sink.name()));
    let rig = Rig::new(root.clone(), sink, 0);
    let mut samples = Vec::with_capacity(drops);
    let mut delivered = 0u64;
    for i in 0..drops {
        let name = format!("drop-{i:04}.jsonl");
        // Written beside the inbox as .part, then renamed in: the drop contract.
        let part = rig.dep.inbox().join(format!("{name}.part"));
        let (n, _) = generate(
            &part,
            Fmt::Jsonl,
            Input::Realistic,
            5_000_000 + i as u64 * per,
            per,
            0,
        );
        delivered += n;
        samples.push(rig.drop_and_wait(&part, &name, delivered, Duration::from_millis(5)));
    }
    rig.stop();
    cleanup(&root);
    Latency { sink, samples }
}

struct Big {
    records: u64,
    bytes: u64,
    secs: f64,
    rss_kib: u64,
    restarts: Vec<f64>,
    history: u64,
}

/// The big file through the outbox sink with peak RSS sampled; then the
/// same deployment, its history in place, is restarted.
fn big(tmp: &Path, bytes: u64, restarts: usize) -> Big {
    let root = tmp.join("big");
    let rig = Rig::new(root.clone(), Sink::Outbox, 0);
    let staged = root.join("big.jsonl");
    let (records, bytes) = generate(&staged, Fmt::Jsonl, Input::Realistic, 10_000_000, 0, bytes);
    let secs = rig.drop_and_wait(&staged, "big.jsonl", records, Duration::from_millis(50));
    let rss_kib = vm_kib(rig.pid(), "VmHWM:");
    let history = rig.dep.exported();
    let Rig {
        dep,
        lib,
        mut daemon,
    } = rig;
    drop(lib);
    daemon.take().unwrap().stop();
    let mut times = Vec::new();
    for _ in 0..restarts {
        let d = dep.start();
        times.push(d.ready_secs);
        d.stop();
    }
    cleanup(&root);
    Big {
        records,
        bytes,
        secs,
        rss_kib,
        restarts: times,
        history,
    }
}

/// Removes a case's deployment unless `FEPD_BENCH_KEEP` is set (to
/// profile on the same files afterwards).
fn cleanup(root: &Path) {
    if std::env::var_os("FEPD_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(root);
    }
}

// ---------------------------------------------------------------- report

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[i.clamp(1, s.len()) - 1]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The PostgreSQL case's figures, one paragraph.
fn pg_line(p: &pg::PgTput) -> String {
    let rate = |secs: f64| p.rows as f64 / secs.max(1e-9);
    format!(
        "pg-outbox: {} rows (case_accept, random row ids and keys, cd_time over a day) in {:.2} s = {:.0} rows/s into the outbox \
         (spawn of fepd run → all exported; pages of {}; fepd CPU {:.2} s = {:.0} rows/CPU-s)\n\
         PostgreSQL alone on the same rows: COPY (SELECT … ORDER BY cd_time, row_guid) TO STDOUT by psql → /dev/null {:.2} s = {:.0} rows/s \
         (fepd at {:.3} of it); fepd's page queries alone (source::postgres, rows made records, nothing checked or sealed) {:.2} s = {:.0} rows/s; \
         load by COPY FROM + index {:.1} s",
        p.rows,
        p.secs,
        rate(p.secs),
        p.page_rows,
        p.fepd_cpu,
        rate(p.fepd_cpu),
        p.copy_secs,
        rate(p.copy_secs),
        rate(p.secs) / rate(p.copy_secs),
        p.pages_secs,
        rate(p.pages_secs),
        p.load_secs
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    // `cargo bench` passes --bench; `cargo test --bench bench` does not.
    let mode = if has("--smoke") || !has("--bench") && !has("--quick") && !has("--full") {
        Mode::Smoke
    } else if has("--quick") {
        Mode::Quick
    } else {
        Mode::Full
    };
    // `--write-records OUT N`: N realistic records as JSON Lines, and
    // nothing else (scripts/history-bench.sh's input).
    if let Some(i) = args.iter().position(|a| a == "--write-records") {
        let (Some(out), Some(n)) = (
            args.get(i + 1),
            args.get(i + 2).and_then(|n| n.parse::<u64>().ok()),
        ) else {
            eprintln!("usage: --write-records OUT N");
            std::process::exit(2);
        };
        let (n, bytes) = generate(Path::new(out), Fmt::Jsonl, Input::Realistic, 0, n, 0);
        eprintln!("{out}: {n} realistic records, {bytes} bytes");
        return;
    }
    let sz = mode.sizes();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let _ = PUSH.set(PushKnobs {
        latency_ms: value("--latency-ms").unwrap_or(20),
        inflight: value("--inflight").map(|n| n as usize),
    });
    let started = Instant::now();
    let load0 = loadavg();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // Temp dir beside the target dir (real disk, not tmpfs).
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-tmp");
    std::fs::create_dir_all(&base).unwrap();
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let keep = std::env::var_os("FEPD_BENCH_KEEP").is_some();
    let tmp = if keep {
        tmp.keep()
    } else {
        tmp.path().to_path_buf()
    };
    let tmp = &tmp;
    eprintln!(
        "fepd bench ({}): {} records per throughput case, {} drops of {} records, big file {:.0} MiB",
        mode.name(),
        sz.throughput,
        sz.drops,
        sz.per_drop,
        sz.big_bytes as f64 / MIB
    );

    let mut tputs = Vec::new();
    let mut key0 = 0u64;
    // `--only FMT-SINK` (e.g. xml-outbox): that throughput case alone, to
    // run under `perf record` (which follows the daemon it spawns).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    // `--rows N`: the rows of the PostgreSQL case (default: the
    // throughput cases' record count).
    let pg_rows = value("--rows").unwrap_or(sz.throughput);
    if only.as_deref() == Some("pg-outbox") {
        let p = pg::pg_outbox(tmp, pg_rows);
        println!("{}", pg_line(&p));
        return;
    }
    if only.as_deref() == Some("big-file") {
        let b = big(tmp, sz.big_bytes, sz.restarts);
        println!(
            "big-file: {} records ({:.0} MiB) in {:.1} s = {:.0} rec/s; peak RSS {:.1} MiB; restart to ready {:?} s",
            b.records,
            b.bytes as f64 / MIB,
            b.secs,
            b.records as f64 / b.secs,
            b.rss_kib as f64 / 1024.0,
            b.restarts
        );
        return;
    }
    for case in cases() {
        // An XLSX workbook's shared strings stay in memory while it is
        // read, and fepd takes at most 1,000,000 of them by default
        // (`[intake] max_xlsx_shared_strings`): realistic rows carry ~12
        // distinct strings each (a 100,000-row export declares 1,200,016
        // and is refused whole), so the XLSX cases take 75,000 rows.
        let n = match case.fmt {
            Fmt::Xlsx => sz.throughput.min(XLSX_ROWS),
            _ => sz.throughput,
        };
        if let Some(o) = &only {
            if *o != case.name() {
                continue;
            }
            let t = throughput(tmp, case, n, key0);
            println!(
                "{o} ({} input, latency {} ms, inflight {}): {} records in {:.2} s = {:.0} rec/s; fepd CPU {:.2} s, simulator CPU {:.2} s",
                case.input.label(),
                case.latency_ms,
                push_knobs()
                    .inflight
                    .map_or("default".to_string(), |n| n.to_string()),
                t.records,
                t.secs,
                t.records as f64 / t.secs,
                t.fepd_cpu,
                t.lib_cpu
            );
            return;
        }
        eprintln!("  throughput {} ...", case.name());
        tputs.push(throughput(tmp, case, n, key0));
        key0 += n;
    }
    if let Some(o) = only {
        eprintln!(
            "--only {o}: no such case ([uniform-]FMT-SINK[-Nms], FMT jsonl|csv|xml|xlsx, SINK outbox|http; or pg-outbox, big-file)"
        );
        std::process::exit(2);
    }
    eprintln!("  PostgreSQL source -> outbox ({pg_rows} rows) ...");
    let pgt = pg::pg_outbox(tmp, pg_rows);
    let mut lats = Vec::new();
    for sink in [Sink::Outbox, Sink::Http] {
        eprintln!("  latency -> {} ...", sink.name());
        lats.push(latency(tmp, sink, sz.drops, sz.per_drop));
    }
    eprintln!("  big file + restart ...");
    let big = big(tmp, sz.big_bytes, sz.restarts);
    let total = started.elapsed().as_secs_f64();

    // ------------------------------------------------------------ table
    let mut o = String::new();
    let w = &mut o;
    use std::fmt::Write as _;
    let _ = writeln!(w, "\nfepd benchmark — mode {}", mode.name());
    let _ = writeln!(
        w,
        "machine: {} · {} cores · load avg at start {} · at end {}",
        cpu_model(),
        cores,
        load0,
        loadavg()
    );
    let _ = writeln!(
        w,
        "binary: {FEPD}\nsizes: {} case_accept records (~600 B) per throughput case (XLSX ≤ 75,000); latency {} drops × {} records (JSON Lines, watch mode); big file {:.0} MiB JSON Lines; wall time {:.0} s",
        sz.throughput,
        sz.drops,
        sz.per_drop,
        sz.big_bytes as f64 / MIB,
        total
    );
    let _ = writeln!(
        w,
        "end to end = rename into inbox → records exported to the outbox, or acknowledged by simulate-library (fepd state DB, then confirmed by GET /sim/stats). \
         busy = cores busy machine-wide during the case (fepd + simulator + bench + anyone else)."
    );
    let _ = writeln!(
        w,
        "\nThroughput (realistic input first — the figures the targets are judged on; the uniform template's lines last, for comparison with earlier reports)"
    );
    let _ = writeln!(
        w,
        "| input | format | sink | RTT ms | records | MiB | s | rec/s | MiB/s | fepd CPU s | CPU-s per M | sim CPU s | busy | RSS MiB | read+sha256 rec/s | ratio | parse rec/s | ratio | SQLite inserts rec/s | ratio | target | |"
    );
    let _ = writeln!(
        w,
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    );
    for t in &tputs {
        let c = &t.case;
        let rps = t.records as f64 / t.secs;
        let of = |secs: f64| t.records as f64 / secs.max(1e-9);
        let (sha, parse, sql) = (
            of(t.limit.sha_secs),
            of(t.limit.parse_secs),
            of(t.limit.sqlite_secs),
        );
        let target = c.target();
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.2} | {:.1} | {:.0} | {:.1} | {:.2} | {:.1} | {:.0} | {:.3} | {:.0} | {:.3} | {:.0} | {:.3} | {} | {} |",
            c.input.label(),
            c.fmt.ext(),
            c.sink.name(),
            c.latency_ms,
            t.records,
            t.bytes as f64 / MIB,
            t.secs,
            rps,
            t.bytes as f64 / MIB / t.secs,
            t.fepd_cpu,
            t.fepd_cpu * 1e6 / t.records.max(1) as f64,
            t.lib_cpu,
            t.machine_cores,
            t.rss_kib as f64 / 1024.0,
            sha,
            rps / sha,
            parse,
            rps / parse,
            sql,
            rps / sql,
            target.map_or("—".to_string(), |x| format!("{x:.0}")),
            target.map_or("", |x| verdict(rps >= x))
        );
    }
    let _ = writeln!(
        w,
        "\nRaw limits on the same files (single thread): read + SHA-256 in 1 MiB reads; parse only = serde_json per line into a map / csv StringRecord / quick-xml events with text decoded / calamine's streamed cells; SQLite inserts = the file's keys with a hash each into a fresh (dataset, key) table, 1,000 per transaction, WAL, synchronous=FULL. \
         Realistic input: keys in no particular order, every applicant different, 24 departments, datetimes in three written forms, one value in five padded (benches/bench/input.rs). XLSX cases: at most 75,000 rows (~12 distinct strings a row, under the default limit of 1,000,000 shared strings). \
         History: these cases start from an empty state DB; scripts/history-bench.sh runs the realistic case over 10,000,000 keys of history."
    );
    let _ = writeln!(w, "\nSQL source: PostgreSQL → outbox (docs/sql-sources.md)");
    let _ = writeln!(w, "{}", pg_line(&pgt));
    let _ = writeln!(w, "\nDrop-to-delivered latency (watch mode)");
    let _ = writeln!(
        w,
        "| sink | drops | p50 s | p99 s | max s | target p99 ≤ 1 s |"
    );
    let _ = writeln!(w, "|---|--:|--:|--:|--:|---|");
    for l in &lats {
        let p99 = pct(&l.samples, 99.0);
        let _ = writeln!(
            w,
            "| {} | {} | {:.3} | {:.3} | {:.3} | {} |",
            l.sink.name(),
            l.samples.len(),
            pct(&l.samples, 50.0),
            p99,
            l.samples.iter().cloned().fold(0.0, f64::max),
            verdict(p99 <= 1.0)
        );
    }
    let _ = writeln!(w, "\nBig file and restart (outbox sink)");
    let _ = writeln!(
        w,
        "| big file | records | s | rec/s | peak RSS (VmHWM) | target ≤ 64 MiB | history | restart-to-ready s (each) | target ≤ 2 s |"
    );
    let _ = writeln!(w, "|---|--:|--:|--:|--:|---|--:|---|---|");
    let worst = big.restarts.iter().cloned().fold(0.0, f64::max);
    let _ = writeln!(
        w,
        "| {:.0} MiB | {} | {:.1} | {:.0} | {:.1} MiB | {} | {} records | {} | {} |",
        big.bytes as f64 / MIB,
        big.records,
        big.secs,
        big.records as f64 / big.secs,
        big.rss_kib as f64 / 1024.0,
        verdict(big.rss_kib <= 64 * 1024),
        big.history,
        big.restarts
            .iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(" "),
        verdict(worst <= 2.0)
    );
    let _ = writeln!(
        w,
        "restart-to-ready = spawn of `fepd run` → its \"fepd ready\" log line (after recovery), on the big-file deployment."
    );
    if mode != Mode::Full {
        let _ = writeln!(
            w,
            "({} mode: sizes are reduced; targets are stated for the full run.)",
            mode.name()
        );
    }
    print!("{o}");
    let _ = std::fs::write(base.join(format!("report-{}.md", mode.name())), &o);
}
