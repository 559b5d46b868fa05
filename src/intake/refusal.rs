//! Files intake does not take, and why: each is reported once in the log
//! and listed by `fepd status` for as long as it stays in the inbox, never
//! skipped silently. Reasons are in Chinese, for data staff.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

use crate::config::Ready;

/// Longest inbox file name taken, in bytes. fepd prefixes a claim id
/// (27 bytes) in `work/` and appends report suffixes such as
/// `.receipt.json` or `.errors.csv` (and a version `.N` when the name is
/// taken) in `done/` and `rejected/`; every one of those names must still
/// fit the 255 bytes a Linux file name may have.
pub const MAX_NAME_BYTES: usize = 200;

/// Why a file in an inbox is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotTaken {
    /// The name is not valid UTF-8 (a GBK name from a Windows share, say);
    /// `shown` is how it reads as GB18030, for people to recognise it.
    NotUtf8 {
        shown: String,
    },
    /// The name is longer than [`MAX_NAME_BYTES`].
    NameTooLong {
        bytes: usize,
    },
    /// `x.ok` when the inbox does not use markers: the suffix is reserved.
    Reserved,
    Symlink,
    Directory,
    /// A FIFO, socket or device.
    Special,
    /// Larger than `max_file_bytes`, judged by its size alone (never read).
    TooLarge {
        size: u64,
        max: u64,
    },
    /// The name was swapped for something else while fepd claimed it.
    Swapped,
    /// Could not be opened or moved (permissions, say).
    Unreadable {
        error: String,
    },
}

impl NotTaken {
    /// A stable code for scripts (`fepd status --json`).
    pub fn code(&self) -> &'static str {
        match self {
            NotTaken::NotUtf8 { .. } => "name_not_utf8",
            NotTaken::NameTooLong { .. } => "name_too_long",
            NotTaken::Reserved => "name_reserved",
            NotTaken::Symlink => "symlink",
            NotTaken::Directory => "directory",
            NotTaken::Special => "special_file",
            NotTaken::TooLarge { .. } => "too_large",
            NotTaken::Swapped => "swapped",
            NotTaken::Unreadable { .. } => "unreadable",
        }
    }

    /// What data staff read: the reason and what to do.
    pub fn reason(&self) -> String {
        match self {
            NotTaken::NotUtf8 { shown } => format!(
                "文件名不是 UTF-8 编码（按 GBK 解读为「{shown}」），无法接收；请用 UTF-8 文件名重新放入"
            ),
            NotTaken::NameTooLong { bytes } => format!(
                "文件名长 {bytes} 字节，超过 {MAX_NAME_BYTES} 字节上限（fepd 要在文件名前后加认领编号和回执后缀），无法接收；请改用较短的文件名重新放入"
            ),
            NotTaken::Reserved => {
                "文件名以 .ok 结尾，.ok 保留给就绪标记使用，不作为数据接收；请改名后重新放入".into()
            }
            NotTaken::Symlink => "符号链接，不接收（fepd 从不跟随链接）；请放入文件本身".into(),
            NotTaken::Directory => "子目录，不接收；请把文件直接放在收件箱里".into(),
            NotTaken::Special => "不是普通文件（管道、套接字或设备），不接收".into(),
            NotTaken::TooLarge { size, max } => format!(
                "文件大小 {size} 字节超过上限 max_file_bytes = {max} 字节，未读取、未接收；请拆分后重新放入"
            ),
            NotTaken::Swapped => "认领时文件被替换为链接或其他类型的文件，已拒绝，未接收".into(),
            NotTaken::Unreadable { error } => format!("无法读取或移动该文件（{error}），未接收"),
        }
    }
}

/// A name as the scanner sees it.
pub enum Name<'a> {
    /// A data file's name, to be looked at further.
    Data(&'a str),
    /// Still being written by the drop contract (`.part`, `.tmp`, dot
    /// files) or our own marker: left alone, nothing to report.
    Pending,
    Refused(NotTaken),
}

