//! iCalendar (RFC 5545): import of `.ics` files and export of a calendar as an `.ics` feed.
//!
//! # Import ([`import`])
//!
//! A tolerant reader for what Google Calendar, Outlook/Exchange, Apple Calendar and
//! Thunderbird write. It takes bytes, unfolds lines (`CRLF` or bare `LF`, then a space or a
//! tab; a fold may split a UTF-8 character), reads parameters (quoted, several values, RFC 6868
//! `^` escapes) and `TEXT` escapes, and accepts several `VCALENDAR`s in one stream. Each
//! `VEVENT` becomes an [`Event`]: plain fields plus a validated
//! [`Recurrence`] when it has `RRULE` or `RDATE`.
//!
//! What fails how:
//!
//! * **The whole import** fails with [`CalendarError`] when the input is over a limit
//!   ([`MAX_INPUT_BYTES`], [`MAX_EVENTS`], [`MAX_LINE_BYTES`], [`MAX_NESTING`]), is not
//!   iCalendar at all (an HTML page), or has broken structure (a component that is never
//!   closed, as in a truncated download, or an `END` that closes the wrong component): the
//!   file cannot be trusted, so nothing of it is imported.
//! * **One event** is skipped, with its line, `UID` and reason in
//!   [`ImportReport::skipped`], when it lacks `UID` or `DTSTART`, has a value that cannot be
//!   read (a bad date, an invalid `RRULE`), a `TZID` that names no recognisable zone (see
//!   [`resolve_tzid`]; reading a custom `VTIMEZONE`'s rules is out of scope), or ends before
//!   it starts. Of two events with the same `UID` (and `RECURRENCE-ID`), the one with the
//!   higher `SEQUENCE` is kept (the first on a tie) and the other skipped as a duplicate. The
//!   other events are imported.
//! * **A line** that is not a content line (no `NAME:value`) is ignored with a warning in
//!   [`ImportReport::warnings`]; so is text after the last `END:VCALENDAR`.
//!
//! Readings worth knowing:
//!
//! * `DTSTART`/`DTEND`/`RECURRENCE-ID` become a [`SeriesStart`]: a date (all-day), a local
//!   time with a zone (`TZID`, or `Z` for UTC), or a floating local time.
//! * `DTEND` wins over `DURATION` when both are given; an all-day `DTEND` on or before
//!   `DTSTART` (some Outlook versions) is read as one day.
//! * `RDATE`/`EXDATE` may be repeated and hold lists; an `RDATE` period keeps its start. A date
//!   in a timed series means that date at the series' time of day; a date-time in an all-day
//!   series means its date; a value in another zone than `DTSTART` is converted to an instant.
//! * A `VALARM` whose `TRIGGER` is a duration before the start (`-PT15M`, `-P1D`, `PT0S`)
//!   becomes a reminder, in minutes before the start ([`Event::reminders`]); other triggers
//!   (absolute, relative to the end, after the start) are ignored with a warning. Export
//!   writes one `VALARM` (`ACTION:DISPLAY`) per reminder.
//! * `RECURRENCE-ID` is converted to the original start of the occurrence it replaces, in the
//!   series' local time ([`RecurrenceId::original_start`]), the key
//!   [`Occurrence::original_start`] gives, whatever form the file wrote it in (UTC, another
//!   zone, a date).
//!
//! # Export ([`export`])
//!
//! Writes a `VCALENDAR` (`VERSION:2.0`, `PRODID:-//Potentia//Calendar//EN`, `METHOD:PUBLISH`,
//! `X-WR-CALNAME`, `X-WR-TIMEZONE`) with one `VEVENT` per [`Event`], `CRLF` line ends, lines
//! folded at 75 octets without splitting a UTF-8 character, `TEXT` escaped.
//!
//! A `VTIMEZONE` is written for every zone the events use (not for UTC), as RFC 5545 requires
//! and as Google Calendar does: Outlook in particular needs one. It is computed from the IANA
//! database in `chrono-tz` over the years the events span, with yearly `RRULE`s for regular
//! rules and an open-ended rule for the rule in force today; the `TZID` is the IANA name,
//! which consumers without `VTIMEZONE` support read directly.
//!
//! A zoned series' `UNTIL` is written in UTC and an all-day series' as a date, as RFC 5545
//! requires (our parser also accepts the other forms, which some writers use, with the same
//! meaning).

mod content_line;
mod export;
mod import;
mod vtimezone;
mod zones;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;

