//! A stored schedule's timing and recurrence, ready to materialize: parse what the API or the
//! database holds, expand a window of original starts into instants, tell whether an original
//! start is an occurrence, and split a series "this and following".
//!
//! # How times are read
//!
//! * A **timed** schedule is its first occurrence as instants (`start`, `end`) plus the IANA
//!   zone the recurrence is expanded in. Each occurrence lasts the same exact time as the first
//!   (RFC 5545 §3.8.5.3, `DTEND`), so a 1-hour meeting stays 1 hour across DST changes.
//! * An **all-day** schedule is a first day and an exclusive end day. For views and free/busy
//!   its days are placed at midnight of the calendar's zone (the `placement` zone below).
//! * **Floating** times (an iCalendar `DTSTART` without zone) are read, once, at import, in the
//!   calendar's zone, and stored as timed in that zone; the API never stores floating times.
//!
//! Occurrences are identified by their **original start**: the local wall-clock start (in the
//! series' zone) the rule or an `RDATE` produced, before any DST shift; for all-day series the
//! date at midnight. Exceptions and `EXDATE`s match on it.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::error::RecurrenceProperty;
use crate::recurrence::{
    ExpansionLimits, ExpansionQuery, Occurrence, Recurrence, RecurrenceDate, RecurrenceRule,
    SeriesStart, Until,
};
use crate::timezone::resolve_local;
use crate::CalendarError;

/// When a schedule's first occurrence takes place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// From `start` to `end` (instants), recurring in `zone`'s wall-clock time.
    Timed {
        /// The first occurrence's start.
        start: DateTime<Utc>,
        /// The first occurrence's end (not before `start`).
        end: DateTime<Utc>,
        /// The zone the series lives in.
        zone: Tz,
    },
    /// From `start` to the day before `end` (exclusive end).
    AllDay {
        /// The first day.
        start: NaiveDate,
        /// The day after the last day.
        end: NaiveDate,
    },
}

impl Timing {
    /// Parses an occurrence key in any form the API takes: the local forms of
    /// [`parse_original_start`], or an instant (`2026-03-10T14:00:00Z`, with any offset), the
    /// form views report starts in, read in the series' zone (all-day series: in `placement`).
    pub fn parse_original_start(&self, text: &str, placement: Tz) -> Option<NaiveDateTime> {
        parse_original_start(text).or_else(|| {
            let at = DateTime::parse_from_rfc3339(text.trim())
                .ok()?
                .with_timezone(&Utc);
            Some(match *self {
                Self::Timed { zone, .. } => at.with_timezone(&zone).naive_local(),
                Self::AllDay { .. } => at
                    .with_timezone(&placement)
                    .date_naive()
                    .and_time(NaiveTime::MIN),
            })
        })
    }

    /// The series start as the recurrence engine sees it.
    pub fn series_start(&self) -> SeriesStart {
        match *self {
            Self::Timed { start, zone, .. } => SeriesStart::Zoned {
                local: start.with_timezone(&zone).naive_local(),
                zone,
            },
            Self::AllDay { start, .. } => SeriesStart::AllDay(start),
        }
    }

    /// The original start (key) of the first occurrence.
    pub fn first_original_start(&self) -> NaiveDateTime {
        self.series_start().local_start()
    }

    /// True for an all-day schedule.
    pub fn is_all_day(&self) -> bool {
        matches!(self, Self::AllDay { .. })
    }
}

/// One occurrence ready to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedInstance {
    /// The occurrence's identity in its series.
    pub original_start: NaiveDateTime,
    /// Its start, UTC.
    pub start: DateTime<Utc>,
    /// Its end, UTC (exclusive).
    pub end: DateTime<Utc>,
}

/// The result of expanding one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedWindow {
    /// The occurrences whose start lies in the window, by start.
    pub instances: Vec<PlannedInstance>,
    /// Set when a work cap stopped the expansion: occurrences are complete only up to (and
    /// excluding) this instant; the caller records it as the end of what is materialized.
    pub complete_until: Option<DateTime<Utc>>,
}

/// A validated series: timing plus recurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    timing: Timing,
    recurrence: Recurrence,
}

/// Parses an `RDATE`/`EXDATE` value as the API accepts it: `2026-03-10` or `20260310` (a
/// date), `2026-03-10T09:00:00` or `20260310T090000` (wall-clock time in the series' zone), or
/// an instant (`2026-03-10T14:00:00Z`, `2026-03-10T09:00:00-05:00`, `20260310T140000Z`).
pub fn parse_recurrence_date(
    text: &str,
    property: RecurrenceProperty,
) -> Result<RecurrenceDate, CalendarError> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(RecurrenceDate::Date(date));
    }
    if let Ok(local) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return Ok(RecurrenceDate::Local(local));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(RecurrenceDate::Utc(at.with_timezone(&Utc)));
    }
    RecurrenceDate::parse_ical(text, property).map_err(|_| CalendarError::InvalidRecurrence {
        property,
        message: format!(
            "`{text}` is not a date (2026-03-10), a local date-time in the series' zone \
                 (2026-03-10T09:00:00) or an instant (2026-03-10T14:00:00Z)"
        ),
    })
}

