//! A window of a topic's history through several models: which offsets the window holds, reading
//! them without joining a group or committing anything, and each model's figures over them.
//!
//! The reader assigns the partitions itself and never subscribes, so it joins no group; it commits
//! nothing. librdkafka's assign() needs a `group.id` all the same (without one it fails with
//! "Unknown group"), so the reader names a throwaway one of its own, with automatic commits off.
//! A window ends at the high watermarks read when it starts, or
//! before the first record at an end time, so a live topic never keeps it running.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::formats::framed::FramedDecoder;
use crate::formats::json::{self, ExperienceEvent, Features};
use crate::formats::record::RecordError;
use crate::formats::registry::is_framed;
use crate::formats::registry_client::{RegistryClient, RegistryError};
use crate::formats::shape::EventShape;
use crate::kafka::config::KafkaOptions;
use crate::kafka::offset_spec::{self, OffsetSpec, ResolveError};
use crate::model::{Predictor, BATCH_ROWS};
use crate::observe::quality::Accuracy;

/// How long a metadata or offset lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading may go without a record or a partition's end before it gives up: a
/// window's records all exist when it starts, so a silence this long is a broker not serving.
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The registry could not be used (unreachable for longer than the reader waits, or
    /// refusing it): the figures would leave its framed records out.
    #[error("{0}; the backtest stops rather than leave framed records out")]
    Registry(RegistryError),
    /// The consumer could not be created (a bad `-X` property, say).
    #[error("cannot create a Kafka consumer: {0}")]
    Client(KafkaError),
    /// The broker did not answer the metadata request.
    #[error("cannot reach Kafka at {bootstrap} within {} s: {source}", LOOKUP_TIMEOUT.as_secs())]
    Unreachable {
        /// Where it was looked for.
        bootstrap: String,
        /// What librdkafka said.
        source: KafkaError,
    },
    /// The topic is not on the broker.
    #[error("topic {topic} does not exist at {bootstrap}")]
    NoTopic {
        /// The topic.
        topic: String,
        /// The broker.
        bootstrap: String,
    },
    /// Offsets could not be looked up.
    #[error(transparent)]
    Offsets(#[from] ResolveError),
    /// The partitions could not be assigned.
    #[error("cannot assign the partitions of {topic}: {source}")]
    Assign {
        /// The topic.
        topic: String,
        /// What librdkafka said.
        source: KafkaError,
    },
    /// Reading stopped making progress.
    #[error(
        "no record from {topic} for {} s with {remaining} records of the window left \
         (partitions {partitions}){}",
        STALL_LIMIT.as_secs(),
        last_error.as_ref().map_or_else(String::new, |e| format!(": {e}"))
    )]
    Stalled {
        /// The topic.
        topic: String,
        /// Records of the window not read.
        remaining: i64,
        /// The partitions not finished, comma-separated.
        partitions: String,
        /// The last error librdkafka reported, if any.
        last_error: Option<String>,
    },
}

/// Where a window starts and ends, as the user gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Where each partition starts.
    pub start: OffsetSpec,
    /// An end time (`e@TS`); `None`: the high watermarks when the backtest starts.
    pub end: Option<OffsetSpec>,
}

/// One partition's share of a window: offsets `start..end`, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartitionWindow {
    /// The partition.
    pub partition: i32,
    /// The first offset read.
    pub start: i64,
    /// The offset reading stops before.
    pub end: i64,
}

impl PartitionWindow {
    /// Offsets in the window (records, unless some were compacted away or are transaction
    /// markers).
    pub fn len(&self) -> i64 {
        (self.end - self.start).max(0)
    }

