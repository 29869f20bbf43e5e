//! Quoting for POSIX sh. Every inventory value that reaches a remote shell goes through here.

/// Quote `s` so that sh reads it back as exactly one word with exactly these bytes.
pub(crate) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quote every word and join them with spaces.
pub(crate) fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first word of `s` as [`quote`] wrote it (bare, or single-quoted with `'\''` for a
/// quote), unquoted, and what follows it (from the space or newline that ends it); `None` if
/// `s` does not start with such a word.
pub(crate) fn unquote_first(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    let mut quoted = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '\\' if !quoted => out.push(chars.next()?.1),
            ' ' | '\n' if !quoted => return (!out.is_empty()).then(|| (out, &s[i..])),
            c => out.push(c),
        }
    }
    (!quoted && !out.is_empty()).then_some((out, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote_first_undoes_quote() {
        for w in [
            "plain",
            "it's",
            "two words",
            "a\nnew line",
            "$(id) `x`",
            "'",
        ] {
            let s = format!("{} rest\nmore", quote(w));
            assert_eq!(unquote_first(&s), Some((w.to_string(), " rest\nmore")));
        }
        assert_eq!(unquote_first("'open"), None);
    }
    use std::process::Command;

    fn roundtrip(s: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(s)))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn hostile_values_come_back_literally() {
        for s in [
            "'; touch /tmp/pwned; '",
            "$(id)",
            "`id`",
            "a\nb",
            "",
            "x y",
            "\\",
            "-n",
            "*",
            "~root",
        ] {
            assert_eq!(roundtrip(s), s, "value {s:?}");
        }
    }

    #[test]
    fn plain_words_are_left_alone() {
        assert_eq!(quote("/etc/nova/nova.conf"), "/etc/nova/nova.conf");
        assert_eq!(quote("a b"), "'a b'");
    }
}