/// The iCalendar text of a recurrence date, the form schedules store.
pub fn recurrence_date_text(date: &RecurrenceDate) -> String {
    match *date {
        RecurrenceDate::Date(date) => date.format("%Y%m%d").to_string(),
        RecurrenceDate::Local(local) => local.format("%Y%m%dT%H%M%S").to_string(),
        RecurrenceDate::Utc(at) => at.format("%Y%m%dT%H%M%SZ").to_string(),
    }
}

/// Parses an occurrence key as the API writes it: `2026-03-10T09:00:00` (timed series, local
/// wall-clock time in the series' zone) or `2026-03-10` (all-day series).
pub fn parse_original_start(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|date| date.and_time(NaiveTime::MIN))
        })
}

/// Writes an occurrence key as the API reads it (see [`parse_original_start`]).
pub fn original_start_text(original_start: NaiveDateTime, all_day: bool) -> String {
    if all_day {
        original_start.date().format("%Y-%m-%d").to_string()
    } else {
        original_start.format("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

/// Limits of one materialization step: a window never yields more than this many instances.
pub const MATERIALIZE_LIMITS: ExpansionLimits = ExpansionLimits {
    max_occurrences: 5_000,
    max_candidates: 200_000,
};

impl Series {
    /// Validates a series from stored or submitted parts. Dates in `rdates`/`exdates` take the
    /// forms of [`parse_recurrence_date`].
    pub fn new<S: AsRef<str>>(
        timing: Timing,
        rrules: &[S],
        rdates: &[S],
        exdates: &[S],
    ) -> Result<Self, CalendarError> {
        let parse_all = |values: &[S], property| {
            values
                .iter()
                .map(|value| parse_recurrence_date(value.as_ref(), property))
                .collect::<Result<Vec<_>, _>>()
        };
        let rdates = parse_all(rdates, RecurrenceProperty::Rdate)?;
        let exdates = parse_all(exdates, RecurrenceProperty::Exdate)?;
        let recurrence = Recurrence::new(timing.series_start(), rrules, &rdates, &exdates)?;
        Ok(Self { timing, recurrence })
    }

    /// Refuses a series whose rules repeat more often than once an hour (see
    /// [`crate::recurrence::RecurrenceRule::check_density`]): what storage calls before it
    /// keeps a new or changed series. Stored series are read without it.
    pub fn check_density(&self) -> Result<(), CalendarError> {
        self.recurrence
            .rules()
            .iter()
            .try_for_each(|rule| rule.check_density())
    }

    /// A series from parts already validated, such as an imported event's.
    pub fn from_recurrence(timing: Timing, recurrence: Recurrence) -> Result<Self, CalendarError> {
        let rrules: Vec<String> = recurrence.rules().iter().map(ToString::to_string).collect();
        let rdates: Vec<String> = recurrence
            .rdates()
            .iter()
            .map(recurrence_date_text)
            .collect();
        let exdates: Vec<String> = recurrence
            .exdates()
            .iter()
            .map(recurrence_date_text)
            .collect();
        Self::new(timing, &rrules, &rdates, &exdates)
    }

    /// The timing.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The recurrence set.
    pub fn recurrence(&self) -> &Recurrence {
        &self.recurrence
    }

    /// The rules in canonical text, as stored.
    pub fn rrule_texts(&self) -> Vec<String> {
        self.recurrence
            .rules()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The added dates in iCalendar text, as stored.
    pub fn rdate_texts(&self) -> Vec<String> {
        self.recurrence
            .rdates()
            .iter()
            .map(recurrence_date_text)
            .collect()
    }

    /// The excluded dates in iCalendar text, as stored.
    pub fn exdate_texts(&self) -> Vec<String> {
        self.recurrence
            .exdates()
            .iter()
            .map(recurrence_date_text)
            .collect()
    }

    /// True when it has more than one occurrence in principle (a rule or an `RDATE`).
    pub fn is_recurring(&self) -> bool {
        !self.recurrence.rules().is_empty() || !self.recurrence.rdates().is_empty()
    }

    /// When the occurrence starting at `start` ends.
    fn end_of(&self, start: DateTime<Utc>, placement: Tz) -> DateTime<Utc> {
        match self.timing {
            Timing::Timed {
                start: first, end, ..
            } => start + (end - first),
            Timing::AllDay {
                start: first, end, ..
            } => {
                let days = (end - first).num_days().max(1);
                let day = start.with_timezone(&placement).date_naive();
                let last = day
                    .checked_add_signed(Duration::days(days))
                    .unwrap_or(NaiveDate::MAX);
                resolve_local(last.and_time(NaiveTime::MIN), placement)
            }
        }
    }

    fn plan(&self, occurrence: &Occurrence, placement: Tz) -> PlannedInstance {
        let (original_start, start) = match *occurrence {
            Occurrence::Timed {
                original_start,
                start,
            } => (original_start, start),
            Occurrence::AllDay { date } => {
                let midnight = date.and_time(NaiveTime::MIN);
                (midnight, resolve_local(midnight, placement))
            }
        };
        PlannedInstance {
            original_start,
            start,
            end: self.end_of(start, placement),
        }
    }

    /// The occurrences starting in `[from, to)`. All-day dates are placed at midnight in
    /// `placement` (the calendar's zone). Bounded by [`MATERIALIZE_LIMITS`].
    pub fn expand_window(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        placement: Tz,
    ) -> PlannedWindow {
        let query = ExpansionQuery::between(from, to)
            .with_floating_zone(placement)
            .with_limits(MATERIALIZE_LIMITS);
        let expansion = self.recurrence.expand(&query);
        let instances: Vec<PlannedInstance> = expansion
            .occurrences
            .iter()
            .map(|occurrence| self.plan(occurrence, placement))
            .collect();
        let complete_until = expansion.truncated.map(|_| {
            // Everything before the last returned start is complete; resume from it (the
            // store ignores the duplicate).
            instances.last().map_or(from, |last| last.start)
        });
        PlannedWindow {
            instances,
            complete_until,
        }
    }

    /// The start of the first occurrence.
    pub fn first_start(&self, placement: Tz) -> DateTime<Utc> {
        match self.timing {
            Timing::Timed { start, .. } => start,
            Timing::AllDay { start, .. } => {
                resolve_local(start.and_time(NaiveTime::MIN), placement)
            }
        }
    }

    /// The end of the last occurrence, or `None` for a series without end (or one too long
    /// to walk within the caps, which is then treated as open).
    pub fn series_end(&self, placement: Tz) -> Option<DateTime<Utc>> {
        if self.recurrence.is_infinite() {
            return None;
        }
        let query = ExpansionQuery::from_series_start()
            .with_floating_zone(placement)
            .with_limits(MATERIALIZE_LIMITS);
        let expansion = self.recurrence.expand(&query);
        if expansion.truncated.is_some() {
            return None;
        }
        expansion
            .occurrences
            .iter()
            .map(|occurrence| self.plan(occurrence, placement).end)
            .max()
            .or(Some(self.first_start(placement)))
    }

    /// The occurrence whose original start is `original_start`, if the series has one.
    pub fn occurrence_at(
        &self,
        original_start: NaiveDateTime,
        placement: Tz,
    ) -> Option<PlannedInstance> {
        // An original start is a local time; its instant is within a day of it in any zone.
        let around = original_start.and_utc();
        let window = self.expand_window(
            around - Duration::days(2),
            around + Duration::days(2),
            placement,
        );
        window
            .instances
            .into_iter()
            .find(|instance| instance.original_start == original_start)
    }

    /// Splits the series at the occurrence `at` ("this and following"): the first part keeps
    /// the occurrences before it, the second starts with it. The second part's timing is
    /// `tail_timing` (the split occurrence's own, or a changed one), and its rules keep their
    /// end: `UNTIL` as is, `COUNT` reduced by the occurrences the first part kept.
    ///
    /// Refused when `at` is not an occurrence, or is the first (edit the whole series then).
    pub fn split(
        &self,
        at: NaiveDateTime,
        placement: Tz,
        tail_timing: Option<Timing>,
    ) -> Result<(Series, Series), CalendarError> {
        let occurrence = self.occurrence_at(at, placement).ok_or_else(|| {
            CalendarError::recurrence(
                RecurrenceProperty::Dtstart,
                format!("{at} is not an occurrence of this series"),
            )
        })?;
        if at == self.timing.first_original_start() {
            return Err(CalendarError::recurrence(
                RecurrenceProperty::Dtstart,
                "the split occurrence is the first of the series; change the whole series instead",
            ));
        }
        let start = self.timing.series_start();
        let mut head_rules = Vec::new();
        let mut tail_rules = Vec::new();
        for rule in self.recurrence.rules() {
            let alone = Recurrence::new(start, &[rule.to_string()], &[], &[])?;
            let before = alone
                .expand(
                    &ExpansionQuery::between(self.first_start(placement), occurrence.start)
                        .with_floating_zone(placement)
                        .with_limits(MATERIALIZE_LIMITS),
                )
                .occurrences
                .len();
            let before = u32::try_from(before).unwrap_or(u32::MAX);
            match rule.count() {
                Some(count) if count <= before => {
                    // The rule ends before the split: it stays whole in the first part.
                    head_rules.push(rule.to_string());
                }
                Some(count) => {
                    head_rules.push(
                        rule.with_end(None, Some(until_before(at, &self.timing)))
                            .to_string(),
                    );
                    tail_rules.push(rule.with_end(Some(count - before), None).to_string());
                }
                None => {
                    head_rules.push(
                        rule.with_end(None, Some(until_before(at, &self.timing)))
                            .to_string(),
                    );
                    tail_rules.push(rule.to_string());
                }
            }
        }
        let key = |date: &RecurrenceDate| -> NaiveDateTime {
            match (*date, self.timing) {
                (RecurrenceDate::Date(date), _) => date.and_time(NaiveTime::MIN),
                (RecurrenceDate::Local(local), _) => local,
                (RecurrenceDate::Utc(at), Timing::Timed { zone, .. }) => {
                    at.with_timezone(&zone).naive_local()
                }
                (RecurrenceDate::Utc(at), Timing::AllDay { .. }) => {
                    at.with_timezone(&placement).naive_local()
                }
            }
        };
        let partition = |dates: Vec<RecurrenceDate>| -> (Vec<String>, Vec<String>) {
            let (head, tail): (Vec<_>, Vec<_>) = dates.into_iter().partition(|d| key(d) < at);
            (
                head.iter().map(recurrence_date_text).collect(),
                tail.iter().map(recurrence_date_text).collect(),
            )
        };
        let (head_rdates, tail_rdates) = partition(self.recurrence.rdates());
        let (head_exdates, tail_exdates) = partition(self.recurrence.exdates());
        let head = Series::new(self.timing, &head_rules, &head_rdates, &head_exdates)?;
        let tail_timing = tail_timing.unwrap_or(match self.timing {
            Timing::Timed {
                start, end, zone, ..
            } => Timing::Timed {
                start: occurrence.start,
                end: occurrence.start + (end - start),
                zone,
            },
            Timing::AllDay { start, end } => Timing::AllDay {
                start: at.date(),
                end: at.date() + (end - start),
            },
        });
        let tail = Series::new(tail_timing, &tail_rules, &tail_rdates, &tail_exdates)?;
        Ok((head, tail))
    }
}

/// The `UNTIL` that ends a rule just before the occurrence `at`: the second before it in the
/// series' wall-clock time, or the day before it for an all-day series.
fn until_before(at: NaiveDateTime, timing: &Timing) -> Until {
    match timing {
        Timing::Timed { .. } => Until::Local(at - Duration::seconds(1)),
        Timing::AllDay { .. } => Until::Date(at.date() - Duration::days(1)),
    }
}

impl RecurrenceRule {
    /// The same rule with its end replaced by `count` or `until` (at most one of them).
    pub fn with_end(&self, count: Option<u32>, until: Option<Until>) -> RecurrenceRule {
        let mut rule = self.clone();
        rule.count = count;
        rule.until = if count.is_some() { None } else { until };
        rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nine_in_berlin() -> Timing {
        let zone: Tz = "Europe/Berlin".parse().unwrap();
        Timing::Timed {
            start: "2026-03-10T08:00:00Z".parse().unwrap(),
            end: "2026-03-10T09:00:00Z".parse().unwrap(),
            zone,
        }
    }

    #[test]
    fn an_original_start_is_read_in_the_local_form_or_as_an_instant() {
        let timing = nine_in_berlin();
        let local = NaiveDate::from_ymd_opt(2026, 3, 10)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        for text in [
            "2026-03-10T09:00:00",
            "2026-03-10T08:00:00Z",
            "2026-03-10T03:00:00-05:00",
        ] {
            assert_eq!(
                timing.parse_original_start(text, Tz::UTC),
                Some(local),
                "{text}"
            );
        }
        assert_eq!(timing.parse_original_start("tomorrow", Tz::UTC), None);
    }

    #[test]
    fn an_instant_names_an_all_day_occurrence_by_its_date_in_the_placement_zone() {
        let timing = Timing::AllDay {
            start: NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
            end: NaiveDate::from_ymd_opt(2026, 3, 11).unwrap(),
        };
        let zone: Tz = "America/New_York".parse().unwrap();
        let midnight = NaiveDate::from_ymd_opt(2026, 3, 10)
            .unwrap()
            .and_time(NaiveTime::MIN);
        assert_eq!(
            timing.parse_original_start("2026-03-10T04:00:00Z", zone),
            Some(midnight)
        );
    }
}
