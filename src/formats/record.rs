//! A registry-framed value decoded by its schema into a record whose fields are read by name,
//! whatever the format; and why such a value is refused.
//!
//! The flow for one value: [`super::registry::split_header`] gives the schema id; the caller
//! turns the id into a [`CompiledSchema`] (once per id: [`super::registry_client`] fetches, then
//! [`CompiledSchema::compile`]); [`CompiledSchema::decode_event`] reads the event of a model's
//! [`EventShape`] from it (or [`CompiledSchema::decode`] plus [`read_number`], field by field).
//! The features are read from the fields the model's artifact names (or their aliases), as plain
//! JSON's are; a dotted name (`profile.years_experience`) reads a nested field.

use std::borrow::Cow;
use std::fmt;

use super::avro::{AvroRecord, AvroSchema};
use super::json::{self, BadRecord, EventId, ExperienceEvent, Features};
use super::protobuf::{ProtoRecord, ProtoSchema};
use super::registry::{FramingError, RegisteredSchema, SchemaId, SchemaKind};
use super::shape::{EventShape, FeatureField};

/// One field's value as read from a decoded record, whatever the format.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// The record has no such field (for Protobuf: a field with presence that is not set).
    Missing,
    /// Avro `null` (a union's null branch), JSON `null`.
    Null,
    /// An integer: Avro int, long and the integer logical types (`timestamp-millis`, `date`,
    /// ...), Protobuf's integer types, a JSON integer.
    Int(i64),
    /// A floating-point number: Avro float and double, Protobuf float and double (and their
    /// `google.protobuf` wrappers), a JSON number with a fraction, a u64 above `i64::MAX`.
    Float(f64),
    /// A string (an Avro enum's symbol too).
    Str(Cow<'a, str>),
    /// Anything else, described for an error message: `a boolean`, `a record`, `bytes`, ...
    Other(&'static str),
}

impl FieldValue<'_> {
    /// The value as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            FieldValue::Int(i) => Some(i as f64),
            FieldValue::Float(f) => Some(f),
            _ => None,
        }
    }

    /// What the value is, for an error message (`a string`, `null`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            FieldValue::Missing => "missing",
            FieldValue::Null => "null",
            FieldValue::Int(_) | FieldValue::Float(_) => "a number",
            FieldValue::Str(_) => "a string",
            FieldValue::Other(kind) => kind,
        }
    }

    /// The value's type without its article, as a wrong type's reason gives it (`string`,
    /// `boolean`, `null`, `record`, ...).
    pub fn type_name(&self) -> &'static str {
        let kind = self.kind();
        kind.strip_prefix("an ")
            .or_else(|| kind.strip_prefix("a "))
            .unwrap_or(kind)
    }
}

/// A decoded record whose fields can be read by name.
pub trait RecordFields {
    /// The value at `path`: a field name, or names joined by dots for nested records. A
    /// Protobuf field without presence (proto3 without `optional`) reads as its default when
    /// unset, as Protobuf means it.
    fn field(&self, path: &str) -> FieldValue<'_>;

    /// Whether the record carries a value at `path`: not missing, not null, and for a Protobuf
    /// field without presence not left at its default. Optional fields (`id`, `ts_ms`, a label)
    /// are read only when carried.
    fn carries(&self, path: &str) -> bool {
        !matches!(self.field(path), FieldValue::Missing | FieldValue::Null)
    }
}

