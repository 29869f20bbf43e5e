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

mod edit;
mod parse;
mod secret;

pub use secret::{is_secret_option, mask_secrets};

use parse::Line;
use std::fmt;

const BOM: char = '\u{feff}';

/// A lossless, editable model of an INI file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IniDoc {
    bom: bool,
    lines: Vec<Line>,
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
}

impl fmt::Display for IniDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}
