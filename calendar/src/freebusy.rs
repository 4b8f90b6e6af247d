//! Free/busy: which occurrences block time, their merged busy intervals, and conflicts.
//!
//! Pure functions over UTC intervals; the caller expands recurring events into occurrences
//! first ([`crate::recurrence`]) and gives each one's start and end.
//!
//! # Rules
//!
//! * Intervals are half-open, `[start, end)`: an event ending at 10:00 and one starting at
//!   10:00 do not overlap, and do not conflict.
//! * An occurrence **blocks** time unless it is transparent (`TRANSP:TRANSPARENT`), cancelled
//!   (`STATUS:CANCELLED`), declined by the attendee whose time is asked about, or empty
//!   (`end <= start`). Tentative events block, as in Google Calendar.
//! * Busy intervals are clipped to the query window, sorted, and merged when they overlap or
//!   touch, so the answer is the smallest list of disjoint intervals covering the busy time.
//!
//! The answer has the shape of Google Calendar's freeBusy response, in the API's snake_case:
//! `{"time_min": …, "time_max": …, "calendars": {"<id>": {"busy": [{"start": …, "end": …}]}}}`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{EventStatus, Transparency};

/// A half-open span of time `[start, end)` in UTC; also the shape of one busy entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimePeriod {
    /// The first instant of the span.
    pub start: DateTime<Utc>,
    /// The first instant after the span.
    pub end: DateTime<Utc>,
}

impl TimePeriod {
    /// The span `[start, end)`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { start, end }
    }

    /// True when the span holds no instant (`end <= start`).
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True when the two spans share an instant. Spans that only touch do not overlap.
    pub fn overlaps(&self, other: &TimePeriod) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The part of `self` inside `window`, or `None` when nothing is.
    pub fn clipped_to(&self, window: &TimePeriod) -> Option<TimePeriod> {
        let clipped = TimePeriod {
            start: self.start.max(window.start),
            end: self.end.min(window.end),
        };
        (!clipped.is_empty()).then_some(clipped)
    }
}

/// One occurrence of an event as free/busy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BusyCandidate {
    /// When the occurrence takes place.
    pub period: TimePeriod,
    /// Whether the event marks its time busy.
    pub transparency: Transparency,
    /// The event's status; `None` when it has none (read as confirmed).
    pub status: Option<EventStatus>,
    /// True when the attendee whose time is asked about declined this occurrence.
    pub declined: bool,
}

impl BusyCandidate {
    /// An opaque, confirmed, not declined occurrence over `period`.
    pub fn busy(period: TimePeriod) -> Self {
        Self {
            period,
            transparency: Transparency::Opaque,
            status: Some(EventStatus::Confirmed),
            declined: false,
        }
    }

    /// True when the occurrence makes its time busy (see the module rules).
    pub fn blocks_time(&self) -> bool {
        self.transparency == Transparency::Opaque
            && self.status != Some(EventStatus::Cancelled)
            && !self.declined
            && !self.period.is_empty()
    }
}

/// One calendar's busy time in a free/busy answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarBusy {
    /// Disjoint busy intervals, sorted by start.
    pub busy: Vec<TimePeriod>,
}

/// A free/busy answer for several calendars over one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeBusy {
    /// The window's start.
    pub time_min: DateTime<Utc>,
    /// The window's end.
    pub time_max: DateTime<Utc>,
    /// Each calendar's busy time, by calendar id.
    pub calendars: BTreeMap<String, CalendarBusy>,
}

/// Merges the time blocked by `occurrences` within `window` into disjoint busy intervals,
/// sorted by start; overlapping and touching intervals become one.
pub fn merge_busy<'a>(
    occurrences: impl IntoIterator<Item = &'a BusyCandidate>,
    window: &TimePeriod,
) -> Vec<TimePeriod> {
    merge_periods(
        occurrences
            .into_iter()
            .filter(|occurrence| occurrence.blocks_time())
            .map(|occurrence| occurrence.period),
        window,
    )
}

/// Merges arbitrary periods within `window` into disjoint intervals sorted by start
/// (overlapping and touching periods become one; empty ones are dropped). Useful to combine
/// the busy time of several calendars into one person's.
pub fn merge_periods(
    periods: impl IntoIterator<Item = TimePeriod>,
    window: &TimePeriod,
) -> Vec<TimePeriod> {
    let mut clipped: Vec<TimePeriod> = periods
        .into_iter()
        .filter_map(|period| period.clipped_to(window))
        .collect();
    clipped.sort_unstable();
    let mut merged: Vec<TimePeriod> = Vec::with_capacity(clipped.len());
    for period in clipped {
        match merged.last_mut() {
            Some(last) if period.start <= last.end => last.end = last.end.max(period.end),
            _ => merged.push(period),
        }
    }
    merged
}

/// The free/busy answer for several calendars: each calendar id with its occurrences.
/// A calendar listed twice has its occurrences combined.
pub fn free_busy<'a, Occurrences>(
    window: &TimePeriod,
    calendars: impl IntoIterator<Item = (String, Occurrences)>,
) -> FreeBusy
where
    Occurrences: IntoIterator<Item = &'a BusyCandidate>,
{
    let mut blocking: BTreeMap<String, Vec<TimePeriod>> = BTreeMap::new();
    for (calendar_id, occurrences) in calendars {
        blocking.entry(calendar_id).or_default().extend(
            occurrences
                .into_iter()
                .filter(|occurrence| occurrence.blocks_time())
                .map(|occurrence| occurrence.period),
        );
    }
    FreeBusy {
        time_min: window.start,
        time_max: window.end,
        calendars: blocking
            .into_iter()
            .map(|(calendar_id, periods)| {
                let busy = merge_periods(periods, window);
                (calendar_id, CalendarBusy { busy })
            })
            .collect(),
    }
}

/// The busy intervals that overlap `candidate`, in their given order. Intervals that only
/// touch it (one ends when the other starts) are not conflicts.
pub fn conflicts(candidate: &TimePeriod, busy: &[TimePeriod]) -> Vec<TimePeriod> {
    if candidate.is_empty() {
        return Vec::new();
    }
    busy.iter()
        .filter(|period| period.overlaps(candidate))
        .copied()
        .collect()
}

/// The items whose occurrence blocks time and overlaps `candidate`, in their given order;
/// `occurrence_of` reads an item's occurrence, so the caller keeps its own ids alongside.
pub fn conflicting_occurrences<'a, Item>(
    candidate: &TimePeriod,
    items: &'a [Item],
    occurrence_of: impl Fn(&Item) -> &BusyCandidate,
) -> Vec<&'a Item> {
    if candidate.is_empty() {
        return Vec::new();
    }
    items
        .iter()
        .filter(|item| {
            let occurrence = occurrence_of(item);
            occurrence.blocks_time() && occurrence.period.overlaps(candidate)
        })
        .collect()
}
