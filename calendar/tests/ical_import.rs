//! iCalendar import: real-world-shaped files (Google, Outlook, Apple) under
//! `tests/fixtures/`, and malformed or oversized input, which must give clear errors and never
//! panic.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use potentia_calendar::event::{AttendeeRole, EventStatus, ParticipationStatus, Transparency};
use potentia_calendar::ical::{
    self, Event, EventEnd, IcalDuration, ImportReport, MAX_EVENTS, MAX_INPUT_BYTES, MAX_LINE_BYTES,
    MAX_NESTING,
};
use potentia_calendar::{CalendarError, ExpansionQuery, Occurrence, OriginalStart, SeriesStart};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

fn import_fixture(name: &str) -> ImportReport {
    ical::import(&fixture(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid instant")
        .with_timezone(&Utc)
}

fn local(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").expect("valid local time")
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("valid date")
}

fn zone(name: &str) -> Tz {
    name.parse().expect("valid zone")
}

fn zoned(text: &str, zone_name: &str) -> SeriesStart {
    SeriesStart::Zoned {
        local: local(text),
        zone: zone(zone_name),
    }
}

fn event<'a>(report: &'a ImportReport, summary: &str) -> &'a Event {
    report
        .calendar
        .events
        .iter()
        .find(|event| event.summary.as_deref() == Some(summary))
        .unwrap_or_else(|| panic!("no event `{summary}` in {:#?}", report.calendar.events))
}

fn timed_starts(event: &Event, from: &str, to: &str) -> Vec<DateTime<Utc>> {
    let recurrence = event.recurrence.as_ref().expect("a recurring event");
    recurrence
        .expand(&ExpansionQuery::between(utc(from), utc(to)))
        .occurrences
        .iter()
        .map(|occurrence| match occurrence {
            Occurrence::Timed { start, .. } => *start,
            Occurrence::AllDay { .. } => panic!("expected timed occurrences"),
        })
        .collect()
}

fn wrap(body: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n{body}END:VCALENDAR\r\n")
}

fn vevent(uid: &str, extra: &str) -> String {
    format!("BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n{extra}END:VEVENT\r\n")
}

// ---------------------------------------------------------------------------------------------
// Google Calendar

