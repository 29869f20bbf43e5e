//! `check`: an inventory and playbook validated offline (no host is contacted): every step is
//! built for every host it runs on, templates are planned against empty facts.

use super::select::{Input, load};
use crate::engine::build_step;
use crate::facts::Facts;
use crate::printer;
use crate::steps::PlanCx;
use anyhow::Result;
use std::process::ExitCode;

/// `check`: the inventory and playbook, offline; templates are rendered.
pub(crate) fn run(c: &Input) -> Result<ExitCode> {
    let l = load(c)?;
    let mut problems = Vec::new();
    let empty = Facts::default();
    for (host, ids) in &l.targets {
        let vars = l.renderer.context(host);
        for &i in ids {
            let step = &l.playbook.steps[i];
            let what = format!("step {} ({}) on {}", i + 1, step.name, host.name);
            // As apply does: a step whose condition is false is not built (its arguments
            // may name variables that only its source kind defines, e.g. docker_driver_path).
            if let Some(w) = &step.when {
                match l.renderer.condition(w, &vars) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        problems.push(format!("{what}: {e}"));
                        continue;
                    }
                }
            }
            let built = build_step(
                &l.renderer,
                &l.inventory,
                l.limit.as_deref(),
                step.kind,
                &step.args,
                step.loop_over.as_ref(),
                &vars,
                false,
            );
            // Planning a template against empty facts is offline and pure: it renders the
            // template. Other kinds need the host's facts to plan at all.
            let planned = built.and_then(|s| {
                if step.kind != "template" {
                    return Ok(());
                }
                s.plan(&PlanCx {
                    facts: &empty,
                    renderer: &l.renderer,
                    vars: &vars,
                })
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
            if let Err(e) = planned {
                problems.push(format!("{what}: {e}"));
            }
        }
        for h in &l.playbook.handlers {
            let r = build_step(
                &l.renderer,
                &l.inventory,
                l.limit.as_deref(),
                h.kind,
                &h.args,
                None,
                &vars,
                true,
            );
            if let Err(e) = r {
                problems.push(format!("handler {} on {}: {e}", h.name, host.name));
            }
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        let n = problems.len();
        return Err(anyhow::anyhow!(problems.join("\n")).context(format!(
            "{} has {n} problem{}",
            l.playbook.source,
            if n == 1 { "" } else { "s" }
        )));
    }
    for (i, step) in l.playbook.steps.iter().enumerate() {
        if l.inventory.select_steps(&step.hosts).is_empty() {
            printer::say(&format!(
                "{} step {} ({}): hosts `{}` matches no host in this inventory",
                printer::yellow("warning:"),
                i + 1,
                step.name,
                step.hosts
            ));
        }
    }
    printer::say(&format!(
        "{} {} and {} are valid: {}, {}, {}",
        printer::green("ok:"),
        c.inventory.display(),
        l.playbook.source,
        printer::count(l.targets.len(), "host"),
        printer::count(l.playbook.steps.len(), "step"),
        printer::count(l.playbook.handlers.len(), "handler")
    ));
    Ok(ExitCode::SUCCESS)
}
