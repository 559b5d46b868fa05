//! Sniff: the evidence for an encoding found at the start of a file.
//!
//! Each function looks at a prefix of the raw bytes and says either what it
//! found, or that it needs more bytes to decide. They never look past
//! [`SNIFF_LEN`] bytes, so the checker's buffer is bounded.

use encoding_rs::{Encoding, GB18030, UTF_8, UTF_16BE, UTF_16LE};

use super::DecodeError;

/// How many leading bytes detection may look at. chardetng gets this much;
/// the other evidence needs far less.
pub(crate) const SNIFF_LEN: usize = 64 * 1024;

/// An XML declaration longer than this is not looked for any further: a
/// real one is a few dozen bytes.
const MAX_DECL_LEN: usize = 1024;

/// Outcome of looking at a prefix that may still grow.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sniffed<T> {
    /// The evidence is there (`Some`) or is certainly absent (`None`).
    Decided(Option<T>),
    /// The prefix is too short to tell; `at_eof` forces a decision.
    NeedMore,
}

/// A byte-order mark: its encoding and length. UTF-16 is handled too: a
/// BOM is unambiguous and encoding_rs decodes it, so there is no reason to
/// refuse it.
pub(crate) fn bom(prefix: &[u8], at_eof: bool) -> Sniffed<(&'static Encoding, usize)> {
    if prefix.starts_with(b"\xEF\xBB\xBF") {
        return Sniffed::Decided(Some((UTF_8, 3)));
    }
    if prefix.starts_with(b"\xFF\xFE") {
        return Sniffed::Decided(Some((UTF_16LE, 2)));
    }
    if prefix.starts_with(b"\xFE\xFF") {
        return Sniffed::Decided(Some((UTF_16BE, 2)));
    }
    // Two bytes of a UTF-8 BOM are not yet enough to tell.
    if !at_eof && prefix.len() < 3 && b"\xEF\xBB\xBF".starts_with(prefix) {
        return Sniffed::NeedMore;
    }
    Sniffed::Decided(None)
}

/// The `encoding="…"` of an XML declaration at the very start of `prefix`
/// (after any BOM). A declaration without `encoding` is no evidence; a
/// declared encoding outside the supported family is an error.
pub(crate) fn xml_declaration(
    prefix: &[u8],
    at_eof: bool,
) -> Result<Sniffed<&'static Encoding>, DecodeError> {
    const OPEN: &[u8] = b"<?xml";
    let head = &prefix[..prefix.len().min(OPEN.len())];
    if head != &OPEN[..head.len()] {
        return Ok(Sniffed::Decided(None));
    }
    if head.len() < OPEN.len() {
        return Ok(if at_eof {
            Sniffed::Decided(None)
        } else {
            Sniffed::NeedMore
        });
    }
    // `<?xml-stylesheet` and the like are processing instructions, not the
    // declaration.
    match prefix.get(OPEN.len()) {
        None if !at_eof => return Ok(Sniffed::NeedMore),
        Some(b' ' | b'\t' | b'\r' | b'\n') => {}
        _ => return Ok(Sniffed::Decided(None)),
    }
    let window = &prefix[..prefix.len().min(MAX_DECL_LEN)];
    let Some(end) = window.windows(2).position(|w| w == b"?>") else {
        return Ok(if at_eof || window.len() == MAX_DECL_LEN {
            Sniffed::Decided(None)
        } else {
            Sniffed::NeedMore
        });
    };
    let Some(label) = declared_encoding(&window[OPEN.len()..end]) else {
        return Ok(Sniffed::Decided(None));
    };
    supported_label(label)
        .map(|e| Sniffed::Decided(Some(e)))
        .ok_or_else(|| DecodeError::UnsupportedDeclared(String::from_utf8_lossy(label).into()))
}

/// The value of the `encoding` pseudo-attribute in a declaration's body.
fn declared_encoding(body: &[u8]) -> Option<&[u8]> {
    let at = body.windows(8).position(|w| w == b"encoding")?;
    let rest = trim_start(&body[at + 8..]);
    let rest = trim_start(rest.strip_prefix(b"=")?);
    let (&quote, rest) = rest.split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let len = rest.iter().position(|&b| b == quote)?;
    Some(&rest[..len])
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

/// The supported declared labels (README.md, "How data flows": encodings). GBK and GB2312 decode as
/// GB18030, their superset, so that a file labelled GB2312 but written by a
/// tool that used GBK characters still decodes.
fn supported_label(label: &[u8]) -> Option<&'static Encoding> {
    let label = label.trim_ascii();
    if label.eq_ignore_ascii_case(b"UTF-8") {
        Some(UTF_8)
    } else if [&b"GB18030"[..], b"GBK", b"GB2312"]
        .iter()
        .any(|l| label.eq_ignore_ascii_case(l))
    {
        Some(GB18030)
    } else {
        None
    }
}

