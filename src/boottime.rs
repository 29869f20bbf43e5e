//! `novadock boot-time`: how long servers take to boot, measured properly (issue 7).
//!
//! One python3 (openstacksdk) process on the controller boots the servers and times them,
//! so no CLI start-up lands in the figures: the clock starts right before each create request
//! and stops at the first status poll that sees ACTIVE (polled every 0.05 s: one GET per server
//! while at most 3 wait, else one list call per round). Nova's own `created` → `launched_at` is kept too (1 s resolution). On Docker hosts,
//! the container's start comes from dockerd's event log, which still has it after the
//! container is gone: that lets the Python process delete every server itself, in a `finally`,
//! whatever happens. Ctrl-C signals it and sweeps by the run's name prefix (see `cleanup`).

use crate::cloud::Cloud;
use crate::inventory::{Host, Inventory};
use crate::openstack::Auth;
use crate::printer::{self, hinted};
use crate::transport::{ExecOutput, Transport};
use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) inventory: std::path::PathBuf,
    pub(crate) flavor: String,
    pub(crate) image: String,
    pub(crate) count: usize,
    pub(crate) concurrency: usize,
    pub(crate) host: Option<String>,
    /// Each server gets a port on this network (none without).
    pub(crate) network: Option<String>,
    pub(crate) json: bool,
    pub(crate) compare_prefetch: bool,
    /// Seconds a server may take from its create request to ACTIVE.
    pub(crate) timeout: u64,
    pub(crate) persist_secs: u64,
    pub(crate) connect_timeout_secs: u64,
    pub(crate) accept_new_host_keys: bool,
}

// ---- what the Python process reports ----

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PyOut {
    #[serde(default)]
    pub(crate) servers: Vec<PyServer>,
    #[serde(default)]
    pub(crate) left_behind: Vec<String>,
    /// The final sweep itself failed (say, Nova went away): nobody knows what is left.
    pub(crate) sweep_error: Option<String>,
    pub(crate) error: Option<PyError>,
    pub(crate) image: Option<Named>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PyError {
    pub(crate) kind: String,
    pub(crate) message: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Named {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PyServer {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) host: Option<String>,
    pub(crate) hypervisor_type: Option<String>,
    /// Epoch seconds on the controller's clock.
    pub(crate) requested_at: f64,
    pub(crate) active_at: Option<f64>,
    /// Nova's timestamps, epoch seconds.
    pub(crate) created: Option<f64>,
    pub(crate) launched_at: Option<f64>,
}

/// One server's figures, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) hypervisor_type: Option<String>,
    /// Wall clock: create request → first poll that saw ACTIVE.
    pub(crate) api_to_active: f64,
    /// Nova's own `created` → `OS-SRV-USG:launched_at` (whole seconds).
    pub(crate) created_to_launched: Option<f64>,
    /// Create request → the container started (Docker hosts only; clocks synced by NTP).
    pub(crate) to_container: Option<f64>,
}

impl PyServer {
    fn sample(&self, container_started: Option<f64>) -> Sample {
        Sample {
            name: self.name.clone(),
            id: self.id.clone(),
            host: self.host.clone().unwrap_or_else(|| "?".into()),
            hypervisor_type: self.hypervisor_type.clone(),
            api_to_active: self.active_at.map_or(f64::NAN, |a| a - self.requested_at),
            created_to_launched: match (self.created, self.launched_at) {
                (Some(c), Some(l)) => Some(l - c),
                _ => None,
            },
            to_container: container_started.map(|s| s - self.requested_at),
        }
    }
}

/// The JSON line the Python process printed last; an empty stdout means it never got that
/// far (no openstacksdk, bad credentials file, the run's time bound).
pub(crate) fn parse_py(out: &ExecOutput, bound: u32) -> Result<PyOut> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
    else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        return Err(anyhow!(if out.code == Some(124) {
            format!("the OpenStack run did not finish within {bound} s")
        } else if let Some(e) = stderr.lines().rev().find(|l| l.starts_with("error: ")) {
            format!("on the controller: {}", &e["error: ".len()..])
        } else {
            format!(
                "the boot-time run on the controller printed nothing (exit {}){}",
                out.code.map_or("by signal".into(), |c| c.to_string()),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            )
        }));
    };
    serde_json::from_str(line).context("unexpected output from the boot-time run on the controller")
}

