//! Runs the recurrence conformance suite in `tests/conformance/cases.json`.
//!
//! Each case is a series (start, rules, added and excluded dates), a window or a first-N limit,
//! and the expected occurrences: UTC instants and original local starts for timed series, dates
//! for all-day series. How the data was made and how to read a case: `tests/conformance/README.md`.
//! Every failing case is reported by name; the test fails if any case does.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use potentia_calendar::recurrence::{
    ExpansionQuery, Occurrence, Recurrence, RecurrenceDate, SeriesStart,
};
use potentia_calendar::timezone::parse_zone;
use potentia_calendar::RecurrenceProperty;
use serde::Deserialize;

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
    category: String,
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
    expected: Vec<String>,
    expected_local: Option<Vec<String>>,
}

fn load_suite() -> Suite {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/cases.json");
    let text = std::fs::read_to_string(path).expect("cases.json is readable");
    serde_json::from_str(&text).expect("cases.json matches the case format")
}

fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| format!("bad instant `{text}` in case: {error}"))
}

/// Expands one case; returns (instants or dates, original local starts).
fn run_case(case: &Case) -> Result<(Vec<String>, Vec<String>), String> {
    let start = SeriesStart::parse_ical(&case.dtstart, case.tzid.as_deref())
        .map_err(|error| format!("DTSTART rejected: {error}"))?;
    let parse_dates = |values: &[String], property| {
        values
            .iter()
            .map(|value| RecurrenceDate::parse_ical(value, property))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("date rejected: {error}"))
    };
    let rdates = parse_dates(&case.rdates, RecurrenceProperty::Rdate)?;
    let exdates = parse_dates(&case.exdates, RecurrenceProperty::Exdate)?;
    let recurrence = Recurrence::new(start, &case.rrules, &rdates, &exdates)
        .map_err(|error| format!("recurrence rejected: {error}"))?;

    let mut query = match &case.window {
        Some(window) => ExpansionQuery::between(instant(&window.from)?, instant(&window.to)?),
        None => ExpansionQuery::from_series_start(),
    };
    if let Some(limit) = case.limit {
        query = query.with_max_occurrences(limit);
    }
    if let Some(zone) = &case.view_zone {
        query = query.with_floating_zone(parse_zone(zone).map_err(|e| e.to_string())?);
    }
    let expansion = recurrence.expand(&query);
    if let Some(truncation) = expansion.truncated {
        if case.limit.is_none() {
            return Err(format!("expansion truncated unexpectedly: {truncation:?}"));
        }
    }
    let mut starts = Vec::new();
    let mut locals = Vec::new();
    for occurrence in &expansion.occurrences {
        match occurrence {
            Occurrence::Timed {
                original_start,
                start,
            } => {
                starts.push(start.format("%Y-%m-%dT%H:%M:%SZ").to_string());
                locals.push(original_start.format("%Y-%m-%dT%H:%M:%S").to_string());
            }
            Occurrence::AllDay { date } => starts.push(date.format("%Y-%m-%d").to_string()),
        }
    }
    Ok((starts, locals))
}

fn describe_mismatch(what: &str, expected: &[String], actual: &[String]) -> String {
    let first_difference = expected
        .iter()
        .zip(actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    format!(
        "{what}: expected {} values, got {}; first difference at index {first_difference}: \
         expected {:?}, got {:?}",
        expected.len(),
        actual.len(),
        expected.get(first_difference),
        actual.get(first_difference)
    )
}

#[test]
fn every_conformance_case_expands_to_its_expected_occurrences() {
    let suite = load_suite();
    let mut failures = Vec::new();
    for case in &suite.cases {
        match run_case(case) {
            Err(error) => failures.push(format!("[{}] {}", case.name, error)),
            Ok((starts, locals)) => {
                if starts != case.expected {
                    failures.push(format!(
                        "[{}] {}",
                        case.name,
                        describe_mismatch("starts", &case.expected, &starts)
                    ));
                } else if let Some(expected_local) = &case.expected_local {
                    if &locals != expected_local {
                        failures.push(format!(
                            "[{}] {}",
                            case.name,
                            describe_mismatch("original local starts", expected_local, &locals)
                        ));
                    }
                }
            }
        }
    }
    let passed = suite.cases.len() - failures.len();
    println!(
        "recurrence conformance: {passed} of {} cases pass",
        suite.cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        suite.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_suite_has_at_least_150_uniquely_named_cases_covering_every_category() {
    let suite = load_suite();
    assert!(suite.cases.len() >= 150, "only {} cases", suite.cases.len());
    let mut names = HashSet::new();
    for case in &suite.cases {
        assert!(
            names.insert(case.name.as_str()),
            "duplicate case name {}",
            case.name
        );
        assert!(
            case.window.is_some() || case.limit.is_some(),
            "case {} has neither a window nor a limit",
            case.name
        );
    }
    let categories: HashSet<&str> = suite.cases.iter().map(|c| c.category.as_str()).collect();
    for required in [
        "rfc5545",
        "bysetpos",
        "leap-day",
        "month-end",
        "wkst",
        "until",
        "count",
        "interval",
        "byweekno",
        "byyearday",
        "rdate-exdate",
        "dst-new-york",
        "dst-london",
        "dst-sao-paulo",
    ] {
        assert!(
            categories.contains(required),
            "no case in category {required}"
        );
    }
}
