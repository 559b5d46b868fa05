//! The console's 集群 page (README "Web console", docs/cluster.md "Fleet
//! view") against the real three-server JetStream cluster (`nats.rs`) and
//! two fepd nodes, the console on one: both nodes listed with their state,
//! a SIGKILLed one turning stale; the cluster's exchange log with both
//! nodes' entries; each node's chain intact; data staff refused; with the
//! servers gone, a page that says so within the bound. And on a single
//! host, a page saying it is no cluster node, and no menu link.

use std::time::{Duration, Instant};

use crate::cluster::node;
use crate::console::{Browser, PASSWORD, add_user, refusals};
use crate::harness::*;
use crate::nats::Nats;

/// The part of `page` after the heading `title` (up to the next heading).
fn section<'a>(page: &'a str, title: &str) -> &'a str {
    let at = page
        .find(&format!("<h2>{title}</h2>"))
        .unwrap_or_else(|| panic!("no section {title}: {page}"));
    let rest = &page[at + title.len() + 9..];
    &rest[..rest.find("<h2>").unwrap_or(rest.len())]
}

/// The 集群 page at `path` once the servers answered it: on a loaded
/// machine one read may pass the page's bound, and the page then says the
/// servers cannot be reached (checked on its own below).
fn cluster_page(b: &mut Browser, path: &str) -> String {
    let start = Instant::now();
    loop {
        let (status, page) = b.get(path);
        assert_eq!(status, 200, "{page}");
        if !page.contains("无法连接集群服务器") {
            return page;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{page}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The 节点 table's row of `node`, from its `<tr` to its `</tr>`.
fn fleet_row(page: &str, node: &str) -> Option<String> {
    let fleet = section(page, "节点");
    let cell = format!("<td>{node}</td>");
    let at = fleet.find(&cell)?;
    let start = fleet[..at].rfind("<tr")?;
    let end = at + fleet[at..].find("</tr>")?;
    Some(fleet[start..end].to_string())
}

#[test]
fn the_console_shows_the_fleet_the_cluster_s_log_and_each_chain() {
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let extra = "heartbeat_secs = 1\nrequest_timeout_secs = 2";
    let addr = free_addr();
    let a = Env::new(&format!(
        "{}{}\n[console]\nlisten = \"{addr}\"\n",
        http_sink(&lib.base_url, ""),
        nats.cluster_toml("a", extra)
    ));
    a.set("sink.mode", "http");
    for (user, role) in [
        ("管理员", "admin"),
        ("审计员", "auditor"),
        ("操作员", "operator"),
    ] {
        add_user(&a, user, role, &[]);
    }
    add_user(&a, "专员", "data_staff", &["--datasets", "case_accept"]);
    let b = node(&nats, &lib, "b", extra);
    let _da = a.start_ready();
    let db = b.start_ready();

    // The operator: both nodes running, and the cluster's log holds
    // entries of both (each node's start at least).
    let mut op = Browser::new(&addr);
    assert_eq!(op.login("操作员", PASSWORD).0, 303);
    let (_, home) = op.get("/");
    assert!(home.contains("href=\"/cluster\""), "{home}");
    a.wait(
        "both nodes running, both in the cluster's log",
        Duration::from_secs(30),
        || {
            let page = cluster_page(&mut op, "/cluster");
            let log = section(&page, "集群交换日志");
            ["a", "b"].iter().all(|n| {
                fleet_row(&page, n).is_some_and(|r| r.contains("运行中 running"))
                    && log.contains(&format!("<tr><td>{n}</td>"))
            })
        },
    );
    // One node's entries only, newest first.
    let page = cluster_page(&mut op, "/cluster?node=b");
    let log = section(&page, "集群交换日志");
    assert!(!log.contains("<tr><td>a</td>"), "{log}");
    let seqs: Vec<i64> = log
        .split("<tr><td>b</td><td>")
        .skip(1)
        .map(|r| r.split('<').next().unwrap().parse().unwrap())
        .collect();
    assert!(!seqs.is_empty(), "{log}");
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");

    // The auditor verifies each node's chain.
    let mut auditor = Browser::new(&addr);
    assert_eq!(auditor.login("审计员", PASSWORD).0, 303);
    let page = cluster_page(&mut auditor, "/cluster?verify=1");
    let chains = section(&page, "链校验");
    for n in ["a", "b"] {
        assert!(
            chains.contains(&format!(
                "<td>{n}</td><td class=\"ok\">链完整（chain intact）："
            )),
            "{chains}"
        );
    }
    assert!(!chains.contains("CHAIN BROKEN"), "{chains}");

    // Data staff may not look, and the refusal is logged.
    let mut staff = Browser::new(&addr);
    assert_eq!(staff.login("专员", PASSWORD).0, 303);
    let (_, home) = staff.get("/");
    assert!(!home.contains("href=\"/cluster\""), "{home}");
    let (status, page) = staff.get("/cluster");
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("无权查看集群"), "{page}");
    assert!(
        refusals(&a).contains(&("专员".into(), "cluster".into(), "role".into())),
        "{:?}",
        refusals(&a)
    );

    // b SIGKILLed: stale once three heartbeats pass; a still running.
    db.kill();
    a.wait("b turns stale", Duration::from_secs(20), || {
        let page = cluster_page(&mut op, "/cluster");
        fleet_row(&page, "b")
            .is_some_and(|r| r.starts_with("<tr class=\"bad\">") && r.contains("失联 STALE"))
    });
    let page = cluster_page(&mut op, "/cluster");
    let row = fleet_row(&page, "a").unwrap();
    assert!(row.contains("运行中 running"), "{row}");

    // Every server gone: the page still answers, within the bound (2 s
    // for each of three servers, and two more), naming them.
    nats.kill_all();
    let start = Instant::now();
    let (status, page) = op.get("/cluster");
    let took = start.elapsed();
    assert_eq!(status, 200, "{page}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(page.contains("无法连接集群服务器"), "{page}");
    assert!(page.contains("原因（reason）：cannot connect"), "{page}");
    for url in nats.urls() {
        assert!(page.contains(&url), "{url}: {page}");
    }
    // The rest of the console goes on.
    assert_eq!(op.get("/").0, 200);
}

#[test]
fn a_single_host_s_console_says_it_is_no_cluster_node() {
    let addr = free_addr();
    let env = Env::new(&format!("[console]\nlisten = \"{addr}\"\n"));
    add_user(&env, "操作员", "operator", &[]);
    let _d = env.start_ready();
    let mut op = Browser::new(&addr);
    assert_eq!(op.login("操作员", PASSWORD).0, 303);
    let (_, home) = op.get("/");
    assert!(!home.contains("href=\"/cluster\""), "{home}");
    let (status, page) = op.get("/cluster");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("本机不是集群节点"), "{page}");
}