pub use self::export::export;
pub use self::import::import;
pub use self::zones::resolve_tzid;
use crate::event::{AttendeeRole, EventStatus, ParticipationStatus, Transparency};
use crate::freebusy::TimePeriod;
use crate::recurrence::{Occurrence, OriginalStart, Recurrence, SeriesStart};
use crate::timezone::resolve_local;
use crate::CalendarError;

/// The largest accepted input: 10 MiB (a busy calendar over a decade is 2–5 MiB).
pub const MAX_INPUT_BYTES: usize = 10 * 1024 * 1024;
/// The most `VEVENT`s accepted in one input.
pub const MAX_EVENTS: usize = 20_000;
/// The longest accepted content line once unfolded: 64 KiB (long descriptions and long
/// `EXDATE` lists fit easily).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The deepest accepted nesting of components (`VCALENDAR` > `VEVENT` > `VALARM` is 3).
pub const MAX_NESTING: usize = 8;
/// The `PRODID` of exported files.
pub const PRODID: &str = "-//Potentia//Calendar//EN";
/// The longest accepted `DURATION`, in days (about 100 years).
pub const MAX_DURATION_DAYS: u32 = 36_600;

/// A calendar as read from or written to an `.ics` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// The calendar's name (`X-WR-CALNAME`, or RFC 7986 `NAME`).
    pub name: Option<String>,
    /// The calendar's default zone (`X-WR-TIMEZONE`).
    pub time_zone: Option<Tz>,
    /// The events, in file order. Exceptions to a series are separate events with the
    /// series' `uid` and a [`Event::recurrence_id`].
    pub events: Vec<Event>,
}

/// One `VEVENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `UID`: the event's identity across imports; shared by a series and its exceptions.
    pub uid: String,
    /// `SEQUENCE`: the revision, 0 when absent.
    pub sequence: u32,
    /// `SUMMARY`: the title.
    pub summary: Option<String>,
    /// `DESCRIPTION`.
    pub description: Option<String>,
    /// `LOCATION`.
    pub location: Option<String>,
    /// `DTSTART`: a date (all-day), a zoned or UTC local time, or a floating local time.
    pub start: SeriesStart,
    /// `DTEND` or `DURATION`; `None` when neither was given (RFC 5545: a timed event then
    /// takes no time, an all-day event one day).
    pub end: Option<EventEnd>,
    /// `STATUS`, when given.
    pub status: Option<EventStatus>,
    /// `TRANSP`: opaque (busy) unless said otherwise.
    pub transparency: Transparency,
    /// The recurrence set, when the event has `RRULE` or `RDATE`.
    pub recurrence: Option<Recurrence>,
    /// Set on an exception: which occurrence of the series (same `uid`) this event replaces.
    pub recurrence_id: Option<RecurrenceId>,
    /// `ORGANIZER`.
    pub organizer: Option<Organizer>,
    /// `ATTENDEE`s, in file order.
    pub attendees: Vec<Attendee>,
    /// Reminders, in minutes before the start, ascending: one per `VALARM` whose `TRIGGER`
    /// is a duration before (or at) the start.
    pub reminders: Vec<u32>,
}

/// How an event's end is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventEnd {
    /// `DTEND`: the exclusive end, in one of the forms of `DTSTART` (a date for all-day events).
    At(SeriesStart),
    /// `DURATION`.
    Duration(IcalDuration),
}

/// An iCalendar `DURATION` (RFC 5545 §3.3.6): whole days, which are nominal (a day keeps the
/// wall-clock time across a DST change), plus exact seconds. Weeks are read as seven days.
/// Negative durations are not accepted for events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IcalDuration {
    /// Nominal days (`nD`, `nW` = 7n days).
    pub days: u32,
    /// Exact seconds (`TnHnMnS`).
    pub seconds: u32,
}

