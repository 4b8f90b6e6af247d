//! Time zones: IANA names and the DST policy for turning a local wall-clock time into an instant.
//!
//! # DST policy
//!
//! A local date-time in a zone maps to zero, one or two instants:
//!
//! * **Nonexistent** (the spring-forward gap): the time is read with the UTC offset in force
//!   *before* the gap, which moves it forward by the length of the gap. `02:30` on the US
//!   spring-forward day becomes `03:30` EDT (`07:30Z`); in `America/Sao_Paulo`, where clocks
//!   jumped from `00:00` to `01:00`, `00:30` becomes `01:30`. This is the reading RFC 5545
//!   §3.3.5 prescribes for `DATE-TIME` values with a `TZID`.
//! * **Ambiguous** (the fall-back fold): the *first* (earlier) instant is taken, which is the
//!   one still on daylight time: `01:30` on the US fall-back day is `01:30` EDT (`05:30Z`),
//!   not `01:30` EST. Also RFC 5545 §3.3.5.
//! * Otherwise the single instant.
//!
//! Floating times (no zone) are read with this same policy in a zone chosen by the caller,
//! normally the viewer's or the calendar's zone.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::CalendarError;

/// How a local wall-clock time relates to its zone's UTC offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTimeKind {
    /// The local time exists exactly once.
    Unique,
    /// The local time falls in a gap (clocks jumped over it); it was moved forward by `shift`.
    InGap {
        /// The length of the gap, by which the wall-clock time was moved forward.
        shift: Duration,
    },
    /// The local time happens twice (clocks were turned back); the earlier instant was taken.
    InFold {
        /// The later of the two instants, which the policy did not choose.
        later: DateTime<Utc>,
    },
}

/// The instant a local time resolves to under the DST policy, and how it was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTimeResolution {
    /// The instant chosen by the policy.
    pub instant: DateTime<Utc>,
    /// Whether the local time was unique, in a gap or in a fold.
    pub kind: LocalTimeKind,
}

/// Parses an IANA time zone name (`America/New_York`, `Europe/London`, `UTC`, and the
/// database's backward-compatible links such as `US/Eastern`).
///
/// The name must match exactly, apart from surrounding whitespace; `america/new_york` is
/// accepted too, since zone names are unambiguous regardless of case.
pub fn parse_zone(name: &str) -> Result<Tz, CalendarError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(CalendarError::UnknownTimeZone {
            name: name.to_owned(),
        });
    }
    Tz::from_str(trimmed)
        .ok()
        .or_else(|| {
            chrono_tz::TZ_VARIANTS
                .iter()
                .copied()
                .find(|zone| zone.name().eq_ignore_ascii_case(trimmed))
        })
        .ok_or_else(|| CalendarError::UnknownTimeZone {
            name: name.to_owned(),
        })
}

/// Resolves a local wall-clock time in `zone` to an instant under the crate's DST policy
/// (see the module documentation).
pub fn resolve_local(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    resolve_local_detailed(local, zone).instant
}

/// Like [`resolve_local`], and also says whether the time was in a gap or a fold.
pub fn resolve_local_detailed(local: NaiveDateTime, zone: Tz) -> LocalTimeResolution {
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(at) => LocalTimeResolution {
            instant: at.with_timezone(&Utc),
            kind: LocalTimeKind::Unique,
        },
        chrono::LocalResult::Ambiguous(first, second) => {
            let (earlier, later) = if first <= second {
                (first, second)
            } else {
                (second, first)
            };
            LocalTimeResolution {
                instant: earlier.with_timezone(&Utc),
                kind: LocalTimeKind::InFold {
                    later: later.with_timezone(&Utc),
                },
            }
        }
        chrono::LocalResult::None => resolve_in_gap(local, zone),
    }
}

/// The UTC offset of `zone` at `instant`, in seconds east of UTC.
fn offset_seconds_at(zone: Tz, instant: NaiveDateTime) -> i64 {
    i64::from(
        zone.offset_from_utc_datetime(&instant)
            .fix()
            .local_minus_utc(),
    )
}

