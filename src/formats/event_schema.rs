//! A model's events in a registry format, for `produce --format avro|protobuf`: the schema of
//! its features and label (registered under `<topic>-value`), and each event written in it,
//! framed with the id the registry gave.
//!
//! The record is flat: `id` (long), one double per feature under the feature's field name,
//! `ts_ms` (long) and the label (null or a double), so that the scorer reads them back by the
//! same names. Both encoders are written by hand (a few varints and doubles an event) and tested
//! against the decoders the scorer uses.

use super::record::RecordError;
use super::registry::{write_header, SchemaId, SchemaKind};

/// The schema of a model's events in Avro or Protobuf, and the writer of events in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSchema {
    kind: SchemaKind,
    text: String,
    features: usize,
    id: SchemaId,
}

/// Whether `name` is a field name both Avro and Protobuf take: `[A-Za-z_][A-Za-z0-9_]*`.
fn plain_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl EventSchema {
    /// The schema of events with `features` (field names, in the model's order) labeled
    /// `label`, in `kind` (Avro or Protobuf); its id is set once registered
    /// ([`EventSchema::with_id`]). A field name that is a dotted path or not a plain name is
    /// refused, naming it.
    pub fn new(kind: SchemaKind, features: &[&str], label: &str) -> Result<Self, RecordError> {
        let refuse = |reason: String| match kind {
            SchemaKind::Protobuf => RecordError::Protobuf(reason),
            _ => RecordError::Avro(reason),
        };
        for name in features.iter().chain([&label]) {
            if !plain_name(name) {
                return Err(refuse(format!(
                    "field {name} cannot be written flat ([A-Za-z_][A-Za-z0-9_]*): give the \
                     model plain field names to produce {kind} events"
                )));
            }
        }
        let text = match kind {
            SchemaKind::Avro => avro_text(features, label),
            SchemaKind::Protobuf => proto_text(features, label),
            SchemaKind::Json => {
                return Err(refuse("events are written as Avro or Protobuf".into()))
            }
        };
        Ok(EventSchema {
            kind,
            text,
            features: features.len(),
            id: SchemaId(0),
        })
    }

    /// The same schema, registered as `id`.
    pub fn with_id(self, id: SchemaId) -> Self {
        EventSchema { id, ..self }
    }

    /// Avro or Protobuf.
    pub fn kind(&self) -> SchemaKind {
        self.kind
    }

    /// The schema text to register: Avro JSON or `.proto` source.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Appends one event framed with the schema's id: `id`, the `features` (as many as the
    /// schema has; missing ones are written as 0), `ts_ms` and the label when there is one.
    pub fn append(
        &self,
        id: u64,
        features: &[f64],
        ts_ms: i64,
        label: Option<f64>,
        out: &mut Vec<u8>,
    ) {
        write_header(self.id, out);
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        let feature = |i: usize| features.get(i).copied().unwrap_or(0.0);
        match self.kind {
            SchemaKind::Protobuf => {
                // The message-index list [0], the file's first message: one zero byte.
                out.push(0);
                proto_varint(1 << 3, out);
                proto_varint(id as u64, out);
                for i in 0..self.features {
                    proto_varint(((i as u64 + 2) << 3) | 1, out);
                    out.extend_from_slice(&feature(i).to_le_bytes());
                }
                let next = self.features as u64 + 2;
                proto_varint(next << 3, out);
                proto_varint(ts_ms as u64, out);
                if let Some(label) = label {
                    proto_varint(((next + 1) << 3) | 1, out);
                    out.extend_from_slice(&label.to_le_bytes());
                }
            }
            _ => {
                avro_long(id, out);
                for i in 0..self.features {
                    out.extend_from_slice(&feature(i).to_le_bytes());
                }
                avro_long(ts_ms, out);
                match label {
                    Some(label) => {
                        avro_long(1, out);
                        out.extend_from_slice(&label.to_le_bytes());
                    }
                    None => avro_long(0, out),
                }
            }
        }
    }
}

/// Avro's long: zig-zag, then a varint.
fn avro_long(value: i64, out: &mut Vec<u8>) {
    proto_varint(((value << 1) ^ (value >> 63)) as u64, out);
}

