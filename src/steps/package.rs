//! `package`: Debian packages present — one `apt-get install` for all that are missing.

use super::{PlanCx, StepError, StepKind};
use crate::facts::Probe;
use crate::plan::{Action, Outcome};
use crate::shell::{join, quote};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub names: Vec<String>,
    /// Run `apt-get update` before installing (only when something is missing).
    #[serde(default)]
    pub update_cache: bool,
}

impl Package {
    fn probe(&self) -> String {
        format!(
            "dpkg-query -W -f='${{Package}} ${{db:Status-Abbrev}}\\n' -- {}",
            join(&self.names)
        )
    }
}

impl StepKind for Package {
    fn validate(&self) -> Result<(), StepError> {
        if self.names.is_empty() {
            return Err(StepError::Invalid("`names` is empty".into()));
        }
        for n in &self.names {
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

    /// Issue 14, finding 16: a name that starts with `-` would be an option of apt-get.
    #[test]
    fn names_cannot_be_options() {
        let p = |n: &str| Package {
            names: vec![n.into()],
            update_cache: false,
        };
        for bad in ["-oAPT::Update::Pre-Invoke::=reboot", "--purge", "-y"] {
            assert!(p(bad).validate().is_err(), "{bad}");
        }
        for good in ["docker.io", "python3-nova=2:26.2.2-1", "libc6:amd64", "0ad"] {
            assert!(p(good).validate().is_ok(), "{good}");
        }
    }
}
