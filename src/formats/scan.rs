//! The common shape read without serde: an object whose values are numbers, strings without
//! escapes, or null; the keys of the event's shape are kept and other keys skipped. Anything
//! else (an escape, a key of the shape twice, a boolean, a nested value, a number serde reads
//! otherwise, malformed text) is left to serde, which also words the errors; what this accepts,
//! it reads as serde does (tested against it).
//! On the bench's records `decode` retires about 1,400 instructions a record this way, against
//! about 1,950 through serde (BENCHMARKS.md).

use std::borrow::Cow;

use super::json::{Field, Wire};
use super::shape::EventShape;

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

/// A string at `at` (its opening quote) with no escape and no control character: its text
/// and where it ends.
fn string(text: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let body = bytes.get(at + 1..)?;
    let len = body
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if body[len] != b'"' {
        return None;
    }
    // Both ends sit next to ASCII quotes, so they are character boundaries.
    Some((text.get(at + 1..at + 1 + len)?, at + len + 2))
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

fn value(text: &str, at: usize) -> Option<(Field<'_>, usize)> {
    match text.as_bytes().get(at)? {
        b'"' => string(text, at).map(|(s, end)| (Field::Str(Cow::Borrowed(s)), end)),
        b'-' | b'0'..=b'9' => number(text, at),
        b'n' if text[at..].starts_with("null") => Some((Field::Null, at + 4)),
        _ => None,
    }
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
