//! [`Config::problems`]: every problem a parsed config can still have
//! that does not need the file system, one line each, all at once (for
//! `fepd check-config`). Values with a type of their own (`values`) were
//! already refused by serde with their line.

use super::{Admin, AuthMode, Config, Console, HttpSink, SinkMode};

impl Config {
    /// Every problem that does not need the file system, one line each.
    /// `fepd check-config` adds the ones that do (schemas, spool, secrets).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.sender.trim().is_empty() {
            out.push("sender: must not be empty".to_string());
        }
        if let Some(why) = self.timezone.problem() {
            out.push(format!("timezone: {why}"));
        }
        if let Some(why) = self.intake.csv_delimiter.problem() {
            out.push(format!("intake.csv_delimiter: {why}"));
        }
        if let Some(why) = self
            .intake
            .default_encoding
            .as_ref()
            .and_then(|e| e.problem())
        {
            out.push(format!("intake.default_encoding: {why}"));
        }
        if self.batch.max_records == 0
            || self.batch.max_records > 1_000_000
            || self.batch.max_bytes < 1024
        {
            out.push(
                "batch: max_records must be from 1 to 1000000 and max_bytes ≥ 1024".to_string(),
            );
        }
        if !(1..=4096).contains(&self.state.cache_mib) {
            out.push("state.cache_mib: must be 1..=4096".to_string());
        }
        if self.backpressure.low_water_percent == 0 || self.backpressure.low_water_percent > 100 {
            out.push("backpressure.low_water_percent: must be 1..=100".to_string());
        }
        // serde_json refuses nesting deeper than 128 on its own; the
        // configured limit must bite first, with its own message.
        if !(3..=100).contains(&self.intake.max_nesting_depth) {
            out.push("intake.max_nesting_depth: must be 3..=100".to_string());
        }
        if self.intake.max_columns == 0 || self.intake.max_xlsx_shared_strings == 0 {
            out.push("intake.max_columns and max_xlsx_shared_strings: must be ≥ 1".to_string());
        }
        if self.intake.rescan_secs == 0 {
            out.push("intake.rescan_secs: must be ≥ 1".to_string());
        }
        if self.datasets.is_empty() {
            out.push("no [[dataset]] configured".to_string());
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.datasets {
            if !seen.insert(d.name.as_str()) {
                out.push(format!("dataset {}: configured twice", d.name));
            }
            let ok_name = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if !ok_name(&d.name) || d.name == "outbox" {
                out.push(format!(
                    "dataset {:?}: name must be letters, digits, _ or - (and not \"outbox\")",
                    d.name
                ));
            }
            if !ok_name(&d.category) || !ok_name(&d.resource) {
                out.push(format!(
                    "dataset {}: category and resource must be letters, digits, _ or -",
                    d.name
                ));
            }
            if let Some(sql) = &d.sql {
                out.extend(
                    sql.problems()
                        .into_iter()
                        .map(|why| format!("dataset {}: {why}", d.name)),
                );
            }
            if d.poll_secs == Some(0) {
                out.push(format!("dataset {}: poll_secs must be ≥ 1", d.name));
            }
            if d.header_row == Some(0) {
                out.push(format!(
                    "dataset {}: header_row counts from 1 (the first line or sheet row)",
                    d.name
                ));
            }
            if d.sheet == Some(crate::parse::SheetRef::Index(0)) {
                out.push(format!(
                    "dataset {}: sheet counts from 1 (the first sheet), or give its name",
                    d.name
                ));
            }
            if let Some(why) = d.schedule.as_ref().and_then(|s| s.problem()) {
                out.push(format!("dataset {}: {why}", d.name));
            }
            if let Some(why) = d.default_encoding.as_ref().and_then(|e| e.problem()) {
                out.push(format!("dataset {}: default_encoding: {why}", d.name));
            }
            if d.send_window.is_some() && self.sink.mode != SinkMode::Http {
                out.push(format!(
                    "dataset {}: send_window applies to push mode (sink.mode = \"http\"); in outbox mode the library's collector decides when it collects",
                    d.name
                ));
            }
            if d.inflight == Some(0) {
                out.push(format!(
                    "dataset {}: inflight must be ≥ 1 (1 sends the route's batches strictly in seal order)",
                    d.name
                ));
            }
        }
        out.extend(self.admin.problems());
        out.extend(self.console.problems());
        out.extend(self.alerts.problems());
        match (self.sink.mode, &self.sink.http) {
            (SinkMode::Http, None) => {
                out.push("sink.mode = \"http\" needs a [sink.http] section".to_string())
            }
            (SinkMode::Http, Some(h)) => out.extend(h.problems()),
            _ => {}
        }
        if let Some(c) = &self.cluster {
            out.extend(c.problems(self.sink.mode == SinkMode::Http));
        }
        out
    }
}

