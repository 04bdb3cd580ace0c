//! Protobuf through a registry: the schema arrives at run time, so its descriptors are built
//! then (protox parses `.proto` text in pure Rust) and messages are decoded dynamically
//! (prost-reflect).
//!
//! The registry may hold a Protobuf schema as `.proto` source (what Java serializers and most
//! tools register) or as a base64 `FileDescriptorProto` (what confluent-kafka's Python
//! serializer registers, and what Apicurio hands back as it was given): both are read. Imports
//! come from the schema's references, and `google/protobuf/*.proto` are built in.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, MessageDescriptor, ReflectMessage, Value,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use super::record::{FieldValue, RecordError, RecordFields};
use super::registry::{split_message_indexes, MessageIndexes, RegisteredSchema, SchemaId};

/// A Protobuf schema from the registry: the descriptors of its file and of what it imports.
#[derive(Debug)]
pub struct ProtoSchema {
    id: SchemaId,
    pool: DescriptorPool,
    file: String,
    /// The file's first message, which nearly every value names (`[0]`).
    first: Option<MessageDescriptor>,
}

/// The files a schema and its references make, by import name.
struct RegistryFiles(HashMap<String, File>);

impl FileResolver for RegistryFiles {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| protox::Error::file_not_found(name))
    }
}

/// A schema text as a file: a base64 `FileDescriptorProto`, or `.proto` source named `name`.
fn schema_file(name: &str, text: &str) -> Result<File, String> {
    let looks_encoded = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if looks_encoded {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) {
            if let Ok(file) = File::decode_file_descriptor_proto(bytes.as_slice()) {
                return Ok(file);
            }
        }
    }
    File::from_source(name, text).map_err(|e| e.to_string())
}

impl ProtoSchema {
    /// Builds the descriptors of the schema and its references.
    pub fn compile(registered: &RegisteredSchema) -> Result<ProtoSchema, RecordError> {
        let id = registered.id;
        let fail = |e: String| RecordError::Protobuf(format!("schema {id}: {e}"));
        let mut files = HashMap::new();
        for dependency in &registered.dependencies {
            let file = schema_file(&dependency.name, &dependency.text).map_err(&fail)?;
            files.insert(dependency.name.clone(), file);
        }
        // A source file needs a name of its own; an encoded descriptor carries one.
        let main =
            schema_file(&format!("registry-schema-{id}.proto"), &registered.text).map_err(&fail)?;
        let name = main.name().to_owned();
        files.insert(name.clone(), main);
        let mut resolver = ChainFileResolver::new();
        resolver.add(RegistryFiles(files));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.open_file(&name).map_err(|e| fail(e.to_string()))?;
        let pool = compiler.descriptor_pool();
        let first = pool
            .get_file_by_name(&name)
            .and_then(|file| file.messages().next());
        Ok(ProtoSchema {
            id,
            pool,
            file: name,
            first,
        })
    }

    /// The schema's id.
    pub fn id(&self) -> SchemaId {
        self.id
    }

    /// The message a message-index list names in the schema's file.
    pub fn message(&self, indexes: &MessageIndexes) -> Result<MessageDescriptor, RecordError> {
        let path = indexes.path();
        if path == [0] {
            if let Some(first) = &self.first {
                return Ok(first.clone());
            }
        }
        let missing = || {
            RecordError::Protobuf(format!(
                "schema {} has no message at index {indexes}",
                self.id
            ))
        };
        let file = self.pool.get_file_by_name(&self.file).ok_or_else(missing)?;
        let (&top, nested) = path.split_first().ok_or_else(missing)?;
        let mut message = file.messages().nth(top as usize).ok_or_else(missing)?;
        for &index in nested {
            let child = message.child_messages().nth(index as usize);
            message = child.ok_or_else(missing)?;
        }
        Ok(message)
    }

    /// Whether the message a value's body names has a field at `path`; `None` when the body's
    /// message indexes name no message (decoding says why).
    pub fn has_field(&self, body: &[u8], path: &str) -> Option<bool> {
        let (indexes, _) = split_message_indexes(body).ok()?;
        let mut message = self.message(&indexes).ok()?;
        let mut names = path.split('.').peekable();
        while let Some(name) = names.next() {
            let Some(field) = message.get_field_by_name(name) else {
                return Some(false);
            };
            if names.peek().is_some() {
                match field.kind().as_message() {
                    Some(inner) => message = inner.clone(),
                    None => return Some(false),
                }
            }
        }
        Some(true)
    }