    /// Whether the window holds no offset of this partition.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model's figures over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFigures {
    /// The model's version id.
    pub version: String,
    /// Records it scored (decoded, with a finite prediction).
    pub records: u64,
    /// Of those, how many carried a label.
    pub labeled: u64,
    /// Mean absolute error over the labeled records; absent without any.
    pub mae: Option<f64>,
    /// Root mean squared error; absent without labeled records.
    pub rmse: Option<f64>,
    /// Coefficient of determination; absent without labeled records or while every label is
    /// the same.
    pub r2: Option<f64>,
    /// Labeled records where this model's absolute error was smaller than every other model's
    /// (a tie for the smallest is nobody's win).
    pub wins: u64,
}

/// What a backtest found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Each partition's offsets, in partition order.
    pub window: Vec<PartitionWindow>,
    /// Records read in the window.
    pub records: u64,
    /// Of those, how many did not decode (counted, not scored).
    pub bad: u64,
    /// One entry per model, in the order given.
    pub models: Vec<ModelFigures>,
}

/// Labeled records and counts, fed record by record; the figures come out at the end.
///
/// Labeled records are kept as `(features, label)` per partition in offset order, and the figures
/// are summed partition by partition: the same window gives the same figures to the last bit,
/// however librdkafka interleaved the partitions while reading.
#[derive(Debug, Clone)]
pub struct Scoreboard {
    models: Vec<Predictor>,
    shape: EventShape,
    records: u64,
    bad: u64,
    scored: Vec<u64>,
    labeled: BTreeMap<i32, Vec<(Features, f64)>>,
    /// Unlabeled records not yet run for the `scored` counts: every model is run on
    /// [`BATCH_ROWS`] of them at once (one run of an ONNX graph).
    pending: Vec<Features>,
    /// Reads registry-framed values (`-r`).
    framed: Option<FramedDecoder>,
    /// The registry could not be used for that long: the figures would leave records out.
    failure: Option<RegistryError>,
}

impl Scoreboard {
    /// An empty scoreboard for `models`, whose events have `shape`.
    pub fn new(models: Vec<Predictor>, shape: EventShape) -> Self {
        Scoreboard {
            scored: vec![0; models.len()],
            pending: Vec::new(),
            models,
            shape,
            records: 0,
            bad: 0,
            labeled: BTreeMap::new(),
            framed: None,
            failure: None,
        }
    }

    /// The same scoreboard, reading values framed for a Schema Registry through `decoder`.
    pub fn reading_framed(self, decoder: FramedDecoder) -> Self {
        Scoreboard {
            framed: Some(decoder),
            ..self
        }
    }

    /// Takes one record's value from `partition` (records of a partition in offset order). A
    /// framed value waits for an unreachable registry, up to [`STALL_LIMIT`].
    pub fn observe(&mut self, partition: i32, value: Option<&[u8]>) {
        self.records += 1;
        let event = match (self.framed.as_mut(), value) {
            (Some(_), _) if self.failure.is_some() => Err(()),
            (Some(decoder), Some(v)) if is_framed(v) => {
                match decode_waiting(decoder, &self.shape, v) {
                    Ok(decoded) => decoded.map_err(|_| ()),
                    Err(e) => {
                        self.failure = Some(e);
                        Err(())
                    }
                }
            }
            _ => json::decode_as(&self.shape, value).map_err(|_| ()),
        };
        let Ok(event) = event else {
            self.bad += 1;
            return;
        };
        // A labeled record is run once, with the others, when the figures are made; an unlabeled
        // one is only counted.
        if let Some(label) = event.label {
            self.labeled
                .entry(partition)
                .or_default()
                .push((event.features, label));
        } else {
            self.pending.push(event.features);
            if self.pending.len() >= BATCH_ROWS {
                self.count_pending();
            }
        }
    }

    /// Records taken so far, and how many of them were bad.
    pub fn counts(&self) -> (u64, u64) {
        (self.records, self.bad)
    }

    /// Runs every model on the `pending` records at once and counts the finite predictions.
    fn count_pending(&mut self) {
        let rows: Vec<&[f64]> = self.pending.iter().map(|f| f.as_slice()).collect();
        for (model, scored) in self.models.iter().zip(&mut self.scored) {
            let predictions = model.predict_rows(&rows);
            *scored += predictions.iter().filter(|p| p.is_finite()).count() as u64;
        }
        self.pending.clear();
    }

