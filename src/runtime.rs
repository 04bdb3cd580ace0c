//! Shared start-up for every command: load the model, find or start the broker, wait for
//! signals.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{KafkaArgs, OutputFormat, RegistryUrl, DEFAULT_MODEL};
use crate::engine::{BrokerHealth, EngineEvent};
use crate::formats::registry_client::RegistryClient;
use crate::formats::registry_config::RegistryConfig;
use crate::kafka::broker::EmbeddedBroker;
use crate::kafka::config::KafkaOptions;
use crate::model::Artifact;
use crate::observe::metrics::{MeteredSink, Metrics};
use crate::serving::scorer::ScorerConfig;
use crate::serving::scorer_setup::{AvroOutput, PredictionOutput};

/// The artifact committed in assets/, built in so the binary works from any directory.
const BUILT_IN_MODEL: &str = include_str!("../assets/model.json");

/// A loaded model and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The artifact.
    pub artifact: Artifact,
    /// The file it was read from; `None` for the built-in artifact.
    pub path: Option<PathBuf>,
}

/// Loads `--model PATH`, else the default path, else the built-in artifact, for the serving
/// commands (score, dash, produce, backtest): a model they cannot serve yet is refused here, in
/// one line naming it as the user did.
pub fn load_model(path: Option<&Path>) -> anyhow::Result<LoadedModel> {
    let model = load_any_model(path)?;
    if let Some(file) = &model.path {
        let named = match path {
            Some(_) => format!("--model {}", file.display()),
            None => file.display().to_string(),
        };
        model.artifact.check_servable(&named)?;
        // Names a prediction could not carry: refused now, not at the first record.
        crate::serving::scoring::event_shape(&model.artifact)
            .map_err(|e| anyhow::anyhow!("{named}: {e}"))?;
    }
    Ok(model)
}

/// Loads `--model PATH`, else the default path, else the built-in artifact: any model, as
/// `predict` serves.
pub fn load_any_model(path: Option<&Path>) -> anyhow::Result<LoadedModel> {
    if let Some(path) = path {
        return Ok(LoadedModel {
            artifact: Artifact::load(path)?,
            path: Some(path.to_owned()),
        });
    }
    let default = Path::new(DEFAULT_MODEL);
    if default.exists() {
        return Ok(LoadedModel {
            artifact: Artifact::load(default)?,
            path: Some(default.to_owned()),
        });
    }
    let artifact: Artifact =
        serde_json::from_str(BUILT_IN_MODEL).context("the built-in model artifact is corrupt")?;
    Ok(LoadedModel {
        artifact,
        path: None,
    })
}

/// Has glibc's allocator grow a thread's heap by 64 MB of address space at a time, for the headless
/// scorer and producer. librdkafka allocates each record on our thread and frees it on its broker
/// thread once acknowledged; a thread's heap then grows and shrinks by a few pages thousands of
/// times a second, an `mprotect` each, with the arena's lock held, which the other thread waits
/// on (a futex). Padded, it grows once: `strace -c` of `score` over 300,000 records went from
/// 10,211 `mprotect` and 21,416 `futex` calls to 34 and 2,836 (BENCHMARKS.md). Untouched pages of
/// the padding cost no memory. The dashboard keeps glibc's defaults: its memory has a target.
pub fn pad_malloc_heaps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter, under the allocator's own lock.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// The `--challenger` artifact, if one is given: a model of `serving`'s features and label.
pub fn load_challenger(
    args: &crate::cli::ModelArgs,
    serving: &Artifact,
) -> anyhow::Result<Option<Artifact>> {
    let Some(path) = &args.challenger else {
        return Ok(None);
    };
    let artifact = Artifact::load(path).context("--challenger")?;
    artifact.check_servable(&format!("--challenger {}", path.display()))?;
    let shape = crate::serving::scoring::event_shape;
    if shape(&artifact).ok() != shape(serving).ok() {
        let fields = |a: &Artifact| {
            let names: Vec<&str> = a.features.iter().map(|f| f.field.as_str()).collect();
            format!("{} for {}", names.join(", "), a.target.field)
        };
        anyhow::bail!(
            "--challenger {} reads {}, the serving model {}: a challenger reads the serving \
             model's features",
            path.display(),
            fields(&artifact),
            fields(serving)
        );
    }
    Ok(Some(artifact))
}

