//! The simulator's own read-only endpoints under `/sim/`, which tests and
//! operators use to see what the library holds: counters, stored records and
//! batches, and the audit heads senders deposited (the exchange-log witness).
//! The records are personal data: the endpoints are off unless the
//! simulator was started with `--inspect-token`, and then answer only
//! requests that present it as a bearer token.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Library;
use super::auth::{constant_time_eq, presented_token};
use super::envelope::Refusal;
use super::ledger::{self, Filter};

/// Lets a request through to the `/sim/*` endpoints only when the simulator
/// has an inspection token and the request presents it.
pub(crate) async fn require_inspect_token(
    State(lib): State<Arc<Library>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = lib.opts.inspect_token.as_ref() else {
        let body = json!({
            "code": "404001",
            "message": "the inspection endpoints are off: start the simulator with --inspect-token",
            "data": null,
        });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let presented = presented_token(request.headers(), None);
    if presented.is_some_and(|t| constant_time_eq(t.as_bytes(), expected.expose().as_bytes())) {
        return next.run(request).await;
    }
    let body = json!({
        "code": "401002",
        "message": "the inspection endpoints need Authorization: Bearer <the --inspect-token>",
        "data": null,
    });
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sim\""),
    );
    response
}

/// `GET /sim/stats`: a bare JSON object of counters (`SimStats`).
pub(crate) async fn stats(State(lib): State<Arc<Library>>) -> Response {
    match lib.store.call(|conn| ledger::stats(conn)).await {
        Ok(stats) => Json(stats).into_response(),
        Err(e) => Refusal::Internal(e.to_string()).into_response(),
    }
}

/// `GET /sim/records?dataset=&sender=&key=`: a JSON array of stored records
/// in arrival order.
pub(crate) async fn records(
    State(lib): State<Arc<Library>>,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let Query(filter) = match filter {
        Ok(f) => f,
        Err(e) => return Refusal::Malformed(e.to_string()).into_response(),
    };
    match lib
        .store
        .call(move |conn| ledger::records(conn, &filter))
        .await
    {
        Ok(records) => Json(records).into_response(),
        Err(e) => Refusal::Internal(e.to_string()).into_response(),
    }
}

/// `GET /sim/batches?dataset=&sender=`: a JSON array of stored batches in
/// arrival order.
pub(crate) async fn batches(
    State(lib): State<Arc<Library>>,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let Query(filter) = match filter {
        Ok(f) => f,
        Err(e) => return Refusal::Malformed(e.to_string()).into_response(),
    };
    match lib
        .store
        .call(move |conn| ledger::batches(conn, &filter))
        .await
    {
        Ok(batches) => Json(batches).into_response(),
        Err(e) => Refusal::Internal(e.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SenderQuery {
    sender: String,
}

/// `GET /sim/audit-heads?sender=S`: JSON lines of `{"seq":…,"hash":…}`, one
/// per stored batch of that sender, in arrival order — what `fepd audit
/// verify` can check its log against.
pub(crate) async fn audit_heads(
    State(lib): State<Arc<Library>>,
    query: Result<Query<SenderQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(SenderQuery { sender })) = query else {
        return Refusal::Malformed("the sender query parameter is required".into()).into_response();
    };
    match lib
        .store
        .call(move |conn| ledger::audit_heads(conn, &sender))
        .await
    {
        Ok(heads) => {
            let mut lines = String::new();
            for head in heads {
                lines.push_str(&serde_json::to_string(&head).expect("audit heads serialise"));
                lines.push('\n');
            }
            ([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response()
        }
        Err(e) => Refusal::Internal(e.to_string()).into_response(),
    }
}
