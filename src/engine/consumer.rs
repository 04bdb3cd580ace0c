//! The scorer: consume, decode, score, publish, dead-letter, and store offsets at-least-once.
//!
//! One dedicated thread owns a consumer and a producer. An input offset is stored for commit only
//! after its prediction (or dead letter) is acknowledged by the broker, and only once every earlier
//! offset of its partition is acknowledged too ([`OffsetTracker`]). On shutdown the producer is
//! flushed and the stored offsets are committed synchronously.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};

use super::codec::{self, BadRecord, Prediction};
use super::config::KafkaOptions;
use super::intake::{Batch, Record, RecordQueue};
use super::quality::{PageHinkley, RollingAccuracy};
pub use super::stats::LatencySummary;
use super::stats::{LatencyWindow, LATENCY_WINDOW_SECONDS};
use super::ModelEvent;
use super::{
    BrokerHealth, DriftAlarm, EngineEvent, LagByPartition, ScoreReport, ScoredEvent, SharedSink,
};
use crate::model::Predictor;
use crate::model::{Artifact, ModelError, TrainingSet};

/// How often the scorer reports to its sink.
const REPORT_INTERVAL: Duration = Duration::from_millis(50);
/// How long the loop waits for a record when none is queued.
const POLL_WAIT: Duration = Duration::from_millis(5);
/// Most records taken from the queue at once. The clock is read once per batch, so a batch is
/// kept small enough (well under a millisecond of work) for per-record latencies to stay exact
/// to a fraction of a millisecond.
const BATCH: usize = 256;
/// Most control events served between two batches (so that a flood of them, such as librdkafka's
/// debug log, cannot starve scoring).
const CONTROL_EVENTS_PER_TURN: usize = 64;
/// How long a new assignment waits for its committed offsets before leaving the lookup to
/// librdkafka.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits, in all, for the consumer to leave its group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the artifact file is checked for a new version (and a retrain request served).
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// How often acknowledged offsets are stored for the next commit.
const STORE_INTERVAL: Duration = Duration::from_millis(10);
/// How often the broker's health is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a health probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for outstanding deliveries, by default.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the scorer stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// A Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The scorer thread could not be started.
    #[error("cannot start the scorer thread: {0}")]
    Spawn(std::io::Error),
    /// Exactly-once could not start, or a transaction failed.
    #[error("exactly-once: {0}")]
    Transactions(String),
    /// The scorer thread panicked.
    #[error("the scorer thread panicked: {0}")]
    Panicked(String),
}

/// What the scorer needs to run.
#[derive(Debug, Clone)]
pub struct ScorerConfig {
    /// Brokers and client properties.
    pub kafka: KafkaOptions,
    /// Topic to consume.
    pub input_topic: String,
    /// Topic for predictions; `None` scores without publishing.
    pub output_topic: Option<String>,
    /// Topic for bad records.
    pub dlq_topic: String,
    /// Consumer group.
    pub group: String,
    /// The model that scores.
    pub predictor: Predictor,
    /// The artifact file the model came from, watched for new versions; `None` for the built-in
    /// artifact.
    pub model_path: Option<std::path::PathBuf>,
    /// Where retrained versions are written, one file each (never the `model_path` file).
    pub models_dir: std::path::PathBuf,
    /// Prometheus metrics to feed latency samples to, when served.
    pub metrics: Option<Arc<super::metrics::Metrics>>,
    /// Exactly-once: the transactional id and how often transactions commit; `None` for
    /// at-least-once.
    pub exactly_once: Option<(String, Duration)>,
    /// Stop after this many records are handled.
    pub max_records: Option<u64>,
    /// The model's training RMSE: the scale of the drift detector.
    pub training_rmse: f64,
    /// How long stopping waits for outstanding predictions to be acknowledged; what is not is
    /// consumed again by the next run (whose offsets were not committed past it).
    pub shutdown_flush: Duration,
}

