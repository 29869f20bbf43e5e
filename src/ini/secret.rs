//! Which options are secret, and INI text with their values masked.

// The replacement text for secret values in [`mask_secrets`]: the printer's.
use super::IniDoc;
use super::parse::{Kind, split_option};
use crate::printer::MASK;

/// Whether an option's value must not be shown (in diffs, logs, notes).
///
/// The name is split into words on `_`, `-` and `.`:
/// - `token` / `key` only count as the last word (`auth_token`, `api_key`,
///   `fixed_key`, `memcache_secret_key`), so `token_cache_time`, `key_file`,
///   `key_manager` or `keymap` are not secret;
/// - `password`, `passwd`, `passphrase` and `secret` count anywhere unless the
///   last word names a property of it (`password_length`, `rbd_secret_uuid`);
/// - URLs that embed credentials: `transport_url`, `backend_url`,
///   `connection_string` and any `*connection` (`connection`, `slave_connection`).
pub fn is_secret_option(name: &str) -> bool {
    const NOT_SECRET_SUFFIXES: &[&str] = &[
        "length", "uuid", "file", "path", "dir", "regex", "type", "enabled", "days", "seconds",
    ];
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(['_', '-', '.'])
        .filter(|w| !w.is_empty())
        .collect();
    let Some(&last) = words.last() else {
        return false;
    };
    if last.ends_with("token") || last.ends_with("key") {
        return true;
    }
    if last == "connection"
        || lower.ends_with("transport_url")
        || lower.ends_with("backend_url")
        || lower.ends_with("connection_string")
    {
        return true;
    }
    let secretish = words.iter().any(|w| {
        ["password", "passwd", "passphrase", "secret"]
            .iter()
            .any(|s| w.contains(s))
    });
    secretish && !NOT_SECRET_SUFFIXES.contains(&last)
}

/// `scheme://user:password@host...`
pub(super) fn has_url_credentials(value: &str) -> bool {
    value.match_indices("://").any(|(i, _)| {
        let rest = &value[i + 3..];
        let authority = &rest[..rest.find(['/', ' ', '\t']).unwrap_or(rest.len())];
        authority
            .rfind('@')
            .is_some_and(|at| authority[..at].contains(':'))
    })
}

/// Key/value of a commented-out option line: `#name = value`, `# name=value`, `;name: value`.
/// Returns `(key, value_start, value_end)`.
fn commented_option(text: &str) -> Option<(&str, usize, usize)> {
    let t = text.trim_start();
    let body = t.strip_prefix(['#', ';'])?;
    let body_off = text.len() - body.len();
    let key_off = body.len() - body.trim_start().len();
    let rest = &body[key_off..];
    let key_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
        .unwrap_or(rest.len());
    if key_len == 0 {
        return None;
    }
    let key = &rest[..key_len];
    let after_key = &rest[key_len..];
    let sep_rel = after_key.len() - after_key.trim_start_matches([' ', '\t']).len();
    if !after_key[sep_rel..].starts_with(['=', ':']) {
        return None;
    }
    let sep = body_off + key_off + key_len + sep_rel;
    let sp = split_option(text).filter(|sp| sp.sep == sep)?;
    Some((key, sp.value_start, sp.value_end))
}

/// `text` with the value of every active or commented option line whose option
/// is secret (see [`is_secret_option`]), or whose value is a URL with embedded
/// credentials, replaced by `********`. Keys, spacing, comments and line
/// terminators are kept; everything else is byte-identical.
pub fn mask_secrets(text: &str) -> String {
    let mut doc = IniDoc::parse(text);
    let a = doc.analyze();
    let mut masking_item = false;
    for i in 0..doc.lines.len() {
        let text = &doc.lines[i].text;
        let range = match a.kinds[i] {
            Kind::Option => {
                let sp = doc.span(i);
                let value = sp.value(text);
                masking_item = is_secret_option(sp.key(text)) || has_url_credentials(value);
                masking_item.then_some((sp.value_start, sp.value_end))
            }
            Kind::Continuation if masking_item => {
                let start = text.len() - text.trim_start().len();
                Some((start, text.trim_end().len()))
            }
            Kind::Comment => commented_option(text)
                .filter(|&(key, s, e)| is_secret_option(key) || has_url_credentials(&text[s..e]))
                .map(|(_, s, e)| (s, e)),
            _ => None,
        };
        if let Some((s, e)) = range.filter(|(s, e)| s < e) {
            let masked = format!("{}{MASK}{}", &text[..s], &text[e..]);
            doc.lines[i].text = masked;
        }
    }
    doc.to_text()
}
