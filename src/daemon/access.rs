//! Data staff's access to the spool (`[spool] group`): the spool root and
//! every dataset folder belong to the data-staff group, dataset folders are
//! setgid so everything created in them later inherits the group, `inbox/`
//! is group-writable and the rest group-readable. Files fepd writes there
//! (receipts, reports) are group-readable through fepd's umask
//! (`UMask=0027` in the unit); dropped files keep their owner.
//!
//! Applied at every start and reload, to folders fepd owns; a folder it
//! cannot fix is logged, never fatal (data still flows, staff may lack
//! access until an operator fixes it).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::config::Config;
use crate::spool::Spool;

/// setgid + rwx for fepd and the group: data staff drop files here.
const INBOX_MODE: u32 = 0o2770;
/// setgid + rwx for fepd, r-x for the group: staff read results.
const READ_MODE: u32 = 0o2750;
/// The spool root: the group may enter and list it. Not setgid, so the
/// outbox fepd creates there keeps fepd's own group (batches hold personal
/// data in clear; they are for the library's collector, not data staff).
const ROOT_MODE: u32 = 0o750;

/// Problems with `[spool] group` that stop a start (or a reload).
pub fn config_problems(cfg: &Config) -> Vec<String> {
    let Some(name) = cfg.spool.group.as_deref() else {
        return Vec::new();
    };
    match gid_of(name) {
        Ok(Some(_)) => Vec::new(),
        Ok(None) => vec![format!(
            "spool.group: no group {name:?} on this host (groupadd --system {name}; the packages create fepd-data)"
        )],
        Err(e) => vec![format!(
            "spool.group: looking up group {name:?} failed: {e}"
        )],
    }
}

/// The group id of `[spool] group`, if set and known.
pub fn group_id(cfg: &Config) -> Option<u32> {
    gid_of(cfg.spool.group.as_deref()?).ok().flatten()
}

/// The id of the group `name`, through NSS (as `getent group` sees it, so
/// LDAP or SSSD groups count too).
fn gid_of(name: &str) -> std::io::Result<Option<u32>> {
    let c_name = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: getgrnam_r writes only into `grp` and `buf` (whose length
        // it is given) and sets `found` to null or to `&grp`.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            0 => return Ok((!found.is_null()).then_some(grp.gr_gid)),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

/// Gives the spool root and one dataset's folders to the data-staff group
/// with their modes (see the module doc). Problems are logged.
pub fn apply(spool: &Path, paths: &Spool, gid: u32) {
    let dataset_dir = paths.inbox.parent().unwrap_or(spool);
    let plan = [
        (spool, ROOT_MODE),
        (dataset_dir, READ_MODE),
        (paths.inbox.as_path(), INBOX_MODE),
        (paths.work.as_path(), READ_MODE),
        (paths.done.as_path(), READ_MODE),
        (paths.rejected.as_path(), READ_MODE),
    ];
    for (dir, mode) in plan {
        if let Err(e) = set(dir, gid, mode) {
            tracing::warn!(
                folder = %dir.display(),
                error = %e,
                "cannot give this spool folder to the data-staff group: data staff may be unable to drop files or read reports here (fepd must own it and be a member of the group: SupplementaryGroups= in the unit)"
            );
        }
    }
}

/// chgrp + chmod `dir`, only where it differs (a start changes nothing on
/// a spool already set up, and a folder not fepd's is left alone if right).
fn set(dir: &Path, gid: u32, mode: u32) -> std::io::Result<()> {
    let m = std::fs::metadata(dir)?;
    if m.gid() != gid {
        std::os::unix::fs::chown(dir, None, Some(gid))?;
    }
    if m.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_is_group_writable_and_results_group_readable() {
        let d = tempfile::tempdir().unwrap();
        let spool = d.path().join("spool");
        let paths = Spool::new(&spool, "case_accept");
        paths.create().unwrap();
        // SAFETY: getegid has no preconditions.
        let gid = unsafe { libc::getegid() };
        apply(&spool, &paths, gid);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&paths.inbox), 0o2770);
        assert_eq!(mode(&paths.done), 0o2750);
        assert_eq!(mode(&paths.rejected), 0o2750);
        assert_eq!(mode(&spool), 0o750);
        // A folder created later inside a setgid folder inherits it.
        std::fs::create_dir(paths.done.join("sub")).unwrap();
        assert_eq!(mode(&paths.done.join("sub")) & 0o2000, 0o2000);
    }

    #[test]
    fn groups_are_found_by_name() {
        assert_eq!(gid_of("root").unwrap(), Some(0));
        assert_eq!(gid_of("no-such-group-fepd").unwrap(), None);
    }

    #[test]
    fn an_unknown_group_is_a_config_problem() {
        let text = "sender = \"x\"\n[spool]\ngroup = \"no-such-group-fepd\"\n";
        let cfg = Config::parse(text, Path::new("/tmp")).unwrap();
        let p = config_problems(&cfg);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("no-such-group-fepd"), "{}", p[0]);
    }
}
