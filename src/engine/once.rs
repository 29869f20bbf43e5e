//! Scheduling across hosts: `run_once` steps run on one host (the first reachable one of
//! their hosts, in inventory order), and `serial` handlers run on a few hosts at a time,
//! stopping the rolling at the first host where they fail.

use crate::inventory::Host;
use crate::playbook::Playbook;
use std::collections::BTreeMap;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, watch};

/// What is known of a host's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    Connecting,
    Up,
    Down,
}

/// Whether `me` runs a step that runs once on the first reachable of `candidates` (inventory
/// order): `None` while a host before it is still connecting and that decides it.
pub(crate) fn runs_here(
    candidates: &[String],
    me: &str,
    reach: impl Fn(&str) -> Reach,
) -> Option<bool> {
    let Some(pos) = candidates.iter().position(|c| c == me) else {
        return Some(false);
    };
    if reach(me) == Reach::Down {
        return Some(false);
    }
    let before: Vec<Reach> = candidates[..pos].iter().map(|c| reach(c)).collect();
    if before.contains(&Reach::Up) {
        Some(false)
    } else if before.iter().all(|r| *r == Reach::Down) {
        Some(true)
    } else {
        None
    }
}

/// The run_once steps of a run and the connection state of their hosts.
pub(crate) struct Once {
    /// Per run_once step: the hosts that may run it, in inventory order.
    candidates: BTreeMap<usize, Vec<String>>,
    reach: BTreeMap<String, watch::Sender<Reach>>,
}

impl Once {
    /// `pinned`: the host each run_once step was planned on, for an apply of a confirmed plan
    /// (it runs there or nowhere: another host's facts were not shown).
    pub(crate) fn new(
        playbook: &Playbook,
        targets: &[(Host, Vec<usize>)],
        pinned: Option<&BTreeMap<usize, String>>,
    ) -> Once {
        let mut candidates: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (host, steps) in targets {
            for &i in steps {
                if playbook.steps[i].run_once {
                    candidates.entry(i).or_default().push(host.name.clone());
                }
            }
        }
        if let Some(pinned) = pinned {
            for (i, c) in candidates.iter_mut() {
                c.retain(|h| pinned.get(i) == Some(h));
            }
        }
        Once {
            candidates,
            reach: targets
                .iter()
                .map(|(h, _)| (h.name.clone(), watch::channel(Reach::Connecting).0))
                .collect(),
        }
    }

    /// Record whether `host` could be connected to.
    pub(crate) fn reached(&self, host: &str, up: bool) {
        if let Some(tx) = self.reach.get(host) {
            tx.send_replace(if up { Reach::Up } else { Reach::Down });
        }
    }

    fn state(&self, host: &str) -> Reach {
        self.reach.get(host).map_or(Reach::Down, |tx| *tx.borrow())
    }

    /// The first host `me` has to wait for before it knows which of `steps` it runs.
    pub(crate) fn waits_for(&self, me: &str, steps: &[usize]) -> Option<String> {
        for i in steps {
            let Some(c) = self.candidates.get(i) else {
                continue;
            };
            if runs_here(c, me, |h| self.state(h)).is_none() {
                return c
                    .iter()
                    .find(|h| self.state(h) == Reach::Connecting)
                    .cloned();
            }
        }
        None
    }

    pub(crate) async fn wait(&self, host: &str) {
        if let Some(tx) = self.reach.get(host) {
            let _ = tx.subscribe().wait_for(|r| *r != Reach::Connecting).await;
        }
    }

    /// `steps` without the run_once steps another host runs (call once `waits_for` is `None`).
    pub(crate) fn keep(&self, me: &str, steps: &[usize]) -> Vec<usize> {
        steps
            .iter()
            .copied()
            .filter(|i| match self.candidates.get(i) {
                Some(c) => runs_here(c, me, |h| self.state(h)) == Some(true),
                None => true,
            })
            .collect()
    }
}

/// One `serial` handler's rolling run over the hosts.
pub(crate) struct Rolling {
    slots: std::sync::Arc<Semaphore>,
    /// The host where it failed: the rolling stops there.
    stopped_at: Mutex<Option<String>>,
}

impl Rolling {
    pub(crate) fn new(at_a_time: usize) -> Rolling {
        Rolling {
            slots: std::sync::Arc::new(Semaphore::new(at_a_time)),
            stopped_at: Mutex::new(None),
        }
    }

    /// Wait for a turn: `Err(host)` when the rolling already stopped at `host`.
    pub(crate) async fn turn(&self) -> Result<OwnedSemaphorePermit, String> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        match &*self.stopped_at.lock().await {
            Some(h) => Err(h.clone()),
            None => Ok(permit),
        }
    }

    pub(crate) async fn stop_at(&self, host: &str) {
        self.stopped_at.lock().await.get_or_insert(host.to_string());
    }
}

/// The rolling runs of a playbook's `serial` steps and handlers, by index.
pub(crate) struct Rollings {
    pub(crate) steps: BTreeMap<usize, Rolling>,
    pub(crate) handlers: BTreeMap<usize, Rolling>,
}

pub(crate) fn rollings(playbook: &Playbook) -> Rollings {
    Rollings {
        steps: playbook
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.serial.map(|n| (i, Rolling::new(n))))
            .collect(),
        handlers: playbook
            .handlers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.serial.map(|n| (i, Rolling::new(n))))
            .collect(),
    }
}

