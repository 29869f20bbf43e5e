//! `template`: render a minijinja file from `templates/` to `dest`.

use super::{Mode, PlanCx, StepError, StepKind, attrs, plan_file_content, require_absolute};
use crate::facts::Probe;
use crate::plan::Outcome;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Template {
    /// Name under templates/, e.g. `nova/docker.filters.j2`.
    pub(crate) src: String,
    pub(crate) dest: String,
    pub(crate) owner: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) mode: Option<Mode>,
}

impl StepKind for Template {
    fn validate(&self) -> Result<(), StepError> {
        require_absolute(&self.dest)
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::File(self.dest.clone())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let content = cx.renderer.render_template(&self.src, cx.vars)?;
        plan_file_content(
            &self.dest,
            cx.facts.file(&self.dest),
            content.into_bytes(),
            &attrs(&self.owner, &self.group, &self.mode),
            self.dest.ends_with(".conf") || self.dest.ends_with(".ini"),
        )
    }
}
