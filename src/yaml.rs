//! Loading YAML documents with errors that point at file:line:col.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub(crate) enum YamlError {
    #[error("{path}:{line}:{column}: {message}")]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    NoLocation { path: PathBuf, message: String },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Parse `text` (read from `path`) into `T`; errors carry the file position.
pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(text).map_err(|e| from_serde(path, e))
}

fn from_serde(path: &Path, e: serde_yaml::Error) -> YamlError {
    // serde_yaml appends " at line L column C" to the message; we print our own prefix instead.
    let mut message = e.to_string();
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    match e.location() {
        Some(loc) => YamlError::At {
            path: path.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            message,
        },
        None => YamlError::NoLocation {
            path: path.to_path_buf(),
            message,
        },
    }
}
