//! Observation: throughput, lag and latency statistics, the model's live accuracy and drift,
//! the Prometheus endpoint, and watching a whole group of scorers from the output topic.
//!
//! It uses nothing of [`crate::serving`]: serving feeds it. [`watch`] reads Kafka through
//! [`crate::kafka`]'s settings; the rest is plain data.

pub mod cluster;
pub mod metrics;
/// The HTTP server of `--metrics`: bounded hyper serving [`metrics::Metrics`] at `/metrics`.
pub mod metrics_http;
pub mod quality;
pub mod stats;
pub mod watch;
