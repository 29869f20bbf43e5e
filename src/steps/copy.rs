//! `copy`: a file or a directory tree from this machine to the host (e.g. a Nova driver's
//! source, installed "from a path"), or a tree bundled in the binary (`src: bundled:NAME`,
//! novadock's own Nova driver). Only files whose content differs are written.

use super::{
    Mode, PlanCx, StepError, StepKind, attrs, describe_attrs, plan_file_content, require_absolute,
};
use crate::facts::{FileFact, Probe};
use crate::plan::{Action, Attrs, Outcome};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Copy {
    /// Absolute path on this machine (`{{ inventory_dir }}/...` for one beside the inventory),
    /// or `bundled:NAME` for a tree embedded in novadock (assets::BUNDLED).
    pub(crate) src: String,
    /// Absolute path on the host; for a directory `src`, the directory that mirrors it.
    pub(crate) dest: String,
    /// File and directory names to leave out (`*.ext` matches a suffix).
    #[serde(default = "default_exclude")]
    pub(crate) exclude: Vec<String>,
    pub(crate) owner: Option<String>,
    pub(crate) group: Option<String>,
    /// Mode of the files; without it each keeps its mode here (directories get 0755 unless
    /// they exist).
    pub(crate) mode: Option<Mode>,
    /// Loaded in `validate`: (relative path, content and mode), directories first.
    #[serde(skip)]
    tree: Vec<(String, Option<SrcFile>)>,
}

/// A source file's content and mode.
type SrcFile = (Vec<u8>, u32);

fn default_exclude() -> Vec<String> {
    vec!["__pycache__".into(), "*.pyc".into()]
}

impl Copy {
    fn excluded(&self, name: &str) -> bool {
        self.exclude.iter().any(|e| match e.strip_prefix('*') {
            Some(suffix) => name.ends_with(suffix),
            None => name == e,
        })
    }

    fn walk(
        &self,
        root: &Path,
        rel: &Path,
        out: &mut Vec<(String, Option<SrcFile>)>,
    ) -> std::io::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(root.join(rel))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for p in entries {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if self.excluded(&name) {
                continue;
            }
            let r = rel.join(&name);
            // Not followed: a link to /etc/shadow in a source tree would go out as its target.
            let meta = std::fs::symlink_metadata(&p)?;
            if meta.file_type().is_symlink() {
                return Err(std::io::Error::other(format!(
                    "{} is a symlink; copy does not follow symlinks (copy its target instead)",
                    p.display()
                )));
            } else if meta.is_dir() {
                out.push((r.display().to_string(), None));
                self.walk(root, &r, out)?;
            } else {
                out.push((r.display().to_string(), Some(read_file(&p)?)));
            }
        }
        Ok(())
    }

    fn dest_of(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.dest.clone()
        } else {
            format!("{}/{rel}", self.dest.trim_end_matches('/'))
        }
    }
}

impl StepKind for Copy {
    fn validate(&self) -> Result<(), StepError> {
        require_absolute(&self.dest)?;
        if let Some(name) = self.src.strip_prefix("bundled:") {
            if !crate::assets::BUNDLED.contains(&name) {
                return Err(StepError::Invalid(format!(
                    "src `{}`: novadock bundles no `{name}` (it has: {})",
                    self.src,
                    crate::assets::BUNDLED.join(", ")
                )));
            }
        } else if !self.src.starts_with('/') {
            return Err(StepError::Invalid(format!(
                "src `{}` must be absolute (use {{{{ inventory_dir }}}}/... for a path beside the inventory)",
                self.src
            )));
        }
        Ok(())
    }

