//! `novadock image add`: a docker image into Glance the way the paper does it
//! (`docker save NAME | glance image-create --container-format docker --disk-format raw
//! --name NAME`), but checked and idempotent: the Glance name must be the repo:tag inside the
//! tarball (nova-docker finds the image in dockerd by that name), and an active image of that
//! name with the same checksum is left alone.

use crate::glance::{GlanceImage, cloud_session, docker_ref};
use crate::inventory::Host;
use crate::openstack::Auth;
use crate::spool::{create_private_dir, create_spool_file};
use crate::transport::{ConnectOptions, Transport};
use serde::Serialize;
use sha2::{Digest, Sha512};
use std::io::Read;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) enum Source {
    /// `docker save NAME` on this inventory host.
    Host(Host),
    /// A `docker save` tarball on this machine.
    File(PathBuf),
}

pub(crate) struct AddConfig {
    pub(crate) controller: Host,
    pub(crate) auth: Auth,
    pub(crate) connect: ConnectOptions,
    pub(crate) name: String,
    pub(crate) source: Source,
    pub(crate) replace: bool,
    pub(crate) public: bool,
    /// Where a host's `docker save` is kept while it is checked and uploaded.
    pub(crate) spool_dir: PathBuf,
}

#[derive(Debug, Serialize)]
pub(crate) struct AddResult {
    pub(crate) name: String,
    /// "uploaded", "replaced" or "unchanged"
    pub(crate) action: &'static str,
    pub(crate) id: String,
    pub(crate) size: u64,
    pub(crate) sha512: String,
    /// Images of that name removed after the new one became active (`--replace`).
    pub(crate) removed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageError {
    #[error("{0}")]
    Source(String),
    #[error(
        "the tarball holds {found}, not {name}: nova-docker looks the image up in dockerd by its Glance name, so an image uploaded under another name cannot boot"
    )]
    NameMismatch { name: String, found: String },
    #[error(
        "Glance already has an active image {name} ({id}) with other content (sha512 {theirs}…, this one {ours}…)"
    )]
    Exists {
        name: String,
        id: String,
        theirs: String,
        ours: String,
    },
    #[error("on the controller {host}: {message}")]
    Controller { host: String, message: String },
}

/// The repo:tags a `docker save` tarball holds (its manifest.json), read without unpacking.
pub(crate) fn repo_tags(tar: &mut impl Read) -> Result<Vec<String>, String> {
    let mut header = [0u8; 512];
    let mut long_name: Option<String> = None;
    loop {
        if let Err(e) = tar.read_exact(&mut header) {
            return Err(format!("not a docker save tarball (no manifest.json): {e}"));
        }
        if header.iter().all(|&b| b == 0) {
            return Err("not a docker save tarball: no manifest.json".into());
        }
        let field = |a: usize, b: usize| {
            let f = &header[a..b];
            let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let size_text = field(124, 136);
        let size = u64::from_str_radix(size_text.trim(), 8)
            .map_err(|_| format!("not a tar archive (size field {size_text:?})"))?;
        let kind = header[156];
        let mut name = match long_name.take() {
            Some(n) => n,
            None => {
                let prefix = field(345, 500);
                let base = field(0, 100);
                if prefix.is_empty() {
                    base
                } else {
                    format!("{prefix}/{base}")
                }
            }
        };
        let padded = size.div_ceil(512) * 512;
        let wanted =
            matches!(kind, b'L' | b'x') || name.trim_start_matches("./") == "manifest.json";
        if !wanted {
            std::io::copy(&mut tar.take(padded), &mut std::io::sink())
                .map_err(|e| e.to_string())?;
            continue;
        }
        let mut body = vec![0u8; padded as usize];
        tar.read_exact(&mut body).map_err(|e| e.to_string())?;
        body.truncate(size as usize);
        match kind {
            // GNU long name, or a PAX header's `path=`: they name the next entry.
            b'L' => {
                long_name = Some(
                    String::from_utf8_lossy(&body)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            }
            b'x' => {
                long_name = String::from_utf8_lossy(&body)
                    .lines()
                    .find_map(|l| l.split_once(" path=").map(|(_, p)| p.to_string()));
            }
            _ => {
                name.clear();
                let manifest: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| format!("manifest.json: {e}"))?;
                return Ok(manifest
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|m| m["RepoTags"].as_array().into_iter().flatten())
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect());
            }
        }
    }
}

