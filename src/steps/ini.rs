//! `ini`: one option of an oslo-style INI file, edited in place, losslessly.

use super::{
    Mode, PlanCx, Scalar, StepError, StepKind, attrs, plan_file_content, require_absolute,
};
use crate::facts::{FileFact, Probe};
use crate::ini::{IniDoc, IniEdit, IniOp};
use crate::plan::Outcome;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    pub section: String,
    pub option: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ini {
    pub path: String,
    pub section: String,
    pub option: String,
    pub value: Option<Scalar>,
    pub list_contains: Option<Vec<Scalar>>,
    #[serde(default)]
    pub absent: bool,
    /// The option's effective value when no line sets it (the service's built-in default).
    pub default: Option<Scalar>,
    #[serde(default)]
    pub aliases: Vec<Alias>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<Mode>,
}

impl Ini {
    fn edit(&self) -> IniEdit {
        let op = if let Some(v) = &self.value {
            IniOp::Value(v.0.clone())
        } else if let Some(items) = &self.list_contains {
            IniOp::ListContains(items.iter().map(|s| s.0.clone()).collect())
        } else {
            IniOp::Absent
        };
        IniEdit {
            section: self.section.clone(),
            option: self.option.clone(),
            op,
            default: self.default.as_ref().map(|d| d.0.clone()),
            aliases: self
                .aliases
                .iter()
                .map(|a| (a.section.clone(), a.option.clone()))
                .collect(),
        }
    }
}

impl StepKind for Ini {
    fn validate(&self) -> Result<(), StepError> {
        require_absolute(&self.path)?;
        let n = self.value.is_some() as u8 + self.list_contains.is_some() as u8 + self.absent as u8;
        if n != 1 {
            return Err(StepError::Invalid(
                "ini: give exactly one of `value`, `list_contains` or `absent: true`".into(),
            ));
        }
        Ok(())
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::File(self.path.clone())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let fact = cx.facts.file(&self.path);
        let text = match fact {
            FileFact::File { content, .. } => String::from_utf8(content.clone())
                .map_err(|_| StepError::Invalid(format!("{} is not UTF-8 text", self.path)))?,
            FileFact::Absent => String::new(),
            _ => String::new(), // plan_file_content reports what is wrong with the path
        };
        let mut doc = IniDoc::parse(&text);
        let outcome = doc.apply(&self.edit()).map_err(|source| StepError::Ini {
            path: self.path.clone(),
            source,
        })?;
        let target = format!("[{}] {} in {}", self.section, self.option, self.path);
        if !outcome.changed && matches!(fact, FileFact::Absent) {
            // Nothing to set (e.g. satisfied by the default): do not create an empty file.
            return Ok(Outcome {
                note: outcome.note,
                ..Outcome::unchanged(target)
            });
        }
        let mut o = plan_file_content(
            &self.path,
            fact,
            doc.to_text().into_bytes(),
            &attrs(&self.owner, &self.group, &self.mode),
            true,
        )?;
        if outcome.changed {
            o.summary = format!("{} {target}", verb(&self.edit().op));
        } else if !o.changed() {
            o.summary = target;
        }
        o.note = outcome.note;
        Ok(o)
    }
}

fn verb(op: &IniOp) -> &'static str {
    match op {
        IniOp::Value(_) => "set",
        IniOp::ListContains(_) => "extend",
        IniOp::Absent => "remove",
    }
}