    /// Decodes a value's body: its message-index list, then the message it names.
    pub fn decode(&self, body: &[u8]) -> Result<ProtoRecord, RecordError> {
        let (indexes, payload) = split_message_indexes(body)?;
        let message = self.message(&indexes)?;
        DynamicMessage::decode(message, payload)
            .map(ProtoRecord)
            .map_err(|e| {
                let text = e.to_string();
                let reason = text.strip_prefix("failed to decode Protobuf message: ");
                RecordError::Protobuf(reason.unwrap_or(&text).to_owned())
            })
    }
}

/// One decoded Protobuf message.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtoRecord(pub DynamicMessage);

/// The last field of `path` in `message`, and the message holding it; `None` when a name is
/// not a field or an enclosing message is unset.
fn walk<'m>(
    mut message: &'m DynamicMessage,
    path: &str,
) -> Option<(&'m DynamicMessage, FieldDescriptor)> {
    let mut names = path.split('.').peekable();
    while let Some(name) = names.next() {
        let field = message.descriptor().get_field_by_name(name)?;
        if names.peek().is_none() {
            return Some((message, field));
        }
        if !message.has_field(&field) {
            return None;
        }
        match message.get_field(&field) {
            Cow::Borrowed(Value::Message(inner)) => message = inner,
            _ => return None,
        }
    }
    None
}

/// The `google.protobuf` wrapper messages, read as the value they wrap.
const WRAPPERS: [&str; 8] = [
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.StringValue",
    "google.protobuf.BoolValue",
];

