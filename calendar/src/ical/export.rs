//! Writing a [`Calendar`] as an `.ics` feed. See the module documentation of
//! [`crate::ical`].

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::content_line::{encode_parameter_value, escape_text, strip_controls, write_folded};
use super::vtimezone::write_vtimezone;
use super::{Calendar, Event, EventEnd, IcalDuration, RecurrenceId, PRODID};
use crate::recurrence::{OriginalStart, RecurrenceDate, RecurrenceRule, SeriesStart, Until};
use crate::timezone::resolve_local;

/// Writes `calendar` as iCalendar text. `stamp` is written as every event's `DTSTAMP` (for
/// a published feed: when the feed was generated).
pub fn export(calendar: &Calendar, stamp: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(512 + calendar.events.len() * 400);
    let mut line = |text: &str| write_folded(&mut out, text);
    line("BEGIN:VCALENDAR");
    line("VERSION:2.0");
    line(&format!("PRODID:{PRODID}"));
    line("CALSCALE:GREGORIAN");
    line("METHOD:PUBLISH");
    if let Some(name) = &calendar.name {
        line(&format!("X-WR-CALNAME:{}", escape_text(name)));
    }
    if let Some(zone) = calendar.time_zone {
        line(&format!("X-WR-TIMEZONE:{}", zone.name()));
    }
    for (zone, (first_year, last_year)) in zone_year_spans(calendar, stamp) {
        for vtimezone_line in write_vtimezone(zone, first_year, last_year) {
            line(&vtimezone_line);
        }
    }
    let series_starts: HashMap<&str, SeriesStart> = calendar
        .events
        .iter()
        .filter(|event| event.recurrence_id.is_none())
        .map(|event| (event.uid.as_str(), event.start))
        .collect();
    let stamp_text = utc_text(stamp);
    for event in &calendar.events {
        let series_start = series_starts
            .get(event.uid.as_str())
            .copied()
            .unwrap_or(event.start);
        for event_line in event_lines(event, &series_start, &stamp_text) {
            line(&event_line);
        }
    }
    line("END:VCALENDAR");
    out
}

/// The content lines of one `VEVENT`, unfolded.
fn event_lines(event: &Event, series_start: &SeriesStart, stamp: &str) -> Vec<String> {
    let mut lines = vec![
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}", escape_text(&event.uid)),
        format!("DTSTAMP:{stamp}"),
        time_property("DTSTART", &event.start),
    ];
    match event.end {
        Some(EventEnd::At(end)) => lines.push(time_property("DTEND", &end)),
        Some(EventEnd::Duration(duration)) => lines.push(format!("DURATION:{duration}")),
        None => {}
    }
    if let Some(recurrence) = &event.recurrence {
        for rule in recurrence.rules() {
            lines.push(format!("RRULE:{}", rule_for_export(rule, &event.start)));
        }
        lines.extend(date_list_properties(
            "RDATE",
            &recurrence.rdates(),
            &event.start,
        ));
        lines.extend(date_list_properties(
            "EXDATE",
            &recurrence.exdates(),
            &event.start,
        ));
    }
    if let Some(recurrence_id) = &event.recurrence_id {
        lines.push(recurrence_id_property(recurrence_id, series_start));
    }
    for (name, value) in [
        ("SUMMARY", &event.summary),
        ("DESCRIPTION", &event.description),
        ("LOCATION", &event.location),
    ] {
        if let Some(value) = value {
            lines.push(format!("{name}:{}", escape_text(value)));
        }
    }
    if let Some(status) = event.status {
        lines.push(format!("STATUS:{}", status.as_ical()));
    }
    lines.push(format!("TRANSP:{}", event.transparency.as_ical()));
    lines.push(format!("SEQUENCE:{}", event.sequence));
    if let Some(organizer) = &event.organizer {
        lines.push(format!(
            "ORGANIZER{}:{}",
            common_name_parameter(organizer.common_name.as_deref()),
            strip_controls(&organizer.address)
        ));
    }
    for attendee in &event.attendees {
        lines.push(format!(
            "ATTENDEE{};ROLE={};PARTSTAT={}:{}",
            common_name_parameter(attendee.common_name.as_deref()),
            attendee.role.as_ical(),
            attendee.participation.as_ical(),
            strip_controls(&attendee.address)
        ));
    }
    for minutes in &event.reminders {
        lines.extend(alarm_lines(*minutes, event.summary.as_deref()));
    }
    lines.push("END:VEVENT".to_owned());
    lines
}

/// A display alarm `minutes` before the start.
fn alarm_lines(minutes: u32, summary: Option<&str>) -> [String; 5] {
    let before = IcalDuration {
        days: 0,
        seconds: minutes.saturating_mul(60),
    };
    let sign = if minutes == 0 { "" } else { "-" };
    [
        "BEGIN:VALARM".to_owned(),
        "ACTION:DISPLAY".to_owned(),
        format!("DESCRIPTION:{}", escape_text(summary.unwrap_or("Reminder"))),
        format!("TRIGGER:{sign}{before}"),
        "END:VALARM".to_owned(),
    ]
}

fn common_name_parameter(common_name: Option<&str>) -> String {
    common_name.map_or_else(String::new, |name| {
        format!(";CN={}", encode_parameter_value(name))
    })
}

fn local_text(local: NaiveDateTime) -> String {
    local.format("%Y%m%dT%H%M%S").to_string()
}

