//! `file`: a regular file with given content, a directory, a symlink, or nothing.

use super::{
    Mode, PlanCx, StepError, StepKind, attrs, describe_attrs, plan_file_content, require_absolute,
};
use crate::facts::{FileFact, Probe};
use crate::plan::{Action, Outcome, attrs_differ, expect_of};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    File,
    Directory,
    Absent,
    Link,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub(crate) path: String,
    /// Defaults to `file`.
    pub(crate) state: Option<State>,
    pub(crate) content: Option<String>,
    /// Target of a symlink (`state: link`).
    pub(crate) target: Option<String>,
    pub(crate) owner: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) mode: Option<Mode>,
}

impl File {
    fn state(&self) -> State {
        self.state.unwrap_or(State::File)
    }
}

impl StepKind for File {
    fn validate(&self) -> Result<(), StepError> {
        require_absolute(&self.path)?;
        let bad = |m: &str| Err(StepError::Invalid(format!("file {}: {m}", self.path)));
        match self.state() {
            State::File if self.content.is_none() => bad("`state: file` needs `content`"),
            State::Link if self.target.is_none() => bad("`state: link` needs `target`"),
            State::Directory | State::Absent if self.content.is_some() => {
                bad("`content` only goes with `state: file`")
            }
            s if s != State::Link && self.target.is_some() => {
                bad("`target` only goes with `state: link`")
            }
            _ => Ok(()),
        }
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::File(self.path.clone())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let path = &self.path;
        let fact = cx.facts.file(path);
        let want = attrs(&self.owner, &self.group, &self.mode);
        match self.state() {
            State::File => plan_file_content(
                path,
                fact,
                self.content.clone().unwrap_or_default().into_bytes(),
                &want,
                false,
            ),
            State::Directory => match fact {
                FileFact::Dir { meta } if attrs_differ(&want, meta) => Ok(Outcome {
                    actions: vec![Action::SetAttrs {
                        path: path.clone(),
                        attrs: want.clone(),
                    }],
                    summary: format!("set {} on {path}", describe_attrs(&want)),
                    ..Default::default()
                }),
                FileFact::Dir { .. } => Ok(Outcome::unchanged(path.clone())),
                FileFact::Absent => Ok(Outcome {
                    actions: vec![Action::Mkdir {
                        path: path.clone(),
                        attrs: want,
                    }],
                    summary: format!("create directory {path}"),
                    ..Default::default()
                }),
                _ => Err(StepError::Invalid(format!(
                    "{path} exists and is not a directory"
                ))),
            },
            State::Absent => match fact {
                FileFact::Absent => Ok(Outcome::unchanged(path.clone())),
                _ => Ok(Outcome {
                    actions: vec![Action::Remove {
                        path: path.clone(),
                        expect: expect_of(fact),
                    }],
                    summary: format!("remove {path}"),
                    ..Default::default()
                }),
            },
            State::Link => {
                let target = self.target.clone().unwrap_or_default();
                match fact {
                    FileFact::Link { target: t } if *t == target => {
                        Ok(Outcome::unchanged(path.clone()))
                    }
                    FileFact::Absent | FileFact::Link { .. } | FileFact::File { .. } => {
                        Ok(Outcome {
                            summary: format!("link {path} -> {target}"),
                            actions: vec![Action::Symlink {
                                path: path.clone(),
                                target,
                            }],
                            ..Default::default()
                        })
                    }
                    _ => Err(StepError::Invalid(format!(
                        "{path} exists and is not a symlink or a regular file"
                    ))),
                }
            }
        }
    }
}
