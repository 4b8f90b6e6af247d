//! Calendars: calendars and subscriptions, schedules with recurrence, exceptions and splits,
//! guests and RSVP, reminders, materialized instances and the view across calendars,
//! free/busy with a Redis cache and conflict detection, and iCalendar feed and import.
//!
//! The recurrence, time-zone, iCalendar and free/busy logic lives in the `potentia-calendar`
//! crate; this module stores, authorizes and serves it.

pub mod cache;
pub mod db;
pub mod ical;
pub mod materialize;
pub mod query;
pub mod routes;
pub mod schedules;

use potentia_calendar::CalendarError;

use crate::error::{ApiError, FieldError};

/// A calendar-domain error as a 400 naming the field: recurrence errors name
/// `{prefix}.rrule` / `.rdate` / `.exdate` / `.dtstart`, others `prefix` itself.
pub fn calendar_error(err: CalendarError, prefix: &str) -> ApiError {
    let field = match err.field() {
        Some(field) if prefix == "recurrence" => format!("recurrence.{field}"),
        _ => prefix.to_owned(),
    };
    ApiError::InvalidInput {
        code: err.code(),
        detail: err.to_string(),
        errors: vec![FieldError::new(field, err.to_string())],
    }
}
