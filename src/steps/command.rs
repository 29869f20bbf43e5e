//! `command`: the escape hatch. Guarded by `creates:` (a path) and/or `unless:` (a read-only
//! check command); "changed" only when it ran.

use super::{PlanCx, StepError, StepKind};
use crate::facts::{FileFact, Probe};
use crate::plan::{Action, Outcome};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Command {
    /// Run by `sh`. Every `{{ value }}` in it is inserted shell-quoted, so an inventory value
    /// is always one literal word.
    pub(crate) cmd: String,
    pub(crate) creates: Option<String>,
    /// Runs during plan too, so it must not change anything. Values are quoted as in `cmd`.
    pub(crate) unless: Option<String>,
}

impl StepKind for Command {
    fn validate(&self) -> Result<(), StepError> {
        if self.cmd.trim().is_empty() {
            return Err(StepError::Invalid("`cmd` is empty".into()));
        }
        Ok(())
    }

    fn probes(&self) -> Vec<Probe> {
        let mut p = Vec::new();
        if let Some(c) = &self.creates {
            p.push(Probe::File(c.clone()));
        }
        if let Some(u) = &self.unless {
            p.push(Probe::Cmd(u.clone()));
        }
        p
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let first_line = self.cmd.lines().next().unwrap_or("").trim();
        if let Some(c) = &self.creates
            && !matches!(cx.facts.file(c), FileFact::Absent)
        {
            return Ok(Outcome::unchanged(format!("{first_line} ({c} exists)")));
        }
        if let Some(u) = &self.unless
            && cx.facts.cmd(u).is_some_and(|f| f.code == 0)
        {
            return Ok(Outcome::unchanged(format!(
                "{first_line} (unless: check passed)"
            )));
        }
        Ok(Outcome {
            actions: vec![Action::Run {
                command: self.cmd.clone(),
                systemd: false,
            }],
            summary: format!("run {first_line}"),
            ..Default::default()
        })
    }
}
