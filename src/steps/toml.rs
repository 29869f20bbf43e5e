//! `toml`: set one key of a TOML file (e.g. containerd's config.toml), preserving its format.

use super::{Mode, PlanCx, StepError, StepKind, attrs, plan_file_content, require_absolute};
use crate::facts::{FileFact, Probe};
use crate::plan::Outcome;
use serde::Deserialize;
use toml_edit::{DocumentMut, Item, Table, Value};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Toml {
    pub(crate) path: String,
    /// Dotted key path; quote segments that contain dots:
    /// `plugins."io.containerd.grpc.v1.cri".sandbox_image`.
    pub(crate) key: String,
    pub(crate) value: serde_yaml::Value,
    pub(crate) owner: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) mode: Option<Mode>,
}

/// Split `a."b.c".d` into [a, b.c, d].
pub(crate) fn split_key(key: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = key.chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if cur.is_empty() && !quoted_part => {
                for c in chars.by_ref() {
                    if c == '"' {
                        quoted_part = true;
                        break;
                    }
                    cur.push(c);
                }
                if !quoted_part {
                    return Err(format!("unterminated quote in key `{key}`"));
                }
            }
            '.' => {
                if cur.is_empty() && !quoted_part {
                    return Err(format!("empty segment in key `{key}`"));
                }
                parts.push(std::mem::take(&mut cur));
                quoted_part = false;
            }
            c if quoted_part => {
                return Err(format!(
                    "unexpected `{c}` after a quoted segment in key `{key}`"
                ));
            }
            c => cur.push(c),
        }
    }
    if cur.is_empty() && !quoted_part {
        return Err(format!("empty segment in key `{key}`"));
    }
    parts.push(cur);
    Ok(parts)
}

fn to_toml(v: &serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Bool(b) => Value::from(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(f) = n.as_f64() {
                Value::from(f)
            } else {
                return Err(format!("number {n} does not fit TOML"));
            }
        }
        Y::String(s) => Value::from(s.as_str()),
        Y::Sequence(seq) => {
            let mut a = toml_edit::Array::new();
            for x in seq {
                a.push(to_toml(x)?);
            }
            Value::Array(a)
        }
        Y::Mapping(m) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, x) in m {
                let k = k.as_str().ok_or("TOML table keys must be strings")?;
                t.insert(k, to_toml(x)?);
            }
            Value::InlineTable(t)
        }
        Y::Null => return Err("TOML has no null".into()),
        Y::Tagged(_) => return Err("tagged YAML values are not supported".into()),
    })
}

/// Equal as data, ignoring formatting.
fn same(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    a.decor_mut().clear();
    b.decor_mut().clear();
    a.to_string().trim() == b.to_string().trim()
}

/// Set `path` to `value` in `doc`; Ok(false) when it already had that value.
pub(crate) fn set(doc: &mut DocumentMut, path: &[String], value: Value) -> Result<bool, String> {
    let (last, parents) = path.split_last().expect("split_key never returns empty");
    let mut table: &mut Table = doc.as_table_mut();
    for p in parents {
        if !table.contains_key(p) {
            let mut t = Table::new();
            t.set_implicit(true);
            table.insert(p, Item::Table(t));
        }
        table = match table.get_mut(p) {
            Some(Item::Table(t)) => t,
            _ => return Err(format!("`{p}` is not a table")),
        };
    }
    match table.get_mut(last) {
        Some(Item::Value(old)) => {
            if same(old, &value) {
                return Ok(false);
            }
            // Keep the old value's surrounding whitespace and comments.
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
            Ok(true)
        }
        Some(_) => Err(format!("`{last}` is a table, not a value")),
        None => {
            table.insert(last, Item::Value(value));
            Ok(true)
        }
    }
}

impl StepKind for Toml {
    fn validate(&self) -> Result<(), StepError> {
        require_absolute(&self.path)?;
        split_key(&self.key).map_err(StepError::Invalid)?;
        to_toml(&self.value).map_err(StepError::Invalid)?;
        Ok(())
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::File(self.path.clone())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let fact = cx.facts.file(&self.path);
        let text = match fact {
            FileFact::File { content, .. } => String::from_utf8_lossy(content).into_owned(),
            _ => String::new(),
        };
        let invalid = |m: String| StepError::Invalid(format!("{}: {m}", self.path));
        let mut doc: DocumentMut = text
            .parse()
            .map_err(|e| invalid(format!("not valid TOML: {e}")))?;
        let path = split_key(&self.key).map_err(StepError::Invalid)?;
        let changed =
            set(&mut doc, &path, to_toml(&self.value).map_err(invalid)?).map_err(invalid)?;
        let content = if changed { doc.to_string() } else { text };
        let mut o = plan_file_content(
            &self.path,
            fact,
            content.into_bytes(),
            &attrs(&self.owner, &self.group, &self.mode),
            false,
        )?;
        o.summary = if changed {
            format!("set {} in {}", self.key, self.path)
        } else {
            format!("{} in {}", self.key, self.path)
        };
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            split_key(r#"plugins."io.containerd.grpc.v1.cri".sandbox_image"#).unwrap(),
            ["plugins", "io.containerd.grpc.v1.cri", "sandbox_image"]
        );
        assert!(split_key("a..b").is_err());
        assert!(split_key("\"a").is_err());
    }

    #[test]
    fn set_preserves_format() {
        let src = "# containerd\nversion = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause:3.6\"   # pinned\n  other = 1\n";
        let mut doc: DocumentMut = src.parse().unwrap();
        let path = split_key(r#"plugins."io.containerd.grpc.v1.cri".sandbox_image"#).unwrap();
        assert!(set(&mut doc, &path, Value::from("pause:3.9")).unwrap());
        assert_eq!(doc.to_string(), src.replace("pause:3.6", "pause:3.9"));
        assert!(!set(&mut doc, &path, Value::from("pause:3.9")).unwrap());
        let mut doc: DocumentMut = src.parse().unwrap();
        assert!(set(&mut doc, &split_key("new.key").unwrap(), Value::from(true)).unwrap());
        assert!(doc.to_string().starts_with(src));
        assert!(doc.to_string().contains("[new]\nkey = true\n"));
    }
}
