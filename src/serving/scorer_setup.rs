//! The scorer's configuration, and the clients it builds from it: the producer of predictions and
//! dead letters, the consumer of the input topic with its record queue, and, exactly-once, the
//! transactions. Everything here runs before the scorer thread starts, so that configuration
//! errors surface from [`spawn`](crate::serving::scorer::spawn).
//! The queue of model commands on their way to the scorer thread lives here too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::Offset;

use crate::engine::{SharedSink, StopDeadline};
use crate::formats::avro::PredictionSchema;
use crate::formats::record::RecordError;
use crate::formats::registry::{SchemaId, SchemaKind};
use crate::formats::registry_client::{RegistryClient, RegistryError};
use crate::formats::shape::EventShape;
use crate::kafka::config::KafkaOptions;
use crate::kafka::intake::{RecordQueue, Waker};
use crate::kafka::offset_spec::OffsetSpec;
use crate::model::Artifact;
use crate::serving::call_watch::CallWatch;
use crate::serving::group::{reset_position, ScoringContext};
use crate::serving::offsets::{DeliveryContext, OffsetTracker, ScoringProducer};
use crate::serving::scorer::ScorerError;
use crate::serving::slots::{ModelCommand, Policy};
use crate::serving::transactions::{retried, Transactions, CALL_TIMEOUT, RETRY_FOR};

/// Predictions handed to librdkafka and not yet acknowledged, at most, on the embedded broker.
const EMBEDDED_IN_FLIGHT: &str = "10000";

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
    pub start_uncommitted_at: Option<OffsetSpec>,
    /// How long stopping may take in all (`--shutdown-timeout`): the one deadline, fixed when the
    /// stop begins, whose rest each step takes (flushing, the final commit or abort, leaving the
    /// group); the scorer's own end (`--count`, an error) fixes it too.
    pub shutdown_timeout: Duration,
    /// The most that stopping, within that deadline, and a revocation wait for outstanding
    /// predictions to be acknowledged: what is not is consumed again by the next run (whose
    /// offsets were not committed past it).
    pub shutdown_flush: Duration,
    /// How predictions are written to the output topic: JSON, or Avro for a registry.
    pub output: PredictionOutput,
}

/// How predictions are written to the output topic (`--output-format`).
#[derive(Debug, Clone, Default)]
pub enum PredictionOutput {
    /// One JSON object a record.
    #[default]
    Json,
    /// Avro framed for the registry, the schema registered at start.
    Avro(Arc<AvroOutput>),
}

/// `--output-format avro`: where prediction schemas are registered, and the one registered at
/// start for the serving model. A model of other fields served later (a reloaded artifact) has
/// its schema registered under the same subject when its first prediction is written.
#[derive(Debug)]
pub struct AvroOutput {
    /// The registry.
    pub client: Arc<RegistryClient>,
    /// `<output-topic>-value` (the TopicNameStrategy).
    pub subject: String,
    /// The fields of the model it was registered for.
    pub shape: EventShape,
    /// The schema registered for it.
    pub schema: Arc<PredictionSchema>,
    /// The id the registry gave it.
    pub id: SchemaId,
}