fn hash_file(path: &Path) -> Result<(u64, String), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha512::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// `docker save NAME` on `host` into `dest`.
async fn save_from(
    host: &Host,
    connect: &ConnectOptions,
    name: &str,
    dest: &Path,
) -> Result<(), String> {
    let t = crate::transport::connect(host, connect).await?;
    let r = async {
        let mut s = t
            .stream(&format!(
                "exec docker save -- {}",
                crate::shell::quote(name)
            ))
            .await
            .map_err(|e| e.to_string())?;
        drop(s.stdin);
        let mut file = create_spool_file(dest)?;
        tokio::io::copy(&mut s.stdout, &mut file)
            .await
            .map_err(|e| format!("receiving docker save from {}: {e}", host.name))?;
        file.flush().await.map_err(|e| e.to_string())?;
        let out = s.done.await.map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(format!(
                "docker save {name} on {} failed (exit {}): {}",
                host.name,
                out.code.map_or("signal".into(), |c| c.to_string()),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }
    .await;
    t.close(connect.persist_secs > 0).await;
    r
}

pub(crate) async fn add(cfg: &AddConfig) -> Result<AddResult, ImageError> {
    let name = cfg.name.clone();
    if name.trim().is_empty() {
        return Err(ImageError::Source("the image name is empty".into()));
    }
    // 1. The tarball, on this machine: checked before anything reaches Glance.
    let (path, spooled) = match &cfg.source {
        Source::File(p) => (p.clone(), false),
        Source::Host(h) => {
            create_private_dir(&cfg.spool_dir).map_err(ImageError::Source)?;
            let p = cfg.spool_dir.join("image.tar");
            if let Err(e) = save_from(h, &cfg.connect, &name, &p).await {
                // A partial tarball is left to no one.
                let _ = std::fs::remove_dir_all(&cfg.spool_dir);
                return Err(ImageError::Source(e));
            }
            (p, true)
        }
    };
    let result = add_tarball(cfg, &name, &path).await;
    if spooled {
        let _ = std::fs::remove_dir_all(&cfg.spool_dir);
    }
    result
}

async fn add_tarball(cfg: &AddConfig, name: &str, path: &Path) -> Result<AddResult, ImageError> {
    let tags = {
        let mut f = std::fs::File::open(path)
            .map_err(|e| ImageError::Source(format!("{}: {e}", path.display())))?;
        repo_tags(&mut std::io::BufReader::new(&mut f))
            .map_err(|e| ImageError::Source(format!("{}: {e}", path.display())))?
    };
    let wanted = docker_ref(name);
    if !tags.iter().any(|t| docker_ref(t) == wanted) {
        return Err(ImageError::NameMismatch {
            name: name.to_string(),
            found: if tags.is_empty() {
                "no repo:tag".into()
            } else {
                tags.join(", ")
            },
        });
    }
    let (size, sha512) = hash_file(path).map_err(ImageError::Source)?;

    // 2. What Glance has under that name.
    let ctl_err = |message: String| ImageError::Controller {
        host: cfg.controller.name.clone(),
        message,
    };
    let ctl = crate::transport::connect(&cfg.controller, &cfg.connect)
        .await
        .map_err(ctl_err)?;
    let r = upload(cfg, ctl.as_ref(), name, path, size, &sha512).await;
    ctl.close(cfg.connect.persist_secs > 0).await;
    r.map_err(|e| match e {
        UploadError::Other(m) => ctl_err(m),
        UploadError::Image(e) => e,
    })
}

enum UploadError {
    Image(ImageError),
    Other(String),
}

impl From<String> for UploadError {
    fn from(s: String) -> Self {
        UploadError::Other(s)
    }
}

async fn upload(
    cfg: &AddConfig,
    ctl: &dyn Transport,
    name: &str,
    path: &Path,
    size: u64,
    sha512: &str,
) -> Result<AddResult, UploadError> {
    let session = cloud_session(ctl, &cfg.auth, "").await?;
    let same: Vec<&GlanceImage> = session.images.iter().filter(|i| i.name == name).collect();
    if let Some(i) = same.iter().find(|i| i.algo == "sha512" && i.hash == sha512) {
        return Ok(AddResult {
            name: name.to_string(),
            action: "unchanged",
            id: i.id.clone(),
            size,
            sha512: sha512.to_string(),
            removed: vec![],
        });
    }
    if let Some(i) = same.first()
        && !cfg.replace
    {
        return Err(UploadError::Image(ImageError::Exists {
            name: name.to_string(),
            id: i.id.clone(),
            theirs: i.hash.chars().take(16).collect(),
            ours: sha512.chars().take(16).collect(),
        }));
    }
    // 3. Upload: the request on the first line of stdin, then the bytes.
    let script = format!(
        "exec {}",
        session.access.python(&crate::remote::GLANCE_UPLOAD)
    );
    let mut s = ctl.stream(&script).await.map_err(|e| e.to_string())?;
    let request = session.access.request(serde_json::json!({
        "name": name, "size": size, "sha512": sha512, "public": cfg.public,
    }));
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let send = async {
        s.stdin.write_all(request.as_bytes()).await?;
        tokio::io::copy(&mut file, &mut s.stdin).await?;
        s.stdin.shutdown().await
    };
    let sent = send.await;
    drop(s.stdin);
    let mut stdout = Vec::new();
    let _ = s.stdout.read_to_end(&mut stdout).await;
    let out = s.done.await.map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(UploadError::Other(format!(
            "upload to Glance failed: {}",
            crate::remote::py_error(&out.stderr)
        )));
    }
    sent.map_err(|e| format!("sending the image to the controller: {e}"))?;
    let id = serde_json::from_slice::<serde_json::Value>(&stdout)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .ok_or_else(|| "unexpected output from the upload".to_string())?;
    // 4. The new image is active: older ones of that name go (prefetch sees them as stale).
    let removed: Vec<String> = same.iter().map(|i| i.id.clone()).collect();
    if !removed.is_empty() {
        let mut d = ctl
            .stream(&format!(
                "exec {}",
                session.access.python(&crate::remote::GLANCE_DELETE)
            ))
            .await
            .map_err(|e| e.to_string())?;
        let req = session
            .access
            .request(serde_json::json!({ "ids": removed }));
        let _ = d.stdin.write_all(req.as_bytes()).await;
        let _ = d.stdin.shutdown().await;
        drop(d.stdin);
        let out = d.done.await.map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(UploadError::Other(format!(
                "uploaded {id}, but removing the older {name} failed: {}",
                crate::remote::py_error(&out.stderr)
            )));
        }
    }
    Ok(AddResult {
        name: name.to_string(),
        action: if removed.is_empty() {
            "uploaded"
        } else {
            "replaced"
        },
        id,
        size,
        sha512: sha512.to_string(),
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::repo_tags;

    fn entry(name: &str, body: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{:011o}\0", body.len());
        h[124..136].copy_from_slice(size.as_bytes());
        h[156] = b'0';
        let mut out = h.to_vec();
        out.extend_from_slice(body);
        out.resize(512 + body.len().div_ceil(512) * 512, 0);
        out
    }

    #[test]
    fn tags_come_from_the_manifest() {
        let mut tar = entry("blobs/sha256/abc", &[7u8; 700]);
        tar.extend(entry(
            "manifest.json",
            br#"[{"Config":"c","RepoTags":["nd/app:1"],"Layers":[]}]"#,
        ));
        tar.extend([0u8; 1024]);
        assert_eq!(repo_tags(&mut &tar[..]).unwrap(), vec!["nd/app:1"]);
        let no_manifest = [entry("x", b"y"), vec![0u8; 1024]].concat();
        assert!(repo_tags(&mut &no_manifest[..]).is_err());
        assert!(repo_tags(&mut &b"not a tar"[..]).is_err());
    }
}
