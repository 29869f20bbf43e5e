//! Step kinds: one file each. A step turns facts into an [`Outcome`]; it never touches a host.

pub(crate) mod authorized_key;
pub(crate) mod command;
pub(crate) mod copy;
pub(crate) mod file;
pub(crate) mod glance_image;
pub(crate) mod ini;
pub(crate) mod known_hosts;
pub(crate) mod nova_computes;
pub(crate) mod nova_driver;
pub(crate) mod novadock_binary;
pub(crate) mod openstack_aggregate;
pub(crate) mod openstack_flavor;
pub(crate) mod package;
pub(crate) mod service;
pub(crate) mod template;
pub(crate) mod toml;
pub(crate) mod user_groups;

use crate::facts::{Content, Facts, FileFact, Memo, Probe};
use crate::plan::{Action, Attrs, Outcome, attrs_differ, expect_of};
use crate::render::{RenderError, Renderer};
use serde::{Deserialize, Deserializer};

#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Ini {
        path: String,
        #[source]
        source: crate::ini::IniError,
    },
}

pub(crate) struct PlanCx<'a> {
    pub(crate) facts: &'a Facts,
    pub(crate) renderer: &'a Renderer,
    pub(crate) vars: &'a minijinja::Value,
}

pub(crate) trait StepKind: Send + Sync {
    /// What this step needs to know about the host.
    fn probes(&self) -> Vec<Probe>;
    /// What would change; pure: reads `cx.facts` only.
    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError>;
    /// Checks serde cannot express (one of several keys, absolute paths).
    fn validate(&self) -> Result<(), StepError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error(transparent)]
    Args(#[from] serde_yaml::Error),
    #[error(transparent)]
    Step(#[from] StepError),
}

/// Build a step from its (already rendered) YAML arguments.
pub(crate) fn build(
    kind: &str,
    args: serde_yaml::Value,
    handler: bool,
) -> Result<Box<dyn StepKind + Send + Sync>, BuildError> {
    let step: Box<dyn StepKind + Send + Sync> = match kind {
        "ini" => Box::new(serde_yaml::from_value::<ini::Ini>(args)?),
        "template" => Box::new(serde_yaml::from_value::<template::Template>(args)?),
        "file" => Box::new(serde_yaml::from_value::<file::File>(args)?),
        "toml" => Box::new(serde_yaml::from_value::<toml::Toml>(args)?),
        "package" => Box::new(serde_yaml::from_value::<package::Package>(args)?),
        "service" => {
            let mut s = serde_yaml::from_value::<service::Service>(args)?;
            s.as_handler = handler;
            Box::new(s)
        }
        "user_groups" => Box::new(serde_yaml::from_value::<user_groups::UserGroups>(args)?),
        "command" => Box::new(serde_yaml::from_value::<command::Command>(args)?),
        "copy" => Box::new(copy::load(serde_yaml::from_value::<copy::Copy>(args)?)?),
        "authorized_key" => Box::new(serde_yaml::from_value::<authorized_key::AuthorizedKey>(
            args,
        )?),
        "known_hosts" => Box::new(serde_yaml::from_value::<known_hosts::KnownHosts>(args)?),
        "nova_computes" => Box::new(serde_yaml::from_value::<nova_computes::NovaComputes>(args)?),
        "nova_driver" => Box::new(serde_yaml::from_value::<nova_driver::NovaDriver>(args)?),
        "novadock_binary" => Box::new(serde_yaml::from_value::<novadock_binary::NovadockBinary>(
            args,
        )?),
        "glance_image" => Box::new(serde_yaml::from_value::<glance_image::GlanceImage>(args)?),
        "openstack_flavor" => Box::new(
            serde_yaml::from_value::<openstack_flavor::OpenstackFlavor>(args)?,
        ),
        "openstack_aggregate" => Box::new(serde_yaml::from_value::<
            openstack_aggregate::OpenstackAggregate,
        >(args)?),
        other => unreachable!("unknown step kind {other} passed validation"),
    };
    step.validate()?;
    Ok(step)
}

/// A scalar written as a string, number or bool in YAML; steps want its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(Scalar(s)),
            serde_yaml::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_yaml::Value::Bool(b) => Ok(Scalar(b.to_string())),
            _ => Err(D::Error::custom("expected a string, number or boolean")),
        }
    }
}

