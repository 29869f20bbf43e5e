//! `image add`: a docker image into Glance, from a host or a tarball.

use super::{CONTROLLER_HINT, Conn, spool_dir};
use crate::cloud::Cloud;
use crate::printer::{self, hinted};
use crate::report;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// What `image add` takes.
#[derive(Debug, Clone)]
pub(crate) struct Add {
    pub(crate) inventory: PathBuf,
    /// REPO[:TAG]: the Glance name, and the name inside the tarball.
    pub(crate) name: String,
    pub(crate) from_host: Option<String>,
    pub(crate) file: Option<PathBuf>,
    pub(crate) replace: bool,
    pub(crate) public: bool,
    pub(crate) json: bool,
    pub(crate) conn: Conn,
}

/// `image add`.
pub(crate) fn run(a: &Add, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    let cloud = Cloud::load(&a.inventory, CONTROLLER_HINT)?;
    let source = match (&a.from_host, &a.file) {
        (Some(h), None) => {
            crate::image::Source::Host(cloud.inventory.host(h).cloned().ok_or_else(|| {
                anyhow::anyhow!("--from-host {h}: not a host of {}", a.inventory.display())
            })?)
        }
        (None, Some(f)) => crate::image::Source::File(f.clone()),
        _ => {
            return Err(hinted(
                "say where the image comes from",
                "--from-host HOST (docker save there) or --file TAR (a docker save tarball)",
            ));
        }
    };
    let cfg = crate::image::AddConfig {
        controller: cloud.controller.clone(),
        auth: cloud.auth()?,
        connect: cloud.connect_options(
            a.conn.persist,
            a.conn.connect_timeout,
            a.conn.accept_new_host_keys,
        ),
        name: a.name.clone(),
        source,
        replace: a.replace,
        public: a.public,
        spool_dir: spool_dir("image")?,
    };
    let r = rt.block_on(crate::image::add(&cfg)).map_err(|e| match e {
        crate::image::ImageError::Exists { .. } => hinted(
            e.to_string(),
            "--replace uploads it as a new version under the same name (prefetch reloads it everywhere)",
        ),
        crate::image::ImageError::NameMismatch { .. } => hinted(
            e.to_string(),
            "give the name the image has (`docker image ls`), or `docker tag` it first",
        ),
        e => anyhow::Error::new(e).context(format!("image add {}", a.name)),
    })?;
    let what = match r.action {
        "unchanged" => printer::dim(&format!(
            "= unchanged: {} is in Glance with this content ({})",
            r.name, r.id
        )),
        action => printer::green(&format!(
            "~ {action}: {} ({}, {}, sha512 {}…){}",
            r.name,
            r.id,
            report::bytes(r.size),
            &r.sha512[..16],
            if r.removed.is_empty() {
                String::new()
            } else {
                format!("; removed the older {}", r.removed.join(", "))
            }
        )),
    };
    printer::say(&what);
    if a.json {
        printer::json(&serde_json::to_value(&r).context("cannot encode the result")?);
    }
    Ok(ExitCode::SUCCESS)
}
