//! The engine: per host, connect → facts → plan → (apply) → handlers.
//!
//! Plan and apply are the same walk over the steps; the only difference is whether the
//! actions are executed, and that is decided in exactly one place ([`HostRun::execute`]).

use crate::facts::{self, Facts, Probe};
use crate::inventory::{Host, Inventory};
use crate::plan::{self, Action, Outcome, PRELUDE};
use crate::playbook::Playbook;
use crate::render::Renderer;
use crate::shell::quote;
use crate::steps::{self, PlanCx, StepKind};
use crate::transport::{ExecOutput, Held, Transport};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Semaphore;

mod once;
use once::{Once, Rolling};

pub(crate) const PENDING_FILE: &str = "/var/lib/novadock/pending-handlers";
/// In a directory only root can enter: /run/lock is world-writable, so any local user could
/// hold a lock there (or plant a symlink in its place).
pub(crate) const LOCK_FILE: &str = "/run/novadock/lock";
/// Shell that makes /run/novadock (0700) and checks that it is root's own directory; on
/// stdout too, where the lock holder's answer is read.
const LOCK_DIR_SH: &str = "[ -d /run/novadock ] || mkdir -m 700 /run/novadock\n\
     if [ -L /run/novadock ] || [ ! -O /run/novadock ]; then\n\
     \tnd_e='/run/novadock is not a directory of root only; remove it'\n\
     \tprintf 'novadock: %s\\n' \"$nd_e\"; printf 'novadock: %s\\n' \"$nd_e\" >&2; exit 3\n\
     fi\n";
/// What a script that found the apply lock taken prints, and its exit code.
const LOCK_HELD: &str = "novadock-lock-held ";
const LOCK_HELD_CODE: i32 = 75;
/// Waits for a restarted unit to be active again (`serial` handlers).
const WAIT_ACTIVE_SH: &str = include_str!("engine/wait-active.sh");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Plan,
    Apply,
}

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) mode: Mode,
    pub(crate) forks: usize,
    pub(crate) fail_fast: bool,
    pub(crate) persist_secs: u64,
    pub(crate) accept_new_host_keys: bool,
    pub(crate) connect_timeout_secs: u64,
    pub(crate) run_id: String,
    /// Facts from the plan the user confirmed: apply works from exactly what was shown, and
    /// every write then checks that its file still is what the plan saw.
    pub(crate) planned_facts: Option<Arc<BTreeMap<String, Facts>>>,
    /// `--limit`, as host names.
    pub(crate) limit: Option<Arc<BTreeSet<String>>>,
    /// Keep each host's facts in its report (for an apply confirmed after this plan); they
    /// hold whole config files, so only when needed.
    pub(crate) keep_facts: bool,
    /// For an apply of a confirmed plan: the host each `run_once` step was planned on.
    pub(crate) once_hosts: Option<Arc<BTreeMap<usize, String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Unchanged,
    Changed,
    Failed,
    Skipped,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Unchanged => "unchanged",
            Status::Changed => "changed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StepReport {
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) summary: String,
    pub(crate) diff: Option<String>,
    pub(crate) note: Option<String>,
    pub(crate) error: Option<String>,
    /// Index in the playbook (steps) or handler order (handlers).
    pub(crate) index: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct HostReport {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) steps: Vec<StepReport>,
    pub(crate) handlers: Vec<StepReport>,
    /// Set when the host could not be worked on at all (unreachable, locked).
    pub(crate) error: Option<String>,
    pub(crate) round_trips: u64,
    /// The facts as gathered, before any step ran.
    pub(crate) facts: Option<Facts>,
}

impl HostReport {
    pub(crate) fn failed(&self) -> bool {
        self.error.is_some()
            || self
                .steps
                .iter()
                .chain(&self.handlers)
                .any(|s| s.status == Status::Failed)
    }
}

pub(crate) struct Engine {
    pub(crate) inventory: Arc<Inventory>,
    pub(crate) playbook: Arc<Playbook>,
    pub(crate) renderer: Arc<Renderer>,
    /// Hosts to run on, in inventory order, each with the indices of its steps.
    pub(crate) targets: Vec<(Host, Vec<usize>)>,
}

