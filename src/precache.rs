//! `novadock prefetch` with the `nova` source: the same discovery, then one request to Nova's
//! image pre-cache API (`POST /os-aggregates/{id}/images`, microversion 2.81) for every
//! distributed image. Nova asks each compute host of the aggregate to cache them, and
//! novadock's driver loads each one there (verified, tagged `glance/<id>:latest`). No SSH from
//! the controller to the computes: the prefetch job holds no key to them.

use crate::glance::GlanceImage;
use crate::prefetch::{Config, PRECACHE_MICROVERSION, PrefetchError, Source, distributed};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// What a run asked of Nova, or would have.
#[derive(Debug, Serialize)]
pub(crate) struct Precache {
    pub(crate) dry_run: bool,
    pub(crate) source: Source,
    pub(crate) aggregate: String,
    pub(crate) images: Vec<GlanceImage>,
    /// The aggregate's members, all of which Nova asks.
    pub(crate) hosts: Vec<String>,
    /// Members whose nova-compute is not up: Nova skips them.
    pub(crate) down: Vec<String>,
    /// Members whose hypervisor is not docker → its type (their driver caches its own way,
    /// or not at all).
    pub(crate) other_hypervisors: BTreeMap<String, String>,
    pub(crate) microversion: &'static str,
    /// Pre-cache requests Nova accepted (202); more than one when Nova 26's duplicate check
    /// made novadock send the images one by one.
    pub(crate) requests: usize,
    /// Nova caches after answering: the outcome is in nova-compute's log and notifications.
    pub(crate) asynchronous: bool,
    pub(crate) seconds: f64,
}

/// The request's body: every image once, in the order given.
pub(crate) fn request_body(images: &[GlanceImage]) -> serde_json::Value {
    let mut ids: Vec<&str> = Vec::new();
    for i in images {
        if !ids.contains(&i.id.as_str()) {
            ids.push(&i.id);
        }
    }
    serde_json::json!({ "cache": ids.iter().map(|id| serde_json::json!({ "id": id })).collect::<Vec<_>>() })
}

#[derive(Debug, Deserialize)]
struct Answer {
    error: Option<AnswerError>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    hypervisors: BTreeMap<String, Option<String>>,
    #[serde(default)]
    requests: usize,
}

#[derive(Debug, Deserialize)]
struct AnswerError {
    kind: String,
    #[serde(default)]
    status: Option<u16>,
    message: String,
}

pub(crate) async fn run(cfg: &Config) -> Result<Precache, PrefetchError> {
    let started = Instant::now();
    let ctl = crate::transport::connect(&cfg.controller, &cfg.connect)
        .await
        .map_err(|message| PrefetchError::Controller {
            host: cfg.controller.name.clone(),
            message,
        })?;
    let r = ask(cfg, ctl.as_ref()).await;
    ctl.close(cfg.connect.persist_secs > 0).await;
    let mut p = r?;
    p.seconds = started.elapsed().as_secs_f64();
    Ok(p)
}

