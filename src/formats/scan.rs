//! The common shape read without serde: an object whose values are numbers, strings without
//! escapes, or null; the keys of the event's shape are kept and other keys skipped. Anything
//! else (an escape, a key of the shape twice, a boolean, a nested value, a number serde reads
//! otherwise, malformed text) is left to serde, which also words the errors; what this accepts,
//! it reads as serde does (tested against it).
//!
//! Before that, [`ordered`] reads in one pass an event written in a prediction's order (what the
//! producer writes), and notes when its text is what a prediction writes for its fields, to be
//! copied rather than formatted again. What each path costs is in BENCHMARKS.md (issue 24).

use std::borrow::Cow;

use super::json::{EventId, ExperienceEvent, Features, Field, Wire};
use super::shape::{id_member, ts_member, EventShape};

/// Powers of ten a float of at most 15 significant digits is divided or multiplied by
/// exactly (each is exact as an f64).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

fn blank(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The length of a string's body up to its closing quote, if it has no escape and no control
/// character before it.
#[inline]
fn plain_len(body: &[u8]) -> Option<usize> {
    let len = body
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    (body[len] == b'"').then_some(len)
}

/// A string at `at` (its opening quote) with no escape and no control character: its text
/// and where it ends.
fn string(text: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let len = plain_len(bytes.get(at + 1..)?)?;
    // Both ends sit next to ASCII quotes, so they are character boundaries.
    Some((text.get(at + 1..at + 1 + len)?, at + len + 2))
}

/// A string at `at` (its opening quote) of UTF-8 with no escape and no control character: its
/// text and where it ends.
fn plain_string(bytes: &[u8], at: usize) -> Option<(&str, usize)> {
    let body = bytes.get(at + 1..)?;
    let len = plain_len(body)?;
    Some((std::str::from_utf8(&body[..len]).ok()?, at + len + 2))
}

/// A number at `at` in JSON's grammar, read as serde_json reads it: an integer that fits
/// i64 or u64, or a finite float; and where it ends.
fn number(text: &str, at: usize) -> Option<(Field<'_>, usize)> {
    let n = scan_number(text.as_bytes(), at)?;
    let field = if n.float {
        float(text, at, &n)?
    } else {
        integer(text, at, &n)?
    };
    Some((field, n.end))
}

/// A number as written, before it is read as a value.
struct Scanned {
    /// Where it ends.
    end: usize,
    /// Whether it starts with a minus sign.
    negative: bool,
    /// Its first 19 digits, as an integer (the decimal point left out).
    mantissa: u64,
    /// How many digits it has before its exponent.
    digits: usize,
    /// How many of those come after the decimal point.
    scale: usize,
    /// Whether it has a fraction or an exponent, which serde_json reads as a float.
    float: bool,
    /// Whether it has an exponent.
    exponent_given: bool,
}

/// The number at `at`, if the text there follows JSON's grammar for one.
fn scan_number(bytes: &[u8], at: usize) -> Option<Scanned> {
    let mut at = at;
    let negative = bytes.get(at) == Some(&b'-');
    if negative {
        at += 1;
    }
    let int_start = at;
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    // Reads a run of digits into the mantissa; past 19 digits it may not fit, so they are
    // counted, not accumulated (the slow path reads such a number).
    let mut run = |at: &mut usize| {
        let from = *at;
        while let Some(&b) = bytes.get(*at).filter(|b| b.is_ascii_digit()) {
            if digits < 19 {
                mantissa = mantissa * 10 + u64::from(b - b'0');
            }
            digits += 1;
            *at += 1;
        }
        *at - from
    };
    let int_digits = run(&mut at);
    if int_digits == 0 || (bytes[int_start] == b'0' && int_digits > 1) {
        return None;
    }
    let mut scale = 0usize;
    let mut float = false;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        scale = run(&mut at);
        if scale == 0 {
            return None;
        }
        float = true;
    }
    let mut exponent_given = false;
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        let from = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == from {
            return None;
        }
        float = true;
        exponent_given = true;
    }
    Some(Scanned {
        end: at,
        negative,
        mantissa,
        digits,
        scale,
        float,
        exponent_given,
    })
}

