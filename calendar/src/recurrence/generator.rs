//! Candidate generation: the local wall-clock start times one rule produces, in order.
//!
//! Everything here works on naive local date-times; turning them into instants is the
//! caller's job ([`crate::timezone`]). Two generators exist:
//!
//! * [`CrateGenerator`] runs the `rrule` crate for `DAILY` and longer frequencies. The crate
//!   is given the start as a UTC date-time whose wall clock equals the local one, so it does pure
//!   calendar arithmetic and its own DST handling never comes into play. `COUNT` and `UNTIL`
//!   are not passed to it; [`RuleCursor`] applies them.
//! * [`SubDailyGenerator`] handles `HOURLY`, `MINUTELY` and `SECONDLY` itself, because the
//!   crate's sub-daily stepping loses occurrences (see the crate-level notes in
//!   [`super`]): for example `FREQ=SECONDLY;BYHOUR=3;BYMINUTE=7;BYSECOND=5;BYMONTHDAY=29`
//!   yields nothing in `rrule` 0.14.
//!
//! Every candidate a generator examines is paid for from a [`WorkBudget`]; when it runs out
//! the generator stops and says so, which is how no rule can pin a CPU.

use std::collections::VecDeque;

use chrono::{
    DateTime, Datelike, Duration, Month, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
    Utc,
};
use chrono_tz::Tz;

use super::rule::{Frequency, RecurrenceRule, Until};
use crate::timezone::{resolve_local_detailed, LocalTimeKind};
use crate::CalendarError;

/// The last year any generator produces; the `rrule` crate stops at 10000 as well.
const LAST_YEAR: i32 = 9_999;

/// A shared allowance of candidates that one expansion may examine.
#[derive(Debug)]
pub(crate) struct WorkBudget {
    remaining: usize,
    examined: usize,
}

impl WorkBudget {
    pub(crate) fn new(max_candidates: usize) -> Self {
        Self {
            remaining: max_candidates,
            examined: 0,
        }
    }

    /// Takes one unit of work; false when the budget is spent.
    fn spend(&mut self) -> bool {
        if self.remaining == 0 {
            return false;
        }
        self.remaining -= 1;
        self.examined += 1;
        true
    }

    pub(crate) fn examined(&self) -> usize {
        self.examined
    }
}

/// What a generator or cursor produced when asked for the next candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pull {
    Next(NaiveDateTime),
    Done,
    OutOfBudget,
}

/// Expands `DAILY`, `WEEKLY`, `MONTHLY` and `YEARLY` rules with the `rrule` crate.
pub(crate) struct CrateGenerator {
    occurrences: rrule::RRuleSetIter,
}

impl CrateGenerator {
    /// `skip_to`: when set (only for rules without `COUNT`), expansion starts at the first
    /// period of the rule's interval grid that begins at least a week before it, instead of at
    /// `start`. Nothing at or after `skip_to` changes: the periods keep their alignment and
    /// the parts the crate would take from `start` are made explicit.
    pub(crate) fn new(
        rule: &RecurrenceRule,
        start: NaiveDateTime,
        skip_to: Option<NaiveDateTime>,
    ) -> Result<Self, CalendarError> {
        let mut crate_rule = crate_rule(rule);
        let mut expansion_start = start;
        if let Some(period_start) = skip_to.and_then(|to| aligned_period_start(rule, start, to)) {
            crate_rule = with_start_defaults(crate_rule, rule, start);
            expansion_start = period_start;
        }
        let crate_start = rrule::Tz::UTC.from_utc_datetime(&expansion_start);
        let validated = crate_rule
            .validate(crate_start)
            .map_err(|error| CalendarError::rrule(crate_error_message(&error)))?;
        let set = rrule::RRuleSet::new(crate_start).rrule(validated).limit();
        Ok(Self {
            occurrences: (&set).into_iter(),
        })
    }

    fn pull(&mut self, budget: &mut WorkBudget) -> Pull {
        if !budget.spend() {
            return Pull::OutOfBudget;
        }
        match self.occurrences.next() {
            Some(at) if at.year() <= LAST_YEAR => Pull::Next(at.naive_utc()),
            _ => Pull::Done,
        }
    }
}

