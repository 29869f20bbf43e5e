//! `package`: packages present — one `apt-get install` (Debian, Ubuntu) or `dnf install`
//! (RHEL and its rebuilds, Fedora) for all that are missing; the host's package database
//! decides which.

use super::{PlanCx, StepError, StepKind};
use crate::facts::Probe;
use crate::plan::{Action, Outcome};
use crate::shell::{join, quote};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Package {
    pub(crate) names: Vec<String>,
    /// Refresh the package lists before installing (only when something is missing):
    /// `apt-get update`, `dnf makecache`.
    #[serde(default)]
    pub(crate) update_cache: bool,
    /// Packages that do the same job: when one is installed, nothing is installed over it
    /// (docker.io must not replace Docker's own docker-ce, which apt would remove).
    #[serde(default)]
    pub(crate) satisfied_by: Vec<String>,
}

impl Package {
    /// The manager (`apt` or `dnf`) on its first line, then a `NAME ii` line per installed
    /// package (dpkg's status letters; rpm's installed packages are written the same way).
    fn probe(&self) -> String {
        let names = join(&self.all_names());
        format!(
            "if command -v dpkg-query >/dev/null 2>&1; then echo apt; dpkg-query -W -f='${{Package}} ${{db:Status-Abbrev}}\\n' -- {names} 2>/dev/null; \
elif command -v rpm >/dev/null 2>&1; then echo dnf; rpm -q --qf '%{{NAME}} ii\\n' -- {names} 2>/dev/null | grep ' ii$'; fi; true"
        )
    }

    fn all_names(&self) -> Vec<String> {
        let mut all = self.names.clone();
        all.extend(self.satisfied_by.iter().cloned());
        all
    }
}

