//! `glance_image`: a docker image in Glance (container format docker, disk format raw), put
//! there from an inventory host's `docker save` or a tarball on this machine — the inventory's
//! `images:`, seeded during bootstrap as fuel-plugin-novadocker's save-images.sh did. An active
//! image of that name counts as present; `novadock image add --replace` updates one.

use super::{PlanCx, StepError, StepKind};
use crate::facts::Probe;
use crate::openstack::Auth;
use crate::plan::{Action, Outcome, UploadSpec};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GlanceImage {
    /// REPO[:TAG]: the Glance name and the name inside the tarball.
    pub(crate) name: String,
    /// An inventory host whose dockerd has the image.
    #[serde(default)]
    pub(crate) from_host: String,
    /// Or a `docker save` tarball on this machine.
    #[serde(default)]
    pub(crate) file: String,
    #[serde(default = "yes")]
    pub(crate) public: bool,
    #[serde(flatten)]
    pub(crate) auth: Auth,
}

fn yes() -> bool {
    true
}

impl StepKind for GlanceImage {
    fn validate(&self) -> Result<(), StepError> {
        self.auth.validate(&self.name).map_err(StepError::Invalid)?;
        match (
            self.from_host.trim().is_empty(),
            self.file.trim().is_empty(),
        ) {
            (false, false) => Err(StepError::Invalid(format!(
                "image {}: give `from_host` or `file`, not both",
                self.name
            ))),
            (true, true) => Err(StepError::Invalid(format!(
                "image {}: `from_host` (a host that has it) or `file` (a docker save tarball) is required",
                self.name
            ))),
            (true, false) if !self.file.starts_with('/') => Err(StepError::Invalid(format!(
                "image {}: `file` must be an absolute path ({{{{ inventory_dir }}}}/... for one beside the inventory)",
                self.name
            ))),
            _ => Ok(()),
        }
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::Cmd(self.auth.facts_probe())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let cloud = self.auth.facts(cx.facts).map_err(StepError::Invalid)?;
        if let Some(i) = cloud.docker_images.iter().find(|i| {
            i.name.as_deref() == Some(&self.name) && i.status.as_deref() == Some("active")
        }) {
            return Ok(Outcome::unchanged(format!(
                "image {} in Glance ({})",
                self.name, i.id
            )));
        }
        let from = if self.from_host.is_empty() {
            self.file.clone()
        } else {
            format!("{} (docker save)", self.from_host)
        };
        Ok(Outcome {
            actions: vec![Action::Upload(UploadSpec {
                name: self.name.clone(),
                from_host: self.from_host.clone(),
                file: self.file.clone(),
                public: self.public,
                auth: self.auth.clone(),
            })],
            summary: format!("upload image {} to Glance from {from}", self.name),
            ..Default::default()
        })
    }
}
