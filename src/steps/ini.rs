//! `ini`: one option of an oslo-style INI file, edited in place, losslessly.
//!
//! With `known: glance.container_formats` (or another name in [`openstack::KNOWN`]) the
//! section, option, deprecated aliases and built-in default come from novadock's release
//! table, for the release given or detected on the host.

use super::{
    Mode, PlanCx, Scalar, StepError, StepKind, attrs, plan_file_content, require_absolute,
};
use crate::facts::{Content, Memo};
use crate::facts::{FileFact, Probe};
use crate::ini::{EditOutcome, IniDoc, IniEdit, IniError, IniOp};
use crate::openstack::{self, Release};
use crate::plan::Outcome;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Alias {
    pub(crate) section: String,
    pub(crate) option: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ini {
    pub(crate) path: String,
    pub(crate) section: Option<String>,
    pub(crate) option: Option<String>,
    /// A release-aware option from novadock's table, instead of section/option/aliases.
    pub(crate) known: Option<String>,
    /// For `known`: an OpenStack release name, or `auto` (detected on the host).
    pub(crate) release: Option<String>,
    pub(crate) value: Option<Scalar>,
    pub(crate) list_contains: Option<Vec<Scalar>>,
    #[serde(default)]
    pub(crate) absent: bool,
    /// The option's effective value when no line sets it (the service's built-in default).
    pub(crate) default: Option<Scalar>,
    #[serde(default)]
    pub(crate) aliases: Vec<Alias>,
    pub(crate) owner: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) mode: Option<Mode>,
}

impl Ini {
    fn op(&self) -> IniOp {
        if let Some(v) = &self.value {
            IniOp::Value(v.0.clone())
        } else if let Some(items) = &self.list_contains {
            IniOp::ListContains(items.iter().map(|s| s.0.clone()).collect())
        } else {
            IniOp::Absent
        }
    }

    fn auto_release(&self) -> bool {
        self.known.is_some() && self.release.as_deref().is_none_or(|r| r == "auto")
    }

    /// The edit, and for `known` options a note saying which release decided it.
    fn edit(&self, cx: &PlanCx<'_>) -> Result<(IniEdit, Option<String>), StepError> {
        let Some(known) = &self.known else {
            let edit = IniEdit {
                section: self.section.clone().unwrap_or_default(),
                option: self.option.clone().unwrap_or_default(),
                op: self.op(),
                default: self.default.as_ref().map(|d| d.0.clone()),
                aliases: self
                    .aliases
                    .iter()
                    .map(|a| (a.section.clone(), a.option.clone()))
                    .collect(),
            };
            return Ok((edit, None));
        };
        let (release, how) = openstack::resolve_release(
            if self.auto_release() {
                None
            } else {
                self.release.as_deref()
            },
            cx.facts,
            &self.path,
            openstack::Project::of_known(known),
        )
        .map_err(StepError::Invalid)?;
        let k = openstack::known(known, release).expect("validated in validate()");
        let edit = IniEdit {
            section: k.section.to_string(),
            option: k.option.to_string(),
            op: self.op(),
            default: Some(
                self.default
                    .as_ref()
                    .map_or(k.default.clone(), |d| d.0.clone()),
            ),
            aliases: k
                .aliases
                .iter()
                .map(|(s, o)| (s.to_string(), o.to_string()))
                .collect(),
        };
        Ok((edit, Some(how)))
    }
}

impl StepKind for Ini {
    fn validate(&self) -> Result<(), StepError> {
        require_absolute(&self.path)?;
        let n = self.value.is_some() as u8 + self.list_contains.is_some() as u8 + self.absent as u8;
        if n != 1 {
            return Err(StepError::Invalid(
                "give exactly one of `value`, `list_contains` or `absent: true`".into(),
            ));
        }
        match &self.known {
            Some(k) => {
                if openstack::known(k, Release::named("zed").expect("zed")).is_none() {
                    return Err(StepError::Invalid(format!(
                        "unknown `known: {k}` (known: {})",
                        openstack::KNOWN.join(", ")
                    )));
                }
                if self.section.is_some() || self.option.is_some() || !self.aliases.is_empty() {
                    return Err(StepError::Invalid(
                        "`known` replaces `section`, `option` and `aliases`; give one or the other"
                            .into(),
                    ));
                }
            }
            None => {
                if self.section.is_none() || self.option.is_none() {
                    return Err(StepError::Invalid(
                        "give `section` and `option` (or `known`)".into(),
                    ));
                }
                if self.release.is_some() {
                    return Err(StepError::Invalid(
                        "`release` only goes with `known`".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn probes(&self) -> Vec<Probe> {
        let mut p = vec![Probe::File(self.path.clone())];
        if self.auto_release() {
            p.push(Probe::Cmd(openstack::RELEASE_PROBE.into()));
        }
        p
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let fact = cx.facts.file(&self.path);
        let text = match fact {
            FileFact::File { content, .. } => std::str::from_utf8(content)
                .map_err(|_| StepError::Invalid(format!("{} is not UTF-8 text", self.path)))?,
            // plan_file_content reports what is wrong with anything but a file or nothing
            _ => "",
        };
        let (edit, release_note) = self.edit(cx)?;
        let (outcome, new_text) = edited(fact, text, &edit).map_err(|source| StepError::Ini {
            path: self.path.clone(),
            source,
        })?;
        let note = match (outcome.note, release_note) {
            (Some(n), Some(r)) => Some(format!("{n}; {r}")),
            (n, r) => n.or(r),
        };
        let target = format!("[{}] {} in {}", edit.section, edit.option, self.path);
        if !outcome.changed && matches!(fact, FileFact::Absent) {
            // Nothing to set (e.g. satisfied by the default): do not create an empty file.
            return Ok(Outcome {
                note,
                ..Outcome::unchanged(target)
            });
        }
        let mut o = plan_file_content(
            &self.path,
            fact,
            new_text,
            &attrs(&self.owner, &self.group, &self.mode),
            true,
        )?;
        if outcome.changed {
            o.summary = format!("{} {target}", verb(&edit.op));
        } else if !o.changed() {
            o.summary = target;
        }
        o.note = note;
        Ok(o)
    }
}

type Edited = Result<(EditOutcome, Content), IniError>;

/// `edit` applied to `text` (the content of `fact`). A run makes the same edit of the same
/// file on many hosts: the result is computed once per content and edit.
fn edited(fact: &FileFact, text: &str, edit: &IniEdit) -> Edited {
    let compute = || -> Edited {
        let mut doc = IniDoc::parse(text);
        let outcome = doc.apply(edit)?;
        Ok((outcome, Content::from(doc.to_text().into_bytes())))
    };
    let FileFact::File { content, .. } = fact else {
        return compute();
    };
    static MEMO: Memo<(String, String), Edited> = Memo::new();
    MEMO.get_or(
        (content.sha256_hex().to_string(), format!("{edit:?}")),
        compute,
    )
}

fn verb(op: &IniOp) -> &'static str {
    match op {
        IniOp::Value(_) => "set",
        IniOp::ListContains(_) => "extend",
        IniOp::Absent => "remove",
    }
}