#[test]
fn google_export_reads_calendar_name_zone_and_every_event() {
    let report = import_fixture("google_calendar_export.ics");
    assert_eq!(report.calendar.name.as_deref(), Some("Team Calendar"));
    assert_eq!(report.calendar.time_zone, Some(zone("Europe/London")));
    assert_eq!(report.calendar.events.len(), 6);
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

#[test]
fn google_weekly_series_keeps_rule_exdates_guests_and_unescaped_text() {
    let report = import_fixture("google_calendar_export.ics");
    let standup = event(&report, "Standup");
    assert_eq!(standup.uid, "7kukuqrfedlm2f9t1h4d1rllvm@google.com");
    assert_eq!(standup.sequence, 2);
    assert_eq!(standup.start, zoned("2024-01-08T10:00", "Europe/London"));
    assert_eq!(
        standup.end,
        Some(EventEnd::At(zoned("2024-01-08T10:15", "Europe/London")))
    );
    assert_eq!(standup.status, Some(EventStatus::Confirmed));
    assert_eq!(standup.location.as_deref(), Some(""));
    let description = standup.description.as_deref().expect("description");
    assert!(description.starts_with("Quick sync, three times a week.\n\nJoin with Google Meet:"));
    assert!(description.contains("https://support.google.com/a/users/answer/9282720"));

    // EXDATEs on two lines, the second a list, remove 10, 12 and 15 January.
    let starts = timed_starts(standup, "2024-01-08T00:00:00Z", "2024-01-20T00:00:00Z");
    assert_eq!(
        starts,
        [
            utc("2024-01-08T10:00:00Z"),
            utc("2024-01-17T10:00:00Z"),
            utc("2024-01-19T10:00:00Z"),
        ]
    );

    let organizer = standup.organizer.as_ref().expect("organizer");
    assert_eq!(organizer.email(), Some("alice@example.com"));
    assert_eq!(organizer.common_name.as_deref(), Some("Alice Example"));
    let guests: Vec<(Option<&str>, AttendeeRole, ParticipationStatus)> = standup
        .attendees
        .iter()
        .map(|a| (a.email(), a.role, a.participation))
        .collect();
    assert_eq!(
        guests,
        [
            (
                Some("alice@example.com"),
                AttendeeRole::Required,
                ParticipationStatus::Accepted
            ),
            (
                Some("bob@example.com"),
                AttendeeRole::Optional,
                ParticipationStatus::Declined
            ),
            (
                Some("carol@example.com"),
                AttendeeRole::Required,
                ParticipationStatus::NeedsAction
            ),
        ]
    );
}

#[test]
fn google_moved_instance_is_an_exception_keyed_by_its_original_start() {
    let report = import_fixture("google_calendar_export.ics");
    let moved = event(&report, "Standup (moved)");
    assert_eq!(moved.uid, "7kukuqrfedlm2f9t1h4d1rllvm@google.com");
    let recurrence_id = moved.recurrence_id.expect("an exception");
    assert_eq!(
        recurrence_id.original_start,
        OriginalStart::DateTime(local("2024-01-17T10:00"))
    );
    assert!(!recurrence_id.this_and_future);
    assert_eq!(moved.start, zoned("2024-01-17T11:30", "Europe/London"));

    // The key matches the occurrence the series produces.
    let standup = event(&report, "Standup");
    let occurrences = standup
        .recurrence
        .as_ref()
        .expect("series")
        .expand(&ExpansionQuery::between(
            utc("2024-01-17T00:00:00Z"),
            utc("2024-01-18T00:00:00Z"),
        ))
        .occurrences;
    assert_eq!(
        occurrences[0].original_start(),
        recurrence_id.original_start
    );
}

#[test]
fn google_all_day_utc_cancelled_and_tentative_events_keep_their_kinds() {
    let report = import_fixture("google_calendar_export.ics");
    let offsite = event(&report, "Team offsite");
    assert_eq!(offsite.start, SeriesStart::AllDay(date("2024-03-25")));
    assert_eq!(
        offsite.end,
        Some(EventEnd::At(SeriesStart::AllDay(date("2024-03-27"))))
    );
    assert_eq!(offsite.transparency, Transparency::Transparent);
    assert!(offsite.recurrence.is_none());

    let call = event(&report, "Vendor call");
    assert_eq!(call.start, zoned("2024-02-15T16:00", "UTC"));
    assert_eq!(call.status, Some(EventStatus::Cancelled));

    let birthday = event(&report, "Sam's birthday");
    let occurrences = birthday
        .recurrence
        .as_ref()
        .expect("yearly")
        .expand(&ExpansionQuery::between(
            utc("2024-01-01T00:00:00Z"),
            utc("2025-01-01T00:00:00Z"),
        ))
        .occurrences;
    assert_eq!(
        occurrences,
        [Occurrence::AllDay {
            date: date("2024-06-12")
        }]
    );

    let review = event(&report, "Monthly review (New York office)");
    assert_eq!(review.status, Some(EventStatus::Tentative));
    let starts = timed_starts(review, "2024-01-01T00:00:00Z", "2025-06-01T00:00:00Z");
    assert_eq!(starts.len(), 10, "second Mondays from March to December");
    assert_eq!(starts[0], utc("2024-03-11T13:00:00Z"), "09:00 EDT");
    assert_eq!(starts[8], utc("2024-11-11T14:00:00Z"), "09:00 EST");
}

// ---------------------------------------------------------------------------------------------
// Outlook / Exchange

#[test]
fn outlook_windows_tzids_map_to_iana_zones() {
    let report = import_fixture("outlook_windows_tzids.ics");
    let sync = event(&report, "Weekly sync");
    assert_eq!(sync.start, zoned("2024-01-02T10:00", "America/New_York"));
    let berlin = event(&report, "Quarterly planning (Berlin)");
    assert_eq!(berlin.start, zoned("2024-04-15T09:00", "Europe/Berlin"));
    assert_eq!(berlin.location.as_deref(), Some("Büro Berlin, Raum 3"));
    let seattle = event(&report, "Design review (Seattle)");
    assert_eq!(
        seattle.start,
        zoned("2024-04-17T13:00", "America/Los_Angeles")
    );
}

#[test]
fn outlook_event_in_a_custom_vtimezone_is_skipped_naming_the_tzid_and_the_rest_imported() {
    let report = import_fixture("outlook_windows_tzids.ics");
    assert_eq!(report.skipped.len(), 1, "{:#?}", report.skipped);
    let skipped = &report.skipped[0];
    assert_eq!(skipped.summary.as_deref(), Some("Call with Tehran office"));
    assert!(skipped
        .uid
        .as_deref()
        .is_some_and(|uid| uid.starts_with("0400000082")));
    assert_eq!(
        skipped.reason,
        CalendarError::UnrecognizedTzid {
            tzid: "Customized Time Zone".into()
        }
    );
    assert_eq!(skipped.reason.code(), "unrecognized_tzid");
    assert!(skipped.reason.to_string().contains("Customized Time Zone"));
    assert_eq!(report.calendar.events.len(), 5);
}

#[test]
fn outlook_series_reads_until_exdate_quoted_names_and_its_exception() {
    let report = import_fixture("outlook_windows_tzids.ics");
    let series = report
        .calendar
        .events
        .iter()
        .find(|e| e.summary.as_deref() == Some("Weekly sync") && e.recurrence_id.is_none())
        .expect("series");
    let starts = timed_starts(series, "2024-04-29T00:00:00Z", "2024-12-31T00:00:00Z");
    // Tuesdays from 30 April to 25 June (the UNTIL instant, 10:00 EDT), without 7 May.
    assert_eq!(
        starts,
        [
            utc("2024-04-30T14:00:00Z"),
            utc("2024-05-14T14:00:00Z"),
            utc("2024-05-21T14:00:00Z"),
            utc("2024-05-28T14:00:00Z"),
            utc("2024-06-04T14:00:00Z"),
            utc("2024-06-11T14:00:00Z"),
            utc("2024-06-18T14:00:00Z"),
            utc("2024-06-25T14:00:00Z"),
        ]
    );
    assert_eq!(series.description.as_deref(), Some("\n"));
    let organizer = series.organizer.as_ref().expect("organizer");
    assert_eq!(organizer.common_name.as_deref(), Some("Smith, John"));
    assert_eq!(
        series.attendees[0].common_name.as_deref(),
        Some("Doe, Jane")
    );
    assert_eq!(series.attendees[1].role, AttendeeRole::Optional);
    assert_eq!(
        series.attendees[1].participation,
        ParticipationStatus::Tentative
    );

    let exception = report
        .calendar
        .events
        .iter()
        .find(|e| e.recurrence_id.is_some())
        .expect("exception");
    assert_eq!(exception.uid, series.uid);
    assert_eq!(
        exception.recurrence_id.map(|id| id.original_start),
        Some(OriginalStart::DateTime(local("2024-05-14T10:00")))
    );
    assert_eq!(
        exception.start,
        zoned("2024-05-14T15:00", "America/New_York")
    );
}

#[test]
fn outlook_all_day_holiday_is_transparent() {
    let report = import_fixture("outlook_windows_tzids.ics");
    let holiday = event(&report, "Independence Day");
    assert_eq!(holiday.start, SeriesStart::AllDay(date("2024-07-04")));
    assert_eq!(holiday.transparency, Transparency::Transparent);
}

// ---------------------------------------------------------------------------------------------
// Apple Calendar

#[test]
fn apple_folded_lines_and_escaped_text_read_back_exactly() {
    let report = import_fixture("apple_folded_escaped.ics");
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);
    assert_eq!(report.calendar.name.as_deref(), Some("Home"));
    let dinner = event(&report, "Dinner with Sam & Alex — «bistro» night 🍷");
    assert_eq!(
        dinner.description.as_deref(),
        Some(
            "Bring:\n- wine; cheese\n- a backslash \\ for the recipe, and don't forget the long \
             list of things Alex asked for: napkins, candles, the good corkscrew ✨🍷"
        )
    );
    assert_eq!(
        dinner.location.as_deref(),
        Some("Café Rouge\n1782 4th St, Berkeley, CA 94710, United States")
    );
    assert_eq!(
        dinner.start,
        zoned("2024-04-05T19:00", "America/Los_Angeles")
    );
    assert_eq!(
        dinner.end,
        Some(EventEnd::At(zoned(
            "2024-04-05T21:30",
            "America/Los_Angeles"
        )))
    );
}

