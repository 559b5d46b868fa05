//! Transcode: a streaming reader that turns a file's bytes into UTF-8.
//!
//! UTF-8 input passes through a plain `BufReader` (no copying beyond the
//! buffer); other encodings go through an encoding_rs decoder into a fixed
//! output buffer. Either way the BOM is skipped, and memory does not grow
//! with the file.

use std::io::{self, BufRead, BufReader, Read};

use encoding_rs::{Decoder, DecoderResult, UTF_8};

use super::Detected;

const BUF_LEN: usize = 64 * 1024;

/// A UTF-8 reader over `raw`, a file's bytes from its first byte, decoded
/// as `detected` says. The checker has verified the file already, so a
/// malformed sequence here means the file changed under us: that is an
/// `io::Error` (`InvalidData`), never a replacement character.
pub fn reader<'r>(raw: Box<dyn Read + 'r>, detected: Detected) -> Box<dyn BufRead + 'r> {
    if detected.encoding == UTF_8 {
        Box::new(SkipBom {
            inner: BufReader::with_capacity(BUF_LEN, raw),
            left: detected.bom_len,
        })
    } else {
        Box::new(Transcoder {
            raw,
            bom_left: detected.bom_len,
            decoder: detected.encoding.new_decoder_without_bom_handling(),
            input: vec![0; BUF_LEN].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            eof: false,
            finished: false,
            output: vec![0; BUF_LEN].into_boxed_slice(),
            out_start: 0,
            out_end: 0,
        })
    }
}

/// A `BufReader` that drops the first `left` bytes.
struct SkipBom<R> {
    inner: BufReader<R>,
    left: usize,
}

impl<R: Read> SkipBom<R> {
    fn skip(&mut self) -> io::Result<()> {
        while self.left > 0 {
            let n = self.inner.fill_buf()?.len().min(self.left);
            if n == 0 {
                break;
            }
            self.inner.consume(n);
            self.left -= n;
        }
        Ok(())
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.skip()?;
        self.inner.read(buf)
    }
}

impl<R: Read> BufRead for SkipBom<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.skip()?;
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt)
    }
}

/// Decodes a legacy (or UTF-16) byte stream into UTF-8.
struct Transcoder<R> {
    raw: R,
    bom_left: usize,
    decoder: Decoder,
    input: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    /// `raw` has returned 0.
    eof: bool,
    /// The decoder has been told the input ended and has flushed.
    finished: bool,
    output: Box<[u8]>,
    out_start: usize,
    out_end: usize,
}

impl<R: Read> Transcoder<R> {
    /// Refills the output buffer; leaves it empty only at the end.
    fn refill(&mut self) -> io::Result<()> {
        self.out_start = 0;
        self.out_end = 0;
        while self.out_end == 0 && !self.finished {
            if self.in_start == self.in_end && !self.eof {
                self.in_start = 0;
                self.in_end = read_retrying(&mut self.raw, &mut self.input)?;
                self.eof = self.in_end == 0;
                let skip = self.bom_left.min(self.in_end);
                self.in_start = skip;
                self.bom_left -= skip;
            }
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.in_start..self.in_end],
                &mut self.output,
                self.eof,
            );
            self.in_start += read;
            self.out_end = written;
            match result {
                DecoderResult::InputEmpty => self.finished = self.eof,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(..) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "按 {} 解码时遇到无法解码的字节（文件在检查后被改动？）",
                            self.decoder.encoding().name()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn read_retrying<R: Read>(raw: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match raw.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Transcoder<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.out_start == self.out_end {
            self.refill()?;
        }
        Ok(&self.output[self.out_start..self.out_end])
    }

    fn consume(&mut self, amt: usize) {
        self.out_start = (self.out_start + amt).min(self.out_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Checker, Evidence};
    use encoding_rs::{GB18030, UTF_16BE};

    /// Reads through a reader that hands out `chunk` bytes per call, to
    /// exercise split characters.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn decode_all(data: &[u8], chunk: usize) -> io::Result<String> {
        let mut checker = Checker::new(None, false);
        checker.feed(data).unwrap();
        let detected = checker.finish().unwrap();
        let mut out = String::new();
        reader(Box::new(Trickle(data, chunk)), detected).read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn utf8_with_bom_passes_through() {
        let data = "\u{FEFF}姓名,年龄\n张三,3\n".as_bytes();
        for chunk in [1, 2, 5, 1000] {
            assert_eq!(decode_all(data, chunk).unwrap(), "姓名,年龄\n张三,3\n");
        }
    }

    #[test]
    fn gb18030_is_transcoded() {
        let text = "姓名,受理部门\n张三,市政务服务中心\n".repeat(5000);
        let (gb, _, _) = GB18030.encode(&text);
        for chunk in [1, 3, 4096, 1 << 20] {
            assert_eq!(decode_all(&gb, chunk).unwrap(), text, "chunk {chunk}");
        }
    }

    #[test]
    fn utf16_with_bom_is_transcoded() {
        let mut data = vec![0xFE, 0xFF];
        for u in "姓名 a".encode_utf16() {
            data.extend_from_slice(&u.to_be_bytes());
        }
        for chunk in [1, 3, 100] {
            assert_eq!(decode_all(&data, chunk).unwrap(), "姓名 a");
        }
    }

    #[test]
    fn malformed_is_an_error_not_a_replacement() {
        let detected = Detected {
            encoding: GB18030,
            bom_len: 0,
            evidence: Evidence::ConfiguredDefault,
        };
        let mut out = String::new();
        let err = reader(Box::new(&b"ab\xFFcd"[..]), detected)
            .read_to_string(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let detected = Detected {
            encoding: UTF_16BE,
            bom_len: 0,
            evidence: Evidence::Bom,
        };
        let err = reader(Box::new(&b"\xD8\x00\x00A"[..]), detected)
            .read_to_string(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
