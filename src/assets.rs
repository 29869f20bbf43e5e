//! Playbooks and templates shipped inside the binary, overridable from disk.

use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};

static PLAYBOOKS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/playbooks");
static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");
/// novadock's own Nova driver package (driver/novadock_driver), installed by bootstrap.yml's
/// `docker_driver_source: bundled`.
static DRIVER: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/driver/novadock_driver");

/// Names a `copy` step can take as `src: bundled:NAME`.
pub(crate) const BUNDLED: &[&str] = &["novadock_driver"];

/// The files of a bundled tree as (relative path, content), directories as `None`, sorted
/// so that a directory comes before what it holds.
pub(crate) fn bundled_tree(name: &str) -> Option<Vec<(String, Option<Vec<u8>>)>> {
    fn walk(d: &Dir<'_>, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        for e in d.entries() {
            match e {
                include_dir::DirEntry::Dir(sub) => {
                    out.push((sub.path().display().to_string(), None));
                    walk(sub, out);
                }
                include_dir::DirEntry::File(f) => {
                    out.push((f.path().display().to_string(), Some(f.contents().to_vec())));
                }
            }
        }
    }
    if name != "novadock_driver" {
        return None;
    }
    let mut out = Vec::new();
    walk(&DRIVER, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Some(out)
}

/// Template lookup: a `templates/` folder on disk first, then the embedded copy.
#[derive(Debug, Clone)]
pub(crate) struct Templates {
    disk: Option<PathBuf>,
}

impl Templates {
    pub(crate) fn embedded_only() -> Templates {
        Templates { disk: None }
    }

    /// Templates for a playbook at `playbook` on disk: `templates/` beside it, or beside its
    /// folder (the repository layout: playbooks/ and templates/ side by side).
    pub(crate) fn for_playbook(playbook: Option<&Path>) -> Templates {
        let disk = playbook.and_then(|p| {
            let dir = p.parent()?;
            [dir.join("templates"), dir.join("../templates")]
                .into_iter()
                .find(|d| d.is_dir())
        });
        Templates { disk }
    }

    pub(crate) fn get(&self, name: &str) -> Option<String> {
        if name.contains("..") {
            return None;
        }
        if let Some(d) = &self.disk
            && let Ok(s) = std::fs::read_to_string(d.join(name))
        {
            return Some(s);
        }
        TEMPLATES
            .get_file(name)
            .and_then(|f| f.contents_utf8())
            .map(str::to_string)
    }
}

/// The embedded playbook for `-p PATH` when PATH is not on disk: by path or by file name.
pub(crate) fn embedded_playbook(path: &Path) -> Option<&'static str> {
    let rel = path.strip_prefix("playbooks").unwrap_or(path);
    PLAYBOOKS
        .get_file(rel)
        .or_else(|| PLAYBOOKS.get_file(rel.file_name()?))
        .and_then(|f| f.contents_utf8())
}

pub(crate) fn embedded_playbook_names() -> Vec<String> {
    PLAYBOOKS
        .files()
        .map(|f| format!("playbooks/{}", f.path().display()))
        .collect()
}