/// Detection over a prefix, restricted to UTF-8 and GB18030. A prefix that
/// is valid UTF-8 (allowing a character cut off at its end) is UTF-8; ASCII
/// is too, since chardetng would call pure ASCII windows-1252. So is a
/// prefix that is mostly UTF-8 with a few broken bytes: it is a damaged
/// UTF-8 file, to be rejected at its first bad byte, not GB18030 mojibake.
/// Otherwise chardetng decides, and anything it names outside the UTF-8
/// family is taken as GB18030: that is the only legacy encoding fepd
/// supports, and full validation rejects the file if the guess is wrong.
pub(crate) fn guess(prefix: &[u8], at_eof: bool) -> &'static Encoding {
    match std::str::from_utf8(prefix) {
        Ok(_) => return UTF_8,
        Err(e) if e.error_len().is_none() && !at_eof => return UTF_8,
        Err(_) if mostly_utf8(prefix) => return UTF_8,
        Err(_) => {}
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(prefix, at_eof);
    let guessed = detector.guess(None, chardetng::Utf8Detection::Allow);
    if guessed == UTF_8 { UTF_8 } else { GB18030 }
}

/// Whether valid multibyte UTF-8 characters outnumber broken sequences
/// by far. GB18030 text makes mostly broken sequences when read as UTF-8
/// (its trail bytes are rarely continuation bytes after a valid lead).
fn mostly_utf8(mut bytes: &[u8]) -> bool {
    let non_ascii = |s: &[u8]| s.iter().filter(|&&b| b >= 0xC0).count();
    let (mut valid, mut broken) = (0usize, 0usize);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(_) => {
                valid += non_ascii(bytes);
                break;
            }
            Err(e) => {
                valid += non_ascii(&bytes[..e.valid_up_to()]);
                let Some(len) = e.error_len() else { break };
                broken += 1;
                bytes = &bytes[e.valid_up_to() + len..];
            }
        }
    }
    valid >= 4 * broken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boms() {
        assert_eq!(
            bom(b"\xEF\xBB\xBFa", false),
            Sniffed::Decided(Some((UTF_8, 3)))
        );
        assert_eq!(
            bom(b"\xFF\xFEa\0", false),
            Sniffed::Decided(Some((UTF_16LE, 2)))
        );
        assert_eq!(
            bom(b"\xFE\xFF\0a", false),
            Sniffed::Decided(Some((UTF_16BE, 2)))
        );
        assert_eq!(bom(b"\xEF\xBB", false), Sniffed::NeedMore);
        assert_eq!(bom(b"\xEF\xBB", true), Sniffed::Decided(None));
        assert_eq!(bom(b"abc", false), Sniffed::Decided(None));
        assert_eq!(bom(b"", false), Sniffed::NeedMore);
    }

    #[test]
    fn declarations() {
        let d = |s: &str| xml_declaration(s.as_bytes(), false);
        assert_eq!(
            d(r#"<?xml version="1.0" encoding="GB18030"?><a/>"#),
            Ok(Sniffed::Decided(Some(GB18030)))
        );
        assert_eq!(
            d("<?xml version='1.0' encoding = 'gbk' ?>"),
            Ok(Sniffed::Decided(Some(GB18030)))
        );
        assert_eq!(
            d(r#"<?xml version="1.0" encoding="gb2312"?>"#),
            Ok(Sniffed::Decided(Some(GB18030)))
        );
        assert_eq!(
            d(r#"<?xml version="1.0" encoding="utf-8"?>"#),
            Ok(Sniffed::Decided(Some(UTF_8)))
        );
        assert_eq!(
            d(r#"<?xml version="1.0"?><a/>"#),
            Ok(Sniffed::Decided(None))
        );
        assert_eq!(d("<records/>"), Ok(Sniffed::Decided(None)));
        assert_eq!(d("<?xml-stylesheet href='a'?>"), Ok(Sniffed::Decided(None)));
        assert_eq!(d(r#"<?xml version="1.0" enc"#), Ok(Sniffed::NeedMore));
        assert_eq!(d("<?x"), Ok(Sniffed::NeedMore));
        assert_eq!(
            d(r#"<?xml version="1.0" encoding="Big5"?>"#),
            Err(DecodeError::UnsupportedDeclared("Big5".into()))
        );
    }

    #[test]
    fn guesses() {
        assert_eq!(guess(b"plain ascii", true), UTF_8);
        assert_eq!(guess("中文".as_bytes(), true), UTF_8);
        // A UTF-8 character cut off by the end of the prefix is still UTF-8.
        assert_eq!(guess(&"中文".as_bytes()[..4], false), UTF_8);
        let (gb, _, _) =
            GB18030.encode("姓名,身份证号码,办件编号,受理部门\n张三,1,2,市政务服务中心");
        assert_eq!(guess(&gb, true), GB18030);
        let (gb, _, _) = GB18030.encode("办件编号,受理时间,办结时间,办理结果\n");
        assert_eq!(guess(&gb, true), GB18030);
        // UTF-8 with a broken byte is damaged UTF-8, not GB18030.
        let mut damaged = "姓名,身份证号码,办件编号,受理部门\n张三,1,2,市政务服务中心\n"
            .as_bytes()
            .to_vec();
        damaged.insert(7, 0xFF);
        assert_eq!(guess(&damaged, true), UTF_8);
    }
}
