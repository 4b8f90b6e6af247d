//! Reports the mean and maximum order-key length after 100 000 random inserts (each between
//! two neighbours picked uniformly among all gaps, the ends included) and after 100 000
//! appends, starting from an empty list each time.
//!
//! `cargo run -p potentia-sync --release --example order_key_lengths [count] [seed]`

use std::collections::BTreeSet;
use std::ops::Bound;

use potentia_sync::order::{key_between, OrderError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn main() -> Result<(), OrderError> {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(1);

    let random = random_inserts(count, seed)?;
    report(&format!("{count} random inserts (seed {seed})"), &random);
    let appended = appends(count)?;
    report(&format!("{count} appends"), &appended);
    Ok(())
}

/// Inserts `count` keys, each into a gap chosen uniformly among the n + 1 gaps of the list.
fn random_inserts(count: usize, seed: u64) -> Result<Vec<String>, OrderError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sorted = BTreeSet::new();
    let mut all: Vec<String> = Vec::with_capacity(count);
    for _ in 0..count {
        // Gap 0 is before the first key; gap i > 0 is right after the i-th inserted key.
        let gap = rng.gen_range(0..=all.len());
        let (before, after) = if gap == 0 {
            (None, sorted.iter().next().cloned())
        } else {
            let before = all[gap - 1].clone();
            let after = sorted
                .range::<String, _>((Bound::Excluded(&before), Bound::Unbounded))
                .next()
                .cloned();
            (Some(before), after)
        };
        let key = key_between(before.as_deref(), after.as_deref())?;
        sorted.insert(key.clone());
        all.push(key);
    }
    Ok(all)
}

fn appends(count: usize) -> Result<Vec<String>, OrderError> {
    let mut keys: Vec<String> = Vec::with_capacity(count);
    for _ in 0..count {
        let key = key_between(keys.last().map(String::as_str), None)?;
        keys.push(key);
    }
    Ok(keys)
}

fn report(label: &str, keys: &[String]) {
    let total: usize = keys.iter().map(String::len).sum();
    let max = keys.iter().map(String::len).max().unwrap_or(0);
    let mean = total as f64 / keys.len().max(1) as f64;
    println!("{label}: mean key length {mean:.2} bytes, max {max} bytes");
}
