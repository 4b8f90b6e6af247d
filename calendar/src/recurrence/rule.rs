//! One recurrence rule (`RRULE`, RFC 5545 §3.3.10): parsing, validation and canonical text.
//!
//! The parser is our own so that every rejection names the rule part at fault and the accepted
//! form, and so that no input string can panic. What it accepts:
//!
//! * an optional `RRULE:` prefix, then `NAME=VALUE` parts separated by `;`, in any order;
//! * names and enumerated values in any case (`freq=weekly;byday=mo` is fine), as RFC 5545 §2
//!   says they are case-insensitive;
//! * spaces around names, values, `;` and `,`, and a trailing `;` (hand-typed rules have them);
//!   spaces inside a value (`BYMONTHDAY=1 5`) are an error.
//!
//! Rejected, each with its own message: a missing or unknown `FREQ`, unknown or repeated parts,
//! malformed or out-of-range numbers, `COUNT` together with `UNTIL`, `INTERVAL=0`, `BYxxx` parts
//! the frequency does not allow (RFC 5545's table), `BYSETPOS` without another `BYxxx` part,
//! and leap seconds (`BYSECOND=60`). Checks that need the series start (all-day starts, `UNTIL`
//! before `DTSTART`) are made by [`super::Recurrence::new`].

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime, Weekday};

use super::ical::{parse_ical_date, parse_ical_date_time, IcalDateTime};
use crate::CalendarError;

/// Rules longer than this are refused before parsing.
pub const MAX_RULE_LENGTH: usize = 2_000;
/// The largest accepted `INTERVAL`.
pub const MAX_INTERVAL: u16 = 10_000;
/// The largest accepted `COUNT`.
pub const MAX_COUNT: u32 = 1_000_000;
/// The shortest spacing a stored rule may make between occurrences, in seconds: storage
/// refuses denser rules ([`RecurrenceRule::check_density`]).
pub const MIN_SPACING_SECS: u32 = 3_600;

/// How often a rule repeats (`FREQ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Frequency {
    /// `FREQ=YEARLY`
    Yearly,
    /// `FREQ=MONTHLY`
    Monthly,
    /// `FREQ=WEEKLY`
    Weekly,
    /// `FREQ=DAILY`
    Daily,
    /// `FREQ=HOURLY`
    Hourly,
    /// `FREQ=MINUTELY`
    Minutely,
    /// `FREQ=SECONDLY`
    Secondly,
}

impl Frequency {
    /// The `FREQ` value as written in iCalendar.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yearly => "YEARLY",
            Self::Monthly => "MONTHLY",
            Self::Weekly => "WEEKLY",
            Self::Daily => "DAILY",
            Self::Hourly => "HOURLY",
            Self::Minutely => "MINUTELY",
            Self::Secondly => "SECONDLY",
        }
    }

    /// True for `HOURLY`, `MINUTELY` and `SECONDLY`.
    pub fn is_sub_daily(self) -> bool {
        matches!(self, Self::Hourly | Self::Minutely | Self::Secondly)
    }

    fn parse(value: &str) -> Result<Self, CalendarError> {
        Ok(match value.to_ascii_uppercase().as_str() {
            "YEARLY" => Self::Yearly,
            "MONTHLY" => Self::Monthly,
            "WEEKLY" => Self::Weekly,
            "DAILY" => Self::Daily,
            "HOURLY" => Self::Hourly,
            "MINUTELY" => Self::Minutely,
            "SECONDLY" => Self::Secondly,
            _ => {
                return Err(CalendarError::rrule(format!(
                    "FREQ must be one of SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or \
                     YEARLY, got `{value}`"
                )))
            }
        })
    }
}

/// The end of a rule as written in `UNTIL`, kept in the form it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// `UNTIL=YYYYMMDDTHHMMSSZ`: an instant. The form RFC 5545 requires for zoned starts.
    Utc(chrono::DateTime<chrono::Utc>),
    /// `UNTIL=YYYYMMDDTHHMMSS`: a wall-clock time in the series' own zone (or floating).
    Local(NaiveDateTime),
    /// `UNTIL=YYYYMMDD`: a date; every occurrence starting on that local date is included.
    Date(NaiveDate),
}

/// One `BYDAY` entry: a weekday, optionally with an ordinal (`1MO`, `-1FR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeekdayNum {
    /// `Some(n)` for "the n-th weekday of the month or year" (negative counts from the end).
    pub ordinal: Option<i8>,
    /// The weekday.
    pub weekday: Weekday,
}

