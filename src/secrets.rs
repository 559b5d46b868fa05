//! Where a secret (client secret, app key) comes from: a systemd credential
//! (`LoadCredential=` → `$CREDENTIALS_DIRECTORY/NAME`), a file, or an
//! environment variable — in that order of preference. Values are never
//! logged; errors name the source, never the value.

use std::path::{Path, PathBuf};

/// The environment variable systemd sets for a unit with credentials.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// One configured source of a secret.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Credential(&'a str),
    File(&'a Path),
    Env(&'a str),
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "credential {name:?}: ${CREDENTIALS_DIRECTORY} is not set — systemd sets it for the unit's processes from LoadCredential={name}; outside systemd use a secret file or an environment variable"
    )]
    NoCredentialsDir { name: String },
    #[error(
        "credential {name:?}: {path}: {source} (is LoadCredential={name} in the unit, and /etc/credstore/{name} present?)"
    )]
    Credential {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    File(String),
    #[error("environment variable {0} is not set")]
    Env(String),
    #[error("no source configured (a credential, a file or an environment variable)")]
    Unconfigured,
}

/// The source in use among those configured (credential, then file, then
/// environment variable).
pub fn source<'a>(
    credential: Option<&'a String>,
    file: Option<&'a PathBuf>,
    env: Option<&'a String>,
) -> Option<Source<'a>> {
    credential
        .map(|c| Source::Credential(c))
        .or(file.map(|f| Source::File(f)))
        .or(env.map(|e| Source::Env(e)))
}

/// A systemd credential name: a plain file name.
pub fn credential_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// `$CREDENTIALS_DIRECTORY/name`.
pub fn credential_path(name: &str) -> Result<PathBuf, SecretError> {
    std::env::var_os(CREDENTIALS_DIRECTORY)
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(name))
        .ok_or_else(|| SecretError::NoCredentialsDir {
            name: name.to_string(),
        })
}

/// Why a secret file would be refused, by the one rule in
/// `config::secret` (stated in the message).
pub fn file_problem(path: &Path) -> Option<String> {
    crate::config::secret::secret_file_problem(path)
}

/// Reads the secret; a trailing newline is dropped.
pub fn read(src: Option<Source<'_>>) -> Result<String, SecretError> {
    let text = match src.ok_or(SecretError::Unconfigured)? {
        Source::Credential(name) => {
            let path = credential_path(name)?;
            std::fs::read_to_string(&path).map_err(|source| SecretError::Credential {
                name: name.to_string(),
                path,
                source,
            })?
        }
        Source::File(path) => crate::config::secret::read_secret_file(path)
            .map_err(|e| SecretError::File(e.to_string()))?,
        Source::Env(var) => std::env::var(var).map_err(|_| SecretError::Env(var.to_string()))?,
    };
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_group_readable_file_is_refused_with_the_rule() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("client_secret");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read(Some(Source::File(&f))).unwrap_err().to_string();
        assert!(err.contains("mode 0640"), "{err}");
        assert!(err.contains("owned by the user fepd runs as"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(Some(Source::File(&f))).unwrap(), "s3cret");
    }

    #[test]
    fn credential_names_are_plain_file_names() {
        assert!(credential_name_ok("fepd.client_secret"));
        for bad in ["", "..", "a/b", "/etc/x", "a b"] {
            assert!(!credential_name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_credential_comes_first() {
        let c = "cred".to_string();
        let f = PathBuf::from("/x");
        let e = "E".to_string();
        assert!(matches!(
            source(Some(&c), Some(&f), Some(&e)),
            Some(Source::Credential("cred"))
        ));
        assert!(matches!(
            source(None, Some(&f), Some(&e)),
            Some(Source::File(_))
        ));
        assert!(source(None, None, None).is_none());
    }
}
