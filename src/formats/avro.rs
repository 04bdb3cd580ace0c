//! Avro through a registry: a value's datum decoded with the writer schema the registry holds
//! for its id, and predictions encoded for `--output-format avro`.
//!
//! Decoding is generic (apache-avro's `Value`): the fields a model reads are looked up by name,
//! so any writer schema works as long as it has them. A union of `null` and a number reads as
//! the number (or as null).

use std::borrow::Cow;
use std::collections::HashSet;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;

use super::json::{EventId, Prediction};
use super::record::{FieldValue, RecordError, RecordFields};
use super::registry::{write_header, RegisteredSchema, SchemaId};

/// Deepest nesting of records whose fields [`AvroSchema::has_field`] knows by dotted path (a
/// recursive type would otherwise never end).
const MAX_PATH_DEPTH: usize = 8;

/// An Avro writer schema from the registry, parsed, with the dotted paths of its fields.
pub struct AvroSchema {
    id: SchemaId,
    decoder: Decoder,
    field_paths: HashSet<String>,
}

impl std::fmt::Debug for AvroSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSchema")
            .field("id", &self.id)
            .field("schema", self.schema())
            .finish_non_exhaustive()
    }
}

/// The schema and what it refers to, with a reader made once over them (building a reader
/// resolves every named type: as long as decoding a small record).
#[ouroboros::self_referencing]
struct Decoder {
    schemas: (Schema, Vec<Schema>),
    #[borrows(schemas)]
    #[covariant]
    reader: GenericDatumReader<'this>,
}

fn avro_error(e: apache_avro::Error) -> RecordError {
    RecordError::Avro(e.to_string())
}

impl AvroSchema {
    /// Parses the schema text, with the named types it refers to.
    pub fn compile(registered: &RegisteredSchema) -> Result<AvroSchema, RecordError> {
        let (schema, dependencies) = if registered.dependencies.is_empty() {
            (
                Schema::parse_str(&registered.text).map_err(|e| schema_error(registered.id, e))?,
                Vec::new(),
            )
        } else {
            Schema::parse_str_with_list(
                &registered.text,
                registered.dependencies.iter().map(|d| d.text.as_str()),
            )
            .map_err(|e| schema_error(registered.id, e))?
        };
        let mut field_paths = HashSet::new();
        let decoder = Decoder::try_new((schema, dependencies), |(schema, dependencies)| {
            let resolved = resolved(schema, dependencies)?;
            collect_paths(schema, resolved.get_names(), "", 0, &mut field_paths);
            GenericDatumReader::builder(schema)
                .resolved_writer_schemata(resolved)
                .build()
        })
        .map_err(|e| schema_error(registered.id, e))?;
        Ok(AvroSchema {
            id: registered.id,
            decoder,
            field_paths,
        })
    }

    /// The schema's id.
    pub fn id(&self) -> SchemaId {
        self.id
    }

    /// The parsed schema.
    pub fn schema(&self) -> &Schema {
        &self.decoder.borrow_schemas().0
    }

    /// Whether the schema has a field at `path` (dotted for nested records, through unions).
    pub fn has_field(&self, path: &str) -> bool {
        self.field_paths.contains(path)
    }

    /// Decodes one datum: the whole payload must be exactly one value of the schema.
    pub fn decode(&self, payload: &[u8]) -> Result<AvroRecord, RecordError> {
        let mut rest = payload;
        let value = self
            .decoder
            .borrow_reader()
            .read_value(&mut rest)
            .map_err(avro_error)?;
        if !rest.is_empty() {
            return Err(RecordError::Avro(format!(
                "{} bytes left over after the record",
                rest.len()
            )));
        }
        Ok(AvroRecord(value))
    }
}

fn schema_error(id: SchemaId, e: apache_avro::Error) -> RecordError {
    RecordError::Avro(format!("schema {id}: {e}"))
}

