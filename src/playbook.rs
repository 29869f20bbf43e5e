//! The playbook: steps (each of one kind) and handlers.

use crate::assets;
use crate::yaml::{self, YamlError};
use indexmap::IndexMap;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub(crate) enum PlaybookError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{path}: step {index} ({name}): {message}")]
    Step {
        path: PathBuf,
        index: usize,
        name: String,
        message: String,
    },
    #[error("{path}: handler `{name}`: {message}")]
    Handler {
        path: PathBuf,
        name: String,
        message: String,
    },
    #[error("playbook {0} not found on disk, and no embedded playbook has that name")]
    NotFound(PathBuf),
}

/// One hosts pattern: `controllers`, `ctl,cmp1`, or a YAML list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum HostsSpec {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    hosts: HostsSpec,
    when: Option<String>,
    /// Run the step once per item (`item` in its strings): a list, or one `{{ expr }}`.
    #[serde(rename = "loop")]
    loop_over: Option<serde_yaml::Value>,
    #[serde(default)]
    notify: Vec<String>,
    /// The hosts this step manages from where it runs (say, the controller's list of compute
    /// hosts): under `--limit`, it runs when any of them is limited.
    for_hosts: Option<HostsSpec>,
    /// Once for the whole inventory, on the first reachable host of `hosts` (cloud-wide API
    /// changes: with several controllers, once is right and twice conflicts).
    #[serde(default)]
    run_once: bool,
    /// At most this many hosts run the step at a time (a rolling change).
    serial: Option<usize>,
    /// Its failure on any host stops the whole apply before any host changes (Ansible's
    /// term): for a refusal that protects other hosts (see the playbook reference).
    #[serde(default)]
    any_errors_fatal: bool,
    /// In apply, after every host's other steps and handlers (see the playbook reference).
    #[serde(default)]
    after_all: bool,
    // One of these; checked below (serde cannot say "exactly one").
    ini: Option<serde_yaml::Value>,
    template: Option<serde_yaml::Value>,
    file: Option<serde_yaml::Value>,
    toml: Option<serde_yaml::Value>,
    package: Option<serde_yaml::Value>,
    service: Option<serde_yaml::Value>,
    user_groups: Option<serde_yaml::Value>,
    command: Option<serde_yaml::Value>,
    copy: Option<serde_yaml::Value>,
    openstack_flavor: Option<serde_yaml::Value>,
    openstack_aggregate: Option<serde_yaml::Value>,
    authorized_key: Option<serde_yaml::Value>,
    known_hosts: Option<serde_yaml::Value>,
    nova_driver: Option<serde_yaml::Value>,
    nova_computes: Option<serde_yaml::Value>,
    novadock_binary: Option<serde_yaml::Value>,
    glance_image: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandler {
    /// At most this many hosts run the handler at a time (a rolling restart).
    serial: Option<usize>,
    /// How long a `serial` service handler waits for its unit to be active again.
    active_timeout: Option<u64>,
    service: Option<serde_yaml::Value>,
    command: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    /// Another playbook whose vars, steps and handlers come first (this one's vars win).
    import: Option<String>,
    /// Refuse to run without `--limit`: a playbook for the hosts being added.
    #[serde(default)]
    require_limit: bool,
    /// Defaults for variables; every inventory variable overrides them.
    #[serde(default)]
    vars: serde_yaml::Mapping,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    handlers: IndexMap<String, RawHandler>,
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) hosts: String,
    pub(crate) when: Option<String>,
    pub(crate) loop_over: Option<serde_yaml::Value>,
    pub(crate) notify: Vec<String>,
    /// Hosts managed from where the step runs (see `for_hosts` in the playbook reference).
    pub(crate) for_hosts: Option<String>,
    /// Runs on one host only (see `run_once` in the playbook reference).
    pub(crate) run_once: bool,
    /// A rolling change: at most this many hosts at a time (see `serial` in the playbook
    /// reference).
    pub(crate) serial: Option<usize>,
    /// Its failure in the plan stops the whole apply (see `any_errors_fatal` in the playbook
    /// reference).
    pub(crate) any_errors_fatal: bool,
    /// In apply, runs after every host's other steps and handlers (see `after_all` in the
    /// playbook reference).
    pub(crate) after_all: bool,
    pub(crate) kind: &'static str,
    /// Unrendered arguments: rendered per host at plan time.
    pub(crate) args: serde_yaml::Value,
}

