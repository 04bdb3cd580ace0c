//! The scorer: one thread that consumes, scores, publishes and dead-letters, and stores offsets
//! at-least-once (or commits them in transactions, exactly-once).
//!
//! The loop and its shutdown live here; what it uses lives beside it, one job a file:
//! [`scorer_setup`](crate::serving::scorer_setup) builds its clients from its configuration,
//! [`scorer_records`](crate::serving::scorer_records) handles each record,
//! [`scorer_report`](crate::serving::scorer_report) counts and reports,
//! [`scoring`](crate::serving::scoring) scores a record with no broker, [`offsets`](crate::serving::offsets)
//! decides which input offsets may be committed, [`group`](crate::serving::group) serves rebalances,
//! [`probe`](crate::serving::probe) watches the broker's health, [`quality`](crate::observe::quality) the model's
//! accuracy, and [`crate::model`] retrains and watches the artifact file. An input offset is
//! stored for commit only after its prediction (or dead letter) is acknowledged, and only once
//! every earlier offset of its partition is too. On shutdown the producer is flushed and the
//! stored offsets are committed synchronously, then the group left: each step takes what is left
//! of one deadline ([`StopDeadline`]), fixed when the stop begins.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::engine::{EngineEvent, ModelEvent, SharedSink, StopDeadline, Totals};
use crate::formats::registry_client::RegistryClient;
use crate::kafka::intake::{Batch, IdleIntake, IdleSignal, Record, RecordQueue};
use crate::model::ModelWatch;
pub use crate::observe::stats::LatencySummary;
use crate::serving::call_watch::RESUME;
use crate::serving::group::ScoringContext;
use crate::serving::offsets::{lock, OffsetTracker, ScoringProducer};
use crate::serving::scorer_records::Outputs;
use crate::serving::scorer_records::RegistryInput;
use crate::serving::scorer_report::Tally;
pub use crate::serving::scorer_report::Unfinished;
pub use crate::serving::scorer_setup::ScorerConfig;
use crate::serving::scorer_setup::{Clients, Commands};
use crate::serving::slots::{ModelCommand, Slots};
use crate::serving::transactions::Transactions;

/// How long the loop waits for a record when none is queued, while something is in flight
/// (predictions to acknowledge and store, a transaction to commit, a report to send).
const POLL_WAIT: Duration = Duration::from_millis(5);
/// How long it waits with nothing in flight. A record or a control event ends the wait at once
/// either way; only a stop or a model command waits up to this long. Idle `score` took 1.2% of
/// a core with 5 ms (BENCHMARKS.md).
const IDLE_POLL_WAIT: Duration = Duration::from_millis(50);
/// Most records taken from the queue at once. The clock is read once per batch, so a batch is
/// kept small enough (well under a millisecond of work) for per-record latencies to stay exact
/// to a fraction of a millisecond. As many as an ONNX model is run on at once elsewhere.
const RECORDS_PER_TAKE: usize = crate::model::BATCH_ROWS;
/// Most control events served between two batches (so that a flood of them, such as librdkafka's
/// debug log, cannot starve scoring).
const CONTROL_EVENTS_PER_TURN: usize = 64;
/// How often the artifact file is checked for a new version.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// How often acknowledged offsets are stored for the next commit.
const STORE_INTERVAL: Duration = Duration::from_millis(10);
/// How long a stopping scorer waits for room in librdkafka's full local queue.
const QUEUE_FULL_PATIENCE: Duration = Duration::from_secs(1);
/// A bound for a stop and its flush that users of the library may take; the commands take
/// `--shutdown-timeout`.
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
    /// A transactional call into librdkafka never returned: a new run resumes.
    #[error(transparent)]
    Stuck(#[from] crate::serving::call_watch::StuckCall),
    /// A transaction could neither commit nor abort, and no other instance fenced this one.
    #[error("exactly-once: {0}; nothing more is committed by this run: {RESUME}")]
    Resumable(String),
    /// The scorer thread panicked.
    #[error("the scorer thread panicked: {0}")]
    Panicked(String),
    /// The broker refused what scoring needs: reading the input, the group, or writing the
    /// output. Nothing was committed past what was acknowledged.
    #[error("{0}")]
    Refused(String),
    /// The stop's deadline passed before everything was acknowledged, committed and the group
    /// left: the line says what was left ([`Unfinished::cut_short_line`]).
    #[error("{0}")]
    CutShort(String),
}