/// Sorts an inbox entry's name: data, pending by the drop contract, or
/// refused.
pub fn classify_name(name: &OsStr, ready: Ready) -> Name<'_> {
    let Some(text) = name.to_str() else {
        let (shown, _, _) = encoding_rs::GB18030.decode(name.as_bytes());
        return Name::Refused(NotTaken::NotUtf8 {
            shown: escape(&shown),
        });
    };
    if text.starts_with('.') || text.ends_with(".part") || text.ends_with(".tmp") {
        return Name::Pending;
    }
    if text.ends_with(".ok") {
        return match ready {
            Ready::Marker => Name::Pending,
            Ready::Settle => Name::Refused(NotTaken::Reserved),
        };
    }
    if text.len() > MAX_NAME_BYTES {
        return Name::Refused(NotTaken::NameTooLong { bytes: text.len() });
    }
    Name::Data(text)
}

/// Sorts an entry by what it is (never following a link): `None` for a
/// regular file within `max_bytes`.
pub fn classify_kind(meta: &fs::Metadata, max_bytes: u64) -> Option<NotTaken> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_symlink() {
        Some(NotTaken::Symlink)
    } else if t.is_dir() {
        Some(NotTaken::Directory)
    } else if t.is_fifo() || t.is_socket() || t.is_block_device() || t.is_char_device() {
        Some(NotTaken::Special)
    } else if meta.len() > max_bytes {
        Some(NotTaken::TooLarge {
            size: meta.len(),
            max: max_bytes,
        })
    } else {
        None
    }
}

/// A name or reason on one line (see [`crate::oneline`]).
pub fn escape(s: &str) -> String {
    crate::oneline::escape(s).into_owned()
}

/// One file not taken, as `fepd status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NotTakenFile {
    /// The name, control characters escaped (a non-UTF-8 name as it reads
    /// in GB18030).
    pub name: String,
    pub code: &'static str,
    pub reason: String,
}

/// Every file in `dir` that intake will not take, with the reason; what
/// `fepd status` shows. Judged from names and `lstat` alone, like the scan.
pub fn not_taken(dir: &Path, ready: Ready, max_bytes: u64) -> Vec<NotTakenFile> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<NotTakenFile> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let os = e.file_name();
            let refusal = match classify_name(&os, ready) {
                Name::Pending => return None,
                Name::Refused(r) => r,
                Name::Data(_) => classify_kind(&fs::symlink_metadata(e.path()).ok()?, max_bytes)?,
            };
            let name = match &refusal {
                NotTaken::NotUtf8 { shown } => shown.clone(),
                _ => escape(&os.to_string_lossy()),
            };
            Some(NotTakenFile {
                name,
                code: refusal.code(),
                reason: refusal.reason(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn names_are_sorted_into_data_pending_and_refused() {
        let data = |n: &str, r| matches!(classify_name(OsStr::new(n), r), Name::Data(_));
        assert!(data("a.csv", Ready::Settle));
        assert!(matches!(
            classify_name(OsStr::new("a.csv.part"), Ready::Settle),
            Name::Pending
        ));
        assert!(matches!(
            classify_name(OsStr::new("a.csv.ok"), Ready::Marker),
            Name::Pending
        ));
        assert!(matches!(
            classify_name(OsStr::new("a.csv.ok"), Ready::Settle),
            Name::Refused(NotTaken::Reserved)
        ));
        let long = "办".repeat(81) + ".csv";
        assert!(matches!(
            classify_name(OsStr::new(&long), Ready::Settle),
            Name::Refused(NotTaken::NameTooLong { bytes: 247 })
        ));
        let gbk = OsString::from_vec(b"\xc9\xea\xc7\xeb.csv".to_vec());
        match classify_name(&gbk, Ready::Settle) {
            Name::Refused(NotTaken::NotUtf8 { shown }) => assert_eq!(shown, "申请.csv"),
            _ => panic!("a GBK name is refused"),
        }
    }
}
