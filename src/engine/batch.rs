//! Batching: the changes planned on a host go to it in one script, each after a marker line,
//! so that a failure is pinned on the change that made it (and those after it did not run).

use super::errors::command_failure;
use super::host::{HostRun, Live};
use super::lock::{LOCK_HELD, LOCK_HELD_CODE};
use super::{AFTER_FAILED_CHANGE, HostReport, Mode, STILL_PENDING, Status, StepReport};
use crate::facts;
use crate::plan::{self, Action, PRELUDE};
use crate::shell::quote;
use crate::transport::ExecOutput;

/// Where a batched change reports to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Step(usize),
    Handler(usize),
}

pub(super) struct Batched {
    pub(super) target: Target,
    pub(super) script: String,
    /// What the change does, for the error message when it fails.
    pub(super) what: Vec<String>,
    pub(super) runs_commands: bool,
    /// Sent after `script`: not a script, the engine carries it.
    pub(super) upload: Option<plan::UploadSpec>,
    /// Directories whose entries change: synced at the end of the script.
    pub(super) dirs: Vec<String>,
    /// Handlers this change notifies.
    pub(super) notify: Vec<String>,
}

impl HostRun {
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

    /// Send every batched change in one script. On failure, the change that failed and the
    /// ones after it (which did not run) are marked in the report.
    pub(super) async fn flush(&self, live: &mut Live, report: &mut HostReport) -> Result<(), ()> {
        self.flush_with(live, report, false).await
    }

    /// The run's last [`HostRun::flush`]: when it is the only script of the run (and carries
    /// no upload), it takes the apply lock itself, which saves a round trip.
    pub(super) async fn flush_last(
        &self,
        live: &mut Live,
        report: &mut HostReport,
    ) -> Result<(), ()> {
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
            script.push_str(&self.inline_lock());
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
pub(super) fn failed_all(report: &mut HostReport, batch: &[Batched], e: &str) {
    for b in batch {
        let r = slot(report, b.target);
        r.status = Status::Failed;
        r.error = Some(e.to_string());
    }
}

/// Changes that did not run because an earlier one failed.
pub(super) fn not_run(report: &mut HostReport, batch: &[Batched]) {
    for b in batch {
        let r = slot(report, b.target);
        r.status = Status::Skipped;
        r.diff = None;
        r.note = Some(match b.target {
            Target::Step(_) => AFTER_FAILED_CHANGE.into(),
            Target::Handler(_) => STILL_PENDING.into(),
        });
    }
}

pub(super) fn describe(a: &Action) -> String {
    match a {
        Action::Write { path, .. } => format!("write {path}"),
        Action::Remove { path, .. } => format!("remove {path}"),
        Action::Mkdir { path, .. } => format!("mkdir {path}"),
        Action::Symlink { path, target } => format!("ln -s {target} {path}"),
        Action::SetAttrs { path, .. } => format!("chown/chmod {path}"),
        Action::Upload(u) => format!("upload {} to Glance", u.name),
        // Generated commands say what they are first: `: 'LABEL'` (OpenStack changes), or
        // a `# label` line.
        Action::Run { command, .. } => {
            let c = command.trim();
            if let Some((label, rest)) = c.strip_prefix(": ").and_then(crate::shell::unquote_first)
                && rest.starts_with('\n')
            {
                return label;
            }
            match c.strip_prefix("# ") {
                Some(label) => label.lines().next().unwrap_or(label).to_string(),
                None => c.to_string(),
            }
        }
    }
}

pub(super) fn slot(report: &mut HostReport, t: Target) -> &mut StepReport {
    match t {
        Target::Step(i) => &mut report.steps[i],
        Target::Handler(i) => &mut report.handlers[i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_openstack_change_is_named_by_its_label_not_its_program() {
        let auth = crate::openstack::Auth {
            openrc: None,
            cloud: None,
        };
        let py = crate::remote::Py::bare("pass\n");
        let command = auth.change(
            "flavor d1.small: create (it's new)",
            &py,
            &serde_json::json!({"name": "d1.small"}),
        );
        let a = Action::Run {
            command,
            systemd: false,
        };
        assert_eq!(describe(&a), "flavor d1.small: create (it's new)");
        let a = Action::Run {
            command: "# restart nova-compute\nsystemctl restart nova-compute".into(),
            systemd: false,
        };
        assert_eq!(describe(&a), "restart nova-compute");
        // A user's own `:` command is shown whole.
        let a = Action::Run {
            command: ": x; exit 1".into(),
            systemd: false,
        };
        assert_eq!(describe(&a), ": x; exit 1");
    }
}
