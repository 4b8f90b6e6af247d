//! Fractional order keys: the `order` field of a block (ARCHITECTURE §2).
//!
//! Siblings are shown sorted by `(order, blockId)`, both compared byte-wise, so a block is placed
//! between two neighbours by giving it a key that sorts strictly between theirs; no other block
//! changes. Keys use the base-62 digits `0-9A-Za-z`, whose ASCII order is their numeric order.
//!
//! # Format
//!
//! The format and the algorithm are those of the npm package `fractional-indexing` (David
//! Greenspan's "Implementing Fractional Indexing") over its base-62 alphabet: [`key_between`]
//! returns the very key the package's `generateKeyBetween` returns (checked on 20 000 random
//! inserts against version 3.4.0), so a JavaScript client that uses the package writes keys this
//! module reads, orders and extends, and the other way round.
//!
//! A key is an *integer part* followed by a *fraction*:
//!
//! * The integer part starts with a head letter that gives its length: `a`..`z` are the
//!   non-negative integers with 1..26 digits after the head (`a0`..`az`, `b00`..`bzz`, …) and
//!   `Z`..`A` the negative ones with 1..26 digits (`Zz` is just below `a0`). Appending or
//!   prepending therefore only counts the integer up or down: a key stays 2 bytes long for the
//!   first 62 appends, 3 for the next 3 844, 4 up to 238 328 and grows logarithmically after.
//! * The fraction is any run of base-62 digits, read as the digits after a radix point. A key
//!   between two neighbours is the midpoint of their fractions, which adds one digit only when
//!   the neighbours are adjacent at every digit so far.
//!
//! # The trailing-zero rule
//!
//! A fraction never ends in `0`. `x` and `x0` are the same number but `x` sorts first, so no key
//! would fit between them; forbidding the trailing zero removes every such dead end. With that
//! rule, and with the smallest integer `A000…0` (26 zeros) unusable on its own, there is always a
//! key strictly between any two valid distinct keys, one before any valid key and one after any
//! valid key ([`key_between`] never fails on valid, ascending input).
//!
//! # Ties
//!
//! Two replicas that insert between the same neighbours at the same time compute the same key.
//! The tie-break on the block id (the second half of the sort) still gives every replica the
//! same order; a later insert between two tied blocks re-keys the tied run (the schema does this,
//! see `schema`). Keys that grew long are replaced by short evenly spaced ones with
//! [`rebalance`], applied through the document in one transaction.

/// The 62 digits of a key, in ascending byte order.
pub const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The key of the first block of an empty list (the integer zero).
pub const FIRST_KEY: &str = "a0";

/// A key longer than this many bytes should be rebalanced: about 190 inserts at one and the same
/// place, far beyond what random editing produces.
pub const REBALANCE_LEN: usize = 32;

/// The smallest integer part, `A` followed by 26 zeros: nothing sorts below it, so it is not a
/// valid key on its own (only followed by a fraction).
const SMALLEST_INTEGER_DIGITS: usize = 26;

const ZERO: u8 = b'0';
const LAST_DIGIT: u8 = b'z';

/// Why a key could not be read or generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// A key that is not in the format of this module.
    #[error("invalid order key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// The lower bound is not strictly below the upper bound (equal keys included).
    #[error("order key {before:?} is not below {after:?}")]
    NotAscending { before: String, after: String },
}

/// Whether `key` is a valid order key: a complete integer part, base-62 digits only, no
/// trailing `0` in the fraction, and not the bare smallest integer.
pub fn is_valid_key(key: &str) -> bool {
    validate_key(key).is_ok()
}

/// Checks `key`, telling what is wrong with it.
pub fn validate_key(key: &str) -> Result<(), OrderError> {
    split_key(key).map(|_| ())
}

