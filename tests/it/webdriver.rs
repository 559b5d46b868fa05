//! A headless Chromium driven over W3C WebDriver (Debian's `chromium` and
//! `chromium-driver`): chromedriver started on a loopback port and killed
//! by its pid, one browser session, and the few commands the console's
//! browser test needs — spoken as the JSON-over-HTTP protocol it is. If
//! chromedriver cannot start, the test fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    child: Child,
    client: Client,
    base: String,
    _profile: tempfile::TempDir,
    /// Where the browser saves downloads (without asking).
    pub downloads: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start() -> Browser {
        let port = crate::harness::free_addr()
            .rsplit_once(':')
            .unwrap()
            .1
            .to_string();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must start");
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            child,
            client,
            base: format!("http://127.0.0.1:{port}"),
            _profile: profile,
            downloads: tempfile::tempdir().unwrap(),
        };
        let started = Instant::now();
        while b
            .client
            .get(format!("{}/status", b.base))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_none_or(|v| v["value"]["ready"] != true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         format!("--user-data-dir={}", b._profile.path().display())],
                "prefs": {
                    "download.default_directory": b.downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        }}});
        let v = b.call("POST", "/session", caps);
        let id = v["sessionId"].as_str().expect("a session id").to_string();
        b.base = format!("{}/session/{id}", b.base);
        b
    }

    fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self.client.post(url).json(&body),
        };
        let v: Value = req.send().unwrap().json().unwrap();
        match v["value"]["error"].is_null() {
            true => Ok(v["value"].clone()),
            false => Err(v),
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|v| panic!("WebDriver {method} {path}: {v}"))
    }

    /// The current document's `body` element, if it has one now.
    fn body(&self) -> Option<String> {
        let v = self
            .try_call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": "body"}),
            )
            .ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// Waits until a new document replaced the one whose body was `old`
    /// and has loaded.
    fn wait_new_page(&self, old: &str) {
        let started = Instant::now();
        loop {
            let loaded = self
                .try_call(
                    "POST",
                    "/execute/sync",
                    json!({"script": "return document.readyState", "args": []}),
                )
                .is_ok_and(|v| v == "complete");
            if loaded && self.body().is_some_and(|b| b != old) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no new page after a submit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url}));
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// Types `text` into the element `css` (a file input takes a path).
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/clear"), json!({}));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        );
    }

    /// Sends `text` to a file input (which cannot be cleared).
    pub fn choose_file(&self, css: &str, path: &std::path::Path) {
        let id = self.find(css);
        let text = path.display().to_string();
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        );
    }

    /// Clicks a button that submits a form, and waits for the page it
    /// leads to.
    pub fn submit(&self, css: &str) {
        let old = self.find("body");
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
        self.wait_new_page(&old);
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        let id = self.find("body");
        self.call("GET", &format!("/element/{id}/text"), json!({}))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script`, which submits a form, in the page (what a forged
    /// page could do), with `args`; waits for the page it leads to.
    pub fn run_submit(&self, script: &str, args: Value) {
        let old = self.find("body");
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        );
        self.wait_new_page(&old);
    }

    /// Runs `script` in the page and returns what it returns.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Clicks the element `css` and returns at once (an in-place update,
    /// a download, a dialog).
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// The text of the dialog open now (`window.confirm`), if any.
    pub fn dialog(&self) -> Option<String> {
        self.try_call("GET", "/alert/text", json!({}))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// Answers the open dialog: OK (`accept`) or Cancel.
    pub fn answer_dialog(&self, accept: bool) {
        let what = if accept { "accept" } else { "dismiss" };
        self.call("POST", &format!("/alert/{what}"), json!({}));
    }

    /// Forgets every cookie (a fresh visitor).
    pub fn clear_cookies(&self) {
        self.call("DELETE", "/cookie", json!({}));
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call("GET", "/screenshot", json!({}));
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.client.delete(&self.base).send();
        // chromedriver, started by this test, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
