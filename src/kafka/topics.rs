//! Which of the topics a command needs exist, and creating the missing ones (`--create-topics`).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;

use crate::kafka::config::KafkaOptions;

/// How long one metadata or admin request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why topics could not be checked or created.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The broker did not answer, or refused.
    #[error("{0}")]
    Kafka(#[from] KafkaError),
    /// The broker refused to create a topic.
    #[error("cannot create topic {topic} on {broker}: {reason}")]
    Create {
        /// The topic.
        topic: String,
        /// The bootstrap servers.
        broker: String,
        /// The broker's reason.
        reason: String,
    },
}

/// Of `topics`, those the broker says do not exist, in the order given. A client that may create
/// topics (a producer's, by librdkafka's default) asks with permission to, so a broker with
/// `auto.create.topics.enable` creates them as it would for the first record sent.
pub fn missing<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<String>, KafkaError> {
    let mut absent = Vec::new();
    for &topic in topics {
        let metadata = client.fetch_metadata(Some(topic), timeout)?;
        let unknown = metadata.topics().iter().any(|t| {
            t.name() == topic
                && matches!(
                    t.error(),
                    Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                )
        });
        if unknown {
            absent.push(topic.to_owned());
        }
    }
    Ok(absent)
}

/// How many partitions `topic` has, as the broker answers now, if every one of them has a leader;
/// `None` if one has none (a failover), or the topic does not exist (yet).
pub fn led_partition_count<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .filter(|t| {
            t.partitions()
                .iter()
                .all(|p| p.leader() >= 0 && p.error().is_none())
        })
        .and_then(|t| i32::try_from(t.partitions().len()).ok())
        .filter(|&n| n > 0))
}

/// The topics a command uses, with the partitions each gets if created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// `(topic, partitions)`.
    pub topics: Vec<(String, i32)>,
}

/// Creates those of `wanted` that do not exist, with the broker's default replication; returns
/// the ones it created as `(topic, partitions)`.
pub fn create_missing(
    kafka: &KafkaOptions,
    wanted: &Wanted,
) -> Result<Vec<(String, i32)>, TopicError> {
    // rust-rdkafka's admin client is a producer underneath, which librdkafka lets create topics
    // by asking about them: this one must only look.
    let admin: AdminClient<DefaultClientContext> = kafka
        .client_config(&[("allow.auto.create.topics", "false")])
        .create()?;
    let names: Vec<&str> = wanted.topics.iter().map(|(t, _)| t.as_str()).collect();
    let absent = missing(admin.inner(), &names, REQUEST_TIMEOUT)?;
    let to_create: Vec<(String, i32)> = wanted
        .topics
        .iter()
        .filter(|(t, _)| absent.contains(t))
        .cloned()
        .collect();
    if to_create.is_empty() {
        return Ok(to_create);
    }
    let new_topics: Vec<NewTopic<'_>> = to_create
        .iter()
        // -1: the broker's default replication factor (KIP-464).
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(-1)))
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(REQUEST_TIMEOUT))
        .request_timeout(Some(REQUEST_TIMEOUT));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KafkaError::AdminOpCreation(e.to_string()))?;
    let results = runtime.block_on(admin.create_topics(&new_topics, &options))?;
    for result in results {
        match result {
            Ok(_) => {}
            // Created meanwhile by someone else: what was wanted is there.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(TopicError::Create {
                    topic,
                    broker: kafka.bootstrap.clone(),
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(to_create)
}

/// A partition that cannot take a write with `acks=all` now: fewer replicas in sync than the
/// topic's `min.insync.replicas`. The broker answers such writes with NOT_ENOUGH_REPLICAS, which
/// librdkafka retries without a word until the message times out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortOfReplicas {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Replicas in sync now.
    pub in_sync: usize,
    /// The topic's `min.insync.replicas`.
    pub min_in_sync: usize,
}

impl ShortOfReplicas {
    /// `output not writable: NOT_ENOUGH_REPLICAS (salary-predictions partition 0: 1 in-sync
    /// replica of min 2)`.
    pub fn line(&self, role: &str) -> String {
        format!(
            "{role} not writable: NOT_ENOUGH_REPLICAS ({} partition {}: {} of min {})",
            self.topic,
            self.partition,
            crate::engine::counted(self.in_sync as u64, "in-sync replica", "in-sync replicas"),
            self.min_in_sync
        )
    }
}

/// The partitions of `topic` with fewer in-sync replicas than some replicas (a candidate for
/// being short), as `(partition, in_sync)`; empty when every replica is in sync.
pub fn shrunk_isr<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, usize)>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions())
        .filter(|p| p.isr().len() < p.replicas().len())
        .map(|p| (p.id(), p.isr().len()))
        .collect())
}

/// The topic's `min.insync.replicas` (its own, else the broker's default), from the admin API.
pub fn min_insync_replicas(kafka: &KafkaOptions, topic: &str) -> Result<usize, KafkaError> {
    let value = topic_config(kafka, topic, "min.insync.replicas", REQUEST_TIMEOUT)?;
    // A broker that does not say: Kafka's default.
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(1))
}

/// `topic`'s `max.message.bytes` (its own, else the broker's default), from the admin API within
/// `timeout`: the largest record batch the broker takes for it. `None` when the broker does not
/// say.
pub fn max_message_bytes(
    kafka: &KafkaOptions,
    topic: &str,
    timeout: Duration,
) -> Result<Option<usize>, KafkaError> {
    let value = topic_config(kafka, topic, "max.message.bytes", timeout)?;
    Ok(value.and_then(|v| v.parse().ok()))
}

/// The value of `topic`'s configuration entry `name` (its own, else the broker's default), from
/// the admin API within `timeout`; `None` when the broker does not say.
fn topic_config(
    kafka: &KafkaOptions,
    topic: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<String>, KafkaError> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> = kafka
        .client_config(&[("allow.auto.create.topics", "false")])
        .create()?;
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KafkaError::AdminOpCreation(e.to_string()))?;
    let results =
        runtime.block_on(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &options))?;
    Ok(results
        .into_iter()
        .flatten()
        .flat_map(|resource| resource.entries)
        .find(|entry| entry.name == name)
        .and_then(|entry| entry.value))
}

/// The line that says a topic is missing, and what to do about it.
pub fn missing_line(topic: &str, broker: &str, consequence: &str) -> String {
    format!(
        "topic {topic} does not exist on {broker}: {consequence} (create it, or run again with \
         --create-topics)"
    )
}