impl IcalDuration {
    /// Parses `P1W`, `P1DT2H`, `PT90M`, `+PT1H30M15S` (designators in any case).
    pub fn parse(text: &str) -> Result<Self, String> {
        let malformed = || {
            format!(
                "`{text}` is not a duration; expected something like PT1H30M, P1D or P2W \
                 (positive)"
            )
        };
        let trimmed = text.trim();
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        if body.starts_with('-') {
            return Err(format!(
                "`{text}` is negative; an event's duration must be positive"
            ));
        }
        let body = body
            .strip_prefix(['P', 'p'])
            .ok_or_else(malformed)?
            .to_ascii_uppercase();
        let (date_part, time_part) = match body.split_once('T') {
            Some((date, time)) => (date, Some(time)),
            None => (body.as_str(), None),
        };
        let mut days: u64 = 0;
        let mut seconds: u64 = 0;
        let mut any = false;
        for (number, designator) in designated_numbers(date_part).ok_or_else(malformed)? {
            any = true;
            days += match designator {
                'W' => number.saturating_mul(7),
                'D' => number,
                _ => return Err(malformed()),
            };
        }
        if let Some(time_part) = time_part {
            let parts = designated_numbers(time_part).ok_or_else(malformed)?;
            if parts.is_empty() {
                return Err(malformed());
            }
            for (number, designator) in parts {
                any = true;
                seconds += match designator {
                    'H' => number.saturating_mul(3_600),
                    'M' => number.saturating_mul(60),
                    'S' => number,
                    _ => return Err(malformed()),
                };
            }
        }
        if !any {
            return Err(malformed());
        }
        let max_seconds = u64::from(MAX_DURATION_DAYS) * 86_400;
        if days > u64::from(MAX_DURATION_DAYS) || seconds > max_seconds {
            return Err(format!(
                "`{text}` is longer than the {MAX_DURATION_DAYS} days accepted"
            ));
        }
        Ok(Self {
            days: u32::try_from(days).map_err(|_| malformed())?,
            seconds: u32::try_from(seconds).map_err(|_| malformed())?,
        })
    }

    /// The duration as exact time (days counted as 24 hours).
    pub fn as_exact(&self) -> Duration {
        Duration::days(i64::from(self.days)) + Duration::seconds(i64::from(self.seconds))
    }
}

/// Splits `12H30M` into `[(12, 'H'), (30, 'M')]`; `None` when malformed or a number is huge.
fn designated_numbers(text: &str) -> Option<Vec<(u64, char)>> {
    let mut parts = Vec::new();
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(digit))?,
            );
        } else {
            parts.push((number.take()?, c));
        }
    }
    if number.is_some() {
        return None;
    }
    Some(parts)
}

impl std::fmt::Display for IcalDuration {
    /// Writes the shortest form: `P2W`, `P1D`, `PT1H30M`, `P1DT15M`, `PT0S`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.seconds == 0 && self.days > 0 && self.days % 7 == 0 {
            return write!(f, "P{}W", self.days / 7);
        }
        f.write_str("P")?;
        if self.days > 0 {
            write!(f, "{}D", self.days)?;
        }
        if self.seconds > 0 || self.days == 0 {
            f.write_str("T")?;
            let (hours, minutes, seconds) = (
                self.seconds / 3_600,
                self.seconds / 60 % 60,
                self.seconds % 60,
            );
            if hours > 0 {
                write!(f, "{hours}H")?;
            }
            if minutes > 0 {
                write!(f, "{minutes}M")?;
            }
            if seconds > 0 || self.seconds == 0 {
                write!(f, "{seconds}S")?;
            }
        }
        Ok(())
    }
}

/// Which occurrence an exception replaces (`RECURRENCE-ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecurrenceId {
    /// The replaced occurrence's original start in the series' local time: compare with
    /// [`Occurrence::original_start`].
    pub original_start: OriginalStart,
    /// `RANGE=THISANDFUTURE`: the exception also applies to every later occurrence.
    pub this_and_future: bool,
}

/// The event's organizer (`ORGANIZER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organizer {
    /// The calendar address as written, normally `mailto:…`.
    pub address: String,
    /// `CN`: the display name.
    pub common_name: Option<String>,
}

impl Organizer {
    /// The e-mail address, when the address is a `mailto:` URI.
    pub fn email(&self) -> Option<&str> {
        email_of(&self.address)
    }
}

/// A guest (`ATTENDEE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    /// The calendar address as written, normally `mailto:…`.
    pub address: String,
    /// `CN`: the display name.
    pub common_name: Option<String>,
    /// `ROLE`: required unless said otherwise; [`AttendeeRole::Optional`] is an optional
    /// guest.
    pub role: AttendeeRole,
    /// `PARTSTAT`: the guest's answer.
    pub participation: ParticipationStatus,
}

impl Attendee {
    /// A required guest who has not answered yet.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            common_name: None,
            role: AttendeeRole::Required,
            participation: ParticipationStatus::NeedsAction,
        }
    }

    /// The e-mail address, when the address is a `mailto:` URI.
    pub fn email(&self) -> Option<&str> {
        email_of(&self.address)
    }
}

fn email_of(address: &str) -> Option<&str> {
    let address = address.trim();
    let scheme = address.get(..7)?;
    scheme
        .eq_ignore_ascii_case("mailto:")
        .then(|| address[7..].trim())
        .filter(|email| !email.is_empty())
}

