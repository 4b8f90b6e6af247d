//! Recurrence: a series start plus `RRULE`, `RDATE` and `EXDATE`, expanded into occurrences.
//!
//! A [`Recurrence`] is validated once ([`Recurrence::new`]) and then expanded as often as
//! needed over a window ([`Recurrence::expand`]). Rules are parsed by our own parser
//! ([`RecurrenceRule::parse`]) so that errors name the problem; daily-and-longer rules are
//! expanded by the `rrule` crate, sub-daily ones by our own code (module `generator`).
//!
//! # Kinds of series
//!
//! * **Zoned** ([`SeriesStart::Zoned`]): a local date-time in an IANA zone. Occurrences keep
//!   the local time of day across DST changes and are reported as instants.
//! * **Floating** ([`SeriesStart::Floating`]): a local date-time with no zone ("9:00 wherever I
//!   am"). Occurrences are read in the zone the caller passes as
//!   [`ExpansionQuery::floating_zone`], normally the viewer's or the calendar's.
//! * **All-day** ([`SeriesStart::AllDay`]): a date. Occurrences are dates, not instants. For
//!   windowing only, a date is placed at its midnight in [`ExpansionQuery::floating_zone`].
//!
//! # Semantics
//!
//! * Rules are expanded in local wall-clock time, as RFC 5545 intends ("the same local time
//!   regardless of time zone changes"), including `HOURLY`/`MINUTELY`/`SECONDLY` steps; then
//!   each local start is turned into an instant with the DST policy of [`crate::timezone`]:
//!   a nonexistent time (spring-forward gap) moves forward by the gap, an ambiguous one (fall
//!   back) takes the first, earlier instant.
//! * `DTSTART` is always the first occurrence (RFC 5545 §3.8.5.3), whether or not it matches
//!   the rule, and counts towards `COUNT` (§3.3.10). `EXDATE` can still remove it.
//! * `UNTIL` is inclusive. Its three forms are read as: `…Z` an instant, compared with each
//!   occurrence's instant; `YYYYMMDDTHHMMSS` a wall-clock time in the series' zone;
//!   `YYYYMMDD` a date, including every occurrence that starts on it (in local time). An
//!   `UNTIL` before `DTSTART` is an error.
//! * Each occurrence is identified by its **original start**: the local date-time (or date)
//!   the rule or `RDATE` produced, before any DST shift. `EXDATE`s and, later, per-occurrence
//!   exceptions match on it. A UTC `RDATE`/`EXDATE` on a zoned series is first turned into the
//!   series' local wall-clock time; a UTC `RDATE` keeps its exact instant.
//! * Duplicates are dropped: the same original start produced twice (rule, `RDATE`, `DTSTART`)
//!   counts once, and two original starts that resolve to the same instant (an `HOURLY` rule
//!   producing both 02:00, moved to 03:00 by a gap, and 03:00) count once, keeping the one whose
//!   local time really exists.
//! * Results are ordered by instant (all-day: by date).
//!
//! # Bounded work
//!
//! Expansion is bounded by the window and by [`ExpansionLimits`]: at most `max_occurrences`
//! occurrences are returned and at most `max_candidates` candidate start times are examined
//! (including those before the window and those an excluded day or hour skips over). Hitting
//! either limit is reported in [`Expansion::truncated`], never silent; what is returned is
//! then always a complete prefix of the window's occurrences (by original start). Infinite
//! rules are fine: the window bounds them.
//!
//! A rule without `COUNT` does not walk from its start to a distant window: expansion jumps to
//! the last period of the rule's `INTERVAL` grid that begins a week before the window, with
//! the parts the rule takes from `DTSTART` made explicit, so a daily rule begun in 1990 costs
//! the same as one begun last week. A rule with `COUNT` must count from its start.
//!
//! Inside the `rrule` crate one call for the next candidate may scan up to 100 000 periods
//! when a rule can never match (`FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30`); that costs a few
//! milliseconds and ends the rule, which is correct since it has no more occurrences.
//!
//! # Notes on the `rrule` crate (0.14)
//!
//! What we found and how it is worked around:
//!
//! * Its own DST handling drops occurrences whose local time falls in a gap that contains
//!   midnight (`America/Sao_Paulo`, daily at 00:00 on 2018-11-04 is silently skipped) and
//!   reports no original local start. We never give it a real zone: it expands in UTC-as-local
//!   and [`crate::timezone`] resolves each local time.
//! * Its `HOURLY`/`MINUTELY`/`SECONDLY` stepping loses occurrences when a day is excluded and
//!   `BYHOUR`/`BYMINUTE` are present (`FREQ=SECONDLY;BYHOUR=3;BYMINUTE=7;BYSECOND=5;BYMONTH=2;
//!   BYMONTHDAY=29` yields nothing; `FREQ=MINUTELY;BYHOUR=9;BYMINUTE=0,30;BYDAY=MO,FR` skips
//!   whole weeks). Sub-daily rules are expanded by our own generator instead.
//! * It gives the same instant twice across a spring-forward gap for sub-daily rules; we
//!   deduplicate by instant.
//! * Its validation rejects `BYDAY=-5MO` with `FREQ=MONTHLY` and `-53MO` with `FREQ=YEARLY`
//!   (valid in RFC 5545) and bounds `BYSETPOS` to ±31 for `MONTHLY` and ±53 for `WEEKLY`; we
//!   refuse those inputs up front with a message saying they are not supported.
//! * It accepts `INTERVAL=0` (and then yields nothing), does not refuse `COUNT` with `UNTIL`,
//!   and reads a floating `UNTIL` in the server's local zone; our parser refuses the first two
//!   and applies `UNTIL` itself.

