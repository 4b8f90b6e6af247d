//! Bad input is refused with an error that names the problem, and no input panics.

use chrono::NaiveDate;
use potentia_calendar::recurrence::{Recurrence, RecurrenceDate, RecurrenceRule, SeriesStart};
use potentia_calendar::{CalendarError, RecurrenceProperty};

fn rule_error(text: &str) -> String {
    match RecurrenceRule::parse(text) {
        Ok(rule) => panic!("`{text}` was accepted as {rule}"),
        Err(error) => error.to_string(),
    }
}

fn zoned_start() -> SeriesStart {
    SeriesStart::parse_ical("20240101T090000", Some("America/New_York")).expect("valid start")
}

fn series_error(start: SeriesStart, rules: &[&str]) -> String {
    match Recurrence::new(start, rules, &[], &[]) {
        Ok(_) => panic!("{rules:?} was accepted"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_rule_without_freq_is_refused() {
    assert_eq!(rule_error("COUNT=3;BYDAY=MO"), "RRULE: FREQ is required");
}

#[test]
fn an_unknown_freq_is_refused_with_the_accepted_values() {
    assert_eq!(
        rule_error("FREQ=FORTNIGHTLY"),
        "RRULE: FREQ must be one of SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or \
         YEARLY, got `FORTNIGHTLY`"
    );
}

#[test]
fn garbage_in_byday_is_refused() {
    for (text, item) in [
        ("FREQ=WEEKLY;BYDAY=XX", "XX"),
        ("FREQ=WEEKLY;BYDAY=MO,,TU", ""),
        ("FREQ=MONTHLY;BYDAY=1", "1"),
        ("FREQ=MONTHLY;BYDAY=+-1MO", "+-1MO"),
        ("FREQ=MONTHLY;BYDAY=MONDAY", "MONDAY"),
        ("FREQ=MONTHLY;BYDAY=1ΜΟ", "1ΜΟ"),
    ] {
        let error = rule_error(text);
        assert!(
            error.starts_with(&format!("RRULE: BYDAY item `{item}` is not a weekday")),
            "{text}: {error}"
        );
    }
    assert_eq!(
        rule_error("FREQ=MONTHLY;BYDAY=0MO"),
        "RRULE: BYDAY item `0MO`: the number before the weekday must be between -53 and 53 and \
         not 0"
    );
}

#[test]
fn count_and_until_together_are_refused() {
    assert_eq!(
        rule_error("FREQ=DAILY;COUNT=3;UNTIL=20250101T000000Z"),
        "RRULE: COUNT and UNTIL must not both be given; use one of them"
    );
}

#[test]
fn until_before_dtstart_is_refused() {
    assert_eq!(
        series_error(zoned_start(), &["FREQ=DAILY;UNTIL=20231231T000000Z"]),
        "RRULE: UNTIL (20231231T000000Z) is before DTSTART (20240101T090000); the rule would \
         add no occurrences"
    );
    let all_day = SeriesStart::AllDay(NaiveDate::from_ymd_opt(2024, 1, 10).expect("date"));
    assert!(series_error(all_day, &["FREQ=DAILY;UNTIL=20240109"]).contains("before DTSTART"));
}

#[test]
fn until_that_is_not_a_date_or_date_time_is_refused() {
    for value in [
        "2024-01-01",
        "20240231",
        "20240101T250000Z",
        "tomorrow",
        "20240101T0900",
    ] {
        let error = rule_error(&format!("FREQ=DAILY;UNTIL={value}"));
        assert!(
            error.starts_with("RRULE: UNTIL must be a date (YYYYMMDD) or a date-time"),
            "{value}: {error}"
        );
    }
}

#[test]
fn zero_negative_and_non_numeric_intervals_are_refused() {
    for value in ["0", "-1", "+0", "two", "1.5", ""] {
        let error = rule_error(&format!("FREQ=DAILY;INTERVAL={value}"));
        if value.is_empty() {
            assert_eq!(error, "RRULE: INTERVAL has an empty value");
        } else {
            assert_eq!(
                error,
                format!("RRULE: INTERVAL must be a whole number from 1 to 10000, got `{value}`")
            );
        }
    }
}

#[test]
fn huge_numbers_are_refused_not_wrapped() {
    assert!(rule_error("FREQ=DAILY;INTERVAL=4294967297").contains("INTERVAL must be"));
    assert!(rule_error("FREQ=DAILY;INTERVAL=10001").contains("from 1 to 10000"));
    assert!(rule_error("FREQ=DAILY;COUNT=99999999999").contains("COUNT must be"));
    assert!(rule_error("FREQ=DAILY;COUNT=1000001").contains("from 1 to 1000000"));
    assert!(rule_error("FREQ=DAILY;COUNT=0").contains("COUNT must be"));
    assert!(rule_error("FREQ=MONTHLY;BYMONTHDAY=99999999999999999999").contains("BYMONTHDAY"));
    assert!(rule_error("FREQ=YEARLY;BYYEARDAY=367").contains("BYYEARDAY values"));
    assert!(rule_error("FREQ=YEARLY;BYDAY=99MO").contains("between -53 and 53"));
}

#[test]
fn out_of_range_by_parts_name_the_part_and_its_range() {
    assert_eq!(
        rule_error("FREQ=MONTHLY;BYMONTHDAY=32"),
        "RRULE: BYMONTHDAY values must be between -31 and 31 and not 0, got `32`"
    );
    assert_eq!(
        rule_error("FREQ=MONTHLY;BYMONTHDAY=0"),
        "RRULE: BYMONTHDAY values must be between -31 and 31 and not 0, got `0`"
    );
    assert_eq!(
        rule_error("FREQ=YEARLY;BYMONTH=13"),
        "RRULE: BYMONTH values must be from 1 to 12, got `13`"
    );
    assert_eq!(
        rule_error("FREQ=DAILY;BYHOUR=24"),
        "RRULE: BYHOUR values must be from 0 to 23, got `24`"
    );
    assert_eq!(
        rule_error("FREQ=DAILY;BYSECOND=60"),
        "RRULE: BYSECOND values must be from 0 to 59, got `60` (leap seconds are not supported)"
    );
    assert_eq!(
        rule_error("FREQ=YEARLY;BYWEEKNO=54"),
        "RRULE: BYWEEKNO values must be between -53 and 53 and not 0, got `54`"
    );
    assert!(rule_error("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0").contains("BYSETPOS values"));
    assert_eq!(
        rule_error("FREQ=MONTHLY;BYMONTHDAY=1,x"),
        "RRULE: BYMONTHDAY must be a comma-separated list of whole numbers between -31 and 31 \
         and not 0, got `1,x`"
    );
}

#[test]
fn by_parts_the_frequency_does_not_allow_are_refused() {
    assert_eq!(
        rule_error("FREQ=WEEKLY;BYMONTHDAY=1"),
        "RRULE: BYMONTHDAY cannot be used with FREQ=WEEKLY"
    );
    assert_eq!(
        rule_error("FREQ=DAILY;BYYEARDAY=1"),
        "RRULE: BYYEARDAY cannot be used with FREQ=DAILY"
    );
    assert_eq!(
        rule_error("FREQ=MONTHLY;BYWEEKNO=1"),
        "RRULE: BYWEEKNO can only be used with FREQ=YEARLY, not FREQ=MONTHLY"
    );
    assert!(rule_error("FREQ=WEEKLY;BYDAY=1MO").contains("only be used with FREQ=MONTHLY or"));
    assert!(rule_error("FREQ=YEARLY;BYWEEKNO=1;BYDAY=1MO").contains("cannot be combined"));
    assert!(rule_error("FREQ=MONTHLY;BYDAY=6MO").contains("never occurs"));
    assert!(rule_error("FREQ=MONTHLY;BYDAY=-5MO").contains("not supported"));
    assert_eq!(
        rule_error("FREQ=MONTHLY;BYSETPOS=1"),
        "RRULE: BYSETPOS needs another BYxxx part (such as BYDAY) to choose from"
    );
    assert!(rule_error("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=40").contains("-31 to 31"));
}

#[test]
fn empty_and_structurally_broken_rules_are_refused() {
    let empty = "RRULE: the rule is empty; expected something like FREQ=WEEKLY;BYDAY=MO";
    assert_eq!(rule_error(""), empty);
    assert_eq!(rule_error("   "), empty);
    assert_eq!(rule_error("RRULE:"), empty);
    assert_eq!(rule_error(";;"), empty);
    assert_eq!(
        rule_error("FREQ=DAILY;COUNT"),
        "RRULE: `COUNT` is not a NAME=VALUE part"
    );
    assert_eq!(
        rule_error("FREQ=DAILY;FREQ=WEEKLY"),
        "RRULE: FREQ is given more than once"
    );
    assert!(rule_error("FREQ=DAILY;X-FOO=1").starts_with("RRULE: unknown part `X-FOO`"));
    assert!(rule_error("FREQ=DAILY;BYEASTER=0").starts_with("RRULE: unknown part `BYEASTER`"));
    assert!(rule_error("FREQ=DAILY;COUNT=3;X").contains("NAME=VALUE"));
    let long = format!("FREQ=DAILY;BYHOUR={}", "1,".repeat(2_000));
    assert!(rule_error(&long).contains("at most 2000"));
}

#[test]
fn case_and_surrounding_whitespace_are_forgiven_but_inner_spaces_are_not() {
    let rule = RecurrenceRule::parse("  rrule:freq=weekly; byday = mo , we ;count=4; wkst=su ;")
        .expect("lenient form is accepted");
    assert_eq!(rule.to_string(), "FREQ=WEEKLY;COUNT=4;BYDAY=MO,WE;WKST=SU");
    assert!(rule_error("FREQ=MONTHLY;BYMONTHDAY=1 5").contains("BYMONTHDAY must be"));
    assert!(rule_error("FREQ=DA ILY").contains("FREQ must be one of"));
}

#[test]
fn canonical_text_round_trips() {
    for text in [
        "FREQ=YEARLY;UNTIL=20300101T000000Z;INTERVAL=2;BYDAY=1SU,-1SU;BYMONTH=3,11",
        "FREQ=MONTHLY;COUNT=10;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2",
        "FREQ=HOURLY;UNTIL=20240101;BYSECOND=0,30;BYMINUTE=15;BYHOUR=9,17",
        "FREQ=YEARLY;BYYEARDAY=-1,1;BYWEEKNO=20;WKST=SU",
    ] {
        let rule = RecurrenceRule::parse(text).expect("valid rule");
        assert_eq!(rule.to_string(), text);
        assert_eq!(RecurrenceRule::parse(&rule.to_string()), Ok(rule));
    }
}

#[test]
fn all_day_series_refuse_time_of_day_rules() {
    let all_day = SeriesStart::parse_ical("20240101", None).expect("date start");
    assert_eq!(
        series_error(all_day, &["FREQ=HOURLY"]),
        "RRULE: FREQ=HOURLY needs a start with a time of day, but this series is all-day \
         (DTSTART is a date)"
    );
    assert!(series_error(all_day, &["FREQ=DAILY;BYHOUR=9"]).contains("all-day"));
}

#[test]
fn rdates_and_exdates_must_suit_the_series() {
    let date = RecurrenceDate::parse_ical("20240105", RecurrenceProperty::Rdate).expect("date");
    let error = Recurrence::new(zoned_start(), &["FREQ=DAILY"], &[date], &[])
        .expect_err("a date RDATE on a timed series");
    assert_eq!(error.field(), Some("rdate"));
    assert!(error.to_string().starts_with("RDATE: `20240105` is a date"));

    let floating = SeriesStart::parse_ical("20240101T090000", None).expect("floating");
    let utc =
        RecurrenceDate::parse_ical("20240105T090000Z", RecurrenceProperty::Exdate).expect("utc");
    let error = Recurrence::new(floating, &["FREQ=DAILY"], &[], &[utc])
        .expect_err("a UTC EXDATE on a floating series");
    assert!(error
        .to_string()
        .starts_with("EXDATE: `20240105T090000Z` is a UTC time"));

    let all_day = SeriesStart::parse_ical("20240101", None).expect("date start");
    let local =
        RecurrenceDate::parse_ical("20240105T090000", RecurrenceProperty::Exdate).expect("local");
    let error = Recurrence::new(all_day, &["FREQ=DAILY"], &[], &[local])
        .expect_err("a date-time EXDATE on an all-day series");
    assert!(error
        .to_string()
        .starts_with("EXDATE: this series is all-day"));

    assert_eq!(
        RecurrenceDate::parse_ical("2024-01-05", RecurrenceProperty::Rdate)
            .expect_err("bad value")
            .to_string(),
        "RDATE: expected a date (YYYYMMDD) or a date-time (YYYYMMDDTHHMMSS, optionally ending \
         in Z), got `2024-01-05`"
    );
}

#[test]
fn bad_dtstart_values_are_refused() {
    assert!(SeriesStart::parse_ical("20240230", None)
        .expect_err("no 30 February")
        .to_string()
        .starts_with("DTSTART: `20240230` is not a valid date"));
    assert!(SeriesStart::parse_ical("2024-01-01T09:00", None)
        .expect_err("extended format")
        .to_string()
        .starts_with("DTSTART: expected a date"));
    assert!(
        SeriesStart::parse_ical("20240101T090000Z", Some("Europe/London"))
            .expect_err("Z with TZID")
            .to_string()
            .contains("a TZID (Europe/London) was also given")
    );
    let unknown = SeriesStart::parse_ical("20240101T090000", Some("Europe/Atlantis"))
        .expect_err("unknown zone");
    assert_eq!(
        unknown,
        CalendarError::UnknownTimeZone {
            name: "Europe/Atlantis".into()
        }
    );
    assert_eq!(unknown.code(), "unknown_time_zone");
    let year_zero = SeriesStart::parse_ical("00000101T090000", Some("UTC")).expect("parses");
    assert!(Recurrence::new(year_zero, &["FREQ=DAILY"], &[], &[])
        .expect_err("year 0")
        .to_string()
        .contains("between 1 and 9999"));
}

#[test]
fn too_many_rules_or_dates_are_refused() {
    let rules = vec!["FREQ=DAILY"; 11];
    assert!(series_error(zoned_start(), &rules).contains("at most 10"));
    let dates = vec![
        RecurrenceDate::Local(
            NaiveDate::from_ymd_opt(2024, 2, 1)
                .and_then(|d| d.and_hms_opt(9, 0, 0))
                .expect("date")
        );
        10_001
    ];
    let error =
        Recurrence::new(zoned_start(), &["FREQ=DAILY"], &dates, &[]).expect_err("too many RDATEs");
    assert!(error.to_string().starts_with("RDATE: 10001 values given"));
}

#[test]
fn errors_carry_a_code_and_the_offending_field() {
    let error = RecurrenceRule::parse("FREQ=NEVER").expect_err("bad");
    assert_eq!(error.code(), "invalid_recurrence");
    assert_eq!(error.field(), Some("rrule"));
}

#[test]
fn no_input_string_panics() {
    let fragments = [
        "FREQ=",
        "DAILY",
        "YEARLY",
        "SECONDLY",
        ";",
        "=",
        ",",
        "BYDAY=",
        "-1MO",
        "53SU",
        "+",
        "-",
        "BYSETPOS=",
        "-366",
        "COUNT=",
        "0",
        "4294967296",
        "UNTIL=",
        "20240101",
        "T",
        "Z",
        "é",
        "ü",
        "\u{0}",
        "\n",
        " ",
        "RRULE:",
        "BYMONTHDAY=",
        "-31",
        "31",
        "BYWEEKNO=",
        "INTERVAL=",
        "WKST=",
        "MO",
        "99999999999999999999999",
        "BYHOUR=",
        "BYYEARDAY=",
        "🙂",
        "\u{200b}",
    ];
    // A deterministic walk through many combinations of fragments.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        let mut text = String::new();
        let length = (state % 12) as usize;
        for _ in 0..length {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(fragments[(state % fragments.len() as u64) as usize]);
        }
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        if let Ok(rule) = RecurrenceRule::parse(&text) {
            // Whatever parses must also build and expand without panicking.
            if let Ok(recurrence) = Recurrence::new(zoned_start(), &[text.as_str()], &[], &[]) {
                let query = potentia_calendar::ExpansionQuery::from_series_start().with_limits(
                    potentia_calendar::ExpansionLimits {
                        max_occurrences: 20,
                        max_candidates: 2_000,
                    },
                );
                let _ = recurrence.expand(&query);
            }
            let _ = rule.to_string();
        }
        for value in [
            text.as_str(),
            "",
            "2",
            "20240101T",
            "20241301",
            "20240101t000000z",
        ] {
            let _ = SeriesStart::parse_ical(value, Some(&text));
            let _ = RecurrenceDate::parse_ical_list(value, RecurrenceProperty::Exdate);
        }
    }
}
