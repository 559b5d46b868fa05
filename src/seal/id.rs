//! Cluster mode's batch ids (docs/cluster.md "Batch ids"): the same file
//! sealed again by another node, after the node that claimed it died,
//! gets the same ids, so the stream and the library see duplicates, not
//! new batches. Single-host fepd keeps fresh ULIDs (`new_batch_id`).

use sha2::{Digest, Sha256};

/// Bits of the 80-bit random part that hold the batch's position in its
/// file (high bits, so a file's batches sort in seal order); the other 56
/// come from the digest.
const POSITION_BITS: u32 = 24;

/// The id of the batch at `position` (0, 1, … in seal order) of a file of
/// `dataset` whose content hashes to `content_sha256` and whose claim id
/// is `claim_id`: a valid ULID whose time part is the claim id's and whose
/// random part is the position (its low 24 bits) followed by 56 bits of
/// SHA-256(dataset ‖ 0 ‖ content hash ‖ 0 ‖ position). A claim id that is
/// not a ULID gives time 0; a position beyond 2^24 keeps the id unique
/// (the digest covers the whole position) but no longer sorts.
pub fn deterministic_batch_id(
    claim_id: &str,
    dataset: &str,
    content_sha256: &str,
    position: u64,
) -> String {
    let time = ulid::Ulid::from_string(claim_id)
        .map(|u| u.timestamp_ms())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(dataset.as_bytes());
    h.update([0]);
    h.update(content_sha256.as_bytes());
    h.update([0]);
    h.update(position.to_be_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    let digest_bits = u64::from_be_bytes(first) >> (64 - (80 - POSITION_BITS));
    let pos = (position as u128) & ((1u128 << POSITION_BITS) - 1);
    let random = (pos << (80 - POSITION_BITS)) | digest_bits as u128;
    ulid::Ulid::from_parts(time, random).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLAIM: &str = "01JD0000000000000000000000";

    #[test]
    fn a_valid_ulid_with_the_claims_time() {
        let id = deterministic_batch_id(CLAIM, "case_accept", "ab12", 0);
        assert_eq!(id.len(), 26);
        let u = ulid::Ulid::from_string(&id).unwrap();
        assert_eq!(
            u.timestamp_ms(),
            ulid::Ulid::from_string(CLAIM).unwrap().timestamp_ms()
        );
        assert_eq!(id, deterministic_batch_id(CLAIM, "case_accept", "ab12", 0));
    }

    #[test]
    fn dataset_content_and_position_each_change_it() {
        let base = deterministic_batch_id(CLAIM, "a", "h", 1);
        assert_ne!(base, deterministic_batch_id(CLAIM, "b", "h", 1));
        assert_ne!(base, deterministic_batch_id(CLAIM, "a", "g", 1));
        assert_ne!(base, deterministic_batch_id(CLAIM, "a", "h", 2));
        assert_ne!(base, deterministic_batch_id("not a ulid", "a", "h", 1));
    }

    proptest! {
        /// A file's batches sort in seal order, and never collide.
        #[test]
        fn positions_sort_in_seal_order(
            a in 0u64..(1 << 24), b in 0u64..(1 << 24), hash in "[0-9a-f]{64}", ms in 0u64..(1 << 47)
        ) {
            let claim = ulid::Ulid::from_parts(ms, 7).to_string();
            let x = deterministic_batch_id(&claim, "ds", &hash, a);
            let y = deterministic_batch_id(&claim, "ds", &hash, b);
            prop_assert_eq!(a.cmp(&b), x.cmp(&y));
            prop_assert_eq!(ulid::Ulid::from_string(&x).unwrap().timestamp_ms(), ms);
        }
    }
}
