//! Which of a route's pending batches may be sent now (docs/protocol.md §4
//! rule 3): order is kept per record key. Within a route, a batch is sent
//! only when no earlier-sealed batch of the route that carries one of its
//! keys is still unanswered — in flight, waiting for a retry, or waiting
//! behind another. Batches with disjoint keys go together, up to the
//! route's `inflight` limit; with a limit of 1 every batch waits for all
//! the earlier ones (strict seal order, as before the revision). Parked and
//! delivered batches are not pending, so they hold nothing back.
//!
//! The rule is a pure function of the pending batches in seal order
//! ([`choose`]), so it is tested apart from HTTP and SQLite. The scheduler
//! shows it a bounded window of the route's oldest pending batches
//! ([`LOOKAHEAD`] × `inflight`): everything sealed before a batch in the
//! window is in the window too, so the rule holds, and the work per
//! decision does not grow with the backlog.
//!
//! A batch's keys come from its `batch_record` rows (`state::batches::keys`,
//! by primary key), written with the batch at its seal and kept while it is
//! pending: cheaper than parsing the sealed body. A pending batch without
//! them (never expected) is a barrier: it waits for every earlier batch and
//! holds back every later one.

use std::collections::HashSet;

/// The window the scheduler looks at: this many × the route's `inflight`.
pub const LOOKAHEAD: usize = 4;

/// The record keys of one pending batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// The keys of its records.
    Known(HashSet<String>),
    /// Not known: the batch is ordered against every other.
    Unknown,
}

/// One pending batch as [`choose`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Pending<'a> {
    pub keys: &'a Keys,
    /// Sent and not answered yet.
    pub in_flight: bool,
    /// Its retry back-off is over (a new batch is due at once).
    pub due: bool,
}

