//! Edits of one option: set a value, make a list contain items, remove; oslo's
//! precedence of deprecated aliases; new lines written in the file's own style.

use super::parse::{
    Analysis, Kind, Line, detect_sep, is_indented_nonblank, is_sample_line, split_items, unquote,
};
use super::secret::{has_url_credentials, is_secret_option};
use super::{BOM, EditOutcome, IniDoc, IniEdit, IniError, IniOp};
use crate::printer::MASK;

/// An [`IniOp`] whose value or items have been validated and trimmed.
enum Op<'e> {
    Value(&'e str),
    List(Vec<&'e str>),
    Absent,
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