fn resolved<'s>(
    schema: &'s Schema,
    dependencies: &'s [Schema],
) -> Result<ResolvedSchema<'s>, apache_avro::Error> {
    let mut all: Vec<&Schema> = dependencies.iter().collect();
    all.push(schema);
    ResolvedSchema::new_with_schemata(all)
}

impl AvroSchema {
    /// The salary demo's fields read straight from the datum, without building a `Value` tree
    /// (about half the cost of [`AvroSchema::decode`]); `None` when the datum holds anything
    /// but null, numbers and strings in those fields, or does not decode: then
    /// [`AvroSchema::decode`] reads it, and words any error. What this reads, it reads as that
    /// does (tested against it), so the event and its errors are the same either way.
    pub fn demo_fields(&self, payload: &[u8]) -> Option<DemoFields> {
        let mut rest = payload;
        let fields: DemoFields = self.decoder.borrow_reader().read_deser(&mut rest).ok()?;
        rest.is_empty().then_some(fields)
    }
}

/// The fields the salary demo reads: `years_experience`, `YearsExperience`, `id`, `ts_ms`,
/// `salary`, in that order.
const DEMO_FIELDS: [&str; 5] = [
    "years_experience",
    "YearsExperience",
    "id",
    "ts_ms",
    "salary",
];

/// A top-level field's value as [`AvroSchema::demo_fields`] reads it.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Missing,
    Null,
    Int(i64),
    Float(f64),
    Str(String),
}

/// The salary demo's fields of one datum, read by [`AvroSchema::demo_fields`].
#[derive(Debug, Clone, PartialEq)]
pub struct DemoFields([Scalar; 5]);

impl RecordFields for DemoFields {
    fn field(&self, path: &str) -> FieldValue<'_> {
        match DEMO_FIELDS.iter().position(|&name| name == path) {
            None => FieldValue::Missing,
            Some(i) => match &self.0[i] {
                Scalar::Missing => FieldValue::Missing,
                Scalar::Null => FieldValue::Null,
                Scalar::Int(i) => FieldValue::Int(*i),
                Scalar::Float(f) => FieldValue::Float(*f),
                Scalar::Str(s) => FieldValue::Str(Cow::Borrowed(s)),
            },
        }
    }
}

impl<'de> serde::Deserialize<'de> for DemoFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Record;
        impl<'de> serde::de::Visitor<'de> for Record {
            type Value = DemoFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a record")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<DemoFields, A::Error> {
                let mut values: [Scalar; 5] = std::array::from_fn(|_| Scalar::Missing);
                while let Some(key) = map.next_key::<DemoKey>()? {
                    match key.0 {
                        Some(i) => values[i] = map.next_value::<ScalarValue>()?.0,
                        None => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(DemoFields(values))
            }
        }
        d.deserialize_any(Record)
    }
}

/// A field name: its position in [`DEMO_FIELDS`], if it is one.
struct DemoKey(Option<usize>);

impl<'de> serde::Deserialize<'de> for DemoKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key;
        impl serde::de::Visitor<'_> for Key {
            type Value = DemoKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<DemoKey, E> {
                Ok(DemoKey(DEMO_FIELDS.iter().position(|&n| n == name)))
            }
        }
        d.deserialize_identifier(Key)
    }
}

/// A value that is null, a number or a string; anything else fails the fast path.
struct ScalarValue(Scalar);

