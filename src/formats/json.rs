//! Bytes to events and events to bytes; pure, no I/O.
//!
//! Every record value decodes to either an [`ExperienceEvent`] or a [`BadRecord`] saying exactly
//! why it was refused. The decoder never panics, whatever the bytes (see the fuzz test).

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::Serialize;

use super::scan;
use super::shape::{EventShape, Slot, WireSeed};

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

/// A record's feature values, in the model's order: inline for models of up to 16 features (a
/// row on the heap is an allocation and a free a record).
pub type Features = smallvec::SmallVec<[f64; 16]>;

/// One decoded input event, borrowing from the record value where it can. Two events are equal
/// when their values are: how the record was written ([`ExperienceEvent::verbatim`]) is not
/// compared.
#[derive(Debug, Clone)]
pub struct ExperienceEvent<'a> {
    /// The model's features, each finite (and not negative where the shape says so).
    pub features: Features,
    /// The producer's id for the event.
    pub id: Option<EventId<'a>>,
    /// Producer time in milliseconds since the Unix epoch.
    pub ts_ms: Option<i64>,
    /// The ground truth (the demo's `salary`), when the producer knows it.
    pub label: Option<f64>,
    /// The record's text from its `{` to before its closing `}`, when that is exactly what a
    /// prediction writes for these fields (see [`Prediction::verbatim`]).
    pub(crate) verbatim: Option<&'a [u8]>,
}

impl PartialEq for ExperienceEvent<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.features == other.features
            && self.id == other.id
            && self.ts_ms == other.ts_ms
            && self.label == other.label
    }
}

impl<'a> ExperienceEvent<'a> {
    /// An event of these values.
    pub fn new(
        features: Features,
        id: Option<EventId<'a>>,
        ts_ms: Option<i64>,
        label: Option<f64>,
    ) -> Self {
        ExperienceEvent {
            features,
            id,
            ts_ms,
            label,
            verbatim: None,
        }
    }

    /// The record's text from its `{` to before its closing `}`, when a prediction writes
    /// exactly that for the event's fields: the record has `id` (an integer, or a string with
    /// no escape) first if at all, then each feature under its field's name in the model's
    /// order, `ts_ms` and the label last if at all, nothing else, no blank between, and each
    /// number written as serde_json writes the `f64` it is read as (`60.7115`, `5.0`, not `5`
    /// or `5.50`). What the producer writes is so; the prediction copies it.
    pub fn verbatim(&self) -> Option<&'a [u8]> {
        self.verbatim
    }
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

impl JsonKind {
    /// The type's bare name, as a wrong type's reason gives it: `string`, `boolean`, `null`,
    /// `object`, `array`, `number`.
    pub fn name(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "boolean",
            JsonKind::Number => "number",
            JsonKind::String => "string",
            JsonKind::Array => "array",
            JsonKind::Object => "object",
        }
    }
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
    /// The object lacks one of the model's features (the demo's `years_experience`).
    #[error("missing field {0}")]
    MissingField(String),
    /// A feature or the label holds something other than a number (`wrong type for bmi:
    /// string`).
    #[error("wrong type for {field}: {}", found.name())]
    NotANumber {
        /// The field name.
        field: String,
        /// The type found.
        found: JsonKind,
    },
    /// `id` or `ts_ms` has the wrong JSON type.
    #[error("{field} is {found}, expected {expected}")]
    WrongType {
        /// The field name.
        field: String,
        /// The type found.
        found: JsonKind,
        /// The type wanted.
        expected: &'static str,
    },
    /// A feature that cannot be negative (years of experience) is.
    #[error("{field} is negative ({value})")]
    Negative {
        /// The field name.
        field: String,
        /// Its value.
        value: f64,
    },
    /// `ts_ms` is below zero.
    #[error("ts_ms is negative ({0})")]
    NegativeTimestamp(i64),
    /// The model's prediction for these values (named, `years_experience 1e300`) is not a
    /// finite number.
    #[error("prediction is not finite for {0}")]
    NonFinitePrediction(String),
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
            BadRecord::MissingField(_) => "missing_field",
            BadRecord::NotANumber { .. } | BadRecord::WrongType { .. } => "wrong_type",
            BadRecord::Negative { .. } | BadRecord::NegativeTimestamp(_) => "negative",
            BadRecord::NonFinitePrediction(_) => "non_finite_prediction",
        }
    }
}

