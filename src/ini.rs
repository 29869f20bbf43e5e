//! Format-preserving editor for oslo.config INI files (`nova.conf`, `glance-api.conf`, ...).
//!
//! The document is stored as raw lines (text + line terminator) plus a BOM flag.
//! Structure (sections, options, continuation lines) is re-derived from those
//! lines whenever it is needed, so [`IniDoc::to_text`] is byte-identical by
//! construction and an edit can only touch the lines it rewrites, inserts or
//! removes.
//!
//! Line classification follows `oslo_config.iniparser` so that what we edit is
//! what the services read:
//! - a line indented with space/tab right after an option (or one of its
//!   continuation lines) continues that option's value;
//! - blank lines and comment lines end a multi-line value;
//! - `[name]` starts a section, the name is taken verbatim (no case folding);
//! - the key/value separator is the first `=` or `:`; there are no inline
//!   comments (`a = b # c` has the value `b # c`).
//!
//! Where oslo would refuse the file (garbage lines, options before the first
//! section, malformed headers) we keep the lines verbatim and never match them.

// The replacement text for secret values in [`mask_secrets`]: the printer's.
use crate::printer::MASK;
use std::fmt;

const BOM: char = '\u{feff}';

/// A lossless, editable model of an INI file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IniDoc {
    bom: bool,
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    /// Line content without its terminator (may still contain a lone `\r`).
    text: String,
    /// `"\n"`, `"\r\n"`, or `""` for a last line without a newline.
    eol: &'static str,
}

