//! The side-by-side table: result lines of every server → one Markdown table with the ratios
//! of ours against each peer and the targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::target::Kind;

/// One result line (`--out` file, JSON Lines).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultLine {
    pub kind: Kind,
    pub scenario: String,
    pub figures: Value,
}

/// What a row's figure must do for the target.
#[derive(Debug, Clone, Copy)]
enum Goal {
    /// p99 at most half the Node server's and no worse than y-sweet's.
    Latency,
    /// At least twice the Node server's and at least y-sweet's.
    Rate,
    /// At most y-sweet's.
    Memory,
}

struct Row {
    scenario: &'static str,
    field: &'static str,
    label: &'static str,
    goal: Option<Goal>,
}

const fn row(scenario: &'static str, field: &'static str, label: &'static str) -> Row {
    Row {
        scenario,
        field,
        label,
        goal: None,
    }
}

const ROWS: &[Row] = &[
    row("one-canvas", "sent_per_s", "sent edits/s"),
    row("one-canvas", "delivered_per_s", "delivered edits/s"),
    row("one-canvas", "delivered_ratio", "delivered ratio"),
    row("one-canvas", "latency_p50_ms", "propagation p50 ms"),
    Row {
        goal: Some(Goal::Latency),
        ..row("one-canvas", "latency_p99_ms", "propagation p99 ms")
    },
    row("one-canvas", "all_seen_p99_ms", "seen-by-all p99 ms"),
    row("one-canvas", "persist_p50_ms", "persist p50 ms"),
    row("one-canvas", "persist_p99_ms", "persist p99 ms"),
    row("one-canvas", "server_cpu_pct", "server CPU %"),
    row("one-canvas", "pg_cpu_pct", "Postgres CPU %"),
    row("one-canvas", "loadgen_cpu_pct", "load generator CPU %"),
    row("one-canvas", "disconnected", "clients disconnected"),
    row("many-canvases", "sent_per_s", "sent edits/s"),
    row("many-canvases", "delivered_ratio", "delivered ratio"),
    row("many-canvases", "latency_p50_ms", "propagation p50 ms"),
    row("many-canvases", "latency_p99_ms", "propagation p99 ms"),
    row("many-canvases", "persist_p50_ms", "persist p50 ms"),
    row("many-canvases", "persist_p99_ms", "persist p99 ms"),
    row("many-canvases", "server_cpu_pct", "server CPU %"),
    row("many-canvases", "pg_cpu_pct", "Postgres CPU %"),
    row("many-canvases", "loadgen_cpu_pct", "load generator CPU %"),
    Row {
        goal: Some(Goal::Rate),
        ..row("max-rate", "max_sustained_per_s", "max sustained edits/s")
    },
    row(
        "max-rate",
        "max_delivered_per_s",
        "delivered edits/s at max",
    ),
    row("max-rate", "stopped_by", "next step failed by"),
    Row {
        goal: Some(Goal::Memory),
        ..row(
            "memory",
            "per_canvas_kib",
            "RSS KiB per idle canvas (1 client)",
        )
    },
    row(
        "memory",
        "per_canvas_without_clients_kib",
        "RSS KiB per canvas after clients left",
    ),
    row("memory", "rooms_loaded", "rooms still loaded"),
    row(
        "memory-no-clients",
        "per_canvas_kib",
        "RSS KiB per canvas loaded one client at a time",
    ),
    row("memory-no-clients", "rooms_loaded", "rooms still loaded"),
    row("trace", "completed", "replay completed"),
    row("trace", "watcher_received", "updates the watcher received"),
    row("trace", "watcher_s", "wall s until watcher has all"),
    row("trace", "durable_s", "wall s until all durable"),
    row("trace", "updates_per_s", "updates/s"),
    row("trace", "watcher_text_ok", "watcher text = endContent"),
    row(
        "trace-verify",
        "restart_text_ok",
        "text after restart = endContent",
    ),
    row("trace", "stored_bytes", "stored bytes (after compaction)"),
    row(
        "trace",
        "client_encoded_bytes",
        "document encoded by the client (yrs, v1)",
    ),
    row("trace", "stored_vs_yjs", "stored / 159,929 B (yjs v2)"),
    row("trace", "stored_vs_yjs_v1", "stored / 311,038 B (yjs v1)"),
    row("trace", "send_s", "wall s until the writer sent all"),
    row("trace", "persist_p99_ms", "persist p99 ms"),
    row("trace", "commits", "group commits"),
    row("trace", "server_cpu_pct", "server CPU %"),
    row("trace", "pg_cpu_pct", "Postgres CPU %"),
    row("trace", "loadgen_cpu_pct", "load generator CPU %"),
];

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "n/a".into(),
        Some(Value::Bool(true)) => "yes".into(),
        Some(Value::Bool(false)) => "**no**".into(),
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", f as i64)
            } else if f.abs() >= 100.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.2}")
            }
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if a.is_infinite() || b.is_infinite() => "–".into(),
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

