//! The install media (`scripts/package.sh`, with the debug binary and light
//! compression): each package holds the files the docs promise, with the
//! modes and owners they declare; the accounts and folders the packages
//! create (sysusers.d, tmpfiles.d) come out right on a scratch root; the
//! unit passes `systemd-analyze verify` as installed; and the shipped /etc
//! config passes `fepd check-config` on that layout.
//!
//! Needs dpkg-deb, rpm (rpmbuild) and systemd's tools; `.ci/run` installs
//! them from Debian's packages.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is it installed? .ci/run installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The packages, built once for every test of this file.
fn dist() -> &'static Path {
    static DIST: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIST.get_or_init(|| {
        let dir = repo().join("target/package-test");
        let _ = std::fs::remove_dir_all(&dir);
        run(Command::new(repo().join("scripts/package.sh"))
            .args(["--binary", FEPD, "--only", "deb,rpm,tar", "--fast", "--out"])
            .arg(&dir));
        dir
    })
}

/// One line of a listing: (mode, owner/group, path).
fn entry<'a>(listing: &'a str, path: &str) -> (&'a str, &'a str) {
    let line = listing
        .lines()
        .find(|l| l.split_whitespace().last() == Some(path))
        .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
    let mut f = line.split_whitespace();
    (f.next().unwrap(), f.next().unwrap())
}

/// What every package installs, with its mode.
const FILES: &[(&str, &str)] = &[
    ("/usr/bin/fepd", "-rwxr-xr-x"),
    ("/usr/lib/fepd/setup", "-rwxr-xr-x"),
    ("/etc/fepd/fepd.toml", "-rw-r-----"),
    ("/usr/lib/systemd/system/fepd.service", "-rw-r--r--"),
    ("/usr/lib/sysusers.d/fepd.conf", "-rw-r--r--"),
    ("/usr/lib/tmpfiles.d/fepd.conf", "-rw-r--r--"),
    (
        "/usr/share/fepd/schemas/case_accept.schema.json",
        "-rw-r--r--",
    ),
    ("/usr/share/fepd/schemas/gb2260.csv", "-rw-r--r--"),
    ("/usr/share/doc/fepd/README.md", "-rw-r--r--"),
    ("/usr/share/doc/fepd/fepd.example.toml", "-rw-r--r--"),
    ("/usr/share/doc/fepd/samples/case_accept.csv", "-rw-r--r--"),
    ("/usr/share/doc/fepd/zh/安装与运维手册.md", "-rw-r--r--"),
    ("/usr/share/doc/fepd/zh/数据专员指南.md", "-rw-r--r--"),
    ("/usr/share/doc/fepd/zh/审计员指南.md", "-rw-r--r--"),
    ("/usr/share/man/man1/fepd.1.gz", "-rw-r--r--"),
    ("/usr/share/bash-completion/completions/fepd", "-rw-r--r--"),
    (
        "/usr/share/fish/vendor_completions.d/fepd.fish",
        "-rw-r--r--",
    ),
];

#[test]
fn the_deb_declares_files_modes_conffile_and_scripts() {
    let deb = dist().join(format!("fepd_{}_amd64.deb", version()));
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb)).replace(" ./", " /");
    for (path, mode) in FILES {
        let (m, owner) = entry(&listing, path);
        assert_eq!((m, owner), (*mode, "root/root"), "{path}");
    }
    entry(&listing, "/usr/share/zsh/vendor-completions/_fepd");
    let (m, _) = entry(&listing, "/etc/fepd/");
    assert_eq!(m, "drwxr-x---");
    // The config is a conffile: never overwritten once edited.
    let conffiles = run(Command::new("dpkg-deb")
        .args(["-I"])
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/fepd/fepd.toml");
    let info = run(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .args(["Package", "Version", "Depends"]));
    assert!(info.contains(&format!("Version: {}", version())), "{info}");
    assert!(info.contains("libc6 (>= 2."), "{info}");
    // postinst runs the setup that creates the accounts and gives the
    // config to root:fepd 0640; an upgrade restarts a running fepd.
    let x = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(x.path()));
    let postinst = std::fs::read_to_string(x.path().join("postinst")).unwrap();
    assert!(postinst.contains("/usr/lib/fepd/setup"), "{postinst}");
    assert!(postinst.contains("try-restart fepd.service"), "{postinst}");
    let setup = std::fs::read_to_string(repo().join("packaging/setup.sh")).unwrap();
    assert!(
        setup.contains("chown root:fepd \"$f\"; chmod 0640 \"$f\""),
        "{setup}"
    );
    let postrm = std::fs::read_to_string(x.path().join("postrm")).unwrap();
    assert!(
        !postrm.contains("rm "),
        "removing never deletes data: {postrm}"
    );
}

