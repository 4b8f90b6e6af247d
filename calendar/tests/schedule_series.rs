//! Schedules as stored: window expansion with durations, occurrence lookup and splits.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use potentia_calendar::schedule::{parse_original_start, Series, Timing};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn local(text: &str) -> NaiveDateTime {
    parse_original_start(text).unwrap()
}

fn weekly_nine_am_new_york(rule: &str) -> Series {
    Series::new(
        Timing::Timed {
            start: utc("2026-03-02T14:00:00Z"),
            end: utc("2026-03-02T15:00:00Z"),
            zone: Tz::America__New_York,
        },
        &[rule],
        &[],
        &[],
    )
    .unwrap()
}

#[test]
fn a_window_keeps_the_wall_clock_time_and_the_exact_duration_across_dst() {
    let series = weekly_nine_am_new_york("FREQ=WEEKLY;COUNT=3");
    let window = series.expand_window(
        utc("2026-01-01T00:00:00Z"),
        utc("2027-01-01T00:00:00Z"),
        Tz::UTC,
    );
    let starts: Vec<_> = window.instances.iter().map(|i| (i.start, i.end)).collect();
    assert_eq!(
        starts,
        [
            (utc("2026-03-02T14:00:00Z"), utc("2026-03-02T15:00:00Z")),
            (utc("2026-03-09T13:00:00Z"), utc("2026-03-09T14:00:00Z")),
            (utc("2026-03-16T13:00:00Z"), utc("2026-03-16T14:00:00Z")),
        ]
    );
    assert!(window.complete_until.is_none());
    assert_eq!(
        window.instances[1].original_start,
        local("2026-03-09T09:00:00")
    );
}

#[test]
fn all_day_occurrences_are_placed_at_the_placement_zones_midnight() {
    let series = Series::new(
        Timing::AllDay {
            start: NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
            end: NaiveDate::from_ymd_opt(2026, 7, 3).unwrap(),
        },
        &["FREQ=MONTHLY;COUNT=2"],
        &[],
        &[],
    )
    .unwrap();
    let window = series.expand_window(
        utc("2026-01-01T00:00:00Z"),
        utc("2027-01-01T00:00:00Z"),
        Tz::Europe__Paris,
    );
    assert_eq!(window.instances.len(), 2);
    assert_eq!(window.instances[1].start, utc("2026-07-31T22:00:00Z"));
    assert_eq!(window.instances[1].end, utc("2026-08-02T22:00:00Z"));
}

#[test]
fn an_occurrence_is_found_by_its_original_start_and_other_times_are_not() {
    let series = weekly_nine_am_new_york("FREQ=WEEKLY");
    assert!(series
        .occurrence_at(local("2026-04-06T09:00:00"), Tz::UTC)
        .is_some());
    assert!(series
        .occurrence_at(local("2026-04-06T10:00:00"), Tz::UTC)
        .is_none());
    assert!(series
        .occurrence_at(local("2026-04-07T09:00:00"), Tz::UTC)
        .is_none());
}

#[test]
fn splitting_a_counted_series_shares_the_count_between_the_parts() {
    let series = weekly_nine_am_new_york("FREQ=WEEKLY;COUNT=10");
    let (head, tail) = series
        .split(local("2026-03-23T09:00:00"), Tz::UTC, None)
        .unwrap();
    let all = |s: &Series| {
        s.expand_window(
            utc("2026-01-01T00:00:00Z"),
            utc("2027-01-01T00:00:00Z"),
            Tz::UTC,
        )
        .instances
        .len()
    };
    assert_eq!(all(&head), 3);
    assert_eq!(all(&tail), 7);
    assert_eq!(tail.first_start(Tz::UTC), utc("2026-03-23T13:00:00Z"));
    assert_eq!(tail.rrule_texts(), ["FREQ=WEEKLY;COUNT=7"]);
}

#[test]
fn splitting_an_open_series_ends_the_first_part_before_the_split_occurrence() {
    let series = weekly_nine_am_new_york("FREQ=WEEKLY");
    let (head, tail) = series
        .split(local("2026-03-23T09:00:00"), Tz::UTC, None)
        .unwrap();
    assert_eq!(head.rrule_texts(), ["FREQ=WEEKLY;UNTIL=20260323T085959"]);
    assert!(tail.recurrence().is_infinite());
    assert!(head.series_end(Tz::UTC).is_some());
}

#[test]
fn splitting_at_the_first_occurrence_or_a_non_occurrence_is_refused() {
    let series = weekly_nine_am_new_york("FREQ=WEEKLY");
    assert!(series
        .split(local("2026-03-02T09:00:00"), Tz::UTC, None)
        .is_err());
    assert!(series
        .split(local("2026-03-03T09:00:00"), Tz::UTC, None)
        .is_err());
}

#[test]
fn rules_that_repeat_more_often_than_hourly_are_refused_for_storage() {
    for rule in [
        "FREQ=SECONDLY",
        "FREQ=SECONDLY;INTERVAL=3599",
        "FREQ=MINUTELY;INTERVAL=59",
        "FREQ=HOURLY;BYMINUTE=0,30",
        "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0,1",
    ] {
        let error = weekly_nine_am_new_york(rule)
            .check_density()
            .expect_err(rule);
        assert_eq!(error.code(), "invalid_recurrence", "{rule}");
        assert!(
            error.to_string().contains("once an hour"),
            "{rule}: {error}"
        );
    }
}

#[test]
fn hourly_and_slower_rules_are_stored() {
    for rule in [
        "FREQ=HOURLY",
        "FREQ=MINUTELY;INTERVAL=60",
        "FREQ=SECONDLY;INTERVAL=3600",
        "FREQ=DAILY;BYHOUR=9,12,17;BYMINUTE=30",
        "FREQ=WEEKLY;BYDAY=MO,WE",
    ] {
        assert!(
            weekly_nine_am_new_york(rule).check_density().is_ok(),
            "{rule}"
        );
    }
}
