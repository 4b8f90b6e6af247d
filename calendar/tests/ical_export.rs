//! iCalendar export: the file's shape (folding, escaping, properties, `VTIMEZONE`), round
//! trips through our own parser, and a check by an independent parser, Python's `icalendar`
//! (PyPI), when it is installed.
//!
//! The Python check is skipped with a message when `python3` or the module is missing, and
//! fails instead when `POTENTIA_REQUIRE_PY_ICALENDAR=1` (as in CI, which installs it).
//! `POTENTIA_PYTHON` names another interpreter.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use potentia_calendar::event::{AttendeeRole, EventStatus, ParticipationStatus, Transparency};
use potentia_calendar::ical::{
    self, Attendee, Calendar, Event, EventEnd, IcalDuration, Organizer, RecurrenceId, PRODID,
};
use potentia_calendar::timezone::resolve_local;
use potentia_calendar::{ExpansionQuery, OriginalStart, Recurrence, RecurrenceDate, SeriesStart};
use serde::Deserialize;

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

fn stamp() -> DateTime<Utc> {
    utc("2024-03-01T12:00:00Z")
}

fn recurrence(
    start: SeriesStart,
    rules: &[&str],
    rdates: &[RecurrenceDate],
    exdates: &[RecurrenceDate],
) -> Option<Recurrence> {
    Some(Recurrence::new(start, rules, rdates, exdates).expect("valid recurrence"))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// A calendar using every feature the exporter writes.
fn sample_calendar() -> Calendar {
    let weekly_start = zoned("2024-01-09T10:00", "America/New_York");
    let mut weekly = Event::new("weekly-sync@potentia.test", weekly_start);
    weekly.sequence = 3;
    weekly.summary = Some("Weekly sync; planning, review & \"quotes\" \\ backslash".into());
    weekly.description = Some(format!(
        "Agenda:\n1. Numbers, plans; risks\n2. {}\n\nEnd.",
        "Ünïcödé text that is long enough to be folded several times — 日本語のテキスト、絵文字 🎉🎉🎉 "
            .repeat(3)
    ));
    weekly.location = Some("Room 4, Floor 2; Building \"B\"".into());
    weekly.end = Some(EventEnd::At(zoned("2024-01-09T11:00", "America/New_York")));
    weekly.status = Some(EventStatus::Confirmed);
    weekly.recurrence = recurrence(
        weekly_start,
        &["FREQ=WEEKLY;UNTIL=20240625T140000Z;BYDAY=TU,TH;WKST=SU"],
        &[
            RecurrenceDate::Local(local("2024-02-03T10:00")),
            RecurrenceDate::Utc(utc("2024-02-10T20:00:00Z")),
        ],
        &[
            RecurrenceDate::Local(local("2024-01-11T10:00")),
            RecurrenceDate::Local(local("2024-03-12T10:00")),
        ],
    );
    weekly.organizer = Some(Organizer {
        address: "mailto:john.smith@example.com".into(),
        common_name: Some("Smith, John".into()),
    });
    weekly.attendees = vec![
        Attendee {
            address: "mailto:jane@example.com".into(),
            common_name: Some("Jane \"JD\" Doe: ^ lead".into()),
            role: AttendeeRole::Chair,
            participation: ParticipationStatus::Accepted,
        },
        Attendee {
            address: "mailto:optional@example.com".into(),
            common_name: None,
            role: AttendeeRole::Optional,
            participation: ParticipationStatus::Declined,
        },
        Attendee {
            address: "mailto:zoë@example.com".into(),
            common_name: Some("Zoë".into()),
            role: AttendeeRole::Required,
            participation: ParticipationStatus::Tentative,
        },
    ];

    let mut moved = Event::new(
        "weekly-sync@potentia.test",
        zoned("2024-01-16T15:00", "America/New_York"),
    );
    moved.summary = Some("Weekly sync (afternoon)".into());
    moved.sequence = 4;
    moved.end = Some(EventEnd::Duration(IcalDuration {
        days: 0,
        seconds: 5_400,
    }));
    moved.recurrence_id = Some(RecurrenceId {
        original_start: OriginalStart::DateTime(local("2024-01-16T10:00")),
        this_and_future: false,
    });

    let birthday_start = SeriesStart::AllDay(date("1990-06-12"));
    let mut birthday = Event::new("birthday@potentia.test", birthday_start);
    birthday.summary = Some("Sam's birthday".into());
    birthday.end = Some(EventEnd::At(SeriesStart::AllDay(date("1990-06-13"))));
    birthday.transparency = Transparency::Transparent;
    birthday.recurrence = recurrence(
        birthday_start,
        &["FREQ=YEARLY"],
        &[],
        &[RecurrenceDate::Date(date("2020-06-12"))],
    );

    let mut birthday_2024 = Event::new(
        "birthday@potentia.test",
        SeriesStart::AllDay(date("2024-06-15")),
    );
    birthday_2024.summary = Some("Sam's birthday (party on Saturday)".into());
    birthday_2024.recurrence_id = Some(RecurrenceId {
        original_start: OriginalStart::Date(date("2024-06-12")),
        this_and_future: true,
    });

    let mut call = Event::new("utc-call@potentia.test", zoned("2024-02-15T16:00", "UTC"));
    call.summary = Some("Vendor call".into());
    call.end = Some(EventEnd::Duration(IcalDuration {
        days: 0,
        seconds: 2_700,
    }));
    call.status = Some(EventStatus::Cancelled);

    let floating_start = SeriesStart::Floating(local("2024-04-01T07:30"));
    let mut run = Event::new("floating-run@potentia.test", floating_start);
    run.summary = Some("Morning run, wherever I am".into());
    run.end = Some(EventEnd::At(SeriesStart::Floating(local(
        "2024-04-01T08:15",
    ))));
    run.recurrence = recurrence(
        floating_start,
        &["FREQ=DAILY;COUNT=5"],
        &[],
        &[RecurrenceDate::Local(local("2024-04-03T07:30"))],
    );

    let london_start = zoned("2024-01-01T09:00", "Europe/London");
    let mut london = Event::new("two-rules@potentia.test", london_start);
    london.summary = Some("Two rules".into());
    london.status = Some(EventStatus::Tentative);
    london.recurrence = recurrence(
        london_start,
        &[
            "FREQ=MONTHLY;COUNT=6;BYDAY=1MO",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;UNTIL=20241231T235959Z",
        ],
        &[],
        &[],
    );

    let mut old = Event::new(
        "y2k@potentia.test",
        zoned("2000-04-02T01:30", "America/New_York"),
    );
    old.summary = Some("Before the 2007 US rules".into());
    old.end = Some(EventEnd::At(zoned("2000-04-02T04:00", "America/New_York")));

    let mut calendar = Calendar {
        name: Some("Team, \"Core\"; and friends".into()),
        time_zone: Some(zone("America/New_York")),
        events: vec![
            weekly,
            moved,
            birthday,
            birthday_2024,
            call,
            run,
            london,
            old,
        ],
    };
    for (uid, start, summary) in [
        (
            "sao-paulo@potentia.test",
            zoned("2015-10-18T00:30", "America/Sao_Paulo"),
            "São Paulo in the old DST days",
        ),
        (
            "jerusalem@potentia.test",
            zoned("2024-03-29T09:00", "Asia/Jerusalem"),
            "Jerusalem, first day of DST",
        ),
        (
            "lord-howe@potentia.test",
            zoned("2024-04-07T01:45", "Australia/Lord_Howe"),
            "Lord Howe, half-hour fold",
        ),
        (
            "dublin@potentia.test",
            zoned("2024-10-27T01:30", "Europe/Dublin"),
            "Dublin, negative DST in the IANA data",
        ),
        (
            "kolkata@potentia.test",
            zoned("2024-05-01T18:30", "Asia/Kolkata"),
            "Kolkata, no DST",
        ),
        (
            "auckland@potentia.test",
            zoned("2024-09-29T02:30", "Pacific/Auckland"),
            "Auckland spring forward",
        ),
    ] {
        let mut event = Event::new(uid, start);
        event.summary = Some(summary.into());
        calendar.events.push(event);
    }
    let mut bare = Event::new(
        "bare@potentia.test",
        zoned("2024-07-01T12:00", "Europe/Berlin"),
    );
    bare.summary = Some(String::new());
    calendar.events.push(bare);
    calendar
}

fn physical_lines(text: &str) -> Vec<&str> {
    text.split("\r\n").filter(|line| !line.is_empty()).collect()
}

// ---------------------------------------------------------------------------------------------
// Shape

#[test]
fn export_writes_crlf_lines_of_at_most_75_octets_and_folds_between_characters() {
    let text = ical::export(&sample_calendar(), stamp());
    assert!(text.ends_with("END:VCALENDAR\r\n"));
    assert!(!text.replace("\r\n", "").contains('\n'), "bare LF");
    assert!(!text.replace("\r\n", "").contains('\r'), "bare CR");
    let lines = physical_lines(&text);
    let mut folded = 0;
    for line in &lines {
        assert!(line.len() <= 75, "{} octets: {line}", line.len());
        if line.starts_with(' ') {
            folded += 1;
        }
    }
    assert!(folded > 5, "the long description is folded");
}

#[test]
fn export_writes_the_calendar_header_and_one_dtstamp_per_event() {
    let calendar = sample_calendar();
    let text = ical::export(&calendar, stamp());
    let lines = physical_lines(&text);
    assert_eq!(
        &lines[..5],
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            &format!("PRODID:{PRODID}"),
            "CALSCALE:GREGORIAN",
            "METHOD:PUBLISH",
        ]
    );
    assert_eq!(PRODID, "-//Potentia//Calendar//EN");
    assert!(lines.contains(&"X-WR-CALNAME:Team\\, \"Core\"\\; and friends"));
    assert!(lines.contains(&"X-WR-TIMEZONE:America/New_York"));
    let events = lines.iter().filter(|l| **l == "BEGIN:VEVENT").count();
    let stamps = lines
        .iter()
        .filter(|l| **l == "DTSTAMP:20240301T120000Z")
        .count();
    assert_eq!(events, calendar.events.len());
    assert_eq!(stamps, calendar.events.len());
}

