//! Bytes to records and back: the input events, the predictions and the reasons a record is bad.
//!
//! Pure: no Kafka client, no model, no I/O; JSON ([`json`]) and the registry formats, except
//! [`registry_client`], which talks HTTP to the Schema Registry.

/// Avro values decoded with their writer schema; predictions encoded for `--output-format avro`.
pub mod avro;
/// A model's events written in Avro or Protobuf for `produce --format`, with their schema.
pub mod event_schema;
/// Registry-framed values read as a model's events, each schema compiled once.
pub mod framed;
pub mod json;
/// Protobuf values decoded by descriptors built at run time from the registry's schema text.
pub mod protobuf;
/// Registry-framed records of any format read by field name, and why one is refused.
pub mod record;
/// The Confluent wire framing (magic byte, schema id, Protobuf message indexes) and schemas.
pub mod registry;
/// A blocking Schema Registry client: schemas by id, cached once per id; registration.
pub mod registry_client;
/// Where a Schema Registry is: base URL, basic auth (a secret), CA, timeouts.
pub mod registry_config;
mod scan;
/// The fields a model's events are read by and its predictions written with.
pub mod shape;
