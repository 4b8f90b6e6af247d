//! `VTIMEZONE` components computed from the IANA database in `chrono-tz`.
//!
//! The zone's UTC offset transitions are found by scanning the years asked for (one step a
//! day, then bisection to the second), plus twelve years more so that the rule in force at the
//! end is pinned down. Transitions of the same kind (same offsets before and after, same name)
//! in consecutive years that fall on the same weekday rule at the same local time become one
//! observance with a yearly `RRULE`: "the n-th weekday" (`BYDAY=2SU`), "the last weekday"
//! (`BYDAY=-1SU`), or "the first weekday on or after day N" (`BYMONTHDAY=N,…,N+6;BYDAY=FR`, as
//! in Israel's and Chile's rules). A rule still in force in the last scanned year is written
//! without `UNTIL`, so consumers carry it forward; any other is closed with `UNTIL` at its last
//! transition. Irregular transitions are observances of their own. The first observance is the
//! last transition before the span (up to three years back), so the span is described from
//! its very start; a zone without transitions in that time gets one observance with its offset.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Weekday};
use chrono_tz::{OffsetComponents, OffsetName, Tz};

use super::content_line::escape_text;

/// Years outside this range are not scanned (before: local mean times; after: the end of the
/// `chrono-tz` data, which the open-ended rule continues).
const FIRST_SCANNED_YEAR: i32 = 1900;
const LAST_SCANNED_YEAR: i32 = 2099;
/// Years scanned past the span asked for, to pin down the rule in force at its end.
const YEARS_SCANNED_AHEAD: i32 = 12;
/// Years scanned before the span for the transition that set the offset in force at its
/// start.
const LOOKBACK_YEARS: i32 = 3;

/// The offset a zone observes at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    /// The whole UTC offset.
    offset_seconds: i32,
    /// The IANA data's DST part of it.
    dst_seconds: i64,
    /// The IANA data's standard part of it.
    base_seconds: i64,
    name: Option<String>,
}

fn observed_at(zone: Tz, utc: NaiveDateTime) -> Observed {
    let offset = zone.offset_from_utc_datetime(&utc);
    Observed {
        offset_seconds: offset.fix().local_minus_utc(),
        dst_seconds: offset.dst_offset().num_seconds(),
        base_seconds: offset.base_utc_offset().num_seconds(),
        name: offset.abbreviation().map(str::to_owned),
    }
}

/// One change of offset.
#[derive(Debug, Clone)]
struct Transition {
    /// The first instant (UTC) of the new offset.
    at: NaiveDateTime,
    from: Observed,
    to: Observed,
}

impl Transition {
    /// The local wall-clock time of the onset, read with the offset before it (RFC 5545
    /// §3.6.5: `DTSTART` of an observance is in `TZOFFSETFROM`).
    fn local_onset(&self) -> NaiveDateTime {
        self.at + Duration::seconds(i64::from(self.from.offset_seconds))
    }

    /// Whether the new offset is a `DAYLIGHT` observance. When only the DST part changes, the
    /// direction of the change decides (clocks go forward into daylight time), which also
    /// reads Europe/Dublin right: its IANA data has standard time in summer and a negative
    /// DST offset in winter. When the standard offset itself changes, a positive DST part
    /// decides. Consumers such as python-dateutil assume daylight observances are the ones
    /// ahead of standard time.
    fn is_daylight(&self) -> bool {
        if self.from.base_seconds == self.to.base_seconds
            && self.from.offset_seconds != self.to.offset_seconds
        {
            self.to.offset_seconds > self.from.offset_seconds
        } else {
            self.to.dst_seconds > 0
        }
    }
}

/// The `VTIMEZONE` for `zone` covering `first_year..=last_year`, as unfolded content lines.
pub(crate) fn write_vtimezone(zone: Tz, first_year: i32, last_year: i32) -> Vec<String> {
    let first_year = first_year.clamp(FIRST_SCANNED_YEAR, LAST_SCANNED_YEAR);
    let last_scanned = last_year
        .saturating_add(YEARS_SCANNED_AHEAD)
        .clamp(first_year, LAST_SCANNED_YEAR);
    let mut lines = vec![
        "BEGIN:VTIMEZONE".to_owned(),
        format!("TZID:{}", zone.name()),
    ];
    // The span must be described from its start, and consumers disagree on what applies before
    // the first onset: begin with the transition that set the offset in force at the start.
    let start = year_start(first_year);
    let lookback_year = (first_year - LOOKBACK_YEARS).max(FIRST_SCANNED_YEAR);
    let mut transitions = transitions_between(zone, lookback_year, last_scanned);
    match transitions
        .iter()
        .rposition(|transition| transition.at <= start)
    {
        Some(in_force) => {
            transitions.drain(..in_force);
        }
        None => {
            // No change for years: one observance with the offset then in force.
            let initial = observed_at(zone, start);
            lines.extend(observance_lines(
                initial.dst_seconds > 0,
                &initial,
                initial.offset_seconds,
                start + Duration::seconds(i64::from(initial.offset_seconds)),
                None,
            ));
        }
    }
    for run in group_into_runs(&transitions) {
        let Some(first) = run.transitions.first() else {
            continue;
        };
        let rule = (run.transitions.len() > 1).then(|| {
            let open_ended = run
                .transitions
                .last()
                .is_some_and(|last| last.local_onset().year() >= last_scanned);
            let until = match (open_ended, run.transitions.last()) {
                (false, Some(last)) => format!(";UNTIL={}", last.at.format("%Y%m%dT%H%M%SZ")),
                _ => String::new(),
            };
            format!(
                "RRULE:FREQ=YEARLY;BYMONTH={}{}{until}",
                first.local_onset().month(),
                run.pattern.rule_parts()
            )
        });
        lines.extend(observance_lines(
            first.is_daylight(),
            &first.to,
            first.from.offset_seconds,
            first.local_onset(),
            rule,
        ));
    }
    lines.push("END:VTIMEZONE".to_owned());
    lines
}