/// The integer `n`, written at `start` of `text`, as serde_json reads it: i64 where it
/// fits, else u64; `None` for what serde_json reads as a float.
fn integer(text: &str, start: usize, n: &Scanned) -> Option<Field<'static>> {
    if n.digits > 19 {
        // Beyond u64 serde reads a float; near it, parse to know.
        text[start..n.end]
            .parse::<i64>()
            .map(Field::Int)
            .ok()
            .or_else(|| {
                (!n.negative)
                    .then(|| text[start..n.end].parse::<u64>().ok().map(Field::UInt))
                    .flatten()
            })
    } else if n.negative {
        // serde_json reads -0 as the float -0.0, and below i64 as a float.
        if n.mantissa == 0 {
            return None;
        }
        Some(Field::Int(0i64.checked_sub_unsigned(n.mantissa)?))
    } else {
        Some(i64::try_from(n.mantissa).map_or(Field::UInt(n.mantissa), Field::Int))
    }
}

/// The float `n`, written at `start` of `text`, correctly rounded as serde_json reads it;
/// `None` if it overflows.
fn float(text: &str, start: usize, n: &Scanned) -> Option<Field<'static>> {
    if !n.exponent_given && n.digits <= 15 && n.scale < POW10.len() {
        // Both exact as f64, so the one division rounds correctly, as a full parse would.
        let value = n.mantissa as f64 / POW10[n.scale];
        Some(Field::Float(if n.negative { -value } else { value }))
    } else {
        // serde_json's float_roundtrip parses correctly rounded, as the standard library
        // does; it refuses what overflows, so that is left to it.
        text[start..n.end]
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Field::Float)
    }
}

/// Powers of ten to 1e15 as integers.
const POW10_INT: [u64; 16] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
];