/// A key that sorts strictly between `before` and `after`; `None` is an open end. Among the keys
/// that fit it is a short one: an integer step at the ends, the midpoint of the fractions
/// between two keys.
///
/// Fails when a bound is not a valid key or when `before` is not strictly below `after`.
pub fn key_between(before: Option<&str>, after: Option<&str>) -> Result<String, OrderError> {
    let lower = before.map(split_key).transpose()?;
    let upper = after.map(split_key).transpose()?;
    if let (Some(before), Some(after)) = (before, after) {
        if before >= after {
            return Err(not_ascending(before, after));
        }
    }
    match (lower, upper) {
        (None, None) => Ok(FIRST_KEY.to_owned()),
        (None, Some((integer, fraction))) => {
            if is_smallest_integer(integer) {
                return Ok(concat(integer, &midpoint(b"", Some(fraction))));
            }
            if !fraction.is_empty() {
                return Ok(String::from_utf8_lossy(integer).into_owned());
            }
            decrement_integer(integer)
                .map(into_string)
                .ok_or_else(|| invalid(after.unwrap_or_default(), "no key sorts below it"))
        }
        (Some((integer, fraction)), None) => Ok(match increment_integer(integer) {
            Some(next) => into_string(next),
            None => concat(integer, &midpoint(fraction, None)),
        }),
        (Some((lower_integer, lower_fraction)), Some((upper_integer, upper_fraction))) => {
            if lower_integer == upper_integer {
                return Ok(concat(
                    lower_integer,
                    &midpoint(lower_fraction, Some(upper_fraction)),
                ));
            }
            // Different integer parts: `lower_integer` is below `upper_integer`, so the next
            // integer fits unless it is the upper key's own (fractionless) integer part.
            let upper_key = after.unwrap_or_default().as_bytes();
            match increment_integer(lower_integer) {
                Some(next) if next.as_slice() < upper_key => Ok(into_string(next)),
                _ => Ok(concat(lower_integer, &midpoint(lower_fraction, None))),
            }
        }
    }
}

/// `n` ascending keys strictly between `before` and `after` (`None` = open end), spread evenly:
/// the keys of a bulk insert or a bulk reorder into one gap.
///
/// Between two keys the gap is split by midpoints, so the keys grow by about one digit per
/// six halvings; toward an open end they are consecutive integers; with both ends open they
/// are those of [`rebalance`] (where the npm package counts up from [`FIRST_KEY`]; every other
/// case gives the package's keys).
pub fn keys_between(
    before: Option<&str>,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<String>, OrderError> {
    if n == 0 {
        // Still refuse bad bounds, so that an empty bulk write fails like a full one would.
        if let Some(key) = before {
            validate_key(key)?;
        }
        if let Some(key) = after {
            validate_key(key)?;
        }
        if let (Some(before), Some(after)) = (before, after) {
            if before >= after {
                return Err(not_ascending(before, after));
            }
        }
        return Ok(Vec::new());
    }
    match (before, after) {
        (None, None) => Ok(rebalance(n)),
        (Some(_), None) => {
            let mut keys = Vec::with_capacity(n);
            let mut last = key_between(before, None)?;
            for _ in 1..n {
                let next = key_between(Some(&last), None)?;
                keys.push(std::mem::replace(&mut last, next));
            }
            keys.push(last);
            Ok(keys)
        }
        (None, Some(_)) => {
            let mut keys = Vec::with_capacity(n);
            let mut first = key_between(None, after)?;
            for _ in 1..n {
                let previous = key_between(None, Some(&first))?;
                keys.push(std::mem::replace(&mut first, previous));
            }
            keys.push(first);
            keys.reverse();
            Ok(keys)
        }
        (Some(_), Some(_)) => {
            let mut keys = Vec::with_capacity(n);
            split_between(before, after, n, &mut keys)?;
            Ok(keys)
        }
    }
}

/// `n` short ascending keys, evenly spaced over the integers of the shortest length that holds
/// them (2 bytes for up to 61 siblings, 3 bytes up to 3 843, 4 bytes up to 238 327), leaving
/// room at both ends and between every two: the keys a server-side rebalance gives n siblings.
pub fn rebalance(n: usize) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let slots = n as u128 + 1;
    let mut digits = 1u32;
    while 62u128.pow(digits) < slots {
        digits += 1;
    }
    let space = 62u128.pow(digits);
    let head = b'a' + (digits - 1) as u8;
    (1..slots)
        .map(|slot| {
            let mut value = slot * space / slots;
            let mut key = vec![ZERO; digits as usize + 1];
            key[0] = head;
            for position in (1..=digits as usize).rev() {
                key[position] = DIGITS[(value % 62) as usize];
                value /= 62;
            }
            into_string(key)
        })
        .collect()
}

