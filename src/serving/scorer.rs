//! The scorer: one thread that consumes, scores, publishes and dead-letters, and stores offsets
//! at-least-once (or commits them in transactions, exactly-once).
//!
//! The loop and its shutdown live here; what it uses lives beside it, one job a file:
//! [`scoring`](crate::serving::scoring) scores a record with no broker, [`offsets`](crate::serving::offsets)
//! decides which input offsets may be committed, [`group`](crate::serving::group) serves rebalances,
//! [`probe`](crate::serving::probe) watches the broker's health, [`quality`](crate::observe::quality) the model's
//! accuracy, and [`crate::model`] retrains and watches the artifact file. An input offset is
//! stored for commit only after its prediction (or dead letter) is acknowledged, and only once
//! every earlier offset of its partition is too. On shutdown the producer is flushed and the
//! stored offsets are committed synchronously, within the shutdown bound.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::Offset;

use crate::engine::{EngineEvent, ModelEvent, ScoreReport, ScoredEvent, SharedSink, Totals};
use crate::kafka::config::KafkaOptions;
use crate::kafka::delivery::{Outgoing, TopicBatcher};
use crate::kafka::intake::{Record, RecordQueue, Waker};
use crate::model::{Artifact, ModelWatch};
pub use crate::observe::stats::LatencySummary;
use crate::serving::group::{reset_position, ScoringContext};
use crate::serving::offsets::{
    lock, pack, unpack, DeliveryContext, OffsetTracker, ScoringProducer,
};
use crate::serving::scoring::{self, dead_letter_headers, latency_ms};
use crate::serving::slots::{ModelCommand, Policy, Slots};
use crate::serving::transactions::{Commit, Transactions};

/// How often the scorer reports to its sink.
const REPORT_INTERVAL: Duration = Duration::from_millis(50);
/// Predictions handed to librdkafka and not yet acknowledged, at most, on the embedded broker.
const EMBEDDED_IN_FLIGHT: &str = "10000";
/// How long the loop waits for a record when none is queued.
const POLL_WAIT: Duration = Duration::from_millis(5);
/// Most records taken from the queue at once. The clock is read once per batch, so a batch is
/// kept small enough (well under a millisecond of work) for per-record latencies to stay exact
/// to a fraction of a millisecond.
const RECORDS_PER_TAKE: usize = 256;
/// Most control events served between two batches (so that a flood of them, such as librdkafka's
/// debug log, cannot starve scoring).
const CONTROL_EVENTS_PER_TURN: usize = 64;
/// How long shutdown waits, in all, for the consumer to leave its group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the artifact file is checked for a new version.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// How often acknowledged offsets are stored for the next commit.
const STORE_INTERVAL: Duration = Duration::from_millis(10);
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
    /// The model that serves at start.
    pub model: Artifact,
    /// The artifact file the model came from, watched for new versions; `None` for the built-in
    /// artifact.
    pub model_path: Option<std::path::PathBuf>,
    /// The model that challenges at start, if any.
    pub challenger: Option<Artifact>,
    /// What the scorer does with models on its own.
    pub policy: Policy,
    /// Where fitted, promoted and replaced versions are kept, one file each, with the lineage
    /// file (never the `model_path` file).
    pub models_dir: std::path::PathBuf,
    /// Prometheus metrics to feed latency samples to, when served.
    pub metrics: Option<Arc<crate::observe::metrics::Metrics>>,
    /// Exactly-once: the transactional id and how often transactions commit; `None` for
    /// at-least-once.
    pub exactly_once: Option<(String, Duration)>,
    /// Stop after this many records are handled.
    pub max_records: Option<u64>,
    /// Where partitions without a committed offset start (`-o`); `None`: `auto.offset.reset`.
    pub start_uncommitted_at: Option<crate::kafka::offset_spec::OffsetSpec>,
    /// How long stopping waits for outstanding predictions to be acknowledged; what is not is
    /// consumed again by the next run (whose offsets were not committed past it).
    pub shutdown_flush: Duration,
}

/// Counts at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScorerSummary {
    /// Records scored and dead-lettered, scored beyond the training range, deliveries failed.
    pub totals: Totals,
    /// From each event's time to the acknowledgement of its prediction.
    pub latency: LatencySummary,
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
    commands: Commands,
    unfinished: Unfinished,
    thread: JoinHandle<Result<ScorerSummary, ScorerError>>,
}

