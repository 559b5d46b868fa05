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

/// The group id of `[spool] group`, if set and known.
pub fn group_id(cfg: &Config) -> Option<u32> {
    crate::config::gid_of(cfg.spool.group.as_deref()?)
        .ok()
        .flatten()
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
}
