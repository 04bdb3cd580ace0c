//! How the scorer handles one record: scores it, and hands its prediction to the output topic
//! (in batches) and the prediction writer, or its dead letter to the dead-letter topic; in either
//! case the offset tracker learns of it before the producer does.

use std::sync::atomic::Ordering;

use rdkafka::error::KafkaError;
use rdkafka::producer::BaseRecord;

use crate::engine::ScoredEvent;
use crate::formats::json::{BadRecord, Prediction};
use crate::kafka::delivery::{Outgoing, TopicBatcher};
use crate::kafka::intake::Record;
use crate::serving::offsets::{lock, pack, unpack, DeliveryContext, ScoringProducer};
use crate::serving::scorer::{BoxedWriter, LoopState, Scorer};
use crate::serving::scoring::{self, dead_letter_headers, latency_ms, Scored};

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

/// Where the scorer's predictions go: the output topic, in batches, and the prediction writer.
pub(super) struct Outputs {
    /// The latest prediction as JSON, when it is not published.
    json: Vec<u8>,
    /// Publishes predictions in batches; `None` without an output topic.
    batcher: Option<TopicBatcher<DeliveryContext>>,
    /// Predictions handled and not yet handed to the producer.
    pending: Pending,
    /// Where predictions go besides the output topic.
    writer: Option<BoxedWriter>,
    /// The writer's reader went away: stop as if asked to.
    reader_gone: bool,
}

impl Outputs {
    /// Publishes through `producer` to `topic`, if one is given, and writes to `writer`, if one
    /// is given.
    pub(super) fn new(
        producer: &ScoringProducer,
        topic: Option<&str>,
        kafka: &crate::kafka::config::KafkaOptions,
        writer: Option<BoxedWriter>,
    ) -> Result<Self, KafkaError> {
        let mut batcher = match topic {
            Some(topic) => Some(TopicBatcher::new(producer.shared(), topic)?),
            None => None,
        };
        if let Some(batcher) = batcher.as_mut() {
            batcher.watch_partitions(kafka);
        }
        Ok(Outputs {
            json: Vec::with_capacity(256),
            batcher,
            pending: Pending::default(),
            writer,
            reader_gone: false,
        })
    }

    /// Whether the writer's reader went away (`| head`), so that the scorer stops.
    pub(super) fn reader_gone(&self) -> bool {
        self.reader_gone
    }

    /// Pushes out what the writer buffered.
    pub(super) fn flush_writer(&mut self) {
        if let Some(Err(e)) = self.writer.as_mut().map(|w| w.flush()) {
            tracing::debug!(error = %e, "prediction writer");
            self.reader_gone = true;
        }
    }
}

impl Scorer {
    /// Scores one record and hands its prediction or dead letter to the producer.
    pub(super) fn handle(&self, record: Record<'_>, now_ms: f64, state: &mut LoopState) {
        match scoring::score(&record, state.slots.serving()) {
            Ok(scored) => self.handle_scored(&record, &scored, now_ms, state),
            Err(bad) => self.dead_letter(&record, &bad, state),
        }
    }

    /// Sends the prediction of a record that scored, shows it to the quality watch if it was
    /// labeled, and counts it.
    fn handle_scored(
        &self,
        record: &Record<'_>,
        scored: &Scored<'_>,
        now_ms: f64,
        state: &mut LoopState,
    ) {
        let (partition, offset) = (record.partition, record.offset);
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
            record,
            &state.slots.serving().version,
            latency_ms,
            challenge,
        );
        self.send_prediction(
            record.key,
            (partition, offset, event_ms),
            &prediction,
            now_ms,
            &mut state.outputs,
        );
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
        state.tally.scored(ScoredEvent {
            partition,
            offset,
            event_ms,
            years: scored.event.years,
            predicted: scored.predicted,
            salary: scored.event.salary,
            latency_ms,
            extrapolated: scored.extrapolated,
        });
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands `prediction`, for `input` (partition, offset, event time) with `key`, to the
    /// pending batch when there is an output topic (else it is done at once), and to the writer.
    fn send_prediction(
        &self,
        key: Option<&[u8]>,
        input: (i32, i64, Option<i64>),
        prediction: &Prediction<'_>,
        now_ms: f64,
        outputs: &mut Outputs,
    ) {
        let json: &[u8] = if outputs.batcher.is_some() {
            // Tracked and published with the rest of the batch, by `publish`.
            outputs.pending.push(key, input, |out| {
                prediction.write_json(out);
            })
        } else {
            let (partition, offset, event_ms) = input;
            lock(&self.tracker).complete(partition, offset, event_ms, now_ms);
            outputs.json.clear();
            if outputs.writer.is_some() {
                prediction.write_json(&mut outputs.json);
            }
            &outputs.json
        };
        if let Some(w) = outputs.writer.as_mut() {
            if let Err(e) = w.write(json) {
                tracing::debug!(error = %e, "prediction writer");
                outputs.reader_gone = true;
            }
        }
    }

    /// Sends a record that could not be scored to the dead-letter topic, saying why, and counts
    /// it.
    fn dead_letter(&self, record: &Record<'_>, bad: &BadRecord, state: &mut LoopState) {
        let (partition, offset) = (record.partition, record.offset);
        let reason = bad.to_string();
        // The tracker takes a partition's offsets in order: the predictions before
        // this record go first.
        self.publish(&mut state.outputs);
        lock(&self.tracker).track(partition, offset, None);
        if let Some(t) = &self.transactions {
            t.handled(partition, offset);
        }
        let mut out: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&self.config.dlq_topic, pack(partition, offset))
                .headers(dead_letter_headers(record, &reason));
        if let Some(payload) = record.payload {
            out = out.payload(payload);
        }
        if let Some(key) = record.key {
            out = out.key(key);
        }
        if let Err(e) = self.producer.send_waiting(out) {
            self.failed(partition, offset, &e);
        }
        state.tally.bad(bad.class(), reason);
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands the predictions of the records handled since the last call to the producer.
    pub(super) fn publish(&self, outputs: &mut Outputs) {
        let Some(batcher) = outputs.batcher.as_mut() else {
            return;
        };
        if outputs.pending.records.is_empty() {
            return;
        }
        // One lock for the batch; before the records go, so no acknowledgement comes first.
        let mut tracker = lock(&self.tracker);
        for &(partition, offset, event_ms) in &outputs.pending.tracked {
            tracker.track(partition, offset, event_ms);
        }
        drop(tracker);
        for (opaque, e) in batcher.send(&outputs.pending.bytes, &outputs.pending.records) {
            let (partition, offset) = unpack(opaque);
            self.failed(partition, offset, &e);
        }
        outputs.pending.clear();
    }

    /// A record the producer refused: never acknowledged, so its offset is never committed and it
    /// is consumed again after a restart.
    fn failed(&self, partition: i32, offset: i64, error: &KafkaError) {
        // A refusal stops the scorer with one line; each record need not say it again.
        if rdkafka::producer::Producer::context(&**self.producer).note_refusal(error) {
            tracing::debug!(%error, partition, offset, "produce");
        } else {
            tracing::error!(%error, partition, offset, "produce");
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}