/// Builds the `rrule` crate's rule from ours, leaving out `COUNT` and `UNTIL`.
fn crate_rule(rule: &RecurrenceRule) -> rrule::RRule<rrule::Unvalidated> {
    let frequency = match rule.frequency {
        Frequency::Yearly => rrule::Frequency::Yearly,
        Frequency::Monthly => rrule::Frequency::Monthly,
        Frequency::Weekly => rrule::Frequency::Weekly,
        Frequency::Daily => rrule::Frequency::Daily,
        Frequency::Hourly => rrule::Frequency::Hourly,
        Frequency::Minutely => rrule::Frequency::Minutely,
        Frequency::Secondly => rrule::Frequency::Secondly,
    };
    let months: Vec<Month> = rule
        .by_month
        .iter()
        .filter_map(|m| Month::try_from(*m).ok())
        .collect();
    let weekdays = rule
        .by_day
        .iter()
        .map(|day| match day.ordinal {
            Some(n) => rrule::NWeekday::Nth(i16::from(n), day.weekday),
            None => rrule::NWeekday::Every(day.weekday),
        })
        .collect();
    rrule::RRule::new(frequency)
        .interval(rule.interval)
        .week_start(rule.week_start)
        .by_set_pos(rule.by_set_pos.iter().map(|p| i32::from(*p)).collect())
        .by_month(&months)
        .by_month_day(rule.by_month_day.clone())
        .by_year_day(rule.by_year_day.clone())
        .by_week_no(rule.by_week_no.clone())
        .by_weekday(weekdays)
        .by_hour(rule.by_hour.clone())
        .by_minute(rule.by_minute.clone())
        .by_second(rule.by_second.clone())
}

/// Makes explicit the parts the crate fills from the series start when a rule leaves them out
/// (RFC 5545: the day, month and time of day come from `DTSTART`), so that expansion can
/// begin at another period without changing them.
fn with_start_defaults(
    crate_rule: rrule::RRule<rrule::Unvalidated>,
    rule: &RecurrenceRule,
    start: NaiveDateTime,
) -> rrule::RRule<rrule::Unvalidated> {
    let mut crate_rule = crate_rule;
    let no_day_parts = rule.by_week_no.is_empty()
        && rule.by_year_day.is_empty()
        && rule.by_month_day.is_empty()
        && rule.by_day.is_empty();
    if no_day_parts {
        let start_day = i8::try_from(start.day()).unwrap_or(1);
        match rule.frequency {
            Frequency::Yearly => {
                if rule.by_month.is_empty() {
                    if let Ok(month) = Month::try_from(u8::try_from(start.month()).unwrap_or(1)) {
                        crate_rule = crate_rule.by_month(&[month]);
                    }
                }
                crate_rule = crate_rule.by_month_day(vec![start_day]);
            }
            Frequency::Monthly => crate_rule = crate_rule.by_month_day(vec![start_day]),
            Frequency::Weekly => {
                crate_rule = crate_rule.by_weekday(vec![rrule::NWeekday::Every(start.weekday())]);
            }
            _ => {}
        }
    }
    let part = |value: u32| vec![u8::try_from(value).unwrap_or(0)];
    if rule.by_hour.is_empty() {
        crate_rule = crate_rule.by_hour(part(start.hour()));
    }
    if rule.by_minute.is_empty() {
        crate_rule = crate_rule.by_minute(part(start.minute()));
    }
    if rule.by_second.is_empty() {
        crate_rule = crate_rule.by_second(part(start.second()));
    }
    crate_rule
}

/// How far before the skip target expansion restarts, so that periods spilling over their
/// calendar boundary (ISO weeks at the turn of the year) are still generated in full.
const SKIP_MARGIN: Duration = Duration::days(7);

