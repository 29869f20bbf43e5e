//! The cloud an inventory describes, as the commands that work through its controller see it:
//! the controller host, its variables (with the bootstrap playbook's defaults) and the
//! OpenStack credentials there.

use crate::inventory::{Host, Inventory};
use crate::printer::hinted;
use anyhow::{Context, Result};

/// The embedded bootstrap playbook's variables.
fn bootstrap_vars() -> &'static serde_yaml::Mapping {
    static VARS: std::sync::OnceLock<serde_yaml::Mapping> = std::sync::OnceLock::new();
    VARS.get_or_init(|| {
        crate::assets::embedded_playbook(std::path::Path::new("bootstrap.yml"))
            .and_then(|text| serde_yaml::from_str::<serde_yaml::Value>(text).ok())
            .and_then(|doc| doc.get("vars").and_then(|v| v.as_mapping()).cloned())
            .unwrap_or_default()
    })
}

/// The embedded bootstrap playbook's default for variable `k`, as written.
fn bootstrap_default(k: &str) -> Option<serde_yaml::Value> {
    bootstrap_vars().get(k).cloned()
}

/// A default written as a template (`prefetch_source` follows `docker_driver_source`), as the
/// playbook would render it for `host`.
fn rendered_default(host: &Host, text: &str) -> Result<String> {
    let r = crate::render::Renderer::new(
        std::sync::Arc::new(crate::assets::Templates::embedded_only()),
        bootstrap_vars().clone(),
    );
    r.render_str(text, &r.context(host))
        .map_err(|e| anyhow::anyhow!("the bootstrap playbook's default: {e}"))
}

/// The controller of an inventory (first host of group `controllers`) and its variables, for
/// the commands that work through it (`image add`, `prefetch`, `boot-time`).
pub(crate) struct Cloud {
    pub(crate) inventory: Inventory,
    pub(crate) controller: Host,
}

impl Cloud {
    /// `why`: the hint when the inventory has no controller, in the command's words.
    pub(crate) fn load(path: &std::path::Path, why: &str) -> Result<Cloud> {
        let inventory = Inventory::open(path)?;
        let controller = inventory
            .hosts
            .iter()
            .find(|h| h.groups.iter().any(|g| g == "controllers"))
            .cloned()
            .ok_or_else(|| {
                hinted(
                    format!("{}: no host in group `controllers`", path.display()),
                    why,
                )
            })?;
        Ok(Cloud {
            inventory,
            controller,
        })
    }

