//! Bytes to records and back: the input events, the predictions and the reasons a record is bad.
//!
//! Pure: no Kafka client, no model, no I/O. Today JSON ([`json`]).

pub mod json;