impl Event {
    /// An opaque event with no end, title or guests, starting at `start`.
    pub fn new(uid: impl Into<String>, start: SeriesStart) -> Self {
        Self {
            uid: uid.into(),
            sequence: 0,
            summary: None,
            description: None,
            location: None,
            start,
            end: None,
            status: None,
            transparency: Transparency::Opaque,
            recurrence: None,
            recurrence_id: None,
            organizer: None,
            attendees: Vec::new(),
            reminders: Vec::new(),
        }
    }

    /// When one occurrence of this event takes place, in UTC. Floating times and all-day dates
    /// are read in `floating_zone`.
    ///
    /// The length comes from `DTEND` as exact time (RFC 5545 §3.8.5.3: the same exact duration
    /// for every instance) or, for all-day events, as a number of days; `DURATION` days are
    /// nominal (the same wall-clock time so many days later) and its hours exact. Without
    /// either, a timed event takes no time and an all-day event one day.
    pub fn occurrence_period(&self, occurrence: &Occurrence, floating_zone: Tz) -> TimePeriod {
        let zone = match self.start {
            SeriesStart::Zoned { zone, .. } => zone,
            _ => floating_zone,
        };
        match *occurrence {
            Occurrence::Timed { start, .. } => {
                let end = match self.end {
                    None => start,
                    Some(EventEnd::Duration(duration)) => {
                        let wall_clock = start.with_timezone(&zone).naive_local();
                        let later_day = wall_clock
                            .checked_add_signed(Duration::days(i64::from(duration.days)))
                            .map_or(start, |local| resolve_local(local, zone));
                        add_saturating(later_day, i64::from(duration.seconds))
                    }
                    Some(EventEnd::At(end)) => {
                        let length = instant_of(&end, floating_zone)
                            - instant_of(&self.start, floating_zone);
                        add_saturating(start, length.num_seconds().max(0))
                    }
                };
                TimePeriod::new(start, end)
            }
            Occurrence::AllDay { date } => {
                let midnight = |date: chrono::NaiveDate| {
                    resolve_local(date.and_time(NaiveTime::MIN), floating_zone)
                };
                let (days, seconds) = match self.end {
                    None => (1, 0),
                    Some(EventEnd::Duration(duration)) => {
                        (i64::from(duration.days), i64::from(duration.seconds))
                    }
                    Some(EventEnd::At(end)) => {
                        let first = self.start.local_start().date();
                        ((end.local_start().date() - first).num_days().max(1), 0)
                    }
                };
                let end_date = date
                    .checked_add_signed(Duration::days(days))
                    .unwrap_or(chrono::NaiveDate::MAX);
                TimePeriod::new(midnight(date), add_saturating(midnight(end_date), seconds))
            }
        }
    }
}

/// `at` plus `seconds`, or the latest representable instant when that is out of range.
fn add_saturating(at: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    at.checked_add_signed(Duration::seconds(seconds))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The instant a `DTSTART`/`DTEND` value denotes; floating times and dates are read in
/// `floating_zone`.
fn instant_of(time: &SeriesStart, floating_zone: Tz) -> DateTime<Utc> {
    match *time {
        SeriesStart::Zoned { local, zone } => resolve_local(local, zone),
        _ => resolve_local(time.local_start(), floating_zone),
    }
}

/// What an import produced: the calendar with every event that could be read, and what was
/// left out and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The calendar's name, zone and imported events.
    pub calendar: Calendar,
    /// Events that were not imported, with the reason.
    pub skipped: Vec<SkippedEvent>,
    /// Lines that were ignored, and other things worth telling the user (the first
    /// [`MAX_WARNINGS`]).
    pub warnings: Vec<ImportWarning>,
    /// How many more warnings there were beyond [`MAX_WARNINGS`].
    pub warnings_omitted: usize,
}

/// At most this many warnings are kept in an [`ImportReport`].
pub const MAX_WARNINGS: usize = 100;

/// An event left out of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    /// The line of its `BEGIN:VEVENT`.
    pub line: usize,
    /// Its `UID`, when it had one.
    pub uid: Option<String>,
    /// Its `SUMMARY`, when it had one, to help the user find it.
    pub summary: Option<String>,
    /// Why it was left out.
    pub reason: CalendarError,
}

