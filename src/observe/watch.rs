//! Watching a whole consumer group without joining it (`dash --watch-group`): every member's
//! predictions read from the output topic by the names of the dashboard's model (its
//! `predicted_<label>`, features and label), and the accuracy and latency they carry (`residual`,
//! `latency_ms`); the group's lag from its committed offsets against the input partitions' high
//! watermarks, how old its oldest unread record is, and which member owns which partitions, where
//! the broker tells.

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
    BrokerHealth, EngineEvent, FeatureColumns, FeatureRow, LagByPartition, ScoreReport,
    ScoredEvent, SharedSink,
};
use crate::kafka::config::KafkaOptions;
use crate::observe::quality::{Quality, RollingAccuracy};
use crate::observe::stats::{LatencyWindow, LATENCY_WINDOW_SECONDS};

/// How often lag and members are asked for.
const GROUP_INTERVAL: Duration = Duration::from_secs(1);
/// How often what was read is reported.
const REPORT_INTERVAL: Duration = Duration::from_millis(50);
/// How long one broker request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long reading the oldest unread record of the lagging partitions may take, once a
/// `GROUP_INTERVAL`: the output's predictions wait meanwhile.
const PEEK_WAIT: Duration = Duration::from_millis(300);

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
    /// The names its predictions are read by: the dashboard's model's.
    pub fields: PredictionFields,
}

/// The names of a model's fields in the predictions it publishes: what the watcher reads each
/// output record by.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionFields {
    /// The prediction's field: `predicted_` and the label's (`predicted_salary`).
    pub predicted: String,
    /// The label's field (`salary`, `progression`), carried when the event carried it.
    pub label: String,
    /// The features the table shows, most influential first: each one's index in the model's
    /// row and its JSON field, as the scorer names its own rows (`Predictor::shown`).
    pub shown: FeatureColumns,
}

impl PredictionFields {
    /// The fields of a model labeled `label` whose table shows `shown`.
    pub fn new(label: &str, shown: FeatureColumns) -> Self {
        PredictionFields {
            predicted: format!("predicted_{label}"),
            label: label.to_owned(),
            shown,
        }
    }

    /// The prediction an output record carries, and its `residual` when it has one; `None`
    /// for a record that is not JSON, names no input position or carries no prediction by
    /// these names. A feature the record lacks is NaN: the table leaves its cell empty.
    fn read(&self, payload: &[u8]) -> Option<(ScoredEvent, Option<f64>)> {
        let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
        let width = self.shown.iter().map(|&(i, _)| i + 1).max().unwrap_or(0);
        let mut row = vec![f64::NAN; width];
        for (i, field) in self.shown.iter() {
            row[*i] = v[field].as_f64().unwrap_or(f64::NAN);
        }
        let event = ScoredEvent {
            partition: i32::try_from(v["partition"].as_i64()?).ok()?,
            offset: v["offset"].as_i64()?,
            event_ms: v["ts_ms"].as_i64(),
            features: FeatureRow::new(&row, &self.shown),
            predicted: v[&self.predicted].as_f64()?,
            salary: v[&self.label].as_f64(),
            challenger: v["challenger"][&self.predicted].as_f64(),
            latency_ms: v["latency_ms"].as_f64(),
            extrapolated: v["extrapolated"].as_bool().unwrap_or(false),
        };
        Some((event, v["residual"].as_f64()))
    }
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
    // Reads the group's oldest unread input records by assignment, for their age; never commits.
    let mut peek_config = config
        .kafka
        .client_config(&[("enable.auto.commit", "false")]);
    peek_config.set(
        "group.id",
        format!("salary-stream-watch-{}-peek", std::process::id()),
    );
    let peek: BaseConsumer = peek_config.create()?;
    let clients = Clients {
        reader,
        group,
        peek,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || run(&config, &clients, &sink, &stopping))
        .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
    Ok(WatchHandle { stop, thread })
}

/// The watcher's clients: none joins the watched group.
struct Clients {
    /// Reads the output topic by assignment.
    reader: BaseConsumer,
    /// Carries the watched group's id, to ask for its offsets and members.
    group: BaseConsumer,
    /// Reads the oldest unread input record of each lagging partition.
    peek: BaseConsumer,
}

