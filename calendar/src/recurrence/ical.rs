//! iCalendar `DATE` and `DATE-TIME` values in their basic form (RFC 5545 §3.3.4, §3.3.5):
//! `YYYYMMDD`, `YYYYMMDDTHHMMSS` (local or floating) and `YYYYMMDDTHHMMSSZ` (UTC).
//!
//! Parsing is byte-exact (no chrono format strings, which accept more than iCalendar does), and
//! returns `None` for anything else; callers turn that into a message naming their property.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// A parsed `DATE-TIME`: either an instant (`…Z`) or a wall-clock time without zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IcalDateTime {
    Utc(DateTime<Utc>),
    Local(NaiveDateTime),
}

fn digits(text: &[u8]) -> Option<u32> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u32, |acc, b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Parses `YYYYMMDD`.
pub(crate) fn parse_ical_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    if bytes.len() != 8 {
        return None;
    }
    let year = i32::try_from(digits(&bytes[0..4])?).ok()?;
    let month = digits(&bytes[4..6])?;
    let day = digits(&bytes[6..8])?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Parses `YYYYMMDDTHHMMSS` or `YYYYMMDDTHHMMSSZ` (the `T` and `Z` in either case).
pub(crate) fn parse_ical_date_time(text: &str) -> Option<IcalDateTime> {
    let bytes = text.as_bytes();
    let is_utc = match bytes.len() {
        15 => false,
        16 if bytes[15].eq_ignore_ascii_case(&b'Z') => true,
        _ => return None,
    };
    if !bytes[8].eq_ignore_ascii_case(&b'T') {
        return None;
    }
    let date = parse_ical_date(text.get(0..8)?)?;
    let hour = digits(&bytes[9..11])?;
    let minute = digits(&bytes[11..13])?;
    let second = digits(&bytes[13..15])?;
    let local = date.and_time(NaiveTime::from_hms_opt(hour, minute, second)?);
    Some(if is_utc {
        IcalDateTime::Utc(local.and_utc())
    } else {
        IcalDateTime::Local(local)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_date_times_in_basic_form_parse() {
        assert_eq!(
            parse_ical_date("19970902"),
            NaiveDate::from_ymd_opt(1997, 9, 2)
        );
        assert!(matches!(
            parse_ical_date_time("19970902T090000"),
            Some(IcalDateTime::Local(_))
        ));
        assert!(matches!(
            parse_ical_date_time("19970902t090000z"),
            Some(IcalDateTime::Utc(_))
        ));
    }

    #[test]
    fn malformed_or_impossible_values_are_rejected() {
        for text in [
            "",
            "1997-09-02",
            "19970230",
            "19971302",
            "1997090",
            "+1970902",
            "19970902T250000",
            "19970902T090060",
            "19970902 090000",
            "19970902T090000+0100",
            "19970902T09000Z",
            "１９９７０９０２",
        ] {
            assert_eq!(parse_ical_date(text), None, "{text}");
            assert_eq!(parse_ical_date_time(text), None, "{text}");
        }
    }
}