#[test]
fn apple_last_working_day_rule_and_rdate_lists_expand() {
    let report = import_fixture("apple_folded_escaped.ics");
    let rent = event(&report, "Pay rent (last working day)");
    assert_eq!(
        rent.end,
        Some(EventEnd::Duration(IcalDuration {
            days: 0,
            seconds: 900
        }))
    );
    let starts = timed_starts(rent, "2024-01-01T00:00:00Z", "2024-07-01T00:00:00Z");
    let days: Vec<String> = starts
        .iter()
        .map(|start| start.format("%m-%d").to_string())
        .collect();
    assert_eq!(days, ["01-31", "02-29", "03-29", "04-30", "05-31", "06-28"]);

    let physio = event(&report, "Physio");
    let starts = timed_starts(physio, "2024-04-01T00:00:00Z", "2024-05-01T00:00:00Z");
    assert_eq!(
        starts,
        [
            utc("2024-04-08T15:00:00Z"),
            utc("2024-04-15T15:00:00Z"),
            utc("2024-04-22T15:30:00Z"),
            utc("2024-04-29T15:00:00Z"),
        ]
    );
    let occurrence = Occurrence::Timed {
        original_start: local("2024-04-22T08:30"),
        start: utc("2024-04-22T15:30:00Z"),
    };
    let period = physio.occurrence_period(&occurrence, Tz::UTC);
    assert_eq!(period.end, utc("2024-04-22T16:15:00Z"));
}