/// A JSON value reduced to what validation needs, borrowing strings where possible.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) enum Field<'a> {
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
    pub(super) fn kind(&self) -> JsonKind {
        match self {
            Field::Absent | Field::Null => JsonKind::Null,
            Field::Bool => JsonKind::Bool,
            Field::Int(_) | Field::UInt(_) | Field::Float(_) => JsonKind::Number,
            Field::Str(_) => JsonKind::String,
            Field::Array => JsonKind::Array,
            Field::Object => JsonKind::Object,
        }
    }

    pub(super) fn as_f64(&self) -> Option<f64> {
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

/// An event's fields as read, before they are checked.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Wire<'a> {
    /// The model's features, in its order.
    pub features: smallvec::SmallVec<[Field<'a>; 4]>,
    pub id: Field<'a>,
    pub ts_ms: Field<'a>,
    pub label: Field<'a>,
}

impl<'a> Wire<'a> {
    /// Where the value of `slot` goes.
    #[inline]
    pub(super) fn slot_mut(&mut self, slot: Slot) -> &mut Field<'a> {
        match slot {
            Slot::Feature(i) => &mut self.features[i],
            Slot::Id => &mut self.id,
            Slot::TsMs => &mut self.ts_ms,
            Slot::Label => &mut self.label,
        }
    }
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

/// Decodes one record value of the salary demo (None is a tombstone).
pub fn decode(value: Option<&[u8]>) -> Result<ExperienceEvent<'_>, BadRecord> {
    decode_as(EventShape::salary(), value)
}

/// Decodes one record value as an event of `shape` (None is a tombstone).
pub fn decode_as<'v>(
    shape: &EventShape,
    value: Option<&'v [u8]>,
) -> Result<ExperienceEvent<'v>, BadRecord> {
    let bytes = value.ok_or(BadRecord::Tombstone)?;
    if bytes.is_empty() {
        return Err(BadRecord::Empty);
    }
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(BadRecord::TooLarge(bytes.len()));
    }
    // Only valid UTF-8 is read as an event in order, so it need not be checked first.
    if let Some(event) = scan::ordered(shape, bytes) {
        return Ok(event);
    }
    decode_unordered(shape, bytes)
}

/// Decodes a record value that is not an event written in order ([`scan::ordered`]): by the
/// scanner if it has the common shape, else by serde.
fn decode_unordered<'v>(
    shape: &EventShape,
    bytes: &'v [u8],
) -> Result<ExperienceEvent<'v>, BadRecord> {
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
    // Filled in place: a record of many fields is large to move.
    let mut wire = shape.empty_wire();
    if !scan::fill(shape, text, &mut wire) {
        wire = serde_wire(shape, text).map_err(|e| BadRecord::NotJson(e.to_string()))?;
    }
    validate(shape, &mut wire)
}

/// The event's fields as serde reads them, the whole text consumed.
fn serde_wire<'t>(shape: &EventShape, text: &'t str) -> Result<Wire<'t>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let wire = WireSeed(shape).deserialize(&mut de)?;
    de.end()?;
    Ok(wire)
}

