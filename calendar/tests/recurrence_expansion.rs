//! Expansion behaviour: bounded work, the DST policy, floating and all-day series, and
//! identity of occurrences by original start.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use potentia_calendar::recurrence::{local_time_kind, MAX_COUNT};
use potentia_calendar::timezone::{parse_zone, LocalTimeKind};
use potentia_calendar::{
    ExpansionLimits, ExpansionQuery, Occurrence, OriginalStart, Recurrence, RecurrenceDate,
    RecurrenceProperty, SeriesStart, Truncation,
};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid instant")
        .with_timezone(&Utc)
}

fn local(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").expect("valid local time")
}

fn series(dtstart: &str, tzid: Option<&str>, rules: &[&str]) -> Recurrence {
    let start = SeriesStart::parse_ical(dtstart, tzid).expect("valid start");
    Recurrence::new(start, rules, &[], &[]).expect("valid series")
}

fn starts(occurrences: &[Occurrence]) -> Vec<String> {
    occurrences
        .iter()
        .map(|occurrence| match occurrence {
            Occurrence::Timed { start, .. } => start.format("%Y-%m-%dT%H:%MZ").to_string(),
            Occurrence::AllDay { date } => date.to_string(),
        })
        .collect()
}

/// Expansion work is bounded by counts (occurrences produced, candidates examined), which the
/// tests check; how long that work takes is the benchmark's business, not a test's.
fn bounded(expansion: &potentia_calendar::recurrence::Expansion) {
    assert!(
        expansion.candidates_examined <= ExpansionLimits::default().max_candidates,
        "examined {} candidates",
        expansion.candidates_examined
    );
}

#[test]
fn secondly_rule_over_a_year_is_truncated_by_its_limits() {
    let recurrence = series("20240101T000000", Some("UTC"), &["FREQ=SECONDLY"]);
    let query = ExpansionQuery::between(utc("2024-01-01T00:00:00Z"), utc("2025-01-01T00:00:00Z"));
    let expansion = recurrence.expand(&query);
    bounded(&expansion);
    assert_eq!(expansion.truncated, Some(Truncation::MaxOccurrences));
    assert_eq!(
        expansion.occurrences.len(),
        ExpansionLimits::default().max_occurrences
    );

    let unlimited_output = query.with_max_occurrences(usize::MAX);
    let expansion = recurrence.expand(&unlimited_output);
    bounded(&expansion);
    assert_eq!(expansion.truncated, Some(Truncation::MaxCandidates));
    assert_eq!(
        expansion.candidates_examined,
        ExpansionLimits::default().max_candidates
    );
}

#[test]
fn impossible_february_30_rule_terminates_with_only_dtstart() {
    for rule in [
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=MONTHLY;BYMONTH=4,6,9,11;BYMONTHDAY=31",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30;COUNT=5",
    ] {
        let recurrence = series("20240101T090000", Some("Europe/London"), &[rule]);
        let expansion = recurrence.expand(&ExpansionQuery::from_series_start());
        assert_eq!(
            starts(&expansion.occurrences),
            ["2024-01-01T09:00Z"],
            "{rule}"
        );
        assert_eq!(expansion.truncated, None, "{rule}");
        bounded(&expansion);
    }
}

#[test]
fn impossible_sub_daily_rule_is_bounded_by_the_window_or_reported() {
    let recurrence = series(
        "20240101T090000",
        Some("UTC"),
        &["FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30"],
    );
    let in_window = recurrence.expand(&ExpansionQuery::between(
        utc("2024-06-01T00:00:00Z"),
        utc("2034-06-01T00:00:00Z"),
    ));
    assert!(in_window.occurrences.is_empty());
    assert_eq!(
        in_window.truncated, None,
        "a skipped day costs one candidate"
    );
    assert!(in_window.candidates_examined < 10_000);

    let open_ended = recurrence.expand(&ExpansionQuery::from_series_start());
    assert_eq!(starts(&open_ended.occurrences), ["2024-01-01T09:00Z"]);
    assert_eq!(open_ended.truncated, Some(Truncation::MaxCandidates));
    bounded(&open_ended);
}

#[test]
fn hourly_rule_whose_interval_never_reaches_its_hour_is_bounded() {
    // From 00:00 every 2 hours only even hours come up; BYHOUR=3 is never reached.
    let recurrence = series(
        "20240101T000000",
        Some("UTC"),
        &["FREQ=HOURLY;INTERVAL=2;BYHOUR=3"],
    );
    let expansion = recurrence.expand(&ExpansionQuery::from_series_start());
    assert_eq!(expansion.occurrences.len(), 1, "only DTSTART");
    assert_eq!(expansion.truncated, Some(Truncation::MaxCandidates));
}