    fn probes(&self) -> Vec<Probe> {
        self.tree
            .iter()
            .map(|(rel, _)| Probe::File(self.dest_of(rel)))
            .collect()
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let file_attrs = attrs(&self.owner, &self.group, &self.mode);
        let dir_attrs = Attrs {
            mode: None,
            ..file_attrs.clone()
        };
        let mut all = Outcome::default();
        let mut changed = Vec::new();
        let mut diffs = String::new();
        for (rel, content) in &self.tree {
            let dest = self.dest_of(rel);
            let fact = cx.facts.file(&dest);
            match content {
                None => match fact {
                    FileFact::Dir { .. } => {}
                    FileFact::Absent => {
                        all.actions.push(Action::Mkdir {
                            path: dest.clone(),
                            attrs: dir_attrs.clone(),
                        });
                        changed.push(format!("{dest}/"));
                    }
                    _ => {
                        return Err(StepError::Invalid(format!(
                            "{dest} exists and is not a directory"
                        )));
                    }
                },
                Some((bytes, mode)) => {
                    let kept = Attrs {
                        mode: file_attrs
                            .mode
                            .clone()
                            .or(Some(format!("{:o}", mode & 0o7777))),
                        ..file_attrs.clone()
                    };
                    let o = plan_file_content(&dest, fact, bytes.clone(), &kept, false)?;
                    if o.changed() {
                        changed.push(dest.clone());
                        if let Some(d) = o.diff {
                            diffs.push_str(&d);
                        }
                        all.actions.extend(o.actions);
                    }
                }
            }
        }
        let files = self.tree.iter().filter(|(_, c)| c.is_some()).count();
        all.summary = if changed.is_empty() {
            format!("{} ({})", self.dest, crate::printer::count(files, "file"))
        } else {
            let extra = describe_attrs(&file_attrs);
            format!(
                "copy {} → {} ({} of {} changed{})",
                self.src,
                self.dest,
                changed.len(),
                crate::printer::count(self.tree.len(), "path"),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!("; {extra}")
                }
            )
        };
        all.diff = (!diffs.is_empty()).then_some(diffs);
        Ok(all)
    }
}

/// Read the source tree; called once the arguments are rendered.
pub(crate) fn load(mut c: Copy) -> Result<Copy, StepError> {
    c.validate()?;
    if let Some(name) = c.src.strip_prefix("bundled:") {
        let tree = crate::assets::bundled_tree(name)
            .ok_or_else(|| StepError::Invalid(format!("novadock bundles no `{name}`")))?;
        // A build from a worktree where Python ran may have embedded its caches.
        let mut kept: Vec<(String, Option<SrcFile>)> = vec![(String::new(), None)];
        kept.extend(
            tree.into_iter()
                .filter(|(rel, _)| {
                    !Path::new(rel)
                        .components()
                        .any(|p| c.excluded(&p.as_os_str().to_string_lossy()))
                })
                // Bundled files are modules: readable by all, as a package installs them.
                .map(|(rel, b)| (rel, b.map(|b| (b, 0o644)))),
        );
        c.tree = kept;
        return Ok(c);
    }
    let src = PathBuf::from(&c.src);
    let meta = std::fs::metadata(&src)
        .map_err(|e| StepError::Invalid(format!("cannot read {}: {e}", c.src)))?;
    let mut tree = Vec::new();
    if meta.is_dir() {
        tree.push((String::new(), None));
        c.walk(&src, Path::new(""), &mut tree)
            .map_err(|e| StepError::Invalid(format!("cannot read {}: {e}", c.src)))?;
    } else {
        let file = read_file(&src)
            .map_err(|e| StepError::Invalid(format!("cannot read {}: {e}", c.src)))?;
        tree.push((String::new(), Some(file)));
    }
    c.tree = tree;
    Ok(c)
}

/// A file's content and mode (of the same open file).
fn read_file(p: &Path) -> std::io::Result<SrcFile> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::open(p)?;
    let mode = f.metadata()?.permissions().mode();
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok((bytes, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled(src: &str) -> Result<Copy, StepError> {
        let c: Copy = serde_yaml::from_str(&format!(
            "{{ src: \"{src}\", dest: /usr/lib/python3/dist-packages/novadock_driver }}"
        ))
        .unwrap();
        load(c)
    }

    #[test]
    fn the_bundled_driver_is_the_package_in_driver() {
        let c = bundled("bundled:novadock_driver").unwrap();
        let files: Vec<&str> = c
            .tree
            .iter()
            .filter(|(_, b)| b.is_some())
            .map(|(r, _)| r.as_str())
            .collect();
        for f in [
            "__init__.py",
            "driver.py",
            "netplug.py",
            "tarball.py",
            "vifs.py",
        ] {
            assert!(files.contains(&f), "{f} not in {files:?}");
        }
        assert!(files.iter().all(|f| f.ends_with(".py")), "{files:?}");
        let on_disk = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("driver/novadock_driver/driver.py"),
        )
        .unwrap();
        let embedded = c.tree.iter().find(|(r, _)| r == "driver.py").unwrap();
        assert_eq!(
            embedded.1.as_ref().map(|(b, m)| (b.as_slice(), *m)),
            Some((on_disk.as_slice(), 0o644))
        );
        assert_eq!(
            c.tree[0],
            (String::new(), None),
            "the directory itself comes first"
        );
    }

    #[test]
    fn only_bundled_trees_novadock_has() {
        let e = bundled("bundled:../../etc").unwrap_err().to_string();
        assert!(e.contains("novadock bundles no `../../etc`"), "{e}");
    }
}