fn verdict(goal: Goal, ours: Option<f64>, node: Option<f64>, ysweet: Option<f64>) -> String {
    let check = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let both = |a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> bool| Some(f(a?, b?));
    match goal {
        Goal::Latency => format!(
            "≤ ½ node: {}; ≤ y-sweet: {}",
            check(both(ours, node, |o, n| o <= n / 2.0)),
            check(both(ours, ysweet, |o, y| o <= y)),
        ),
        Goal::Rate => format!(
            "≥ 2× node: {}; ≥ y-sweet: {}",
            check(both(ours, node, |o, n| o >= 2.0 * n)),
            check(both(ours, ysweet, |o, y| o >= y)),
        ),
        Goal::Memory => format!("≤ y-sweet: {}", check(both(ours, ysweet, |o, y| o <= y))),
    }
}

/// The table for the given result lines (the last line of a kind and scenario wins).
pub fn table(lines: &[ResultLine]) -> String {
    let mut by: BTreeMap<(String, &'static str), &Value> = BTreeMap::new();
    for line in lines {
        by.insert((line.scenario.clone(), line.kind.name()), &line.figures);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | figure | {} | {} | {} | ours / node | ours / y-sweet | target |",
        Kind::Potentia.label(),
        Kind::Node.label(),
        Kind::Ysweet.label()
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---|");
    for row in ROWS {
        let values: Vec<Option<&Value>> = Kind::ALL
            .iter()
            .map(|kind| {
                by.get(&(row.scenario.to_string(), kind.name()))
                    .and_then(|f| f.get(row.field))
            })
            .collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        // A server that delivered under 99 % of the edits has an unbounded latency.
        let lost = |kind: Kind| {
            by.get(&(row.scenario.to_string(), kind.name()))
                .and_then(|f| f.get("delivered_ratio"))
                .and_then(Value::as_f64)
                .is_some_and(|r| r < 0.99)
        };
        let latency = row.field.starts_with("latency_") || row.field.starts_with("all_seen_");
        let number = |i: usize, kind: Kind| {
            if latency && lost(kind) {
                Some(f64::INFINITY)
            } else {
                values[i].and_then(Value::as_f64)
            }
        };
        let (ours, node, ysweet) = (
            number(0, Kind::Potentia),
            number(1, Kind::Node),
            number(2, Kind::Ysweet),
        );
        let show = |i: usize, n: Option<f64>| {
            if n.is_some_and(f64::is_infinite) {
                "∞ (edits lost)".to_string()
            } else {
                cell(values[i])
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.label,
            show(0, ours),
            show(1, node),
            show(2, ysweet),
            ratio(ours, node),
            ratio(ours, ysweet),
            row.goal
                .map(|goal| verdict(goal, ours, node, ysweet))
                .unwrap_or_default(),
        );
    }
    // The ramp's steps, for the record.
    for kind in Kind::ALL {
        let Some(steps) = by
            .get(&("max-rate".to_string(), kind.name()))
            .and_then(|f| f.get("steps"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        let _ = writeln!(out, "\nmax-rate steps, {}:", kind.label());
        for step in steps {
            let _ = writeln!(
                out,
                "  offered {:>7} sent {:>7} delivered {:>7} ({}) p50 {} ms p99 {} ms  server CPU {}% pg CPU {}% loadgen CPU {}% persist p99 {} ms",
                cell(step.get("offered_per_s")),
                cell(step.get("sent_per_s")),
                cell(step.get("delivered_per_s")),
                cell(step.get("delivered_ratio")),
                cell(step.get("latency_p50_ms")),
                cell(step.get("latency_p99_ms")),
                cell(step.get("server_cpu_pct")),
                cell(step.get("pg_cpu_pct")),
                cell(step.get("loadgen_cpu_pct")),
                cell(step.get("persist_p99_ms")),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_ratios_and_verdicts() {
        let lines = vec![
            ResultLine {
                kind: Kind::Potentia,
                scenario: "one-canvas".into(),
                figures: serde_json::json!({ "latency_p99_ms": 4.0, "persist_p99_ms": 2.0 }),
            },
            ResultLine {
                kind: Kind::Node,
                scenario: "one-canvas".into(),
                figures: serde_json::json!({ "latency_p99_ms": 10.0 }),
            },
            ResultLine {
                kind: Kind::Ysweet,
                scenario: "one-canvas".into(),
                figures: serde_json::json!({ "latency_p99_ms": 3.0 }),
            },
            ResultLine {
                kind: Kind::Ysweet,
                scenario: "many-canvases".into(),
                figures: serde_json::json!({ "latency_p99_ms": null, "delivered_ratio": 0.0 }),
            },
        ];
        let table = table(&lines);
        assert!(table.contains("| one-canvas | propagation p99 ms | 4 | 10 | 3 | 0.40× | 1.33× | ≤ ½ node: met; ≤ y-sweet: **missed** |"), "{table}");
        assert!(
            table.contains("| persist p99 ms | 2 | n/a | n/a |"),
            "{table}"
        );
        assert!(
            table.contains("| many-canvases | propagation p99 ms | n/a | n/a | ∞ (edits lost) |"),
            "{table}"
        );
    }
}