/// Why a prediction schema could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum OutputSchemaError {
    /// The model's fields make no Avro schema.
    #[error("prediction schema: {0}")]
    Schema(#[from] RecordError),
    /// The registry did not take it.
    #[error("prediction schema: {0}")]
    Registry(#[from] RegistryError),
}

impl AvroOutput {
    /// Registers the prediction schema of `shape` under `<topic>-value`.
    pub fn register(
        client: Arc<RegistryClient>,
        topic: &str,
        shape: &EventShape,
    ) -> Result<AvroOutput, OutputSchemaError> {
        let subject = format!("{topic}-value");
        let (schema, id) = register_schema(&client, &subject, shape)?;
        Ok(AvroOutput {
            client,
            subject,
            shape: shape.clone(),
            schema,
            id,
        })
    }

    /// Registers the prediction schema of another `shape` under the same subject.
    pub fn register_another(
        &self,
        shape: &EventShape,
    ) -> Result<(Arc<PredictionSchema>, SchemaId), OutputSchemaError> {
        register_schema(&self.client, &self.subject, shape)
    }
}

fn register_schema(
    client: &RegistryClient,
    subject: &str,
    shape: &EventShape,
) -> Result<(Arc<PredictionSchema>, SchemaId), OutputSchemaError> {
    let features: Vec<&str> = shape.features().iter().map(|f| f.field.as_str()).collect();
    let schema = PredictionSchema::new(shape.label(), &features)?;
    let id = client.register(subject, SchemaKind::Avro, schema.text())?;
    Ok((Arc::new(schema), id))
}

/// Model commands on their way to the scorer thread.
#[derive(Clone, Default)]
pub(super) struct Commands {
    queue: Arc<Mutex<Vec<ModelCommand>>>,
    /// Whether the queue holds any: one relaxed load a loop turn when it does not.
    pending: Arc<AtomicBool>,
}

impl Commands {
    pub(super) fn send(&self, command: ModelCommand) {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(command);
        self.pending.store(true, Ordering::Release);
    }

    pub(super) fn take(&self) -> Vec<ModelCommand> {
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

/// The scorer's clients, created, and the consumer subscribed.
pub(super) struct Clients {
    /// The records of the input topic's partitions, taken in batches.
    pub(super) records: Arc<RecordQueue>,
    /// The input topic's consumer, which serves the control events.
    pub(super) consumer: Arc<BaseConsumer<ScoringContext>>,
    /// Publishes predictions and dead letters.
    pub(super) producer: Arc<ScoringProducer>,
    /// Predictions and dead letters not yet acknowledged, and the offsets they hold back.
    pub(super) tracker: Arc<Mutex<OffsetTracker>>,
    /// Deliveries that failed so far.
    pub(super) failures: Arc<AtomicU64>,
    /// Exactly-once: the transactions, the first one begun; `None` for at-least-once.
    pub(super) transactions: Option<Arc<Transactions>>,
    /// When the stop must be done, once it begins: shared by the consumer's context and the
    /// transactions, which take part in it.
    pub(super) stopping: StopDeadline,
}

impl Clients {
    /// Creates the producer, begins the first transaction (exactly-once), and creates and
    /// subscribes the consumer, as `config` says.
    pub(super) fn build(config: &ScorerConfig, sink: &SharedSink) -> Result<Self, ScorerError> {
        let tracker = Arc::new(Mutex::new(OffsetTracker::with_metrics(
            config.metrics.clone(),
        )));
        let failures = Arc::new(AtomicU64::new(0));
        let producer = ScoringProducer::create(
            &config.kafka.client_config(&producer_defaults(
                &config.kafka,
                mock_cluster(&config.kafka),
                config.exactly_once.as_ref().map(|(id, _)| id.as_str()),
            )),
            DeliveryContext::new(tracker.clone(), failures.clone()),
        )?;
        let producer = Arc::new(producer);
        let consumer_config = consumer_config(config);
        let start_at = config
            .start_uncommitted_at
            .or_else(|| reset_position(consumer_config.get("auto.offset.reset")));
        let stopping = StopDeadline::default();
        let transactions = match &config.exactly_once {
            Some((_, interval)) => Some(begin_transactions(
                config, &producer, *interval, start_at, &tracker, &stopping,
            )?),
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
        )
        .stopping_by(stopping.clone());
        let (consumer, records) = subscribe(config, &consumer_config, context)?;
        Ok(Clients {
            records,
            consumer,
            producer,
            tracker,
            failures,
            transactions,
            stopping,
        })
    }
}

/// Whether the scorer writes to librdkafka's mock cluster, asked only when `-X` sets neither
/// `compression.type` nor `compression.codec` (what `-X` says wins over the default either way).
fn mock_cluster(kafka: &KafkaOptions) -> bool {
    !kafka.sets("compression.type") && crate::kafka::mock_cluster::serves(kafka)
}

/// The producer's defaults for the scorer (`-X` wins over them) on a real broker or on
/// librdkafka's `mock_cluster`, exactly-once with its `transactional_id`.
fn producer_defaults<'a>(
    kafka: &KafkaOptions,
    mock_cluster: bool,
    transactional_id: Option<&'a str>,
) -> Vec<(&'static str, &'a str)> {
    let mut producer_defaults = vec![
        ("linger.ms", "5"),
        ("batch.size", kafka.producer_batch_bytes()),
        ("compression.type", kafka.output_compression(mock_cluster)),
        // A prediction the broker took but whose acknowledgement was lost is resent once, not
        // written twice, and a partition's predictions keep their order through retries (as
        // `produce` does, issue 27). Measured on Apache Kafka: no cost to the full path's rate.
        ("enable.idempotence", "true"),
    ];
    if kafka.embedded {
        // In-process, predictions waiting for the broker's acknowledgement are our memory:
        // at most 10,000 of them (some 4 MB), not librdkafka's 100,000, which an unthrottled
        // dashboard filled whenever the broker's thread fell behind (peak RSS up to 90 MB).
        producer_defaults.push(("queue.buffering.max.messages", EMBEDDED_IN_FLIGHT));
    }
    if let Some(id) = transactional_id {
        producer_defaults.push(("transactional.id", id));
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
    producer_defaults
}

/// The consumer's settings for the scorer: its defaults (`-X` wins over them), then the group and
/// how offsets are stored and committed, which `-X` cannot change.
fn consumer_config(config: &ScorerConfig) -> ClientConfig {
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
    consumer_config
}

/// Exactly-once: readies `producer` for transactions and begins the first, committed every
/// `interval`; partitions without a committed offset start at `start_at`; once `stopping` is
/// fixed, its calls take what is left of it.
fn begin_transactions(
    config: &ScorerConfig,
    producer: &Arc<ScoringProducer>,
    interval: Duration,
    start_at: Option<OffsetSpec>,
    tracker: &Arc<Mutex<OffsetTracker>>,
    stopping: &StopDeadline,
) -> Result<Arc<Transactions>, ScorerError> {
    let refuse = |e: KafkaError| {
        ScorerError::Transactions(format!(
            "the broker at {} cannot run transactions: {e}",
            config.kafka.bootstrap
        ))
    };
    // Asked before anything else: librdkafka learns that a broker lacks transactions only at
    // the first commit, which on an idle topic may never come.
    if let Some(missing) = crate::kafka::diagnose::missing_transaction_apis(&config.kafka) {
        if !missing.is_empty() {
            return Err(ScorerError::Transactions(format!(
                "the broker does not support transactions (it serves no {}); exactly-once needs \
                 one that does, such as Apache Kafka",
                missing.join(", ")
            )));
        }
    }
    let calls = CallWatch::start().map_err(ScorerError::Spawn)?;
    // A cluster still settling after a lost node (its transaction coordinator moving) answers
    // retriably for a while: a restart right after one waits for it as a commit would.
    retried(Instant::now() + RETRY_FOR, || {
        let p = producer.clone();
        calls
            .run("init_transactions", CALL_TIMEOUT, move || {
                p.init_transactions(CALL_TIMEOUT)
            })
            .unwrap_or(Err(KafkaError::Canceled))
    })
    .map_err(|e| match calls.stuck() {
        Some(stuck) => ScorerError::Stuck(stuck),
        None => refuse(e),
    })?;
    producer.begin_transaction().map_err(refuse)?;
    Ok(Arc::new(Transactions::new(
        interval,
        start_at
            .and_then(OffsetSpec::logical)
            .unwrap_or(Offset::Beginning),
        tracker.clone(),
        calls,
        stopping.clone(),
    )))
}

/// Creates the consumer with `context`, routes its partitions' records to a record queue, and
/// subscribes it to the input topic.
fn subscribe(
    config: &ScorerConfig,
    consumer_config: &ClientConfig,
    context: ScoringContext,
) -> Result<(Arc<BaseConsumer<ScoringContext>>, Arc<RecordQueue>), KafkaError> {
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
    Ok((consumer, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(embedded: bool) -> KafkaOptions {
        KafkaOptions {
            bootstrap: "127.0.0.1:9092".into(),
            properties: vec![],
            embedded,
        }
    }

    #[test]
    fn predictions_are_written_idempotently_compressed_for_a_real_broker() {
        let real = options(false);
        let config = real.client_config(&producer_defaults(&real, false, None));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("compression.type"), Some("lz4"));
        assert_eq!(config.get("linger.ms"), Some("5"));
        assert_eq!(config.get("batch.size"), Some("1000000"));
        assert_eq!(config.get("transactional.id"), None);
        let embedded = options(true);
        let config = embedded.client_config(&producer_defaults(&embedded, true, Some("scorer-1")));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("compression.type"), Some("none"));
        assert_eq!(
            config.get("queue.buffering.max.messages"),
            Some(EMBEDDED_IN_FLIGHT)
        );
        assert_eq!(config.get("transactional.id"), Some("scorer-1"));
        assert_eq!(config.get("transaction.timeout.ms"), Some("10000"));
        let mine = KafkaOptions {
            properties: vec![("enable.idempotence".into(), "false".into())],
            ..options(false)
        };
        let config = mine.client_config(&producer_defaults(&mine, false, None));
        assert!(
            !mock_cluster(&KafkaOptions {
                properties: vec![("compression.codec".into(), "none".into())],
                ..options(true)
            }),
            "not asked when -X chose"
        );
        assert_eq!(config.get("enable.idempotence"), Some("false"), "-X wins");
    }
}
