//! The synthetic producer: events like `{"id": 7, "years_experience": 5.3, "ts_ms": ...}` at a set
//! rate (token bucket), started, stopped and re-rated by commands while it runs.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;

use crate::kafka::delivery::{Outgoing, PolledProducer, TopicBatcher};

use super::producer_acks::{AckCounter, CountingContext};
use super::synthetic::ModelEvents;
use crate::engine::{now_ms, EngineEvent, ProducerStatus, Rate, SharedSink};
use crate::kafka::config::KafkaOptions;
use crate::model::Artifact;

/// How often a running producer reports its status.
const STATUS_INTERVAL: Duration = Duration::from_millis(250);
/// How far the producer may run ahead of a scorer that paces it.
pub const MAX_AHEAD: u64 = 20_000;
/// How long a finishing producer waits for acknowledgements by default.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// Events handed to librdkafka at once, with one reading of the clock for their `ts_ms` (tens
/// of µs of events at full speed).
const EVENTS_PER_SEND: u64 = 64;
/// Share of events drawn beyond the training range.
const OUT_OF_RANGE_SHARE: f64 = 0.05;

/// The relationship labels are drawn from: `intercept + slope × years`, times `drift`, plus
/// Gaussian noise of `noise_sd`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelModel {
    /// Salary per year.
    pub slope: f64,
    /// Salary at zero years.
    pub intercept: f64,
    /// Spread of the noise (the training RMSE).
    pub noise_sd: f64,
    /// Factor applied to the clean salary (1.0 without drift).
    pub drift: f64,
}

/// What the producer sends and how fast.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Brokers and client properties.
    pub kafka: KafkaOptions,
    /// Topic to produce to.
    pub topic: String,
    /// Starting rate.
    pub rate: Rate,
    /// Stop after this many events (and exit once all are acknowledged).
    pub count: Option<u64>,
    /// What events are drawn, and whether they are labeled.
    pub events: Synthetic,
    /// Seed for reproducible streams; random when `None`.
    pub seed: Option<u64>,
    /// Send from the start (headless) or wait for a start command (dashboard).
    pub start_running: bool,
    /// Refuse to start when the topic does not exist on this broker (named in the error); `None`
    /// sends regardless (the embedded broker has its topics).
    pub require_topic_on: Option<String>,
    /// Records a scorer in this process has handled: the producer stays at most
    /// [`MAX_AHEAD`] events ahead of it. The embedded broker keeps only about 5 MB a partition, so
    /// an unthrottled producer would otherwise prune records before the scorer can fetch them.
    pub paced_by: Option<Arc<AtomicU64>>,
}

/// Commands a running producer takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProducerCommand {
    /// Start if stopped, stop if started.
    Toggle,
    /// Set the rate.
    SetRate(Rate),
    /// Multiply the labels' salaries by this factor (1.0: no drift).
    SetDrift(f64),
    /// Finish: flush for at most this long, then end the thread.
    Shutdown(Duration),
}

/// What a producer draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Synthetic {
    /// The salary demo's events: years within `range` (a few beyond it), labeled `salary` by
    /// `labels` when given.
    Salary {
        /// Training range of years, to draw mostly inside of.
        range: (f64, f64),
        /// Attach `"salary"` labels drawn from this relationship.
        labels: Option<LabelModel>,
    },
    /// Any other model's events.
    Model(ModelEvents),
}

impl Synthetic {
    /// Events for `artifact`: the demo's own stream for the salary model, else its features'
    /// ([`ModelEvents`]); labeled when `labels`, the labels times `drift`.
    pub fn for_artifact(artifact: &Artifact, labels: bool, drift: f64) -> Self {
        match artifact.line() {
            Some(line) if artifact.is_salary_shaped() => Synthetic::Salary {
                range: (line.feature.range.min, line.feature.range.max),
                labels: labels.then_some(LabelModel {
                    slope: line.slope,
                    intercept: line.intercept,
                    noise_sd: artifact.rmse,
                    drift,
                }),
            },
            _ => Synthetic::Model(ModelEvents::new(artifact, labels, drift)),
        }
    }
}