fn year_start(year: i32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(year, 1, 1)
        .unwrap_or(NaiveDate::MIN)
        .and_time(chrono::NaiveTime::MIN)
}

fn observance_lines(
    daylight: bool,
    observed: &Observed,
    from: i32,
    onset: NaiveDateTime,
    rule: Option<String>,
) -> Vec<String> {
    let kind = if daylight { "DAYLIGHT" } else { "STANDARD" };
    let mut lines = vec![
        format!("BEGIN:{kind}"),
        format!("DTSTART:{}", onset.format("%Y%m%dT%H%M%S")),
        format!("TZOFFSETFROM:{}", offset_text(from)),
        format!("TZOFFSETTO:{}", offset_text(observed.offset_seconds)),
    ];
    if let Some(name) = &observed.name {
        lines.push(format!("TZNAME:{}", escape_text(name)));
    }
    lines.extend(rule);
    lines.push(format!("END:{kind}"));
    lines
}

/// `-0500`, `+0530`, or `-045602` when there are seconds (local mean times).
fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let magnitude = seconds.unsigned_abs();
    let (hours, minutes, rest) = (magnitude / 3_600, magnitude / 60 % 60, magnitude % 60);
    if rest == 0 {
        format!("{sign}{hours:02}{minutes:02}")
    } else {
        format!("{sign}{hours:02}{minutes:02}{rest:02}")
    }
}

/// Every change of offset or daylight flag from the start of `first_year` to the end of
/// `last_year`.
fn transitions_between(zone: Tz, first_year: i32, last_year: i32) -> Vec<Transition> {
    let end = year_start(last_year + 1);
    let mut at = year_start(first_year);
    let mut current = observed_at(zone, at);
    let mut transitions = Vec::new();
    let same = |a: &Observed, b: &Observed| {
        a.offset_seconds == b.offset_seconds && a.dst_seconds == b.dst_seconds
    };
    while at < end {
        let next = at + Duration::days(1);
        let observed = observed_at(zone, next);
        if same(&observed, &current) {
            at = next;
            continue;
        }
        let (mut before, mut after) = (at, next);
        while after - before > Duration::seconds(1) {
            let middle = before + (after - before) / 2;
            if same(&observed_at(zone, middle), &current) {
                before = middle;
            } else {
                after = middle;
            }
        }
        let to = observed_at(zone, after);
        transitions.push(Transition {
            at: after,
            from: current.clone(),
            to: to.clone(),
        });
        current = to;
        at = after;
    }
    transitions
}

/// What consecutive yearly transitions have in common, narrowed as a run grows.
#[derive(Debug, Clone)]
struct YearlyPattern {
    month: u32,
    weekday: Weekday,
    /// Still "the n-th weekday of the month" with this n.
    nth: Option<u32>,
    /// Still "the last weekday of the month".
    last: bool,
    /// The smallest and largest day of month seen.
    days: (u32, u32),
}

impl YearlyPattern {
    fn of(onset: NaiveDateTime) -> Self {
        let day = onset.day();
        Self {
            month: onset.month(),
            weekday: onset.weekday(),
            nth: Some((day - 1) / 7 + 1),
            last: day + 7 > days_in_month(onset.year(), onset.month()),
            days: (day, day),
        }
    }

    /// The pattern narrowed to include `onset`, or `None` when no weekday rule fits both.
    fn extended(&self, onset: NaiveDateTime) -> Option<Self> {
        let other = Self::of(onset);
        if other.month != self.month || other.weekday != self.weekday {
            return None;
        }
        let narrowed = Self {
            month: self.month,
            weekday: self.weekday,
            nth: self.nth.filter(|n| other.nth == Some(*n)),
            last: self.last && other.last,
            days: (self.days.0.min(other.days.0), self.days.1.max(other.days.1)),
        };
        let fits =
            narrowed.nth.is_some() || narrowed.last || narrowed.days.1 - narrowed.days.0 <= 6;
        fits.then_some(narrowed)
    }

