//! Decode: find a file's character encoding and turn its bytes into UTF-8.
//!
//! The order of evidence is fixed (README.md, "How data flows"): a byte-order mark, then an
//! XML declaration's `encoding`, then the configured default, then
//! detection (chardetng) among UTF-8, GB18030, GBK and GB2312. Undecodable
//! bytes are never replaced: [`Checker`] finds the first one and the whole
//! file is rejected with its byte offset. [`Checker`] runs in the same pass
//! as the file's SHA-256 so that every byte is read once before parsing;
//! [`reader`] then streams the file as UTF-8 to the parser.
//!
//! A UTF-16 BOM (LE or BE) is accepted and transcoded like any other
//! encoding: it is unambiguous evidence and costs nothing extra.

use encoding_rs::Encoding;

mod checker;
mod sniff;
mod transcode;
mod verify;

pub use checker::Checker;
pub use transcode::reader;

/// The encoding found for a file and how it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub encoding: &'static Encoding,
    /// Length of the byte-order mark to skip (0 if none).
    pub bom_len: usize,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    Bom,
    XmlDeclaration,
    ConfiguredDefault,
    Detected,
}

/// Why a file cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("文件在字节偏移 {offset} 处含有无法按 {encoding} 解码的字节")]
    Undecodable { encoding: &'static str, offset: u64 },
    #[error("XML 声明的编码 {0} 不受支持（支持 UTF-8、GB18030、GBK、GB2312）")]
    UnsupportedDeclared(String),
}

/// The encoding for a configured or declared label (`UTF-8`, `GB18030`,
/// `GBK`, `GB2312`, case-insensitive). GBK and GB2312 decode as GB18030,
/// their superset, so a file labelled GBK with a GB18030-only character is
/// still read correctly.
pub fn encoding_for_label(label: &str) -> Option<&'static Encoding> {
    match label.trim().to_ascii_uppercase().as_str() {
        "UTF-8" | "UTF8" => Some(encoding_rs::UTF_8),
        "GB18030" | "GBK" | "GB2312" | "CP936" | "GB_2312-80" => Some(encoding_rs::GB18030),
        _ => None,
    }
}
