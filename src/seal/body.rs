//! The wire body of a batch (docs/protocol.md §3), written once at sealing.

use serde::Serialize;

use super::Staged;
use crate::canon;
use crate::state::log::Head;

/// Everything in a body besides its records.
#[derive(Debug, Clone)]
pub struct BatchHeader<'a> {
    pub batch_id: &'a str,
    pub sender: &'a str,
    pub dataset: &'a str,
    pub schema_version: &'a str,
    pub created_at: &'a str,
    pub audit_head: &'a Head,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    batch_id: &'a str,
    sender: &'a str,
    dataset: &'a str,
    schema_version: &'a str,
    created_at: &'a str,
    count: usize,
    digest: &'a str,
    audit_head: &'a Head,
    records: Vec<WireRecord<'a>>,
}

#[derive(Serialize)]
struct WireRecord<'a> {
    op: &'static str,
    key: &'a str,
    hash: &'a str,
    // The canonical text goes on the wire verbatim: the library recomputes
    // the hash from it and must get the same bytes we hashed.
    data: &'a serde_json::value::RawValue,
}

/// Builds the body and returns it with its digest.
pub fn build_body(h: &BatchHeader<'_>, records: &[Staged]) -> (Vec<u8>, String) {
    let digest = canon::batch_digest(records.iter().map(|r| r.hash.as_str()));
    let wire: Vec<WireRecord<'_>> = records
        .iter()
        .map(|r| WireRecord {
            op: r.op.as_str(),
            key: &r.key,
            hash: &r.hash,
            data: raw(&r.canonical),
        })
        .collect();
    let env = Envelope {
        batch_id: h.batch_id,
        sender: h.sender,
        dataset: h.dataset,
        schema_version: h.schema_version,
        created_at: h.created_at,
        count: records.len(),
        digest: &digest,
        audit_head: h.audit_head,
        records: wire,
    };
    let body = serde_json::to_vec(&env).expect("a batch envelope always serialises");
    (body, digest)
}

fn raw(canonical: &str) -> &serde_json::value::RawValue {
    // Canonical JSON produced by `canon` is always valid JSON; RawValue only
    // checks it, it does not copy or re-serialise it.
    serde_json::from_str(canonical).expect("canonical JSON is valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Op;
    use serde_json::Value;

    #[test]
    fn body_matches_protocol_and_verifies() {
        let data = r#"{"project_no":"P1","task_version":1}"#;
        let rec = Staged {
            op: Op::Upsert,
            key: "P1".into(),
            hash: canon::sha256_hex(data.as_bytes()),
            version: None,
            fallback_version: None,
            canonical: data.into(),
        };
        let head = Head {
            seq: 7,
            hash: "ab".into(),
        };
        let h = BatchHeader {
            batch_id: "B1",
            sender: "230000-zwfw",
            dataset: "case_accept",
            schema_version: "1",
            created_at: "2026-11-22T10:15:30+08:00",
            audit_head: &head,
        };
        let (body, digest) = build_body(&h, std::slice::from_ref(&rec));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["batchId"], "B1");
        assert_eq!(v["count"], 1);
        assert_eq!(v["digest"], digest.as_str());
        assert_eq!(v["auditHead"]["seq"], 7);
        assert_eq!(v["records"][0]["op"], "upsert");
        let hash = canon::record_hash(&v["records"][0]["data"]);
        assert_eq!(v["records"][0]["hash"], hash.as_str());
        assert_eq!(digest, canon::batch_digest([hash.as_str()]));
    }
}