impl Engine {
    pub(crate) async fn run(
        &self,
        opts: &Options,
        progress: &indicatif::ProgressBar,
    ) -> Vec<HostReport> {
        let forks = Arc::new(Semaphore::new(opts.forks.max(1)));
        let abort = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Peers::new(
            self.inventory.clone(),
            opts,
            self.targets.iter().map(|(h, _)| h.name.clone()),
        ));
        let once = Arc::new(Once::new(
            &self.playbook,
            &self.targets,
            opts.once_hosts.as_deref(),
        ));
        let rollings = Arc::new(once::rollings(&self.playbook));
        let mut tasks = Vec::new();
        for (host, steps) in &self.targets {
            let once = once.clone();
            let rollings = rollings.clone();
            let forks = forks.clone();
            let abort = abort.clone();
            let peers = peers.clone();
            let progress = progress.clone();
            let host = host.clone();
            let steps = steps.clone();
            let playbook = self.playbook.clone();
            let renderer = self.renderer.clone();
            let inventory = self.inventory.clone();
            let opts = opts.clone();
            tasks.push(tokio::spawn(async move {
                let permit = forks
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let name = host.name.clone();
                let run = HostRun {
                    host,
                    step_ids: steps,
                    playbook,
                    renderer,
                    inventory,
                    opts,
                    abort,
                    peers: peers.clone(),
                    once,
                    rollings,
                    forks,
                    permit: tokio::sync::Mutex::new(Some(permit)),
                };
                progress.set_message(name.clone());
                let report = run.run().await;
                peers.finished(&name);
                progress.inc(1);
                report
            }));
        }
        let mut reports = Vec::new();
        for t in tasks {
            reports.push(t.await.expect("host task panicked"));
        }
        reports
    }
}

/// Other hosts' files a step needs (a key the controller generates, host keys to pin), read
/// over those hosts' own connections; a read `after_run` waits until this run is done there.
pub(crate) struct Peers {
    inventory: Arc<Inventory>,
    connect: crate::transport::ConnectOptions,
    done: BTreeMap<
        String,
        (
            tokio::sync::watch::Sender<bool>,
            tokio::sync::watch::Receiver<bool>,
        ),
    >,
}

impl Peers {
    fn new(
        inventory: Arc<Inventory>,
        opts: &Options,
        targets: impl Iterator<Item = String>,
    ) -> Peers {
        Peers {
            connect: connect_options(&inventory, opts),
            inventory,
            done: targets
                .map(|t| (t, tokio::sync::watch::channel(false)))
                .collect(),
        }
    }

    fn finished(&self, host: &str) {
        if let Some((tx, _)) = self.done.get(host) {
            tx.send_replace(true);
        }
    }

    /// Whether reading `host` after its run has to wait.
    fn pending(&self, host: &str) -> bool {
        self.done.get(host).is_some_and(|(_, rx)| !*rx.borrow())
    }