/// Draws synthetic events: years mostly within the training range, a few beyond it; or any
/// model's events.
pub struct EventGenerator {
    rng: StdRng,
    range: (f64, f64),
    labels: Option<LabelModel>,
    model: Option<ModelEvents>,
    /// Scratch space for a model's feature values.
    row: Vec<f64>,
    next_id: u64,
}

impl EventGenerator {
    /// A generator of the salary demo's events over `range`, labeling with `labels` when given.
    pub fn new(range: (f64, f64), labels: Option<LabelModel>, seed: Option<u64>) -> Self {
        Self::drawing(Synthetic::Salary { range, labels }, seed)
    }

    /// A generator of `events`.
    pub fn drawing(events: Synthetic, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let (range, labels, model) = match events {
            Synthetic::Salary { range, labels } => (range, labels, None),
            Synthetic::Model(m) => ((0.0, 0.0), None, Some(m)),
        };
        EventGenerator {
            rng,
            range,
            labels,
            model,
            row: Vec::new(),
            next_id: 0,
        }
    }

    /// Draws one `(years, salary label)` pair, years rounded to one decimal as in the data.
    pub fn draw(&mut self) -> (f64, Option<f64>) {
        let (lo, hi) = self.range;
        let years = if self.rng.random_bool(OUT_OF_RANGE_SHARE) {
            self.rng.random_range(hi..hi * 1.5 + 1.0)
        } else {
            self.rng.random_range(lo..=hi)
        };
        let years = (years * 10.0).round() / 10.0;
        let salary = self.labels.map(|m| {
            let clean = (m.intercept + m.slope * years) * m.drift;
            let noise = Normal::new(0.0, m.noise_sd.max(f64::MIN_POSITIVE))
                .map_or(0.0, |n| n.sample(&mut self.rng));
            ((clean + noise) * 100.0).round() / 100.0
        });
        (years, salary)
    }

    /// Writes the next event as JSON into `buf` (cleared first) and returns its id.
    pub fn next_event(&mut self, buf: &mut Vec<u8>, ts_ms: i64) -> u64 {
        buf.clear();
        self.append_event(buf, ts_ms)
    }

