//! `openstack_aggregate`: a Nova host aggregate with metadata and member hosts (the `docker`
//! aggregate that AggregateInstanceExtraSpecsFilter matches flavors against).

use super::{PlanCx, Scalar, StepError, StepKind};
use crate::facts::Probe;
use crate::openstack::Auth;
use crate::plan::{Action, Outcome};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenstackAggregate {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) metadata: BTreeMap<String, Scalar>,
    /// nova-compute service host names. In a playbook this may be an inventory host pattern
    /// (e.g. `docker_computes`); the engine turns it into names (var `nova_host`, else the
    /// inventory name) before the step sees it.
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
    /// Remove members not listed (off by default: never remove hosts unless told).
    #[serde(default)]
    pub(crate) exclusive: bool,
    #[serde(flatten)]
    pub(crate) auth: Auth,
}

impl StepKind for OpenstackAggregate {
    fn validate(&self) -> Result<(), StepError> {
        self.auth.validate(&self.name).map_err(StepError::Invalid)
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::Cmd(self.auth.facts_probe())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let facts = self.auth.facts(cx.facts).map_err(StepError::Invalid)?;
        let known: Vec<&str> = facts
            .compute_hosts
            .iter()
            .map(|(h, _)| h.as_str())
            .collect();
        let unknown: Vec<&String> = self
            .hosts
            .iter()
            .filter(|h| !known.contains(&h.as_str()))
            .collect();
        if !unknown.is_empty() {
            return Err(StepError::Invalid(format!(
                "aggregate {}: unknown compute host{} {}: not a nova-compute service host (`openstack compute service list` has: {}); set the host's `nova_host` var if its Nova name differs from its inventory name",
                self.name,
                if unknown.len() == 1 { "" } else { "s" },
                unknown
                    .iter()
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                known.join(", ")
            )));
        }
        let want_meta: BTreeMap<String, String> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let existing = facts.aggregates.iter().find(|a| a.name == self.name);
        let (have_hosts, have_meta, id) = match existing {
            Some(a) => (a.hosts.clone(), a.metadata.clone(), Some(a.id.clone())),
            None => (vec![], BTreeMap::new(), None),
        };
        let meta: BTreeMap<String, String> = want_meta
            .into_iter()
            .filter(|(k, v)| have_meta.get(k) != Some(v))
            .collect();
        let add: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| !have_hosts.contains(h))
            .cloned()
            .collect();
        let remove: Vec<String> = if self.exclusive {
            have_hosts
                .iter()
                .filter(|h| !self.hosts.contains(h))
                .cloned()
                .collect()
        } else {
            vec![]
        };
        let name = &self.name;
        if id.is_some() && meta.is_empty() && add.is_empty() && remove.is_empty() {
            return Ok(Outcome::unchanged(format!("aggregate {name}")));
        }
        let mut what = Vec::new();
        if id.is_none() {
            what.push("create".to_string());
        }
        if !meta.is_empty() {
            let m: Vec<String> = meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
            what.push(format!("set metadata {}", m.join(", ")));
        }
        for h in &add {
            what.push(format!("add host {h}"));
        }
        for h in &remove {
            what.push(format!("remove host {h}"));
        }
        let args = serde_json::json!({
            "id": id, "name": name, "metadata": meta, "add": add, "remove": remove,
        });
        Ok(Outcome {
            actions: vec![Action::Run {
                command: self.auth.change(
                    &format!("openstack aggregate {name}"),
                    &crate::remote::AGGREGATE,
                    &args,
                ),
                systemd: false,
            }],
            summary: format!("aggregate {name}: {}", what.join(", ")),
            ..Default::default()
        })
    }
}

/// Turn a `hosts:` inventory pattern (e.g. `docker_computes`) into nova host names: each
/// host's `nova_host` var, else its inventory name. Under `--limit`, only the limited hosts
/// are added, and nothing is removed.
pub(crate) fn resolve_hosts(
    args: &mut serde_yaml::Value,
    inventory: &crate::inventory::Inventory,
    limit: Option<&std::collections::BTreeSet<String>>,
) {
    let Some(pattern) = args
        .get("hosts")
        .and_then(|h| h.as_str())
        .map(str::to_string)
    else {
        return;
    };
    let hosts = inventory.select_steps(&pattern);
    let names: Vec<serde_yaml::Value> = hosts
        .iter()
        .filter(|h| limit.is_none_or(|l| l.contains(&h.name)))
        .map(|h| h.nova_host().into())
        .collect();
    args["hosts"] = serde_yaml::Value::Sequence(names);
    if limit.is_some() {
        args["exclusive"] = false.into();
    }
}

/// Inventory hosts named by a step's `hosts:` pattern, for `--limit` to pull in the
/// controller step that manages their membership.
pub(crate) fn member_pattern(args: &serde_yaml::Value) -> Option<&str> {
    args.get("hosts")?.as_str().filter(|p| !p.contains("{{"))
}
