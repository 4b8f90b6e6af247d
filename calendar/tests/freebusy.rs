//! Free/busy: which occurrences block time, merging, clipping, the Google-shaped answer, and
//! conflicts; plus property tests against a brute-force minute-by-minute union.

use chrono::{DateTime, Duration, Utc};
use potentia_calendar::event::{EventStatus, Transparency};
use potentia_calendar::freebusy::{
    conflicting_occurrences, conflicts, free_busy, merge_busy, merge_periods, BusyCandidate,
    TimePeriod,
};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid instant")
        .with_timezone(&Utc)
}

/// `"09:00"`-`"10:30"` on 2024-05-06, UTC.
fn period(start: &str, end: &str) -> TimePeriod {
    TimePeriod::new(
        utc(&format!("2024-05-06T{start}:00Z")),
        utc(&format!("2024-05-06T{end}:00Z")),
    )
}

fn day() -> TimePeriod {
    period("00:00", "23:59")
}

fn busy(start: &str, end: &str) -> BusyCandidate {
    BusyCandidate::busy(period(start, end))
}

#[test]
fn declined_cancelled_transparent_and_empty_occurrences_never_block() {
    let declined = BusyCandidate {
        declined: true,
        ..busy("09:00", "10:00")
    };
    let cancelled = BusyCandidate {
        status: Some(EventStatus::Cancelled),
        ..busy("10:00", "11:00")
    };
    let transparent = BusyCandidate {
        transparency: Transparency::Transparent,
        ..busy("11:00", "12:00")
    };
    let empty = busy("13:00", "13:00");
    let backwards = busy("15:00", "14:00");
    for occurrence in [declined, cancelled, transparent, empty, backwards] {
        assert!(!occurrence.blocks_time(), "{occurrence:?}");
    }
    assert!(merge_busy(
        &[declined, cancelled, transparent, empty, backwards],
        &day()
    )
    .is_empty());
}

#[test]
fn tentative_and_status_less_occurrences_block() {
    let tentative = BusyCandidate {
        status: Some(EventStatus::Tentative),
        ..busy("09:00", "10:00")
    };
    let no_status = BusyCandidate {
        status: None,
        ..busy("11:00", "12:00")
    };
    assert_eq!(
        merge_busy(&[tentative, no_status], &day()),
        [period("09:00", "10:00"), period("11:00", "12:00")]
    );
}

#[test]
fn overlapping_and_touching_intervals_merge_and_the_result_is_sorted() {
    let occurrences = [
        busy("14:00", "15:00"),
        busy("09:00", "10:00"),
        busy("09:30", "09:45"),
        busy("10:00", "11:00"),
        busy("10:30", "12:00"),
        busy("12:01", "12:30"),
    ];
    assert_eq!(
        merge_busy(&occurrences, &day()),
        [
            period("09:00", "12:00"),
            period("12:01", "12:30"),
            period("14:00", "15:00"),
        ]
    );
}

#[test]
fn intervals_are_clipped_to_the_window() {
    let window = period("09:00", "17:00");
    let occurrences = [
        busy("07:00", "08:00"),
        busy("08:00", "09:00"),
        busy("08:30", "09:30"),
        busy("16:30", "18:00"),
        busy("17:00", "18:00"),
    ];
    assert_eq!(
        merge_busy(&occurrences, &window),
        [period("09:00", "09:30"), period("16:30", "17:00")]
    );
    assert_eq!(
        merge_busy(&[busy("06:00", "20:00")], &window),
        [window],
        "an event covering the window fills it"
    );
}

#[test]
fn free_busy_answers_per_calendar_in_googles_shape() {
    let window = period("08:00", "18:00");
    let work = vec![busy("09:00", "10:00"), busy("09:30", "11:00")];
    let personal = vec![BusyCandidate {
        declined: true,
        ..busy("12:00", "13:00")
    }];
    let answer = free_busy(
        &window,
        [
            ("work@example.com".to_owned(), &work),
            ("personal@example.com".to_owned(), &personal),
        ],
    );
    let json = serde_json::to_value(&answer).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "time_min": "2024-05-06T08:00:00Z",
            "time_max": "2024-05-06T18:00:00Z",
            "calendars": {
                "work@example.com": {
                    "busy": [{"start": "2024-05-06T09:00:00Z", "end": "2024-05-06T11:00:00Z"}]
                },
                "personal@example.com": {"busy": []}
            }
        })
    );
}