/// Counts at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScorerSummary {
    /// Records scored.
    pub scored: u64,
    /// Records dead-lettered.
    pub bad: u64,
    /// Deliveries that failed.
    pub delivery_errors: u64,
    /// From each event's time to the acknowledgement of its prediction.
    pub latency: LatencySummary,
}

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
    metrics: Option<Arc<super::metrics::Metrics>>,
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
    pub fn with_metrics(metrics: Option<Arc<super::metrics::Metrics>>) -> Self {
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
    pub fn ack(&mut self, partition: i32, offset: i64, now_ms: f64) {
        let Some(queue) = self.pending.get_mut(&partition) else {
            return;
        };
        // Offsets are tracked in consumption order, so the queue is sorted.
        if let Ok(i) = queue.binary_search_by_key(&offset, |f| f.offset) {
            let slot = &mut queue[i];
            if !slot.acked {
                slot.acked = true;
                record_latency(
                    &mut self.latency_us,
                    &mut self.window,
                    self.metrics.as_deref(),
                    slot.event_ms,
                    now_ms,
                );
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
    }

    /// Notes that `offset` of `partition` is done at `now_ms` with nothing to acknowledge
    /// (scoring without publishing): ready at once unless earlier offsets are still in flight.
    pub fn complete(&mut self, partition: i32, offset: i64, event_ms: Option<i64>, now_ms: f64) {
        record_latency(
            &mut self.latency_us,
            &mut self.window,
            self.metrics.as_deref(),
            event_ms,
            now_ms,
        );
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

/// Records one latency sample: from the event's time to `now_ms`, in µs.
fn record_latency(
    histogram: &mut hdrhistogram::Histogram<u64>,
    window: &mut LatencyWindow,
    metrics: Option<&super::metrics::Metrics>,
    event_ms: Option<i64>,
    now_ms: f64,
) {
    if let Some(t) = event_ms {
        let us = ((now_ms - t as f64) * 1000.0).max(1.0) as u64;
        histogram.saturating_record(us);
        window.record(now_ms, us);
        if let Some(m) = metrics {
            m.observe_latency_us(us);
        }
    }
}

fn lock(tracker: &Mutex<OffsetTracker>) -> std::sync::MutexGuard<'_, OffsetTracker> {
    tracker.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Packs an input partition and offset into a delivery opaque (partition in the top 16 bits).
fn pack(partition: i32, offset: i64) -> usize {
    ((partition as u64 & 0xffff) << 48 | (offset as u64 & 0xffff_ffff_ffff)) as usize
}

fn unpack(opaque: usize) -> (i32, i64) {
    let v = opaque as u64;
    ((v >> 48) as i32, (v & 0xffff_ffff_ffff) as i64)
}

/// The producer side: acknowledgements feed the tracker.
struct DeliveryContext {
    tracker: Arc<Mutex<OffsetTracker>>,
    failures: Arc<std::sync::atomic::AtomicU64>,
    reasons: super::FailureReasons,
}

impl ClientContext for DeliveryContext {
    // The consumer's context reports broker outages; the producer sees the same ones.
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "producer");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let (partition, offset) = unpack(opaque);
        match result {
            Ok(_) => lock(&self.tracker).ack(partition, offset, now_ms_f64()),
            Err((e, _)) => {
                // The offset stays unstored, so the record is consumed again after a restart.
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.reasons.note(e, || {
                    format!("partition {partition} offset {offset}: prediction not delivered")
                });
            }
        }
    }
}

// Its own thread serves delivery reports, so acknowledgements reach the tracker promptly
// whatever the consumer loop is doing.
type ScoringProducer = super::delivery::PolledProducer<DeliveryContext>;

/// The consumer side: rebalances, statistics and errors.
struct ScoringContext {
    /// How long a revocation waits for outstanding deliveries.
    revoke_flush: Duration,
    sink: SharedSink,
    topic: String,
    tracker: Arc<Mutex<OffsetTracker>>,
    producer: OnceLock<Arc<ScoringProducer>>,
    /// Where assigned partitions' records go; weak, because the queue must go before the client.
    records: OnceLock<Weak<RecordQueue>>,
    /// Where a partition without a committed offset starts (`auto.offset.reset`), if it names a
    /// position.
    start_uncommitted_at: Option<Offset>,
    /// The event time of the last record handled from each partition, as of the last report: how
    /// far behind in time a lagging partition is.
    last_event_ms: Mutex<BTreeMap<i32, i64>>,
    /// Exactly-once: the scorer's transactions, committed here too before partitions go.
    transactions: Option<Arc<super::transactions::Transactions>>,
}

/// The position `auto.offset.reset` names, if it names one (`error` does not).
fn reset_position(setting: Option<&str>) -> Option<Offset> {
    match setting? {
        "smallest" | "earliest" | "beginning" => Some(Offset::Beginning),
        "largest" | "latest" | "end" => Some(Offset::End),
        _ => None,
    }
}

impl ScoringContext {
    /// Starts each partition of `assignment` that has no committed offset at the reset position.
    /// Left to librdkafka, such a partition waits 100 ms before looking that position up (the
    /// first start of every group); partitions with a committed offset are left to it as before.
    fn start_uncommitted_at_reset(
        &self,
        consumer: &BaseConsumer<Self>,
        assignment: &mut TopicPartitionList,
    ) {
        let Some(start) = self.start_uncommitted_at else {
            return;
        };
        match consumer.committed_offsets(assignment.clone(), COMMITTED_TIMEOUT) {
            Ok(committed) => {
                for p in committed.elements() {
                    if p.offset() == Offset::Invalid {
                        if let Err(e) =
                            assignment.set_partition_offset(p.topic(), p.partition(), start)
                        {
                            tracing::debug!(partition = p.partition(), error = %e, "start offset");
                        }
                    }
                }
            }
            // librdkafka looks the offsets up itself.
            Err(e) => tracing::debug!(error = %e, "committed offsets"),
        }
    }

    /// Stores every offset whose deliveries are complete.
    fn store_ready(&self, consumer: &BaseConsumer<ScoringContext>) {
        let ready = lock(&self.tracker).take_ready();
        if ready.is_empty() {
            return;
        }
        let mut offsets = TopicPartitionList::with_capacity(ready.len());
        for (partition, next) in ready {
            if let Err(e) =
                offsets.add_partition_offset(&self.topic, partition, Offset::Offset(next))
            {
                tracing::debug!(partition, error = %e, "offset list");
            }
        }
        // Fails only for partitions no longer assigned; their next owner consumes them again.
        if let Err(e) = consumer.store_offsets(&offsets) {
            tracing::debug!(error = %e, "store_offsets");
        }
    }
}

impl ClientContext for ScoringContext {
    fn stats(&self, statistics: Statistics) {
        if let Some(lag) = LagByPartition::from_statistics(&statistics, &self.topic) {
            let last = self
                .last_event_ms
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let lag = lag.with_time_behind(&last, super::now_ms());
            drop(last);
            self.sink.emit(EngineEvent::Lag(lag));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka");
        super::report_outage(self.sink.as_ref(), &error, reason);
    }
}

impl ConsumerContext for ScoringContext {
    /// rust-rdkafka's own rebalance, but a new assignment first starts partitions without a
    /// committed offset at the reset position ([`ScoringContext::start_uncommitted_at_reset`]).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            self.start_uncommitted_at_reset(consumer, partitions);
            self.pre_rebalance(consumer, &Rebalance::Assign(partitions));
            let assigned = if cooperative {
                consumer.incremental_assign(partitions)
            } else {
                consumer.assign(partitions)
            };
            if let Err(e) = assigned {
                tracing::warn!(error = %e, "assign");
            }
            self.post_rebalance(consumer, &Rebalance::Assign(partitions));
            return;
        }
        let rebalance = if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            Rebalance::Revoke(partitions)
        } else {
            Rebalance::Error(KafkaError::Rebalance(err.into()))
        };
        self.pre_rebalance(consumer, &rebalance);
        let unassigned = if cooperative {
            consumer.incremental_unassign(partitions)
        } else {
            consumer.unassign()
        };
        if let Err(e) = unassigned {
            tracing::warn!(error = %e, "unassign");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut partitions: Vec<i32> = match rebalance {
            Rebalance::Assign(tpl) => tpl.elements().iter().map(|e| e.partition()).collect(),
            Rebalance::Revoke(_) => Vec::new(),
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance");
                return;
            }
        };
        partitions.sort_unstable();
        self.sink.emit(EngineEvent::Assigned(partitions));
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Routed before librdkafka starts fetching them, so no record lands on the consumer's own
        // queue (any that did would still be scored, by the control poll).
        if let (Rebalance::Assign(partitions), Some(records)) =
            (rebalance, self.records.get().and_then(Weak::upgrade))
        {
            for p in partitions.elements() {
                if !records.route(p.topic(), p.partition()) {
                    tracing::warn!(partition = p.partition(), "cannot route partition records");
                }
            }
        }
        if let Rebalance::Revoke(partitions) = rebalance {
            // Finish what is in flight so the next owner starts where this one stopped.
            match (&self.transactions, self.producer.get()) {
                (Some(transactions), Some(producer)) => {
                    // A failure is recorded there, and stops the scorer.
                    let _ = transactions.commit(producer, consumer, &self.topic);
                }
                _ => {
                    if let Some(producer) = self.producer.get() {
                        producer.flush_within(self.revoke_flush);
                    }
                    self.store_ready(consumer);
                    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                        tracing::debug!(error = %e, "commit on revoke");
                    }
                }
            }
            let mut tracker = lock(&self.tracker);
            for p in partitions.elements() {
                tracker.forget(p.partition());
            }
        }
    }
}