#[test]
fn the_rpm_declares_owners_modes_config_and_scripts() {
    let rpm = dist().join(format!("fepd-{}-1.x86_64.rpm", version()));
    let listing = run(Command::new("rpm")
        .args(["-qlvp", "--nosignature"])
        .arg(&rpm));
    for (path, mode) in FILES {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} is not in the rpm:\n{listing}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        let owner = if *path == "/etc/fepd/fepd.toml" {
            "fepd"
        } else {
            "root"
        };
        assert_eq!((f[0], f[2], f[3]), (*mode, "root", owner), "{line}");
    }
    let etc = listing.lines().find(|l| l.ends_with(" /etc/fepd")).unwrap();
    assert!(
        etc.starts_with("drwxr-x---") && etc.contains(" root ") && etc.contains(" fepd "),
        "{etc}"
    );
    let config = run(Command::new("rpm")
        .args(["-qcp", "--nosignature"])
        .arg(&rpm));
    assert_eq!(config.trim(), "/etc/fepd/fepd.toml");
    let scripts = run(Command::new("rpm")
        .args(["-qp", "--scripts", "--nosignature"])
        .arg(&rpm));
    assert!(scripts.contains("preinstall scriptlet"), "{scripts}");
    assert!(scripts.contains("useradd --system --gid fepd"), "{scripts}");
    assert!(scripts.contains("/usr/lib/fepd/setup"), "{scripts}");
    // %config(noreplace): an edited config survives an upgrade.
    let flags = run(Command::new("rpm")
        .args([
            "-qp",
            "--nosignature",
            "--qf",
            "[%{FILEFLAGS:fflags} %{FILENAMES}\n]",
        ])
        .arg(&rpm));
    let conf = flags
        .lines()
        .find(|l| l.ends_with(" /etc/fepd/fepd.toml"))
        .unwrap();
    assert!(conf.starts_with('c') && conf.contains('n'), "{conf}");
}

#[test]
fn the_tarball_carries_install_sh_and_the_same_tree() {
    let tgz = dist().join(format!("fepd-{}-linux-x86_64.tar.gz", version()));
    let listing = run(Command::new("tar").arg("-tvzf").arg(&tgz));
    let top = format!("fepd-{}-linux-x86_64", version());
    let (m, _) = entry(&listing, &format!("{top}/install.sh"));
    assert_eq!(m, "-rwxr-xr-x");
    for (path, mode) in FILES {
        let (m, owner) = entry(&listing, &format!("{top}/root{path}"));
        assert_eq!((m, owner), (*mode, "0/0"), "{path}");
    }
}

/// The deb's tree on a scratch root, with the accounts and folders
/// sysusers.d and tmpfiles.d make there.
fn installed_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let deb = dist().join(format!("fepd_{}_amd64.deb", version()));
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(r));
    std::fs::create_dir_all(r.join("etc")).unwrap();
    // With --root and no file named, each tool reads the definitions the
    // package put in the root (usr/lib/sysusers.d, usr/lib/tmpfiles.d).
    run(Command::new("systemd-sysusers").arg(format!("--root={}", r.display())));
    run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", r.display()))
        .arg("--create"));
    root
}