impl Admin {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.listen {
            Some(addr) if !addr.ip().is_loopback() && !self.allow_remote => out.push(format!(
                "admin.listen: {addr} is not a loopback address; to serve /status and /metrics beyond this host set admin.allow_remote = true and admin.token_file"
            )),
            Some(addr) if !addr.ip().is_loopback() && self.token_file.is_none() => out.push(format!(
                "admin.listen: {addr} is not a loopback address; allow_remote needs admin.token_file (a bearer token)"
            )),
            _ => {}
        }
        out
    }
}

impl Console {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            out.push(
                "console: tls_cert_file and tls_key_file go together (HTTPS needs both)".into(),
            );
        }
        if let Some(addr) = self.listen
            && !addr.ip().is_loopback()
            && self.tls().is_none()
        {
            out.push(format!(
                "console.listen: {addr} is not a loopback address; the console is served beyond this host only over HTTPS (set console.tls_cert_file and console.tls_key_file)"
            ));
        }
        if self.lockout_failures == 0 {
            out.push("console.lockout_failures must be ≥ 1".into());
        }
        if self.idle_timeout_secs == 0 || self.absolute_timeout_secs == 0 {
            out.push("console: idle_timeout_secs and absolute_timeout_secs must be ≥ 1".into());
        }
        out
    }
}

impl HttpSink {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            out.push(format!(
                "sink.http.base_url: {:?} must start with http:// or https://",
                self.base_url
            ));
        }
        match self.auth {
            AuthMode::ClientCredentials => {
                if self.client_id.is_none() {
                    out.push(
                        "sink.http.client_id: required for auth = \"client_credentials\"".into(),
                    );
                }
                if self.client_secret_file.is_none()
                    && self.client_secret_env.is_none()
                    && self.client_secret_credential.is_none()
                {
                    out.push(
                        "sink.http: client_secret_credential, client_secret_file or client_secret_env is required".into(),
                    );
                }
            }
            AuthMode::AppKeyHmac => {
                if self.app_id.is_none() || self.sys_code.is_none() {
                    out.push(
                        "sink.http: app_id and sys_code are required for auth = \"app_key_hmac\""
                            .into(),
                    );
                }
                if self.app_key_file.is_none()
                    && self.app_key_env.is_none()
                    && self.app_key_credential.is_none()
                {
                    out.push(
                        "sink.http: app_key_credential, app_key_file or app_key_env is required"
                            .into(),
                    );
                }
            }
        }
        for (key, name) in [
            ("client_secret_credential", &self.client_secret_credential),
            ("app_key_credential", &self.app_key_credential),
        ] {
            if let Some(n) = name
                && !crate::secrets::credential_name_ok(n)
            {
                out.push(format!(
                    "sink.http.{key}: {n:?} is not a credential name (letters, digits, . _ -; no /)"
                ));
            }
        }
        if self.concurrency == 0 || self.request_timeout_secs == 0 {
            out.push("sink.http: concurrency and request_timeout_secs must be ≥ 1".into());
        }
        if let Some(why) = self.credential_expires.as_ref().and_then(|e| e.problem()) {
            out.push(format!("sink.http.credential_expires: {why}"));
        }
        if self.inflight == 0 {
            out.push(
                "sink.http.inflight: must be ≥ 1 (1 sends each route's batches strictly in seal order)"
                    .into(),
            );
        }
        if self.credential_backoff_secs == 0 {
            out.push("sink.http.credential_backoff_secs: must be ≥ 1".into());
        }
        out
    }
}