/// What a stopping scorer has not finished, readable from another thread while it stops, so that
/// a shutdown cut short can say what it left.
#[derive(Clone)]
pub struct Unfinished {
    tracker: Arc<Mutex<OffsetTracker>>,
    committed: Arc<AtomicBool>,
}

impl Unfinished {
    /// Predictions and dead letters not acknowledged yet; `None` if that cannot be read now.
    pub fn unacknowledged(&self) -> Option<usize> {
        self.tracker.try_lock().ok().map(|t| t.unacknowledged())
    }

    /// Whether the final offset commit went through.
    pub fn committed(&self) -> bool {
        self.committed.load(Ordering::Relaxed)
    }

    /// The one line said when stopping is cut short `how` (`after 5 s`, `on SIGINT`).
    pub fn cut_short_line(&self, how: &str) -> String {
        const AGAIN: &str =
            "the next run scores them again (at-least-once: nothing is lost, some may repeat)";
        let left = match (self.unacknowledged(), self.committed()) {
            (Some(0) | None, true) => {
                return format!(
                    "shutdown cut short ({how}) while leaving the group: every offset was \
                     committed; the group rebalances once the session times out"
                )
            }
            (Some(0), _) => format!(
                "every prediction was acknowledged, but the final offset commit did not go \
                 through; records handled since the last commit were not committed, and {AGAIN}"
            ),
            (Some(n), _) => format!(
                "{n} prediction{s} or dead letter{s} not acknowledged, and {their} input \
                 offset{s} not committed; {AGAIN}",
                s = if n == 1 { "" } else { "s" },
                their = if n == 1 { "its" } else { "their" },
            ),
            (None, false) => {
                format!("predictions may be unacknowledged and offsets uncommitted; {AGAIN}")
            }
        };
        format!("shutdown cut short ({how}): {left}")
    }
}

/// A running scorer.
pub struct ScorerHandle {
    stop: Arc<AtomicBool>,
    handled: Arc<AtomicU64>,
    retrain_flag: Arc<AtomicBool>,
    unfinished: Unfinished,
    thread: JoinHandle<Result<ScorerSummary, ScorerError>>,
}

impl ScorerHandle {
    /// Asks the scorer to refit the model on its latest labeled events (served within a second).
    pub fn retrain(&self) {
        self.retrain_flag.store(true, Ordering::Relaxed);
    }

    /// Records handled so far (scored or dead-lettered), updated as each one is.
    pub fn handled(&self) -> Arc<AtomicU64> {
        self.handled.clone()
    }

    /// What is left to do while it stops.
    pub fn unfinished(&self) -> Unfinished {
        self.unfinished.clone()
    }

    /// Asks the scorer to finish: flush, commit, leave the group.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether the scorer thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the scorer to end.
    pub fn join(self) -> Result<ScorerSummary, ScorerError> {
        self.thread
            .join()
            .unwrap_or_else(|panic| Err(ScorerError::Panicked(super::panic_text(&*panic))))
    }
}

/// Where each prediction's JSON goes besides the output topic (NDJSON on stdout).
pub trait PredictionWriter: Send {
    /// Takes one prediction. An error means the reader is gone (`| head`): the scorer then stops
    /// as if asked to, committing what it has handled.
    fn write(&mut self, json: &[u8]) -> std::io::Result<()>;
    /// Pushes out anything buffered; called at every report and at shutdown.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// A boxed writer.
pub type BoxedWriter = Box<dyn PredictionWriter>;

/// Starts the scorer on its own thread. Clients are created before this returns, so
/// configuration errors surface here.
pub fn spawn(
    config: ScorerConfig,
    sink: SharedSink,
    writer: Option<BoxedWriter>,
) -> Result<ScorerHandle, ScorerError> {
    let stop = Arc::new(AtomicBool::new(false));
    let scorer = Scorer::new(config, sink.clone())?;
    let handled = scorer.handled.clone();
    let retrain_flag = scorer.retrain.clone();
    let unfinished = Unfinished {
        tracker: scorer.tracker.clone(),
        committed: scorer.committed.clone(),
    };
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("scorer".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scorer.run(&flag, writer)
            }))
            .unwrap_or_else(|panic| Err(ScorerError::Panicked(super::panic_text(&*panic))));
            // Stopping because asked to is no news; stopping on its own always is.
            if let Err(e) = &result {
                sink.emit(EngineEvent::Failed(e.to_string()));
            }
            result
        })
        .map_err(ScorerError::Spawn)?;
    Ok(ScorerHandle {
        stop,
        handled,
        retrain_flag,
        unfinished,
        thread,
    })
}

