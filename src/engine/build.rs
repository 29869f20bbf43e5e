//! A playbook step, rendered for one host, as its step kind.

use crate::inventory::Inventory;
use crate::render::Renderer;
use crate::steps::{self, StepKind};
use std::collections::BTreeSet;

/// Render a step's arguments for one host and build it (once per item with `loop`);
/// `check` and runs share this.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_step(
    renderer: &Renderer,
    inventory: &Inventory,
    limit: Option<&BTreeSet<String>>,
    kind: &str,
    args: &serde_yaml::Value,
    loop_over: Option<&serde_yaml::Value>,
    vars: &minijinja::Value,
    handler: bool,
) -> Result<Box<dyn StepKind + Send + Sync>, String> {
    if let Some(items) = loop_over {
        let items = match renderer
            .render_value(items, vars)
            .map_err(|e| e.to_string())?
        {
            serde_yaml::Value::Sequence(items) => items,
            other => {
                return Err(format!("loop: expected a list, got {}", yaml_kind(&other)));
            }
        };
        let mut built = Vec::new();
        for item in items {
            let vars = minijinja::context! { item => minijinja::Value::from_serialize(&item), ..vars.clone() };
            built.push(build_step(
                renderer, inventory, limit, kind, args, None, &vars, handler,
            )?);
        }
        return Ok(Box::new(steps::Each { items: built }));
    }
    // A shell runs `command` text: values go in quoted; `creates:` is a path, not shell.
    let rendered = if kind == "command" {
        renderer.render_shell_value(args, vars).and_then(|mut r| {
            if let (Some(m), Some(c)) = (r.as_mapping_mut(), args.get("creates")) {
                m.insert("creates".into(), renderer.render_value(c, vars)?);
            }
            Ok(r)
        })
    } else {
        renderer.render_value(args, vars)
    };
    let mut rendered = rendered.map_err(|e| e.to_string())?;
    if kind == "openstack_aggregate" || kind == "nova_computes" {
        steps::openstack_aggregate::resolve_hosts(&mut rendered, inventory, limit);
        // A check only reads: under --limit it checks the limited hosts, and has no members
        // to keep.
        if kind == "nova_computes"
            && let Some(m) = rendered.as_mapping_mut()
        {
            m.remove("exclusive");
        }
    }
    if kind == "known_hosts" {
        steps::known_hosts::resolve_hosts(&mut rendered, inventory);
    }
    steps::build(kind, rendered, handler).map_err(|e| format!("{kind}: {e}"))
}

fn yaml_kind(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}