mod generator;
pub(crate) mod ical;
mod rule;

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use self::generator::{Pull, RuleCursor, WorkBudget};
use self::ical::{parse_ical_date, parse_ical_date_time, IcalDateTime};
pub use self::rule::{
    Frequency, RecurrenceRule, Until, WeekdayNum, MAX_COUNT, MAX_INTERVAL, MAX_RULE_LENGTH,
    MIN_SPACING_SECS,
};
use crate::error::RecurrenceProperty;
use crate::timezone::{parse_zone, resolve_local, resolve_local_detailed, LocalTimeKind};
use crate::CalendarError;

/// At most this many `RRULE`s per series.
pub const MAX_RULES: usize = 10;
/// At most this many `RDATE`s, and as many `EXDATE`s, per series.
pub const MAX_DATES: usize = 10_000;

/// How far (in local time) a candidate may be from the window and still resolve into it;
/// UTC offsets never exceed a day.
const WINDOW_SLACK: Duration = Duration::days(2);

/// The start of a series (`DTSTART`), which also decides what kind of series it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesStart {
    /// A local date-time in an IANA zone (a `DTSTART` with `TZID`, or a UTC time in `UTC`).
    Zoned {
        /// The wall-clock start in `zone`.
        local: NaiveDateTime,
        /// The zone the series lives in.
        zone: Tz,
    },
    /// A local date-time without zone, read in the caller's zone at expansion.
    Floating(NaiveDateTime),
    /// A date: an all-day series.
    AllDay(NaiveDate),
}

impl SeriesStart {
    /// Parses an iCalendar `DTSTART` value with its optional `TZID` parameter:
    /// `YYYYMMDD` (all-day; a `TZID` is ignored), `YYYYMMDDTHHMMSS` with a `TZID` (zoned) or
    /// without (floating), or `YYYYMMDDTHHMMSSZ` (zoned in UTC; no `TZID` allowed).
    pub fn parse_ical(value: &str, tzid: Option<&str>) -> Result<Self, CalendarError> {
        let value = value.trim();
        let property = RecurrenceProperty::Dtstart;
        if value.len() == 8 {
            return parse_ical_date(value).map(Self::AllDay).ok_or_else(|| {
                CalendarError::recurrence(property, format!("`{value}` is not a valid date"))
            });
        }
        let parsed = parse_ical_date_time(value).ok_or_else(|| {
            CalendarError::recurrence(
                property,
                format!(
                    "expected a date (YYYYMMDD) or a date-time (YYYYMMDDTHHMMSS, optionally \
                     ending in Z), got `{value}`"
                ),
            )
        })?;
        let tzid = tzid.map(str::trim).filter(|tzid| !tzid.is_empty());
        match (parsed, tzid) {
            (IcalDateTime::Utc(at), None) => Ok(Self::Zoned {
                local: at.naive_utc(),
                zone: Tz::UTC,
            }),
            (IcalDateTime::Utc(_), Some(tzid)) => Err(CalendarError::recurrence(
                property,
                format!("`{value}` is a UTC time (ends in Z) but a TZID ({tzid}) was also given"),
            )),
            (IcalDateTime::Local(local), Some(tzid)) => Ok(Self::Zoned {
                local,
                zone: parse_zone(tzid)?,
            }),
            (IcalDateTime::Local(local), None) => Ok(Self::Floating(local)),
        }
    }