impl ScorerHandle {
    /// Asks the scorer to fit, promote, roll back or drop a model; served before its next batch.
    pub fn command(&self, command: ModelCommand) {
        self.commands.send(command);
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
            .unwrap_or_else(|panic| Err(ScorerError::Panicked(crate::engine::panic_text(&*panic))))
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
    let commands = scorer.commands.clone();
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
            .unwrap_or_else(|panic| Err(ScorerError::Panicked(crate::engine::panic_text(&*panic))));
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
        commands,
        unfinished,
        thread,
    })
}

/// Predictions waiting to be handed to the producer together: their bytes (key, then value) in one
/// buffer.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    records: Vec<Outgoing<usize>>,
    /// The input partition, offset and event time of each, for the offset tracker.
    tracked: Vec<(i32, i64, Option<i64>)>,
}

impl Pending {
    /// Adds the prediction for `input` (partition, offset, event time) with `key` and the value
    /// `write` appends; returns the value's bytes.
    fn push(
        &mut self,
        key: Option<&[u8]>,
        input: (i32, i64, Option<i64>),
        write: impl FnOnce(&mut Vec<u8>),
    ) -> &[u8] {
        let key = key.map(|k| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(k);
            start..self.bytes.len()
        });
        let start = self.bytes.len();
        write(&mut self.bytes);
        let value = start..self.bytes.len();
        self.records.push(Outgoing {
            value: value.clone(),
            key,
            opaque: pack(input.0, input.1),
        });
        self.tracked.push(input);
        &self.bytes[value]
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
        self.tracked.clear();
    }
}

/// Model commands on their way to the scorer thread.
#[derive(Clone, Default)]
struct Commands {
    queue: Arc<Mutex<Vec<ModelCommand>>>,
    /// Whether the queue holds any: one relaxed load a loop turn when it does not.
    pending: Arc<AtomicBool>,
}

impl Commands {
    fn send(&self, command: ModelCommand) {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(command);
        self.pending.store(true, Ordering::Release);
    }