impl StepKind for Package {
    fn validate(&self) -> Result<(), StepError> {
        if self.names.is_empty() {
            return Err(StepError::Invalid("`names` is empty".into()));
        }
        for n in self.names.iter().chain(&self.satisfied_by) {
            // Package names (Debian's with an optional =version or :arch); they start with a
            // letter or digit, so no name is read as an option.
            if !n.starts_with(|c: char| c.is_ascii_alphanumeric())
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.:=~_".contains(&b))
            {
                return Err(StepError::Invalid(format!("`{n}` is not a package name")));
            }
        }
        Ok(())
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::Cmd(self.probe())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let out = cx
            .facts
            .cmd(&self.probe())
            .map(|c| c.stdout.as_str())
            .unwrap_or("");
        let mut lines = out.lines();
        let manager = lines.next().unwrap_or("").trim();
        if manager != "apt" && manager != "dnf" {
            return Err(StepError::Invalid(
                "this host has neither dpkg nor rpm: novadock installs packages with apt or dnf only\nhint: install them by hand, then run novadock again".into(),
            ));
        }
        let installed: Vec<&str> = lines
            .filter_map(|l| {
                let (name, status) = l.split_once(' ')?;
                status.starts_with("ii").then_some(name)
            })
            .collect();
        if let Some(other) = self
            .satisfied_by
            .iter()
            .find(|n| installed.contains(&n.as_str()))
        {
            let mut o = Outcome::unchanged(format!("packages {}", self.names.join(", ")));
            o.note = Some(format!(
                "{other} is installed: kept, nothing installed over it"
            ));
            return Ok(o);
        }
        let missing: Vec<&String> = self
            .names
            .iter()
            .filter(|n| {
                let bare = n.split(['=', ':']).next().unwrap_or(n);
                !installed.contains(&bare)
            })
            .collect();
        if missing.is_empty() {
            return Ok(Outcome::unchanged(format!(
                "packages {}",
                self.names.join(", ")
            )));
        }
        let names: Vec<String> = missing.iter().map(|s| s.to_string()).collect();
        let quoted = names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(" ");
        let command = if manager == "apt" {
            let mut c = String::from("export DEBIAN_FRONTEND=noninteractive\n");
            if self.update_cache {
                c.push_str("apt-get update -q\n");
            }
            c + &format!(
                "apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- {quoted}"
            )
        } else {
            let mut c = String::new();
            if self.update_cache {
                c.push_str("dnf makecache -q\n");
            }
            c + &format!("dnf install -y -q -- {quoted}")
        };
        Ok(Outcome {
            actions: vec![Action::Run {
                command,
                systemd: false,
            }],
            summary: format!("install {}", names.join(", ")),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{CmdFact, Facts};

    fn plan(p: &Package, dpkg: &str) -> Outcome {
        let mut facts = Facts::default();
        facts.cmds.insert(
            p.probe(),
            CmdFact {
                code: 0,
                stdout: dpkg.into(),
            },
        );
        let renderer = crate::render::Renderer::new(
            std::sync::Arc::new(crate::assets::Templates::embedded_only()),
            Default::default(),
        );
        let vars = minijinja::Value::from(());
        p.plan(&PlanCx {
            facts: &facts,
            renderer: &renderer,
            vars: &vars,
        })
        .unwrap()
    }

    fn docker() -> Package {
        serde_yaml::from_str("{ names: [docker.io], satisfied_by: [docker-ce, moby-engine] }")
            .unwrap()
    }

    #[test]
    fn an_installed_alternative_is_kept() {
        let p = docker();
        assert!(
            p.probe()
                .contains(" -- docker.io docker-ce moby-engine 2>/dev/null")
        );
        let o = plan(&p, "apt\ndocker-ce ii \n");
        assert!(!o.changed());
        assert_eq!(
            o.note.as_deref(),
            Some("docker-ce is installed: kept, nothing installed over it")
        );
        // Removed, with config files left ("rc"), it no longer counts.
        let o = plan(&p, "apt\ndocker-ce rc \n");
        assert_eq!(o.summary, "install docker.io");
        let o = plan(&p, "apt\ndocker.io ii \n");
        assert!(!o.changed());
        assert_eq!(o.note, None);
    }

    #[test]
    fn dnf_installs_on_rpm_hosts() {
        let p: Package =
            serde_yaml::from_str("{ names: [ethtool, python3-pip], update_cache: true }").unwrap();
        let o = plan(&p, "dnf\nethtool ii\n");
        assert_eq!(o.summary, "install python3-pip");
        let Action::Run { command, .. } = &o.actions[0] else {
            panic!("{o:?}")
        };
        assert_eq!(
            command,
            "dnf makecache -q\ndnf install -y -q -- python3-pip"
        );
        assert!(!plan(&p, "dnf\nethtool ii\npython3-pip ii\n").changed());
        let e = p
            .plan(&PlanCx {
                facts: &Facts::default(),
                renderer: &crate::render::Renderer::new(
                    std::sync::Arc::new(crate::assets::Templates::embedded_only()),
                    Default::default(),
                ),
                vars: &minijinja::Value::from(()),
            })
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("this host has neither dpkg nor rpm"),
            "{e}"
        );
    }

    /// The probe through a real sh on this (Debian) machine: dpkg's answer, manager first.
    #[test]
    fn the_probe_reads_dpkg_here() {
        let p: Package =
            serde_yaml::from_str("{ names: [dpkg, novadock-no-such-package] }").unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", &p.probe()])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "apt\ndpkg ii \n");
        assert!(out.status.success());
    }

    /// Issue 14, finding 16: a name that starts with `-` would be an option of apt-get.
    #[test]
    fn names_cannot_be_options() {
        let p = |n: &str| Package {
            names: vec![n.into()],
            update_cache: false,
            satisfied_by: vec![],
        };
        for bad in ["-oAPT::Update::Pre-Invoke::=reboot", "--purge", "-y"] {
            assert!(p(bad).validate().is_err(), "{bad}");
        }
        for good in ["docker.io", "python3-nova=2:26.2.2-1", "libc6:amd64", "0ad"] {
            assert!(p(good).validate().is_ok(), "{good}");
        }
    }
}
