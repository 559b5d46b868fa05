//! Access tokens (docs/protocol.md §2, §2a): OAuth 2.0 client credentials, or
//! the `app_key_hmac` variant. A token is cached and renewed at 80 % of its
//! life; it is never written to any log, and error texts from the HTTP
//! client are stripped of URLs (which may carry `?accessToken=`).

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::Mutex;

use super::refusal::Refusals;
use crate::config::AuthMode;

/// Credentials, read once at start-up from files or the environment.
#[derive(Clone)]
pub enum Credentials {
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
    AppKeyHmac {
        app_id: String,
        app_key: String,
        sys_code: String,
    },
}

impl std::fmt::Debug for Credentials {
    // Secrets must never reach a log, not even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ClientCredentials { client_id, .. } => {
                write!(
                    f,
                    "ClientCredentials {{ client_id: {client_id:?}, client_secret: *** }}"
                )
            }
            Credentials::AppKeyHmac {
                app_id, sys_code, ..
            } => write!(
                f,
                "AppKeyHmac {{ app_id: {app_id:?}, sys_code: {sys_code:?}, app_key: *** }}"
            ),
        }
    }
}

impl Credentials {
    pub fn mode(&self) -> AuthMode {
        match self {
            Credentials::ClientCredentials { .. } => AuthMode::ClientCredentials,
            Credentials::AppKeyHmac { .. } => AuthMode::AppKeyHmac,
        }
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The library refused the credentials (or locked the client out): an
    /// operator must act. Token requests now wait `retry_in`, growing per
    /// refusal (see `refusal`).
    #[error("token refused: {reason} (check the credentials); next token request in {} s", retry_in.as_secs())]
    Refused { reason: String, retry_in: Duration },
    /// Still waiting after a refusal: no request was made.
    #[error("credentials refused ({reason}); next token request in {} s", retry_in.as_secs())]
    Waiting { reason: String, retry_in: Duration },
    /// Network trouble or a server error: try again later.
    #[error("token request failed: {0}")]
    Transient(String),
}

impl TokenError {
    /// How long the caller should wait before asking again, if the
    /// credential back-off decides it.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            TokenError::Refused { retry_in, .. } | TokenError::Waiting { retry_in, .. } => {
                Some(*retry_in)
            }
            TokenError::Transient(_) => None,
        }
    }
}

/// How one token request failed.
enum Failure {
    Refused(String),
    Locked(Option<Duration>),
    Transient(String),
}

struct Cached {
    token: String,
    renew_at: Instant,
}

/// Hands out a valid token, fetching one when needed.
pub struct TokenSource {
    client: reqwest::Client,
    url: String,
    creds: Credentials,
    cached: Mutex<Option<Cached>>,
    /// Credential back-off: the refusal episode, if one is under way.
    pub refusals: Refusals,
}

