//! Turns the bytes of a push request into a `VerifiedBatch`, or says which
//! rule of docs/protocol.md §3 they break. Verification never touches the store
//! or the clock: the same body always gets the same verdict.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::envelope::Refusal;
use crate::canon::{batch_digest, sha256_hex, to_canonical};

/// A batch whose shape, hashes and digest have all been checked.
#[derive(Debug)]
pub(crate) struct VerifiedBatch {
    pub batch_id: String,
    pub sender: String,
    pub dataset: String,
    pub schema_version: String,
    pub created_at: String,
    pub digest: String,
    pub audit_seq: i64,
    pub audit_hash: String,
    pub records: Vec<VerifiedRecord>,
    /// `replayOf` (docs/protocol.md §3 *Replays*): the batches whose
    /// records this one re-sends; empty for new data.
    pub replay_of: Vec<String>,
}

/// One record of a verified batch; `data` is its canonical JSON text, the
/// very text its `hash` was checked against.
#[derive(Debug)]
pub(crate) struct VerifiedRecord {
    pub op: Op,
    pub key: String,
    pub hash: String,
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Op {
    Upsert,
    Delete,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }
}

// Unknown fields are tolerated: the contract names what must be there, not
// what may not, and a library that choked on an extra field would make the
// sender's tests brittle for no gain.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBatch {
    batch_id: String,
    sender: String,
    dataset: String,
    schema_version: String,
    created_at: String,
    count: u64,
    digest: String,
    audit_head: WireAuditHead,
    records: Vec<WireRecord>,
    #[serde(default)]
    replay_of: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct WireAuditHead {
    seq: u64,
    hash: String,
}

#[derive(Deserialize)]
struct WireRecord {
    op: Op,
    key: String,
    hash: String,
    data: Map<String, Value>,
}