/// A file mode: `"0640"` (quote it: YAML reads a bare 0640 as a number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mode(pub String);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = Scalar::deserialize(d)?.0;
        let ok = (3..=4).contains(&s.len()) && s.bytes().all(|b| (b'0'..=b'7').contains(&b));
        if !ok {
            return Err(D::Error::custom(format!(
                "mode `{s}` is not an octal mode like \"0640\" (quote it in YAML)"
            )));
        }
        Ok(Mode(s))
    }
}

/// owner/group/mode as the plan carries them.
pub(crate) fn attrs(owner: &Option<String>, group: &Option<String>, mode: &Option<Mode>) -> Attrs {
    Attrs {
        owner: owner.clone(),
        group: group.clone(),
        mode: mode.as_ref().map(|m| m.0.clone()),
    }
}

/// The `hosts:` inventory pattern of a step that manages other hosts (`known_hosts`,
/// `openstack_aggregate`), before the engine resolves it.
pub(crate) fn hosts_pattern(args: &serde_yaml::Value) -> Option<&str> {
    args.get("hosts")?.as_str()
}

pub(crate) fn require_absolute(path: &str) -> Result<(), StepError> {
    if !path.starts_with('/') {
        return Err(StepError::Invalid(format!(
            "path `{path}` must be absolute"
        )));
    }
    Ok(())
}

/// Plan "regular file at `path` has `content` and `attrs`": one Write, or attrs only, or nothing.
pub(crate) fn plan_file_content(
    path: &str,
    current: &FileFact,
    content: impl Into<Content>,
    attrs: &Attrs,
    mask_ini: bool,
) -> Result<Outcome, StepError> {
    let content: Content = content.into();
    let old = match current {
        FileFact::Absent => None,
        FileFact::File { content, meta } => Some((content, meta)),
        FileFact::Dir { .. } => {
            return Err(StepError::Invalid(format!("{path} is a directory")));
        }
        FileFact::Link { target } => {
            return Err(StepError::Invalid(format!(
                "{path} is a symlink to {target}; novadock does not write through symlinks"
            )));
        }
        FileFact::Other => {
            return Err(StepError::Invalid(format!("{path} is not a regular file")));
        }
    };
    match old {
        Some((old, meta)) if *old == content => {
            if attrs_differ(attrs, meta) {
                Ok(Outcome {
                    actions: vec![Action::SetAttrs {
                        path: path.to_string(),
                        attrs: attrs.clone(),
                    }],
                    summary: format!("set {} on {path}", describe_attrs(attrs)),
                    ..Default::default()
                })
            } else {
                Ok(Outcome::unchanged(path.to_string()))
            }
        }
        _ => Ok(Outcome {
            diff: Some(content_diff(path, old.map(|(c, _)| c), &content, mask_ini)),
            summary: if old.is_some() {
                format!("edit {path}")
            } else {
                format!("create {path}")
            },
            actions: vec![Action::Write {
                path: path.to_string(),
                content,
                expect: expect_of(current),
                attrs: attrs.clone(),
            }],
            note: None,
        }),
    }
}

pub(crate) fn describe_attrs(a: &Attrs) -> String {
    let mut parts = Vec::new();
    if let Some(o) = &a.owner {
        parts.push(format!("owner {o}"));
    }
    if let Some(g) = &a.group {
        parts.push(format!("group {g}"));
    }
    if let Some(m) = &a.mode {
        parts.push(format!("mode {m}"));
    }
    parts.join(", ")
}

/// [`unified_diff`] of two contents, computed once per path and pair of contents: a run
/// makes the same change on many hosts.
fn content_diff(path: &str, old: Option<&Content>, new: &Content, mask_ini: bool) -> String {
    static MEMO: Memo<(String, String, String, bool), String> = Memo::new();
    let key = (
        path.to_string(),
        old.map_or_else(|| "absent".to_string(), |o| o.sha256_hex().to_string()),
        new.sha256_hex().to_string(),
        mask_ini,
    );
    MEMO.get_or(key, || {
        let before = old.map_or(&b""[..], |c| &c[..]);
        unified_diff(path, old.is_some(), before, new, mask_ini)
    })
}

