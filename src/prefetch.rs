//! `novadock prefetch`: every active Glance image of container format `docker` on every live
//! Docker compute host, before an instance needs it.
//!
//! nova-docker looks an image up in the host's dockerd by its Glance *name* and otherwise
//! downloads it from Glance on the boot path; that download is what the paper's 1 s boot time
//! leaves out. One run: discover (one API session on the controller) → check every host (one
//! round trip each) → load what is missing or stale, reading each image from Glance once and
//! streaming it to all hosts that need it → report.

use crate::glance::{CloudSession, GlanceAccess, GlanceImage, cloud_session};
use crate::inventory::{Address, Host, Inventory};
use crate::openstack::Auth;
use crate::transport::{ConnectOptions, Transport};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

/// Upper bound for one image's download on the controller.
const DOWNLOAD_TIMEOUT_SECS: u32 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Source {
    /// Stream the image data from Glance into the host's `docker load`.
    Glance,
    /// `docker pull NAME` on the host, for sites with a registry (or a P2P mirror).
    Registry,
    /// Nova's image pre-cache API (microversion 2.81): each host's driver loads the images
    /// (novadock's driver: from Glance, verified). No SSH from the controller to the hosts.
    Nova,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HostsFrom {
    /// Members of the docker aggregate whose nova-compute service is up.
    Aggregate,
    /// The inventory's docker compute group, as listed.
    Inventory,
}

pub(crate) struct Config {
    pub(crate) inventory: Arc<Inventory>,
    pub(crate) controller: Host,
    /// Inventory hosts of the docker compute group.
    pub(crate) computes: Vec<Host>,
    pub(crate) auth: Auth,
    pub(crate) aggregate: String,
    pub(crate) source: Source,
    pub(crate) hosts_from: HostsFrom,
    pub(crate) limit: Option<std::collections::BTreeSet<String>>,
    pub(crate) parallel: usize,
    pub(crate) dry_run: bool,
    pub(crate) prune: bool,
    pub(crate) connect: ConnectOptions,
    /// Where downloads are spooled while they fan out to hosts.
    pub(crate) spool_dir: PathBuf,
    /// Projects whose private docker images are distributed too (by default public ones only).
    pub(crate) projects: Vec<String>,
    /// Registries the `registry` source may pull from (`docker.io` for Docker Hub).
    pub(crate) registries: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Discovery

/// [`cloud_session`] for a prefetch run: its failure is the controller's discovery error.
pub(crate) async fn discovery(
    cfg: &Config,
    ctl: &dyn Transport,
) -> Result<CloudSession, PrefetchError> {
    cloud_session(ctl, &cfg.auth, &cfg.aggregate)
        .await
        .map_err(|message| PrefetchError::Discovery {
            host: cfg.controller.name.clone(),
            message,
        })
}

/// The images every host gets: public ones, and those of the operator's allow-listed
/// projects. Discovery sees every project's images (it runs as admin); loading a tenant's
/// private image everywhere would let any tenant fill every host's disk. The registry source
/// pulls by name, from a registry Glance does not vouch for: public images only.
pub(crate) fn distributed(
    images: Vec<GlanceImage>,
    projects: &[String],
    source: Source,
) -> Vec<GlanceImage> {
    images
        .into_iter()
        .filter(|i| {
            i.public
                || (source != Source::Registry
                    && i.owner.as_ref().is_some_and(|o| projects.contains(o)))
        })
        .collect()
}

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
pub(crate) const HOST_PY: &str = include_str!("../templates/prefetch/prefetch-host.py");

/// What a host's dockerd calls a Glance image, whatever its name: the driver looks it up so.
pub(crate) fn glance_ref(glance_id: &str) -> String {
    format!("glance/{}:latest", glance_id.to_ascii_lowercase())
}

/// Starts [`HOST_PY`] on the host and sends it `request` (the first line of its stdin).
async fn host_op(
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
async fn host_call(t: &dyn Transport, request: &serde_json::Value) -> Result<String, String> {
    let mut s = host_op(t, request).await?;
    let _ = s.stdin.shutdown().await;
    drop(s.stdin);
    let mut stdout = Vec::new();
    let _ = s.stdout.read_to_end(&mut stdout).await;
    let out = s.done.await.map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!(
            "{} (exit {})",
            String::from_utf8_lossy(&out.stderr).trim(),
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
fn prune_request(r: &Record, remove_image: bool) -> serde_json::Value {
    serde_json::json!({
        "op": "prune", "glance_id": r.glance_id, "docker_id": r.docker_id,
        "name_ref": r.name_ref, "remove_image": remove_image,
    })
}

// ---------------------------------------------------------------------------------------
// Downloads: each image read from Glance once per run, fanned out from a growing spool file

#[derive(Debug, Clone, Default)]
struct Progress {
    written: u64,
    done: Option<Result<(), String>>,
}

struct Spool {
    path: PathBuf,
    rx: watch::Receiver<Progress>,
}

struct Downloads {
    ctl: Arc<dyn Transport>,
    access: GlanceAccess,
    dir: PathBuf,
    started: Mutex<HashMap<String, Arc<Spool>>>,
    /// Hosts still to read each image; the spool file goes when the last one is done.
    readers: Mutex<HashMap<String, usize>>,
    read_from_glance: Mutex<BTreeMap<String, u64>>,
    /// Downloads at once: the next image streams in while hosts load this one.
    slots: Arc<Semaphore>,
}

impl Downloads {
    fn get(self: &Arc<Self>, image: &GlanceImage) -> Arc<Spool> {
        let mut started = self.started.lock().expect("not poisoned");
        if let Some(s) = started.get(&image.id) {
            return s.clone();
        }
        let path = self.dir.join(format!("{}.tar", image.id));
        let (tx, rx) = watch::channel(Progress::default());
        let spool = Arc::new(Spool {
            path: path.clone(),
            rx,
        });
        started.insert(image.id.clone(), spool.clone());
        let me = self.clone();
        let image = image.clone();
        tokio::spawn(async move {
            let _slot = me.slots.clone().acquire_owned().await;
            let r = me.download(&image, &path, &tx).await;
            tx.send_modify(|p| p.done = Some(r));
        });
        spool
    }

    async fn download(
        &self,
        image: &GlanceImage,
        path: &std::path::Path,
        tx: &watch::Sender<Progress>,
    ) -> Result<(), String> {
        let script = format!(
            "exec timeout {DOWNLOAD_TIMEOUT_SECS} {}",
            self.access.python(&crate::remote::GLANCE_DOWNLOAD)
        );
        let mut file = crate::spool::create_spool_file(path)?;
        crate::printer::trace(|| format!("download {} start", image.id));
        let mut s = self.ctl.stream(&script).await.map_err(|e| e.to_string())?;
        let request = self.access.request(serde_json::json!({ "id": image.id }));
        s.stdin
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending the request to the controller: {e}"))?;
        s.stdin.shutdown().await.map_err(|e| e.to_string())?;
        drop(s.stdin);
        let mut hasher = Hasher::new(&image.algo);
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            // Whole buffers: the SSH channel hands out small reads, and each file write and
            // wake-up of the hosts following the spool has a cost.
            let k = read_full(&mut s.stdout, &mut buf)
                .await
                .map_err(|e| format!("reading from the controller: {e}"))?;
            if k == 0 {
                break;
            }
            // Flushed before followers hear of it: tokio's File buffers writes.
            file.write_all(&buf[..k])
                .await
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            file.flush()
                .await
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            hasher.update(&buf[..k]);
            n += k as u64;
            tx.send_modify(|p| p.written = n);
        }
        crate::printer::trace(|| format!("download {} done: {n} bytes", image.id));
        let out = s.done.await.map_err(|e| e.to_string())?;
        *self
            .read_from_glance
            .lock()
            .expect("not poisoned")
            .entry(image.id.clone())
            .or_default() += n;
        if !out.success() {
            return Err(format!(
                "download from Glance failed on the controller (exit {}): {}",
                out.code.map_or("signal".into(), |c| c.to_string()),
                crate::remote::py_error(&out.stderr)
            ));
        }
        if n != image.size {
            return Err(format!(
                "Glance sent {n} bytes of {}, expected {}",
                image.id, image.size
            ));
        }
        if let Some(h) = hasher.finish()
            && h != image.hash
        {
            return Err(format!(
                "Glance sent {} with {} {h}, expected {}",
                image.id, image.algo, image.hash
            ));
        }
        Ok(())
    }

    fn release(&self, image_id: &str) {
        let mut readers = self.readers.lock().expect("not poisoned");
        if let Some(n) = readers.get_mut(image_id) {
            *n = n.saturating_sub(1);
            if *n == 0
                && let Some(s) = self.started.lock().expect("not poisoned").get(image_id)
            {
                let _ = std::fs::remove_file(&s.path);
            }
        }
    }
}

/// Read until `buf` is full or the stream ends.
async fn read_full(
    r: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// The hash Glance recorded, where this side can compute it (the host checks every algorithm).
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Other,
}

impl Hasher {
    fn new(algo: &str) -> Hasher {
        use sha2::Digest;
        match algo {
            "sha256" => Hasher::Sha256(sha2::Sha256::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Other,
        }
    }
    fn update(&mut self, b: &[u8]) {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
            Hasher::Other => {}
        }
    }
    fn finish(self) -> Option<String> {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => Some(hex::encode(h.finalize())),
            Hasher::Sha512(h) => Some(hex::encode(h.finalize())),
            Hasher::Other => None,
        }
    }
}

/// Copy the spool to `w` as it grows, until the download is done.
async fn follow(
    spool: &Spool,
    w: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    bar: &indicatif::ProgressBar,
) -> Result<u64, String> {
    let mut rx = spool.rx.clone();
    let mut file = loop {
        // The file exists once the download task has started writing it.
        match tokio::fs::File::open(&spool.path).await {
            Ok(f) => break f,
            Err(_) => {
                if let Some(Err(e)) = rx.borrow().done.clone() {
                    return Err(e);
                }
                if rx.changed().await.is_err() {
                    return Err("the download ended unexpectedly".into());
                }
            }
        }
    };
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let p = rx.borrow_and_update().clone();
        while pos < p.written {
            let want = ((p.written - pos) as usize).min(buf.len());
            let k = file
                .read(&mut buf[..want])
                .await
                .map_err(|e| format!("reading the spool: {e}"))?;
            if k == 0 {
                break;
            }
            w.write_all(&buf[..k])
                .await
                .map_err(|e| format!("sending to the host: {e}"))?;
            pos += k as u64;
            bar.set_position(pos);
        }
        match p.done {
            Some(Err(e)) => return Err(e),
            Some(Ok(())) if pos >= p.written => return Ok(pos),
            _ => {}
        }
        if pos >= p.written && rx.changed().await.is_err() {
            return Err("the download ended unexpectedly".into());
        }
    }
}

// ---------------------------------------------------------------------------------------
// The run

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Item {
    pub(crate) image: String,
    pub(crate) name: String,
    pub(crate) reason: Reason,
    /// "load", "none", "prune", "keep"
    pub(crate) action: &'static str,
    pub(crate) ok: bool,
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HostResult {
    pub(crate) name: String,
    pub(crate) nova_host: String,
    /// "ok", "failed", "skipped"
    pub(crate) status: &'static str,
    pub(crate) error: Option<String>,
    pub(crate) items: Vec<Item>,
    pub(crate) seconds: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) dry_run: bool,
    pub(crate) source: Source,
    pub(crate) hosts_from: HostsFrom,
    pub(crate) aggregate: String,
    pub(crate) images: Vec<GlanceImage>,
    pub(crate) hosts: Vec<HostResult>,
    /// Bytes read from Glance per image id (each image at most once per run).
    pub(crate) read_from_glance: BTreeMap<String, u64>,
    pub(crate) seconds: f64,
}

impl Summary {
    pub(crate) fn failed(&self) -> bool {
        self.hosts.iter().any(|h| h.status == "failed")
    }
}

/// A host to prefetch onto, or one left out and why.
struct Target {
    host: Host,
    nova_host: String,
    skip: Option<String>,
}

/// The compute API microversion of Nova's image pre-cache call (Nova 21, Ussuri), which the
/// `nova` source (precache.rs) uses.
pub(crate) const PRECACHE_MICROVERSION: &str = "2.81";

#[derive(Debug, thiserror::Error)]
pub(crate) enum PrefetchError {
    #[error("cannot reach the controller {host}: {message}")]
    Controller { host: String, message: String },
    #[error("discovery on the controller {host} failed: {message}")]
    Discovery { host: String, message: String },
    #[error("the aggregate `{0}` does not exist")]
    NoAggregate(String),
    #[error("Nova's compute API here goes up to microversion {0}; its image pre-cache API needs {microversion}", microversion = PRECACHE_MICROVERSION)]
    NovaTooOld(String),
    #[error("Nova's image pre-cache request failed: {0}")]
    Precache(String),
}

pub(crate) async fn run(
    cfg: &Config,
    multi: &indicatif::MultiProgress,
) -> Result<Summary, PrefetchError> {
    let started = Instant::now();
    let ctl: Arc<dyn Transport> = Arc::from(
        crate::transport::connect(&cfg.controller, &cfg.connect)
            .await
            .map_err(|message| PrefetchError::Controller {
                host: cfg.controller.name.clone(),
                message,
            })?,
    );
    let found = discover(cfg, ctl.as_ref()).await;
    let result = match found {
        Ok((images, targets, access)) => {
            Ok(converge(cfg, ctl.clone(), access, images, targets, multi).await)
        }
        Err(e) => Err(e),
    };
    ctl.close(cfg.connect.persist_secs > 0).await;
    let (images, hosts, read) = result?;
    Ok(Summary {
        dry_run: cfg.dry_run,
        source: cfg.source,
        hosts_from: cfg.hosts_from,
        aggregate: cfg.aggregate.clone(),
        images,
        hosts,
        read_from_glance: read,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn discover(
    cfg: &Config,
    ctl: &dyn Transport,
) -> Result<(Vec<GlanceImage>, Vec<Target>, GlanceAccess), PrefetchError> {
    let d = discovery(cfg, ctl).await?;
    let images = distributed(d.images, &cfg.projects, cfg.source);
    let mut targets: Vec<Target> = match cfg.hosts_from {
        HostsFrom::Inventory => cfg
            .computes
            .iter()
            .map(|h| Target {
                host: h.clone(),
                nova_host: h.nova_host().to_string(),
                skip: None,
            })
            .collect(),
        HostsFrom::Aggregate => {
            let Some(members) = d.aggregate else {
                return Err(PrefetchError::NoAggregate(cfg.aggregate.clone()));
            };
            members
                .into_iter()
                .map(|m| {
                    // An aggregate member the inventory does not list is reached by its
                    // nova-compute host name, with the inventory's SSH settings.
                    let host = cfg
                        .computes
                        .iter()
                        .chain(cfg.inventory.hosts.iter())
                        .find(|h| h.nova_host() == m)
                        .cloned()
                        .unwrap_or_else(|| Host {
                            name: m.clone(),
                            address: Address::Ssh(m.clone()),
                            groups: vec![],
                            user: cfg.controller.user.clone(),
                            port: cfg.controller.port,
                            vars: Default::default(),
                            inventory_dir: cfg.controller.inventory_dir.clone(),
                        });
                    let skip = match d.services.get(&m).map(String::as_str) {
                        Some("up") => None,
                        Some(state) => Some(format!("nova-compute is {state}")),
                        None => Some("no nova-compute service on this host".to_string()),
                    };
                    Target {
                        host,
                        nova_host: m,
                        skip,
                    }
                })
                .collect()
        }
    };
    if let Some(l) = &cfg.limit {
        targets.retain(|t| l.contains(&t.host.name) || l.contains(&t.nova_host));
    }
    targets.sort_by(|a, b| a.host.name.cmp(&b.host.name));
    Ok((images, targets, d.access))
}

struct Checked {
    target: Target,
    transport: Option<Box<dyn Transport>>,
    plan: Vec<(GlanceImage, Reason)>,
    prune: Vec<(Record, bool)>,
    error: Option<String>,
    started: Instant,
}

type Converged = (Vec<GlanceImage>, Vec<HostResult>, BTreeMap<String, u64>);

async fn converge(
    cfg: &Config,
    ctl: Arc<dyn Transport>,
    access: GlanceAccess,
    images: Vec<GlanceImage>,
    targets: Vec<Target>,
    multi: &indicatif::MultiProgress,
) -> Converged {
    // Phase 1: every host's state, one round trip each.
    let sem = Arc::new(Semaphore::new(cfg.parallel.max(1)));
    let images = Arc::new(images);
    let checks = targets.into_iter().map(|t| {
        let sem = sem.clone();
        let images = images.clone();
        let connect = cfg.connect.clone();
        let prune = cfg.prune;
        async move {
            let started = Instant::now();
            let mut c = Checked {
                target: t,
                transport: None,
                plan: vec![],
                prune: vec![],
                error: None,
                started,
            };
            if c.target.skip.is_some() {
                return c;
            }
            let _permit = sem.acquire().await.expect("never closed");
            match check(&c.target.host, &connect).await {
                Ok((transport, state)) => {
                    c.transport = Some(transport);
                    c.plan = images
                        .iter()
                        .map(|i| (i.clone(), decide(i, &state)))
                        .collect();
                    if prune {
                        c.prune = prunable(&images, &state);
                    }
                }
                Err(e) => c.error = Some(e),
            }
            c
        }
    });
    let checked: Vec<Checked> = futures_join_all(checks).await;

    // Phase 2: loads, each image downloaded once and followed by every host that needs it.
    let spool_dir = cfg.spool_dir.clone();
    let downloads = Arc::new(Downloads {
        ctl,
        access,
        dir: spool_dir.clone(),
        started: Mutex::new(HashMap::new()),
        readers: Mutex::new(HashMap::new()),
        read_from_glance: Mutex::new(BTreeMap::new()),
        slots: Arc::new(Semaphore::new(2)),
    });
    for c in &checked {
        if c.error.is_none() && c.target.skip.is_none() {
            for (i, r) in &c.plan {
                if *r != Reason::Current {
                    *downloads
                        .readers
                        .lock()
                        .expect("not poisoned")
                        .entry(i.id.clone())
                        .or_default() += 1;
                }
            }
        }
    }
    let need_spool = cfg.source == Source::Glance
        && !cfg.dry_run
        && !downloads.readers.lock().expect("not poisoned").is_empty();
    if need_spool && let Err(msg) = crate::spool::create_private_dir(&spool_dir) {
        let hosts = checked
            .into_iter()
            .map(|c| finish(c, vec![], Some(msg.clone())))
            .collect();
        return (Arc::unwrap_or_clone(images), hosts, BTreeMap::new());
    }
    if need_spool {
        // In the order hosts will ask for them.
        for i in images.iter() {
            if downloads
                .readers
                .lock()
                .expect("not poisoned")
                .contains_key(&i.id)
            {
                downloads.get(i);
            }
        }
    }
    let runs = checked.into_iter().map(|c| {
        let sem = sem.clone();
        let downloads = downloads.clone();
        let source = cfg.source;
        let registries = cfg.registries.clone();
        let dry = cfg.dry_run;
        let multi = multi.clone();
        async move {
            if c.error.is_some() || c.target.skip.is_some() {
                return finish(c, vec![], None);
            }
            let _permit = sem.acquire().await.expect("never closed");
            let mut items = Vec::new();
            let mut failure = None;
            let t = c.transport.as_deref().expect("checked hosts are connected");
            for (image, reason) in &c.plan {
                let mut item = Item {
                    image: image.id.clone(),
                    name: image.name.clone(),
                    reason: *reason,
                    action: if *reason == Reason::Current {
                        "none"
                    } else {
                        "load"
                    },
                    ok: true,
                    bytes: 0,
                    seconds: 0.0,
                    detail: None,
                };
                if *reason == Reason::Current || dry {
                    items.push(item);
                    continue;
                }
                if failure.is_some() {
                    downloads.release(&image.id);
                    continue;
                }
                let t0 = Instant::now();
                let r = load(
                    t,
                    image,
                    source,
                    &registries,
                    &downloads,
                    &c.target.host.name,
                    &multi,
                )
                .await;
                if source == Source::Glance {
                    downloads.release(&image.id);
                }
                item.seconds = t0.elapsed().as_secs_f64();
                match r {
                    Ok((bytes, warning)) => {
                        item.bytes = bytes;
                        item.detail = warning;
                    }
                    Err(e) => {
                        item.ok = false;
                        item.detail = Some(e.clone());
                        failure = Some(format!("{}: {e}", image.name));
                    }
                }
                items.push(item);
            }
            if failure.is_none() {
                for (rec, remove_image) in &c.prune {
                    let mut item = Item {
                        image: rec.glance_id.clone(),
                        name: rec.name.clone(),
                        reason: Reason::Stale,
                        action: "prune",
                        ok: true,
                        bytes: 0,
                        seconds: 0.0,
                        detail: Some("gone from Glance".into()),
                    };
                    if !dry {
                        match host_call(t, &prune_request(rec, *remove_image)).await {
                            Ok(o) => {
                                if o.trim() == "in-use" {
                                    item.action = "keep";
                                    item.detail =
                                        Some("gone from Glance, but a container uses it".into());
                                }
                            }
                            Err(e) => {
                                item.ok = false;
                                item.detail = Some(e.clone());
                                failure = Some(format!("prune {}: {e}", rec.name));
                            }
                        }
                    }
                    items.push(item);
                }
            }
            finish(c, items, failure)
        }
    });
    let hosts: Vec<HostResult> = futures_join_all(runs).await;
    if need_spool {
        let _ = std::fs::remove_dir_all(&spool_dir);
    }
    let read = downloads
        .read_from_glance
        .lock()
        .expect("not poisoned")
        .clone();
    (Arc::unwrap_or_clone(images), hosts, read)
}

fn finish(mut c: Checked, items: Vec<Item>, failure: Option<String>) -> HostResult {
    let error = c.error.take().or(failure);
    let status = if c.target.skip.is_some() {
        "skipped"
    } else if error.is_some() {
        "failed"
    } else {
        "ok"
    };
    HostResult {
        name: c.target.host.name.clone(),
        nova_host: c.target.nova_host.clone(),
        status,
        error: error.or(c.target.skip.clone()),
        items,
        seconds: c.started.elapsed().as_secs_f64(),
    }
}

async fn check(
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

async fn load(
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
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
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

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    fs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("prefetch task panicked"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glance::docker_ref;

    fn img(id: &str, name: &str, hash: &str) -> GlanceImage {
        GlanceImage {
            id: id.into(),
            name: name.into(),
            size: 10,
            algo: "sha512".into(),
            hash: hash.into(),
            public: true,
            owner: Some("p1".into()),
        }
    }
    fn rec(id: &str, name: &str, hash: &str, docker: &str) -> Record {
        Record {
            glance_id: id.into(),
            name: name.into(),
            reference: glance_ref(id),
            name_ref: Some(docker_ref(name)),
            algo: "sha512".into(),
            hash: hash.into(),
            docker_id: docker.into(),
        }
    }

    #[test]
    fn references() {
        assert_eq!(docker_ref("busybox"), "busybox:latest");
        assert_eq!(docker_ref("lab/tiny:1"), "lab/tiny:1");
        assert_eq!(docker_ref("reg:5000/app"), "reg:5000/app:latest");
        assert_eq!(docker_ref("reg:5000/app:2"), "reg:5000/app:2");
    }

    #[test]
    fn decisions() {
        let i = img("g1", "app", "h1");
        let mut st = HostState::default();
        assert_eq!(decide(&i, &st), Reason::Missing);
        // The Glance name in dockerd says nothing: a tenant may have any image under it.
        st.docker.insert("app:latest".into(), "sha256:a".into());
        assert_eq!(decide(&i, &st), Reason::Missing);
        st.docker
            .insert("glance/g1:latest".into(), "sha256:a".into());
        assert_eq!(decide(&i, &st), Reason::Unverified);
        st.records.push(rec("g1", "app", "h1", "sha256:a"));
        assert_eq!(decide(&i, &st), Reason::Current);
        // the Glance id's tag now points at another image
        st.docker
            .insert("glance/g1:latest".into(), "sha256:b".into());
        assert_eq!(decide(&i, &st), Reason::Stale);
        // removed from dockerd
        st.docker.clear();
        assert_eq!(decide(&i, &st), Reason::Missing);
        // changed in Glance (same id, new checksum)
        st.docker
            .insert("glance/g1:latest".into(), "sha256:a".into());
        assert_eq!(decide(&img("g1", "app", "h2"), &st), Reason::Stale);
        // another Glance image of the same name is an image of its own
        assert_eq!(decide(&img("g2", "app", "h3"), &st), Reason::Missing);
        // a record from before the glance/ID tags is reloaded
        st.records[0].reference = "app:latest".into();
        assert_eq!(decide(&i, &st), Reason::Stale);
    }

    #[test]
    fn only_public_and_allowed_projects_are_distributed() {
        let mut private = img("p", "tenant/app", "h");
        private.public = false;
        private.owner = Some("tenant".into());
        let public = img("q", "nginx", "h");
        let all = vec![private.clone(), public.clone()];
        let ids = |v: Vec<GlanceImage>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(distributed(all.clone(), &[], Source::Glance)), ["q"]);
        assert_eq!(
            ids(distributed(all.clone(), &["tenant".into()], Source::Glance)),
            ["p", "q"]
        );
        // Nova's driver loads from Glance too, with an admin's token
        assert_eq!(
            ids(distributed(all.clone(), &["tenant".into()], Source::Nova)),
            ["p", "q"]
        );
        // the registry source pulls by name: never a private image
        assert_eq!(
            ids(distributed(all, &["tenant".into()], Source::Registry)),
            ["q"]
        );
    }

    #[test]
    fn prune_keeps_shared_docker_images() {
        let st = HostState {
            records: vec![
                rec("old", "app", "h1", "sha256:a"),
                rec("new", "app", "h1", "sha256:a"),
                rec("gone", "x", "h2", "sha256:x"),
            ],
            docker: HashMap::new(),
        };
        let images = vec![img("new", "app", "h1")];
        let p = prunable(&images, &st);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].0.glance_id.as_str(), p[0].1), ("old", false));
        assert_eq!((p[1].0.glance_id.as_str(), p[1].1), ("gone", true));
    }

    #[test]
    fn state_parsing() {
        let out = "ND_RECORDS\n{\"glance_id\":\"g1\",\"name\":\"app\",\"ref\":\"app:latest\",\"algo\":\"sha512\",\"hash\":\"h\",\"docker_id\":\"sha256:a\",\"loaded_at\":1}\n\nnot json\nND_IMAGES\nsha256:a app:latest\nsha256:c <none>:<none>\n";
        let st = parse_state(out).unwrap();
        assert_eq!(st.records.len(), 1);
        assert_eq!(st.docker.len(), 1);
        assert!(parse_state("ND_RECORDS\n").is_err());
    }
}