/// `docker events` lines "<instance uuid> <TimeNano>" → uuid → epoch seconds of the first
/// start. Lines that are not that are ignored.
pub(crate) fn parse_starts(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(id), Some(nanos), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(nanos) = nanos.parse::<u128>() else {
            continue;
        };
        out.entry(id.to_string())
            .or_insert((nanos / 1000) as f64 / 1e6);
    }
    out
}

// ---- statistics ----

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    pub(crate) n: usize,
    pub(crate) min: f64,
    pub(crate) median: f64,
    pub(crate) p95: f64,
    pub(crate) max: f64,
}

/// min / median / p95 / max. The median averages the two middle values of an even count;
/// p95 is the nearest rank (the smallest value ≥ 95 % of the samples), so it is always a
/// measured value. NaN (no figure) is left out; `None` when nothing is left.
pub(crate) fn stats(values: impl IntoIterator<Item = f64>) -> Option<Stats> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let rank = (0.95 * n as f64).ceil() as usize;
    Some(Stats {
        n,
        min: v[0],
        median,
        p95: v[rank.clamp(1, n) - 1],
        max: v[n - 1],
    })
}

fn stats_json(s: Option<Stats>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "n": s.n, "min": round3(s.min), "median": round3(s.median),
            "p95": round3(s.p95), "max": round3(s.max),
        }),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn secs(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{x:.2} s")
    }
}

/// The figures a run prints and writes as JSON.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    pub(crate) samples: Vec<Sample>,
    /// Why a Docker host's container times are missing, per host.
    pub(crate) notes: Vec<String>,
}

impl Measured {
    fn api(&self) -> Option<Stats> {
        stats(self.samples.iter().map(|s| s.api_to_active))
    }
    fn nova(&self) -> Option<Stats> {
        stats(
            self.samples
                .iter()
                .map(|s| s.created_to_launched.unwrap_or(f64::NAN)),
        )
    }
    fn container(&self) -> Option<Stats> {
        stats(
            self.samples
                .iter()
                .map(|s| s.to_container.unwrap_or(f64::NAN)),
        )
    }

