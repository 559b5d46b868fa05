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
