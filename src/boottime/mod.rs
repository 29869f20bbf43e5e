//! `novadock boot-time`: how long servers take to boot, measured properly (issue 7).
//!
//! One python3 (openstacksdk) process on the controller boots the servers and times them,
//! so no CLI start-up lands in the figures: the clock starts right before each create request
//! and stops at the first status poll that sees ACTIVE (polled every 0.05 s: one GET per server
//! while at most 3 wait, else one list call per round). Nova's own `created` → `launched_at` is kept too (1 s resolution). On Docker hosts,
//! the container's start comes from dockerd's event log, which still has it after the
//! container is gone: that lets the Python process delete every server itself, in a `finally`,
//! whatever happens. Ctrl-C signals it and sweeps by the run's name prefix (see `cleanup`).

mod compare;
mod controller;
mod output;
mod stats;

use crate::cloud::Cloud;
use crate::inventory::{Host, Inventory};
use crate::printer;
use crate::transport::Transport;
use anyhow::{Result, anyhow};
use controller::Cx;
use serde_json::json;
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
async fn main_flow(cx: &Cx) -> Result<ExitCode> {
    if cx.o.compare_prefetch {
        return compare::compare(cx).await;
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
