//! `prefetch`: Glance's docker images onto the Docker hosts (over SSH, or through Nova's
//! pre-cache API with the `nova` source).

use super::{CONTROLLER_HINT, Conn, spool_dir};
use crate::cloud::Cloud;
use crate::prefetch;
use crate::printer::{self, hinted};
use crate::report;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// What `prefetch` takes.
#[derive(Debug, Clone)]
pub(crate) struct Prefetch {
    pub(crate) inventory: PathBuf,
    pub(crate) limit: Option<String>,
    pub(crate) dry_run: bool,
    pub(crate) prune: bool,
    /// Hosts worked on at once (`--forks`, as for apply); None: the inventory's
    /// prefetch_parallel.
    pub(crate) forks: Option<usize>,
    pub(crate) source: Option<prefetch::Source>,
    pub(crate) hosts: Option<prefetch::HostsFrom>,
    pub(crate) json: bool,
    pub(crate) conn: Conn,
}

/// `prefetch`.
pub(crate) fn run(a: &Prefetch, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    let cloud = Cloud::load(&a.inventory, CONTROLLER_HINT)?;
    let source = match (a.source, cloud.var_or_default("prefetch_source")?.as_str()) {
        (Some(s), _) => s,
        (None, "glance") => prefetch::Source::Glance,
        (None, "registry") => prefetch::Source::Registry,
        (None, "nova") => prefetch::Source::Nova,
        (None, other) => {
            return Err(anyhow::anyhow!(
                "{}: prefetch_source `{other}`: expected nova, glance or registry",
                a.inventory.display()
            ));
        }
    };
    let hosts_from = match (a.hosts, cloud.var_or_default("prefetch_hosts")?.as_str()) {
        (Some(h), _) => h,
        (None, "aggregate") => prefetch::HostsFrom::Aggregate,
        (None, "inventory") => prefetch::HostsFrom::Inventory,
        (None, other) => {
            return Err(anyhow::anyhow!(
                "{}: prefetch_hosts `{other}`: expected aggregate or inventory",
                a.inventory.display()
            ));
        }
    };
    let parallel = match a.forks {
        Some(n) => n,
        None => {
            let v = cloud.var_or_default("prefetch_forks")?;
            v.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{}: prefetch_forks `{v}` is not a number",
                    a.inventory.display()
                )
            })?
        }
    };
    if parallel == 0 {
        return Err(anyhow::anyhow!("--forks must be at least 1"));
    }
    if source == prefetch::Source::Nova {
        nova_source_fits(a, hosts_from)?;
    }
    let auth = cloud.auth()?;
    let limit = a
        .limit
        .as_deref()
        .map(|l| super::select::limit(&cloud.inventory, l))
        .transpose()?;
    let computes = cloud
        .inventory
        .hosts
        .iter()
        .filter(|h| h.groups.iter().any(|g| g == "docker_computes"))
        .cloned()
        .collect();
    let cfg = prefetch::Config {
        aggregate: cloud.var_or_default("docker_aggregate")?,
        connect: cloud.connect_options(
            a.conn.persist,
            a.conn.connect_timeout,
            a.conn.accept_new_host_keys,
        ),
        controller: cloud.controller.clone(),
        inventory: Arc::new(cloud.inventory.clone()),
        computes,
        auth,
        source,
        hosts_from,
        limit,
        parallel,
        dry_run: a.dry_run,
        prune: a.prune,
        spool_dir: spool_dir("prefetch")?,
        projects: cloud.list_var("prefetch_projects")?,
        registries: cloud.list_var("prefetch_registries")?,
    };
    if source == prefetch::Source::Nova {
        return run_precache(&cfg, rt, a.json);
    }
    let multi = printer::multi();
    let summary = rt.block_on(prefetch::run(&cfg, &multi)).map_err(|e| match e {
        prefetch::PrefetchError::NoAggregate(_) => hinted(
            e.to_string(),
            "apply the bootstrap playbook first (it creates the aggregate), or use --hosts inventory",
        ),
        e => anyhow::Error::new(e),
    })?;
    report::prefetch_human(&summary);
    if a.json {
        printer::json(&serde_json::to_value(&summary).context("cannot encode the summary")?);
    }
    Ok(if summary.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the `nova` source cannot do: Nova caches on a whole aggregate, and cannot un-cache.
fn nova_source_fits(a: &Prefetch, hosts_from: prefetch::HostsFrom) -> Result<()> {
    const USE_GLANCE: &str = "--source glance (or prefetch_source: glance) loads the images over SSH from the controller, host by host";
    if a.prune {
        return Err(hinted(
            "--prune: the nova source cannot remove images (Nova's image cache API has no un-cache call)",
            USE_GLANCE,
        ));
    }
    if a.limit.is_some() {
        return Err(hinted(
            "--limit: the nova source asks Nova to cache on every host of the aggregate",
            USE_GLANCE,
        ));
    }
    if hosts_from == prefetch::HostsFrom::Inventory {
        return Err(hinted(
            "prefetch_hosts inventory (--hosts inventory): the nova source works on the aggregate `docker_aggregate`, not on the inventory's hosts",
            USE_GLANCE,
        ));
    }
    Ok(())
}

/// `prefetch` with the `nova` source: one pre-cache request, no SSH to the computes.
fn run_precache(
    cfg: &prefetch::Config,
    rt: &tokio::runtime::Runtime,
    json: bool,
) -> Result<ExitCode> {
    let p = rt
        .block_on(crate::precache::run(cfg))
        .map_err(|e| match e {
            prefetch::PrefetchError::NoAggregate(_) => hinted(
                e.to_string(),
                "apply the bootstrap playbook first (it creates the aggregate `docker_aggregate`)",
            ),
            prefetch::PrefetchError::NovaTooOld(_) => hinted(
                e.to_string(),
                "Nova 21 (Ussuri) and later have it (Zed: 2.93); on an older Nova, use --source glance (or prefetch_source: glance)",
            ),
            e => anyhow::Error::new(e),
        })?;
    report::precache_human(&p);
    if json {
        printer::json(&serde_json::to_value(&p).context("cannot encode the summary")?);
    }
    Ok(ExitCode::SUCCESS)
}
