//! The console's scripts, compiled into the binary (exchange hosts are
//! offline; nothing is loaded from elsewhere): htmx (vendored from the
//! `htmx.org` npm package, 0BSD licence in `assets/htmx-LICENSE`), which
//! filters lists and refreshes the overview in place, and a few lines of
//! our own that ask before an action. Served at paths naming their
//! version, so they may be cached for a year; every page works without
//! them. They hold nothing about anyone, so they are served without a
//! session (the one exception, with the login form, to the role check).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The htmx release vendored.
pub const HTMX: &str = "/assets/htmx-2.0.11.min.js";
/// Our script, at a path changing with each release.
pub const SCRIPT: &str = concat!("/assets/console-", env!("CARGO_PKG_VERSION"), ".js");

const HTMX_JS: &[u8] = include_bytes!("assets/htmx-2.0.11.min.js");
const CONSOLE_JS: &[u8] = include_bytes!("assets/console.js");

fn script(bytes: &'static [u8]) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

pub async fn htmx() -> Response {
    script(HTMX_JS)
}

pub async fn console() -> Response {
    script(CONSOLE_JS)
}