/// The start (at midnight) of the latest period on the rule's interval grid that begins at or
/// before `skip_to - SKIP_MARGIN` and after `start`'s own period; `None` when there is none.
fn aligned_period_start(
    rule: &RecurrenceRule,
    start: NaiveDateTime,
    skip_to: NaiveDateTime,
) -> Option<NaiveDateTime> {
    let target = skip_to.checked_sub_signed(SKIP_MARGIN)?.date();
    let start_date = start.date();
    let interval = i64::from(rule.interval);
    let first_of_period = match rule.frequency {
        Frequency::Daily => {
            let periods = (target - start_date).num_days() / interval;
            start_date.checked_add_signed(Duration::days(periods.checked_mul(interval)?))
        }
        Frequency::Weekly => {
            let days_into_week = (7 + i64::from(start_date.weekday().num_days_from_monday())
                - i64::from(rule.week_start.num_days_from_monday()))
                % 7;
            let week_start = start_date.checked_sub_signed(Duration::days(days_into_week))?;
            let periods = (target - week_start).num_days() / 7 / interval;
            week_start.checked_add_signed(Duration::days(periods.checked_mul(interval * 7)?))
        }
        Frequency::Monthly => {
            let months = i64::from(target.year() - start_date.year()) * 12
                + i64::from(target.month())
                - i64::from(start_date.month());
            let skipped = months / interval * interval;
            let month_index =
                i64::from(start_date.year()) * 12 + i64::from(start_date.month0()) + skipped;
            let year = i32::try_from(month_index.div_euclid(12)).ok()?;
            let month = u32::try_from(month_index.rem_euclid(12)).ok()? + 1;
            NaiveDate::from_ymd_opt(year, month, 1)
        }
        Frequency::Yearly => {
            let years = i64::from(target.year() - start_date.year());
            let year = i64::from(start_date.year()) + years / interval * interval;
            NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, 1, 1)
        }
        Frequency::Hourly | Frequency::Minutely | Frequency::Secondly => None,
    }?;
    let period_start = first_of_period.and_time(NaiveTime::MIN);
    // Only a period strictly after the start's own one is a skip.
    (first_of_period > start_date && period_start > start).then_some(period_start)
}

/// Our own checks run first, so the crate rejects only what it cannot expand.
fn crate_error_message(error: &rrule::RRuleError) -> String {
    let detail = match error {
        rrule::RRuleError::ValidationError(inner) => inner.to_string(),
        rrule::RRuleError::ParserError(inner) => inner.to_string(),
        rrule::RRuleError::IterError(inner) => inner.clone(),
    };
    format!("the rule cannot be expanded: {}", detail.replace('`', ""))
}

/// Expands `HOURLY`, `MINUTELY` and `SECONDLY` rules (RFC 5545 §3.3.10).
///
/// Periods are `start + k × INTERVAL` units of local wall-clock time. Day-level parts
/// (`BYMONTH`, `BYYEARDAY`, `BYMONTHDAY`, `BYDAY`) and the parts at or above the frequency
/// (`BYHOUR` for all three, `BYMINUTE` for minutely and secondly, `BYSECOND` for secondly)
/// limit periods; the parts below the frequency expand each period, defaulting to the start's
/// minute and second; `BYSETPOS` then picks from each period's set. A period whose day is
/// excluded skips straight to the first period of the next day, and one whose hour (minute) is
/// excluded to the next hour (minute), so excluded stretches cost one candidate each.
pub(crate) struct SubDailyGenerator {
    rule: RecurrenceRule,
    start: NaiveDateTime,
    period: NaiveDateTime,
    step_seconds: i64,
    pending: VecDeque<NaiveDateTime>,
    exhausted: bool,
    /// Periods after this cannot matter to the caller; generation ends there.
    horizon: Option<NaiveDateTime>,
}

