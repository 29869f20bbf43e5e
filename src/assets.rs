//! Playbooks and templates shipped inside the binary, overridable from disk.

use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};

static PLAYBOOKS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/playbooks");
static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Template lookup: a `templates/` folder on disk first, then the embedded copy.
#[derive(Debug, Clone)]
pub struct Templates {
    disk: Option<PathBuf>,
}

impl Templates {
    pub fn embedded_only() -> Templates {
        Templates { disk: None }
    }

    /// Templates for a playbook at `playbook` on disk: `templates/` beside it, or beside its
    /// folder (the repository layout: playbooks/ and templates/ side by side).
    pub fn for_playbook(playbook: Option<&Path>) -> Templates {
        let disk = playbook.and_then(|p| {
            let dir = p.parent()?;
            [dir.join("templates"), dir.join("../templates")]
                .into_iter()
                .find(|d| d.is_dir())
        });
        Templates { disk }
    }

    pub fn get(&self, name: &str) -> Option<String> {
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
pub fn embedded_playbook(path: &Path) -> Option<&'static str> {
    let rel = path.strip_prefix("playbooks").unwrap_or(path);
    PLAYBOOKS
        .get_file(rel)
        .or_else(|| PLAYBOOKS.get_file(rel.file_name()?))
        .and_then(|f| f.contents_utf8())
}

pub fn embedded_playbook_names() -> Vec<String> {
    PLAYBOOKS
        .files()
        .map(|f| format!("playbooks/{}", f.path().display()))
        .collect()
}
