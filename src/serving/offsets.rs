//! Which input offsets may be committed: each prediction or dead letter handed to the producer is
//! tracked until the broker acknowledges it, and an offset becomes ready to store only once every
//! earlier offset of its partition is done. The same acknowledgements time each event end to end.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use crate::kafka::delivery::{deliver_one, BatchedDeliveries};
use crate::observe::metrics::Metrics;
use crate::observe::stats::{LatencySummary, LatencyWindow, LATENCY_WINDOW_SECONDS};

/// One record handed to the producer.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    offset: i64,
    acked: bool,
    /// The event's time, ms since the epoch, for the end-to-end latency.
    event_ms: Option<i64>,
}

/// Per partition, the offsets handed to the producer and whether each is acknowledged; tells
/// which offset may be stored for commit. Also measures end-to-end latency: from the event's time
/// to the acknowledgement of its prediction.
#[derive(Debug)]
pub struct OffsetTracker {
    pending: BTreeMap<i32, VecDeque<InFlight>>,
    ready: BTreeMap<i32, i64>,
    latency_us: hdrhistogram::Histogram<u64>,
    window: LatencyWindow,
    metrics: Option<Arc<Metrics>>,
}

impl Default for OffsetTracker {
    fn default() -> Self {
        OffsetTracker {
            pending: BTreeMap::new(),
            ready: BTreeMap::new(),
            // 1 µs to 1 hour at three significant figures: constant, valid bounds.
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("constant histogram bounds are valid"),
            window: LatencyWindow::new(LATENCY_WINDOW_SECONDS),
            metrics: None,
        }
    }
}

impl OffsetTracker {
    /// A tracker that also feeds each latency sample to `metrics`.
    pub fn with_metrics(metrics: Option<Arc<Metrics>>) -> Self {
        OffsetTracker {
            metrics,
            ..OffsetTracker::default()
        }
    }

    /// Notes that `offset` of `partition` is in flight; `event_ms` is the event's time.
    pub fn track(&mut self, partition: i32, offset: i64, event_ms: Option<i64>) {
        self.pending
            .entry(partition)
            .or_default()
            .push_back(InFlight {
                offset,
                acked: false,
                event_ms,
            });
    }

    /// Marks `offset` of `partition` acknowledged at `now_ms`; if that completes a prefix of the
    /// partition's in-flight offsets, the next offset to consume becomes ready to store.
    #[cfg(test)]
    pub fn ack(&mut self, partition: i32, offset: i64, now_ms: f64) {
        self.ack_all([(partition, offset)], now_ms);
    }

    /// Marks every `(partition, offset)` of `acks` acknowledged at one moment, `now_ms`. Their
    /// latencies are recorded a run of equal values at a time: the events of one batch often
    /// share their millisecond.
    pub fn ack_all(&mut self, acks: impl IntoIterator<Item = (i32, i64)>, now_ms: f64) {
        let mut run: Option<(u64, u64)> = None;
        for (partition, offset) in acks {
            let Some(event_ms) = self.mark_acked(partition, offset) else {
                continue;
            };
            let us = latency_us(event_ms, now_ms);
            match &mut run {
                Some((same, count)) if *same == us => *count += 1,
                _ => {
                    if let Some((us, count)) = run.replace((us, 1)) {
                        self.record_latency(us, count, now_ms);
                    }
                }
            }
        }
        if let Some((us, count)) = run {
            self.record_latency(us, count, now_ms);
        }
    }

    /// Marks one offset acknowledged and moves the partition's ready offset past the completed
    /// prefix; returns the event's time if this acknowledged it and it has one.
    fn mark_acked(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let queue = self.pending.get_mut(&partition)?;
        // Offsets are tracked in consumption order, so the queue is sorted, and mostly without
        // gaps: the offset's distance from the front is tried before a search.
        let guess = queue
            .front()
            .and_then(|first| usize::try_from(offset - first.offset).ok())
            .filter(|&i| queue.get(i).is_some_and(|f| f.offset == offset));
        let found = guess.or_else(|| queue.binary_search_by_key(&offset, |f| f.offset).ok());
        let mut event_ms = None;
        if let Some(slot) = found.and_then(|i| queue.get_mut(i)) {
            if !slot.acked {
                slot.acked = true;
                event_ms = slot.event_ms;
            }
        }
        let mut next = None;
        while let Some(&InFlight {
            offset: o,
            acked: true,
            ..
        }) = queue.front()
        {
            next = Some(o + 1);
            queue.pop_front();
        }
        if let Some(next) = next {
            self.ready.insert(partition, next);
        }
        event_ms
    }

    /// Records `count` latency samples of `us` taken at `now_ms`.
    fn record_latency(&mut self, us: u64, count: u64, now_ms: f64) {
        self.latency_us.saturating_record_n(us, count);
        self.window.record_n(now_ms, us, count);
        if let Some(m) = &self.metrics {
            for _ in 0..count {
                m.observe_latency_us(us);
            }
        }
    }

