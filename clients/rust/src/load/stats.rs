//! Figures: percentiles, CPU and memory of processes from `/proc`, and the server's
//! OpenMetrics (`/metrics`) for the persist-latency histogram and the commit counters.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

/// Kernel clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
const CLOCK_TICKS: f64 = 100.0;

/// The `p` quantile (0..=1) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Microseconds as milliseconds, rounded to 0.01 ms.
pub fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

/// User + system CPU ticks of a process, from `/proc/<pid>/stat`.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the state.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The Postgres processes serving the benchmark: those of the cluster in `data_dir` (their
/// working directory) that serve `database`, plus the cluster's WAL writer, checkpointer and
/// background writer (shared with anything else using that cluster meanwhile).
#[derive(Debug, Clone)]
pub struct PgProcesses {
    pub data_dir: PathBuf,
    pub database: String,
}

impl PgProcesses {
    /// Summed CPU ticks of those processes (backends that exited meanwhile are not counted).
    pub fn cpu_ticks(&self) -> u64 {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let mut total = 0;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
                continue;
            };
            if cwd != self.data_dir {
                continue;
            }
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            let ours = cmdline.contains(&format!(" {} ", self.database))
                || ["walwriter", "checkpointer", "background writer"]
                    .iter()
                    .any(|name| cmdline.contains(name));
            if ours {
                total += cpu_ticks(pid).unwrap_or(0);
            }
        }
        total
    }
}

/// What is watched while a scenario runs.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub server_pid: Option<u32>,
    pub pg: Option<PgProcesses>,
    pub metrics_url: Option<String>,
}

/// One look at everything [`Observed`].
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    server_ticks: Option<u64>,
    pg_ticks: Option<u64>,
    own_ticks: Option<u64>,
    metrics: Option<Scrape>,
}

/// Figures over the time between two snapshots.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowFigures {
    /// CPU of the server process, percent of one core.
    pub server_cpu_pct: Option<f64>,
    /// CPU of the Postgres processes serving it, percent of one core.
    pub pg_cpu_pct: Option<f64>,
    /// CPU of this load generator, percent of one core.
    pub loadgen_cpu_pct: Option<f64>,
    /// Persist (group commit) latency quantiles from the server's histogram, ms (bucket
    /// bounds are powers of two from 0.25 ms: figures are interpolated within a bucket).
    pub persist_p50_ms: Option<f64>,
    pub persist_p99_ms: Option<f64>,
    /// Group commits and updates committed meanwhile.
    pub commits: Option<u64>,
    pub updates_committed: Option<u64>,
}

impl Observed {
    /// Looks at every process and scrapes the metrics.
    pub async fn snapshot(&self) -> Snapshot {
        let metrics = match &self.metrics_url {
            Some(url) => match Scrape::fetch(url).await {
                Ok(scrape) => Some(scrape),
                Err(error) => {
                    tracing::warn!(%error, "cannot scrape the metrics");
                    None
                }
            },
            None => None,
        };
        Snapshot {
            at: Instant::now(),
            server_ticks: self.server_pid.and_then(cpu_ticks),
            pg_ticks: self.pg.as_ref().map(PgProcesses::cpu_ticks),
            own_ticks: cpu_ticks(std::process::id()),
            metrics,
        }
    }

    /// The server's RSS now, KiB.
    pub fn server_rss_kib(&self) -> Option<u64> {
        self.server_pid.and_then(rss_kib)
    }
}

impl Snapshot {
    /// Figures between `self` (earlier) and `later`.
    pub fn until(&self, later: &Snapshot) -> WindowFigures {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let pct = |a: Option<u64>, b: Option<u64>| {
            Some(round1(
                b?.saturating_sub(a?) as f64 / CLOCK_TICKS / secs * 100.0,
            ))
        };
        let mut figures = WindowFigures {
            server_cpu_pct: pct(self.server_ticks, later.server_ticks),
            pg_cpu_pct: pct(self.pg_ticks, later.pg_ticks),
            loadgen_cpu_pct: pct(self.own_ticks, later.own_ticks),
            ..WindowFigures::default()
        };
        if let (Some(a), Some(b)) = (&self.metrics, &later.metrics) {
            let counter = |name: &str| Some((b.value(name)? - a.value(name).unwrap_or(0.0)) as u64);
            figures.commits = counter("potentia_sync_commits_total");
            figures.updates_committed = counter("potentia_sync_updates_total");
            let buckets = b.histogram_delta(a, "potentia_sync_persist_seconds");
            figures.persist_p50_ms = histogram_quantile(&buckets, 0.50).map(|s| round2(s * 1e3));
            figures.persist_p99_ms = histogram_quantile(&buckets, 0.99).map(|s| round2(s * 1e3));
        }
        figures
    }
}

/// Rounds to one decimal.
pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Rounds to two decimals.
pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// One scrape of an OpenMetrics endpoint: every sample by its name and labels.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    /// Scrapes `url`.
    pub async fn fetch(url: &str) -> anyhow::Result<Self> {
        let body = reqwest::get(url)
            .await
            .with_context(|| format!("GET {url}"))?
            .error_for_status()?
            .text()
            .await?;
        Ok(Self::parse(&body))
    }

    /// Parses the text format (`name{labels} value`).
    pub fn parse(body: &str) -> Self {
        let samples = body
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| {
                let (key, value) = line.rsplit_once(' ')?;
                Some((key.trim().to_string(), value.trim().parse().ok()?))
            })
            .collect();
        Self { samples }
    }

    /// A sample by its exact key (`name` or `name{labels}`).
    pub fn value(&self, key: &str) -> Option<f64> {
        self.samples.get(key).copied()
    }

    /// The cumulative buckets `(upper bound, count)` of histogram `name`, minus `earlier`'s.
    pub fn histogram_delta(&self, earlier: &Scrape, name: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter_map(|(key, value)| {
                let bound = key.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().ok()?
                };
                Some((bound, value - earlier.value(key).unwrap_or(0.0)))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

/// The `q` quantile of cumulative buckets, interpolated linearly within its bucket; `None`
/// without observations. In the `+Inf` bucket: the largest finite bound.
pub fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let want = q * total;
    let mut previous = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= want {
            if bound.is_infinite() {
                return Some(previous.0);
            }
            let in_bucket = count - previous.1;
            let fraction = if in_bucket > 0.0 {
                (want - previous.1) / in_bucket
            } else {
                1.0
            };
            return Some(previous.0 + (bound - previous.0) * fraction);
        }
        previous = (bound, count);
    }
    Some(previous.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 50);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&values, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn histogram_quantiles_interpolate_within_a_bucket() {
        let text = "# TYPE x histogram\nx_bucket{le=\"0.001\"} 0\nx_bucket{le=\"0.002\"} 10\nx_bucket{le=\"+Inf\"} 10\nx_count 10\n";
        let scrape = Scrape::parse(text);
        let buckets = scrape.histogram_delta(&Scrape::default(), "x");
        assert_eq!(buckets.len(), 3);
        let p50 = histogram_quantile(&buckets, 0.5).unwrap();
        assert!((p50 - 0.0015).abs() < 1e-9, "{p50}");
        assert_eq!(scrape.value("x_count"), Some(10.0));
    }

    #[test]
    fn own_process_is_visible() {
        assert!(cpu_ticks(std::process::id()).is_some());
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