fn split_between(
    before: Option<&str>,
    after: Option<&str>,
    n: usize,
    keys: &mut Vec<String>,
) -> Result<(), OrderError> {
    if n == 0 {
        return Ok(());
    }
    let middle = key_between(before, after)?;
    let left = n / 2;
    split_between(before, Some(&middle), left, keys)?;
    keys.push(middle.clone());
    split_between(Some(&middle), after, n - left - 1, keys)
}

/// Splits a valid key into its integer part and its fraction.
fn split_key(key: &str) -> Result<(&[u8], &[u8]), OrderError> {
    let bytes = key.as_bytes();
    let Some(&head) = bytes.first() else {
        return Err(invalid(key, "empty"));
    };
    let Some(length) = integer_length(head) else {
        return Err(invalid(key, "the first character is not a letter"));
    };
    if bytes.len() < length {
        return Err(invalid(key, "the integer part is incomplete"));
    }
    if !bytes[1..].iter().all(|byte| byte.is_ascii_alphanumeric()) {
        return Err(invalid(key, "a character is not a base-62 digit"));
    }
    let (integer, fraction) = bytes.split_at(length);
    if fraction.last() == Some(&ZERO) {
        return Err(invalid(key, "the fraction ends in 0"));
    }
    if fraction.is_empty() && is_smallest_integer(integer) {
        return Err(invalid(key, "the smallest integer has no key below it"));
    }
    Ok((integer, fraction))
}

/// The length of an integer part (head included) from its head letter.
fn integer_length(head: u8) -> Option<usize> {
    match head {
        b'a'..=b'z' => Some(usize::from(head - b'a') + 2),
        b'A'..=b'Z' => Some(usize::from(b'Z' - head) + 2),
        _ => None,
    }
}

fn is_smallest_integer(integer: &[u8]) -> bool {
    integer.len() == SMALLEST_INTEGER_DIGITS + 1
        && integer[0] == b'A'
        && integer[1..].iter().all(|&digit| digit == ZERO)
}

fn digit_value(digit: u8) -> usize {
    match digit {
        b'0'..=b'9' => usize::from(digit - b'0'),
        b'A'..=b'Z' => usize::from(digit - b'A') + 10,
        _ => usize::from(digit - b'a') + 36,
    }
}

/// The next integer, or `None` after the largest (`z` and 26 `z`s).
fn increment_integer(integer: &[u8]) -> Option<Vec<u8>> {
    let head = integer[0];
    let mut digits = integer[1..].to_vec();
    let mut carry = true;
    for digit in digits.iter_mut().rev() {
        if *digit == LAST_DIGIT {
            *digit = ZERO;
        } else {
            *digit = DIGITS[digit_value(*digit) + 1];
            carry = false;
            break;
        }
    }
    if carry {
        // Every digit rolled over: the integer needs one digit more (or one fewer, for the
        // negative heads, whose magnitude shrinks toward zero).
        match head {
            b'Z' => return Some(vec![b'a', ZERO]),
            b'z' => return None,
            _ => {
                let next_head = head + 1;
                if next_head > b'a' {
                    digits.push(ZERO);
                } else {
                    digits.pop();
                }
                return Some([&[next_head][..], &digits].concat());
            }
        }
    }
    Some([&[head][..], &digits].concat())
}

/// The previous integer, or `None` before the smallest (`A` and 26 zeros).
fn decrement_integer(integer: &[u8]) -> Option<Vec<u8>> {
    let head = integer[0];
    let mut digits = integer[1..].to_vec();
    let mut borrow = true;
    for digit in digits.iter_mut().rev() {
        if *digit == ZERO {
            *digit = LAST_DIGIT;
        } else {
            *digit = DIGITS[digit_value(*digit) - 1];
            borrow = false;
            break;
        }
    }
    if borrow {
        match head {
            b'a' => return Some(vec![b'Z', LAST_DIGIT]),
            b'A' => return None,
            _ => {
                let previous_head = head - 1;
                if previous_head < b'Z' {
                    digits.push(LAST_DIGIT);
                } else {
                    digits.pop();
                }
                return Some([&[previous_head][..], &digits].concat());
            }
        }
    }
    Some([&[head][..], &digits].concat())
}

