//! The plain vocabulary of an event that import/export ([`crate::ical`]) and free/busy
//! ([`crate::freebusy`]) share: status, transparency, and a guest's role and answer.
//!
//! Each type knows its iCalendar spelling (RFC 5545 §3.8.1.11, §3.8.2.7, §3.2.12, §3.2.16)
//! and serializes to JSON in snake_case for the API.

use serde::{Deserialize, Serialize};

/// Whether an event happens (`STATUS`, RFC 5545 §3.8.1.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// `TENTATIVE`: may happen; still blocks time.
    Tentative,
    /// `CONFIRMED`: will happen.
    Confirmed,
    /// `CANCELLED`: will not happen; never blocks time.
    Cancelled,
}

impl EventStatus {
    /// The iCalendar spelling.
    pub fn as_ical(self) -> &'static str {
        match self {
            Self::Tentative => "TENTATIVE",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Reads the iCalendar spelling, in any case; `None` for anything else (such as the
    /// to-do statuses `NEEDS-ACTION` or `COMPLETED`).
    pub fn from_ical(text: &str) -> Option<Self> {
        [Self::Tentative, Self::Confirmed, Self::Cancelled]
            .into_iter()
            .find(|status| status.as_ical().eq_ignore_ascii_case(text.trim()))
    }
}

/// Whether an event blocks time on free/busy (`TRANSP`, RFC 5545 §3.8.2.7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transparency {
    /// `OPAQUE`: the time is busy. The default.
    #[default]
    Opaque,
    /// `TRANSPARENT`: the time stays free.
    Transparent,
}

impl Transparency {
    /// The iCalendar spelling.
    pub fn as_ical(self) -> &'static str {
        match self {
            Self::Opaque => "OPAQUE",
            Self::Transparent => "TRANSPARENT",
        }
    }

    /// Reads the iCalendar spelling, in any case; `None` for anything else.
    pub fn from_ical(text: &str) -> Option<Self> {
        [Self::Opaque, Self::Transparent]
            .into_iter()
            .find(|value| value.as_ical().eq_ignore_ascii_case(text.trim()))
    }
}

/// A guest's answer to an invitation (`PARTSTAT` on an `ATTENDEE`, RFC 5545 §3.2.12).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipationStatus {
    /// `NEEDS-ACTION`: not answered yet. The default, and what unknown values are read as
    /// (RFC 5545 §3.2.12).
    #[default]
    NeedsAction,
    /// `ACCEPTED`.
    Accepted,
    /// `DECLINED`: the event never blocks this guest's time.
    Declined,
    /// `TENTATIVE`.
    Tentative,
    /// `DELEGATED`: passed on to someone else.
    Delegated,
}

impl ParticipationStatus {
    const ALL: [Self; 5] = [
        Self::NeedsAction,
        Self::Accepted,
        Self::Declined,
        Self::Tentative,
        Self::Delegated,
    ];

    /// The iCalendar spelling.
    pub fn as_ical(self) -> &'static str {
        match self {
            Self::NeedsAction => "NEEDS-ACTION",
            Self::Accepted => "ACCEPTED",
            Self::Declined => "DECLINED",
            Self::Tentative => "TENTATIVE",
            Self::Delegated => "DELEGATED",
        }
    }

    /// Reads the iCalendar spelling in any case; unknown values are `NEEDS-ACTION`, as RFC
    /// 5545 asks.
    pub fn from_ical(text: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|status| status.as_ical().eq_ignore_ascii_case(text.trim()))
            .unwrap_or_default()
    }
}

/// A guest's role (`ROLE` on an `ATTENDEE`, RFC 5545 §3.2.16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttendeeRole {
    /// `CHAIR`: leads the meeting.
    Chair,
    /// `REQ-PARTICIPANT`: expected to attend. The default, and what unknown values are read as.
    #[default]
    Required,
    /// `OPT-PARTICIPANT`: an optional guest.
    Optional,
    /// `NON-PARTICIPANT`: copied for information only.
    NonParticipant,
}

impl AttendeeRole {
    const ALL: [Self; 4] = [
        Self::Chair,
        Self::Required,
        Self::Optional,
        Self::NonParticipant,
    ];

    /// The iCalendar spelling.
    pub fn as_ical(self) -> &'static str {
        match self {
            Self::Chair => "CHAIR",
            Self::Required => "REQ-PARTICIPANT",
            Self::Optional => "OPT-PARTICIPANT",
            Self::NonParticipant => "NON-PARTICIPANT",
        }
    }

    /// Reads the iCalendar spelling in any case; unknown values are `REQ-PARTICIPANT`, as RFC
    /// 5545 asks.
    pub fn from_ical(text: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|role| role.as_ical().eq_ignore_ascii_case(text.trim()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ical_spellings_round_trip_and_unknown_values_take_the_rfc_defaults() {
        for status in [
            EventStatus::Tentative,
            EventStatus::Confirmed,
            EventStatus::Cancelled,
        ] {
            assert_eq!(EventStatus::from_ical(status.as_ical()), Some(status));
        }
        assert_eq!(EventStatus::from_ical("needs-action"), None);
        assert_eq!(
            Transparency::from_ical(" transparent "),
            Some(Transparency::Transparent)
        );
        for status in ParticipationStatus::ALL {
            assert_eq!(ParticipationStatus::from_ical(status.as_ical()), status);
        }
        assert_eq!(
            ParticipationStatus::from_ical("X-MAYBE"),
            ParticipationStatus::NeedsAction
        );
        for role in AttendeeRole::ALL {
            assert_eq!(AttendeeRole::from_ical(role.as_ical()), role);
        }
        assert_eq!(
            AttendeeRole::from_ical("opt-participant"),
            AttendeeRole::Optional
        );
        assert_eq!(
            AttendeeRole::from_ical("X-OBSERVER"),
            AttendeeRole::Required
        );
    }
}