#[derive(Debug, Clone)]
pub(crate) struct Handler {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) args: serde_yaml::Value,
    /// A rolling run: at most this many hosts at a time (see `serial` in the playbook reference).
    pub(crate) serial: Option<usize>,
    /// Seconds a `serial` service handler waits for its unit to be active again.
    pub(crate) active_timeout: u64,
}

/// How long a rolling restart waits for a unit to be active again, unless the handler says.
pub(crate) const ACTIVE_TIMEOUT_SECS: u64 = 120;

#[derive(Debug, Clone)]
pub(crate) struct Playbook {
    /// Shown to users: the path given, or `embedded:playbooks/NAME`.
    pub(crate) source: String,
    /// The file on disk, when it came from disk (templates are looked up beside it).
    pub(crate) disk_path: Option<PathBuf>,
    pub(crate) vars: serde_yaml::Mapping,
    pub(crate) steps: Vec<Step>,
    pub(crate) handlers: Vec<Handler>,
    /// Runs only with `--limit` (see `require_limit`).
    pub(crate) require_limit: bool,
}

impl Playbook {
    /// Load from disk, or the embedded copy when `path` is not on disk.
    pub(crate) fn load(path: &Path) -> Result<Playbook, PlaybookError> {
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            return Self::parse(path, &text, Some(path.to_path_buf()));
        }
        Self::embedded(path)
    }

    /// The playbook of that name shipped inside the binary, whatever is on disk.
    pub(crate) fn embedded(path: &Path) -> Result<Playbook, PlaybookError> {
        let text = assets::embedded_playbook(path)
            .ok_or_else(|| PlaybookError::NotFound(path.to_path_buf()))?;
        let shown = PathBuf::from(format!("embedded:{}", path.display()));
        Self::parse(&shown, text, None)
    }

    pub(crate) fn parse(
        path: &Path,
        text: &str,
        disk_path: Option<PathBuf>,
    ) -> Result<Playbook, PlaybookError> {
        let raw: RawPlaybook = yaml::parse(path, text)?;
        let mut steps = Vec::new();
        for (i, s) in raw.steps.into_iter().enumerate() {
            let kinds = [
                ("ini", s.ini),
                ("template", s.template),
                ("file", s.file),
                ("toml", s.toml),
                ("package", s.package),
                ("service", s.service),
                ("user_groups", s.user_groups),
                ("command", s.command),
                ("copy", s.copy),
                ("openstack_flavor", s.openstack_flavor),
                ("openstack_aggregate", s.openstack_aggregate),
                ("authorized_key", s.authorized_key),
                ("known_hosts", s.known_hosts),
                ("nova_driver", s.nova_driver),
                ("nova_computes", s.nova_computes),
                ("novadock_binary", s.novadock_binary),
                ("glance_image", s.glance_image),
            ];
            let step_err = |message: String| PlaybookError::Step {
                path: path.to_path_buf(),
                index: i + 1,
                name: s.name.clone(),
                message,
            };
            let (kind, args) = exactly_one(kinds).map_err(step_err)?;
            for n in &s.notify {
                if !raw.handlers.contains_key(n) {
                    return Err(step_err(format!("notifies `{n}`, which is not a handler")));
                }
            }
            let join = |h: HostsSpec| match h {
                HostsSpec::One(h) => h,
                HostsSpec::Many(v) => v.join(","),
            };
            if s.serial == Some(0) {
                return Err(step_err(
                    "serial: 0 would run it on no host; give 1 (one host at a time) or more".into(),
                ));
            }
            if s.serial.is_some() && s.run_once {
                return Err(step_err(
                    "serial and run_once: a run_once step runs on one host already".into(),
                ));
            }
            let hosts = join(s.hosts);
            let for_hosts = s.for_hosts.map(join);
            steps.push(Step {
                name: s.name,
                hosts,
                when: s.when,
                loop_over: s.loop_over,
                notify: s.notify,
                for_hosts,
                run_once: s.run_once,
                serial: s.serial,
                any_errors_fatal: s.any_errors_fatal,
                after_all: s.after_all,
                kind,
                args,
            });
        }
        let mut handlers = Vec::new();
        for (name, h) in raw.handlers {
            let handler_err = |message: String| PlaybookError::Handler {
                path: path.to_path_buf(),
                name: name.clone(),
                message,
            };
            let (kind, args) = exactly_one([("service", h.service), ("command", h.command)])
                .map_err(handler_err)?;
            if h.serial == Some(0) {
                return Err(handler_err(
                    "serial: 0 would run it on no host; give 1 (one host at a time) or more".into(),
                ));
            }
            if h.active_timeout.is_some() && (h.serial.is_none() || kind != "service") {
                return Err(handler_err(
                    "active_timeout is for `serial` service handlers (how long a restarted unit may take to be active)".into(),
                ));
            }
            handlers.push(Handler {
                name,
                kind,
                args,
                serial: h.serial,
                active_timeout: h.active_timeout.unwrap_or(ACTIVE_TIMEOUT_SECS),
            });
        }
        let mut playbook = Playbook {
            source: path.display().to_string(),
            disk_path,
            vars: raw.vars,
            steps,
            handlers,
            require_limit: raw.require_limit,
        };
        if let Some(import) = &raw.import {
            // Beside this playbook on disk, else embedded; one level deep, no cycles possible.
            // An embedded playbook imports embedded ones only.
            let beside = playbook
                .disk_path
                .as_deref()
                .and_then(Path::parent)
                .map(|d| d.join(import));
            let base = match beside.filter(|p| p.exists()) {
                Some(p) => Playbook::load(&p)?,
                None => {
                    let text = assets::embedded_playbook(Path::new(import))
                        .ok_or_else(|| PlaybookError::NotFound(PathBuf::from(import)))?;
                    Self::parse(&PathBuf::from(format!("embedded:{import}")), text, None)?
                }
            };
            let mut vars = base.vars;
            for (k, v) in playbook.vars {
                vars.insert(k, v);
            }
            playbook.vars = vars;
            let mut steps = base.steps;
            steps.append(&mut playbook.steps);
            playbook.steps = steps;
            let mut handlers = base.handlers;
            for h in playbook.handlers {
                handlers.retain(|b| b.name != h.name);
                handlers.push(h);
            }
            playbook.handlers = handlers;
        }
        Ok(playbook)
    }
}