#[test]
fn candidate_cap_is_reported_even_before_the_window_starts() {
    // With COUNT, every occurrence from the start has to be counted to know the window's.
    let recurrence = series(
        "20000101T090000",
        Some("UTC"),
        &["FREQ=MINUTELY;COUNT=1000000"],
    );
    let expansion = recurrence.expand(
        &ExpansionQuery::between(utc("2001-06-01T00:00:00Z"), utc("2001-06-02T00:00:00Z"))
            .with_limits(ExpansionLimits {
                max_occurrences: 10_000,
                max_candidates: 50_000,
            }),
    );
    assert!(expansion.occurrences.is_empty());
    assert_eq!(expansion.truncated, Some(Truncation::MaxCandidates));
}

#[test]
fn rules_without_count_skip_ahead_to_a_distant_window() {
    for rule in [
        "FREQ=MINUTELY",
        "FREQ=DAILY",
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=TU",
    ] {
        let recurrence = series("19000101T090000", Some("Europe/London"), &[rule]);
        let expansion = recurrence.expand(
            &ExpansionQuery::between(utc("2030-01-01T00:00:00Z"), utc("2030-01-22T00:00:00Z"))
                .with_max_occurrences(50_000),
        );
        assert_eq!(expansion.truncated, None, "{rule}");
        assert!(!expansion.occurrences.is_empty(), "{rule}");
        assert!(
            expansion.candidates_examined < 40_000,
            "{rule}: {} candidates",
            expansion.candidates_examined
        );
    }
}

/// The window's occurrences, computed the slow way: everything from the series start up to
/// the window's end, then cut.
fn reference_expansion(recurrence: &Recurrence, window: &ExpansionQuery) -> Vec<Occurrence> {
    let from = window.from.expect("window start");
    let everything = recurrence.expand(&ExpansionQuery {
        from: None,
        limits: ExpansionLimits {
            max_occurrences: usize::MAX,
            max_candidates: 5_000_000,
        },
        ..*window
    });
    assert_eq!(everything.truncated, None);
    everything
        .occurrences
        .into_iter()
        .filter(|occurrence| match occurrence {
            Occurrence::Timed { start, .. } => *start >= from,
            Occurrence::AllDay { .. } => true,
        })
        .collect()
}

#[test]
fn skipping_ahead_gives_the_same_occurrences_as_expanding_from_the_start() {
    let rules = [
        "FREQ=DAILY",
        "FREQ=DAILY;INTERVAL=3",
        "FREQ=DAILY;INTERVAL=7;BYHOUR=8,20",
        "FREQ=WEEKLY",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=MO",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=SU",
        "FREQ=WEEKLY;INTERVAL=5;BYDAY=MO,FR;BYSETPOS=-1",
        "FREQ=MONTHLY",
        "FREQ=MONTHLY;INTERVAL=5",
        "FREQ=MONTHLY;INTERVAL=2;BYDAY=1SU,-1SU",
        "FREQ=MONTHLY;BYMONTHDAY=-1,15",
        "FREQ=MONTHLY;INTERVAL=18;BYMONTHDAY=10,11,12",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2",
        "FREQ=YEARLY",
        "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
        "FREQ=YEARLY;INTERVAL=3;BYYEARDAY=1,100,-1",
        "FREQ=YEARLY;BYWEEKNO=1,52,53;BYDAY=MO,SU",
        "FREQ=YEARLY;BYWEEKNO=-1;BYDAY=TH;WKST=SU",
        "FREQ=YEARLY;BYDAY=20MO",
        "FREQ=YEARLY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=HOURLY;INTERVAL=7",
        "FREQ=MINUTELY;INTERVAL=97;BYHOUR=9,10",
        "FREQ=DAILY;UNTIL=20291231T000000Z",
    ];
    let starts = ["20190131T093000", "20200229T000000", "20161230T231500"];
    let windows = [
        ("2027-12-20T00:00:00Z", "2028-03-10T00:00:00Z"),
        ("2029-12-25T00:00:00Z", "2030-01-08T00:00:00Z"),
        ("2021-02-27T00:00:00Z", "2021-04-02T00:00:00Z"),
    ];
    for rule in rules {
        for start in starts {
            let recurrence = series(start, Some("America/New_York"), &[rule]);
            for (from, to) in windows {
                let window = ExpansionQuery::between(utc(from), utc(to));
                let fast = recurrence.expand(&window);
                assert_eq!(fast.truncated, None);
                assert_eq!(
                    fast.occurrences,
                    reference_expansion(&recurrence, &window),
                    "{rule} from {start} in [{from}, {to})"
                );
            }
        }
    }
}

