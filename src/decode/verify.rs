//! Verify: check that every byte of a file decodes, chunk by chunk.
//!
//! Chunks arrive with arbitrary boundaries, so a multibyte character may be
//! split between two of them; both validators carry the partial character
//! over. Offsets are absolute byte offsets in the raw file.

use encoding_rs::{Decoder, DecoderResult, Encoding, UTF_8};

use super::DecodeError;

/// A streaming validator for one encoding.
pub(crate) enum Verifier {
    Utf8(Utf8Verifier),
    Other(DecoderVerifier),
}

impl Verifier {
    /// A verifier whose first byte is at `offset` in the raw file.
    pub(crate) fn new(encoding: &'static Encoding, offset: u64) -> Verifier {
        if encoding == UTF_8 {
            Verifier::Utf8(Utf8Verifier::new(offset))
        } else {
            Verifier::Other(DecoderVerifier::new(encoding, offset))
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        match self {
            Verifier::Utf8(v) => v.feed(chunk),
            Verifier::Other(v) => v.feed(chunk, false),
        }
    }

    pub(crate) fn finish(mut self) -> Result<(), DecodeError> {
        match &mut self {
            Verifier::Utf8(v) => v.finish(),
            Verifier::Other(v) => v.feed(&[], true),
        }
    }
}

/// UTF-8 through `std::str::from_utf8`, which is fast on ASCII-heavy data
/// (the common case), with at most three bytes carried between chunks.
pub(crate) struct Utf8Verifier {
    /// Offset of the next byte to be fed.
    offset: u64,
    /// The start of a character cut off by the previous chunk's end.
    carry: [u8; 4],
    carry_len: usize,
}

fn undecodable_utf8(offset: u64) -> DecodeError {
    DecodeError::Undecodable {
        encoding: UTF_8.name(),
        offset,
    }
}

impl Utf8Verifier {
    fn new(offset: u64) -> Self {
        Utf8Verifier {
            offset,
            carry: [0; 4],
            carry_len: 0,
        }
    }

    fn feed(&mut self, mut chunk: &[u8]) -> Result<(), DecodeError> {
        if self.carry_len > 0 {
            // Complete the carried character with as few bytes as it needs.
            let carry_start = self.offset - self.carry_len as u64;
            while self.carry_len < 4 && !chunk.is_empty() {
                self.carry[self.carry_len] = chunk[0];
                self.carry_len += 1;
                chunk = &chunk[1..];
                self.offset += 1;
                match std::str::from_utf8(&self.carry[..self.carry_len]) {
                    Ok(_) => {
                        self.carry_len = 0;
                        break;
                    }
                    Err(e) if e.error_len().is_some() => return Err(undecodable_utf8(carry_start)),
                    Err(_) => {}
                }
            }
            if self.carry_len > 0 {
                // Still incomplete: the chunk ran out (four bytes would
                // have completed or failed above).
                return Ok(());
            }
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => {}
            Err(e) => {
                let good = e.valid_up_to();
                if e.error_len().is_some() {
                    return Err(undecodable_utf8(self.offset + good as u64));
                }
                let tail = &chunk[good..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len();
            }
        }
        self.offset += chunk.len() as u64;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), DecodeError> {
        if self.carry_len > 0 {
            return Err(undecodable_utf8(self.offset - self.carry_len as u64));
        }
        Ok(())
    }
}

/// Any other encoding through an encoding_rs decoder without replacement;
/// the output is thrown away.
pub(crate) struct DecoderVerifier {
    decoder: Decoder,
    /// Offset of the next byte to be fed.
    offset: u64,
    scratch: Box<[u8]>,
}

impl DecoderVerifier {
    fn new(encoding: &'static Encoding, offset: u64) -> Self {
        DecoderVerifier {
            decoder: encoding.new_decoder_without_bom_handling(),
            offset,
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
        }
    }

    fn feed(&mut self, mut chunk: &[u8], last: bool) -> Result<(), DecodeError> {
        loop {
            let (result, read, _) =
                self.decoder
                    .decode_to_utf8_without_replacement(chunk, &mut self.scratch, last);
            self.offset += read as u64;
            chunk = &chunk[read..];
            match result {
                DecoderResult::InputEmpty => return Ok(()),
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(bad, after) => {
                    // The malformed bytes may have begun in an earlier chunk;
                    // the offset arithmetic is absolute, so that is fine.
                    let at = self.offset - u64::from(after) - u64::from(bad);
                    return Err(DecodeError::Undecodable {
                        encoding: self.decoder.encoding().name(),
                        offset: at,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::GB18030;
    use proptest::prelude::*;

    fn run(encoding: &'static Encoding, data: &[u8], splits: &[usize]) -> Result<(), DecodeError> {
        let mut v = Verifier::new(encoding, 0);
        let mut rest = data;
        for &s in splits {
            let (a, b) = rest.split_at(s.min(rest.len()));
            v.feed(a)?;
            rest = b;
        }
        v.feed(rest)?;
        v.finish()
    }

    #[test]
    fn utf8_split_characters() {
        let s = "身份证号码 abc 𠀀 é".as_bytes();
        for i in 0..s.len() {
            for j in i..s.len() {
                assert_eq!(run(UTF_8, s, &[i, j - i]), Ok(()), "split {i} {j}");
            }
        }
    }

    #[test]
    fn utf8_offsets() {
        let mut s = "ab中".as_bytes().to_vec();
        s.push(0xFF);
        s.extend_from_slice(b"cd");
        let err = DecodeError::Undecodable {
            encoding: "UTF-8",
            offset: 5,
        };
        for i in 0..s.len() {
            assert_eq!(run(UTF_8, &s, &[i]), Err(err.clone()));
        }
        // Truncated at the end of the file.
        let t = &"ab中".as_bytes()[..4];
        assert_eq!(
            run(UTF_8, t, &[3]),
            Err(DecodeError::Undecodable {
                encoding: "UTF-8",
                offset: 2
            })
        );
    }

    #[test]
    fn gb18030_offsets() {
        let mut gb = GB18030.encode("张三,李四").0.into_owned();
        assert_eq!(run(GB18030, &gb, &[3]), Ok(()));
        let at = gb.len() as u64;
        gb.extend_from_slice(b"\xFFxyz");
        for i in 0..gb.len() {
            let r = run(GB18030, &gb, &[i]);
            assert_eq!(
                r,
                Err(DecodeError::Undecodable {
                    encoding: "gb18030",
                    offset: at
                }),
                "split {i}"
            );
        }
    }

    proptest! {
        #[test]
        fn utf8_agrees_with_std(data in proptest::collection::vec(
            prop_oneof![Just(0x41u8), Just(0xE4), Just(0xB8), Just(0xAD), Just(0xF0), Just(0x90), Just(0xC3), Just(0xFF), any::<u8>()], 0..40),
            splits in proptest::collection::vec(0usize..12, 0..6))
        {
            let expected = match std::str::from_utf8(&data) {
                Ok(_) => Ok(()),
                Err(e) => Err(DecodeError::Undecodable { encoding: "UTF-8", offset: e.valid_up_to() as u64 }),
            };
            prop_assert_eq!(run(UTF_8, &data, &splits), expected);
        }
    }
}