    /// Each model's figures over everything taken. Each model is run once on each labeled
    /// record, [`BATCH_ROWS`] at a time (one run for them all when it runs batches), which also
    /// counts those it scored.
    pub fn figures(mut self) -> Vec<ModelFigures> {
        if !self.pending.is_empty() {
            self.count_pending();
        }
        let (rows, labels): (Vec<&[f64]>, Vec<f64>) = self
            .labeled
            .values()
            .flatten()
            .map(|(x, y)| (x.as_slice(), *y))
            .unzip();
        let predictions: Vec<Vec<f64>> = self
            .models
            .iter()
            .map(|m| {
                rows.chunks(BATCH_ROWS)
                    .flat_map(|chunk| m.predict_rows(chunk))
                    .collect()
            })
            .collect();
        for (ps, scored) in predictions.iter().zip(&mut self.scored) {
            *scored += ps.iter().filter(|p| p.is_finite()).count() as u64;
        }
        let mut wins = vec![0; self.models.len()];
        let mut errors = Vec::with_capacity(self.models.len());
        for (i, label) in labels.iter().enumerate() {
            errors.clear();
            errors.extend(predictions.iter().map(|ps| {
                let p = ps[i];
                p.is_finite().then(|| (label - p).abs())
            }));
            let best = errors
                .iter()
                .flatten()
                .copied()
                .fold(f64::INFINITY, f64::min);
            let mut at_best = errors.iter().enumerate().filter(|(_, e)| **e == Some(best));
            if let (Some((winner, _)), None) = (at_best.next(), at_best.next()) {
                wins[winner] += 1;
            }
        }
        self.models
            .iter()
            .zip(&self.scored)
            .zip(wins)
            .zip(&predictions)
            .map(|(((model, &records), wins), ps)| {
                let pairs = labels
                    .iter()
                    .zip(ps)
                    .filter(|(_, p)| p.is_finite())
                    .map(|(&label, &p)| (label, p));
                let accuracy = Accuracy::of(pairs);
                ModelFigures {
                    version: model.version.clone(),
                    records,
                    labeled: accuracy.map_or(0, |a| a.n as u64),
                    mae: accuracy.map(|a| a.mae),
                    rmse: accuracy.map(|a| a.rmse),
                    r2: accuracy.map(|a| a.r2).filter(|r| r.is_finite()),
                    wins,
                }
            })
            .collect()
    }
}

/// A framed value's event, asking an unreachable registry again (0.5 s to 5 s apart) until
/// [`STALL_LIMIT`] has passed.
fn decode_waiting<'v>(
    decoder: &mut FramedDecoder,
    shape: &EventShape,
    value: &'v [u8],
) -> Result<Result<ExperienceEvent<'v>, RecordError>, RegistryError> {
    let started = Instant::now();
    let mut retry = Duration::from_millis(500);
    loop {
        match decoder.decode_event(shape, value) {
            Err(e) if e.is_retryable() && started.elapsed() + retry < STALL_LIMIT => {
                tracing::warn!(error = %e, "registry: the backtest waits");
                std::thread::sleep(retry);
                retry = (retry * 2).min(Duration::from_secs(5));
            }
            decoded => return decoded,
        }
    }
}