#[test]
fn an_infinite_rule_expands_any_window() {
    let recurrence = series("20000101T090000", Some("America/New_York"), &["FREQ=DAILY"]);
    assert!(recurrence.is_infinite());
    let expansion = recurrence.expand(&ExpansionQuery::between(
        utc("2040-07-01T00:00:00Z"),
        utc("2040-07-04T00:00:00Z"),
    ));
    assert_eq!(
        starts(&expansion.occurrences),
        [
            "2040-07-01T13:00Z",
            "2040-07-02T13:00Z",
            "2040-07-03T13:00Z"
        ]
    );
    assert_eq!(expansion.truncated, None);
}

#[test]
fn max_occurrences_truncates_only_when_more_exist() {
    let recurrence = series("20240101T090000", Some("UTC"), &["FREQ=DAILY;COUNT=10"]);
    let exact = recurrence.expand(&ExpansionQuery::from_series_start().with_max_occurrences(10));
    assert_eq!(exact.occurrences.len(), 10);
    assert_eq!(exact.truncated, None);
    let short = recurrence.expand(&ExpansionQuery::from_series_start().with_max_occurrences(9));
    assert_eq!(short.occurrences.len(), 9);
    assert_eq!(short.truncated, Some(Truncation::MaxOccurrences));
}

#[test]
fn the_largest_count_is_accepted_and_window_bounded() {
    let rule = format!("FREQ=DAILY;COUNT={MAX_COUNT}");
    let recurrence = series("20240101T090000", Some("UTC"), &[rule.as_str()]);
    let expansion = recurrence.expand(&ExpansionQuery::between(
        utc("2024-02-01T00:00:00Z"),
        utc("2024-02-03T00:00:00Z"),
    ));
    assert_eq!(expansion.occurrences.len(), 2);
}

#[test]
fn nonexistent_local_time_moves_forward_by_the_gap_and_keeps_its_original_start() {
    let recurrence = series(
        "20240309T023000",
        Some("America/New_York"),
        &["FREQ=DAILY;COUNT=3"],
    );
    let expansion = recurrence.expand(&ExpansionQuery::from_series_start());
    assert_eq!(
        expansion.occurrences[1],
        Occurrence::Timed {
            original_start: local("2024-03-10T02:30"),
            start: utc("2024-03-10T07:30:00Z"),
        },
        "02:30 does not exist on 10 March; 03:30 EDT is taken"
    );
    assert_eq!(
        expansion.occurrences[2].original_start(),
        OriginalStart::DateTime(local("2024-03-11T02:30"))
    );
}

#[test]
fn ambiguous_local_time_takes_the_first_instant() {
    let recurrence = series(
        "20241102T013000",
        Some("America/New_York"),
        &["FREQ=DAILY;COUNT=3"],
    );
    let expansion = recurrence.expand(&ExpansionQuery::from_series_start());
    assert_eq!(
        starts(&expansion.occurrences),
        [
            "2024-11-02T05:30Z",
            "2024-11-03T05:30Z",
            "2024-11-04T06:30Z"
        ],
        "01:30 on 3 November is taken in EDT"
    );
}

#[test]
fn sao_paulo_midnight_that_never_happened_becomes_one_in_the_morning() {
    let recurrence = series(
        "20181103T000000",
        Some("America/Sao_Paulo"),
        &["FREQ=DAILY;COUNT=3"],
    );
    let expansion = recurrence.expand(&ExpansionQuery::from_series_start());
    assert_eq!(
        starts(&expansion.occurrences),
        [
            "2018-11-03T03:00Z",
            "2018-11-04T03:00Z",
            "2018-11-05T02:00Z"
        ]
    );
}

#[test]
fn exdate_matches_the_original_start_even_when_it_was_shifted() {
    let start =
        SeriesStart::parse_ical("20240309T023000", Some("America/New_York")).expect("start");
    let exdate =
        RecurrenceDate::parse_ical("20240310T023000", RecurrenceProperty::Exdate).expect("exdate");
    let recurrence =
        Recurrence::new(start, &["FREQ=DAILY;COUNT=3"], &[], &[exdate]).expect("series");
    let expansion = recurrence.expand(&ExpansionQuery::from_series_start());
    assert_eq!(
        starts(&expansion.occurrences),
        ["2024-03-09T07:30Z", "2024-03-11T06:30Z"]
    );
}

