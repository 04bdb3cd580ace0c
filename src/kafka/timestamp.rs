//! Points in time as a user types them: milliseconds since the Unix epoch, or an RFC 3339 date
//! and time (`2026-11-30T10:25:00Z`, `2026-11-30T11:25:00.5+01:00`).
//!
//! Hand-written rather than a date crate: one fixed format each way, in UTC, is all `--until`
//! needs, and the proleptic Gregorian arithmetic is a dozen lines (Howard Hinnant's
//! days-from-civil).

/// What a time must look like, for error messages.
const EXPECTED: &str = "milliseconds since the Unix epoch or an RFC 3339 time such as \
                        2026-11-30T10:25:00Z or 2026-11-30T11:25:00.250+01:00";

/// A time that is neither form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time {text:?}: {why}; expected {EXPECTED}")]
pub struct ParseTimeError {
    text: String,
    why: &'static str,
}

/// Milliseconds since the Unix epoch of `text`: digits are milliseconds already, anything else
/// is read as RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; fractions beyond
/// milliseconds are cut off).
pub fn parse_time_ms(text: &str) -> Result<i64, ParseTimeError> {
    let t = text.trim();
    let fail = |why| ParseTimeError {
        text: text.to_owned(),
        why,
    };
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| fail("too large"));
    }
    rfc3339_ms(t.as_bytes()).map_err(fail)
}

/// Milliseconds since the Unix epoch of an RFC 3339 time, or why `b` is not one.
fn rfc3339_ms(b: &[u8]) -> Result<i64, &'static str> {
    let [year, month, day, hour, minute, second] = date_and_time(b)?;
    let (millis, at) = milliseconds(b, 19)?;
    let offset_minutes = offset_minutes(b, at)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("no such date");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("no such time of day");
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    let ms = seconds * 1000 + millis;
    if ms < 0 {
        return Err("before 1970");
    }
    Ok(ms)
}

/// The year, month, day, hour, minute and second of the `YYYY-MM-DDTHH:MM:SS` that `b` starts
/// with, each as written (not yet checked to be a date or a time of day).
fn date_and_time(b: &[u8]) -> Result<[i64; 6], &'static str> {
    let year = digits(b, 0, 4)?;
    sep(b, 4, b"-")?;
    let month = digits(b, 5, 2)?;
    sep(b, 7, b"-")?;
    let day = digits(b, 8, 2)?;
    sep(b, 10, b"Tt ")?;
    let hour = digits(b, 11, 2)?;
    sep(b, 13, b":")?;
    let minute = digits(b, 14, 2)?;
    sep(b, 16, b":")?;
    let second = digits(b, 17, 2)?;
    Ok([year, month, day, hour, minute, second])
}

/// The milliseconds of the fraction of a second at `at`, if there is one (digits beyond
/// milliseconds are cut off), and where what follows it starts.
fn milliseconds(b: &[u8], mut at: usize) -> Result<(i64, usize), &'static str> {
    if b.get(at) != Some(&b'.') {
        return Ok((0, at));
    }
    at += 1;
    let start = at;
    while b.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    if at == start {
        return Err("no digits after the decimal point");
    }
    let millis = b[start..at]
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .fold(0, |n, d| n * 10 + i64::from(d - b'0'));
    Ok((millis, at))
}

/// The offset from UTC in minutes of the time zone at `at` (`Z` or `±HH:MM`), which must end
/// `b`.
fn offset_minutes(b: &[u8], at: usize) -> Result<i64, &'static str> {
    match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => Ok(0),
        Some(&sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            let hours = digits(b, at + 1, 2)?;
            sep(b, at + 3, b":")?;
            let minutes = digits(b, at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return Err("offset out of range");
            }
            let m = hours * 60 + minutes;
            Ok(if sign == b'-' { -m } else { m })
        }
        None => Err("no time zone (Z or ±HH:MM)"),
        _ => Err("not a date and time"),
    }
}

/// The number that the `len` digits of `b` at `at` write.
fn digits(b: &[u8], at: usize, len: usize) -> Result<i64, &'static str> {
    let part = b.get(at..at + len).ok_or("too short")?;
    if !part.iter().all(u8::is_ascii_digit) {
        return Err("not a date and time");
    }
    Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
}

/// Whether `b` holds one of the separators `allowed` at `at`.
fn sep(b: &[u8], at: usize, allowed: &[u8]) -> Result<(), &'static str> {
    match b.get(at) {
        None => Err("too short"),
        Some(c) if allowed.contains(c) => Ok(()),
        Some(_) => Err("not a date and time"),
    }
}

/// `ms` since the epoch as RFC 3339 in UTC, to the millisecond: `2026-11-30T10:25:00.000Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{}Z",
        crate::engine::clock(ms)
    )
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_milliseconds_and_rfc_3339() {
        for (text, want) in [
            ("0", 0),
            ("1700000000123", 1_700_000_000_123),
            ("1970-01-01T00:00:00Z", 0),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000),
            ("2023-11-14T22:13:20.123Z", 1_700_000_000_123),
            ("2023-11-14T22:13:20.1Z", 1_700_000_000_100),
            ("2023-11-14T22:13:20.123999z", 1_700_000_000_123),
            ("2023-11-14 22:13:20Z", 1_700_000_000_000),
            ("2023-11-15T00:13:20+02:00", 1_700_000_000_000),
            ("2023-11-14T17:43:20.5-04:30", 1_700_000_000_500),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            ("2000-03-01T00:00:00Z", 951_868_800_000),
        ] {
            assert_eq!(parse_time_ms(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_time_in_one_line() {
        for (text, why) in [
            ("", "too short"),
            ("yesterday", "not a date and time"),
            ("2023-11-14", "too short"),
            ("2023-11-14T22:13:20", "no time zone (Z or ±HH:MM)"),
            ("2023-11-14T22:13:20+0200", "not a date and time"),
            ("2023/11/14T22:13:20Z", "not a date and time"),
            ("2023-11-14T22:13:20.Z", "no digits after the decimal point"),
            ("2023-02-29T00:00:00Z", "no such date"),
            ("2023-13-01T00:00:00Z", "no such date"),
            ("2023-11-14T24:00:00Z", "no such time of day"),
            ("2023-11-14T22:60:00Z", "no such time of day"),
            ("2023-11-14T22:13:20+24:00", "offset out of range"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("99999999999999999999", "too large"),
            ("2023-11-14T22:13:20Zjunk", "not a date and time"),
        ] {
            let e = parse_time_ms(text).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("invalid time {text:?}: {why}; expected {EXPECTED}"),
                "{text}"
            );
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn formats_utc_and_reads_it_back() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        for ms in [0, 951_868_800_000, 1_709_164_800_999, 4_102_444_800_000] {
            assert_eq!(parse_time_ms(&format_rfc3339(ms)), Ok(ms));
        }
    }
}
