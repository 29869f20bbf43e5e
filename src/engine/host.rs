//! One host's run: connect, gather facts, then the steps (steps.rs) and the handlers
//! (handlers.rs), then what is still batched; a failure stops what follows on this host only.

use super::batch::Batched;
use super::build::build_step;
use super::once::{Once, Rollings};
use super::peers::Peers;
use super::schedule::{Connect, connect_options};
use super::{HostReport, Options, PENDING_FILE};
use crate::facts::{self, Facts, Probe};
use crate::inventory::{Host, Inventory};
use crate::playbook::Playbook;
use crate::render::Renderer;
use crate::steps::StepKind;
use crate::transport::{Held, Transport};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Semaphore;

pub(super) struct HostRun {
    pub(super) host: Host,
    pub(super) step_ids: Vec<usize>,
    pub(super) playbook: Arc<Playbook>,
    pub(super) renderer: Arc<Renderer>,
    pub(super) inventory: Arc<Inventory>,
    pub(super) opts: Options,
    pub(super) abort: Arc<AtomicBool>,
    pub(super) peers: Arc<Peers>,
    pub(super) once: Arc<Once>,
    /// `serial` steps and handlers.
    pub(super) rollings: Arc<Rollings>,
    pub(super) forks: Arc<Semaphore>,
    /// This host's fork slot; given back while it waits for another host's run.
    pub(super) permit: tokio::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    pub(super) connector: Arc<dyn Connect>,
}

/// What the host-side state of one run is.
pub(super) struct Live {
    pub(super) transport: Box<dyn Transport>,
    pub(super) lock: Option<Box<dyn Held>>,
    pub(super) facts: Facts,
    /// A command ran on the host: command probes may be stale.
    pub(super) dirty: bool,
    /// A systemd unit file changed: `daemon-reload` before the next systemctl.
    pub(super) units_changed: bool,
    /// Changes planned but not yet sent: they go to the host in one script.
    pub(super) batch: Vec<Batched>,
}

pub(super) enum Prepared {
    Skipped(String),
    Failed(String),
    Ready(Box<dyn StepKind + Send + Sync>),
}

impl HostRun {
    pub(super) async fn run(self) -> HostReport {
        let mut report = HostReport {
            name: self.host.name.clone(),
            address: self.host.address_str().to_string(),
            steps: vec![],
            handlers: vec![],
            error: None,
            round_trips: 0,
            facts: None,
        };
        let connected = self.connect().await;
        self.once.reached(&self.host.name, connected.is_ok());
        let transport = match connected {
            Ok(t) => {
                crate::printer::trace(|| format!("{}: connected", self.host.name));
                t
            }
            Err(e) => {
                report.error = Some(e);
                self.note_failure();
                return report;
            }
        };
        // A run_once step runs here only if no host before this one in its list is up.
        while let Some(before) = self.once.waits_for(&self.host.name, &self.step_ids) {
            self.without_fork_slot(self.once.wait(&before)).await;
        }
        let step_ids = self.once.keep(&self.host.name, &self.step_ids);
        let mut live = Live {
            transport,
            lock: None,
            facts: Facts::default(),
            dirty: false,
            units_changed: false,
            batch: Vec::new(),
        };
        let result = self.converge(&mut live, &mut report, &step_ids).await;
        if let Err(e) = result {
            report.error = Some(e);
        }
        if report.failed() {
            self.note_failure();
        }
        drop(live.lock.take());
        report.round_trips = live.transport.round_trips();
        live.transport.close(self.opts.persist_secs > 0).await;
        report
    }

    pub(super) fn note_failure(&self) {
        if self.opts.fail_fast {
            self.abort.store(true, Ordering::SeqCst);
        }
    }

    async fn connect(&self) -> Result<Box<dyn Transport>, String> {
        let o = connect_options(&self.inventory, &self.opts);
        self.connector.connect(&self.host, &o).await
    }

    fn prepare(&self, idx: usize, vars: &minijinja::Value) -> Prepared {
        let step = &self.playbook.steps[idx];
        if let Some(when) = &step.when {
            match self.renderer.condition(when, vars) {
                Ok(true) => {}
                Ok(false) => return Prepared::Skipped(format!("when: {when}")),
                Err(e) => return Prepared::Failed(e.to_string()),
            }
        }
        self.build(step.kind, &step.args, step.loop_over.as_ref(), vars, false)
    }

    pub(super) fn build(
        &self,
        kind: &str,
        args: &serde_yaml::Value,
        loop_over: Option<&serde_yaml::Value>,
        vars: &minijinja::Value,
        handler: bool,
    ) -> Prepared {
        let limit = self.opts.limit.as_deref();
        match build_step(
            &self.renderer,
            &self.inventory,
            limit,
            kind,
            args,
            loop_over,
            vars,
            handler,
        ) {
            Ok(s) => Prepared::Ready(s),
            Err(e) => Prepared::Failed(e),
        }
    }

