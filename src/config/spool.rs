//! `[spool]`: who besides fepd may use the spool folders.

use serde::Deserialize;

/// Who besides fepd may use the spool. With `group` set, every dataset
/// folder is made setgid and owned by that group: `inbox/` group-writable
/// (data staff drop files), `done/`, `rejected/` and `work/`
/// group-readable; files and folders created in them later inherit the
/// group, and fepd's umask (`UMask=0027` in the unit) leaves them
/// group-readable. Unset: folders are left as the umask makes them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolAccess {
    /// The data-staff group, e.g. `"fepd-data"`; fepd must be a member.
    #[serde(default)]
    pub group: Option<String>,
}

/// The id of the group `name`, through NSS (as `getent group` sees it, so
/// LDAP or SSSD groups count too).
pub fn gid_of(name: &str) -> std::io::Result<Option<u32>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_found_by_name() {
        assert_eq!(gid_of("root").unwrap(), Some(0));
        assert_eq!(gid_of("no-such-group-fepd").unwrap(), None);
    }
}
