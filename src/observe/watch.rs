//! Watching a whole consumer group without joining it (`dash --watch-group`): every member's
//! predictions read from the output topic, the group's lag from its committed offsets against the
//! input partitions' high watermarks, and which member owns which partitions, where the broker
//! tells.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::engine::{
    BrokerHealth, EngineEvent, LagByPartition, ScoreReport, ScoredEvent, SharedSink,
};
use crate::kafka::config::KafkaOptions;

/// How often lag and members are asked for.
const GROUP_INTERVAL: Duration = Duration::from_secs(1);
/// How often what was read is reported.
const REPORT_INTERVAL: Duration = Duration::from_millis(50);
/// How long one broker request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Brokers and client properties.
    pub kafka: KafkaOptions,
    /// The group's input topic, whose lag is shown.
    pub input_topic: String,
    /// The topic the group publishes predictions to.
    pub output_topic: String,
    /// The group watched.
    pub group: String,
}

/// One member of the watched group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its `client.id`.
    pub client_id: String,
    /// The host it connects from, as the broker sees it.
    pub host: String,
    /// The input partitions it owns.
    pub partitions: Vec<i32>,
}

/// A running watcher.
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl WatchHandle {
    /// Asks the watcher to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for it.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Starts watching on a thread of its own. Its clients are created before this returns.
pub fn spawn(config: WatchConfig, sink: SharedSink) -> Result<WatchHandle, KafkaError> {
    // Never subscribes and never commits: it reads by assignment, so it joins no group.
    let mut reader_config = config.kafka.client_config(&[
        ("fetch.wait.max.ms", "100"),
        ("enable.auto.commit", "false"),
    ]);
    reader_config.set(
        "group.id",
        format!("salary-stream-watch-{}", std::process::id()),
    );
    let reader: BaseConsumer = reader_config.create()?;
    // Carries the watched group's id to ask for its committed offsets; never subscribes either.
    let mut group_config = config
        .kafka
        .client_config(&[("enable.auto.commit", "false")]);
    group_config.set("group.id", &config.group);
    let group: BaseConsumer = group_config.create()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || run(&config, &reader, &group, &sink, &stopping))
        .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
    Ok(WatchHandle { stop, thread })
}

fn run(
    config: &WatchConfig,
    reader: &BaseConsumer,
    group: &BaseConsumer,
    sink: &SharedSink,
    stop: &AtomicBool,
) {
    let mut assigned = false;
    let mut report = ScoreReport::default();
    let mut last_event_ms: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_report = Instant::now();
    let mut last_group: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if !assigned {
            assigned = assign_all_at_end(reader, &config.output_topic);
        }
        match reader.poll(Duration::from_millis(if assigned { 20 } else { 200 })) {
            Some(Ok(message)) => {
                if let Some(event) = message.payload().and_then(scored_event) {
                    if let Some(t) = event.event_ms {
                        last_event_ms.insert(event.partition, t);
                    }
                    report.scored += 1;
                    report.extrapolated += u64::from(event.extrapolated);
                    report.recent.push(event);
                    if report.recent.len() > 2 * ScoreReport::RECENT {
                        report.recent.drain(..ScoreReport::RECENT);
                    }
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "watch read"),
            None => {}
        }
        if last_report.elapsed() >= REPORT_INTERVAL {
            last_report = Instant::now();
            if !report.is_empty() {
                let mut out = std::mem::take(&mut report);
                let excess = out.recent.len().saturating_sub(ScoreReport::RECENT);
                out.recent.drain(..excess);
                sink.emit(EngineEvent::Scored(out));
            }
        }
        if last_group.is_none_or(|t| t.elapsed() >= GROUP_INTERVAL) {
            last_group = Some(Instant::now());
            match group_lag(group, &config.input_topic) {
                Some(lag) => {
                    sink.emit(EngineEvent::Broker(BrokerHealth::Up));
                    sink.emit(EngineEvent::Lag(
                        lag.with_time_behind(&last_event_ms, crate::engine::now_ms()),
                    ));
                }
                None => sink.emit(EngineEvent::Broker(BrokerHealth::Unreachable(
                    "no answer to the group's offsets and watermarks".into(),
                ))),
            }
            if let Some(members) = group_members(group, &config.group, &config.input_topic) {
                sink.emit(EngineEvent::Members(members));
            }
        }
    }
}

/// Assigns every partition of `topic` from its end; false while the topic is not known yet.
fn assign_all_at_end(reader: &BaseConsumer, topic: &str) -> bool {
    let Ok(metadata) = reader.fetch_metadata(Some(topic), REQUEST_TIMEOUT) else {
        return false;
    };
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return false;
    };
    if t.partitions().is_empty() {
        return false;
    }
    let mut list = TopicPartitionList::new();
    for p in t.partitions() {
        if list
            .add_partition_offset(topic, p.id(), Offset::End)
            .is_err()
        {
            return false;
        }
    }
    reader.assign(&list).is_ok()
}