/// Why a registry-framed value was refused. Its `Display` is the short reason for the
/// dead-letter `error` header: `schema id N not found at URL`, `avro: ...`, `protobuf: ...`,
/// `schema N has no field F`, and the same field reasons as plain JSON.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// The header or Protobuf's message-index list is malformed.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// The registry does not know the id (the client's error, as a record's reason).
    #[error("schema id {id} not found at {url}")]
    SchemaNotFound {
        /// The id the value carries.
        id: SchemaId,
        /// The registry's base URL, without credentials.
        url: String,
    },
    /// The registry's schema for the id is of a type this crate does not decode.
    #[error("schema {id} is of type {schema_type}, not AVRO, PROTOBUF or JSON")]
    UnsupportedType {
        /// The id.
        id: SchemaId,
        /// The `schemaType` the registry gave.
        schema_type: String,
    },
    /// An Avro schema that does not parse, or bytes that do not match it.
    #[error("avro: {0}")]
    Avro(String),
    /// A Protobuf schema that does not parse, or bytes that do not match it.
    #[error("protobuf: {0}")]
    Protobuf(String),
    /// The schema has no field the model reads.
    #[error("schema {id} has no field {field}")]
    NoField {
        /// The schema's id.
        id: SchemaId,
        /// The field (the first name, when aliases were tried).
        field: String,
    },
    /// The schema allows the field but this record has none.
    #[error("missing field {0}")]
    MissingField(String),
    /// A feature or the label holds something other than a number, worded as plain JSON's
    /// (`wrong type for bmi: string`).
    #[error("wrong type for {field}: {found}")]
    NotANumber {
        /// The field.
        field: String,
        /// What it holds, without an article: `string`, `boolean`, `null`, `record`, ...
        found: &'static str,
    },
    /// `id` or `ts_ms` holds the wrong type (worded as plain JSON's reason).
    #[error("{field} is {found}, expected {expected}")]
    WrongType {
        /// The field.
        field: String,
        /// What it holds.
        found: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// A feature is NaN or infinite (Avro and Protobuf can carry those; JSON cannot).
    #[error("{field} is not a finite number ({value})")]
    NotFinite {
        /// The field.
        field: String,
        /// The value.
        value: f64,
    },
    /// A feature that cannot be negative (years of experience) is, worded as plain JSON's.
    #[error("{field} is negative ({value})")]
    Negative {
        /// The field.
        field: String,
        /// Its value.
        value: f64,
    },
    /// `ts_ms` below zero.
    #[error("ts_ms is negative ({0})")]
    NegativeTimestamp(i64),
    /// A JSON Schema value's JSON, refused as plain JSON would be.
    #[error(transparent)]
    Json(#[from] BadRecord),
}

impl RecordError {
    /// The reason's class, for counting: one word per kind of fault, never a value.
    pub fn class(&self) -> &'static str {
        match self {
            RecordError::Framing(FramingError::MessageIndexes(_)) => "protobuf",
            RecordError::Framing(_) => "bad_frame",
            RecordError::SchemaNotFound { .. } => "unknown_schema",
            RecordError::UnsupportedType { .. } => "unsupported_schema",
            RecordError::Avro(_) => "avro",
            RecordError::Protobuf(_) => "protobuf",
            RecordError::NoField { .. } => "schema_without_field",
            RecordError::MissingField(_) => "missing_field",
            RecordError::NotANumber { .. } | RecordError::WrongType { .. } => "wrong_type",
            RecordError::NotFinite { .. } => "non_finite",
            RecordError::Negative { .. } | RecordError::NegativeTimestamp(_) => "negative",
            RecordError::Json(bad) => bad.class(),
        }
    }
}

/// A registry's schema made ready to decode values: parsed once per id.
#[derive(Debug)]
pub enum CompiledSchema {
    /// An Avro writer schema.
    Avro(AvroSchema),
    /// A Protobuf file's descriptors.
    Protobuf(ProtoSchema),
    /// JSON Schema: the payload is JSON, decoded as plain JSON is; the schema is not needed.
    Json(SchemaId),
}

/// A value decoded by its schema.
#[derive(Debug)]
pub enum DecodedRecord<'v> {
    /// An Avro record.
    Avro(AvroRecord),
    /// A Protobuf message.
    Protobuf(ProtoRecord),
    /// The JSON text of a JSON Schema value.
    Json(JsonRecord<'v>),
}

impl RecordFields for DecodedRecord<'_> {
    fn field(&self, path: &str) -> FieldValue<'_> {
        match self {
            DecodedRecord::Avro(r) => r.field(path),
            DecodedRecord::Protobuf(r) => r.field(path),
            DecodedRecord::Json(r) => r.field(path),
        }
    }

    fn carries(&self, path: &str) -> bool {
        match self {
            DecodedRecord::Avro(r) => r.carries(path),
            DecodedRecord::Protobuf(r) => r.carries(path),
            DecodedRecord::Json(r) => r.carries(path),
        }
    }
}

impl CompiledSchema {
    /// Parses the registry's schema (with what it refers to).
    pub fn compile(schema: &RegisteredSchema) -> Result<CompiledSchema, RecordError> {
        Ok(match schema.kind {
            SchemaKind::Avro => CompiledSchema::Avro(AvroSchema::compile(schema)?),
            SchemaKind::Protobuf => CompiledSchema::Protobuf(ProtoSchema::compile(schema)?),
            SchemaKind::Json => CompiledSchema::Json(schema.id),
        })
    }

