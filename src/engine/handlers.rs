//! Handlers: run once per host after the steps, in their declared order, when notified (or
//! left pending by an interrupted run); `serial` ones as a rolling restart across hosts.

use super::batch::Target;
use super::host::{HostRun, Live, Prepared};
use super::once;
use super::{HostReport, Mode, STILL_PENDING, Status, StepReport};
use crate::plan::{Action, Outcome};
use crate::shell::quote;
use crate::steps::{PlanCx, StepKind};
use std::collections::BTreeSet;

/// Waits for a restarted unit to be active again (`serial` handlers).
const WAIT_ACTIVE_SH: &str = include_str!("../remote/wait-active.sh");
/// Takes a handler that ran off the pending list.
const FORGET_HANDLER_SH: &str = include_str!("../remote/forget-handler.sh");

impl HostRun {
    /// The handlers `notified` by this run's steps or `pending` from an interrupted one, in
    /// their declared order, once each. After a failed step they still run for what did
    /// change; after a change failed on the host (`sent_failed`) they stay pending for the
    /// next apply.
    pub(super) async fn handlers(
        &self,
        live: &mut Live,
        report: &mut HostReport,
        notified: &BTreeSet<String>,
        pending: &[String],
        mut sent_failed: bool,
        vars: &minijinja::Value,
    ) {
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
            if sent_failed {
                skip(r, STILL_PENDING.into(), report);
                continue;
            }
            // A rolling run: this host's changes go first (the restart is for them), then it
            // waits for its turn, and its turn ends once the unit is active again.
            let rolling = self
                .rollings
                .handlers
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
            match self.build(h.kind, &h.args, None, vars, true) {
                Prepared::Ready(s) => {
                    let wait = self.wait_active(h, vars);
                    match self.handler(live, report, s.as_ref(), &h.name, vars, wait) {
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
            "# forget the pending handler (it ran)\nnd_name={}\n{FORGET_HANDLER_SH}",
            quote(name)
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
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_handler_is_forgotten_from_the_pending_file() {
        let f = format!("nd_f={}\n", super::super::PENDING_FILE);
        assert!(super::FORGET_HANDLER_SH.contains(&f));
        assert!(crate::plan::PRELUDE.contains(&f));
    }
}