/// Counts at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScorerSummary {
    /// Records scored and dead-lettered, scored beyond the training range, deliveries failed.
    pub totals: Totals,
    /// From each event's time to the acknowledgement of its prediction.
    pub latency: LatencySummary,
}

/// A running scorer.
pub struct ScorerHandle {
    stop: Arc<AtomicBool>,
    idle: Arc<IdleSignal>,
    handled: Arc<AtomicU64>,
    commands: Commands,
    unfinished: Unfinished,
    /// When the stop must be done, once asked for.
    pub(super) stopping: StopDeadline,
    /// How long a stop may take in all (`--shutdown-timeout`).
    bound: Duration,
    thread: JoinHandle<Result<ScorerSummary, ScorerError>>,
}

impl ScorerHandle {
    /// Asks the scorer to fit, promote, roll back or drop a model; served before its next batch.
    pub fn command(&self, command: ModelCommand) {
        self.commands.send(command);
        // A paused scorer waits for records up to a look's interval: served now, not then.
        self.idle.wake();
    }

    /// Tells the scorer that records are on their way (the dashboard's own producer is sending):
    /// one that stopped fetching while idle ([`IdleIntake`]) resumes at once, and one that fetches
    /// goes on. Cheap: a flag and, only when it was not set yet, a wake of the loop's wait.
    pub fn wake(&self) {
        self.idle.nudge();
    }

    /// Whether the scorer has stopped fetching for want of records (the embedded broker only):
    /// it then looks at its partitions' end offsets a few times a second instead.
    pub fn fetch_paused(&self) -> bool {
        self.idle.paused()
    }

    /// Records handled so far (scored or dead-lettered), updated as each one is.
    pub fn handled(&self) -> Arc<AtomicU64> {
        self.handled.clone()
    }

    /// What is left to do while it stops.
    pub fn unfinished(&self) -> Unfinished {
        self.unfinished.clone()
    }

    /// Asks the scorer to finish (flush, commit, leave the group) within its configured
    /// `shutdown_timeout` from now.
    pub fn stop(&self) {
        self.stop_by(Instant::now() + self.bound);
    }

    /// Asks the scorer to finish by `deadline`: flushing, the final commit or abort and leaving
    /// the group each take what is left of it. The first deadline fixed stands.
    pub fn stop_by(&self, deadline: Instant) {
        self.stopping.fix(deadline);
        self.stop.store(true, Ordering::Relaxed);
        self.idle.wake();
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
/// configuration errors surface here. Registry-framed values are dead letters (see
/// [`spawn_with_registry`]).
pub fn spawn(
    config: ScorerConfig,
    sink: SharedSink,
    writer: Option<BoxedWriter>,
) -> Result<ScorerHandle, ScorerError> {
    spawn_with_registry(config, None, sink, writer)
}

/// Starts the scorer as [`spawn`] does; with a `registry`, a value framed for it (a zero byte
/// first) is decoded by its schema, fetched and compiled once per id.
pub fn spawn_with_registry(
    config: ScorerConfig,
    registry: Option<Arc<RegistryClient>>,
    sink: SharedSink,
    writer: Option<BoxedWriter>,
) -> Result<ScorerHandle, ScorerError> {
    let scorer = Scorer::new(config, registry, sink.clone())?;
    let stop = scorer.stop.clone();
    let idle = scorer.idle.clone();
    let handled = scorer.handled.clone();
    let commands = scorer.commands.clone();
    let unfinished = scorer.unfinished();
    let stopping = scorer.stopping.clone();
    let bound = scorer.config.shutdown_timeout;
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("scorer".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scorer.run(&flag, writer)
            }))
            .unwrap_or_else(|panic| Err(ScorerError::Panicked(crate::engine::panic_text(&*panic))));
            // Stopping because asked to is no news, nor is a stop cut short (its line ends the
            // run); stopping on its own always is.
            if let Err(e) = &result {
                if !matches!(e, ScorerError::CutShort(_)) {
                    sink.emit(EngineEvent::Failed(e.to_string()));
                }
            }
            result
        })
        .map_err(ScorerError::Spawn)?;
    Ok(ScorerHandle {
        stop,
        idle,
        handled,
        commands,
        unfinished,
        stopping,
        bound,
        thread,
    })
}

