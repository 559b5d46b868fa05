//! The front half of a file's journey, shared by the daemon and by
//! `fepd validate`: one pass for identity and encoding, then a stream of
//! records for parsing and validation. No state is touched here.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::decode::{self, Detected};
use crate::parse::{self, FileFault, Format, Item, Limits, RecordStream, SheetRef};
use crate::validate::{DatasetSchema, IgnoredColumn};

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
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub limits: Limits,
    pub max_file_bytes: u64,
    pub default_encoding: Option<&'static encoding_rs::Encoding>,
    /// XLSX: the sheet to read (`[[dataset]] sheet`); default the first.
    pub sheet: Option<SheetRef>,
}

impl ReadOptions {
    /// The options for `dataset`'s files (the dataset's own encoding,
    /// header row and sheet over `[intake]`'s), or for any file.
    pub fn of(cfg: &Config, dataset: Option<&str>) -> ReadOptions {
        let ds = dataset.and_then(|d| cfg.dataset(d));
        let label = ds
            .and_then(|d| d.default_encoding.as_ref())
            .or(cfg.intake.default_encoding.as_ref())
            .and_then(|e| e.ok().copied());
        let mut limits = cfg.parse_limits();
        limits.header_row = ds.and_then(|d| d.header_row).unwrap_or(0);
        ReadOptions {
            sheet: ds.and_then(|d| d.sheet.clone()),
            limits,
            max_file_bytes: cfg.intake.max_file_bytes,
            default_encoding: label.map(|l| l.encoding()),
        }
    }
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
        if size == 0
            && fault.is_none()
            && let Some(format) = format
            && let Some(why) = disguised_workbook(format, &buf[..n])
        {
            fault = Some(why);
            checker = None;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
        if fault.is_none()
            && let Some(c) = checker.as_mut()
            && let Err(e) = c.feed(&buf[..n])
        {
            fault = Some(decode_fault(path, &e));
            checker = None;
        }
    }
    let detected = match checker {
        Some(c) if fault.is_none() => match c.finish() {
            Ok(d) => Some(d),
            Err(e) => {
                fault = Some(decode_fault(path, &e));
                None
            }
        },
        _ => None,
    };
    let format = match format {
        Some(f) => f,
        None => {
            fault.get_or_insert_with(|| unsupported_format(name));
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
        (Format::Xlsx, _) => parse::open_xlsx_sheet(path, opts.limits, opts.sheet.as_ref()),
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

/// A file's record stream after its header passed the header check:
/// blank rows (every cell empty or white space) are skipped and counted,
/// never records.
pub struct Records {
    inner: Box<dyn RecordStream>,
    /// Columns that are not fields of the dataset (from the header; for
    /// XML and JSON, from the first records).
    pub ignored: Vec<IgnoredColumn>,
    /// Rows skipped as blank so far.
    pub blank_rows: u64,
    /// XML/JSON: records whose names are still sampled for `ignored`.
    sample_left: u32,
    tabular: bool,
}

/// How many XML/JSON records are looked at for field names the dataset
/// does not know, and how many such names are kept: enough to name what
/// a source sends, bounded so that the hot path does not pay for it.
const SAMPLE_RECORDS: u32 = 100;
const MAX_IGNORED_NAMES: usize = 50;

/// Opens the record stream of an identified file and judges its header
/// (CSV, XLSX) against `schema`: a header verdict is a fault that ends the
/// file before any record (docs/zh/数据专员指南.md, “表头”).
pub fn open_records(
    path: &Path,
    id: &Identity,
    opts: &ReadOptions,
    schema: &DatasetSchema,
) -> Result<Records, FileFault> {
    let mut inner = open_stream(path, id, opts)?;
    let (ignored, tabular) = match inner.header()? {
        Some(h) => {
            let ignored = schema.check_header(&h).map_err(|message| FileFault {
                line: h.row,
                byte: 0,
                message,
            })?;
            (ignored, true)
        }
        None => (Vec::new(), false),
    };
    Ok(Records {
        inner,
        ignored,
        blank_rows: 0,
        sample_left: if tabular { 0 } else { SAMPLE_RECORDS },
        tabular,
    })
}

impl Records {
    /// The next record that is not blank.
    pub fn next_item(&mut self, schema: &DatasetSchema) -> Result<Option<Item>, FileFault> {
        loop {
            let item = self.inner.next_item()?;
            if let Some(Item::Record(r)) = &item {
                if self.tabular && is_blank(r) {
                    self.blank_rows += 1;
                    continue;
                }
                if self.sample_left > 0 {
                    self.sample_left -= 1;
                    for (name, _) in &r.fields {
                        if self.ignored.len() < MAX_IGNORED_NAMES
                            && schema.field_for_header(name).is_none()
                            && !self.ignored.iter().any(|c| &c.title == name)
                        {
                            self.ignored.push(IgnoredColumn {
                                title: name.clone(),
                                suggestion: None,
                            });
                        }
                    }
                }
            }
            return Ok(item);
        }
    }

    /// The ignored columns as the receipt names them.
    pub fn ignored_names(&self) -> Vec<String> {
        self.ignored.iter().map(IgnoredColumn::describe).collect()
    }
}

/// A row whose every cell is empty or only white space (a space typed in
/// an unused column, a row of commas): not a record.
fn is_blank(r: &parse::RawRecord) -> bool {
    r.fields.iter().all(|(_, v)| match v {
        parse::RawValue::Text(t) => t.trim().is_empty(),
        _ => false,
    })
}

/// Why a file with an extension fepd does not read is refused, saying
/// what to do for the spreadsheet formats people actually send.
fn unsupported_format(name: &str) -> String {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "xls" | "et" | "ett" | "xlsm" | "xlsb" => format!(
            "不支持 .{ext} 文件（旧版 Excel 或 WPS 表格格式）：请在 Excel 或 WPS 中打开，用“另存为”选择“Excel 工作簿（*.xlsx）”后重新提交"
        ),
        _ => "不支持的文件格式：扩展名应为 .xml、.json、.jsonl、.ndjson、.csv 或 .xlsx".to_string(),
    }
}

/// A text-format file whose bytes are a workbook (an `.xls` or `.xlsx`
/// renamed to `.csv`): refused saying so, rather than as undecodable bytes.
fn disguised_workbook(format: Format, head: &[u8]) -> Option<String> {
    if format == Format::Xlsx {
        return None;
    }
    let what = if head.starts_with(b"PK\x03\x04") {
        "Excel 工作簿（.xlsx）"
    } else if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        "旧版 Excel 或 WPS 表格（.xls / .et）"
    } else {
        return None;
    };
    Some(format!(
        "文件扩展名为 .{}，但内容是{what}：请在 Excel 或 WPS 中用“另存为”选择“CSV UTF-8（逗号分隔）”，或保存为 .xlsx 后提交",
        format_name(format)
    ))
}

/// A decoding fault in Chinese. When the bytes are not UTF-8 although the
/// file said so (a BOM, the XML declaration, or the configured default),
/// the file is tried as GB18030 — only on this error path — and, if it
/// decodes, the message says it looks like GBK and how to fix it.
fn decode_fault(path: &Path, e: &decode::DecodeError) -> String {
    let text = e.to_string();
    let decode::DecodeError::Undecodable {
        encoding: "UTF-8", ..
    } = e
    else {
        return text;
    };
    if !decodes_as_gb18030(path).unwrap_or(false) {
        return text;
    }
    format!(
        "{text}。按 UTF-8 无法解码，看起来是 GBK/GB18030 编码：请把文件另存为 UTF-8（Excel：“CSV UTF-8（逗号分隔）”；记事本：编码选 UTF-8），或在配置中为该数据集设置 default_encoding = \"gb18030\""
    )
}

/// Whether the whole file decodes as GB18030 without a replacement.
fn decodes_as_gb18030(path: &Path) -> std::io::Result<bool> {
    let mut checker = decode::Checker::new(Some(encoding_rs::GB18030), false);
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    // A UTF-8 BOM before GBK bytes: skip it, it is what mislabelled the file.
    let mut first = true;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = if first && buf[..n].starts_with(b"\xEF\xBB\xBF") {
            &buf[3..n]
        } else {
            &buf[..n]
        };
        first = false;
        if checker.feed(chunk).is_err() {
            return Ok(false);
        }
    }
    Ok(checker
        .finish()
        .is_ok_and(|d| d.encoding == encoding_rs::GB18030))
}
