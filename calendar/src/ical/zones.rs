//! Reading a `TZID` as an IANA zone.
//!
//! In order, [`resolve_tzid`] tries:
//!
//! 1. the id as an IANA name (`America/New_York`, also links such as `US/Eastern`, any case);
//! 2. the Windows zone names Outlook and Exchange write (`Eastern Standard Time`), mapped to the
//!    IANA zone Unicode CLDR gives for the Windows zone's main territory;
//! 3. Outlook's display names (`(UTC-05:00) Eastern Time (US & Canada)`) for the most common
//!    zones;
//! 4. an IANA name at the end of a vendor-prefixed id, such as Mozilla's
//!    `/mozilla.org/20050126_1/America/New_York` or `/softwarestudio.org/Olson_20011030_5/…`:
//!    the last three, two, then one `/`-separated parts.
//!
//! The importer also maps a `VTIMEZONE`'s own `TZID` to the IANA name in its `X-LIC-LOCATION`
//! (written by Mozilla and Google) before trying the steps above. Anything else is an
//! [`CalendarError::UnrecognizedTzid`](crate::CalendarError::UnrecognizedTzid): reading the
//! offsets and rules of a custom `VTIMEZONE` is out of scope.

use chrono_tz::Tz;

use crate::timezone::parse_zone;

