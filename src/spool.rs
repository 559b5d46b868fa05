//! The spool layout: one type owns where a dataset's files are and what a
//! claimed file is called.
//!
//! `spool/<dataset>/` holds `inbox/` (where data staff drop files),
//! `work/` (files claimed and being read), `done/` and `rejected/` (files
//! with their verdict, beside their receipt or report; README "How data
//! flows"). A file claimed from the inbox as `<name>` lives in `work/` as
//! `<claim id>~<name>`: the claim id is a ULID from the same monotonic
//! generator as batch ids, so `work/` listed by name is in claim order.
//! Claim names are written ([`ClaimName::new`]) and read
//! ([`ClaimName::parse`]) here only.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::state::files::FileState;

/// A dataset's spool folders.
#[derive(Debug, Clone)]
pub struct Spool {
    /// The spool root, which holds every dataset's folder.
    pub root: PathBuf,
    pub inbox: PathBuf,
    pub work: PathBuf,
    pub done: PathBuf,
    pub rejected: PathBuf,
}

impl Spool {
    /// The folders of `dataset` under the spool root `spool`.
    pub fn new(spool: &Path, dataset: &str) -> Spool {
        let d = spool.join(dataset);
        Spool {
            root: spool.to_path_buf(),
            inbox: d.join("inbox"),
            work: d.join("work"),
            done: d.join("done"),
            rejected: d.join("rejected"),
        }
    }

    /// Creates the folders that do not exist yet.
    pub fn create(&self) -> std::io::Result<()> {
        for d in [&self.inbox, &self.work, &self.done, &self.rejected] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }

    /// Where a file with this verdict goes, with its receipt or report:
    /// `rejected/` for a rejected file, `done/` for the others (a duplicate
    /// gets its receipt in `done/`).
    pub fn verdict_dir(&self, state: FileState) -> &Path {
        if state == FileState::Rejected {
            &self.rejected
        } else {
            &self.done
        }
    }

    /// The path of a claimed file under `work/`.
    pub fn claimed(&self, work_name: &str) -> PathBuf {
        self.work.join(work_name)
    }
}

/// The id a claim gives a file: a ULID, unique and increasing in claim
/// order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClaimId(String);

impl ClaimId {
    /// A new id, later than every id this process made before.
    pub fn generate() -> ClaimId {
        ClaimId(crate::seal::new_batch_id())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The separator between the claim id and the inbox name. A ULID never
/// contains it, so the first one ends the id whatever the name holds.
const SEP: char = '~';

/// A claimed file's name under `work/`: `<claim id>~<inbox name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimName {
    pub id: ClaimId,
    /// The name the file had in the inbox.
    pub name: String,
}

impl ClaimName {
    /// A new claim of the inbox file `name`.
    pub fn new(name: &str) -> ClaimName {
        ClaimName {
            id: ClaimId::generate(),
            name: name.to_string(),
        }
    }

    /// Reads a name under `work/`; `None` if it is not a claim name.
    pub fn parse(work_name: &str) -> Option<ClaimName> {
        let (id, name) = work_name.split_once(SEP)?;
        if id.is_empty() || name.is_empty() {
            return None;
        }
        Some(ClaimName {
            id: ClaimId(id.to_string()),
            name: name.to_string(),
        })
    }

    /// The name under `work/`.
    pub fn work_name(&self) -> String {
        format!("{}{SEP}{}", self.id, self.name)
    }
}

/// The name the file had in the inbox, from its name under `work/`; a
/// name that is not a claim name is its own.
pub fn original_name(work_name: &str) -> &str {
    work_name
        .split_once(SEP)
        .map(|(_, n)| n)
        .unwrap_or(work_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn claim_names_sort_in_claim_order() {
        let a = ClaimName::new("z.csv").work_name();
        let b = ClaimName::new("a.csv").work_name();
        assert!(a < b, "{a} sorts before {b}");
    }

    #[test]
    fn a_name_that_is_no_claim_name_stands_for_itself() {
        assert_eq!(ClaimName::parse("plain.csv"), None);
        assert_eq!(original_name("plain.csv"), "plain.csv");
        assert_eq!(original_name("01J~a~b.csv"), "a~b.csv");
    }

    #[test]
    fn a_dataset_has_its_folders_under_its_name() {
        let s = Spool::new(Path::new("/s"), "case_accept");
        assert_eq!(s.inbox, Path::new("/s/case_accept/inbox"));
        assert_eq!(
            s.claimed("x~a.csv"),
            Path::new("/s/case_accept/work/x~a.csv")
        );
        assert_eq!(s.verdict_dir(FileState::Rejected), s.rejected);
        assert_eq!(s.verdict_dir(FileState::Duplicate), s.done);
        assert_eq!(s.verdict_dir(FileState::Done), s.done);
    }

    proptest! {
        /// Any inbox name — CJK, spaces, dots, tildes — comes back out of
        /// its claim name unchanged, with its claim id.
        #[test]
        fn claim_names_round_trip(name in "[\\PC&&[^/\\x00]]{1,40}|[名单 .~数据]{1,12}") {
            let c = ClaimName::new(&name);
            let w = c.work_name();
            let back = ClaimName::parse(&w).expect("a claim name parses");
            prop_assert_eq!(&back, &c);
            prop_assert_eq!(original_name(&w), name.as_str());
        }
    }
}