    /// The start as a local wall-clock time (midnight for all-day series).
    pub fn local_start(&self) -> NaiveDateTime {
        match *self {
            Self::Zoned { local, .. } | Self::Floating(local) => local,
            Self::AllDay(date) => date.and_time(NaiveTime::MIN),
        }
    }

    /// True for an all-day series.
    pub fn is_all_day(&self) -> bool {
        matches!(self, Self::AllDay(_))
    }
}

/// One `RDATE` or `EXDATE` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurrenceDate {
    /// A wall-clock time in the series' zone (or floating), `YYYYMMDDTHHMMSS`.
    Local(NaiveDateTime),
    /// An instant, `YYYYMMDDTHHMMSSZ`.
    Utc(DateTime<Utc>),
    /// A date, `YYYYMMDD`, for all-day series.
    Date(NaiveDate),
}

impl RecurrenceDate {
    /// A wall-clock time in a zone other than the series' (an iCalendar `RDATE;TZID=…` that
    /// differs from `DTSTART`'s), turned into an instant with the DST policy.
    pub fn in_zone(local: NaiveDateTime, zone: Tz) -> Self {
        Self::Utc(resolve_local(local, zone))
    }

    /// Parses one iCalendar value; `property` (`RDATE` or `EXDATE`) names it in errors.
    pub fn parse_ical(value: &str, property: RecurrenceProperty) -> Result<Self, CalendarError> {
        let value = value.trim();
        if value.len() == 8 {
            if let Some(date) = parse_ical_date(value) {
                return Ok(Self::Date(date));
            }
        }
        match parse_ical_date_time(value) {
            Some(IcalDateTime::Utc(at)) => Ok(Self::Utc(at)),
            Some(IcalDateTime::Local(at)) => Ok(Self::Local(at)),
            None => Err(CalendarError::recurrence(
                property,
                format!(
                    "expected a date (YYYYMMDD) or a date-time (YYYYMMDDTHHMMSS, optionally \
                     ending in Z), got `{value}`"
                ),
            )),
        }
    }

    /// Parses a comma-separated iCalendar list of values.
    pub fn parse_ical_list(
        list: &str,
        property: RecurrenceProperty,
    ) -> Result<Vec<Self>, CalendarError> {
        list.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(|item| Self::parse_ical(item, property))
            .collect()
    }
}

/// What identifies an occurrence within its series: the start the rule (or `RDATE`) produced,
/// in the series' local time and before any DST shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginalStart {
    /// For zoned and floating series.
    DateTime(NaiveDateTime),
    /// For all-day series.
    Date(NaiveDate),
}

/// One occurrence of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Occurrence {
    /// An occurrence of a zoned or floating series.
    Timed {
        /// The local start the rule produced (the occurrence's identity).
        original_start: NaiveDateTime,
        /// When it starts, after the DST policy.
        start: DateTime<Utc>,
    },
    /// An occurrence of an all-day series.
    AllDay {
        /// The day.
        date: NaiveDate,
    },
}

impl Occurrence {
    /// The occurrence's identity within its series.
    pub fn original_start(&self) -> OriginalStart {
        match *self {
            Self::Timed { original_start, .. } => OriginalStart::DateTime(original_start),
            Self::AllDay { date } => OriginalStart::Date(date),
        }
    }
}

/// Caps on the work of one expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpansionLimits {
    /// The most occurrences returned.
    pub max_occurrences: usize,
    /// The most candidate start times examined (in and before the window).
    pub max_candidates: usize,
}

impl Default for ExpansionLimits {
    /// 5 000 occurrences (a daily event for over 13 years) and 200 000 candidates (a minutely
    /// rule over four months, or 500 years of a daily rule with `COUNT`; some tens of
    /// milliseconds).
    fn default() -> Self {
        Self {
            max_occurrences: 5_000,
            max_candidates: 200_000,
        }
    }
}