/// What the scoring loop carries from one turn to the next, owned by the scorer thread.
pub(super) struct LoopState {
    /// The serving model and the challenger, and how each is doing.
    pub(super) slots: Slots,
    /// Where predictions go, and those not handed to the producer yet.
    pub(super) outputs: Outputs,
    /// What happened since the last report, and since the start.
    pub(super) tally: Tally,
    /// The event time of the last record handled from each partition.
    pub(super) last_event_ms: BTreeMap<i32, i64>,
    /// How large a dead letter the dead-letter topic takes.
    pub(super) dead_letters: crate::serving::dead_letters::DeadLetterLimit,
    /// Watches the artifact file; `None` for the built-in artifact.
    watch: Option<ModelWatch>,
    /// When the artifact file was last checked.
    last_watch: Instant,
    /// When the loop began: a producer refused its id at the start waits a moment for the
    /// consumer's own refusal.
    pub(super) began: Instant,
    /// When offsets were last stored (exactly-once: the last transaction committed).
    last_store: Instant,
    /// What the broker refused this client, if it did: scoring stops with it.
    pub(super) refused: Option<String>,
    /// Framed values' schemas, when a registry is given.
    pub(super) registry: Option<RegistryInput>,
    /// A record was left unhandled (stopped while waiting for the registry): nothing after it
    /// may be handled, so the loop ends.
    halted: bool,
    /// Whether fetching is paused for want of records, and when it resumes.
    idle: IdleIntake,
}

/// The scorer thread's clients and what it shares with its [`ScorerHandle`].
pub(super) struct Scorer {
    /// Records handled so far, read by [`ScorerHandle::handled`].
    pub(super) handled: Arc<AtomicU64>,
    /// Sent by [`ScorerHandle::command`]; served by the scoring loop.
    commands: Commands,
    /// Nudges from [`ScorerHandle::wake`]; whether fetching is paused while idle.
    idle: Arc<IdleSignal>,
    /// What the scorer was started with.
    pub(super) config: ScorerConfig,
    /// Where the scorer reports.
    pub(super) sink: SharedSink,
    /// The records of the input topic's partitions.
    records: Arc<RecordQueue>,
    /// The input topic's consumer, which serves the control events.
    pub(super) consumer: Arc<BaseConsumer<ScoringContext>>,
    /// Publishes predictions and dead letters.
    pub(super) producer: Arc<ScoringProducer>,
    /// Predictions and dead letters not yet acknowledged, and the offsets they hold back.
    pub(super) tracker: Arc<Mutex<OffsetTracker>>,
    /// Deliveries that failed so far.
    pub(super) failures: Arc<AtomicU64>,
    /// Set once the final offset commit went through.
    pub(super) committed: Arc<AtomicBool>,
    /// Exactly-once: the transactions; `None` for at-least-once.
    pub(super) transactions: Option<Arc<Transactions>>,
    /// The registry framed values are decoded through, if any.
    registry: Option<Arc<RegistryClient>>,
    /// Set by [`ScorerHandle::stop`]; read by the loop and by waits inside a record.
    pub(super) stop: Arc<AtomicBool>,
    /// When the stop must be done: fixed by [`ScorerHandle::stop_by`], else when the loop ends
    /// by itself; shared with the consumer's context and the transactions.
    pub(super) stopping: StopDeadline,
    /// Test hook (debug builds only): panic once this many records are handled.
    #[cfg(debug_assertions)]
    panic_after: Option<u64>,
}