// ---------------------------------------------------------------------------------------------
// Tolerance

#[test]
fn lf_line_ends_tab_folds_and_lowercase_names_are_accepted() {
    let input = "begin:vcalendar\nversion:2.0\nbegin:vevent\nuid:lf-1\ndtstart:20240101T090000Z\nsummary:Folded with a\n\t tab\nend:vevent\nend:vcalendar\n";
    let report = ical::import(input.as_bytes()).expect("imports");
    assert_eq!(report.calendar.events.len(), 1);
    assert_eq!(
        report.calendar.events[0].summary.as_deref(),
        Some("Folded with a tab")
    );
}

#[test]
fn a_utf8_bom_and_several_calendars_in_one_stream_are_accepted() {
    let mut input = b"\xEF\xBB\xBF".to_vec();
    input.extend(wrap(&vevent("a", "DTSTART:20240101T090000Z\r\n")).as_bytes());
    input.extend(wrap(&vevent("b", "DTSTART:20240102T090000Z\r\n")).as_bytes());
    let report = ical::import(&input).expect("imports");
    let uids: Vec<&str> = report
        .calendar
        .events
        .iter()
        .map(|e| e.uid.as_str())
        .collect();
    assert_eq!(uids, ["a", "b"]);
}

#[test]
fn garbage_lines_are_ignored_with_a_warning_naming_the_line() {
    let body = vevent(
        "g-1",
        "DTSTART:20240101T090000Z\r\nthis line has no colon\r\nSUMMARY:Still imported\r\n",
    );
    let report = ical::import(wrap(&body).as_bytes()).expect("imports");
    assert_eq!(report.calendar.events.len(), 1);
    assert_eq!(
        report.calendar.events[0].summary.as_deref(),
        Some("Still imported")
    );
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].line, 8);
    assert!(report.warnings[0]
        .message
        .contains("this line has no colon"));
}

#[test]
fn components_other_than_events_are_ignored_with_one_warning_per_kind() {
    let body = "BEGIN:VTODO\r\nUID:t1\r\nEND:VTODO\r\nBEGIN:VTODO\r\nUID:t2\r\nEND:VTODO\r\n\
                BEGIN:VJOURNAL\r\nUID:j\r\nEND:VJOURNAL\r\n"
        .to_owned()
        + &vevent("e", "DTSTART:20240101T090000Z\r\n");
    let report = ical::import(wrap(&body).as_bytes()).expect("imports");
    assert_eq!(report.calendar.events.len(), 1);
    let messages: Vec<(usize, &str)> = report
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                4,
                "2 VTODO components (the first on this line) were ignored: only events (VEVENT) \
                 are imported"
            ),
            (
                10,
                "a VJOURNAL component was ignored: only events (VEVENT) are imported"
            ),
        ]
    );
}