    /// Notes that `offset` of `partition` is done at `now_ms` with nothing to acknowledge
    /// (scoring without publishing): ready at once unless earlier offsets are still in flight.
    pub fn complete(&mut self, partition: i32, offset: i64, event_ms: Option<i64>, now_ms: f64) {
        if let Some(t) = event_ms {
            self.record_latency(latency_us(t, now_ms), 1, now_ms);
        }
        match self.pending.get_mut(&partition) {
            Some(queue) if !queue.is_empty() => queue.push_back(InFlight {
                offset,
                acked: true,
                event_ms,
            }),
            _ => {
                self.ready.insert(partition, offset + 1);
            }
        }
    }

    /// Forgets a partition (it was revoked).
    pub fn forget(&mut self, partition: i32) {
        self.pending.remove(&partition);
        self.ready.remove(&partition);
    }

    /// Forgets every partition (an aborted transaction's outputs are never acknowledged).
    pub fn forget_all(&mut self) {
        self.pending.clear();
        self.ready.clear();
    }

    /// The `(partition, next offset)` pairs ready to store since the last call.
    pub fn take_ready(&mut self) -> Vec<(i32, i64)> {
        std::mem::take(&mut self.ready).into_iter().collect()
    }

    /// Offsets still waiting for acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.pending.values().map(VecDeque::len).sum()
    }

    /// Predictions and dead letters handed to the producer and not acknowledged yet.
    pub fn unacknowledged(&self) -> usize {
        self.pending
            .values()
            .map(|q| q.iter().filter(|f| !f.acked).count())
            .sum()
    }

    /// Latency percentiles so far.
    pub fn latency(&self) -> LatencySummary {
        LatencySummary::of(&self.latency_us)
    }

    /// Latency percentiles over the last [`LATENCY_WINDOW_SECONDS`], at `now_ms`.
    pub fn recent_latency(&self, now_ms: f64) -> Option<LatencySummary> {
        self.window.summary(now_ms)
    }
}

/// From the event's time to `now_ms`, in µs (at least 1).
fn latency_us(event_ms: i64, now_ms: f64) -> u64 {
    ((now_ms - event_ms as f64) * 1000.0).max(1.0) as u64
}

pub fn lock(tracker: &Mutex<OffsetTracker>) -> std::sync::MutexGuard<'_, OffsetTracker> {
    tracker.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Packs an input partition and offset into a delivery opaque (partition in the top 16 bits).
pub fn pack(partition: i32, offset: i64) -> usize {
    ((partition as u64 & 0xffff) << 48 | (offset as u64 & 0xffff_ffff_ffff)) as usize
}

pub fn unpack(opaque: usize) -> (i32, i64) {
    let v = opaque as u64;
    ((v >> 48) as i32, (v & 0xffff_ffff_ffff) as i64)
}

/// The producer side: acknowledgements feed the tracker.
pub struct DeliveryContext {
    tracker: Arc<Mutex<OffsetTracker>>,
    failures: Arc<AtomicU64>,
    reasons: crate::engine::FailureReasons,
    /// The first delivery the broker refused for want of a permission.
    refused: crate::kafka::refusal::Refusal,
}

impl DeliveryContext {
    /// Acknowledgements go to `tracker`; failed deliveries are counted in `failures`.
    pub fn new(tracker: Arc<Mutex<OffsetTracker>>, failures: Arc<AtomicU64>) -> Self {
        DeliveryContext {
            tracker,
            failures,
            reasons: crate::engine::FailureReasons::default(),
            refused: Default::default(),
        }
    }

    /// The first delivery refused for want of a permission (authorization), if one was: the
    /// scorer stops on it rather than consume what it cannot publish.
    pub fn refused(&self) -> Option<RDKafkaErrorCode> {
        self.refused.get()
    }

    /// Notes `error` if it is a refusal for want of a permission; says whether it was.
    pub fn note_refusal(&self, error: &KafkaError) -> bool {
        self.refused.note(error)
    }
}

impl ClientContext for DeliveryContext {
    // The consumer's context reports broker outages; the producer sees the same ones. But a
    // refusal is the producer's own: an idempotent producer whose principal may write no topic
    // is refused its producer id (CLUSTER_AUTHORIZATION_FAILED, a fatal error) before any
    // delivery, and every later one fails only as "fatal".
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "producer");
        self.note_refusal(&error);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        deliver_one(self, result, opaque);
    }
}

impl BatchedDeliveries for DeliveryContext {
    /// Acknowledgements under one lock and one reading of the clock; failures after it.
    fn delivered(&self, reports: &[(usize, Option<KafkaError>)]) {
        {
            let now_ms = crate::engine::now_ms_precise();
            let acked = reports
                .iter()
                .filter(|(_, error)| error.is_none())
                .map(|(opaque, _)| unpack(*opaque));
            lock(&self.tracker).ack_all(acked, now_ms);
        }
        for (opaque, error) in reports {
            match error {
                None => {}
                // An aborted transaction's outputs, purged: consumed and produced again.
                Some(KafkaError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
                )) => {}
                Some(e) => {
                    self.note_refusal(e);
                    // The offset stays unstored, so the record is consumed again after a restart.
                    let (partition, offset) = unpack(*opaque);
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    self.reasons.note(e, || {
                        format!("partition {partition} offset {offset}: prediction or dead letter not delivered")
                    });
                }
            }
        }
    }
}