/// A validated recurrence rule.
///
/// Lists are kept sorted and without duplicates. `BYDAY` keeps its input order after removing
/// duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrenceRule {
    pub(crate) frequency: Frequency,
    pub(crate) interval: u16,
    pub(crate) count: Option<u32>,
    pub(crate) until: Option<Until>,
    pub(crate) week_start: Weekday,
    pub(crate) by_second: Vec<u8>,
    pub(crate) by_minute: Vec<u8>,
    pub(crate) by_hour: Vec<u8>,
    pub(crate) by_day: Vec<WeekdayNum>,
    pub(crate) by_month_day: Vec<i8>,
    pub(crate) by_year_day: Vec<i16>,
    pub(crate) by_week_no: Vec<i8>,
    pub(crate) by_month: Vec<u8>,
    pub(crate) by_set_pos: Vec<i16>,
}

impl RecurrenceRule {
    /// Refuses a rule that can make more than one occurrence an hour: `FREQ=SECONDLY` or
    /// `MINUTELY` whose `INTERVAL` is under an hour, and `BYMINUTE` or `BYSECOND` with more than
    /// one value. Parsing accepts them (RFC 5545 does); a calendar does not store them, since
    /// each occurrence is a stored row.
    pub fn check_density(&self) -> Result<(), CalendarError> {
        let step_secs = match self.frequency {
            Frequency::Secondly => Some(u32::from(self.interval)),
            Frequency::Minutely => Some(u32::from(self.interval) * 60),
            _ => None,
        };
        if step_secs.is_some_and(|step| step < MIN_SPACING_SECS) {
            return Err(CalendarError::rrule(format!(
                "FREQ={} with INTERVAL={} repeats more often than once an hour; occurrences \
                 must be at least {} minutes apart (e.g. FREQ=HOURLY)",
                self.frequency.as_str(),
                self.interval,
                MIN_SPACING_SECS / 60
            )));
        }
        for (name, values) in [
            ("BYMINUTE", self.by_minute.len()),
            ("BYSECOND", self.by_second.len()),
        ] {
            if values > 1 {
                return Err(CalendarError::rrule(format!(
                    "{name} with {values} values repeats more often than once an hour; give one \
                     value"
                )));
            }
        }
        Ok(())
    }

