//! The compute-host side of prefetch: what a host holds (its records and dockerd's images),
//! the decision per (host, image), and the requests to prefetch-host.py.

use super::*;

// ---------------------------------------------------------------------------------------
// Host state and the decision per (host, image)

/// What a host records after a verified load.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub(crate) struct Record {
    pub(crate) glance_id: String,
    pub(crate) name: String,
    /// The reference the image was tagged with: `glance/ID:latest` ([`glance_ref`]).
    #[serde(rename = "ref")]
    pub(crate) reference: String,
    /// Its Glance name as a docker reference, when it was tagged with it too (public images).
    #[serde(default)]
    pub(crate) name_ref: Option<String>,
    pub(crate) algo: String,
    pub(crate) hash: String,
    pub(crate) docker_id: String,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct HostState {
    pub(crate) records: Vec<Record>,
    /// docker reference (`repo:tag`) → image id
    pub(crate) docker: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Reason {
    /// Loaded by novadock at the Glance checksum, and still in dockerd.
    Current,
    /// Not in dockerd (never loaded, or removed since).
    Missing,
    /// In dockerd, but not the Glance image as it is now (replaced or changed in Glance, or
    /// the name now points at another image).
    Stale,
    /// In dockerd under that name, but not loaded by novadock: its content is unknown.
    Unverified,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Current => "current",
            Reason::Missing => "missing",
            Reason::Stale => "stale",
            Reason::Unverified => "unverified",
        }
    }
}

pub(crate) fn decide(image: &GlanceImage, state: &HostState) -> Reason {
    let reference = glance_ref(&image.id);
    match state.records.iter().find(|r| r.glance_id == image.id) {
        // A record of another reference is from before images were tagged by Glance id.
        Some(r) if r.hash == image.hash && r.reference == reference => {
            match state.docker.get(&reference) {
                Some(id) if *id == r.docker_id => Reason::Current,
                Some(_) => Reason::Stale,
                None => Reason::Missing,
            }
        }
        Some(_) => Reason::Stale,
        None if state.docker.contains_key(&reference) => Reason::Unverified,
        None => Reason::Missing,
    }
}

/// Records of images gone from Glance; `keep` is the docker ids still recorded for live
/// images (a re-upload of the same content must not lose its docker image).
pub(crate) fn prunable(images: &[GlanceImage], state: &HostState) -> Vec<(Record, bool)> {
    let live: Vec<&Record> = state
        .records
        .iter()
        .filter(|r| images.iter().any(|i| i.id == r.glance_id))
        .collect();
    state
        .records
        .iter()
        .filter(|r| !images.iter().any(|i| i.id == r.glance_id))
        .map(|r| {
            let shared = live.iter().any(|l| l.docker_id == r.docker_id);
            (r.clone(), !shared)
        })
        .collect()
}

/// The compute-host side of the job (check, load, prune), reading its request as JSON on
/// stdin. bootstrap installs the same file as the forced command of the prefetch key, so the
/// key can run nothing else; with another key it is sent with `python3 -c`.
pub(crate) const HOST_PY: &str = include_str!("../../templates/prefetch/prefetch-host.py");

/// What a host's dockerd calls a Glance image, whatever its name: the driver looks it up so.
pub(crate) fn glance_ref(glance_id: &str) -> String {
    format!("glance/{}:latest", glance_id.to_ascii_lowercase())
}

/// Starts [`HOST_PY`] on the host and sends it `request` (the first line of its stdin).
pub(super) async fn host_op(
    t: &dyn Transport,
    request: &serde_json::Value,
) -> Result<crate::transport::Stream, String> {
    let cmd = format!("exec python3 -c {}", crate::shell::quote(HOST_PY));
    let mut s = t.stream(&cmd).await.map_err(|e| e.to_string())?;
    s.stdin
        .write_all(format!("{request}\n").as_bytes())
        .await
        .map_err(|e| format!("sending the request to the host: {e}"))?;
    Ok(s)
}

