//! Config values that are written as strings but mean something typed:
//! the timezone offset, the CSV delimiter, an input encoding and a cron
//! schedule. Each is parsed once, by serde, when the config is read, and
//! the rest of fepd never parses them again. A bad one does not stop the
//! reading: it is kept as [`Checked::Bad`] with its text and the reason,
//! so that `fepd check-config` still lists every problem at once, and a
//! config holding one never starts (`Config::problems`).

use std::fmt;

use chrono::FixedOffset;
use encoding_rs::Encoding;

/// A typed value as read: the value, or the text that is not one and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked<T> {
    Ok(T),
    Bad { text: String, why: String },
}

impl<T> Checked<T> {
    /// The value; `None` for a bad one (which `problems` reports).
    pub fn ok(&self) -> Option<&T> {
        match self {
            Checked::Ok(v) => Some(v),
            Checked::Bad { .. } => None,
        }
    }

    /// Why the text is not a value, for `problems`.
    pub fn problem(&self) -> Option<&str> {
        match self {
            Checked::Ok(_) => None,
            Checked::Bad { why, .. } => Some(why),
        }
    }
}

impl<T: Default> Default for Checked<T> {
    fn default() -> Self {
        Checked::Ok(T::default())
    }
}

impl<'de, T: TryFrom<String, Error = String>> serde::Deserialize<'de> for Checked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Ok(match T::try_from(text.clone()) {
            Ok(v) => Checked::Ok(v),
            Err(why) => Checked::Bad { text, why },
        })
    }
}

/// `timezone = "+08:00"`: the offset for input times without one, for log
/// timestamps and for `send_window`/`schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timezone(FixedOffset);

impl Timezone {
    pub fn offset(self) -> FixedOffset {
        self.0
    }
}

impl Default for Timezone {
    /// China Standard Time, the offset of every exchange host fepd serves.
    fn default() -> Self {
        Timezone(FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset"))
    }
}

impl TryFrom<String> for Timezone {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_offset(&s)
            .map(Timezone)
            .ok_or_else(|| format!("{s:?} is not an offset like +08:00"))
    }
}

/// Parses `+08:00`, `-05:30`, `Z` into an offset.
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s == "Z" || s == "+00:00" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// `csv_delimiter = ";"`: one ASCII character (not a quote, CR or LF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiter(u8);

impl Delimiter {
    pub fn byte(self) -> u8 {
        self.0
    }
}

impl Default for Delimiter {
    fn default() -> Self {
        Delimiter(b',')
    }
}

impl TryFrom<String> for Delimiter {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_bytes() {
            [b] if b.is_ascii() && !matches!(b, b'"' | b'\r' | b'\n') => Ok(Delimiter(*b)),
            _ => Err(format!(
                "{s:?} is not a delimiter: one ASCII character other than a quote or a line end"
            )),
        }
    }
}

/// `default_encoding = "GB18030"`: an encoding fepd reads, by any of its
/// labels (`UTF-8`, `GB18030`, `GBK`, `GB2312`, `CP936`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncodingLabel(&'static Encoding);

impl EncodingLabel {
    pub fn encoding(self) -> &'static Encoding {
        self.0
    }
}

impl fmt::Debug for EncodingLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl TryFrom<String> for EncodingLabel {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::decode::encoding_for_label(&s)
            .map(EncodingLabel)
            .ok_or_else(|| format!("unknown encoding {s:?} (UTF-8, GB18030, GBK, GB2312 or CP936)"))
    }
}

/// `schedule = "0 */5 * * * *"`: cron with seconds
/// (`sec min hour day month weekday`), checked as the scheduler reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(String);

impl Schedule {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Schedule {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.split_whitespace().count() < 6 {
            return Err(format!(
                "schedule {s:?} needs six fields: sec min hour day month weekday (e.g. \"0 */5 * * * *\")"
            ));
        }
        tokio_cron_scheduler::Job::new_async_tz(s.as_str(), chrono::Utc, |_, _| Box::pin(async {}))
            .map_err(|e| format!("schedule {s:?} is not a cron expression: {e}"))?;
        Ok(Schedule(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("+08:00").unwrap().local_minus_utc(), 8 * 3600);
        assert_eq!(
            parse_offset("-05:30").unwrap().local_minus_utc(),
            -(5 * 3600 + 1800)
        );
        assert!(parse_offset("CST").is_none());
        assert!(parse_offset("+15:00").is_none());
        assert_eq!(Timezone::default().offset().local_minus_utc(), 8 * 3600);
    }

    #[test]
    fn delimiters_are_one_safe_ascii_character() {
        assert_eq!(Delimiter::try_from(";".to_string()).unwrap().byte(), b';');
        assert_eq!(Delimiter::try_from("\t".to_string()).unwrap().byte(), b'\t');
        for bad in ["", ",,", "\"", "\n", "，"] {
            assert!(Delimiter::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encodings_are_read_by_any_label() {
        let gbk = EncodingLabel::try_from("gbk".to_string()).unwrap();
        assert_eq!(gbk.encoding(), encoding_rs::GB18030);
        let e = EncodingLabel::try_from("latin1".to_string()).unwrap_err();
        assert!(e.contains("\"latin1\""), "{e}");
    }

    #[test]
    fn schedules_are_cron_with_seconds() {
        assert!(Schedule::try_from("0 */5 * * * *".to_string()).is_ok());
        let e = Schedule::try_from("*/5 * * * *".to_string()).unwrap_err();
        assert!(e.contains("six fields"), "{e}");
        let e = Schedule::try_from("every night a b c d".to_string()).unwrap_err();
        assert!(e.contains("not a cron expression"), "{e}");
    }
}