#[test]
fn floating_series_is_read_in_the_callers_zone() {
    let recurrence = series("20240101T090000", None, &["FREQ=DAILY;COUNT=2"]);
    let in_london = recurrence.expand(
        &ExpansionQuery::from_series_start()
            .with_floating_zone(parse_zone("Europe/London").expect("zone")),
    );
    let in_tokyo = recurrence.expand(
        &ExpansionQuery::from_series_start()
            .with_floating_zone(parse_zone("Asia/Tokyo").expect("zone")),
    );
    assert_eq!(
        starts(&in_london.occurrences),
        ["2024-01-01T09:00Z", "2024-01-02T09:00Z"]
    );
    assert_eq!(
        starts(&in_tokyo.occurrences),
        ["2024-01-01T00:00Z", "2024-01-02T00:00Z"]
    );
    assert_eq!(
        in_london.occurrences[0].original_start(),
        in_tokyo.occurrences[0].original_start()
    );
}

#[test]
fn all_day_occurrences_are_dates() {
    let recurrence = series("20240229", None, &["FREQ=YEARLY;COUNT=2"]);
    let expansion = recurrence.expand(&ExpansionQuery::from_series_start());
    assert_eq!(
        expansion.occurrences,
        [
            Occurrence::AllDay {
                date: NaiveDate::from_ymd_opt(2024, 2, 29).expect("date")
            },
            Occurrence::AllDay {
                date: NaiveDate::from_ymd_opt(2028, 2, 29).expect("date")
            },
        ]
    );
}

#[test]
fn a_single_occurrence_series_has_just_its_start() {
    let start = SeriesStart::parse_ical("20240101T090000Z", None).expect("start");
    let expansion = Recurrence::single(start).expand(&ExpansionQuery::from_series_start());
    assert_eq!(starts(&expansion.occurrences), ["2024-01-01T09:00Z"]);
    assert!(!Recurrence::single(start).is_infinite());
}

#[test]
fn local_time_kind_flags_gaps_and_folds() {
    let new_york = parse_zone("America/New_York").expect("zone");
    assert!(matches!(
        local_time_kind(local("2024-03-10T02:30"), new_york),
        LocalTimeKind::InGap { .. }
    ));
    assert!(matches!(
        local_time_kind(local("2024-11-03T01:30"), new_york),
        LocalTimeKind::InFold { .. }
    ));
    assert_eq!(
        local_time_kind(local("2024-07-01T09:00"), new_york),
        LocalTimeKind::Unique
    );
}

#[test]
fn a_candidate_truncated_expansion_is_a_prefix_of_the_full_one() {
    let start = SeriesStart::parse_ical("20240101T090000", Some("Europe/London")).expect("start");
    let rdates = [
        RecurrenceDate::parse_ical("20240101T093000", RecurrenceProperty::Rdate).expect("rdate"),
        RecurrenceDate::parse_ical("20240103T120000", RecurrenceProperty::Rdate).expect("rdate"),
    ];
    let recurrence = Recurrence::new(
        start,
        &[
            "FREQ=HOURLY;INTERVAL=5",
            "FREQ=DAILY;BYHOUR=10,16",
            "FREQ=WEEKLY;BYDAY=TU,TH",
        ],
        &rdates,
        &[],
    )
    .expect("series");
    let window = ExpansionQuery::between(utc("2024-01-01T00:00:00Z"), utc("2024-01-06T00:00:00Z"));
    let full = recurrence.expand(&window);
    assert_eq!(full.truncated, None);
    for max_candidates in 0..=full.candidates_examined {
        let partial = recurrence.expand(&window.with_limits(ExpansionLimits {
            max_occurrences: 1_000,
            max_candidates,
        }));
        let expected_prefix = &full.occurrences[..partial.occurrences.len()];
        assert_eq!(
            partial.occurrences, expected_prefix,
            "budget {max_candidates}"
        );
        if partial.occurrences.len() < full.occurrences.len() {
            assert_eq!(partial.truncated, Some(Truncation::MaxCandidates));
        }
    }
}

#[test]
fn extreme_windows_and_the_end_of_the_calendar_do_not_panic() {
    let recurrence = series("20240101T090000", Some("Pacific/Apia"), &["FREQ=WEEKLY"]);
    let everything = ExpansionQuery::between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    assert_eq!(recurrence.expand(&everything).occurrences.len(), 5_000);

    for rule in [
        "FREQ=SECONDLY",
        "FREQ=DAILY",
        "FREQ=YEARLY;BYWEEKNO=53",
        "FREQ=MONTHLY;INTERVAL=10000",
    ] {
        let late = series("99991231T235959", Some("America/New_York"), &[rule]);
        let expansion = late.expand(&everything.with_max_occurrences(usize::MAX));
        assert!(!expansion.occurrences.is_empty(), "{rule}");
        bounded(&expansion);
    }
}
