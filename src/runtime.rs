//! Shared start-up for every command: load the model, find or start the broker, wait for
//! signals.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{KafkaArgs, DEFAULT_MODEL};
use crate::engine::broker::EmbeddedBroker;
use crate::engine::config::KafkaOptions;
use crate::engine::consumer::ScorerConfig;
use crate::model::{Artifact, Predictor};

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

/// Loads `--model PATH`, else the default path, else the built-in artifact.
pub fn load_model(path: Option<&Path>) -> anyhow::Result<LoadedModel> {
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

/// A Kafka to talk to: a given cluster, or an embedded broker kept alive by this value.
pub struct Connection {
    /// Client options.
    pub kafka: KafkaOptions,
    /// How the header names the broker.
    pub label: String,
    /// The embedded broker, if one was started.
    pub embedded: Option<EmbeddedBroker>,
}

/// Uses `--brokers` when given, else starts an embedded broker with the three topics.
pub fn connect(args: &KafkaArgs, input_partitions: i32) -> anyhow::Result<Connection> {
    let properties = args.parsed_properties().map_err(anyhow::Error::msg)?;
    match &args.brokers {
        Some(brokers) if !brokers.trim().is_empty() => Ok(Connection {
            kafka: KafkaOptions {
                bootstrap: brokers.trim().to_owned(),
                properties: properties.clone(),
                embedded: false,
            },
            label: brokers.trim().to_owned(),
            embedded: None,
        }),
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
            })
        }
    }
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
        predictor: Predictor::from(&model.artifact),
        model_path: model.path.clone(),
        max_records,
        training_rmse: model.artifact.rmse,
        shutdown_flush: crate::engine::consumer::FLUSH_TIMEOUT,
    }
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