#[test]
fn export_writes_each_kind_of_time_in_its_own_form() {
    let text = ical::export(&sample_calendar(), stamp());
    let lines = physical_lines(&text);
    for expected in [
        "DTSTART;TZID=America/New_York:20240109T100000",
        "DTEND;TZID=America/New_York:20240109T110000",
        "DTSTART;VALUE=DATE:19900612",
        "DTEND;VALUE=DATE:19900613",
        "DTSTART:20240215T160000Z",
        "DURATION:PT45M",
        "DTSTART:20240401T073000",
        "RRULE:FREQ=WEEKLY;UNTIL=20240625T140000Z;BYDAY=TU,TH;WKST=SU",
        "RDATE;TZID=America/New_York:20240203T100000",
        "RDATE:20240210T200000Z",
        "EXDATE;TZID=America/New_York:20240111T100000,20240312T100000",
        "EXDATE;VALUE=DATE:20200612",
        "EXDATE:20240403T073000",
        "RECURRENCE-ID;TZID=America/New_York:20240116T100000",
        "RECURRENCE-ID;VALUE=DATE;RANGE=THISANDFUTURE:20240612",
        "STATUS:CANCELLED",
        "TRANSP:TRANSPARENT",
        "SEQUENCE:3",
        "ORGANIZER;CN=\"Smith, John\":mailto:john.smith@example.com",
        "ATTENDEE;ROLE=OPT-PARTICIPANT;PARTSTAT=DECLINED:mailto:optional@example.com",
    ] {
        assert!(lines.contains(&expected), "missing `{expected}` in\n{text}");
    }
    let unfolded = text.replace("\r\n ", "");
    assert!(unfolded.contains(
        "ATTENDEE;CN=\"Jane ^'JD^' Doe: ^^ lead\";ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:jane@example.com"
    ));
    assert!(
        unfolded.contains("SUMMARY:Weekly sync\\; planning\\, review & \"quotes\" \\\\ backslash")
    );
    assert!(unfolded.contains("DESCRIPTION:Agenda:\\n1. Numbers\\, plans\\; risks\\n2. "));
}