    /// The schema's id.
    pub fn id(&self) -> SchemaId {
        match self {
            CompiledSchema::Avro(s) => s.id(),
            CompiledSchema::Protobuf(s) => s.id(),
            CompiledSchema::Json(id) => *id,
        }
    }

    /// Avro, Protobuf or JSON Schema.
    pub fn kind(&self) -> SchemaKind {
        match self {
            CompiledSchema::Avro(_) => SchemaKind::Avro,
            CompiledSchema::Protobuf(_) => SchemaKind::Protobuf,
            CompiledSchema::Json(_) => SchemaKind::Json,
        }
    }

    /// Checks that the schema can carry a field under one of `names` (a feature and its
    /// aliases, each maybe a dotted path), or says `schema N has no field NAME`. For Protobuf
    /// the check is on the message the value names; a JSON Schema allows any field (additional
    /// properties are allowed by default), so there a missing field is found per record.
    pub fn require_field(&self, body: &[u8], names: &[&str]) -> Result<(), RecordError> {
        let has = |name: &&str| match self {
            CompiledSchema::Avro(s) => s.has_field(name),
            CompiledSchema::Protobuf(s) => s.has_field(body, name).unwrap_or(true),
            CompiledSchema::Json(_) => true,
        };
        if names.iter().any(has) {
            return Ok(());
        }
        Err(RecordError::NoField {
            id: self.id(),
            field: names.first().map_or_else(String::new, |n| (*n).to_owned()),
        })
    }

    /// Decodes a value's body (what follows the 5-byte header).
    pub fn decode<'v>(&self, body: &'v [u8]) -> Result<DecodedRecord<'v>, RecordError> {
        Ok(match self {
            CompiledSchema::Avro(s) => DecodedRecord::Avro(s.decode(body)?),
            CompiledSchema::Protobuf(s) => DecodedRecord::Protobuf(s.decode(body)?),
            CompiledSchema::Json(_) => DecodedRecord::Json(JsonRecord::new(body)),
        })
    }

    /// The event of `shape` from a value's body: each feature by its field (or alias) as a
    /// number, and `id`, `ts_ms` and the label when carried. A schema without a feature's field
    /// is refused before decoding. A JSON Schema value goes through [`json::decode_as`], exactly
    /// as a plain JSON value does.
    pub fn decode_event<'v>(
        &self,
        shape: &EventShape,
        body: &'v [u8],
    ) -> Result<ExperienceEvent<'v>, RecordError> {
        if let CompiledSchema::Json(_) = self {
            return Ok(json::decode_as(shape, Some(body))?);
        }
        for feature in shape.features() {
            // No list built a record: a feature has its field and at most one alias.
            match &feature.alias {
                None => self.require_field(body, &[feature.field.as_str()])?,
                Some(alias) => self.require_field(body, &[feature.field.as_str(), alias])?,
            }
        }
        if let CompiledSchema::Avro(schema) = self {
            // The demo's fields are read without a value tree when the datum allows.
            if shape == EventShape::salary() {
                if let Some(fields) = schema.demo_fields(body) {
                    return experience_event(shape, &fields);
                }
            }
        }
        experience_event(shape, &self.decode(body)?)
    }
}

/// Reads a number at `path` (a model's feature): an int, long, float or double, or a union of
/// null and one of those holding a number. Missing, null or another type is refused with the
/// same words as plain JSON; NaN and infinities are refused too.
pub fn read_number(record: &impl RecordFields, path: &str) -> Result<f64, RecordError> {
    match record.field(path) {
        FieldValue::Missing => Err(RecordError::MissingField(path.to_owned())),
        value => {
            let number = value.as_f64().ok_or_else(|| RecordError::NotANumber {
                field: path.to_owned(),
                found: value.type_name(),
            })?;
            if number.is_finite() {
                Ok(number)
            } else {
                Err(RecordError::NotFinite {
                    field: path.to_owned(),
                    value: number,
                })
            }
        }
    }
}