    /// Parses and validates one `RRULE` value (see the module documentation for the syntax).
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        if text.len() > MAX_RULE_LENGTH {
            return Err(CalendarError::rrule(format!(
                "the rule is {} characters long; at most {MAX_RULE_LENGTH} are accepted",
                text.len()
            )));
        }
        let mut body = text.trim();
        if body.len() >= 6 && body.is_char_boundary(6) && body[..6].eq_ignore_ascii_case("RRULE:") {
            body = body[6..].trim();
        }
        let parts = RuleParts::split(body)?;
        if parts.parts.is_empty() {
            return Err(CalendarError::rrule(
                "the rule is empty; expected something like FREQ=WEEKLY;BYDAY=MO",
            ));
        }
        let rule = parts.into_rule()?;
        rule.check_combinations()?;
        Ok(rule)
    }

    /// The rule's frequency (`FREQ`).
    pub fn frequency(&self) -> Frequency {
        self.frequency
    }

    /// The rule's interval (`INTERVAL`, 1 when absent).
    pub fn interval(&self) -> u16 {
        self.interval
    }

    /// The number of occurrences (`COUNT`), when bounded that way.
    pub fn count(&self) -> Option<u32> {
        self.count
    }

    /// The rule's end (`UNTIL`), when bounded that way.
    pub fn until(&self) -> Option<Until> {
        self.until
    }

    /// True when the rule has neither `COUNT` nor `UNTIL`.
    pub fn is_infinite(&self) -> bool {
        self.count.is_none() && self.until.is_none()
    }

    /// True when the rule uses `BYHOUR`, `BYMINUTE` or `BYSECOND`.
    pub fn has_time_of_day_parts(&self) -> bool {
        !(self.by_hour.is_empty() && self.by_minute.is_empty() && self.by_second.is_empty())
    }

    fn check_combinations(&self) -> Result<(), CalendarError> {
        use Frequency::*;
        if self.count.is_some() && self.until.is_some() {
            return Err(CalendarError::rrule(
                "COUNT and UNTIL must not both be given; use one of them",
            ));
        }
        if !self.by_month_day.is_empty() && self.frequency == Weekly {
            return Err(CalendarError::rrule(
                "BYMONTHDAY cannot be used with FREQ=WEEKLY",
            ));
        }
        if !self.by_year_day.is_empty() && matches!(self.frequency, Daily | Weekly | Monthly) {
            return Err(CalendarError::rrule(format!(
                "BYYEARDAY cannot be used with FREQ={}",
                self.frequency.as_str()
            )));
        }
        if !self.by_week_no.is_empty() && self.frequency != Yearly {
            return Err(CalendarError::rrule(format!(
                "BYWEEKNO can only be used with FREQ=YEARLY, not FREQ={}",
                self.frequency.as_str()
            )));
        }
        for day in &self.by_day {
            let Some(ordinal) = day.ordinal else { continue };
            let text = weekday_num_text(*day);
            match self.frequency {
                Monthly => {
                    if !(-4..=5).contains(&ordinal) {
                        return Err(CalendarError::rrule(if ordinal == -5 {
                            format!(
                                "BYDAY={text} (the fifth-from-last weekday of a month) is not \
                                 supported; with FREQ=MONTHLY ordinals go from -4 to 5"
                            )
                        } else {
                            format!(
                                "BYDAY={text} never occurs: a month has at most five of each \
                                 weekday"
                            )
                        }));
                    }
                }
                Yearly => {
                    if !self.by_week_no.is_empty() {
                        return Err(CalendarError::rrule(format!(
                            "BYDAY={text}: a numbered weekday cannot be combined with BYWEEKNO"
                        )));
                    }
                    if ordinal == -53 {
                        return Err(CalendarError::rrule(format!(
                            "BYDAY={text} (the 53rd-from-last weekday of a year) is not \
                             supported; with FREQ=YEARLY ordinals go from -52 to 53"
                        )));
                    }
                }
                other => {
                    return Err(CalendarError::rrule(format!(
                        "BYDAY={text}: a numbered weekday can only be used with FREQ=MONTHLY or \
                         FREQ=YEARLY, not FREQ={}",
                        other.as_str()
                    )));
                }
            }
        }
        if !self.by_set_pos.is_empty() {
            let has_other_by_part = !(self.by_second.is_empty()
                && self.by_minute.is_empty()
                && self.by_hour.is_empty()
                && self.by_day.is_empty()
                && self.by_month_day.is_empty()
                && self.by_year_day.is_empty()
                && self.by_week_no.is_empty()
                && self.by_month.is_empty());
            if !has_other_by_part {
                return Err(CalendarError::rrule(
                    "BYSETPOS needs another BYxxx part (such as BYDAY) to choose from",
                ));
            }
            // The rrule crate that expands daily-and-longer rules bounds BYSETPOS per frequency.
            let bound: i16 = match self.frequency {
                Monthly => 31,
                Weekly => 53,
                _ => 366,
            };
            if let Some(position) = self.by_set_pos.iter().find(|p| p.abs() > bound) {
                return Err(CalendarError::rrule(format!(
                    "BYSETPOS={position} is not supported with FREQ={}: positions go from \
                     -{bound} to {bound}",
                    self.frequency.as_str()
                )));
            }
        }
        Ok(())
    }
}

/// The raw `NAME=VALUE` parts of a rule, before interpretation.
struct RuleParts<'a> {
    parts: Vec<(&'static str, &'a str)>,
}

const KNOWN_PARTS: [&str; 14] = [
    "FREQ",
    "UNTIL",
    "COUNT",
    "INTERVAL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
];

