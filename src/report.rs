//! One reporter for plan and apply: only the verb changes ("would change" / "changed").

use crate::engine::{HostReport, Mode, Status, StepReport};
use crate::playbook::Playbook;
use crate::printer::{self, bold, dim, green, red, yellow};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) changed: usize,
    pub(crate) unchanged: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) hosts: usize,
    pub(crate) failed_hosts: usize,
}

pub(crate) fn summarize(reports: &[HostReport]) -> Summary {
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

pub(crate) fn human(mode: Mode, playbook: &Playbook, reports: &[HostReport]) {
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

pub(crate) fn json(mode: Mode, reports: &[HostReport]) -> serde_json::Value {
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

/// `novadock prefetch` with the `nova` source: what was asked of Nova, and that Nova works
/// after answering.
pub(crate) fn precache_human(p: &crate::precache::Precache) {
    printer::say(&format!(
        "{} {} of container format docker in Glance; hosts: members of aggregate `{}`; source: nova",
        bold("prefetch:"),
        printer::count(p.images.len(), "image"),
        p.aggregate
    ));
    for l in crate::precache::human_lines(p) {
        let color: fn(&str) -> String = match l.chars().next() {
            Some('~') if p.dry_run => yellow,
            Some('~') => green,
            Some('!') => yellow,
            _ => dim,
        };
        printer::say(&color(&format!("  {l}")));
    }
    if p.requests > 0 {
        printer::say(&dim(crate::precache::ASYNC_NOTE));
    }
}

/// `novadock prefetch`: the (host, image) lines, grouped across hosts, then a per-host table.
/// A dry run and a real run print the same lines; only the verb changes.
pub(crate) fn prefetch_human(s: &crate::prefetch::Summary) {
    let hosts_from = match s.hosts_from {
        crate::prefetch::HostsFrom::Aggregate => {
            format!(
                "members of aggregate `{}` with nova-compute up",
                s.aggregate
            )
        }
        crate::prefetch::HostsFrom::Inventory => "the inventory's docker_computes".to_string(),
    };
    printer::say(&format!(
        "{} {} of container format docker in Glance; hosts: {hosts_from}; source: {}",
        bold("prefetch:"),
        printer::count(s.images.len(), "image"),
        serde_json::to_value(s.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    ));
    // (color, mark, text) per host; identical lines are printed once with their hosts.
    type Line = (fn(&str) -> String, char, String);
    let mut lines: Vec<(Line, Vec<&str>)> = Vec::new();
    for h in &s.hosts {
        let mut own: Vec<Line> = Vec::new();
        if h.status == "skipped" {
            own.push((
                yellow,
                '!',
                format!("skipped: {}", h.error.as_deref().unwrap_or("")),
            ));
        }
        for i in &h.items {
            let why = i.reason.as_str();
            let size = if i.bytes > 0 {
                format!(", {}", bytes(i.bytes))
            } else {
                String::new()
            };
            own.push(match (i.action, i.ok, s.dry_run) {
                (_, false, _) => (
                    red,
                    'x',
                    format!(
                        "failed to {} {}: {}",
                        i.action,
                        i.name,
                        i.detail.as_deref().unwrap_or("")
                    ),
                ),
                ("none", _, _) => (dim, '=', format!("{}: current", i.name)),
                ("load", _, true) => (yellow, '~', format!("would load {} ({why})", i.name)),
                ("load", _, false) => (green, '~', format!("loaded {} ({why}{size})", i.name)),
                ("prune", _, true) => (
                    yellow,
                    '-',
                    format!("would prune {} (gone from Glance)", i.name),
                ),
                ("prune", _, false) => {
                    (green, '-', format!("pruned {} (gone from Glance)", i.name))
                }
                _ => (
                    dim,
                    '=',
                    format!("kept {}: gone from Glance, but a container uses it", i.name),
                ),
            });
            if i.ok
                && i.action == "load"
                && let Some(w) = &i.detail
            {
                own.push((yellow, '!', format!("warning: {}: {w}", i.name)));
            }
        }
        if h.status == "failed" && !h.items.iter().any(|i| !i.ok) {
            own.push((
                red,
                'x',
                format!("failed: {}", h.error.as_deref().unwrap_or("")),
            ));
        }
        for l in own {
            match lines.iter_mut().find(|(x, _)| x.1 == l.1 && x.2 == l.2) {
                Some((_, hs)) => hs.push(&h.name),
                None => lines.push((l, vec![&h.name])),
            }
        }
    }
    for ((color, mark, text), hs) in &lines {
        printer::say(&color(&format!("  {mark} {}: {text}", hs.join(", "))));
    }
    if !s.hosts.is_empty() {
        printer::say("");
        printer::say(&format!(
            "{:<16} {:<8} {:>6} {:>7} {:>6} {:>10} {:>8}",
            "HOST", "STATUS", "LOADED", "CURRENT", "PRUNED", "BYTES", "SECONDS"
        ));
        for h in &s.hosts {
            let n = |a: &str| h.items.iter().filter(|i| i.action == a && i.ok).count();
            let b: u64 = h.items.iter().map(|i| i.bytes).sum();
            let status = match h.status {
                "ok" => green("ok"),
                "failed" => red("failed"),
                other => yellow(other),
            };
            printer::say(&format!(
                "{:<16} {:<8} {:>6} {:>7} {:>6} {:>10} {:>8.1}",
                h.name,
                status,
                if s.dry_run { 0 } else { n("load") },
                n("none"),
                if s.dry_run { 0 } else { n("prune") },
                bytes(b),
                h.seconds
            ));
        }
    }
    let loads: usize = s
        .hosts
        .iter()
        .flat_map(|h| &h.items)
        .filter(|i| i.action == "load" && i.ok)
        .count();
    let current: usize = s
        .hosts
        .iter()
        .flat_map(|h| &h.items)
        .filter(|i| i.action == "none")
        .count();
    let failed = s.hosts.iter().filter(|h| h.status == "failed").count();
    let skipped = s.hosts.iter().filter(|h| h.status == "skipped").count();
    let read: u64 = s.read_from_glance.values().sum();
    printer::say(&format!(
        "{} {} {}, {} current; {} failed, {} skipped of {}{}",
        bold("Prefetch:"),
        loads,
        if s.dry_run { "to load" } else { "loaded" },
        current,
        failed,
        skipped,
        printer::count(s.hosts.len(), "host"),
        if read > 0 {
            format!(
                "; read from Glance: {} ({})",
                bytes(read),
                printer::count(s.read_from_glance.len(), "image")
            )
        } else {
            String::new()
        }
    ));
}

pub(crate) fn bytes(n: u64) -> String {
    match n {
        0 => "-".into(),
        n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n if n < 1024 * 1024 * 1024 => format!("{:.1} MiB", n as f64 / 1048576.0),
        n => format!("{:.2} GiB", n as f64 / 1073741824.0),
    }
}
