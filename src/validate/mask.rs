//! Masking personal data (ARCHITECTURE.md, invariant "No personal data in logs"): what a person needs to
//! find the error stays visible, the rest becomes `*`.

/// How a field's values are masked (`x-mask` in the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// Certificate numbers: first 6 and last 4 (`110105********002X`).
    Id,
    /// Mobile numbers: first 3 and last 4 (`138****5678`).
    Mobile,
    /// Personal names: the first character (`张**`).
    Name,
    /// Anything else personal: about a third stays, split between the ends.
    Generic,
}

impl MaskKind {
    pub fn from_schema(s: Option<&str>) -> Option<MaskKind> {
        Some(match s {
            None => MaskKind::Generic,
            Some("id") => MaskKind::Id,
            Some("mobile") => MaskKind::Mobile,
            Some("name") => MaskKind::Name,
            Some("generic") => MaskKind::Generic,
            Some(_) => return None,
        })
    }
}

/// Masks `value`. Short values fall back to the generic rule so that a
/// kept head and tail never add up to (nearly) the whole value.
pub fn mask(value: &str, kind: MaskKind) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let (head, tail) = match kind {
        MaskKind::Id if n >= 14 => (6, 4),
        MaskKind::Mobile if n >= 11 => (3, 4),
        MaskKind::Name if n >= 2 => (1, 0),
        MaskKind::Name => (0, 0),
        _ => {
            // Keep ~1/3: a sixth at each end, rounding down.
            (n / 6, n / 6)
        }
    };
    let mut out = String::with_capacity(value.len());
    out.extend(&chars[..head]);
    out.extend(std::iter::repeat_n('*', n - head - tail));
    out.extend(&chars[n - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_by_kind() {
        assert_eq!(
            mask("11010519491231002X", MaskKind::Id),
            "110105********002X"
        );
        assert_eq!(mask("13812345678", MaskKind::Mobile), "138****5678");
        assert_eq!(mask("张三丰", MaskKind::Name), "张**");
        assert_eq!(mask("张", MaskKind::Name), "*");
        assert_eq!(mask("ABCDEFGHIJKL", MaskKind::Generic), "AB********KL");
        assert_eq!(mask("12345", MaskKind::Id), "*****");
        assert_eq!(mask("", MaskKind::Generic), "");
    }
}
