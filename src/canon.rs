//! Canonical JSON (RFC 8785, JCS) and the hashes built on it: a record's
//! `hash` and a batch's `digest` (docs/protocol.md §3). Both ends of the wire use
//! these functions, so the simulator and the sender cannot drift apart.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Serialises `value` per RFC 8785: sorted keys (by UTF-16 code units),
/// no insignificant white space, ECMAScript number formatting.
///
/// `serde_jcs` re-serialises through its own number formatter and key sort,
/// buffering every object, and costs more than the rest of validation
/// together. For the values records almost always hold — text, integers
/// within ±2^53, arrays, and objects whose keys are ASCII and already in
/// order — serde_json's compact output is byte-for-byte the JCS form: the
/// same escapes (`\"`, `\\`, `\b\f\n\r\t`, `\u00xx` in lower case, nothing
/// else), integers printed the same way, and ASCII keys sort the same by
/// UTF-16 and by bytes. Anything else (floats, non-ASCII keys, an unsorted
/// map) goes through `serde_jcs`, so the result is always JCS.
pub fn to_canonical(value: &Value) -> String {
    if fast_path_ok(value) {
        serde_json::to_string(value).expect("serde_json::Value always serialises")
    } else {
        jcs(value)
    }
}

/// The reference implementation, for what the fast path does not cover.
fn jcs(value: &Value) -> String {
    // serde_jcs only fails for non-finite floats, which serde_json::Value
    // cannot hold; an error here would be a bug in the crate.
    serde_jcs::to_string(value).expect("serde_json::Value is always canonicalisable")
}

/// Largest integer JCS prints as plain digits (ECMAScript safe integer).
const MAX_SAFE: u64 = (1 << 53) - 1;

fn fast_path_ok(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.unsigned_abs() <= MAX_SAFE,
            (None, Some(u)) => u <= MAX_SAFE,
            _ => false,
        },
        Value::Array(a) => a.iter().all(fast_path_ok),
        Value::Object(m) => {
            // The map's own order is what serde_json writes: it must already
            // be the JCS order (it is unless serde_json's preserve_order
            // feature is on somewhere in the build).
            let mut prev: Option<&str> = None;
            m.iter().all(|(k, v)| {
                let ordered = k.is_ascii() && prev.is_none_or(|p| p < k.as_str());
                prev = Some(k);
                ordered && fast_path_ok(v)
            })
        }
    }
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

    #[test]
    fn floats_and_odd_keys_fall_back() {
        let v = json!({"b": 1.5, "a": "x\u{1}\"\\/\u{2028}中", "c": 1e21});
        assert_eq!(to_canonical(&v), jcs(&v));
        assert!(!fast_path_ok(&v));
        let v = json!({"b": 2, "a": ["x\n", {"z": 1, "y": null}]});
        assert!(fast_path_ok(&v));
        assert_eq!(to_canonical(&v), jcs(&v));
        assert!(!fast_path_ok(&json!({"中": 1})));
        assert!(!fast_path_ok(&json!(9007199254740993u64)));
    }

    fn arb_data() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(|i| json!(i)),
            (-(1i64 << 53)..(1i64 << 53)).prop_map(|i| json!(i)),
            "[\\PC\u{0}-\u{1f}\"\\\\\u{2028}\u{7f}]{0,16}".prop_map(Value::String),
            any::<bool>().prop_map(Value::Bool),
        ];
        leaf.prop_recursive(2, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_A-Z0-9]{1,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The fast path never differs from the reference JCS.
        #[test]
        fn same_as_reference(v in arb_data()) {
            prop_assert_eq!(to_canonical(&v), jcs(&v));
        }

        /// Nor does it on any JSON, fast path or not.
        #[test]
        fn any_value_same_as_reference(v in arb_json()) {
            prop_assert_eq!(to_canonical(&v), jcs(&v));
        }

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
