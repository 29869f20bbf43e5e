//! `--compare-prefetch`: the same boots with the image fetched from Glance, then present.

use super::controller::Cx;
use super::output::PyOut;
use super::stats::{ratio, secs};
use crate::printer::{self, hinted};
use anyhow::{Result, anyhow};
use serde_json::json;
use std::process::ExitCode;

/// The same boots on one Docker host, with the image removed from it before each (so the
/// driver fetches it from Glance), then with it present. One at a time, so that each
/// "fetched" boot really starts without the image; the present run goes second and finds
/// the image the last fetch left.
pub(super) async fn compare(cx: &Cx) -> Result<ExitCode> {
    let o = &cx.o;
    let host = o
        .host
        .as_deref()
        .expect("clap: --compare-prefetch requires --host");
    let resolved = cx
        .py(
            json!({"mode": "resolve", "prefix": cx.prefix, "flavor": o.flavor, "image": o.image, "network": o.network}),
            300,
        )
        .await?;
    cx.check(&resolved)?;
    let resolved_image = resolved
        .image
        .as_ref()
        .ok_or_else(|| anyhow!("image {} was not resolved", o.image))?;
    // The driver finds an image on a host by its Glance id's tag (driver/, TAG_FORMAT).
    let image = resolved_image
        .name
        .clone()
        .unwrap_or_else(|| resolved_image.id.clone());
    let tag = format!("glance/{}:latest", resolved_image.id);
    let t = match cx.compute(host).await {
        None => {
            return Err(hinted(
                format!("--host {host} is not in {}", o.inventory.display()),
                "--compare-prefetch removes the image on that host over SSH: add it to the inventory (its `nova_host` variable, if its nova name differs)",
            ));
        }
        Some(r) => r.map_err(|e| anyhow!(e).context(format!("cannot reach {host}")))?,
    };
    let probe = t
        .exec("command -v docker >/dev/null || { echo 'docker is not installed' >&2; exit 3; }")
        .await
        .map_err(|e| anyhow!(e.to_string()))?;
    if !probe.success() {
        return Err(hinted(
            format!("{host} does not run Docker"),
            "--compare-prefetch needs a Docker compute host",
        ));
    }
    printer::say(&format!(
        "{} {} × {} from {} on {host}: first with the image removed before each boot, then with it present; one at a time (servers {}*)",
        printer::bold("boot-time --compare-prefetch:"),
        o.count,
        o.flavor,
        image,
        cx.prefix
    ));
    let mut fetched = PyOut::default();
    for i in 1..=o.count {
        let rmi = t
            .exec(&rmi_script(&tag))
            .await
            .map_err(|e| anyhow!(e.to_string()))?;
        if !rmi.success() {
            return Err(hinted(
                format!(
                    "cannot remove image {image} on {host}: {}",
                    String::from_utf8_lossy(&rmi.stderr).trim()
                ),
                "a container still uses it: --compare-prefetch needs a host where no other server runs this image",
            ));
        }
        let out = cx.boot("fetched-", i, 1, 1, true).await?;
        fetched.servers.extend(out.servers);
    }
    let fetched = cx.measure(&fetched).await;
    printer::say(&format!(
        "{} (image fetched from Glance)",
        printer::bold("image absent")
    ));
    printer::say(fetched.human().trim_end());
    // The fetched boots left the image on the host; were it gone, "present" would lie.
    let there = t
        .exec(&format!(
            "docker image inspect {} >/dev/null",
            crate::shell::quote(&tag)
        ))
        .await
        .map_err(|e| anyhow!(e.to_string()))?;
    if !there.success() {
        return Err(anyhow!(
            "image {image} is not on {host} after the boots that fetched it: {}",
            String::from_utf8_lossy(&there.stderr).trim()
        ));
    }
    let present = cx.boot("present-", 1, o.count, 1, true).await?;
    let present = cx.measure(&present).await;
    printer::say(&format!("{} (prefetched)", printer::bold("image present")));
    printer::say(present.human().trim_end());
    let r = ratio(&present, &fetched);
    if let (Some(r), Some(p), Some(f)) = (r, present.api(), fetched.api()) {
        printer::say(&format!(
            "ratio: {r:.1}× — median API → ACTIVE {} with the image fetched from Glance, {} with it present",
            secs(f.median),
            secs(p.median)
        ));
    }
    printer::say(&format!(
        "{} all {} servers deleted",
        printer::green("ok:"),
        2 * o.count
    ));
    if o.json {
        printer::json(&json!({
            "run": cx.prefix.trim_end_matches('-'),
            "flavor": o.flavor, "image": image, "host": host, "count": o.count, "network": o.network,
            "present": present.json(),
            "fetched": fetched.json(),
            "ratio": r.map(|x| (x * 100.0).round() / 100.0),
        }));
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the image so that the next boot has to fetch it; absent already is fine.
/// Removes the image `tag` names with every name it has: the driver then fetches it from
/// Glance. One that a container uses stays, and the removal fails.
fn rmi_script(tag: &str) -> String {
    let q = crate::shell::quote(tag);
    format!(
        "if id=$(docker image inspect -f '{{{{.Id}}}}' {q} 2>/dev/null); then docker image inspect -f '{{{{range .RepoTags}}}}{{{{println .}}}}{{{{end}}}}' \"$id\" | xargs -r docker rmi -- >/dev/null; fi"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmi_script_quotes_the_tag() {
        assert_eq!(
            rmi_script("glance/a b:latest"),
            "if id=$(docker image inspect -f '{{.Id}}' 'glance/a b:latest' 2>/dev/null); then docker image inspect -f '{{range .RepoTags}}{{println .}}{{end}}' \"$id\" | xargs -r docker rmi -- >/dev/null; fi"
        );
    }
}
