//! The inventory: hosts, groups, connection defaults and variables.

use crate::yaml::{self, YamlError};
use indexmap::IndexMap;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub(crate) enum InventoryError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error(
        "{path}: host `{host}` is in group `{group}`, and a host cannot share a name with a group"
    )]
    HostGroupClash {
        path: PathBuf,
        host: String,
        group: String,
    },
    #[error("{path}: `{name}` reads environment variable {var}, which is not set")]
    SecretEnvMissing {
        path: PathBuf,
        name: String,
        var: String,
    },
    #[error("{path}: `{name}` reads {file}")]
    SecretFile {
        path: PathBuf,
        name: String,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: `{name}`: {message}")]
    BadVar {
        path: PathBuf,
        name: String,
        message: String,
    },
    #[error("unknown host or group `{0}`")]
    UnknownTarget(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SshConfig {
    pub(crate) user: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) identity_file: Option<PathBuf>,
    pub(crate) known_hosts: Option<PathBuf>,
    /// `false` accepts unknown host keys (never changed ones); strict by default.
    pub(crate) strict_host_key_checking: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    address: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    vars: serde_yaml::Mapping,
    user: Option<String>,
    port: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    vars: serde_yaml::Mapping,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    ssh: SshConfig,
    hosts: IndexMap<String, RawHost>,
    #[serde(default)]
    groups: IndexMap<String, RawGroup>,
    #[serde(default)]
    vars: serde_yaml::Mapping,
}

/// Where a host is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    Local,
    Ssh(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) address: Address,
    pub(crate) groups: Vec<String>,
    pub(crate) user: String,
    pub(crate) port: u16,
    /// Variables after precedence: host > groups (later listed wins) > global.
    pub(crate) vars: serde_yaml::Mapping,
    /// The inventory file's directory, absolute (`{{ inventory_dir }}` in templates).
    pub(crate) inventory_dir: PathBuf,
}

impl Host {
    /// Its nova-compute host name: the `nova_host` variable, else its inventory name.
    pub(crate) fn nova_host(&self) -> &str {
        self.vars
            .get("nova_host")
            .and_then(|v| v.as_str())
            .unwrap_or(&self.name)
    }

