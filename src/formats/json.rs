//! Bytes to events and events to bytes; pure, no I/O.
//!
//! Every record value decodes to either an [`ExperienceEvent`] or a [`BadRecord`] saying exactly
//! why it was refused. The decoder never panics, whatever the bytes (see the fuzz test).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;

/// Largest record value the scorer accepts; larger values go to the dead-letter topic.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The id an event carries, if any: a string or an integer, passed through to the output.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventId<'a> {
    /// A signed integer id.
    Int(i64),
    /// An unsigned integer id above `i64::MAX`.
    UInt(u64),
    /// A string id.
    Str(Cow<'a, str>),
}

impl fmt::Display for EventId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventId::Int(i) => write!(f, "{i}"),
            EventId::UInt(u) => write!(f, "{u}"),
            EventId::Str(s) => f.write_str(s),
        }
    }
}

/// One decoded input event, borrowing from the record value where it can.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperienceEvent<'a> {
    /// Years of experience, finite and not negative.
    pub years: f64,
    /// The producer's id for the event.
    pub id: Option<EventId<'a>>,
    /// Producer time in milliseconds since the Unix epoch.
    pub ts_ms: Option<i64>,
    /// Ground-truth salary, when the producer knows it.
    pub salary: Option<f64>,
}

/// The JSON type of a value, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool,
    /// a number
    Number,
    /// a string
    String,
    /// an array
    Array,
    /// an object
    Object,
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        })
    }
}

/// Why a record was refused. Its `Display` is the short reason put in the dead-letter `error`
/// header and shown in the dashboard.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadRecord {
    /// A zero-length value.
    #[error("empty value")]
    Empty,
    /// A null value (a tombstone).
    #[error("null value (tombstone)")]
    Tombstone,
    /// Larger than [`MAX_VALUE_BYTES`].
    #[error("value of {0} bytes exceeds the {MAX_VALUE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not valid UTF-8.
    #[error("not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    /// Not JSON at all, or JSON followed by more than whitespace.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but not an object.
    #[error("JSON is {0}, not an object")]
    NotObject(JsonKind),
    /// The object has no `years_experience` (nor `YearsExperience`).
    #[error("missing field years_experience")]
    MissingYears,
    /// A field has the wrong JSON type.
    #[error("{field} is {found}, expected {expected}")]
    WrongType {
        /// The field name.
        field: &'static str,
        /// The type found.
        found: JsonKind,
        /// The type wanted.
        expected: &'static str,
    },
    /// `years_experience` is below zero.
    #[error("years_experience is negative ({0})")]
    NegativeYears(f64),
    /// `ts_ms` is below zero.
    #[error("ts_ms is negative ({0})")]
    NegativeTimestamp(i64),
    /// The model's prediction for this value is not a finite number.
    #[error("prediction is not finite for years_experience {0}")]
    NonFinitePrediction(f64),
}

impl BadRecord {
    /// The reason's class, for counting: one word per kind of fault, never a value.
    pub fn class(&self) -> &'static str {
        match self {
            BadRecord::Empty => "empty",
            BadRecord::Tombstone => "tombstone",
            BadRecord::TooLarge(_) => "too_large",
            BadRecord::NotUtf8(_) => "not_utf8",
            BadRecord::NotJson(_) => "not_json",
            BadRecord::NotObject(_) => "not_an_object",
            BadRecord::MissingYears => "missing_field",
            BadRecord::WrongType { .. } => "wrong_type",
            BadRecord::NegativeYears(_) | BadRecord::NegativeTimestamp(_) => "negative",
            BadRecord::NonFinitePrediction(_) => "non_finite_prediction",
        }
    }
}

/// A JSON value reduced to what validation needs, borrowing strings where possible.
#[derive(Debug, Default, Clone, PartialEq)]
enum Field<'a> {
    #[default]
    Absent,
    Null,
    Bool,
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Field<'_> {
    fn kind(&self) -> JsonKind {
        match self {
            Field::Absent | Field::Null => JsonKind::Null,
            Field::Bool => JsonKind::Bool,
            Field::Int(_) | Field::UInt(_) | Field::Float(_) => JsonKind::Number,
            Field::Str(_) => JsonKind::String,
            Field::Array => JsonKind::Array,
            Field::Object => JsonKind::Object,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match *self {
            Field::Int(i) => Some(i as f64),
            Field::UInt(u) => Some(u as f64),
            Field::Float(f) => Some(f),
            _ => None,
        }
    }
}