/// A Kafka to talk to: a given cluster, or an embedded broker kept alive by this value.
pub struct Connection {
    /// Client options.
    pub kafka: KafkaOptions,
    /// How the header names the broker.
    pub label: String,
    /// The embedded broker, if one was started.
    pub embedded: Option<EmbeddedBroker>,
    /// The `schema.registry.*` settings of `-F` and `-X`, kept from librdkafka (which knows
    /// none of them) for the registry client.
    pub registry_settings: Vec<(String, String)>,
}

/// Uses `--brokers` when given, else starts an embedded broker with the three topics.
pub fn connect(args: &KafkaArgs, input_partitions: i32) -> anyhow::Result<Connection> {
    let (registry_settings, properties) = split_registry_settings(args.parsed_properties()?);
    match &args.brokers {
        Some(brokers) if !brokers.trim().is_empty() => {
            let kafka = KafkaOptions {
                bootstrap: brokers.trim().to_owned(),
                properties: properties.clone(),
                embedded: false,
            };
            kafka.check_security().map_err(anyhow::Error::msg)?;
            Ok(Connection {
                label: brokers.trim().to_owned(),
                kafka,
                embedded: None,
                registry_settings,
            })
        }
        _ => {
            let broker = EmbeddedBroker::start(&[
                (args.topic.as_str(), input_partitions),
                (args.output_topic.as_str(), 1),
                (args.dlq_topic.as_str(), 1),
            ])?;
            Ok(Connection {
                kafka: KafkaOptions {
                    bootstrap: broker.bootstrap_servers().to_owned(),
                    properties: properties.clone(),
                    embedded: true,
                },
                label: format!("embedded {}", broker.bootstrap_servers()),
                embedded: Some(broker),
                registry_settings,
            })
        }
    }
}

/// What starts a client setting that is the registry's, not librdkafka's.
const REGISTRY_PREFIX: &str = "schema.registry.";

/// How long the scorer's registry client may take to connect, and to have an answer once
/// connected: a quit waits for a request in flight, so the two together stay within the default
/// `--shutdown-timeout`.
const REGISTRY_TIMEOUTS: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(3));

/// `-r URL`: the Schema Registry client, with the `schema.registry.*` settings of
/// `connection` (basic auth, a CA file); none without `-r`, and then those settings are
/// refused. No request is made yet; errors never show a credential.
pub fn registry_client(
    args: &KafkaArgs,
    connection: &Connection,
) -> anyhow::Result<Option<Arc<RegistryClient>>> {
    registry_client_for(
        args.registry.schema_registry.as_ref(),
        &connection.registry_settings,
    )
}

/// Client properties, `key=value`.
pub type Properties = Vec<(String, String)>;

/// The client properties split into the `schema.registry.*` ones and librdkafka's.
pub fn split_registry_settings(properties: Properties) -> (Properties, Properties) {
    properties
        .into_iter()
        .partition(|(key, _)| key.starts_with(REGISTRY_PREFIX))
}

/// The registry client for `url` with the `schema.registry.*` `settings`, as
/// [`registry_client`] makes it.
pub fn registry_client_for(
    url: Option<&RegistryUrl>,
    settings: &[(String, String)],
) -> anyhow::Result<Option<Arc<RegistryClient>>> {
    let Some(url) = url else {
        if let Some((key, _)) = settings.first() {
            anyhow::bail!("{key} is a Schema Registry setting: give the registry with -r URL");
        }
        return Ok(None);
    };
    let mut config = RegistryConfig::new(&url.0)?;
    for (key, value) in settings {
        if key == "schema.registry.ssl.ca.location" {
            let pem = std::fs::read(value)
                .with_context(|| format!("{key}: cannot read the CA file {value}"))?;
            config = config.ca_pem(pem);
        } else if !config.set(key, value)? {
            anyhow::bail!("{key} is not a Schema Registry setting this client knows");
        }
    }
    let (connect, read) = REGISTRY_TIMEOUTS;
    Ok(Some(Arc::new(RegistryClient::new(
        config.timeouts(connect, read),
    )?)))
}