impl SubDailyGenerator {
    pub(crate) fn new(
        rule: &RecurrenceRule,
        start: NaiveDateTime,
        horizon: Option<NaiveDateTime>,
        skip_to: Option<NaiveDateTime>,
    ) -> Self {
        let (unit_seconds, mut period) = match rule.frequency {
            Frequency::Hourly => (3_600, truncate(start, start.hour(), 0, 0)),
            Frequency::Minutely => (60, truncate(start, start.hour(), start.minute(), 0)),
            _ => (1, start),
        };
        let step_seconds = unit_seconds * i64::from(rule.interval);
        // Jump whole steps towards `skip_to`, staying at least one day before it.
        if let Some(target) = skip_to.and_then(|to| to.checked_sub_signed(Duration::days(1))) {
            let steps = (target - period).num_seconds() / step_seconds;
            if let Some(jumped) = steps
                .checked_mul(step_seconds)
                .filter(|seconds| *seconds > 0)
                .and_then(|seconds| period.checked_add_signed(Duration::seconds(seconds)))
            {
                period = jumped;
            }
        }
        Self {
            rule: rule.clone(),
            start,
            period,
            step_seconds,
            pending: VecDeque::new(),
            exhausted: false,
            horizon,
        }
    }

    fn pull(&mut self, budget: &mut WorkBudget) -> Pull {
        loop {
            if let Some(next) = self.pending.pop_front() {
                return Pull::Next(next);
            }
            if self.exhausted || self.horizon.is_some_and(|horizon| self.period > horizon) {
                return Pull::Done;
            }
            if !budget.spend() {
                return Pull::OutOfBudget;
            }
            self.examine_period();
        }
    }

    /// Looks at the current period, queues its occurrences, and moves to the next period.
    fn examine_period(&mut self) {
        let period = self.period;
        if period.year() > LAST_YEAR {
            self.exhausted = true;
            return;
        }
        let rule = &self.rule;
        if !day_matches(rule, period.date()) {
            let next_day = period.date().succ_opt().map(|d| d.and_time(NaiveTime::MIN));
            self.advance_to(next_day);
            return;
        }
        if !rule.by_hour.is_empty() && !contains(&rule.by_hour, period.hour()) {
            let next_hour =
                truncate(period, period.hour(), 0, 0).checked_add_signed(Duration::hours(1));
            self.advance_to(next_hour);
            return;
        }
        let limits_minute = rule.frequency != Frequency::Hourly;
        if limits_minute
            && !rule.by_minute.is_empty()
            && !contains(&rule.by_minute, period.minute())
        {
            let next_minute = truncate(period, period.hour(), period.minute(), 0)
                .checked_add_signed(Duration::minutes(1));
            self.advance_to(next_minute);
            return;
        }
        let limits_second = rule.frequency == Frequency::Secondly;
        if limits_second
            && !rule.by_second.is_empty()
            && !contains(&rule.by_second, period.second())
        {
            self.advance_to(Some(period));
            return;
        }

        let minutes = if rule.frequency == Frequency::Hourly {
            or_default(&rule.by_minute, self.start.minute())
        } else {
            vec![period.minute()]
        };
        let seconds = if rule.frequency == Frequency::Secondly {
            vec![period.second()]
        } else {
            or_default(&rule.by_second, self.start.second())
        };
        let mut set: Vec<NaiveDateTime> = minutes
            .iter()
            .flat_map(|minute| {
                seconds
                    .iter()
                    .filter_map(move |second| period.with_minute(*minute)?.with_second(*second))
            })
            .collect();
        set.sort_unstable();
        let chosen = select_positions(&set, &rule.by_set_pos);
        let start = self.start;
        self.pending
            .extend(chosen.into_iter().filter(|candidate| *candidate >= start));
        self.advance_to(Some(period));
    }

    /// Moves to the first period on the interval grid strictly after the current one and at or
    /// after `target` (`None` means the calendar ran out).
    fn advance_to(&mut self, target: Option<NaiveDateTime>) {
        let Some(target) = target else {
            self.exhausted = true;
            return;
        };
        let distance = (target - self.period).num_seconds();
        let steps = if distance <= 0 {
            1
        } else {
            (distance + self.step_seconds - 1) / self.step_seconds
        };
        let next = steps
            .checked_mul(self.step_seconds)
            .and_then(|seconds| self.period.checked_add_signed(Duration::seconds(seconds)));
        match next {
            Some(next) => self.period = next,
            None => self.exhausted = true,
        }
    }
}

fn truncate(at: NaiveDateTime, hour: u32, minute: u32, second: u32) -> NaiveDateTime {
    NaiveTime::from_hms_opt(hour, minute, second)
        .map(|time| at.date().and_time(time))
        .unwrap_or(at)
}