/// Reads the window `bounds` gives of `topic` at `kafka` and scores it with `models`; values
/// framed for a Schema Registry are read through `registry`, when given.
pub fn run(
    kafka: &KafkaOptions,
    topic: &str,
    bounds: Bounds,
    models: Vec<Predictor>,
    shape: EventShape,
    registry: Option<std::sync::Arc<RegistryClient>>,
) -> Result<Outcome, BacktestError> {
    let mut config = kafka.client_config(&[
        // The end of a partition is also where a window ends when its last offsets hold no
        // record (transaction markers, compaction).
        ("enable.partition.eof", "true"),
        // Records deleted between the watermark lookup and the fetch: start at what is left.
        ("auto.offset.reset", "earliest"),
    ]);
    // Whatever `-X` says: a backtest commits nothing, under a group of its own that it never
    // joins.
    config
        .set(
            "group.id",
            format!("salary-stream-backtest-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: BaseConsumer = config.create().map_err(BacktestError::Client)?;
    let planned = plan(&consumer, kafka, topic, bounds)?;
    let mut board = Scoreboard::new(models, shape);
    if let Some(client) = registry {
        board = board.reading_framed(FramedDecoder::new(client));
    }
    let window = read(&consumer, topic, planned, &mut board)?;
    if let Some(e) = board.failure.take() {
        return Err(BacktestError::Registry(e));
    }
    let (records, bad) = board.counts();
    Ok(Outcome {
        models: board.figures(),
        window,
        records,
        bad,
    })
}

/// One partition's window as planned, with what only its records' timestamps can settle.
#[derive(Debug, Clone, Copy)]
struct Planned {
    window: PartitionWindow,
    /// `s@TS`: the window starts at the first record read whose timestamp is at least this
    /// (reading from where the broker placed it), as a broker's lookup by time would.
    find_start_ms: Option<i64>,
    /// `e@TS`: the window ends before the first record whose timestamp is at least this, as
    /// kcat ends there (record by record, with no lookup a broker could get wrong).
    stop_at_ms: Option<i64>,
}

/// The offsets of each partition that `bounds` covers.
fn plan(
    consumer: &BaseConsumer,
    kafka: &KafkaOptions,
    topic: &str,
    bounds: Bounds,
) -> Result<Vec<Planned>, BacktestError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), LOOKUP_TIMEOUT)
        .map_err(|source| BacktestError::Unreachable {
            bootstrap: kafka.bootstrap.clone(),
            source,
        })?;
    let no_topic = || BacktestError::NoTopic {
        topic: topic.to_owned(),
        bootstrap: kafka.bootstrap.clone(),
    };
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(no_topic)?;
    if found.error().is_some() || found.partitions().is_empty() {
        return Err(no_topic());
    }
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    let marks = offset_spec::watermarks(consumer, topic, &partitions, LOOKUP_TIMEOUT)?;
    let start_found = match bounds.start {
        OffsetSpec::StartTime(ts) => offset_spec::offsets_for_time(
            consumer,
            topic,
            partitions.iter().copied(),
            ts,
            LOOKUP_TIMEOUT,
        )?,
        _ => BTreeMap::new(),
    };
    tracing::debug!(?marks, ?start_found, "window lookups");
    Ok(marks
        .iter()
        .map(|(&partition, &m)| {
            let found = start_found.get(&partition).copied().flatten();
            let (start, find_start_ms) = match bounds.start {
                // Read from the broker's answer (from the beginning if it had none) and skip
                // what is older: a broker that looks offsets up by time (Apache Kafka) answered
                // exactly and nothing is skipped; one that cannot (the embedded broker answers
                // none, tansu 0.6 the first offset) is corrected by the records themselves.
                OffsetSpec::StartTime(ts) if m.high > m.low => {
                    (found.unwrap_or(m.low).clamp(m.low, m.high), Some(ts))
                }
                spec => (spec.position(m, found), None),
            };
            Planned {
                window: PartitionWindow {
                    partition,
                    start,
                    end: m.high.max(start),
                },
                find_start_ms,
                stop_at_ms: bounds.end.and_then(|e| e.timestamp_ms()),
            }
        })
        .collect())
}