fn utc_text(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

fn date_text(date: chrono::NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

/// `DTSTART`/`DTEND`: `;VALUE=DATE:…` for dates, `…Z` for UTC, `;TZID=…:…` for other zones,
/// and no zone for floating times.
fn time_property(name: &str, time: &SeriesStart) -> String {
    match *time {
        SeriesStart::AllDay(date) => format!("{name};VALUE=DATE:{}", date_text(date)),
        SeriesStart::Zoned {
            local,
            zone: Tz::UTC,
        } => {
            format!("{name}:{}Z", local_text(local))
        }
        SeriesStart::Zoned { local, zone } => {
            format!("{name};TZID={}:{}", zone.name(), local_text(local))
        }
        SeriesStart::Floating(local) => format!("{name}:{}", local_text(local)),
    }
}

/// The rule as RFC 5545 wants it for this start: a zoned series' `UNTIL` in UTC (a local
/// `UNTIL` is the instant of that wall-clock time; a date `UNTIL` the last second of that local
/// day), an all-day series' `UNTIL` as a date (its date, which is how an all-day series reads
/// any `UNTIL`). Floating series keep theirs.
fn rule_for_export(rule: &RecurrenceRule, start: &SeriesStart) -> String {
    let until = match (*start, rule.until()) {
        (SeriesStart::Zoned { zone, .. }, Some(Until::Local(local))) => {
            Until::Utc(resolve_local(local, zone))
        }
        (SeriesStart::Zoned { zone, .. }, Some(Until::Date(date))) => Until::Utc(resolve_local(
            date.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN)),
            zone,
        )),
        (SeriesStart::AllDay(_), Some(Until::Utc(at))) => Until::Date(at.date_naive()),
        (SeriesStart::AllDay(_), Some(Until::Local(local))) => Until::Date(local.date()),
        _ => return rule.to_string(),
    };
    let mut rewritten = rule.clone();
    rewritten.until = Some(until);
    rewritten.to_string()
}

/// `RDATE`/`EXDATE` lines: one for the values in the series' zone (or floating), one for UTC
/// instants, one for dates; each a comma-separated list.
fn date_list_properties(name: &str, dates: &[RecurrenceDate], start: &SeriesStart) -> Vec<String> {
    let mut local = Vec::new();
    let mut utc = Vec::new();
    let mut days = Vec::new();
    for date in dates {
        match *date {
            RecurrenceDate::Local(at) => match start {
                SeriesStart::Zoned { zone, .. } if *zone == Tz::UTC => {
                    utc.push(format!("{}Z", local_text(at)));
                }
                _ => local.push(local_text(at)),
            },
            RecurrenceDate::Utc(at) => utc.push(utc_text(at)),
            RecurrenceDate::Date(day) => days.push(date_text(day)),
        }
    }
    let mut lines = Vec::new();
    if !local.is_empty() {
        lines.push(match start {
            SeriesStart::Zoned { zone, .. } => {
                format!("{name};TZID={}:{}", zone.name(), local.join(","))
            }
            _ => format!("{name}:{}", local.join(",")),
        });
    }
    if !utc.is_empty() {
        lines.push(format!("{name}:{}", utc.join(",")));
    }
    if !days.is_empty() {
        lines.push(format!("{name};VALUE=DATE:{}", days.join(",")));
    }
    lines
}

/// `RECURRENCE-ID` in the form of the series' `DTSTART`.
fn recurrence_id_property(recurrence_id: &RecurrenceId, series_start: &SeriesStart) -> String {
    let range = if recurrence_id.this_and_future {
        ";RANGE=THISANDFUTURE"
    } else {
        ""
    };
    let local = match (recurrence_id.original_start, series_start) {
        (OriginalStart::Date(date), _) => {
            return format!("RECURRENCE-ID;VALUE=DATE{range}:{}", date_text(date));
        }
        (OriginalStart::DateTime(local), SeriesStart::AllDay(_)) => {
            return format!(
                "RECURRENCE-ID;VALUE=DATE{range}:{}",
                date_text(local.date())
            );
        }
        (OriginalStart::DateTime(local), _) => local,
    };
    match *series_start {
        SeriesStart::Zoned { zone: Tz::UTC, .. } => {
            format!("RECURRENCE-ID{range}:{}Z", local_text(local))
        }
        SeriesStart::Zoned { zone, .. } => format!(
            "RECURRENCE-ID;TZID={}{range}:{}",
            zone.name(),
            local_text(local)
        ),
        _ => format!("RECURRENCE-ID{range}:{}", local_text(local)),
    }
}

/// For every zone the events use (other than UTC): the first and last year a `VTIMEZONE`
/// must cover. It starts a year before the earliest local time in that zone and ends a year
/// after the later of the latest one and `stamp`; the rule in force then is written
/// open-ended, so later years are covered too.
fn zone_year_spans(calendar: &Calendar, stamp: DateTime<Utc>) -> Vec<(Tz, (i32, i32))> {
    // Keyed by name so that the output order is stable.
    let mut spans: BTreeMap<&'static str, (Tz, i32, i32)> = BTreeMap::new();
    let mut note = |time: &SeriesStart| {
        if let SeriesStart::Zoned { local, zone } = *time {
            if zone != Tz::UTC {
                let year = local.year();
                let span = spans.entry(zone.name()).or_insert((zone, year, year));
                span.1 = span.1.min(year);
                span.2 = span.2.max(year);
            }
        }
    };
    for event in &calendar.events {
        note(&event.start);
        if let Some(EventEnd::At(end)) = &event.end {
            note(end);
        }
    }
    spans
        .into_values()
        .map(|(zone, first, last)| (zone, (first - 1, last.max(stamp.year()) + 1)))
        .collect()
}