struct FieldVisitor<'a>(std::marker::PhantomData<Field<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Bool)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Field::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Field::UInt(v), Field::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Field::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Object)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor(std::marker::PhantomData))
    }
}

#[derive(serde::Deserialize, Debug, Default, PartialEq)]
struct Wire<'a> {
    #[serde(default, borrow, alias = "YearsExperience")]
    years_experience: Field<'a>,
    #[serde(default, borrow)]
    id: Field<'a>,
    #[serde(default, borrow)]
    ts_ms: Field<'a>,
    #[serde(default, borrow)]
    salary: Field<'a>,
}

/// The JSON type that a document starts with, judged by its first non-blank byte.
fn leading_kind(text: &str) -> Option<JsonKind> {
    match text.trim_start().as_bytes().first()? {
        b'{' => Some(JsonKind::Object),
        b'[' => Some(JsonKind::Array),
        b'"' => Some(JsonKind::String),
        b'n' => Some(JsonKind::Null),
        b't' | b'f' => Some(JsonKind::Bool),
        b'-' | b'0'..=b'9' => Some(JsonKind::Number),
        _ => None,
    }
}

/// Decodes one record value (None is a tombstone).
pub fn decode(value: Option<&[u8]>) -> Result<ExperienceEvent<'_>, BadRecord> {
    let bytes = value.ok_or(BadRecord::Tombstone)?;
    if bytes.is_empty() {
        return Err(BadRecord::Empty);
    }
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(BadRecord::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| BadRecord::NotUtf8(e.valid_up_to()))?;
    match leading_kind(text) {
        Some(JsonKind::Object) => {}
        Some(kind) => {
            return match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => Err(BadRecord::NotObject(kind)),
                Err(e) => Err(BadRecord::NotJson(e.to_string())),
            }
        }
        None if text.trim().is_empty() => return Err(BadRecord::Empty),
        None => {
            let e = serde_json::from_str::<IgnoredAny>(text)
                .err()
                .map_or_else(|| "unexpected input".to_owned(), |e| e.to_string());
            return Err(BadRecord::NotJson(e));
        }
    }
    let wire: Wire<'_> = match scan::wire(text) {
        Some(wire) => wire,
        None => serde_json::from_str(text).map_err(|e| BadRecord::NotJson(e.to_string()))?,
    };
    validate(wire)
}

/// The common shape read without serde: an object of the known fields whose values are numbers,
/// strings without escapes, or null. Anything else (an escape, another key, a key twice, a
/// boolean, a nested value, a number serde reads otherwise, malformed text) is left to serde,
/// which also words the errors; what this accepts, it reads as serde does (tested against it).
/// On the bench's records `decode` retires about 1,400 instructions a record this way, against
/// about 1,950 through serde (BENCHMARKS.md).
mod scan {
    use std::borrow::Cow;

    use super::{Field, Wire};

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
    pub(super) fn wire(text: &str) -> Option<Wire<'_>> {
        let bytes = text.as_bytes();
        let mut wire = Wire::default();
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
                let slot = match key {
                    "years_experience" | "YearsExperience" => &mut wire.years_experience,
                    "id" => &mut wire.id,
                    "ts_ms" => &mut wire.ts_ms,
                    "salary" => &mut wire.salary,
                    _ => return None,
                };
                // A key twice (or both names of years): serde says so.
                if *slot != Field::Absent {
                    return None;
                }
                let (field, end) = value(text, at)?;
                *slot = field;
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
        (blank(bytes, at) == bytes.len()).then_some(wire)
    }
}

