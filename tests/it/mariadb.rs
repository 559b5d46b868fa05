//! A real MariaDB server for the SQL source tests: Debian's
//! `mariadb-server` package (`.ci/run` installs it), initialised with
//! `mariadb-install-db` into a temp directory and listening on a free
//! loopback port, its socket in that directory. It is stopped by pid when
//! dropped. A server that cannot start fails the test: never skipped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::pg::free_port;

/// The user and password the tests connect as.
pub const USER: &str = "fepd";
pub const PASSWORD: &str = "s3cret-不要记录";

pub struct Maria {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

/// mariadbd runs as root only when told to.
fn as_root() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } == 0).then_some("--user=root")
}

impl Maria {
    /// mariadb-install-db, then start; `qzk` is created as the 前置库
    /// database, with the user `fepd` allowed on it from loopback.
    pub fn start() -> Maria {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Servers of tests running at once must not share /tmp (the
        // bootstrap's temporary tables clash).
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let out = Command::new("mariadb-install-db")
            .env("TMPDIR", &tmp)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(as_root())
            .output()
            .expect("mariadb-install-db (.ci/run installs Debian's mariadb-server)");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut m = Maria {
            dir,
            port: free_port(),
            child: None,
        };
        // A port chosen free may be taken by another test's socket before
        // the server binds it: the server then exits, and is started again
        // on another port (at most three times).
        let mut tries = 0;
        while let Err(log) = m.try_run() {
            tries += 1;
            assert!(tries < 3, "mariadbd did not start: {log}");
            m.port = free_port();
        }
        let mut root = m.root();
        root.query_drop(format!(
            "CREATE DATABASE qzk CHARACTER SET utf8mb4;
             CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';
             GRANT ALL ON qzk.* TO '{USER}'@'127.0.0.1';"
        ))
        .unwrap();
        m
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// Starts the server and waits until it takes connections.
    pub fn run(&mut self) {
        if let Err(log) = self.try_run() {
            panic!("mariadbd did not start: {log}");
        }
    }

    /// Starts the server and waits until it takes connections (on its own
    /// socket); `Err` with its log when it exited first (its port taken,
    /// say).
    fn try_run(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!(
                "--datadir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("pid").display()
            ))
            .arg(format!(
                "--tmpdir={}",
                self.dir.path().join("tmp").display()
            ))
            .arg("--innodb-flush-log-at-trx-commit=2")
            .args(as_root())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.try_root().is_ok() {
                return Ok(());
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "mariadbd exited ({st}): {}",
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGTERM: a clean shutdown, sessions cut).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    fn try_root(&self) -> Result<mysql::Conn, mysql::Error> {
        let o = mysql::OptsBuilder::new()
            .socket(Some(self.socket().display().to_string()))
            .user(Some("root"));
        mysql::Conn::new(o)
    }

    fn root(&self) -> mysql::Conn {
        self.try_root().unwrap()
    }

    pub fn url(&self) -> String {
        format!("mysql://{USER}@127.0.0.1:{}/qzk", self.port)
    }

    /// A connection to `qzk` as the test user.
    pub fn connect(&self) -> mysql::Conn {
        let o = mysql::OptsBuilder::from_opts(mysql::Opts::from_url(&self.url()).unwrap())
            .pass(Some(PASSWORD));
        mysql::Conn::new(o).unwrap()
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        self.stop();
    }
}
