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

/// The docker aggregate's hosts that still hold instances of another driver: their
/// compute_driver is about to become Docker's, and the new driver would not know those
/// instances (they could no longer be stopped, migrated or deleted through Nova). `Err`
/// names each with its count; a host Nova does not know yet, or already of type docker, passes.
pub(crate) fn switch_guard(
    aggregate: &str,
    hosts: &[String],
    hypervisors: &BTreeMap<String, (String, u64)>,
) -> Result<(), String> {
    let busy: Vec<String> = hosts
        .iter()
        .filter_map(|h| {
            let (kind, n) = hypervisors.get(h)?;
            (!kind.eq_ignore_ascii_case("docker") && *n > 0).then(|| {
                format!(
                    "{h} still hosts {n} instance{} of its {kind} driver",
                    if *n == 1 { "" } else { "s" }
                )
            })
        })
        .collect();
    if busy.is_empty() {
        return Ok(());
    }
    Err(format!(
        "aggregate {aggregate}: {}: switching its compute_driver to Docker would leave them unmanaged (the Docker driver does not know them: they could no longer be stopped, migrated or deleted through Nova). Nothing was changed.\nhint: move them off first: `openstack compute service set --disable HOST nova-compute`, then `openstack server migrate --live-migration` each one (`openstack server evacuate` if the host is down); or take the host out of docker_computes",
        busy.join("; ")
    ))
}