fn contains(values: &[u8], wanted: u32) -> bool {
    values.iter().any(|v| u32::from(*v) == wanted)
}

fn or_default(values: &[u8], default: u32) -> Vec<u32> {
    if values.is_empty() {
        vec![default]
    } else {
        values.iter().map(|v| u32::from(*v)).collect()
    }
}

fn days_in_month(date: NaiveDate) -> u32 {
    let (year, month) = (date.year(), date.month());
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    first_of_next
        .and_then(|next| next.pred_opt())
        .map_or(31, |last| last.day())
}

fn days_in_year(year: i32) -> u32 {
    if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        366
    } else {
        365
    }
}

/// Whether a date passes the day-level limits of a sub-daily rule.
fn day_matches(rule: &RecurrenceRule, date: NaiveDate) -> bool {
    if !rule.by_month.is_empty() && !contains(&rule.by_month, date.month()) {
        return false;
    }
    if !rule.by_year_day.is_empty() {
        let day = i64::from(date.ordinal());
        let length = i64::from(days_in_year(date.year()));
        let hit = rule.by_year_day.iter().any(|n| {
            let n = i64::from(*n);
            n == day || (n < 0 && length + n + 1 == day)
        });
        if !hit {
            return false;
        }
    }
    if !rule.by_month_day.is_empty() {
        let day = i64::from(date.day());
        let length = i64::from(days_in_month(date));
        let hit = rule.by_month_day.iter().any(|n| {
            let n = i64::from(*n);
            n == day || (n < 0 && length + n + 1 == day)
        });
        if !hit {
            return false;
        }
    }
    if !rule.by_day.is_empty() && !rule.by_day.iter().any(|d| d.weekday == date.weekday()) {
        return false;
    }
    true
}

/// Applies `BYSETPOS` (1-based, negative from the end) to a sorted set.
fn select_positions(set: &[NaiveDateTime], positions: &[i16]) -> Vec<NaiveDateTime> {
    if positions.is_empty() {
        return set.to_vec();
    }
    let length = i64::try_from(set.len()).unwrap_or(i64::MAX);
    let mut chosen: Vec<NaiveDateTime> = positions
        .iter()
        .filter_map(|position| {
            let position = i64::from(*position);
            let index = if position > 0 {
                position - 1
            } else {
                length + position
            };
            usize::try_from(index)
                .ok()
                .and_then(|i| set.get(i))
                .copied()
        })
        .collect();
    chosen.sort_unstable();
    chosen.dedup();
    chosen
}

/// Either generator.
pub(crate) enum Generator {
    Crate(Box<CrateGenerator>),
    SubDaily(Box<SubDailyGenerator>),
}

impl Generator {
    pub(crate) fn new(
        rule: &RecurrenceRule,
        start: NaiveDateTime,
        horizon: Option<NaiveDateTime>,
        skip_to: Option<NaiveDateTime>,
    ) -> Result<Self, CalendarError> {
        Ok(if rule.frequency.is_sub_daily() {
            Self::SubDaily(Box::new(SubDailyGenerator::new(
                rule, start, horizon, skip_to,
            )))
        } else {
            // Skipping ahead only restates the rule; should the crate refuse the restated
            // form, expanding from the start is always possible (it was checked on creation).
            let generator = CrateGenerator::new(rule, start, skip_to)
                .or_else(|_| CrateGenerator::new(rule, start, None))?;
            Self::Crate(Box::new(generator))
        })
    }

    fn pull(&mut self, budget: &mut WorkBudget) -> Pull {
        match self {
            Self::Crate(generator) => generator.pull(budget),
            Self::SubDaily(generator) => generator.pull(budget),
        }
    }
}

/// How a rule's `UNTIL` is checked against local candidates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UntilCheck {
    /// Compare instants: the candidate resolved in `zone` must not be after `until`.
    Instant { until: DateTime<Utc>, zone: Tz },
    /// Compare wall-clock times.
    Wall(NaiveDateTime),
    /// Compare local dates.
    Day(NaiveDate),
}

