//! `[retention]`: how long fepd keeps what it no longer needs, per kind.
//!
//! Durations are strings (`"90d"`, `"12h"`, `"10m"`, `"1s"`, parsed by
//! `humantime`), or `"never"` to keep a kind forever. What dedupe needs
//! (each key's last sealed hash) and the exchange log (pruned only by
//! `fepd audit export --prune`) are never retention's to delete.

use std::time::Duration;

use serde::Deserialize;

/// How long something is kept; `None` = forever (`"never"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep(pub Option<Duration>);

impl Keep {
    fn days(n: u64) -> Keep {
        Keep(Some(Duration::from_secs(n * 86_400)))
    }
}

impl std::fmt::Display for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => write!(f, "{}", humantime::format_duration(d)),
            None => f.write_str("never"),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keep, D::Error> {
        let text = String::deserialize(d)?;
        parse_keep(&text).map_err(serde::de::Error::custom)
    }
}

/// `"90d"`, `"12h"`, `"10m"`, `"1s"` (or combinations humantime reads,
/// like `"1h 30m"`), or `"never"`.
pub fn parse_keep(text: &str) -> Result<Keep, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("never") {
        return Ok(Keep(None));
    }
    match humantime::parse_duration(t) {
        Ok(d) if !d.is_zero() => Ok(Keep(Some(d))),
        Ok(_) => Err(format!(
            "{text:?}: a duration must be longer than zero (\"never\" keeps forever)"
        )),
        Err(e) => Err(format!(
            "{text:?} is not a duration like \"90d\", \"12h\", \"10m\", \"1s\" or \"never\" ({e})"
        )),
    }
}

/// A pass interval: a duration, never `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every(pub Duration);

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Every, D::Error> {
        let text = String::deserialize(d)?;
        match parse_keep(&text).map_err(serde::de::Error::custom)? {
            Keep(Some(d)) => Ok(Every(d)),
            Keep(None) => Err(serde::de::Error::custom(
                "interval: \"never\" is not an interval; set each kind to \"never\" instead",
            )),
        }
    }
}

/// Per kind, how long after it stopped being needed a thing is deleted.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Wire bodies of delivered batches (and of split parents), counted
    /// from delivery. Pending and parked batches keep theirs.
    pub batch_bodies: Keep,
    /// Originals and receipts in `spool/<dataset>/done/`, counted from
    /// when they were moved there.
    pub done_files: Keep,
    /// Everything in `spool/<dataset>/rejected/` (originals, reports,
    /// errors CSVs, library refusals).
    pub rejected_files: Keep,
    /// Batch files and acknowledgements in `outbox/<dataset>/delivered/`.
    pub delivered_files: Keep,
    /// Per-record history rows (`batch_record`, `rejection`,
    /// `remote_rejection`) of delivered batches and finished files: what
    /// `fepd audit trace` shows beyond a key's last sealed version.
    pub record_rows: Keep,
    /// How often a pass runs.
    pub interval: Every,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            batch_bodies: Keep::days(30),
            done_files: Keep::days(30),
            rejected_files: Keep::days(90),
            delivered_files: Keep::days(7),
            record_rows: Keep::days(365),
            interval: Every(Duration::from_secs(3600)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_from_the_documented_forms() {
        assert_eq!(parse_keep("90d").unwrap(), Keep::days(90));
        assert_eq!(
            parse_keep("12h").unwrap(),
            Keep(Some(Duration::from_secs(12 * 3600)))
        );
        assert_eq!(
            parse_keep("10m").unwrap(),
            Keep(Some(Duration::from_secs(600)))
        );
        assert_eq!(
            parse_keep("1s").unwrap(),
            Keep(Some(Duration::from_secs(1)))
        );
        assert_eq!(parse_keep("never").unwrap(), Keep(None));
        let e = parse_keep("90 days please").unwrap_err();
        assert!(e.contains("90 days please"), "{e}");
        assert!(parse_keep("0s").is_err());
    }

    #[test]
    fn a_bad_value_names_the_key() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            retention: Retention,
        }
        let e = toml::from_str::<T>("[retention]\ndone_files = \"3 weeks-ish\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("done_files") && e.contains("3 weeks-ish"), "{e}");
        let e = toml::from_str::<T>("[retention]\ninterval = \"never\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("interval"), "{e}");
        let t: T = toml::from_str("[retention]\nbatch_bodies = \"1s\"").unwrap();
        assert_eq!(t.retention.batch_bodies, Keep(Some(Duration::from_secs(1))));
        assert_eq!(t.retention.done_files, Keep::days(30));
    }
}
