//! `fepd selftest`: the joint-test (联调) checklist against the real
//! library — credentials, a token, and a zero-record probe batch on each
//! route (docs/protocol.md §3). Nothing is stored by the library or by fepd.

use std::collections::BTreeMap;

use std::sync::Arc;

use crate::config::Config;
use crate::forward::push::Forwarder;
use crate::state::log::{self, Head, LogEntry};

use super::Exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this route (`category/resource`) or dataset.
    #[arg(long, value_name = "ROUTE")]
    route: Option<String>,
}

/// One line of the checklist.
fn line(ok: bool, what: &str, detail: &str) {
    println!("{} {what}: {detail}", if ok { "✓" } else { "✗" });
}

pub fn run(cfg: Config, a: &Args) -> anyhow::Result<Exit> {
    let loaded = match crate::config::load(cfg) {
        Ok(l) => l,
        Err(e) => {
            line(false, "config", &e.lines().join("; "));
            return Ok(Exit::Findings);
        }
    };
    let cfg = &loaded.cfg;
    let Some(http) = cfg.sink.http.clone() else {
        line(
            false,
            "config",
            "no [sink.http] table: nothing to test against (outbox mode needs no library)",
        );
        return Ok(Exit::Findings);
    };
    line(true, "config", &format!("library at {}", http.base_url));
    if http.base_url.starts_with("http://") {
        println!(
            "! transport: plain http:// — credentials and personal data would cross the network unencrypted"
        );
    }
    let tz = cfg.tz();
    // The route of each dataset, in config order; a route shared by several
    // datasets is probed once, with its first dataset.
    let mut routes: BTreeMap<String, String> = BTreeMap::new();
    for d in &cfg.datasets {
        let route = format!("{}/{}", d.category, d.resource);
        if a.route
            .as_ref()
            .is_some_and(|r| *r != route && *r != d.name)
        {
            continue;
        }
        routes.entry(route).or_insert_with(|| d.name.clone());
    }
    if routes.is_empty() {
        line(
            false,
            "routes",
            &format!(
                "no dataset has the route or name {}",
                a.route.as_deref().unwrap_or("")
            ),
        );
        return Ok(Exit::Findings);
    }
    let fwd = match Forwarder::new(cfg.state_db(), cfg.spool_dir.clone(), tz, http) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            line(false, "credentials", &format!("{e:#}"));
            return Ok(Exit::Findings);
        }
    };
    line(true, "credentials", "readable, not group/world-readable");
    // The probe carries the exchange-log head, as every batch does; the
    // selftest itself is an entry, so the head is a real one even before
    // the daemon's first start, and auditors see that the joint test ran.
    let head = match record_selftest(cfg, tz, &routes) {
        Ok(h) => h,
        Err(e) => {
            line(false, "state", &format!("{e:#}"));
            return Ok(Exit::Findings);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let failures = rt.block_on(async {
        if let Err(e) = fwd.token().await {
            line(false, "token", &e.to_string());
            return routes.len() + 1;
        }
        line(true, "token", &format!("issued ({:?})", fwd.tokens.mode()));
        let mut failures = 0;
        for (route, dataset) in &routes {
            let version = loaded
                .schema(dataset)
                .map(|s| s.schema_version.clone())
                .unwrap_or_default();
            let verdict = fwd
                .probe_verdict(route, dataset, &cfg.sender, &version, &head)
                .await
                .map(|()| "accepted (auth, route and digest checked)".to_string());
            failures += usize::from(verdict.is_err());
            let (Ok(detail) | Err(detail)) = &verdict;
            line(verdict.is_ok(), &format!("probe {route}"), detail);
        }
        failures
    });
    if failures == 0 {
        println!("selftest passed: {} route(s)", routes.len());
        Ok(Exit::Ok)
    } else {
        println!("selftest failed: {failures} check(s)");
        Ok(Exit::Findings)
    }
}

/// Appends the `selftest` entry and returns the new log head.
fn record_selftest(
    cfg: &Config,
    tz: chrono::FixedOffset,
    routes: &BTreeMap<String, String>,
) -> anyhow::Result<Head> {
    let mut conn = crate::state::open(&cfg.state_db())?;
    let base_url = cfg.sink.http.as_ref().map(|h| h.base_url.as_str());
    Ok(log::append_alone(
        &mut conn,
        tz,
        LogEntry::Selftest {
            library: base_url,
            routes: routes.keys().map(String::as_str).collect(),
            by: crate::cli::operator::name(),
        },
    )?)
}