/// What the plan says about a `serial` handler.
pub(crate) fn serial_note(at_a_time: usize) -> String {
    if at_a_time == 1 {
        "one host at a time".into()
    } else {
        format!("{at_a_time} hosts at a time")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn states<'a>(s: &'a [(&'a str, Reach)]) -> impl Fn(&str) -> Reach + 'a {
        move |h| s.iter().find(|(n, _)| *n == h).map_or(Reach::Down, |x| x.1)
    }

    #[test]
    fn the_first_reachable_host_runs_it() {
        let c = hosts(&["ctl", "ctl2", "ctl3"]);
        use Reach::*;
        let all_up = [("ctl", Up), ("ctl2", Up), ("ctl3", Up)];
        assert_eq!(runs_here(&c, "ctl", states(&all_up)), Some(true));
        assert_eq!(runs_here(&c, "ctl2", states(&all_up)), Some(false));
        assert_eq!(runs_here(&c, "ctl3", states(&all_up)), Some(false));
        // The first one decides for itself without waiting for the others.
        let first = [("ctl", Up), ("ctl2", Connecting), ("ctl3", Connecting)];
        assert_eq!(runs_here(&c, "ctl", states(&first)), Some(true));
        assert_eq!(runs_here(&c, "ctl3", states(&first)), Some(false));
        // Not a candidate (say, --limit left it out): never.
        assert_eq!(runs_here(&c, "cmp1", states(&all_up)), Some(false));
    }

    #[test]
    fn an_unreachable_host_hands_it_to_the_next() {
        use Reach::*;
        let c = hosts(&["ctl", "ctl2", "ctl3"]);
        let down = [("ctl", Down), ("ctl2", Up), ("ctl3", Up)];
        assert_eq!(runs_here(&c, "ctl", states(&down)), Some(false));
        assert_eq!(runs_here(&c, "ctl2", states(&down)), Some(true));
        assert_eq!(runs_here(&c, "ctl3", states(&down)), Some(false));
        let two_down = [("ctl", Down), ("ctl2", Down), ("ctl3", Up)];
        assert_eq!(runs_here(&c, "ctl3", states(&two_down)), Some(true));
        // ctl2 waits while ctl is still connecting: it may yet be up.
        let unknown = [("ctl", Connecting), ("ctl2", Up), ("ctl3", Up)];
        assert_eq!(runs_here(&c, "ctl2", states(&unknown)), None);
        // ctl3 need not wait for ctl once ctl2 is up.
        let unknown = [("ctl", Connecting), ("ctl2", Up), ("ctl3", Up)];
        assert_eq!(runs_here(&c, "ctl3", states(&unknown)), Some(false));
    }

    fn host(name: &str) -> Host {
        let inv = crate::inventory::Inventory::parse(
            std::path::Path::new("inv.yml"),
            &format!("hosts:\n  {name}: {{ address: local }}\n"),
        )
        .unwrap();
        inv.hosts[0].clone()
    }

    fn playbook() -> Playbook {
        Playbook::parse(
            std::path::Path::new("p.yml"),
            "steps:\n  - { name: each, hosts: all, command: { cmd: 'true' } }\n  - { name: once, hosts: all, run_once: true, command: { cmd: 'true' } }\n",
            None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hosts_wait_only_for_the_hosts_before_them() {
        let pb = playbook();
        let targets: Vec<(Host, Vec<usize>)> = ["a", "b", "c"]
            .iter()
            .map(|n| (host(n), vec![0, 1]))
            .collect();
        let once = Once::new(&pb, &targets, None);
        assert_eq!(once.waits_for("a", &[0, 1]), None);
        assert_eq!(once.keep("a", &[0, 1]), [0, 1]);
        assert_eq!(once.waits_for("b", &[0, 1]).as_deref(), Some("a"));
        assert_eq!(once.waits_for("b", &[0]), None, "no run_once step: no wait");
        once.reached("a", false);
        once.reached("b", true);
        assert_eq!(once.waits_for("c", &[0, 1]), None);
        assert_eq!(once.keep("b", &[0, 1]), [0, 1]);
        assert_eq!(once.keep("c", &[0, 1]), [0]);
        // Pinned by a confirmed plan: only there, even though another host is up first.
        let pinned = BTreeMap::from([(1, "c".to_string())]);
        let once = Once::new(&pb, &targets, Some(&pinned));
        once.reached("c", true);
        assert_eq!(once.waits_for("c", &[0, 1]), None);
        assert_eq!(once.keep("c", &[0, 1]), [0, 1]);
        assert_eq!(once.keep("a", &[0, 1]), [0]);
    }

    #[tokio::test]
    async fn a_rolling_run_goes_one_at_a_time_and_stops_at_a_failure() {
        let r = std::sync::Arc::new(Rolling::new(1));
        let first = r.turn().await.unwrap();
        let r2 = r.clone();
        let second = tokio::spawn(async move { r2.turn().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the second host waits for the first");
        r.stop_at("h1").await;
        drop(first);
        assert_eq!(second.await.unwrap(), Err("h1".to_string()));
        assert_eq!(serial_note(1), "one host at a time");
        assert_eq!(serial_note(2), "2 hosts at a time");
    }
}
