//! Registry-framed values read as a model's events: each schema id fetched once (by the client)
//! and compiled once (here), for whoever reads framed values: the scorer and the backtest.

use std::collections::HashMap;
use std::sync::Arc;

use super::json::ExperienceEvent;
use super::record::{CompiledSchema, RecordError};
use super::registry::{split_header, SchemaId};
use super::registry_client::{RegistryClient, RegistryError};
use super::shape::EventShape;

/// What a record's schema id gave: its schema compiled, or why a record framed with it is bad.
pub type SchemaOutcome = Result<Arc<CompiledSchema>, RecordError>;

/// The registry client and each id's schema, compiled once.
#[derive(Debug, Clone)]
pub struct FramedDecoder {
    client: Arc<RegistryClient>,
    compiled: HashMap<SchemaId, SchemaOutcome>,
}

impl FramedDecoder {
    /// Nothing compiled yet.
    pub fn new(client: Arc<RegistryClient>) -> Self {
        FramedDecoder {
            client,
            compiled: HashMap::new(),
        }
    }

    /// The client.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// The compiled schema of `id`, or why a record framed with it is bad (an id the registry
    /// does not know, a type or schema that cannot be decoded); an error when the registry
    /// cannot be used now. A schema is compiled once; an unknown id is asked again later (the
    /// client waits [`super::registry_client::NOT_FOUND_TTL`] between asks).
    pub fn schema(&mut self, id: SchemaId) -> Result<SchemaOutcome, RegistryError> {
        if let Some(compiled) = self.compiled.get(&id) {
            return Ok(compiled.clone());
        }
        match self.client.schema(id) {
            Ok(schema) => {
                let compiled = CompiledSchema::compile(&schema).map(Arc::new);
                self.compiled.insert(id, compiled.clone());
                Ok(compiled)
            }
            Err(e) => e.record_error().map(Err).ok_or(e),
        }
    }

    /// The event of `shape` in the framed `value`, or why the record is bad; an error when the
    /// registry cannot be used now.
    pub fn decode_event<'v>(
        &mut self,
        shape: &EventShape,
        value: &'v [u8],
    ) -> Result<Result<ExperienceEvent<'v>, RecordError>, RegistryError> {
        let (id, body) = match split_header(value) {
            Ok(split) => split,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(self
            .schema(id)?
            .and_then(|schema| schema.decode_event(shape, body)))
    }
}
