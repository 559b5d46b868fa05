//! One push of a batch (docs/protocol.md §3) and what its answer means.
//!
//! The answer is classified into an [`outbox::Reply`](crate::outbox::Reply) (or a 401, which the sender handles itself) that says exactly what the
//! sender does next (the response table of §3); the classification is a
//! pure function of status, headers and body, tested row by row.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;

use super::auth::{describe, retry_after};
use crate::outbox::{RemoteRejected, Reply};

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<AcceptData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcceptData {
    #[serde(default)]
    receipt_id: Option<String>,
    #[serde(default)]
    accepted: Option<i64>,
    #[serde(default)]
    rejected: Vec<RemoteRejected>,
    #[serde(default)]
    duplicate: bool,
}

/// What one push came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The library's answer for the batch, for `crate::outbox::apply`.
    Batch(Reply),
    /// 401: the token is invalid or expired. The sender renews it and sends
    /// again (docs/protocol.md §2); it says nothing about the batch.
    Unauthorized,
}

/// Classifies an answer.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Answer {
    let env: Option<Envelope> = serde_json::from_slice(body).ok();
    let code = env
        .as_ref()
        .and_then(|e| e.code.clone())
        .unwrap_or_default();
    let message = env
        .as_ref()
        .and_then(|e| e.message.clone())
        .unwrap_or_default();
    let reason = || format!("HTTP {status} {code} {message}").trim().to_string();
    Answer::Batch(match status {
        200 => match env {
            Some(Envelope {
                data: Some(d),
                code: Some(c),
                ..
            }) if c == "000000" && d.receipt_id.is_some() => Reply::Delivered {
                receipt_id: d.receipt_id.unwrap_or_default(),
                accepted: d.accepted,
                rejected: d.rejected,
                duplicate: d.duplicate,
            },
            // A 200 we cannot read is not proof of delivery: try again; the
            // library de-duplicates by batch id.
            _ => Reply::Retry {
                wait: None,
                reason: format!("HTTP 200 with an unexpected body ({})", reason()),
            },
        },
        400 | 409 => Reply::Park { reason: reason() },
        401 => return Answer::Unauthorized,
        413 => Reply::TooLarge,
        429 | 503 => Reply::Retry {
            wait: retry_after,
            reason: reason(),
        },
        s if s >= 500 => Reply::Retry {
            wait: None,
            reason: reason(),
        },
        // Anything else (404, 405 …) is a deployment problem that retrying
        // will not fix: park so the route keeps moving and an operator sees it.
        _ => Reply::Park { reason: reason() },
    })
}

/// Sends one batch body to `url` with `token`.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    token_in_query: bool,
    token: &str,
    batch_id: &str,
    body: &[u8],
    gzip: bool,
) -> Answer {
    let mut req = client.post(url).header("Idempotency-Key", batch_id).header(
        reqwest::header::CONTENT_TYPE,
        "application/json; charset=utf-8",
    );
    req = if token_in_query {
        req.query(&[("accessToken", token)])
    } else {
        req.bearer_auth(token)
    };
    let req = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let compressed = enc.write_all(body).and_then(|_| enc.finish());
        match compressed {
            Ok(c) => req
                .header(reqwest::header::CONTENT_ENCODING, "gzip")
                .body(c),
            Err(_) => req.body(body.to_vec()),
        }
    } else {
        req.body(body.to_vec())
    };
    match req.send().await {
        Err(e) => Answer::Batch(Reply::Retry {
            wait: None,
            reason: describe(e),
        }),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let ra = retry_after(resp.headers());
            match resp.bytes().await {
                Ok(b) => classify(status, ra, &b),
                Err(e) => Answer::Batch(Reply::Retry {
                    wait: None,
                    reason: describe(e),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer for the batch a status means.
    fn reply(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Reply {
        match classify(status, retry_after, body) {
            Answer::Batch(r) => r,
            Answer::Unauthorized => panic!("HTTP {status} read as 401"),
        }
    }

    #[test]
    fn every_row_of_the_response_table() {
        let ok = br#"{"code":"000000","message":"ok","data":{"receiptId":"R1","accepted":2,"rejected":[{"index":1,"key":"K","code":"422001","message":"bad"}]}}"#;
        match reply(200, None, ok) {
            Reply::Delivered {
                receipt_id,
                accepted,
                rejected,
                duplicate,
            } => {
                assert_eq!(
                    (receipt_id.as_str(), accepted, rejected.len(), duplicate),
                    ("R1", Some(2), 1, false)
                );
            }
            r => panic!("{r:?}"),
        }
        let dup = br#"{"code":"000000","message":"ok","data":{"receiptId":"R0","duplicate":true}}"#;
        assert!(matches!(
            reply(200, None, dup),
            Reply::Delivered {
                duplicate: true,
                ..
            }
        ));
        for code in ["400001", "400002", "400003"] {
            let b = format!(r#"{{"code":"{code}","message":"m"}}"#);
            assert!(
                matches!(reply(400, None, b.as_bytes()), Reply::Park { reason } if reason.contains(code))
            );
        }
        assert!(matches!(
            reply(409, None, br#"{"code":"409001"}"#),
            Reply::Park { .. }
        ));
        assert_eq!(
            classify(401, None, br#"{"code":"401001"}"#),
            Answer::Unauthorized
        );
        assert_eq!(reply(413, None, br#"{"code":"413001"}"#), Reply::TooLarge);
        assert!(
            matches!(reply(429, Some(Duration::from_secs(3)), b""), Reply::Retry { wait: Some(w), .. } if w.as_secs() == 3)
        );
        assert!(matches!(
            reply(503, None, b""),
            Reply::Retry { wait: None, .. }
        ));
        assert!(matches!(reply(502, None, b"<html>"), Reply::Retry { .. }));
        assert!(matches!(reply(200, None, b"not json"), Reply::Retry { .. }));
    }
}
