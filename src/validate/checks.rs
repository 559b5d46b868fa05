//! Check-digit algorithms: 统一社会信用代码 (GB 32100) and 公民身份号码
//! (GB 11643), as docs/datasets.md, "Check algorithms", states them.
//!
//! Each check says *why* a code fails, so that messages can tell data staff
//! whether the code is malformed or only its check digit is wrong.

/// GB 32100 code charset: digits and upper-case letters without I, O, S, V, Z.
/// A character's value is its index.
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// Why a code failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeFault {
    /// Wrong length or characters (the structure, not the check digit).
    Malformed,
    /// GB 11643 only: characters 7–14 are not a real date.
    BadDate,
    /// Well formed, but the last character should be this one.
    CheckDigit(char),
}

fn uscc_value(b: u8) -> Option<u32> {
    USCC_CHARSET.iter().position(|&c| c == b).map(|i| i as u32)
}

/// The GB 32100 check character for the first 17 characters, or `None`
/// when they are not well formed.
pub fn uscc_check_char(first17: &[u8]) -> Option<char> {
    if first17.len() != 17 || !first17[2..8].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut sum = 0u32;
    for (&b, w) in first17.iter().zip(USCC_WEIGHTS) {
        sum += uscc_value(b)? * w;
    }
    Some(USCC_CHARSET[((31 - sum % 31) % 31) as usize] as char)
}

/// Checks a 统一社会信用代码: structure, then the check digit.
pub fn check_uscc(code: &str) -> Result<(), CodeFault> {
    let b = code.as_bytes();
    if b.len() != 18 || uscc_value(b[17]).is_none() {
        return Err(CodeFault::Malformed);
    }
    let want = uscc_check_char(&b[..17]).ok_or(CodeFault::Malformed)?;
    if b[17] as char == want {
        Ok(())
    } else {
        Err(CodeFault::CheckDigit(want))
    }
}

/// The GB 11643 check character for the first 17 digits, or `None` when
/// they are not 17 ASCII digits.
pub fn id_check_char(first17: &[u8]) -> Option<char> {
    if first17.len() != 17 || !first17.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = first17
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(&b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(ID_CHECK[(sum % 11) as usize] as char)
}

/// Checks a 公民身份号码: `\d{17}[\dX]`, a real birth date in characters
/// 7–14, then the check digit.
pub fn check_gb11643(code: &str) -> Result<(), CodeFault> {
    let b = code.as_bytes();
    if b.len() != 18 || !(b[17].is_ascii_digit() || b[17] == b'X') {
        return Err(CodeFault::Malformed);
    }
    let want = id_check_char(&b[..17]).ok_or(CodeFault::Malformed)?;
    let num = |r: std::ops::Range<usize>| code[r].parse::<u32>().ok();
    let real_date = match (num(6..10), num(10..12), num(12..14)) {
        (Some(y), Some(m), Some(d)) => {
            chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some() && y >= 1800
        }
        _ => false,
    };
    if !real_date {
        return Err(CodeFault::BadDate);
    }
    if b[17] as char == want {
        Ok(())
    } else {
        Err(CodeFault::CheckDigit(want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;
    use proptest::prelude::*;

    #[test]
    fn known_examples_pass() {
        assert_eq!(check_uscc("91350100M000100Y43"), Ok(()));
        assert_eq!(check_gb11643("11010519491231002X"), Ok(()));
    }

    #[test]
    fn faults_are_told_apart() {
        assert_eq!(
            check_uscc("91350100M000100Y44"),
            Err(CodeFault::CheckDigit('3'))
        );
        assert_eq!(check_uscc("91350100M000100Y4"), Err(CodeFault::Malformed));
        assert_eq!(check_uscc("9135010OM000100Y43"), Err(CodeFault::Malformed));
        assert_eq!(check_uscc("913501I0M000100Y43"), Err(CodeFault::Malformed));
        assert_eq!(
            check_gb11643("110105194912310021"),
            Err(CodeFault::CheckDigit('X'))
        );
        assert_eq!(
            check_gb11643("11010519491231002x"),
            Err(CodeFault::Malformed)
        );
        // 1949-02-30 does not exist, whatever the check digit says.
        let first17 = b"11010519490230002";
        let c = id_check_char(first17).unwrap();
        let code = format!("{}{c}", std::str::from_utf8(first17).unwrap());
        assert_eq!(check_gb11643(&code), Err(CodeFault::BadDate));
    }

    fn arb_uscc() -> impl Strategy<Value = String> {
        let c = prop::sample::select(USCC_CHARSET.to_vec());
        let d = prop::sample::select(b"0123456789".to_vec());
        (
            prop::collection::vec(c.clone(), 2),
            prop::collection::vec(d, 6),
            prop::collection::vec(c, 9),
        )
            .prop_map(|(a, b, c)| {
                let mut v: Vec<u8> = a.into_iter().chain(b).chain(c).collect();
                v.push(uscc_check_char(&v).unwrap() as u8);
                String::from_utf8(v).unwrap()
            })
    }

    fn arb_id() -> impl Strategy<Value = String> {
        (
            100000u32..999999,
            chrono::NaiveDate::from_ymd_opt(1900, 1, 1)
                .unwrap()
                .num_days_from_ce()
                ..chrono::NaiveDate::from_ymd_opt(2025, 12, 31)
                    .unwrap()
                    .num_days_from_ce(),
            0u32..1000,
        )
            .prop_map(|(area, days, seq)| {
                let d = chrono::NaiveDate::from_num_days_from_ce_opt(days).unwrap();
                let first17 = format!("{area}{}{seq:03}", d.format("%Y%m%d"));
                let c = id_check_char(first17.as_bytes()).unwrap();
                format!("{first17}{c}")
            })
    }

    proptest! {
        #[test]
        fn generated_uscc_passes(code in arb_uscc()) {
            prop_assert_eq!(check_uscc(&code), Ok(()));
        }

        /// GB 32100's weights are coprime to 31, so any single substitution
        /// changes the sum modulo 31 and the code fails.
        #[test]
        fn uscc_single_change_fails(
            code in arb_uscc(),
            pos in 0usize..18,
            repl in prop::sample::select(
                b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".to_vec()),
        ) {
            let mut b = code.into_bytes();
            prop_assume!(b[pos] != repl);
            b[pos] = repl;
            let changed = String::from_utf8(b).unwrap();
            prop_assert!(check_uscc(&changed).is_err());
        }

        #[test]
        fn generated_id_passes(code in arb_id()) {
            prop_assert_eq!(check_gb11643(&code), Ok(()));
        }

        /// GB 11643's weights are non-zero modulo 11, so any single
        /// substitution of a digit fails the check (or the date).
        #[test]
        fn id_single_change_fails(
            code in arb_id(),
            pos in 0usize..18,
            repl in prop::sample::select(b"0123456789X".to_vec()),
        ) {
            let mut b = code.into_bytes();
            prop_assume!(b[pos] != repl);
            b[pos] = repl;
            let changed = String::from_utf8(b).unwrap();
            prop_assert!(check_gb11643(&changed).is_err());
        }
    }
}