fn field_value(value: Cow<'_, Value>) -> FieldValue<'_> {
    match value {
        Cow::Borrowed(Value::String(s)) => FieldValue::Str(Cow::Borrowed(s)),
        Cow::Owned(Value::String(s)) => FieldValue::Str(Cow::Owned(s)),
        Cow::Borrowed(Value::Message(m)) if WRAPPERS.contains(&m.descriptor().full_name()) => m
            .get_field_by_name("value")
            .map_or(FieldValue::Missing, field_value),
        value => match value.as_ref() {
            Value::Bool(_) => FieldValue::Other("a boolean"),
            Value::I32(i) => FieldValue::Int(i64::from(*i)),
            Value::I64(i) => FieldValue::Int(*i),
            Value::U32(u) => FieldValue::Int(i64::from(*u)),
            Value::U64(u) => {
                i64::try_from(*u).map_or(FieldValue::Float(*u as f64), FieldValue::Int)
            }
            Value::F32(f) => FieldValue::Float(f64::from(*f)),
            Value::F64(f) => FieldValue::Float(*f),
            Value::String(_) => FieldValue::Other("a string"),
            Value::Bytes(_) => FieldValue::Other("bytes"),
            Value::EnumNumber(_) => FieldValue::Other("an enum"),
            Value::Message(_) => FieldValue::Other("a message"),
            Value::List(_) => FieldValue::Other("a list"),
            Value::Map(_) => FieldValue::Other("a map"),
        },
    }
}

impl RecordFields for ProtoRecord {
    fn field(&self, path: &str) -> FieldValue<'_> {
        let Some((message, field)) = walk(&self.0, path) else {
            return FieldValue::Missing;
        };
        if field.supports_presence() && !message.has_field(&field) {
            return FieldValue::Missing;
        }
        field_value(message.get_field(&field))
    }

    fn carries(&self, path: &str) -> bool {
        walk(&self.0, path).is_some_and(|(message, field)| message.has_field(&field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::record::{experience_event, read_number};
    use crate::formats::registry::{write_message_indexes, Dependency, SchemaKind};
    use crate::formats::shape::EventShape;

    fn registered(id: u32, text: &str, dependencies: Vec<Dependency>) -> RegisteredSchema {
        RegisteredSchema {
            id: SchemaId(id),
            kind: SchemaKind::Protobuf,
            text: text.to_owned(),
            dependencies,
        }
    }

    const COMMON: &str = r#"syntax = "proto3";
package demo.common;
message Profile { double years_experience = 1; optional double salary = 2; }
"#;

    const MAIN: &str = r#"syntax = "proto3";
package demo;
import "common.proto";
import "google/protobuf/wrappers.proto";
message Other { string note = 1; }
message Applicant {
  string id = 1;
  demo.common.Profile profile = 2;
  google.protobuf.Int64Value ts_ms = 3;
  bool active = 4;
}
"#;

    fn applicant_schema() -> ProtoSchema {
        ProtoSchema::compile(&registered(
            31,
            MAIN,
            vec![Dependency {
                name: "common.proto".into(),
                text: COMMON.into(),
            }],
        ))
        .expect("compiles with its import")
    }

    /// Field 2 (profile: years 6.5), field 3 (ts_ms wrapper: 1234), field 4 (active).
    fn applicant_payload() -> Vec<u8> {
        let mut profile = vec![0x09];
        profile.extend_from_slice(&6.5f64.to_le_bytes());
        let mut out = vec![0x0a, 2, b'q', b'1', 0x12, profile.len() as u8];
        out.extend_from_slice(&profile);
        out.extend_from_slice(&[0x1a, 3, 0x08, 0xd2, 0x09, 0x20, 1]);
        out
    }

    fn body(indexes: &[i32], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let indexes = MessageIndexes::new(indexes.to_vec()).expect("a valid path");
        write_message_indexes(&indexes, &mut out);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn imports_come_from_references_and_well_known_types_are_built_in() {
        let schema = applicant_schema();
        let body = body(&[1], &applicant_payload());
        assert_eq!(
            schema.has_field(&body, "profile.years_experience"),
            Some(true)
        );
        assert_eq!(schema.has_field(&body, "profile.bmi"), Some(false));
        assert_eq!(schema.has_field(&body, "note"), Some(false));
        let record = schema.decode(&body).expect("decodes");
        assert_eq!(read_number(&record, "profile.years_experience"), Ok(6.5));
        assert_eq!(
            record.field("ts_ms"),
            FieldValue::Int(1234),
            "a wrapper reads as its value"
        );
        assert_eq!(record.field("id"), FieldValue::Str(Cow::Borrowed("q1")));
        assert_eq!(
            read_number(&record, "active").unwrap_err().to_string(),
            "wrong type for active: boolean"
        );
        // An optional field left unset is missing; a nested message left unset is too.
        assert_eq!(record.field("profile.salary"), FieldValue::Missing);
        assert!(!record.carries("profile.salary"));
    }

    #[test]
    fn fields_without_presence_read_as_their_default_but_are_not_carried() {
        let schema = applicant_schema();
        let record = schema
            .decode(&body(&[1], &[]))
            .expect("an empty message decodes");
        assert_eq!(record.field("id"), FieldValue::Str(Cow::Borrowed("")));
        assert!(!record.carries("id"));
        assert_eq!(
            record.field("profile.years_experience"),
            FieldValue::Missing
        );
        assert_eq!(record.field("ts_ms"), FieldValue::Missing);
        let event = |payload: &[u8]| {
            let text =
                "syntax = \"proto3\"; message E { double years_experience = 1; int64 ts_ms = 2; }";
            let schema = ProtoSchema::compile(&registered(2, text, vec![])).expect("compiles");
            experience_event(
                EventShape::salary(),
                &schema.decode(&body(&[0], payload)).expect("decodes"),
            )
        };
        let zero = event(&[]).expect("0 years");
        assert_eq!((zero.features[0], zero.ts_ms), (0.0, None));
        let mut payload = vec![0x09];
        payload.extend_from_slice(&1.5f64.to_le_bytes());
        payload.extend_from_slice(&[0x10, 0x7b]);
        let event = event(&payload).expect("an event");
        assert_eq!((event.features[0], event.ts_ms), (1.5, Some(123)));
    }

    #[test]
    fn a_schema_that_does_not_parse_is_a_protobuf_error_naming_its_id() {
        let e = ProtoSchema::compile(&registered(8, "syntax = \"proto3\"; message {", vec![]))
            .unwrap_err();
        assert!(e.to_string().starts_with("protobuf: schema 8: "), "{e}");
        let e = ProtoSchema::compile(&registered(9, MAIN, vec![])).unwrap_err();
        assert!(e.to_string().starts_with("protobuf: schema 9: "), "{e}");
        assert!(e.to_string().contains("common.proto"), "{e}");
    }

    #[test]
    fn a_message_index_past_the_file_or_its_nesting_is_named() {
        let schema = applicant_schema();
        for (path, shown) in [(&[2][..], "[2]"), (&[1, 0][..], "[1, 0]")] {
            assert_eq!(
                schema.decode(&body(path, &[])).unwrap_err().to_string(),
                format!("protobuf: schema 31 has no message at index {shown}")
            );
        }
    }
}
