//! `nova_driver`: a compute driver Nova can load on this host's release — checked before
//! anything is changed, and reachable from `nova.virt`.
//!
//! Since Newton, Nova loads compute drivers only from `nova.virt.*`. A driver installed
//! elsewhere (upstream nova-docker is `novadocker.virt.docker.driver.DockerDriver`) gets a shim
//! module `nova/virt/<module>.py` that re-exports its class, and `compute_driver` names the shim
//! (as crowbar and nova-lxd did). Upstream nova-docker was retired in February 2017: it supports
//! Nova ≤ 13 (Mitaka), loads on Newton (14) only through such a shim, and does not import on
//! Nova 15 (Ocata) or later — that combination is refused in the plan.

use super::{PlanCx, StepError, StepKind, plan_file_content, require_absolute};
use crate::facts::Probe;
use crate::openstack::{self, Release};
use crate::plan::{Attrs, Outcome};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NovaDriver {
    /// Where the driver class lives when it is not under nova.virt, e.g.
    /// `novadocker.virt.docker.driver.DockerDriver`; empty when it is `nova.virt.<module>`.
    #[serde(default)]
    pub(crate) import: String,
    /// The module under nova.virt that `compute_driver` names.
    pub(crate) module: String,
    pub(crate) class: String,
    /// nova/virt in the Python environment nova-compute runs.
    pub(crate) virt_dir: String,
    /// `auto` (detected from the installed nova) or a release name.
    pub(crate) release: Option<String>,
}

/// Where nova-compute's own Python has nova.virt (its shebang names that Python).
pub(crate) const VIRT_DIR_PROBE: &str = "py=$(sed -n '1s/^#! *//p' \"$(command -v nova-compute)\") && \"$py\" -c 'import os, nova.virt; print(os.path.dirname(nova.virt.__file__))'";

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Upstream nova-docker, by its import path.
pub(crate) fn is_upstream_nova_docker(import: &str) -> bool {
    import == "novadocker" || import.starts_with("novadocker.")
}

/// Whether `import` can run on `release`: `Err` explains why not.
pub(crate) fn compatible(import: &str, release: Release) -> Result<(), String> {
    let ocata = Release::named("ocata").expect("known");
    if is_upstream_nova_docker(import) && release >= ocata {
        return Err(format!(
            "the upstream nova-docker driver ({import}) cannot run on {release}: it was retired in February 2017, supports Nova ≤ 13 (Mitaka), loads on Newton only through a shim, and does not import on Nova 15 (Ocata) or later — nova-compute would not start. Nothing was changed on this host.\nhint: use a Docker driver maintained for {release} (set docker_driver_path, or docker_driver_import for one installed outside nova.virt), or keep upstream nova-docker on a Newton or older cloud"
        ));
    }
    Ok(())
}

/// The shim: `nova.virt.<module>` re-exporting `import`'s class.
pub(crate) fn shim(import: &str, class: &str) -> Result<String, String> {
    let (module, cls) = import
        .rsplit_once('.')
        .ok_or_else(|| format!("`import` must be module.Class, got `{import}`"))?;
    let line = if cls == class {
        format!("from {module} import {cls}  # noqa: F401\n")
    } else {
        format!("from {module} import {cls} as {class}  # noqa: F401\n")
    };
    Ok(format!(
        "# Written by novadock: Nova loads compute drivers only from nova.virt, so this module\n\
         # re-exports the driver installed as {import}.\n\
         {line}\n\
         __all__ = ['{class}']\n"
    ))
}

impl StepKind for NovaDriver {
    fn validate(&self) -> Result<(), StepError> {
        require_absolute(&self.virt_dir)?;
        // The bundled driver goes into the directory above it (nova_site_dir).
        if !self.virt_dir.ends_with("/nova/virt") {
            return Err(StepError::Invalid(format!(
                "`virt_dir` must be the nova/virt directory of nova-compute's Python, without a trailing slash (e.g. /usr/lib/python3/dist-packages/nova/virt), got `{}`",
                self.virt_dir
            )));
        }
        if !is_identifier(&self.module) || !is_identifier(&self.class) {
            return Err(StepError::Invalid(format!(
                "`module` and `class` must be Python identifiers, got `{}` and `{}`",
                self.module, self.class
            )));
        }
        let imp = self.import.trim();
        if !imp.is_empty() && !imp.split('.').all(is_identifier) {
            return Err(StepError::Invalid(format!(
                "`import` must be a dotted Python path, got `{imp}`"
            )));
        }
        Ok(())
    }

