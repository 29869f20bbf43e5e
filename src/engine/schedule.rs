//! Scheduling: one task per target host, at most `--forks` at a time.

use super::host::HostRun;
use super::once::{self, Once};
use super::peers::Peers;
use super::{HostReport, Options};
use crate::inventory::{Host, Inventory};
use crate::playbook::Playbook;
use crate::render::Renderer;
use crate::transport::{ConnectOptions, Transport};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::Semaphore;

/// How the engine reaches a host: the real transports, or a fake in the unit tests.
#[async_trait]
pub(super) trait Connect: Send + Sync {
    async fn connect(&self, host: &Host, o: &ConnectOptions) -> Result<Box<dyn Transport>, String>;
}

/// SSH, or `local`, as the inventory says.
struct Transports;

#[async_trait]
impl Connect for Transports {
    async fn connect(&self, host: &Host, o: &ConnectOptions) -> Result<Box<dyn Transport>, String> {
        crate::transport::connect(host, o).await
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
        self.run_with(Arc::new(Transports), opts, progress).await
    }

    /// A run that reaches its hosts through `connector`.
    pub(super) async fn run_with(
        &self,
        connector: Arc<dyn Connect>,
        opts: &Options,
        progress: &indicatif::ProgressBar,
    ) -> Vec<HostReport> {
        let forks = Arc::new(Semaphore::new(opts.forks.max(1)));
        let abort = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Peers::new(
            self.inventory.clone(),
            connector.clone(),
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
            let connector = connector.clone();
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
                    connector,
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

impl HostRun {
    /// Wait for another host with this host's fork slot given back, or a small --forks
    /// could deadlock.
    pub(super) async fn without_fork_slot<F: std::future::Future<Output = ()>>(&self, wait: F) {
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
}

/// The ConnectOptions of this run, for the targets and for the hosts steps read from.
pub(super) fn connect_options(inventory: &Inventory, opts: &Options) -> ConnectOptions {
    ConnectOptions::of(
        inventory,
        opts.persist_secs,
        opts.connect_timeout_secs,
        opts.accept_new_host_keys,
    )
}