impl<'de> serde::Deserialize<'de> for ScalarValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Value;
        impl<'de> serde::de::Visitor<'de> for Value {
            type Value = ScalarValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null, a number or a string")
            }
            fn visit_unit<E>(self) -> Result<ScalarValue, E> {
                Ok(ScalarValue(Scalar::Null))
            }
            fn visit_none<E>(self) -> Result<ScalarValue, E> {
                Ok(ScalarValue(Scalar::Null))
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<ScalarValue, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_i64<E>(self, v: i64) -> Result<ScalarValue, E> {
                Ok(ScalarValue(Scalar::Int(v)))
            }
            fn visit_f32<E>(self, v: f32) -> Result<ScalarValue, E> {
                Ok(ScalarValue(Scalar::Float(f64::from(v))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ScalarValue, E> {
                Ok(ScalarValue(Scalar::Float(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<ScalarValue, E> {
                Ok(ScalarValue(Scalar::Str(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<ScalarValue, E> {
                Ok(ScalarValue(Scalar::Str(v)))
            }
        }
        d.deserialize_any(Value)
    }
}

/// Every dotted field path under `schema`, through unions and named references.
fn collect_paths(
    schema: &Schema,
    names: &std::collections::HashMap<Name, &Schema>,
    prefix: &str,
    depth: usize,
    out: &mut HashSet<String>,
) {
    if depth > MAX_PATH_DEPTH {
        return;
    }
    match schema {
        Schema::Record(record) => {
            for field in &record.fields {
                let path = if prefix.is_empty() {
                    field.name.clone()
                } else {
                    format!("{prefix}.{}", field.name)
                };
                collect_paths(&field.schema, names, &path, depth + 1, out);
                out.insert(path);
            }
        }
        Schema::Union(union) => {
            for variant in union.variants() {
                collect_paths(variant, names, prefix, depth, out);
            }
        }
        Schema::Ref { name } => {
            if let Some(target) = names.get(name) {
                collect_paths(target, names, prefix, depth + 1, out);
            }
        }
        _ => {}
    }
}

/// One decoded Avro datum.
#[derive(Debug, Clone, PartialEq)]
pub struct AvroRecord(pub Value);

impl RecordFields for AvroRecord {
    fn field(&self, path: &str) -> FieldValue<'_> {
        let mut value = &self.0;
        for name in path.split('.') {
            value = unwrap_union(value);
            let next = match value {
                Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
                Value::Map(entries) => entries.get(name),
                _ => None,
            };
            match next {
                Some(inner) => value = inner,
                None => return FieldValue::Missing,
            }
        }
        field_value(unwrap_union(value))
    }
}

fn unwrap_union(mut value: &Value) -> &Value {
    while let Value::Union(_, inner) = value {
        value = inner;
    }
    value
}

fn field_value(value: &Value) -> FieldValue<'_> {
    match value {
        Value::Null => FieldValue::Null,
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => FieldValue::Int(i64::from(*i)),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => FieldValue::Int(*i),
        Value::Float(f) => FieldValue::Float(f64::from(*f)),
        Value::Double(f) => FieldValue::Float(*f),
        Value::String(s) | Value::Enum(_, s) => FieldValue::Str(Cow::Borrowed(s)),
        Value::Boolean(_) => FieldValue::Other("a boolean"),
        Value::Bytes(_) | Value::Fixed(..) => FieldValue::Other("bytes"),
        Value::Array(_) => FieldValue::Other("an array"),
        Value::Map(_) => FieldValue::Other("a map"),
        Value::Record(_) => FieldValue::Other("a record"),
        Value::Decimal(_) | Value::BigDecimal(_) => FieldValue::Other("a decimal"),
        Value::Duration(_) => FieldValue::Other("a duration"),
        Value::Uuid(uuid) => FieldValue::Str(Cow::Owned(uuid.to_string())),
        Value::Union(..) => FieldValue::Other("a union"),
    }
}

/// The challenger's side of an Avro prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct AvroChallenger<'a> {
    /// The challenger model's version id.
    pub model: &'a str,
    /// Its prediction.
    pub predicted: f64,
    /// Label minus its prediction, when the event is labeled.
    pub residual: Option<f64>,
}

/// One prediction for `--output-format avro`: what the JSON output carries.
#[derive(Debug, Clone, PartialEq)]
pub struct AvroPrediction<'a> {
    /// The input's id.
    pub id: Option<&'a EventId<'a>>,
    /// The features, in the order the schema was made with.
    pub features: &'a [f64],
    /// The input's producer time.
    pub ts_ms: Option<i64>,
    /// The input's label.
    pub label: Option<f64>,
    /// The serving model's prediction.
    pub predicted: f64,
    /// Label minus prediction, when labeled.
    pub residual: Option<f64>,
    /// Whether a feature lies outside its training range.
    pub extrapolated: bool,
    /// The serving model's version id.
    pub model: &'a str,
    /// The input's partition.
    pub partition: i32,
    /// The input's offset.
    pub offset: i64,
    /// Milliseconds from the event's time to its scoring.
    pub latency_ms: f64,
    /// The challenger's prediction, while one is loaded.
    pub challenger: Option<AvroChallenger<'a>>,
}

/// The Avro schema of predictions for one model (its label and features), and the encoder.
///
/// Record `salary_stream.Prediction`: `id` (null, string or long), one double per feature,
/// `ts_ms` (null or long), the label (null or double), `predicted_<label>` (double), `residual`
/// (null or double), `extrapolated`, `model`, `partition`, `offset`, `latency_ms`, and
/// `challenger` (null or a record of `model`, `predicted_<label>`, `residual`). Field names
/// are the model's JSON field names with any character Avro does not allow in a name (a dot of
/// a nested path) made `_`.
#[derive(Debug)]
pub struct PredictionSchema {
    schema: Schema,
    text: String,
    features: usize,
    predicted: String,
}

/// An Avro name made from a field name: `[A-Za-z_][A-Za-z0-9_]*`.
fn avro_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

impl PredictionSchema {
    /// The schema for a model whose label field is `label` (the demo: `salary`) and whose
    /// features are read from `features` (the demo: `years_experience`).
    pub fn new(label: &str, features: &[&str]) -> Result<PredictionSchema, RecordError> {
        let label = avro_name(label);
        let predicted = format!("predicted_{label}");
        let nullable_double = serde_json::json!(["null", "double"]);
        let mut fields = vec![serde_json::json!(
            {"name": "id", "type": ["null", "string", "long"], "default": null}
        )];
        for feature in features {
            fields.push(serde_json::json!({"name": avro_name(feature), "type": "double"}));
        }
        fields.extend([
            serde_json::json!({"name": "ts_ms", "type": ["null", "long"], "default": null}),
            serde_json::json!({"name": label, "type": nullable_double, "default": null}),
            serde_json::json!({"name": predicted, "type": "double"}),
            serde_json::json!({"name": "residual", "type": nullable_double, "default": null}),
            serde_json::json!({"name": "extrapolated", "type": "boolean"}),
            serde_json::json!({"name": "model", "type": "string"}),
            serde_json::json!({"name": "partition", "type": "int"}),
            serde_json::json!({"name": "offset", "type": "long"}),
            serde_json::json!({"name": "latency_ms", "type": "double"}),
            serde_json::json!({"name": "challenger", "default": null, "type": ["null", {
                "type": "record",
                "name": "ChallengerPrediction",
                "fields": [
                    {"name": "model", "type": "string"},
                    {"name": predicted, "type": "double"},
                    {"name": "residual", "type": nullable_double, "default": null},
                ],
            }]}),
        ]);
        let mut seen = HashSet::new();
        for field in &fields {
            let name = field["name"].as_str().unwrap_or_default();
            if !seen.insert(name.to_owned()) {
                return Err(RecordError::Avro(format!(
                    "the prediction schema would have the field {name} twice"
                )));
            }
        }
        let text = serde_json::json!({
            "type": "record",
            "name": "Prediction",
            "namespace": "salary_stream",
            "fields": fields,
        })
        .to_string();
        let schema = Schema::parse_str(&text).map_err(avro_error)?;
        Ok(PredictionSchema {
            schema,
            text,
            features: features.len(),
            predicted,
        })
    }

    /// The schema's JSON text, to register under `<output-topic>-value`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Appends one prediction framed with the registered schema's `id`.
    pub fn encode(
        &self,
        id: SchemaId,
        prediction: &AvroPrediction<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        if prediction.features.len() != self.features {
            return Err(RecordError::Avro(format!(
                "{} features for a prediction schema of {}",
                prediction.features.len(),
                self.features
            )));
        }
        let value = self.value(prediction);
        let writer = GenericDatumWriter::builder(&self.schema)
            .build()
            .map_err(avro_error)?;
        let start = out.len();
        write_header(id, out);
        if let Err(e) = writer.write_value_ref(out, &value) {
            out.truncate(start);
            return Err(avro_error(e));
        }
        Ok(())
    }

    fn value(&self, p: &AvroPrediction<'_>) -> Value {
        let Schema::Record(record) = &self.schema else {
            unreachable!("PredictionSchema::new parses a record")
        };
        let optional_double = |v: Option<f64>| match v {
            Some(v) => Value::Union(1, Box::new(Value::Double(v))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        let id = match p.id {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(EventId::Str(s)) => Value::Union(1, Box::new(Value::String(s.to_string()))),
            Some(EventId::Int(i)) => Value::Union(2, Box::new(Value::Long(*i))),
            Some(EventId::UInt(u)) => Value::Union(1, Box::new(Value::String(u.to_string()))),
        };
        let mut values = vec![id];
        values.extend(p.features.iter().map(|&f| Value::Double(f)));
        values.extend([
            match p.ts_ms {
                Some(ts) => Value::Union(1, Box::new(Value::Long(ts))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
            optional_double(p.label),
            Value::Double(p.predicted),
            optional_double(p.residual),
            Value::Boolean(p.extrapolated),
            Value::String(p.model.to_owned()),
            Value::Int(p.partition),
            Value::Long(p.offset),
            Value::Double(p.latency_ms),
            match &p.challenger {
                None => Value::Union(0, Box::new(Value::Null)),
                Some(c) => Value::Union(
                    1,
                    Box::new(Value::Record(vec![
                        ("model".to_owned(), Value::String(c.model.to_owned())),
                        (self.predicted.clone(), Value::Double(c.predicted)),
                        ("residual".to_owned(), optional_double(c.residual)),
                    ])),
                ),
            },
        ]);
        Value::Record(
            record
                .fields
                .iter()
                .map(|f| f.name.clone())
                .zip(values)
                .collect(),
        )
    }
}

impl<'a> AvroPrediction<'a> {
    /// The Avro side of a prediction the scorer made: the same fields as its JSON.
    pub fn of(p: &'a Prediction<'a>) -> Self {
        AvroPrediction {
            id: p.id,
            features: p.features,
            ts_ms: p.ts_ms,
            label: p.label,
            predicted: p.predicted,
            residual: p.residual,
            extrapolated: p.extrapolated,
            model: p.model,
            partition: p.partition,
            offset: p.offset,
            latency_ms: p.latency_ms,
            challenger: p.challenger.map(|c| AvroChallenger {
                model: c.model,
                predicted: c.predicted,
                residual: c.residual,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::record::{experience_event, read_number, RecordError};
    use crate::formats::registry::{split_header, Dependency, SchemaKind};
    use crate::formats::shape::EventShape;

    fn registered(id: u32, text: &str, dependencies: Vec<Dependency>) -> RegisteredSchema {
        RegisteredSchema {
            id: SchemaId(id),
            kind: SchemaKind::Avro,
            text: text.to_owned(),
            dependencies,
        }
    }

    fn datum(schema: &Schema, fields: Vec<(&str, Value)>) -> Vec<u8> {
        let value = Value::Record(fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect());
        GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .expect("a value of the schema")
    }

    const YEARS_ONLY: &str = r#"{"type": "record", "name": "E", "fields": [{"name": "years_experience", "type": "double"}]}"#;

    #[test]
    fn nan_and_negative_years_are_refused_with_their_value() {
        let schema = AvroSchema::compile(&registered(3, YEARS_ONLY, vec![])).expect("compiles");
        let event = |years: f64| {
            let bytes = datum(
                schema.schema(),
                vec![("years_experience", Value::Double(years))],
            );
            experience_event(
                EventShape::salary(),
                &schema.decode(&bytes).expect("decodes"),
            )
            .map(|e| e.features[0])
        };
        assert_eq!(event(5.25), Ok(5.25));
        assert_eq!(
            event(f64::NAN).unwrap_err().to_string(),
            "years_experience is not a finite number (NaN)"
        );
        assert_eq!(
            event(f64::INFINITY).unwrap_err().to_string(),
            "years_experience is not a finite number (inf)"
        );
        assert_eq!(
            event(-1.0),
            Err(RecordError::Negative {
                field: "years_experience".into(),
                value: -1.0
            })
        );
    }

    #[test]
    fn the_fast_path_agrees_with_the_value_tree_or_leaves_the_record_to_it() {
        let text = r#"{"type": "record", "name": "E", "fields": [
            {"name": "flag", "type": "boolean"},
            {"name": "YearsExperience", "type": ["null", "string", "double", "int"]},
            {"name": "id", "type": ["null", {"type": "string", "logicalType": "uuid"}, {"type": "enum", "name": "K", "symbols": ["A", "B"]}]},
            {"name": "ts_ms", "type": ["null", "long", "double"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "salary", "type": ["null", "float"]}]}"#;
        let schema = AvroSchema::compile(&registered(6, text, vec![])).expect("compiles");
        let uuid = apache_avro::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let union = |i: u32, v: Value| Value::Union(i, Box::new(v));
        let cases = [
            (
                union(2, Value::Double(3.5)),
                union(0, Value::Null),
                union(1, Value::Long(9)),
                union(1, Value::Float(1.25)),
                true,
            ),
            (
                union(3, Value::Int(4)),
                union(1, Value::Uuid(uuid)),
                union(0, Value::Null),
                union(0, Value::Null),
                true,
            ),
            (
                union(1, Value::String("4".into())),
                union(0, Value::Null),
                union(0, Value::Null),
                union(0, Value::Null),
                true,
            ),
            (
                union(2, Value::Double(f64::NAN)),
                union(0, Value::Null),
                union(0, Value::Null),
                union(0, Value::Null),
                true,
            ),
            (
                union(2, Value::Double(-2.0)),
                union(0, Value::Null),
                union(2, Value::Double(1.0)),
                union(0, Value::Null),
                true,
            ),
            (
                union(0, Value::Null),
                union(0, Value::Null),
                union(1, Value::Long(-5)),
                union(0, Value::Null),
                true,
            ),
            (
                union(2, Value::Double(1.0)),
                union(2, Value::Enum(1, "B".into())),
                union(0, Value::Null),
                union(0, Value::Null),
                false,
            ),
        ];
        for (n, (years, id, ts_ms, salary, fast)) in cases.into_iter().enumerate() {
            let bytes = datum(
                schema.schema(),
                vec![
                    ("flag", Value::Boolean(true)),
                    ("YearsExperience", years),
                    ("id", id),
                    ("ts_ms", ts_ms),
                    ("tags", Value::Array(vec![Value::String("x".into())])),
                    ("salary", salary),
                ],
            );
            let slow = experience_event(
                EventShape::salary(),
                &schema.decode(&bytes).expect("decodes"),
            );
            let quick = schema
                .demo_fields(&bytes)
                .map(|f| experience_event(EventShape::salary(), &f));
            assert_eq!(quick.is_some(), fast, "case {n}");
            if let Some(quick) = quick {
                // NaN is not equal to itself: compare the wording.
                assert_eq!(format!("{quick:?}"), format!("{slow:?}"), "case {n}");
            }
        }
        let ok = |years: f64| {
            let bytes = datum(
                schema.schema(),
                vec![
                    ("flag", Value::Boolean(false)),
                    ("YearsExperience", union(2, Value::Double(years))),
                    ("id", union(1, Value::Uuid(uuid))),
                    ("ts_ms", union(1, Value::Long(7))),
                    ("tags", Value::Array(vec![])),
                    ("salary", union(1, Value::Float(2.5))),
                ],
            );
            schema
                .demo_fields(&bytes)
                .map(|f| experience_event(EventShape::salary(), &f))
        };
        let event = ok(6.5).expect("the fast path").expect("an event");
        assert_eq!(
            event.id,
            Some(EventId::Str("01234567-89ab-cdef-0123-456789abcdef".into()))
        );
        assert_eq!(
            (event.features[0], event.ts_ms, event.label),
            (6.5, Some(7), Some(2.5))
        );
    }

    #[test]
    fn a_string_feature_is_a_wrong_type_as_in_json() {
        let text = r#"{"type": "record", "name": "E", "fields": [{"name": "years_experience", "type": "string"}, {"name": "ts_ms", "type": "double"}]}"#;
        let schema = AvroSchema::compile(&registered(4, text, vec![])).expect("compiles");
        let bytes = datum(
            schema.schema(),
            vec![
                ("years_experience", Value::String("five".into())),
                ("ts_ms", Value::Double(1.5)),
            ],
        );
        let record = schema.decode(&bytes).expect("decodes");
        assert_eq!(
            experience_event(EventShape::salary(), &record)
                .unwrap_err()
                .to_string(),
            "wrong type for years_experience: string"
        );
        assert_eq!(
            read_number(&record, "ts_ms"),
            Ok(1.5),
            "a double is a number for a feature"
        );
    }

    #[test]
    fn named_types_from_referenced_schemas_resolve_for_fields_and_decoding() {
        let profile = r#"{"type": "record", "name": "Profile", "namespace": "demo", "fields": [{"name": "years_experience", "type": "double"}]}"#;
        let main = r#"{"type": "record", "name": "Applicant", "namespace": "demo", "fields": [{"name": "id", "type": "long"}, {"name": "profile", "type": "demo.Profile"}]}"#;
        let schema = AvroSchema::compile(&registered(
            12,
            main,
            vec![Dependency {
                name: "demo.Profile".into(),
                text: profile.into(),
            }],
        ))
        .expect("compiles with its reference");
        assert!(schema.has_field("profile.years_experience"));
        assert!(!schema.has_field("years_experience"));
        // id 7 (zig-zag 14), then the profile's double 2.5.
        let mut bytes = vec![14];
        bytes.extend_from_slice(&2.5f64.to_le_bytes());
        let record = schema.decode(&bytes).expect("decodes");
        assert_eq!(read_number(&record, "profile.years_experience"), Ok(2.5));
        assert_eq!(record.field("id"), FieldValue::Int(7));
    }

    #[test]
    fn a_schema_that_does_not_parse_is_an_avro_error_naming_its_id() {
        let e = AvroSchema::compile(&registered(5, r#"{"type": "record"}"#, vec![])).unwrap_err();
        assert!(e.to_string().starts_with("avro: schema 5: "), "{e}");
    }

    fn salary_prediction<'a>(id: &'a EventId<'a>, features: &'a [f64]) -> AvroPrediction<'a> {
        AvroPrediction {
            id: Some(id),
            features,
            ts_ms: Some(1_764_748_800_000),
            label: Some(76_000.0),
            predicted: 75_877.0,
            residual: Some(123.0),
            extrapolated: false,
            model: "lr-3f9c2a",
            partition: 2,
            offset: 41,
            latency_ms: 3.5,
            challenger: Some(AvroChallenger {
                model: "lr-77aa01",
                predicted: 75_900.25,
                residual: Some(99.75),
            }),
        }
    }

    #[test]
    fn a_prediction_is_framed_and_decodes_back_field_by_field() {
        let schema = PredictionSchema::new("salary", &["years_experience"]).expect("a schema");
        let id = EventId::Str("a1".into());
        let mut out = vec![9]; // what was in the buffer before stays
        schema
            .encode(SchemaId(21), &salary_prediction(&id, &[5.3]), &mut out)
            .expect("encodes");
        assert_eq!(out[0], 9);
        let (schema_id, datum) = split_header(&out[1..]).expect("a header");
        assert_eq!(schema_id, SchemaId(21));
        let reader = AvroSchema::compile(&registered(21, schema.text(), vec![])).expect("its text");
        let record = reader.decode(datum).expect("decodes");
        let number = |path| read_number(&record, path);
        assert_eq!(record.field("id"), FieldValue::Str("a1".into()));
        assert_eq!(number("years_experience"), Ok(5.3));
        assert_eq!(record.field("ts_ms"), FieldValue::Int(1_764_748_800_000));
        assert_eq!(number("salary"), Ok(76_000.0));
        assert_eq!(number("predicted_salary"), Ok(75_877.0));
        assert_eq!(number("residual"), Ok(123.0));
        assert_eq!(record.field("extrapolated"), FieldValue::Other("a boolean"));
        assert_eq!(
            number("extrapolated").unwrap_err().to_string(),
            "wrong type for extrapolated: boolean"
        );
        assert_eq!(
            number("challenger").unwrap_err().to_string(),
            "wrong type for challenger: record"
        );
        assert_eq!(record.field("model"), FieldValue::Str("lr-3f9c2a".into()));
        assert_eq!(record.field("partition"), FieldValue::Int(2));
        assert_eq!(record.field("offset"), FieldValue::Int(41));
        assert_eq!(number("latency_ms"), Ok(3.5));
        assert_eq!(
            record.field("challenger.model"),
            FieldValue::Str("lr-77aa01".into())
        );
        assert_eq!(number("challenger.predicted_salary"), Ok(75_900.25));
        assert_eq!(number("challenger.residual"), Ok(99.75));
    }

    #[test]
    fn an_unlabeled_prediction_writes_nulls_and_integer_ids_as_longs() {
        let schema =
            PredictionSchema::new("progression", &["bmi", "profile.age"]).expect("a schema");
        let id = EventId::Int(-4);
        let prediction = AvroPrediction {
            label: None,
            residual: None,
            challenger: None,
            ts_ms: None,
            ..salary_prediction(&id, &[26.5, 41.0])
        };
        let mut out = Vec::new();
        schema
            .encode(SchemaId(3), &prediction, &mut out)
            .expect("encodes");
        let reader = AvroSchema::compile(&registered(3, schema.text(), vec![])).expect("its text");
        let record = reader.decode(&out[5..]).expect("decodes");
        assert_eq!(record.field("id"), FieldValue::Int(-4));
        assert_eq!(read_number(&record, "bmi"), Ok(26.5));
        assert_eq!(read_number(&record, "profile_age"), Ok(41.0));
        assert_eq!(read_number(&record, "predicted_progression"), Ok(75_877.0));
        for field in ["ts_ms", "progression", "residual", "challenger"] {
            assert_eq!(record.field(field), FieldValue::Null, "{field}");
        }
    }

    #[test]
    fn a_prediction_schema_refuses_clashing_names_and_the_wrong_feature_count() {
        assert_eq!(
            PredictionSchema::new("salary", &["model"])
                .unwrap_err()
                .to_string(),
            "avro: the prediction schema would have the field model twice"
        );
        let schema = PredictionSchema::new("salary", &["years_experience"]).expect("a schema");
        let id = EventId::Int(1);
        let mut out = vec![1, 2];
        let e = schema
            .encode(SchemaId(1), &salary_prediction(&id, &[1.0, 2.0]), &mut out)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "avro: 2 features for a prediction schema of 1"
        );
        assert_eq!(out, [1, 2]);
    }
}
