//! Property tests of the fractional order keys, with seeded generators (every run checks the
//! same cases and a failure names its seed):
//!
//! * a key fits strictly between any two random valid keys, and before and after any;
//! * bulk keys fit strictly inside their gap, ascending;
//! * any sequence of random inserts (between random neighbours, at the start, at the end) and
//!   moves keeps the keys in a strict total order that matches the intended list;
//! * replicas that receive the same key assignments, in any order, show the same list;
//! * concurrent inserts between the same neighbours produce equal keys, which the block id
//!   tie-break orders identically on every replica;
//! * keys stay short under random inserts and appends.

use std::collections::HashMap;

use potentia_sync::order::{self, is_valid_key, key_between, keys_between, DIGITS};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const SEEDS: u64 = 16;

/// A block as the order sees it: its key and its id (the tie-break).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Sibling {
    key: String,
    id: String,
}

fn key(before: Option<&str>, after: Option<&str>) -> String {
    match key_between(before, after) {
        Ok(key) => key,
        Err(error) => panic!("no key between {before:?} and {after:?}: {error}"),
    }
}

fn random_id(rng: &mut StdRng) -> String {
    format!("{:032x}", rng.gen::<u128>())
}

/// A random valid key: any head, any integer digits, a fraction of up to 6 digits that does
/// not end in 0.
fn random_valid_key(rng: &mut StdRng) -> String {
    loop {
        let head = if rng.gen_bool(0.5) {
            rng.gen_range(b'a'..=b'd')
        } else {
            rng.gen_range(b'W'..=b'Z')
        };
        let digits = if head >= b'a' {
            usize::from(head - b'a') + 1
        } else {
            usize::from(b'Z' - head) + 1
        };
        let mut key = vec![head];
        key.extend((0..digits).map(|_| DIGITS[rng.gen_range(0..62)]));
        let fraction = rng.gen_range(0..=6);
        key.extend((0..fraction).map(|_| DIGITS[rng.gen_range(0..62)]));
        let key = String::from_utf8(key).unwrap_or_default();
        if is_valid_key(&key) {
            return key;
        }
    }
}

/// The gap to insert into: often the start or the end, otherwise anywhere.
fn random_gap(rng: &mut StdRng, len: usize) -> usize {
    match rng.gen_range(0..10) {
        0 | 1 => 0,
        2 | 3 => len,
        _ => rng.gen_range(0..=len),
    }
}

fn key_for_gap(list: &[Sibling], gap: usize) -> String {
    let before = gap.checked_sub(1).map(|i| list[i].key.as_str());
    let after = list.get(gap).map(|sibling| sibling.key.as_str());
    key(before, after)
}

fn assert_strictly_ascending(list: &[Sibling], seed: u64) {
    for pair in list.windows(2) {
        assert!(
            pair[0] < pair[1],
            "seed {seed}: {:?} is not below {:?}",
            pair[0],
            pair[1]
        );
    }
}

fn sorted(mut list: Vec<Sibling>) -> Vec<Sibling> {
    list.sort();
    list
}

#[test]
fn a_key_fits_between_any_two_random_valid_keys() {
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..2_000 {
            let (a, b) = (random_valid_key(&mut rng), random_valid_key(&mut rng));
            if a == b {
                continue;
            }
            let (low, high) = if a < b { (a, b) } else { (b, a) };
            let middle = key(Some(&low), Some(&high));
            assert!(is_valid_key(&middle), "seed {seed}: {middle:?}");
            assert!(
                low < middle && middle < high,
                "seed {seed}: {low} < {middle} < {high}"
            );
        }
    }
}

#[test]
fn a_key_fits_before_and_after_any_random_valid_key() {
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..2_000 {
            let anchor = random_valid_key(&mut rng);
            let before = key(None, Some(&anchor));
            let after = key(Some(&anchor), None);
            assert!(is_valid_key(&before) && is_valid_key(&after), "seed {seed}");
            assert!(before < anchor && anchor < after, "seed {seed}: {anchor}");
        }
    }
}