fn id_of(root: &Path, file: &str, name: &str) -> u32 {
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    let line = text
        .lines()
        .find(|l| l.split(':').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {file}:\n{text}"));
    line.split(':').nth(2).unwrap().parse().unwrap()
}

#[test]
fn sysusers_and_tmpfiles_make_the_accounts_and_folders_with_their_owners() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = installed_root();
    let r = root.path();
    let fepd = id_of(r, "etc/passwd", "fepd");
    let fepd_gid = id_of(r, "etc/group", "fepd");
    let staff = id_of(r, "etc/group", "fepd-data");
    let group = std::fs::read_to_string(r.join("etc/group")).unwrap();
    let members = group.lines().find(|l| l.starts_with("fepd-data:")).unwrap();
    assert!(
        members.ends_with(":fepd"),
        "fepd is in fepd-data: {members}"
    );
    for (dir, mode, uid, gid) in [
        ("var/lib/fepd", 0o750, fepd, fepd_gid),
        ("var/log/fepd", 0o750, fepd, fepd_gid),
        ("srv/fepd/spool", 0o750, fepd, staff),
        ("srv/fepd", 0o755, 0, 0),
    ] {
        let m = std::fs::metadata(r.join(dir)).unwrap();
        assert_eq!(
            (m.permissions().mode() & 0o7777, m.uid(), m.gid()),
            (mode, uid, gid),
            "{dir}"
        );
    }
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify() {
    let root = installed_root();
    let r = root.path();
    let unit = r.join("usr/lib/systemd/system/fepd.service");
    // verify resolves the unit's dependencies (sysinit.target…) and
    // commands (/bin/kill) on the host, so it reads the unit as installed
    // with only the binary's path pointing into the scratch root. (The
    // man page is checked by the literal install, where it is installed.)
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    let copy = tempfile::tempdir().unwrap();
    let checked = copy.path().join("fepd.service");
    std::fs::write(
        &checked,
        unit_text.replace(
            "/usr/bin/fepd",
            &r.join("usr/bin/fepd").display().to_string(),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .arg(&checked)
        .output()
        .expect("systemd-analyze (.ci/run installs systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only lines about our unit count: verify also reads the host's units.
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("fepd")).collect();
    assert!(out.status.success() && ours.is_empty(), "{text}");
    for line in [
        "ExecStart=/usr/bin/fepd run --config /etc/fepd/fepd.toml",
        "LoadCredential=fepd.client_secret",
        "ReadWritePaths=/var/lib/fepd /var/log/fepd /srv/fepd/spool",
        "SupplementaryGroups=fepd-data",
        "Documentation=man:fepd(1) file:///usr/share/doc/fepd/README.md",
        "UMask=0027",
    ] {
        assert!(unit_text.lines().any(|l| l.starts_with(line)), "{line}");
    }
    // Every file the unit's Documentation= names is installed.
    assert!(r.join("usr/share/doc/fepd/README.md").is_file());
    assert!(r.join("usr/share/doc/fepd/zh").is_dir());
}

#[test]
fn the_shipped_etc_config_checks_clean_on_the_installed_layout() {
    let root = installed_root();
    let r = root.path();
    let cfg = r.join("etc/fepd/fepd.toml");
    // The layout's absolute paths, moved under the scratch root; the
    // data-staff group, which this host may not have, is one it has.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    for p in [
        "/srv/fepd",
        "/var/lib/fepd",
        "/usr/share/fepd",
        "/var/log/fepd",
    ] {
        text = text.replace(&format!("\"{p}"), &format!("\"{}{p}", r.display()));
    }
    assert!(text.contains("group = \"fepd-data\""));
    let text = text.replace("group = \"fepd-data\"", "group = \"root\"");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(r.join("usr/bin/fepd"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout.trim(), format!("✓ {} is valid", cfg.display()));
}
