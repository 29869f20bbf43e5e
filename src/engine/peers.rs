//! Other hosts' files a step needs, read over their own connections.

use super::Options;
use super::host::HostRun;
use super::schedule::{Connect, connect_options};
use crate::facts::{self, Facts, Probe};
use crate::inventory::Inventory;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Other hosts' files a step needs (a key the controller generates, host keys to pin), read
/// over those hosts' own connections; a read `after_run` waits until this run is done there.
pub(super) struct Peers {
    inventory: Arc<Inventory>,
    connector: Arc<dyn Connect>,
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
    pub(super) fn new(
        inventory: Arc<Inventory>,
        connector: Arc<dyn Connect>,
        opts: &Options,
        targets: impl Iterator<Item = String>,
    ) -> Peers {
        Peers {
            connect: connect_options(&inventory, opts),
            connector,
            inventory,
            done: targets
                .map(|t| (t, tokio::sync::watch::channel(false)))
                .collect(),
        }
    }

    pub(super) fn finished(&self, host: &str) {
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
        let t = self
            .connector
            .connect(h, connect)
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

impl HostRun {
    pub(super) async fn read_peers(&self, probes: &[Probe], facts: &mut Facts) {
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
}