    /// Appends the next event as JSON to `buf` and returns its id.
    pub fn append_event(&mut self, buf: &mut Vec<u8>, ts_ms: i64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(model) = &self.model {
            model.append(&mut self.rng, buf, &mut self.row, id, ts_ms);
            return id;
        }
        let (years, salary) = self.draw();
        // Both numbers are already rounded, so they are written as whole tenths and cents: the
        // text `{:.1}` and `{:.2}` give, at a fraction of the cost.
        let mut digits = itoa::Buffer::new();
        buf.extend_from_slice(br#"{"id":"#);
        buf.extend_from_slice(digits.format(id).as_bytes());
        buf.extend_from_slice(br#","years_experience":"#);
        write_fixed(buf, (years * 10.0).round() as i64, 1);
        buf.extend_from_slice(br#","ts_ms":"#);
        buf.extend_from_slice(digits.format(ts_ms).as_bytes());
        if let Some(s) = salary {
            buf.extend_from_slice(br#","salary":"#);
            write_fixed(buf, (s * 100.0).round() as i64, 2);
        }
        buf.push(b'}');
        id
    }

    /// Changes the label drift factor.
    pub fn set_drift(&mut self, drift: f64) {
        if let Some(m) = self.labels.as_mut() {
            m.drift = drift;
        }
        if let Some(m) = self.model.as_mut() {
            m.set_drift(drift);
        }
    }
}

/// Writes `scaled / 10^places` with exactly `places` decimals, as `{:.places$}` would.
fn write_fixed(buf: &mut Vec<u8>, scaled: i64, places: u32) {
    let unit = 10u64.pow(places);
    let magnitude = scaled.unsigned_abs();
    if scaled < 0 {
        buf.push(b'-');
    }
    let mut digits = itoa::Buffer::new();
    buf.extend_from_slice(digits.format(magnitude / unit).as_bytes());
    buf.push(b'.');
    let fraction = digits.format(magnitude % unit);
    buf.extend(std::iter::repeat_n(b'0', places as usize - fraction.len()));
    buf.extend_from_slice(fraction.as_bytes());
}

/// Why the producer failed.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The Kafka client could not be created.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The producer thread could not be started.
    #[error("cannot start the producer thread: {0}")]
    Spawn(std::io::Error),
    /// The thread panicked.
    #[error("the producer thread panicked: {0}")]
    Panicked(String),
    /// The topic does not exist and the broker does not create it.
    #[error("{0}")]
    MissingTopic(String),
    /// The broker refused to take the events: `not authorized to write topic T as USER`.
    #[error("{0}")]
    Refused(String),
    /// Events were still unacknowledged when the flush timed out.
    #[error("{} not acknowledged by the broker", crate::engine::counted(*.0, "event was", "events were"))]
    Unacknowledged(u64),
}

/// A running producer thread.
pub struct ProducerHandle {
    commands: Sender<ProducerCommand>,
    /// Set on shutdown: a send waiting for room in librdkafka's full queue gives up.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    outstanding: Outstanding,
    thread: JoinHandle<Result<ProducerStatus, ProducerError>>,
}

/// Events handed to the client and not yet acknowledged, readable while the producer stops.
#[derive(Clone)]
pub struct Outstanding(Arc<rdkafka::producer::BaseProducer<CountingContext>>);

impl Outstanding {
    /// How many there are now.
    pub fn count(&self) -> u64 {
        u64::try_from(self.0.in_flight_count()).unwrap_or(0)
    }
}

impl ProducerHandle {
    /// Sends a command; ignored if the thread has ended.
    pub fn command(&self, command: ProducerCommand) {
        let _ = self.commands.send(command);
    }

    /// What is still unacknowledged, readable after the handle is gone.
    pub fn outstanding(&self) -> Outstanding {
        self.outstanding.clone()
    }

    /// Whether the thread has ended (a counted run finished).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Shuts down, waiting at most `flush_within` for acknowledgements; returns the final status.
    pub fn shutdown(self, flush_within: Duration) -> Result<ProducerStatus, ProducerError> {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.commands.send(ProducerCommand::Shutdown(flush_within));
        self.thread.join().unwrap_or_else(|panic| {
            Err(ProducerError::Panicked(crate::engine::panic_text(&*panic)))
        })
    }
}

/// The synthetic producer's client settings: its defaults, then the user's (`-X` wins).
fn client_config(kafka: &KafkaOptions) -> rdkafka::ClientConfig {
    kafka.client_config(&[
        // A resend after a lost acknowledgement (a leader that died) must not double an event:
        // on three nodes with a leader SIGKILLed, 14 of 20,000 events were written twice
        // without it.
        ("enable.idempotence", "true"),
        ("linger.ms", "5"),
        ("batch.size", kafka.producer_batch_bytes()),
        ("queue.buffering.max.messages", "200000"),
        // One report per event costs a fifth of the producer's CPU just to count it.
        ("delivery.report.only.error", "true"),
    ])
}

/// Starts the producer thread. The client is created before this returns.
pub fn spawn(config: ProducerConfig, sink: SharedSink) -> Result<ProducerHandle, ProducerError> {
    let counter = Arc::new(AckCounter::default());
    let producer = PolledProducer::create(
        &client_config(&config.kafka),
        CountingContext {
            counter: counter.clone(),
            sink: sink.clone(),
            reasons: crate::engine::FailureReasons::default(),
        },
    )?;
    let (tx, rx) = mpsc::channel();
    let outstanding = Outstanding(producer.shared());
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let give_up = stopping.clone();
    let thread = std::thread::Builder::new()
        .name("producer".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(config, producer, counter, rx, sink.clone(), give_up)
            }))
            .unwrap_or_else(|panic| {
                Err(ProducerError::Panicked(crate::engine::panic_text(&*panic)))
            });
            if let Err(e) = &result {
                sink.emit(EngineEvent::ProducerFailed(e.to_string()));
            }
            result
        })
        .map_err(ProducerError::Spawn)?;
    Ok(ProducerHandle {
        commands: tx,
        stopping,
        outstanding,
        thread,
    })
}

/// Tokens for a rate: refilled continuously, at most a tenth of a second's worth banked.
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn refill(&mut self, rate: u32, now: Instant) -> u64 {
        let per_sec = f64::from(rate);
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * per_sec)
            .min((per_sec / 10.0).max(1.0));
        self.last = now;
        let whole = self.tokens.floor();
        self.tokens -= whole;
        whole as u64
    }

    fn wait_for_next(&self, rate: u32) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / f64::from(rate)).clamp(0.0005, 0.05))
    }
}