    /// The `BYDAY` (and `BYMONTHDAY`) parts of the rule. An "on or after day N" window is
    /// exact over the observed years whichever N makes it contain every observed day; N is
    /// the smallest day seen, which is the rule's own N once the observed days span a whole
    /// week (twelve scanned years ahead all but guarantee that for a rule still in force).
    fn rule_parts(&self) -> String {
        let weekday = weekday_code(self.weekday);
        if let Some(n) = self.nth {
            return format!(";BYDAY={n}{weekday}");
        }
        if self.last {
            return format!(";BYDAY=-1{weekday}");
        }
        let first_day = self.days.0;
        let month_days: Vec<String> = (first_day..first_day + 7).map(|d| d.to_string()).collect();
        format!(";BYMONTHDAY={};BYDAY={weekday}", month_days.join(","))
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .and_then(|first| first.pred_opt())
        .map_or(31, |last| last.day())
}

fn weekday_code(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

/// Transitions of one kind that follow one yearly rule.
#[derive(Debug)]
struct Run {
    transitions: Vec<Transition>,
    pattern: YearlyPattern,
}

/// Groups transitions into runs (see the module documentation), ordered by first onset.
fn group_into_runs(transitions: &[Transition]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for transition in transitions {
        let onset = transition.local_onset();
        let extendable = runs.iter_mut().rev().find_map(|run| {
            let last = run.transitions.last()?;
            let same_kind = last.from == transition.from
                && last.to == transition.to
                && last.local_onset().time() == onset.time()
                && last.local_onset().year() + 1 == onset.year();
            if !same_kind {
                return None;
            }
            let pattern = run.pattern.extended(onset)?;
            Some((run, pattern))
        });
        match extendable {
            Some((run, pattern)) => {
                run.transitions.push(transition.clone());
                run.pattern = pattern;
            }
            None => runs.push(Run {
                transitions: vec![transition.clone()],
                pattern: YearlyPattern::of(onset),
            }),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observances(lines: &[String]) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        let mut current: Option<Vec<String>> = None;
        for line in lines {
            if line == "BEGIN:STANDARD" || line == "BEGIN:DAYLIGHT" {
                current = Some(vec![line.clone()]);
            } else if let Some(observance) = current.as_mut() {
                observance.push(line.clone());
                if line.starts_with("END:") {
                    found.extend(current.take());
                }
            }
        }
        found
    }

    #[test]
    fn new_york_today_is_two_open_ended_yearly_rules() {
        let lines = write_vtimezone("America/New_York".parse().expect("zone"), 2023, 2025);
        assert_eq!(lines[1], "TZID:America/New_York");
        let found = observances(&lines);
        assert_eq!(found.len(), 2, "{lines:#?}");
        let daylight = &found[1];
        assert!(daylight.contains(&"DTSTART:20230312T020000".to_owned()));
        assert!(daylight.contains(&"TZOFFSETFROM:-0500".to_owned()));
        assert!(daylight.contains(&"TZOFFSETTO:-0400".to_owned()));
        assert!(daylight.contains(&"TZNAME:EDT".to_owned()));
        assert!(daylight.contains(&"RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU".to_owned()));
        let standard = &found[0];
        assert!(
            standard.contains(&"DTSTART:20221106T020000".to_owned()),
            "the transition in force when the span starts comes first"
        );
        assert!(standard.contains(&"RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU".to_owned()));
    }

    #[test]
    fn new_york_before_2007_closes_the_old_rule_with_until() {
        let lines = write_vtimezone("America/New_York".parse().expect("zone"), 2000, 2025);
        assert!(
            lines.contains(
                &"RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU;UNTIL=20060402T070000Z".to_owned()
            ),
            "{lines:#?}"
        );
        assert!(
            lines.contains(
                &"RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;UNTIL=20061029T060000Z".to_owned()
            ),
            "{lines:#?}"
        );
        assert!(lines.contains(&"RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU".to_owned()));
    }

    #[test]
    fn london_uses_last_sunday_rules() {
        let lines = write_vtimezone("Europe/London".parse().expect("zone"), 2020, 2026);
        assert!(
            lines.contains(&"RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU".to_owned()),
            "{lines:#?}"
        );
        assert!(lines.contains(&"RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU".to_owned()));
        assert!(lines.contains(&"DTSTART:20191027T020000".to_owned()));
        assert!(lines.contains(&"DTSTART:20200329T010000".to_owned()));
    }

    #[test]
    fn israel_uses_an_on_or_after_window_rule() {
        let lines = write_vtimezone("Asia/Jerusalem".parse().expect("zone"), 2020, 2026);
        assert!(
            lines.contains(
                &"RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=23,24,25,26,27,28,29;BYDAY=FR".to_owned()
            ),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_zone_without_transitions_gets_one_standard_observance() {
        let lines = write_vtimezone("Asia/Tokyo".parse().expect("zone"), 2020, 2026);
        let found = observances(&lines);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains(&"TZOFFSETFROM:+0900".to_owned()));
        assert!(found[0].contains(&"TZOFFSETTO:+0900".to_owned()));
        assert!(found[0].contains(&"TZNAME:JST".to_owned()));
    }

    #[test]
    fn offsets_with_seconds_are_written_in_full() {
        assert_eq!(offset_text(-17_762), "-045602");
        assert_eq!(offset_text(19_800), "+0530");
        assert_eq!(offset_text(0), "+0000");
    }
}