async fn ask(
    cfg: &Config,
    ctl: &dyn crate::transport::Transport,
) -> Result<Precache, PrefetchError> {
    let d = crate::prefetch::discovery(cfg, ctl).await?;
    if d.aggregate.is_none() {
        return Err(PrefetchError::NoAggregate(cfg.aggregate.clone()));
    }
    let images = distributed(d.images, &cfg.projects, Source::Nova);
    let script = cfg.auth.change(
        "pre-cache docker images through Nova",
        &crate::remote::PRECACHE,
        &serde_json::json!({
            "aggregate": cfg.aggregate,
            "body": request_body(&images),
            "send": !cfg.dry_run,
        }),
    );
    let out = ctl
        .exec(&script)
        .await
        .map_err(|e| PrefetchError::Discovery {
            host: cfg.controller.name.clone(),
            message: e.to_string(),
        })?;
    if !out.success() {
        let msg = crate::remote::py_error(&out.stderr);
        return Err(PrefetchError::Precache(if msg.is_empty() {
            format!("exit {:?} and no message", out.code)
        } else {
            msg
        }));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let a: Answer = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .map_err(|e| PrefetchError::Precache(format!("unexpected output: {e}")))?;
    if let Some(e) = a.error {
        return Err(match e.kind.as_str() {
            "no_aggregate" => PrefetchError::NoAggregate(cfg.aggregate.clone()),
            "too_old" => PrefetchError::NovaTooOld(e.message),
            _ => PrefetchError::Precache(match e.status {
                Some(s) => format!("Nova answered HTTP {s}: {}", e.message),
                None => e.message,
            }),
        });
    }
    let down = a
        .hosts
        .iter()
        .filter(|h| d.services.get(*h).map(String::as_str) != Some("up"))
        .cloned()
        .collect();
    let other_hypervisors = a
        .hypervisors
        .iter()
        .filter_map(|(h, t)| match t.as_deref() {
            Some(t) if !t.eq_ignore_ascii_case("docker") => Some((h.clone(), t.to_string())),
            _ => None,
        })
        .collect();
    Ok(Precache {
        dry_run: cfg.dry_run,
        source: Source::Nova,
        aggregate: cfg.aggregate.clone(),
        images,
        hosts: a.hosts,
        down,
        other_hypervisors,
        microversion: PRECACHE_MICROVERSION,
        requests: a.requests,
        asynchronous: true,
        seconds: 0.0,
    })
}

/// The report's lines, each starting with its mark (`~` asked, `=` nothing to ask, `!` a
/// warning), and the closing note.
pub(crate) fn human_lines(p: &Precache) -> Vec<String> {
    let agg = &p.aggregate;
    let up = p.hosts.len() - p.down.len();
    let mut out = Vec::new();
    if p.images.is_empty() {
        out.push(format!(
            "= aggregate {agg}: no docker images in Glance to cache"
        ));
    } else if p.hosts.is_empty() {
        out.push(format!("= aggregate {agg}: no hosts: nothing to cache"));
    } else {
        let names: Vec<String> = p
            .images
            .iter()
            .map(|i| crate::glance::docker_ref(&i.name))
            .collect();
        out.push(format!(
            "~ aggregate {agg}: {} Nova to cache {} on {} ({})",
            if p.dry_run { "would ask" } else { "asked" },
            crate::printer::count(p.images.len(), "image"),
            crate::printer::count(up, "host"),
            names.join(", ")
        ));
    }
    for h in &p.down {
        out.push(format!("! {h}: nova-compute is not up: Nova skips it"));
    }
    for (h, t) in &p.other_hypervisors {
        out.push(format!(
            "! {h}: hypervisor {t}, not docker: its driver caches these images its own way, or not at all"
        ));
    }
    out
}

/// Said after a request: Nova's answer (202) only means it accepted the work.
pub(crate) const ASYNC_NOTE: &str = "Nova caches asynchronously: novadock's driver loads each image on each host (verified, tagged glance/<id>:latest); failures show in nova-compute's log and as aggregate.cache_images notifications";

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, name: &str) -> GlanceImage {
        GlanceImage {
            id: id.into(),
            name: name.into(),
            size: 1,
            algo: "sha512".into(),
            hash: "h".into(),
            public: true,
            owner: None,
        }
    }

    fn precache(dry_run: bool) -> Precache {
        Precache {
            dry_run,
            source: Source::Nova,
            aggregate: "docker".into(),
            images: vec![img("g1", "nd/one"), img("g2", "nd/two:2")],
            hosts: vec!["cmp1".into(), "cmp2".into(), "cmp3".into()],
            down: vec!["cmp3".into()],
            other_hypervisors: BTreeMap::new(),
            microversion: PRECACHE_MICROVERSION,
            requests: 1,
            asynchronous: true,
            seconds: 0.0,
        }
    }

    #[test]
    fn the_request_names_every_image_once() {
        let images = vec![img("g1", "a"), img("g2", "b"), img("g1", "a")];
        assert_eq!(
            request_body(&images),
            serde_json::json!({ "cache": [{ "id": "g1" }, { "id": "g2" }] })
        );
        assert_eq!(request_body(&[]), serde_json::json!({ "cache": [] }));
    }

    #[test]
    fn report_lines() {
        assert_eq!(
            human_lines(&precache(false)),
            [
                "~ aggregate docker: asked Nova to cache 2 images on 2 hosts (nd/one:latest, nd/two:2)",
                "! cmp3: nova-compute is not up: Nova skips it",
            ]
        );
        let mut p = precache(true);
        p.down.clear();
        p.images.truncate(1);
        p.other_hypervisors = BTreeMap::from([("kvm1".into(), "QEMU".into())]);
        assert_eq!(
            human_lines(&p),
            [
                "~ aggregate docker: would ask Nova to cache 1 image on 3 hosts (nd/one:latest)",
                "! kvm1: hypervisor QEMU, not docker: its driver caches these images its own way, or not at all",
            ]
        );
        p.images.clear();
        p.other_hypervisors.clear();
        assert_eq!(
            human_lines(&p),
            ["= aggregate docker: no docker images in Glance to cache"]
        );
    }

    #[test]
    fn the_json_names_images_and_hosts() {
        let v = serde_json::to_value(precache(false)).unwrap();
        assert_eq!(v["source"], "nova");
        assert_eq!(v["images"][0]["id"], "g1");
        assert_eq!(v["hosts"], serde_json::json!(["cmp1", "cmp2", "cmp3"]));
        assert_eq!(v["microversion"], "2.81");
        assert_eq!(v["asynchronous"], true);
    }
}