fn exactly_one<const N: usize>(
    kinds: [(&'static str, Option<serde_yaml::Value>); N],
) -> Result<(&'static str, serde_yaml::Value), String> {
    let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
    let mut present: Vec<(&'static str, serde_yaml::Value)> = kinds
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    match present.len() {
        1 => Ok(present.remove(0)),
        0 => Err(format!("needs one of: {}", names.join(", "))),
        _ => Err(format!(
            "has several kinds ({}); a step does one thing",
            present
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let pb = Playbook::parse(
            Path::new("p.yml"),
            r#"
steps:
  - name: Glance accepts the docker container format
    hosts: controllers
    when: "{{ prefetch | default(true) }}"
    ini:
      path: "{{ glance_api_conf }}"
      section: image_format
      option: container_formats
      list_contains: [docker]
      default: "ami,ari,aki,bare,ovf,ova,docker,compressed"
      aliases: [{ section: DEFAULT, option: container_formats }]
    notify: [glance-api]
handlers:
  glance-api: { service: { name: glance-api, state: restarted } }
"#,
            None,
        )
        .unwrap();
        assert_eq!(pb.steps[0].kind, "ini");
        assert_eq!(pb.handlers[0].name, "glance-api");
    }

    #[test]
    fn errors_name_the_place() {
        let e = Playbook::parse(
            Path::new("p.yml"),
            "steps:\n  - name: x\n    hosts: all\n    colour: red\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("p.yml:4:5: steps[0]: unknown field `colour`"),
            "{e}"
        );
        let e = Playbook::parse(
            Path::new("p.yml"),
            "steps:\n  - name: x\n    hosts: all\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("step 1 (x): needs one of"), "{e}");
        let e = Playbook::parse(
            Path::new("p.yml"),
            "steps:\n  - name: x\n    hosts: all\n    command: { cmd: true }\n    notify: [nope]\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("notifies `nope`"), "{e}");
    }

    /// The docker aggregate's refusal (a compute still hosting instances of another driver)
    /// stops the whole apply: the computes' steps would switch their driver meanwhile.
    #[test]
    fn any_errors_fatal_and_the_docker_aggregate() {
        let pb = Playbook::parse(
            Path::new("p.yml"),
            "steps:\n  - { name: x, hosts: all, any_errors_fatal: true, command: { cmd: 'true' } }\n  - { name: y, hosts: all, command: { cmd: 'true' } }\n",
            None,
        )
        .unwrap();
        assert!(pb.steps[0].any_errors_fatal && !pb.steps[1].any_errors_fatal);
        let pb = Playbook::embedded(Path::new("playbooks/bootstrap.yml")).unwrap();
        let fatal: Vec<&str> = pb
            .steps
            .iter()
            .filter(|s| s.any_errors_fatal)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            fatal,
            ["The docker aggregate holds the Docker compute hosts"]
        );
        // The check after apply and discovery wait for the computes' restarts.
        let last: Vec<&str> = pb
            .steps
            .iter()
            .filter(|s| s.after_all)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            last,
            [
                "Nova's cells know the Docker compute hosts",
                "Every Docker compute runs nova-compute with the Docker driver"
            ]
        );
    }

    #[test]
    fn run_once_and_serial() {
        let pb = Playbook::parse(
            Path::new("p.yml"),
            "steps:\n  - { name: x, hosts: all, run_once: true, command: { cmd: 'true' }, notify: [r] }\n  - { name: y, hosts: all, command: { cmd: 'true' } }\nhandlers:\n  r: { serial: 1, active_timeout: 30, service: { name: glance-api, state: restarted } }\n  c: { command: { cmd: 'true' } }\n",
            None,
        )
        .unwrap();
        assert!(pb.steps[0].run_once && !pb.steps[1].run_once);
        assert_eq!(pb.handlers[0].serial, Some(1));
        assert_eq!(pb.handlers[0].active_timeout, 30);
        assert_eq!(pb.handlers[1].serial, None);
        let err = |text: &str| {
            Playbook::parse(Path::new("p.yml"), text, None)
                .unwrap_err()
                .to_string()
        };
        let e = err("handlers:\n  r: { serial: 0, command: { cmd: 'true' } }\n");
        assert_eq!(
            e,
            "p.yml: handler `r`: serial: 0 would run it on no host; give 1 (one host at a time) or more"
        );
        let e = err("handlers:\n  r: { active_timeout: 5, command: { cmd: 'true' } }\n");
        assert!(
            e.contains("handler `r`: active_timeout is for `serial` service"),
            "{e}"
        );
        // Steps roll too, but not with run_once; a typo still names its place.
        let pb = Playbook::parse(
            Path::new("p.yml"),
            "steps:\n  - { name: x, hosts: all, serial: 2, command: { cmd: 'true' } }\n",
            None,
        )
        .unwrap();
        assert_eq!(pb.steps[0].serial, Some(2));
        let e = err("steps:\n  - { name: x, hosts: all, serial: 0, command: { cmd: 'true' } }\n");
        assert!(e.contains("serial: 0 would run it on no host"), "{e}");
        let e = err(
            "steps:\n  - { name: x, hosts: all, serial: 1, run_once: true, command: { cmd: 'true' } }\n",
        );
        assert!(
            e.contains("serial and run_once: a run_once step runs on one host already"),
            "{e}"
        );
        let e = err("steps:\n  - name: x\n    hosts: all\n    serail: 1\n");
        assert!(
            e.starts_with("p.yml:4:5: steps[0]: unknown field `serail`"),
            "{e}"
        );
        let e = err("steps:\n  - name: x\n    hosts: all\n    run_once: yes please\n");
        assert!(e.starts_with("p.yml:4:"), "{e}");
    }

    /// The bootstrap's defaults as a host renders them: dockerd keeps instances across its
    /// restarts and leaves Neutron's bridging alone, the inventory's keys set over them; an
    /// RDO host's handlers restart RDO's units.
    #[test]
    fn the_bootstrap_renders_per_host_defaults() {
        use crate::assets::Templates;
        use crate::render::Renderer;
        let pb = Playbook::embedded(Path::new("playbooks/bootstrap.yml")).unwrap();
        let inv = crate::inventory::Inventory::parse(
            Path::new("i.yml"),
            "hosts: { cmp1: { address: 10.0.0.2, groups: [docker_computes], vars: { docker_daemon: { log-driver: journald, live-restore: true } } } }\n",
        )
        .unwrap();
        let r = Renderer::new(
            std::sync::Arc::new(Templates::embedded_only()),
            pb.vars.clone(),
        )
        .with_inventory(&inv);
        let ctx = r.context(&inv.hosts[0]);
        assert_eq!(
            r.render_template("docker/daemon.json.j2", &ctx).unwrap(),
            "{\n  \"bridge\": \"none\",\n  \"iptables\": false,\n  \"live-restore\": true,\n  \"log-driver\": \"journald\"\n}\n"
        );
        let profile = |os_release: &[u8]| {
            let mut f = crate::facts::Facts::default();
            f.files.insert(
                "/etc/os-release".into(),
                crate::facts::FileFact::File {
                    meta: crate::facts::Meta {
                        owner: "root".into(),
                        group: "root".into(),
                        mode: "644".into(),
                    },
                    content: os_release.into(),
                },
            );
            crate::distro::detect(&f).unwrap()
        };
        let rdo = profile(include_bytes!("../tests/data/distro/os-release.rocky9"));
        let names = |ctx: &minijinja::Value| -> Vec<String> {
            pb.handlers
                .iter()
                .filter(|h| h.kind == "service")
                .map(|h| {
                    r.render_value(&h.args, ctx).unwrap()["name"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect()
        };
        assert_eq!(
            names(&ctx),
            [
                "glance-api",
                "nova-scheduler",
                "docker",
                "nova-compute",
                "novadock-prefetch.timer"
            ]
        );
        assert_eq!(
            names(&r.context_with(&inv.hosts[0], &rdo)),
            [
                "openstack-glance-api",
                "openstack-nova-scheduler",
                "docker",
                "openstack-nova-compute",
                "novadock-prefetch.timer"
            ]
        );
        // The engine, plus the `docker` command where it is packaged apart (Debian 13).
        let engine = pb
            .steps
            .iter()
            .find(|s| s.name == "The Docker engine is installed")
            .unwrap();
        let packages = |profile: &crate::distro::Profile| {
            let args = r
                .render_value(&engine.args, &r.context_with(&inv.hosts[0], profile))
                .unwrap();
            serde_yaml::from_value::<Vec<String>>(args["names"].clone()).unwrap()
        };
        let trixie = profile(include_bytes!("../tests/data/distro/os-release.debian13"));
        assert_eq!(packages(&trixie), ["docker.io", "docker-cli"]);
        let bookworm = profile(include_bytes!("../tests/data/distro/os-release.debian12"));
        assert_eq!(packages(&bookworm), ["docker.io"]);
        assert_eq!(packages(&rdo), ["docker-ce"]);
        // Docker's own engine chosen on trixie: its docker-ce-cli conflicts with docker-cli.
        let inv = crate::inventory::Inventory::parse(
            Path::new("i.yml"),
            "hosts: { cmp1: { address: 10.0.0.2, groups: [docker_computes], vars: { docker_package: docker-ce } } }\n",
        )
        .unwrap();
        let r = r.with_inventory(&inv);
        let args = r
            .render_value(&engine.args, &r.context_with(&inv.hosts[0], &trixie))
            .unwrap();
        assert_eq!(
            serde_yaml::from_value::<Vec<String>>(args["names"].clone()).unwrap(),
            ["docker-ce"]
        );
    }

    /// With several controllers, a cloud-wide API change runs once, and control services
    /// restart one controller at a time: a new API step or control handler must say so too.
    #[test]
    fn the_shipped_bootstrap_changes_the_cloud_once_and_rolls_its_restarts() {
        let pb = Playbook::embedded(Path::new("playbooks/bootstrap.yml")).unwrap();
        for s in &pb.steps {
            let api = matches!(
                s.kind,
                "openstack_flavor" | "openstack_aggregate" | "nova_computes" | "glance_image"
            );
            if api {
                assert!(
                    s.run_once,
                    "API step `{}` ({}) is not run_once",
                    s.name, s.kind
                );
            }
            // Else on the controllers: per-host config (ini), or the prefetch job, on the
            // first controller only by `when` (not run_once, which would move it to another
            // controller than the one the computes trust).
            if !s.run_once && s.hosts == "controllers" && s.kind != "ini" {
                let when = s.when.as_deref().unwrap_or_default();
                assert!(
                    when.contains("groups.controllers[0].name"),
                    "step `{}` runs on every controller: a cloud-wide change wants run_once, the prefetch job the first controller's `when`",
                    s.name
                );
            }
        }
        for h in &pb.handlers {
            let control = matches!(
                h.name.as_str(),
                "glance-api" | "nova-scheduler" | "nova-api"
            );
            assert!(
                !control || h.serial == Some(1),
                "handler `{}` restarts every controller at once",
                h.name
            );
        }
    }
}