/// The scorer's configuration from the command line.
pub fn scorer_config(
    args: &KafkaArgs,
    kafka: &KafkaOptions,
    model: &LoadedModel,
    publish: bool,
    max_records: Option<u64>,
) -> ScorerConfig {
    ScorerConfig {
        kafka: kafka.clone(),
        input_topic: args.topic.clone(),
        output_topic: publish.then(|| args.output_topic.clone()),
        dlq_topic: args.dlq_topic.clone(),
        group: args.group.clone(),
        model: model.artifact.clone(),
        model_path: model.path.clone(),
        challenger: None,
        policy: crate::serving::slots::Policy::default(),
        models_dir: args.models_dir.clone().unwrap_or_else(default_models_dir),
        metrics: None,
        exactly_once: args.exactly_once.then(|| {
            let instance = args.instance_id.clone().unwrap_or_else(default_instance_id);
            (
                crate::serving::transactions::transactional_id(&args.group, &instance),
                args.transaction_interval,
            )
        }),
        max_records,
        start_uncommitted_at: args.offset,
        // One deadline: the flush, the final commit and leaving the group each take what is
        // left of it, so a stop's flush is not given a share of its own. An ordinary
        // rebalance is not a stop: its revocation flushes for a share of this (3 s of the
        // default 5, `REBALANCE_FLUSH_SHARE` in serving/group.rs).
        shutdown_timeout: args.shutdown_timeout,
        shutdown_flush: args.shutdown_timeout,
        output: PredictionOutput::Json,
    }
}

/// A scorer's `-r` and `--output-format`: the registry client (see [`registry_client`]), and
/// how predictions are written. With `avro` and an output topic (`publish`), the prediction
/// schema of `model` is registered under `<output-topic>-value` now: a registry that does not
/// take it stops the command here, in one line.
pub fn scorer_registry(
    args: &KafkaArgs,
    format: OutputFormat,
    publish: bool,
    connection: &Connection,
    model: &Artifact,
) -> anyhow::Result<(Option<Arc<RegistryClient>>, PredictionOutput)> {
    let registry = registry_client(args, connection)?;
    if format == OutputFormat::Json || !publish {
        return Ok((registry, PredictionOutput::Json));
    }
    let Some(client) = &registry else {
        anyhow::bail!(
            "--output-format avro writes predictions for a Schema Registry: give it with -r URL"
        );
    };
    let shape = crate::serving::scoring::event_shape(model)
        .unwrap_or_else(|_| crate::formats::shape::EventShape::salary().clone());
    let avro = AvroOutput::register(client.clone(), &args.output_topic, &shape).map_err(|e| {
        anyhow::anyhow!(
            "cannot register the predictions' Avro schema under {}-value: {e}",
            args.output_topic
        )
    })?;
    Ok((registry, PredictionOutput::Avro(Arc::new(avro))))
}

/// This machine's name: the default instance id, stable across restarts.
pub fn default_instance_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Where retrained versions go by default: the platform's data directory, outside any checkout.
pub fn default_models_dir() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })
        .unwrap_or_else(std::env::temp_dir);
    data.join("salary-stream").join("models")
}

/// `--metrics HOST:PORT`: the registry and its endpoint, started; with the address it serves on.
pub fn start_metrics(
    args: &KafkaArgs,
    version: &str,
    publishing: bool,
) -> anyhow::Result<Option<(std::sync::Arc<Metrics>, std::net::SocketAddr)>> {
    let Some(address) = &args.metrics else {
        return Ok(None);
    };
    let metrics = Metrics::new(version, publishing);
    let bound = crate::observe::metrics::serve(address, metrics.clone())?;
    Ok(Some((metrics, bound)))
}

/// `sink`, counted into `metrics` first when they are served.
pub fn metered(
    sink: crate::engine::SharedSink,
    metrics: Option<&std::sync::Arc<Metrics>>,
) -> crate::engine::SharedSink {
    match metrics {
        Some(m) => std::sync::Arc::new(MeteredSink {
            inner: sink,
            metrics: m.clone(),
        }),
        None => sink,
    }
}

/// A sink that says the broker's refusals as a user can act on them (with the user, mechanism
/// and address of `kafka`) before passing them on; formatting only, it never blocks.
pub fn explained(
    sink: crate::engine::SharedSink,
    kafka: &KafkaOptions,
) -> crate::engine::SharedSink {
    let kafka = kafka.clone();
    std::sync::Arc::new(move |event| match event {
        EngineEvent::Broker(BrokerHealth::Refused(reason)) => sink.emit(EngineEvent::Broker(
            BrokerHealth::Refused(crate::kafka::diagnose::refusal_line(&kafka, &reason)),
        )),
        other => sink.emit(other),
    })
}

