//! A fast path to the canonical form (RFC 8785) of record `data`.
//!
//! `serde_jcs` re-serialises through its own number formatter and key sort
//! and costs more than the rest of validation together. For the values
//! records almost always hold — text, integers within ±2^53, arrays, and
//! objects whose keys are ASCII and already in order — serde_json's compact
//! output is byte-for-byte the JCS form: the same escapes (`\"`, `\\`,
//! `\b\f\n\r\t`, `\u00xx` in lower case, nothing else), integers printed
//! the same way, and ASCII keys sort the same by UTF-16 and by bytes.
//! Anything else (floats, non-ASCII keys, an unsorted map) falls back to
//! [`crate::canon::to_canonical`], so the result is always JCS.

use serde_json::Value;

/// The canonical JSON text of `value`.
pub(crate) fn canonical(value: &Value) -> String {
    if fast_path_ok(value) {
        serde_json::to_string(value).expect("serde_json::Value always serialises")
    } else {
        crate::canon::to_canonical(value)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn floats_and_odd_keys_fall_back() {
        let v = json!({"b": 1.5, "a": "x\u{1}\"\\/\u{2028}中", "c": 1e21});
        assert_eq!(canonical(&v), crate::canon::to_canonical(&v));
        assert!(!fast_path_ok(&v));
        let v = json!({"b": 2, "a": ["x\n", {"z": 1, "y": null}]});
        assert!(fast_path_ok(&v));
        assert_eq!(canonical(&v), crate::canon::to_canonical(&v));
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
            prop_assert_eq!(canonical(&v), crate::canon::to_canonical(&v));
        }
    }
}
