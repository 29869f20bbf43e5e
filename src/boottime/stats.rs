//! The figures of a run: statistics over its servers, as text and as JSON.

use super::output::Sample;
use crate::printer;
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    pub(crate) n: usize,
    pub(crate) min: f64,
    pub(crate) median: f64,
    pub(crate) p95: f64,
    pub(crate) max: f64,
}

/// min / median / p95 / max. The median averages the two middle values of an even count;
/// p95 is the nearest rank (the smallest value ≥ 95 % of the samples), so it is always a
/// measured value. NaN (no figure) is left out; `None` when nothing is left.
pub(crate) fn stats(values: impl IntoIterator<Item = f64>) -> Option<Stats> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let rank = (0.95 * n as f64).ceil() as usize;
    Some(Stats {
        n,
        min: v[0],
        median,
        p95: v[rank.clamp(1, n) - 1],
        max: v[n - 1],
    })
}

fn stats_json(s: Option<Stats>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "n": s.n, "min": round3(s.min), "median": round3(s.median),
            "p95": round3(s.p95), "max": round3(s.max),
        }),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(super) fn secs(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{x:.2} s")
    }
}

/// The figures a run prints and writes as JSON.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    pub(crate) samples: Vec<Sample>,
    /// Why a Docker host's container times are missing, per host.
    pub(crate) notes: Vec<String>,
}

impl Measured {
    pub(super) fn api(&self) -> Option<Stats> {
        stats(self.samples.iter().map(|s| s.api_to_active))
    }
    fn nova(&self) -> Option<Stats> {
        stats(
            self.samples
                .iter()
                .map(|s| s.created_to_launched.unwrap_or(f64::NAN)),
        )
    }
    fn container(&self) -> Option<Stats> {
        stats(
            self.samples
                .iter()
                .map(|s| s.to_container.unwrap_or(f64::NAN)),
        )
    }

    pub(crate) fn hosts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in &self.samples {
            *m.entry(s.host.clone()).or_insert(0) += 1;
        }
        m
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "servers": self.samples.iter().map(|s| json!({
                "name": s.name, "id": s.id, "host": s.host,
                "hypervisor_type": s.hypervisor_type,
                "api_to_active_s": if s.api_to_active.is_nan() { Value::Null } else { json!(round3(s.api_to_active)) },
                "created_to_launched_s": s.created_to_launched.map(round3),
                "request_to_container_s": s.to_container.map(round3),
            })).collect::<Vec<_>>(),
            "summary": {
                "api_to_active_s": stats_json(self.api()),
                "created_to_launched_s": stats_json(self.nova()),
                "request_to_container_s": stats_json(self.container()),
            },
            "hosts": self.hosts(),
            "notes": self.notes,
        })
    }

    /// Per-server lines and the min/median/p95/max table.
    pub(crate) fn human(&self) -> String {
        let mut out = String::new();
        let w = self
            .samples
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let hw = self
            .samples
            .iter()
            .map(|s| s.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        out.push_str(&printer::dim(&format!(
            "  {:<w$}  {:<hw$}  {:>10}  {:>16}  {:>17}\n",
            "server", "host", "API→ACTIVE", "created→launched", "request→container"
        )));
        for s in &self.samples {
            out.push_str(&format!(
                "  {:<w$}  {:<hw$}  {:>10}  {:>16}  {:>17}\n",
                s.name,
                s.host,
                secs(s.api_to_active),
                s.created_to_launched
                    .map_or("-".into(), |x| format!("{x:.0} s")),
                s.to_container.map_or("-".into(), secs),
            ));
        }
        out.push_str(&printer::dim(&format!(
            "  {:<30}  {:>8}  {:>8}  {:>8}  {:>8}\n",
            "", "min", "median", "p95", "max"
        )));
        for (label, st) in [
            ("API → ACTIVE (wall clock)", self.api()),
            ("created → launched_at (Nova)", self.nova()),
            ("request → container started", self.container()),
        ] {
            if let Some(st) = st {
                out.push_str(&format!(
                    "  {:<30}  {:>8}  {:>8}  {:>8}  {:>8}{}\n",
                    label,
                    secs(st.min),
                    secs(st.median),
                    secs(st.p95),
                    secs(st.max),
                    if st.n < self.samples.len() {
                        format!("  ({} of {} servers)", st.n, self.samples.len())
                    } else {
                        String::new()
                    }
                ));
            }
        }
        let hosts = self
            .hosts()
            .iter()
            .map(|(h, n)| format!("{h} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("  hosts: {hosts}\n"));
        for n in &self.notes {
            out.push_str(&format!("  {}\n", printer::dim(&format!("note: {n}"))));
        }
        out
    }
}

/// fetched / present, on the medians of API → ACTIVE.
pub(crate) fn ratio(present: &Measured, fetched: &Measured) -> Option<f64> {
    let (p, f) = (present.api()?, fetched.api()?);
    (p.median > 0.0).then(|| f.median / p.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_odd_even_and_single() {
        let s = stats([3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (s.n, s.min, s.median, s.p95, s.max),
            (3, 1.0, 2.0, 3.0, 3.0)
        );
        let s = stats([4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        let s = stats([0.7]).unwrap();
        assert_eq!((s.min, s.median, s.p95, s.max), (0.7, 0.7, 0.7, 0.7));
        assert!(stats([]).is_none());
        assert!(stats([f64::NAN]).is_none());
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        // 20 samples: the 19th smallest; 10 samples: the largest; 100: the 95th.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(stats(v).unwrap().p95, 19.0);
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(stats(v).unwrap().p95, 10.0);
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = stats(v).unwrap();
        assert_eq!((s.p95, s.median), (95.0, 50.5));
        // A missing figure is left out, not counted as zero.
        let s = stats([1.0, f64::NAN, 3.0]).unwrap();
        assert_eq!((s.n, s.median), (2, 2.0));
    }

    #[test]
    fn ratio_is_fetched_over_present_medians() {
        let m = |xs: &[f64]| Measured {
            samples: xs
                .iter()
                .map(|&x| Sample {
                    name: "s".into(),
                    id: "i".into(),
                    host: "cmp1".into(),
                    hypervisor_type: None,
                    api_to_active: x,
                    created_to_launched: None,
                    to_container: None,
                })
                .collect(),
            notes: vec![],
        };
        assert_eq!(
            ratio(&m(&[1.0, 2.0, 3.0]), &m(&[10.0, 20.0, 30.0])),
            Some(10.0)
        );
        assert_eq!(ratio(&m(&[]), &m(&[1.0])), None);
    }
}
