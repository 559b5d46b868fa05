//! A claimed file that changed under fepd — a writer that kept appending
//! where no lease could tell it was still open (NFS, CIFS), a truncation, a
//! rewrite — is found at the verdict by comparing the file with its
//! identity (size, mtime, SHA-256) and handled explicitly, never cut
//! silently: the verdict, receipt and counts cover the content that was
//! identified and processed, and the changed file goes back to the inbox as
//! a new file. There its records already sent are recognised as unchanged
//! (dedupe) and the rest is taken; its own receipt accounts for every
//! record it holds.

use std::io::{self, Read};
use std::path::Path;

use crate::state::log::Changed;
use sha2::{Digest, Sha256};

use super::read::Identity;
use crate::intake::claim::move_no_replace;

/// How a claimed file differs from its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Grew {
        from: u64,
        to: u64,
    },
    Shrank {
        from: u64,
        to: u64,
    },
    /// Same size (or resumed after a restart), other content.
    Rewritten,
}

impl Change {
    /// The receipt's warning, in Chinese, naming where the file went.
    pub fn warning(&self, returned_as: &str) -> String {
        let what = match self {
            Change::Grew { from, to } => format!("接收后文件仍在增长（{from} → {to} 字节）"),
            Change::Shrank { from, to } => format!("接收后文件被截短（{from} → {to} 字节）"),
            Change::Rewritten => "接收后文件内容被改写".to_string(),
        };
        format!(
            "{what}：本回执只包含接收时的内容；改动后的文件已作为新文件放回收件箱，名为 {returned_as}，已发送的记录不会重复发送"
        )
    }

    /// For the exchange-log entry of the verdict.
    pub fn details<'a>(&self, returned_as: &'a str) -> Changed<'a> {
        let (change, from_bytes, to_bytes) = match self {
            Change::Grew { from, to } => ("grew", Some(*from), Some(*to)),
            Change::Shrank { from, to } => ("shrank", Some(*from), Some(*to)),
            Change::Rewritten => ("rewritten", None, None),
        };
        Changed {
            change,
            from_bytes,
            to_bytes,
            returned_as,
        }
    }
}

fn sha256_of(path: &Path) -> io::Result<String> {
    let mut f = crate::intake::claim::open_path_no_follow(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// Whether `path` still holds what was identified as `id` (claimed with
/// `claimed_sha`, which differs from `id` only when a restart found the
/// file changed). A changed mtime alone is confirmed by hashing again.
pub fn detect(path: &Path, claimed_sha: Option<&str>, id: &Identity) -> io::Result<Option<Change>> {
    if claimed_sha.is_some_and(|s| s != id.sha256) {
        return Ok(Some(Change::Rewritten));
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (from, to) = (id.size, meta.len());
    if to > from {
        return Ok(Some(Change::Grew { from, to }));
    }
    if to < from {
        return Ok(Some(Change::Shrank { from, to }));
    }
    if meta.modified().ok() != id.mtime && sha256_of(path)? != id.sha256 {
        return Ok(Some(Change::Rewritten));
    }
    Ok(None)
}

/// For a file that grew: copies its first `id.size` bytes — the content
/// claimed, processed and named by the receipt — to `dest`, if they still
/// hash to `id.sha256`, so that `done/` keeps exactly what the receipt
/// covers. Written like every file fepd hands over: temp, fsync, rename.
pub fn keep_claimed(path: &Path, id: &Identity, dest: &Path) -> io::Result<bool> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let copied = (|| {
        let src = crate::intake::claim::open_path_no_follow(path)?;
        let mut out = std::fs::File::create(&tmp)?;
        let mut h = Sha256::new();
        let mut reader = src.take(id.size);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            io::Write::write_all(&mut out, &buf[..n])?;
        }
        out.sync_all()?;
        Ok::<_, io::Error>(hex::encode(h.finalize()) == id.sha256)
    })();
    match copied {
        Ok(true) => {
            std::fs::rename(&tmp, dest)?;
            crate::fsio::sync_dir(dir)?;
            Ok(true)
        }
        Ok(false) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(false)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The name the changed file will get back in `inbox`.
pub fn return_name(inbox: &Path, name: &str) -> String {
    crate::fsio::free_name(inbox, name, &[])
}

/// Moves the changed file `work/<work_name>` back into `inbox` as
/// `name` (or its first free version, should a writer have taken it
/// meanwhile); returns the name used.
pub fn put_back(path: &Path, inbox: &Path, name: &str) -> io::Result<String> {
    let work = path.parent().unwrap_or(Path::new("."));
    let work_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let used = move_no_replace(work, work_name, inbox, name)?;
    crate::fsio::sync_dir(work)?;
    if used != name {
        tracing::warn!(file = %crate::intake::refusal::escape(name), returned_as = %crate::intake::refusal::escape(&used), "changed file returned to the inbox under another name (the first was taken meanwhile)");
    }
    Ok(used)
}

/// After a restart, for a file whose verdict was committed but which is
/// still in `work/`: if its content is not what the verdict covers, it
/// goes back to the inbox (as the verdict said) and `true` is returned.
pub fn return_if_changed(
    path: &Path,
    inbox: &Path,
    name: &str,
    sha: Option<&str>,
) -> io::Result<bool> {
    let Some(sha) = sha else {
        return Ok(false);
    };
    match sha256_of(path) {
        Ok(now) if now != sha => {
            put_back(path, inbox, &return_name(inbox, name))?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::read::{ReadOptions, identify};

    fn opts() -> ReadOptions {
        ReadOptions {
            limits: crate::parse::Limits::default(),
            max_file_bytes: 1 << 30,
            default_encoding: None,
            sheet: None,
        }
    }

    #[test]
    fn growth_truncation_and_rewrite_are_told_apart_from_a_touch() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.csv");
        std::fs::write(&p, "h\n1\n").unwrap();
        let (id, _) = identify(&p, "a.csv", &opts()).unwrap();
        assert_eq!(detect(&p, Some(&id.sha256), &id).unwrap(), None);
        // A touch changes the mtime only: the hash says nothing changed.
        let f = std::fs::File::options().append(true).open(&p).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(detect(&p, Some(&id.sha256), &id).unwrap(), None);
        std::fs::write(&p, "h\n1\n2\n").unwrap();
        assert_eq!(
            detect(&p, None, &id).unwrap(),
            Some(Change::Grew { from: 4, to: 6 })
        );
        std::fs::write(&p, "h\n").unwrap();
        assert_eq!(
            detect(&p, None, &id).unwrap(),
            Some(Change::Shrank { from: 4, to: 2 })
        );
        std::fs::write(&p, "h\n9\n").unwrap();
        let f = std::fs::File::options().append(true).open(&p).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(9))
            .unwrap();
        assert_eq!(detect(&p, None, &id).unwrap(), Some(Change::Rewritten));
    }

    #[test]
    fn a_changed_file_goes_back_to_the_inbox_under_a_free_name() {
        let d = tempfile::tempdir().unwrap();
        let (inbox, work) = (d.path().join("inbox"), d.path().join("work"));
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("01X~a.csv"), "grown").unwrap();
        std::fs::write(inbox.join("a.csv"), "a writer's new file").unwrap();
        let name = put_back(&work.join("01X~a.csv"), &inbox, "a.csv").unwrap();
        assert_eq!(name, "a.2.csv");
        assert_eq!(
            std::fs::read(inbox.join("a.csv")).unwrap(),
            b"a writer's new file"
        );
        assert_eq!(std::fs::read(inbox.join("a.2.csv")).unwrap(), b"grown");
    }
}