/// Which cap stopped an expansion early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// More occurrences are in the window than [`ExpansionLimits::max_occurrences`].
    MaxOccurrences,
    /// [`ExpansionLimits::max_candidates`] candidates were examined before the window's end.
    MaxCandidates,
}

/// What to expand: a window of start instants `[from, to)`, the zone for floating times and
/// all-day dates, and the work limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpansionQuery {
    /// Occurrences starting before this are left out; `None` = from the series start.
    pub from: Option<DateTime<Utc>>,
    /// Occurrences starting at or after this are left out; `None` = no end (the limits bound
    /// the work).
    pub to: Option<DateTime<Utc>>,
    /// The zone floating times are read in, and all-day dates are placed in for windowing.
    pub floating_zone: Tz,
    /// Caps on the work.
    pub limits: ExpansionLimits,
}

impl ExpansionQuery {
    /// Occurrences starting in `[from, to)`, default limits, floating zone UTC.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self {
            from: Some(from),
            to: Some(to),
            ..Self::from_series_start()
        }
    }

    /// Occurrences from the series start on, up to the limits.
    pub fn from_series_start() -> Self {
        Self {
            from: None,
            to: None,
            floating_zone: Tz::UTC,
            limits: ExpansionLimits::default(),
        }
    }

    /// Sets the zone floating times and all-day dates are read in.
    #[must_use]
    pub fn with_floating_zone(mut self, zone: Tz) -> Self {
        self.floating_zone = zone;
        self
    }

    /// Sets the work limits.
    #[must_use]
    pub fn with_limits(mut self, limits: ExpansionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the most occurrences returned.
    #[must_use]
    pub fn with_max_occurrences(mut self, max_occurrences: usize) -> Self {
        self.limits.max_occurrences = max_occurrences;
        self
    }
}

/// The result of an expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// The occurrences, ordered by start.
    pub occurrences: Vec<Occurrence>,
    /// Set when a limit stopped the expansion before the window's end: more occurrences may
    /// exist after the last one returned.
    pub truncated: Option<Truncation>,
    /// How many candidate start times were examined.
    pub candidates_examined: usize,
}

/// An `RDATE` (or the series start) ready for merging: its local start, and its exact instant
/// when one was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ExtraStart {
    local: NaiveDateTime,
    instant: Option<DateTime<Utc>>,
}

/// A validated recurrence set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    start: SeriesStart,
    rules: Vec<RecurrenceRule>,
    /// `RDATE`s and the series start, sorted by local start.
    extra_starts: Vec<ExtraStart>,
    /// Excluded original starts (midnight for all-day dates).
    excluded: BTreeSet<NaiveDateTime>,
}

impl Recurrence {
    /// A series with a single occurrence at `start`.
    pub fn single(start: SeriesStart) -> Self {
        Self {
            start,
            rules: Vec::new(),
            extra_starts: vec![ExtraStart {
                local: start.local_start(),
                instant: None,
            }],
            excluded: BTreeSet::new(),
        }
    }

    /// Validates a recurrence set: the start, `RRULE` values (0 to [`MAX_RULES`], each with
    /// or without an `RRULE:` prefix), `RDATE`s and `EXDATE`s.
    ///
    /// `RDATE`/`EXDATE` values must suit the series: dates for all-day series; local or UTC
    /// date-times for zoned series; local date-times for floating series.
    pub fn new<S: AsRef<str>>(
        start: SeriesStart,
        rrules: &[S],
        rdates: &[RecurrenceDate],
        exdates: &[RecurrenceDate],
    ) -> Result<Self, CalendarError> {
        check_year(start.local_start(), RecurrenceProperty::Dtstart)?;
        if rrules.len() > MAX_RULES {
            return Err(CalendarError::rrule(format!(
                "{} rules given; at most {MAX_RULES} are accepted",
                rrules.len()
            )));
        }
        if rdates.len() > MAX_DATES || exdates.len() > MAX_DATES {
            let (property, length) = if rdates.len() > MAX_DATES {
                (RecurrenceProperty::Rdate, rdates.len())
            } else {
                (RecurrenceProperty::Exdate, exdates.len())
            };
            return Err(CalendarError::recurrence(
                property,
                format!("{length} values given; at most {MAX_DATES} are accepted"),
            ));
        }
        let mut rules = Vec::with_capacity(rrules.len());
        for text in rrules {
            let rule = RecurrenceRule::parse(text.as_ref())?;
            check_rule_against_start(&rule, &start)?;
            // Build the expander once so that whatever the rrule crate refuses is refused here.
            RuleCursor::new(&rule, start.local_start(), None, None, None)?;
            rules.push(rule);
        }
        let mut extra_starts = vec![ExtraStart {
            local: start.local_start(),
            instant: None,
        }];
        for date in rdates {
            extra_starts.push(to_series_local(&start, *date, RecurrenceProperty::Rdate)?);
        }
        // Explicit instants first, so they win over a plain local start when deduplicating.
        extra_starts.sort_by_key(|extra| (extra.local, extra.instant.is_none(), extra.instant));
        extra_starts.dedup_by_key(|extra| extra.local);
        let mut excluded = BTreeSet::new();
        for date in exdates {
            excluded.insert(to_series_local(&start, *date, RecurrenceProperty::Exdate)?.local);
        }
        Ok(Self {
            start,
            rules,
            extra_starts,
            excluded,
        })
    }

