//! Claiming one inbox file so that it cannot be swapped under fepd: the
//! name is opened without following links and without blocking (a FIFO
//! cannot hang the open), the descriptor must be a regular file within the
//! size limit that no process holds open for writing (a read lease, where
//! the filesystem has leases), and the rename into `work/` is made relative
//! to both folders and then checked to have moved that very file. Anything
//! else swapped in between is put back and refused, never followed.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Once;

use super::refusal::NotTaken;

/// What an attempt to claim one name came to.
#[derive(Debug)]
pub enum Attempt {
    /// Moved into `work/` under `work_name`.
    Taken {
        work_name: String,
    },
    /// A process still holds the file open for writing: try again later.
    Busy,
    Refused(NotTaken),
    /// The name disappeared (taken away by its writer): nothing to do.
    Gone,
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let p = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid C string; the descriptor is owned by the result.
    let fd = cvt(unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `dir/name` read-only, never following a final symlink (ELOOP)
/// and never blocking (a FIFO without a writer opens at once).
pub fn open_no_follow(dir: RawFd, name: &str) -> io::Result<File> {
    let c = c_name(name)?;
    // SAFETY: a valid C string and directory descriptor.
    let fd = cvt(unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Opens `path` the same way, relative to its folder.
pub fn open_path_no_follow(path: &Path) -> io::Result<File> {
    let dir = open_dir(path.parent().unwrap_or(Path::new(".")))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    open_no_follow(dir.as_raw_fd(), name)
}

/// Whether some process holds the file open for writing, as far as a
/// read lease can tell: `Some(true)` yes, `Some(false)` no, `None` when the
/// filesystem (NFS, CIFS, FUSE) or our privileges give no leases.
fn open_for_writing(f: &File) -> Option<bool> {
    static IGNORE_SIGIO: Once = Once::new();
    // A writer opening the file while we hold the lease makes the kernel
    // send us SIGIO, whose default action ends the process. The lease is
    // held for two system calls only; the signal is ignored so that such
    // a writer merely waits those microseconds.
    IGNORE_SIGIO.call_once(|| {
        // SAFETY: setting a signal's disposition to SIG_IGN is always sound.
        unsafe {
            libc::signal(libc::SIGIO, libc::SIG_IGN);
        }
    });
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Some(false);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Some(true),
        _ => None,
    }
}

fn same_file(a: &libc::stat, b: &libc::stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

fn fstat(f: &File) -> io::Result<libc::stat> {
    // SAFETY: `st` is fully written by a successful fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(f.as_raw_fd(), &mut st) })?;
    Ok(st)
}

fn lstat_at(dir: RawFd, name: &str) -> io::Result<libc::stat> {
    let c = c_name(name)?;
    // SAFETY: `st` is fully written by a successful fstatat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

fn rename_at(from_dir: RawFd, from: &str, to_dir: RawFd, to: &str, flags: u32) -> io::Result<()> {
    let (f, t) = (c_name(from)?, c_name(to)?);
    // SAFETY: valid C strings and directory descriptors.
    cvt(unsafe { libc::renameat2(from_dir, f.as_ptr(), to_dir, t.as_ptr(), flags) }).map(|_| ())
}

/// Moves `from_dir/from` to `to_dir/<name or its first free version>`
/// without ever replacing anything there; returns the name used.
pub fn move_no_replace(
    from_dir: &Path,
    from: &str,
    to_dir: &Path,
    name: &str,
) -> io::Result<String> {
    let (fd, td) = (open_dir(from_dir)?, open_dir(to_dir)?);
    loop {
        let to = crate::fsio::free_name(to_dir, name, &[]);
        match rename_at(
            fd.as_raw_fd(),
            from,
            td.as_raw_fd(),
            &to,
            libc::RENAME_NOREPLACE,
        ) {
            // Someone took that name between the look and the rename.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
            Ok(()) => {
                crate::fsio::sync_dir(to_dir)?;
                return Ok(to);
            }
        }
    }
}

/// Claims `dir/name` by moving it to `work/<claim id>~<name>`.
pub fn claim(dir: &Path, work: &Path, name: &str, max_bytes: u64) -> Attempt {
    match try_claim(dir, work, name, max_bytes) {
        Ok(a) => a,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Attempt::Gone,
        Err(e) => Attempt::Refused(NotTaken::Unreadable {
            error: e.to_string(),
        }),
    }
}

fn try_claim(dir: &Path, work: &Path, name: &str, max_bytes: u64) -> io::Result<Attempt> {
    let inbox = open_dir(dir)?;
    let file = match open_no_follow(inbox.as_raw_fd(), name) {
        Ok(f) => f,
        // It was a regular file when the scan looked: swapped for a link
        // (ELOOP) or a socket (ENXIO) since.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENXIO)) => {
            return Ok(Attempt::Refused(NotTaken::Swapped));
        }
        Err(e) => return Err(e),
    };
    let st = fstat(&file)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(Attempt::Refused(NotTaken::Swapped));
    }
    if st.st_size as u64 > max_bytes {
        return Ok(Attempt::Refused(NotTaken::TooLarge {
            size: st.st_size as u64,
            max: max_bytes,
        }));
    }
    if open_for_writing(&file) == Some(true) {
        return Ok(Attempt::Busy);
    }
    std::fs::create_dir_all(work)?;
    let work_fd = open_dir(work)?;
    let work_name = crate::spool::ClaimName::new(name).work_name();
    rename_at(inbox.as_raw_fd(), name, work_fd.as_raw_fd(), &work_name, 0)?;
    // The name may have been swapped between the open and the rename: what
    // arrived in work/ must be the file checked above, or it goes back.
    let moved = lstat_at(work_fd.as_raw_fd(), &work_name)?;
    if !same_file(&moved, &st) {
        let back = move_no_replace(work, &work_name, dir, name)?;
        tracing::warn!(file = %super::refusal::escape(name), returned_as = %super::refusal::escape(&back), "file swapped while being claimed; put back, not taken");
        return Ok(Attempt::Refused(NotTaken::Swapped));
    }
    // Only the work/ entry is made durable here: if power fails before the
    // inbox entry's removal reaches the disk, the file shows up in both
    // places and the second copy is recognised by its content as a
    // duplicate. Losing the work/ entry instead would be harmless too (the
    // file is still in the inbox), but then no claim row may point at it,
    // and none does yet: rows are written after this returns.
    crate::fsio::sync_dir(work)?;
    Ok(Attempt::Taken { work_name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_claimed_and_a_symlink_or_fifo_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let (inbox, work) = (d.path().join("inbox"), d.path().join("work"));
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::write(inbox.join("a.csv"), "x").unwrap();
        std::fs::write(d.path().join("secret.csv"), "s").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret.csv"), inbox.join("l.csv")).unwrap();
        let fifo = CString::new(inbox.join("f.csv").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        match claim(&inbox, &work, "a.csv", 100) {
            Attempt::Taken { work_name } => assert!(work.join(work_name).exists()),
            a => panic!("{a:?}"),
        }
        assert!(matches!(
            claim(&inbox, &work, "l.csv", 100),
            Attempt::Refused(NotTaken::Swapped)
        ));
        assert!(matches!(
            claim(&inbox, &work, "f.csv", 100),
            Attempt::Refused(NotTaken::Swapped)
        ));
        assert!(matches!(
            claim(&inbox, &work, "gone.csv", 100),
            Attempt::Gone
        ));
        assert!(inbox.join("l.csv").exists() && inbox.join("f.csv").exists());
    }

    #[test]
    fn a_file_open_for_writing_is_busy_where_leases_exist() {
        let d = tempfile::tempdir().unwrap();
        let (inbox, work) = (d.path().join("inbox"), d.path().join("work"));
        std::fs::create_dir_all(&inbox).unwrap();
        let writer = File::create(inbox.join("a.csv")).unwrap();
        let probe = open_path_no_follow(&inbox.join("a.csv")).unwrap();
        if open_for_writing(&probe).is_none() {
            return; // no leases on this filesystem: the quiet period applies
        }
        assert!(matches!(claim(&inbox, &work, "a.csv", 100), Attempt::Busy));
        drop(writer);
        assert!(matches!(
            claim(&inbox, &work, "a.csv", 100),
            Attempt::Taken { .. }
        ));
    }

    #[test]
    fn an_oversized_file_is_refused_by_its_size() {
        let d = tempfile::tempdir().unwrap();
        let (inbox, work) = (d.path().join("inbox"), d.path().join("work"));
        std::fs::create_dir_all(&inbox).unwrap();
        File::create(inbox.join("big.csv"))
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        assert!(matches!(
            claim(&inbox, &work, "big.csv", 1 << 30),
            Attempt::Refused(NotTaken::TooLarge { .. })
        ));
    }
}