/// Checks `body` (already gzip-decoded) against the contract. The checks run
/// in the order a sender would want to learn about them: shape first, then
/// size, then hashes, so a 400002 always means the shape was right.
pub(crate) fn verify(
    body: &[u8],
    idempotency_key: Option<&str>,
    max_records: Option<usize>,
) -> Result<VerifiedBatch, Refusal> {
    // Duplicate member names first: serde would keep the last of them, and
    // another parser the first — two readings of the same bytes.
    unique_members(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let wire: WireBatch =
        serde_json::from_slice(body).map_err(|e| Refusal::Malformed(e.to_string()))?;

    for (name, value) in [
        ("batchId", &wire.batch_id),
        ("sender", &wire.sender),
        ("dataset", &wire.dataset),
        ("schemaVersion", &wire.schema_version),
    ] {
        if value.trim().is_empty() {
            return Err(Refusal::Malformed(format!("{name} is empty")));
        }
    }
    match idempotency_key {
        None => {
            return Err(Refusal::Malformed(
                "Idempotency-Key header is missing".into(),
            ));
        }
        Some(k) if k != wire.batch_id => {
            return Err(Refusal::Malformed(format!(
                "Idempotency-Key {k:?} differs from batchId {:?}",
                wire.batch_id
            )));
        }
        Some(_) => {}
    }
    if let Some(max) = max_records
        && wire.records.len() > max
    {
        return Err(Refusal::TooLarge(format!(
            "{} records, at most {max} accepted",
            wire.records.len()
        )));
    }
    if wire.count != wire.records.len() as u64 {
        return Err(Refusal::Malformed(format!(
            "count is {} but there are {} records",
            wire.count,
            wire.records.len()
        )));
    }
    if chrono::DateTime::parse_from_rfc3339(&wire.created_at).is_err() {
        return Err(Refusal::Malformed(format!(
            "createdAt {:?} is not an ISO 8601 date-time with offset",
            wire.created_at
        )));
    }
    let audit_seq = i64::try_from(wire.audit_head.seq)
        .map_err(|_| Refusal::Malformed("auditHead.seq is out of range".into()))?;
    if !is_lower_hex(&wire.audit_head.hash) {
        return Err(Refusal::Malformed(
            "auditHead.hash is not lowercase hex".into(),
        ));
    }

    let mut records = Vec::with_capacity(wire.records.len());
    for (i, r) in wire.records.into_iter().enumerate() {
        if r.key.is_empty() {
            return Err(Refusal::Malformed(format!("records[{i}].key is empty")));
        }
        if let Some((field, _)) = r.data.iter().find(|(_, v)| v.is_null()) {
            // The contract says absent values are omitted, never null; a null
            // would make the same record hash two ways.
            return Err(Refusal::Malformed(format!(
                "records[{i}].data.{field} is null (absent values must be omitted)"
            )));
        }
        let data = to_canonical(&Value::Object(r.data));
        if sha256_hex(data.as_bytes()) != r.hash {
            return Err(Refusal::Mismatch(format!(
                "records[{i}].hash does not match its data"
            )));
        }
        records.push(VerifiedRecord {
            op: r.op,
            key: r.key,
            hash: r.hash,
            data,
        });
    }
    if batch_digest(records.iter().map(|r| r.hash.as_str())) != wire.digest {
        return Err(Refusal::Mismatch(
            "digest does not match the record hashes".into(),
        ));
    }

    Ok(VerifiedBatch {
        batch_id: wire.batch_id,
        sender: wire.sender,
        dataset: wire.dataset,
        schema_version: wire.schema_version,
        created_at: wire.created_at,
        digest: wire.digest,
        audit_seq,
        audit_hash: wire.audit_head.hash,
        records,
        replay_of: wire.replay_of.unwrap_or_default(),
    })
}

/// Checks that no JSON object in `body`, at any depth, names a member twice
/// (docs/protocol.md §1); the error names the member and its position.
pub(crate) fn unique_members(body: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde::de::Deserializer::deserialize_any(&mut de, Unique)?;
    de.end()
}

/// A visitor that walks any JSON value, refusing an object with a repeated
/// member name. It builds nothing but the set of names of one object.
struct Unique;

impl<'de> serde::de::DeserializeSeed<'de> for Unique {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Unique)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Unique)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Names borrowed from the body where they have no escapes; compared
        // one by one while the object is small (a record's data, the
        // envelope: no hashing, no allocation), in a set beyond that, so
        // a hostile object with many members stays linear.
        let mut few: Vec<Cow<'de, str>> = Vec::new();
        let mut many: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(name) = map.next_key_seed(Name)? {
            let seen = if many.is_empty() {
                few.contains(&name)
            } else {
                many.contains(&name)
            };
            if seen {
                return Err(serde::de::Error::custom(format!(
                    "member {name:?} appears twice in one object"
                )));
            }
            map.next_value_seed(Unique)?;
            if many.is_empty() && few.len() < FEW_MEMBERS {
                few.push(name);
            } else {
                many.extend(few.drain(..));
                many.insert(name);
            }
        }
        Ok(())
    }
}

/// Up to this many member names are compared one by one.
const FEW_MEMBERS: usize = 32;

/// A member name, borrowed from the body unless it had escapes.
struct Name;

impl<'de> serde::de::DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(Name)
    }
}

impl<'de> serde::de::Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::unique_members;

    #[test]
    fn a_repeated_member_is_found_in_small_and_large_objects_and_behind_escapes() {
        assert!(unique_members(br#"{"a":1,"b":{"a":2},"c":[{"a":3}]}"#).is_ok());
        assert!(unique_members(br#"{"a":1,"b":2,"a":3}"#).is_err());
        // The same name written with an escape is the same name.
        assert!(unique_members(br#"{"a":1,"\u0061":2}"#).is_err());
        // Past the names compared one by one, the set takes over.
        let names: Vec<String> = (0..100).map(|i| format!("\"m{i}\":{i}")).collect();
        let ok = format!("{{{}}}", names.join(","));
        assert!(unique_members(ok.as_bytes()).is_ok());
        for repeat in ["m0", "m31", "m32", "m99"] {
            let bad = format!("{{{},\"{repeat}\":0}}", names.join(","));
            assert!(unique_members(bad.as_bytes()).is_err(), "{repeat}");
        }
    }
}