/// The prediction an output record carries, as the view shows it (its input partition and
/// offset, not the output's).
pub fn scored_event(payload: &[u8]) -> Option<ScoredEvent> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    Some(ScoredEvent {
        partition: i32::try_from(v["partition"].as_i64()?).ok()?,
        offset: v["offset"].as_i64()?,
        event_ms: v["ts_ms"].as_i64(),
        years: v["years_experience"].as_f64()?,
        predicted: v["predicted_salary"].as_f64()?,
        salary: v["salary"].as_f64(),
        latency_ms: v["latency_ms"].as_f64(),
        extrapolated: v["extrapolated"].as_bool().unwrap_or(false),
    })
}

/// The group's lag on `topic`: each partition's high watermark minus the group's committed
/// offset (or minus the low watermark where it has committed none).
fn group_lag(group: &BaseConsumer, topic: &str) -> Option<LagByPartition> {
    let metadata = group.fetch_metadata(Some(topic), REQUEST_TIMEOUT).ok()?;
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    let mut list = TopicPartitionList::new();
    for p in t.partitions() {
        list.add_partition(topic, p.id());
    }
    let committed = group.committed_offsets(list, REQUEST_TIMEOUT).ok()?;
    let mut partitions = Vec::new();
    for element in committed.elements() {
        let (low, high) = group
            .fetch_watermarks(topic, element.partition(), REQUEST_TIMEOUT)
            .ok()?;
        let start = match element.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        partitions.push((element.partition(), (high - start).max(0)));
    }
    partitions.sort_unstable();
    Some(LagByPartition {
        partitions,
        behind_ms: Vec::new(),
    })
}

/// The group's members and the partitions of `topic` each owns, if the broker describes groups.
fn group_members(group: &BaseConsumer, id: &str, topic: &str) -> Option<Vec<GroupMember>> {
    let list = group.fetch_group_list(Some(id), REQUEST_TIMEOUT).ok()?;
    let info = list.groups().iter().find(|g| g.name() == id)?;
    let mut members: Vec<GroupMember> = info
        .members()
        .iter()
        .map(|m| GroupMember {
            client_id: m.client_id().to_owned(),
            host: m.client_host().trim_start_matches('/').to_owned(),
            partitions: m
                .assignment()
                .map(|a| assigned_partitions(a, topic))
                .unwrap_or_default(),
        })
        .collect();
    members.sort_by(|a, b| {
        a.partitions
            .cmp(&b.partitions)
            .then(a.client_id.cmp(&b.client_id))
    });
    Some(members)
}

/// The partitions of `topic` in a consumer protocol assignment: version (i16), then topics
/// (i32 count; each a string of i16 length and i32 partitions), then user data.
pub fn assigned_partitions(bytes: &[u8], topic: &str) -> Vec<i32> {
    let mut at = 2;
    let mut take = |n: usize| -> Option<&[u8]> {
        let slice = bytes.get(at..at + n)?;
        at += n;
        Some(slice)
    };
    let mut found = Vec::new();
    let mut read = || -> Option<()> {
        let topics = i32::from_be_bytes(take(4)?.try_into().ok()?);
        for _ in 0..topics.max(0) {
            let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let name = take(usize::try_from(len).ok()?)?.to_vec();
            let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
            for _ in 0..count.max(0) {
                let p = i32::from_be_bytes(take(4)?.try_into().ok()?);
                if name == topic.as_bytes() {
                    found.push(p);
                }
            }
        }
        Some(())
    };
    let _ = read();
    found.sort_unstable();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_read_from_the_consumer_protocol() {
        let mut bytes = vec![0, 0];
        bytes.extend_from_slice(&2i32.to_be_bytes());
        for (topic, partitions) in [("other", vec![5i32]), ("experience-events", vec![2, 0])] {
            bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            bytes.extend_from_slice(topic.as_bytes());
            bytes.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
            for p in partitions {
                bytes.extend_from_slice(&p.to_be_bytes());
            }
        }
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(assigned_partitions(&bytes, "experience-events"), vec![0, 2]);
        assert_eq!(assigned_partitions(&bytes, "none"), Vec::<i32>::new());
        assert_eq!(
            assigned_partitions(&bytes[..9], "experience-events"),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn output_records_become_the_events_they_scored() {
        let line = br#"{"id":4,"years_experience":4.7,"ts_ms":1795625081368,"predicted_salary":70207.02,"extrapolated":false,"model":"6c25318e","partition":2,"offset":17,"latency_ms":2.61}"#;
        assert_eq!(
            scored_event(line),
            Some(ScoredEvent {
                partition: 2,
                offset: 17,
                event_ms: Some(1_795_625_081_368),
                years: 4.7,
                predicted: 70207.02,
                salary: None,
                latency_ms: Some(2.61),
                extrapolated: false,
            })
        );
        assert_eq!(scored_event(b"not json"), None);
    }
}