    pub(crate) fn hosts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in &self.samples {
            *m.entry(s.host.clone()).or_insert(0) += 1;
        }
        m
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "servers": self.samples.iter().map(|s| json!({
                "name": s.name, "id": s.id, "host": s.host,
                "hypervisor_type": s.hypervisor_type,
                "api_to_active_s": if s.api_to_active.is_nan() { Value::Null } else { json!(round3(s.api_to_active)) },
                "created_to_launched_s": s.created_to_launched.map(round3),
                "request_to_container_s": s.to_container.map(round3),
            })).collect::<Vec<_>>(),
            "summary": {
                "api_to_active_s": stats_json(self.api()),
                "created_to_launched_s": stats_json(self.nova()),
                "request_to_container_s": stats_json(self.container()),
            },
            "hosts": self.hosts(),
            "notes": self.notes,
        })
    }

    /// Per-server lines and the min/median/p95/max table.
    pub(crate) fn human(&self) -> String {
        let mut out = String::new();
        let w = self
            .samples
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let hw = self
            .samples
            .iter()
            .map(|s| s.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        out.push_str(&printer::dim(&format!(
            "  {:<w$}  {:<hw$}  {:>10}  {:>16}  {:>17}\n",
            "server", "host", "API→ACTIVE", "created→launched", "request→container"
        )));
        for s in &self.samples {
            out.push_str(&format!(
                "  {:<w$}  {:<hw$}  {:>10}  {:>16}  {:>17}\n",
                s.name,
                s.host,
                secs(s.api_to_active),
                s.created_to_launched
                    .map_or("-".into(), |x| format!("{x:.0} s")),
                s.to_container.map_or("-".into(), secs),
            ));
        }
        out.push_str(&printer::dim(&format!(
            "  {:<30}  {:>8}  {:>8}  {:>8}  {:>8}\n",
            "", "min", "median", "p95", "max"
        )));
        for (label, st) in [
            ("API → ACTIVE (wall clock)", self.api()),
            ("created → launched_at (Nova)", self.nova()),
            ("request → container started", self.container()),
        ] {
            if let Some(st) = st {
                out.push_str(&format!(
                    "  {:<30}  {:>8}  {:>8}  {:>8}  {:>8}{}\n",
                    label,
                    secs(st.min),
                    secs(st.median),
                    secs(st.p95),
                    secs(st.max),
                    if st.n < self.samples.len() {
                        format!("  ({} of {} servers)", st.n, self.samples.len())
                    } else {
                        String::new()
                    }
                ));
            }
        }
        let hosts = self
            .hosts()
            .iter()
            .map(|(h, n)| format!("{h} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("  hosts: {hosts}\n"));
        for n in &self.notes {
            out.push_str(&format!("  {}\n", printer::dim(&format!("note: {n}"))));
        }
        out
    }
}

/// fetched / present, on the medians of API → ACTIVE.
pub(crate) fn ratio(present: &Measured, fetched: &Measured) -> Option<f64> {
    let (p, f) = (present.api()?, fetched.api()?);
    (p.median > 0.0).then(|| f.median / p.median)
}

// ---- the run ----

struct Cx {
    o: Options,
    inventory: Inventory,
    auth: Auth,
    controller: Box<dyn Transport>,
    controller_name: String,
    /// Run-unique: every server is named with it, and the clean-up deletes by it.
    prefix: String,
    /// This run's private directory on the controller (its pid and abort files): see
    /// [`private_dir`].
    dir: String,
    computes: tokio::sync::Mutex<HashMap<String, std::sync::Arc<dyn Transport>>>,
}

pub(crate) fn run(o: Options, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    let cloud = Cloud::load(
        &o.inventory,
        "boot-time talks to Nova from the first host of group `controllers`, where the credentials are",
    )?;
    let auth = cloud.auth()?;
    let Cloud {
        inventory,
        controller,
    } = cloud;
    rt.block_on(async move {
        let transport = connect(&controller, &inventory, &o).await.map_err(|e| {
            anyhow!(e).context(format!("cannot reach the controller {}", controller.name))
        })?;
        let dir = match private_dir(transport.as_ref()).await {
            Ok(d) => d,
            Err(e) => {
                transport.close(o.persist_secs > 0).await;
                return Err(e.context(format!(
                    "cannot make a private directory on the controller {}",
                    controller.name
                )));
            }
        };
        let cx = Cx {
            prefix: format!("bt-{}-", crate::ops::run_id::run_id()),
            dir,
            o,
            inventory,
            auth,
            controller: transport,
            controller_name: controller.name.clone(),
            computes: Default::default(),
        };
        let result = tokio::select! {
            r = main_flow(&cx) => r,
            _ = tokio::signal::ctrl_c() => {
                printer::say(&format!(
                    "{} interrupted: deleting every server named {}*",
                    printer::yellow("boot-time:"),
                    cx.prefix
                ));
                let swept = cleanup(&cx).await;
                let e = match swept {
                    Ok(()) => anyhow!("interrupted; every server of this run was deleted"),
                    Err(e) => e.context("interrupted"),
                };
                printer::error(&e);
                Ok(ExitCode::from(130))
            }
        };
        // Whatever happened: a Python run that starts late finds no directory and stops.
        let _ = cx
            .controller
            .exec(&format!("rm -rf -- {}", crate::shell::quote(&cx.dir)))
            .await;
        cx.controller.close(cx.o.persist_secs > 0).await;
        for t in cx.computes.lock().await.values() {
            t.close(cx.o.persist_secs > 0).await;
        }
        result
    })
}

/// The same connection `plan`/`apply` would make to `h`.
async fn connect(h: &Host, inv: &Inventory, o: &Options) -> Result<Box<dyn Transport>, String> {
    let c = crate::transport::ConnectOptions::of(
        inv,
        o.persist_secs,
        o.connect_timeout_secs,
        o.accept_new_host_keys,
    );
    crate::transport::connect(h, &c).await
}

/// Where a run's pid and abort files live on the controller: a new directory with a random
/// name (mkdtemp: made exclusively, 0700, root's), removed at the end of the run. Never a
/// predictable name in a shared directory: a local user could plant a symlink there and have
/// root write through it, or a pid file that makes root kill any process (issue 14,
/// finding 15).
async fn private_dir(t: &dyn Transport) -> Result<String> {
    let out = t
        .exec(&format!(
            "umask 077 && mktemp -d {BOOT_TIME_DIR}.XXXXXXXXXX"
        ))
        .await
        .map_err(|e| anyhow!(e.to_string()))?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ok = out.success()
        && dir.starts_with(&format!("{BOOT_TIME_DIR}."))
        && dir
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/.-_".contains(&b));
    if !ok {
        return Err(anyhow!(
            "mktemp -d {BOOT_TIME_DIR}.XXXXXXXXXX failed (exit {}): {}",
            out.code.map_or("signal".into(), |c| c.to_string()),
            printer::escape(String::from_utf8_lossy(&out.stderr).trim())
        ));
    }
    Ok(dir)
}

/// The prefix of [`private_dir`]'s directories (/run: root's own, on tmpfs).
pub(crate) const BOOT_TIME_DIR: &str = "/run/novadock-boot-time";

impl Cx {
    fn pidfile(&self) -> String {
        format!("{}/pid", self.dir)
    }
    fn abortfile(&self) -> String {
        format!("{}/abort", self.dir)
    }

    /// One Python run on the controller.
    async fn py(&self, args: Value, bound: u32) -> Result<PyOut> {
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
    async fn boot(
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

    fn check(&self, out: &PyOut) -> Result<()> {
        outcome(&self.o, &self.prefix, out)
    }

    /// A compute host's transport, by its nova-compute name (`nova_host`, else its name).
    async fn compute(
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
    async fn measure(&self, out: &PyOut) -> Measured {
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

/// A run's error, with a hint by kind; servers left behind are an error of their own.
fn outcome(o: &Options, prefix: &str, out: &PyOut) -> Result<()> {
    // Said even when the run failed for another reason: the operator must know.
    let left = if let Some(e) = &out.sweep_error {
        Some(format!(
            "could not make sure that every server of this run is deleted ({e}); `openstack server list --name '^{}'` lists them",
            prefix
        ))
    } else if out.left_behind.is_empty() {
        None
    } else {
        Some(format!(
            "servers left behind after 300 s of deleting; `openstack server delete {}` deletes them",
            out.left_behind.join(" ")
        ))
    };
    let Some(e) = &out.error else {
        return left.map_or(Ok(()), |l| Err(anyhow!(l)));
    };
    let hint = match e.kind.as_str() {
        "unknown_flavor" => Some("`openstack flavor list` shows the flavors".to_string()),
        "unknown_network" => Some("`openstack network list` shows the networks".to_string()),
        "unknown_image" => Some(
            "a Docker image goes to Glance with `docker save NAME:TAG > x.tar && openstack image create --container-format docker --disk-format raw --file x.tar NAME:TAG`".into(),
        ),
        "no_valid_host" => Some(format!(
            "no compute host passed the scheduler's filters for flavor {}{}: are the hosts of its aggregate up (`openstack compute service list`), and does `novadock plan` show the flavor and aggregate converged?",
            o.flavor,
            o.host.as_deref().map(|h| format!(" on {h}")).unwrap_or_default()
        )),
        "quota" => Some(format!(
            "raise the project's quota (`openstack quota set --instances N --cores N --ram MB PROJECT`) or boot fewer at once (--count {}, --concurrency {})",
            o.count, o.concurrency
        )),
        _ if e.message.contains("Compute host") => Some("--host takes a nova-compute host name: `openstack compute service list`".into()),
        _ => None,
    };
    let mut err = match hint {
        Some(h) => hinted(e.message.clone(), h),
        None => anyhow!(e.message.clone()),
    };
    if let Some(l) = left {
        err = err.context(l);
    }
    Err(err.context(format!(
        "boot-time of {} × {} from {} failed",
        o.count, o.flavor, o.image
    )))
}

/// The start events of Nova's containers (the driver labels them `novadock.instance=<uuid>`).
/// `--until` is the host's now: a future `--until` would make docker wait for it.
fn events_script(since: i64) -> String {
    format!(
        "docker events --since {since} --until \"$(date +%s.%N)\" --filter type=container --filter event=start --filter label=novadock.instance --format '{{{{index .Actor.Attributes \"novadock.instance\"}}}} {{{{.TimeNano}}}}'"
    )
}

async fn main_flow(cx: &Cx) -> Result<ExitCode> {
    if cx.o.compare_prefetch {
        return compare(cx).await;
    }
    let o = &cx.o;
    printer::say(&format!(
        "{} {} × {} from {}{}{}, {} at a time (servers {}*)",
        printer::bold("boot-time:"),
        o.count,
        o.flavor,
        o.image,
        o.host
            .as_deref()
            .map(|h| format!(" on {h}"))
            .unwrap_or_default(),
        o.network
            .as_deref()
            .map(|n| format!(" with a port on {n}"))
            .unwrap_or_default(),
        o.concurrency,
        cx.prefix
    ));
    let out = cx.boot("", 1, o.count, o.concurrency, false).await?;
    let m = cx.measure(&out).await;
    printer::say(m.human().trim_end());
    printer::say(&format!(
        "{} all {} servers deleted",
        printer::green("ok:"),
        o.count
    ));
    if o.json {
        let mut doc = m.json();
        doc["run"] = json!(cx.prefix.trim_end_matches('-'));
        doc["flavor"] = json!(o.flavor);
        doc["image"] = json!(o.image);
        doc["count"] = json!(o.count);
        doc["concurrency"] = json!(o.concurrency);
        doc["host"] = json!(o.host);
        doc["network"] = json!(o.network);
        printer::json(&doc);
    }
    Ok(ExitCode::SUCCESS)
}

/// The same boots on one Docker host, with the image removed from it before each (so the
/// driver fetches it from Glance), then with it present. One at a time, so that each
/// "fetched" boot really starts without the image; the present run goes second and finds
/// the image the last fetch left.
async fn compare(cx: &Cx) -> Result<ExitCode> {
    let o = &cx.o;
    let host = o
        .host
        .as_deref()
        .expect("clap: --compare-prefetch requires --host");
    let resolved = cx
        .py(
            json!({"mode": "resolve", "prefix": cx.prefix, "flavor": o.flavor, "image": o.image, "network": o.network}),
            300,
        )
        .await?;
    cx.check(&resolved)?;
    let resolved_image = resolved
        .image
        .as_ref()
        .ok_or_else(|| anyhow!("image {} was not resolved", o.image))?;
    // The driver finds an image on a host by its Glance id's tag (driver/, TAG_FORMAT).
    let image = resolved_image
        .name
        .clone()
        .unwrap_or_else(|| resolved_image.id.clone());
    let tag = format!("glance/{}:latest", resolved_image.id);
    let t = match cx.compute(host).await {
        None => {
            return Err(hinted(
                format!("--host {host} is not in {}", o.inventory.display()),
                "--compare-prefetch removes the image on that host over SSH: add it to the inventory (its `nova_host` variable, if its nova name differs)",
            ));
        }
        Some(r) => r.map_err(|e| anyhow!(e).context(format!("cannot reach {host}")))?,
    };
    let probe = t
        .exec("command -v docker >/dev/null || { echo 'docker is not installed' >&2; exit 3; }")
        .await
        .map_err(|e| anyhow!(e.to_string()))?;
    if !probe.success() {
        return Err(hinted(
            format!("{host} does not run Docker"),
            "--compare-prefetch needs a Docker compute host",
        ));
    }
    printer::say(&format!(
        "{} {} × {} from {} on {host}: first with the image removed before each boot, then with it present; one at a time (servers {}*)",
        printer::bold("boot-time --compare-prefetch:"),
        o.count,
        o.flavor,
        image,
        cx.prefix
    ));
    let mut fetched = PyOut::default();
    for i in 1..=o.count {
        let rmi = t
            .exec(&rmi_script(&tag))
            .await
            .map_err(|e| anyhow!(e.to_string()))?;
        if !rmi.success() {
            return Err(hinted(
                format!(
                    "cannot remove image {image} on {host}: {}",
                    String::from_utf8_lossy(&rmi.stderr).trim()
                ),
                "a container still uses it: --compare-prefetch needs a host where no other server runs this image",
            ));
        }
        let out = cx.boot("fetched-", i, 1, 1, true).await?;
        fetched.servers.extend(out.servers);
    }
    let fetched = cx.measure(&fetched).await;
    printer::say(&format!(
        "{} (image fetched from Glance)",
        printer::bold("image absent")
    ));
    printer::say(fetched.human().trim_end());
    // The fetched boots left the image on the host; were it gone, "present" would lie.
    let there = t
        .exec(&format!(
            "docker image inspect {} >/dev/null",
            crate::shell::quote(&tag)
        ))
        .await
        .map_err(|e| anyhow!(e.to_string()))?;
    if !there.success() {
        return Err(anyhow!(
            "image {image} is not on {host} after the boots that fetched it: {}",
            String::from_utf8_lossy(&there.stderr).trim()
        ));
    }
    let present = cx.boot("present-", 1, o.count, 1, true).await?;
    let present = cx.measure(&present).await;
    printer::say(&format!("{} (prefetched)", printer::bold("image present")));
    printer::say(present.human().trim_end());
    let r = ratio(&present, &fetched);
    if let (Some(r), Some(p), Some(f)) = (r, present.api(), fetched.api()) {
        printer::say(&format!(
            "ratio: {r:.1}× — median API → ACTIVE {} with the image fetched from Glance, {} with it present",
            secs(f.median),
            secs(p.median)
        ));
    }
    printer::say(&format!(
        "{} all {} servers deleted",
        printer::green("ok:"),
        2 * o.count
    ));
    if o.json {
        printer::json(&json!({
            "run": cx.prefix.trim_end_matches('-'),
            "flavor": o.flavor, "image": image, "host": host, "count": o.count, "network": o.network,
            "present": present.json(),
            "fetched": fetched.json(),
            "ratio": r.map(|x| (x * 100.0).round() / 100.0),
        }));
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the image so that the next boot has to fetch it; absent already is fine.
/// Removes the image `tag` names with every name it has: the driver then fetches it from
/// Glance. One that a container uses stays, and the removal fails.
fn rmi_script(tag: &str) -> String {
    let q = crate::shell::quote(tag);
    format!(
        "if id=$(docker image inspect -f '{{{{.Id}}}}' {q} 2>/dev/null); then docker image inspect -f '{{{{range .RepoTags}}}}{{{{println .}}}}{{{{end}}}}' \"$id\" | xargs -r docker rmi -- >/dev/null; fi"
    )
}

/// After Ctrl-C: stop the Python process (by the pid and start time it recorded, never by
/// name), after creating the abort file it checks before every create, then delete every
/// server of this run by its prefix.
async fn cleanup(cx: &Cx) -> Result<()> {
    let script = format!(
        "[ -d {dir} ] && [ ! -L {dir} ] && [ \"$(stat -c '%u %a' {dir})\" = \"$(id -u) 700\" ] || exit 1
(umask 077 && : >> {abort})
if [ -f {pid} ] && read -r p start < {pid}; then
  if [ \"$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f20)\" = \"$start\" ]; then
    kill -TERM \"$p\"
    i=0; while [ -d /proc/$p ] && [ $i -lt 3300 ]; do sleep 0.1; i=$((i+1)); done
  fi
fi",
        abort = crate::shell::quote(&cx.abortfile()),
        pid = crate::shell::quote(&cx.pidfile()),
        dir = crate::shell::quote(&cx.dir),
    );
    cx.controller
        .exec(&script)
        .await
        .map_err(|e| anyhow!(e.to_string()))?;
    let out = cx
        .py(json!({"mode": "sweep", "prefix": cx.prefix}), 420)
        .await;
    cx.check(&out?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_odd_even_and_single() {
        let s = stats([3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (s.n, s.min, s.median, s.p95, s.max),
            (3, 1.0, 2.0, 3.0, 3.0)
        );
        let s = stats([4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        let s = stats([0.7]).unwrap();
        assert_eq!((s.min, s.median, s.p95, s.max), (0.7, 0.7, 0.7, 0.7));
        assert!(stats([]).is_none());
        assert!(stats([f64::NAN]).is_none());
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        // 20 samples: the 19th smallest; 10 samples: the largest; 100: the 95th.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(stats(v).unwrap().p95, 19.0);
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(stats(v).unwrap().p95, 10.0);
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = stats(v).unwrap();
        assert_eq!((s.p95, s.median), (95.0, 50.5));
        // A missing figure is left out, not counted as zero.
        let s = stats([1.0, f64::NAN, 3.0]).unwrap();
        assert_eq!((s.n, s.median), (2, 2.0));
    }

    #[test]
    fn docker_start_events_parse() {
        let text = "15b1da30-66a3-4cdb-a053-8d6b7e81971d 1796029849455775953\n\
                    garbage\n\
                    a6d81f9c-2ee0-4f7e-b17b-4e50dc218a6e notanumber\n\
                    15b1da30-66a3-4cdb-a053-8d6b7e81971d 1796029999000000000\n";
        let m = parse_starts(text);
        assert_eq!(m.len(), 1);
        // the first start counts; microsecond precision survives the f64
        let t = m["15b1da30-66a3-4cdb-a053-8d6b7e81971d"];
        assert!((t - 1_796_029_849.455_776).abs() < 1e-5, "{t}");
    }

    fn exec(code: i32, stdout: &str, stderr: &str) -> ExecOutput {
        ExecOutput {
            code: Some(code),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn python_output_parses_into_samples() {
        let out = parse_py(&exec(0, r#"{"servers": [{"name": "bt-x-01", "id": "u1", "requested_at": 100.25, "status": "ACTIVE", "active_at": 101.0, "host": "cmp1", "created": 100.0, "launched_at": 102.0, "hypervisor_type": "docker"}], "left_behind": [], "error": null, "flavor": {"id": "f", "name": "d1.large"}, "image": {"id": "i", "name": "bt-big:latest", "size": 1, "container_format": "docker"}}"#, ""), 300).unwrap();
        assert_eq!(out.image.unwrap().name.as_deref(), Some("bt-big:latest"));
        let s = out.servers[0].sample(Some(100.75));
        assert_eq!(s.api_to_active, 0.75);
        assert_eq!(s.created_to_launched, Some(2.0));
        assert_eq!(s.to_container, Some(0.5));
        let m = Measured {
            samples: vec![s],
            notes: vec![],
        };
        let j = m.json();
        assert_eq!(j["summary"]["api_to_active_s"]["median"], 0.75);
        assert_eq!(j["hosts"]["cmp1"], 1);
        assert!(m.human().contains("API → ACTIVE (wall clock)"));
    }

    #[test]
    fn python_failures_become_one_line() {
        let e = parse_py(
            &exec(
                1,
                "",
                "error: python3-openstacksdk is not installed on this host\n",
            ),
            300,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "on the controller: python3-openstacksdk is not installed on this host"
        );
        let e = parse_py(&exec(124, "", ""), 300).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the OpenStack run did not finish within 300 s"
        );
        let e = parse_py(
            &exec(2, "", "sh: 1: .: cannot open /root/nope: No such file\n"),
            300,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("printed nothing (exit 2): sh: 1: .: cannot open /root/nope"),
            "{e}"
        );
        let out = parse_py(
            &exec(
                0,
                "noise\n{\"error\": {\"kind\": \"quota\", \"message\": \"Quota exceeded\"}}\n",
                "",
            ),
            300,
        )
        .unwrap();
        assert_eq!(out.error.unwrap().kind, "quota");
    }

    #[test]
    fn ratio_is_fetched_over_present_medians() {
        let m = |xs: &[f64]| Measured {
            samples: xs
                .iter()
                .map(|&x| Sample {
                    name: "s".into(),
                    id: "i".into(),
                    host: "cmp1".into(),
                    hypervisor_type: None,
                    api_to_active: x,
                    created_to_launched: None,
                    to_container: None,
                })
                .collect(),
            notes: vec![],
        };
        assert_eq!(
            ratio(&m(&[1.0, 2.0, 3.0]), &m(&[10.0, 20.0, 30.0])),
            Some(10.0)
        );
        assert_eq!(ratio(&m(&[]), &m(&[1.0])), None);
    }

    fn opts() -> Options {
        Options {
            inventory: "inv.yml".into(),
            flavor: "d1.large".into(),
            image: "bt-big:latest".into(),
            count: 10,
            concurrency: 2,
            host: None,
            network: None,
            json: false,
            compare_prefetch: false,
            timeout: 300,
            persist_secs: 0,
            connect_timeout_secs: 10,
            accept_new_host_keys: false,
        }
    }

    /// The whole error as printed: message, causes, hints.
    fn shown(e: &anyhow::Error) -> String {
        let mut s: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        for c in e.chain() {
            if let Some(h) = c.downcast_ref::<printer::Hinted>() {
                s.push(format!("hint: {}", h.hint));
            }
        }
        s.join("\n")
    }

    #[test]
    fn outcomes_explain_themselves() {
        let fail = |kind: &str, message: &str| PyOut {
            error: Some(PyError {
                kind: kind.into(),
                message: message.into(),
            }),
            ..PyOut::default()
        };
        assert!(outcome(&opts(), "bt-r-", &PyOut::default()).is_ok());
        let e = outcome(&opts(), "bt-r-", &fail("quota", "server bt-r-06 is ERROR: Quota exceeded for cores: Requested 4, but already used 20 of 20 cores")).unwrap_err();
        assert_eq!(
            shown(&e),
            "boot-time of 10 × d1.large from bt-big:latest failed\n\
             server bt-r-06 is ERROR: Quota exceeded for cores: Requested 4, but already used 20 of 20 cores\n\
             hint: raise the project's quota (`openstack quota set --instances N --cores N --ram MB PROJECT`) or boot fewer at once (--count 10, --concurrency 2)"
        );
        let e = outcome(
            &Options {
                host: Some("kvm1".into()),
                ..opts()
            },
            "bt-r-",
            &fail(
                "no_valid_host",
                "server bt-r-01 is ERROR: No valid host was found. ",
            ),
        )
        .unwrap_err();
        assert!(
            shown(&e).contains(
                "hint: no compute host passed the scheduler's filters for flavor d1.large on kvm1"
            ),
            "{}",
            shown(&e)
        );
        let e = outcome(
            &opts(),
            "bt-r-",
            &fail(
                "api",
                "creating a server: Compute host cmp9 could not be found.",
            ),
        )
        .unwrap_err();
        assert!(
            shown(&e).ends_with(
                "hint: --host takes a nova-compute host name: `openstack compute service list`"
            ),
            "{}",
            shown(&e)
        );
        // Servers left behind are said, on success as on failure.
        let left = PyOut {
            left_behind: vec!["bt-r-01".into()],
            ..PyOut::default()
        };
        assert_eq!(
            outcome(&opts(), "bt-r-", &left).unwrap_err().to_string(),
            "servers left behind after 300 s of deleting; `openstack server delete bt-r-01` deletes them"
        );
        let both = PyOut {
            sweep_error: Some("ConnectFailure: refused".into()),
            ..fail("api", "ConnectFailure: refused")
        };
        let e = outcome(&opts(), "bt-r-", &both).unwrap_err();
        assert_eq!(
            shown(&e),
            "boot-time of 10 × d1.large from bt-big:latest failed\n\
             could not make sure that every server of this run is deleted (ConnectFailure: refused); `openstack server list --name '^bt-r-'` lists them\n\
             ConnectFailure: refused"
        );
    }

    #[test]
    fn scripts_quote_and_escape() {
        assert_eq!(
            rmi_script("glance/a b:latest"),
            "if id=$(docker image inspect -f '{{.Id}}' 'glance/a b:latest' 2>/dev/null); then docker image inspect -f '{{range .RepoTags}}{{println .}}{{end}}' \"$id\" | xargs -r docker rmi -- >/dev/null; fi"
        );
        assert!(events_script(5).contains("--since 5 "));
        assert!(events_script(5).contains(
            "--format '{{index .Actor.Attributes \"novadock.instance\"}} {{.TimeNano}}'"
        ));
    }
}