    async fn wait(&self, host: &str) {
        if let Some((_, rx)) = self.done.get(host) {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|d| *d).await;
        }
    }

    async fn read(&self, host: &str, paths: &[String]) -> Result<Option<String>, String> {
        let h = self
            .inventory
            .host(host)
            .ok_or_else(|| format!("`{host}` is not a host of this inventory"))?;
        let connect = &self.connect;
        let t = crate::transport::connect(h, connect)
            .await
            .map_err(|e| format!("reading {host}: {e}"))?;
        let out = t.exec(&facts::peer_script(paths)).await;
        t.close(connect.persist_secs > 0).await;
        let out = out.map_err(|e| format!("reading {host}: {e}"))?;
        if !out.success() {
            return Err(format!(
                "reading {} on {host} failed: {}",
                paths.join(", "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(facts::parse_peer(&String::from_utf8_lossy(&out.stdout)))
    }
}

struct HostRun {
    host: Host,
    step_ids: Vec<usize>,
    playbook: Arc<Playbook>,
    renderer: Arc<Renderer>,
    inventory: Arc<Inventory>,
    opts: Options,
    abort: Arc<AtomicBool>,
    peers: Arc<Peers>,
    once: Arc<Once>,
    /// `serial` handlers, by handler index.
    rollings: Arc<BTreeMap<usize, Rolling>>,
    forks: Arc<Semaphore>,
    /// This host's fork slot; given back while it waits for another host's run.
    permit: tokio::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

/// What the host-side state of one run is.
struct Live {
    transport: Box<dyn Transport>,
    lock: Option<Box<dyn Held>>,
    facts: Facts,
    /// A command ran on the host: command probes may be stale.
    dirty: bool,
    /// A systemd unit file changed: `daemon-reload` before the next systemctl.
    units_changed: bool,
    /// Changes planned but not yet sent: they go to the host in one script.
    batch: Vec<Batched>,
}

/// Where a batched change reports to.
#[derive(Debug, Clone, Copy)]
enum Target {
    Step(usize),
    Handler(usize),
}

struct Batched {
    target: Target,
    script: String,
    /// What the change does, for the error message when it fails.
    what: Vec<String>,
    runs_commands: bool,
    /// Sent after `script`: not a script, the engine carries it.
    upload: Option<plan::UploadSpec>,
    /// Directories whose entries change: synced at the end of the script.
    dirs: Vec<String>,
    /// Handlers this change notifies.
    notify: Vec<String>,
}

enum StepFailure {
    /// This step failed (planning it, or asking the host again).
    Failed(String),
    /// Sending earlier changes failed; this step did not run.
    Stopped,
}

enum Prepared {
    Skipped(String),
    Failed(String),
    Ready(Box<dyn StepKind + Send + Sync>),
}

impl HostRun {
    async fn run(self) -> HostReport {
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

    async fn read_peers(&self, probes: &[Probe], facts: &mut Facts) {
        for p in probes {
            let Probe::Peer {
                host,
                paths,
                after_run,
            } = p
            else {
                continue;
            };
            if *after_run && *host != self.host.name && self.peers.pending(host) {
                self.without_fork_slot(self.peers.wait(host)).await;
            }
            let r = self.peers.read(host, paths).await;
            facts.peers.insert((host.clone(), paths.join("\n")), r);
        }
    }

    /// Wait for another host with this host's fork slot given back, or a small --forks
    /// could deadlock.
    async fn without_fork_slot<F: std::future::Future<Output = ()>>(&self, wait: F) {
        drop(self.permit.lock().await.take());
        wait.await;
        let permit = self
            .forks
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        *self.permit.lock().await = Some(permit);
    }

    fn note_failure(&self) {
        if self.opts.fail_fast {
            self.abort.store(true, Ordering::SeqCst);
        }
    }

    async fn connect(&self) -> Result<Box<dyn Transport>, String> {
        crate::transport::connect(&self.host, &connect_options(&self.inventory, &self.opts)).await
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

    fn build(
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

        // Handlers: in their declared order, once, if notified now or left pending by an
        // interrupted run. After a failed step they still run for what did change; after a
        // change failed on the host they stay pending for the next apply.
        for (hidx, h) in self.playbook.handlers.iter().enumerate() {
            let from_pending = pending.contains(&h.name);
            if !notified.contains(&h.name) && !from_pending {
                continue;
            }
            let notes: Vec<String> = [
                (from_pending && !notified.contains(&h.name))
                    .then(|| "pending from an interrupted run".to_string()),
                h.serial.map(once::serial_note),
            ]
            .into_iter()
            .flatten()
            .collect();
            let mut r = StepReport {
                name: h.name.clone(),
                status: Status::Changed,
                summary: String::new(),
                diff: None,
                note: (!notes.is_empty()).then(|| notes.join("; ")),
                error: None,
                index: hidx,
            };
            let skip = |mut r: StepReport, why: String, report: &mut HostReport| {
                r.status = Status::Skipped;
                r.note = Some(why);
                report.handlers.push(r);
            };
            const STILL_PENDING: &str =
                "not run after a failed change; still pending for the next apply";
            if sent_failed {
                skip(r, STILL_PENDING.into(), report);
                continue;
            }
            // A rolling run: this host's changes go first (the restart is for them), then it
            // waits for its turn, and its turn ends once the unit is active again.
            let rolling = self
                .rollings
                .get(&hidx)
                .filter(|_| self.opts.mode == Mode::Apply);
            let mut turn = None;
            if let Some(rolling) = rolling {
                if self.flush(live, report).await.is_err() {
                    sent_failed = true;
                    skip(r, STILL_PENDING.into(), report);
                    continue;
                }
                match rolling.turn().await {
                    Ok(t) => turn = Some(t),
                    Err(at) => {
                        let why = format!(
                            "not run: the rolling restart stopped at {at}; still pending for the next apply"
                        );
                        skip(r, why, report);
                        continue;
                    }
                }
            }
            match self.build(h.kind, &h.args, None, &vars, true) {
                Prepared::Ready(s) => {
                    let wait = self.wait_active(h, &vars);
                    match self.handler(live, report, s.as_ref(), &h.name, &vars, wait) {
                        Ok(o) => r.summary = o.summary,
                        Err(e) => {
                            r.status = Status::Failed;
                            r.error = Some(e);
                        }
                    }
                }
                Prepared::Failed(e) | Prepared::Skipped(e) => {
                    r.status = Status::Failed;
                    r.error = Some(e);
                }
            }
            let failed = r.status == Status::Failed;
            report.handlers.push(r);
            if let (Some(rolling), Some(turn)) = (rolling, turn) {
                let mut done = !failed;
                if done && self.flush(live, report).await.is_err() {
                    sent_failed = true;
                    done = false;
                }
                if !done {
                    rolling.stop_at(&self.host.name).await;
                }
                drop(turn);
            }
        }
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

    /// For a `serial` service handler that leaves its unit running: the unit and how long to
    /// wait for it to be active again.
    fn wait_active(
        &self,
        h: &crate::playbook::Handler,
        vars: &minijinja::Value,
    ) -> Option<(String, u64)> {
        if h.serial.is_none() || h.kind != "service" {
            return None;
        }
        let args = self.renderer.render_value(&h.args, vars).ok()?;
        if args.get("state").and_then(|v| v.as_str()) == Some("stopped") {
            return None;
        }
        let unit = args.get("name")?.as_str()?.to_string();
        Some((unit, h.active_timeout))
    }

    fn handler(
        &self,
        live: &mut Live,
        report: &HostReport,
        s: &dyn StepKind,
        name: &str,
        vars: &minijinja::Value,
        wait_active: Option<(String, u64)>,
    ) -> Result<Outcome, String> {
        let outcome = s
            .plan(&PlanCx {
                facts: &live.facts,
                renderer: &self.renderer,
                vars,
            })
            .map_err(|e| e.to_string())?;
        // Cleared only after the handler's own actions succeeded (`set -e`).
        let post = format!(
            "# forget the pending handler (it ran)\n\
             if [ -f {f} ]; then\n\
             \twhile IFS= read -r nd_l; do if [ \"$nd_l\" != {n} ]; then printf '%s\\n' \"$nd_l\"; fi; done < {f} > {f}.tmp\n\
             \tmv -f {f}.tmp {f}\n\
             fi\n",
            f = PENDING_FILE,
            n = quote(name)
        );
        let mut actions = outcome.actions.clone();
        if let Some((unit, secs)) = wait_active {
            actions.push(Action::Run {
                command: format!(
                    "# wait until {unit} is active again (at most {secs} s)\nnd_unit={}\nnd_wait={secs}\n{WAIT_ACTIVE_SH}",
                    quote(&unit)
                ),
                systemd: false,
            });
        }
        actions.push(Action::Run {
            command: post,
            systemd: false,
        });
        self.execute(live, &actions, &[], Target::Handler(report.handlers.len()));
        Ok(outcome)
    }

    /// The one place where plan and apply differ: in apply mode, the actions join the batch
    /// that [`HostRun::flush`] sends; in plan mode they only update the facts.
    fn execute(&self, live: &mut Live, actions: &[Action], notify: &[String], target: Target) {
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

    /// Send every batched change in one script. On failure, the change that failed and the
    /// ones after it (which did not run) are marked in the report.
    async fn flush(&self, live: &mut Live, report: &mut HostReport) -> Result<(), ()> {
        self.flush_with(live, report, false).await
    }

    /// The run's last [`HostRun::flush`]: when it is the only script of the run (and carries
    /// no upload), it takes the apply lock itself, which saves a round trip.
    async fn flush_last(&self, live: &mut Live, report: &mut HostReport) -> Result<(), ()> {
        let inline = live.lock.is_none() && live.batch.iter().all(|b| b.upload.is_none());
        self.flush_with(live, report, inline).await
    }

    async fn flush_with(
        &self,
        live: &mut Live,
        report: &mut HostReport,
        lock_inline: bool,
    ) -> Result<(), ()> {
        if live.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut live.batch);
        if lock_inline {
            return self.send(live, report, &batch, true).await;
        }
        if let Err(e) = self.lock(live).await {
            failed_all(report, &batch, &e);
            return Err(());
        }
        // Scripts go in one piece up to each upload, which runs after its own script part.
        let mut start = 0;
        while start < batch.len() {
            let end = batch[start..]
                .iter()
                .position(|b| b.upload.is_some())
                .map_or(batch.len(), |p| start + p + 1);
            let group = &batch[start..end];
            let mut failed = self.send(live, report, group, false).await.is_err();
            if !failed
                && let Some(u) = &group[group.len() - 1].upload
                && let Err(e) = self.upload(u).await
            {
                let r = slot(report, group[group.len() - 1].target);
                r.status = Status::Failed;
                r.error = Some(format!(
                    "{}: upload {} to Glance: {e}",
                    self.host.name, u.name
                ));
                failed = true;
            }
            if failed {
                not_run(report, &batch[end..]);
                return Err(());
            }
            start = end;
        }
        Ok(())
    }

    /// `image add` from the engine: the controller is this host.
    async fn upload(&self, u: &plan::UploadSpec) -> Result<(), String> {
        let source = if u.from_host.is_empty() {
            crate::image::Source::File(std::path::PathBuf::from(&u.file))
        } else {
            crate::image::Source::Host(
                self.inventory
                    .host(&u.from_host)
                    .cloned()
                    .ok_or_else(|| format!("`{}` is not a host of this inventory", u.from_host))?,
            )
        };
        let cfg = crate::image::AddConfig {
            controller: self.host.clone(),
            auth: u.auth.clone(),
            connect: connect_options(&self.inventory, &self.opts),
            name: u.name.clone(),
            source,
            replace: false,
            public: u.public,
            // A random name, as `image add`'s: a predictable one (it was run id and host)
            // could be planted by a local user and stop the upload (issue 14, finding 1).
            spool_dir: crate::image::spool_dir(&format!("image-{}", self.opts.run_id))?,
        };
        crate::image::add(&cfg)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Send `batch`'s scripts as one. On failure, the change that failed and the ones after it
    /// (which did not run) are marked in the report.
    async fn send(
        &self,
        live: &mut Live,
        report: &mut HostReport,
        batch: &[Batched],
        lock_inline: bool,
    ) -> Result<(), ()> {
        let marker = facts::new_marker();
        let mut script = format!("ND_RUN={}\n{PRELUDE}", quote(&self.opts.run_id));
        if lock_inline {
            // Held by this script's shell until it exits: the whole of this run's changes.
            script.push_str(&format!(
                "{LOCK_DIR_SH}\
                 exec 9>>{LOCK_FILE}\n\
                 if ! flock -n 9; then printf '{LOCK_HELD} %s\\n' \"$(head -n 1 {LOCK_FILE})\"; exit {LOCK_HELD_CODE}; fi\n\
                 printf '%s\\n' {} > {LOCK_FILE}\n",
                quote(&self.lock_owner())
            ));
        }
        // Recorded before any change is written: a run killed in between still restarts the
        // services next time (at worst once too often).
        script.push_str(&command_of_all(
            "nd_pending",
            batch.iter().flat_map(|b| &b.notify),
        ));
        for (i, b) in batch.iter().enumerate() {
            script.push_str(&format!("printf '\\n%s {i}\\n' {}\n", quote(&marker)));
            script.push_str(&b.script);
        }
        script.push_str(&command_of_all(
            "sync --",
            batch.iter().flat_map(|b| &b.dirs),
        ));
        crate::printer::trace(|| {
            format!("{}: locked, sending {} bytes", self.host.name, script.len())
        });
        let out = match live.transport.exec(&script).await {
            Ok(out) => out,
            Err(e) => {
                failed_all(report, batch, &e.to_string());
                return Err(());
            }
        };
        if batch.iter().any(|b| b.runs_commands) {
            live.dirty = true;
        }
        if out.success() {
            return Ok(());
        }
        if lock_inline
            && out.code == Some(LOCK_HELD_CODE)
            && let Some(holder) = String::from_utf8_lossy(&out.stdout)
                .strip_prefix(LOCK_HELD)
                .map(|h| h.trim().to_string())
        {
            failed_all(report, batch, &self.held_by(&holder));
            return Err(());
        }
        // The output of each change follows its marker; the last marker seen is the failure.
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut segments: Vec<(usize, String)> = Vec::new();
        for part in stdout.split(&format!("\n{marker} ")).skip(1) {
            let (n, rest) = part.split_once('\n').unwrap_or((part, ""));
            if let Ok(n) = n.trim().parse() {
                segments.push((n, rest.to_string()));
            }
        }
        let (failed, failed_out) = segments.pop().unwrap_or((0, String::new()));
        let r = slot(report, batch[failed].target);
        let seen = ExecOutput {
            code: out.code,
            stdout: failed_out.into_bytes(),
            stderr: out.stderr.clone(),
        };
        r.status = Status::Failed;
        r.error = Some(command_failure(&self.host.name, &batch[failed].what, &seen));
        not_run(report, &batch[failed + 1..]);
        Err(())
    }

    /// sudo's own words ("a password is required") do not say what to do about it.
    fn explain_sudo(&self, e: String) -> String {
        if e.contains("sudo: a password is required") || e.contains("sudo: a terminal is required")
        {
            format!(
                "{} cannot run sudo without a password on {}\nhint: give it NOPASSWD in sudoers (novadock runs `sudo -n sh -s`), or connect as root\n({e})",
                self.host.user, self.host.name
            )
        } else {
            e
        }
    }

    /// Who holds the apply lock, as the lock file says.
    fn lock_owner(&self) -> String {
        format!(
            "novadock run {} (pid {} on {}, user {})",
            self.opts.run_id,
            std::process::id(),
            hostname(),
            std::env::var("USER").unwrap_or_else(|_| "?".into())
        )
    }

    fn held_by(&self, holder: &str) -> String {
        let mut e = format!(
            "{} is locked by another apply: {}",
            self.host.name,
            crate::printer::escape_line(holder)
        );
        // A run killed here: the script it sent goes on, and holds the lock, until it is done.
        let gone = holder
            .split_once("(pid ")
            .and_then(|(_, r)| r.split_once(" on "))
            .and_then(|(pid, r)| {
                let here = r.split_once(',').is_some_and(|(h, _)| h == hostname());
                (here && !std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
            })
            .is_some();
        if gone {
            e.push_str(&format!(
                "\nhint: that novadock process has ended, but the changes it sent are still running on {}; apply again once they are done",
                self.host.name
            ));
        }
        e
    }

    async fn lock(&self, live: &mut Live) -> Result<(), String> {
        if live.lock.is_some() {
            return Ok(());
        }
        let who = self.lock_owner();
        let script = format!(
            "{LOCK_DIR_SH}\
             exec 9>>{LOCK_FILE}\n\
             if ! flock -n 9; then printf 'HELD %s\\n' \"$(head -n 1 {LOCK_FILE})\"; exit 0; fi\n\
             printf '%s\\n' {} > {LOCK_FILE}\n\
             echo LOCKED\n\
             cat >/dev/null\n",
            quote(&who)
        );
        let (line, guard) = live
            .transport
            .hold(&script)
            .await
            .map_err(|e| e.to_string())?;
        match line.strip_prefix("HELD ") {
            None if line == "LOCKED" => {
                live.lock = Some(guard);
                Ok(())
            }
            Some(holder) => Err(self.held_by(holder)),
            None => Err(format!(
                "could not take the apply lock on {}: {line:?}",
                self.host.name
            )),
        }
    }
}

/// Render a step's arguments for one host and build it (once per item with `loop`);
/// `check` and runs share this.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_step(
    renderer: &Renderer,
    inventory: &Inventory,
    limit: Option<&BTreeSet<String>>,
    kind: &str,
    args: &serde_yaml::Value,
    loop_over: Option<&serde_yaml::Value>,
    vars: &minijinja::Value,
    handler: bool,
) -> Result<Box<dyn StepKind + Send + Sync>, String> {
    if let Some(items) = loop_over {
        let items = match renderer
            .render_value(items, vars)
            .map_err(|e| e.to_string())?
        {
            serde_yaml::Value::Sequence(items) => items,
            other => {
                return Err(format!("loop: expected a list, got {}", yaml_kind(&other)));
            }
        };
        let mut built = Vec::new();
        for item in items {
            let vars = minijinja::context! { item => minijinja::Value::from_serialize(&item), ..vars.clone() };
            built.push(build_step(
                renderer, inventory, limit, kind, args, None, &vars, handler,
            )?);
        }
        return Ok(Box::new(steps::Each { items: built }));
    }
    // A shell runs `command` text: values go in quoted; `creates:` is a path, not shell.
    let rendered = if kind == "command" {
        renderer.render_shell_value(args, vars).and_then(|mut r| {
            if let (Some(m), Some(c)) = (r.as_mapping_mut(), args.get("creates")) {
                m.insert("creates".into(), renderer.render_value(c, vars)?);
            }
            Ok(r)
        })
    } else {
        renderer.render_value(args, vars)
    };
    let mut rendered = rendered.map_err(|e| e.to_string())?;
    if kind == "openstack_aggregate" {
        steps::openstack_aggregate::resolve_hosts(&mut rendered, inventory, limit);
    }
    if kind == "known_hosts" {
        steps::known_hosts::resolve_hosts(&mut rendered, inventory);
    }
    steps::build(kind, rendered, handler).map_err(|e| format!("{kind}: {e}"))
}

fn yaml_kind(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

async fn gather(t: &dyn Transport, probes: &[Probe]) -> Result<Facts, String> {
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

/// The ConnectOptions of this run, for the targets and for the hosts steps read from.
fn connect_options(inventory: &Inventory, opts: &Options) -> crate::transport::ConnectOptions {
    crate::transport::ConnectOptions::of(
        inventory,
        opts.persist_secs,
        opts.connect_timeout_secs,
        opts.accept_new_host_keys,
    )
}

/// `command` with each distinct argument once, quoted; nothing without arguments.
fn command_of_all<'a>(command: &str, args: impl Iterator<Item = &'a String>) -> String {
    let mut args: Vec<&String> = args.collect();
    args.sort_unstable();
    args.dedup();
    if args.is_empty() {
        return String::new();
    }
    let mut line = command.to_string();
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line.push('\n');
    line
}

/// Changes that could not be sent at all (no lock, connection lost).
fn failed_all(report: &mut HostReport, batch: &[Batched], e: &str) {
    for b in batch {
        let r = slot(report, b.target);
        r.status = Status::Failed;
        r.error = Some(e.to_string());
    }
}

/// Changes that did not run because an earlier one failed.
fn not_run(report: &mut HostReport, batch: &[Batched]) {
    for b in batch {
        let r = slot(report, b.target);
        r.status = Status::Skipped;
        r.diff = None;
        r.note = Some(match b.target {
            Target::Step(_) => "not run: an earlier change failed on this host".into(),
            Target::Handler(_) => {
                "not run after a failed change; still pending for the next apply".into()
            }
        });
    }
}

fn describe(a: &Action) -> String {
    match a {
        Action::Write { path, .. } => format!("write {path}"),
        Action::Remove { path, .. } => format!("remove {path}"),
        Action::Mkdir { path, .. } => format!("mkdir {path}"),
        Action::Symlink { path, target } => format!("ln -s {target} {path}"),
        Action::SetAttrs { path, .. } => format!("chown/chmod {path}"),
        Action::Upload(u) => format!("upload {} to Glance", u.name),
        // Generated commands say what they are on their first line (`# openstack ...`).
        Action::Run { command, .. } => match command.trim().strip_prefix("# ") {
            Some(label) => label.lines().next().unwrap_or(label).to_string(),
            None => command.trim().to_string(),
        },
    }
}

fn slot(report: &mut HostReport, t: Target) -> &mut StepReport {
    match t {
        Target::Step(i) => &mut report.steps[i],
        Target::Handler(i) => &mut report.handlers[i],
    }
}

fn command_failure(host: &str, what: &[String], out: &ExecOutput) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut msg = format!(
        "on {host}: `{}` exited with {}",
        what.join("; "),
        out.code.map_or("a signal".to_string(), |c| c.to_string())
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        msg.push_str(&format!(
            "\nstdout:\n{}",
            crate::printer::escape(&tail(&stdout))
        ));
    }
    if !stderr.trim().is_empty() {
        msg.push_str(&format!(
            "\nstderr:\n{}",
            crate::printer::escape(&tail(&stderr))
        ));
    }
    if stderr.contains("sudo: a password is required") {
        msg.push_str("\nhint: the SSH user needs passwordless sudo (NOPASSWD) for novadock");
    }
    msg
}

/// The last 20 lines: enough to see why, not a wall of apt output.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    let start = lines.len().saturating_sub(20);
    lines[start..].join("\n")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}