    /// The series start.
    pub fn start(&self) -> &SeriesStart {
        &self.start
    }

    /// The rules, validated.
    pub fn rules(&self) -> &[RecurrenceRule] {
        &self.rules
    }

    /// The added dates (`RDATE`), ordered by local start: dates for an all-day series, UTC
    /// instants for those given as instants, local date-times otherwise. An `RDATE` equal to
    /// the series start is not listed separately.
    pub fn rdates(&self) -> Vec<RecurrenceDate> {
        let start_local = self.start.local_start();
        self.extra_starts
            .iter()
            .filter(|extra| !(extra.local == start_local && extra.instant.is_none()))
            .map(|extra| match (self.start, extra.instant) {
                (SeriesStart::AllDay(_), _) => RecurrenceDate::Date(extra.local.date()),
                (_, Some(instant)) => RecurrenceDate::Utc(instant),
                (_, None) => RecurrenceDate::Local(extra.local),
            })
            .collect()
    }

    /// The excluded original starts (`EXDATE`), ordered: dates for an all-day series, local
    /// date-times in the series' zone (or floating) otherwise.
    pub fn exdates(&self) -> Vec<RecurrenceDate> {
        self.excluded
            .iter()
            .map(|local| match self.start {
                SeriesStart::AllDay(_) => RecurrenceDate::Date(local.date()),
                _ => RecurrenceDate::Local(*local),
            })
            .collect()
    }

    /// True when some rule has neither `COUNT` nor `UNTIL`.
    pub fn is_infinite(&self) -> bool {
        self.rules.iter().any(RecurrenceRule::is_infinite)
    }

