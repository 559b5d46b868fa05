//! Push mode (docs/protocol.md §2–§4), one of the two delivery modes: send
//! sealed batches to the library. This module sends (tokens in `auth` and
//! `refusal`, one push in `send`) and schedules (`scheduler`); what an
//! answer does to the batch is `crate::outbox::apply`'s.
//!
//! One task per route with pending batches, at most `concurrency` at once.
//! A route keeps order per record key (docs/protocol.md §4 rule 3, the
//! rule in `order`): a batch is sent only once every earlier batch of the
//! route sharing one of its keys was answered; batches with disjoint keys
//! are in flight together, up to the route's `inflight` (`1`: strict seal
//! order, the oldest pending batch retried before anything behind it).
//! A batch waiting for a retry holds back only the batches sharing a key
//! with it. Parked batches are no longer pending, so they never block their
//! route. Every outcome is one transaction with its exchange-log entry.

mod auth;
pub mod order;
pub mod refusal;
mod scheduler;
mod send;

pub use auth::{Credentials, TokenError, TokenSource, key_info};
pub use send::{Answer, classify};

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::FixedOffset;

use crate::config::{AuthMode, HttpSink};
use crate::outbox::Reply;
use crate::secrets::SecretError;

/// Why push mode cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A secret could not be read (`what`: "client secret", "app key").
    #[error("{what}: {source}")]
    Secret {
        what: &'static str,
        source: SecretError,
    },
    /// A `[sink.http]` key the auth mode needs is absent.
    #[error("sink.http.{0} is required")]
    Missing(&'static str),
    #[error("reading ca_file {}: {source}", path.display())]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ca_file is not a PEM certificate: {0}")]
    CaPem(#[source] reqwest::Error),
    #[error("{0}")]
    Client(#[source] reqwest::Error),
    /// The state database (opening it, or a transaction), whatever the
    /// store's own error type.
    #[error("{0}")]
    State(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("a state task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl PushError {
    /// The state database's error, boxed.
    pub fn state(e: impl std::error::Error + Send + Sync + 'static) -> PushError {
        PushError::State(Box::new(e))
    }

    /// The secret error behind this one, if a secret could not be read.
    pub fn secret(&self) -> Option<&SecretError> {
        match self {
            PushError::Secret { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads a secret from its configured source (`crate::secrets`: a
/// systemd credential, a file refused if group/world-readable, or an
/// environment variable), naming `what` in the error.
pub fn read_secret(
    src: Option<crate::secrets::Source<'_>>,
    what: &'static str,
) -> Result<String, PushError> {
    crate::secrets::read(src).map_err(|source| PushError::Secret { what, source })
}

/// Credentials for the configured auth mode.
pub fn credentials(h: &HttpSink) -> Result<Credentials, PushError> {
    Ok(match h.auth {
        AuthMode::ClientCredentials => Credentials::ClientCredentials {
            client_id: h.client_id.clone().ok_or(PushError::Missing("client_id"))?,
            client_secret: read_secret(
                crate::secrets::source(
                    h.client_secret_credential.as_ref(),
                    h.client_secret_file.as_ref(),
                    h.client_secret_env.as_ref(),
                ),
                "client secret",
            )?,
        },
        AuthMode::AppKeyHmac => Credentials::AppKeyHmac {
            app_id: h.app_id.clone().ok_or(PushError::Missing("app_id"))?,
            app_key: read_secret(
                crate::secrets::source(
                    h.app_key_credential.as_ref(),
                    h.app_key_file.as_ref(),
                    h.app_key_env.as_ref(),
                ),
                "app key",
            )?,
            sys_code: h.sys_code.clone().ok_or(PushError::Missing("sys_code"))?,
        },
    })
}

/// The HTTP client: rustls, optional extra CA, request timeout.
pub fn client(h: &HttpSink) -> Result<reqwest::Client, PushError> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(h.request_timeout_secs))
        .connect_timeout(Duration::from_secs(h.request_timeout_secs.min(10)))
        .user_agent(concat!("fepd/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &h.ca_file {
        let pem = std::fs::read(ca).map_err(|source| PushError::CaFile {
            path: ca.clone(),
            source,
        })?;
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).map_err(PushError::CaPem)?);
    }
    b.build().map_err(PushError::Client)
}

/// Everything the push forwarder needs.
pub struct Forwarder {
    pub db: PathBuf,
    pub spool: PathBuf,
    pub tz: FixedOffset,
    pub http: HttpSink,
    pub tokens: Arc<TokenSource>,
    pub client: reqwest::Client,
    /// The dataset schemas, to mask refused records in their reports.
    pub catalog: crate::validate::Catalog,
    /// Per dataset: when its batches may be sent (`send_window`).
    pub windows: std::collections::HashMap<String, crate::config::SendWindow>,
    /// Per route: its dataset's `inflight`, where set (else `http.inflight`).
    pub inflight: std::collections::HashMap<String, usize>,
    /// Routes waiting for a send window to open, and until when.
    closed: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Where `/healthz` learns of refused credentials and deliveries.
    pub health: Arc<crate::daemon::health::Health>,
}

impl Forwarder {
    pub fn new(
        db: PathBuf,
        spool: PathBuf,
        tz: FixedOffset,
        http: HttpSink,
    ) -> Result<Forwarder, PushError> {
        let client = client(&http)?;
        let creds = credentials(&http)?;
        let base = http.base_url.trim_end_matches('/').to_string();
        let token_url = match creds.mode() {
            AuthMode::ClientCredentials => format!("{base}{}", http.token_path),
            AuthMode::AppKeyHmac => format!("{base}{}", http.app_token_path),
        };
        if base.starts_with("http://") {
            tracing::warn!(base_url = %base, "the library is reached over plain http://: credentials and personal data cross the network unencrypted");
        }
        Ok(Forwarder {
            tokens: Arc::new(TokenSource::new(
                client.clone(),
                token_url,
                creds,
                Duration::from_secs(http.credential_backoff_secs.max(1)),
            )),
            client,
            db,
            spool,
            tz,
            http,
            windows: Default::default(),
            inflight: Default::default(),
            closed: Default::default(),
            catalog: Default::default(),
            health: Default::default(),
        })
    }

    /// The schemas that mask records the library refused, in their reports.
    pub fn with_catalog(mut self, catalog: crate::validate::Catalog) -> Forwarder {
        self.catalog = catalog;
        self
    }

    /// The in-flight limits the datasets set for their routes
    /// (`[[dataset]] inflight`); where two datasets share a route, the
    /// lower one.
    pub fn with_inflight(mut self, datasets: &[crate::config::DatasetConfig]) -> Forwarder {
        for d in datasets {
            if let Some(n) = d.inflight {
                let slot = self.inflight.entry(d.route()).or_insert(n);
                *slot = (*slot).min(n);
            }
        }
        self
    }

    fn push_url(&self, route: &str) -> String {
        let (category, resource) = route.split_once('/').unwrap_or((route, ""));
        format!(
            "{}{}",
            self.http.base_url.trim_end_matches('/'),
            self.http
                .push_path
                .replace("{category}", category)
                .replace("{resource}", resource)
        )
    }

    /// Pushes a zero-record probe batch (docs/protocol.md §3) on `route` for
    /// `dataset`: the library checks auth, route and digest, answers 200
    /// with `accepted: 0` and stores nothing. Used by `fepd selftest`.
    async fn probe(
        &self,
        route: &str,
        dataset: &str,
        sender: &str,
        schema_version: &str,
        audit_head: &crate::state::log::Head,
    ) -> Reply {
        let batch_id = crate::seal::new_batch_id();
        let created_at = crate::state::now_text(self.tz);
        let (body, _) = crate::seal::build_body(
            &crate::seal::BatchHeader {
                batch_id: &batch_id,
                sender,
                dataset,
                schema_version,
                created_at: &created_at,
                audit_head,
            },
            &[],
        );
        let in_query = self.tokens.mode() == AuthMode::AppKeyHmac;
        self.send_with_token(&self.push_url(route), in_query, &batch_id, &body)
            .await
    }

    /// [`Forwarder::probe`] and what its answer says: `Ok` when the library
    /// accepted the zero-record probe (auth, route and digest checked),
    /// else why not. `fepd selftest` and the alerts' canary read it alike.
    pub async fn probe_verdict(
        &self,
        route: &str,
        dataset: &str,
        sender: &str,
        schema_version: &str,
        audit_head: &crate::state::log::Head,
    ) -> Result<(), String> {
        match self
            .probe(route, dataset, sender, schema_version, audit_head)
            .await
        {
            Reply::Delivered {
                accepted: Some(0) | None,
                ..
            } => Ok(()),
            Reply::Delivered { accepted, .. } => Err(format!(
                "answered accepted = {accepted:?} for a zero-record probe"
            )),
            Reply::Park { reason } | Reply::Retry { reason, .. } => Err(reason),
            Reply::TooLarge => Err("HTTP 413 for an empty batch".into()),
        }
    }

    /// Pushes one batch body on `route` (cluster mode, docs/cluster.md: the
    /// body comes from the cluster's stream, not from this node's outbox),
    /// with the route scheduler's token handling and classification of the
    /// answer; what the answer does is the caller's.
    pub async fn push_body(&self, route: &str, batch_id: &str, body: &[u8]) -> Reply {
        let in_query = self.tokens.mode() == AuthMode::AppKeyHmac;
        self.send_with_token(&self.push_url(route), in_query, batch_id, body)
            .await
    }

    /// Asks for a token (the first step of `fepd selftest`).
    pub async fn token(&self) -> Result<(), TokenError> {
        self.tokens.get().await.map(|_| ())
    }

    /// One send, with docs/protocol.md §2's rule for 401: renew the token once
    /// and retry the request once; a second 401 is retried later, never
    /// parked.
    async fn send_with_token(
        &self,
        url: &str,
        in_query: bool,
        batch_id: &str,
        body: &[u8],
    ) -> Reply {
        for attempt in 0..2 {
            let token = match self.tokens.get().await {
                Ok(t) => {
                    self.health.credentials_ok();
                    t
                }
                // A refused credential waits as the back-off decides
                // (minutes, growing); alerted once per episode by
                // `sync_credentials`, and shown by /healthz.
                Err(e @ TokenError::Refused { .. }) => {
                    self.health.credentials_refused(&e.to_string());
                    return Reply::Retry {
                        wait: e.retry_in(),
                        reason: e.to_string(),
                    };
                }
                Err(e) => {
                    return Reply::Retry {
                        wait: e.retry_in(),
                        reason: e.to_string(),
                    };
                }
            };
            match send::send(
                &self.client,
                url,
                in_query,
                &token,
                batch_id,
                body,
                self.http.gzip,
            )
            .await
            {
                send::Answer::Unauthorized => {
                    self.tokens.invalidate(&token).await;
                    if attempt == 1 {
                        tracing::error!(
                            batch = batch_id,
                            "ALERT: push refused with 401 even with a fresh token; the credentials may need renewing"
                        );
                    }
                }
                send::Answer::Batch(reply) => return reply,
            }
        }
        Reply::Retry {
            wait: None,
            reason: "HTTP 401 twice (token refused)".into(),
        }
    }
}