impl<'a> RuleParts<'a> {
    fn split(body: &'a str) -> Result<Self, CalendarError> {
        let mut parts: Vec<(&'static str, &'a str)> = Vec::new();
        for raw in body.split(';') {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let Some((name, value)) = raw.split_once('=') else {
                return Err(CalendarError::rrule(format!(
                    "`{raw}` is not a NAME=VALUE part"
                )));
            };
            let name = name.trim();
            let value = value.trim();
            let Some(known) = KNOWN_PARTS
                .iter()
                .copied()
                .find(|known| known.eq_ignore_ascii_case(name))
            else {
                return Err(CalendarError::rrule(format!(
                    "unknown part `{name}`; the parts are {}",
                    KNOWN_PARTS.join(", ")
                )));
            };
            if value.is_empty() {
                return Err(CalendarError::rrule(format!("{known} has an empty value")));
            }
            if parts.iter().any(|(seen, _)| *seen == known) {
                return Err(CalendarError::rrule(format!(
                    "{known} is given more than once"
                )));
            }
            parts.push((known, value));
        }
        Ok(Self { parts })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.parts
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| *value)
    }

    fn into_rule(self) -> Result<RecurrenceRule, CalendarError> {
        let frequency = match self.get("FREQ") {
            Some(value) => Frequency::parse(value)?,
            None => return Err(CalendarError::rrule("FREQ is required")),
        };
        let interval = match self.get("INTERVAL") {
            Some(value) => parse_bounded_integer(value, 1, i64::from(MAX_INTERVAL))
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    CalendarError::rrule(format!(
                        "INTERVAL must be a whole number from 1 to {MAX_INTERVAL}, got `{value}`"
                    ))
                })?,
            None => 1,
        };
        let count = match self.get("COUNT") {
            Some(value) => Some(
                parse_bounded_integer(value, 1, i64::from(MAX_COUNT))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        CalendarError::rrule(format!(
                            "COUNT must be a whole number from 1 to {MAX_COUNT}, got `{value}`"
                        ))
                    })?,
            ),
            None => None,
        };
        let until = self.get("UNTIL").map(parse_until).transpose()?;
        let week_start = match self.get("WKST") {
            Some(value) => parse_weekday(value).ok_or_else(|| {
                CalendarError::rrule(format!(
                    "WKST must be one of MO, TU, WE, TH, FR, SA or SU, got `{value}`"
                ))
            })?,
            None => Weekday::Mon,
        };
        let by_second = self.integer_list("BYSECOND", 0, 59, "from 0 to 59")?;
        let by_minute = self.integer_list("BYMINUTE", 0, 59, "from 0 to 59")?;
        let by_hour = self.integer_list("BYHOUR", 0, 23, "from 0 to 23")?;
        let by_month_day =
            self.integer_list("BYMONTHDAY", -31, 31, "between -31 and 31 and not 0")?;
        let by_year_day =
            self.integer_list("BYYEARDAY", -366, 366, "between -366 and 366 and not 0")?;
        let by_week_no = self.integer_list("BYWEEKNO", -53, 53, "between -53 and 53 and not 0")?;
        let by_month = self.integer_list("BYMONTH", 1, 12, "from 1 to 12")?;
        let by_set_pos =
            self.integer_list("BYSETPOS", -366, 366, "between -366 and 366 and not 0")?;
        let by_day = match self.get("BYDAY") {
            Some(value) => parse_by_day(value)?,
            None => Vec::new(),
        };
        Ok(RecurrenceRule {
            frequency,
            interval,
            count,
            until,
            week_start,
            by_second: narrow(by_second),
            by_minute: narrow(by_minute),
            by_hour: narrow(by_hour),
            by_day,
            by_month_day: narrow(by_month_day),
            by_year_day: narrow(by_year_day),
            by_week_no: narrow(by_week_no),
            by_month: narrow(by_month),
            by_set_pos: narrow(by_set_pos),
        })
    }

    /// Parses a comma-separated list of integers in `min..=max`, 0 excluded when `min < 0`.
    fn integer_list(
        &self,
        name: &str,
        min: i64,
        max: i64,
        range_words: &str,
    ) -> Result<Vec<i64>, CalendarError> {
        let Some(value) = self.get(name) else {
            return Ok(Vec::new());
        };
        let mut numbers = Vec::new();
        for item in value.split(',') {
            let item = item.trim();
            let Some(number) = parse_integer(item) else {
                return Err(CalendarError::rrule(format!(
                    "{name} must be a comma-separated list of whole numbers {range_words}, got \
                     `{value}`"
                )));
            };
            let zero_forbidden = min < 0 && number == 0;
            if number < min || number > max || zero_forbidden {
                let extra = if name == "BYSECOND" && number == 60 {
                    " (leap seconds are not supported)"
                } else {
                    ""
                };
                return Err(CalendarError::rrule(format!(
                    "{name} values must be {range_words}, got `{item}`{extra}"
                )));
            }
            numbers.push(number);
        }
        numbers.sort_unstable();
        numbers.dedup();
        Ok(numbers)
    }
}

/// Converts range-checked integers to a narrower type; values were checked by the caller.
fn narrow<T: TryFrom<i64>>(numbers: Vec<i64>) -> Vec<T> {
    numbers
        .into_iter()
        .filter_map(|n| T::try_from(n).ok())
        .collect()
}