/// Reads every record of the planned windows into `board`; returns the windows as read (a
/// window whose bounds came from record timestamps ends up where those were found).
fn read(
    consumer: &BaseConsumer,
    topic: &str,
    planned: Vec<Planned>,
    board: &mut Scoreboard,
) -> Result<Vec<PartitionWindow>, BacktestError> {
    let mut plans: BTreeMap<i32, Planned> = planned
        .into_iter()
        .map(|p| (p.window.partition, p))
        .collect();
    // The next offset wanted from each partition still being read.
    let mut next: BTreeMap<i32, i64> = plans
        .values()
        .filter(|p| !p.window.is_empty())
        .map(|p| (p.window.partition, p.window.start))
        .collect();
    assign(consumer, topic, &next)?;
    let mut last_progress = Instant::now();
    let mut last_error = None;
    while !next.is_empty() {
        let finished = match consumer.poll(Duration::from_millis(100)) {
            None => None,
            Some(Ok(message)) => {
                last_progress = Instant::now();
                take(&message, &mut plans, &mut next, board)
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                last_progress = Instant::now();
                Some(p)
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "backtest read");
                last_error = Some(e.to_string());
                None
            }
        };
        if let Some(p) = finished.filter(|p| next.remove(p).is_some()) {
            finish(consumer, topic, p, &mut plans);
        }
        if last_progress.elapsed() > STALL_LIMIT {
            return Err(stalled(topic, &plans, &next, last_error));
        }
    }
    Ok(plans.into_values().map(|p| p.window).collect())
}

/// Assigns each partition in `next` from its offset there (nothing, when none is to be read).
fn assign(
    consumer: &BaseConsumer,
    topic: &str,
    next: &BTreeMap<i32, i64>,
) -> Result<(), BacktestError> {
    let assign_failed = |source| BacktestError::Assign {
        topic: topic.to_owned(),
        source,
    };
    if !next.is_empty() {
        let mut assignment = TopicPartitionList::new();
        for (&p, &start) in next {
            assignment
                .add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(assign_failed)?;
        }
        consumer.assign(&assignment).map_err(assign_failed)?;
    }
    Ok(())
}

/// Takes one record into its partition's window: into `board` if it is in the window, past it
/// if older than an `s@` start; returns its partition when that window is read to its end.
/// Records of partitions not being read are ignored.
fn take(
    message: &impl Message,
    plans: &mut BTreeMap<i32, Planned>,
    next: &mut BTreeMap<i32, i64>,
    board: &mut Scoreboard,
) -> Option<i32> {
    let p = message.partition();
    let (Some(plan), true) = (plans.get_mut(&p), next.contains_key(&p)) else {
        return None;
    };
    let offset = message.offset();
    let ts = message.timestamp().to_millis();
    let w = &mut plan.window;
    if offset >= w.end || plan.stop_at_ms.is_some_and(|e| ts >= Some(e)) {
        w.end = offset.clamp(w.start, w.end);
        return Some(p);
    }
    next.insert(p, offset + 1);
    match plan.find_start_ms {
        Some(s) if ts < Some(s) => w.start = offset + 1,
        _ => {
            if plan.find_start_ms.take().is_some() {
                w.start = offset;
            }
            board.observe(p, message.payload());
        }
    }
    (offset + 1 >= w.end).then_some(p)
}

/// Stops fetching partition `p`, whose window is read to its end (an `s@` window that found no
/// record new enough is empty).
fn finish(consumer: &BaseConsumer, topic: &str, p: i32, plans: &mut BTreeMap<i32, Planned>) {
    if let Some(plan) = plans.get_mut(&p) {
        if plan.find_start_ms.is_some() {
            // No record was new enough: the window of this partition is empty.
            plan.window.start = plan.window.end;
        }
    }
    // Records past the window are not wanted; stop fetching them.
    let mut done = TopicPartitionList::new();
    done.add_partition(topic, p);
    if let Err(e) = consumer.pause(&done) {
        tracing::debug!(partition = p, error = %e, "pause");
    }
}