/// A fraction strictly between `lower` and `upper` (`None` = 1), neither ending in `0`, with
/// `lower < upper`. The result never ends in `0` either.
fn midpoint(lower: &[u8], upper: Option<&[u8]>) -> Vec<u8> {
    let mut result = Vec::new();
    let mut lower = lower;
    let mut upper = upper;
    loop {
        if let Some(upper_digits) = upper {
            // Copy the common prefix, reading a missing digit of `lower` as 0.
            let mut common = 0;
            while common < upper_digits.len()
                && lower.get(common).copied().unwrap_or(ZERO) == upper_digits[common]
            {
                common += 1;
            }
            if common > 0 {
                result.extend_from_slice(&upper_digits[..common]);
                lower = lower.get(common..).unwrap_or_default();
                upper = Some(&upper_digits[common..]);
            }
        }
        let lower_digit = lower.first().map_or(0, |&digit| digit_value(digit));
        let upper_digit = upper.map_or(DIGITS.len(), |digits| {
            digits.first().map_or(0, |&digit| digit_value(digit))
        });
        if upper_digit > lower_digit + 1 {
            // Rounded up, like `Math.round` in the JavaScript implementation.
            result.push(DIGITS[(lower_digit + upper_digit).div_ceil(2)]);
            return result;
        }
        // The first digits are consecutive.
        if let Some(upper_digits) = upper.filter(|digits| digits.len() > 1) {
            result.push(upper_digits[0]);
            return result;
        }
        // `upper` is open or a single digit: keep `lower`'s digit and look past it toward 1.
        result.push(DIGITS[lower_digit]);
        lower = lower.get(1..).unwrap_or_default();
        upper = None;
    }
}

fn concat(integer: &[u8], fraction: &[u8]) -> String {
    into_string([integer, fraction].concat())
}

/// Keys are built from ASCII digits only.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_default()
}

fn invalid(key: &str, reason: &'static str) -> OrderError {
    OrderError::InvalidKey {
        key: key.to_owned(),
        reason,
    }
}