    /// Expands the series over `query`'s window; see the module documentation.
    pub fn expand(&self, query: &ExpansionQuery) -> Expansion {
        let zone = match self.start {
            SeriesStart::Zoned { zone, .. } => Some(zone),
            SeriesStart::Floating(_) => Some(query.floating_zone),
            SeriesStart::AllDay(_) => None,
        };
        let resolve_zone = zone.unwrap_or(query.floating_zone);
        let start_local = self.start.local_start();

        // Local candidates outside these bounds cannot start inside the window.
        let lowest_local = query
            .from
            .and_then(|from| from.naive_utc().checked_sub_signed(WINDOW_SLACK));
        let highest_local = query
            .to
            .and_then(|to| to.naive_utc().checked_add_signed(WINDOW_SLACK));

        let mut budget = WorkBudget::new(query.limits.max_candidates);
        let mut cursors: Vec<MergeHead> = self
            .rules
            .iter()
            .filter_map(|rule| {
                RuleCursor::new(rule, start_local, zone, highest_local, lowest_local).ok()
            })
            .map(|cursor| MergeHead {
                cursor,
                head: None,
                last_pulled: None,
                finished: false,
            })
            .collect();
        let mut extras = self.extra_starts.iter().peekable();

        let mut found: Vec<Occurrence> = Vec::new();
        let mut truncated = None;
        // Once the candidate budget is spent, only starts up to here are known to be complete.
        let mut frontier: Option<NaiveDateTime> = None;
        let mut last_local: Option<NaiveDateTime> = None;
        loop {
            if truncated.is_none() {
                for merge in cursors
                    .iter_mut()
                    .filter(|m| m.head.is_none() && !m.finished)
                {
                    match merge.cursor.pull(&mut budget) {
                        Pull::Next(local) => {
                            merge.head = Some(local);
                            merge.last_pulled = Some(local);
                        }
                        Pull::Done => merge.finished = true,
                        Pull::OutOfBudget => truncated = Some(Truncation::MaxCandidates),
                    }
                }
                if truncated.is_some() {
                    // Each unfinished rule is complete up to its head (or the last candidate it
                    // gave); past the earliest of those, occurrences may be missing.
                    frontier = cursors
                        .iter()
                        .filter(|m| !m.finished)
                        .map(|m| m.head.or(m.last_pulled).unwrap_or(start_local))
                        .min();
                }
            }
            let rule_min = cursors.iter().filter_map(|m| m.head).min();
            let extra_min = extras.peek().map(|extra| extra.local);
            let (local, fixed_instant) = match (rule_min, extra_min) {
                (None, None) => break,
                (Some(rule), Some(extra)) if extra <= rule => take_extra(&mut extras),
                (Some(rule), _) => (rule, None),
                (None, Some(_)) => take_extra(&mut extras),
            };
            for merge in cursors.iter_mut().filter(|m| m.head == Some(local)) {
                merge.head = None;
            }
            if highest_local.is_some_and(|highest| local > highest)
                || frontier.is_some_and(|frontier| local > frontier)
            {
                break;
            }
            if last_local == Some(local) {
                continue;
            }
            last_local = Some(local);
            if lowest_local.is_some_and(|lowest| local < lowest) || self.excluded.contains(&local) {
                continue;
            }
            let instant = fixed_instant.unwrap_or_else(|| resolve_local(local, resolve_zone));
            if query.from.is_some_and(|from| instant < from)
                || query.to.is_some_and(|to| instant >= to)
            {
                continue;
            }
            if found.len() == query.limits.max_occurrences {
                truncated = Some(Truncation::MaxOccurrences);
                break;
            }
            found.push(match self.start {
                SeriesStart::AllDay(_) => Occurrence::AllDay { date: local.date() },
                _ => Occurrence::Timed {
                    original_start: local,
                    start: instant,
                },
            });
        }
        order_and_deduplicate(&mut found, resolve_zone);
        Expansion {
            occurrences: found,
            truncated,
            candidates_examined: budget.examined(),
        }
    }
}

/// A rule cursor with its next candidate, for the k-way merge in [`Recurrence::expand`].
struct MergeHead {
    cursor: RuleCursor,
    /// The next candidate, pulled but not yet merged.
    head: Option<NaiveDateTime>,
    /// The latest candidate pulled, merged or not.
    last_pulled: Option<NaiveDateTime>,
    /// The rule has no more occurrences (or none up to the window's end).
    finished: bool,
}

fn take_extra<'a>(
    extras: &mut std::iter::Peekable<impl Iterator<Item = &'a ExtraStart>>,
) -> (NaiveDateTime, Option<DateTime<Utc>>) {
    match extras.next() {
        Some(extra) => (extra.local, extra.instant),
        None => (NaiveDateTime::MIN, None),
    }
}

/// Sorts by start and drops timed occurrences that resolve to an instant already taken,
/// keeping the one whose local time exists (the later original start).
fn order_and_deduplicate(found: &mut Vec<Occurrence>, zone: Tz) {
    found.sort_by_key(|occurrence| match *occurrence {
        Occurrence::Timed {
            original_start,
            start,
        } => (start, OriginalStart::DateTime(original_start)),
        Occurrence::AllDay { date } => (
            resolve_local(date.and_time(NaiveTime::MIN), zone),
            OriginalStart::Date(date),
        ),
    });
    let mut kept: Vec<Occurrence> = Vec::with_capacity(found.len());
    for occurrence in found.drain(..) {
        if let (
            Some(Occurrence::Timed {
                start: previous, ..
            }),
            Occurrence::Timed { start, .. },
        ) = (kept.last(), occurrence)
        {
            if *previous == start {
                kept.pop();
            }
        }
        kept.push(occurrence);
    }
    *found = kept;
}

fn check_year(at: NaiveDateTime, property: RecurrenceProperty) -> Result<(), CalendarError> {
    if (1..=9_999).contains(&at.year()) {
        Ok(())
    } else {
        Err(CalendarError::recurrence(
            property,
            format!("the year must be between 1 and 9999, got {}", at.year()),
        ))
    }
}

