//! The inventory and playbook of a run, and what `--limit` selects: the same resolution for
//! every command.

use crate::assets::{self, Templates};
use crate::inventory::{Host, Inventory};
use crate::playbook::Playbook;
use crate::printer::hinted;
use crate::render::Renderer;
use crate::steps::openstack_aggregate;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

/// What names a run's hosts and steps.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) inventory: PathBuf,
    pub(crate) playbook: Option<PathBuf>,
    pub(crate) limit: Option<String>,
}

/// `--limit HOSTS`: the inventory hosts it names (hosts, groups, `all`, comma separated); a
/// name that is neither a host nor a group is an error.
pub(crate) fn limit(inventory: &Inventory, l: &str) -> Result<BTreeSet<String>> {
    Ok(inventory
        .select(l)
        .with_context(|| format!("--limit {l}"))?
        .iter()
        .map(|h| h.name.clone())
        .collect())
}

pub(crate) struct Loaded {
    pub(crate) inventory: Arc<Inventory>,
    pub(crate) playbook: Arc<Playbook>,
    pub(crate) renderer: Arc<Renderer>,
    pub(crate) targets: Vec<(Host, Vec<usize>)>,
    pub(crate) limit: Option<Arc<BTreeSet<String>>>,
}

const DEFAULT_PLAYBOOK: &str = "playbooks/bootstrap.yml";

pub(crate) fn load(c: &Input) -> Result<Loaded> {
    let inventory = Inventory::open(&c.inventory)?;
    // A playbook runs as root on every host: only the one shipped inside this binary unless
    // the operator names a file (a `playbooks/` in the current directory is not the product's).
    let loaded = match &c.playbook {
        Some(p) => Playbook::load(p),
        None => Playbook::embedded(std::path::Path::new(DEFAULT_PLAYBOOK)),
    };
    let playbook = loaded.map_err(|e| match e {
        crate::playbook::PlaybookError::NotFound(_) => hinted(
            e.to_string(),
            format!(
                "embedded playbooks: {}",
                assets::embedded_playbook_names().join(", ")
            ),
        ),
        e => anyhow::Error::new(e).context("invalid playbook"),
    })?;
    let renderer = Renderer::new(
        Arc::new(Templates::for_playbook(playbook.disk_path.as_deref())),
        playbook.vars.clone(),
    )
    .with_inventory(&inventory);
    if playbook.require_limit && c.limit.is_none() {
        return Err(hinted(
            format!("{} runs only on the hosts being added", playbook.source),
            "name them with --limit, e.g. --limit cmp3 (the controller's steps for them are included)",
        ));
    }
    let limit = c
        .limit
        .as_deref()
        .map(|l| limit(&inventory, l))
        .transpose()?;
    let mut per_host: Vec<(Host, Vec<usize>)> = inventory
        .hosts
        .iter()
        .map(|h| (h.clone(), vec![]))
        .collect();
    for (i, step) in playbook.steps.iter().enumerate() {
        let hosts = inventory.select_steps(&step.hosts);
        // Under --limit, a controller step that manages limited hosts (their aggregate
        // membership) runs too, for those hosts only.
        // (`for_hosts:`, or the members of an aggregate or a known_hosts file).
        let managed = step.for_hosts.as_deref().or(match step.kind {
            "openstack_aggregate" | "nova_computes" | "known_hosts" => {
                openstack_aggregate::member_pattern(&step.args)
            }
            _ => None,
        });
        let related = limit.as_ref().is_some_and(|l| {
            managed.is_some_and(|p| {
                inventory
                    .select_steps(p)
                    .iter()
                    .any(|m| l.contains(&m.name))
            })
        });
        for h in hosts {
            if !(related || limit.as_ref().is_none_or(|l| l.contains(&h.name))) {
                continue;
            }
            if let Some(entry) = per_host.iter_mut().find(|(x, _)| x.name == h.name) {
                entry.1.push(i);
            }
        }
    }
    let targets = per_host
        .into_iter()
        .filter(|(_, steps)| !steps.is_empty())
        .collect();
    Ok(Loaded {
        inventory: Arc::new(inventory),
        playbook: Arc::new(playbook),
        renderer: Arc::new(renderer),
        targets,
        limit: limit.map(Arc::new),
    })
}