/// The model's accuracy and drift, from every labeled event.
struct Quality {
    accuracy: RollingAccuracy,
    detector: PageHinkley,
    alarm: Option<DriftAlarm>,
    /// `(years, label)` of the latest labeled events, for retraining.
    labeled: VecDeque<(f64, f64)>,
}

impl Quality {
    fn new(rmse: f64) -> Self {
        Quality {
            accuracy: RollingAccuracy::new(ACCURACY_WINDOW),
            detector: PageHinkley::new(rmse),
            alarm: None,
            labeled: VecDeque::with_capacity(ACCURACY_WINDOW),
        }
    }
}

/// What the scoring loop carries from one record to the next.
struct Progress {
    /// The latest prediction as JSON.
    json: Vec<u8>,
    /// What happened since the last report.
    report: ScoreReport,
    /// Counts since the start.
    summary: ScorerSummary,
    /// Where predictions go besides the output topic.
    writer: Option<BoxedWriter>,
    /// The writer's reader went away: stop as if asked to.
    reader_gone: bool,
    /// The event time of the last record handled from each partition.
    last_event_ms: BTreeMap<i32, i64>,
}

impl Progress {
    fn flush_writer(&mut self) {
        if let Some(Err(e)) = self.writer.as_mut().map(|w| w.flush()) {
            tracing::debug!(error = %e, "prediction writer");
            self.reader_gone = true;
        }
    }
}

/// Tells the health probe to end, and wakes it, when dropped.
struct EndProbe {
    finished: Arc<AtomicBool>,
    probe: std::thread::Thread,
}

/// What the broker health probe needs, owned, so that it can outlive the scorer by a request.
struct HealthProbe {
    producer: Arc<ScoringProducer>,
    kafka: KafkaOptions,
    needed: Vec<String>,
    sink: SharedSink,
    finished: Arc<AtomicBool>,
}

impl HealthProbe {
    /// Asks the broker for metadata every [`PROBE_INTERVAL`] and reports when the answer changes
    /// between yes and no. A connection to a paused broker stays open and quiet, so only a request
    /// with a deadline tells that it has stopped answering.
    fn run(&self) {
        let mut last: Option<bool> = None;
        let mut last_missing: Option<Vec<String>> = None;
        let mut next = Instant::now();
        let needed: Vec<&str> = self.needed.iter().map(String::as_str).collect();
        let mut probes = 0u64;
        while !self.finished.load(Ordering::Relaxed) {
            if Instant::now() >= next {
                // Every topic at the first probe, every tenth, and while one is missing; the
                // input topic alone otherwise: each metadata request shares the producer's
                // connection with the predictions.
                let all = probes.is_multiple_of(10)
                    || last_missing.as_ref().is_none_or(|m| !m.is_empty());
                probes += 1;
                let asked = if all { &needed[..] } else { &needed[..1] };
                // The producer's client may create topics, so a broker that creates them on
                // demand does so here, as it would for the first record sent.
                let answer = super::topics::missing(self.producer.client(), asked, PROBE_TIMEOUT);
                let answer = match answer {
                    // The input topic alone tells nothing about the others: keep what was seen.
                    Ok(missing) if !all => Ok(if missing.is_empty() {
                        last_missing.clone().unwrap_or_default()
                    } else {
                        missing
                    }),
                    other => other,
                };
                if let Ok(missing) = &answer {
                    if last_missing.as_ref() != Some(missing) {
                        self.sink.emit(EngineEvent::Topics(missing.clone()));
                        last_missing = Some(missing.clone());
                    }
                }
                let up = answer.is_ok();
                // Up is said after every answer: a client's "all brokers are down" can come in
                // after the broker is back, and must not stand.
                if up || last != Some(up) {
                    self.sink.emit(EngineEvent::Broker(match answer {
                        Ok(_) => BrokerHealth::Up,
                        Err(e)
                            if e.rdkafka_error_code()
                                == Some(RDKafkaErrorCode::OperationTimedOut) =>
                        {
                            BrokerHealth::Unreachable(format!(
                                "no answer within {} s",
                                PROBE_TIMEOUT.as_secs()
                            ))
                        }
                        Err(e) => {
                            match super::diagnose::wrong_address(
                                &self.kafka.bootstrap,
                                self.kafka.plaintext(),
                            ) {
                                Some(wrong) => BrokerHealth::WrongAddress(wrong),
                                None => BrokerHealth::Unreachable(super::describe_outage(
                                    &e.to_string(),
                                    &self.kafka.bootstrap,
                                )),
                            }
                        }
                    }));
                    last = Some(up);
                }
                next = Instant::now() + PROBE_INTERVAL;
            }
            // Until the next probe, or until the scorer finishes and unparks this thread.
            std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
        }
    }
}

impl Drop for EndProbe {
    fn drop(&mut self) {
        self.finished.store(true, Ordering::Relaxed);
        self.probe.unpark();
    }
}

/// Labeled events the rolling accuracy covers.
pub const ACCURACY_WINDOW: usize = 500;

struct Scorer {
    handled: Arc<AtomicU64>,
    /// Set by [`ScorerHandle::retrain`]; served by the scoring loop.
    retrain: Arc<AtomicBool>,
    config: ScorerConfig,
    quality: Mutex<Quality>,
    sink: SharedSink,
    /// Declared before the consumer: dropped first, while the client it lives on still exists.
    records: Arc<RecordQueue>,
    consumer: BaseConsumer<ScoringContext>,
    producer: Arc<ScoringProducer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    failures: Arc<std::sync::atomic::AtomicU64>,
    /// Set once the final offset commit went through.
    committed: Arc<AtomicBool>,
    /// Exactly-once: the transactions; `None` for at-least-once.
    transactions: Option<Arc<super::transactions::Transactions>>,
    /// Test hook (debug builds only): panic once this many records are handled.
    #[cfg(debug_assertions)]
    panic_after: Option<u64>,
}