/// What the group's predictions say of its models: accuracy over the latest that carry a
/// `residual`, and latency over the last seconds from their `latency_ms` (event to scoring).
/// Pure; the watcher feeds it every prediction it reads.
#[derive(Debug)]
pub struct PredictionQuality {
    accuracy: RollingAccuracy,
    latency: LatencyWindow,
}

impl PredictionQuality {
    /// Nothing seen yet.
    pub fn new() -> Self {
        PredictionQuality {
            accuracy: RollingAccuracy::new(Quality::WINDOW),
            latency: LatencyWindow::new(LATENCY_WINDOW_SECONDS),
        }
    }

    /// Takes one prediction read at `now_ms`: the value `predicted`, its `residual` (label minus
    /// prediction) when it has one, and its `latency_ms` when it says.
    pub fn observe(
        &mut self,
        predicted: f64,
        residual: Option<f64>,
        latency_ms: Option<f64>,
        now_ms: f64,
    ) {
        if let Some(r) = residual.filter(|r| r.is_finite()) {
            self.accuracy.push(predicted + r, predicted);
        }
        if let Some(ms) = latency_ms.filter(|ms| ms.is_finite()) {
            self.latency
                .record_n(now_ms, (ms * 1000.0).max(1.0) as u64, 1);
        }
    }

    /// Puts the accuracy and the latency as of `now_ms` into `report`, where there are any.
    pub fn fill(&self, report: &mut ScoreReport, now_ms: f64) {
        report.accuracy = self.accuracy.accuracy();
        report.latency = self.latency.summary(now_ms);
    }
}

impl Default for PredictionQuality {
    fn default() -> Self {
        PredictionQuality::new()
    }
}

