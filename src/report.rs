//! One reporter for plan and apply: only the verb changes ("would change" / "changed").

use crate::engine::{HostReport, Mode, Status, StepReport};
use crate::playbook::Playbook;
use crate::printer::{self, bold, dim, green, red, yellow};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub changed: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub skipped: usize,
    pub hosts: usize,
    pub failed_hosts: usize,
}

pub fn summarize(reports: &[HostReport]) -> Summary {
    let mut s = Summary {
        hosts: reports.len(),
        ..Default::default()
    };
    for r in reports {
        if r.error.is_some() {
            s.failed += 1;
        }
        if r.failed() {
            s.failed_hosts += 1;
        }
        for st in r.steps.iter().chain(&r.handlers) {
            match st.status {
                Status::Changed => s.changed += 1,
                Status::Unchanged => s.unchanged += 1,
                Status::Failed => s.failed += 1,
                Status::Skipped => s.skipped += 1,
            }
        }
    }
    s
}

fn verb(mode: Mode) -> &'static str {
    match mode {
        Mode::Plan => "would change",
        Mode::Apply => "changed",
    }
}

/// Hosts that reported the same thing for a step are shown once, with the host list.
fn group<'a>(
    items: impl Iterator<Item = (&'a str, &'a StepReport)>,
) -> Vec<(Vec<&'a str>, &'a StepReport)> {
    let mut groups: Vec<(Vec<&str>, &StepReport)> = Vec::new();
    for (host, st) in items {
        let key = |s: &StepReport| {
            (
                s.status,
                s.summary.clone(),
                s.diff.clone(),
                s.note.clone(),
                s.error.clone(),
            )
        };
        match groups.iter_mut().find(|(_, g)| key(g) == key(st)) {
            Some((hosts, _)) => hosts.push(host),
            None => groups.push((vec![host], st)),
        }
    }
    groups
}

fn line(mode: Mode, hosts: &[&str], st: &StepReport, handler: bool) -> String {
    let who = hosts.join(", ");
    let mut out = match st.status {
        Status::Changed => {
            let v = if handler {
                match mode {
                    Mode::Plan => "would run",
                    Mode::Apply => "ran",
                }
            } else {
                verb(mode)
            };
            format!("  {} {who}: {v}: {}", yellow("~"), st.summary)
        }
        Status::Unchanged => format!(
            "  {} {who}: unchanged{}",
            green("="),
            dim(&suffix(&st.summary))
        ),
        Status::Skipped => format!("  {} {who}: skipped", dim("-")),
        Status::Failed => format!("  {} {who}: {}", red("✗"), red("failed")),
    };
    if let Some(n) = &st.note {
        out.push_str(&dim(&format!(" ({n})")));
    }
    out.push('\n');
    if let Some(d) = &st.diff {
        out.push_str(&printer::diff(d, "      "));
    }
    if let Some(e) = &st.error {
        for l in e.lines() {
            out.push_str(&format!("      {l}\n"));
        }
    }
    out
}

fn suffix(summary: &str) -> String {
    if summary.is_empty() {
        String::new()
    } else {
        format!(" — {summary}")
    }
}

pub fn human(mode: Mode, playbook: &Playbook, reports: &[HostReport]) {
    let mut out = String::new();
    // Steps in playbook order; hosts grouped by identical outcome.
    for (i, step) in playbook.steps.iter().enumerate() {
        let items: Vec<(&str, &StepReport)> = reports
            .iter()
            .flat_map(|r| {
                r.steps
                    .iter()
                    .filter(|s| s.index == i)
                    .map(move |s| (r.name.as_str(), s))
            })
            .collect();
        if items.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "{} {}\n",
            dim(&format!("[{}/{}]", i + 1, playbook.steps.len())),
            bold(&step.name)
        ));
        for (hosts, st) in group(items.into_iter()) {
            out.push_str(&line(mode, &hosts, st, false));
        }
    }
    let mut handler_items: BTreeMap<usize, Vec<(&str, &StepReport)>> = BTreeMap::new();
    for r in reports {
        for h in &r.handlers {
            handler_items
                .entry(h.index)
                .or_default()
                .push((r.name.as_str(), h));
        }
    }
    for (i, items) in handler_items {
        out.push_str(&format!(
            "{} {}\n",
            dim("[handler]"),
            bold(&playbook.handlers[i].name)
        ));
        for (hosts, st) in group(items.into_iter()) {
            out.push_str(&line(mode, &hosts, st, true));
        }
    }
    for r in reports {
        if let Some(e) = &r.error {
            out.push_str(&format!(
                "{} {}: {}\n",
                red("✗"),
                r.name,
                red("unreachable or unusable")
            ));
            for l in e.lines() {
                out.push_str(&format!("      {l}\n"));
            }
        }
    }
    let s = summarize(reports);
    let head = match mode {
        Mode::Plan => "Plan",
        Mode::Apply => "Apply",
    };
    let changed = match mode {
        Mode::Plan => format!("{} to change", s.changed),
        Mode::Apply => format!("{} changed", s.changed),
    };
    out.push_str(&format!(
        "{}: {changed}, {} unchanged, {} failed, {} skipped on {} host{}",
        bold(head),
        s.unchanged,
        s.failed,
        s.skipped,
        s.hosts,
        if s.hosts == 1 { "" } else { "s" }
    ));
    if s.failed_hosts > 0 {
        let failed: Vec<&str> = reports
            .iter()
            .filter(|r| r.failed())
            .map(|r| r.name.as_str())
            .collect();
        out.push_str(&format!(
            " ({} failed: {})",
            red("hosts"),
            failed.join(", ")
        ));
    }
    printer::say(&out);
}

pub fn json(mode: Mode, reports: &[HostReport]) -> serde_json::Value {
    let step = |s: &StepReport| {
        let mut o = json!({
            "name": s.name,
            "status": s.status.as_str(),
            "summary": s.summary,
        });
        if let Some(d) = &s.diff {
            o["diff"] = json!(d);
        }
        if let Some(n) = &s.note {
            o["note"] = json!(n);
        }
        if let Some(e) = &s.error {
            o["error"] = json!(e);
        }
        o
    };
    let mut hosts = serde_json::Map::new();
    for r in reports {
        let mut h = json!({
            "address": r.address,
            "steps": r.steps.iter().map(step).collect::<Vec<_>>(),
            "handlers": r.handlers.iter().map(step).collect::<Vec<_>>(),
            "round_trips": r.round_trips,
        });
        if let Some(e) = &r.error {
            h["error"] = json!(e);
        }
        hosts.insert(r.name.clone(), h);
    }
    let s = summarize(reports);
    json!({
        "mode": match mode { Mode::Plan => "plan", Mode::Apply => "apply" },
        "hosts": hosts,
        "summary": {
            "changed": s.changed,
            "unchanged": s.unchanged,
            "failed": s.failed,
            "skipped": s.skipped,
            "hosts": s.hosts,
            "failed_hosts": s.failed_hosts,
        }
    })
}