impl Scorer {
    fn new(config: ScorerConfig, sink: SharedSink) -> Result<Self, ScorerError> {
        let tracker = Arc::new(Mutex::new(OffsetTracker::with_metrics(
            config.metrics.clone(),
        )));
        let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut producer_defaults = vec![
            ("linger.ms", "5"),
            ("batch.size", config.kafka.producer_batch_bytes()),
        ];
        if let Some((id, _)) = &config.exactly_once {
            producer_defaults.push(("transactional.id", id.as_str()));
            // A crashed instance that never comes back holds its partitions' committed reads
            // back until its open transaction times out: 10 s, not librdkafka's 60 s.
            producer_defaults.push(("transaction.timeout.ms", "10000"));
        }
        let producer = ScoringProducer::create(
            &config.kafka.client_config(&producer_defaults),
            DeliveryContext {
                tracker: tracker.clone(),
                failures: failures.clone(),
                reasons: super::FailureReasons::default(),
            },
        )?;
        let producer = Arc::new(producer);
        let transactions = match &config.exactly_once {
            Some((_, interval)) => {
                let refuse = |e: KafkaError| {
                    ScorerError::Transactions(format!(
                        "the broker at {} cannot run transactions: {e}",
                        config.kafka.bootstrap
                    ))
                };
                producer
                    .init_transactions(super::transactions::CALL_TIMEOUT)
                    .map_err(refuse)?;
                producer.begin_transaction().map_err(refuse)?;
                Some(Arc::new(super::transactions::Transactions::new(*interval)))
            }
            None => None,
        };
        // The embedded broker holds a fetch for its full wait even when data arrives, and after a
        // member leaves it waits a session timeout before rebalancing: keep both short there.
        // In-process, the broker's memory is ours too: prefetch 4 MB, not librdkafka's 64 MB.
        let (fetch_wait, session_timeout, heartbeat, prefetch_kb) = if config.kafka.embedded {
            ("5", "3000", "500", "4096")
        } else {
            ("500", "45000", "3000", "65536")
        };
        // Names each member for a watching dashboard (`--watch-group`); `-X client.id=` wins.
        let client_id = format!("salary-stream-{}", std::process::id());
        let mut consumer_config = config.kafka.client_config(&[
            ("client.id", client_id.as_str()),
            ("fetch.wait.max.ms", fetch_wait),
            ("session.timeout.ms", session_timeout),
            ("heartbeat.interval.ms", heartbeat),
            ("queued.max.messages.kbytes", prefetch_kb),
            // librdkafka counts the prefetch thresholds on the one consumer queue all
            // partitions feed, and past them pauses every partition's fetching for this long
            // (1 s by default): a scorer that keeps up must not stall for a second.
            ("fetch.queue.backoff.ms", "10"),
            ("auto.commit.interval.ms", "1000"),
            ("auto.offset.reset", "earliest"),
            ("statistics.interval.ms", "1000"),
        ]);
        consumer_config
            .set("group.id", &config.group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false");
        if transactions.is_some() {
            // Offsets are committed inside each transaction, never on their own; and an input
            // written transactionally is read only once committed.
            consumer_config
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed");
        }
        let context = ScoringContext {
            revoke_flush: config.shutdown_flush,
            sink: sink.clone(),
            topic: config.input_topic.clone(),
            tracker: tracker.clone(),
            producer: OnceLock::new(),
            records: OnceLock::new(),
            start_uncommitted_at: reset_position(consumer_config.get("auto.offset.reset")),
            last_event_ms: Mutex::new(BTreeMap::new()),
            transactions: transactions.clone(),
        };
        let _ = context.producer.set(producer.clone());
        let mut consumer: BaseConsumer<ScoringContext> =
            consumer_config.create_with_context(context)?;
        let records = RecordQueue::new(&consumer)
            .map(Arc::new)
            .ok_or_else(|| KafkaError::ClientCreation("librdkafka gave no record queue".into()))?;
        let _ = consumer.context().records.set(Arc::downgrade(&records));
        consumer.set_nonempty_callback(records.waker());
        consumer.subscribe(&[&config.input_topic])?;
        Ok(Scorer {
            handled: Arc::new(AtomicU64::new(0)),
            quality: Mutex::new(Quality::new(config.training_rmse)),
            retrain: Arc::new(AtomicBool::new(false)),
            config,
            sink,
            records,
            consumer,
            producer,
            tracker,
            failures,
            committed: Arc::new(AtomicBool::new(false)),
            transactions,
            #[cfg(debug_assertions)]
            panic_after: std::env::var("SALARY_STREAM_TEST_SCORER_PANIC_AFTER")
                .ok()
                .and_then(|v| v.parse().ok()),
        })
    }

    fn run(
        self,
        stop: &AtomicBool,
        writer: Option<BoxedWriter>,
    ) -> Result<ScorerSummary, ScorerError> {
        // Not joined: a probe waiting for a broker that does not answer must not hold up a stop
        // that has finished its own work. It holds what it uses, and ends at its next wake-up.
        let finished = Arc::new(AtomicBool::new(false));
        let probe = HealthProbe {
            producer: self.producer.clone(),
            kafka: self.config.kafka.clone(),
            needed: [
                Some(self.config.input_topic.clone()),
                self.config.output_topic.clone(),
                Some(self.config.dlq_topic.clone()),
            ]
            .into_iter()
            .flatten()
            .collect(),
            sink: self.sink.clone(),
            finished: finished.clone(),
        };
        let probe = std::thread::Builder::new()
            .name("probe".into())
            .spawn(move || probe.run())
            .map_err(ScorerError::Spawn)?;
        // Ends the probe however scoring ends, a panic included.
        let _end_probe = EndProbe {
            finished,
            probe: probe.thread().clone(),
        };
        let result = self.score_until_stopped(stop, writer);
        self.leave_group();
        result
    }

    /// Leaves the consumer group now, serving the revocation, so that dropping the consumer does
    /// not: rust-rdkafka's drop waits for the close in polls of 100 ms, and the last one always
    /// runs to its end.
    fn leave_group(&self) {
        if let Err(e) = self.consumer.close_queue() {
            tracing::debug!(error = %e, "close");
            return;
        }
        let started = Instant::now();
        let bound = CLOSE_TIMEOUT.min(self.config.shutdown_flush);
        while !self.consumer.closed() && started.elapsed() < bound {
            if let Some(Err(e)) = self.consumer.poll(Duration::from_millis(1)) {
                tracing::debug!(error = %e, "while closing");
            }
        }
    }

    fn score_until_stopped(
        &self,
        stop: &AtomicBool,
        writer: Option<BoxedWriter>,
    ) -> Result<ScorerSummary, ScorerError> {
        let mut progress = Progress {
            json: Vec::with_capacity(256),
            report: ScoreReport::default(),
            summary: ScorerSummary::default(),
            writer,
            reader_gone: false,
            last_event_ms: BTreeMap::new(),
        };
        let mut last_report = Instant::now();
        let mut last_store = Instant::now();
        let mut batch = Batch::with_capacity(BATCH);
        let mut predictor = self.config.predictor.clone();
        let mut watch = self.config.model_path.clone().map(ModelWatch::new);
        let mut last_watch = Instant::now();
        let mut reported_failures = 0;
        let left = |summary: &ScorerSummary| {
            self.config.max_records.map_or(usize::MAX, |m| {
                usize::try_from(m.saturating_sub(summary.scored + summary.bad))
                    .unwrap_or(usize::MAX)
            })
        };
        while !stop.load(Ordering::Relaxed) && !progress.reader_gone && left(&progress.summary) > 0
        {
            // Control events: rebalances, statistics, errors, commits; and, should a partition
            // not be routed to the record queue, its records. Each poll serves one.
            for _ in 0..CONTROL_EVENTS_PER_TURN {
                if self.records.control_pending() == 0 {
                    break;
                }
                let Some(result) = self.consumer.poll(Duration::ZERO) else {
                    continue;
                };
                match result {
                    // Past --count it is left unstored, for the next run.
                    Ok(_) if left(&progress.summary) == 0 => {}
                    Ok(msg) => {
                        self.handle(Record::of(&msg), now_ms_f64(), &mut progress, &predictor)
                    }
                    // Broker outages are reported once through the context's error callback.
                    Err(e) => tracing::debug!(error = %e, "consume"),
                }
            }
            // The consumer's non-empty callback ends this wait when a control event arrives.
            self.records
                .take(&mut batch, POLL_WAIT, left(&progress.summary));
            if !batch.is_empty() {
                // One clock reading serves the batch: it is handled within a fraction of a ms.
                let now_ms = now_ms_f64();
                for record in batch.records() {
                    match record {
                        Ok(record) => self.handle(record, now_ms, &mut progress, &predictor),
                        Err(e) => tracing::debug!(error = %e, "consume"),
                    }
                }
                batch.clear();
            }
            #[cfg(debug_assertions)]
            if let Some(after) = self.panic_after {
                assert!(
                    progress.summary.scored + progress.summary.bad < after,
                    "test hook: panic after {after} records"
                );
            }
            let now = Instant::now();
            match &self.transactions {
                // Offsets go with each transaction, committed once per interval.
                Some(t) => {
                    if now.duration_since(last_store) >= t.interval {
                        last_store = now;
                        if t.commit(&self.producer, &self.consumer, &self.config.input_topic)
                            .is_err()
                        {
                            break;
                        }
                    }
                    if t.failure().is_some() {
                        break;
                    }
                }
                // Storing offsets costs a list and a library call: once per interval, not per
                // record.
                None => {
                    if now.duration_since(last_store) >= STORE_INTERVAL {
                        self.consumer.context().store_ready(&self.consumer);
                        last_store = now;
                    }
                }
            }
            if now.duration_since(last_watch) >= WATCH_INTERVAL {
                last_watch = now;
                if self.retrain.swap(false, Ordering::Relaxed) {
                    if let Some(artifact) = self.retrain_now(&predictor) {
                        self.sink
                            .emit(EngineEvent::Model(self.serve(&mut predictor, &artifact)));
                    }
                }
                if let Some(change) = watch.as_mut().and_then(ModelWatch::changed) {
                    self.sink.emit(EngineEvent::Model(match change {
                        Ok(artifact) => self.serve(&mut predictor, &artifact),
                        Err(e) => ModelEvent::Rejected(e.to_string()),
                    }));
                }
            }
            if now.duration_since(last_report) >= REPORT_INTERVAL {
                let failures = self.failures.load(Ordering::Relaxed);
                progress.report.delivery_errors = failures - reported_failures;
                reported_failures = failures;
                self.flush_report(&mut progress.report);
                progress.flush_writer();
                self.consumer
                    .context()
                    .last_event_ms
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone_from(&progress.last_event_ms);
                last_report = now;
            }
        }
        if let Some(t) = &self.transactions {
            // Exactly-once: the open transaction commits (its outputs and offsets together), or,
            // after a failure, nothing more does.
            if let Some(reason) = t.failure() {
                return Err(ScorerError::Transactions(reason));
            }
            match t.commit(&self.producer, &self.consumer, &self.config.input_topic) {
                Ok(()) => self.committed.store(true, Ordering::Relaxed),
                Err(reason) => return Err(ScorerError::Transactions(reason)),
            }
        } else {
            // Shutdown: deliver what is in flight, store, commit.
            let left = self.producer.flush_within(self.config.shutdown_flush);
            if left > 0 {
                tracing::warn!(left, "deliveries outstanding after the shutdown flush");
            }
            self.consumer.context().store_ready(&self.consumer);
            match self.consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
                    self.committed.store(true, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "commit on shutdown"),
            }
        }
        progress.flush_writer();
        progress.summary.delivery_errors = self.failures.load(Ordering::Relaxed);
        progress.report.delivery_errors = progress.summary.delivery_errors - reported_failures;
        self.flush_report(&mut progress.report);
        progress.summary.latency = lock(&self.tracker).latency();
        let left = lock(&self.tracker).in_flight();
        if left > 0 {
            tracing::warn!(left, "records still unacknowledged at shutdown");
        }
        Ok(progress.summary)
    }