/// The error for reading that made no progress, with what was left to read.
fn stalled(
    topic: &str,
    plans: &BTreeMap<i32, Planned>,
    next: &BTreeMap<i32, i64>,
    last_error: Option<String>,
) -> BacktestError {
    BacktestError::Stalled {
        topic: topic.to_owned(),
        remaining: next
            .iter()
            .map(|(p, n)| plans.get(p).map_or(*n, |plan| plan.window.end) - n)
            .sum(),
        partitions: next
            .keys()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        last_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FeatureRange;

    fn model(version: &str, intercept: f64, slope: f64) -> Predictor {
        Predictor::line(
            version,
            intercept,
            slope,
            FeatureRange {
                min: 0.0,
                max: 10.0,
            },
        )
    }

    fn event(years: f64, salary: Option<f64>) -> Vec<u8> {
        match salary {
            Some(s) => format!(r#"{{"years_experience": {years}, "salary": {s}}}"#),
            None => format!(r#"{{"years_experience": {years}}}"#),
        }
        .into_bytes()
    }

    #[test]
    fn figures_of_two_models_over_known_records() {
        // a predicts 100 + 10 y, b predicts 110 + 10 y.
        let mut board = Scoreboard::new(
            vec![model("a", 100.0, 10.0), model("b", 110.0, 10.0)],
            EventShape::salary().clone(),
        );
        board.observe(0, Some(&event(1.0, Some(110.0)))); // a exact: a wins
        board.observe(1, Some(&event(2.0, Some(135.0)))); // errors 15, 5: b wins
        board.observe(0, Some(&event(3.0, Some(135.0)))); // errors 5, 5: a tie, nobody's
        board.observe(1, Some(&event(4.0, None)));
        board.observe(1, Some(b"not json"));
        board.observe(0, None);
        assert_eq!(board.counts(), (6, 2));
        let figures = board.figures();
        // Partition order: (1, 110), (3, 135), then (2, 135).
        let labels = [110.0, 135.0, 135.0];
        let mean = (110.0 + 135.0 + 135.0) / 3.0;
        let tot: f64 = labels.iter().map(|y| (y - mean) * (y - mean)).sum();
        assert_eq!(
            figures[0],
            ModelFigures {
                version: "a".into(),
                records: 4,
                labeled: 3,
                mae: Some((0.0 + 5.0 + 15.0) / 3.0),
                rmse: Some(((0.0 + 25.0 + 225.0) / 3.0f64).sqrt()),
                r2: Some(1.0 - 250.0 / tot),
                wins: 1,
            }
        );
        assert_eq!(
            figures[1],
            ModelFigures {
                version: "b".into(),
                records: 4,
                labeled: 3,
                mae: Some((10.0 + 5.0 + 5.0) / 3.0),
                rmse: Some(((100.0 + 25.0 + 25.0) / 3.0f64).sqrt()),
                r2: Some(1.0 - 150.0 / tot),
                wins: 1,
            }
        );
    }

    #[test]
    fn an_empty_window_has_counts_of_zero_and_no_accuracy() {
        let board = Scoreboard::new(vec![model("a", 1.0, 1.0)], EventShape::salary().clone());
        assert_eq!(board.counts(), (0, 0));
        assert_eq!(
            board.figures(),
            vec![ModelFigures {
                version: "a".into(),
                records: 0,
                labeled: 0,
                mae: None,
                rmse: None,
                r2: None,
                wins: 0,
            }]
        );
    }

    #[test]
    fn one_model_wins_every_labeled_record_and_equal_labels_have_no_r2() {
        let mut board = Scoreboard::new(vec![model("a", 0.0, 10.0)], EventShape::salary().clone());
        board.observe(0, Some(&event(1.0, Some(50.0))));
        board.observe(0, Some(&event(2.0, Some(50.0))));
        let f = &board.figures()[0];
        assert_eq!((f.labeled, f.wins, f.mae, f.r2), (2, 2, Some(35.0), None));
    }
}