/// One edit of one option.
#[derive(Debug, Clone, PartialEq)]
pub struct IniEdit {
    pub section: String,
    pub option: String,
    pub op: IniOp,
    /// Effective value when the option is not set anywhere (primary or aliases).
    pub default: Option<String>,
    /// Deprecated `(section, option)` locations, in oslo's order; edited in place
    /// when the primary location is not set but one of these is.
    pub aliases: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IniOp {
    /// Exactly one active line with this value (compared after trimming).
    Value(String),
    /// A comma-separated list option contains all these items (order kept, missing ones appended).
    ListContains(Vec<String>),
    /// No active line of the option (primary and aliases) remains.
    Absent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EditOutcome {
    pub changed: bool,
    pub note: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IniError {
    #[error(
        "[{section}] {option} is a repeated (MultiStrOpt) key with {count} active lines; \
         a single value cannot be set on it"
    )]
    RepeatedKey {
        section: String,
        option: String,
        count: usize,
    },
    #[error("invalid section name {section:?}: {reason}")]
    InvalidSection { section: String, reason: String },
    #[error("invalid option name {option:?}: {reason}")]
    InvalidOption { option: String, reason: String },
    // The value itself is left out on purpose: it may be a password.
    #[error("invalid value for [{section}] {option}: {reason}")]
    InvalidValue {
        section: String,
        option: String,
        reason: String,
    },
}

/// An [`IniOp`] whose value or items have been validated and trimmed.
enum Op<'e> {
    Value(&'e str),
    List(Vec<&'e str>),
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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
struct Analysis {
    kinds: Vec<Kind>,
    /// Index into `occurrences` of the section each line belongs to (headers
    /// belong to their own section); `None` before the first header or after a
    /// malformed one.
    section_of: Vec<Option<usize>>,
    /// `(name, header line)` for every header, in file order; a section may
    /// occur several times (oslo merges them).
    occurrences: Vec<(String, usize)>,
}

impl Analysis {
    fn in_section(&self, line: usize, section: &str) -> bool {
        self.section_of[line].is_some_and(|o| self.occurrences[o].0 == section)
    }

    /// Last line of the option item starting at `line` (its continuation lines included).
    fn item_end(&self, line: usize) -> usize {
        let mut end = line;
        while end + 1 < self.kinds.len() && self.kinds[end + 1] == Kind::Continuation {
            end += 1;
        }
        end
    }
}

/// Byte positions inside an option line.
#[derive(Debug, Clone, Copy)]
struct OptSpan {
    key_start: usize,
    key_end: usize,
    sep: usize,
    /// Trimmed value; `value_start == value_end == sep + 1` when it is empty.
    value_start: usize,
    value_end: usize,
}

impl OptSpan {
    fn key(self, text: &str) -> &str {
        &text[self.key_start..self.key_end]
    }
    fn value(self, text: &str) -> &str {
        &text[self.value_start..self.value_end]
    }
}

/// Splits like oslo's `_split_key_value`: the first `=` or `:` separates.
fn split_option(text: &str) -> Option<OptSpan> {
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

fn is_indented_nonblank(text: &str) -> bool {
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
fn is_sample_line(text: &str, option: &str) -> bool {
    let Some(rest) = text.trim_start().strip_prefix(['#', ';']) else {
        return false;
    };
    let Some(rest) = rest.trim_start_matches([' ', '\t']).strip_prefix(option) else {
        return false;
    };
    rest.trim_start_matches([' ', '\t']).starts_with('=')
}

/// Items of a comma-separated value: trimmed, empty ones dropped.
fn split_items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The separator used between two items in `value` (e.g. `", "` or `","`),
/// taken verbatim from its first non-trailing comma.
fn detect_sep(value: &str) -> Option<&str> {
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
fn unquote(value: &str) -> Option<&str> {
    let b = value.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        Some(&value[1..value.len() - 1])
    } else {
        None
    }
}

fn loc(section: &str, option: &str) -> String {
    format!("[{section}] {option}")
}

fn validate_section(section: &str) -> Result<(), IniError> {
    let reason = if section.is_empty() {
        "empty"
    } else if section.contains(['\n', '\r']) {
        "contains a line break"
    } else {
        return Ok(());
    };
    Err(IniError::InvalidSection {
        section: section.to_string(),
        reason: reason.to_string(),
    })
}

fn validate_option(option: &str) -> Result<(), IniError> {
    // Anything that would make the written `option = value` line parse differently.
    let reason = if option.trim().is_empty() {
        "empty"
    } else if option.trim() != option {
        "leading or trailing whitespace"
    } else if option.contains(['\n', '\r']) {
        "contains a line break"
    } else if option.contains(['=', ':']) {
        "contains '=' or ':'"
    } else if option.starts_with(['[', '#', ';', BOM]) {
        "starts with '[', '#', ';' or a BOM"
    } else {
        return Ok(());
    };
    Err(IniError::InvalidOption {
        option: option.to_string(),
        reason: reason.to_string(),
    })
}

/// Shows a value in a note unless the option is secret.
fn shown(option: &str, value: &str) -> String {
    if is_secret_option(option) || has_url_credentials(value) {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

impl IniDoc {
    /// Parses any text; lines that are not valid INI are kept verbatim.
    pub fn parse(text: &str) -> IniDoc {
        let (bom, body) = match text.strip_prefix(BOM) {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let lines = body
            .split_inclusive('\n')
            .map(|piece| {
                let (text, eol) = if let Some(t) = piece.strip_suffix("\r\n") {
                    (t, "\r\n")
                } else if let Some(t) = piece.strip_suffix('\n') {
                    (t, "\n")
                } else {
                    (piece, "")
                };
                Line {
                    text: text.to_string(),
                    eol,
                }
            })
            .collect();
        IniDoc { bom, lines }
    }

    /// The document as text; byte-identical to the parsed input when unedited.
    pub fn to_text(&self) -> String {
        let len = self
            .lines
            .iter()
            .map(|l| l.text.len() + l.eol.len())
            .sum::<usize>();
        let mut out = String::with_capacity(len + 3);
        if self.bom {
            out.push(BOM);
        }
        for line in &self.lines {
            out.push_str(&line.text);
            out.push_str(line.eol);
        }
        out
    }

    /// Active (uncommented) values of `option` in every occurrence of `section`,
    /// in file order. Values are trimmed; continuation lines are joined with
    /// `\n` as oslo does; quotes are kept as written.
    pub fn get_all(&self, section: &str, option: &str) -> Vec<String> {
        let a = self.analyze();
        self.option_lines(&a, section, option)
            .into_iter()
            .map(|i| self.value_of(&a, i))
            .collect()
    }

    /// The value oslo would use for a single-valued option: the last active one.
    pub fn get(&self, section: &str, option: &str) -> Option<String> {
        self.get_all(section, option).pop()
    }

    /// Names of the sections, in order of first appearance, without duplicates.
    pub fn sections(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (name, _) in self.analyze().occurrences {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Applies one edit; on error the document is left unchanged.
    pub fn apply(&mut self, edit: &IniEdit) -> Result<EditOutcome, IniError> {
        validate_section(&edit.section)?;
        validate_option(&edit.option)?;
        for (s, o) in &edit.aliases {
            validate_section(s)?;
            validate_option(o)?;
        }
        let op = match &edit.op {
            IniOp::Value(v) => Op::Value(Self::checked_value(edit, v)?),
            IniOp::ListContains(items) => Op::List(Self::checked_items(edit, items)?),
            IniOp::Absent => Op::Absent,
        };
        let a = self.analyze();
        let primary = self.option_lines(&a, &edit.section, &edit.option);
        // Aliases that repeat the primary location would be counted twice.
        let aliases: Vec<(&str, &str, Vec<usize>)> = edit
            .aliases
            .iter()
            .filter(|(s, o)| (s, o) != (&edit.section, &edit.option))
            .map(|(s, o)| (s.as_str(), o.as_str(), self.option_lines(&a, s, o)))
            .collect();

        if let Op::Absent = op {
            return Ok(self.remove_all(&a, edit, &primary, &aliases));
        }

        // oslo precedence: the primary location wins when set, then aliases in order.
        let (sec, opt, lines, via_alias) = if !primary.is_empty() {
            (edit.section.as_str(), edit.option.as_str(), &primary, false)
        } else if let Some((s, o, l)) = aliases.iter().find(|(_, _, l)| !l.is_empty()) {
            (*s, *o, l, true)
        } else {
            return Ok(self.apply_unset(&a, edit, op));
        };
        if lines.len() > 1 {
            return Err(IniError::RepeatedKey {
                section: sec.to_string(),
                option: opt.to_string(),
                count: lines.len(),
            });
        }
        let line = lines[0];
        let mut notes = Vec::new();
        if via_alias {
            notes.push(format!(
                "set through the deprecated alias {} (edited in place)",
                loc(sec, opt)
            ));
        } else {
            for (s, o, l) in &aliases {
                if !l.is_empty() {
                    notes.push(format!(
                        "deprecated alias {} is also set; oslo ignores it while {} is set",
                        loc(s, o),
                        loc(sec, opt)
                    ));
                }
            }
        }
        let changed = match op {
            Op::Value(v) => {
                let current = self.value_of(&a, line);
                // `a = "x"` is read as `x` by oslo: already equal.
                if a.item_end(line) == line && unquote(&current) == Some(v) {
                    false
                } else {
                    self.set_value(&a, line, v)
                }
            }
            Op::List(items) => self.list_append(&a, line, &items, edit.default.as_deref()),
            Op::Absent => unreachable!("handled above"),
        };
        Ok(EditOutcome {
            changed,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
    }

    // ---- internals -------------------------------------------------------

    fn analyze(&self) -> Analysis {
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

    fn option_lines(&self, a: &Analysis, section: &str, option: &str) -> Vec<usize> {
        (0..self.lines.len())
            .filter(|&i| a.kinds[i] == Kind::Option && a.in_section(i, section))
            .filter(|&i| {
                let text = &self.lines[i].text;
                split_option(text).is_some_and(|sp| sp.key(text) == option)
            })
            .collect()
    }

    fn span(&self, line: usize) -> OptSpan {
        split_option(&self.lines[line].text).expect("line classified as an option")
    }

    fn value_of(&self, a: &Analysis, line: usize) -> String {
        let text = &self.lines[line].text;
        let mut value = self.span(line).value(text).to_string();
        for cont in &self.lines[line + 1..=a.item_end(line)] {
            value.push('\n');
            value.push_str(cont.text.trim());
        }
        value
    }

    fn checked_value<'v>(edit: &IniEdit, v: &'v str) -> Result<&'v str, IniError> {
        if v.contains(['\n', '\r']) {
            return Err(IniError::InvalidValue {
                section: edit.section.clone(),
                option: edit.option.clone(),
                reason: "contains a line break".to_string(),
            });
        }
        Ok(v.trim())
    }

    fn checked_items<'v>(edit: &IniEdit, items: &'v [String]) -> Result<Vec<&'v str>, IniError> {
        let mut out: Vec<&str> = Vec::new();
        for item in items {
            if item.contains([',', '\n', '\r']) {
                return Err(IniError::InvalidValue {
                    section: edit.section.clone(),
                    option: edit.option.clone(),
                    reason: "a list item contains ',' or a line break".to_string(),
                });
            }
            let item = item.trim();
            if !item.is_empty() && !out.contains(&item) {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Line terminator for new lines when no neighbour tells: the majority one.
    fn dominant_eol(&self) -> &'static str {
        let crlf = self.lines.iter().filter(|l| l.eol == "\r\n").count();
        let lf = self.lines.iter().filter(|l| l.eol == "\n").count();
        if crlf > lf { "\r\n" } else { "\n" }
    }

    /// Rewrites the value of the option item at `line` to `new` (dropping any
    /// continuation lines), keeping the line's own spacing. Returns whether
    /// anything changed.
    fn set_value(&mut self, a: &Analysis, line: usize, new: &str) -> bool {
        let end = a.item_end(line);
        let text = &self.lines[line].text;
        let sp = self.span(line);
        if end == line && sp.value(text) == new {
            return false;
        }
        let new_text = if new.is_empty() {
            text[..=sp.sep].to_string()
        } else if sp.value_start == sp.value_end {
            // `a =` → `a = new`, `a=` → `a=new`: mirror the spacing before the separator.
            format!("{}{}{}", &text[..=sp.sep], &text[sp.key_end..sp.sep], new)
        } else {
            format!(
                "{}{}{}",
                &text[..sp.value_start],
                new,
                &text[sp.value_end..]
            )
        };
        self.lines[line].text = new_text;
        self.lines.drain(line + 1..=end);
        true
    }

    fn list_append(
        &mut self,
        a: &Analysis,
        line: usize,
        items: &[&str],
        default: Option<&str>,
    ) -> bool {
        let end = a.item_end(line);
        let full = self.value_of(a, line);
        let single_quoted = if end == line { unquote(&full) } else { None };
        let existing = split_items(single_quoted.unwrap_or(&full));
        let missing: Vec<&str> = items
            .iter()
            .copied()
            .filter(|i| !existing.contains(i))
            .collect();
        if missing.is_empty() {
            return false;
        }
        let sep = detect_sep(&full)
            .or_else(|| default.and_then(detect_sep))
            .unwrap_or(", ")
            .to_string();
        let addition = missing.join(&sep);
        let extend = |inner: &str| -> String {
            if inner.trim().is_empty() {
                addition.clone()
            } else if inner.trim_end().ends_with(',') {
                // `a,b,` → `a,b,c`: reuse only the whitespace after the comma.
                let after = &sep[sep.find(',').map_or(sep.len(), |i| i + 1)..];
                format!("{}{}{}", inner.trim_end(), after, addition)
            } else {
                format!("{inner}{sep}{addition}")
            }
        };
        if end == line {
            let new = match single_quoted {
                Some(inner) => {
                    let q = &full[..1];
                    format!("{q}{}{q}", extend(inner))
                }
                None => extend(&full),
            };
            self.set_value(a, line, &new)
        } else {
            // Multi-line value: append to its last physical line.
            let text = &self.lines[end].text;
            let start = text.len() - text.trim_start().len();
            let stop = text.trim_end().len();
            let new_text = format!(
                "{}{}{}",
                &text[..start],
                extend(&text[start..stop]),
                &text[stop..]
            );
            self.lines[end].text = new_text;
            true
        }
    }

    fn remove_all(
        &mut self,
        a: &Analysis,
        edit: &IniEdit,
        primary: &[usize],
        aliases: &[(&str, &str, Vec<usize>)],
    ) -> EditOutcome {
        let mut starts: Vec<usize> = primary.to_vec();
        let mut alias_locs = Vec::new();
        for (s, o, l) in aliases {
            if !l.is_empty() {
                alias_locs.push(loc(s, o));
                starts.extend(l);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut removed = 0;
        // Back to front so earlier indices stay valid.
        for &start in starts.iter().rev() {
            let end = a.item_end(start);
            removed += end - start + 1;
            self.lines.drain(start..=end);
        }
        let mut note = None;
        if !alias_locs.is_empty() {
            note = Some(format!(
                "removed {removed} line(s) of {}, including the deprecated alias {}",
                loc(&edit.section, &edit.option),
                alias_locs.join(", ")
            ));
        }
        EditOutcome {
            changed: removed > 0,
            note,
        }
    }

    /// Value / ListContains when neither the primary nor an alias is set.
    fn apply_unset(&mut self, a: &Analysis, edit: &IniEdit, op: Op<'_>) -> EditOutcome {
        let default = edit.default.as_deref();
        let value = match op {
            Op::Value(v) => {
                if default.is_some_and(|d| d.trim() == v) {
                    return Self::effective_by_default(edit);
                }
                v.to_string()
            }
            Op::List(items) => {
                let mut all = split_items(default.unwrap_or(""));
                let before = all.len();
                for item in items {
                    if !all.contains(&item) {
                        all.push(item);
                    }
                }
                if all.len() == before {
                    return if default.is_some() {
                        Self::effective_by_default(edit)
                    } else {
                        EditOutcome {
                            changed: false,
                            note: None,
                        }
                    };
                }
                let sep = default.and_then(detect_sep).unwrap_or(", ");
                all.join(sep)
            }
            Op::Absent => unreachable!("handled by the caller"),
        };
        self.insert_option(a, &edit.section, &edit.option, &value);
        EditOutcome {
            changed: true,
            note: None,
        }
    }

    fn effective_by_default(edit: &IniEdit) -> EditOutcome {
        let d = edit.default.as_deref().unwrap_or("");
        EditOutcome {
            changed: false,
            note: Some(format!(
                "{} is not set; already effective through the default ({})",
                loc(&edit.section, &edit.option),
                shown(&edit.option, d)
            )),
        }
    }

    fn insert_option(&mut self, a: &Analysis, section: &str, option: &str, value: &str) {
        let n = self.lines.len();
        let Some(last_occ) = a.occurrences.iter().rposition(|(name, _)| name == section) else {
            self.append_section(section, option, value);
            return;
        };
        // Inserting right before an indented line would turn it into a
        // continuation of the new option, changing its meaning.
        let safe = |p: usize| p >= n || !is_indented_nonblank(&self.lines[p].text);
        let sample = (0..n).rev().find(|&i| {
            a.kinds[i] == Kind::Comment
                && a.in_section(i, section)
                && is_sample_line(&self.lines[i].text, option)
        });
        let last_option = (0..n)
            .rev()
            .find(|&i| a.kinds[i] == Kind::Option && a.section_of[i] == Some(last_occ));
        let at = if let Some(s) = sample.filter(|&s| safe(s + 1)) {
            Some(s + 1)
        } else if let Some(o) = last_option {
            // The line after an option item is never an indented non-blank line.
            Some(a.item_end(o) + 1)
        } else {
            let header = a.occurrences[last_occ].1;
            let boundary = (header + 1..n)
                .find(|&i| a.section_of[i] != Some(last_occ))
                .unwrap_or(n);
            (header + 1..=boundary).find(|&p| safe(p))
        };
        let Some(at) = at else {
            // Pathological file (every line of the section indented): a new
            // occurrence of the section at the end is still read by oslo.
            self.append_section(section, option, value);
            return;
        };
        let compact = self.section_is_compact(a, section);
        let text = Self::option_text(option, value, compact);
        self.insert_line(at, text);
    }

    /// True when every active line of the section is written `key=value`.
    fn section_is_compact(&self, a: &Analysis, section: &str) -> bool {
        let mut any = false;
        for i in 0..self.lines.len() {
            if a.kinds[i] != Kind::Option || !a.in_section(i, section) {
                continue;
            }
            any = true;
            let text = &self.lines[i].text;
            let sp = self.span(i);
            let after = &text[sp.sep + 1..];
            if sp.key_end != sp.sep || after.starts_with(char::is_whitespace) {
                return false;
            }
        }
        any
    }

    fn option_text(option: &str, value: &str, compact: bool) -> String {
        match (compact, value.is_empty()) {
            (true, _) => format!("{option}={value}"),
            (false, true) => format!("{option} ="),
            (false, false) => format!("{option} = {value}"),
        }
    }

    /// Inserts a line before index `at`, with its neighbour's line terminator;
    /// a file without a final newline keeps that property.
    fn insert_line(&mut self, at: usize, text: String) {
        let dominant = self.dominant_eol();
        let mut eol = match at.checked_sub(1).map(|p| self.lines[p].eol) {
            Some(e) if !e.is_empty() => e,
            _ => dominant,
        };
        if at == self.lines.len() && at > 0 && self.lines[at - 1].eol.is_empty() {
            self.lines[at - 1].eol = dominant;
            eol = "";
        }
        self.lines.insert(at, Line { text, eol });
    }

    fn append_section(&mut self, section: &str, option: &str, value: &str) {
        let eol = self.dominant_eol();
        let final_newline = self.lines.last().is_none_or(|l| !l.eol.is_empty());
        if let Some(last) = self.lines.last_mut() {
            if last.eol.is_empty() {
                last.eol = eol;
            }
            if !last.text.trim().is_empty() {
                self.lines.push(Line {
                    text: String::new(),
                    eol,
                });
            }
        }
        self.lines.push(Line {
            text: format!("[{section}]"),
            eol,
        });
        self.lines.push(Line {
            text: Self::option_text(option, value, false),
            eol: if final_newline { eol } else { "" },
        });
    }
}

impl fmt::Display for IniDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

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
fn has_url_credentials(value: &str) -> bool {
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