/// The event of `shape` from a decoded record, validated as plain JSON is: each feature read
/// from its field, else its alias, and reported under its field's name.
pub fn experience_event<'v>(
    shape: &EventShape,
    record: &impl RecordFields,
) -> Result<ExperienceEvent<'v>, RecordError> {
    let mut features = Features::with_capacity(shape.features().len());
    for feature in shape.features() {
        features.push(read_feature(feature, record)?);
    }
    let id = if record.carries("id") {
        match record.field("id") {
            FieldValue::Int(i) => Some(EventId::Int(i)),
            FieldValue::Str(s) => Some(EventId::Str(Cow::Owned(s.into_owned()))),
            other => {
                return Err(RecordError::WrongType {
                    field: "id".to_owned(),
                    found: other.kind(),
                    expected: "a string or an integer",
                })
            }
        }
    } else {
        None
    };
    let ts_ms = if record.carries("ts_ms") {
        match record.field("ts_ms") {
            FieldValue::Int(i) if i < 0 => return Err(RecordError::NegativeTimestamp(i)),
            FieldValue::Int(i) => Some(i),
            other => {
                return Err(RecordError::WrongType {
                    field: "ts_ms".to_owned(),
                    found: other.kind(),
                    expected: "an integer of milliseconds",
                })
            }
        }
    } else {
        None
    };
    let label = if record.carries(shape.label()) {
        Some(read_number(record, shape.label())?)
    } else {
        None
    };
    Ok(ExperienceEvent::new(features, id, ts_ms, label))
}

/// One feature's value: from its field, else its alias; refused under the field's name.
fn read_feature(feature: &FeatureField, record: &impl RecordFields) -> Result<f64, RecordError> {
    let field = feature.field.as_str();
    let name = std::iter::once(field)
        .chain(feature.alias.as_deref())
        .find(|name| !matches!(record.field(name), FieldValue::Missing))
        .ok_or_else(|| RecordError::MissingField(field.to_owned()))?;
    let value = read_number(record, name).map_err(|e| match e {
        // Reported under the feature's field name, whichever spelling the record used.
        RecordError::NotANumber { found, .. } => RecordError::NotANumber {
            field: field.to_owned(),
            found,
        },
        RecordError::NotFinite { value, .. } => RecordError::NotFinite {
            field: field.to_owned(),
            value,
        },
        e => e,
    })?;
    if feature.non_negative && value < 0.0 {
        return Err(RecordError::Negative {
            field: field.to_owned(),
            value,
        });
    }
    Ok(value)
}

/// The JSON text of a JSON Schema value, read by name through `serde_json` when a model asks
/// for fields (the demo's event goes through [`json::decode`] instead).
pub struct JsonRecord<'v> {
    text: &'v [u8],
    parsed: std::cell::OnceCell<Option<serde_json::Value>>,
}

impl fmt::Debug for JsonRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonRecord")
            .field("bytes", &self.text.len())
            .finish()
    }
}

impl<'v> JsonRecord<'v> {
    /// The record over a value's JSON text.
    pub fn new(text: &'v [u8]) -> Self {
        JsonRecord {
            text,
            parsed: std::cell::OnceCell::new(),
        }
    }

    /// The JSON text.
    pub fn text(&self) -> &'v [u8] {
        self.text
    }
}