#[test]
fn export_writes_one_vtimezone_per_zone_used_and_none_for_utc() {
    let text = ical::export(&sample_calendar(), stamp());
    let tzids: Vec<&str> = physical_lines(&text)
        .into_iter()
        .filter_map(|line| line.strip_prefix("TZID:"))
        .collect();
    assert_eq!(
        tzids,
        [
            "America/New_York",
            "America/Sao_Paulo",
            "Asia/Jerusalem",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "Europe/Berlin",
            "Europe/Dublin",
            "Europe/London",
            "Pacific/Auckland",
        ]
    );
    let first_event = text.find("BEGIN:VEVENT").expect("events");
    assert!(text.rfind("END:VTIMEZONE").expect("vtimezones") < first_event);
}

#[test]
fn until_is_written_in_the_form_rfc_5545_requires_with_the_same_occurrences() {
    let zoned_start = zoned("2024-06-03T10:00", "America/New_York");
    let all_day_start = SeriesStart::AllDay(date("2024-06-03"));
    for (start, rule, exported) in [
        (
            zoned_start,
            "FREQ=DAILY;UNTIL=20240606T100000",
            "RRULE:FREQ=DAILY;UNTIL=20240606T140000Z",
        ),
        (
            zoned_start,
            "FREQ=DAILY;UNTIL=20240606",
            "RRULE:FREQ=DAILY;UNTIL=20240607T035959Z",
        ),
        (
            all_day_start,
            "FREQ=DAILY;UNTIL=20240606T120000Z",
            "RRULE:FREQ=DAILY;UNTIL=20240606",
        ),
    ] {
        let mut event = Event::new("until", start);
        event.recurrence = recurrence(start, &[rule], &[], &[]);
        let calendar = Calendar {
            events: vec![event],
            ..Calendar::default()
        };
        let text = ical::export(&calendar, stamp());
        assert!(physical_lines(&text).contains(&exported), "{text}");
        let reread = ical::import(text.as_bytes()).expect("imports");
        let query = ExpansionQuery::from_series_start();
        let expand = |calendar: &Calendar| {
            calendar.events[0]
                .recurrence
                .as_ref()
                .expect("series")
                .expand(&query)
                .occurrences
        };
        assert_eq!(expand(&reread.calendar), expand(&calendar));
        assert_eq!(expand(&calendar).len(), 4);
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn export_then_import_gives_back_the_same_calendar() {
    let calendar = sample_calendar();
    let text = ical::export(&calendar, stamp());
    let report = ical::import(text.as_bytes()).expect("our own output imports");
    assert!(report.skipped.is_empty(), "{:#?}", report.skipped);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    assert_eq!(report.calendar.events.len(), calendar.events.len());
    for (read, written) in report.calendar.events.iter().zip(&calendar.events) {
        assert_eq!(read, written, "event {}", written.uid);
    }
    assert_eq!(report.calendar, calendar);
}

#[test]
fn fixtures_survive_export_and_reimport_unchanged() {
    for name in [
        "google_calendar_export.ics",
        "outlook_windows_tzids.ics",
        "apple_folded_escaped.ics",
    ] {
        let first = ical::import(&fixture(name)).expect("imports");
        let text = ical::export(&first.calendar, stamp());
        let second = ical::import(text.as_bytes()).expect("re-imports");
        assert!(second.skipped.is_empty(), "{name}: {:#?}", second.skipped);
        assert_eq!(second.calendar, first.calendar, "{name}");
    }
}

#[test]
fn an_empty_calendar_exports_and_reimports() {
    let text = ical::export(&Calendar::default(), stamp());
    let report = ical::import(text.as_bytes()).expect("imports");
    assert_eq!(report.calendar, Calendar::default());
}

// ---------------------------------------------------------------------------------------------
// Independent parser: Python's icalendar

/// Reads our output with Python's `icalendar` and prints, as JSON, each event's UID, summary
/// and DTSTART, and for each VTIMEZONE the instants where the zone built from our VTIMEZONE
/// (not looked up by name) disagrees with Python's own zoneinfo: probed at noon UTC every day,
/// and every 15 minutes on days where either zone changes offset.
const PYTHON_READER: &str = r#"
import datetime, json, sys, zoneinfo
import icalendar

first_year, last_year = int(sys.argv[1]), int(sys.argv[2])
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
events = []
for event in cal.walk("VEVENT"):
    start = event.decoded("DTSTART")
    if isinstance(start, datetime.datetime) and start.tzinfo is not None:
        dtstart = {"utc": start.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
                   "tzid": event["DTSTART"].params.get("TZID")}
    elif isinstance(start, datetime.datetime):
        dtstart = {"floating": start.strftime("%Y%m%dT%H%M%S")}
    else:
        dtstart = {"date": start.strftime("%Y%m%d")}
    summary = event.get("SUMMARY")
    events.append({"uid": str(event["UID"]),
                   "summary": None if summary is None else str(summary),
                   "dtstart": dtstart})
zones = []
utc = datetime.timezone.utc
for vtimezone in cal.walk("VTIMEZONE"):
    name = str(vtimezone["TZID"])
    built = vtimezone.to_tz(lookup_tzid=False)
    reference = zoneinfo.ZoneInfo(name)
    offset = lambda zone, at: at.astimezone(zone).utcoffset()
    # A VTIMEZONE describes its zone from its first onset on.
    first_onset = min(observance.decoded("DTSTART") for observance in vtimezone.subcomponents)
    day = max(datetime.datetime(first_year, 1, 1, tzinfo=utc),
              first_onset.replace(tzinfo=utc) + datetime.timedelta(days=1))
    end = datetime.datetime(last_year + 1, 1, 1, tzinfo=utc)
    checked, mismatches = 0, []
    while day < end:
        following = day + datetime.timedelta(days=1)
        changes = any(offset(zone, day) != offset(zone, following) for zone in (built, reference))
        # Every 15 minutes on a day either zone changes offset, else once at noon.
        probes = ([day + datetime.timedelta(minutes=m) for m in range(0, 24 * 60, 15)]
                  if changes else [day + datetime.timedelta(hours=12)])
        for at in probes:
            checked += 1
            ours, theirs = offset(built, at), offset(reference, at)
            if ours != theirs and len(mismatches) < 5:
                mismatches.append(f"{at.isoformat()}: VTIMEZONE says {ours}, zoneinfo says {theirs}")
        day = following
    zones.append({"tzid": name, "checked": checked, "mismatches": mismatches})
print(json.dumps({"events": events, "zones": zones}))
"#;

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct PythonEvent {
    uid: String,
    summary: Option<String>,
    dtstart: PythonStart,
}

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(untagged)]
enum PythonStart {
    Zoned { utc: String, tzid: Option<String> },
    Floating { floating: String },
    Date { date: String },
}

#[derive(Debug, Deserialize)]
struct PythonZone {
    tzid: String,
    checked: usize,
    mismatches: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct PythonReading {
    events: Vec<PythonEvent>,
    zones: Vec<PythonZone>,
}

fn expected_start(start: &SeriesStart) -> PythonStart {
    match *start {
        SeriesStart::Zoned { local, zone } => PythonStart::Zoned {
            utc: resolve_local(local, zone)
                .format("%Y%m%dT%H%M%SZ")
                .to_string(),
            tzid: (zone != Tz::UTC).then(|| zone.name().to_owned()),
        },
        SeriesStart::Floating(local) => PythonStart::Floating {
            floating: local.format("%Y%m%dT%H%M%S").to_string(),
        },
        SeriesStart::AllDay(day) => PythonStart::Date {
            date: day.format("%Y%m%d").to_string(),
        },
    }
}

/// The interpreter to use, or why the check cannot run.
fn python_with_icalendar() -> Result<String, String> {
    let python = std::env::var("POTENTIA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    match Command::new(&python)
        .args(["-c", "import icalendar"])
        .output()
    {
        Err(error) => Err(format!("`{python}` cannot be run: {error}")),
        Ok(output) if !output.status.success() => Err(format!(
            "`{python} -c 'import icalendar'` failed ({}); install it with `pip install icalendar`",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(_) => Ok(python),
    }
}

fn read_with_python(python: &str, text: &str, years: (i32, i32)) -> PythonReading {
    let mut child = Command::new(python)
        .args([
            "-c",
            PYTHON_READER,
            &years.0.to_string(),
            &years.1.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("the export is written to python");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "Python's icalendar could not read our output:\n{}\n--- the file ---\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the reader prints JSON")
}

#[test]
fn python_icalendar_reads_our_export_with_the_same_uids_summaries_starts_and_offsets() {
    let python = match python_with_icalendar() {
        Ok(python) => python,
        Err(reason) => {
            let required = std::env::var("POTENTIA_REQUIRE_PY_ICALENDAR").as_deref() == Ok("1");
            if required {
                panic!(
                    "POTENTIA_REQUIRE_PY_ICALENDAR=1 but the independent-parser check cannot \
                     run: {reason}"
                );
            }
            println!(
                "SKIPPED: independent-parser check (Python icalendar): {reason}. Set \
                 POTENTIA_REQUIRE_PY_ICALENDAR=1 to make this a failure."
            );
            return;
        }
    };
    let google = ical::import(&fixture("google_calendar_export.ics")).expect("imports");
    for (what, calendar, years) in [
        ("sample calendar", sample_calendar(), (1999, 2040)),
        ("Google fixture re-exported", google.calendar, (2023, 2030)),
    ] {
        let text = ical::export(&calendar, stamp());
        let reading = read_with_python(&python, &text, years);
        let mut expected: Vec<PythonEvent> = calendar
            .events
            .iter()
            .map(|event| PythonEvent {
                uid: event.uid.clone(),
                summary: event.summary.clone(),
                dtstart: expected_start(&event.start),
            })
            .collect();
        let mut actual = reading.events;
        expected.sort();
        actual.sort();
        assert_eq!(actual, expected, "{what}");
        assert!(!reading.zones.is_empty(), "{what}");
        for zone in &reading.zones {
            assert!(zone.checked > 0);
            assert!(
                zone.mismatches.is_empty(),
                "{what}: VTIMEZONE {} disagrees with zoneinfo:\n{}",
                zone.tzid,
                zone.mismatches.join("\n")
            );
        }
        println!(
            "Python icalendar read the {what}: {} events, {} VTIMEZONEs checked against zoneinfo over {}-{}",
            actual.len(),
            reading.zones.len(),
            years.0,
            years.1
        );
    }
}

#[test]
fn reminders_are_exported_as_display_alarms_and_read_back() {
    let mut event = Event::new("remind", zoned("2026-03-10T09:00", "Europe/Berlin"));
    event.summary = Some("Dentist".into());
    event.reminders = vec![0, 30, 1440];
    let calendar = Calendar {
        name: Some("Alarms".into()),
        time_zone: None,
        events: vec![event],
    };
    let text = ical::export(&calendar, stamp());
    assert!(
        text.contains(
            "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Dentist\r\nTRIGGER:-PT30M\r\nEND:VALARM"
        ),
        "{text}"
    );
    assert!(text.contains("TRIGGER:PT0S\r\n"), "{text}");
    assert!(text.contains("TRIGGER:-PT24H\r\n"), "{text}");
    let report = ical::import(text.as_bytes()).unwrap();
    assert_eq!(report.calendar.events[0].reminders, vec![0, 30, 1440]);
}