fn validate<'a>(shape: &EventShape, wire: &mut Wire<'a>) -> Result<ExperienceEvent<'a>, BadRecord> {
    let mut features = Features::with_capacity(wire.features.len());
    for (spec, field) in shape.features().iter().zip(&wire.features) {
        let value = match field {
            Field::Absent => return Err(BadRecord::MissingField(spec.field.clone())),
            f => f.as_f64().ok_or_else(|| BadRecord::NotANumber {
                field: spec.field.clone(),
                found: f.kind(),
            })?,
        };
        if spec.non_negative && value < 0.0 {
            return Err(BadRecord::Negative {
                field: spec.field.clone(),
                value,
            });
        }
        features.push(value);
    }
    let id = match std::mem::take(&mut wire.id) {
        Field::Absent | Field::Null => None,
        Field::Int(i) => Some(EventId::Int(i)),
        Field::UInt(u) => Some(EventId::UInt(u)),
        Field::Str(s) => Some(EventId::Str(s)),
        f => {
            return Err(BadRecord::WrongType {
                field: "id".into(),
                found: f.kind(),
                expected: "a string or an integer",
            })
        }
    };
    let ts_ms = match std::mem::take(&mut wire.ts_ms) {
        Field::Absent | Field::Null => None,
        Field::Int(i) if i < 0 => return Err(BadRecord::NegativeTimestamp(i)),
        Field::Int(i) => Some(i),
        f => {
            return Err(BadRecord::WrongType {
                field: "ts_ms".into(),
                found: if matches!(f, Field::UInt(_) | Field::Float(_)) {
                    JsonKind::Number
                } else {
                    f.kind()
                },
                expected: "an integer of milliseconds",
            })
        }
    };
    let label = match &wire.label {
        Field::Absent | Field::Null => None,
        f => Some(f.as_f64().ok_or_else(|| BadRecord::NotANumber {
            field: shape.label().to_owned(),
            found: f.kind(),
        })?),
    };
    Ok(ExperienceEvent::new(features, id, ts_ms, label))
}

/// One prediction as published to the output topic: the input's fields (its id, features, time
/// and label), the prediction as `predicted_<label>`, and how it was made.
#[derive(Debug)]
pub struct Prediction<'a> {
    /// The names the fields are written with.
    pub shape: &'a EventShape,
    /// The input's id.
    pub id: Option<&'a EventId<'a>>,
    /// The input's features, in the shape's order.
    pub features: &'a [f64],
    /// The input's producer time.
    pub ts_ms: Option<i64>,
    /// The input's label.
    pub label: Option<f64>,
    /// The input's record from its `{` to before its closing `}`, when that is exactly what is
    /// written for `id`, `features`, `ts_ms` and `label` ([`ExperienceEvent::verbatim`]): copied
    /// rather than each number formatted again.
    pub verbatim: Option<&'a [u8]>,
    /// The model's prediction.
    pub predicted: f64,
    /// `label - predicted`, when labeled.
    pub residual: Option<f64>,
    /// True when any feature lies outside its training range.
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
    pub challenger: Option<ChallengerPrediction<'a>>,
}

/// The challenger's side of a prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChallengerPrediction<'a> {
    /// The challenger's version id.
    pub model: &'a str,
    /// Its prediction.
    pub predicted: f64,
    /// `label - predicted`, when labeled.
    pub residual: Option<f64>,
}

/// Appends `v` as serde_json writes it.
fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Serializing plain numbers and strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Appends `text` as a JSON string; a model version is a few hex digits, which need no escape.
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

