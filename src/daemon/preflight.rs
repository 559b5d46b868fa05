//! What the daemon needs beyond a well-formed config — folders it can
//! write, secrets from files and the environment, the admin token and
//! address — checked without changing anything. `fepd check-config` prints
//! it; a SIGHUP reload runs it before draining, so that a config the new
//! loop could not start with is refused while the old loop still runs.

use std::net::SocketAddr;
use std::path::Path;

use crate::config::{Config, SinkMode};

/// The outcome: problems refuse the config; notes are worth a look.
#[derive(Debug, Default)]
pub struct Preflight {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// What is already in place when the check runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Running<'a> {
    /// The config of the loop that runs now (a reload).
    pub config: Option<&'a Config>,
    /// The admin address a running daemon holds: not tried again.
    pub admin: Option<SocketAddr>,
}

/// Checks everything `cfg` needs from this host, listing every problem.
pub fn check(cfg: &Config, running: Running<'_>) -> Preflight {
    let mut out = Preflight::default();
    if let Some(old) = running.config
        && old.state_dir != cfg.state_dir
    {
        out.problems.push(format!(
            "state_dir: changed from {} to {}; the instance lock and the state database stay where they are until a restart",
            old.state_dir.display(),
            cfg.state_dir.display()
        ));
    }
    let mut folders = vec![
        ("spool_dir", cfg.spool_dir.as_path()),
        ("state_dir", cfg.state_dir.as_path()),
    ];
    if cfg.sink.mode == SinkMode::Outbox {
        folders.push(("sink.outbox_dir", cfg.sink.outbox_dir.as_path()));
    }
    if let Some(dir) = &cfg.log.dir {
        folders.push(("log.dir", dir.as_path()));
    }
    for (key, dir) in folders {
        match folder(dir) {
            Ok(None) => {}
            Ok(Some(note)) => out.notes.push(format!("{key} {}: {note}", dir.display())),
            Err(p) => out.problems.push(format!("{key} {}: {p}", dir.display())),
        }
    }
    if cfg.sink.mode == SinkMode::Http
        && let Some(h) = &cfg.sink.http
    {
        // Exactly what the forwarder reads at start: the secret from its
        // file (owner-only) or environment variable, and the CA file.
        if let Err(e) = crate::forward::push::credentials(h) {
            // Only systemd sets the credentials folder, for the unit's
            // processes: an operator's shell cannot check a credential.
            match e.secret() {
                Some(crate::secrets::SecretError::NoCredentialsDir { name }) => out.notes.push(format!(
                    "credential {name:?} not checked here: only the unit's processes get $CREDENTIALS_DIRECTORY"
                )),
                _ => out.problems.push(format!("sink.http: {e:#}")),
            }
        }
        if let Err(e) = crate::forward::push::client(h) {
            out.problems.push(format!("sink.http: {e:#}"));
        }
    }
    // SQL sources: the password exactly as the poller reads it.
    for d in &cfg.datasets {
        if let Some(sql) = &d.sql
            && let Err(e) = crate::source::password(sql)
        {
            out.problems.push(format!("dataset {}: sql: {e}", d.name));
        }
    }
    if let Some(f) = &cfg.admin.token_file {
        match admin_token(f) {
            Ok(_) => {}
            Err(p) => out.problems.push(format!("admin.token_file: {p}")),
        }
    }
    // An address the config refuses anyway is not tried.
    if let Some(addr) = cfg.admin.listen
        && running.admin != Some(addr)
        && (addr.ip().is_loopback() || cfg.admin.allow_remote)
        && let Err(e) = std::net::TcpListener::bind(addr)
    {
        out.problems
            .push(format!("admin.listen: cannot listen on {addr}: {e}"));
    }
    out
}

/// The bearer token in `path`, read under the secret-file rule
/// (`config::secret`: owner-only, not empty).
pub fn admin_token(path: &Path) -> Result<String, String> {
    let token = crate::config::secret::read_secret_file(path).map_err(|e| e.to_string())?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(token)
}

/// Whether fepd can write in `dir` or create it; a folder still to be
/// created is a note (a typo in a path shows up there), not a problem.
fn folder(dir: &Path) -> Result<Option<String>, String> {
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => return Err("no existing parent folder".into()),
        }
    }
    if !existing.is_dir() {
        return Err(format!("{} is not a folder", existing.display()));
    }
    if !writable(existing) {
        return Err(if existing == dir {
            "not writable".to_string()
        } else {
            format!("cannot be created: {} is not writable", existing.display())
        });
    }
    Ok((existing != dir).then(|| "does not exist yet; fepd run creates it".to_string()))
}

fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_a_note_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "sender = \"s\"\nspool_dir = \"{}\"\n",
            dir.path().join("typo/spool").display()
        );
        let cfg = Config::parse(&text, dir.path()).unwrap();
        let p = check(&cfg, Running::default());
        assert!(p.problems.is_empty(), "{p:?}");
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("typo/spool") && n.contains("does not exist")),
            "{p:?}"
        );
        assert!(!dir.path().join("typo").exists());
    }

    #[test]
    fn a_missing_environment_variable_and_a_changed_state_dir_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let text = "sender = \"s\"\n[sink]\nmode = \"http\"\n[sink.http]\nbase_url = \"http://127.0.0.1:1\"\nclient_id = \"c\"\nclient_secret_env = \"FEPD_PREFLIGHT_UNSET_VARIABLE\"\n";
        let cfg = Config::parse(text, dir.path()).unwrap();
        let mut old = cfg.clone();
        old.state_dir = dir.path().join("elsewhere");
        let p = check(
            &cfg,
            Running {
                config: Some(&old),
                admin: None,
            },
        );
        assert_eq!(p.problems.len(), 2, "{p:?}");
        assert!(p.problems[0].starts_with("state_dir: changed"), "{p:?}");
        assert!(
            p.problems[1].contains("FEPD_PREFLIGHT_UNSET_VARIABLE is not set"),
            "{p:?}"
        );
    }
}