impl Scorer {
    /// Builds the clients from `config`; reports go to `sink`.
    fn new(
        config: ScorerConfig,
        registry: Option<Arc<RegistryClient>>,
        sink: SharedSink,
    ) -> Result<Self, ScorerError> {
        let Clients {
            records,
            consumer,
            producer,
            tracker,
            failures,
            transactions,
            stopping,
        } = Clients::build(&config, &sink)?;
        Ok(Scorer {
            handled: Arc::new(AtomicU64::new(0)),
            commands: Commands::default(),
            idle: IdleSignal::new(records.waker()),
            config,
            sink,
            records,
            consumer,
            producer,
            tracker,
            failures,
            committed: Arc::new(AtomicBool::new(false)),
            transactions,
            registry,
            stop: Arc::new(AtomicBool::new(false)),
            stopping,
            #[cfg(debug_assertions)]
            panic_after: std::env::var("SALARY_STREAM_TEST_SCORER_PANIC_AFTER")
                .ok()
                .and_then(|v| v.parse().ok()),
        })
    }

    /// Watches the broker's health while the loop runs, then leaves the group.
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
        let left = self.leave_group(self.deadline());
        match result {
            Ok(_) if !left => Err(self.cut_short()),
            result => result,
        }
    }

    /// The loop: each turn serves control events, scores a batch, serves model commands, and
    /// stores offsets, watches the artifact and reports when each is due; then the shutdown.
    fn score_until_stopped(
        &self,
        stop: &AtomicBool,
        writer: Option<BoxedWriter>,
    ) -> Result<ScorerSummary, ScorerError> {
        let mut state = self.start_loop(writer)?;
        let mut batch = self.records.batch(RECORDS_PER_TAKE);
        while !stop.load(Ordering::Relaxed)
            && !state.outputs.reader_gone()
            && self.left(&mut state.tally) > 0
            && !state.halted
        {
            self.serve_control_events(&mut state);
            let busy = self.score_batch(&mut batch, &mut state) || !self.nothing_in_flight(&state);
            let rebalances = self.consumer.context().rebalances();
            let topic = &self.config.input_topic;
            (state.idle).turn(busy, rebalances, &self.consumer, topic);
            if let Some(line) = self.refusal(&state) {
                // Whatever was acknowledged stays stored; nothing past it is committed.
                self.publish(&mut state.outputs);
                return Err(ScorerError::Refused(line));
            }
            #[cfg(debug_assertions)]
            if let Some(after) = self.panic_after {
                assert!(
                    state.tally.handled() < after,
                    "test hook: panic after {after} records"
                );
            }
            self.serve_model_commands(&mut state);
            let now = Instant::now();
            if self.store_offsets_if_due(now, &mut state).is_break() {
                break;
            }
            self.reload_artifact_if_changed(now, &mut state);
            self.report_if_due(now, &mut state);
        }
        // Fixed before anything of the stop is done: every step below takes what is left of it.
        let deadline = self.deadline();
        // Every loop turn ends with nothing pending; a stop must not leave a handled record
        // unpublished whatever the loop becomes.
        self.publish(&mut state.outputs);
        self.commit_on_shutdown(deadline)?;
        if let Some(line) = self.refusal(&state) {
            return Err(ScorerError::Refused(line));
        }
        Ok(self.final_report(state))
    }

    /// The loop's state at start: the models in their slots, the outputs, nothing counted yet.
    fn start_loop(&self, writer: Option<BoxedWriter>) -> Result<LoopState, ScorerError> {
        let mut state = LoopState {
            slots: Slots::new(
                self.config.model.clone(),
                self.config.challenger.clone(),
                self.config.policy,
                self.config.models_dir.clone(),
                self.config.input_topic.clone(),
            ),
            outputs: Outputs::new(
                &self.producer,
                self.config.output_topic.as_deref(),
                &self.config.kafka,
                writer,
            )?,
            tally: Tally::new(self.transactions.clone()),
            last_event_ms: BTreeMap::new(),
            dead_letters: Default::default(),
            watch: self.config.model_path.clone().map(ModelWatch::new),
            last_watch: Instant::now(),
            began: Instant::now(),
            last_store: Instant::now(),
            refused: None,
            registry: self.registry.clone().map(RegistryInput::new),
            halted: false,
            // Only the embedded broker: a real one answers a fetch as soon as records arrive,
            // and an idle fetch there waits half a second.
            idle: IdleIntake::new(self.config.kafka.embedded, self.idle.clone()),
        };
        // Once stopping, a queue that stays full is a broker that takes nothing.
        let patience = QUEUE_FULL_PATIENCE.min(self.config.shutdown_flush);
        state
            .outputs
            .give_up_after(&self.stop, patience, &self.stopping);
        if let Some(registry) = &state.registry {
            self.sink.emit(EngineEvent::Registry(registry.status()));
        }
        // A challenger loaded at start is news to every sink, as one loaded later is.
        if let Some(line) = state.slots.challenger_line() {
            self.sink
                .emit(EngineEvent::Model(ModelEvent::Challenger(Some(line))));
        }
        Ok(state)
    }

    /// Records still to handle before `--count` is reached (`usize::MAX` without one).
    fn left(&self, tally: &mut Tally) -> usize {
        self.config.max_records.map_or(usize::MAX, |m| {
            usize::try_from(m.saturating_sub(tally.handled())).unwrap_or(usize::MAX)
        })
    }

    /// The control step: serves at most [`CONTROL_EVENTS_PER_TURN`] of the consumer's queued
    /// events.
    fn serve_control_events(&self, state: &mut LoopState) {
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
                Ok(_) if self.left(&mut state.tally) == 0 => {}
                // Published at once: the next poll may serve a rebalance, which must find
                // every handled record handed to the producer (and, exactly-once, inside the
                // transaction it commits).
                Ok(msg) => {
                    let now_ms = crate::engine::now_ms_precise();
                    if self.handle(Record::of(&msg), now_ms, state).is_break() {
                        state.halted = true;
                        return;
                    }
                    self.publish(&mut state.outputs);
                }
                // Broker outages are reported once through the context's error callback.
                Err(e) => self.note_consume_error(&e, state),
            }
        }
    }

    /// Notes a consumer error: a refusal to read the input topic or to join the group stops
    /// scoring; others are logged (outages are reported by the consumer's context).
    fn note_consume_error(&self, error: &KafkaError, state: &mut LoopState) {
        tracing::debug!(%error, "consume");
        let what = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => {
                format!("read topic {}", self.config.input_topic)
            }
            Some(RDKafkaErrorCode::GroupAuthorizationFailed) => {
                format!("read group {}", self.config.group)
            }
            _ => return,
        };
        state
            .refused
            .get_or_insert_with(|| self.not_authorized(&what));
    }

    /// The poll step: takes a batch of records from the queue, waiting [`POLL_WAIT`] at most for
    /// one, handles them, and hands their predictions to the producer. Returns whether it took
    /// any.
    fn score_batch(&self, batch: &mut Batch, state: &mut LoopState) -> bool {
        // The consumer's non-empty callback ends this wait when a control event arrives.
        self.records
            .take(batch, self.poll_wait(state), self.left(&mut state.tally));
        if batch.is_empty() {
            return false;
        }
        // One clock reading serves the batch: it is handled within a fraction of a ms.
        let now_ms = crate::engine::now_ms_precise();
        let mut ahead = self.score_ahead(batch, state);
        for record in batch.records() {
            let handled = match record {
                Ok(record) => self.handle_ahead(record, now_ms, state, &mut ahead),
                Err(e) => {
                    self.note_consume_error(&e, state);
                    ControlFlow::Continue(())
                }
            };
            // The records after one left unhandled stay so: none is committed past it.
            if handled.is_break() {
                state.halted = true;
                break;
            }
        }
        batch.clear();
        self.publish(&mut state.outputs);
        true
    }

    /// How long the poll step may wait: [`IDLE_POLL_WAIT`] when nothing is in flight, else
    /// [`POLL_WAIT`]; paused while idle, until the next look at the end offsets (a stop, a
    /// model command or a nudge ends the wait at once).
    fn poll_wait(&self, state: &LoopState) -> Duration {
        if let Some(wait) = state.idle.until_look() {
            return wait;
        }
        if self.nothing_in_flight(state) {
            IDLE_POLL_WAIT
        } else {
            POLL_WAIT
        }
    }

    /// Whether nothing waits to be acknowledged, committed or reported.
    fn nothing_in_flight(&self, state: &LoopState) -> bool {
        state.tally.nothing_to_report()
            && lock(&self.tracker).in_flight() == 0
            && self.transactions.as_ref().is_none_or(|t| t.nothing_open())
    }

    /// The model-command step: serves the commands sent since the last turn.
    fn serve_model_commands(&self, state: &mut LoopState) {
        for command in self.commands.take() {
            self.emit_model_events(state.slots.command(command, crate::engine::now_ms()));
        }
    }

    /// The offsets step: at-least-once, stores the acknowledged offsets every
    /// [`STORE_INTERVAL`]; exactly-once, commits the open transaction every interval. Breaks
    /// once a transaction failed.
    pub(super) fn store_offsets_if_due(
        &self,
        now: Instant,
        state: &mut LoopState,
    ) -> ControlFlow<()> {
        match &self.transactions {
            // Offsets go with each transaction, committed once per interval.
            Some(t) => {
                // At `--count`, at once: an abort then leaves records to score again in this run.
                if now.duration_since(state.last_store) >= t.interval
                    || self.left(&mut state.tally) == 0
                {
                    state.last_store = now;
                    if t.commit(&self.producer, &self.consumer, &self.config.input_topic)
                        .is_err()
                    {
                        return ControlFlow::Break(());
                    }
                }
                if t.failure().is_some() {
                    return ControlFlow::Break(());
                }
            }
            // Storing offsets costs a list and a library call: once per interval, not per
            // record.
            None => {
                if now.duration_since(state.last_store) >= STORE_INTERVAL {
                    self.consumer.context().store_ready(&self.consumer);
                    state.last_store = now;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// The watch step: every [`WATCH_INTERVAL`], serves a new version of the artifact file, or
    /// says why it cannot serve.
    fn reload_artifact_if_changed(&self, now: Instant, state: &mut LoopState) {
        if now.duration_since(state.last_watch) < WATCH_INTERVAL {
            return;
        }
        state.last_watch = now;
        if let Some(change) = state.watch.as_mut().and_then(ModelWatch::changed) {
            let events = match change {
                Ok(artifact) => state.slots.reload(artifact, crate::engine::now_ms()),
                Err(e) => vec![ModelEvent::Rejected(e.to_string())],
            };
            self.emit_model_events(events);
        }
    }

    /// Tells the sink what happened to the models.
    pub(super) fn emit_model_events(&self, events: Vec<ModelEvent>) {
        for event in events {
            self.sink.emit(EngineEvent::Model(event));
        }
    }
}