// Its own thread serves delivery reports, so acknowledgements reach the tracker promptly
// whatever the consumer loop is doing.
pub type ScoringProducer = crate::kafka::delivery::PolledProducer<DeliveryContext>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_offsets_wait_for_earlier_dead_letters() {
        let mut t = OffsetTracker::default();
        t.complete(0, 0, Some(1_000), 1_003.0);
        t.complete(0, 1, None, 1_003.0);
        assert_eq!(t.take_ready(), vec![(0, 2)]);
        // A dead letter in flight holds back the offsets scored after it.
        t.track(0, 2, None);
        t.complete(0, 3, Some(1_000), 1_005.0);
        t.complete(1, 7, Some(1_000), 1_001.0);
        assert_eq!(t.take_ready(), vec![(1, 8)]);
        assert_eq!(t.in_flight(), 2);
        t.ack(0, 2, 1_006.0);
        assert_eq!(t.take_ready(), vec![(0, 4)]);
        assert_eq!(t.in_flight(), 0);
        let latency = t.latency();
        assert_eq!(
            latency.count, 3,
            "one sample per completed event with a time"
        );
        assert_eq!((latency.p50_ms, latency.max_ms), (3.0, 5.0));
    }

    #[test]
    fn opaque_round_trips() {
        for (p, o) in [
            (0, 0),
            (2, 17),
            (65_535, (1 << 48) - 1),
            (7, 123_456_789_012),
        ] {
            assert_eq!(unpack(pack(p, o)), (p, o));
        }
    }

    #[test]
    fn a_batch_of_reports_acknowledges_the_delivered_and_counts_only_real_failures() {
        let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
        let failures = Arc::new(AtomicU64::new(0));
        let context = DeliveryContext::new(tracker.clone(), failures.clone());
        for offset in 0..5 {
            lock(&tracker).track(0, offset, None);
        }
        let failed = |code| Some(KafkaError::MessageProduction(code));
        context.delivered(&[
            (pack(0, 1), None),
            (pack(0, 0), None),
            (pack(0, 2), failed(RDKafkaErrorCode::PurgeQueue)),
            (pack(0, 3), failed(RDKafkaErrorCode::MessageTimedOut)),
            (pack(0, 4), None),
        ]);
        let mut t = lock(&tracker);
        assert_eq!(t.take_ready(), vec![(0, 2)]);
        assert_eq!(
            t.in_flight(),
            3,
            "offsets 2 and 3 never acknowledged, 4 waits for them"
        );
        assert_eq!(t.unacknowledged(), 2);
        assert_eq!(
            failures.load(Ordering::Relaxed),
            1,
            "a purge is not a failure"
        );
    }

    #[test]
    fn a_batch_of_acknowledgements_counts_each_event_once() {
        let mut t = OffsetTracker::default();
        // Offset 3 is missing (a transaction marker's place): partition 0 is not contiguous.
        for o in [0, 1, 2, 4, 5] {
            t.track(0, o, Some(1_000));
        }
        t.track(1, 9, Some(998));
        t.ack_all([(0, 4), (0, 0), (1, 9), (0, 1), (0, 4), (0, 2)], 1_002.0);
        assert_eq!(t.take_ready(), vec![(0, 5), (1, 10)]);
        assert_eq!(t.in_flight(), 1);
        let latency = t.latency();
        assert_eq!(latency.count, 5, "offset 4 of partition 0 counted once");
        assert_eq!((latency.p50_ms, latency.max_ms), (2.0, 4.0));
        t.ack_all([(0, 5), (2, 0)], 1_010.0);
        assert_eq!(t.take_ready(), vec![(0, 6)]);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.recent_latency(1_010.0).map(|l| l.count), Some(6));
        assert_eq!(t.latency().max_ms, 10.0);
    }

    #[test]
    fn tracker_stores_only_contiguous_acks() {
        let mut t = OffsetTracker::default();
        for o in 10..14 {
            t.track(0, o, Some(1_000));
        }
        t.track(1, 5, None);
        t.ack(0, 11, 1_002.0);
        assert_eq!(t.take_ready(), vec![]);
        t.ack(0, 10, 1_004.0);
        assert_eq!(t.take_ready(), vec![(0, 12)]);
        t.ack(0, 13, 1_006.0);
        t.ack(1, 5, 1_006.0);
        assert_eq!(t.take_ready(), vec![(1, 6)]);
        assert_eq!(t.in_flight(), 2);
        t.ack(0, 12, 1_008.0);
        t.ack(0, 12, 9_999.0);
        assert_eq!(t.take_ready(), vec![(0, 14)]);
        assert_eq!(t.in_flight(), 0);
        t.track(2, 1, None);
        t.forget(2);
        t.ack(2, 1, 0.0);
        assert_eq!(t.take_ready(), vec![]);
        let latency = t.latency();
        assert_eq!(
            latency.count, 4,
            "one sample per acknowledged event with a time"
        );
        assert_eq!(latency.p50_ms, 4.0);
        assert_eq!(latency.max_ms, 8.0);
    }
}