impl UntilCheck {
    /// How to read `until` for a series whose candidates are wall-clock times; `zone` is the
    /// series' zone (or the floating zone), `None` for all-day series.
    pub(crate) fn new(until: Until, zone: Option<Tz>) -> Self {
        match (until, zone) {
            (Until::Utc(until), Some(zone)) => Self::Instant { until, zone },
            (Until::Utc(until), None) => Self::Day(until.date_naive()),
            (Until::Local(until), Some(_)) => Self::Wall(until),
            (Until::Local(until), None) => Self::Day(until.date()),
            (Until::Date(until), _) => Self::Day(until),
        }
    }
}

/// What [`UntilCheck::judge`] decided about one candidate.
enum UntilVerdict {
    Keep,
    /// This candidate is past `UNTIL` but a later one may not be (only inside a DST gap).
    Skip,
    /// This and every later candidate are past `UNTIL`.
    Stop,
}

impl UntilCheck {
    fn judge(&self, candidate: NaiveDateTime) -> UntilVerdict {
        match *self {
            Self::Instant { until, zone } => {
                let resolved = resolve_local_detailed(candidate, zone);
                if resolved.instant <= until {
                    UntilVerdict::Keep
                } else if matches!(resolved.kind, LocalTimeKind::InGap { .. }) {
                    // A time in a gap moves forward past real times just after the gap.
                    UntilVerdict::Skip
                } else {
                    UntilVerdict::Stop
                }
            }
            Self::Wall(until) if candidate <= until => UntilVerdict::Keep,
            Self::Day(until) if candidate.date() <= until => UntilVerdict::Keep,
            _ => UntilVerdict::Stop,
        }
    }
}

/// One rule's occurrences with `COUNT` and `UNTIL` applied, excluding the series start (the
/// series adds that itself).
///
/// `COUNT` follows RFC 5545 §3.3.10 literally: "the DTSTART property value always counts as
/// the first occurrence", so a rule whose pattern does not include the start yields
/// `COUNT - 1` occurrences of its own.
pub(crate) struct RuleCursor {
    generator: Generator,
    start: NaiveDateTime,
    count: Option<u32>,
    counted: u32,
    until: Option<UntilCheck>,
    finished: bool,
}

impl RuleCursor {
    /// `zone` is the series' zone (or the floating zone), `None` for all-day series;
    /// candidates after `horizon` are never needed and end the rule early. Candidates before
    /// `lowest_needed` are never needed either: a rule without `COUNT` (whose occurrences do
    /// not depend on how many came before) skips most of them.
    pub(crate) fn new(
        rule: &RecurrenceRule,
        start: NaiveDateTime,
        zone: Option<Tz>,
        horizon: Option<NaiveDateTime>,
        lowest_needed: Option<NaiveDateTime>,
    ) -> Result<Self, CalendarError> {
        let skip_to = lowest_needed.filter(|_| rule.count.is_none());
        Ok(Self {
            generator: Generator::new(rule, start, horizon, skip_to)?,
            start,
            count: rule.count,
            counted: 1,
            until: rule.until.map(|until| UntilCheck::new(until, zone)),
            finished: false,
        })
    }

    pub(crate) fn pull(&mut self, budget: &mut WorkBudget) -> Pull {
        loop {
            if self.finished {
                return Pull::Done;
            }
            let candidate = match self.generator.pull(budget) {
                Pull::Next(candidate) => candidate,
                other => {
                    if other == Pull::Done {
                        self.finished = true;
                    }
                    return other;
                }
            };
            if candidate == self.start {
                continue;
            }
            if let Some(count) = self.count {
                if self.counted >= count {
                    self.finished = true;
                    return Pull::Done;
                }
                self.counted += 1;
            }
            match self.until.as_ref().map(|until| until.judge(candidate)) {
                None | Some(UntilVerdict::Keep) => return Pull::Next(candidate),
                Some(UntilVerdict::Skip) => continue,
                Some(UntilVerdict::Stop) => {
                    self.finished = true;
                    return Pull::Done;
                }
            }
        }
    }
}