fn not_ascending(before: &str, after: &str) -> OrderError {
    OrderError::NotAscending {
        before: before.to_owned(),
        after: after.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn between(before: Option<&str>, after: Option<&str>) -> String {
        match key_between(before, after) {
            Ok(key) => key,
            Err(error) => panic!("no key between {before:?} and {after:?}: {error}"),
        }
    }

    #[test]
    fn digits_are_in_byte_order() {
        assert!(DIGITS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn the_first_key_of_an_empty_list_is_a0() {
        assert_eq!(between(None, None), "a0");
    }

    #[test]
    fn appending_counts_the_integer_up() {
        assert_eq!(between(Some("a0"), None), "a1");
        assert_eq!(between(Some("a9"), None), "aA");
        assert_eq!(between(Some("az"), None), "b00");
        assert_eq!(between(Some("bzz"), None), "c000");
        assert_eq!(between(Some("a0V"), None), "a1");
    }

    #[test]
    fn prepending_counts_the_integer_down() {
        assert_eq!(between(None, Some("a1")), "a0");
        assert_eq!(between(None, Some("a0")), "Zz");
        assert_eq!(between(None, Some("Z0")), "Yzz");
        assert_eq!(between(None, Some("b00")), "az");
    }

    #[test]
    fn prepending_before_a_fraction_uses_its_integer() {
        assert_eq!(between(None, Some("a0V")), "a0");
    }

    #[test]
    fn between_consecutive_integers_is_a_one_digit_fraction() {
        assert_eq!(between(Some("a0"), Some("a1")), "a0V");
    }

    #[test]
    fn between_distant_integers_is_the_next_integer() {
        assert_eq!(between(Some("a0"), Some("a5")), "a1");
    }

    #[test]
    fn between_fractions_is_their_midpoint() {
        assert_eq!(between(Some("a0V"), Some("a1")), "a0l");
        assert_eq!(between(Some("a0"), Some("a0V")), "a0G");
        assert_eq!(between(Some("a01"), Some("a02")), "a01V");
        assert_eq!(between(Some("a049"), Some("a05")), "a04a");
    }

    #[test]
    fn between_adjacent_digits_looks_past_the_lower_key() {
        assert_eq!(between(Some("a0y"), Some("a0z")), "a0yV");
        assert_eq!(between(Some("a0zz"), Some("a1")), "a0zzV");
    }

    #[test]
    fn after_the_largest_integer_is_a_fraction() {
        let largest = format!("z{}", "z".repeat(26));
        let after = between(Some(&largest), None);
        assert!(after > largest);
        assert!(after.starts_with(&largest));
    }

    #[test]
    fn before_the_smallest_integer_with_a_fraction_is_a_fraction() {
        let smallest = format!("A{}", "0".repeat(26));
        let key = format!("{smallest}1");
        let before = between(None, Some(&key));
        assert!(before < key);
        assert!(before > smallest);
        assert!(is_valid_key(&before));
    }

    #[test]
    fn the_bare_smallest_integer_is_invalid() {
        assert!(!is_valid_key(&format!("A{}", "0".repeat(26))));
    }

    #[test]
    fn a_trailing_zero_is_invalid() {
        assert!(!is_valid_key("a0V0"));
        assert!(is_valid_key("a0"));
    }

    #[test]
    fn an_incomplete_integer_part_is_invalid() {
        assert!(!is_valid_key("b0"));
        assert!(!is_valid_key("Y0"));
    }

    #[test]
    fn a_non_digit_character_is_invalid() {
        assert!(!is_valid_key("a0-"));
        assert!(!is_valid_key("a é"));
        assert!(!is_valid_key("0a"));
        assert!(!is_valid_key(""));
    }

    #[test]
    fn invalid_bounds_are_refused() {
        assert!(matches!(
            key_between(Some("a0V0"), None),
            Err(OrderError::InvalidKey { .. })
        ));
        assert!(matches!(
            key_between(None, Some("")),
            Err(OrderError::InvalidKey { .. })
        ));
    }

    #[test]
    fn equal_bounds_are_refused() {
        assert_eq!(
            key_between(Some("a0"), Some("a0")),
            Err(OrderError::NotAscending {
                before: "a0".into(),
                after: "a0".into()
            })
        );
    }

    #[test]
    fn descending_bounds_are_refused() {
        assert!(matches!(
            key_between(Some("a1"), Some("a0")),
            Err(OrderError::NotAscending { .. })
        ));
    }

    #[test]
    fn keys_between_two_keys_ascend_strictly_inside_the_gap() {
        for n in [1, 2, 3, 10, 61, 62, 500] {
            let keys = keys_between(Some("a0"), Some("a1"), n).unwrap_or_default();
            assert_eq!(keys.len(), n);
            assert!(keys.iter().all(|key| is_valid_key(key)));
            assert!(keys.first().is_some_and(|key| key.as_str() > "a0"));
            assert!(keys.last().is_some_and(|key| key.as_str() < "a1"));
            assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }

    #[test]
    fn keys_between_two_keys_stay_short() {
        let keys = keys_between(Some("a0"), Some("a1"), 1000).unwrap_or_default();
        assert!(keys.iter().all(|key| key.len() <= 5), "{keys:?}");
    }

    #[test]
    fn keys_after_a_key_are_consecutive_integers() {
        assert_eq!(
            keys_between(Some("a0"), None, 3).unwrap_or_default(),
            ["a1", "a2", "a3"]
        );
    }

    #[test]
    fn keys_before_a_key_are_consecutive_integers() {
        assert_eq!(
            keys_between(None, Some("a3"), 3).unwrap_or_default(),
            ["a0", "a1", "a2"]
        );
    }

    #[test]
    fn no_keys_still_checks_the_bounds() {
        assert!(keys_between(Some("a1"), Some("a0"), 0).is_err());
        assert_eq!(keys_between(Some("a0"), Some("a1"), 0), Ok(Vec::new()));
    }

    #[test]
    fn rebalance_gives_short_ascending_valid_keys() {
        for (n, length) in [(1, 2), (61, 2), (62, 3), (3843, 3), (3844, 4)] {
            let keys = rebalance(n);
            assert_eq!(keys.len(), n);
            assert!(keys
                .iter()
                .all(|key| key.len() == length && is_valid_key(key)));
            assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }

    #[test]
    fn rebalance_leaves_room_between_neighbours_and_at_the_ends() {
        let keys = rebalance(3);
        assert_eq!(keys, ["aF", "aV", "ak"]);
        assert_eq!(between(Some("aF"), Some("aV")).len(), 2);
    }

    #[test]
    fn rebalance_of_nothing_is_empty() {
        assert!(rebalance(0).is_empty());
    }
}