/// The run of digits at `at`: its value (which wraps past 19 digits) and where it ends.
/// Read eight bytes at a time while eight remain ([`eight_digits`]), then a byte at a time.
#[inline(always)]
fn digits(bytes: &[u8], at: usize) -> (u64, usize) {
    let mut end = at;
    let mut value = 0u64;
    while let Some(chunk) = bytes.get(end..end + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let (run, n) = eight_digits(u64::from_le_bytes(word));
        if n == 0 {
            return (value, end);
        }
        // The same wrapping sum as ten times a digit at a time, modulo 2^64.
        value = value.wrapping_mul(POW10_INT[n]).wrapping_add(run);
        end += n;
        if n < 8 {
            return (value, end);
        }
    }
    while let Some(digit) = bytes
        .get(end)
        .map(|b| b.wrapping_sub(b'0'))
        .filter(|&d| d <= 9)
    {
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        end += 1;
    }
    (value, end)
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each byte of `word` (the first in the lowest byte) that is no ASCII digit.
/// Each byte is classed alone: no carry or borrow crosses from one to the next.
#[inline(always)]
fn not_digits(word: u64) -> u64 {
    let high = 0x80 * ONES;
    let low7 = word & !high;
    // 0x30 or more, 0x3a or more, as a high bit: seven bits plus 0x50 or 0x46 cannot carry out.
    let from_zero = low7.wrapping_add(0x50 * ONES);
    let past_nine = low7.wrapping_add(0x46 * ONES);
    (word | past_nine | !from_zero) & high
}

/// The value of the first `n` (1 to 8) bytes of `word`, ASCII digits, the first in the lowest
/// byte, as a decimal number.
#[inline(always)]
fn digits_value(word: u64, n: usize) -> u64 {
    // The digits in the top bytes, zeros below: an eight-digit number with leading zeros,
    // combined in pairs, fours, then eight.
    let d = (word & (0x0f * ONES)) << (64 - 8 * n);
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_ffff_0000_ffff;
    (d.wrapping_mul(10_000) + (d >> 32)) & 0xffff_ffff
}

/// The leading run of ASCII digits of eight bytes (the first in the lowest byte): its value
/// and its length, 0 to 8.
#[inline(always)]
fn eight_digits(word: u64) -> (u64, usize) {
    let n = (not_digits(word).trailing_zeros() / 8) as usize;
    if n == 0 {
        return (0, 0);
    }
    (digits_value(word, n), n)
}

/// A number of the form `I.F` at `start` (after any sign) in its first eight bytes, the byte
/// after it no digit and no exponent, `I` without a leading zero unless it is `0`; most of an
/// event's numbers (`51.8614`, `201.0878`). Read from one word: the digits without the point as
/// one integer, and how many follow the point. `None` for any other number or text.
#[inline(always)]
fn short_fraction(bytes: &[u8], start: usize) -> Option<(u64, usize, usize)> {
    let chunk = bytes.get(start..start + 8)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    let word = u64::from_le_bytes(word);
    let not_digit = not_digits(word);
    let int_digits = (not_digit.trailing_zeros() / 8) as usize;
    if int_digits == 0 || int_digits > 6 || chunk[int_digits] != b'.' {
        return None;
    }
    if int_digits > 1 && chunk[0] == b'0' {
        return None;
    }
    // The next byte that is no digit after the point, here or the one after these eight.
    let end = (not_digit & not_digit.wrapping_sub(1)).trailing_zeros() as usize / 8;
    let scale = end - int_digits - 1;
    let after = if end < 8 {
        chunk[end]
    } else {
        *bytes.get(start + 8)?
    };
    if scale == 0 || after.is_ascii_digit() || matches!(after, b'e' | b'E') {
        return None;
    }
    // The fraction's digits moved down a byte over the point.
    let int_mask = (1u64 << (8 * int_digits)) - 1;
    let packed = (word & int_mask) | ((word >> 8) & !int_mask);
    Some((digits_value(packed, end - 1), scale, end))
}

/// The integer at `at` if it has 15 digits or fewer and is no float to serde_json (no fraction,
/// no exponent, not -0), with where it ends; `None` for anything else, and what is not JSON.
#[inline(always)]
fn short_integer(bytes: &[u8], at: usize) -> Option<(i64, usize)> {
    let negative = bytes.get(at) == Some(&b'-');
    let start = at + usize::from(negative);
    let (value, end) = digits(bytes, start);
    let len = end - start;
    if len == 0 || len > 15 || (len > 1 && bytes[start] == b'0') || (negative && value == 0) {
        return None;
    }
    if let Some(b'.' | b'e' | b'E') = bytes.get(end) {
        return None;
    }
    let value = value as i64;
    Some((if negative { -value } else { value }, end))
}

/// The number at `at` as an `f64` (an integer converted, as an event's features and label
/// are), where it ends, and whether serde_json writes this very text for that `f64`: a fraction
/// with at most 15 digits, no exponent, no trailing zero but the one of `5.0`, and at most four
/// zeros after the point of a number below one (serde_json writes `0.00001`, then `1e-6`).
/// Fifteen digits or fewer are the only digits of their length that read as that `f64`, so
/// the shortest that do: what serde_json writes. `None` for what is not a number.
#[inline(always)]
fn decimal(bytes: &[u8], at: usize) -> Option<(f64, usize, bool)> {
    let negative = bytes.get(at) == Some(&b'-');
    let int_start = at + usize::from(negative);
    if let Some((mantissa, scale, len)) = short_fraction(bytes, int_start) {
        // As below, in one read: the integer part is 0 only when written `0`.
        let int_zero = bytes[int_start] == b'0';
        let value = mantissa as f64 / POW10[scale];
        let end = int_start + len;
        let as_written = (bytes[end - 1] != b'0' || scale == 1)
            && (!int_zero || mantissa == 0 || scale <= 4 || mantissa >= POW10_INT[scale - 5]);
        return Some((if negative { -value } else { value }, end, as_written));
    }
    let (int_value, int_end) = digits(bytes, int_start);
    let int_digits = int_end - int_start;
    // The common numbers are read here in one pass; the rest (exponents, long numbers, -0,
    // and what is not JSON) as `number` reads them.
    if int_digits == 0 || int_digits > 15 || (int_digits > 1 && bytes[int_start] == b'0') {
        return decimal_slowly(bytes, at);
    }
    match bytes.get(int_end) {
        Some(b'.') => {}
        Some(b'e' | b'E') => return decimal_slowly(bytes, at),
        _ if negative && int_value == 0 => return decimal_slowly(bytes, at),
        _ => {
            let value = int_value as f64;
            return Some((if negative { -value } else { value }, int_end, false));
        }
    }
    let (fraction, end) = digits(bytes, int_end + 1);
    let scale = end - int_end - 1;
    if scale == 0 || int_digits + scale > 15 || matches!(bytes.get(end), Some(b'e' | b'E')) {
        return decimal_slowly(bytes, at);
    }
    let mantissa = int_value * POW10_INT[scale] + fraction;
    // Both exact as f64, so the one division rounds correctly, as a full parse would.
    let value = mantissa as f64 / POW10[scale];
    let as_written = (bytes[end - 1] != b'0' || scale == 1)
        && (int_value != 0 || fraction == 0 || scale <= 4 || fraction >= POW10_INT[scale - 5]);
    Some((if negative { -value } else { value }, end, as_written))
}

/// A number [`decimal`] does not read in one pass, read by [`number`], as an `f64`.
#[cold]
#[inline(never)]
fn decimal_slowly(bytes: &[u8], at: usize) -> Option<(f64, usize, bool)> {
    let (field, end) = number_slowly(bytes, at)?;
    Some((field.as_f64()?, end, false))
}

/// The number at `at` as [`number`] reads it, from bytes.
#[cold]
#[inline(never)]
fn number_slowly(bytes: &[u8], at: usize) -> Option<(Field<'static>, usize)> {
    let n = scan_number(bytes, at)?;
    // A number is ASCII: the one check of its bytes is cheap.
    let text = std::str::from_utf8(&bytes[..n.end]).ok()?;
    let field = if n.float {
        float(text, at, &n)?
    } else {
        integer(text, at, &n)?
    };
    Some((field, n.end))
}

fn value(text: &str, at: usize) -> Option<(Field<'_>, usize)> {
    match text.as_bytes().get(at)? {
        b'"' => string(text, at).map(|(s, end)| (Field::Str(Cow::Borrowed(s)), end)),
        b'-' | b'0'..=b'9' => number(text, at),
        b'n' if text[at..].starts_with("null") => Some((Field::Null, at + 4)),
        _ => None,
    }
}

/// The event of a record written in a prediction's order: `{`, `"id":` and its value if any,
/// each feature of `shape` under its field's name in the model's order, `"ts_ms"` and the label
/// if any, `}`, with no blank inside; what the producer writes. It is read in one pass, each key
/// compared with the one expected there, with no look-up. `None` for any other record, and for
/// one that is not a valid event: [`fill`] and serde read those, and word the errors.
#[inline]
pub(super) fn ordered<'t>(shape: &EventShape, bytes: &'t [u8]) -> Option<ExperienceEvent<'t>> {
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let mut at = 1;
    // Whether the text up to the closing brace is what a prediction writes for these fields.
    let mut as_written = true;
    let mut id = None;
    let id_key = id_member();
    if id_key.is_at(bytes, at) {
        at += id_key.bytes().len();
        let (field, end) = match bytes.get(at) {
            Some(b'"') => {
                let (s, end) = plain_string(bytes, at)?;
                (Field::Str(Cow::Borrowed(s)), end)
            }
            Some(b'n') if bytes[at..].starts_with(b"null") => (Field::Null, at + 4),
            _ => match short_integer(bytes, at) {
                Some((i, end)) => (Field::Int(i), end),
                None => number_slowly(bytes, at)?,
            },
        };
        id = match field {
            Field::Int(i) => Some(EventId::Int(i)),
            Field::UInt(u) => Some(EventId::UInt(u)),
            Field::Str(s) => Some(EventId::Str(s)),
            Field::Null => {
                as_written = false;
                None
            }
            _ => return None,
        };
        if bytes.get(end) != Some(&b',') {
            return None;
        }
        at = end + 1;
    }
    let specs = shape.features();
    let mut features = Features::with_capacity(specs.len());
    for (spec, key) in specs.iter().zip(shape.feature_members()) {
        if !key.is_at(bytes, at) {
            return None;
        }
        let (x, end, exact) = decimal(bytes, at + key.bytes().len())?;
        if spec.non_negative && x < 0.0 {
            return None;
        }
        as_written &= exact;
        features.push(x);
        at = end;
    }
    let mut ts_ms = None;
    let ts_key = ts_member();
    if ts_key.is_at(bytes, at) {
        at += ts_key.bytes().len();
        if bytes[at..].starts_with(b"null") {
            as_written = false;
            at += 4;
        } else {
            // Anything but a short integer not below zero is read as before, which may refuse it.
            let (t, end) = short_integer(bytes, at).filter(|&(t, _)| t >= 0)?;
            ts_ms = Some(t);
            at = end;
        }
    }
    let mut label = None;
    let label_key = shape.label_member();
    if label_key.is_at(bytes, at) {
        at += label_key.bytes().len();
        if bytes[at..].starts_with(b"null") {
            as_written = false;
            at += 4;
        } else {
            let (x, end, exact) = decimal(bytes, at)?;
            label = Some(x);
            as_written &= exact;
            at = end;
        }
    }
    if bytes.get(at) != Some(&b'}') || blank(bytes, at + 1) != bytes.len() {
        return None;
    }
    let mut event = ExperienceEvent::new(features, id, ts_ms, label);
    event.verbatim = as_written.then(|| &bytes[..at]);
    Some(event)
}

