//! Who may do what in the console (README "Web console", 三员分立): the
//! roles, the one table of what each role may do ([`allows`]), the
//! password rule and the password hash (argon2id, a PHC string).
//!
//! Every page and every action asks [`allows`] on the server; a link
//! hidden from a role is a courtesy, never the check.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// A console user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 系统管理员: users and the settings view; acts on no data.
    Admin,
    /// 安全审计员: reads the exchange log and reports; acts on nothing.
    Auditor,
    /// 操作员: retries, parks and replays batches, drops files into an
    /// inbox.
    Operator,
    /// 数据专员: their own datasets — uploads to check, files, reports.
    DataStaff,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Auditor, Role::Operator, Role::DataStaff];

    /// The stored word, as `fepd users add --role` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::DataStaff => "data_staff",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role's name on the pages.
    pub fn title(self) -> &'static str {
        match self {
            Role::Admin => "系统管理员",
            Role::Auditor => "安全审计员",
            Role::Operator => "操作员",
            Role::DataStaff => "数据专员",
        }
    }
}

/// What a request does; its name is the `action` of a `console_refused`
/// entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 总览 (data staff see their own datasets only).
    Overview,
    /// 批次: the list.
    Batches,
    /// Retry or park a batch.
    BatchRetry,
    BatchPark,
    /// 补传: seal a delivered batch's records again (`fepd replay`).
    BatchReplay,
    /// 交换日志: search, trace, chain status.
    Log,
    /// 文件 and 拒收记录: files, their rejection reports, rejected
    /// records (data staff: their own datasets).
    Files,
    /// 对账: the daily reconciliation.
    Reconcile,
    /// 上传校验: the upload form and its verdict (check only).
    Upload,
    /// Drop an uploaded file into its dataset's inbox for real.
    Enqueue,
    /// 系统: version, uptime, config with secrets hidden, users.
    System,
    /// 用户: add, disable/enable, reset the password of, and grant the
    /// reveal to the console's users (the administrator only).
    Users,
    /// 集群: the fleet, the cluster's exchange log and each node's chain
    /// (cluster mode, docs/cluster.md "Fleet view").
    Cluster,
    /// 显示原值: a rejected record's value in clear, for a user granted
    /// the reveal (`console_user.reveal`), whatever the role may read.
    Reveal,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Overview => "overview",
            Action::Batches => "batches",
            Action::BatchRetry => "batch_retry",
            Action::BatchPark => "batch_park",
            Action::BatchReplay => "batch_replay",
            Action::Log => "log",
            Action::Files => "files",
            Action::Reconcile => "reconcile",
            Action::Upload => "upload",
            Action::Enqueue => "enqueue",
            Action::System => "system",
            Action::Users => "users",
            Action::Cluster => "cluster",
            Action::Reveal => "reveal",
        }
    }
}

/// The one table of what each role may do.
pub fn allows(role: Role, action: Action) -> bool {
    use Action as A;
    use Role as R;
    match action {
        A::Overview => true,
        A::Batches | A::Log => matches!(role, R::Auditor | R::Operator),
        A::BatchRetry | A::BatchPark | A::BatchReplay | A::Enqueue => role == R::Operator,
        A::Upload => matches!(role, R::Operator | R::DataStaff),
        A::Files => matches!(role, R::Auditor | R::Operator | R::DataStaff),
        A::Reconcile => matches!(role, R::Auditor | R::Operator),
        A::System => matches!(role, R::Admin | R::Auditor),
        A::Users => role == R::Admin,
        // The nodes' health and their log: for those who keep the
        // exchange running or audit it, not for data staff.
        A::Cluster => matches!(role, R::Admin | R::Auditor | R::Operator),
        // The grant decides (checked per user at each reveal); a role
        // that never reads records never reveals one.
        A::Reveal => matches!(role, R::Auditor | R::Operator | R::DataStaff),
    }
}

/// The password rule: at least 10 characters, of at least three of the
/// four classes (upper case, lower case, digits, other). The refusal says
/// so in Chinese.
pub fn check_password(password: &str) -> Result<(), String> {
    let classes = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    let n = classes.iter().filter(|c| **c).count();
    if password.chars().count() < 10 || n < 3 {
        return Err(
            "密码不符合要求：至少 10 个字符，并包含大写字母、小写字母、数字、其他符号中的至少三类"
                .into(),
        );
    }
    Ok(())
}

/// The argon2id hash of `password` with a fresh salt (the PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_rule_wants_ten_characters_of_three_classes() {
        assert!(check_password("Abcdefgh12").is_ok());
        assert!(check_password("abcdefgh1!").is_ok());
        assert!(check_password("Abc12!").is_err());
        let e = check_password("abcdefghijkl1").unwrap_err();
        assert!(e.contains("至少三类"), "{e}");
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("Abcdefgh12").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("Abcdefgh12", &h));
        assert!(!verify_password("Abcdefgh13", &h));
        assert!(!verify_password("Abcdefgh12", "not a hash"));
    }

    #[test]
    fn only_the_operator_acts_and_the_auditor_reads() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert!(allows(r, Action::Overview));
            assert_eq!(allows(r, Action::BatchRetry), r == Role::Operator);
            assert_eq!(allows(r, Action::Enqueue), r == Role::Operator);
            assert_eq!(allows(r, Action::BatchReplay), r == Role::Operator);
        }
        assert!(allows(Role::Auditor, Action::Log));
        assert!(!allows(Role::Auditor, Action::Upload));
        assert!(!allows(Role::Admin, Action::Log));
        assert!(!allows(Role::DataStaff, Action::Batches));
        for r in Role::ALL {
            assert_eq!(allows(r, Action::Users), r == Role::Admin);
            assert_eq!(allows(r, Action::Reveal), allows(r, Action::Files));
        }
    }

    #[test]
    fn everyone_but_data_staff_sees_the_cluster() {
        for r in Role::ALL {
            assert_eq!(allows(r, Action::Cluster), r != Role::DataStaff, "{r:?}");
        }
        assert_eq!(Action::Cluster.as_str(), "cluster");
    }
}
