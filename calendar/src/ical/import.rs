//! Reading an `.ics` file: structure first (components, limits), then each `VEVENT` on its
//! own, so one bad event never stops the others. See the module documentation of
//! [`crate::ical`] for what fails how.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use super::content_line::{excerpt, parse_content_line, unfold, ContentLine, UnfoldedLine};
use super::zones::resolve_tzid;
use super::{
    Attendee, Calendar, Event, EventEnd, IcalDuration, ImportReport, ImportWarning, Organizer,
    RecurrenceId, SkippedEvent, MAX_EVENTS, MAX_INPUT_BYTES, MAX_NESTING, MAX_WARNINGS,
};
use crate::error::RecurrenceProperty;
use crate::event::{AttendeeRole, EventStatus, ParticipationStatus, Transparency};
use crate::recurrence::ical::{parse_ical_date, parse_ical_date_time, IcalDateTime};
use crate::recurrence::{OriginalStart, Recurrence, RecurrenceDate, SeriesStart};
use crate::timezone::{parse_zone, resolve_local};
use crate::CalendarError;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads an `.ics` file. Fails as a whole only on limits and broken structure; events that
/// cannot be read are listed in [`ImportReport::skipped`].
pub fn import(input: &[u8]) -> Result<ImportReport, CalendarError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(CalendarError::IcalLimitExceeded {
            message: format!(
                "the file is {} bytes; at most {MAX_INPUT_BYTES} bytes are accepted",
                input.len()
            ),
        });
    }
    let input = input.strip_prefix(UTF8_BOM).unwrap_or(input);
    let mut reader = StructureReader::default();
    for line in unfold(input)? {
        reader.read_line(line)?;
    }
    reader.finish()?;
    Ok(reader.into_report())
}

/// Minutes before the start a `TRIGGER` fires (RFC 5545 §3.8.6.3): a duration before or at
/// the start. Absolute triggers, triggers relative to the end and triggers after the start
/// have no reminder to become.
fn reminder_minutes(trigger: &ContentLine) -> Result<u32, String> {
    if trigger.parameter_is("VALUE", "DATE-TIME") {
        return Err("an absolute TRIGGER (VALUE=DATE-TIME) has no offset from the start".into());
    }
    if trigger.parameter_is("RELATED", "END") {
        return Err("a TRIGGER relative to the end (RELATED=END) is not supported".into());
    }
    let value = trigger.value.trim();
    let (before, duration) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let duration = IcalDuration::parse(duration)?;
    let seconds = u64::from(duration.days) * 86_400 + u64::from(duration.seconds);
    if !before && seconds > 0 {
        return Err(format!("TRIGGER:{value} fires after the start"));
    }
    u32::try_from(seconds / 60).map_err(|_| format!("TRIGGER:{value} is too far before the start"))
}

/// A component that has begun and not yet ended.
#[derive(Debug)]
struct OpenComponent {
    name: String,
    line: usize,
}

/// The content lines of one `VEVENT` (its own, not those of a nested `VALARM`), and the
/// reminders its `VALARM`s give.
#[derive(Debug)]
struct RawEvent {
    line: usize,
    properties: Vec<ContentLine>,
    reminders: Vec<u32>,
}

/// A `VALARM` being read: where it begins and its `TRIGGER`.
#[derive(Debug)]
struct RawAlarm {
    line: usize,
    trigger: Option<ContentLine>,
}

/// What a `VTIMEZONE` tells us: its id and, when given, the IANA name it stands for.
#[derive(Debug, Default)]
struct RawTimezone {
    tzid: Option<String>,
    location: Option<String>,
}

#[derive(Debug, Default)]
struct StructureReader {
    open: Vec<OpenComponent>,
    calendars_seen: usize,
    event_count: usize,
    calendar_name: Option<String>,
    fallback_name: Option<String>,
    calendar_zone: Option<ContentLine>,
    events: Vec<RawEvent>,
    current_event: Option<RawEvent>,
    current_alarm: Option<RawAlarm>,
    timezones: Vec<RawTimezone>,
    current_timezone: Option<RawTimezone>,
    warnings: Vec<ImportWarning>,
    warnings_omitted: usize,
    /// Calendar components other than `VEVENT` and `VTIMEZONE` (`VTODO`, `VJOURNAL`, …): how
    /// many, and the line of the first.
    ignored_components: BTreeMap<String, (usize, usize)>,
}

