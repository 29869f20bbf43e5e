//! `service`: a systemd unit enabled/disabled and started/stopped. Restarts happen only
//! through handlers (`state: restarted` is for handlers).

use super::{PlanCx, StepError, StepKind};
use crate::facts::Probe;
use crate::plan::{Action, Outcome};
use crate::shell::quote;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) enabled: Option<bool>,
    pub(crate) state: Option<State>,
    #[serde(skip)]
    pub(crate) as_handler: bool,
}

impl Service {
    fn probe(&self) -> String {
        let n = quote(&self.name);
        format!("systemctl is-enabled {n}; echo '|'; systemctl is-active {n}")
    }
}

impl StepKind for Service {
    fn validate(&self) -> Result<(), StepError> {
        if self.name.is_empty() || self.name.starts_with('-') {
            return Err(StepError::Invalid(format!("bad unit name `{}`", self.name)));
        }
        match self.state {
            Some(State::Restarted | State::Reloaded) if !self.as_handler => {
                Err(StepError::Invalid(format!(
                    "{}: `state: restarted`/`reloaded` belongs in a handler, notified by the steps that change its config",
                    self.name
                )))
            }
            None if self.enabled.is_none() => Err(StepError::Invalid(format!(
                "{}: give `enabled` and/or `state`",
                self.name
            ))),
            _ => Ok(()),
        }
    }

    fn probes(&self) -> Vec<Probe> {
        if self.as_handler {
            return vec![];
        }
        vec![Probe::Cmd(self.probe())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let n = quote(&self.name);
        let mut cmds = Vec::new();
        let mut what = Vec::new();
        if self.as_handler {
            let verb = match self.state {
                Some(State::Reloaded) => "reload",
                Some(State::Stopped) => "stop",
                Some(State::Started) => "start",
                _ => "restart",
            };
            return Ok(Outcome {
                actions: vec![Action::Run {
                    command: format!("systemctl {verb} {n}"),
                    systemd: true,
                }],
                summary: format!("{verb} {}", self.name),
                ..Default::default()
            });
        }
        let out = cx
            .facts
            .cmd(&self.probe())
            .map(|c| c.stdout.clone())
            .unwrap_or_default();
        let (enabled, active) = out.split_once('|').unwrap_or(("", ""));
        let (enabled, active) = (enabled.trim(), active.trim());
        match self.enabled {
            Some(true)
                if !matches!(enabled, "enabled" | "enabled-runtime" | "static" | "alias") =>
            {
                cmds.push(format!("systemctl enable {n}"));
                what.push("enable");
            }
            Some(false) if matches!(enabled, "enabled" | "enabled-runtime") => {
                cmds.push(format!("systemctl disable {n}"));
                what.push("disable");
            }
            _ => {}
        }
        match self.state {
            Some(State::Started) if active != "active" => {
                cmds.push(format!("systemctl start {n}"));
                what.push("start");
            }
            Some(State::Stopped) if matches!(active, "active" | "activating" | "reloading") => {
                cmds.push(format!("systemctl stop {n}"));
                what.push("stop");
            }
            _ => {}
        }
        if cmds.is_empty() {
            return Ok(Outcome::unchanged(format!("service {}", self.name)));
        }
        Ok(Outcome {
            actions: vec![Action::Run {
                command: cmds.join("\n"),
                systemd: true,
            }],
            summary: format!("{} {}", what.join(" and "), self.name),
            ..Default::default()
        })
    }
}
