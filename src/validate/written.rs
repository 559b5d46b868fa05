//! Dates and times as people type them, tried only after the wire-like
//! forms of `datetime` failed (so the common path pays nothing): what
//! Excel shows for a date cell exported as text (`2026/11/25 9:00`), the
//! Chinese written form (`2026年11月25日`, `2026年11月25日 9:00`), and
//! single-digit months, days and hours (`2026-1-5 9:05:00`). Only forms
//! that start with a four-digit year are taken: `11/25/2026` and
//! `25/11/2026` cannot be told apart, so neither is guessed. Also tells an
//! impossible date (`2026-02-30`) from a value that is no date at all, so
//! the message can say which (docs/zh/数据专员指南.md, “日期与时间”).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// What a typed date/time value turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Written {
    DateTime(NaiveDateTime),
    Date(NaiveDate),
    /// A date or time in an accepted shape that does not exist; the text
    /// says which part, in Chinese ("2026 年 2 月没有 30 日").
    Impossible(String),
    /// Not a date in any accepted shape.
    Unknown,
}

/// Reads `s` (already trimmed).
pub(crate) fn parse_written(s: &str) -> Written {
    let Some((y, m, d, rest)) = date_part(s) else {
        return Written::Unknown;
    };
    let date = match NaiveDate::from_ymd_opt(y as i32, m, d) {
        Some(date) => date,
        None if (1..=12).contains(&m) => {
            return Written::Impossible(format!("{y} 年 {m} 月没有 {d} 日"));
        }
        None => return Written::Impossible(format!("没有 {m} 月")),
    };
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Written::Date(date);
    }
    match time_part(rest) {
        Some((h, mi, sec)) => match NaiveTime::from_hms_opt(h, mi, sec) {
            Some(t) => Written::DateTime(date.and_time(t)),
            None => Written::Impossible(format!("时间 {h}:{mi:02}:{sec:02} 不存在")),
        },
        None => Written::Unknown,
    }
}

/// `yyyy-M-d`, `yyyy/M/d`, `yyyy.M.d`, `yyyy年M月d日` (and the basic
/// `yyyyMMdd[[T]HHmmss]`, whose time is rewritten as `H:mm:ss`), with the
/// text after it.
fn date_part(s: &str) -> Option<(u32, u32, u32, std::borrow::Cow<'_, str>)> {
    let b = s.as_bytes();
    if b.len() >= 8 && b[..8].iter().all(u8::is_ascii_digit) {
        let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
        let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
        let time = match &b[8..] {
            [] => return Some((y, m, d, "".into())),
            [b'T', t @ ..] | t if t.len() == 6 && t.iter().all(u8::is_ascii_digit) => t,
            _ => return None,
        };
        let t = std::str::from_utf8(time).ok()?;
        return Some((
            y,
            m,
            d,
            format!("{}:{}:{}", &t[0..2], &t[2..4], &t[4..6]).into(),
        ));
    }
    let (y, rest) = number(s, 4, 4)?;
    let (sep, rest) = if let Some(r) = rest.strip_prefix('年') {
        ('年', r)
    } else {
        let c = rest
            .chars()
            .next()
            .filter(|c| matches!(c, '-' | '/' | '.'))?;
        (c, &rest[1..])
    };
    let (m, rest) = number(rest, 1, 2)?;
    let rest = if sep == '年' {
        rest.strip_prefix('月')?
    } else {
        rest.strip_prefix(sep)?
    };
    let (d, rest) = number(rest, 1, 2)?;
    let rest = if sep == '年' {
        rest.strip_prefix('日')
            .or_else(|| rest.strip_prefix('号'))?
    } else {
        rest
    };
    Some((y, m, d, rest.into()))
}

/// `H:mm`, `H:mm:ss` or `H时m分[s秒]`, the hour of one or two digits.
fn time_part(s: &str) -> Option<(u32, u32, u32)> {
    let (h, rest) = number(s, 1, 2)?;
    if let Some(rest) = rest.strip_prefix('时').or_else(|| rest.strip_prefix('点')) {
        let (mi, rest) = number(rest, 1, 2)?;
        let rest = rest.strip_prefix('分')?;
        if rest.is_empty() {
            return Some((h, mi, 0));
        }
        let (sec, rest) = number(rest, 1, 2)?;
        return (rest == "秒").then_some((h, mi, sec));
    }
    let rest = rest.strip_prefix(':')?;
    let (mi, rest) = number(rest, 2, 2)?;
    if rest.is_empty() {
        return Some((h, mi, 0));
    }
    let rest = rest.strip_prefix(':')?;
    let (sec, rest) = number(rest, 2, 2)?;
    rest.is_empty().then_some((h, mi, sec))
}

/// A run of `min..=max` ASCII digits at the start of `s`.
fn number(s: &str, min: usize, max: usize) -> Option<(u32, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n < min || n > max {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> Written {
        Written::DateTime(
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(h, mi, s)
                .unwrap(),
        )
    }

    #[test]
    fn forms_people_type() {
        assert_eq!(parse_written("2026/11/25 9:00"), dt(2026, 11, 25, 9, 0, 0));
        assert_eq!(
            parse_written("2026/11/25 09:05:07"),
            dt(2026, 11, 25, 9, 5, 7)
        );
        assert_eq!(parse_written("2026-1-5 9:05"), dt(2026, 1, 5, 9, 5, 0));
        assert_eq!(
            parse_written("2026年11月25日 9:00"),
            dt(2026, 11, 25, 9, 0, 0)
        );
        assert_eq!(
            parse_written("2026年11月25日9时30分"),
            dt(2026, 11, 25, 9, 30, 0)
        );
        let d = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(parse_written("2026年11月25日"), Written::Date(d));
        assert_eq!(parse_written("2026/11/25"), Written::Date(d));
        assert_eq!(parse_written("2026.11.25"), Written::Date(d));
    }

    #[test]
    fn impossible_dates_are_named() {
        assert_eq!(
            parse_written("2026-02-30"),
            Written::Impossible("2026 年 2 月没有 30 日".into())
        );
        assert_eq!(
            parse_written("2026-02-30 10:00:00"),
            Written::Impossible("2026 年 2 月没有 30 日".into())
        );
        assert_eq!(
            parse_written("20260230"),
            Written::Impossible("2026 年 2 月没有 30 日".into())
        );
        assert_eq!(
            parse_written("2026/13/01"),
            Written::Impossible("没有 13 月".into())
        );
        assert_eq!(
            parse_written("2026/11/25 25:00"),
            Written::Impossible("时间 25:00:00 不存在".into())
        );
    }

    #[test]
    fn ambiguous_and_foreign_forms_are_not_guessed() {
        for s in [
            "11/25/2026",
            "25/11/2026",
            "2026/11/25 9",
            "2026-11/25",
            "明天",
            "2026年11月",
            "2026/11/25 9:5",
        ] {
            assert_eq!(parse_written(s), Written::Unknown, "{s}");
        }
    }
}
