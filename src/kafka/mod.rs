//! Kafka plumbing: client settings, the embedded broker, reading records off a consumer's queue,
//! producing in batches, topics, offset specs and timestamps, telling a wrong address apart, and
//! telling librdkafka's mock cluster from a real one.
//!
//! It knows nothing of models, scoring or screens: it uses only the engine's vocabulary
//! ([`crate::engine`]) and rdkafka. [`crate::serving`] builds the scoring loop on top of it.

pub mod broker;
pub mod commit;
pub mod config;
pub mod delivery;
pub mod diagnose;
pub mod intake;
pub mod mock_cluster;
pub mod offset_spec;
pub mod properties;
pub mod refusal;
pub mod secrets;
pub mod timestamp;
pub mod topics;