impl StructureReader {
    fn warn(&mut self, line: usize, message: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(ImportWarning { line, message });
        } else {
            self.warnings_omitted += 1;
        }
    }

    fn read_line(&mut self, unfolded: UnfoldedLine) -> Result<(), CalendarError> {
        let number = unfolded.number;
        let text = match String::from_utf8(unfolded.bytes) {
            Ok(text) => text,
            Err(error) => {
                self.warn(
                    number,
                    "the line is not valid UTF-8; invalid bytes were replaced with U+FFFD"
                        .to_owned(),
                );
                String::from_utf8_lossy(error.as_bytes()).into_owned()
            }
        };
        let parsed = parse_content_line(number, &text);
        if self.open.is_empty() {
            return self.read_outside_calendar(number, &text, parsed);
        }
        let line = match parsed {
            Ok(line) => line,
            Err(message) => {
                self.warn(number, format!("{message}; the line was ignored"));
                return Ok(());
            }
        };
        match line.name.as_str() {
            "BEGIN" => self.begin(&line),
            "END" => self.end(&line),
            _ => {
                self.property(line);
                Ok(())
            }
        }
    }

    fn read_outside_calendar(
        &mut self,
        number: usize,
        text: &str,
        parsed: Result<ContentLine, String>,
    ) -> Result<(), CalendarError> {
        match parsed {
            Ok(line) if line.name == "BEGIN" && component_name(&line) == "VCALENDAR" => {
                self.calendars_seen += 1;
                self.open.push(OpenComponent {
                    name: "VCALENDAR".to_owned(),
                    line: number,
                });
                Ok(())
            }
            _ if self.calendars_seen == 0 => Err(CalendarError::ical(
                number,
                format!(
                    "this is not an iCalendar file: expected BEGIN:VCALENDAR, found `{}`",
                    excerpt(text)
                ),
            )),
            _ => {
                self.warn(
                    number,
                    format!("`{}` after END:VCALENDAR was ignored", excerpt(text.trim())),
                );
                Ok(())
            }
        }
    }

    fn begin(&mut self, line: &ContentLine) -> Result<(), CalendarError> {
        let name = component_name(line);
        if name.is_empty() {
            return Err(CalendarError::ical(
                line.line,
                "BEGIN without a component name",
            ));
        }
        if self.open.len() >= MAX_NESTING {
            return Err(CalendarError::IcalLimitExceeded {
                message: format!(
                    "line {}: components are nested more than {MAX_NESTING} deep",
                    line.line
                ),
            });
        }
        let parent = self.open.last().map(|open| (open.name.clone(), open.line));
        let directly_in_calendar = self.open.len() == 1;
        match name.as_str() {
            "VCALENDAR" => {
                if let Some((parent, parent_line)) = parent {
                    return Err(CalendarError::ical(
                        line.line,
                        format!(
                            "BEGIN:VCALENDAR inside {parent} (begun on line {parent_line}); is \
                             an END:{parent} missing?"
                        ),
                    ));
                }
            }
            "VEVENT" => {
                if !directly_in_calendar {
                    let (parent, parent_line) = parent.unwrap_or_default();
                    return Err(CalendarError::ical(
                        line.line,
                        format!(
                            "BEGIN:VEVENT inside {parent} (begun on line {parent_line}); is an \
                             END:{parent} missing?"
                        ),
                    ));
                }
                self.event_count += 1;
                if self.event_count > MAX_EVENTS {
                    return Err(CalendarError::IcalLimitExceeded {
                        message: format!(
                            "the file has more than {MAX_EVENTS} events (VEVENT); at most \
                             {MAX_EVENTS} are accepted"
                        ),
                    });
                }
                self.current_event = Some(RawEvent {
                    line: line.line,
                    properties: Vec::new(),
                    reminders: Vec::new(),
                });
            }
            "VALARM" if self.open.len() == 2 && self.current_event.is_some() => {
                self.current_alarm = Some(RawAlarm {
                    line: line.line,
                    trigger: None,
                });
            }
            "VTIMEZONE" if directly_in_calendar => {
                self.current_timezone = Some(RawTimezone::default());
            }
            _ if directly_in_calendar => {
                self.ignored_components
                    .entry(name.clone())
                    .or_insert((0, line.line))
                    .0 += 1;
            }
            _ => {}
        }
        self.open.push(OpenComponent {
            name,
            line: line.line,
        });
        Ok(())
    }

    fn end(&mut self, line: &ContentLine) -> Result<(), CalendarError> {
        let name = component_name(line);
        let Some(open) = self.open.pop() else {
            return Err(CalendarError::ical(
                line.line,
                format!("END:{name} without a matching BEGIN"),
            ));
        };
        if open.name != name {
            return Err(CalendarError::ical(
                line.line,
                format!(
                    "END:{name} does not close {} (begun on line {}); is an END:{} missing?",
                    open.name, open.line, open.name
                ),
            ));
        }
        let closed_depth = self.open.len() + 1;
        match name.as_str() {
            "VEVENT" if closed_depth == 2 => {
                if let Some(event) = self.current_event.take() {
                    self.events.push(event);
                }
            }
            "VTIMEZONE" if closed_depth == 2 => {
                if let Some(timezone) = self.current_timezone.take() {
                    self.timezones.push(timezone);
                }
            }
            "VALARM" if closed_depth == 3 => {
                if let Some(alarm) = self.current_alarm.take() {
                    self.finish_alarm(alarm);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Keeps an alarm's `TRIGGER` as a reminder (minutes before the start), or says why not.
    fn finish_alarm(&mut self, alarm: RawAlarm) {
        let Some(trigger) = alarm.trigger else {
            self.warn(
                alarm.line,
                "a VALARM without TRIGGER was ignored".to_owned(),
            );
            return;
        };
        match reminder_minutes(&trigger) {
            Ok(minutes) => {
                if let Some(event) = self.current_event.as_mut() {
                    if !event.reminders.contains(&minutes) {
                        event.reminders.push(minutes);
                    }
                }
            }
            Err(reason) => self.warn(
                trigger.line,
                format!("the VALARM was not kept as a reminder: {reason}"),
            ),
        }
    }

    fn property(&mut self, line: ContentLine) {
        let depth = self.open.len();
        let Some(component) = self.open.last().map(|open| open.name.as_str()) else {
            return;
        };
        match (depth, component) {
            (3, "VALARM") if line.name == "TRIGGER" => {
                if let Some(alarm) = self.current_alarm.as_mut() {
                    alarm.trigger.get_or_insert(line);
                }
            }
            (2, "VEVENT") => {
                if let Some(event) = self.current_event.as_mut() {
                    event.properties.push(line);
                }
            }
            (2, "VTIMEZONE") => {
                if let Some(timezone) = self.current_timezone.as_mut() {
                    match line.name.as_str() {
                        "TZID" => timezone.tzid = Some(line.text().trim().to_owned()),
                        "X-LIC-LOCATION" => {
                            timezone.location = Some(line.text().trim().to_owned());
                        }
                        _ => {}
                    }
                }
            }
            (1, "VCALENDAR") => match line.name.as_str() {
                "X-WR-CALNAME" if self.calendar_name.is_none() => {
                    self.calendar_name = Some(line.text());
                }
                "NAME" if self.fallback_name.is_none() => self.fallback_name = Some(line.text()),
                "X-WR-TIMEZONE" if self.calendar_zone.is_none() => {
                    self.calendar_zone = Some(line);
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn finish(&self) -> Result<(), CalendarError> {
        if let Some(open) = self.open.last() {
            return Err(CalendarError::ical(
                open.line,
                format!(
                    "{} is never closed (END:{} is missing); the file may be truncated",
                    open.name, open.name
                ),
            ));
        }
        if self.calendars_seen == 0 {
            return Err(CalendarError::ical(
                0,
                "the input is empty: expected an iCalendar file starting with BEGIN:VCALENDAR",
            ));
        }
        Ok(())
    }

    fn into_report(mut self) -> ImportReport {
        for (name, (count, first_line)) in std::mem::take(&mut self.ignored_components) {
            let what = if count == 1 {
                format!("a {name} component was ignored")
            } else {
                format!("{count} {name} components (the first on this line) were ignored")
            };
            self.warn(
                first_line,
                format!("{what}: only events (VEVENT) are imported"),
            );
        }
        let zones = ZoneResolver::new(&self.timezones);
        let time_zone = match self.calendar_zone.take() {
            Some(line) => match zones.resolve(line.text().trim()) {
                Ok(zone) => Some(zone),
                Err(error) => {
                    self.warn(line.line, format!("X-WR-TIMEZONE ignored: {error}"));
                    None
                }
            },
            None => None,
        };
        let mut read: Vec<ReadEvent> = Vec::new();
        let mut skipped: Vec<SkippedEvent> = Vec::new();
        for raw in &self.events {
            match read_event(raw, &zones) {
                Ok(event) => read.push(event),
                Err(reason) => skipped.push(SkippedEvent {
                    line: raw.line,
                    uid: first_text(&raw.properties, "UID")
                        .map(|uid| uid.trim().to_owned())
                        .filter(|uid| !uid.is_empty()),
                    summary: first_text(&raw.properties, "SUMMARY"),
                    reason,
                }),
            }
        }
        let events = link_exceptions_to_series(read, &mut skipped);
        skipped.sort_by_key(|skipped| skipped.line);
        self.warnings.sort_by_key(|warning| warning.line);
        ImportReport {
            calendar: Calendar {
                name: self.calendar_name.or(self.fallback_name),
                time_zone,
                events,
            },
            skipped,
            warnings: self.warnings,
            warnings_omitted: self.warnings_omitted,
        }
    }
}

/// The component name of a `BEGIN`/`END` line, upper-cased.
fn component_name(line: &ContentLine) -> String {
    line.value.trim().to_ascii_uppercase()
}

fn first<'a>(properties: &'a [ContentLine], name: &str) -> Option<&'a ContentLine> {
    properties.iter().find(|line| line.name == name)
}

fn first_text(properties: &[ContentLine], name: &str) -> Option<String> {
    first(properties, name).map(ContentLine::text)
}

/// Maps `TZID`s to IANA zones: a `VTIMEZONE`'s `X-LIC-LOCATION` first, then
/// [`resolve_tzid`].
struct ZoneResolver {
    by_vtimezone: HashMap<String, Tz>,
}

impl ZoneResolver {
    fn new(timezones: &[RawTimezone]) -> Self {
        let by_vtimezone = timezones
            .iter()
            .filter_map(|timezone| {
                let tzid = timezone.tzid.clone()?;
                let zone = parse_zone(timezone.location.as_deref()?).ok()?;
                Some((tzid, zone))
            })
            .collect();
        Self { by_vtimezone }
    }

    fn resolve(&self, tzid: &str) -> Result<Tz, CalendarError> {
        self.by_vtimezone
            .get(tzid)
            .copied()
            .or_else(|| resolve_tzid(tzid))
            .ok_or_else(|| CalendarError::UnrecognizedTzid {
                tzid: tzid.to_owned(),
            })
    }
}

/// An event as read, before its `RECURRENCE-ID` is put in its series' terms.
struct ReadEvent {
    line: usize,
    event: Event,
    recurrence_id: Option<(SeriesStart, bool)>,
}

fn read_event(raw: &RawEvent, zones: &ZoneResolver) -> Result<ReadEvent, CalendarError> {
    let properties = &raw.properties;
    let uid = first_text(properties, "UID")
        .map(|uid| uid.trim().to_owned())
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| {
            CalendarError::ical(
                raw.line,
                "the event has no UID; every event needs one to be imported",
            )
        })?;
    let start_line = first(properties, "DTSTART")
        .ok_or_else(|| CalendarError::ical(raw.line, "the event has no DTSTART"))?;
    let start = read_time(start_line, zones)?;
    let end = read_end(properties, &start, zones)?;

    let mut rules: Vec<String> = Vec::new();
    let mut rdates: Vec<RecurrenceDate> = Vec::new();
    let mut exdates: Vec<RecurrenceDate> = Vec::new();
    for line in properties {
        match line.name.as_str() {
            "RRULE" => rules.push(line.value.trim().to_owned()),
            "RDATE" => rdates.extend(read_date_list(
                line,
                &start,
                zones,
                RecurrenceProperty::Rdate,
            )?),
            "EXDATE" => exdates.extend(read_date_list(
                line,
                &start,
                zones,
                RecurrenceProperty::Exdate,
            )?),
            _ => {}
        }
    }
    let recurrence = if rules.is_empty() && rdates.is_empty() {
        None
    } else {
        Some(Recurrence::new(start, &rules, &rdates, &exdates)?)
    };
    let recurrence_id = match first(properties, "RECURRENCE-ID") {
        Some(line) => Some((
            read_time(line, zones)?,
            line.parameter_is("RANGE", "THISANDFUTURE"),
        )),
        None => None,
    };

    let organizer = first(properties, "ORGANIZER").map(|line| Organizer {
        address: line.value.trim().to_owned(),
        common_name: line.parameter("CN").map(str::to_owned),
    });
    let attendees = properties
        .iter()
        .filter(|line| line.name == "ATTENDEE")
        .map(|line| Attendee {
            address: line.value.trim().to_owned(),
            common_name: line.parameter("CN").map(str::to_owned),
            role: line
                .parameter("ROLE")
                .map(AttendeeRole::from_ical)
                .unwrap_or_default(),
            participation: line
                .parameter("PARTSTAT")
                .map(ParticipationStatus::from_ical)
                .unwrap_or_default(),
        })
        .collect();

    let event = Event {
        uid,
        sequence: first(properties, "SEQUENCE")
            .and_then(|line| line.value.trim().parse().ok())
            .unwrap_or(0),
        summary: first_text(properties, "SUMMARY"),
        description: first_text(properties, "DESCRIPTION"),
        location: first_text(properties, "LOCATION"),
        start,
        end,
        status: first(properties, "STATUS").and_then(|line| EventStatus::from_ical(&line.value)),
        transparency: first(properties, "TRANSP")
            .and_then(|line| Transparency::from_ical(&line.value))
            .unwrap_or_default(),
        recurrence,
        recurrence_id: None,
        organizer,
        attendees,
        reminders: {
            let mut reminders = raw.reminders.clone();
            reminders.sort_unstable();
            reminders
        },
    };
    Ok(ReadEvent {
        line: raw.line,
        event,
        recurrence_id,
    })
}

/// Reads a `DTSTART`, `DTEND` or `RECURRENCE-ID` value with its `TZID`.
fn read_time(line: &ContentLine, zones: &ZoneResolver) -> Result<SeriesStart, CalendarError> {
    let value = line.value.trim();
    if value.len() == 8 || line.parameter_is("VALUE", "DATE") {
        return parse_ical_date(value)
            .map(SeriesStart::AllDay)
            .ok_or_else(|| {
                CalendarError::ical(
                    line.line,
                    format!("{}: `{value}` is not a valid date (YYYYMMDD)", line.name),
                )
            });
    }
    match parse_ical_date_time(value) {
        Some(IcalDateTime::Utc(at)) => Ok(SeriesStart::Zoned {
            local: at.naive_utc(),
            zone: Tz::UTC,
        }),
        Some(IcalDateTime::Local(local)) => match line.parameter("TZID") {
            Some(tzid) => Ok(SeriesStart::Zoned {
                local,
                zone: zones.resolve(tzid)?,
            }),
            None => Ok(SeriesStart::Floating(local)),
        },
        None => Err(CalendarError::ical(
            line.line,
            format!(
                "{}: `{}` is not a date-time (YYYYMMDDTHHMMSS, optionally ending in Z) or a \
                 date (YYYYMMDD)",
                line.name,
                excerpt(value)
            ),
        )),
    }
}

/// Reads `DTEND` (preferred) or `DURATION`, checking it suits `DTSTART` and is not before it.
fn read_end(
    properties: &[ContentLine],
    start: &SeriesStart,
    zones: &ZoneResolver,
) -> Result<Option<EventEnd>, CalendarError> {
    if let Some(line) = first(properties, "DTEND") {
        let end = read_time(line, zones)?;
        return match (start, end) {
            (SeriesStart::AllDay(first_day), SeriesStart::AllDay(end_day)) => {
                // An end on or before the start (some Outlook versions) means one day.
                Ok(Some(EventEnd::At(SeriesStart::AllDay(
                    if end_day <= *first_day {
                        first_day.succ_opt().unwrap_or(*first_day)
                    } else {
                        end_day
                    },
                ))))
            }
            (SeriesStart::AllDay(_), _) | (_, SeriesStart::AllDay(_)) => Err(CalendarError::ical(
                line.line,
                "DTEND must be a date when DTSTART is a date, and a date-time when DTSTART is a \
                 date-time",
            )),
            _ => {
                if ends_before_start(start, &end) {
                    return Err(CalendarError::ical(
                        line.line,
                        format!("DTEND `{}` is before DTSTART", line.value.trim()),
                    ));
                }
                Ok(Some(EventEnd::At(end)))
            }
        };
    }
    match first(properties, "DURATION") {
        Some(line) => IcalDuration::parse(&line.value)
            .map(|duration| Some(EventEnd::Duration(duration)))
            .map_err(|message| CalendarError::ical(line.line, format!("DURATION: {message}"))),
        None => Ok(None),
    }
}

/// True when a timed end is certainly before its start: both zoned, compared as instants, or
/// both floating, compared as wall-clock times. A floating time against a zoned one cannot be
/// compared without the viewer's zone and is accepted.
fn ends_before_start(start: &SeriesStart, end: &SeriesStart) -> bool {
    match (start, end) {
        (
            SeriesStart::Zoned {
                local: start_local,
                zone: start_zone,
            },
            SeriesStart::Zoned {
                local: end_local,
                zone: end_zone,
            },
        ) => resolve_local(*end_local, *end_zone) < resolve_local(*start_local, *start_zone),
        (SeriesStart::Floating(start_local), SeriesStart::Floating(end_local)) => {
            end_local < start_local
        }
        _ => false,
    }
}

/// Reads one `RDATE` or `EXDATE` line (a comma-separated list) in terms of the series start.
fn read_date_list(
    line: &ContentLine,
    start: &SeriesStart,
    zones: &ZoneResolver,
    property: RecurrenceProperty,
) -> Result<Vec<RecurrenceDate>, CalendarError> {
    let zone = line
        .parameter("TZID")
        .map(|tzid| zones.resolve(tzid))
        .transpose()?;
    let series_time = start.local_start().time();
    let mut dates = Vec::new();
    for item in line.value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        // A PERIOD (`start/end` or `start/duration`) keeps its start.
        let value = item.split('/').next().unwrap_or(item).trim();
        let malformed = || {
            CalendarError::ical(
                line.line,
                format!(
                    "{property}: `{}` is not a date (YYYYMMDD) or a date-time \
                     (YYYYMMDDTHHMMSS, optionally ending in Z)",
                    excerpt(value)
                ),
            )
        };
        let date = if value.len() == 8 {
            let date = parse_ical_date(value).ok_or_else(malformed)?;
            match start {
                SeriesStart::AllDay(_) => RecurrenceDate::Date(date),
                _ => in_series_terms(date.and_time(series_time), zone, start),
            }
        } else {
            match parse_ical_date_time(value).ok_or_else(malformed)? {
                IcalDateTime::Utc(at) => match start {
                    SeriesStart::AllDay(_) => RecurrenceDate::Date(at.date_naive()),
                    _ => RecurrenceDate::Utc(at),
                },
                IcalDateTime::Local(local) => in_series_terms(local, zone, start),
            }
        };
        dates.push(date);
    }
    Ok(dates)
}

/// A local `RDATE`/`EXDATE` (with the line's zone, if any) as the series understands it.
fn in_series_terms(local: NaiveDateTime, zone: Option<Tz>, start: &SeriesStart) -> RecurrenceDate {
    match (start, zone) {
        (SeriesStart::AllDay(_), _) => RecurrenceDate::Date(local.date()),
        (SeriesStart::Zoned { zone: series, .. }, Some(zone)) if *series != zone => {
            RecurrenceDate::in_zone(local, zone)
        }
        _ => RecurrenceDate::Local(local),
    }
}

/// The original start a `RECURRENCE-ID` names, in the terms of the series that starts at
/// `series`: its local time (or date for all-day series).
fn original_start_in_series(series: &SeriesStart, value: &SeriesStart) -> OriginalStart {
    match (series, value) {
        (SeriesStart::AllDay(_), SeriesStart::AllDay(date)) => OriginalStart::Date(*date),
        (SeriesStart::AllDay(_), other) => OriginalStart::Date(other.local_start().date()),
        (
            SeriesStart::Zoned {
                zone: series_zone, ..
            },
            SeriesStart::Zoned { local, zone },
        ) => {
            if series_zone == zone {
                OriginalStart::DateTime(*local)
            } else {
                OriginalStart::DateTime(
                    resolve_local(*local, *zone)
                        .with_timezone(series_zone)
                        .naive_local(),
                )
            }
        }
        (_, SeriesStart::AllDay(date)) => {
            OriginalStart::DateTime(date.and_time(series.local_start().time()))
        }
        (_, other) => OriginalStart::DateTime(other.local_start()),
    }
}

/// Puts every `RECURRENCE-ID` in its series' terms and drops duplicates: of two events with
/// the same `UID` (and the same `RECURRENCE-ID`), the one with the higher `SEQUENCE` is kept,
/// the first one on a tie.
fn link_exceptions_to_series(read: Vec<ReadEvent>, skipped: &mut Vec<SkippedEvent>) -> Vec<Event> {
    let mut series_starts: HashMap<String, (SeriesStart, u32)> = HashMap::new();
    for item in read.iter().filter(|item| item.recurrence_id.is_none()) {
        let entry = series_starts
            .entry(item.event.uid.clone())
            .or_insert((item.event.start, item.event.sequence));
        if item.event.sequence > entry.1 {
            *entry = (item.event.start, item.event.sequence);
        }
    }
    let mut kept: Vec<Event> = Vec::with_capacity(read.len());
    let mut index_by_key: HashMap<(String, Option<OriginalStart>), (usize, usize)> = HashMap::new();
    for ReadEvent {
        line,
        mut event,
        recurrence_id,
    } in read
    {
        if let Some((value, this_and_future)) = recurrence_id {
            let series = series_starts
                .get(&event.uid)
                .map_or(event.start, |(start, _)| *start);
            event.recurrence_id = Some(RecurrenceId {
                original_start: original_start_in_series(&series, &value),
                this_and_future,
            });
        }
        let key = (
            event.uid.clone(),
            event.recurrence_id.map(|id| id.original_start),
        );
        match index_by_key.get(&key).copied() {
            None => {
                index_by_key.insert(key, (kept.len(), line));
                kept.push(event);
            }
            Some((index, kept_line)) => {
                let previous = &mut kept[index];
                let what = if event.recurrence_id.is_some() {
                    "with the same UID and RECURRENCE-ID"
                } else {
                    "with the same UID"
                };
                let (loser, loser_line, winner_line) = if event.sequence > previous.sequence {
                    let loser = std::mem::replace(previous, event);
                    index_by_key.insert(key, (index, line));
                    (loser, kept_line, line)
                } else {
                    (event, line, kept_line)
                };
                skipped.push(SkippedEvent {
                    line: loser_line,
                    uid: Some(loser.uid.clone()),
                    summary: loser.summary.clone(),
                    reason: CalendarError::ical(
                        loser_line,
                        format!(
                            "duplicate event: the event on line {winner_line} {what} has a \
                             higher or equal SEQUENCE and was imported instead"
                        ),
                    ),
                });
            }
        }
    }
    kept
}