/// The record's fields, if it has the common shape.
#[cfg(test)]
pub(super) fn wire<'t>(shape: &EventShape, text: &'t str) -> Option<Wire<'t>> {
    let mut wire = shape.empty_wire();
    fill(shape, text, &mut wire).then_some(wire)
}

/// Reads the record's fields into `wire` (empty, of `shape`), in place; false if the text does
/// not have the common shape, when `wire` holds whatever was read before that was seen.
#[inline(always)]
pub(super) fn fill<'t>(shape: &EventShape, text: &'t str, wire: &mut Wire<'t>) -> bool {
    read(shape, text, wire).is_some()
}

#[inline(always)]
fn read<'t>(shape: &EventShape, text: &'t str, wire: &mut Wire<'t>) -> Option<()> {
    let bytes = text.as_bytes();
    let mut at = blank(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = blank(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            let (key, end) = string(text, at)?;
            at = blank(bytes, end);
            if bytes.get(at) != Some(&b':') {
                return None;
            }
            at = blank(bytes, at + 1);
            let (field, end) = value(text, at)?;
            // Another key's value is skipped, as serde ignores it.
            if let Some(slot) = shape.slot(key) {
                let slot = wire.slot_mut(slot);
                // A key twice (or both names of a feature): serde says so.
                if *slot != Field::Absent {
                    return None;
                }
                *slot = field;
            }
            at = blank(bytes, end);
            match bytes.get(at)? {
                b',' => at = blank(bytes, at + 1),
                b'}' => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (blank(bytes, at) == bytes.len()).then_some(())
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;

    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20000))]

        /// Every number is read as `number` reads it, and one said to be written as serde_json
        /// writes its f64 is exactly that.
        #[test]
        fn numbers_are_read_as_serde_reads_them_and_known_when_written_as_it_writes_them(
            text in proptest::prop_oneof![
                proptest::num::f64::NORMAL.prop_map(|x| serde_json::to_string(&x).unwrap()),
                proptest::num::f64::ANY.prop_map(|x| x.to_string()),
                (-1e6f64..1e6).prop_map(|x| serde_json::to_string(&x).unwrap()),
                (0u32..8, -1e4f64..1e4).prop_map(|(d, x)| format!("{x:.*}", d as usize)),
                proptest::num::i64::ANY.prop_map(|i| i.to_string()),
                "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
                "-?0\\.0{0,7}[0-9]{1,4}",
                "-?[0-9]{1,3}(\\.[0-9]{0,3})?[a-z,}.]?",
            ],
            tail in proptest::prop_oneof![
                proptest::strategy::Just(String::new()),
                proptest::strategy::Just(",".to_owned()),
                proptest::strategy::Just("}".to_owned()),
                proptest::strategy::Just(",\"bp\":1}".to_owned()),
                // Whatever follows a number, within and past the eight bytes read at once.
                "[0-9eE.,} x-]{0,10}",
            ],
        ) {
            let record = format!("{text}{tail}");
            let theirs = number(&record, 0);
            let read = decimal(record.as_bytes(), 0);
            proptest::prop_assert_eq!(
                read.map(|(x, end, _)| (x.to_bits(), end)),
                theirs.as_ref().and_then(|(f, end)| Some((f.as_f64()?.to_bits(), *end))),
                "{}", record
            );
            if let Some((x, end, true)) = read {
                proptest::prop_assert_eq!(serde_json::to_string(&x).unwrap(), &record[..end]);
            }
            if let Some((i, end)) = short_integer(record.as_bytes(), 0) {
                proptest::prop_assert_eq!(Some((Field::Int(i), end)), theirs, "{}", record);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20000))]

        /// A run of digits read eight bytes at a time is the run read a byte at a time, whatever
        /// bytes follow it (any byte, and the run at any offset of a word).
        #[test]
        fn digits_are_read_as_a_byte_at_a_time(
            lead in proptest::collection::vec(proptest::num::u8::ANY, 0..9),
            run in "[0-9]{0,25}",
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..12),
        ) {
            let mut bytes = lead.clone();
            bytes.extend_from_slice(run.as_bytes());
            bytes.extend_from_slice(&tail);
            for at in 0..=bytes.len() {
                let mut end = at;
                let mut value = 0u64;
                while let Some(&b) = bytes.get(end).filter(|b| b.is_ascii_digit()) {
                    value = value.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                    end += 1;
                }
                proptest::prop_assert_eq!(digits(&bytes, at), (value, end), "{:?} at {}", bytes, at);
            }
        }
    }

    #[test]
    fn eight_digits_stop_at_the_first_byte_that_is_no_digit() {
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b'1', b'2', b'3', b, b'4', b'5', b'6', b'7']);
            let expected = if b.is_ascii_digit() {
                (12_300_000 + u64::from(b - b'0') * 10_000 + 4_567, 8)
            } else {
                (123, 3)
            };
            assert_eq!(eight_digits(word), expected, "byte {b:#x}");
        }
        // Each byte is classed alone, whatever its neighbours.
        for b in 0..=255u8 {
            for fill in [b'.', b'0', b'9', 0x00, 0xff, b'/', b':'] {
                for i in 0..8 {
                    let mut bytes = [fill; 8];
                    bytes[i] = b;
                    let classed = |x: u8| if x.is_ascii_digit() { 0 } else { 0x80 };
                    let expected: [u8; 8] = std::array::from_fn(|j| classed(bytes[j]));
                    assert_eq!(
                        not_digits(u64::from_le_bytes(bytes)),
                        u64::from_le_bytes(expected),
                        "{bytes:?}"
                    );
                }
            }
        }
        assert_eq!(
            eight_digits(u64::from_le_bytes(*b"99999999")),
            (99_999_999, 8)
        );
        assert_eq!(eight_digits(u64::from_le_bytes(*b".5000000")), (0, 0));
    }

    #[test]
    fn numbers_written_as_serde_writes_them_are_known() {
        let written = |text: &str| decimal(text.as_bytes(), 0).map(|(_, _, w)| w);
        for text in [
            "60.7115",
            "5.0",
            "-0.0",
            "0.0",
            "10.0",
            "0.00001",
            "-3.25",
            "123456.789",
        ] {
            assert_eq!(written(text), Some(true), "{text}");
        }
        for text in [
            "5",
            "5.50",
            "0.000001",
            "1e3",
            "1.5e0",
            "0.00",
            "1234567890.1234567",
        ] {
            assert_eq!(written(text), Some(false), "{text}");
        }
        // serde_json reads -0 as a float: left to it.
        assert_eq!(written("-0"), None);
        assert_eq!(
            short_integer(b"1796308097555,", 0),
            Some((1796308097555, 13))
        );
        for text in ["1.0", "-0", "1e2", "01", "1234567890123456", "x"] {
            assert_eq!(short_integer(text.as_bytes(), 0), None, "{text}");
        }
    }
}
