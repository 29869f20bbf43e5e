//! `openstack_flavor`: a Nova flavor with its size and extra specs (e.g. the docker flavors
//! that AggregateInstanceExtraSpecsFilter matches against the docker aggregate).

use super::{PlanCx, Scalar, StepError, StepKind};
use crate::facts::Probe;
use crate::openstack::Auth;
use crate::plan::{Action, Outcome};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenstackFlavor {
    pub(crate) name: String,
    /// MB
    pub(crate) ram: u64,
    /// GB
    pub(crate) disk: u64,
    pub(crate) vcpus: u64,
    #[serde(default)]
    pub(crate) properties: BTreeMap<String, Scalar>,
    /// Flavors are immutable: a flavor of this name with another size is only replaced
    /// (deleted and created again) when this is true.
    #[serde(default)]
    pub(crate) replace: bool,
    #[serde(flatten)]
    pub(crate) auth: Auth,
}

impl OpenstackFlavor {
    fn props(&self) -> BTreeMap<String, String> {
        self.properties
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "ram {} MB, disk {} GB, {} vCPU{}",
            self.ram,
            self.disk,
            self.vcpus,
            if self.vcpus == 1 { "" } else { "s" }
        );
        for (k, v) in self.props() {
            s.push_str(&format!(", {k}={v}"));
        }
        s
    }

    fn create(&self, replace_id: Option<&str>) -> Action {
        let args = serde_json::json!({
            "name": self.name, "ram": self.ram, "disk": self.disk, "vcpus": self.vcpus,
            "properties": self.props(), "replace_id": replace_id,
        });
        Action::Run {
            command: self.auth.change(
                &format!("openstack flavor create {}", self.name),
                &crate::remote::FLAVOR_CREATE,
                &args,
            ),
            systemd: false,
        }
    }
}

impl StepKind for OpenstackFlavor {
    fn validate(&self) -> Result<(), StepError> {
        self.auth.validate(&self.name).map_err(StepError::Invalid)
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::Cmd(self.auth.facts_probe())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let facts = self.auth.facts(cx.facts).map_err(StepError::Invalid)?;
        let name = &self.name;
        let Some(f) = facts.flavors.iter().find(|f| f.name == *name) else {
            return Ok(Outcome {
                actions: vec![self.create(None)],
                summary: format!("create flavor {name} ({})", self.describe()),
                ..Default::default()
            });
        };
        let mut drift = Vec::new();
        for (what, have, want) in [
            ("ram", f.ram, self.ram),
            ("disk", f.disk, self.disk),
            ("vcpus", f.vcpus, self.vcpus),
        ] {
            if have != want {
                drift.push(format!("{what} {have} → {want}"));
            }
        }
        if !drift.is_empty() {
            if !self.replace {
                return Err(StepError::Invalid(format!(
                    "flavor {name} exists with another size ({}); flavors cannot be changed in place: set `replace: true` to delete and re-create it (existing servers keep their size)",
                    drift.join(", ")
                )));
            }
            return Ok(Outcome {
                actions: vec![self.create(Some(&f.id))],
                summary: format!(
                    "replace flavor {name} ({}) with {}",
                    drift.join(", "),
                    self.describe()
                ),
                ..Default::default()
            });
        }
        let missing: BTreeMap<String, String> = self
            .props()
            .into_iter()
            .filter(|(k, v)| f.extra_specs.get(k) != Some(v))
            .collect();
        if missing.is_empty() {
            return Ok(Outcome::unchanged(format!("flavor {name}")));
        }
        let list: Vec<String> = missing.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let args = serde_json::json!({"id": f.id, "name": name, "properties": missing});
        Ok(Outcome {
            actions: vec![Action::Run {
                command: self.auth.change(
                    &format!("openstack flavor set {name}"),
                    &crate::remote::FLAVOR_SET,
                    &args,
                ),
                systemd: false,
            }],
            summary: format!("set properties of flavor {name}: {}", list.join(", ")),
            ..Default::default()
        })
    }
}