/// The positions in `pending` (the route's unanswered batches in seal
/// order, those in flight included) of the batches to send now: due, not
/// in flight, no key shared with an earlier entry, and no more than
/// `limit` in flight in all. With `limit` 1, only the first entry may go.
pub fn choose(pending: &[Pending<'_>], limit: usize) -> Vec<usize> {
    let limit = limit.max(1);
    let mut room = limit.saturating_sub(pending.iter().filter(|p| p.in_flight).count());
    let mut chosen = Vec::new();
    let mut held: HashSet<&str> = HashSet::new();
    // An earlier entry orders everything after it (strict order, or a
    // batch whose keys are not known).
    let mut barrier = false;
    for (i, p) in pending.iter().enumerate() {
        if room == 0 {
            break;
        }
        let clear = !barrier
            && match p.keys {
                Keys::Known(keys) => keys.iter().all(|k| !held.contains(k.as_str())),
                Keys::Unknown => i == 0,
            };
        if clear && p.due && !p.in_flight {
            chosen.push(i);
            room -= 1;
        }
        match p.keys {
            Keys::Known(keys) if limit > 1 => held.extend(keys.iter().map(String::as_str)),
            _ => barrier = true,
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(ks: &[&str]) -> Keys {
        Keys::Known(ks.iter().map(|k| k.to_string()).collect())
    }

    fn pending<'a>(keys: &'a [Keys], flying: &[usize], waiting: &[usize]) -> Vec<Pending<'a>> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| Pending {
                keys: k,
                in_flight: flying.contains(&i),
                due: !waiting.contains(&i),
            })
            .collect()
    }

    #[test]
    fn disjoint_batches_go_together_up_to_the_limit() {
        let ks = [keys(&["a"]), keys(&["b"]), keys(&["c"]), keys(&["d"])];
        assert_eq!(choose(&pending(&ks, &[], &[]), 3), vec![0, 1, 2]);
        assert_eq!(choose(&pending(&ks, &[0], &[]), 3), vec![1, 2]);
        assert_eq!(
            choose(&pending(&ks, &[0, 1, 2], &[]), 3),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn a_shared_key_waits_for_the_earlier_batch_even_one_waiting_for_a_retry() {
        let ks = [keys(&["a", "b"]), keys(&["c"]), keys(&["b"]), keys(&["d"])];
        assert_eq!(choose(&pending(&ks, &[], &[]), 4), vec![0, 1, 3]);
        // The first waits for its retry: the one sharing its key waits too.
        assert_eq!(choose(&pending(&ks, &[], &[0]), 4), vec![1, 3]);
        // A batch waiting behind another still holds its keys: d waits for
        // the waiting b-batch, which waits for the first.
        let ks = [keys(&["a"]), keys(&["a", "d"]), keys(&["d"])];
        assert_eq!(choose(&pending(&ks, &[0], &[]), 4), Vec::<usize>::new());
    }

    #[test]
    fn a_limit_of_one_is_strict_seal_order() {
        let ks = [keys(&["a"]), keys(&["b"])];
        assert_eq!(choose(&pending(&ks, &[], &[]), 1), vec![0]);
        // The first waits for a retry: nothing passes it.
        assert_eq!(choose(&pending(&ks, &[], &[0]), 1), Vec::<usize>::new());
        assert_eq!(choose(&pending(&ks, &[0], &[]), 1), Vec::<usize>::new());
    }

    #[test]
    fn a_batch_with_unknown_keys_is_a_barrier() {
        let ks = [keys(&["a"]), Keys::Unknown, keys(&["b"])];
        assert_eq!(choose(&pending(&ks, &[], &[]), 4), vec![0]);
        let ks = [Keys::Unknown, keys(&["b"])];
        assert_eq!(choose(&pending(&ks, &[], &[]), 4), vec![0]);
    }

    fn arb_keys() -> impl Strategy<Value = Keys> {
        prop_oneof![
            20 => prop::collection::hash_set("[a-f]", 0..4).prop_map(Keys::Known),
            1 => Just(Keys::Unknown),
        ]
    }

    proptest! {
        /// For any key sets: the batches in flight after a choice never
        /// share a key, none of them shares a key with an earlier
        /// unanswered batch, no more than `limit` are in flight, and with
        /// room left and a due batch at the head, something is sent.
        #[test]
        fn never_two_in_flight_sharing_a_key_nor_passing_an_earlier_holder(
            batches in prop::collection::vec((arb_keys(), any::<bool>(), any::<bool>()), 0..24),
            limit in 1usize..6,
        ) {
            // Start from a legal in-flight set: the ones `choose` picks
            // among those flagged, then choose again with them flying.
            let ks: Vec<Keys> = batches.iter().map(|b| b.0.clone()).collect();
            let due: Vec<bool> = batches.iter().map(|b| b.2).collect();
            let first: Vec<Pending<'_>> = ks.iter().zip(&batches)
                .map(|(k, b)| Pending { keys: k, in_flight: false, due: b.1 })
                .collect();
            let flying = choose(&first, limit);
            let second: Vec<Pending<'_>> = ks.iter().enumerate()
                .map(|(i, k)| Pending { keys: k, in_flight: flying.contains(&i), due: due[i] })
                .collect();
            let more = choose(&second, limit);
            let all: Vec<usize> = flying.iter().chain(&more).copied().collect();
            prop_assert!(all.len() <= limit);
            for &i in &more {
                prop_assert!(!flying.contains(&i), "sent twice");
                prop_assert!(due[i], "sent before its back-off ended");
            }
            for &i in &all {
                if limit == 1 {
                    prop_assert_eq!(i, 0, "strict seal order broken");
                }
                // Every earlier entry is unanswered (in flight or pending).
                for j in 0..i {
                    let shared = match (&ks[i], &ks[j]) {
                        (Keys::Known(a), Keys::Known(b)) => !a.is_disjoint(b),
                        _ => true,
                    };
                    prop_assert!(!shared, "batch {} goes while earlier batch {} holds one of its keys", i, j);
                }
            }
            // The head of the route, when due, is never held back.
            if batches.first().is_some_and(|b| b.1) {
                prop_assert_eq!(flying.first().copied(), Some(0));
            }
        }
    }
}
