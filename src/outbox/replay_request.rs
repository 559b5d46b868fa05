//! What a 补传 request names (docs/protocol.md §3 *Replays*): the delivered
//! batches of a delivery window, of a source file, or given by id — one
//! choice for `fepd replay` and the console's 补传 by window or file, so
//! the two replay the same batches. Either every batch asked for is
//! replayed or none: [`pruned`] names those whose bodies retention already
//! deleted, and the callers send nothing then. Each batch is then sealed
//! again by [`super::replay_stored`].
//!
//! The refusals are typed; each caller words them (the CLI in English,
//! the console in Chinese).

use chrono::FixedOffset;
use rusqlite::Connection;

use super::BatchState;
use crate::audit::{End, parse_bound};
use crate::state::batches::{self, BatchRow};
use crate::state::replay as q;

/// The batches a replay is asked for.
#[derive(Debug, Clone)]
pub enum Request<'a> {
    /// Delivered from `since` to `until` (texts as `fepd replay --since`
    /// and `--until` take them: a date or an RFC 3339 date-time; `None`
    /// when not given).
    Window {
        dataset: &'a str,
        since: Option<&'a str>,
        until: Option<&'a str>,
    },
    /// Sealed from the file dropped under `name` (of `dataset` only, when
    /// given).
    File {
        name: &'a str,
        dataset: Option<&'a str>,
    },
    /// By id; a split batch stands for its halves.
    Batches(&'a [String]),
}

/// Why a request cannot be met as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    UnknownDataset(String),
    NoBatch(String),
    /// A split batch one of whose halves is not delivered.
    HalfNotDelivered {
        batch: String,
        half: String,
        state: BatchState,
    },
    NotDelivered {
        batch: String,
        state: BatchState,
    },
    /// A window without both of its ends.
    WindowOpen,
    BadSince(String),
    BadUntil(String),
    /// `until` is not after `since`.
    WindowBackwards,
}

/// The delivered batches `request` names, in the route's order (seal
/// order); `known` tells a configured dataset. A window or a file leaves
/// out the batches that are replays themselves: asking again re-sends its
/// records once, not once more per earlier replay (a replay named by id
/// is replayed as asked).
pub fn choose(
    conn: &Connection,
    tz: FixedOffset,
    known: impl Fn(&str) -> bool,
    request: &Request<'_>,
) -> rusqlite::Result<Result<Vec<BatchRow>, Refused>> {
    match *request {
        Request::File { name, dataset } => {
            if let Some(d) = dataset
                && !known(d)
            {
                return Ok(Err(Refused::UnknownDataset(d.to_string())));
            }
            let found = q::delivered_of_file(conn, name, dataset)?;
            Ok(Ok(originals(conn, found)?))
        }
        Request::Batches(ids) => {
            let mut out = Vec::new();
            for id in ids {
                let Some(b) = batches::get(conn, id)? else {
                    return Ok(Err(Refused::NoBatch(id.clone())));
                };
                match b.state {
                    BatchState::Delivered => out.push(b),
                    BatchState::Split => {
                        for h in q::halves_of(conn, id)? {
                            if h.state != BatchState::Delivered {
                                return Ok(Err(Refused::HalfNotDelivered {
                                    batch: id.clone(),
                                    half: h.batch_id,
                                    state: h.state,
                                }));
                            }
                            out.push(h);
                        }
                    }
                    state => {
                        return Ok(Err(Refused::NotDelivered {
                            batch: id.clone(),
                            state,
                        }));
                    }
                }
            }
            Ok(Ok(out))
        }
        Request::Window {
            dataset,
            since,
            until,
        } => {
            if !known(dataset) {
                return Ok(Err(Refused::UnknownDataset(dataset.to_string())));
            }
            let (Some(since), Some(until)) = (since, until) else {
                return Ok(Err(Refused::WindowOpen));
            };
            let since = match parse_bound(since, End::Start, tz) {
                Ok(t) => t,
                Err(e) => return Ok(Err(Refused::BadSince(e.to_string()))),
            };
            let until = match parse_bound(until, End::End, tz) {
                Ok(t) => t,
                Err(e) => return Ok(Err(Refused::BadUntil(e.to_string()))),
            };
            if until <= since {
                return Ok(Err(Refused::WindowBackwards));
            }
            let found = q::delivered_between(conn, dataset, since.timestamp(), until.timestamp())?;
            Ok(Ok(originals(conn, found)?))
        }
    }
}

/// `found` without the batches that are replays themselves.
fn originals(conn: &Connection, found: Vec<BatchRow>) -> rusqlite::Result<Vec<BatchRow>> {
    let mut out = Vec::with_capacity(found.len());
    for b in found {
        if !q::is_replay(conn, &b.batch_id)? {
            out.push(b);
        }
    }
    Ok(out)
}

/// The chosen batches whose bodies retention deleted, with per dataset
/// the first delivery whose body is still kept (`None`: none is): when
/// any is listed, the request is refused whole.
#[derive(Debug, Clone, Default)]
pub struct Pruned<'b> {
    pub batches: Vec<&'b BatchRow>,
    pub kept_from: Vec<(String, Option<String>)>,
}

impl Pruned<'_> {
    /// The earliest and latest delivery among the pruned batches.
    pub fn span(&self) -> (String, String) {
        let when = |b: &&BatchRow| b.delivered_at.clone().unwrap_or_default();
        (
            self.batches.iter().map(when).min().unwrap_or_default(),
            self.batches.iter().map(when).max().unwrap_or_default(),
        )
    }
}

pub fn pruned<'b>(conn: &Connection, chosen: &'b [BatchRow]) -> rusqlite::Result<Pruned<'b>> {
    let mut out = Pruned::default();
    for b in chosen {
        if !q::has_body(conn, b.seq)? {
            out.batches.push(b);
        }
    }
    let datasets: std::collections::BTreeSet<&str> =
        out.batches.iter().map(|b| b.dataset.as_str()).collect();
    for d in datasets {
        out.kept_from
            .push((d.to_string(), q::first_kept_delivery(conn, d)?));
    }
    Ok(out)
}
