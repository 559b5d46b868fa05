//! The Chinese guides (`docs/zh/`) say what commands print: every
//! ```console block marked `<!-- check -->` is run here, command by
//! command, against a scratch copy of the package layout (the shipped
//! /etc config, schemas and samples under a temp root, with the daemon
//! running as systemd would run it), and its output compared with the
//! guide's. In the guide, `…` stands for what varies (a line's rest, or a
//! line alone for any number of lines); paths are the installed ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

const GUIDES: &[&str] = &["安装与运维手册.md", "数据专员指南.md", "审计员指南.md"];

/// The installed paths the guides use, each moved under the scratch root.
const LAYOUT: &[&str] = &[
    "/etc/fepd",
    "/var/lib/fepd",
    "/srv/fepd",
    "/usr/share/doc/fepd",
    "/usr/share/fepd",
    "/var/log/fepd",
    "/var/backups/fepd",
];

struct Step {
    at: String,
    command: String,
    expected: Vec<String>,
}

/// The checked blocks of a guide, as commands with their expected output.
fn steps(guide: &str, text: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((_, l)) = lines.next() {
        if l.trim() != "<!-- check -->" {
            continue;
        }
        let (n, fence) = lines.next().expect("a block after <!-- check -->");
        assert_eq!(
            fence.trim(),
            "```console",
            "{guide}:{}: a checked block is ```console",
            n + 1
        );
        for (n, l) in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            if let Some(cmd) = l.strip_prefix("$ ") {
                out.push(Step {
                    at: format!("{guide}:{}", n + 1),
                    command: cmd.to_string(),
                    expected: Vec::new(),
                });
            } else {
                out.last_mut()
                    .unwrap_or_else(|| panic!("{guide}:{}: output before a `$ ` command", n + 1))
                    .expected
                    .push(l.to_string());
            }
        }
    }
    out
}

/// Whether `line` matches `pattern`, where `…` matches any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether the output lines match the expected ones (a lone `…` line
/// matches any number of lines).
fn lines_match(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e.trim() == "…" => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((e, rest)) => {
            !actual.is_empty() && line_matches(e, actual[0]) && lines_match(rest, &actual[1..])
        }
    }
}

/// A scratch install: the /etc config with its paths under `root`, the
/// schemas and samples where the packages put them.
fn scratch_install(root: &Path) -> PathBuf {
    let repo = repo();
    let to_root = |text: &str| {
        LAYOUT.iter().fold(text.to_string(), |t, p| {
            t.replace(&format!("\"{p}"), &format!("\"{}{p}", root.display()))
        })
    };
    let cfg = root.join("etc/fepd/fepd.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    let text = to_root(&std::fs::read_to_string(repo.join("config/fepd.etc.toml")).unwrap());
    // The data-staff group may not exist on this host; root's group does.
    let text = text.replace("group = \"fepd-data\"", "group = \"root\"");
    std::fs::write(&cfg, text).unwrap();
    for (from, to) in [
        ("schemas", "usr/share/fepd/schemas"),
        ("samples", "usr/share/doc/fepd/samples"),
    ] {
        std::fs::create_dir_all(root.join(to)).unwrap();
        for e in std::fs::read_dir(repo.join(from)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), root.join(to).join(e.file_name())).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("var/backups/fepd")).unwrap();
    cfg
}

#[test]
fn the_checked_commands_in_the_chinese_guides_print_what_the_guides_say() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = scratch_install(root);
    let bin_dir = Path::new(FEPD).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let log = std::fs::File::create(root.join("daemon.log")).unwrap();
    let mut daemon = Command::new(FEPD)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("FEPD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let db = root.join("var/lib/fepd/fepd.db");
    wait_for(
        "the daemon's state database",
        Duration::from_secs(20),
        || db.exists(),
    );
    // A sample file through the daemon, so the log has a day's work.
    let inbox = root.join("srv/fepd/spool/case_accept/inbox");
    wait_for("the inbox", Duration::from_secs(10), || inbox.is_dir());
    std::fs::copy(
        repo().join("samples/case_accept.csv"),
        inbox.join("s.csv.part"),
    )
    .unwrap();
    std::fs::rename(inbox.join("s.csv.part"), inbox.join("s.csv")).unwrap();
    let receipt = root.join("srv/fepd/spool/case_accept/done/s.csv.receipt.json");
    wait_for("the sample's receipt", Duration::from_secs(30), || {
        receipt.exists()
    });

    let mut failures = Vec::new();
    for guide in GUIDES {
        let text = std::fs::read_to_string(repo().join("docs/zh").join(guide)).unwrap();
        let steps = steps(guide, &text);
        assert!(!steps.is_empty(), "{guide} has no checked command");
        for s in steps {
            let command = LAYOUT.iter().fold(s.command.clone(), |c, p| {
                c.replace(p, &format!("{}{p}", root.display()))
            });
            let out = Command::new("bash")
                .args(["-c", &format!("{command} 2>&1")])
                .current_dir(root)
                .env("PATH", &path)
                .env("FEPD_LOG", "warn")
                .env("NO_COLOR", "1")
                // A host in China: `date` agrees with the config's +08:00.
                .env("TZ", "UTC-8")
                .output()
                .unwrap();
            let actual =
                String::from_utf8_lossy(&out.stdout).replace(&root.display().to_string(), "");
            let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
            if !out.status.success() || !lines_match(&s.expected, &actual) {
                failures.push(format!(
                    "{}: $ {}\n--- the guide says ---\n{}\n--- it printed ({}) ---\n{}",
                    s.at,
                    s.command,
                    s.expected.join("\n"),
                    out.status,
                    actual.join("\n")
                ));
            }
        }
    }
    unsafe {
        libc::kill(daemon.id() as i32, libc::SIGTERM);
    }
    let _ = daemon.wait();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_output_matcher_needs_every_line() {
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(lines_match(&e(&["✓ a … b"]), &["✓ a 12 b"]));
    assert!(!lines_match(&e(&["✓ a … b"]), &["✓ a 12 c"]));
    assert!(lines_match(&e(&["x", "…", "y"]), &["x", "1", "2", "y"]));
    assert!(!lines_match(&e(&["x"]), &["x", "extra"]));
    assert!(!lines_match(&e(&["x", "y"]), &["x"]));
}
