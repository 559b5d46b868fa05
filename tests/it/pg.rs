//! A real PostgreSQL server for the SQL source tests: Debian's
//! `postgresql` package (`.ci/run` installs it), initialised into a temp
//! directory and listening on a free loopback port, its socket in that
//! directory. initdb refuses root, so as root the server runs as `nobody`
//! (`setpriv`). It is stopped by pid when dropped. A server that cannot
//! start fails the test: these tests are never skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user and password the tests connect as.
pub const USER: &str = "fepd";
pub const PASSWORD: &str = "s3cret-不要记录";

pub struct Pg {
    _dir: tempfile::TempDir,
    data: PathBuf,
    pub port: u16,
    child: Option<Child>,
    /// uid/gid the server runs as (`None`: the invoking user).
    ids: Option<(u32, u32)>,
}

fn bin(name: &str) -> PathBuf {
    let dir = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .max()
        .expect("no PostgreSQL version under /usr/lib/postgresql");
    dir.join("bin").join(name)
}

/// A loopback TCP port free at the time of asking, for a server a test
/// starts (PostgreSQL here; MariaDB and NATS too).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pg {
    /// initdb, then start; `qzk` is created as the 前置库 database.
    pub fn start() -> Pg {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let ids = root.then_some((65534, 65534));
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = Self::command(ids, &bin("initdb"))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "-A",
                "scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-E", "UTF8", "--locale=C"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Pg {
            data,
            port: free_port(),
            child: None,
            ids,
            _dir: dir,
        };
        // A port chosen free may be taken by another test's socket before
        // the server binds it: the server then exits, and is started again
        // on another port (at most three times).
        let mut tries = 0;
        while let Err(log) = pg.try_run() {
            tries += 1;
            assert!(tries < 3, "postgres did not start: {log}");
            pg.port = free_port();
        }
        pg.sql("postgres", "CREATE DATABASE qzk");
        pg
    }

    fn command(ids: Option<(u32, u32)>, program: &Path) -> Command {
        match ids {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// Starts the server and waits until it takes connections.
    pub fn run(&mut self) {
        if let Err(log) = self.try_run() {
            panic!("postgres did not start: {log}");
        }
    }

    /// Starts the server and waits until it takes connections: `Err` with
    /// its log when it exited first (its port taken, say).
    fn try_run(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self._dir.path().join("server.log")).unwrap();
        let child = Self::command(self.ids, &bin("postgres"))
            .args(["-D", self.data.to_str().unwrap()])
            .args(["-p", &self.port.to_string()])
            .args(["-k", self._dir.path().to_str().unwrap()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Asked on its own socket, in this fixture's directory: no other
        // server answers there, and postgres makes it only once its TCP
        // port is bound.
        let mut own = postgres::Config::new();
        own.host_path(self._dir.path())
            .port(self.port)
            .user(USER)
            .password(PASSWORD)
            .dbname("postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if own.connect(postgres::NoTls).is_ok() {
                return Ok(());
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "postgres exited ({st}): {}",
                    std::fs::read_to_string(self._dir.path().join("server.log"))
                        .unwrap_or_default()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown: open sessions are cut).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGINT);
            }
            let _ = c.wait();
        }
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn connect(&self, db: &str) -> Result<postgres::Client, postgres::Error> {
        let mut cfg: postgres::Config = self.url(db).parse().unwrap();
        cfg.password(PASSWORD);
        cfg.connect(postgres::NoTls)
    }

    /// Runs `sql` in database `db`.
    pub fn sql(&self, db: &str, sql: &str) {
        self.connect(db).unwrap().batch_execute(sql).unwrap();
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
    }
}
