//! Tokens: the two ways to get one (docs/protocol.md §2 client credentials, §2a
//! `app_key_hmac`), the lock-out after repeated bad secrets or signatures
//! (both variants), the memory of used signatures that makes a replay
//! fail, and checking a token presented with a push (which also names the
//! sender the token is bound to). Tokens live in memory only, so a restarted
//! simulator forces senders through renewal, as a restarted library would.
//! Neither tokens nor secrets are ever logged.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::Library;

/// Failures within this window count towards a lock-out.
const FAILURE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// This many failures within the window lock the client out.
const FAILURES_BEFORE_LOCKOUT: usize = 5;
/// How far the `app_key_hmac` timeStamp may be from the library's clock.
const MAX_CLOCK_SKEW_MS: u128 = 300_000;

/// The tokens issued so far, the recent failures per principal (a client
/// id, or an appId), and the `app_key_hmac` signatures already used.
pub(crate) struct TokenBook {
    book: Mutex<Book>,
    ttl: Duration,
    max_uses: Option<u64>,
    lockout: Duration,
}

#[derive(Default)]
struct Book {
    grants: HashMap<String, Grant>,
    failures: HashMap<String, VecDeque<Instant>>,
    locked_until: HashMap<String, Instant>,
    /// Accepted `keyInfo` signatures, each kept until its timestamp can no
    /// longer pass the clock check: a replay inside that window is refused.
    signatures: HashMap<String, Instant>,
}

struct Grant {
    expires_at: Instant,
    uses: u64,
    /// The sender code the credential that obtained the token is
    /// registered for; batches pushed with the token must carry it.
    sender: String,
}

impl TokenBook {
    pub(crate) fn new(ttl: Duration, max_uses: Option<u64>, lockout: Duration) -> Self {
        TokenBook {
            book: Mutex::new(Book::default()),
            ttl,
            max_uses,
            lockout,
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("token book mutex poisoned")
    }

    /// Issues a new random token bound to `sender`.
    pub(crate) fn issue(&self, sender: &str) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill(&mut bytes);
        let token = hex::encode(bytes);
        let now = Instant::now();
        let mut book = self.book();
        // Forget expired grants here, where the map grows, so it stays the
        // size of the live tokens.
        book.grants.retain(|_, g| g.expires_at > now);
        book.grants.insert(
            token.clone(),
            Grant {
                expires_at: now + self.ttl,
                uses: 0,
                sender: sender.to_owned(),
            },
        );
        token
    }

    /// Seconds `principal` stays locked out, if it is. A locked principal is
    /// refused even with the right credential, so that a guesser cannot
    /// tell a lock from a wrong guess.
    pub(crate) fn locked(&self, principal: &str) -> Option<u64> {
        let now = Instant::now();
        let mut book = self.book();
        let until = *book.locked_until.get(principal)?;
        if until > now {
            let left = until - now;
            return Some(left.as_secs() + u64::from(left.subsec_nanos() > 0));
        }
        book.locked_until.remove(principal);
        None
    }

    /// Counts a wrong credential presented for `principal`; the fifth within
    /// the window locks it out.
    pub(crate) fn failed(&self, principal: &str) {
        let now = Instant::now();
        let mut book = self.book();
        let failures = book.failures.entry(principal.to_owned()).or_default();
        failures.push_back(now);
        while failures
            .front()
            .is_some_and(|&t| now.duration_since(t) > FAILURE_WINDOW)
        {
            failures.pop_front();
        }
        if failures.len() >= FAILURES_BEFORE_LOCKOUT {
            book.failures.remove(principal);
            book.locked_until
                .insert(principal.to_owned(), now + self.lockout);
        }
    }

    /// A right credential: the failures so far are forgiven.
    pub(crate) fn succeeded(&self, principal: &str) {
        self.book().failures.remove(principal);
    }

