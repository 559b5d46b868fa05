//! Secret files (`client_secret_file`, `app_key_file`): the one place that
//! reads them, so `check-config` and the sender apply the same rule.
//!
//! The rule: a secret file is a regular file (a link to one is followed),
//! owned by the user fepd runs as or by root, with no permission for group
//! or others (mode 0600 or 0400), and holding a secret — not empty, not
//! only a line break, at most 64 KiB. Every check is made on the opened
//! file, so the file checked is the file read.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Larger than this is not a secret but a wrong path.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The rule, stated once for every refusal.
const RULE: &str = "a secret file must be a regular file owned by the user fepd runs as or by root, \
     with no permission for group or others (chmod 600), and not empty — or keep it in /etc/credstore/ \
     and let systemd pass it (LoadCredential=, client_secret_credential)";

/// Why a secret file cannot be used. Never carries the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("secret file {path}: cannot open it: {source} ({RULE})")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {path}: is {kind}, not a regular file ({RULE})")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error(
        "secret file {path}: owned by uid {owner}; it must belong to the user fepd runs as (uid {euid}) or to root — chown it ({RULE})"
    )]
    Owner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error(
        "secret file {path}: readable or writable by group or others (mode {mode:04o}); chmod 600 it ({RULE})"
    )]
    Mode { path: PathBuf, mode: u32 },
    #[error("secret file {path}: is empty ({RULE})")]
    Empty { path: PathBuf },
    #[error("secret file {path}: is {size} bytes, more than a secret can be ({RULE})")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("secret file {path}: reading it failed: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads the secret in `path`, trimmed of a trailing line break, after
/// checking the file against the rule above.
pub fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    let p = || path.to_path_buf();
    // Non-blocking, so that a FIFO put in the secret's place is refused
    // instead of waiting forever for a writer.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| SecretFileError::Open { path: p(), source })?;
    let meta = file
        .metadata()
        .map_err(|source| SecretFileError::Open { path: p(), source })?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_dir() {
            "a directory"
        } else {
            "a device, FIFO or socket"
        };
        return Err(SecretFileError::NotAFile { path: p(), kind });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(SecretFileError::Owner {
            path: p(),
            owner: meta.uid(),
            euid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Mode { path: p(), mode });
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(SecretFileError::TooLarge {
            path: p(),
            size: meta.len(),
        });
    }
    let mut text = String::new();
    (&mut file)
        .take(MAX_SECRET_BYTES)
        .read_to_string(&mut text)
        .map_err(|source| SecretFileError::Read { path: p(), source })?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(SecretFileError::Empty { path: p() });
    }
    Ok(secret.to_string())
}

/// What is wrong with the secret file at `path`, for `check-config`.
pub fn secret_file_problem(path: &Path) -> Option<String> {
    read_secret_file(path).err().map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn secret(dir: &Path, body: &[u8], mode: u32) -> PathBuf {
        let p = dir.join("secret");
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_private_file_is_read_without_its_line_break() {
        let d = tempfile::tempdir().unwrap();
        let p = secret(d.path(), b"s3cret\n", 0o600);
        assert_eq!(read_secret_file(&p).unwrap(), "s3cret");
        let p = secret(d.path(), b"s3cret", 0o400);
        assert_eq!(read_secret_file(&p).unwrap(), "s3cret");
    }

    #[test]
    fn a_directory_an_empty_file_and_a_shared_file_are_refused_with_the_rule() {
        let d = tempfile::tempdir().unwrap();
        let e = read_secret_file(d.path()).unwrap_err();
        assert!(
            matches!(
                e,
                SecretFileError::NotAFile {
                    kind: "a directory",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(RULE), "{e}");
        for body in [&b""[..], b"\n", b"\r\n"] {
            let p = secret(d.path(), body, 0o600);
            let e = read_secret_file(&p).unwrap_err();
            assert!(matches!(e, SecretFileError::Empty { .. }), "{body:?}: {e}");
        }
        let p = secret(d.path(), b"s3cret", 0o640);
        let e = read_secret_file(&p).unwrap_err().to_string();
        assert!(e.contains("mode 0640") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains("s3cret"), "the secret leaked into {e}");
    }

    #[test]
    fn a_file_of_another_user_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = secret(d.path(), b"s3cret", 0o600);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // Only root can give a file away; as anyone else, the file is ours.
            assert!(read_secret_file(&p).is_ok());
            return;
        }
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let e = read_secret_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("owned by uid 65534") && e.contains("chown"),
            "{e}"
        );
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_secret_file(&p).unwrap_err();
        assert!(matches!(e, SecretFileError::NotAFile { .. }), "{e}");
    }
}
