//! The steps of a host's run, in playbook order: each planned against the facts as the steps
//! before it leave them and, in apply mode, its changes batched. A failure stops the steps
//! after it on this host; `--fail-fast` sends each step's changes on its own and stops
//! between steps once another host failed.

use super::batch::Target;
use super::host::{HostRun, Live, Prepared, gather};
use super::{
    AFTER_FAILED_CHANGE, AFTER_FAILED_STEP, FAIL_FAST, HostReport, Mode, Status, StepReport,
};
use crate::facts::Probe;
use crate::plan::Outcome;
use crate::steps::{PlanCx, StepKind};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

enum StepFailure {
    /// This step failed (planning it, or asking the host again).
    Failed(String),
    /// Sending earlier changes failed; this step did not run.
    Stopped,
}

/// What the steps after a rolling step that stopped at another host say.
const AFTER_ROLLING_STOP: &str = "not run: a rolling step before it stopped at another host";

impl HostRun {
    /// Each step in playbook order: planned, and in apply mode batched. Returns the handlers
    /// notified, and whether a batch of changes failed on the host (what followed it did not
    /// run).
    pub(super) async fn steps(
        &self,
        live: &mut Live,
        report: &mut HostReport,
        prepared: Vec<(usize, Prepared)>,
        vars: &minijinja::Value,
    ) -> (BTreeSet<String>, bool) {
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
                stop = Some(FAIL_FAST);
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
                    stop = Some(AFTER_FAILED_STEP);
                }
                Prepared::Ready(step_impl) => {
                    // A rolling step: what is batched goes first, then this host waits for
                    // its turn, which ends once this step's changes are sent.
                    let rolling = self
                        .rollings
                        .steps
                        .get(&idx)
                        .filter(|_| self.opts.mode == Mode::Apply);
                    let mut turn = None;
                    if let Some(rolling) = rolling {
                        if self.flush(live, report).await.is_err() {
                            r.status = Status::Skipped;
                            r.note = Some(AFTER_FAILED_CHANGE.into());
                            report.steps.push(r);
                            stop = Some(AFTER_FAILED_CHANGE);
                            sent_failed = true;
                            continue;
                        }
                        match rolling.turn().await {
                            Ok(t) => turn = Some(t),
                            Err(at) => {
                                r.status = Status::Skipped;
                                r.note =
                                    Some(format!("not run: the rolling change stopped at {at}"));
                                report.steps.push(r);
                                stop = Some(AFTER_ROLLING_STOP);
                                continue;
                            }
                        }
                    }
                    let mut result = self
                        .step(live, report, step_impl.as_ref(), &step.notify, vars)
                        .await;
                    if let (Ok(o), Some(n)) = (&mut result, step.serial) {
                        let at_a_time = super::once::serial_note(n);
                        o.note = Some(match o.note.take() {
                            Some(note) => format!("{note}; {at_a_time}"),
                            None => at_a_time,
                        });
                    }
                    match result {
                        Ok(o) => {
                            if o.changed() {
                                r.status = Status::Changed;
                                notified.extend(step.notify.iter().cloned());
                            }
                            r.summary = o.summary;
                            r.diff = o.diff;
                            r.note = o.note;
                            // The turn ends once this step's changes are on the host (a
                            // failure there is reported on this step, pushed first).
                            if let (Some(rolling), Some(turn)) = (rolling, turn.take()) {
                                report.steps.push(r);
                                if self.flush(live, report).await.is_err() {
                                    stop = Some(AFTER_FAILED_CHANGE);
                                    sent_failed = true;
                                    rolling.stop_at(&self.host.name).await;
                                }
                                drop(turn);
                                continue;
                            }
                            // --fail-fast trades batching for a stop between any two steps.
                            if self.opts.fail_fast && !live.batch.is_empty() {
                                report.steps.push(r);
                                if self.abort.load(Ordering::SeqCst) {
                                    let last = report.steps.len() - 1;
                                    live.batch.clear();
                                    report.steps[last].status = Status::Skipped;
                                    report.steps[last].note = Some(FAIL_FAST.into());
                                    stop = Some(FAIL_FAST);
                                    sent_failed = true;
                                } else if self.flush(live, report).await.is_err() {
                                    stop = Some(AFTER_FAILED_CHANGE);
                                    sent_failed = true;
                                    self.note_failure();
                                }
                                continue;
                            }
                        }
                        Err(StepFailure::Failed(e)) => {
                            r.status = Status::Failed;
                            r.error = Some(e);
                            stop = Some(AFTER_FAILED_STEP);
                        }
                        Err(StepFailure::Stopped) => {
                            r.status = Status::Skipped;
                            r.note = Some(AFTER_FAILED_CHANGE.into());
                            stop = Some(AFTER_FAILED_CHANGE);
                            sent_failed = true;
                        }
                    }
                    if let (Some(rolling), Some(_turn)) = (rolling, turn) {
                        rolling.stop_at(&self.host.name).await;
                    }
                }
            }
            report.steps.push(r);
        }
        (notified, sent_failed)
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
}