/// The producer thread while it runs: its client, what it sends, and how far it got.
struct ProducerRun {
    config: ProducerConfig,
    producer: PolledProducer<CountingContext>,
    counter: Arc<AckCounter>,
    sink: SharedSink,
    generator: EventGenerator,
    status: ProducerStatus,
    bucket: TokenBucket,
    batcher: TopicBatcher<CountingContext>,
    /// The JSON of the events of one send, back to back.
    events: Vec<u8>,
    /// Where each event of `events` lies.
    bounds: Vec<Outgoing<()>>,
}

fn run(
    config: ProducerConfig,
    producer: PolledProducer<CountingContext>,
    counter: Arc<AckCounter>,
    commands: Receiver<ProducerCommand>,
    sink: SharedSink,
    give_up: Arc<std::sync::atomic::AtomicBool>,
) -> Result<ProducerStatus, ProducerError> {
    let generator = EventGenerator::drawing(config.events.clone(), config.seed);
    let status = ProducerStatus {
        running: config.start_running,
        rate: config.rate,
        sent: 0,
        acked: 0,
        failed: 0,
    };
    let bucket = TokenBucket {
        tokens: 1.0,
        last: Instant::now(),
    };
    require_topic(&config, &producer)?;
    let mut batcher = TopicBatcher::new(producer.shared(), &config.topic)?;
    batcher.watch_partitions(&config.kafka);
    batcher.give_up_when(give_up);
    let mut run = ProducerRun {
        config,
        producer,
        counter,
        sink,
        generator,
        status,
        bucket,
        batcher,
        events: Vec::with_capacity(EVENTS_PER_SEND as usize * 128),
        bounds: Vec::with_capacity(EVENTS_PER_SEND as usize),
    };
    run.report();
    let flush_within = run.produce_until_stopped(&commands);
    run.finish(flush_within)
}

/// With `require_topic_on`, refuses to start when the topic does not exist.
fn require_topic(
    config: &ProducerConfig,
    producer: &PolledProducer<CountingContext>,
) -> Result<(), ProducerError> {
    let Some(broker) = &config.require_topic_on else {
        return Ok(());
    };
    // On the producer's own connection: a broker that creates topics on demand does so
    // now. No answer is left to the caller's reachability check.
    if let Ok(missing) = crate::kafka::topics::missing(
        producer.client(),
        &[&config.topic],
        crate::kafka::topics::REQUEST_TIMEOUT,
    ) {
        if !missing.is_empty() {
            return Err(ProducerError::MissingTopic(
                crate::kafka::topics::missing_line(&config.topic, broker, "nothing was sent"),
            ));
        }
    }
    Ok(())
}

impl ProducerRun {
    /// The loop: each turn serves a command, sends what the rate allows, and reports every
    /// [`STATUS_INTERVAL`]; returns how long the final flush may take, once the count is sent or
    /// shutdown is asked for.
    fn produce_until_stopped(&mut self, commands: &Receiver<ProducerCommand>) -> Duration {
        let mut last_status = Instant::now();
        loop {
            if let Some(command) = self.next_command(commands) {
                if let ControlFlow::Break(flush_within) = self.apply(command) {
                    return flush_within;
                }
            }
            if self.sending() {
                let budget = self.budget();
                if budget == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.send(budget);
            }
            if self.done() || self.counter.refused.get().is_some() {
                return FLUSH_TIMEOUT;
            }
            if last_status.elapsed() >= STATUS_INTERVAL {
                // Failed deliveries may say only "fatal".
                if self.counter.failed.load(Ordering::Relaxed) > 0 && self.refused_as_fatal() {
                    return FLUSH_TIMEOUT;
                }
                self.report();
                last_status = Instant::now();
            }
        }
    }

    /// Whether the client's fatal error, if it has one, is a refusal for want of a permission
    /// (then noted): a refused producer id fails every later event only as "fatal".
    fn refused_as_fatal(&self) -> bool {
        self.producer
            .client()
            .fatal_error()
            .is_some_and(|(code, _)| {
                self.counter
                    .note_refusal(&KafkaError::MessageProduction(code))
            })
    }