#[test]
fn text_after_the_last_calendar_is_ignored_with_a_warning() {
    let input = format!(
        "{}trailing junk\r\n",
        wrap(&vevent("t", "DTSTART:20240101T090000Z\r\n"))
    );
    let report = ical::import(input.as_bytes()).expect("imports");
    assert_eq!(report.calendar.events.len(), 1);
    assert!(report.warnings[0].message.contains("after END:VCALENDAR"));
}

#[test]
fn dates_and_date_times_in_the_wrong_kind_of_series_are_read_sensibly() {
    let body = vevent(
        "mixed",
        "DTSTART;TZID=Europe/Paris:20240101T090000\r\nRRULE:FREQ=DAILY;COUNT=5\r\n\
         EXDATE;VALUE=DATE:20240102\r\nEXDATE:20240104T080000Z\r\n",
    ) + &vevent(
        "all-day",
        "DTSTART;VALUE=DATE:20240101\r\nRRULE:FREQ=DAILY;COUNT=3\r\n\
         EXDATE;TZID=Europe/Paris:20240102T000000\r\n",
    );
    let report = ical::import(wrap(&body).as_bytes()).expect("imports");
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);
    let timed = &report.calendar.events[0];
    let starts = timed_starts(timed, "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z");
    assert_eq!(
        starts,
        [
            utc("2024-01-01T08:00:00Z"),
            utc("2024-01-03T08:00:00Z"),
            utc("2024-01-05T08:00:00Z"),
        ],
        "a date EXDATE removes that day's occurrence; a UTC one the occurrence at that instant"
    );
    let all_day = &report.calendar.events[1];
    let dates: Vec<Occurrence> = all_day
        .recurrence
        .as_ref()
        .expect("series")
        .expand(&ExpansionQuery::from_series_start())
        .occurrences;
    assert_eq!(
        dates,
        [
            Occurrence::AllDay {
                date: date("2024-01-01")
            },
            Occurrence::AllDay {
                date: date("2024-01-03")
            }
        ]
    );
}

#[test]
fn recurrence_id_in_utc_is_keyed_in_the_series_local_time() {
    let body = vevent(
        "r",
        "DTSTART;TZID=America/New_York:20240701T090000\r\nRRULE:FREQ=DAILY\r\n",
    ) + &vevent(
        "r",
        "RECURRENCE-ID:20240703T130000Z\r\nDTSTART;TZID=America/New_York:20240703T100000\r\nSEQUENCE:1\r\n",
    ) + &vevent(
        "r",
        "RECURRENCE-ID;VALUE=DATE;RANGE=THISANDFUTURE:20240710\r\nDTSTART;TZID=America/New_York:20240710T080000\r\n",
    );
    let report = ical::import(wrap(&body).as_bytes()).expect("imports");
    let ids: Vec<_> = report
        .calendar
        .events
        .iter()
        .filter_map(|event| event.recurrence_id)
        .map(|id| (id.original_start, id.this_and_future))
        .collect();
    assert_eq!(
        ids,
        [
            (OriginalStart::DateTime(local("2024-07-03T09:00")), false),
            (OriginalStart::DateTime(local("2024-07-10T09:00")), true),
        ]
    );
}

#[test]
fn duplicate_uids_keep_the_highest_sequence_and_report_the_other() {
    let body = vevent(
        "dup",
        "DTSTART:20240101T090000Z\r\nSUMMARY:Old\r\nSEQUENCE:1\r\n",
    ) + &vevent(
        "dup",
        "DTSTART:20240101T100000Z\r\nSUMMARY:New\r\nSEQUENCE:2\r\n",
    );
    let report = ical::import(wrap(&body).as_bytes()).expect("imports");
    assert_eq!(report.calendar.events.len(), 1);
    assert_eq!(report.calendar.events[0].summary.as_deref(), Some("New"));
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].summary.as_deref(), Some("Old"));
    assert!(report.skipped[0].reason.to_string().contains("duplicate"));
}

// ---------------------------------------------------------------------------------------------
// Per-event errors: the event is skipped, the others imported

