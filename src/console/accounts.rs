//! Changes to the console's users, one function for `fepd users` and the
//! console's 用户 page (README "Web console"): the password rule, a
//! data-staff member's datasets checked against the config, the argon2id
//! hash, the row in `state::users` and its `user_changed` entries with
//! who made the change — written in one transaction.

use rusqlite::{Connection, TransactionBehavior};

use super::access::{Role, check_password, hash_password};
use crate::config::Config;
use crate::state::log::LogEntry;
use crate::state::{StoreError, users};

/// One change to a user.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Add {
        name: &'a str,
        role: Role,
        datasets: &'a [String],
        password: &'a str,
        reveal: bool,
    },
    /// A new password (which also ends a lock-out).
    Password {
        name: &'a str,
        password: &'a str,
    },
    Disabled {
        name: &'a str,
        disabled: bool,
    },
    /// The grant to see personal values in clear.
    Reveal {
        name: &'a str,
        reveal: bool,
    },
}

impl Change<'_> {
    pub fn name(&self) -> &str {
        match self {
            Change::Add { name, .. }
            | Change::Password { name, .. }
            | Change::Disabled { name, .. }
            | Change::Reveal { name, .. } => name,
        }
    }
}

/// Why a change was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The password rule, said in Chinese.
    Password(String),
    NoDatasets,
    UnknownDataset(String),
    Exists,
    NoUser,
    Hash(String),
}

impl Refused {
    /// As `fepd users` says it.
    pub fn english(&self, name: &str) -> String {
        match self {
            Refused::Password(why) | Refused::Hash(why) => why.clone(),
            Refused::NoDatasets => {
                "a data_staff user needs --datasets (the datasets they see)".into()
            }
            Refused::UnknownDataset(d) => format!("no dataset {d:?} in the config"),
            Refused::Exists => {
                format!("user {name} exists (fepd users passwd changes the password)")
            }
            Refused::NoUser => format!("no user {name}"),
        }
    }

    /// As the console says it.
    pub fn chinese(&self, name: &str) -> String {
        match self {
            Refused::Password(why) => why.clone(),
            Refused::Hash(_) => "无法计算密码哈希，请重试。".into(),
            Refused::NoDatasets => "数据专员必须指定可查看的数据集。".into(),
            Refused::UnknownDataset(d) => format!("配置中没有数据集「{d}」。"),
            Refused::Exists => format!("用户「{name}」已存在（重置密码请用“重置密码”）。"),
            Refused::NoUser => format!("没有用户「{name}」。"),
        }
    }
}

/// Makes `change`, `by` whom, with its `user_changed` entries; returns the
/// changes logged (`added`, `password`, `disabled`, `enabled`,
/// `reveal_granted`, `reveal_revoked`) or why nothing was changed.
pub fn apply(
    conn: &mut Connection,
    cfg: &Config,
    change: Change<'_>,
    by: &str,
) -> Result<Result<Vec<&'static str>, Refused>, StoreError> {
    let tz = cfg.tz();
    let now = crate::state::now_text(tz);
    // The hash (argon2, tens of milliseconds) before the write lock.
    let hash = match change {
        Change::Add { password, .. } | Change::Password { password, .. } => {
            if let Err(why) = check_password(password) {
                return Ok(Err(Refused::Password(why)));
            }
            match hash_password(password) {
                Ok(h) => Some(h),
                Err(e) => return Ok(Err(Refused::Hash(e))),
            }
        }
        _ => None,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let name = change.name();
    let done: Vec<&'static str> = match change {
        Change::Add {
            role,
            datasets,
            reveal,
            ..
        } => {
            if role == Role::DataStaff && datasets.is_empty() {
                return Ok(Err(Refused::NoDatasets));
            }
            if let Some(d) = datasets.iter().find(|d| cfg.dataset(d).is_none()) {
                return Ok(Err(Refused::UnknownDataset(d.clone())));
            }
            let hash = hash.unwrap_or_default();
            if !users::add(&tx, name, role.as_str(), datasets, &hash, &now)? {
                return Ok(Err(Refused::Exists));
            }
            if reveal {
                users::set_reveal(&tx, name, true)?;
                vec!["added", "reveal_granted"]
            } else {
                vec!["added"]
            }
        }
        Change::Password { .. } => {
            if !users::set_hash(&tx, name, &hash.unwrap_or_default(), &now)? {
                return Ok(Err(Refused::NoUser));
            }
            vec!["password"]
        }
        Change::Disabled { disabled, .. } => {
            if !users::set_disabled(&tx, name, disabled, &now)? {
                return Ok(Err(Refused::NoUser));
            }
            vec![if disabled { "disabled" } else { "enabled" }]
        }
        Change::Reveal { reveal, .. } => {
            if !users::set_reveal(&tx, name, reveal)? {
                return Ok(Err(Refused::NoUser));
            }
            vec![if reveal {
                "reveal_granted"
            } else {
                "reveal_revoked"
            }]
        }
    };
    let role = users::get(&tx, name)?.map(|u| u.role).unwrap_or_default();
    for change in &done {
        crate::state::log::append(
            &tx,
            tz,
            LogEntry::UserChanged {
                user: name,
                change,
                role: &role,
                by,
            },
        )?;
    }
    tx.commit()?;
    Ok(Ok(done))
}
