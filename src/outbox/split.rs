//! Splitting a batch the library found too large (413): two halves with
//! ids derived from the parent (`PARENT.1`, `PARENT.2`), each a complete
//! body with its own count and digest. The records, their hashes and the
//! parent's `auditHead` and `createdAt` are kept as they were sealed.

use serde_json::Value;

use crate::canon;

/// One half of a split batch.
#[derive(Debug, Clone)]
pub struct Half {
    pub batch_id: String,
    pub body: Vec<u8>,
    pub digest: String,
    pub count: usize,
    /// (key, hash, op) of each record, in order.
    pub records: Vec<(String, String, String)>,
}

/// Splits `body` into two halves; `None` when it holds fewer than two
/// records (a single record that is too large cannot be split).
pub fn halves(parent_id: &str, body: &[u8]) -> Option<[Half; 2]> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let records = v.get("records")?.as_array()?;
    if records.len() < 2 {
        return None;
    }
    let mid = records.len().div_ceil(2);
    let make = |n: usize, part: &[Value]| -> Half {
        let mut h = v.clone();
        let batch_id = format!("{parent_id}.{n}");
        let hashes: Vec<&str> = part
            .iter()
            .map(|r| r["hash"].as_str().unwrap_or(""))
            .collect();
        let digest = canon::batch_digest(hashes.iter().copied());
        h["batchId"] = Value::from(batch_id.clone());
        h["count"] = Value::from(part.len());
        h["digest"] = Value::from(digest.clone());
        h["records"] = Value::Array(part.to_vec());
        let recs = part
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap_or("").to_string(),
                    r["hash"].as_str().unwrap_or("").to_string(),
                    r["op"].as_str().unwrap_or("upsert").to_string(),
                )
            })
            .collect();
        Half {
            batch_id,
            body: serde_json::to_vec(&h).expect("a parsed body re-serialises"),
            digest,
            count: part.len(),
            records: recs,
        }
    };
    Some([make(1, &records[..mid]), make(2, &records[mid..])])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn body(n: usize) -> Vec<u8> {
        let records: Vec<Value> = (0..n)
            .map(|i| {
                let data = json!({"project_no": format!("P{i}")});
                json!({"op": "upsert", "key": format!("P{i}"), "hash": canon::record_hash(&data), "data": data})
            })
            .collect();
        let hashes: Vec<String> = records
            .iter()
            .map(|r| r["hash"].as_str().unwrap().to_string())
            .collect();
        serde_json::to_vec(&json!({
            "batchId": "B", "sender": "s", "dataset": "d", "schemaVersion": "1",
            "createdAt": "2026-11-22T10:15:30+08:00", "count": n,
            "digest": canon::batch_digest(hashes.iter().map(String::as_str)),
            "auditHead": {"seq": 1, "hash": "h"}, "records": records,
        }))
        .unwrap()
    }

    #[test]
    fn one_record_cannot_be_split() {
        assert!(halves("B", &body(1)).is_none());
    }

    proptest! {
        /// The halves hold exactly the parent's records, in order, each
        /// with a digest the library will verify.
        #[test]
        fn halves_partition_the_records(n in 2usize..40) {
            let [a, b] = halves("B", &body(n)).unwrap();
            prop_assert_eq!(a.count + b.count, n);
            prop_assert!(a.count >= b.count && a.count - b.count <= 1);
            prop_assert_eq!(&a.batch_id, "B.1");
            prop_assert_eq!(&b.batch_id, "B.2");
            let keys: Vec<String> = a.records.iter().chain(&b.records).map(|r| r.0.clone()).collect();
            let want: Vec<String> = (0..n).map(|i| format!("P{i}")).collect();
            prop_assert_eq!(keys, want);
            for h in [&a, &b] {
                let v: Value = serde_json::from_slice(&h.body).unwrap();
                let hashes: Vec<&str> = v["records"].as_array().unwrap().iter().map(|r| r["hash"].as_str().unwrap()).collect();
                prop_assert_eq!(v["digest"].as_str().unwrap(), canon::batch_digest(hashes));
                prop_assert_eq!(v["count"].as_u64().unwrap() as usize, h.count);
                prop_assert_eq!(&v["batchId"], &json!(h.batch_id));
            }
        }
    }
}