#[test]
fn unreadable_events_are_skipped_with_a_reason_and_the_others_imported() {
    let cases: [(&str, &str, &str); 9] = [
        ("no-start", "SUMMARY:x\r\n", "no DTSTART"),
        (
            "bad-date",
            "DTSTART:20241345T090000\r\n",
            "DTSTART: `20241345T090000`",
        ),
        (
            "bad-all-day",
            "DTSTART;VALUE=DATE:2024-01-01\r\n",
            "not a valid date",
        ),
        (
            "bad-rule",
            "DTSTART:20240101T090000Z\r\nRRULE:FREQ=SOMETIMES\r\n",
            "FREQ must be one of",
        ),
        (
            "bad-exdate",
            "DTSTART:20240101T090000Z\r\nRRULE:FREQ=DAILY\r\nEXDATE:yesterday\r\n",
            "EXDATE: `yesterday`",
        ),
        (
            "ends-first",
            "DTSTART:20240101T090000Z\r\nDTEND:20240101T080000Z\r\n",
            "before DTSTART",
        ),
        (
            "bad-duration",
            "DTSTART:20240101T090000Z\r\nDURATION:-PT1H\r\n",
            "DURATION",
        ),
        (
            "mixed-end",
            "DTSTART;VALUE=DATE:20240101\r\nDTEND:20240102T090000Z\r\n",
            "DTEND must be a date",
        ),
        (
            "unknown-zone",
            "DTSTART;TZID=Mars/Olympus_Mons:20240101T090000\r\n",
            "Mars/Olympus_Mons",
        ),
    ];
    let mut body = vevent("good", "DTSTART:20240101T090000Z\r\n");
    for (uid, extra, _) in &cases {
        body.push_str(&vevent(uid, extra));
    }
    body.push_str("BEGIN:VEVENT\r\nDTSTART:20240101T090000Z\r\nSUMMARY:No UID\r\nEND:VEVENT\r\n");
    let report = ical::import(wrap(&body).as_bytes()).expect("imports");
    assert_eq!(report.calendar.events.len(), 1);
    assert_eq!(report.calendar.events[0].uid, "good");
    assert_eq!(report.skipped.len(), cases.len() + 1);
    for (uid, _, expected) in &cases {
        let skipped = report
            .skipped
            .iter()
            .find(|s| s.uid.as_deref() == Some(*uid))
            .unwrap_or_else(|| panic!("{uid} not skipped"));
        let message = skipped.reason.to_string();
        assert!(message.contains(expected), "{uid}: `{message}`");
        assert!(skipped.line > 0);
    }
    let no_uid = report.skipped.last().expect("no-uid event");
    assert_eq!(no_uid.uid, None);
    assert_eq!(no_uid.summary.as_deref(), Some("No UID"));
    assert!(no_uid.reason.to_string().contains("no UID"));
}

// ---------------------------------------------------------------------------------------------
// Whole-file errors

fn import_error(input: &str) -> CalendarError {
    ical::import(input.as_bytes()).expect_err("the import must fail")
}