/// Appends the integer `v`.
fn integer(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

impl Prediction<'_> {
    /// Appends this prediction as one JSON object to `out`, as serde_json writes it (the same
    /// number formatting and string escapes), with the keys written from the shape's bytes
    /// rather than escaped one character at a time (a tenth of the scorer's time). The salary
    /// demo's bytes are those of the struct it had before any model could be served (tested).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let shape = self.shape;
        match self.verbatim {
            Some(fields) => {
                debug_assert_eq!(
                    String::from_utf8_lossy(fields),
                    String::from_utf8_lossy(&{
                        let mut written = Vec::new();
                        self.write_fields(&mut written);
                        written
                    })
                );
                out.extend_from_slice(fields);
            }
            None => self.write_fields(out),
        }
        out.extend_from_slice(shape.predicted_key());
        value(out, &self.predicted);
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
            out.extend_from_slice(shape.predicted_key());
            value(out, &c.predicted);
            if let Some(residual) = c.residual {
                out.extend_from_slice(b",\"residual\":");
                value(out, &residual);
            }
            out.push(b'}');
        }
        out.push(b'}');
    }

    /// Writes `{` and the input's fields (`id`, the features, `ts_ms`, the label).
    fn write_fields(&self, out: &mut Vec<u8>) {
        let shape = self.shape;
        out.push(b'{');
        if let Some(id) = self.id {
            out.extend_from_slice(b"\"id\":");
            value(out, id);
            out.push(b',');
        }
        for (key, x) in shape.feature_members().iter().zip(self.features) {
            out.extend_from_slice(key.bytes());
            value(out, x);
        }
        if let Some(ts) = self.ts_ms {
            out.extend_from_slice(b",\"ts_ms\":");
            integer(out, ts);
        }
        if let Some(label) = self.label {
            out.extend_from_slice(shape.label_member().bytes());
            value(out, &label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::shape::FeatureField;

    /// What serde reads, and what the scanner reads when it takes the text, of the demo's shape.
    fn both(text: &str) -> (Result<Wire<'_>, String>, Option<Wire<'_>>) {
        both_as(EventShape::salary(), text)
    }

    fn both_as<'t>(
        shape: &EventShape,
        text: &'t str,
    ) -> (Result<Wire<'t>, String>, Option<Wire<'t>>) {
        (
            serde_wire(shape, text).map_err(|e| e.to_string()),
            scan::wire(shape, text),
        )
    }

    /// A model of three features, `bmi`, `bp` and `s5`, labeled `progression`.
    fn diabetes() -> EventShape {
        let feature = |f: &str| FeatureField {
            field: f.into(),
            alias: None,
            non_negative: false,
        };
        EventShape::new(
            vec![feature("bmi"), feature("bp"), feature("s5")],
            "progression",
        )
        .unwrap()
    }

    fn event(
        features: &[f64],
        id: Option<EventId<'static>>,
        ts_ms: Option<i64>,
        label: Option<f64>,
    ) -> ExperienceEvent<'static> {
        ExperienceEvent::new(Features::from_slice(features), id, ts_ms, label)
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
        let Some(wire) = scan::wire(EventShape::salary(), r#"{"years_experience":-0.0}"#) else {
            panic!("-0.0 is scanned");
        };
        let Field::Float(zero) = wire.features[0] else {
            panic!("-0.0 is a float");
        };
        assert_eq!(zero.to_bits(), (-0.0f64).to_bits());
        // Another key with a plain value is skipped, as serde ignores it.
        let (serde, scanned) = both(r#"{"years_experience":1,"extra":2,"more":"x"}"#);
        assert_eq!(Some(serde.unwrap()), scanned);
        // Left to serde: escapes, keys twice, booleans, nesting, numbers serde reads otherwise,
        // and anything malformed.
        for text in [
            r#"{"id":"a\"b","years_experience":1}"#,
            r#"{"years_experience":1,"extra":true}"#,
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
            assert_eq!(scan::wire(EventShape::salary(), text), None, "{text}");
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

        /// On records written in a prediction's order or nearly (members missing, swapped or
        /// spaced, values of every type, numbers written every way): whatever is read in order
        /// is what the scanner and serde read, and where its text is kept to be copied, that
        /// text is what a prediction writes for the event.
        #[test]
        fn what_is_read_in_order_is_read_as_serde_reads_it_and_written_as_serde_writes_it(
            members in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        4 => proptest::strategy::Just("keep"),
                        1 => proptest::strategy::Just("drop"),
                        1 => proptest::strategy::Just("space"),
                    ],
                    proptest::prop_oneof![
                        6 => number_text(),
                        1 => proptest::strategy::Just("null".to_owned()),
                        1 => proptest::strategy::Just("\"x\"".to_owned()),
                        1 => proptest::strategy::Just("true".to_owned()),
                        1 => "\"[a-z\\\\\"é\u{1}]{0,3}\"",
                    ],
                ),
                6,
            ),
            swap in proptest::bool::weighted(0.1),
        ) {
            let shape = diabetes();
            let keys = ["id", "bmi", "bp", "s5", "ts_ms", "progression"];
            let mut written: Vec<String> = members
                .iter()
                .zip(keys)
                .filter(|((how, _), _)| *how != "drop")
                .map(|((how, value), key)| match *how {
                    "space" => format!("\"{key}\": {value}"),
                    _ => format!("\"{key}\":{value}"),
                })
                .collect();
            if swap && written.len() > 2 {
                written.swap(1, 2);
            }
            let text = format!("{{{}}}", written.join(","));
            let Some(event) = scan::ordered(&shape, text.as_bytes()) else {
                return Ok(());
            };
            let unordered = decode_unordered(&shape, text.as_bytes());
            proptest::prop_assert_eq!(Ok(&event), unordered.as_ref(), "{}", text);
            if let Some(verbatim) = event.verbatim() {
                let prediction = Prediction {
                    shape: &shape,
                    id: event.id.as_ref(),
                    features: &event.features,
                    ts_ms: event.ts_ms,
                    label: event.label,
                    verbatim: None,
                    predicted: 1.0,
                    residual: None,
                    extrapolated: false,
                    model: "m",
                    partition: 0,
                    offset: 0,
                    latency_ms: 0.0,
                    challenger: None,
                };
                let mut fields = Vec::new();
                prediction.write_fields(&mut fields);
                proptest::prop_assert_eq!(
                    String::from_utf8_lossy(verbatim),
                    String::from_utf8_lossy(&fields)
                );
            }
        }
    }

    /// A number written any of the ways producers write one: as serde_json and Rust write an
    /// f64, as a decimal of a few digits (trailing zeros too), an integer, with an exponent,
    /// negative zero, long.
    fn number_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        proptest::prop_oneof![
            proptest::num::f64::NORMAL.prop_map(|x| serde_json::to_string(&x).unwrap()),
            proptest::num::f64::NORMAL.prop_map(|x| x.to_string()),
            (-1e6f64..1e6).prop_map(|x| serde_json::to_string(&x).unwrap()),
            (0u32..6, -1e4f64..1e4).prop_map(|(d, x)| format!("{x:.*}", d as usize)),
            "-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,17})?([eE][+-]?[0-9]{1,3})?",
            "-?0\\.0{0,6}[1-9]{1,3}",
            proptest::strategy::Just("-0".to_owned()),
            proptest::strategy::Just("-0.0".to_owned()),
            proptest::strategy::Just("01".to_owned()),
            proptest::strategy::Just("1.".to_owned()),
        ]
    }

    /// The salary demo's prediction as it was written before any model could be served: its
    /// bytes must not change.
    #[derive(Serialize)]
    struct SalaryPrediction<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a EventId<'a>>,
        years_experience: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        ts_ms: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        salary: Option<f64>,
        predicted_salary: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        residual: Option<f64>,
        extrapolated: bool,
        model: &'a str,
        partition: i32,
        offset: i64,
        latency_ms: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        challenger: Option<SalaryChallenger<'a>>,
    }

    #[derive(Serialize)]
    struct SalaryChallenger<'a> {
        model: &'a str,
        predicted_salary: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        residual: Option<f64>,
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
            let years = [5.3, 0.0, 1e-7, 123456.789][i];
            let challenger = (i >= 2).then_some(ChallengerPrediction {
                model: ["", "", "9f00aa11", "\"c"][i],
                predicted: 90100.25 - i as f64,
                residual: (i == 3).then_some(-10099.75),
            });
            let prediction = Prediction {
                shape: EventShape::salary(),
                id: id.as_ref(),
                features: &[years],
                ts_ms: (i != 2).then_some(1_764_000_000_000 + i as i64),
                label: labeled.then_some(80000.5),
                verbatim: None,
                predicted: 75877.00019866869 + i as f64,
                residual: labeled.then_some(4123.4998),
                extrapolated: i == 3,
                model: ["6c25318e", "v\"2", "", "é"][i],
                partition: [0, 2, 65535, -1][i],
                offset: [0, 41, i64::MAX, 12][i],
                latency_ms: [0.0, 12.5, 1e21, 0.001][i],
                challenger,
            };
            let before = SalaryPrediction {
                id: prediction.id,
                years_experience: years,
                ts_ms: prediction.ts_ms,
                salary: prediction.label,
                predicted_salary: prediction.predicted,
                residual: prediction.residual,
                extrapolated: prediction.extrapolated,
                model: prediction.model,
                partition: prediction.partition,
                offset: prediction.offset,
                latency_ms: prediction.latency_ms,
                challenger: challenger.map(|c| SalaryChallenger {
                    model: c.model,
                    predicted_salary: c.predicted,
                    residual: c.residual,
                }),
            };
            let mut ours = Vec::new();
            prediction.write_json(&mut ours);
            let serde = serde_json::to_vec(&before).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }

    #[test]
    fn a_model_of_many_features_reads_and_writes_its_own_names() {
        let shape = diabetes();
        let text = r#"{"id":3,"s5":4.5,"bmi":32.1,"age":59,"bp":101,"progression":151}"#;
        let (serde, scanned) = both_as(&shape, text);
        assert_eq!(Some(serde.unwrap()), scanned, "the fast path takes it");
        let read = decode_as(&shape, Some(text.as_bytes())).unwrap();
        assert_eq!(
            read,
            event(
                &[32.1, 101.0, 4.5],
                Some(EventId::Int(3)),
                None,
                Some(151.0)
            )
        );
        // Negative values are fine for any feature but years of experience.
        let read = decode_as(&shape, Some(br#"{"bmi":-0.5,"bp":-2,"s5":0}"#)).unwrap();
        assert_eq!(read.features.as_slice(), [-0.5, -2.0, 0.0]);
        let refused = |text: &str| decode_as(&shape, Some(text.as_bytes())).unwrap_err();
        assert_eq!(
            refused(r#"{"bmi":1,"s5":2}"#).to_string(),
            "missing field bp"
        );
        assert_eq!(
            refused(r#"{"bmi":1,"bp":"high","s5":2}"#).to_string(),
            "wrong type for bp: string"
        );
        assert_eq!(
            refused(r#"{"bmi":1,"bp":2,"s5":2,"progression":"x"}"#).to_string(),
            "wrong type for progression: string"
        );
        assert_eq!(
            refused(r#"{"bmi":1,"bp":2,"s5":2,"bp":3}"#).to_string(),
            "not JSON: duplicate field `bp` at line 1 column 27"
        );
        assert_eq!(
            refused(r#"{"years_experience":1}"#).class(),
            "missing_field"
        );
        let prediction = Prediction {
            shape: &shape,
            id: read.id.as_ref(),
            features: &[32.1, 101.0, 4.5],
            ts_ms: Some(5),
            label: Some(151.0),
            verbatim: None,
            predicted: 150.25,
            residual: Some(0.75),
            extrapolated: true,
            model: "0a1b2c3d",
            partition: 1,
            offset: 9,
            latency_ms: 0.5,
            challenger: Some(ChallengerPrediction {
                model: "ffff0000",
                predicted: 149.0,
                residual: Some(2.0),
            }),
        };
        let mut out = Vec::new();
        prediction.write_json(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"bmi":32.1,"bp":101.0,"s5":4.5,"ts_ms":5,"progression":151.0,"predicted_progression":150.25,"residual":0.75,"extrapolated":true,"model":"0a1b2c3d","partition":1,"offset":9,"latency_ms":0.5,"challenger":{"model":"ffff0000","predicted_progression":149.0,"residual":2.0}}"#
        );
    }

    #[test]
    fn a_record_written_in_order_is_copied_into_its_prediction() {
        let shape = diabetes();
        let text =
            br#"{"id":"e-3","bmi":32.1,"bp":101.0,"s5":0.00045,"ts_ms":5,"progression":151.25}"#;
        let read = decode_as(&shape, Some(text)).unwrap();
        assert_eq!(read.verbatim(), Some(&text[..text.len() - 1]));
        assert_eq!(
            read,
            event(
                &[32.1, 101.0, 0.00045],
                Some(EventId::Str("e-3".into())),
                Some(5),
                Some(151.25)
            )
        );
        let prediction = |verbatim| Prediction {
            shape: &shape,
            id: read.id.as_ref(),
            features: &read.features,
            ts_ms: read.ts_ms,
            label: read.label,
            verbatim,
            predicted: 150.5,
            residual: Some(0.75),
            extrapolated: false,
            model: "0a1b2c3d",
            partition: 1,
            offset: 9,
            latency_ms: 0.5,
            challenger: None,
        };
        let (mut copied, mut formatted) = (Vec::new(), Vec::new());
        prediction(read.verbatim()).write_json(&mut copied);
        prediction(None).write_json(&mut formatted);
        assert_eq!(
            String::from_utf8(copied).unwrap(),
            String::from_utf8(formatted).unwrap()
        );
        // Read in order, but not as a prediction writes it: an integer (written `32.0`), a
        // trailing zero, an id of null (not written), 1e-6 (written `1e-6`).
        for text in [
            r#"{"id":3,"bmi":32,"bp":1.5,"s5":4.5}"#,
            r#"{"bmi":32.10,"bp":1.5,"s5":4.5}"#,
            r#"{"id":null,"bmi":1.5,"bp":1.5,"s5":4.5}"#,
            r#"{"bmi":0.000001,"bp":1.5,"s5":4.5}"#,
            r#"{"bmi":1.5,"bp":1.5,"s5":4.5,"progression":null}"#,
        ] {
            let event = scan::ordered(&shape, text.as_bytes()).expect(text);
            assert_eq!(event.verbatim(), None, "{text}");
        }
        // Not in order: read as before.
        for text in [
            r#"{"bp":1.5,"bmi":1.5,"s5":4.5}"#,
            r#"{"bmi": 1.5,"bp":1.5,"s5":4.5}"#,
            r#"{"bmi":1.5,"bp":1.5,"s5":4.5,"other":1}"#,
            r#" {"bmi":1.5,"bp":1.5,"s5":4.5}"#,
        ] {
            assert_eq!(scan::ordered(&shape, text.as_bytes()), None, "{text}");
            let event = decode_as(&shape, Some(text.as_bytes())).unwrap();
            assert_eq!((event.features.len(), event.verbatim()), (3, None));
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
                event(&[5.3], None, None, None),
            ),
            (r#"{"YearsExperience": 2}"#, event(&[2.0], None, None, None)),
            (
                r#" {"id": 7, "years_experience": 0, "ts_ms": 1700000000000, "salary": 40000.5} "#,
                event(
                    &[0.0],
                    Some(EventId::Int(7)),
                    Some(1_700_000_000_000),
                    Some(40000.5),
                ),
            ),
            (
                r#"{"id": "a\"b", "years_experience": 40, "extra": [1, {"x": null}]}"#,
                event(
                    &[40.0],
                    Some(EventId::Str(Cow::Owned("a\"b".into()))),
                    None,
                    None,
                ),
            ),
            (
                r#"{"years_experience": 1.5, "id": null, "ts_ms": null, "salary": null}"#,
                event(&[1.5], None, None, None),
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
                "wrong type for years_experience: string",
            ),
            (
                b"{\"years_experience\": true}",
                "wrong type for years_experience: boolean",
            ),
            (
                b"{\"years_experience\": null}",
                "wrong type for years_experience: null",
            ),
            (
                b"{\"years_experience\": {}}",
                "wrong type for years_experience: object",
            ),
            (
                b"{\"years_experience\": []}",
                "wrong type for years_experience: array",
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
                "wrong type for salary: string",
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
                .features[0],
            1.0
        );
    }

    #[test]
    fn writes_predictions_as_json() {
        let id = EventId::Str(Cow::Borrowed("e-1"));
        let p = Prediction {
            id: Some(&id),
            shape: EventShape::salary(),
            features: &[5.3],
            ts_ms: Some(1000),
            label: Some(80000.0),
            verbatim: None,
            predicted: 75877.0,
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