/// What isolating the aggregate changes for what the cloud has: set when this run adds a
/// `trait:X=required` to its metadata (placement then leaves its hosts to requests for X).
/// Flavors scoped to the aggregate (each `aggregate_instance_extra_specs:` key it matches) are
/// its own, and the flavor step gives them the trait; the others lose its hosts. Docker images
/// without `hypervisor_type` are not kept off other hosts by ImagePropertiesFilter.
pub(crate) fn isolation_note(
    name: &str,
    changing: &BTreeMap<String, String>,
    metadata: &BTreeMap<String, Scalar>,
    facts: &crate::openstack::CloudFacts,
) -> Option<String> {
    let trait_key = changing
        .iter()
        .find(|(k, v)| k.starts_with("trait:") && v.as_str() == "required")?
        .0;
    let scoped = |f: &crate::openstack::Flavor| {
        let specs: Vec<(&str, &String)> = f
            .extra_specs
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("aggregate_instance_extra_specs:")?, v)))
            .collect();
        !specs.is_empty()
            && specs
                .iter()
                .all(|(k, v)| metadata.get(*k).is_some_and(|m| &m.0 == *v))
    };
    let flavors: Vec<&str> = facts
        .flavors
        .iter()
        .filter(|f| f.extra_specs.get(trait_key).map(String::as_str) != Some("required"))
        .filter(|f| !scoped(f))
        .map(|f| f.name.as_str())
        .collect();
    let images: Vec<String> = facts
        .docker_images
        .iter()
        .filter(|i| i.hypervisor_type.is_none())
        .map(|i| i.name.clone().unwrap_or_else(|| i.id.clone()))
        .collect();
    let mut parts = vec![format!(
        "isolation: the hosts of aggregate {name} will take only flavors and images with {trait_key}=required"
    )];
    if !flavors.is_empty() {
        parts.push(format!(
            "flavors that can no longer be scheduled there: {}",
            flavors.join(", ")
        ));
    }
    if !images.is_empty() {
        parts.push(format!(
            "docker images without hypervisor_type=docker, which a flavor without the trait can still put on other hypervisors: {} (`openstack image set --property hypervisor_type=docker IMAGE`)",
            images.join(", ")
        ));
    }
    Some(parts.join("; "))
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
        if self.metadata.get("hypervisor_type").map(|v| v.0.as_str()) == Some("docker") {
            switch_guard(&self.name, &self.hosts, &facts.hypervisors)
                .map_err(StepError::Invalid)?;
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
        let note = isolation_note(name, &meta, &self.metadata, &facts);
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
            note,
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
    let Some(pattern) = super::hosts_pattern(args).map(str::to_string) else {
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
    super::hosts_pattern(args).filter(|p| !p.contains("{{"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{CmdFact, Facts};

    fn load(pairs: &[(&str, &str, u64)]) -> BTreeMap<String, (String, u64)> {
        pairs
            .iter()
            .map(|(h, t, n)| (h.to_string(), (t.to_string(), *n)))
            .collect()
    }

    #[test]
    fn a_host_with_instances_of_another_driver_is_refused() {
        let hosts = vec!["cmp1".to_string(), "kvm1".to_string(), "kvm2".to_string()];
        // cmp1 already runs Docker; kvm2 is empty; a host Nova does not know yet passes.
        let ok = load(&[("cmp1", "docker", 4), ("kvm1", "QEMU", 0)]);
        assert_eq!(switch_guard("docker", &hosts, &ok), Ok(()));
        let busy = load(&[
            ("cmp1", "docker", 4),
            ("kvm1", "QEMU", 3),
            ("kvm2", "QEMU", 1),
        ]);
        assert_eq!(
            switch_guard("docker", &hosts, &busy).unwrap_err(),
            "aggregate docker: kvm1 still hosts 3 instances of its QEMU driver; kvm2 still hosts 1 instance of its QEMU driver: switching its compute_driver to Docker would leave them unmanaged (the Docker driver does not know them: they could no longer be stopped, migrated or deleted through Nova). Nothing was changed.\nhint: move them off first: `openstack compute service set --disable HOST nova-compute`, then `openstack server migrate --live-migration` each one (`openstack server evacuate` if the host is down); or take the host out of docker_computes"
        );
    }

    /// Isolating the docker aggregate names the flavors it keeps off its hosts (not the
    /// docker flavors, scoped to it) and the docker images ImagePropertiesFilter cannot place.
    #[test]
    fn isolating_warns_about_flavors_and_images() {
        let facts: crate::openstack::CloudFacts = serde_json::from_str(
            r#"{"flavors": [
                {"name": "m1.tiny", "id": "1", "ram": 64, "disk": 0, "vcpus": 1, "extra_specs": {}},
                {"name": "d1.small", "id": "2", "ram": 64, "disk": 0, "vcpus": 1, "extra_specs": {"aggregate_instance_extra_specs:hypervisor_type": "docker"}},
                {"name": "k1.small", "id": "3", "ram": 64, "disk": 0, "vcpus": 1, "extra_specs": {"aggregate_instance_extra_specs:hypervisor_type": "kvm"}}],
              "docker_images": [{"name": "old", "id": "a", "status": "active"},
                {"name": "new", "id": "b", "status": "active", "hypervisor_type": "docker"}]}"#,
        )
        .unwrap();
        let meta: BTreeMap<String, Scalar> = [
            ("hypervisor_type", "docker"),
            ("trait:CUSTOM_NOVADOCK_DOCKER", "required"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Scalar(v.to_string())))
        .collect();
        let changing: BTreeMap<String, String> = [(
            "trait:CUSTOM_NOVADOCK_DOCKER".to_string(),
            "required".to_string(),
        )]
        .into();
        assert_eq!(
            isolation_note("docker", &changing, &meta, &facts).unwrap(),
            "isolation: the hosts of aggregate docker will take only flavors and images with trait:CUSTOM_NOVADOCK_DOCKER=required; flavors that can no longer be scheduled there: m1.tiny, k1.small; docker images without hypervisor_type=docker, which a flavor without the trait can still put on other hypervisors: old (`openstack image set --property hypervisor_type=docker IMAGE`)"
        );
        // Already isolated: nothing to say.
        assert_eq!(
            isolation_note("docker", &BTreeMap::new(), &meta, &facts),
            None
        );
    }

    /// The plan reads the counts from the controller's probe (its JSON as FACTS_PY prints it),
    /// and only the docker aggregate guards.
    #[test]
    fn the_plan_of_the_docker_aggregate_refuses() {
        let step = |yaml: &str| -> OpenstackAggregate { serde_yaml::from_str(yaml).unwrap() };
        let docker = step("{ name: docker, metadata: { hypervisor_type: docker }, hosts: [kvm1] }");
        let kvm = step("{ name: kvm, metadata: { hypervisor_type: kvm }, hosts: [kvm1] }");
        let mut facts = Facts::default();
        facts.cmds.insert(
            docker.auth.facts_probe(),
            CmdFact {
                code: 0,
                stdout: r#"{"flavors": [], "aggregates": [], "compute_hosts": [["cmp1", "up"], ["kvm1", "up"]], "docker_images": [], "hypervisors": {"cmp1": ["docker", 0], "kvm1": ["QEMU", 2]}}"#.into(),
            },
        );
        let renderer = crate::render::Renderer::new(
            std::sync::Arc::new(crate::assets::Templates::embedded_only()),
            Default::default(),
        );
        let vars = minijinja::Value::from(());
        let cx = PlanCx {
            facts: &facts,
            renderer: &renderer,
            vars: &vars,
        };
        let e = docker.plan(&cx).unwrap_err().to_string();
        assert!(
            e.starts_with("aggregate docker: kvm1 still hosts 2 instances of its QEMU driver: "),
            "{e}"
        );
        assert_eq!(
            kvm.plan(&cx).unwrap().summary,
            "aggregate kvm: create, set metadata hypervisor_type=kvm, add host kvm1"
        );
    }
}