fn ical_text(at: NaiveDateTime) -> String {
    at.format("%Y%m%dT%H%M%S").to_string()
}

/// Checks what a rule can only be judged against the series start.
fn check_rule_against_start(
    rule: &RecurrenceRule,
    start: &SeriesStart,
) -> Result<(), CalendarError> {
    if start.is_all_day() {
        if rule.frequency().is_sub_daily() {
            return Err(CalendarError::rrule(format!(
                "FREQ={} needs a start with a time of day, but this series is all-day \
                 (DTSTART is a date)",
                rule.frequency().as_str()
            )));
        }
        if rule.has_time_of_day_parts() {
            return Err(CalendarError::rrule(
                "BYHOUR, BYMINUTE and BYSECOND cannot be used in an all-day series (DTSTART is \
                 a date)",
            ));
        }
    }
    let Some(until) = rule.until() else {
        return Ok(());
    };
    let start_local = start.local_start();
    let before_start = match (until, start) {
        (Until::Utc(until), SeriesStart::Zoned { local, zone }) => {
            until < resolve_local(*local, *zone)
        }
        // A floating start's instant is not known yet; only a UTC time over a day earlier is
        // certainly before it.
        (Until::Utc(until), SeriesStart::Floating(local)) => {
            until.naive_utc() + Duration::days(1) < *local
        }
        (Until::Utc(until), SeriesStart::AllDay(date)) => until.date_naive() < *date,
        (Until::Local(until), SeriesStart::AllDay(date)) => until.date() < *date,
        (Until::Local(until), _) => until < start_local,
        (Until::Date(until), _) => until < start_local.date(),
    };
    if before_start {
        let until_text = match until {
            Until::Utc(at) => at.format("%Y%m%dT%H%M%SZ").to_string(),
            Until::Local(at) => ical_text(at),
            Until::Date(date) => date.format("%Y%m%d").to_string(),
        };
        return Err(CalendarError::rrule(format!(
            "UNTIL ({until_text}) is before DTSTART ({}); the rule would add no occurrences",
            match start {
                SeriesStart::AllDay(date) => date.format("%Y%m%d").to_string(),
                _ => ical_text(start_local),
            }
        )));
    }
    Ok(())
}

/// Turns an `RDATE`/`EXDATE` into the series' local time, checking that it suits the series.
fn to_series_local(
    start: &SeriesStart,
    date: RecurrenceDate,
    property: RecurrenceProperty,
) -> Result<ExtraStart, CalendarError> {
    let extra = match (start, date) {
        (SeriesStart::AllDay(_), RecurrenceDate::Date(date)) => ExtraStart {
            local: date.and_time(NaiveTime::MIN),
            instant: None,
        },
        (SeriesStart::AllDay(_), _) => {
            return Err(CalendarError::recurrence(
                property,
                "this series is all-day (DTSTART is a date); give dates (YYYYMMDD), not \
                 date-times",
            ))
        }
        (_, RecurrenceDate::Date(date)) => {
            return Err(CalendarError::recurrence(
                property,
                format!(
                    "`{}` is a date, but this series has a time of day; give a date-time \
                     (YYYYMMDDTHHMMSS)",
                    date.format("%Y%m%d")
                ),
            ))
        }
        (SeriesStart::Zoned { zone, .. }, RecurrenceDate::Utc(at)) => ExtraStart {
            local: at.with_timezone(zone).naive_local(),
            instant: Some(at),
        },
        (SeriesStart::Floating(_), RecurrenceDate::Utc(at)) => {
            return Err(CalendarError::recurrence(
                property,
                format!(
                    "`{}` is a UTC time, but this series is floating (no time zone); give a \
                     local date-time (YYYYMMDDTHHMMSS)",
                    at.format("%Y%m%dT%H%M%SZ")
                ),
            ))
        }
        (_, RecurrenceDate::Local(local)) => ExtraStart {
            local,
            instant: None,
        },
    };
    check_year(extra.local, property)?;
    Ok(extra)
}

/// Whether a local wall-clock time of a zoned series falls in a DST gap or fold; useful to
/// warn a user who schedules at 02:30 on a spring-forward day.
pub fn local_time_kind(local: NaiveDateTime, zone: Tz) -> LocalTimeKind {
    resolve_local_detailed(local, zone).kind
}
