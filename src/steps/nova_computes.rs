//! `nova_computes`: the cloud runs what was configured. Every listed nova-compute host is up
//! and its hypervisor reports `hypervisor_type` (after the bootstrap: `docker`). A config
//! file that nova-compute does not read changes nothing it reports, so apply fails here,
//! naming the host and what it found, instead of passing silently.
//!
//! The plan reads the controller's OpenStack facts: already so, nothing to do; else the
//! check runs in apply, waiting up to `timeout` seconds (the computes restart meanwhile).

use super::{PlanCx, StepError, StepKind};
use crate::facts::Probe;
use crate::openstack::{Auth, CloudFacts};
use crate::plan::{Action, Outcome};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NovaComputes {
    /// nova-compute service host names. In a playbook this may be an inventory host pattern
    /// (e.g. `docker_computes`), resolved as `openstack_aggregate`'s `hosts`.
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
    pub(crate) hypervisor_type: String,
    /// Seconds apply waits for every host to be so.
    #[serde(default = "default_timeout")]
    pub(crate) timeout: super::Scalar,
    #[serde(flatten)]
    pub(crate) auth: Auth,
}

fn default_timeout() -> super::Scalar {
    super::Scalar("300".into())
}

/// What is wrong with `host` as the facts show it, if anything: `None` when it is up with
/// hypervisor type `want`. (src/remote/computes-check.py words the same cases in apply.)
pub(crate) fn found(facts: &CloudFacts, host: &str, want: &str) -> Option<String> {
    let state = facts
        .compute_hosts
        .iter()
        .find(|(h, _)| h == host)
        .map(|(_, s)| s.as_str());
    let kind = facts.hypervisors.get(host).map(|(t, _)| t.as_str());
    match (state, kind) {
        (None, _) => Some("no nova-compute service".into()),
        (Some(s), _) if s != "up" => Some(format!("nova-compute is {s}")),
        (Some(_), None) => Some(
            "nova-compute is up, no hypervisor reported (is the host mapped to a cell?)".into(),
        ),
        (Some(_), Some(t)) if !t.eq_ignore_ascii_case(want) => {
            Some(format!("nova-compute is up, hypervisor type `{t}`"))
        }
        _ => None,
    }
}

impl NovaComputes {
    fn timeout_secs(&self) -> Result<u32, StepError> {
        self.timeout
            .0
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|s| (1..=3600).contains(s))
            .ok_or_else(|| {
                StepError::Invalid(format!(
                    "`timeout` must be a number of seconds from 1 to 3600, got `{}`",
                    self.timeout.0
                ))
            })
    }
}

impl StepKind for NovaComputes {
    fn validate(&self) -> Result<(), StepError> {
        self.auth
            .validate(&self.hypervisor_type)
            .map_err(|e| StepError::Invalid(e.replace("`name`", "`hypervisor_type`")))?;
        self.timeout_secs().map(|_| ())
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::Cmd(self.auth.facts_probe())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let want = &self.hypervisor_type;
        let list = self.hosts.join(", ");
        if self.hosts.is_empty() {
            return Ok(Outcome::unchanged(format!(
                "no nova-compute hosts to check for hypervisor type {want}"
            )));
        }
        let facts = self.auth.facts(cx.facts).map_err(StepError::Invalid)?;
        let now: Vec<String> = self
            .hosts
            .iter()
            .filter_map(|h| found(&facts, h, want).map(|f| format!("{h}: {f}")))
            .collect();
        if now.is_empty() {
            return Ok(Outcome::unchanged(format!(
                "nova-compute up with hypervisor type {want} on {list}"
            )));
        }
        let secs = self.timeout_secs()?;
        let args = serde_json::json!({
            "hosts": self.hosts, "hypervisor_type": want, "timeout": secs,
        });
        Ok(Outcome {
            actions: vec![Action::Run {
                command: self.auth.change_bounded(
                    &format!("check nova-compute on {list}"),
                    &crate::remote::COMPUTES_CHECK,
                    &args,
                    secs + 120,
                ),
                systemd: false,
            }],
            summary: format!(
                "check after the changes that nova-compute is up with hypervisor type {want} on {list} (now {}; waits up to {secs} s)",
                now.join("; ")
            ),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{CmdFact, Facts};

    fn facts(json: &str) -> CloudFacts {
        crate::openstack::cloud_facts(Some(&CmdFact {
            code: 0,
            stdout: json.into(),
        }))
        .unwrap()
    }

    #[test]
    fn what_is_wrong_with_a_host() {
        let f = facts(
            r#"{"compute_hosts": [["cmp1", "up"], ["cmp2", "down"], ["cmp3", "up"], ["cmp4", "up"]], "hypervisors": {"cmp1": ["docker", 0], "cmp2": ["docker", 0], "cmp3": ["fake", 0]}}"#,
        );
        assert_eq!(found(&f, "cmp1", "docker"), None);
        assert_eq!(found(&f, "cmp2", "docker").unwrap(), "nova-compute is down");
        assert_eq!(
            found(&f, "cmp3", "docker").unwrap(),
            "nova-compute is up, hypervisor type `fake`"
        );
        assert_eq!(
            found(&f, "cmp4", "docker").unwrap(),
            "nova-compute is up, no hypervisor reported (is the host mapped to a cell?)"
        );
        assert_eq!(
            found(&f, "cmp9", "docker").unwrap(),
            "no nova-compute service"
        );
    }

    #[test]
    fn the_plan_checks_in_apply_only_what_is_not_so_yet() {
        let step = |yaml: &str| -> NovaComputes { serde_yaml::from_str(yaml).unwrap() };
        let s = step("{ hosts: [cmp1, cmp3], hypervisor_type: docker, timeout: 60 }");
        let mut f = Facts::default();
        let probe = s.auth.facts_probe();
        let renderer = crate::render::Renderer::new(
            std::sync::Arc::new(crate::assets::Templates::embedded_only()),
            Default::default(),
        );
        let vars = minijinja::Value::from(());
        let mut plan = |stdout: &str| {
            f.cmds.insert(
                probe.clone(),
                CmdFact {
                    code: 0,
                    stdout: stdout.into(),
                },
            );
            s.plan(&PlanCx {
                facts: &f,
                renderer: &renderer,
                vars: &vars,
            })
            .unwrap()
        };
        let o = plan(
            r#"{"compute_hosts": [["cmp1", "up"], ["cmp3", "up"]], "hypervisors": {"cmp1": ["docker", 0], "cmp3": ["fake", 0]}}"#,
        );
        assert_eq!(
            o.summary,
            "check after the changes that nova-compute is up with hypervisor type docker on cmp1, cmp3 (now cmp3: nova-compute is up, hypervisor type `fake`; waits up to 60 s)"
        );
        assert_eq!(o.actions.len(), 1);
        let o = plan(
            r#"{"compute_hosts": [["cmp1", "up"], ["cmp3", "up"]], "hypervisors": {"cmp1": ["docker", 0], "cmp3": ["docker", 0]}}"#,
        );
        assert!(o.actions.is_empty());
        assert!(
            step("{ hosts: [cmp1], hypervisor_type: docker, timeout: soon }")
                .validate()
                .is_err()
        );
    }
}
