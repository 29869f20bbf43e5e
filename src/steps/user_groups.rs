//! `user_groups`: a user is in supplementary groups — append-only (`usermod -aG`, never `-G`,
//! which would drop every group not listed).

use super::{PlanCx, StepError, StepKind};
use crate::facts::Probe;
use crate::plan::{Action, Outcome};
use crate::shell::quote;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserGroups {
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
}

impl UserGroups {
    fn probe(&self) -> String {
        format!("id -nG -- {}", quote(&self.user))
    }
}

impl StepKind for UserGroups {
    fn validate(&self) -> Result<(), StepError> {
        if self.groups.iter().any(|g| g.is_empty() || g.contains(',')) {
            return Err(StepError::Invalid("bad group name".into()));
        }
        Ok(())
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::Cmd(self.probe())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let fact = cx.facts.cmd(&self.probe());
        let current: Vec<&str> = match fact {
            Some(f) if f.code == 0 => f.stdout.split_whitespace().collect(),
            // A user created by an earlier step of this run: plan all groups.
            _ => vec![],
        };
        let missing: Vec<&String> = self
            .groups
            .iter()
            .filter(|g| !current.contains(&g.as_str()))
            .collect();
        if missing.is_empty() {
            return Ok(Outcome::unchanged(format!("groups of {}", self.user)));
        }
        let list = missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Outcome {
            actions: vec![Action::Run {
                command: format!("usermod -aG {} -- {}", quote(&list), quote(&self.user)),
                systemd: false,
            }],
            summary: format!("add {} to {}", self.user, list.replace(',', ", ")),
            ..Default::default()
        })
    }
}