    /// Whether the count, if there is one, is sent.
    fn done(&self) -> bool {
        self.config.count.is_some_and(|c| self.status.sent >= c)
    }

    /// Whether events go out now: started, and the count not sent yet.
    fn sending(&self) -> bool {
        self.status.running && !self.done()
    }

    /// The command step: waits for a command for as long as the rate leaves before the next
    /// event (not at all when unthrottled, 100 ms when not sending). Every handle gone is a
    /// shutdown with the default flush.
    fn next_command(&self, commands: &Receiver<ProducerCommand>) -> Option<ProducerCommand> {
        let wait = match (self.sending(), self.status.rate) {
            (false, _) => Duration::from_millis(100),
            (true, Rate::Unthrottled) => Duration::ZERO,
            (true, Rate::PerSecond(r)) => self.bucket.wait_for_next(r),
        };
        if wait.is_zero() {
            return commands.try_recv().ok();
        }
        match commands.recv_timeout(wait) {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(ProducerCommand::Shutdown(FLUSH_TIMEOUT)),
        }
    }

    /// Applies `command`; a shutdown breaks with how long the final flush may take.
    fn apply(&mut self, command: ProducerCommand) -> ControlFlow<Duration> {
        match command {
            ProducerCommand::Shutdown(within) => return ControlFlow::Break(within),
            ProducerCommand::Toggle => {
                self.status.running = !self.status.running;
                self.bucket.tokens = 1.0;
                self.bucket.last = Instant::now();
                self.report();
            }
            ProducerCommand::SetRate(rate) => {
                self.status.rate = rate;
                self.report();
            }
            ProducerCommand::SetDrift(factor) => self.generator.set_drift(factor),
        }
        ControlFlow::Continue(())
    }

    /// How many events may go now: what the rate has refilled, at most what is left of the
    /// count, and at most [`MAX_AHEAD`] beyond what a pacing scorer has handled.
    fn budget(&mut self) -> u64 {
        let budget = match self.status.rate {
            Rate::PerSecond(r) => self.bucket.refill(r, Instant::now()),
            Rate::Unthrottled => 10_000,
        };
        let sent = self.status.sent;
        let budget = self.config.count.map_or(budget, |c| budget.min(c - sent));
        self.config.paced_by.as_ref().map_or(budget, |handled| {
            let ahead = sent.saturating_sub(handled.load(Ordering::Relaxed));
            budget.min(MAX_AHEAD.saturating_sub(ahead))
        })
    }

    /// The send step: draws `budget` events and hands them to the batcher,
    /// [`EVENTS_PER_SEND`] at a time.
    fn send(&mut self, budget: u64) {
        let mut left = budget;
        while left > 0 {
            let n = left.min(EVENTS_PER_SEND);
            let ts_ms = now_ms();
            self.events.clear();
            self.bounds.clear();
            for _ in 0..n {
                let start = self.events.len();
                self.generator.append_event(&mut self.events, ts_ms);
                self.bounds.push(Outgoing {
                    value: start..self.events.len(),
                    key: None,
                    opaque: (),
                });
            }
            // No key: ids are unique, so a key would order nothing, and without one the
            // batcher fills one partition at a time (batches of thousands, not dozens).
            for ((), e) in self.batcher.send(&self.events, &self.bounds) {
                // A refusal stops the producer with one line; others are logged each.
                if !self.counter.fail(&e) && !self.refused_as_fatal() {
                    tracing::error!(error = %e, "produce");
                }
            }
            self.status.sent += n;
            left -= n;
        }
    }

    /// The report step: counts the acknowledged and failed events and tells the sink.
    fn report(&mut self) {
        let status = &mut self.status;
        status.failed = self.counter.failed.load(Ordering::Relaxed);
        // The out-queue holds every event not yet acknowledged or reported as failed (and,
        // briefly, other pending callbacks, which can only make this an undercount).
        let in_flight = u64::try_from(self.producer.in_flight_count()).unwrap_or(0);
        status.acked = status.sent.saturating_sub(in_flight + status.failed);
        self.sink.emit(EngineEvent::Producer(*status));
    }

