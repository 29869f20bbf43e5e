//! One host's run: connect, gather facts, plan each step against them and (in apply mode)
//! batch its changes, then the handlers; a failure stops what follows on this host only.

use super::batch::{Batched, Target, describe};
use super::build::build_step;
use super::once::{Once, Rolling};
use super::peers::Peers;
use super::schedule::{Connect, connect_options};
use super::{HostReport, Mode, Options, PENDING_FILE, Status, StepReport};
use crate::facts::{self, Facts, Probe};
use crate::inventory::{Host, Inventory};
use crate::plan::{self, Action, Outcome};
use crate::playbook::Playbook;
use crate::render::Renderer;
use crate::steps::{PlanCx, StepKind};
use crate::transport::{Held, Transport};
use std::collections::{BTreeMap, BTreeSet};
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
    /// `serial` handlers, by handler index.
    pub(super) rollings: Arc<BTreeMap<usize, Rolling>>,
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

enum StepFailure {
    /// This step failed (planning it, or asking the host again).
    Failed(String),
    /// Sending earlier changes failed; this step did not run.
    Stopped,
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

    async fn converge(
        &self,
        live: &mut Live,
        report: &mut HostReport,
        step_ids: &[usize],
    ) -> Result<(), String> {
        let vars = self.renderer.context(&self.host);
        let prepared: Vec<(usize, Prepared)> = step_ids
            .iter()
            .map(|&i| (i, self.prepare(i, &vars)))
            .collect();

        // All facts of all steps in one round trip, plus the handlers left pending.
        let mut probes: BTreeSet<Probe> = BTreeSet::new();
        probes.insert(Probe::File(PENDING_FILE.into()));
        for (_, p) in &prepared {
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
        let pending: Vec<String> = match live.facts.file(PENDING_FILE) {
            facts::FileFact::File { content, .. } => String::from_utf8_lossy(content)
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect(),
            _ => vec![],
        };

        let mut notified: BTreeSet<String> = BTreeSet::new();
        let mut stop: Option<&str> = None;
        // A batch of changes failed on the host: what followed it did not run.
        let mut sent_failed = false;
        for (idx, prep) in prepared {
            let step = &self.playbook.steps[idx];
            let mut r = StepReport {
                name: step.name.clone(),
                status: Status::Unchanged,
                summary: String::new(),
                diff: None,
                note: None,
                error: None,
                index: idx,
            };
            if self.abort.load(Ordering::SeqCst) && stop.is_none() {
                stop = Some("stopped by --fail-fast after a failure on another host");
            }
            if let Some(why) = stop {
                r.status = Status::Skipped;
                r.note = Some(why.to_string());
                report.steps.push(r);
                continue;
            }
            match prep {
                Prepared::Skipped(why) => {
                    r.status = Status::Skipped;
                    r.note = Some(why);
                }
                Prepared::Failed(e) => {
                    r.status = Status::Failed;
                    r.error = Some(e);
                    stop = Some("not run: an earlier step failed on this host");
                }
                Prepared::Ready(step_impl) => {
                    match self
                        .step(live, report, step_impl.as_ref(), &step.notify, &vars)
                        .await
                    {
                        Ok(o) => {
                            if o.changed() {
                                r.status = Status::Changed;
                                notified.extend(step.notify.iter().cloned());
                            }
                            r.summary = o.summary;
                            r.diff = o.diff;
                            r.note = o.note;
                            // --fail-fast trades batching for a stop between any two steps.
                            if self.opts.fail_fast && !live.batch.is_empty() {
                                report.steps.push(r);
                                if self.abort.load(Ordering::SeqCst) {
                                    let last = report.steps.len() - 1;
                                    live.batch.clear();
                                    report.steps[last].status = Status::Skipped;
                                    report.steps[last].note = Some(
                                        "stopped by --fail-fast after a failure on another host"
                                            .into(),
                                    );
                                    stop = Some(
                                        "stopped by --fail-fast after a failure on another host",
                                    );
                                    sent_failed = true;
                                } else if self.flush(live, report).await.is_err() {
                                    stop = Some("not run: an earlier change failed on this host");
                                    sent_failed = true;
                                    self.note_failure();
                                }
                                continue;
                            }
                        }
                        Err(StepFailure::Failed(e)) => {
                            r.status = Status::Failed;
                            r.error = Some(e);
                            stop = Some("not run: an earlier step failed on this host");
                        }
                        Err(StepFailure::Stopped) => {
                            r.status = Status::Skipped;
                            r.note = Some("not run: an earlier change failed on this host".into());
                            stop = Some("not run: an earlier change failed on this host");
                            sent_failed = true;
                        }
                    }
                }
            }
            report.steps.push(r);
        }

        self.handlers(live, report, &notified, &pending, sent_failed, &vars)
            .await;
        crate::printer::trace(|| format!("{}: planned", self.host.name));
        // Everything not sent yet goes in one round trip; failures are marked in the report.
        let _ = self.flush_last(live, report).await;
        crate::printer::trace(|| format!("{}: sent", self.host.name));
        Ok(())
    }

    /// Plan one step against the current facts; in apply mode its changes join the batch.
    async fn step(
        &self,
        live: &mut Live,
        report: &mut HostReport,
        s: &dyn StepKind,
        notify: &[String],
        vars: &minijinja::Value,
    ) -> Result<Outcome, StepFailure> {
        if self.opts.mode == Mode::Apply {
            let cmds: Vec<Probe> = s
                .probes()
                .into_iter()
                .filter(|p| matches!(p, Probe::Cmd(_)))
                .collect();
            if !cmds.is_empty() {
                // A batched command may change what this step's probes see: send the batch
                // first, then ask again.
                if live.batch.iter().any(|b| b.runs_commands) {
                    self.flush(live, report)
                        .await
                        .map_err(|()| StepFailure::Stopped)?;
                }
                if live.dirty {
                    let fresh = gather(live.transport.as_ref(), &cmds)
                        .await
                        .map_err(StepFailure::Failed)?;
                    live.facts.cmds.extend(fresh.cmds);
                }
            }
        }
        let outcome = s
            .plan(&PlanCx {
                facts: &live.facts,
                renderer: &self.renderer,
                vars,
            })
            .map_err(|e| StepFailure::Failed(e.to_string()))?;
        if outcome.changed() {
            self.execute(
                live,
                &outcome.actions,
                notify,
                Target::Step(report.steps.len()),
            );
        }
        Ok(outcome)
    }

    /// The one place where plan and apply differ: in apply mode, the actions join the batch
    /// that [`HostRun::flush`] sends; in plan mode they only update the facts.
    pub(super) fn execute(
        &self,
        live: &mut Live,
        actions: &[Action],
        notify: &[String],
        target: Target,
    ) {
        let needs_reload = live.units_changed
            && actions
                .iter()
                .any(|a| matches!(a, Action::Run { systemd: true, .. }));
        // Each action's script sees the facts as they are before it (a write is sent as an
        // edit of the content the facts hold); then the facts move on.
        let mut scripts = String::new();
        for a in actions {
            if self.opts.mode == Mode::Apply {
                let old = match a {
                    Action::Write { path, .. } => match live.facts.file(path) {
                        facts::FileFact::File { content, .. } => Some(content),
                        _ => None,
                    },
                    _ => None,
                };
                scripts.push_str(&plan::action_script(a, old));
            }
            plan::overlay(&mut live.facts, std::slice::from_ref(a));
        }
        let writes_units = actions.iter().any(|a| match a {
            Action::Write { path, .. }
            | Action::Remove { path, .. }
            | Action::Symlink { path, .. } => plan::is_unit_path(path),
            _ => false,
        });
        if needs_reload {
            live.units_changed = false;
        }
        live.units_changed |= writes_units;
        if self.opts.mode == Mode::Plan {
            return;
        }
        let mut script = String::new();
        if needs_reload {
            script.push_str("systemctl daemon-reload\n");
        }
        script.push_str(&scripts);
        live.batch.push(Batched {
            target,
            script,
            what: actions.iter().map(describe).collect(),
            runs_commands: actions.iter().any(|a| matches!(a, Action::Run { .. })),
            upload: actions.iter().find_map(|a| match a {
                Action::Upload(u) => Some(u.clone()),
                _ => None,
            }),
            dirs: plan::changed_dirs(actions),
            notify: notify.to_vec(),
        });
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
