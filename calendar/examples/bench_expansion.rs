//! Recurrence expansion speed: potentia-calendar against python-dateutil on the same rules.
//!
//! ```text
//! cargo run -p potentia-calendar --release --example bench_expansion [-- --iterations N]
//! ```
//!
//! The rules are the conformance cases (`tests/conformance/cases.json`) that dateutil expands
//! exactly as we do: zoned series whose note does not record a difference from dateutil (see
//! the suite's README), with each rule in canonical text, plus a few heavy ones. Each rule is parsed, validated and expanded `N`
//! times on each side, after one warm-up run; the time per expansion is compared. The Python
//! side is dateutil's `rruleset` with `zoneinfo`, timed inside Python (start-up not counted);
//! the snippet below is the benchmark's peer, not a source of expectations. Both sides must
//! produce the same number of instances per rule; a difference is printed loudly and makes the
//! command fail.
//!
//! `POTENTIA_PYTHON` names another interpreter than `python3`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Utc};
use potentia_calendar::{
    ExpansionLimits, ExpansionQuery, Recurrence, RecurrenceDate, RecurrenceProperty,
    RecurrenceRule, SeriesStart,
};
use serde::{Deserialize, Serialize};

const DEFAULT_ITERATIONS: u32 = 20;

/// What dateutil is given: one rule set, its window or limit.
const PYTHON_PEER: &str = r#"
import datetime, json, sys, time
from zoneinfo import ZoneInfo
from dateutil.rrule import rrulestr, rruleset

UTC = datetime.timezone.utc
spec = json.load(sys.stdin)

def instant(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

def value(text, zone):
    if text.endswith("Z"):
        return datetime.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return datetime.datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=zone)

def expand(rule):
    zone = ZoneInfo(rule["tzid"]) if rule["tzid"] else UTC
    start = value(rule["dtstart"], zone)
    rules = rruleset()
    for text in rule["rrules"]:
        rules.rrule(rrulestr(text, dtstart=start))
    # DTSTART is an occurrence (RFC 5545); for these rules it is also one of the rule's.
    rules.rdate(start)
    for text in rule["rdates"]:
        rules.rdate(value(text, zone))
    for text in rule["exdates"]:
        rules.exdate(value(text, zone))
    window_from = instant(rule["window"][0]) if rule["window"] else None
    window_to = instant(rule["window"][1]) if rule["window"] else None
    found = []
    for at in (rules.xafter(window_from, inc=True) if window_from else rules):
        if window_to is not None and at >= window_to:
            break
        found.append(at)
        if rule["limit"] is not None and len(found) >= rule["limit"]:
            break
    return found

results = {}
for rule in spec["rules"]:
    try:
        count = len(expand(rule))
        started = time.perf_counter_ns()
        for _ in range(spec["iterations"]):
            expand(rule)
        elapsed = time.perf_counter_ns() - started
        results[rule["name"]] = {"count": count, "micros": elapsed / 1000 / spec["iterations"]}
    except Exception as error:
        results[rule["name"]] = {"error": f"{type(error).__name__}: {error}"}
print(json.dumps(results))
"#;

#[derive(Deserialize)]
struct Suite {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Window {
    from: String,
    to: String,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    dtstart: String,
    tzid: Option<String>,
    view_zone: Option<String>,
    #[serde(default)]
    rrules: Vec<String>,
    #[serde(default)]
    rdates: Vec<String>,
    #[serde(default)]
    exdates: Vec<String>,
    window: Option<Window>,
    limit: Option<usize>,
    note: Option<String>,
}

/// One rule set to expand, as both sides receive it.
#[derive(Debug, Clone, Serialize)]
struct BenchRule {
    name: String,
    dtstart: String,
    tzid: Option<String>,
    rrules: Vec<String>,
    rdates: Vec<String>,
    exdates: Vec<String>,
    window: Option<(String, String)>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct PythonSpec<'a> {
    iterations: u32,
    rules: &'a [BenchRule],
}

#[derive(Deserialize)]
struct PythonResult {
    count: Option<usize>,
    micros: Option<f64>,
    error: Option<String>,
}

/// The conformance cases dateutil expands as we do: zoned, no viewer zone, and no recorded
/// difference from dateutil in the note.
fn conformance_rules() -> Result<Vec<BenchRule>, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/cases.json");
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let suite: Suite =
        serde_json::from_str(&text).map_err(|e| format!("cannot parse {path}: {e}"))?;
    Ok(suite
        .cases
        .into_iter()
        .filter(|case| {
            let zoned = case.tzid.is_some() || case.dtstart.ends_with(['Z', 'z']);
            let same_as_dateutil = case.note.as_deref().is_none_or(|note| {
                !note.contains("differs from python-dateutil") && !note.contains("refuses")
            });
            zoned && case.view_zone.is_none() && same_as_dateutil
        })
        .map(|case| BenchRule {
            name: case.name,
            dtstart: case.dtstart,
            tzid: case.tzid,
            // The canonical text: our parser forgives case and spaces, dateutil's does not, and
            // that is input leniency, not expansion.
            rrules: case
                .rrules
                .iter()
                .map(|text| {
                    RecurrenceRule::parse(text)
                        .map_or_else(|_| text.clone(), |rule| rule.to_string())
                })
                .collect(),
            rdates: case.rdates,
            exdates: case.exdates,
            window: case.window.map(|window| (window.from, window.to)),
            limit: case.limit,
        })
        .collect())
}

