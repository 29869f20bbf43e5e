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

mod download;
mod host;
use download::*;
use host::*;
pub(crate) use host::{Reason, Record, decide, prunable};

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