    /// The state machine of a host's run: every step's facts in one round trip, then each
    /// step in playbook order (a failure stops the ones after it on this host), then the
    /// handlers, then whatever is still batched, in one script.
    async fn converge(
        &self,
        live: &mut Live,
        report: &mut HostReport,
        step_ids: &[usize],
    ) -> Result<(), String> {
        // Rendered first for a Debian host (the facts' probes come from the rendered steps);
        // a host of another distribution is rendered again with its own `distro`, and the
        // probes that changed are read in one more round trip.
        let assumed = crate::distro::assumed();
        let mut vars = self.renderer.context_with(&self.host, &assumed);
        let mut prepared: Vec<(usize, Prepared)> = step_ids
            .iter()
            .map(|&i| (i, self.prepare(i, &vars)))
            .collect();
        let pending = self.facts(live, report, &prepared).await?;
        let distro = crate::distro::detect(&live.facts)?;
        if distro != assumed {
            vars = self.renderer.context_with(&self.host, &distro);
            prepared = step_ids
                .iter()
                .map(|&i| (i, self.prepare(i, &vars)))
                .collect();
            self.more_facts(live, report, &prepared).await?;
        }
        let (notified, sent_failed) = self.steps(live, report, prepared, &vars).await;
        self.handlers(live, report, &notified, &pending, sent_failed, &vars)
            .await;
        crate::printer::trace(|| format!("{}: planned", self.host.name));
        // Everything not sent yet goes in one round trip; failures are marked in the report.
        let _ = self.flush_last(live, report).await;
        crate::printer::trace(|| format!("{}: sent", self.host.name));
        Ok(())
    }

    /// The facts of all `prepared` steps in one round trip (or those of the confirmed plan),
    /// then the other hosts' files they read; the handlers left pending by an interrupted run.
    async fn facts(
        &self,
        live: &mut Live,
        report: &mut HostReport,
        prepared: &[(usize, Prepared)],
    ) -> Result<Vec<String>, String> {
        let mut probes: BTreeSet<Probe> = BTreeSet::new();
        probes.insert(Probe::File(PENDING_FILE.into()));
        probes.extend(crate::distro::probes());
        for (_, p) in prepared {
            if let Prepared::Ready(s) = p {
                probes.extend(s.probes());
            }
        }
        let planned = self
            .opts
            .planned_facts
            .as_ref()
            .and_then(|f| f.get(&self.host.name));
        let (peer_probes, probes): (Vec<Probe>, Vec<Probe>) = probes
            .into_iter()
            .partition(|p| matches!(p, Probe::Peer { .. }));
        live.facts = match planned {
            Some(f) => f.clone(),
            None => gather(live.transport.as_ref(), &probes)
                .await
                .map_err(|e| self.explain_sudo(e))?,
        };
        crate::printer::trace(|| format!("{}: facts", self.host.name));
        // Other hosts' files are read afresh even for a confirmed plan: a key the plan said
        // would be generated exists now.
        self.read_peers(&peer_probes, &mut live.facts).await;
        if self.opts.keep_facts {
            report.facts = Some(live.facts.clone());
        }
        Ok(match live.facts.file(PENDING_FILE) {
            facts::FileFact::File { content, .. } => String::from_utf8_lossy(content)
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect(),
            _ => vec![],
        })
    }
}

impl HostRun {
    /// The probes of `prepared` that the facts do not answer yet, in one round trip (none
    /// when they are all answered), and the other hosts' files they read.
    async fn more_facts(
        &self,
        live: &mut Live,
        report: &mut HostReport,
        prepared: &[(usize, Prepared)],
    ) -> Result<(), String> {
        let mut missing: BTreeSet<Probe> = BTreeSet::new();
        for (_, p) in prepared {
            if let Prepared::Ready(s) = p {
                missing.extend(s.probes().into_iter().filter(|p| {
                    match p {
                        Probe::File(f) => !live.facts.files.contains_key(f),
                        Probe::Cmd(c) => !live.facts.cmds.contains_key(c),
                        Probe::Peer { host, paths, .. } => !live
                            .facts
                            .peers
                            .contains_key(&(host.clone(), paths.join("\n"))),
                    }
                }));
            }
        }
        let (peer_probes, probes): (Vec<Probe>, Vec<Probe>) = missing
            .into_iter()
            .partition(|p| matches!(p, Probe::Peer { .. }));
        let planned = self
            .opts
            .planned_facts
            .as_ref()
            .is_some_and(|f| f.contains_key(&self.host.name));
        if !probes.is_empty() && !planned {
            let more = gather(live.transport.as_ref(), &probes)
                .await
                .map_err(|e| self.explain_sudo(e))?;
            live.facts.files.extend(more.files);
            live.facts.cmds.extend(more.cmds);
        }
        self.read_peers(&peer_probes, &mut live.facts).await;
        if self.opts.keep_facts {
            report.facts = Some(live.facts.clone());
        }
        Ok(())
    }
}

pub(super) async fn gather(t: &dyn Transport, probes: &[Probe]) -> Result<Facts, String> {
    let run = |each: bool| async move {
        let marker = facts::new_marker();
        let script = if each {
            facts::script_each(probes, &marker)
        } else {
            facts::script(probes, &marker)
        };
        let out = t.exec(&script).await.map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(format!(
                "gathering facts failed (exit {}): {}",
                out.code.map_or("signal".into(), |c| c.to_string()),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(if each {
            facts::parse_each(probes, &marker, &out.stdout)
        } else {
            facts::parse(probes, &marker, &out.stdout)
        })
    };
    match run(false).await? {
        // A file changed between `stat` and `cat`: read them one by one.
        Err(facts::FactsError::Raced) => run(true).await?.map_err(|e| e.to_string()),
        r => r.map_err(|e| e.to_string()),
    }
}