    fn probes(&self) -> Vec<Probe> {
        let mut p = vec![
            Probe::File(self.shim_path()),
            Probe::Cmd(VIRT_DIR_PROBE.into()),
        ];
        if matches!(
            self.release.as_deref().map(str::trim),
            None | Some("auto") | Some("")
        ) {
            p.push(Probe::Cmd(openstack::RELEASE_PROBE.into()));
        }
        p
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let (release, how) = openstack::resolve_release(
            self.release.as_deref(),
            cx.facts,
            "nova_driver",
            openstack::Project::Nova,
        )
        .map_err(StepError::Invalid)?;
        // The driver (copied there, or its shim) must be where nova-compute's Python looks.
        let found = cx
            .facts
            .cmd(VIRT_DIR_PROBE)
            .filter(|c| c.code == 0)
            .map(|c| c.stdout.trim().to_string())
            .ok_or_else(|| {
                StepError::Invalid(
                    "cannot find nova.virt in nova-compute's Python: is nova-compute installed on this host?".into(),
                )
            })?;
        if found.trim_end_matches('/') != self.virt_dir.trim_end_matches('/') {
            return Err(StepError::Invalid(format!(
                "nova-compute's Python has nova.virt at {found}, not {}: the driver would be installed where Nova does not look\nhint: set nova_virt_dir: {found}",
                self.virt_dir
            )));
        }
        let imp = self.import.trim();
        let target = if imp.is_empty() {
            format!("nova.virt.{}.{}", self.module, self.class)
        } else {
            imp.to_string()
        };
        compatible(&target, release).map_err(StepError::Invalid)?;
        if imp.is_empty() {
            return Ok(Outcome::unchanged(format!(
                "compute driver {target} loads from nova.virt ({how})"
            )));
        }
        let content = shim(imp, &self.class).map_err(StepError::Invalid)?;
        let mut o = plan_file_content(
            &self.shim_path(),
            cx.facts.file(&self.shim_path()),
            content.into_bytes(),
            &Attrs {
                owner: None,
                group: None,
                mode: Some("644".into()),
            },
            false,
        )?;
        o.note = Some(format!("shim nova.virt.{} for {imp} ({how})", self.module));
        Ok(o)
    }
}

impl NovaDriver {
    fn shim_path(&self) -> String {
        format!("{}/{}.py", self.virt_dir.trim_end_matches('/'), self.module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_nova_docker_is_refused_from_ocata() {
        let r = |n: &str| Release::named(n).unwrap();
        let up = "novadocker.virt.docker.driver.DockerDriver";
        assert!(compatible(up, r("mitaka")).is_ok());
        assert!(compatible(up, r("newton")).is_ok());
        let e = compatible(up, r("ocata")).unwrap_err();
        assert!(
            e.contains("does not import on Nova 15 (Ocata) or later"),
            "{e}"
        );
        assert!(compatible(up, r("zed")).is_err());
        assert!(compatible("nova.virt.dockerlab.DockerDriver", r("zed")).is_ok());
        assert!(compatible("zun_driver.Driver", r("zed")).is_ok());
    }

    #[test]
    fn the_shim_re_exports_the_class() {
        assert_eq!(
            shim("novadocker.virt.docker.driver.DockerDriver", "DockerDriver").unwrap(),
            "# Written by novadock: Nova loads compute drivers only from nova.virt, so this module\n# re-exports the driver installed as novadocker.virt.docker.driver.DockerDriver.\nfrom novadocker.virt.docker.driver import DockerDriver  # noqa: F401\n\n__all__ = ['DockerDriver']\n"
        );
        assert!(
            shim("x.Other", "DockerDriver")
                .unwrap()
                .contains("from x import Other as DockerDriver")
        );
        assert!(shim("nodot", "DockerDriver").is_err());
    }
}
