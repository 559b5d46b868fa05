//! Who an operator command acts for: `--by NAME`, else the OS user of the
//! process (from its uid, falling back to `$USER` / `$LOGNAME`). Written as
//! `"by"` into every exchange-log entry an operator causes (batch retry and
//! park, log prune, selftest), so auditors see who did it.

use std::sync::OnceLock;

static NAME: OnceLock<String> = OnceLock::new();

/// Fixes the name for this process; called once by `main` with `--by`.
pub fn init(by: Option<&str>) {
    let _ = NAME.set(resolve(by));
}

/// The operator's name (resolved on first use if `init` was not called).
pub fn name() -> &'static str {
    NAME.get_or_init(|| resolve(None))
}

fn resolve(by: Option<&str>) -> String {
    if let Some(b) = by.map(str::trim).filter(|b| !b.is_empty()) {
        return b.to_string();
    }
    os_user()
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }))
}

/// The login name of the process's real uid, from the password database.
fn os_user() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes only into `pwd` and `buf` (whose length we
    // pass) and sets `found` to `&pwd` or null; the name is read before
    // `buf` goes away.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_wins_and_the_os_user_is_the_default() {
        assert_eq!(resolve(Some(" 张三 ")), "张三");
        let default = resolve(None);
        assert!(!default.is_empty());
        assert_eq!(resolve(Some("")), default);
        // Whatever the environment says, the uid's own name comes first.
        if let Some(u) = os_user() {
            assert_eq!(default, u);
        }
    }
}