fn validate(wire: Wire<'_>) -> Result<ExperienceEvent<'_>, BadRecord> {
    let years = match &wire.years_experience {
        Field::Absent => return Err(BadRecord::MissingYears),
        f => f.as_f64().ok_or(BadRecord::WrongType {
            field: "years_experience",
            found: f.kind(),
            expected: "a number",
        })?,
    };
    if years < 0.0 {
        return Err(BadRecord::NegativeYears(years));
    }
    let id = match wire.id {
        Field::Absent | Field::Null => None,
        Field::Int(i) => Some(EventId::Int(i)),
        Field::UInt(u) => Some(EventId::UInt(u)),
        Field::Str(s) => Some(EventId::Str(s)),
        f => {
            return Err(BadRecord::WrongType {
                field: "id",
                found: f.kind(),
                expected: "a string or an integer",
            })
        }
    };
    let ts_ms = match wire.ts_ms {
        Field::Absent | Field::Null => None,
        Field::Int(i) if i < 0 => return Err(BadRecord::NegativeTimestamp(i)),
        Field::Int(i) => Some(i),
        f => {
            return Err(BadRecord::WrongType {
                field: "ts_ms",
                found: if matches!(f, Field::UInt(_) | Field::Float(_)) {
                    JsonKind::Number
                } else {
                    f.kind()
                },
                expected: "an integer of milliseconds",
            })
        }
    };
    let salary = match &wire.salary {
        Field::Absent | Field::Null => None,
        f => Some(f.as_f64().ok_or(BadRecord::WrongType {
            field: "salary",
            found: f.kind(),
            expected: "a number",
        })?),
    };
    Ok(ExperienceEvent {
        years,
        id,
        ts_ms,
        salary,
    })
}

/// One prediction as published to the output topic.
#[derive(Debug, Serialize)]
pub struct Prediction<'a> {
    /// The input's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a EventId<'a>>,
    /// The input's years of experience.
    pub years_experience: f64,
    /// The input's producer time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
    /// The input's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salary: Option<f64>,
    /// The model's prediction.
    pub predicted_salary: f64,
    /// `salary - predicted_salary`, when labeled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual: Option<f64>,
    /// True when the input lies outside the training range.
    pub extrapolated: bool,
    /// Version id of the model artifact that made the prediction.
    pub model: &'a str,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Milliseconds from the event's time to its scoring.
    pub latency_ms: f64,
    /// The challenger's prediction, when one is loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenger: Option<ChallengerPrediction<'a>>,
}

/// The challenger's side of a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChallengerPrediction<'a> {
    /// The challenger's version id.
    pub model: &'a str,
    /// Its prediction.
    pub predicted_salary: f64,
    /// `salary - predicted_salary`, when labeled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual: Option<f64>,
}

