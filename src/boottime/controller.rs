//! A run's connections: the controller (where the Python process runs) and the Docker
//! hosts (where the container start times are read).

use super::output::{PyOut, Sample, outcome, parse_py, parse_starts};
use super::stats::Measured;
use super::{Options, connect};
use crate::inventory::Inventory;
use crate::openstack::Auth;
use crate::transport::Transport;
use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use std::collections::HashMap;

pub(super) struct Cx {
    pub(super) o: Options,
    pub(super) inventory: Inventory,
    pub(super) auth: Auth,
    pub(super) controller: Box<dyn Transport>,
    pub(super) controller_name: String,
    /// Run-unique: every server is named with it, and the clean-up deletes by it.
    pub(super) prefix: String,
    /// This run's private directory on the controller (its pid and abort files): see
    /// [`super::private_dir`].
    pub(super) dir: String,
    pub(super) computes: tokio::sync::Mutex<HashMap<String, std::sync::Arc<dyn Transport>>>,
}

impl Cx {
    pub(super) fn pidfile(&self) -> String {
        format!("{}/pid", self.dir)
    }
    pub(super) fn abortfile(&self) -> String {
        format!("{}/abort", self.dir)
    }

    /// One Python run on the controller.
    pub(super) async fn py(&self, args: Value, bound: u32) -> Result<PyOut> {
        let mut args = args;
        args["pidfile"] = json!(self.pidfile());
        args["abort"] = json!(self.abortfile());
        let script = self
            .auth
            .python_bounded(&crate::remote::BOOT_TIME, &args, bound);
        let out = self
            .controller
            .exec(&script)
            .await
            .map_err(|e| anyhow!(e.to_string()))
            .with_context(|| {
                format!(
                    "cannot run boot-time on the controller {}",
                    self.controller_name
                )
            })?;
        parse_py(&out, bound)
    }

    /// Boot `count` servers named `{prefix}{sub}NN`; `Err` carries Nova's reason and a hint.
    pub(super) async fn boot(
        &self,
        sub: &str,
        first: usize,
        count: usize,
        concurrency: usize,
        delete_each: bool,
    ) -> Result<PyOut> {
        let rounds = count.div_ceil(concurrency.max(1)) as u64;
        // Each round may take the per-server timeout (plus deleting, with delete_each); the
        // final sweep gets 300 s more.
        let bound = (rounds * (self.o.timeout + if delete_each { 300 } else { 0 }) + 420)
            .min(u32::MAX as u64) as u32;
        let out = self
            .py(
                json!({
                    "mode": "boot", "prefix": format!("{}{sub}", self.prefix), "first": first,
                    "flavor": self.o.flavor, "image": self.o.image, "count": count,
                    "concurrency": concurrency, "host": self.o.host, "delete_each": delete_each,
                    "network": self.o.network,
                    "active_timeout": self.o.timeout,
                }),
                bound,
            )
            .await?;
        self.check(&out)?;
        Ok(out)
    }

    pub(super) fn check(&self, out: &PyOut) -> Result<()> {
        outcome(&self.o, &self.prefix, out)
    }

    /// A compute host's transport, by its nova-compute name (`nova_host`, else its name).
    pub(super) async fn compute(
        &self,
        nova_host: &str,
    ) -> Option<Result<std::sync::Arc<dyn Transport>, String>> {
        let h = self
            .inventory
            .hosts
            .iter()
            .find(|h| h.nova_host() == nova_host)?;
        let mut m = self.computes.lock().await;
        if let Some(t) = m.get(nova_host) {
            return Some(Ok(t.clone()));
        }
        Some(match connect(h, &self.inventory, &self.o).await {
            Ok(t) => {
                let t: std::sync::Arc<dyn Transport> = std::sync::Arc::from(t);
                m.insert(nova_host.to_string(), t.clone());
                Ok(t)
            }
            Err(e) => Err(e),
        })
    }

    /// Figures for the servers of a run, with container start times from each Docker host.
    pub(super) async fn measure(&self, out: &PyOut) -> Measured {
        let mut notes = Vec::new();
        let mut starts: HashMap<String, f64> = HashMap::new();
        let since = out
            .servers
            .iter()
            .map(|s| s.requested_at)
            .fold(f64::INFINITY, f64::min);
        let mut docker_hosts: Vec<String> = out
            .servers
            .iter()
            .filter(|s| {
                s.hypervisor_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("docker"))
            })
            .filter_map(|s| s.host.clone())
            .collect();
        docker_hosts.sort();
        docker_hosts.dedup();
        for h in docker_hosts {
            match self.compute(&h).await {
                None => notes.push(format!(
                    "{h} is not in the inventory: no container start times"
                )),
                Some(Err(e)) => notes.push(format!("{h}: no container start times: {e}")),
                Some(Ok(t)) => match t.exec(&events_script(since.floor() as i64 - 2)).await {
                    Ok(r) if r.success() => {
                        starts.extend(parse_starts(&String::from_utf8_lossy(&r.stdout)))
                    }
                    Ok(r) => notes.push(format!(
                        "{h}: docker events failed (exit {}): {}",
                        r.code.unwrap_or(-1),
                        String::from_utf8_lossy(&r.stderr).trim()
                    )),
                    Err(e) => notes.push(format!("{h}: no container start times: {e}")),
                },
            }
        }
        let samples: Vec<Sample> = out
            .servers
            .iter()
            .map(|s| s.sample(starts.get(&s.id).copied()))
            .collect();
        let on_docker = samples
            .iter()
            .filter(|s| {
                s.hypervisor_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("docker"))
            })
            .count();
        let timed = samples.iter().filter(|s| s.to_container.is_some()).count();
        if timed < on_docker && notes.is_empty() {
            // dockerd keeps its last 256 events: a busy host may have dropped some.
            notes.push(format!(
                "{} of {on_docker} containers had no start event in dockerd's event log",
                on_docker - timed
            ));
        }
        Measured { samples, notes }
    }
}
/// The start events of Nova's containers (the driver labels them `novadock.instance=<uuid>`).
/// `--until` is the host's now: a future `--until` would make docker wait for it.
fn events_script(since: i64) -> String {
    format!(
        "docker events --since {since} --until \"$(date +%s.%N)\" --filter type=container --filter event=start --filter label=novadock.instance --format '{{{{index .Actor.Attributes \"novadock.instance\"}}}} {{{{.TimeNano}}}}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_script_filters_and_formats() {
        assert!(events_script(5).contains("--since 5 "));
        assert!(events_script(5).contains(
            "--format '{{index .Actor.Attributes \"novadock.instance\"}} {{.TimeNano}}'"
        ));
    }
}