#[test]
fn bulk_keys_fit_strictly_inside_their_gap() {
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..200 {
            let (a, b) = (random_valid_key(&mut rng), random_valid_key(&mut rng));
            if a == b {
                continue;
            }
            let (low, high) = if a < b { (a, b) } else { (b, a) };
            let before = Some(low.as_str()).filter(|_| rng.gen_bool(0.8));
            let after = Some(high.as_str()).filter(|_| rng.gen_bool(0.8));
            let n = rng.gen_range(0..100);
            let keys = keys_between(before, after, n).unwrap_or_default();
            assert_eq!(keys.len(), n, "seed {seed}");
            assert!(keys.iter().all(|key| is_valid_key(key)), "seed {seed}");
            assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "seed {seed}");
            assert!(
                before.is_none_or(|low| keys.iter().all(|key| key.as_str() > low)),
                "seed {seed}"
            );
            assert!(
                after.is_none_or(|high| keys.iter().all(|key| key.as_str() < high)),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn random_inserts_and_moves_keep_a_strict_total_order() {
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        // The intended list: where each operation meant to put its block.
        let mut list: Vec<Sibling> = Vec::new();
        for _ in 0..3_000 {
            if list.len() > 1 && rng.gen_bool(0.3) {
                let mut moved = list.remove(rng.gen_range(0..list.len()));
                let gap = random_gap(&mut rng, list.len());
                moved.key = key_for_gap(&list, gap);
                list.insert(gap, moved);
            } else {
                let gap = random_gap(&mut rng, list.len());
                let key = key_for_gap(&list, gap);
                let id = random_id(&mut rng);
                list.insert(gap, Sibling { key, id });
            }
            let last = list.len() - 1;
            assert!(is_valid_key(&list[last].key), "seed {seed}");
        }
        assert_strictly_ascending(&list, seed);
        let keys: Vec<&str> = list.iter().map(|sibling| sibling.key.as_str()).collect();
        assert!(
            keys.windows(2).all(|pair| pair[0] < pair[1]),
            "seed {seed}: a single writer never produces equal keys"
        );
        let mut shuffled = list.clone();
        shuffled.shuffle(&mut rng);
        assert_eq!(sorted(shuffled), list, "seed {seed}");
    }
}

/// One operation as a replica receives it: block `id` now has `key`; `sequence` orders the
/// writes of one block (the document's last writer wins).
#[derive(Debug, Clone)]
struct Assignment {
    sequence: usize,
    id: String,
    key: String,
}

fn apply(assignments: &[Assignment]) -> Vec<Sibling> {
    let mut latest: HashMap<&str, &Assignment> = HashMap::new();
    for assignment in assignments {
        let entry = latest.entry(&assignment.id).or_insert(assignment);
        if assignment.sequence > entry.sequence {
            *entry = assignment;
        }
    }
    sorted(
        latest
            .values()
            .map(|assignment| Sibling {
                key: assignment.key.clone(),
                id: assignment.id.clone(),
            })
            .collect(),
    )
}

#[test]
fn replicas_applying_the_same_operations_agree() {
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut list: Vec<Sibling> = Vec::new();
        let mut log: Vec<Assignment> = Vec::new();
        for sequence in 0..2_000 {
            let sibling = if !list.is_empty() && rng.gen_bool(0.3) {
                let mut moved = list.remove(rng.gen_range(0..list.len()));
                let gap = random_gap(&mut rng, list.len());
                moved.key = key_for_gap(&list, gap);
                list.insert(gap, moved.clone());
                moved
            } else {
                let gap = random_gap(&mut rng, list.len());
                let sibling = Sibling {
                    key: key_for_gap(&list, gap),
                    id: random_id(&mut rng),
                };
                list.insert(gap, sibling.clone());
                sibling
            };
            log.push(Assignment {
                sequence,
                id: sibling.id,
                key: sibling.key,
            });
        }
        let in_order = apply(&log);
        let mut shuffled = log.clone();
        shuffled.shuffle(&mut rng);
        let out_of_order = apply(&shuffled);
        assert_eq!(in_order, out_of_order, "seed {seed}");
        assert_eq!(in_order, list, "seed {seed}");
        assert_strictly_ascending(&in_order, seed);
    }
}

#[test]
fn concurrent_inserts_between_the_same_neighbours_are_tie_broken_by_id() {
    let base = [
        Sibling {
            key: key(None, None),
            id: "b".repeat(32),
        },
        Sibling {
            key: key(Some("a0"), None),
            id: "e".repeat(32),
        },
    ];
    // Both replicas insert between the same two blocks without seeing each other.
    let on_first = key(Some(&base[0].key), Some(&base[1].key));
    let on_second = key(Some(&base[0].key), Some(&base[1].key));
    assert_eq!(on_first, on_second, "the same neighbours give the same key");
    let first = Sibling {
        key: on_first,
        id: "d".repeat(32),
    };
    let second = Sibling {
        key: on_second,
        id: "c".repeat(32),
    };

    let merged_here = sorted(vec![
        base[0].clone(),
        base[1].clone(),
        first.clone(),
        second.clone(),
    ]);
    let merged_there = sorted(vec![
        second.clone(),
        base[1].clone(),
        first.clone(),
        base[0].clone(),
    ]);
    assert_eq!(merged_here, merged_there);
    assert_eq!(
        merged_here,
        [base[0].clone(), second, first, base[1].clone()],
        "the smaller id comes first"
    );
}

