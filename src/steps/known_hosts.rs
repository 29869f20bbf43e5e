//! `known_hosts`: a known_hosts file that pins the host keys of inventory hosts (e.g. for the
//! controller's prefetch job reaching the Docker compute hosts). Keys are read over the
//! operator's own, already verified, connections to those hosts — never trusted on first use.

use super::{Mode, PlanCx, StepError, StepKind, attrs, plan_file_content, require_absolute};
use crate::facts::Probe;
use crate::plan::Outcome;
use serde::Deserialize;

/// Host key files tried on each host, all pinned when present.
pub(crate) const HOST_KEYS: [&str; 3] = [
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/ssh/ssh_host_ecdsa_key.pub",
    "/etc/ssh/ssh_host_rsa_key.pub",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PinnedHost {
    pub(crate) name: String,
    pub(crate) address: String,
    #[serde(default = "ssh_port")]
    pub(crate) port: u16,
}

fn ssh_port() -> u16 {
    22
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KnownHosts {
    pub(crate) path: String,
    /// A host pattern in the playbook; the engine resolves it to the inventory's hosts.
    pub(crate) hosts: Vec<PinnedHost>,
    pub(crate) owner: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) mode: Option<Mode>,
}

fn paths() -> Vec<String> {
    HOST_KEYS.iter().map(|s| s.to_string()).collect()
}

/// The whole file: novadock owns it, one line per (host, key), in inventory order.
pub(crate) fn render(entries: &[(&PinnedHost, &str)]) -> String {
    let mut out = String::from("# Managed by novadock: host keys of inventory hosts.\n");
    for (h, keys) in entries {
        let pattern = if h.port == 22 {
            h.address.clone()
        } else {
            format!("[{}]:{}", h.address, h.port)
        };
        for l in keys.lines() {
            if let Some((kind, blob)) = super::authorized_key::key_of(l) {
                out.push_str(&format!("{pattern} {kind} {blob}\n"));
            }
        }
    }
    out
}

impl StepKind for KnownHosts {
    fn validate(&self) -> Result<(), StepError> {
        require_absolute(&self.path)
    }

    fn probes(&self) -> Vec<Probe> {
        let mut p = vec![Probe::File(self.path.clone())];
        for h in &self.hosts {
            p.push(Probe::Peer {
                host: h.name.clone(),
                paths: paths(),
                after_run: false,
            });
        }
        p
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let mut entries = Vec::new();
        for h in &self.hosts {
            let keys = cx
                .facts
                .peer(&h.name, &paths())
                .map_err(|e| StepError::Invalid(format!("host keys of {}: {e}", h.name)))?
                .ok_or_else(|| {
                    StepError::Invalid(format!("{} has no host key in /etc/ssh", h.name))
                })?;
            entries.push((h, keys));
        }
        let content = render(&entries);
        plan_file_content(
            &self.path,
            cx.facts.file(&self.path),
            content.into_bytes(),
            &attrs(&self.owner, &self.group, &self.mode),
            false,
        )
    }
}

/// `hosts: PATTERN` → the inventory's hosts, with the addresses the job will dial.
pub(crate) fn resolve_hosts(args: &mut serde_yaml::Value, inventory: &crate::inventory::Inventory) {
    let Some(pattern) = super::hosts_pattern(args).map(str::to_string) else {
        return;
    };
    let hosts: Vec<serde_yaml::Value> = inventory
        .select_steps(&pattern)
        .iter()
        .map(|h| {
            let mut m = serde_yaml::Mapping::new();
            m.insert("name".into(), h.name.clone().into());
            m.insert("address".into(), h.address_str().into());
            m.insert("port".into(), (h.port as u64).into());
            serde_yaml::Value::Mapping(m)
        })
        .collect();
    args["hosts"] = serde_yaml::Value::Sequence(hosts);
}
