//! minijinja rendering of step arguments, `when` conditions and template files.

use crate::assets::Templates;
use crate::inventory::Host;
use minijinja::{Environment, UndefinedBehavior, Value};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("cannot render `{text}`: {message}")]
    Text { text: String, message: String },
    #[error("cannot render template {name}: {message}")]
    Template { name: String, message: String },
}

pub(crate) struct Renderer {
    /// The playbook's `vars:`: defaults below every inventory variable.
    defaults: serde_yaml::Mapping,
    env: Environment<'static>,
    /// Same, but every `{{ value }}` comes out shell-quoted: for text that a shell runs.
    shell_env: Environment<'static>,
    /// `groups`: every group of the inventory → its hosts (name, address, port, user,
    /// nova_host), for files on one host that list others (the prefetch job's inventory).
    groups: Value,
    /// Secret values: never rendered as templates (a `{{` in a password is text).
    secrets: std::collections::BTreeSet<String>,
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// `a | combine(b)`: the mapping `a` with `b`'s keys set over it (shallow), as Ansible's
/// `combine`: playbook defaults that an inventory mapping overrides key by key.
fn combine(a: Value, b: Value) -> Result<Value, minijinja::Error> {
    let mut out = std::collections::BTreeMap::new();
    for m in [&a, &b] {
        if m.is_undefined() || m.is_none() {
            continue;
        }
        if m.kind() != minijinja::value::ValueKind::Map {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("combine works on mappings, not {}", m.kind()),
            ));
        }
        for k in m.try_iter()? {
            let v = m.get_item(&k)?;
            out.insert(k.to_string(), v);
        }
    }
    Ok(Value::from(out))
}