    /// A string variable as the controller sees it (no templating: these are plain values),
    /// else the bootstrap playbook's default for it: one place says what the defaults are.
    pub(crate) fn var(&self, k: &str) -> Result<Option<String>> {
        let value = match self.controller.vars.get(k) {
            None | Some(serde_yaml::Value::Null) => match bootstrap_default(k) {
                Some(serde_yaml::Value::String(t)) if t.contains("{{") => Some(
                    serde_yaml::Value::String(rendered_default(&self.controller, &t)?),
                ),
                other => other,
            },
            Some(v) => Some(v.clone()),
        };
        match value {
            None | Some(serde_yaml::Value::Null) => Ok(None),
            Some(serde_yaml::Value::String(s)) => Ok(Some(s)),
            Some(serde_yaml::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(serde_yaml::Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(anyhow::anyhow!(
                "{}: variable `{k}` must be a string",
                self.inventory.path.display()
            )),
        }
    }

    /// A list of strings (e.g. `prefetch_projects`), else the bootstrap playbook's default.
    pub(crate) fn list_var(&self, k: &str) -> Result<Vec<String>> {
        let value = match self.controller.vars.get(k) {
            None | Some(serde_yaml::Value::Null) => bootstrap_default(k),
            Some(v) => Some(v.clone()),
        };
        let bad = || {
            anyhow::anyhow!(
                "{}: variable `{k}` must be a list of strings",
                self.inventory.path.display()
            )
        };
        match value {
            None | Some(serde_yaml::Value::Null) => Ok(vec![]),
            Some(serde_yaml::Value::Sequence(items)) => items
                .into_iter()
                .map(|v| match v {
                    serde_yaml::Value::String(s) => Ok(s),
                    _ => Err(bad()),
                })
                .collect(),
            Some(_) => Err(bad()),
        }
    }

    /// A variable the embedded bootstrap playbook always defines.
    pub(crate) fn var_or_default(&self, k: &str) -> Result<String> {
        self.var(k)?
            .with_context(|| format!("variable `{k}` has no default in the bootstrap playbook"))
    }

    pub(crate) fn auth(&self) -> Result<crate::openstack::Auth> {
        let cloud = self.var("openstack_cloud")?;
        // clouds.yaml instead of the openrc: the openrc's default does not apply then.
        let openrc = match (&cloud, self.controller.vars.get("openstack_openrc")) {
            (Some(_), None | Some(serde_yaml::Value::Null)) => None,
            _ => self.var("openstack_openrc")?,
        };
        if openrc.is_some() && cloud.is_some() {
            return Err(hinted(
                "both `openstack_openrc` and `openstack_cloud` are set for the controller",
                "keep one: an openrc file or a clouds.yaml entry",
            ));
        }
        Ok(crate::openstack::Auth { openrc, cloud })
    }

    /// How `plan`/`apply` would connect, with the command's connection options.
    pub(crate) fn connect_options(
        &self,
        persist_secs: u64,
        connect_timeout_secs: u64,
        accept_new_host_keys: bool,
    ) -> crate::transport::ConnectOptions {
        crate::transport::ConnectOptions::of(
            &self.inventory,
            persist_secs,
            connect_timeout_secs,
            accept_new_host_keys,
        )
    }
}

#[cfg(test)]
mod tests {
    /// The commands that read inventory variables get the bootstrap playbook's defaults.
    #[test]
    fn defaults_come_from_the_bootstrap_playbook() {
        let s = |k: &str| super::bootstrap_default(k).and_then(|v| v.as_str().map(str::to_string));
        assert_eq!(s("docker_aggregate").as_deref(), Some("docker"));
        assert_eq!(s("prefetch_hosts").as_deref(), Some("aggregate"));
        assert_eq!(s("openstack_openrc").as_deref(), Some("/root/admin-openrc"));
        assert!(super::bootstrap_default("no_such_var").is_none());
    }

    /// A variable as the controller of an inventory with these `vars` sees it.
    fn var(vars: &str, name: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.yml");
        std::fs::write(
            &p,
            format!("hosts: {{ ctl: {{ address: local, groups: [controllers] }} }}\nvars: {{ {vars} }}\n"),
        )
        .unwrap();
        let c = super::Cloud::load(&p, "why").unwrap();
        c.var_or_default(name).unwrap()
    }

    /// Concurrency is `prefetch_forks`; an inventory's `prefetch_parallel`, its old name, is
    /// still read.
    #[test]
    fn prefetch_forks_reads_its_old_name() {
        assert_eq!(var("", "prefetch_forks"), "4");
        assert_eq!(var("prefetch_parallel: 7", "prefetch_forks"), "7");
        assert_eq!(
            var("prefetch_parallel: 7, prefetch_forks: 9", "prefetch_forks"),
            "9"
        );
    }

    /// `prefetch_source` follows the driver: Nova's pre-cache API with novadock's own driver,
    /// SSH from the controller with any other; an explicit value wins.
    #[test]
    fn the_prefetch_source_follows_the_driver() {
        let source = |vars: &str| var(vars, "prefetch_source");
        assert_eq!(source(""), "nova");
        assert_eq!(source("docker_driver_source: bundled"), "nova");
        assert_eq!(source("docker_driver_path: /srv/drv"), "glance");
        assert_eq!(source("docker_driver_source: pip"), "glance");
        assert_eq!(source("prefetch_source: registry"), "registry");
        assert_eq!(
            source("docker_driver_source: pip, prefetch_source: nova"),
            "nova"
        );
    }
}