fn heavy_rules() -> Vec<BenchRule> {
    let rule = |name: &str, dtstart: &str, tzid: &str, rrule: &str| BenchRule {
        name: name.to_owned(),
        dtstart: dtstart.to_owned(),
        tzid: Some(tzid.to_owned()),
        rrules: vec![rrule.to_owned()],
        rdates: Vec::new(),
        exdates: Vec::new(),
        window: None,
        limit: None,
    };
    vec![
        rule(
            "heavy/daily-for-10-years-new-york",
            "20200101T090000",
            "America/New_York",
            "FREQ=DAILY;COUNT=3653",
        ),
        BenchRule {
            window: Some((
                "2023-12-31T15:00:00Z".to_owned(),
                "2024-12-31T15:00:00Z".to_owned(),
            )),
            ..rule(
                "heavy/hourly-for-a-year-tokyo",
                "20240101T000000",
                "Asia/Tokyo",
                "FREQ=HOURLY",
            )
        },
        rule(
            "heavy/monthly-last-weekday-bysetpos-50-years-london",
            "20000131T170000",
            "Europe/London",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=600",
        ),
        rule(
            "heavy/weekly-mo-we-fr-20-years-sao-paulo",
            "20200106T090000",
            "America/Sao_Paulo",
            "FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20391231T235959Z",
        ),
    ]
}

fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("bad instant `{text}`: {e}"))
}

/// Parses, validates and expands one rule set, as the Python side does; returns the count.
fn expand_in_rust(rule: &BenchRule) -> Result<usize, String> {
    let start =
        SeriesStart::parse_ical(&rule.dtstart, rule.tzid.as_deref()).map_err(|e| e.to_string())?;
    let dates = |values: &[String], property| {
        values
            .iter()
            .map(|value| RecurrenceDate::parse_ical(value, property))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    };
    let rdates = dates(&rule.rdates, RecurrenceProperty::Rdate)?;
    let exdates = dates(&rule.exdates, RecurrenceProperty::Exdate)?;
    let recurrence =
        Recurrence::new(start, &rule.rrules, &rdates, &exdates).map_err(|e| e.to_string())?;
    let mut query = match &rule.window {
        Some((from, to)) => ExpansionQuery::between(instant(from)?, instant(to)?),
        None => ExpansionQuery::from_series_start(),
    }
    .with_limits(ExpansionLimits {
        max_occurrences: 1_000_000,
        max_candidates: 50_000_000,
    });
    if let Some(limit) = rule.limit {
        query = query.with_max_occurrences(limit);
    }
    let expansion = recurrence.expand(&query);
    if expansion.truncated.is_some() && rule.limit.is_none() {
        return Err(format!("truncated: {:?}", expansion.truncated));
    }
    Ok(expansion.occurrences.len())
}

struct RustFigure {
    count: usize,
    micros: f64,
}

fn time_rust(rule: &BenchRule, iterations: u32) -> Result<RustFigure, String> {
    let count = expand_in_rust(rule)?;
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(expand_in_rust(std::hint::black_box(rule))?);
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    Ok(RustFigure { count, micros })
}