/// A line or value the import ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportWarning {
    /// The physical line (1-based).
    pub line: usize,
    /// What was ignored and why.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveDateTime};

    #[test]
    fn durations_parse_in_every_form_and_print_shortest() {
        for (text, days, seconds, printed) in [
            ("PT1H30M", 0, 5_400, "PT1H30M"),
            ("P1D", 1, 0, "P1D"),
            ("p2w", 14, 0, "P2W"),
            ("+P1DT15M", 1, 900, "P1DT15M"),
            ("PT0S", 0, 0, "PT0S"),
            ("PT90M", 0, 5_400, "PT1H30M"),
            ("P1DT1H1M1S", 1, 3_661, "P1DT1H1M1S"),
        ] {
            let duration = IcalDuration::parse(text).expect(text);
            assert_eq!((duration.days, duration.seconds), (days, seconds), "{text}");
            assert_eq!(duration.to_string(), printed, "{text}");
            assert_eq!(IcalDuration::parse(printed), Ok(duration));
        }
    }

    #[test]
    fn malformed_negative_and_huge_durations_are_refused() {
        for text in [
            "",
            "P",
            "PT",
            "1H",
            "-PT1H",
            "PT1X",
            "PTH",
            "P1H",
            "PT1D",
            "P99999999999999999999D",
            "P40000D",
        ] {
            assert!(IcalDuration::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn occurrence_periods_follow_dtend_duration_or_the_defaults() {
        let new_york: Tz = "America/New_York".parse().expect("zone");
        let local =
            |text: &str| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").expect("local time");
        let start = SeriesStart::Zoned {
            local: local("2024-03-09T09:00"),
            zone: new_york,
        };
        let occurrence_after_spring_forward = Occurrence::Timed {
            original_start: local("2024-03-10T09:00"),
            start: resolve_local(local("2024-03-10T09:00"), new_york),
        };
        let mut event = Event::new("a", start);
        event.end = Some(EventEnd::Duration(IcalDuration {
            days: 1,
            seconds: 0,
        }));
        let period = event.occurrence_period(&occurrence_after_spring_forward, Tz::UTC);
        assert_eq!(
            period.end - period.start,
            Duration::hours(24),
            "nominal day"
        );
        event.end = Some(EventEnd::At(SeriesStart::Zoned {
            local: local("2024-03-09T10:30"),
            zone: new_york,
        }));
        let period = event.occurrence_period(&occurrence_after_spring_forward, Tz::UTC);
        assert_eq!(period.end - period.start, Duration::minutes(90));
        event.end = None;
        let period = event.occurrence_period(&occurrence_after_spring_forward, Tz::UTC);
        assert!(period.is_empty());

        let day = NaiveDate::from_ymd_opt(2024, 5, 1).expect("date");
        let mut all_day = Event::new("b", SeriesStart::AllDay(day));
        let occurrence = Occurrence::AllDay { date: day };
        let period = all_day.occurrence_period(&occurrence, new_york);
        assert_eq!(
            period.start,
            resolve_local(day.and_time(NaiveTime::MIN), new_york)
        );
        assert_eq!(period.end - period.start, Duration::hours(24));
        all_day.end = Some(EventEnd::At(SeriesStart::AllDay(
            NaiveDate::from_ymd_opt(2024, 5, 4).expect("date"),
        )));
        let period = all_day.occurrence_period(&occurrence, Tz::UTC);
        assert_eq!(period.end - period.start, Duration::days(3));
    }

    #[test]
    fn occurrence_periods_at_the_ends_of_time_do_not_overflow() {
        let start = SeriesStart::Zoned {
            local: NaiveDate::from_ymd_opt(1, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("date"),
            zone: Tz::UTC,
        };
        let mut event = Event::new("far", start);
        event.end = Some(EventEnd::At(SeriesStart::Zoned {
            local: NaiveDate::from_ymd_opt(9_999, 12, 31)
                .and_then(|d| d.and_hms_opt(23, 59, 59))
                .expect("date"),
            zone: Tz::UTC,
        }));
        let late = NaiveDate::from_ymd_opt(260_000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("date");
        let occurrence = Occurrence::Timed {
            original_start: late,
            start: late.and_utc(),
        };
        let period = event.occurrence_period(&occurrence, Tz::UTC);
        assert_eq!(period.end, DateTime::<Utc>::MAX_UTC);
        event.end = Some(EventEnd::Duration(IcalDuration {
            days: MAX_DURATION_DAYS,
            seconds: 0,
        }));
        let _ = event.occurrence_period(&occurrence, Tz::UTC);
        let all_day = Event::new("far-day", SeriesStart::AllDay(NaiveDate::MAX));
        let _ = all_day.occurrence_period(
            &Occurrence::AllDay {
                date: NaiveDate::MAX,
            },
            Tz::UTC,
        );
    }

    #[test]
    fn only_mailto_addresses_have_an_email() {
        assert_eq!(
            Attendee::new("MAILTO:ann@example.com").email(),
            Some("ann@example.com")
        );
        assert_eq!(Attendee::new("urn:uuid:1234").email(), None);
        assert_eq!(Attendee::new("mailto:").email(), None);
    }
}
