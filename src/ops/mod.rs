//! What each command does, below the command line: `cli.rs` holds the clap types and the
//! dispatch, and fills these modules' plain option structs. `check`, `converge` (plan and
//! apply), `image` (image add) and `prefetch` are here; boot-time is `boottime.rs`. `select`
//! loads the inventory and playbook and resolves `--limit`, the same way for every command.

pub(crate) mod check;
pub(crate) mod converge;
pub(crate) mod image;
pub(crate) mod prefetch;
pub(crate) mod run_id;
pub(crate) mod select;

use anyhow::{Context, Result};
use std::path::PathBuf;

/// SSH settings every command takes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    /// Seconds SSH masters stay open after the run (0: close).
    pub(crate) persist: u64,
    pub(crate) accept_new_host_keys: bool,
    pub(crate) connect_timeout: u64,
}

/// The run's one async runtime.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Why `image add` and `prefetch` need a controller.
pub(crate) const CONTROLLER_HINT: &str =
    "the controller (where Glance and the credentials are) must be in group `controllers`";

pub(crate) fn spool_dir(what: &str) -> Result<PathBuf> {
    crate::spool::spool_dir(&format!("{what}-{}", run_id::run_id())).map_err(anyhow::Error::msg)
}