impl Prediction<'_> {
    /// Appends this prediction as one JSON object to `out`: the bytes serde's derive writes
    /// (the same keys in the same order, the same number formatting), with the keys written as
    /// they are rather than escaped one character at a time (a tenth of the scorer's time).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
            // Serializing plain numbers and strings into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, v);
        }
        // A model version is a few hex digits: nothing in it needs escaping.
        fn plain(out: &mut Vec<u8>, text: &str) {
            if text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                out.push(b'"');
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
            } else {
                value(out, text);
            }
        }
        fn integer(out: &mut Vec<u8>, v: impl itoa::Integer) {
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        }
        out.push(b'{');
        if let Some(id) = self.id {
            out.extend_from_slice(b"\"id\":");
            value(out, id);
            out.push(b',');
        }
        out.extend_from_slice(b"\"years_experience\":");
        value(out, &self.years_experience);
        if let Some(ts) = self.ts_ms {
            out.extend_from_slice(b",\"ts_ms\":");
            integer(out, ts);
        }
        if let Some(salary) = self.salary {
            out.extend_from_slice(b",\"salary\":");
            value(out, &salary);
        }
        out.extend_from_slice(b",\"predicted_salary\":");
        value(out, &self.predicted_salary);
        if let Some(residual) = self.residual {
            out.extend_from_slice(b",\"residual\":");
            value(out, &residual);
        }
        out.extend_from_slice(if self.extrapolated {
            b",\"extrapolated\":true,\"model\":"
        } else {
            b",\"extrapolated\":false,\"model\":"
        });
        plain(out, self.model);
        out.extend_from_slice(b",\"partition\":");
        integer(out, self.partition);
        out.extend_from_slice(b",\"offset\":");
        integer(out, self.offset);
        out.extend_from_slice(b",\"latency_ms\":");
        value(out, &self.latency_ms);
        if let Some(c) = &self.challenger {
            out.extend_from_slice(b",\"challenger\":{\"model\":");
            plain(out, c.model);
            out.extend_from_slice(b",\"predicted_salary\":");
            value(out, &c.predicted_salary);
            if let Some(residual) = c.residual {
                out.extend_from_slice(b",\"residual\":");
                value(out, &residual);
            }
            out.push(b'}');
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde reads, and what the scanner reads when it takes the text.
    fn both(text: &str) -> (Result<Wire<'_>, String>, Option<Wire<'_>>) {
        (
            serde_json::from_str::<Wire<'_>>(text).map_err(|e| e.to_string()),
            scan::wire(text),
        )
    }

    #[test]
    fn the_scanner_reads_the_common_shape_as_serde_does_and_leaves_the_rest() {
        for text in [
            r#"{"id":7,"years_experience":5.3,"ts_ms":1764000000000}"#,
            r#" { "YearsExperience" : 10 , "salary" : 81363.0 , "id" : "e-1" } "#,
            r#"{"years_experience":1e2,"id":18446744073709551615,"salary":null}"#,
            r#"{"years_experience":-0.0,"id":-9223372036854775808}"#,
            r#"{"years_experience":0.1e-3,"ts_ms":0}"#,
            "{}",
            "{\t\"salary\":\r\n-12.5e+1}",
        ] {
            let (serde, scanned) = both(text);
            assert_eq!(Some(serde.unwrap()), scanned, "{text}");
        }
        // Signs survive, zero's included (== cannot tell -0.0 from 0.0).
        let Some(Wire {
            years_experience: Field::Float(zero),
            ..
        }) = scan::wire(r#"{"years_experience":-0.0}"#)
        else {
            panic!("-0.0 is scanned");
        };
        assert_eq!(zero.to_bits(), (-0.0f64).to_bits());
        // Left to serde: escapes, other keys, keys twice, booleans, nesting, numbers serde reads
        // otherwise, and anything malformed.
        for text in [
            r#"{"id":"a\"b","years_experience":1}"#,
            r#"{"years_experience":1,"extra":2}"#,
            r#"{"years_experience":1,"YearsExperience":2}"#,
            r#"{"id":true,"years_experience":1}"#,
            r#"{"id":[1],"years_experience":1}"#,
            r#"{"ts_ms":-0,"years_experience":1}"#,
            r#"{"id":18446744073709551616,"years_experience":1}"#,
            r#"{"years_experience":1e400}"#,
            r#"{"years_experience":01}"#,
            r#"{"years_experience":1.}"#,
            r#"{"years_experience":1,}"#,
            r#"{"years_experience":1} x"#,
            "{\"id\":\"a\u{1}\",\"years_experience\":1}",
        ] {
            assert_eq!(scan::wire(text), None, "{text}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// On documents made of the fields' names, numbers, strings, nulls and punctuation in any
        /// order: whatever the scanner takes, serde reads the same.
        #[test]
        fn the_scanner_agrees_with_serde(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("{".to_owned()),
                proptest::strategy::Just("}".to_owned()),
                proptest::strategy::Just(",".to_owned()),
                proptest::strategy::Just(":".to_owned()),
                proptest::strategy::Just(" ".to_owned()),
                proptest::strategy::Just("null".to_owned()),
                proptest::strategy::Just("true".to_owned()),
                proptest::strategy::Just("\"years_experience\"".to_owned()),
                proptest::strategy::Just("\"YearsExperience\"".to_owned()),
                proptest::strategy::Just("\"id\"".to_owned()),
                proptest::strategy::Just("\"ts_ms\"".to_owned()),
                proptest::strategy::Just("\"salary\"".to_owned()),
                "\"[a-z\\\\\"]{0,4}\"",
                "-?[0-9]{1,20}(\\.[0-9]{1,18})?([eE][+-]?[0-9]{1,3})?",
                proptest::strategy::Strategy::prop_map(proptest::num::f64::ANY, |f| f.to_string()),
                proptest::strategy::Strategy::prop_map(proptest::num::i64::ANY, |i| i.to_string()),
            ],
            0..12,
        )) {
            let text = parts.concat();
            let (serde, scanned) = both(&text);
            if let Some(scanned) = scanned {
                proptest::prop_assert_eq!(Ok(scanned), serde, "{}", text);
            }
        }

        /// On objects of members with any of the names and values, spaced anyhow: whatever the
        /// scanner takes, serde reads the same.
        #[test]
        fn the_scanner_agrees_with_serde_on_objects(members in proptest::collection::vec(
            (
                proptest::prop_oneof![
                    proptest::strategy::Just("years_experience"),
                    proptest::strategy::Just("YearsExperience"),
                    proptest::strategy::Just("id"),
                    proptest::strategy::Just("ts_ms"),
                    proptest::strategy::Just("salary"),
                    proptest::strategy::Just("other"),
                ],
                proptest::prop_oneof![
                    "-?[0-9]{1,20}(\\.[0-9]{1,18})?([eE][+-]?[0-9]{1,3})?",
                    "\"[a-z0-9 \\\\\"]{0,6}\"",
                    proptest::strategy::Just("null".to_owned()),
                    proptest::strategy::Just("false".to_owned()),
                ],
                "[ \t\r\n]{0,2}",
            ),
            0..6,
        )) {
            let body: Vec<String> = members
                .iter()
                .map(|(key, value, blank)| format!("{blank}\"{key}\"{blank}:{blank}{value}{blank}"))
                .collect();
            let text = format!("{{{}}}", body.join(","));
            let (serde, scanned) = both(&text);
            if let Some(scanned) = scanned {
                proptest::prop_assert_eq!(Ok(scanned), serde, "{}", text);
            }
        }

        /// The bench's and the producer's records are all taken by the scanner.
        #[test]
        fn the_producers_records_take_the_fast_path(
            id in 0u64..u64::MAX,
            years in 0.0f64..50.0,
            ts in 0i64..4_000_000_000_000,
            salary in proptest::option::of(0.0f64..1e6),
        ) {
            let text = match salary {
                Some(s) => format!(r#"{{"id":{id},"years_experience":{years},"ts_ms":{ts},"salary":{s}}}"#),
                None => format!(r#"{{"id":{id},"years_experience":{years},"ts_ms":{ts}}}"#),
            };
            let (serde, scanned) = both(&text);
            proptest::prop_assert!(scanned.is_some(), "{}", text);
            proptest::prop_assert_eq!(Ok(scanned.unwrap()), serde);
        }
    }

    #[test]
    fn predictions_are_written_as_serde_writes_them() {
        let ids = [
            None,
            Some(EventId::UInt(7)),
            Some(EventId::Int(-3)),
            Some(EventId::Str("a\"1\\\u{1}".into())),
        ];
        for (i, id) in ids.iter().enumerate() {
            let labeled = i % 2 == 1;
            let prediction = Prediction {
                id: id.as_ref(),
                years_experience: [5.3, 0.0, 1e-7, 123456.789][i],
                ts_ms: (i != 2).then_some(1_764_000_000_000 + i as i64),
                salary: labeled.then_some(80000.5),
                predicted_salary: 75877.00019866869 + i as f64,
                residual: labeled.then_some(4123.4998),
                extrapolated: i == 3,
                model: ["6c25318e", "v\"2", "", "é"][i],
                partition: [0, 2, 65535, -1][i],
                offset: [0, 41, i64::MAX, 12][i],
                latency_ms: [0.0, 12.5, 1e21, 0.001][i],
                challenger: (i >= 2).then_some(ChallengerPrediction {
                    model: ["", "", "9f00aa11", "\"c"][i],
                    predicted_salary: 90100.25 - i as f64,
                    residual: (i == 3).then_some(-10099.75),
                }),
            };
            let mut ours = Vec::new();
            prediction.write_json(&mut ours);
            let serde = serde_json::to_vec(&prediction).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }

    fn reason(value: &[u8]) -> String {
        decode(Some(value)).unwrap_err().to_string()
    }

    #[test]
    fn accepts_valid_events() {
        let cases: &[(&str, ExperienceEvent<'static>)] = &[
            (
                r#"{"years_experience": 5.3}"#,
                ExperienceEvent {
                    years: 5.3,
                    id: None,
                    ts_ms: None,
                    salary: None,
                },
            ),
            (
                r#"{"YearsExperience": 2}"#,
                ExperienceEvent {
                    years: 2.0,
                    id: None,
                    ts_ms: None,
                    salary: None,
                },
            ),
            (
                r#" {"id": 7, "years_experience": 0, "ts_ms": 1700000000000, "salary": 40000.5} "#,
                ExperienceEvent {
                    years: 0.0,
                    id: Some(EventId::Int(7)),
                    ts_ms: Some(1_700_000_000_000),
                    salary: Some(40000.5),
                },
            ),
            (
                r#"{"id": "a\"b", "years_experience": 40, "extra": [1, {"x": null}]}"#,
                ExperienceEvent {
                    years: 40.0,
                    id: Some(EventId::Str(Cow::Owned("a\"b".into()))),
                    ts_ms: None,
                    salary: None,
                },
            ),
            (
                r#"{"years_experience": 1.5, "id": null, "ts_ms": null, "salary": null}"#,
                ExperienceEvent {
                    years: 1.5,
                    id: None,
                    ts_ms: None,
                    salary: None,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&decode(Some(input.as_bytes())).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn refuses_bad_records_with_specific_reasons() {
        let big = format!(
            r#"{{"years_experience": 1, "pad": "{}"}}"#,
            "x".repeat(MAX_VALUE_BYTES)
        );
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty value"),
            (b"   \n", "empty value"),
            (b"\xff\xfe{}", "not UTF-8 (invalid byte at offset 0)"),
            (
                b"{\"years_experience\": 1, \"id\": \"\xc3\x28\"}",
                "not UTF-8 (invalid byte at offset 31)",
            ),
            (b"hello", "not JSON: expected value at line 1 column 1"),
            (b"[1, 2]", "JSON is an array, not an object"),
            (b"5.3", "JSON is a number, not an object"),
            (b"\"5.3\"", "JSON is a string, not an object"),
            (b"null", "JSON is null, not an object"),
            (b"true", "JSON is a boolean, not an object"),
            (
                b"[1, 2",
                "not JSON: EOF while parsing a list at line 1 column 5",
            ),
            (b"{}", "missing field years_experience"),
            (b"{\"years\": 3}", "missing field years_experience"),
            (
                b"{\"years_experience\": \"5\"}",
                "years_experience is a string, expected a number",
            ),
            (
                b"{\"years_experience\": true}",
                "years_experience is a boolean, expected a number",
            ),
            (
                b"{\"years_experience\": null}",
                "years_experience is null, expected a number",
            ),
            (
                b"{\"years_experience\": {}}",
                "years_experience is an object, expected a number",
            ),
            (
                b"{\"years_experience\": []}",
                "years_experience is an array, expected a number",
            ),
            (
                b"{\"years_experience\": -1}",
                "years_experience is negative (-1)",
            ),
            (
                b"{\"years_experience\": -0.5}",
                "years_experience is negative (-0.5)",
            ),
            (
                b"{\"years_experience\": 1e999}",
                "not JSON: number out of range at line 1 column 26",
            ),
            (
                b"{\"years_experience\": 1} x",
                "not JSON: trailing characters at line 1 column 25",
            ),
            (
                b"{\"years_experience\": 1}{}",
                "not JSON: trailing characters at line 1 column 24",
            ),
            (
                b"{\"years_experience\": 1, \"years_experience\": 2}",
                "not JSON: duplicate field `years_experience` at line 1 column 42",
            ),
            (
                b"{\"years_experience\": 1, \"id\": 1.5}",
                "id is a number, expected a string or an integer",
            ),
            (
                b"{\"years_experience\": 1, \"id\": [1]}",
                "id is an array, expected a string or an integer",
            ),
            (
                b"{\"years_experience\": 1, \"ts_ms\": \"now\"}",
                "ts_ms is a string, expected an integer of milliseconds",
            ),
            (
                b"{\"years_experience\": 1, \"ts_ms\": 1.5}",
                "ts_ms is a number, expected an integer of milliseconds",
            ),
            (
                b"{\"years_experience\": 1, \"ts_ms\": -5}",
                "ts_ms is negative (-5)",
            ),
            (
                b"{\"years_experience\": 1, \"salary\": \"high\"}",
                "salary is a string, expected a number",
            ),
            (
                b"{\"years_experience\": 1",
                "not JSON: EOF while parsing an object at line 1 column 22",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(reason(input), *want, "{}", String::from_utf8_lossy(input));
        }
        assert_eq!(decode(None).unwrap_err(), BadRecord::Tombstone);
        assert_eq!(
            reason(big.as_bytes()),
            format!("value of {} bytes exceeds the 65536-byte limit", big.len())
        );
    }

    #[test]
    fn trailing_whitespace_is_fine() {
        assert_eq!(
            decode(Some(b"{\"years_experience\": 1}\r\n\t "))
                .unwrap()
                .years,
            1.0
        );
    }

    #[test]
    fn writes_predictions_as_json() {
        let id = EventId::Str(Cow::Borrowed("e-1"));
        let p = Prediction {
            id: Some(&id),
            years_experience: 5.3,
            ts_ms: Some(1000),
            salary: Some(80000.0),
            predicted_salary: 75877.0,
            residual: Some(4123.0),
            extrapolated: false,
            model: "abcd1234",
            partition: 2,
            offset: 17,
            latency_ms: 1.5,
            challenger: None,
        };
        let mut out = Vec::new();
        p.write_json(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"e-1","years_experience":5.3,"ts_ms":1000,"salary":80000.0,"predicted_salary":75877.0,"residual":4123.0,"extrapolated":false,"model":"abcd1234","partition":2,"offset":17,"latency_ms":1.5}"#
        );
    }
}