/// The interpreter and dateutil's version, or why the peer cannot run.
fn python_with_dateutil() -> Result<(String, String), String> {
    let python = std::env::var("POTENTIA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = Command::new(&python)
        .args([
            "-c",
            "import dateutil, zoneinfo; print(dateutil.__version__)",
        ])
        .output()
        .map_err(|e| format!("`{python}` cannot be run: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{python}` has no python-dateutil ({}); install it with `pip install python-dateutil`",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok((python, version))
}

fn run_python(
    python: &str,
    rules: &[BenchRule],
    iterations: u32,
) -> Result<std::collections::HashMap<String, PythonResult>, String> {
    let spec = serde_json::to_vec(&PythonSpec { iterations, rules })
        .map_err(|e| format!("cannot write the rules for Python: {e}"))?;
    let mut child = Command::new(python)
        .args(["-c", PYTHON_PEER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{python}`: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin for Python")?
        .write_all(&spec)
        .map_err(|e| format!("cannot send the rules to Python: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("Python did not finish: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the dateutil peer failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("bad output from Python: {e}"))
}

fn iterations_from_args() -> Result<u32, String> {
    let mut args = std::env::args().skip(1);
    let mut iterations = DEFAULT_ITERATIONS;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" | "-n" => {
                let value = args.next().ok_or("--iterations needs a number")?;
                iterations =
                    value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--iterations: `{value}` is not a positive number")
                    })?;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: [--iterations N]"
                ))
            }
        }
    }
    Ok(iterations)
}

fn main() {
    if let Err(message) = run() {
        eprintln!("bench_expansion: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let iterations = iterations_from_args()?;
    let mut rules = conformance_rules()?;
    let from_suite = rules.len();
    rules.extend(heavy_rules());

    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!("Recurrence expansion: potentia-calendar (Rust) vs python-dateutil");
    println!(
        "machine: {cores} cores available to this process (the project's build machine has 2 \
         cores shared with other work); one thread per side"
    );
    println!(
        "figures: µs per expansion (parse + validate + expand), mean of {iterations} runs after \
         a warm-up; ratio = dateutil / Rust"
    );
    if cfg!(debug_assertions) {
        println!("build: DEBUG — these numbers mean nothing; run with --release");
    } else {
        println!("build: release (opt-level 3)");
    }
    println!(
        "rules: {from_suite} conformance cases dateutil expands as we do, plus {} heavy ones",
        rules.len() - from_suite
    );

    let mut rust = Vec::with_capacity(rules.len());
    for rule in &rules {
        rust.push(time_rust(rule, iterations).map_err(|e| format!("{}: {e}", rule.name))?);
    }

    let python = match python_with_dateutil() {
        Ok((python, version)) => {
            println!("peer: python-dateutil {version} with zoneinfo, via `{python}`");
            Some(run_python(&python, &rules, iterations)?)
        }
        Err(reason) => {
            println!("peer: NOT RUN — {reason}; printing Rust figures only");
            None
        }
    };

    let name_width = rules
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(10)
        .max(30);
    println!();
    println!(
        "{:<name_width$}  {:>9}  {:>11}  {:>13}  {:>7}",
        "rule", "instances", "Rust µs", "dateutil µs", "ratio"
    );
    let mut mismatches = Vec::new();
    let (mut log_ratio_sum, mut compared) = (0.0_f64, 0_u32);
    // (Rust µs, dateutil µs, rules) for the conformance cases and the heavy rules.
    let mut totals = [(0.0_f64, 0.0_f64, 0_u32); 2];
    for (rule, figure) in rules.iter().zip(&rust) {
        let peer = python.as_ref().and_then(|results| results.get(&rule.name));
        let (python_micros, ratio) = match peer {
            Some(PythonResult {
                count: Some(count),
                micros: Some(micros),
                ..
            }) => {
                if *count != figure.count {
                    mismatches.push(format!(
                        "{}: Rust {} instances, dateutil {count}",
                        rule.name, figure.count
                    ));
                }
                let group = &mut totals[usize::from(rule.name.starts_with("heavy/"))];
                group.0 += figure.micros;
                group.1 += micros;
                group.2 += 1;
                log_ratio_sum += (micros / figure.micros).ln();
                compared += 1;
                (
                    format!("{micros:.1}"),
                    format!("{:.1}x", micros / figure.micros),
                )
            }
            Some(PythonResult {
                error: Some(error), ..
            }) => {
                mismatches.push(format!("{}: dateutil failed: {error}", rule.name));
                ("error".to_owned(), "-".to_owned())
            }
            _ => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<name_width$}  {:>9}  {:>11.1}  {:>13}  {:>7}",
            rule.name, figure.count, figure.micros, python_micros, ratio
        );
    }
    println!();
    if compared > 0 {
        let [suite, heavy] = totals;
        let all = (suite.0 + heavy.0, suite.1 + heavy.1, suite.2 + heavy.2);
        for (label, (rust_micros, python_micros, count)) in [
            ("total, conformance cases", suite),
            ("total, heavy rules", heavy),
            ("total, all rules", all),
        ] {
            if count > 0 {
                println!(
                    "{label:<name_width$}  {:>9}  {rust_micros:>11.1}  {python_micros:>13.1}  {:>6.1}x",
                    format!("{count} rules"),
                    python_micros / rust_micros
                );
            }
        }
        println!(
            "geometric mean of per-rule ratios (dateutil / Rust): {:.1}x",
            (log_ratio_sum / f64::from(compared)).exp()
        );
    } else {
        let total: f64 = rust.iter().map(|figure| figure.micros).sum();
        println!("Rust total (sum of per-rule times): {total:.1} µs");
    }
    if !mismatches.is_empty() {
        println!();
        println!(
            "!!!!!!!! MISMATCH: the two sides disagree on {} rule(s) !!!!!!!!",
            mismatches.len()
        );
        for mismatch in &mismatches {
            println!("!!! {mismatch}");
        }
        return Err(format!("{} mismatching rule(s)", mismatches.len()));
    }
    Ok(())
}
