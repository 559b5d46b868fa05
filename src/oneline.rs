//! Untrusted text (file names, values, a library's messages) rendered on
//! one line: control characters become visible escapes, so that a newline
//! in a file name can never start a forged line of its own in a text log
//! or a table. JSON outputs need none of this: their encoder escapes.

use std::borrow::Cow;

/// `s` with every control character (`\n`, `\r`, `\t`, ESC, NUL…) escaped
/// as Rust does (`\n`, `\u{1b}`); everything else, Chinese included, is
/// left as it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(
            escape("a\nb\r\tc\u{1b}[31m.csv"),
            "a\\nb\\r\\tc\\u{1b}[31m.csv"
        );
        assert!(matches!(escape("普通 文件.csv"), Cow::Borrowed(_)));
    }
}
