//! The engine: per host, connect → facts → plan → (apply) → handlers.
//!
//! Plan and apply are the same walk over the steps; the only difference is whether the
//! actions are executed, and that is decided in exactly one place (`HostRun::execute`, in
//! [`batch`]).
//!
//! By concern: [`schedule`] starts a run per host under `--forks`; [`host`] is that run (its
//! facts, then [`steps`], then [`handlers`]); [`batch`] sends a host's changes in one script
//! and reads its markers; [`lock`] is the apply lock; [`peers`] reads other hosts' files;
//! [`glance`] uploads images; [`errors`] words failures; [`build`] turns a playbook step into a
//! step kind; [`once`] coordinates `run_once` steps and rolling handlers across hosts. The
//! shell they send is in `src/remote/`.

use crate::facts::Facts;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod batch;
mod build;
mod errors;
#[cfg(test)]
mod fake;
mod glance;
mod handlers;
mod host;
mod lock;
mod once;
mod peers;
mod schedule;
mod steps;
#[cfg(test)]
mod tests;

pub(crate) use build::build_step;
pub(crate) use schedule::Engine;

pub(crate) const PENDING_FILE: &str = "/var/lib/novadock/pending-handlers";

/// Why a step or handler did not run, as the report says.
const AFTER_FAILED_STEP: &str = "not run: an earlier step failed on this host";
const AFTER_FAILED_CHANGE: &str = "not run: an earlier change failed on this host";
const FAIL_FAST: &str = "stopped by --fail-fast after a failure on another host";
const STILL_PENDING: &str = "not run after a failed change; still pending for the next apply";

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
