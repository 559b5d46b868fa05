//! `POST /api/v1/resources/{category}/{resource}/batches` (docs/protocol.md §3):
//! faults first, then token, route, body, verification, and finally the
//! store, which answers stored, duplicate or conflict.

use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::read::GzDecoder;
use serde::Deserialize;

use super::Library;
use super::auth::presented_token;
use super::envelope::{Refusal, success};
use super::ledger::{self, Outcome, Receipt, Rejection};
use super::options::Route;
use super::sever::Severance;
use super::verify::{VerifiedBatch, verify};

/// The library's code for a record it refuses on its own rules.
const RECORD_REFUSED: &str = "422001";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PushQuery {
    access_token: Option<String>,
}

/// What a push that was not refused comes to.
enum Answer {
    /// A zero-record batch: checked, answered, not stored.
    Probe(Receipt),
    /// Stored now, or recognised as already stored; either way the batch is
    /// in the library, so either answer may be dropped by fault injection.
    Delivered(Receipt),
}

pub(crate) async fn push(
    State(lib): State<Arc<Library>>,
    ConnectInfo(severance): ConnectInfo<Severance>,
    Path((category, resource)): Path<(String, String)>,
    query: Result<Query<PushQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Roll before anything else so the fault sequence depends only on the
    // order of requests, not on what they contain.
    let roll = lib.faults.roll();
    if !lib.faults.latency.is_zero() {
        tokio::time::sleep(lib.faults.latency).await;
    }
    let route = Route::new(category, resource);
    let route = lib.routes.get(&route.path()).cloned().unwrap_or(route);
    let result = if roll.fail {
        Err(Refusal::Overloaded {
            retry_after_secs: lib.faults.retry_after_secs,
        })
    } else {
        let access_token = query.ok().and_then(|Query(q)| q.access_token);
        receive(&lib, &route, access_token.as_deref(), headers, body).await
    };
    match result {
        Ok(Answer::Probe(receipt)) => success(receipt),
        Ok(Answer::Delivered(receipt)) => {
            if roll.drop {
                tracing::info!(%route, receipt_id = %receipt.receipt_id, "answer dropped (fault injection)");
                severance.sever();
                lib.count("responses_dropped").await;
            }
            success(receipt)
        }
        Err(refusal) => {
            tracing::info!(%route, code = refusal.code(), %refusal, "push refused");
            lib.count(refusal.counter()).await;
            refusal.into_response()
        }
    }
}

async fn receive(
    lib: &Arc<Library>,
    route: &Route,
    access_token: Option<&str>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Answer, Refusal> {
    let Some(bound_sender) = lib
        .tokens
        .authorize(presented_token(&headers, access_token))
    else {
        return Err(Refusal::Unauthorized);
    };
    if !lib.routes.contains_key(&route.path()) {
        return Err(Refusal::UnknownRoute(route.path()));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::TooLarge(format!(
                "body larger than {} bytes",
                lib.opts.max_body_bytes
            ))
        } else {
            Refusal::Malformed(format!("reading the body: {rejection}"))
        }
    })?;

    // Decoding and hashing a large batch is CPU work; keep it off the
    // runtime threads that serve other connections.
    let max_body_bytes = lib.opts.max_body_bytes;
    let max_records = lib.opts.max_records;
    let batch = tokio::task::spawn_blocking(move || {
        let body = decode_body(&headers, body, max_body_bytes)?;
        let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
        verify(&body, idempotency_key, max_records)
    })
    .await
    .map_err(|e| Refusal::Internal(format!("verification task failed: {e}")))??;

    if batch.dataset != route.dataset {
        return Err(Refusal::WrongDataset {
            route: route.path(),
            carries: route.dataset.clone(),
            dataset: batch.dataset.clone(),
        });
    }
    if batch.sender != bound_sender {
        return Err(Refusal::ForeignSender {
            sender: batch.sender.clone(),
        });
    }

    if batch.records.is_empty() {
        lib.count("probes").await;
        return Ok(Answer::Probe(Receipt {
            receipt_id: new_receipt_id(),
            accepted: 0,
            rejected: Vec::new(),
            duplicate: false,
        }));
    }

    let rejected = refused_records(&batch, lib.opts.reject_keys_matching.as_deref());
    let route = route.clone();
    let batch_id = batch.batch_id.clone();
    let outcome = lib
        .store
        .call(move |conn| ledger::accept(conn, &route, &batch, rejected, new_receipt_id()))
        .await
        .map_err(|e| Refusal::Internal(format!("storing the batch: {e}")))?;
    match outcome {
        Outcome::Stored(receipt) => {
            tracing::info!(%batch_id, receipt_id = %receipt.receipt_id, accepted = receipt.accepted, "batch stored");
            Ok(Answer::Delivered(receipt))
        }
        Outcome::Duplicate(receipt) => {
            tracing::info!(%batch_id, receipt_id = %receipt.receipt_id, "duplicate batch");
            Ok(Answer::Delivered(receipt))
        }
        Outcome::Conflict => Err(Refusal::Conflict(batch_id)),
    }
}

/// Undoes `Content-Encoding: gzip`, refusing any other encoding and any body
/// that inflates beyond `limit`.
fn decode_body(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, Refusal> {
    let Some(encoding) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(body);
    };
    let encoding = encoding.to_str().unwrap_or("").trim();
    if encoding.eq_ignore_ascii_case("identity") {
        return Ok(body);
    }
    if !encoding.eq_ignore_ascii_case("gzip") {
        return Err(Refusal::Malformed(format!(
            "unsupported Content-Encoding {encoding:?}"
        )));
    }
    let mut inflated = Vec::new();
    GzDecoder::new(&body[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| Refusal::Malformed(format!("gzip body: {e}")))?;
    if inflated.len() > limit {
        return Err(Refusal::TooLarge(format!(
            "body inflates beyond {limit} bytes"
        )));
    }
    Ok(inflated.into())
}

/// The records the library refuses one by one: those whose key contains
/// `--reject-keys-matching`.
fn refused_records(batch: &VerifiedBatch, pattern: Option<&str>) -> Vec<Rejection> {
    let Some(pattern) = pattern.filter(|p| !p.is_empty()) else {
        return Vec::new();
    };
    batch
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.contains(pattern))
        .map(|(index, r)| Rejection {
            index,
            key: r.key.clone(),
            code: RECORD_REFUSED.into(),
            message: "记录被拒绝 (key matches the simulator's --reject-keys-matching)".into(),
        })
        .collect()
}

fn new_receipt_id() -> String {
    format!("R{}", ulid::Ulid::generate())
}