/// A unified diff of a file; INI secrets are masked before diffing.
///
/// Only the changed window (plus context) is masked and diffed: config files are large and
/// their changes small, and a run plans the same files on every host.
pub(crate) fn unified_diff(
    path: &str,
    existed: bool,
    old: &[u8],
    new: &[u8],
    mask_ini: bool,
) -> String {
    let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return format!("binary content of {path} differs\n");
    };
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let same_head = crate::plan::common_head(&old_lines, &new_lines);
    let same_tail = crate::plan::common_tail(
        &old_lines,
        &new_lines,
        old_lines.len().min(new_lines.len()) - same_head,
    );
    const CONTEXT: usize = 3;
    let mut start = same_head.saturating_sub(CONTEXT);
    // Start on an option line, not inside a continuation: masking needs to see its option.
    while start > 0 && old_lines[start].starts_with([' ', '\t']) {
        start -= 1;
    }
    let cut_tail = same_tail.saturating_sub(CONTEXT);
    let window = |lines: &[&str]| lines[start..lines.len() - cut_tail].concat();
    let (old_w, new_w) = (window(&old_lines), window(&new_lines));
    let (old_w, new_w) = if mask_ini {
        (
            crate::ini::mask_secrets(&old_w),
            crate::ini::mask_secrets(&new_w),
        )
    } else {
        (old_w, new_w)
    };
    let diff = similar::TextDiff::from_lines(&old_w, &new_w);
    let from = if existed {
        path.to_string()
    } else {
        "/dev/null".into()
    };
    let text = diff
        .unified_diff()
        .context_radius(CONTEXT)
        .missing_newline_hint(true)
        .header(&from, path)
        .to_string();
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        match shift_hunk_header(line, start) {
            Some(h) => out.push_str(&h),
            None => out.push_str(line),
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// "@@ -a,b +c,d @@" of a diff of a window that starts `by` lines into the file.
fn shift_hunk_header(line: &str, by: usize) -> Option<String> {
    let rest = line.strip_prefix("@@ -")?;
    let (ranges, tail) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let shift = |r: &str| -> Option<String> {
        let (l, n) = match r.split_once(',') {
            Some((l, n)) => (l, Some(n)),
            None => (r, None),
        };
        let l: usize = l.parse().ok()?;
        Some(match n {
            Some(n) => format!("{},{n}", l + by),
            None => format!("{}", l + by),
        })
    };
    Some(format!("@@ -{} +{} @@{tail}", shift(old)?, shift(new)?))
}

/// A step with `loop:`: one instance per item, planned in order, each seeing the effects of
/// the ones before it, reported as one step.
pub(crate) struct Each {
    pub(crate) items: Vec<Box<dyn StepKind + Send + Sync>>,
}

impl StepKind for Each {
    fn probes(&self) -> Vec<Probe> {
        let mut p: Vec<Probe> = self.items.iter().flat_map(|s| s.probes()).collect();
        p.sort();
        p.dedup();
        p
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let mut facts = cx.facts.clone();
        let mut all = Outcome::default();
        let mut summaries = Vec::new();
        let mut notes = Vec::new();
        let mut diffs = String::new();
        for s in &self.items {
            let o = s.plan(&PlanCx {
                facts: &facts,
                renderer: cx.renderer,
                vars: cx.vars,
            })?;
            crate::plan::overlay(&mut facts, &o.actions);
            if o.changed() || summaries.is_empty() {
                summaries.push(o.summary.clone());
            }
            notes.extend(o.note.clone());
            if let Some(d) = &o.diff {
                diffs.push_str(d);
            }
            all.actions.extend(o.actions);
        }
        // Say what changes; when nothing does, name every item.
        all.summary = if all.actions.is_empty() {
            self.items.len().to_string() + " items"
        } else {
            summaries.retain(|s| !s.is_empty());
            summaries.join("; ")
        };
        all.diff = (!diffs.is_empty()).then_some(diffs);
        all.note = (!notes.is_empty()).then(|| notes.join("; "));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `diff` applied to `old` (hunk headers and context checked on the way).
    fn patch(old: &str, diff: &str) -> Result<String, String> {
        let old: Vec<&str> = old.split_inclusive('\n').collect();
        let mut out = String::new();
        let mut at = 0; // next old line (0-based) not yet copied
        let mut lines = diff.split_inclusive('\n').skip(2).peekable();
        while let Some(h) = lines.next() {
            let r = h.strip_prefix("@@ -").ok_or(format!("not a hunk: {h:?}"))?;
            let (o, _) = r.split_once(" +").ok_or("bad header")?;
            let (l, n) = o.split_once(',').unwrap_or((o, "1"));
            let (l, n): (usize, usize) = (l.parse().unwrap(), n.parse().unwrap());
            let first = if n == 0 { l } else { l - 1 };
            if first < at {
                return Err(format!("hunk goes back: {h:?}"));
            }
            out.extend(old[at..first].iter().copied());
            at = first;
            let mut seen = 0;
            while let Some(l) = lines.next_if(|l| !l.starts_with("@@")) {
                if l.starts_with('\\') {
                    continue;
                }
                let text = &l[1..];
                // "\ No newline at end of file" follows a line that had no newline.
                let text = if lines.peek().is_some_and(|n| n.starts_with('\\')) {
                    text.strip_suffix('\n').unwrap_or(text)
                } else {
                    text
                };
                match &l[..1] {
                    " " | "-" => {
                        if old.get(at) != Some(&text) {
                            return Err(format!("context/removed line {at} is not {text:?}"));
                        }
                        at += 1;
                        seen += 1;
                        if l.starts_with(' ') {
                            out.push_str(text);
                        }
                    }
                    "+" => out.push_str(text),
                    _ => return Err(format!("bad line {l:?}")),
                }
            }
            // The count is not checked: `similar` miscounts a hunk that ends in blank lines
            // (in whole-file diffs too); where a hunk starts and what it says is checked.
            let _ = (seen, n);
        }
        out.extend(old[at..].iter().copied());
        Ok(out)
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("[DEFAULT]\n".to_string()),
            "[a-c]{1,3} = [x-z]{0,3}\n",
            Just("\n".to_string()),
            Just("x".to_string()),
        ]
    }

    proptest! {
        /// The diff of the changed window, shifted, patches the whole old file into the new.
        #[test]
        fn windowed_diff_patches_old_into_new(
            lines in prop::collection::vec(line(), 0..60),
            edits in prop::collection::vec((0usize..60, 0usize..3, line()), 1..4),
        ) {
            let old = lines.concat();
            let mut new_lines = lines.clone();
            for (at, kind, text) in edits {
                let at = at.min(new_lines.len());
                match kind {
                    0 => new_lines.insert(at, text),
                    1 if at < new_lines.len() => { new_lines.remove(at); }
                    _ if at < new_lines.len() => new_lines[at] = text,
                    _ => new_lines.push(text),
                }
            }
            let new = new_lines.concat();
            let d = unified_diff("/f", true, old.as_bytes(), new.as_bytes(), false);
            if old == new {
                prop_assert_eq!(d, "\n");
            } else {
                prop_assert_eq!(patch(&old, &d), Ok(new));
            }
        }
    }

    /// A secret's continuation line at the top of the window is masked: the window starts
    /// at its option.
    #[test]
    fn continuation_of_a_secret_is_masked() {
        let mut old = String::from("[DEFAULT]\n");
        for i in 0..20 {
            old.push_str(&format!("opt{i} = v\n"));
        }
        old.push_str("password = first\n  second\n  third\n  fourth\n  fifth\n");
        let new = format!("{old}added = 1\n");
        let d = unified_diff("/f", true, old.as_bytes(), new.as_bytes(), true);
        assert!(!d.contains("fourth") && !d.contains("fifth"), "{d}");
        assert!(d.contains("+added = 1"), "{d}");
    }
}