#[test]
fn a_calendar_listed_twice_has_its_occurrences_combined() {
    let first = vec![busy("09:00", "10:00")];
    let second = vec![busy("10:00", "11:00")];
    let answer = free_busy(
        &day(),
        [("a".to_owned(), &first), ("a".to_owned(), &second)],
    );
    assert_eq!(answer.calendars["a"].busy, [period("09:00", "11:00")]);
}

#[test]
fn conflicts_are_overlaps_and_touching_is_not_a_conflict() {
    let busy_periods = [
        period("08:00", "09:00"),
        period("09:30", "10:00"),
        period("10:30", "11:30"),
        period("11:30", "12:00"),
    ];
    assert_eq!(
        conflicts(&period("09:00", "10:30"), &busy_periods),
        [period("09:30", "10:00")]
    );
    assert_eq!(
        conflicts(&period("11:00", "11:45"), &busy_periods),
        [period("10:30", "11:30"), period("11:30", "12:00")]
    );
    assert!(conflicts(&period("12:00", "13:00"), &busy_periods).is_empty());
    assert!(
        conflicts(&period("09:45", "09:45"), &busy_periods).is_empty(),
        "an empty candidate conflicts with nothing"
    );
}

#[test]
fn conflicting_occurrences_skip_those_that_do_not_block_and_keep_the_callers_ids() {
    let schedules = [
        ("standup", busy("09:00", "09:15")),
        (
            "declined lunch",
            BusyCandidate {
                declined: true,
                ..busy("09:00", "10:00")
            },
        ),
        (
            "focus (free)",
            BusyCandidate {
                transparency: Transparency::Transparent,
                ..busy("09:00", "12:00")
            },
        ),
        ("review", busy("09:50", "10:30")),
        ("after", busy("10:00", "11:00")),
    ];
    let found: Vec<&str> =
        conflicting_occurrences(&period("09:10", "10:00"), &schedules, |(_, occurrence)| {
            occurrence
        })
        .into_iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(found, ["standup", "review"]);
}

// ---------------------------------------------------------------------------------------------
// Property tests against brute force

/// SplitMix64: a small deterministic generator, so failures reproduce.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: i64) -> i64 {
        (self.next() % bound as u64) as i64
    }

    fn chance(&mut self, percent: i64) -> bool {
        self.below(100) < percent
    }
}

/// Minutes from an epoch, as instants.
fn minute(offset: i64) -> DateTime<Utc> {
    utc("2024-01-01T00:00:00Z") + Duration::minutes(offset)
}

/// Three days of minutes; occurrences may start before and end after the window.
const SPAN_MINUTES: i64 = 3 * 24 * 60;

fn random_occurrence(random: &mut SplitMix) -> BusyCandidate {
    let start = random.below(SPAN_MINUTES + 240) - 120;
    let length = match random.below(4) {
        0 => 0,
        1 => random.below(15),
        2 => random.below(180),
        _ => random.below(1_500),
    };
    // Occasionally an inverted interval, which must count as empty.
    let (start, end) = if random.chance(3) {
        (start + length, start)
    } else {
        (start, start + length)
    };
    BusyCandidate {
        period: TimePeriod::new(minute(start), minute(end)),
        transparency: if random.chance(15) {
            Transparency::Transparent
        } else {
            Transparency::Opaque
        },
        status: match random.below(10) {
            0 => Some(EventStatus::Cancelled),
            1 | 2 => Some(EventStatus::Tentative),
            3 => None,
            _ => Some(EventStatus::Confirmed),
        },
        declined: random.chance(15),
    }
}

fn random_window(random: &mut SplitMix) -> TimePeriod {
    let start = random.below(SPAN_MINUTES / 2);
    let end = start + random.below(SPAN_MINUTES / 2) + 1;
    TimePeriod::new(minute(start), minute(end))
}

fn minutes_from_epoch(at: DateTime<Utc>) -> i64 {
    (at - minute(0)).num_minutes()
}