    /// Makes `artifact` the serving model: its accuracy window and drift detector start over.
    fn serve(&self, predictor: &mut Predictor, artifact: &Artifact) -> ModelEvent {
        *predictor = Predictor::from(artifact);
        *self.quality.lock().unwrap_or_else(PoisonError::into_inner) = Quality::new(artifact.rmse);
        ModelEvent::Swapped {
            version: predictor.version.clone(),
            formula: predictor.formula(),
            slope: predictor.slope,
            intercept: predictor.intercept,
        }
    }

    /// Refits on the latest labeled events and keeps the result as a new version in the models
    /// directory; returns it to serve from now on.
    fn retrain_now(&self, serving: &Predictor) -> Option<Artifact> {
        let pairs: Vec<(f64, f64)> = self
            .quality
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .labeled
            .iter()
            .copied()
            .collect();
        let (event, artifact) = match retrain(&pairs, serving) {
            Err(e) => (
                ModelEvent::Rejected(format!("retraining failed: {e}")),
                None,
            ),
            Ok((artifact, rmse_before)) => {
                let path = self
                    .config
                    .models_dir
                    .join(format!("{}.json", artifact.version));
                let saved = std::fs::create_dir_all(&self.config.models_dir)
                    .map_err(|e| {
                        format!(
                            "cannot create the models directory {}: {e}",
                            self.config.models_dir.display()
                        )
                    })
                    .and_then(|()| artifact.save(&path).map_err(|e| e.to_string()));
                match saved {
                    Ok(()) => (
                        ModelEvent::Retrained {
                            rows: artifact.training_rows,
                            rmse_before,
                            rmse_after: artifact.rmse,
                            version: artifact.version.clone(),
                            path,
                        },
                        Some(artifact),
                    ),
                    Err(e) => (ModelEvent::Rejected(e), None),
                }
            }
        };
        self.sink.emit(EngineEvent::Model(event));
        artifact
    }

