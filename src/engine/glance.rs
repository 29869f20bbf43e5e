//! A `glance_image` step's upload: `image add`, run from the engine.

use super::host::HostRun;
use super::schedule::connect_options;
use crate::plan;

impl HostRun {
    /// `image add` from the engine: the controller is this host.
    pub(super) async fn upload(&self, u: &plan::UploadSpec) -> Result<(), String> {
        let source = if u.from_host.is_empty() {
            crate::image::Source::File(std::path::PathBuf::from(&u.file))
        } else {
            crate::image::Source::Host(
                self.inventory
                    .host(&u.from_host)
                    .cloned()
                    .ok_or_else(|| format!("`{}` is not a host of this inventory", u.from_host))?,
            )
        };
        let cfg = crate::image::AddConfig {
            controller: self.host.clone(),
            auth: u.auth.clone(),
            connect: connect_options(&self.inventory, &self.opts),
            name: u.name.clone(),
            source,
            replace: false,
            public: u.public,
            // A random name, as `image add`'s: a predictable one (it was run id and host)
            // could be planted by a local user and stop the upload (issue 14, finding 1).
            spool_dir: crate::spool::spool_dir(&format!("image-{}", self.opts.run_id))?,
        };
        crate::image::add(&cfg)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