impl Renderer {
    pub(crate) fn new(templates: Arc<Templates>, defaults: serde_yaml::Mapping) -> Renderer {
        let mut env = Environment::new();
        // An undefined variable is an error, not an empty string in a config file.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_loader(move |name| Ok(templates.get(name)));
        env.add_filter("combine", combine);
        let mut shell_env = env.clone();
        shell_env.set_formatter(|out, _state, value| {
            let text = match value.as_str() {
                Some(s) => s.to_string(),
                None => value.to_string(),
            };
            out.write_str(&crate::shell::quote(&text)).map_err(|_| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed")
            })
        });
        Renderer {
            defaults,
            env,
            shell_env,
            groups: Value::from(std::collections::BTreeMap::<String, Value>::new()),
            secrets: Default::default(),
        }
    }

    /// Render a tree of strings that a shell will run: values are inserted quoted.
    pub(crate) fn render_shell_value(
        &self,
        v: &serde_yaml::Value,
        ctx: &Value,
    ) -> Result<serde_yaml::Value, RenderError> {
        use serde_yaml::Value as Y;
        Ok(match v {
            Y::String(s) if s.contains("{{") || s.contains("{%") => Y::String(
                self.shell_env
                    .render_str(s, ctx)
                    .map_err(|e| RenderError::Text {
                        text: s.clone(),
                        message: describe(&e),
                    })?,
            ),
            Y::Mapping(m) => {
                let mut out = serde_yaml::Mapping::new();
                for (k, x) in m {
                    out.insert(k.clone(), self.render_shell_value(x, ctx)?);
                }
                Y::Mapping(out)
            }
            other => other.clone(),
        })
    }

    /// Make the inventory's groups visible to templates as `groups`.
    pub(crate) fn with_inventory(mut self, inventory: &crate::inventory::Inventory) -> Renderer {
        let mut groups: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
            Default::default();
        for h in &inventory.hosts {
            let entry = serde_json::json!({
                "name": h.name,
                "address": h.address_str(),
                "port": h.port,
                "user": h.user,
                "nova_host": h.nova_host(),
            });
            groups.entry("all".into()).or_default().push(entry.clone());
            for g in &h.groups {
                groups.entry(g.clone()).or_default().push(entry.clone());
            }
        }
        for g in &inventory.groups {
            groups.entry(g.clone()).or_default();
        }
        self.groups = Value::from_serialize(&groups);
        self.secrets = inventory.secrets.iter().cloned().collect();
        self
    }

    /// The variables a host's strings and templates see, before its distribution is known.
    pub(crate) fn context(&self, host: &Host) -> Value {
        self.context_with(host, &crate::distro::assumed())
    }

    /// The variables a host's strings and templates see; `distro` as detected on the host.
    pub(crate) fn context_with(&self, host: &Host, distro: &crate::distro::Profile) -> Value {
        let mut map: std::collections::BTreeMap<String, Value> = self
            .defaults
            .iter()
            .chain(host.vars.iter())
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), Value::from_serialize(v))))
            .collect();
        map.insert(
            "host".into(),
            Value::from_serialize(serde_json::json!({
                "name": host.name,
                "address": host.address_str(),
                "groups": host.groups,
            })),
        );
        map.insert("groups".into(), self.groups.clone());
        map.insert("distro".into(), Value::from_serialize(distro));
        // Python that playbook commands run (src/remote): built in, never an inventory's.
        map.insert(
            "remote_py".into(),
            Value::from_iter(crate::remote::STANDALONE.iter().copied()),
        );
        // The running binary, for a step that installs novadock itself (the prefetch timer).
        map.insert(
            "novadock_exe".into(),
            Value::from(
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        );
        map.insert(
            "inventory_dir".into(),
            Value::from(host.inventory_dir.display().to_string()),
        );
        // Variables may use other variables (`"{{ inventory_dir }}/drivers"`): render string
        // values against the others a few times, as Ansible resolves them lazily. Always the
        // text as written, never a result (a value inserted is not a template), and never a
        // secret's value.
        let templates: Vec<(String, String)> = map
            .iter()
            .filter_map(|(k, v)| {
                let s = v.as_str()?;
                (s.contains("{{") && !self.secrets.contains(s)).then(|| (k.clone(), s.to_string()))
            })
            .collect();
        for _ in 0..3 {
            let ctx = Value::from(map.clone());
            let mut changed = false;
            for (k, text) in &templates {
                if let Ok(r) = self.env.render_str(text, &ctx)
                    && map.get(k).and_then(|v| v.as_str()) != Some(r.as_str())
                {
                    map.insert(k.clone(), Value::from(r));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Value::from(map)
    }

    pub(crate) fn render_str(&self, text: &str, ctx: &Value) -> Result<String, RenderError> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        self.env
            .render_str(text, ctx)
            .map_err(|e| RenderError::Text {
                text: text.to_string(),
                message: describe(&e),
            })
    }

    /// Render every string in a YAML tree. A string that is exactly one `{{ expr }}` keeps the
    /// expression's type, so `list_contains: "{{ filters }}"` can yield a list.
    pub(crate) fn render_value(
        &self,
        v: &serde_yaml::Value,
        ctx: &Value,
    ) -> Result<serde_yaml::Value, RenderError> {
        use serde_yaml::Value as Y;
        Ok(match v {
            Y::String(s) => {
                if let Some(expr) = single_expression(s) {
                    let val = self.eval(expr, ctx).map_err(|message| RenderError::Text {
                        text: s.clone(),
                        message,
                    })?;
                    if val.as_str().is_none()
                        && !val.is_undefined()
                        && !val.is_none()
                        && let Ok(y) = serde_yaml::to_value(&val)
                    {
                        return Ok(y);
                    }
                }
                Y::String(self.render_str(s, ctx)?)
            }
            Y::Sequence(seq) => Y::Sequence(
                seq.iter()
                    .map(|x| self.render_value(x, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Y::Mapping(m) => {
                let mut out = serde_yaml::Mapping::new();
                for (k, x) in m {
                    out.insert(k.clone(), self.render_value(x, ctx)?);
                }
                Y::Mapping(out)
            }
            other => other.clone(),
        })
    }

    fn eval(&self, expr: &str, ctx: &Value) -> Result<Value, String> {
        let e = self
            .env
            .compile_expression(expr)
            .map_err(|e| describe(&e))?;
        e.eval(ctx).map_err(|e| describe(&e))
    }

    /// A `when:` condition: either a template (`"{{ x }}"`) or a bare expression (`x == 1`).
    pub(crate) fn condition(&self, when: &str, ctx: &Value) -> Result<bool, RenderError> {
        let err = |message: String| RenderError::Text {
            text: when.to_string(),
            message,
        };
        let value = match single_expression(when) {
            Some(expr) => self.eval(expr, ctx).map_err(err)?,
            None if when.contains("{{") || when.contains("{%") => {
                Value::from(self.render_str(when, ctx)?)
            }
            None => self.eval(when, ctx).map_err(err)?,
        };
        Ok(match value.as_str() {
            // A rendered string: YAML-ish truth, as operators write it.
            Some(s) => !matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "" | "false" | "no" | "off" | "0" | "none"
            ),
            None => value.is_true(),
        })
    }

    pub(crate) fn render_template(&self, name: &str, ctx: &Value) -> Result<String, RenderError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| RenderError::Template {
                name: name.to_string(),
                message: describe(&e),
            })?;
        t.render(ctx).map_err(|e| RenderError::Template {
            name: name.to_string(),
            message: describe(&e),
        })
    }
}

fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") {
        return None;
    }
    Some(inner.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use std::path::Path;

    fn setup() -> (Renderer, Value) {
        let inv = Inventory::parse(
            Path::new("i.yml"),
            "hosts: { h: { address: 10.0.0.1, vars: { prefetch: false, filters: [A, B], n: 3 } } }\nvars: { conf: /etc/x.conf }\n",
        )
        .unwrap();
        let r = Renderer::new(
            Arc::new(Templates::embedded_only()),
            serde_yaml::from_str("{ n: 1, from_playbook: 7 }").unwrap(),
        );
        let ctx = r.context(&inv.hosts[0]);
        (r, ctx)
    }

    #[test]
    fn combine_sets_the_second_mapping_over_the_first() {
        let (r, _) = setup();
        let ctx: Value = Value::from_serialize(serde_json::json!({
            "d": { "live-restore": true, "bridge": "none" },
            "o": { "bridge": "docker0", "debug": true },
        }));
        assert_eq!(
            r.render_str("{{ d | combine(o) | tojson }}", &ctx).unwrap(),
            r#"{"bridge":"docker0","debug":true,"live-restore":true}"#
        );
        assert_eq!(
            r.render_str("{{ d | combine({}) | tojson }}", &ctx)
                .unwrap(),
            r#"{"bridge":"none","live-restore":true}"#
        );
        let e = r.render_str("{{ d | combine([1]) }}", &ctx).unwrap_err();
        assert!(
            e.to_string().contains("combine works on mappings, not seq"),
            "{e}"
        );
    }

    #[test]
    fn strings_and_types() {
        let (r, ctx) = setup();
        assert_eq!(r.render_str("{{ conf }}", &ctx).unwrap(), "/etc/x.conf");
        assert_eq!(
            r.render_str("{{ host.name }}@{{ host.address }}", &ctx)
                .unwrap(),
            "h@10.0.0.1"
        );
        let v: serde_yaml::Value =
            serde_yaml::from_str("{ a: '{{ filters }}', b: 'x{{ n }}' }").unwrap();
        let out = r.render_value(&v, &ctx).unwrap();
        assert_eq!(
            out["a"],
            serde_yaml::from_str::<serde_yaml::Value>("[A, B]").unwrap()
        );
        assert_eq!(
            out["b"].as_str(),
            Some("x3"),
            "inventory vars beat playbook vars"
        );
        assert_eq!(r.render_str("{{ from_playbook }}", &ctx).unwrap(), "7");
    }

    #[test]
    fn remote_python_is_built_in_and_no_inventory_replaces_it() {
        let (r, _) = setup();
        let inv = Inventory::parse(
            Path::new("i.yml"),
            "hosts: { h: { address: local } }\nvars: { remote_py: { pip_satisfied: 'print(1)' } }",
        )
        .unwrap();
        let ctx = r.context(&inv.hosts[0]);
        let v: serde_yaml::Value =
            serde_yaml::from_str("{ cmd: 'python3 -c {{ remote_py.pip_satisfied }}' }").unwrap();
        let out = r.render_shell_value(&v, &ctx).unwrap();
        let want = format!(
            "python3 -c {}",
            crate::shell::quote(include_str!("remote/pip-satisfied.py"))
        );
        assert_eq!(out["cmd"].as_str(), Some(want.as_str()));
    }

    #[test]
    fn shell_values_are_quoted() {
        let (r, _) = setup();
        let evil = "'; touch /tmp/pwned; ' $(id)";
        let mut vars = serde_yaml::Mapping::new();
        vars.insert("evil".into(), evil.into());
        let inv = Inventory::parse(Path::new("i.yml"), "hosts: { h: { address: local } }").unwrap();
        let mut host = inv.hosts[0].clone();
        host.vars = vars;
        let ctx = r.context(&host);
        let v: serde_yaml::Value = serde_yaml::from_str("{ cmd: 'printf %s {{ evil }}' }").unwrap();
        let out = r.render_shell_value(&v, &ctx).unwrap();
        let cmd = out["cmd"].as_str().unwrap();
        let run = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout), evil);
    }

    #[test]
    fn undefined_is_an_error() {
        let (r, ctx) = setup();
        let e = r.render_str("{{ nope }}", &ctx).unwrap_err();
        assert!(e.to_string().contains("undefined"), "{e}");
    }

    /// bootstrap.yml's driver source: `bundled` unless the inventory names a driver path,
    /// and the site directory the bundled package goes to.
    #[test]
    fn bootstrap_driver_source_defaults() {
        let pb = crate::playbook::Playbook::load(Path::new("playbooks/bootstrap.yml")).unwrap();
        let r = Renderer::new(Arc::new(Templates::embedded_only()), pb.vars.clone());
        let inv = Inventory::parse(Path::new("i.yml"), "hosts: { h: { address: local } }").unwrap();
        let mut host = inv.hosts[0].clone();
        let ctx = r.context(&host);
        let get = |ctx: &Value, k: &str| r.render_str(&format!("{{{{ {k} }}}}"), ctx).unwrap();
        assert_eq!(get(&ctx, "docker_driver_source"), "bundled");
        assert_eq!(get(&ctx, "nova_site_dir"), "/usr/lib/python3/dist-packages");
        assert_eq!(
            get(
                &ctx,
                "docker_driver_import or ('novadock_driver.driver.DockerDriver' if docker_driver_source == 'bundled' else '')"
            ),
            "novadock_driver.driver.DockerDriver"
        );
        host.vars
            .insert("docker_driver_path".into(), "/srv/drv".into());
        let ctx = r.context(&host);
        assert_eq!(get(&ctx, "docker_driver_source"), "path");
        host.vars
            .insert("docker_driver_source".into(), "pip".into());
        host.vars.insert(
            "nova_virt_dir".into(),
            "/opt/nova/lib/python3.11/site-packages/nova/virt".into(),
        );
        let ctx = r.context(&host);
        assert_eq!(get(&ctx, "docker_driver_source"), "pip");
        assert_eq!(
            get(&ctx, "nova_site_dir"),
            "/opt/nova/lib/python3.11/site-packages"
        );
    }

    /// The prefetch job's inventory as bootstrap writes it: with the nova source (the default
    /// with the bundled driver) no SSH key or known_hosts, and the SSH steps' `when:` is false;
    /// with glance both are there. Either way it is an inventory novadock reads.
    #[test]
    fn the_prefetch_jobs_inventory_follows_its_source() {
        let pb = crate::playbook::Playbook::load(Path::new("playbooks/bootstrap.yml")).unwrap();
        let text = |vars: &str| {
            let inv = Inventory::parse(
                Path::new("i.yml"),
                &format!("hosts:\n  ctl: {{ address: 10.0.0.1, groups: [controllers] }}\n  cmp1: {{ address: 10.0.0.2, groups: [docker_computes] }}\nvars: {{ {vars} }}\n"),
            )
            .unwrap();
            let r = Renderer::new(Arc::new(Templates::embedded_only()), pb.vars.clone())
                .with_inventory(&inv);
            let ctx = r.context(&inv.hosts[0]);
            let ssh_steps = r
                .condition("{{ prefetch_source != 'nova' }}", &ctx)
                .unwrap();
            let out = r.render_template("prefetch/prefetch.yml.j2", &ctx).unwrap();
            Inventory::parse(Path::new("/etc/novadock/prefetch.yml"), &out).unwrap();
            (out, ssh_steps)
        };
        let (nova, ssh_steps) = text("");
        assert!(nova.contains("\n  prefetch_source: \"nova\"\n"), "{nova}");
        assert!(
            !nova.contains("identity_file") && !nova.contains("ssh:"),
            "{nova}"
        );
        assert!(!ssh_steps);
        let (glance, ssh_steps) = text("docker_driver_source: pip");
        assert!(
            glance.contains("\n  prefetch_source: \"glance\"\n"),
            "{glance}"
        );
        assert!(
            glance.contains(
                "\nssh:\n  user: root\n  identity_file: \"/etc/novadock/prefetch_ed25519\"\n"
            ),
            "{glance}"
        );
        assert!(ssh_steps);
    }

    /// Isolation as bootstrap renders it: the docker flavors and aggregate require the
    /// driver's trait, or with docker_isolation false carry the filter's spec only; cells
    /// discovery checks every Docker compute by its Nova name.
    #[test]
    fn the_bootstrap_isolates_the_docker_hosts_unless_told_not_to() {
        let pb = crate::playbook::Playbook::load(Path::new("playbooks/bootstrap.yml")).unwrap();
        let step = |name: &str| pb.steps.iter().find(|s| s.name == name).unwrap();
        let rendered = |vars: &str, name: &str, key: &str| {
            let inv = Inventory::parse(
                Path::new("i.yml"),
                &format!("hosts:\n  ctl: {{ address: 10.0.0.1, groups: [controllers] }}\n  cmp1: {{ address: 10.0.0.2, groups: [docker_computes], vars: {{ nova_host: cmp1.example }} }}\nvars: {{ {vars} }}\n"),
            )
            .unwrap();
            let r = Renderer::new(Arc::new(Templates::embedded_only()), pb.vars.clone())
                .with_inventory(&inv);
            let ctx = r.context(&inv.hosts[0]);
            let ctx = minijinja::context! { item => minijinja::context! { name => "d1.small", ram => 1, disk => 1, vcpus => 1 }, ..ctx };
            let s = step(name);
            let v = if s.kind == "command" {
                r.render_shell_value(&s.args, &ctx).unwrap()
            } else {
                r.render_value(&s.args, &ctx).unwrap()
            };
            serde_json::to_string(&v[key]).unwrap()
        };
        let flavors = "Docker flavors carry the extra spec the filter matches";
        let aggregate = "The docker aggregate holds the Docker compute hosts";
        assert_eq!(
            rendered("", flavors, "properties"),
            r#"{"aggregate_instance_extra_specs:hypervisor_type":"docker","trait:CUSTOM_NOVADOCK_DOCKER":"required"}"#
        );
        assert_eq!(
            rendered("", aggregate, "metadata"),
            r#"{"hypervisor_type":"docker","trait:CUSTOM_NOVADOCK_DOCKER":"required"}"#
        );
        assert_eq!(
            rendered("docker_isolation: false", flavors, "properties"),
            r#"{"aggregate_instance_extra_specs:hypervisor_type":"docker"}"#
        );
        assert_eq!(
            rendered("docker_isolation: false", aggregate, "metadata"),
            r#"{"hypervisor_type":"docker"}"#
        );
        let unless = rendered("", "Nova's cells know the Docker compute hosts", "unless");
        assert!(unless.contains("for h in cmp1.example ; do"), "{unless}");
    }

    #[test]
    fn conditions() {
        let (r, ctx) = setup();
        assert!(!r.condition("{{ prefetch | default(true) }}", &ctx).unwrap());
        assert!(r.condition("{{ missing | default(true) }}", &ctx).unwrap());
        assert!(r.condition("n > 2", &ctx).unwrap());
        assert!(!r.condition("'h' in host.groups", &ctx).unwrap());
    }
}