    fn flush_report(&self, report: &mut ScoreReport) {
        if report.is_empty() {
            return;
        }
        let mut out = std::mem::take(report);
        let excess = out.recent.len().saturating_sub(ScoreReport::RECENT);
        out.recent.drain(..excess);
        out.latency = lock(&self.tracker).recent_latency(now_ms_f64());
        out.transactions = self.transactions.as_ref().map(|t| t.counts());
        let quality = self.quality.lock().unwrap_or_else(PoisonError::into_inner);
        out.accuracy = quality.accuracy.accuracy();
        out.drift = quality.alarm;
        drop(quality);
        self.sink.emit(EngineEvent::Scored(out));
    }

    fn handle(
        &self,
        record: Record<'_>,
        now_ms: f64,
        progress: &mut Progress,
        predictor: &Predictor,
    ) {
        let Progress {
            json: buf,
            report,
            summary,
            writer,
            reader_gone,
            last_event_ms,
        } = progress;
        let (partition, offset) = (record.partition, record.offset);
        let scored = codec::decode(record.payload).and_then(|event| {
            let predicted = predictor.predict(event.years);
            if predicted.is_finite() {
                Ok((event, predicted))
            } else {
                Err(BadRecord::NonFinitePrediction(event.years))
            }
        });
        match scored {
            Ok((event, predicted)) => {
                let event_ms = event.ts_ms.or(record.timestamp_ms);
                if let Some(t) = event_ms {
                    last_event_ms.insert(partition, t);
                }
                let latency_ms =
                    event_ms.map(|t| ((now_ms - t as f64).max(0.0) * 1000.0).round() / 1000.0);
                let extrapolated = !predictor.range.contains(event.years);
                if let Some(label) = event.salary {
                    let mut q = self.quality.lock().unwrap_or_else(PoisonError::into_inner);
                    q.accuracy.push(label, predicted);
                    if q.labeled.len() == ACCURACY_WINDOW {
                        q.labeled.pop_front();
                    }
                    q.labeled.push_back((event.years, label));
                    if q.alarm.is_none() {
                        if let Some((shift, after)) = q.detector.update(label - predicted) {
                            q.alarm = Some(DriftAlarm {
                                shift,
                                after,
                                at_ms: super::now_ms(),
                            });
                        }
                    }
                }
                buf.clear();
                let wanted = self.config.output_topic.is_some() || writer.is_some();
                let prediction = Prediction {
                    id: event.id.as_ref(),
                    years_experience: event.years,
                    ts_ms: event.ts_ms,
                    salary: event.salary,
                    predicted_salary: predicted,
                    residual: event.salary.map(|s| s - predicted),
                    extrapolated,
                    model: &predictor.version,
                    partition,
                    offset,
                    latency_ms: latency_ms.unwrap_or(0.0),
                };
                if wanted {
                    prediction.write_json(buf);
                }
                match &self.config.output_topic {
                    Some(topic) => {
                        lock(&self.tracker).track(partition, offset, event_ms);
                        if let Some(t) = &self.transactions {
                            t.handled(partition, offset);
                        }
                        let mut out = BaseRecord::with_opaque_to(topic, pack(partition, offset))
                            .payload(buf.as_slice());
                        if let Some(key) = record.key {
                            out = out.key(key);
                        }
                        self.send(out);
                    }
                    None => {
                        lock(&self.tracker).complete(partition, offset, event_ms, now_ms);
                        if let Some(t) = &self.transactions {
                            t.handled(partition, offset);
                        }
                    }
                }
                if let Some(w) = writer.as_mut() {
                    if let Err(e) = w.write(buf) {
                        tracing::debug!(error = %e, "prediction writer");
                        *reader_gone = true;
                    }
                }
                summary.scored += 1;
                self.handled.fetch_add(1, Ordering::Relaxed);
                report.scored += 1;
                report.extrapolated += u64::from(extrapolated);
                report.recent.push(ScoredEvent {
                    partition,
                    offset,
                    event_ms,
                    years: event.years,
                    predicted,
                    salary: event.salary,
                    latency_ms,
                    extrapolated,
                });
                if report.recent.len() >= 2 * ScoreReport::RECENT {
                    report.recent.drain(..ScoreReport::RECENT);
                }
            }
            Err(bad) => {
                let reason = bad.to_string();
                let partition_text = partition.to_string();
                let offset_text = offset.to_string();
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "error",
                        value: Some(reason.as_str()),
                    })
                    .insert(Header {
                        key: "source_topic",
                        value: Some(record.topic),
                    })
                    .insert(Header {
                        key: "source_partition",
                        value: Some(partition_text.as_str()),
                    })
                    .insert(Header {
                        key: "source_offset",
                        value: Some(offset_text.as_str()),
                    });
                lock(&self.tracker).track(partition, offset, None);
                if let Some(t) = &self.transactions {
                    t.handled(partition, offset);
                }
                let mut out: BaseRecord<'_, [u8], [u8], usize> =
                    BaseRecord::with_opaque_to(&self.config.dlq_topic, pack(partition, offset))
                        .headers(headers);
                if let Some(payload) = record.payload {
                    out = out.payload(payload);
                }
                if let Some(key) = record.key {
                    out = out.key(key);
                }
                self.send(out);
                summary.bad += 1;
                self.handled.fetch_add(1, Ordering::Relaxed);
                report.bad += 1;
                *report.bad_by_class.entry(bad.class()).or_default() += 1;
                report.last_bad = Some(reason);
            }
        }
    }

    /// Sends, waiting for queue space while the local queue is full.
    fn send(&self, mut record: BaseRecord<'_, [u8], [u8], usize>) {
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(super::delivery::QUEUE_FULL_WAIT);
                }
                Err((e, back)) => {
                    // Not sent, so never acknowledged: its offset is never stored and the record is
                    // consumed again after a restart.
                    tracing::error!(error = %e, partition = back.delivery_opaque >> 48, "produce");
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

fn now_ms_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Notices a new artifact at a path: a change of modification time or size.
pub struct ModelWatch {
    path: std::path::PathBuf,
    seen: Option<(std::time::SystemTime, u64)>,
}

impl ModelWatch {
    /// Watches `path`, taking what is there now as already seen.
    pub fn new(path: std::path::PathBuf) -> Self {
        let seen = Self::stamp(&path);
        ModelWatch { path, seen }
    }

    fn stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// The new artifact, or why it cannot serve, if the file changed since the last call.
    pub fn changed(&mut self) -> Option<Result<Artifact, ModelError>> {
        let now = Self::stamp(&self.path);
        if now == self.seen || now.is_none() {
            return None;
        }
        self.seen = now;
        Some(Artifact::load(&self.path))
    }
}

/// Fits a new model on `(years, label)` pairs; returns it with the serving model's RMSE on them.
pub fn retrain(pairs: &[(f64, f64)], serving: &Predictor) -> Result<(Artifact, f64), ModelError> {
    let set = TrainingSet {
        years: pairs.iter().map(|p| p.0).collect(),
        salaries: pairs.iter().map(|p| p.1).collect(),
        feature: "YearsExperience".into(),
        target: "Salary".into(),
    };
    if set.years.len() < 2 || set.years.iter().all(|&y| y == set.years[0]) {
        return Err(ModelError::Fit(format!(
            "need labeled events with at least two different years, have {}",
            set.years.len()
        )));
    }
    let mut digest = Sha256::new();
    for (y, s) in pairs {
        digest.update(y.to_le_bytes());
        digest.update(s.to_le_bytes());
    }
    let source = crate::model::hex(&digest.finalize());
    let artifact = crate::model::train_set(&set, &source)?;
    let before =
        crate::model::fit_metrics(&set.years, &set.salaries, serving.slope, serving.intercept);
    Ok((artifact, before.rmse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retrains_on_a_known_set() {
        let pairs: Vec<(f64, f64)> = (0..50)
            .map(|i| {
                let years = f64::from(i) / 5.0;
                (years, 1000.0 + 2000.0 * years)
            })
            .collect();
        let serving = Predictor {
            slope: 9449.962321455077,
            intercept: 25792.20019866869,
            version: "6c25318e".into(),
            range: crate::model::FeatureRange {
                min: 1.1,
                max: 10.5,
            },
        };
        let (artifact, before) = retrain(&pairs, &serving).unwrap();
        assert!(
            (artifact.coefficient - 2000.0).abs() < 1e-6,
            "{}",
            artifact.coefficient
        );
        assert!(
            (artifact.intercept - 1000.0).abs() < 1e-6,
            "{}",
            artifact.intercept
        );
        assert!(artifact.rmse < 1e-6);
        assert_eq!(artifact.training_rows, 50);
        assert!(
            before > 30_000.0,
            "the old line is far off these labels: {before}"
        );
        assert!(retrain(&pairs[..1], &serving).is_err());
    }

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
    fn reset_settings_name_positions() {
        for (setting, want) in [
            (Some("earliest"), Some(Offset::Beginning)),
            (Some("smallest"), Some(Offset::Beginning)),
            (Some("beginning"), Some(Offset::Beginning)),
            (Some("latest"), Some(Offset::End)),
            (Some("largest"), Some(Offset::End)),
            (Some("end"), Some(Offset::End)),
            (Some("error"), None),
            (None, None),
        ] {
            assert_eq!(reset_position(setting), want, "{setting:?}");
        }
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
