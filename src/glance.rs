//! Glance, as prefetch and image add reach it: one openstacksdk session on the controller
//! ([`cloud_session`]: the docker images, the aggregate, a token), then plain HTTP with that
//! token from Python on the controller ([`GlanceAccess`]).

use crate::openstack::Auth;
use crate::transport::Transport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub(crate) struct GlanceImage {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) size: u64,
    /// Hash algorithm and value (os_hash_algo/os_hash_value, or md5 `checksum` before Rocky).
    pub(crate) algo: String,
    pub(crate) hash: String,
    /// Visible to every project: only these are tagged with their Glance name on hosts.
    #[serde(default)]
    pub(crate) public: bool,
    /// The project that owns the image.
    #[serde(default)]
    pub(crate) owner: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Discovered {
    images: Vec<RawImage>,
    /// `None` when the aggregate does not exist.
    aggregate: Option<Vec<String>>,
    /// nova-compute host → "up"/"down"
    services: BTreeMap<String, String>,
    #[serde(flatten)]
    access: GlanceAccess,
}

/// How the controller reaches Glance's image data in this run.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GlanceAccess {
    /// Image API root, ending in /v2.
    pub(crate) glance: String,
    pub(crate) token: String,
    /// requests' `verify`: true, false or a CA bundle path.
    pub(crate) verify: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct RawImage {
    id: String,
    name: Option<String>,
    size: Option<u64>,
    checksum: Option<String>,
    os_hash_algo: Option<String>,
    os_hash_value: Option<String>,
    visibility: Option<String>,
    owner: Option<String>,
}

/// What one API session on the controller found, and how to reach Glance's data after it.
pub(crate) struct CloudSession {
    /// Active images of container format docker, by name.
    pub(crate) images: Vec<GlanceImage>,
    /// Members of the aggregate; `None` when it does not exist.
    pub(crate) aggregate: Option<Vec<String>>,
    pub(crate) services: BTreeMap<String, String>,
    pub(crate) access: GlanceAccess,
}

/// Docker images in Glance, the aggregate's members and nova-compute states: one python run
/// on the controller, which also hands back a token for the transfers that follow.
pub(crate) async fn cloud_session(
    ctl: &dyn Transport,
    auth: &Auth,
    aggregate: &str,
) -> Result<CloudSession, String> {
    let script = auth.change(
        "docker images in Glance",
        &crate::remote::CLOUD_SESSION,
        &serde_json::json!({ "aggregate": aggregate }),
    );
    let out = ctl.exec(&script).await.map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.success() {
        let msg = crate::remote::py_error(&out.stderr);
        return Err(if out.code == Some(124) {
            format!(
                "the OpenStack API did not answer within {} s",
                crate::openstack::PY_TIMEOUT_SECS
            )
        } else if msg.is_empty() {
            format!("exit {:?} and no message", out.code)
        } else {
            msg
        });
    }
    let d: Discovered = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .map_err(|e| format!("unexpected output: {e}"))?;
    crate::printer::add_secrets(std::slice::from_ref(&d.access.token));
    let mut images = d
        .images
        .into_iter()
        .map(image_of)
        .collect::<Result<Vec<_>, _>>()?;
    images.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(CloudSession {
        images,
        aggregate: d.aggregate,
        services: d.services,
        access: d.access,
    })
}

impl GlanceAccess {
    /// `python3 -c` running `py` (a Glance program of crate::remote).
    pub(crate) fn python(&self, py: &crate::remote::Py) -> String {
        py.command()
    }

    /// The first line to send such a script: `fields` plus where Glance is and how to reach it.
    pub(crate) fn request(&self, fields: serde_json::Value) -> String {
        let mut r = fields;
        r["glance"] = self.glance.clone().into();
        r["token"] = self.token.clone().into();
        r["verify"] = self.verify.clone();
        format!("{r}\n")
    }
}

fn image_of(raw: RawImage) -> Result<GlanceImage, String> {
    let name = raw.name.unwrap_or_default();
    let (algo, hash) = match (raw.os_hash_algo, raw.os_hash_value, raw.checksum) {
        (Some(a), Some(v), _) if !a.is_empty() && !v.is_empty() => (a, v),
        (_, _, Some(md5)) if !md5.is_empty() => ("md5".to_string(), md5),
        _ => {
            return Err(format!(
                "Glance image {} ({name}) has no checksum; it cannot be verified",
                raw.id
            ));
        }
    };
    Ok(GlanceImage {
        id: raw.id,
        name,
        size: raw.size.unwrap_or(0),
        algo,
        hash,
        public: raw.visibility.as_deref() == Some("public"),
        owner: raw.owner,
    })
}

/// The reference dockerd knows an image by: a bare `repo` means `repo:latest`.
pub(crate) fn docker_ref(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_need_a_checksum() {
        let raw = |algo: Option<&str>, val: Option<&str>, md5: Option<&str>| RawImage {
            id: "i".into(),
            name: Some("n".into()),
            size: Some(1),
            checksum: md5.map(Into::into),
            os_hash_algo: algo.map(Into::into),
            os_hash_value: val.map(Into::into),
            visibility: Some("public".into()),
            owner: None,
        };
        assert_eq!(
            image_of(raw(Some("sha512"), Some("v"), Some("m")))
                .unwrap()
                .algo,
            "sha512"
        );
        assert_eq!(image_of(raw(None, None, Some("m"))).unwrap().algo, "md5");
        assert!(image_of(raw(None, None, None)).is_err());
    }
}
