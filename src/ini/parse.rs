//! The structure of an INI document, re-derived from its lines: each line's kind, the
//! section it belongs to, and where an option line's key and value are.

use super::IniDoc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    /// Line content without its terminator (may still contain a lone `\r`).
    pub(super) text: String,
    /// `"\n"`, `"\r\n"`, or `""` for a last line without a newline.
    pub(super) eol: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Blank,
    Comment,
    Header,
    /// Starts with `[` but is not a valid header: opens an anonymous section so
    /// that the lines after it are not attributed to the previous section.
    BadHeader,
    Option,
    Continuation,
    Garbage,
}

/// Derived structure of the current lines.
pub(super) struct Analysis {
    pub(super) kinds: Vec<Kind>,
    /// Index into `occurrences` of the section each line belongs to (headers
    /// belong to their own section); `None` before the first header or after a
    /// malformed one.
    pub(super) section_of: Vec<Option<usize>>,
    /// `(name, header line)` for every header, in file order; a section may
    /// occur several times (oslo merges them).
    pub(super) occurrences: Vec<(String, usize)>,
}

impl Analysis {
    pub(super) fn in_section(&self, line: usize, section: &str) -> bool {
        self.section_of[line].is_some_and(|o| self.occurrences[o].0 == section)
    }

    /// Last line of the option item starting at `line` (its continuation lines included).
    pub(super) fn item_end(&self, line: usize) -> usize {
        let mut end = line;
        while end + 1 < self.kinds.len() && self.kinds[end + 1] == Kind::Continuation {
            end += 1;
        }
        end
    }
}

/// Byte positions inside an option line.
#[derive(Debug, Clone, Copy)]
pub(super) struct OptSpan {
    pub(super) key_start: usize,
    pub(super) key_end: usize,
    pub(super) sep: usize,
    /// Trimmed value; `value_start == value_end == sep + 1` when it is empty.
    pub(super) value_start: usize,
    pub(super) value_end: usize,
}

impl OptSpan {
    pub(super) fn key(self, text: &str) -> &str {
        &text[self.key_start..self.key_end]
    }
    pub(super) fn value(self, text: &str) -> &str {
        &text[self.value_start..self.value_end]
    }
}

/// Splits like oslo's `_split_key_value`: the first `=` or `:` separates.
pub(super) fn split_option(text: &str) -> Option<OptSpan> {
    let sep = text.find(['=', ':'])?;
    let key_part = &text[..sep];
    let key_start = key_part.len() - key_part.trim_start().len();
    let key_end = key_part.trim_end().len();
    if key_start >= key_end {
        return None;
    }
    let after = &text[sep + 1..];
    let trimmed = after.trim();
    let (value_start, value_end) = if trimmed.is_empty() {
        (sep + 1, sep + 1)
    } else {
        let start = sep + 1 + (after.len() - after.trim_start().len());
        (start, start + trimmed.len())
    };
    Some(OptSpan {
        key_start,
        key_end,
        sep,
        value_start,
        value_end,
    })
}

pub(super) fn is_indented_nonblank(text: &str) -> bool {
    text.starts_with([' ', '\t']) && !text.trim().is_empty()
}

fn classify(text: &str, prev: Kind) -> Kind {
    let t = text.trim();
    if t.is_empty() {
        return Kind::Blank;
    }
    if text.starts_with([' ', '\t']) && matches!(prev, Kind::Option | Kind::Continuation) {
        return Kind::Continuation;
    }
    if t.starts_with('[') {
        // `[]` and `[foo` are errors for oslo.
        if t.len() > 2 && t.ends_with(']') {
            Kind::Header
        } else {
            Kind::BadHeader
        }
    } else if t.starts_with(['#', ';']) {
        Kind::Comment
    } else if split_option(text).is_some() {
        Kind::Option
    } else {
        Kind::Garbage
    }
}

/// `#option = ...` / `# option = ...` / `#option=...` as oslo-config-generator writes them.
pub(super) fn is_sample_line(text: &str, option: &str) -> bool {
    let Some(rest) = text.trim_start().strip_prefix(['#', ';']) else {
        return false;
    };
    let Some(rest) = rest.trim_start_matches([' ', '\t']).strip_prefix(option) else {
        return false;
    };
    rest.trim_start_matches([' ', '\t']).starts_with('=')
}

/// Items of a comma-separated value: trimmed, empty ones dropped.
pub(super) fn split_items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The separator used between two items in `value` (e.g. `", "` or `","`),
/// taken verbatim from its first non-trailing comma.
pub(super) fn detect_sep(value: &str) -> Option<&str> {
    for (i, _) in value.match_indices(',') {
        let before = value[..i].len() - value[..i].trim_end_matches([' ', '\t']).len();
        let rest = &value[i + 1..];
        let after = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let next = rest[after..].chars().next();
        if next.is_some_and(|c| c != ',' && c != '\n' && c != '\r') {
            return Some(&value[i - before..i + 1 + after]);
        }
    }
    None
}

/// Removes one pair of matching surrounding quotes, as oslo does when reading.
pub(super) fn unquote(value: &str) -> Option<&str> {
    let b = value.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        Some(&value[1..value.len() - 1])
    } else {
        None
    }
}

impl IniDoc {
    pub(super) fn analyze(&self) -> Analysis {
        let n = self.lines.len();
        let mut kinds = Vec::with_capacity(n);
        let mut section_of = Vec::with_capacity(n);
        let mut occurrences = Vec::new();
        let mut prev = Kind::Blank;
        let mut current = None;
        for (i, line) in self.lines.iter().enumerate() {
            let kind = classify(&line.text, prev);
            match kind {
                Kind::Header => {
                    let t = line.text.trim();
                    occurrences.push((t[1..t.len() - 1].to_string(), i));
                    current = Some(occurrences.len() - 1);
                }
                Kind::BadHeader => current = None,
                _ => {}
            }
            kinds.push(kind);
            section_of.push(current);
            prev = kind;
        }
        Analysis {
            kinds,
            section_of,
            occurrences,
        }
    }

    pub(super) fn option_lines(&self, a: &Analysis, section: &str, option: &str) -> Vec<usize> {
        (0..self.lines.len())
            .filter(|&i| a.kinds[i] == Kind::Option && a.in_section(i, section))
            .filter(|&i| {
                let text = &self.lines[i].text;
                split_option(text).is_some_and(|sp| sp.key(text) == option)
            })
            .collect()
    }

    pub(super) fn span(&self, line: usize) -> OptSpan {
        split_option(&self.lines[line].text).expect("line classified as an option")
    }

    pub(super) fn value_of(&self, a: &Analysis, line: usize) -> String {
        let text = &self.lines[line].text;
        let mut value = self.span(line).value(text).to_string();
        for cont in &self.lines[line + 1..=a.item_end(line)] {
            value.push('\n');
            value.push_str(cont.text.trim());
        }
        value
    }
}