fn run(config: &WatchConfig, clients: &Clients, sink: &SharedSink, stop: &AtomicBool) {
    let Clients {
        reader,
        group,
        peek,
    } = clients;
    let mut assigned = false;
    let mut report = ScoreReport::default();
    let mut quality = PredictionQuality::new();
    let mut last_report = Instant::now();
    let mut last_group: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if !assigned {
            assigned = assign_all_at_end(reader, &config.output_topic);
        }
        match reader.poll(Duration::from_millis(if assigned { 20 } else { 200 })) {
            Some(Ok(message)) => {
                let read = message.payload().and_then(|p| config.fields.read(p));
                if let Some((event, residual)) = read {
                    let now_ms = crate::engine::now_ms() as f64;
                    quality.observe(event.predicted, residual, event.latency_ms, now_ms);
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
                quality.fill(&mut out, crate::engine::now_ms() as f64);
                sink.emit(EngineEvent::Scored(out));
            }
        }
        if last_group.is_none_or(|t| t.elapsed() >= GROUP_INTERVAL) {
            last_group = Some(Instant::now());
            // Each request may wait REQUEST_TIMEOUT for a broker that does not answer: a stop
            // asked meanwhile is heeded between them, not after the whole step.
            let lag = group_lag(group, &config.input_topic, stop);
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match lag {
                Some((lag, unread)) => {
                    sink.emit(EngineEvent::Broker(BrokerHealth::Up));
                    let made = timestamps_at(peek, &config.input_topic, &unread);
                    sink.emit(EngineEvent::Lag(oldest_unread_age(
                        lag,
                        &made,
                        crate::engine::now_ms(),
                    )));
                }
                None => sink.emit(EngineEvent::Broker(BrokerHealth::Unreachable(
                    "no answer to the group's offsets and watermarks".into(),
                ))),
            }
            if stop.load(Ordering::Relaxed) {
                break;
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

/// The prediction an output record of a model named by `fields` carries, as the view shows it
/// (its input partition and offset, not the output's).
pub fn scored_event(payload: &[u8], fields: &PredictionFields) -> Option<ScoredEvent> {
    fields.read(payload).map(|(event, _)| event)
}

/// The group's lag on `topic`: each partition's high watermark minus the group's committed
/// offset (or minus the low watermark where it has committed none); and, of each partition with
/// lag, the offset of its oldest unread record. `None` when the broker does not answer, or once
/// `stop` is set (looked at between requests).
fn group_lag(
    group: &BaseConsumer,
    topic: &str,
    stop: &AtomicBool,
) -> Option<(LagByPartition, Vec<(i32, i64)>)> {
    let metadata = group.fetch_metadata(Some(topic), REQUEST_TIMEOUT).ok()?;
    if stop.load(Ordering::Relaxed) {
        return None;
    }
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    let mut list = TopicPartitionList::new();
    for p in t.partitions() {
        list.add_partition(topic, p.id());
    }
    let committed = group.committed_offsets(list, REQUEST_TIMEOUT).ok()?;
    let mut partitions = Vec::new();
    let mut unread = Vec::new();
    for element in committed.elements() {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let (low, high) = group
            .fetch_watermarks(topic, element.partition(), REQUEST_TIMEOUT)
            .ok()?;
        let start = match element.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        partitions.push((element.partition(), (high - start).max(0)));
        if high > start {
            unread.push((element.partition(), start));
        }
    }
    partitions.sort_unstable();
    Some((
        LagByPartition {
            partitions,
            behind_ms: Vec::new(),
        },
        unread,
    ))
}

/// The Kafka timestamp of the record at each `(partition, offset)` of `topic` (or of the first
/// after it, where it is gone), of those read within [`PEEK_WAIT`].
fn timestamps_at(peek: &BaseConsumer, topic: &str, at: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    let mut made = BTreeMap::new();
    let mut list = TopicPartitionList::new();
    for &(p, offset) in at {
        if list
            .add_partition_offset(topic, p, Offset::Offset(offset))
            .is_err()
        {
            return made;
        }
    }
    if at.is_empty() || peek.assign(&list).is_err() {
        return made;
    }
    let deadline = Instant::now() + PEEK_WAIT;
    while made.len() < at.len() && Instant::now() < deadline {
        if let Some(Ok(message)) = peek.poll(Duration::from_millis(20)) {
            let asked = at.iter().find(|(p, _)| *p == message.partition());
            // A record fetched for an earlier assignment is older than the one asked for.
            let wanted = asked.is_some_and(|&(_, offset)| message.offset() >= offset);
            if let (true, Some(t)) = (wanted, message.timestamp().to_millis()) {
                made.entry(message.partition()).or_insert(t);
            }
        }
    }
    let _ = peek.unassign();
    made
}

/// `lag` with how far behind each partition is at `now_ms`: the age of its oldest unread
/// record, made at `made` (by partition); 0 where nothing is unread, or its age is unknown.
pub fn oldest_unread_age(
    lag: LagByPartition,
    made: &BTreeMap<i32, i64>,
    now_ms: i64,
) -> LagByPartition {
    let behind_ms = lag
        .partitions
        .iter()
        .map(|&(p, l)| {
            let age = made.get(&p).filter(|_| l > 0).map_or(0, |t| now_ms - t);
            (p, age.max(0))
        })
        .collect();
    LagByPartition { behind_ms, ..lag }
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

    /// The salary demo's names.
    fn salary() -> PredictionFields {
        PredictionFields::new("salary", Arc::from([(0, "years_experience".to_owned())]))
    }

    /// A ten-feature diabetes model's names: `shown` most influential first, each with its
    /// index in the model's row (age, sex, bmi, bp, s1..s6).
    fn diabetes() -> PredictionFields {
        let order = [
            "s1", "s5", "bmi", "s2", "bp", "sex", "s4", "s3", "s6", "age",
        ];
        let row = [
            "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6",
        ];
        let shown: FeatureColumns = order
            .iter()
            .map(|f| (row.iter().position(|r| r == f).unwrap(), (*f).to_owned()))
            .collect();
        PredictionFields::new("progression", shown)
    }

    #[test]
    fn output_records_become_the_events_they_scored() {
        let line = br#"{"id":4,"years_experience":4.7,"ts_ms":1795625081368,"predicted_salary":70207.02,"extrapolated":false,"model":"6c25318e","partition":2,"offset":17,"latency_ms":2.61}"#;
        assert_eq!(
            scored_event(line, &salary()),
            Some(ScoredEvent {
                partition: 2,
                offset: 17,
                event_ms: Some(1_795_625_081_368),
                features: FeatureRow::years(4.7),
                predicted: 70207.02,
                salary: None,
                challenger: None,
                latency_ms: Some(2.61),
                extrapolated: false,
            })
        );
        assert_eq!(scored_event(b"not json", &salary()), None);
        assert_eq!(
            scored_event(line, &diabetes()),
            None,
            "not a prediction of this model"
        );
    }

    #[test]
    fn any_models_predictions_are_read_by_its_own_names() {
        let line = br#"{"id":7,"age":0.0381,"sex":0.0507,"bmi":0.0617,"bp":0.0219,"s1":-0.0442,"s2":-0.0348,"s3":-0.0434,"s4":-0.0026,"s5":0.0199,"s6":-0.0176,"ts_ms":1795625081368,"progression":151.0,"predicted_progression":206.12,"residual":-55.12,"extrapolated":true,"model":"e2f71670","partition":1,"offset":9,"latency_ms":3.25,"challenger":{"model":"lr-1","predicted_progression":201.5,"residual":-50.5}}"#;
        let (event, residual) = diabetes().read(line).expect("a prediction");
        assert_eq!(
            event,
            ScoredEvent {
                partition: 1,
                offset: 9,
                event_ms: Some(1_795_625_081_368),
                features: FeatureRow::named(&[
                    ("s1", -0.0442),
                    ("s5", 0.0199),
                    ("bmi", 0.0617),
                    ("s2", -0.0348),
                    ("bp", 0.0219),
                    ("sex", 0.0507),
                    ("s4", -0.0026),
                    ("s3", -0.0434),
                    ("s6", -0.0176),
                    ("age", 0.0381),
                ]),
                predicted: 206.12,
                salary: Some(151.0),
                challenger: Some(201.5),
                latency_ms: Some(3.25),
                extrapolated: true,
            }
        );
        assert_eq!(residual, Some(-55.12));
        // A feature the record lacks leaves its value empty; the prediction is still read.
        let short = br#"{"bmi":0.05,"predicted_progression":140.5,"partition":0,"offset":1}"#;
        let (event, residual) = diabetes().read(short).expect("a prediction");
        assert_eq!(event.predicted, 140.5);
        assert_eq!(event.features.value_of("bmi"), Some(0.05));
        assert!(event.features.value_of("s1").is_some_and(f64::is_nan));
        assert_eq!(
            (event.salary, residual, event.latency_ms),
            (None, None, None)
        );
        // The demo's prediction is no prediction of this model.
        let salary_line =
            br#"{"years_experience":4.7,"predicted_salary":70207.02,"partition":2,"offset":17}"#;
        assert_eq!(diabetes().read(salary_line), None);
    }

    #[test]
    fn accuracy_and_latency_come_from_the_predictions_read() {
        let labeled = br#"{"years_experience":5.0,"salary":73000.0,"predicted_salary":73042.01,"residual":-42.01,"partition":0,"offset":3,"latency_ms":2.5}"#;
        let (event, residual) = salary().read(labeled).expect("a prediction");
        assert_eq!((event.predicted, residual), (73042.01, Some(-42.01)));
        let mut quality = PredictionQuality::new();
        let mut report = ScoreReport::default();
        quality.fill(&mut report, 0.0);
        assert_eq!((report.accuracy, report.latency), (None, None));
        // (predicted, residual, latency): one unlabeled.
        for (predicted, residual, latency) in [
            (100.0, Some(10.0), 2.0),
            (200.0, Some(-20.0), 4.0),
            (300.0, None, 6.0),
            (400.0, Some(0.0), 8.0),
        ] {
            quality.observe(predicted, residual, Some(latency), 1_000.0);
        }
        quality.fill(&mut report, 1_500.0);
        let accuracy = report.accuracy.expect("accuracy of the labeled");
        assert_eq!(accuracy.n, 3);
        assert_eq!(accuracy.mae, 10.0);
        assert_eq!(accuracy.rmse, (500.0f64 / 3.0).sqrt());
        let latency = report.latency.expect("latency of all four");
        assert_eq!(latency.count, 4);
        assert_eq!((latency.p50_ms, latency.max_ms), (4.0, 8.0));
        // Ten seconds on, the latency is gone and the accuracy stays.
        quality.fill(&mut report, 11_000.0);
        assert_eq!(report.latency, None);
        assert_eq!(report.accuracy.map(|a| a.n), Some(3));
    }

    #[test]
    fn a_partition_is_as_far_behind_as_its_oldest_unread_record_is_old() {
        let lag = LagByPartition {
            partitions: vec![(0, 4_000), (1, 0), (2, 12)],
            behind_ms: Vec::new(),
        };
        let made = BTreeMap::from([(0, 1_000_000), (1, 1_090_000)]);
        let behind = oldest_unread_age(lag, &made, 1_094_500);
        assert_eq!(behind.behind_ms, [(0, 94_500), (1, 0), (2, 0)]);
        assert_eq!(behind.most_behind_ms(), 94_500);
    }
}