/// Windows zone ids and the IANA zone of their main territory (Unicode CLDR `windowsZones`,
/// territory `001`): the zones most often met in Outlook and Exchange exports.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time (Mexico)", "America/Tijuana"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Central Standard Time", "America/Chicago"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    ("Eastern Standard Time", "America/New_York"),
    ("US Eastern Standard Time", "America/Indiana/Indianapolis"),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Paraguay Standard Time", "America/Asuncion"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
    ("SA Eastern Standard Time", "America/Cayenne"),
    ("Greenland Standard Time", "America/Nuuk"),
    ("Montevideo Standard Time", "America/Montevideo"),
    ("UTC-02", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde"),
    ("UTC", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("Morocco Standard Time", "Africa/Casablanca"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("Namibia Standard Time", "Africa/Windhoek"),
    ("Jordan Standard Time", "Asia/Amman"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Middle East Standard Time", "Asia/Beirut"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Syria Standard Time", "Asia/Damascus"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("FLE Standard Time", "Europe/Kyiv"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("Kaliningrad Standard Time", "Europe/Kaliningrad"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Belarus Standard Time", "Europe/Minsk"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Azerbaijan Standard Time", "Asia/Baku"),
    ("Georgian Standard Time", "Asia/Tbilisi"),
    ("Caucasus Standard Time", "Asia/Yerevan"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("Ekaterinburg Standard Time", "Asia/Yekaterinburg"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("India Standard Time", "Asia/Kolkata"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Kathmandu"),
    ("Central Asia Standard Time", "Asia/Almaty"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Myanmar Standard Time", "Asia/Yangon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("North Asia Standard Time", "Asia/Krasnoyarsk"),
    ("China Standard Time", "Asia/Shanghai"),
    ("North Asia East Standard Time", "Asia/Irkutsk"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("Ulaanbaatar Standard Time", "Asia/Ulaanbaatar"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Yakutsk Standard Time", "Asia/Yakutsk"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("West Pacific Standard Time", "Pacific/Port_Moresby"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("Vladivostok Standard Time", "Asia/Vladivostok"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
    ("Samoa Standard Time", "Pacific/Apia"),
];

/// Outlook display names (after the `(UTC±hh:mm) ` prefix) of the most common zones.
const WINDOWS_DISPLAY_NAMES: &[(&str, &str)] = &[
    ("Eastern Time (US & Canada)", "America/New_York"),
    ("Central Time (US & Canada)", "America/Chicago"),
    ("Mountain Time (US & Canada)", "America/Denver"),
    ("Pacific Time (US & Canada)", "America/Los_Angeles"),
    ("Arizona", "America/Phoenix"),
    ("Alaska", "America/Anchorage"),
    ("Hawaii", "Pacific/Honolulu"),
    ("Atlantic Time (Canada)", "America/Halifax"),
    ("Brasilia", "America/Sao_Paulo"),
    ("Coordinated Universal Time", "Etc/UTC"),
    ("Dublin, Edinburgh, Lisbon, London", "Europe/London"),
    (
        "Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
        "Europe/Berlin",
    ),
    ("Brussels, Copenhagen, Madrid, Paris", "Europe/Paris"),
    (
        "Belgrade, Bratislava, Budapest, Ljubljana, Prague",
        "Europe/Budapest",
    ),
    ("Sarajevo, Skopje, Warsaw, Zagreb", "Europe/Warsaw"),
    ("Athens, Bucharest", "Europe/Bucharest"),
    (
        "Helsinki, Kyiv, Riga, Sofia, Tallinn, Vilnius",
        "Europe/Kyiv",
    ),
    ("Moscow, St. Petersburg", "Europe/Moscow"),
    ("Chennai, Kolkata, Mumbai, New Delhi", "Asia/Kolkata"),
    ("Beijing, Chongqing, Hong Kong, Urumqi", "Asia/Shanghai"),
    ("Osaka, Sapporo, Tokyo", "Asia/Tokyo"),
    ("Canberra, Melbourne, Sydney", "Australia/Sydney"),
    ("Auckland, Wellington", "Pacific/Auckland"),
];

/// Reads a `TZID` as an IANA zone (see the module documentation); `None` when it is not
/// recognised.
pub fn resolve_tzid(tzid: &str) -> Option<Tz> {
    let tzid = tzid.trim().trim_matches('"').trim();
    if tzid.is_empty() {
        return None;
    }
    if let Ok(zone) = parse_zone(tzid) {
        return Some(zone);
    }
    if let Some(zone) = lookup(WINDOWS_ZONES, tzid) {
        return Some(zone);
    }
    if let Some(zone) = lookup(WINDOWS_DISPLAY_NAMES, without_offset_prefix(tzid)) {
        return Some(zone);
    }
    let parts: Vec<&str> = tzid.split('/').collect();
    (1..=3usize)
        .rev()
        .filter(|&taken| taken < parts.len())
        .find_map(|taken| parse_zone(&parts[parts.len() - taken..].join("/")).ok())
}

fn lookup(table: &[(&str, &str)], name: &str) -> Option<Tz> {
    table
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .and_then(|(_, iana)| parse_zone(iana).ok())
}

/// `(UTC-05:00) Eastern Time (US & Canada)` → `Eastern Time (US & Canada)`; also `(GMT…)`.
fn without_offset_prefix(name: &str) -> &str {
    let upper = name.get(..4).map(str::to_ascii_uppercase);
    if matches!(upper.as_deref(), Some("(UTC" | "(GMT")) {
        if let Some(close) = name.find(')') {
            return name[close + 1..].trim();
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_entry_names_a_known_iana_zone() {
        for (windows, iana) in WINDOWS_ZONES.iter().chain(WINDOWS_DISPLAY_NAMES) {
            assert!(parse_zone(iana).is_ok(), "{windows} → {iana}");
        }
    }

    #[test]
    fn iana_windows_display_and_vendor_prefixed_ids_resolve() {
        for (tzid, expected) in [
            ("America/New_York", "America/New_York"),
            ("\"Europe/London\"", "Europe/London"),
            ("Eastern Standard Time", "America/New_York"),
            ("w. europe standard time", "Europe/Berlin"),
            ("Pacific Standard Time (Mexico)", "America/Tijuana"),
            ("(UTC-05:00) Eastern Time (US & Canada)", "America/New_York"),
            (
                "(GMT+01:00) Brussels, Copenhagen, Madrid, Paris",
                "Europe/Paris",
            ),
            (
                "/mozilla.org/20050126_1/America/New_York",
                "America/New_York",
            ),
            (
                "/softwarestudio.org/Olson_20011030_5/America/Argentina/Buenos_Aires",
                "America/Argentina/Buenos_Aires",
            ),
            ("/citadel.org/20190914_1/Europe/Berlin", "Europe/Berlin"),
        ] {
            assert_eq!(
                resolve_tzid(tzid).map(|zone| zone.name()),
                Some(expected),
                "{tzid}"
            );
        }
    }

    #[test]
    fn unrecognisable_ids_resolve_to_nothing() {
        for tzid in [
            "",
            "Customized Time Zone",
            "Eastern",
            "/example.com/tz/Not_A_Zone",
            "(UTC+05:00) Somewhere",
        ] {
            assert_eq!(resolve_tzid(tzid), None, "{tzid}");
        }
    }
}
