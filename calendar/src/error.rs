//! The crate's single error type.
//!
//! Every fallible operation in `potentia-calendar` returns [`CalendarError`]. Messages are
//! written for the person who sent the input: they name the property (`RRULE`, `DTSTART`, …)
//! and say what was wrong and what is accepted, so the HTTP layer can pass them through as the
//! `detail` of a 400 answer. [`CalendarError::code`] and [`CalendarError::field`] give the
//! stable machine code and the offending field for the problem document.

use std::fmt;

/// The iCalendar property a recurrence error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecurrenceProperty {
    /// The series start (`DTSTART`).
    Dtstart,
    /// A recurrence rule (`RRULE`).
    Rrule,
    /// An added occurrence (`RDATE`).
    Rdate,
    /// An excluded occurrence (`EXDATE`).
    Exdate,
}

impl RecurrenceProperty {
    /// The lowercase field name used in API payloads (`dtstart`, `rrule`, `rdate`, `exdate`).
    pub fn field_name(self) -> &'static str {
        match self {
            Self::Dtstart => "dtstart",
            Self::Rrule => "rrule",
            Self::Rdate => "rdate",
            Self::Exdate => "exdate",
        }
    }
}

impl fmt::Display for RecurrenceProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dtstart => "DTSTART",
            Self::Rrule => "RRULE",
            Self::Rdate => "RDATE",
            Self::Exdate => "EXDATE",
        })
    }
}

/// Everything that can go wrong in the calendar domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A recurrence property is malformed, out of range or inconsistent with the others.
    #[error("{property}: {message}")]
    InvalidRecurrence {
        /// Which property is at fault.
        property: RecurrenceProperty,
        /// What is wrong, in words meant for the sender of the input.
        message: String,
    },
    /// A time zone name that is not in the IANA time zone database.
    #[error("unknown time zone `{name}`: expected an IANA time zone name such as `Europe/London`")]
    UnknownTimeZone {
        /// The name as it was given.
        name: String,
    },
    /// An iCalendar `TZID` that names no zone we can recognise: not an IANA name, not one of
    /// the common Windows zone names, and no IANA name at its end or in its `VTIMEZONE`'s
    /// `X-LIC-LOCATION`. Reading the `VTIMEZONE`'s own rules is not supported.
    #[error(
        "TZID `{tzid}` is not a recognised time zone: expected an IANA name such as \
         `America/New_York`, a Windows name such as `Eastern Standard Time`, or an id ending in \
         an IANA name; custom VTIMEZONE rules are not supported"
    )]
    UnrecognizedTzid {
        /// The `TZID` as written in the file.
        tzid: String,
    },
    /// iCalendar text that cannot be read: broken structure (a component that is never
    /// closed, an `END` that closes the wrong one), a file that is not iCalendar at all, or a
    /// property value that is malformed.
    #[error("{}", describe_at_line(*line, message))]
    InvalidIcal {
        /// The 1-based physical line the problem was found on (0 when it is about the whole
        /// input).
        line: usize,
        /// What is wrong, naming the property or component.
        message: String,
    },
    /// iCalendar input over one of the import limits ([`crate::ical::MAX_INPUT_BYTES`],
    /// [`crate::ical::MAX_EVENTS`], [`crate::ical::MAX_LINE_BYTES`],
    /// [`crate::ical::MAX_NESTING`]).
    #[error("{message}")]
    IcalLimitExceeded {
        /// Which limit, its value and by how much it was exceeded.
        message: String,
    },
}

fn describe_at_line(line: usize, message: &str) -> String {
    if line == 0 {
        message.to_owned()
    } else {
        format!("line {line}: {message}")
    }
}

impl CalendarError {
    /// A stable, machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRecurrence { .. } => "invalid_recurrence",
            Self::UnknownTimeZone { .. } => "unknown_time_zone",
            Self::UnrecognizedTzid { .. } => "unrecognized_tzid",
            Self::InvalidIcal { .. } => "invalid_icalendar",
            Self::IcalLimitExceeded { .. } => "icalendar_limit_exceeded",
        }
    }

    /// The input field the error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRecurrence { property, .. } => Some(property.field_name()),
            Self::UnknownTimeZone { .. }
            | Self::UnrecognizedTzid { .. }
            | Self::InvalidIcal { .. }
            | Self::IcalLimitExceeded { .. } => None,
        }
    }

    pub(crate) fn recurrence(property: RecurrenceProperty, message: impl Into<String>) -> Self {
        Self::InvalidRecurrence {
            property,
            message: message.into(),
        }
    }

    pub(crate) fn ical(line: usize, message: impl Into<String>) -> Self {
        Self::InvalidIcal {
            line,
            message: message.into(),
        }
    }

    pub(crate) fn rrule(message: impl Into<String>) -> Self {
        Self::recurrence(RecurrenceProperty::Rrule, message)
    }
}