    pub(crate) fn address_str(&self) -> &str {
        match &self.address {
            Address::Local => "local",
            Address::Ssh(a) => a,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Inventory {
    pub(crate) path: PathBuf,
    pub(crate) ssh: SshConfig,
    pub(crate) hosts: Vec<Host>,
    pub(crate) groups: BTreeSet<String>,
    /// Values of secret variables, masked in every output.
    pub(crate) secrets: Vec<String>,
}

impl Inventory {
    pub(crate) fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let raw: RawInventory = yaml::parse(path, text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut secrets = Vec::new();
        let mut resolve =
            |vars: &serde_yaml::Mapping| -> Result<serde_yaml::Mapping, InventoryError> {
                resolve_secrets(path, base, vars, &mut secrets)
            };
        let global = resolve(&raw.vars)?;
        let mut group_vars = IndexMap::new();
        for (name, g) in &raw.groups {
            group_vars.insert(name.clone(), resolve(&g.vars)?);
        }
        let mut groups: BTreeSet<String> = raw.groups.keys().cloned().collect();
        let mut hosts = Vec::new();
        for (name, h) in &raw.hosts {
            let mut vars = global.clone();
            for g in &h.groups {
                groups.insert(g.clone());
                if let Some(gv) = group_vars.get(g) {
                    merge(&mut vars, gv);
                }
            }
            merge(&mut vars, &resolve(&h.vars)?);
            let address = if h.address == "local" {
                Address::Local
            } else {
                Address::Ssh(h.address.clone())
            };
            hosts.push(Host {
                name: name.clone(),
                address,
                groups: h.groups.clone(),
                user: h
                    .user
                    .clone()
                    .or_else(|| raw.ssh.user.clone())
                    .unwrap_or_else(|| "root".into()),
                port: h.port.or(raw.ssh.port).unwrap_or(22),
                vars,
                inventory_dir: absolute(base),
            });
        }
        for h in &hosts {
            if groups.contains(&h.name) {
                return Err(InventoryError::HostGroupClash {
                    path: path.to_path_buf(),
                    host: h.name.clone(),
                    group: h.name.clone(),
                });
            }
        }
        let mut ssh = raw.ssh;
        ssh.identity_file = ssh.identity_file.map(|p| base.join(p));
        ssh.known_hosts = ssh.known_hosts.map(|p| base.join(p));
        secrets.retain(|s| !s.is_empty());
        Ok(Inventory {
            path: path.to_path_buf(),
            ssh,
            hosts,
            groups,
            secrets,
        })
    }

    pub(crate) fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Hosts matched by a pattern: "all", host or group names, comma separated. A name that
    /// is neither a host nor a group is an error.
    pub(crate) fn select(&self, pattern: &str) -> Result<Vec<&Host>, InventoryError> {
        self.select_inner(pattern, true)
    }

    /// As [`Inventory::select`], but a group no host is in matches nothing: a shipped playbook
    /// names groups (docker_computes) that a given inventory may not have yet.
    pub(crate) fn select_steps(&self, pattern: &str) -> Vec<&Host> {
        self.select_inner(pattern, false).unwrap_or_default()
    }

    fn select_inner(&self, pattern: &str, strict: bool) -> Result<Vec<&Host>, InventoryError> {
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        for part in pattern.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                wanted.extend(self.hosts.iter().map(|h| h.name.as_str()));
            } else if self.host(part).is_some() {
                wanted.insert(part);
            } else if self.groups.contains(part) {
                wanted.extend(
                    self.hosts
                        .iter()
                        .filter(|h| h.groups.iter().any(|g| g == part))
                        .map(|h| h.name.as_str()),
                );
            } else if strict {
                return Err(InventoryError::UnknownTarget(part.to_string()));
            }
        }
        // Inventory order, not pattern order: output stays stable.
        Ok(self
            .hosts
            .iter()
            .filter(|h| wanted.contains(h.name.as_str()))
            .collect())
    }
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Later mappings override earlier ones key by key (no deep merge, as Ansible's default).
fn merge(into: &mut serde_yaml::Mapping, from: &serde_yaml::Mapping) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

fn resolve_secrets(
    path: &Path,
    base: &Path,
    vars: &serde_yaml::Mapping,
    secrets: &mut Vec<String>,
) -> Result<serde_yaml::Mapping, InventoryError> {
    let mut out = serde_yaml::Mapping::new();
    for (k, v) in vars {
        let name = match k.as_str() {
            Some(n) => n.to_string(),
            None => {
                return Err(InventoryError::BadVar {
                    path: path.to_path_buf(),
                    name: format!("{k:?}"),
                    message: "variable names must be strings".into(),
                });
            }
        };
        let value = match secret_source(v) {
            Some(("secret_env", var)) => {
                let value = std::env::var(var).map_err(|_| InventoryError::SecretEnvMissing {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    var: var.to_string(),
                })?;
                secrets.push(value.clone());
                serde_yaml::Value::String(value)
            }
            Some((_, file)) => {
                let file = base.join(file);
                let value = std::fs::read_to_string(&file).map_err(|source| {
                    InventoryError::SecretFile {
                        path: path.to_path_buf(),
                        name: name.clone(),
                        file: file.clone(),
                        source,
                    }
                })?;
                // A trailing newline in a secret file is never part of the secret.
                let value = value.trim_end_matches(['\n', '\r']).to_string();
                secrets.push(value.clone());
                serde_yaml::Value::String(value)
            }
            None => v.clone(),
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

fn secret_source(v: &serde_yaml::Value) -> Option<(&'static str, &str)> {
    let m = v.as_mapping()?;
    if m.len() != 1 {
        return None;
    }
    let (k, v) = m.iter().next()?;
    let kind = match k.as_str()? {
        "secret_env" => "secret_env",
        "secret_file" => "secret_file",
        _ => return None,
    };
    Some((kind, v.as_str()?))
}

/// Variables renamed, `(old, new)`: the bootstrap playbook still reads the old name (the
/// concurrency of prefetch is named as `--forks`).
const RENAMED: &[(&str, &str)] = &[("prefetch_parallel", "prefetch_forks")];

impl Inventory {
    /// An inventory as every command reads it (apply, plan, check, prefetch, image add,
    /// boot-time): its secrets masked in all output from here on, a warning for each renamed
    /// variable it still sets.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Inventory> {
        use anyhow::Context as _;
        let inventory = Inventory::load(path).context("invalid inventory")?;
        crate::printer::add_secrets(&inventory.secrets);
        inventory.warn_renamed();
        Ok(inventory)
    }

    fn warn_renamed(&self) {
        for (old, new) in RENAMED {
            if self.hosts.iter().any(|h| h.vars.contains_key(*old)) {
                crate::printer::say(&format!(
                    "{} {}: `{old}` is deprecated: rename it `{new}` (it is read as `{new}` until then)",
                    crate::printer::yellow("warning:"),
                    self.path.display()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = r#"
ssh:
  user: root
  port: 22
  identity_file: keys/id_ed25519
  known_hosts: keys/known_hosts
hosts:
  ctl:  { address: 127.0.0.11, groups: [controllers] }
  cmp1: { address: 127.0.0.12, groups: [docker_computes, extra], vars: { docker_bridge: none } }
  here: { address: local }
groups:
  docker_computes: { vars: { prefetch: true, level: group1 } }
  extra: { vars: { level: group2 } }
vars:
  glance_api_conf: /etc/glance/glance-api.conf
  level: global
  docker_bridge: docker0
"#;

    fn inv() -> Inventory {
        Inventory::parse(Path::new("/srv/inv/lab.yml"), INV).unwrap()
    }

    #[test]
    fn precedence_host_over_groups_over_global() {
        let inv = inv();
        let cmp1 = inv.host("cmp1").unwrap();
        assert_eq!(cmp1.vars["docker_bridge"].as_str(), Some("none"));
        assert_eq!(cmp1.vars["level"].as_str(), Some("group2"));
        assert_eq!(cmp1.vars["prefetch"].as_bool(), Some(true));
        let ctl = inv.host("ctl").unwrap();
        assert_eq!(ctl.vars["level"].as_str(), Some("global"));
        assert_eq!(inv.host("here").unwrap().address, Address::Local);
    }

    #[test]
    fn paths_are_relative_to_the_inventory() {
        let inv = inv();
        assert_eq!(
            inv.ssh.identity_file.as_deref(),
            Some(Path::new("/srv/inv/keys/id_ed25519"))
        );
    }

    #[test]
    fn select_patterns() {
        let inv = inv();
        let names = |p: &str| {
            inv.select(p)
                .unwrap()
                .iter()
                .map(|h| h.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("all"), ["ctl", "cmp1", "here"]);
        assert_eq!(names("docker_computes,ctl"), ["ctl", "cmp1"]);
        assert!(matches!(
            inv.select("nope"),
            Err(InventoryError::UnknownTarget(_))
        ));
    }

    #[test]
    fn unknown_key_has_position() {
        let err = Inventory::parse(
            Path::new("inv.yml"),
            "hosts:\n  a: { address: x, adress: y }\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("inv.yml:2:"), "{msg}");
        assert!(msg.contains("unknown field `adress`"), "{msg}");
    }

    #[test]
    fn secrets_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret-file\n").unwrap();
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("NOVADOCK_TEST_SECRET", "s3cret-env") };
        let inv = Inventory::parse(
            &dir.path().join("inv.yml"),
            "hosts: { a: { address: local } }\nvars:\n  x: { secret_env: NOVADOCK_TEST_SECRET }\n  y: { secret_file: pw }\n",
        )
        .unwrap();
        assert_eq!(inv.secrets, ["s3cret-env", "s3cret-file"]);
        assert_eq!(inv.hosts[0].vars["y"].as_str(), Some("s3cret-file"));
        let err = Inventory::parse(
            Path::new("inv.yml"),
            "hosts: { a: { address: local } }\nvars:\n  x: { secret_env: NOVADOCK_TEST_UNSET_VAR }\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("NOVADOCK_TEST_UNSET_VAR"));
    }
}