/// Reads a nonexistent local time with the offset in force just before the gap.
///
/// The transition instant is found by bisection over instants: the wall clock reads earlier
/// than `local` before the transition and later than it after. No real zone has offsets
/// beyond ±26 hours, so a bracket of ±36 hours around `local` (read as UTC) holds it.
fn resolve_in_gap(local: NaiveDateTime, zone: Tz) -> LocalTimeResolution {
    let wall_clock_at = |instant: NaiveDateTime| {
        instant
            .checked_add_signed(Duration::seconds(offset_seconds_at(zone, instant)))
            .unwrap_or(instant)
    };
    let bracket = Duration::hours(36);
    let (Some(mut before), Some(mut after)) = (
        local.checked_sub_signed(bracket),
        local.checked_add_signed(bracket),
    ) else {
        // Only at the very ends of chrono's range, where no zone has gaps.
        return LocalTimeResolution {
            instant: local.and_utc(),
            kind: LocalTimeKind::Unique,
        };
    };
    while after - before > Duration::seconds(1) {
        let middle = before + (after - before) / 2;
        if wall_clock_at(middle) < local {
            before = middle;
        } else {
            after = middle;
        }
    }
    let offset_before = offset_seconds_at(zone, before);
    let offset_after = offset_seconds_at(zone, after);
    let instant = local
        .checked_sub_signed(Duration::seconds(offset_before))
        .unwrap_or(local)
        .and_utc();
    LocalTimeResolution {
        instant,
        kind: LocalTimeKind::InGap {
            shift: Duration::seconds(offset_after - offset_before),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_opt(h, mi, 0))
            .expect("valid test date")
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid test instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn unique_local_time_resolves_to_its_only_instant() {
        let zone = parse_zone("America/New_York").expect("zone");
        let resolved = resolve_local_detailed(local(2024, 7, 1, 9, 0), zone);
        assert_eq!(resolved.instant, utc("2024-07-01T13:00:00Z"));
        assert_eq!(resolved.kind, LocalTimeKind::Unique);
    }

    #[test]
    fn new_york_spring_forward_gap_shifts_forward_by_one_hour() {
        let zone = parse_zone("America/New_York").expect("zone");
        let resolved = resolve_local_detailed(local(2024, 3, 10, 2, 30), zone);
        assert_eq!(resolved.instant, utc("2024-03-10T07:30:00Z"), "03:30 EDT");
        assert_eq!(
            resolved.kind,
            LocalTimeKind::InGap {
                shift: Duration::hours(1)
            }
        );
    }

    #[test]
    fn new_york_fall_back_fold_takes_the_earlier_daylight_instant() {
        let zone = parse_zone("America/New_York").expect("zone");
        let resolved = resolve_local_detailed(local(2024, 11, 3, 1, 30), zone);
        assert_eq!(resolved.instant, utc("2024-11-03T05:30:00Z"), "01:30 EDT");
        assert_eq!(
            resolved.kind,
            LocalTimeKind::InFold {
                later: utc("2024-11-03T06:30:00Z")
            }
        );
    }

    #[test]
    fn london_gap_and_fold_follow_the_policy() {
        let zone = parse_zone("Europe/London").expect("zone");
        assert_eq!(
            resolve_local(local(2024, 3, 31, 1, 15), zone),
            utc("2024-03-31T01:15:00Z"),
            "01:15 GMT does not exist; 02:15 BST"
        );
        assert_eq!(
            resolve_local(local(2024, 10, 27, 1, 15), zone),
            utc("2024-10-27T00:15:00Z"),
            "01:15 happens twice; the BST one comes first"
        );
    }

    #[test]
    fn sao_paulo_midnight_gap_shifts_to_one_in_the_morning() {
        let zone = parse_zone("America/Sao_Paulo").expect("zone");
        // 2018-11-04: clocks went from 00:00 -03 to 01:00 -02.
        assert_eq!(
            resolve_local(local(2018, 11, 4, 0, 0), zone),
            utc("2018-11-04T03:00:00Z")
        );
        assert_eq!(
            resolve_local(local(2018, 11, 4, 0, 30), zone),
            utc("2018-11-04T03:30:00Z")
        );
    }

    #[test]
    fn sao_paulo_fall_back_fold_before_midnight_takes_the_earlier_instant() {
        let zone = parse_zone("America/Sao_Paulo").expect("zone");
        // 2018-02-18 00:00 -02 became 2018-02-17 23:00 -03: 23:30 on the 17th happened twice.
        assert_eq!(
            resolve_local(local(2018, 2, 17, 23, 30), zone),
            utc("2018-02-18T01:30:00Z")
        );
    }

    #[test]
    fn extreme_local_times_resolve_without_panicking() {
        for zone in [
            Tz::UTC,
            chrono_tz::America::New_York,
            chrono_tz::Pacific::Apia,
        ] {
            let _ = resolve_local(NaiveDateTime::MIN, zone);
            let _ = resolve_local(NaiveDateTime::MAX, zone);
        }
    }

    #[test]
    fn zone_names_are_checked() {
        assert!(parse_zone("Europe/London").is_ok());
        assert!(parse_zone(" europe/london ").is_ok());
        assert!(parse_zone("US/Eastern").is_ok());
        assert_eq!(
            parse_zone("Mars/Olympus_Mons"),
            Err(CalendarError::UnknownTimeZone {
                name: "Mars/Olympus_Mons".into()
            })
        );
        assert!(parse_zone("").is_err());
    }
}
