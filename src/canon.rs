//! Canonical JSON (RFC 8785, JCS) and the hashes built on it: a record's
//! `hash` and a batch's `digest` (PROTOCOL.md §3). Both ends of the wire use
//! these functions, so the simulator and the sender cannot drift apart.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Serialises `value` per RFC 8785: sorted keys (by UTF-16 code units),
/// no insignificant white space, ECMAScript number formatting.
pub fn to_canonical(value: &Value) -> String {
    // serde_jcs only fails for non-finite floats, which serde_json::Value
    // cannot hold; an error here would be a bug in the crate.
    serde_jcs::to_string(value).expect("serde_json::Value is always canonicalisable")
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A record's wire `hash`: SHA-256 of its `data` in canonical form.
pub fn record_hash(data: &Value) -> String {
    sha256_hex(to_canonical(data).as_bytes())
}

/// A batch's wire `digest`: `sha256:` + SHA-256 of the record hashes, in
/// order, each followed by `\n`. Zero records give the hash of "".
pub fn batch_digest<'a>(hashes: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for hash in hashes {
        h.update(hash.as_bytes());
        h.update(b"\n");
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_and_formats_numbers() {
        let v = json!({"b": 1.0, "a": "x", "c": [3, {"z": 1, "y": 2}], "d": 1e21});
        assert_eq!(
            to_canonical(&v),
            r#"{"a":"x","b":1,"c":[3,{"y":2,"z":1}],"d":1e+21}"#
        );
    }

    #[test]
    fn empty_digest_is_hash_of_empty_string() {
        assert_eq!(
            batch_digest([]),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_is_over_hashes_each_followed_by_newline() {
        let d = batch_digest(["ab", "cd"]);
        assert_eq!(d, format!("sha256:{}", sha256_hex(b"ab\ncd\n")));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            (-1e15f64..1e15).prop_map(|f| json!(f)),
            "[\\PC\u{1}\u{1f}\"\\\\]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_\\p{Han}]{1,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The canonical form parses back to the same value, and
        /// canonicalising is idempotent: re-serialising a parsed canonical
        /// text changes nothing, whatever order keys arrived in.
        #[test]
        fn canonical_roundtrip_and_idempotent(v in arb_json()) {
            let c = to_canonical(&v);
            let back: Value = serde_json::from_str(&c).unwrap();
            prop_assert_eq!(to_canonical(&back), c.clone());
            prop_assert_eq!(record_hash(&back), record_hash(&v));
        }

        /// Key order in the input never changes the hash.
        #[test]
        fn hash_ignores_key_order(keys in prop::collection::btree_set("[a-z]{1,5}", 1..8)) {
            let fwd: serde_json::Map<String, Value> =
                keys.iter().enumerate().map(|(i, k)| (k.clone(), json!(i))).collect();
            let text_rev = format!("{{{}}}", keys.iter().enumerate().rev()
                .map(|(i, k)| format!("\"{k}\":{i}")).collect::<Vec<_>>().join(","));
            let rev: Value = serde_json::from_str(&text_rev).unwrap();
            prop_assert_eq!(record_hash(&Value::Object(fwd)), record_hash(&rev));
        }
    }
}
