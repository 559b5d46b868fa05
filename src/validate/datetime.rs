//! Datetimes and dates as data staff write them, normalised to the wire
//! form (docs/protocol.md §1): `2026-11-22T10:15:30+08:00` in the configured
//! timezone, and `yyyy-MM-dd`.
//!
//! Hand-written rather than `chrono`'s format parsing: this runs for every
//! datetime of every record, and the accepted shapes are few and fixed.

use std::fmt::Write;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
};

/// Parses an input datetime: `yyyy-MM-dd HH:mm:ss`, `yyyyMMddHHmmss`,
/// `yyyyMMddTHHmmss`, or ISO 8601 extended (`T` or space) with an optional
/// fraction (dropped: the wire form has whole seconds) and an optional
/// offset (`Z`, `+08:00`, `+0800`, `+08`). Without an offset `tz` applies.
pub fn parse_datetime(s: &str, tz: FixedOffset) -> Option<DateTime<FixedOffset>> {
    let b = s.as_bytes();
    let (date, time, rest) = if b.len() >= 14 && b[..8].iter().all(u8::is_ascii_digit) {
        // Basic format: yyyyMMddHHmmss or yyyyMMddTHHmmss.
        let t = if b[8] == b'T' { 9 } else { 8 };
        let time = b.get(t..t + 6)?;
        if !time.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let date = ymd(digits(&b[0..4])?, digits(&b[4..6])?, digits(&b[6..8])?)?;
        let time = hms(
            digits(&time[0..2])?,
            digits(&time[2..4])?,
            digits(&time[4..6])?,
        )?;
        (date, time, &b[t + 6..])
    } else {
        if b.len() < 19 || !matches!(b[10], b'T' | b' ') {
            return None;
        }
        let date = parse_date_ext(&b[..10])?;
        let t = &b[11..19];
        if t[2] != b':' || t[5] != b':' {
            return None;
        }
        let time = hms(digits(&t[0..2])?, digits(&t[3..5])?, digits(&t[6..8])?)?;
        (date, time, &b[19..])
    };
    // An optional fraction of a second, dropped.
    let rest = match rest.first() {
        Some(b'.') | Some(b',') => {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            &rest[1 + n..]
        }
        _ => rest,
    };
    let offset = match rest {
        [] => tz,
        [b'Z'] | [b'z'] => FixedOffset::east_opt(0)?,
        [sign @ (b'+' | b'-'), r @ ..] => {
            let (h, m) = match r {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i32;
            FixedOffset::east_opt(if *sign == b'-' { -secs } else { secs })?
        }
        _ => return None,
    };
    offset
        .from_local_datetime(&NaiveDateTime::new(date, time))
        .single()
}

/// Parses an input date: `yyyy-MM-dd` or `yyyyMMdd`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    match b.len() {
        10 => parse_date_ext(b),
        8 => ymd(digits(&b[0..4])?, digits(&b[4..6])?, digits(&b[6..8])?),
        _ => None,
    }
}

/// The wire form of an instant, rendered in `tz`.
pub fn format_datetime(dt: &DateTime<FixedOffset>, tz: FixedOffset) -> String {
    let l = dt.with_timezone(&tz).naive_local();
    let off = tz.local_minus_utc();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs() / 60;
    let mut out = String::with_capacity(25);
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        l.year(),
        l.month(),
        l.day(),
        l.hour(),
        l.minute(),
        l.second(),
        off / 60,
        off % 60
    )
    .expect("write to String");
    out
}

/// The wire form of a date.
pub fn format_date(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// Unix seconds of a datetime already in wire form (used for version
/// ordering and cross-field comparison); `None` if it is not.
pub fn wire_to_unix(s: &str) -> Option<i64> {
    parse_datetime(s, FixedOffset::east_opt(0)?).map(|d| d.timestamp())
}

fn parse_date_ext(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    ymd(digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?)
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn ymd(y: u32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y as i32, m, d)
}

fn hms(h: u32, m: u32, s: u32) -> Option<NaiveTime> {
    NaiveTime::from_hms_opt(h, m, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz8() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn norm(s: &str) -> Option<String> {
        parse_datetime(s, tz8()).map(|d| format_datetime(&d, tz8()))
    }

    #[test]
    fn accepted_shapes_normalise_to_the_wire_form() {
        let want = Some("2026-11-22T10:15:30+08:00".to_string());
        for s in [
            "2026-11-22 10:15:30",
            "20261122101530",
            "20261122T101530",
            "2026-11-22T10:15:30+08:00",
            "2026-11-22T10:15:30",
            "2026-11-22T02:15:30Z",
            "2026-11-22T02:15:30.123Z",
            "2026-11-22T03:15:30+01:00",
            "2026-11-22T10:15:30+0800",
            "2026-11-21T21:15:30-05:00",
        ] {
            assert_eq!(norm(s), want, "{s}");
        }
    }

    #[test]
    fn rejected_shapes() {
        for s in [
            "",
            "2026-11-22",
            "2026-11-22 10:15",
            "2026-13-22 10:15:30",
            "2026-02-30 10:15:30",
            "2026-11-22 24:00:00",
            "2026/11/22 10:15:30",
            "2026-11-22T10:15:30+8",
            "2026-11-22T10:15:30 garbage",
            "202611221015",
            "2026112210153X",
            "2026-11-22T10:15:30.",
        ] {
            assert_eq!(norm(s), None, "{s}");
        }
    }

    #[test]
    fn other_timezone_keeps_the_instant() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let d = parse_datetime("2026-11-22 10:15:30", tz8()).unwrap();
        assert_eq!(format_datetime(&d, utc), "2026-11-22T02:15:30+00:00");
        assert_eq!(
            wire_to_unix("2026-11-22T10:15:30+08:00"),
            Some(d.timestamp())
        );
    }

    #[test]
    fn dates() {
        let d = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap();
        assert_eq!(parse_date("2026-02-28"), Some(d));
        assert_eq!(parse_date("20260228"), Some(d));
        assert_eq!(parse_date("2026-02-29"), None);
        assert_eq!(parse_date("2026-2-28"), None);
        assert_eq!(format_date(d), "2026-02-28");
    }
}
