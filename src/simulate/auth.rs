//! Tokens: the two ways to get one (PROTOCOL.md §2 client credentials, §2a
//! `app_key_hmac`), the lock-out after repeated bad secrets, and checking a
//! token presented with a push. Tokens live in memory only, so a restarted
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

/// The tokens issued so far and the recent failures per client id.
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
}

struct Grant {
    expires_at: Instant,
    uses: u64,
}

/// The answer to a client-credentials request.
pub(crate) enum Verdict {
    Granted(String),
    Invalid,
    Locked { retry_after_secs: u64 },
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

    /// Issues a new random token.
    pub(crate) fn issue(&self) -> String {
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
            },
        );
        token
    }

    /// Decides a client-credentials request for `client_id`, whose secret
    /// was found right or wrong by the caller. A locked-out client is
    /// refused even with the right secret, so the sender cannot tell a lock
    /// from a guess that happened to be right.
    pub(crate) fn client_credentials(&self, client_id: &str, secret_ok: bool) -> Verdict {
        let now = Instant::now();
        {
            let mut book = self.book();
            if let Some(&until) = book.locked_until.get(client_id) {
                if until > now {
                    let left = until - now;
                    return Verdict::Locked {
                        retry_after_secs: left.as_secs() + u64::from(left.subsec_nanos() > 0),
                    };
                }
                book.locked_until.remove(client_id);
            }
            if !secret_ok {
                let failures = book.failures.entry(client_id.to_owned()).or_default();
                failures.push_back(now);
                while failures
                    .front()
                    .is_some_and(|&t| now.duration_since(t) > FAILURE_WINDOW)
                {
                    failures.pop_front();
                }
                if failures.len() >= FAILURES_BEFORE_LOCKOUT {
                    book.failures.remove(client_id);
                    book.locked_until
                        .insert(client_id.to_owned(), now + self.lockout);
                }
                return Verdict::Invalid;
            }
            book.failures.remove(client_id);
        }
        Verdict::Granted(self.issue())
    }

    /// Checks a token presented with a push and counts the use. A token past
    /// its lifetime or its allowed uses is refused.
    pub(crate) fn authorize(&self, token: Option<&str>) -> bool {
        let Some(token) = token else {
            return false;
        };
        let mut book = self.book();
        let Some(grant) = book.grants.get_mut(token) else {
            return false;
        };
        if Instant::now() >= grant.expires_at {
            book.grants.remove(token);
            return false;
        }
        if self.max_uses.is_some_and(|max| grant.uses >= max) {
            return false;
        }
        grant.uses += 1;
        true
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

/// `POST /api/v1/token` (PROTOCOL.md §2).
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
    let secret_ok = client_id == lib.opts.client_id
        && constant_time_eq(
            form.client_secret.unwrap_or_default().as_bytes(),
            lib.opts.client_secret.expose().as_bytes(),
        );
    match lib.tokens.client_credentials(&client_id, secret_ok) {
        Verdict::Granted(token) => {
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
        Verdict::Invalid => {
            tracing::info!(%client_id, "token refused: invalid client");
            lib.count("token_failures").await;
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client")
        }
        Verdict::Locked { retry_after_secs } => {
            tracing::info!(%client_id, retry_after_secs, "token refused: locked out");
            lib.count("token_lockouts").await;
            let mut response = oauth_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_locked");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
    }
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

/// `POST /apigateway/getAccessToken` (PROTOCOL.md §2a). Failures are
/// answered HTTP 200 with a failure `retCode`, as gateways of this kind do:
/// the contract tells the sender to judge by `retCode` whatever the status,
/// and this is the case that checks it does.
pub(crate) async fn app_key_token(
    State(lib): State<Arc<Library>>,
    form: Result<Form<AppKeyForm>, FormRejection>,
) -> Response {
    let verdict = match form {
        Ok(Form(form)) => check_app_key(&lib, form),
        Err(_) => Err(("100001", "参数缺失 (missing parameters)")),
    };
    match verdict {
        Ok(app_id) => {
            tracing::info!(%app_id, "token issued (app_key_hmac)");
            lib.count("tokens_issued").await;
            let token = lib.tokens.issue();
            Json(json!({
                "retCode": "000000",
                "retDesc": "成功",
                "data": {"accessToken": token, "expiresIn": lib.opts.token_ttl},
            }))
            .into_response()
        }
        Err((code, desc)) => {
            tracing::info!(ret_code = code, "token refused (app_key_hmac)");
            lib.count("token_failures").await;
            Json(json!({"retCode": code, "retDesc": desc, "data": null})).into_response()
        }
    }
}

fn check_app_key(lib: &Library, form: AppKeyForm) -> Result<String, (&'static str, &'static str)> {
    const MISSING: (&str, &str) = ("100001", "参数缺失 (missing parameters)");
    let app_id = form.app_id.filter(|s| !s.is_empty()).ok_or(MISSING)?;
    let time_stamp = form.time_stamp.filter(|s| !s.is_empty()).ok_or(MISSING)?;
    let given = form.key_info.filter(|s| !s.is_empty()).ok_or(MISSING)?;
    let sys_code = form.sys_code.filter(|s| !s.is_empty()).ok_or(MISSING)?;

    let sys_code_ok = lib.opts.sys_code.as_ref().is_none_or(|s| *s == sys_code);
    if app_id != lib.opts.app_id || !sys_code_ok {
        return Err(("100002", "应用不存在 (unknown appId or sysCode)"));
    }
    let millis: u128 = time_stamp
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
    let expected = key_info(&app_id, lib.opts.app_key.expose(), &time_stamp);
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(("100004", "签名校验失败 (keyInfo does not match)"));
    }
    Ok(app_id)
}

/// Compares secrets without an early exit, so response time says nothing
/// about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