    fn take(&self) -> Vec<ModelCommand> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// What the scoring loop carries from one record to the next, owned by the scorer thread.
struct LoopState {
    /// The serving model and the challenger, and how each is doing.
    slots: Slots,
    /// The latest prediction as JSON, when it is not published.
    json: Vec<u8>,
    /// Publishes predictions in batches; `None` without an output topic.
    batcher: Option<TopicBatcher<DeliveryContext>>,
    /// Predictions handled and not yet handed to the producer.
    pending: Pending,
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

impl LoopState {
    fn flush_writer(&mut self) {
        if let Some(Err(e)) = self.writer.as_mut().map(|w| w.flush()) {
            tracing::debug!(error = %e, "prediction writer");
            self.reader_gone = true;
        }
    }
}

struct Scorer {
    handled: Arc<AtomicU64>,
    /// Sent by [`ScorerHandle::command`]; served by the scoring loop.
    commands: Commands,
    config: ScorerConfig,
    sink: SharedSink,
    records: Arc<RecordQueue>,
    consumer: Arc<BaseConsumer<ScoringContext>>,
    producer: Arc<ScoringProducer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    failures: Arc<AtomicU64>,
    /// Set once the final offset commit went through.
    committed: Arc<AtomicBool>,
    /// Exactly-once: the transactions; `None` for at-least-once.
    transactions: Option<Arc<Transactions>>,
    /// Test hook (debug builds only): panic once this many records are handled.
    #[cfg(debug_assertions)]
    panic_after: Option<u64>,
}

impl Scorer {
    fn new(config: ScorerConfig, sink: SharedSink) -> Result<Self, ScorerError> {
        let tracker = Arc::new(Mutex::new(OffsetTracker::with_metrics(
            config.metrics.clone(),
        )));
        let failures = Arc::new(AtomicU64::new(0));
        let mut producer_defaults = vec![
            ("linger.ms", "5"),
            ("batch.size", config.kafka.producer_batch_bytes()),
        ];
        if config.kafka.embedded {
            // In-process, predictions waiting for the broker's acknowledgement are our memory:
            // at most 10,000 of them (some 4 MB), not librdkafka's 100,000, which an unthrottled
            // dashboard filled whenever the broker's thread fell behind (peak RSS up to 90 MB).
            producer_defaults.push(("queue.buffering.max.messages", EMBEDDED_IN_FLIGHT));
        }
        if let Some((id, _)) = &config.exactly_once {
            producer_defaults.push(("transactional.id", id.as_str()));
            // A crashed instance that never comes back holds its partitions' committed reads
            // back until its open transaction times out: 10 s, not librdkafka's 60 s.
            producer_defaults.push(("transaction.timeout.ms", "10000"));
            // After each commit the coordinator answers the next transaction's first
            // AddPartitionsToTxn with CONCURRENT_TRANSACTIONS until the markers are written, and
            // librdkafka retries it after retry.backoff.ms (100 ms by default), with every
            // prediction of the new transaction waiting: on Apache Kafka that wait dominated a
            // 0.1 s interval (BENCHMARKS.md).
            producer_defaults.push(("retry.backoff.ms", "10"));
            producer_defaults.push(("retry.backoff.max.ms", "100"));
        }
        let producer = ScoringProducer::create(
            &config.kafka.client_config(&producer_defaults),
            DeliveryContext::new(tracker.clone(), failures.clone()),
        )?;
        let producer = Arc::new(producer);
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
        if config.exactly_once.is_some() {
            // Offsets are committed inside each transaction, never on their own; and an input
            // written transactionally is read only once committed.
            consumer_config
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed");
        }
        let start_at = config
            .start_uncommitted_at
            .or_else(|| reset_position(consumer_config.get("auto.offset.reset")));
        let transactions = match &config.exactly_once {
            Some((_, interval)) => {
                let refuse = |e: KafkaError| {
                    ScorerError::Transactions(format!(
                        "the broker at {} cannot run transactions: {e}",
                        config.kafka.bootstrap
                    ))
                };
                producer
                    .init_transactions(crate::serving::transactions::CALL_TIMEOUT)
                    .map_err(refuse)?;
                producer.begin_transaction().map_err(refuse)?;
                Some(Arc::new(Transactions::new(
                    *interval,
                    start_at
                        .and_then(crate::kafka::offset_spec::OffsetSpec::logical)
                        .unwrap_or(Offset::Beginning),
                    tracker.clone(),
                )))
            }
            None => None,
        };
        let context = ScoringContext::new(
            config.input_topic.clone(),
            config.shutdown_flush,
            sink.clone(),
            tracker.clone(),
            producer.clone(),
            start_at,
            transactions.clone(),
        );
        let mut consumer: BaseConsumer<ScoringContext> =
            consumer_config.create_with_context(context)?;
        let waker = Waker::new();
        consumer.set_nonempty_callback(waker.callback());
        let consumer = Arc::new(consumer);
        let records = RecordQueue::new(consumer.clone(), waker)
            .map(Arc::new)
            .ok_or_else(|| KafkaError::ClientCreation("librdkafka gave no record queue".into()))?;
        consumer.context().route_to(&records);
        consumer.subscribe(&[&config.input_topic])?;
        Ok(Scorer {
            handled: Arc::new(AtomicU64::new(0)),
            commands: Commands::default(),
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
        let needed = [
            Some(self.config.input_topic.clone()),
            self.config.output_topic.clone(),
            Some(self.config.dlq_topic.clone()),
        ];
        // Ends the probe however scoring ends, a panic included.
        let _end_probe = crate::serving::probe::start(
            self.producer.clone(),
            self.config.kafka.clone(),
            needed.into_iter().flatten().collect(),
            self.sink.clone(),
        )
        .map_err(ScorerError::Spawn)?;
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
        let mut state = LoopState {
            slots: Slots::new(
                self.config.model.clone(),
                self.config.challenger.clone(),
                self.config.policy,
                self.config.models_dir.clone(),
                self.config.input_topic.clone(),
            ),
            json: Vec::with_capacity(256),
            batcher: match &self.config.output_topic {
                Some(topic) => Some(TopicBatcher::new(self.producer.shared(), topic)?),
                None => None,
            },
            pending: Pending::default(),
            report: ScoreReport::default(),
            summary: ScorerSummary::default(),
            writer,
            reader_gone: false,
            last_event_ms: BTreeMap::new(),
        };
        if let Some(batcher) = state.batcher.as_mut() {
            batcher.watch_partitions(&self.config.kafka);
        }
        // A challenger loaded at start is news to every sink, as one loaded later is.
        if let Some(line) = state.slots.challenger_line() {
            self.sink
                .emit(EngineEvent::Model(ModelEvent::Challenger(Some(line))));
        }
        let mut last_report = Instant::now();
        let mut last_store = Instant::now();
        let mut batch = self.records.batch(RECORDS_PER_TAKE);
        let mut watch = self.config.model_path.clone().map(ModelWatch::new);
        let mut last_watch = Instant::now();
        let mut reported_failures = 0;
        let left = |summary: &ScorerSummary| {
            self.config.max_records.map_or(usize::MAX, |m| {
                usize::try_from(m.saturating_sub(summary.totals.handled())).unwrap_or(usize::MAX)
            })
        };
        while !stop.load(Ordering::Relaxed) && !state.reader_gone && left(&state.summary) > 0 {
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
                    Ok(_) if left(&state.summary) == 0 => {}
                    // Published at once: the next poll may serve a rebalance, which must find
                    // every handled record handed to the producer (and, exactly-once, inside the
                    // transaction it commits).
                    Ok(msg) => {
                        self.handle(
                            Record::of(&msg),
                            crate::engine::now_ms_precise(),
                            &mut state,
                        );
                        self.publish(&mut state);
                    }
                    // Broker outages are reported once through the context's error callback.
                    Err(e) => tracing::debug!(error = %e, "consume"),
                }
            }
            // The consumer's non-empty callback ends this wait when a control event arrives.
            self.records
                .take(&mut batch, POLL_WAIT, left(&state.summary));
            if !batch.is_empty() {
                // One clock reading serves the batch: it is handled within a fraction of a ms.
                let now_ms = crate::engine::now_ms_precise();
                for record in batch.records() {
                    match record {
                        Ok(record) => self.handle(record, now_ms, &mut state),
                        Err(e) => tracing::debug!(error = %e, "consume"),
                    }
                }
                batch.clear();
                self.publish(&mut state);
            }
            #[cfg(debug_assertions)]
            if let Some(after) = self.panic_after {
                assert!(
                    state.summary.totals.handled() < after,
                    "test hook: panic after {after} records"
                );
            }
            for command in self.commands.take() {
                for event in state.slots.command(command, crate::engine::now_ms()) {
                    self.sink.emit(EngineEvent::Model(event));
                }
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
                if let Some(change) = watch.as_mut().and_then(ModelWatch::changed) {
                    let events = match change {
                        Ok(artifact) => state.slots.reload(artifact, crate::engine::now_ms()),
                        Err(e) => vec![ModelEvent::Rejected(e.to_string())],
                    };
                    for event in events {
                        self.sink.emit(EngineEvent::Model(event));
                    }
                }
            }
            if now.duration_since(last_report) >= REPORT_INTERVAL {
                for event in state.slots.apply_policy(crate::engine::now_ms()) {
                    self.sink.emit(EngineEvent::Model(event));
                }
                let failures = self.failures.load(Ordering::Relaxed);
                state.report.delivery_errors = failures - reported_failures;
                reported_failures = failures;
                self.emit_report(&mut state);
                state.flush_writer();
                self.consumer
                    .context()
                    .set_last_event_ms(&state.last_event_ms);
                last_report = now;
            }
        }
        // Every loop turn ends with nothing pending; a stop must not leave a handled record
        // unpublished whatever the loop becomes.
        self.publish(&mut state);
        if let Some(t) = &self.transactions {
            // Exactly-once: the open transaction commits (its outputs and offsets together), or,
            // after a failure, nothing more does.
            if let Some(reason) = t.failure() {
                return Err(ScorerError::Transactions(reason));
            }
            match t.commit(&self.producer, &self.consumer, &self.config.input_topic) {
                Ok(Commit::Committed | Commit::Nothing) => {
                    self.committed.store(true, Ordering::Relaxed);
                }
                // Nothing of it is visible, and its offsets are not committed: the next run scores
                // it.
                Ok(Commit::Aborted) => {}
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
        state.flush_writer();
        state.summary.totals.delivery_errors = self.failures.load(Ordering::Relaxed);
        state.report.delivery_errors = state.summary.totals.delivery_errors - reported_failures;
        self.emit_report(&mut state);
        state.summary.latency = lock(&self.tracker).latency();
        let left = lock(&self.tracker).in_flight();
        if left > 0 {
            tracing::warn!(left, "records still unacknowledged at shutdown");
        }
        Ok(state.summary)
    }

    /// Sends what happened since the last report to the sink.
    fn emit_report(&self, state: &mut LoopState) {
        if state.report.is_empty() {
            return;
        }
        let mut out = std::mem::take(&mut state.report);
        let excess = out.recent.len().saturating_sub(ScoreReport::RECENT);
        out.recent.drain(..excess);
        out.latency = lock(&self.tracker).recent_latency(crate::engine::now_ms_precise());
        out.transactions = self.transactions.as_ref().map(|t| t.counts());
        out.accuracy = state.slots.accuracy();
        out.drift = state.slots.alarm();
        out.comparison = state.slots.comparison();
        self.sink.emit(EngineEvent::Scored(out));
    }

    /// Scores one record and hands its prediction or dead letter to the producer.
    fn handle(&self, record: Record<'_>, now_ms: f64, state: &mut LoopState) {
        let (partition, offset) = (record.partition, record.offset);
        match scoring::score(&record, state.slots.serving()) {
            Ok(scored) => {
                let event_ms = scored.event_ms;
                if let Some(t) = event_ms {
                    state.last_event_ms.insert(partition, t);
                }
                let latency_ms = latency_ms(event_ms, now_ms);
                if let Some(t) = &self.transactions {
                    t.handled(partition, offset);
                }
                let challenge = state.slots.challenger().and_then(|c| scored.challenge(c));
                let challenger_predicted = challenge.map(|c| c.predicted_salary);
                let prediction = scored.prediction(
                    &record,
                    &state.slots.serving().version,
                    latency_ms,
                    challenge,
                );
                let json: &[u8] = if state.batcher.is_some() {
                    // Tracked and published with the rest of the batch, by `publish`.
                    state
                        .pending
                        .push(record.key, (partition, offset, event_ms), |out| {
                            prediction.write_json(out);
                        })
                } else {
                    lock(&self.tracker).complete(partition, offset, event_ms, now_ms);
                    state.json.clear();
                    if state.writer.is_some() {
                        prediction.write_json(&mut state.json);
                    }
                    &state.json
                };
                if let Some(w) = state.writer.as_mut() {
                    if let Err(e) = w.write(json) {
                        tracing::debug!(error = %e, "prediction writer");
                        state.reader_gone = true;
                    }
                }
                // After the prediction is out: it borrows the slots (the versions it names).
                if let Some(label) = scored.event.salary {
                    state.slots.observe(
                        scored.event.years,
                        label,
                        scored.predicted,
                        challenger_predicted,
                        crate::engine::now_ms(),
                    );
                }
                state.summary.totals.scored += 1;
                state.summary.totals.extrapolated += u64::from(scored.extrapolated);
                self.handled.fetch_add(1, Ordering::Relaxed);
                let report = &mut state.report;
                report.scored += 1;
                report.extrapolated += u64::from(scored.extrapolated);
                report.recent.push(ScoredEvent {
                    partition,
                    offset,
                    event_ms,
                    years: scored.event.years,
                    predicted: scored.predicted,
                    salary: scored.event.salary,
                    latency_ms,
                    extrapolated: scored.extrapolated,
                });
                if report.recent.len() >= 2 * ScoreReport::RECENT {
                    report.recent.drain(..ScoreReport::RECENT);
                }
            }
            Err(bad) => {
                let reason = bad.to_string();
                // The tracker takes a partition's offsets in order: the predictions before
                // this record go first.
                self.publish(state);
                lock(&self.tracker).track(partition, offset, None);
                if let Some(t) = &self.transactions {
                    t.handled(partition, offset);
                }
                let mut out: BaseRecord<'_, [u8], [u8], usize> =
                    BaseRecord::with_opaque_to(&self.config.dlq_topic, pack(partition, offset))
                        .headers(dead_letter_headers(&record, &reason));
                if let Some(payload) = record.payload {
                    out = out.payload(payload);
                }
                if let Some(key) = record.key {
                    out = out.key(key);
                }
                if let Err(e) = self.producer.send_waiting(out) {
                    self.failed(partition, offset, &e);
                }
                state.summary.totals.bad += 1;
                self.handled.fetch_add(1, Ordering::Relaxed);
                let report = &mut state.report;
                report.bad += 1;
                *report.bad_by_class.entry(bad.class()).or_default() += 1;
                report.last_bad = Some(reason);
            }
        }
    }

    /// Hands the predictions of the records handled since the last call to the producer.
    fn publish(&self, state: &mut LoopState) {
        let Some(batcher) = state.batcher.as_mut() else {
            return;
        };
        if state.pending.records.is_empty() {
            return;
        }
        // One lock for the batch; before the records go, so no acknowledgement comes first.
        let mut tracker = lock(&self.tracker);
        for &(partition, offset, event_ms) in &state.pending.tracked {
            tracker.track(partition, offset, event_ms);
        }
        drop(tracker);
        for (opaque, e) in batcher.send(&state.pending.bytes, &state.pending.records) {
            let (partition, offset) = unpack(opaque);
            self.failed(partition, offset, &e);
        }
        state.pending.clear();
    }

    /// A record the producer refused: never acknowledged, so its offset is never committed and it
    /// is consumed again after a restart.
    fn failed(&self, partition: i32, offset: i64, error: &KafkaError) {
        tracing::error!(%error, partition, offset, "produce");
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}