    /// Waits at most `flush_within` for acknowledgements and reports the final status; an
    /// error if events are still unacknowledged.
    fn finish(mut self, flush_within: Duration) -> Result<ProducerStatus, ProducerError> {
        let unflushed = self.producer.flush_within(flush_within);
        if self.refused_as_fatal() || self.counter.refused.get().is_some() {
            let topic = &self.config.topic;
            return Err(ProducerError::Refused(
                match self.config.kafka.sasl_user() {
                    Some(user) => format!("not authorized to write topic {topic} as {user}"),
                    None => format!("not authorized to write topic {topic}"),
                },
            ));
        }
        self.status.running = false;
        self.report();
        let status = self.status;
        let missing = status.sent - status.acked - status.failed;
        if unflushed > 0 && missing > 0 {
            Err(ProducerError::Unacknowledged(missing))
        } else {
            Ok(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_sent_idempotently_unless_the_user_says_otherwise() {
        let mut kafka = KafkaOptions {
            bootstrap: "127.0.0.1:9092".into(),
            properties: vec![],
            embedded: false,
        };
        assert_eq!(
            client_config(&kafka).get("enable.idempotence"),
            Some("true")
        );
        kafka.properties = vec![("enable.idempotence".into(), "false".into())];
        assert_eq!(
            client_config(&kafka).get("enable.idempotence"),
            Some("false")
        );
    }

    #[test]
    fn generator_is_reproducible_and_mostly_in_range() {
        let mut a = EventGenerator::new((1.1, 10.5), None, Some(7));
        let mut b = EventGenerator::new((1.1, 10.5), None, Some(7));
        let draws: Vec<_> = (0..1000).map(|_| a.draw()).collect();
        assert_eq!(draws, (0..1000).map(|_| b.draw()).collect::<Vec<_>>());
        let outside = draws.iter().filter(|(y, _)| *y > 10.5).count();
        assert!(
            (20..=80).contains(&outside),
            "{outside} of 1000 beyond range"
        );
        assert!(draws.iter().all(|(y, s)| *y >= 1.1 && s.is_none()));
    }

    /// Labels drawn as the committed model's training data lies: its line and its RMSE.
    fn training_labels() -> LabelModel {
        LabelModel {
            slope: 9449.962321,
            intercept: 25792.200199,
            noise_sd: 5592.04,
            drift: 1.0,
        }
    }

    #[test]
    fn generator_writes_json_events() {
        let labels = training_labels();
        let mut g = EventGenerator::new((1.1, 10.5), Some(labels), Some(1));
        let mut buf = Vec::new();
        assert_eq!(g.next_event(&mut buf, 1_700_000_000_000), 0);
        let event = crate::formats::json::decode(Some(&buf)).unwrap();
        assert_eq!(event.id, Some(crate::formats::json::EventId::Int(0)));
        assert_eq!(event.ts_ms, Some(1_700_000_000_000));
        let salary = event.label.unwrap();
        let clean = labels.intercept + labels.slope * event.features[0];
        assert!((salary - clean).abs() < 6.0 * labels.noise_sd);
        assert_eq!(g.next_event(&mut buf, 0), 1);
    }

    #[test]
    fn events_are_written_as_float_formatting_would() {
        for scaled in [-123_456, -5, 0, 7, 10, 99, 105, 123_456_789] {
            let mut buf = Vec::new();
            write_fixed(&mut buf, scaled, 2);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                format!("{:.2}", scaled as f64 / 100.0)
            );
        }
        let labels = training_labels();
        let mut writer = EventGenerator::new((1.1, 10.5), Some(labels), Some(9));
        let mut drawer = EventGenerator::new((1.1, 10.5), Some(labels), Some(9));
        let mut buf = Vec::new();
        for id in 0..20_000 {
            writer.next_event(&mut buf, 1_700_000_000_123);
            let (years, salary) = drawer.draw();
            let want = format!(
                r#"{{"id":{id},"years_experience":{years:.1},"ts_ms":1700000000123,"salary":{:.2}}}"#,
                salary.unwrap()
            );
            assert_eq!(String::from_utf8_lossy(&buf), want);
        }
    }

    #[test]
    fn token_bucket_caps_its_bank() {
        let start = Instant::now();
        let mut b = TokenBucket {
            tokens: 0.0,
            last: start,
        };
        assert_eq!(b.refill(100, start + Duration::from_millis(50)), 5);
        assert_eq!(b.refill(100, start + Duration::from_secs(5)), 10);
    }
}
