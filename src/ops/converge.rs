//! `plan` and `apply`: the engine over the selected hosts, then the report.

use super::Conn;
use super::run_id::run_id;
use super::select::{Input, load};
use crate::engine::{Engine, Mode, Options};
use crate::printer::{self, hinted};
use crate::report;
use anyhow::Result;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

/// What `plan` and `apply` take.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) common: Input,
    pub(crate) json: bool,
    /// Hosts worked on at once.
    pub(crate) forks: usize,
    pub(crate) fail_fast: bool,
    pub(crate) conn: Conn,
    /// Print SSH round trips per host.
    pub(crate) verbose: bool,
}

/// `plan` (mode Plan) and `apply`.
pub(crate) fn run(
    r: &Run,
    mode: Mode,
    yes: bool,
    rt: &tokio::runtime::Runtime,
) -> Result<ExitCode> {
    let l = load(&r.common)?;
    if l.targets.is_empty() {
        return Err(hinted(
            "no host matches: nothing to do",
            "check --limit and the steps' `hosts:` patterns",
        ));
    }
    if mode == Mode::Apply && !yes && !std::io::stdin().is_terminal() {
        return Err(hinted(
            "refusing to apply without confirmation: stdin is not a terminal",
            "run `novadock plan` to review, then `novadock apply --yes`",
        ));
    }
    let engine = Engine {
        inventory: l.inventory.clone(),
        playbook: l.playbook.clone(),
        renderer: l.renderer.clone(),
        targets: l.targets.clone(),
    };
    let mut opts = Options {
        mode,
        forks: r.forks,
        fail_fast: r.fail_fast,
        persist_secs: r.conn.persist,
        accept_new_host_keys: r.conn.accept_new_host_keys,
        connect_timeout_secs: r.conn.connect_timeout,
        run_id: run_id(),
        planned_facts: None,
        limit: l.limit.clone(),
        keep_facts: false,
        once_hosts: None,
    };
    let go_with = |engine: &Engine, opts: &Options| {
        let pb = printer::progress(engine.targets.len() as u64);
        let reports = rt.block_on(engine.run(opts, &pb));
        pb.finish_and_clear();
        reports
    };
    let go = |opts: &Options| go_with(&engine, opts);
    // A step whose failure stops the whole apply (`any_errors_fatal`) is planned everywhere
    // before any host changes: an apply without confirmation plans first too.
    let fatal = l
        .targets
        .iter()
        .flat_map(|(_, steps)| steps)
        .any(|&i| l.playbook.steps[i].any_errors_fatal);
    if mode == Mode::Apply && (!yes || fatal) {
        // Interactive: show the plan, ask, then apply exactly that plan; every write checks
        // that its file is still what the plan saw.
        let planned = go(&Options {
            mode: Mode::Plan,
            keep_facts: true,
            ..opts.clone()
        });
        let s = report::summarize(&planned);
        if yes {
            if let Some(e) = fatal_failure(&l.playbook, &planned) {
                report::human(Mode::Plan, &l.playbook, &planned);
                return Err(e);
            }
        } else {
            report::human(Mode::Plan, &l.playbook, &planned);
            if s.failed > 0 {
                return Err(anyhow::anyhow!(
                    "the plan failed on {} host(s); nothing was applied",
                    s.failed_hosts
                ));
            }
            if s.changed == 0 {
                if r.json {
                    printer::json(&report::json(Mode::Apply, &planned));
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !confirm("Apply these changes?")? {
                return Err(anyhow::anyhow!("apply cancelled; nothing was changed"));
            }
        }
        opts.mode = Mode::Apply;
        // Each run_once step runs where the plan showed it (the facts are that host's).
        opts.once_hosts = Some(Arc::new(
            planned
                .iter()
                .flat_map(|r| {
                    r.steps
                        .iter()
                        .filter(|s| l.playbook.steps[s.index].run_once)
                        .map(|s| (s.index, r.name.clone()))
                })
                .collect(),
        ));
        opts.planned_facts = Some(Arc::new(
            planned
                .into_iter()
                .filter_map(|r| Some((r.name, r.facts?)))
                .collect(),
        ));
    }
    let reports = if mode == Mode::Apply {
        apply_then_after_all(&engine, &l.playbook, &opts, &go_with)
    } else {
        go(&opts)
    };
    report::human(mode, &l.playbook, &reports);
    if r.verbose {
        for h in &reports {
            printer::say(&format!("{}: {} SSH round trips", h.name, h.round_trips));
        }
    }
    if r.json {
        printer::json(&report::json(mode, &reports));
    }
    let s = report::summarize(&reports);
    Ok(if s.failed > 0 {
        ExitCode::from(1)
    } else if mode == Mode::Plan && s.changed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// An apply in two runs: every step but the `after_all` ones, then those, from fresh facts.
/// A check that waits for other hosts' changes (the computes' restarts) cannot run inside
/// the first run: hosts that read this host's files wait for its run to end. One report.
fn apply_then_after_all(
    engine: &Engine,
    playbook: &crate::playbook::Playbook,
    opts: &Options,
    go: &dyn Fn(&Engine, &Options) -> Vec<crate::engine::HostReport>,
) -> Vec<crate::engine::HostReport> {
    let split = |last: bool| -> Vec<_> {
        engine
            .targets
            .iter()
            .map(|(h, steps)| {
                let s: Vec<usize> = steps
                    .iter()
                    .copied()
                    .filter(|&i| playbook.steps[i].after_all == last)
                    .collect();
                (h.clone(), s)
            })
            .filter(|(_, s)| !s.is_empty())
            .collect()
    };
    let with = |targets| Engine {
        inventory: engine.inventory.clone(),
        playbook: engine.playbook.clone(),
        renderer: engine.renderer.clone(),
        targets,
    };
    let (first, last) = (split(false), split(true));
    if last.is_empty() {
        return go(engine, opts);
    }
    let mut reports = if first.is_empty() {
        vec![]
    } else {
        go(&with(first), opts)
    };
    let later = go(
        &with(last),
        &Options {
            planned_facts: None,
            ..opts.clone()
        },
    );
    for r in later {
        match reports.iter_mut().find(|x| x.name == r.name) {
            Some(x) => {
                x.steps.extend(r.steps);
                x.handlers.extend(r.handlers);
                x.error = x.error.take().or(r.error);
                x.round_trips += r.round_trips;
            }
            None => reports.push(r),
        }
    }
    reports
}

/// The first `any_errors_fatal` step that failed in the plan, as the error that stops the apply.
fn fatal_failure(
    playbook: &crate::playbook::Playbook,
    planned: &[crate::engine::HostReport],
) -> Option<anyhow::Error> {
    let (host, step) = planned.iter().find_map(|h| {
        h.steps
            .iter()
            .find(|s| {
                s.status == crate::engine::Status::Failed
                    && playbook.steps[s.index].any_errors_fatal
            })
            .map(|s| (h.name.as_str(), s))
    })?;
    Some(hinted(
        format!(
            "step `{}` failed on {host}, and its failure stops the whole apply (any_errors_fatal): nothing was applied on any host",
            step.name
        ),
        step.error
            .as_deref()
            .and_then(|e| e.lines().find_map(|l| l.strip_prefix("hint: ")))
            .unwrap_or("see the step's error in the plan above"),
    ))
}

fn confirm(question: &str) -> Result<bool> {
    let answer = printer::ask(question)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{HostReport, Status, StepReport};
    use crate::playbook::Playbook;

    fn host(name: &str, steps: &[(usize, Status, &str)]) -> HostReport {
        HostReport {
            name: name.into(),
            address: "10.0.0.1".into(),
            steps: steps
                .iter()
                .map(|(i, status, error)| StepReport {
                    name: format!("s{i}"),
                    status: *status,
                    summary: String::new(),
                    diff: None,
                    note: None,
                    error: (!error.is_empty()).then(|| error.to_string()),
                    index: *i,
                })
                .collect(),
            handlers: vec![],
            error: None,
            round_trips: 0,
            facts: None,
        }
    }

    /// Only a failed `any_errors_fatal` step stops the apply; its hint is the step's.
    #[test]
    fn a_failed_fatal_step_stops_the_apply() {
        let pb = Playbook::parse(
            std::path::Path::new("p.yml"),
            "steps:\n  - { name: s0, hosts: all, any_errors_fatal: true, command: { cmd: 'true' } }\n  - { name: s1, hosts: all, command: { cmd: 'true' } }\n",
            None,
        )
        .unwrap();
        let other_failed = [
            host("ctl", &[(0, Status::Unchanged, "")]),
            host("cmp1", &[(1, Status::Failed, "boom")]),
        ];
        assert!(fatal_failure(&pb, &other_failed).is_none());
        let refused = [
            host("cmp1", &[(1, Status::Changed, "")]),
            host(
                "ctl",
                &[(
                    0,
                    Status::Failed,
                    "kvm1 still hosts 1 instance\nhint: move them off first",
                )],
            ),
        ];
        let e = fatal_failure(&pb, &refused).unwrap();
        assert_eq!(
            format!("{e}"),
            "step `s0` failed on ctl, and its failure stops the whole apply (any_errors_fatal): nothing was applied on any host"
        );
        assert_eq!(
            e.downcast_ref::<crate::printer::Hinted>().unwrap().hint,
            "move them off first"
        );
    }
}
