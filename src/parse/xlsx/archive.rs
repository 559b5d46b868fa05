//! Archive: what an XLSX file holds is checked before calamine opens it.
//!
//! calamine inflates entries and loads the whole shared-strings table when
//! it opens a workbook, reserving room for as many strings as the table
//! *declares*. So before that, one pass inflates every entry into a sink
//! with a cap (`max_xlsx_unpacked_bytes`, the zip-bomb guard: real inflated
//! sizes, not the sizes the archive declares), and on the way reads the
//! shared-strings table with a streaming XML reader: the count it declares,
//! the strings it holds (`max_xlsx_shared_strings`) and the size of each
//! (`max_record_bytes`: no cell can be larger than a record). Memory stays
//! constant during the pass.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use quick_xml::events::Event;

use super::super::{FileFault, Limits};
use super::whole_file;

/// Checks the archive at `path` against `limits`.
pub(super) fn check(path: &Path, limits: &Limits) -> Result<(), FileFault> {
    let max = limits.max_xlsx_unpacked_bytes;
    let too_big = || {
        whole_file(format!(
            "XLSX 解压后的大小超过 max_xlsx_unpacked_bytes 上限（{max} 字节）"
        ))
    };
    let file = File::open(path).map_err(|e| whole_file(format!("XLSX 文件无法打开：{e}")))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| whole_file(format!("XLSX 文件不是有效的 zip 压缩包：{e}")))?;
    // The declared sizes first: cheap, and catches honest bombs.
    let mut declared = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| whole_file(format!("XLSX 压缩包条目无法读取：{e}")))?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > max {
        return Err(too_big());
    }
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| whole_file(format!("XLSX 压缩包条目无法读取：{e}")))?;
        let shared_strings = entry.name().is_ok_and(|n| is_shared_strings(&n));
        let mut capped = Counting {
            inner: entry.take(max - total + 1),
            read: 0,
        };
        if shared_strings {
            check_shared_strings(&mut capped, limits)?;
        }
        io::copy(&mut capped, &mut io::sink())
            .map_err(|e| whole_file(format!("XLSX 压缩包条目无法解压：{e}")))?;
        total += capped.read;
        if total > max {
            return Err(too_big());
        }
    }
    Ok(())
}

/// calamine finds `xl/sharedStrings.xml` through the workbook's relations
/// and matches names loosely; every entry that could be it is checked.
fn is_shared_strings(name: &str) -> bool {
    name.to_ascii_lowercase()
        .replace('\\', "/")
        .ends_with("sharedstrings.xml")
}

/// The shared-strings table: its declared counts, its number of strings
/// and the size of each, streamed.
fn check_shared_strings(input: &mut impl Read, limits: &Limits) -> Result<(), FileFault> {
    let max_strings = limits.max_xlsx_shared_strings;
    let too_many = |declared: &str| {
        whole_file(format!(
            "XLSX 共享字符串表{declared}超过 max_xlsx_shared_strings 上限（{max_strings} 项）"
        ))
    };
    let mut reader = quick_xml::Reader::from_reader(BufReader::new(input));
    // No stack of open names: nesting must not cost memory here.
    reader.config_mut().check_end_names = false;
    let mut buf = Vec::new();
    let mut strings = 0u64;
    // Bytes of text in the current string, while inside one.
    let mut current: Option<usize> = None;
    loop {
        buf.clear();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| whole_file(format!("XLSX 共享字符串表格式错误：{e}")))?;
        match event {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "sst" => {
                for attr in e.attributes().flatten() {
                    let key = attr.key.local_name();
                    if key.as_ref() == "count" || key.as_ref() == "uniqueCount" {
                        let value = attr.value.trim();
                        // calamine reserves room for a count it can parse
                        // and ignores one it cannot.
                        if value.parse::<u64>().is_ok_and(|n| n > max_strings) {
                            return Err(too_many(&format!("声明的项数 {value} ")));
                        }
                    }
                }
            }
            Event::Start(e) if e.local_name().as_ref() == "si" => {
                strings += 1;
                current = Some(0);
            }
            Event::Empty(e) if e.local_name().as_ref() == "si" => strings += 1,
            Event::End(e) if e.local_name().as_ref() == "si" => current = None,
            Event::Text(t) => add_text(&mut current, t.len(), strings, limits)?,
            Event::CData(t) => add_text(&mut current, t.len(), strings, limits)?,
            Event::GeneralRef(r) => add_text(&mut current, r.len() + 2, strings, limits)?,
            Event::Eof => return Ok(()),
            _ => {}
        }
        if strings > max_strings {
            return Err(too_many("的项数"));
        }
    }
}

fn add_text(
    current: &mut Option<usize>,
    len: usize,
    index: u64,
    limits: &Limits,
) -> Result<(), FileFault> {
    let Some(size) = current else {
        return Ok(());
    };
    *size += len;
    let max = limits.max_record_bytes;
    if *size > max {
        return Err(whole_file(format!(
            "XLSX 共享字符串第 {index} 项超过 max_record_bytes 上限（{max} 字节）"
        )));
    }
    Ok(())
}

/// A reader that counts what went through it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}