#[test]
fn a_missing_end_fails_naming_the_component_and_its_line() {
    let truncated =
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20240101T090000Z\r\n";
    let error = import_error(truncated);
    assert_eq!(error.code(), "invalid_icalendar");
    assert_eq!(
        error.to_string(),
        "line 3: VEVENT is never closed (END:VEVENT is missing); the file may be truncated"
    );
    let error = import_error("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
    assert!(error.to_string().contains("VCALENDAR is never closed"));
}

#[test]
fn an_end_closing_the_wrong_component_fails() {
    let input = wrap("BEGIN:VEVENT\r\nUID:x\r\nBEGIN:VALARM\r\nEND:VEVENT\r\nEND:VALARM\r\n");
    let error = import_error(&input);
    assert_eq!(
        error.to_string(),
        "line 7: END:VEVENT does not close VALARM (begun on line 6); is an END:VALARM missing?"
    );
    let error = import_error(&wrap(
        "BEGIN:VEVENT\r\nUID:x\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\nEND:VEVENT\r\n",
    ));
    assert!(
        error.to_string().contains("BEGIN:VEVENT inside VEVENT"),
        "{error}"
    );
}

#[test]
fn input_that_is_not_icalendar_fails_saying_so() {
    let error = import_error("<!DOCTYPE html>\n<html><body>Sign in</body></html>\n");
    assert_eq!(
        error.to_string(),
        "line 1: this is not an iCalendar file: expected BEGIN:VCALENDAR, found `<!DOCTYPE html>`"
    );
    assert!(import_error("").to_string().contains("the input is empty"));
    assert!(import_error("\r\n\r\n")
        .to_string()
        .contains("the input is empty"));
}

#[test]
fn oversized_input_fails_before_reading() {
    let input = vec![b'x'; MAX_INPUT_BYTES + 1];
    let error = ical::import(&input).expect_err("too large");
    assert_eq!(error.code(), "icalendar_limit_exceeded");
    assert!(error.to_string().contains(&MAX_INPUT_BYTES.to_string()));
}

#[test]
fn too_many_events_fail_naming_the_limit() {
    let one = vevent("e", "DTSTART:20240101T090000Z\r\n");
    let input = wrap(&one.repeat(MAX_EVENTS + 1));
    let error = ical::import(input.as_bytes()).expect_err("too many");
    assert_eq!(error.code(), "icalendar_limit_exceeded");
    assert!(
        error.to_string().contains("more than 20000 events"),
        "{error}"
    );
}

#[test]
fn an_overlong_line_fails_naming_the_limit() {
    let description = format!("DESCRIPTION:{}\r\n", "x".repeat(MAX_LINE_BYTES));
    let input = wrap(&vevent("long", &description));
    let error = ical::import(input.as_bytes()).expect_err("too long");
    assert_eq!(error.code(), "icalendar_limit_exceeded");
    assert!(
        error.to_string().contains("longer than 65536 bytes"),
        "{error}"
    );
}

#[test]
fn components_nested_too_deep_fail() {
    let mut body = String::new();
    for level in 0..MAX_NESTING {
        body.push_str(&format!("BEGIN:X-LEVEL{level}\r\n"));
    }
    let error = import_error(&wrap(&body));
    assert_eq!(error.code(), "icalendar_limit_exceeded");
    assert!(
        error.to_string().contains("nested more than 8 deep"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// No panics

/// SplitMix64: a small deterministic generator for the mutation test.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

#[test]
fn truncated_and_mutated_files_never_panic() {
    let interesting: &[u8] = b":;,=\"\\\r\n \tZTVALUEDATE0123456789-+/^'\xC3\xA9\xFF";
    let mut random = SplitMix(0x5EED);
    for name in [
        "google_calendar_export.ics",
        "outlook_windows_tzids.ics",
        "apple_folded_escaped.ics",
    ] {
        let original = fixture(name);
        for cut in (0..original.len()).step_by(7) {
            let _ = ical::import(&original[..cut]);
        }
        for _ in 0..300 {
            let mut mutated = original.clone();
            for _ in 0..1 + random.below(8) {
                let at = random.below(mutated.len());
                match random.below(3) {
                    0 => mutated[at] = interesting[random.below(interesting.len())],
                    1 => {
                        mutated.remove(at);
                    }
                    _ => mutated.insert(at, interesting[random.below(interesting.len())]),
                }
            }
            if let Ok(report) = ical::import(&mutated) {
                // Whatever was imported can be expanded and exported without panicking.
                for event in &report.calendar.events {
                    if let Some(recurrence) = &event.recurrence {
                        let _ = recurrence
                            .expand(&ExpansionQuery::from_series_start().with_max_occurrences(50));
                    }
                }
                let _ = ical::export(&report.calendar, utc("2024-01-01T00:00:00Z"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Alarms

#[test]
fn alarms_before_the_start_become_reminders_and_others_are_reported() {
    let alarm = |trigger: &str| {
        format!("BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\n{trigger}\r\nEND:VALARM\r\n")
    };
    let body = vevent(
        "alarms",
        &format!(
            "DTSTART:20260310T090000Z\r\nSUMMARY:Alarms\r\n{}{}{}{}{}{}",
            alarm("TRIGGER:-PT15M"),
            alarm("TRIGGER;RELATED=START:-P1D"),
            alarm("TRIGGER:PT0S"),
            alarm("TRIGGER;RELATED=END:-PT5M"),
            alarm("TRIGGER;VALUE=DATE-TIME:20260310T080000Z"),
            alarm("TRIGGER:PT10M"),
        ),
    );
    let report = ical::import(wrap(&body).as_bytes()).unwrap();
    assert_eq!(event(&report, "Alarms").reminders, vec![0, 15, 1440]);
    let about_alarms = report
        .warnings
        .iter()
        .filter(|w| w.message.contains("VALARM"))
        .count();
    assert_eq!(about_alarms, 3, "{:#?}", report.warnings);
}