/// The log filter: `SALARY_STREAM_LOG` if set, else `default`. Either way one rust-rdkafka line
/// is left out: the scorer leaves its group before dropping its consumer (a quicker exit), and
/// rust-rdkafka's drop reports finding it closed as an error.
pub fn log_filter(default: &str) -> tracing_subscriber::EnvFilter {
    let without_close_error =
        |directives: &str| format!("{directives},rdkafka::consumer::base_consumer=off");
    let directives = std::env::var("SALARY_STREAM_LOG").unwrap_or_else(|_| default.to_owned());
    tracing_subscriber::EnvFilter::try_new(without_close_error(&directives))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(without_close_error(default)))
}

/// Resolves when SIGINT, SIGTERM or SIGHUP arrives.
pub async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = hup.recv() => "SIGHUP",
    })
}

/// How a bounded piece of shutdown work ended.
#[derive(Debug)]
pub enum Ending<T> {
    /// It finished within its bound, with this result.
    Finished(T),
    /// The bound passed first; the work is abandoned where it stands.
    TimedOut,
    /// A signal came first (a second Ctrl-C, say): the user wants out now.
    Interrupted(&'static str),
}

/// Runs `work` (stopping threads that talk to a broker) on a thread of its own and waits for it at
/// most `bound`. A signal meanwhile ends the wait at once. What has not finished is abandoned: the
/// caller reports it and exits, since anything that waits on the abandoned thread could hang.
pub fn within_bound<T: Send + 'static>(
    bound: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<Ending<T>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("shutdown".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .context("cannot start the shutdown thread")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let signal = shutdown_signal();
        tokio::pin!(signal);
        Ok(tokio::select! {
            done = rx => match done {
                Ok(value) => Ending::Finished(value),
                // The work panicked: its thread is gone, with nothing left to wait for.
                Err(_) => anyhow::bail!("the shutdown work panicked"),
            },
            _ = tokio::time::sleep(bound) => Ending::TimedOut,
            sig = &mut signal => Ending::Interrupted(sig?),
        })
    })
}

/// Why a shutdown was cut short, as the line about it says it: `after 5 s`, `on SIGINT`.
pub fn cut_reason<T>(ending: &Ending<T>, bound: Duration) -> Option<String> {
    match ending {
        Ending::Finished(_) => None,
        Ending::TimedOut => Some(format!("after {}", seconds_text(bound))),
        Ending::Interrupted(signal) => Some(format!("on {signal}")),
    }
}

/// How predictions are delivered, as `score`'s stats line and the dashboard's header name it.
pub fn delivery_mode(args: &KafkaArgs, embedded: bool) -> String {
    if args.exactly_once {
        format!(
            "exactly-once every {}{}",
            seconds_text(args.transaction_interval),
            if embedded {
                " (embedded broker: within this run only)"
            } else {
                ""
            }
        )
    } else {
        "at-least-once".to_owned()
    }
}

/// `5 s`, `0.5 s`.
pub fn seconds_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// `--create-topics`: creates those of the command's topics the broker lacks (never on the
/// embedded broker, which starts with them) and returns a line for each one created.
pub fn create_topics(
    args: &KafkaArgs,
    connection: &Connection,
    topics: &[(&str, i32)],
) -> anyhow::Result<Vec<String>> {
    if !args.create_topics || connection.embedded.is_some() {
        return Ok(Vec::new());
    }
    let wanted = crate::kafka::topics::Wanted {
        topics: topics.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect(),
    };
    let created = crate::kafka::topics::create_missing(&connection.kafka, &wanted)?;
    Ok(created
        .into_iter()
        .map(|(topic, partitions)| {
            format!(
                "created topic {topic} on {} ({}, the broker's default replication)",
                connection.kafka.bootstrap,
                crate::engine::counted(partitions as u64, "partition", "partitions")
            )
        })
        .collect())
}

/// The topics `score` and `dash` use, with the partitions `--create-topics` gives them.
pub fn scorer_topics(args: &KafkaArgs) -> [(&str, i32); 3] {
    [
        (args.topic.as_str(), args.partitions),
        (args.output_topic.as_str(), args.partitions),
        (args.dlq_topic.as_str(), 1),
    ]
}
