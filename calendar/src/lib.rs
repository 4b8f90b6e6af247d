//! Calendar domain for Potentia: recurrence expansion and the time-zone (DST) policy.
//!
//! No HTTP and no database here: the crate takes plain values and returns domain values or a
//! [`CalendarError`]. Modules:
//!
//! * [`recurrence`]: a series start with `RRULE`/`RDATE`/`EXDATE`, validated and expanded into
//!   occurrences within a window, with capped work.
//! * [`timezone`]: IANA zone names and the DST policy (gap → shift forward, fold → first).
//! * [`ical`]: iCalendar (RFC 5545) import of `.ics` files, with a report of what was skipped,
//!   and export of a calendar as an `.ics` feed.
//! * [`freebusy`]: merged busy intervals per calendar (Google freeBusy shape) and conflicts.
//! * [`schedule`]: a stored schedule's timing and recurrence: windows of instances to
//!   materialize, occurrence lookup, and "this and following" splits.
//! * [`event`]: the vocabulary `ical` and `freebusy` share (status, transparency, RSVP, role).
//! * [`error`]: the crate's error type.

pub mod error;
pub mod event;
pub mod freebusy;
pub mod ical;
pub mod recurrence;
pub mod schedule;
pub mod timezone;

pub use error::{CalendarError, RecurrenceProperty};
pub use recurrence::{
    Expansion, ExpansionLimits, ExpansionQuery, Occurrence, OriginalStart, Recurrence,
    RecurrenceDate, RecurrenceRule, SeriesStart, Truncation,
};