/// The busy intervals as runs of busy minutes, marked one minute at a time.
fn brute_force_busy(occurrences: &[BusyCandidate], window: &TimePeriod) -> Vec<TimePeriod> {
    let first = minutes_from_epoch(window.start);
    let last = minutes_from_epoch(window.end);
    let mut busy_minutes = vec![false; (last - first) as usize];
    for occurrence in occurrences {
        let blocks = occurrence.transparency == Transparency::Opaque
            && occurrence.status != Some(EventStatus::Cancelled)
            && !occurrence.declined;
        if !blocks {
            continue;
        }
        for m in
            minutes_from_epoch(occurrence.period.start)..minutes_from_epoch(occurrence.period.end)
        {
            if (first..last).contains(&m) {
                busy_minutes[(m - first) as usize] = true;
            }
        }
    }
    let mut runs = Vec::new();
    let mut run_start: Option<i64> = None;
    for (index, is_busy) in busy_minutes.iter().chain([&false]).enumerate() {
        let m = first + index as i64;
        match (*is_busy, run_start) {
            (true, None) => run_start = Some(m),
            (false, Some(start)) => {
                runs.push(TimePeriod::new(minute(start), minute(m)));
                run_start = None;
            }
            _ => {}
        }
    }
    runs
}

#[test]
fn merged_busy_time_equals_a_minute_by_minute_union_on_random_inputs() {
    let mut random = SplitMix(20_240_506);
    for case in 0..400 {
        let count = random.below(40) as usize;
        let occurrences: Vec<BusyCandidate> =
            (0..count).map(|_| random_occurrence(&mut random)).collect();
        let window = random_window(&mut random);
        let merged = merge_busy(&occurrences, &window);
        assert_eq!(
            merged,
            brute_force_busy(&occurrences, &window),
            "case {case}: window {window:?}, occurrences {occurrences:#?}"
        );
        for pair in merged.windows(2) {
            assert!(
                pair[0].end < pair[1].start,
                "case {case}: not disjoint and apart"
            );
        }
        for interval in &merged {
            assert!(!interval.is_empty());
            assert!(window.start <= interval.start && interval.end <= window.end);
        }
    }
}

#[test]
fn merging_already_merged_calendars_equals_merging_everything_at_once() {
    let mut random = SplitMix(7);
    for case in 0..200 {
        let window = random_window(&mut random);
        let calendars: Vec<Vec<BusyCandidate>> = (0..1 + random.below(4))
            .map(|_| {
                (0..random.below(15))
                    .map(|_| random_occurrence(&mut random))
                    .collect()
            })
            .collect();
        let per_calendar = calendars
            .iter()
            .flat_map(|occurrences| merge_busy(occurrences, &window));
        let everything: Vec<BusyCandidate> = calendars.concat();
        assert_eq!(
            merge_periods(per_calendar, &window),
            merge_busy(&everything, &window),
            "case {case}"
        );
    }
}

#[test]
fn conflicts_equal_a_minute_by_minute_overlap_check_on_random_inputs() {
    let mut random = SplitMix(99);
    for case in 0..400 {
        let occurrences: Vec<BusyCandidate> = (0..random.below(30))
            .map(|_| random_occurrence(&mut random))
            .collect();
        let busy_periods = merge_busy(
            &occurrences,
            &TimePeriod::new(minute(-200), minute(SPAN_MINUTES + 200)),
        );
        let candidate_start = random.below(SPAN_MINUTES);
        let candidate = TimePeriod::new(
            minute(candidate_start),
            minute(candidate_start + random.below(240)),
        );
        let expected: Vec<TimePeriod> = busy_periods
            .iter()
            .filter(|busy| {
                (minutes_from_epoch(candidate.start)..minutes_from_epoch(candidate.end)).any(|m| {
                    (minutes_from_epoch(busy.start)..minutes_from_epoch(busy.end)).contains(&m)
                })
            })
            .copied()
            .collect();
        assert_eq!(
            conflicts(&candidate, &busy_periods),
            expected,
            "case {case}"
        );
        let blocking_overlaps = occurrences
            .iter()
            .filter(|o| o.blocks_time() && o.period.overlaps(&candidate))
            .count();
        assert_eq!(
            conflicting_occurrences(&candidate, &occurrences, |o| o).len(),
            blocking_overlaps,
            "case {case}"
        );
        assert_eq!(
            blocking_overlaps > 0,
            !expected.is_empty(),
            "case {case}: an occurrence conflicts exactly when the merged busy time does"
        );
    }
}