/// Protobuf's varint (and Avro's, after zig-zag).
fn proto_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn avro_text(features: &[&str], label: &str) -> String {
    let mut fields = vec![serde_json::json!({"name": "id", "type": "long"})];
    fields.extend(
        features
            .iter()
            .map(|f| serde_json::json!({"name": f, "type": "double"})),
    );
    fields.push(serde_json::json!({"name": "ts_ms", "type": "long"}));
    fields.push(serde_json::json!({"name": label, "type": ["null", "double"], "default": null}));
    serde_json::json!({
        "type": "record",
        "name": "Event",
        "namespace": "salary_stream",
        "fields": fields,
    })
    .to_string()
}

fn proto_text(features: &[&str], label: &str) -> String {
    let mut text = String::from(
        "syntax = \"proto3\";\npackage salary_stream;\n\nmessage Event {\n  optional int64 id = 1;\n",
    );
    for (i, f) in features.iter().enumerate() {
        text.push_str(&format!("  double {f} = {};\n", i + 2));
    }
    let next = features.len() + 2;
    text.push_str(&format!("  optional int64 ts_ms = {next};\n"));
    text.push_str(&format!("  optional double {label} = {};\n}}\n", next + 1));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::json::EventId;
    use crate::formats::record::CompiledSchema;
    use crate::formats::registry::{split_header, RegisteredSchema};
    use crate::formats::shape::{EventShape, FeatureField};

    fn diabetes_like() -> EventShape {
        let feature = |name: &str| FeatureField {
            field: name.into(),
            alias: None,
            non_negative: false,
        };
        EventShape::new(
            vec![feature("age"), feature("bmi"), feature("s_1")],
            "progression",
        )
        .expect("a shape")
    }

    /// Writes two events in `kind` and reads them back with the scorer's decoder for `shape`.
    fn round_trip(kind: SchemaKind, shape: &EventShape) {
        let names: Vec<&str> = shape.features().iter().map(|f| f.field.as_str()).collect();
        let schema = EventSchema::new(kind, &names, shape.label())
            .expect("a schema")
            .with_id(SchemaId(300));
        let compiled = CompiledSchema::compile(&RegisteredSchema {
            id: SchemaId(300),
            kind,
            text: schema.text().to_owned(),
            dependencies: vec![],
        })
        .expect("the scorer compiles it");
        let row: Vec<f64> = (0..names.len()).map(|i| 0.05 - i as f64 * 1.25).collect();
        for (id, label) in [(0u64, None), (1 << 40, Some(-151.25))] {
            let mut out = vec![7];
            schema.append(id, &row, 1_764_748_800_123, label, &mut out);
            assert_eq!(out[0], 7, "what was in the buffer stays");
            let (schema_id, body) = split_header(&out[1..]).expect("a header");
            assert_eq!(schema_id, SchemaId(300));
            let event = compiled
                .decode_event(shape, body)
                .unwrap_or_else(|e| panic!("{kind} decodes: {e}"));
            assert_eq!(event.id, Some(EventId::Int(id as i64)), "{kind}");
            assert_eq!(event.features.as_slice(), row.as_slice(), "{kind}");
            assert_eq!(event.ts_ms, Some(1_764_748_800_123), "{kind}");
            assert_eq!(event.label, label, "{kind}");
        }
    }

    #[test]
    fn avro_and_protobuf_events_read_back_exactly_by_the_scorers_decoders() {
        for kind in [SchemaKind::Avro, SchemaKind::Protobuf] {
            round_trip(kind, EventShape::salary());
            round_trip(kind, &diabetes_like());
        }
    }

    #[test]
    fn dotted_or_odd_field_names_and_json_are_refused_by_name() {
        assert_eq!(
            EventSchema::new(SchemaKind::Avro, &["profile.age"], "y")
                .unwrap_err()
                .to_string(),
            "avro: field profile.age cannot be written flat ([A-Za-z_][A-Za-z0-9_]*): give the \
             model plain field names to produce avro events"
        );
        assert!(EventSchema::new(SchemaKind::Protobuf, &["a"], "1y")
            .unwrap_err()
            .to_string()
            .starts_with("protobuf: field 1y cannot"));
        assert!(EventSchema::new(SchemaKind::Json, &["a"], "y").is_err());
    }
}
