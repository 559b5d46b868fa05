//! A deployment in a temp folder, the `fepd` binary run against it, and
//! bounded waits. Tests use loopback only and never wait unboundedly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::config::{base_config, merge, parse_toml};

pub const FEPD: &str = env!("CARGO_BIN_EXE_fepd");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A deployment: config, spool, state and outbox in one temp folder.
pub struct Env {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    /// Where the test sees the spool and the state DB: `root`, unless the
    /// daemon runs with them on a filesystem of its own.
    pub data: PathBuf,
    /// The config as written to `config`; edited with [`Env::edit_config`]
    /// and friends (`tests/it/config.rs`).
    pub(crate) cfg: std::cell::RefCell<toml::Table>,
}

pub const DATASETS: &[(&str, &str)] = &[
    ("item_catalog", "zwfw"),
    ("item_task", "zwfw"),
    ("case_accept", "zwfw"),
    ("case_process", "zwfw"),
    ("case_result", "zwfw"),
    ("evaluation", "zwfw"),
    ("service_stats", "culture"),
    ("event_report", "cgdsj"),
];

impl Env {
    /// Outbox mode, quick rescans, every dataset of [`DATASETS`]; `extra`
    /// is TOML merged into that config (see [`Env::merge_config`]).
    pub fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut cfg = base_config();
        merge(&mut cfg, parse_toml(extra));
        let env = Env {
            _dir: dir,
            data: root.clone(),
            config: root.join("fepd.toml"),
            root,
            cfg: std::cell::RefCell::new(cfg),
        };
        env.write_config();
        env
    }

    /// Push mode to the simulator at `base_url`; `extra_http` is TOML for
    /// the `[sink.http]` table.
    pub fn http(base_url: &str, extra_http: &str) -> Env {
        let env = Env::new(&http_sink(base_url, extra_http));
        env.set("sink.mode", "http");
        env
    }

    /// Whether the daemon's log (all runs so far) contains `text`. The
    /// journal is the operator's surface: tests read it for what only the
    /// journal says (why intake paused, which file failed, that a secret
    /// was *not* written), and use `fepd … --json`, `/status` and the
    /// exchange log for everything those show.
    pub fn log_has(&self, text: &str) -> bool {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .contains(text)
    }

    pub fn spool(&self, dataset: &str, sub: &str) -> PathBuf {
        self.data.join("spool").join(dataset).join(sub)
    }

    pub fn outbox(&self, dataset: &str) -> PathBuf {
        self.data.join("spool/outbox").join(dataset)
    }

    /// A collector's acknowledgement of `batch_id` (docs/protocol.md §5):
    /// written under a temporary name, then renamed beside the batch.
    pub fn ack(&self, dataset: &str, batch_id: &str, body: &str) {
        let dir = self.outbox(dataset);
        let tmp = dir.join(format!(".{batch_id}.ack.tmp"));
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, dir.join(format!("{batch_id}.ack"))).unwrap();
    }

    pub fn db(&self) -> PathBuf {
        self.data.join("state/fepd.db")
    }

    /// Runs `fepd ARGS --config <this config>` to completion.
    pub fn fepd(&self, args: &[&str]) -> Output {
        Command::new(FEPD)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("FEPD_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Starts `fepd run`; its log goes to `daemon.log` in the deployment
    /// (appended across restarts), shown when a wait times out.
    pub fn start(&self) -> Daemon {
        self.start_with_env(&[])
    }

    /// Starts `fepd run` and waits until it tells its service manager it
    /// is ready (`READY=1` on `NOTIFY_SOCKET`, as systemd's `Type=notify`
    /// sees it): from then on its inboxes are watched.
    pub fn start_ready(&self) -> Daemon {
        use std::os::unix::net::UnixDatagram;
        let path = self.root.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let d = self.start_with_env(&[("NOTIFY_SOCKET", path.to_str().unwrap())]);
        let mut buf = [0u8; 4096];
        self.wait("READY=1 from the daemon", Duration::from_secs(30), || {
            sock.recv(&mut buf).is_ok_and(|n| {
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
            })
        });
        d
    }

    pub fn start_with_env(&self, vars: &[(&str, &str)]) -> Daemon {
        self.start_wrapped(&[], vars)
    }

    /// Starts `WRAPPER… fepd run`: the wrapper execs the daemon in the end,
    /// so the child's pid is the daemon's.
    pub fn start_wrapped(&self, wrapper: &[&str], vars: &[(&str, &str)]) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(FEPD);
                c
            }
            None => Command::new(FEPD),
        };
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("FEPD_LOG", "debug,notify=info")
            .env("NO_COLOR", "1")
            .env("FEPD_TEST_SECRET", "secret")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log: self.log_path(),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    /// Like [`wait_for`], with the daemon's log in the failure message;
    /// polls every 100 ms, as conditions often run a `fepd` command.
    pub fn wait(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                let tree = Command::new("find")
                    .arg(self.data.join("spool"))
                    .output()
                    .unwrap();
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n--- daemon log ---\n{log}\n--- spool ---\n{}",
                    String::from_utf8_lossy(&tree.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Drops a file the way writers should: write `.part`, then rename.
    pub fn drop_file(&self, dataset: &str, name: &str, bytes: &[u8]) {
        let inbox = self.spool(dataset, "inbox");
        std::fs::create_dir_all(&inbox).unwrap();
        let part = inbox.join(format!("{name}.part"));
        std::fs::write(&part, bytes).unwrap();
        std::fs::rename(&part, inbox.join(name)).unwrap();
    }

    /// The receipt of a processed file, once it exists.
    pub fn receipt(&self, dataset: &str, name: &str) -> serde_json::Value {
        // The original moves out of work/ last: wait for it too.
        let p = self
            .spool(dataset, "done")
            .join(format!("{name}.receipt.json"));
        let orig = self.spool(dataset, "done").join(name);
        self.wait(
            &format!("receipt {}", p.display()),
            Duration::from_secs(60),
            || p.exists() && orig.exists(),
        );
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    /// The report of a rejected file, once it exists.
    pub fn report(&self, dataset: &str, name: &str) -> serde_json::Value {
        let p = self
            .spool(dataset, "rejected")
            .join(format!("{name}.report.json"));
        let orig = self.spool(dataset, "rejected").join(name);
        self.wait(
            &format!("report {}", p.display()),
            Duration::from_secs(60),
            || p.exists() && orig.exists(),
        );
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    /// Every batch body written to the outbox (pending and delivered).
    pub fn outbox_batches(&self, dataset: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for dir in [self.outbox(dataset), self.outbox(dataset).join("delivered")] {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            names.sort();
            for p in names {
                out.push(serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap());
            }
        }
        out
    }

    /// Waits until the outbox holds `n` records for `dataset` (export runs
    /// just after sealing), then returns them.
    pub fn wait_outbox_records(&self, dataset: &str, n: usize) -> Vec<serde_json::Value> {
        self.wait(
            &format!("{n} records in the {dataset} outbox"),
            Duration::from_secs(20),
            || self.outbox_records(dataset).len() >= n,
        );
        let recs = self.outbox_records(dataset);
        assert_eq!(recs.len(), n, "more records in the outbox than expected");
        recs
    }

    /// All records in the outbox for a dataset, in batch order.
    pub fn outbox_records(&self, dataset: &str) -> Vec<serde_json::Value> {
        self.outbox_batches(dataset)
            .into_iter()
            .flat_map(|b| b["records"].as_array().unwrap().clone())
            .collect()
    }

    /// A number from the state database; 0 before the daemon created it.
    /// Only for what no command shows (see `tests/it/surface.rs`).
    pub fn sql_count(&self, sql: &str) -> i64 {
        if !self.db().exists() {
            return 0;
        }
        let c = rusqlite::Connection::open(self.db()).unwrap();
        match c.query_row(sql, [], |r| r.get(0)) {
            Ok(n) => n,
            Err(e) if e.to_string().contains("no such table") => 0,
            Err(e) => panic!("{sql}: {e}"),
        }
    }
}

/// A running daemon; stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or_default()
    }

    /// SIGTERM and wait for exit; returns the exit status and stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st, std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("daemon did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `timeout` for the daemon to exit by itself; its exit
    /// status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, no drain.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `cond` every 25 ms until it holds; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `fepd simulate-library` on a loopback port, stopped when dropped.
pub struct Library {
    child: Option<Child>,
    pub base_url: String,
    pub addr: String,
    /// The `--inspect-token` the simulator was started with: `/sim/*`
    /// answers only requests carrying it.
    pub inspect_token: String,
}

/// The inspection token test simulators are started with.
pub const INSPECT_TOKEN: &str = "it-inspect-token";

impl Library {
    /// Starts the simulator with its database at `db` and extra flags; the
    /// port is chosen by the OS and read from the simulator's first line.
    pub fn start(db: &Path, args: &[&str]) -> Library {
        Library::start_on("127.0.0.1:0", db, args)
    }

    pub fn start_on(listen: &str, db: &Path, args: &[&str]) -> Library {
        use std::io::BufRead;
        let mut child = Command::new(FEPD)
            .args(["simulate-library", "--listen", listen, "--db"])
            .arg(db)
            .args(["--inspect-token", INSPECT_TOKEN])
            .args(args)
            .env("FEPD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            addr.contains(':'),
            "simulator did not announce its address: {line:?}"
        );
        Library {
            child: Some(child),
            base_url: format!("http://{addr}"),
            addr,
            inspect_token: INSPECT_TOKEN.to_string(),
        }
    }

    /// GET a `/sim/...` endpoint as JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        // The stats check every record stored: on a loaded machine, with
        // 100,000 records, that can take seconds.
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.addr, self.inspect_token
        )
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    pub fn stats(&self) -> serde_json::Value {
        self.get("/sim/stats")
    }

    pub fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `[sink.http]` config for a simulator at `base_url` (client secret
/// from the environment variable the harness sets for the daemon).
pub fn http_sink(base_url: &str, extra: &str) -> String {
    format!(
        "\n[sink.http]\nbase_url = \"{base_url}\"\nclient_id = \"fep-001\"\nclient_secret_env = \"FEPD_TEST_SECRET\"\nrequest_timeout_secs = 5\n{extra}\n"
    )
}

/// A plain HTTP/1.1 GET on loopback: (status line, body).
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// A loopback address with a port free right now.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}
