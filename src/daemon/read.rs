//! The front half of a file's journey, shared by the daemon and by
//! `fepd validate`: one pass for identity and encoding, then a stream of
//! records for parsing and validation. No state is touched here.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::decode::{self, Detected};
use crate::parse::{self, FileFault, Format, Limits, RecordStream};

/// What the identity pass learnt about a file.
#[derive(Debug, Clone)]
pub struct Identity {
    pub sha256: String,
    pub size: u64,
    pub format: Format,
    /// `None` for XLSX, which is not a text file.
    pub detected: Option<Detected>,
    /// Modification time when the identity pass began: with the size, how
    /// the verdict tells that the file changed under fepd.
    pub mtime: Option<std::time::SystemTime>,
}

/// Reading knobs from config.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub limits: Limits,
    pub max_file_bytes: u64,
    pub default_encoding: Option<&'static encoding_rs::Encoding>,
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Xml => "xml",
        Format::Json => "json",
        Format::JsonLines => "jsonl",
        Format::Csv => "csv",
        Format::Xlsx => "xlsx",
    }
}

impl Identity {
    pub fn format_name(&self) -> &'static str {
        format_name(self.format)
    }

    pub fn encoding_name(&self) -> &'static str {
        self.detected.map(|d| d.encoding.name()).unwrap_or("binary")
    }
}

/// Reads the whole file once: SHA-256 of its bytes, size limit, and (for
/// text formats) the encoding with every byte checked. A rule the file
/// breaks is returned as its fault (in Chinese, naming the rule or limit);
/// an `Err` means the file could not be read at all and is left in place. The SHA-256 is
/// returned even when the file is rejected, so a rejected file still has
/// an identity.
pub fn identify(
    path: &Path,
    name: &str,
    opts: &ReadOptions,
) -> std::io::Result<(Identity, Option<String>)> {
    let format = Format::from_name(name);
    let meta = std::fs::metadata(path)?;
    let mut hasher = Sha256::new();
    let mut checker = match format {
        Some(Format::Xlsx) | None => None,
        Some(f) => Some(decode::Checker::new(
            opts.default_encoding,
            f == Format::Xml,
        )),
    };
    let mut fault: Option<String> = None;
    if meta.len() > opts.max_file_bytes {
        fault = Some(format!(
            "文件大小 {} 字节超过上限 max_file_bytes = {} 字节",
            meta.len(),
            opts.max_file_bytes
        ));
    }
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
        if fault.is_none()
            && let Some(c) = checker.as_mut()
            && let Err(e) = c.feed(&buf[..n])
        {
            fault = Some(e.to_string());
            checker = None;
        }
    }
    let detected = match checker {
        Some(c) if fault.is_none() => match c.finish() {
            Ok(d) => Some(d),
            Err(e) => {
                fault = Some(e.to_string());
                None
            }
        },
        _ => None,
    };
    let format = match format {
        Some(f) => f,
        None => {
            fault.get_or_insert_with(|| {
                "不支持的文件格式：扩展名应为 .xml、.json、.jsonl、.ndjson、.csv 或 .xlsx"
                    .to_string()
            });
            // A placeholder: the file is rejected before it is parsed.
            Format::Csv
        }
    };
    let id = Identity {
        sha256: hex::encode(hasher.finalize()),
        size,
        format,
        detected,
        mtime: meta.modified().ok(),
    };
    Ok((id, fault))
}

/// Opens the record stream of an identified file.
pub fn open_stream(
    path: &Path,
    id: &Identity,
    opts: &ReadOptions,
) -> Result<Box<dyn RecordStream>, FileFault> {
    match (id.format, id.detected) {
        (Format::Xlsx, _) => parse::open_xlsx(path, opts.limits),
        (format, Some(detected)) => {
            let file = File::open(path).map_err(|e| FileFault {
                line: 0,
                byte: 0,
                message: format!("无法读取文件：{e}"),
            })?;
            let raw: Box<dyn Read> = Box::new(BufReader::with_capacity(256 * 1024, file));
            Ok(parse::open_text(
                format,
                decode::reader(raw, detected),
                opts.limits,
            ))
        }
        (_, None) => Err(FileFault {
            line: 0,
            byte: 0,
            message: "文件编码未知".into(),
        }),
    }
}

/// For XML and JSON documents: reads the whole stream once without
/// validating, so a broken document is rejected before anything from it is
/// sealed. Returns the fault, if any.
pub fn precheck_document(
    path: &Path,
    id: &Identity,
    opts: &ReadOptions,
) -> Result<Option<FileFault>, FileFault> {
    if !id.format.is_document() {
        return Ok(None);
    }
    let mut stream = open_stream(path, id, opts)?;
    loop {
        match stream.next_item() {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(f) => return Ok(Some(f)),
        }
    }
}
