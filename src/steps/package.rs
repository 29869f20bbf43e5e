//! `package`: Debian packages present — one `apt-get install` for all that are missing.

use super::{PlanCx, StepError, StepKind};
use crate::facts::Probe;
use crate::plan::{Action, Outcome};
use crate::shell::{join, quote};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Package {
    pub(crate) names: Vec<String>,
    /// Run `apt-get update` before installing (only when something is missing).
    #[serde(default)]
    pub(crate) update_cache: bool,
    /// Packages that do the same job: when one is installed, nothing is installed over it
    /// (docker.io must not replace Docker's own docker-ce, which apt would remove).
    #[serde(default)]
    pub(crate) satisfied_by: Vec<String>,
}

impl Package {
    fn probe(&self) -> String {
        format!(
            "dpkg-query -W -f='${{Package}} ${{db:Status-Abbrev}}\\n' -- {}",
            join(&self.all_names())
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
            // Debian package names (with an optional =version or :arch); they start with a
            // letter or digit, so no name is read as an option.
            if !n.starts_with(|c: char| c.is_ascii_alphanumeric())
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.:=~_".contains(&b))
            {
                return Err(StepError::Invalid(format!(
                    "`{n}` is not a Debian package name"
                )));
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
        let installed: Vec<&str> = out
            .lines()
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
        let mut command = String::from("export DEBIAN_FRONTEND=noninteractive\n");
        if self.update_cache {
            command.push_str("apt-get update -q\n");
        }
        command.push_str(&format!(
            "apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- {}",
            names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(" ")
        ));
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
        assert!(p.probe().ends_with(" docker.io docker-ce moby-engine"));
        let o = plan(&p, "docker-ce ii \n");
        assert!(!o.changed());
        assert_eq!(
            o.note.as_deref(),
            Some("docker-ce is installed: kept, nothing installed over it")
        );
        // Removed, with config files left ("rc"), it no longer counts.
        let o = plan(&p, "docker-ce rc \n");
        assert_eq!(o.summary, "install docker.io");
        let o = plan(&p, "docker.io ii \n");
        assert!(!o.changed());
        assert_eq!(o.note, None);
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
