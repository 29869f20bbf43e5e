//! Step kinds: one file each. A step turns facts into an [`Outcome`]; it never touches a host.

pub mod authorized_key;
pub mod command;
pub mod copy;
pub mod file;
pub mod glance_image;
pub mod ini;
pub mod known_hosts;
pub mod nova_driver;
pub mod openstack_aggregate;
pub mod openstack_flavor;
pub mod package;
pub mod service;
pub mod template;
pub mod toml;
pub mod user_groups;

use crate::facts::{Facts, FileFact, Probe};
use crate::plan::{Action, Attrs, Outcome, attrs_differ, expect_of};
use crate::render::{RenderError, Renderer};
use serde::{Deserialize, Deserializer};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
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

pub struct PlanCx<'a> {
    pub facts: &'a Facts,
    pub renderer: &'a Renderer,
    pub vars: &'a minijinja::Value,
}

pub trait StepKind: Send + Sync {
    /// What this step needs to know about the host.
    fn probes(&self) -> Vec<Probe>;
    /// What would change; pure: reads `cx.facts` only.
    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError>;
    /// Checks serde cannot express (one of several keys, absolute paths).
    fn validate(&self) -> Result<(), StepError> {
        Ok(())
    }
}

/// The names of the step kinds, as playbooks spell them.
pub const KINDS: &[&str] = &[
    "ini",
    "template",
    "file",
    "toml",
    "package",
    "service",
    "user_groups",
    "command",
    "copy",
    "openstack_flavor",
    "openstack_aggregate",
    "authorized_key",
    "known_hosts",
    "nova_driver",
    "glance_image",
];

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Args(#[from] serde_yaml::Error),
    #[error(transparent)]
    Step(#[from] StepError),
}

/// Build a step from its (already rendered) YAML arguments.
pub fn build(
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
        "nova_driver" => Box::new(serde_yaml::from_value::<nova_driver::NovaDriver>(args)?),
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
pub struct Scalar(pub String);

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
pub struct Mode(pub String);

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
pub fn attrs(owner: &Option<String>, group: &Option<String>, mode: &Option<Mode>) -> Attrs {
    Attrs {
        owner: owner.clone(),
        group: group.clone(),
        mode: mode.as_ref().map(|m| m.0.clone()),
    }
}

pub fn require_absolute(path: &str) -> Result<(), StepError> {
    if !path.starts_with('/') {
        return Err(StepError::Invalid(format!(
            "path `{path}` must be absolute"
        )));
    }
    Ok(())
}

/// Plan "regular file at `path` has `content` and `attrs`": one Write, or attrs only, or nothing.
pub fn plan_file_content(
    path: &str,
    current: &FileFact,
    content: Vec<u8>,
    attrs: &Attrs,
    mask_ini: bool,
) -> Result<Outcome, StepError> {
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
        _ => {
            let before = old.map(|(c, _)| c.as_slice()).unwrap_or(b"");
            Ok(Outcome {
                diff: Some(unified_diff(
                    path,
                    old.is_some(),
                    before,
                    &content,
                    mask_ini,
                )),
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
            })
        }
    }
}

pub fn describe_attrs(a: &Attrs) -> String {
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

/// A unified diff of a file; INI secrets are masked before diffing.
pub fn unified_diff(path: &str, existed: bool, old: &[u8], new: &[u8], mask_ini: bool) -> String {
    let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return format!("binary content of {path} differs\n");
    };
    let (old, new) = if mask_ini {
        (crate::ini::mask_secrets(old), crate::ini::mask_secrets(new))
    } else {
        (old.to_string(), new.to_string())
    };
    let diff = similar::TextDiff::from_lines(&old, &new);
    let from = if existed {
        path.to_string()
    } else {
        "/dev/null".into()
    };
    let mut out = diff
        .unified_diff()
        .context_radius(3)
        .missing_newline_hint(true)
        .header(&from, path)
        .to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// A step with `loop:`: one instance per item, planned in order, each seeing the effects of
/// the ones before it, reported as one step.
pub struct Each {
    pub items: Vec<Box<dyn StepKind + Send + Sync>>,
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