    /// Whether `signature` is presented for the first time within the
    /// clock window; remembers it if so.
    pub(crate) fn first_use(&self, signature: &str) -> bool {
        let now = Instant::now();
        let mut book = self.book();
        book.signatures.retain(|_, until| *until > now);
        if book.signatures.contains_key(signature) {
            return false;
        }
        // A timestamp up to the skew ahead of the clock stays acceptable for
        // twice the skew from now.
        let keep = Duration::from_millis(2 * MAX_CLOCK_SKEW_MS as u64);
        book.signatures.insert(signature.to_owned(), now + keep);
        true
    }

    /// Checks a token presented with a push and counts the use; the sender
    /// code the token is bound to when it is good. A token past its
    /// lifetime or its allowed uses is refused.
    pub(crate) fn authorize(&self, token: Option<&str>) -> Option<String> {
        let token = token?;
        let mut book = self.book();
        let grant = book.grants.get_mut(token)?;
        if Instant::now() >= grant.expires_at {
            book.grants.remove(token);
            return None;
        }
        if self.max_uses.is_some_and(|max| grant.uses >= max) {
            return None;
        }
        grant.uses += 1;
        Some(grant.sender.clone())
    }
}

/// The token a push presents: `Authorization: Bearer …`, else the
/// `accessToken` query parameter of the `app_key_hmac` variant.
pub(crate) fn presented_token<'a>(
    headers: &'a HeaderMap,
    access_token: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    bearer.or(access_token).filter(|t| !t.is_empty())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ClientCredentialsForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `POST /api/v1/token` (docs/protocol.md §2).
