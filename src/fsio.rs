//! Durable file operations: every file fepd hands to someone else is
//! written to a temporary name, fsynced, renamed, and its folder fsynced, so
//! a crash leaves either the old state or the new, never half a file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `dir/name` atomically and durably. The temporary name
/// is a dot-file, which every reader of the spool ignores; if the write
/// fails (a full disk, say) it is removed, so no partial file stays behind.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &target)?;
    sync_dir(dir)?;
    Ok(target)
}

/// Renames `from` to `to` and fsyncs both folders.
pub fn move_durable(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(d) = to.parent() {
        fs::create_dir_all(d)?;
    }
    fs::rename(from, to)?;
    if let Some(d) = to.parent() {
        sync_dir(d)?;
    }
    if let Some(d) = from.parent()
        && Some(d) != to.parent()
    {
        sync_dir(d)?;
    }
    Ok(())
}

/// fsyncs a folder so that renames and creations in it survive power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A name under `dir` that does not exist yet: `name` itself, or
/// `stem.N.ext` for the first free N (a later file version of the same name).
pub fn free_name(dir: &Path, name: &str, suffixes: &[&str]) -> String {
    let taken = |n: &str| {
        dir.join(n).exists()
            || suffixes
                .iter()
                .any(|s| dir.join(format!("{n}{s}")).exists())
    };
    if !taken(name) {
        return name.to_string();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (2..)
        .map(|n| format!("{stem}.{n}{ext}"))
        .find(|n| !taken(n))
        .expect("an unbounded range always has a free name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_name_skips_taken_versions() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(free_name(d.path(), "a.csv", &[]), "a.csv");
        fs::write(d.path().join("a.csv"), "").unwrap();
        assert_eq!(free_name(d.path(), "a.csv", &[]), "a.2.csv");
        fs::write(d.path().join("a.2.csv.receipt.json"), "").unwrap();
        assert_eq!(free_name(d.path(), "a.csv", &[".receipt.json"]), "a.3.csv");
    }

    #[test]
    fn write_atomic_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(d.path(), "x.json", b"{}").unwrap();
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["x.json"]);
    }
}