impl RecordFields for JsonRecord<'_> {
    fn field(&self, path: &str) -> FieldValue<'_> {
        let Some(root) = self
            .parsed
            .get_or_init(|| serde_json::from_slice(self.text).ok())
        else {
            return FieldValue::Missing;
        };
        let mut value = root;
        for name in path.split('.') {
            match value.get(name) {
                Some(inner) => value = inner,
                None => return FieldValue::Missing,
            }
        }
        match value {
            serde_json::Value::Null => FieldValue::Null,
            serde_json::Value::Bool(_) => FieldValue::Other("a boolean"),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(FieldValue::Int)
                .or_else(|| n.as_f64().map(FieldValue::Float))
                .unwrap_or(FieldValue::Other("a number")),
            serde_json::Value::String(s) => FieldValue::Str(Cow::Borrowed(s)),
            serde_json::Value::Array(_) => FieldValue::Other("an array"),
            serde_json::Value::Object(_) => FieldValue::Other("an object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::registry::{split_header, split_message_indexes};

    /// One vector of tests/registry/vectors.json (written by scripts/registry-vectors).
    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        schema_id: u32,
        schema_type: Option<String>,
        schema: String,
        value_hex: String,
        expect: serde_json::Value,
    }

    fn vectors() -> Vec<Vector> {
        #[derive(serde::Deserialize)]
        struct File {
            vectors: Vec<Vector>,
        }
        let text = include_str!("../../tests/registry/vectors.json");
        serde_json::from_str::<File>(text)
            .expect("tests/registry/vectors.json parses")
            .vectors
    }

    fn vector(name: &str) -> Vector {
        vectors()
            .into_iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no vector {name}"))
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    impl Vector {
        fn registered(&self) -> RegisteredSchema {
            RegisteredSchema {
                id: SchemaId(self.schema_id),
                kind: SchemaKind::from_api(self.schema_type.as_deref()).expect("a known type"),
                text: self.schema.clone(),
                dependencies: Vec::new(),
            }
        }

        fn compiled(&self) -> CompiledSchema {
            CompiledSchema::compile(&self.registered())
                .unwrap_or_else(|e| panic!("{}: {e}", self.name))
        }

        fn value(&self) -> Vec<u8> {
            hex(&self.value_hex)
        }
    }

    fn body(value: &[u8]) -> &[u8] {
        split_header(value).expect("a framed value").1
    }

    #[test]
    fn schemas_and_the_client_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<CompiledSchema>();
        shared::<crate::formats::registry_client::RegistryClient>();
    }

    #[test]
    fn every_confluent_vector_carries_its_schema_id_in_the_header() {
        let vectors = vectors();
        assert_eq!(vectors.len(), 15);
        for v in &vectors {
            let value = v.value();
            let (id, _) = split_header(&value).expect("a framed value");
            assert_eq!(id, SchemaId(v.schema_id), "{}", v.name);
        }
        let indexes = |name: &str| {
            let value = vector(name).value();
            split_message_indexes(body(&value))
                .expect("message indexes")
                .0
                .path()
                .to_vec()
        };
        assert_eq!(indexes("protobuf_full"), [0]);
        assert_eq!(indexes("protobuf_nested"), [1]);
        assert_eq!(indexes("protobuf_nested_index"), [1, 0]);
    }

    #[test]
    fn every_confluent_vector_decodes_to_exactly_what_was_serialized() {
        let mut checked = 0;
        for v in vectors() {
            let value = v.value();
            let schema = v.compiled();
            let expect = &v.expect;
            if let Some(error) = expect.get("error") {
                let got = schema
                    .decode_event(EventShape::salary(), body(&value))
                    .map(|_| ())
                    .unwrap_err();
                assert_eq!(Some(got.to_string().as_str()), error.as_str(), "{}", v.name);
                checked += 1;
                continue;
            }
            if let Some(fields) = expect.get("fields").and_then(|f| f.as_object()) {
                let record = schema.decode(body(&value)).expect("decodes");
                for (path, want) in fields {
                    assert_eq!(
                        read_number(&record, path).ok(),
                        want.as_f64(),
                        "{} {path}",
                        v.name
                    );
                }
                assert_eq!(
                    record.field("id"),
                    FieldValue::Str(Cow::Borrowed(expect["id"].as_str().expect("an id"))),
                    "{}",
                    v.name
                );
                checked += 1;
                continue;
            }
            let event = schema
                .decode_event(EventShape::salary(), body(&value))
                .unwrap_or_else(|e| panic!("{}: {e}", v.name));
            assert_eq!(
                Some(event.features[0]),
                expect["years_experience"].as_f64(),
                "{}",
                v.name
            );
            let id = match &expect["id"] {
                serde_json::Value::String(s) => Some(EventId::Str(Cow::Owned(s.clone()))),
                serde_json::Value::Number(n) => n.as_i64().map(EventId::Int),
                _ => None,
            };
            assert_eq!(event.id, id, "{}", v.name);
            assert_eq!(event.ts_ms, expect["ts_ms"].as_i64(), "{}", v.name);
            assert_eq!(event.label, expect["salary"].as_f64(), "{}", v.name);
            checked += 1;
        }
        assert_eq!(checked, 15);
    }

    #[test]
    fn the_salary_demo_reads_the_same_event_from_every_format() {
        let want = ExperienceEvent::new(
            smallvec::smallvec![5.3],
            None,
            Some(1_764_748_800_000),
            Some(75877.0),
        );
        for name in ["avro_full", "protobuf_full", "json_full"] {
            let v = vector(name);
            let value = v.value();
            let event = v
                .compiled()
                .decode_event(EventShape::salary(), body(&value))
                .expect("decodes");
            assert_eq!(ExperienceEvent { id: None, ..event }, want, "{name}");
        }
    }

    #[test]
    fn the_avro_fast_path_reads_every_vector_as_the_value_tree_does() {
        let mut fast = Vec::new();
        for v in vectors()
            .into_iter()
            .filter(|v| v.name.starts_with("avro_"))
        {
            let CompiledSchema::Avro(schema) = v.compiled() else {
                panic!("{} is Avro", v.name)
            };
            let value = v.value();
            let slow = schema
                .decode(body(&value))
                .map(|r| experience_event(EventShape::salary(), &r));
            if let Some(fields) = schema.demo_fields(body(&value)) {
                assert_eq!(
                    Ok(experience_event(EventShape::salary(), &fields)),
                    slow,
                    "{}",
                    v.name
                );
                fast.push(v.name);
            }
        }
        assert_eq!(
            fast,
            [
                "avro_full",
                "avro_bare",
                "avro_union_float",
                "avro_union_null",
                "avro_int_alias",
                "avro_no_years",
            ],
            "a nested record is left to the value tree"
        );
    }

    #[test]
    fn a_schema_without_the_feature_is_refused_before_decoding() {
        for (name, id) in [("avro_no_years", 4), ("protobuf_no_years", 9)] {
            let v = vector(name);
            let value = v.value();
            let e = v
                .compiled()
                .decode_event(EventShape::salary(), body(&value))
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("schema {id} has no field years_experience")
            );
            assert_eq!(e.class(), "schema_without_field");
        }
        // A model's feature that no schema has: named, with its schema.
        let v = vector("avro_full");
        let value = v.value();
        let e = v
            .compiled()
            .require_field(body(&value), &["bmi"])
            .unwrap_err();
        assert_eq!(e.to_string(), "schema 1 has no field bmi");
        let v = vector("protobuf_nested");
        let value = v.value();
        let schema = v.compiled();
        assert_eq!(
            schema.require_field(body(&value), &["profile.years_experience"]),
            Ok(())
        );
        assert_eq!(
            schema
                .require_field(body(&value), &["profile.bmi"])
                .unwrap_err()
                .to_string(),
            "schema 7 has no field profile.bmi"
        );
    }

    #[test]
    fn bytes_that_do_not_match_their_schema_are_avro_or_protobuf_errors() {
        let v = vector("avro_full");
        let value = v.value();
        let schema = v.compiled();
        let cut = &value[..value.len() - 3];
        let e = schema
            .decode_event(EventShape::salary(), body(cut))
            .unwrap_err();
        assert_eq!(e.class(), "avro");
        assert_eq!(
            e.to_string(),
            "avro: Failed to read double: failed to fill whole buffer"
        );
        let mut longer = value.clone();
        longer.extend_from_slice(&[1, 2]);
        assert_eq!(
            schema
                .decode_event(EventShape::salary(), body(&longer))
                .unwrap_err()
                .to_string(),
            "avro: 2 bytes left over after the record"
        );

        let v = vector("protobuf_full");
        let value = v.value();
        let schema = v.compiled();
        let cut = &value[..value.len() - 3];
        let e = schema
            .decode_event(EventShape::salary(), body(cut))
            .unwrap_err();
        assert_eq!(e.class(), "protobuf");
        assert_eq!(e.to_string(), "protobuf: buffer underflow");
        let mut elsewhere = value[..5].to_vec();
        elsewhere.extend_from_slice(&[2, 10]); // message index [5]: the file has one message
        elsewhere.extend_from_slice(&value[6..]);
        assert_eq!(
            schema
                .decode_event(EventShape::salary(), body(&elsewhere))
                .unwrap_err()
                .to_string(),
            "protobuf: schema 6 has no message at index [5]"
        );
    }

    #[test]
    fn a_json_schema_value_is_refused_as_plain_json_would_be() {
        let v = vector("json_full");
        let schema = v.compiled();
        let mut value = v.value()[..5].to_vec();
        value.extend_from_slice(b"{\"years_experience\": \"five\"}");
        let e = schema
            .decode_event(EventShape::salary(), body(&value))
            .unwrap_err();
        assert_eq!(e.to_string(), "wrong type for years_experience: string");
        assert_eq!(e.class(), "wrong_type");
    }

    #[test]
    fn json_schema_records_read_named_and_nested_fields() {
        let record = JsonRecord::new(br#"{"a": {"b": 2.5, "c": "x"}, "n": null, "i": 7}"#);
        assert_eq!(read_number(&record, "a.b"), Ok(2.5));
        assert_eq!(read_number(&record, "i"), Ok(7.0));
        assert_eq!(record.field("a.c"), FieldValue::Str(Cow::Borrowed("x")));
        assert!(!record.carries("n"));
        assert_eq!(
            read_number(&record, "n").unwrap_err().to_string(),
            "wrong type for n: null"
        );
        assert_eq!(
            read_number(&record, "bmi").unwrap_err().to_string(),
            "missing field bmi"
        );
        assert_eq!(
            read_number(&record, "a").unwrap_err().to_string(),
            "wrong type for a: object"
        );
    }
}