/// A host operation without data: its stdout, or its error.
pub(super) async fn host_call(
    t: &dyn Transport,
    request: &serde_json::Value,
) -> Result<String, String> {
    let mut s = host_op(t, request).await?;
    let _ = s.stdin.shutdown().await;
    drop(s.stdin);
    let mut stdout = Vec::new();
    let _ = s.stdout.read_to_end(&mut stdout).await;
    let out = s.done.await.map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!(
            "{} (exit {})",
            crate::remote::py_error(&out.stderr),
            out.code.map_or("signal".into(), |c| c.to_string())
        ));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

pub(crate) fn parse_state(stdout: &str) -> Result<HostState, String> {
    let mut st = HostState::default();
    let mut section = "";
    for line in stdout.lines() {
        match line {
            "ND_RECORDS" | "ND_IMAGES" => section = line,
            _ if line.trim().is_empty() => {}
            _ if section == "ND_RECORDS" => {
                // A record that does not parse is as good as none: the image gets reloaded.
                if let Ok(r) = serde_json::from_str::<Record>(line) {
                    st.records.push(r);
                }
            }
            _ if section == "ND_IMAGES" => {
                if let Some((id, reference)) = line.split_once(' ')
                    && !reference.contains("<none>")
                {
                    st.docker.insert(reference.to_string(), id.to_string());
                }
            }
            _ => return Err(format!("unexpected output: {line}")),
        }
    }
    if section != "ND_IMAGES" {
        return Err("the state check was cut short".into());
    }
    st.records.sort_by(|a, b| a.glance_id.cmp(&b.glance_id));
    Ok(st)
}

/// Removes a record (its `glance/ID` tag, and with `remove_image` its name tag, so the image
/// goes with its last name) unless a container uses the image.
pub(super) fn prune_request(r: &Record, remove_image: bool) -> serde_json::Value {
    serde_json::json!({
        "op": "prune", "glance_id": r.glance_id, "docker_id": r.docker_id,
        "name_ref": r.name_ref, "remove_image": remove_image,
    })
}

pub(super) async fn check(
    host: &Host,
    connect: &ConnectOptions,
) -> Result<(Box<dyn Transport>, HostState), String> {
    let t = crate::transport::connect(host, connect).await?;
    let out = host_call(t.as_ref(), &serde_json::json!({ "op": "check" }))
        .await
        .map_err(|e| format!("state check failed: {e}"))?;
    let state = parse_state(&out)?;
    Ok((t, state))
}

pub(super) async fn load(
    t: &dyn Transport,
    image: &GlanceImage,
    source: Source,
    registries: &[String],
    downloads: &Arc<Downloads>,
    host: &str,
    multi: &indicatif::MultiProgress,
) -> Result<(u64, Option<String>), String> {
    let request = serde_json::json!({
        "op": "load", "id": image.id, "name": image.name, "public": image.public,
        "algo": image.algo, "hash": image.hash, "size": image.size,
        "source": source, "registries": registries,
    });
    let mut s = host_op(t, &request).await?;
    let bar = crate::printer::bytes_bar(multi, image.size, &format!("{host} {}", image.name));
    let fed = if source == Source::Glance {
        let spool = downloads.get(image);
        let r = follow(&spool, &mut s.stdin, &bar).await;
        // Closing stdin ends the stream: on a failed download the host sees a short read
        // and records nothing.
        let _ = s.stdin.shutdown().await;
        drop(s.stdin);
        r
    } else {
        drop(s.stdin);
        Ok(0)
    };
    crate::printer::trace(|| format!("{host}: fed {}", image.id));
    let mut stdout = Vec::new();
    let _ = s.stdout.read_to_end(&mut stdout).await;
    crate::printer::trace(|| format!("{host}: loaded {}", image.id));
    let out = s.done.await.map_err(|e| e.to_string());
    bar.finish_and_clear();
    fed?;
    let out = out?;
    if !out.success() {
        let err = crate::remote::py_error(&out.stderr);
        return Err(if err.is_empty() {
            format!(
                "the loader exited with {}",
                out.code.map_or("a signal".into(), |c| c.to_string())
            )
        } else {
            err
        });
    }
    #[derive(Deserialize)]
    struct Loaded {
        bytes: u64,
        warning: Option<String>,
    }
    let l: Loaded = serde_json::from_slice(&stdout)
        .map_err(|e| format!("unexpected output from the loader: {e}"))?;
    Ok((l.bytes, l.warning))
}
