//! What the synthetic producer learns of its events once they left: the failures counted, a
//! refusal for want of a permission noted (the producer stops on it), outages reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use crate::engine::SharedSink;
use crate::kafka::delivery::{deliver_one, BatchedDeliveries};

/// Counts failures. Acknowledgements are not reported one by one (librdkafka sends delivery
/// reports for errors only): whatever left the out-queue without failing was acknowledged.
#[derive(Default)]
pub(super) struct AckCounter {
    /// Events that failed.
    pub(super) failed: AtomicU64,
    /// The first send the broker refused for want of a permission: the producer stops on it.
    pub(super) refused: crate::kafka::refusal::Refusal,
}

impl AckCounter {
    /// Counts a failed event, noting a refusal for want of a permission; says whether it was one.
    pub(super) fn fail(&self, error: &KafkaError) -> bool {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.note_refusal(error)
    }

    /// Notes `error` if it is a refusal for want of a permission; says whether it was.
    pub(super) fn note_refusal(&self, error: &KafkaError) -> bool {
        self.refused.note(error)
    }
}

/// The synthetic producer's client context: counts failed deliveries and notes refusals.
pub struct CountingContext {
    pub(super) counter: Arc<AckCounter>,
    pub(super) sink: SharedSink,
    pub(super) reasons: crate::engine::FailureReasons,
}

impl ClientContext for CountingContext {
    // A refusal heard here is noted. An idempotent producer whose principal may write no topic
    // is refused its producer id, a fatal error, which comes here and with every later event as
    // "fatal" (`__FATAL`): its cause is the client's fatal error, which the producer's loop
    // looks up (`ProducerRun::refused_as_fatal`).
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "producer");
        if !self.counter.note_refusal(&error) {
            crate::engine::report_outage(self.sink.as_ref(), &error, reason);
        }
    }
}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: ()) {
        deliver_one(self, result, opaque);
    }
}

impl BatchedDeliveries for CountingContext {
    fn delivered(&self, reports: &[((), Option<KafkaError>)]) {
        for e in reports.iter().filter_map(|(_, error)| error.as_ref()) {
            let _ = self.counter.fail(e);
            self.reasons
                .note(e, || "synthetic event not delivered".to_owned());
        }
    }
}
