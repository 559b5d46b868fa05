//! Checker: decide a file's encoding and verify every byte, in one pass.
//!
//! The checker sees the raw bytes in the same read as the file's SHA-256.
//! Until the encoding is decided it keeps the bytes it was fed (at most
//! [`SNIFF_LEN`], and usually just a few: a BOM, an XML declaration or a
//! configured default decide early); after that it only verifies.

use encoding_rs::Encoding;

use super::sniff::{self, SNIFF_LEN, Sniffed};
use super::verify::Verifier;
use super::{DecodeError, Detected, Evidence};

/// Finds a file's encoding and verifies that all of it decodes.
pub struct Checker {
    default: Option<&'static Encoding>,
    xml: bool,
    state: State,
}

enum State {
    /// Still looking at the start of the file; holds what was fed so far.
    Sniffing(Vec<u8>),
    Verifying(Detected, Verifier),
}

impl Checker {
    /// A checker using `default` when there is no BOM (and, for XML, no
    /// declared encoding); `xml` turns on looking at the XML declaration.
    pub fn new(default: Option<&'static Encoding>, xml: bool) -> Checker {
        Checker {
            default,
            xml,
            state: State::Sniffing(Vec::new()),
        }
    }

    /// Feeds the next chunk of the file's raw bytes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        match &mut self.state {
            State::Verifying(_, verifier) => verifier.feed(chunk),
            State::Sniffing(prefix) => {
                let room = SNIFF_LEN.saturating_sub(prefix.len()).min(chunk.len());
                prefix.extend_from_slice(&chunk[..room]);
                if let Some(detected) = self.decide(false)? {
                    self.start_verifying(detected)?;
                    // Whatever did not fit into the prefix is verified now.
                    if let State::Verifying(_, verifier) = &mut self.state {
                        verifier.feed(&chunk[room..])?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Ends the file: the encoding, once every byte has been verified.
    pub fn finish(mut self) -> Result<Detected, DecodeError> {
        if let State::Sniffing(_) = self.state {
            let detected = self.decide(true)?.expect("a decision is forced at the end");
            self.start_verifying(detected)?;
        }
        match self.state {
            State::Verifying(detected, verifier) => {
                verifier.finish()?;
                Ok(detected)
            }
            State::Sniffing(_) => unreachable!("decided above"),
        }
    }

    /// The encoding, if the prefix (or the end of the file) is enough to
    /// decide it.
    fn decide(&self, at_eof: bool) -> Result<Option<Detected>, DecodeError> {
        let State::Sniffing(prefix) = &self.state else {
            unreachable!("decide while sniffing only")
        };
        let at_eof = at_eof || prefix.len() >= SNIFF_LEN;
        let found = |encoding, bom_len, evidence| {
            Ok(Some(Detected {
                encoding,
                bom_len,
                evidence,
            }))
        };
        match sniff::bom(prefix, at_eof) {
            Sniffed::NeedMore => return Ok(None),
            Sniffed::Decided(Some((encoding, len))) => return found(encoding, len, Evidence::Bom),
            Sniffed::Decided(None) => {}
        }
        if self.xml {
            match sniff::xml_declaration(prefix, at_eof)? {
                Sniffed::NeedMore => return Ok(None),
                Sniffed::Decided(Some(e)) => return found(e, 0, Evidence::XmlDeclaration),
                Sniffed::Decided(None) => {}
            }
        }
        if let Some(default) = self.default {
            return found(default, 0, Evidence::ConfiguredDefault);
        }
        if at_eof {
            return found(sniff::guess(prefix, true), 0, Evidence::Detected);
        }
        Ok(None)
    }

    /// Switches to verifying, first verifying the buffered prefix.
    fn start_verifying(&mut self, detected: Detected) -> Result<(), DecodeError> {
        let State::Sniffing(prefix) =
            std::mem::replace(&mut self.state, State::Sniffing(Vec::new()))
        else {
            unreachable!("start_verifying while sniffing only")
        };
        let bom_len = detected.bom_len.min(prefix.len());
        let mut verifier = Verifier::new(detected.encoding, bom_len as u64);
        verifier.feed(&prefix[bom_len..])?;
        self.state = State::Verifying(detected, verifier);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::{GB18030, UTF_8, UTF_16LE};

    fn check(
        data: &[u8],
        default: Option<&'static Encoding>,
        xml: bool,
        chunk: usize,
    ) -> Result<Detected, DecodeError> {
        let mut c = Checker::new(default, xml);
        for part in data.chunks(chunk.max(1)) {
            c.feed(part)?;
        }
        c.finish()
    }

    fn all_chunkings(
        data: &[u8],
        default: Option<&'static Encoding>,
        xml: bool,
    ) -> Result<Detected, DecodeError> {
        let whole = check(data, default, xml, data.len().max(1));
        for chunk in [1, 2, 3, 7, 4096] {
            assert_eq!(check(data, default, xml, chunk), whole, "chunk {chunk}");
        }
        whole
    }

    #[test]
    fn empty_file_is_utf8() {
        let d = all_chunkings(b"", None, false).unwrap();
        assert_eq!(
            (d.encoding, d.bom_len, d.evidence),
            (UTF_8, 0, Evidence::Detected)
        );
    }

    #[test]
    fn utf8_bom_wins_over_default() {
        let d = all_chunkings("\u{FEFF}姓名\n张三\n".as_bytes(), Some(GB18030), false).unwrap();
        assert_eq!(
            (d.encoding, d.bom_len, d.evidence),
            (UTF_8, 3, Evidence::Bom)
        );
    }

    #[test]
    fn utf16_bom_is_accepted() {
        let mut data = vec![0xFF, 0xFE];
        for u in "姓名".encode_utf16() {
            data.extend_from_slice(&u.to_le_bytes());
        }
        let d = all_chunkings(&data, None, false).unwrap();
        assert_eq!((d.encoding, d.bom_len), (UTF_16LE, 2));
        // An unpaired surrogate is undecodable.
        data.extend_from_slice(&0xD800u16.to_le_bytes());
        data.extend_from_slice(&0x0041u16.to_le_bytes());
        assert_eq!(
            all_chunkings(&data, None, false),
            Err(DecodeError::Undecodable {
                encoding: "UTF-16LE",
                offset: 6
            })
        );
    }

    #[test]
    fn xml_declaration_wins_over_default() {
        let text =
            r#"<?xml version="1.0" encoding="GB18030"?><records><r><n>张三</n></r></records>"#;
        let (gb, _, _) = GB18030.encode(text);
        let d = all_chunkings(&gb, Some(UTF_8), true).unwrap();
        assert_eq!(
            (d.encoding, d.evidence),
            (GB18030, Evidence::XmlDeclaration)
        );
        // Not looked at for other formats.
        assert!(all_chunkings(&gb, Some(UTF_8), false).is_err());
    }

    #[test]
    fn unsupported_declaration() {
        let text = br#"<?xml version="1.0" encoding="ISO-8859-1"?><a/>"#;
        assert_eq!(
            all_chunkings(text, None, true),
            Err(DecodeError::UnsupportedDeclared("ISO-8859-1".into()))
        );
    }

    #[test]
    fn default_then_detection() {
        let (gb, _, _) = GB18030.encode("姓名,受理部门\n张三,市政务服务中心\n");
        let d = all_chunkings(&gb, Some(GB18030), false).unwrap();
        assert_eq!(d.evidence, Evidence::ConfiguredDefault);
        let d = all_chunkings(&gb, None, false).unwrap();
        assert_eq!((d.encoding, d.evidence), (GB18030, Evidence::Detected));
        let d = all_chunkings("姓名\n张三\n".as_bytes(), None, false).unwrap();
        assert_eq!((d.encoding, d.evidence), (UTF_8, Evidence::Detected));
    }

    #[test]
    fn undecodable_offset_beyond_prefix() {
        // ASCII for longer than the sniffed prefix, then a bad byte: detected
        // as UTF-8 and the offset is in the raw file.
        let mut data = vec![b'a'; SNIFF_LEN + 100];
        data.push(0xFF);
        assert_eq!(
            all_chunkings(&data, None, false),
            Err(DecodeError::Undecodable {
                encoding: "UTF-8",
                offset: SNIFF_LEN as u64 + 100
            })
        );
        // With a BOM, the offset still counts the BOM's bytes.
        let data = b"\xEF\xBB\xBFab\xC3(";
        assert_eq!(
            all_chunkings(data, None, false),
            Err(DecodeError::Undecodable {
                encoding: "UTF-8",
                offset: 5
            })
        );
    }
}