/// Parses `[+|-]digits` with at most 9 digits, so any accepted text fits an `i64`.
fn parse_integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'+' => (false, &text[1..]),
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude: i64 = digits.parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn parse_bounded_integer(text: &str, min: i64, max: i64) -> Option<i64> {
    parse_integer(text).filter(|n| (min..=max).contains(n))
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    Some(match text.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn parse_by_day(value: &str) -> Result<Vec<WeekdayNum>, CalendarError> {
    let mut days: Vec<WeekdayNum> = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        let malformed = || {
            CalendarError::rrule(format!(
                "BYDAY item `{item}` is not a weekday; expected MO, TU, WE, TH, FR, SA or SU, \
                 optionally preceded by a number such as 1MO or -1FR"
            ))
        };
        if item.len() < 2 || !item.is_char_boundary(item.len() - 2) {
            return Err(malformed());
        }
        let (number, name) = item.split_at(item.len() - 2);
        let weekday = parse_weekday(name).ok_or_else(malformed)?;
        let ordinal = if number.is_empty() {
            None
        } else {
            let n = parse_integer(number).ok_or_else(malformed)?;
            if n == 0 || !(-53..=53).contains(&n) {
                return Err(CalendarError::rrule(format!(
                    "BYDAY item `{item}`: the number before the weekday must be between -53 and \
                     53 and not 0"
                )));
            }
            i8::try_from(n).ok()
        };
        let day = WeekdayNum { ordinal, weekday };
        if !days.contains(&day) {
            days.push(day);
        }
    }
    Ok(days)
}

fn parse_until(value: &str) -> Result<Until, CalendarError> {
    let malformed = || {
        CalendarError::rrule(format!(
            "UNTIL must be a date (YYYYMMDD) or a date-time (YYYYMMDDTHHMMSS, optionally ending \
             in Z for UTC), got `{value}`"
        ))
    };
    if value.len() == 8 {
        return parse_ical_date(value)
            .map(Until::Date)
            .ok_or_else(malformed);
    }
    match parse_ical_date_time(value).ok_or_else(malformed)? {
        IcalDateTime::Utc(at) => Ok(Until::Utc(at)),
        IcalDateTime::Local(at) => Ok(Until::Local(at)),
    }
}

fn weekday_text(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

fn weekday_num_text(day: WeekdayNum) -> String {
    match day.ordinal {
        Some(n) => format!("{n}{}", weekday_text(day.weekday)),
        None => weekday_text(day.weekday).to_owned(),
    }
}

fn join<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for RecurrenceRule {
    /// Writes the rule in a canonical form (upper case, fixed part order, no `RRULE:` prefix),
    /// suitable for storage and for iCalendar export.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FREQ={}", self.frequency.as_str())?;
        match self.until {
            Some(Until::Utc(at)) => write!(f, ";UNTIL={}", at.format("%Y%m%dT%H%M%SZ"))?,
            Some(Until::Local(at)) => write!(f, ";UNTIL={}", at.format("%Y%m%dT%H%M%S"))?,
            Some(Until::Date(date)) => write!(f, ";UNTIL={}", date.format("%Y%m%d"))?,
            None => {}
        }
        if let Some(count) = self.count {
            write!(f, ";COUNT={count}")?;
        }
        if self.interval != 1 {
            write!(f, ";INTERVAL={}", self.interval)?;
        }
        let lists: [(&str, String); 9] = [
            ("BYSECOND", join(&self.by_second)),
            ("BYMINUTE", join(&self.by_minute)),
            ("BYHOUR", join(&self.by_hour)),
            (
                "BYDAY",
                self.by_day
                    .iter()
                    .map(|day| weekday_num_text(*day))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("BYMONTHDAY", join(&self.by_month_day)),
            ("BYYEARDAY", join(&self.by_year_day)),
            ("BYWEEKNO", join(&self.by_week_no)),
            ("BYMONTH", join(&self.by_month)),
            ("BYSETPOS", join(&self.by_set_pos)),
        ];
        for (name, values) in lists {
            if !values.is_empty() {
                write!(f, ";{name}={values}")?;
            }
        }
        if self.week_start != Weekday::Mon {
            write!(f, ";WKST={}", weekday_text(self.week_start))?;
        }
        Ok(())
    }
}
