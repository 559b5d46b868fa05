//! Real alert receivers on loopback, owned by the test: an HTTP server
//! (axum) recording every request, a real SMTP server (`python3 -m
//! aiosmtpd`, Debian's python3-aiosmtpd, installed by `.ci/run`) writing
//! each mail decoded to a folder, and a syslog UDP socket.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{free_addr, wait_for};

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path and query, as sent.
    pub uri: String,
    pub body: serde_json::Value,
}

/// An HTTP server answering every POST like a 钉钉/企业微信 robot
/// (`{"errcode":0}`), recording what it got.
pub struct Recorder {
    pub addr: String,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let got = Arc::new(Mutex::new(Vec::new()));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let g = got.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app =
                    axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
                        let g = g.clone();
                        async move {
                            let body =
                                serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                            g.lock().unwrap().push(Request {
                                uri: uri.to_string(),
                                body,
                            });
                            axum::Json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
                        }
                    });
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                axum::serve(l, app).await.unwrap();
            });
        });
        Recorder { addr, got }
    }

    /// Requests whose path starts with `path`, in arrival order.
    pub fn at(&self, path: &str) -> Vec<Request> {
        let got = self.got.lock().unwrap();
        got.iter()
            .filter(|r| r.uri.starts_with(path))
            .cloned()
            .collect()
    }
}

/// Handler for aiosmtpd's `-c`: each mail decoded (subject, body) into a
/// file of its own, written whole (temp + rename).
const SMTP_HANDLER: &str = r#"
import email, email.policy, os

class Handler:
    def __init__(self, folder):
        self.folder = folder
        self.n = 0

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        m = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.n += 1
        tmp = os.path.join(self.folder, ".%04d.tmp" % self.n)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("From: %s\nTo: %s\nSubject: %s\n\n%s" % (
                envelope.mail_from, ",".join(envelope.rcpt_tos), m["subject"], m.get_content()))
        os.rename(tmp, os.path.join(self.folder, "%04d.txt" % self.n))
        return "250 OK"
"#;

/// `python3 -m aiosmtpd` on a free loopback port; killed by pid on drop.
pub struct SmtpServer {
    pub port: u16,
    pub mailbox: PathBuf,
    child: Child,
}

impl SmtpServer {
    /// Starts the server and waits until it accepts connections; a test
    /// that cannot start it fails (the package is a CI dependency).
    pub fn start(dir: &Path) -> SmtpServer {
        SmtpServer::start_with(dir, &[])
    }

    /// As [`SmtpServer::start`], with more aiosmtpd options (e.g.
    /// `--tlscert`/`--tlskey` for STARTTLS, `--smtpscert`/`--smtpskey` for
    /// implicit TLS).
    pub fn start_with(dir: &Path, options: &[&str]) -> SmtpServer {
        let mailbox = dir.join("mailbox");
        std::fs::create_dir_all(&mailbox).unwrap();
        std::fs::write(dir.join("fepd_test_smtp.py"), SMTP_HANDLER).unwrap();
        let addr = free_addr();
        let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
        let child = // Debian's interpreter: the package installs the module for it, not
        // for another python3 that may come first on PATH.
        Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &addr])
            .args(options)
            .arg("-c")
            .arg("fepd_test_smtp.Handler")
            .arg(&mailbox)
            .env("PYTHONPATH", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 -m aiosmtpd (Debian package python3-aiosmtpd) must run");
        let mut s = SmtpServer {
            port,
            mailbox,
            child,
        };
        wait_for("aiosmtpd listening", Duration::from_secs(20), || {
            assert!(
                s.child.try_wait().unwrap().is_none(),
                "aiosmtpd exited; is python3-aiosmtpd installed?"
            );
            std::net::TcpStream::connect(&addr).is_ok()
        });
        s
    }

    /// The mails received so far (decoded text), in order.
    pub fn mails(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.mailbox)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".txt"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| std::fs::read_to_string(self.mailbox.join(n)).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A syslog receiver over TCP: everything each connection sent, in order.
pub struct SyslogTcp {
    pub addr: String,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl SyslogTcp {
    pub fn start() -> SyslogTcp {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let mut buf = Vec::new();
                let _ = std::io::Read::read_to_end(&mut s, &mut buf);
                g.lock().unwrap().push(buf);
            }
        });
        SyslogTcp { addr, got }
    }

    /// The bytes of each connection so far.
    pub fn streams(&self) -> Vec<Vec<u8>> {
        self.got.lock().unwrap().clone()
    }
}

/// A syslog receiver: a UDP socket on loopback.
pub struct SyslogUdp {
    pub addr: String,
    sock: UdpSocket,
    got: Vec<String>,
}

impl SyslogUdp {
    pub fn start() -> SyslogUdp {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        SyslogUdp {
            addr: sock.local_addr().unwrap().to_string(),
            sock,
            got: Vec::new(),
        }
    }

    /// Every line received so far (reads what arrived since the last call).
    pub fn lines(&mut self) -> &[String] {
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.got
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        &self.got
    }
}