#[derive(Deserialize)]
struct OAuthToken {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppToken {
    ret_code: String,
    #[serde(default)]
    ret_desc: Option<String>,
    #[serde(default)]
    data: Option<AppTokenData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppTokenData {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `keyInfo` of docs/protocol.md §2a: lowercase hex HMAC-SHA256 with the app
/// key as key over `appId + appKey + timeStamp`.
pub fn key_info(app_id: &str, app_key: &str, timestamp_ms: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(app_id.as_bytes());
    mac.update(app_key.as_bytes());
    mac.update(timestamp_ms.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The longest wait a library's `Retry-After` can ask for. A larger value
/// (`99999999999`, or `u64::MAX`, which would overflow the retry time) is
/// clamped to it, so that a hostile or broken answer holds a route for an
/// hour at most, never for centuries and never for a negative time.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Seconds from a `Retry-After` header (delta-seconds form), at most
/// [`MAX_RETRY_AFTER`].
pub fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: a number too large for u64 is simply very large.
    let secs = text.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// An HTTP client error as text, without the URL (which may hold a token).
pub fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection error"
    } else {
        "request error"
    };
    format!("{kind}: {}", e.without_url())
}

impl TokenSource {
    /// `backoff` is the first wait after a refused credential.
    pub fn new(
        client: reqwest::Client,
        url: String,
        creds: Credentials,
        backoff: Duration,
    ) -> TokenSource {
        TokenSource {
            client,
            url,
            creds,
            cached: Mutex::new(None),
            refusals: Refusals::new(backoff),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.creds.mode()
    }

    /// A token valid for now: the cached one until 80 % of its life, then a
    /// fresh one — unless the library refused the credentials lately, when
    /// no request is made until the back-off allows it.
    pub async fn get(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        if let Some((reason, retry_in)) = self.refusals.waiting() {
            return Err(TokenError::Waiting { reason, retry_in });
        }
        let (token, life) = match self.fetch().await {
            Ok(t) => t,
            Err(Failure::Transient(e)) => return Err(TokenError::Transient(e)),
            Err(Failure::Refused(reason)) => {
                let retry_in = self.refusals.refused(reason.clone(), None);
                return Err(TokenError::Refused { reason, retry_in });
            }
            Err(Failure::Locked(at_least)) => {
                // A lock-out is not a bad secret (docs/protocol.md §2), but it
                // is a refusal: wait at least what the library asks.
                let reason = "HTTP 429 temporarily_locked".to_string();
                let retry_in = self.refusals.refused(reason.clone(), at_least);
                return Err(TokenError::Refused { reason, retry_in });
            }
        };
        self.refusals.granted();
        *cached = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + life.mul_f64(0.8),
        });
        Ok(token)
    }

    /// Drops `stale` if it is still the cached token (a 401 said it is no
    /// longer valid), so the next `get` fetches a new one.
    pub async fn invalidate(&self, stale: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| c.token == stale) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<(String, Duration), Failure> {
        let req = match &self.creds {
            Credentials::ClientCredentials {
                client_id,
                client_secret,
            } => self.client.post(&self.url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.as_str()),
            ]),
            Credentials::AppKeyHmac {
                app_id,
                app_key,
                sys_code,
            } => {
                let ts = chrono::Utc::now().timestamp_millis();
                self.client.post(&self.url).form(&[
                    ("appId", app_id.as_str()),
                    ("timeStamp", ts.to_string().as_str()),
                    ("keyInfo", key_info(app_id, app_key, ts).as_str()),
                    ("sysCode", sys_code.as_str()),
                ])
            }
        };
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Transient(describe(e)))?;
        let status = resp.status();
        let ra = retry_after(resp.headers());
        let text = resp
            .text()
            .await
            .map_err(|e| Failure::Transient(describe(e)))?;
        if status.as_u16() == 429 {
            return Err(Failure::Locked(ra));
        }
        if status.is_server_error() {
            return Err(Failure::Transient(format!("HTTP {status}")));
        }
        match &self.creds {
            Credentials::ClientCredentials { .. } => {
                if !status.is_success() {
                    let err = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    return Err(Failure::Refused(format!("HTTP {status} {err}")));
                }
                let t: OAuthToken = serde_json::from_str(&text).map_err(|e| {
                    Failure::Transient(format!("token response not understood: {e}"))
                })?;
                Ok((
                    t.access_token,
                    Duration::from_secs(t.expires_in.unwrap_or(7200).max(1)),
                ))
            }
            Credentials::AppKeyHmac { .. } => {
                let t: Option<AppToken> = serde_json::from_str(&text).ok();
                match t {
                    Some(AppToken {
                        ret_code,
                        data: Some(d),
                        ..
                    }) if status.is_success() && ret_code == "000000" => Ok((
                        d.access_token,
                        Duration::from_secs(d.expires_in.unwrap_or(7200).max(1)),
                    )),
                    Some(t) => Err(Failure::Refused(format!(
                        "HTTP {status} retCode {} {}",
                        t.ret_code,
                        t.ret_desc.unwrap_or_default()
                    ))),
                    None => Err(Failure::Refused(format!(
                        "HTTP {status}, response not understood"
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_clamped_to_an_hour() {
        let ra = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            retry_after(&h)
        };
        assert_eq!(ra("7"), Some(Duration::from_secs(7)));
        assert_eq!(ra("99999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(ra("18446744073709551615"), Some(MAX_RETRY_AFTER));
        assert_eq!(ra("99999999999999999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(ra("-5"), None);
        assert_eq!(ra("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn key_info_is_hmac_of_id_key_and_time() {
        // Independent computation of the same HMAC.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k3y").unwrap();
        mac.update(b"app1k3y1700000000000");
        assert_eq!(
            key_info("app1", "k3y", 1_700_000_000_000),
            hex::encode(mac.finalize().into_bytes())
        );
        assert_eq!(key_info("app1", "k3y", 1).len(), 64);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::ClientCredentials {
            client_id: "fep".into(),
            client_secret: "s3cr3t".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let c = Credentials::AppKeyHmac {
            app_id: "a".into(),
            app_key: "k3y".into(),
            sys_code: "s".into(),
        };
        assert!(!format!("{c:?}").contains("k3y"));
    }
}