#[test]
fn concurrent_random_edits_on_two_replicas_converge() {
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut shared: Vec<Sibling> = Vec::new();
        let mut log: Vec<Assignment> = Vec::new();
        let mut sequence = 0;
        for _ in 0..200 {
            let gap = random_gap(&mut rng, shared.len());
            let sibling = Sibling {
                key: key_for_gap(&shared, gap),
                id: random_id(&mut rng),
            };
            shared.insert(gap, sibling.clone());
            log.push(Assignment {
                sequence,
                id: sibling.id,
                key: sibling.key,
            });
            sequence += 1;
        }
        // Each replica edits its own copy, unaware of the other: inserts (often between the
        // same neighbours, so keys collide) and moves (sometimes of the same block).
        let mut replica_logs: Vec<Vec<Assignment>> = Vec::new();
        for _ in 0..2 {
            let mut local = shared.clone();
            let mut local_log = Vec::new();
            for _ in 0..300 {
                let sibling = if rng.gen_bool(0.3) {
                    let mut moved = local.remove(rng.gen_range(0..local.len()));
                    let gap = random_gap(&mut rng, local.len());
                    moved.key = key_for_gap(&local, gap);
                    local.insert(gap, moved.clone());
                    moved
                } else {
                    let gap = random_gap(&mut rng, local.len());
                    let sibling = Sibling {
                        key: key_for_gap(&local, gap),
                        id: random_id(&mut rng),
                    };
                    local.insert(gap, sibling.clone());
                    sibling
                };
                local_log.push(Assignment {
                    sequence,
                    id: sibling.id,
                    key: sibling.key,
                });
                sequence += 1;
            }
            replica_logs.push(local_log);
        }
        let mut here = log.clone();
        here.extend(replica_logs[0].iter().cloned());
        here.extend(replica_logs[1].iter().cloned());
        let mut there = log;
        there.extend(replica_logs[1].iter().cloned());
        there.extend(replica_logs[0].iter().cloned());
        there.shuffle(&mut rng);
        let (here, there) = (apply(&here), apply(&there));
        assert_eq!(here, there, "seed {seed}");
        assert_strictly_ascending(&here, seed);
        assert!(here.iter().all(|sibling| is_valid_key(&sibling.key)));
    }
}

#[test]
fn ten_thousand_random_inserts_keep_keys_short() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut list: Vec<String> = Vec::new();
    for _ in 0..10_000 {
        let gap = rng.gen_range(0..=list.len());
        let before = gap.checked_sub(1).map(|i| list[i].as_str());
        let after = list.get(gap).map(String::as_str);
        let new = key(before, after);
        list.insert(gap, new);
    }
    let total: usize = list.iter().map(String::len).sum();
    let max = list.iter().map(String::len).max().unwrap_or(0);
    let mean = total as f64 / list.len() as f64;
    println!("10k random inserts: mean {mean:.2} bytes, max {max} bytes");
    assert!(mean < 6.0, "mean {mean}");
    assert!(max <= 12, "max {max}");
}

#[test]
fn ten_thousand_appends_keep_keys_at_most_four_bytes() {
    let mut keys: Vec<String> = Vec::new();
    for _ in 0..10_000 {
        let new = key(keys.last().map(String::as_str), None);
        keys.push(new);
    }
    assert!(keys.iter().all(|key| key.len() <= 4));
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn rebalanced_keys_are_shorter_than_keys_grown_at_one_place() {
    // 300 inserts, each right after the same block: the worst case for key growth.
    let mut keys = vec![key(None, None), key(Some("a0"), None)];
    for _ in 0..300 {
        let new = key(Some(&keys[0]), Some(&keys[1]));
        keys.insert(1, new);
    }
    let longest = keys.iter().map(String::len).max().unwrap_or(0);
    assert!(longest > order::REBALANCE_LEN, "longest {longest}");
    let rebalanced = order::rebalance(keys.len());
    assert!(rebalanced.iter().all(|key| key.len() <= 3));
}