pub(crate) async fn client_credentials(
    State(lib): State<Arc<Library>>,
    form: Result<Form<ClientCredentialsForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let client_id = form.client_id.unwrap_or_default();
    let principal = format!("client:{client_id}");
    if let Some(retry_after_secs) = lib.tokens.locked(&principal) {
        tracing::info!(%client_id, retry_after_secs, "token refused: locked out");
        lib.count("token_lockouts").await;
        return locked_response(
            oauth_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_locked"),
            retry_after_secs,
        );
    }
    let secret_ok = client_id == lib.opts.client_id
        && constant_time_eq(
            form.client_secret.unwrap_or_default().as_bytes(),
            lib.opts.client_secret.expose().as_bytes(),
        );
    if !secret_ok {
        tracing::info!(%client_id, "token refused: invalid client");
        lib.tokens.failed(&principal);
        lib.count("token_failures").await;
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    lib.tokens.succeeded(&principal);
    let token = lib.tokens.issue(&lib.opts.sender);
    tracing::info!(%client_id, "token issued");
    lib.count("tokens_issued").await;
    let body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lib.opts.token_ttl,
    });
    // RFC 6749 §5.1: token responses must not be cached.
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// A lock-out answer: 429 with `Retry-After`, for both token variants.
fn locked_response(body: Response, retry_after_secs: u64) -> Response {
    let mut response = body;
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

fn oauth_error(status: StatusCode, error: &'static str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppKeyForm {
    app_id: Option<String>,
    time_stamp: Option<String>,
    key_info: Option<String>,
    sys_code: Option<String>,
}

/// `keyInfo` of the `app_key_hmac` variant: lowercase hex of
/// HMAC-SHA256(key = appKey, message = appId + appKey + timeStamp).
pub(crate) fn key_info(app_id: &str, app_key: &str, time_stamp: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(app_id.as_bytes());
    mac.update(app_key.as_bytes());
    mac.update(time_stamp.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A refused `app_key_hmac` request: its `retCode` and `retDesc`.
type AppRefusal = (&'static str, &'static str);

const MISSING: AppRefusal = ("100001", "参数缺失 (missing parameters)");
const UNKNOWN_APP: AppRefusal = ("100002", "应用不存在 (unknown appId or sysCode)");
const BAD_SIGNATURE: AppRefusal = ("100004", "签名校验失败 (keyInfo does not match)");
const LOCKED: AppRefusal = ("100005", "账号已临时锁定 (temporarily locked)");
const REPLAYED: AppRefusal = ("100006", "签名已使用 (keyInfo replayed)");

/// `POST /apigateway/getAccessToken` (docs/protocol.md §2a). Failures are
/// answered HTTP 200 with a failure `retCode`, as gateways of this kind do:
/// the contract tells the sender to judge by `retCode` whatever the status,
/// and this is the case that checks it does. A lock-out is the exception:
/// 429 with `Retry-After`, as in the client-credentials variant.
pub(crate) async fn app_key_token(
    State(lib): State<Arc<Library>>,
    form: Result<Form<AppKeyForm>, FormRejection>,
) -> Response {
    let request = match form {
        Ok(Form(form)) => AppRequest::from_form(form),
        Err(_) => Err(MISSING),
    };
    let request = match request {
        Ok(r) => r,
        Err(refusal) => return app_refused(&lib, refusal).await,
    };
    let principal = format!("app:{}", request.app_id);
    if let Some(retry_after_secs) = lib.tokens.locked(&principal) {
        tracing::info!(app_id = %request.app_id, retry_after_secs, "token refused: locked out (app_key_hmac)");
        lib.count("token_lockouts").await;
        let (code, desc) = LOCKED;
        let body = Json(json!({"retCode": code, "retDesc": desc, "data": null})).into_response();
        return locked_response(body, retry_after_secs);
    }
    match check_app_key(&lib, &request) {
        Ok(()) => {
            lib.tokens.succeeded(&principal);
            tracing::info!(app_id = %request.app_id, "token issued (app_key_hmac)");
            lib.count("tokens_issued").await;
            let sender = lib.opts.app_sender.as_ref().unwrap_or(&lib.opts.sender);
            let token = lib.tokens.issue(sender);
            Json(json!({
                "retCode": "000000",
                "retDesc": "成功",
                "data": {"accessToken": token, "expiresIn": lib.opts.token_ttl},
            }))
            .into_response()
        }
        Err(refusal) => {
            // Only a wrong or replayed signature is a guess at the key; a
            // bad clock or an unknown appId locks nobody out.
            if refusal == BAD_SIGNATURE || refusal == REPLAYED {
                lib.tokens.failed(&principal);
            }
            app_refused(&lib, refusal).await
        }
    }
}

async fn app_refused(lib: &Library, (code, desc): AppRefusal) -> Response {
    tracing::info!(ret_code = code, "token refused (app_key_hmac)");
    lib.count("token_failures").await;
    Json(json!({"retCode": code, "retDesc": desc, "data": null})).into_response()
}

/// An `app_key_hmac` request with every parameter present.
struct AppRequest {
    app_id: String,
    time_stamp: String,
    key_info: String,
    sys_code: String,
}

impl AppRequest {
    fn from_form(form: AppKeyForm) -> Result<AppRequest, AppRefusal> {
        let present = |v: Option<String>| v.filter(|s| !s.is_empty()).ok_or(MISSING);
        Ok(AppRequest {
            app_id: present(form.app_id)?,
            time_stamp: present(form.time_stamp)?,
            key_info: present(form.key_info)?,
            sys_code: present(form.sys_code)?,
        })
    }
}

fn check_app_key(lib: &Library, r: &AppRequest) -> Result<(), AppRefusal> {
    let sys_code_ok = lib.opts.sys_code.as_ref().is_none_or(|s| *s == r.sys_code);
    if r.app_id != lib.opts.app_id || !sys_code_ok {
        return Err(UNKNOWN_APP);
    }
    let millis: u128 = r
        .time_stamp
        .parse()
        .map_err(|_| ("100003", "时间戳无效 (timeStamp is not epoch milliseconds)"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    if now.abs_diff(millis) > MAX_CLOCK_SKEW_MS {
        return Err((
            "100003",
            "时间戳超出允许范围 (timeStamp too far from the clock)",
        ));
    }
    let expected = key_info(&r.app_id, lib.opts.app_key.expose(), &r.time_stamp);
    if !constant_time_eq(r.key_info.as_bytes(), expected.as_bytes()) {
        return Err(BAD_SIGNATURE);
    }
    if !lib.tokens.first_use(&r.key_info) {
        return Err(REPLAYED);
    }
    Ok(())
}

/// Compares secrets without an early exit, so response time says nothing
/// about how much of a guess was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
