//! A real three-server NATS JetStream cluster on loopback for the cluster
//! tests: Debian's `nats-server` package (`.ci/run` installs it), each
//! server with its own client, route and monitoring port and its own temp
//! `store_dir`, routed to the other two. [`Nats::start`] returns once
//! JetStream's meta group holds all three; a server can be killed by pid
//! and started again on the same ports and store; every server still
//! running is stopped by pid when the fixture is dropped. A cluster that
//! cannot start fails the test: these tests are never skipped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary (Debian's `nats-server`).
const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// One server's ports and store.
struct Server {
    name: String,
    client: u16,
    route: u16,
    monitor: u16,
    store: PathBuf,
    child: Option<Child>,
}

pub struct Nats {
    dir: tempfile::TempDir,
    servers: Vec<Server>,
}

impl Nats {
    /// Starts three servers and waits (bounded) until JetStream's meta
    /// group holds all three, current. A server that could not start (a
    /// port taken by another test's socket between choosing and binding
    /// it) leaves a group of two that elects a leader but can place no
    /// three-replica stream: the three are then stopped and started again
    /// on other ports and a fresh store, at most three times.
    pub fn start() -> Nats {
        assert!(
            std::path::Path::new(NATS_SERVER).exists(),
            "nats-server is not installed (.ci/run installs Debian's nats-server)"
        );
        let mut logs = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let ports = distinct_ports(9);
            let servers = (0..3)
                .map(|i| Server {
                    name: format!("n{i}"),
                    client: ports[3 * i],
                    route: ports[3 * i + 1],
                    monitor: ports[3 * i + 2],
                    store: dir.path().join(format!("n{i}")),
                    child: None,
                })
                .collect();
            let mut nats = Nats { dir, servers };
            for i in 0..3 {
                nats.spawn(i);
            }
            match nats.formed_within(Duration::from_secs(60)) {
                Ok(()) => return nats,
                Err(l) => logs = l,
            }
        }
        panic!("the JetStream cluster did not form three times:\n{logs}");
    }

    fn spawn(&mut self, i: usize) {
        let routes = self
            .servers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| format!("nats://127.0.0.1:{}", s.route))
            .collect::<Vec<_>>()
            .join(",");
        let s = &mut self.servers[i];
        std::fs::create_dir_all(&s.store).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", s.name)))
            .unwrap();
        let child = Command::new(NATS_SERVER)
            .args(["-a", "127.0.0.1", "-p", &s.client.to_string()])
            .args(["-m", &s.monitor.to_string(), "-n", &s.name])
            .args(["-js", "-sd"])
            .arg(&s.store)
            .args(["--cluster_name", "fepd-it"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", s.route)])
            .args(["--routes", &routes])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {NATS_SERVER}: {e}"));
        s.child = Some(child);
    }

    /// The client URLs of all three servers, as `[cluster] nats` lists them.
    pub fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.client))
            .collect()
    }

    /// The `[cluster]` table for a node named `node`.
    pub fn cluster_toml(&self, node: &str, extra: &str) -> String {
        let urls = self
            .urls()
            .iter()
            .map(|u| format!("{u:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("\n[cluster]\nnats = [{urls}]\nnode = {node:?}\nstream_replicas = 3\n{extra}\n")
    }

    /// Whether JetStream's meta group is whole: a running server (the
    /// leader, which alone lists the others) reports a leader and every
    /// other running server as a current replica (`/jsz`).
    fn formed(&self) -> bool {
        let running = self.servers.iter().filter(|s| s.child.is_some()).count();
        self.servers.iter().filter(|s| s.child.is_some()).any(|s| {
            let Some(body) = get(s.monitor, "/jsz") else {
                return false;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
                return false;
            };
            let meta = &v["meta_cluster"];
            let current = meta["replicas"]
                .as_array()
                .map_or(0, |r| r.iter().filter(|p| p["current"] == true).count());
            meta["leader"].as_str().is_some_and(|l| !l.is_empty()) && current + 1 >= running
        })
    }

    /// Waits until the meta group is whole ([`Nats::formed`]); `Err` with
    /// the servers' logs after `timeout`, or at once when a server exited.
    fn formed_within(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.formed() {
                return Ok(());
            }
            let exited = self.servers.iter_mut().any(|s| {
                s.child
                    .as_mut()
                    .is_some_and(|c| !matches!(c.try_wait(), Ok(None)))
            });
            if exited {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.kill_all();
        Err(self
            .servers
            .iter()
            .map(|s| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", s.name)))
                    .unwrap_or_default();
                format!("--- {} ---\n{log}", s.name)
            })
            .collect())
    }

    /// Waits until JetStream's meta group holds every running server,
    /// current, failing the test after `timeout` with the servers' logs.
    pub fn wait_formed(&mut self, timeout: Duration) {
        if let Err(logs) = self.formed_within(timeout) {
            panic!("the JetStream cluster did not form within {timeout:?}:\n{logs}");
        }
    }

    /// Messages of `stream` that a node was given and has not acked yet
    /// (every consumer's `num_ack_pending`, as the running servers'
    /// monitoring ports report it; the highest report per consumer).
    pub fn ack_pending(&self, stream: &str) -> u64 {
        let mut by_consumer = std::collections::BTreeMap::<String, u64>::new();
        for s in self.servers.iter().filter(|s| s.child.is_some()) {
            let Some(body) = get(s.monitor, "/jsz?accounts=true&streams=true&consumers=true")
            else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
                continue;
            };
            let accounts = v["account_details"].as_array().cloned().unwrap_or_default();
            for st in accounts
                .iter()
                .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
                .filter(|st| st["name"] == stream)
            {
                for c in st["consumer_detail"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    let name = c["name"].as_str().unwrap_or_default().to_string();
                    let n = c["num_ack_pending"].as_u64().unwrap_or(0);
                    let e = by_consumer.entry(name).or_default();
                    *e = (*e).max(n);
                }
            }
        }
        by_consumer.values().sum()
    }

    /// SIGKILLs server `i` by its pid.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts server `i` again, on its ports and store.
    pub fn restart(&mut self, i: usize) {
        assert!(self.servers[i].child.is_none(), "server {i} is running");
        self.spawn(i);
    }

    /// SIGKILLs every server (JetStream down).
    pub fn kill_all(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }

    /// Starts every server that is not running and waits for a leader.
    pub fn restart_all(&mut self) {
        for i in 0..self.servers.len() {
            if self.servers[i].child.is_none() {
                self.spawn(i);
            }
        }
        self.wait_formed(Duration::from_secs(60));
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// A GET on a server's monitoring port: the body of a 200, or `None`
/// when the server does not answer (it may be starting or killed).
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8(buf).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

/// `n` distinct free loopback ports: each listener is held until all are
/// chosen, so none of them is handed out twice.
fn distinct_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}
