//! How the scorer handles one record: scores it, and hands its prediction to the output topic
//! (in batches) and the prediction writer, or its dead letter to the dead-letter topic; in either
//! case the offset tracker learns of it before the producer does.
//!
//! When the serving model or the challenger runs batches (an ONNX graph), the records of a poll
//! batch are scored together before they are handled ([`Ahead`]): one run of the graph for
//! them all. Each is then handled, in order, as if scored on its own; a linear model scores
//! each record as it is handled.
//!
//! A value framed for a Schema Registry (a zero byte first) is decoded by its schema, fetched
//! and compiled once per id ([`RegistryInput`]). While the registry cannot be reached the scorer
//! waits on that record, retrying: no good record becomes a dead letter for it, and nothing is
//! committed past it.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::BaseRecord;

use crate::engine::{EngineEvent, RegistryStatus, ScoredEvent, StopDeadline};
use crate::formats::avro::{AvroPrediction, PredictionSchema};
use crate::formats::framed::FramedDecoder;
use crate::formats::json::Prediction;
use crate::formats::record::{CompiledSchema, RecordError};
use crate::formats::registry::{is_framed, split_header, SchemaId, SchemaKind};
use crate::formats::registry_client::{RegistryClient, RegistryError};
use crate::formats::shape::EventShape;
use crate::kafka::delivery::{GiveUp, Outgoing, TopicBatcher};
use crate::kafka::intake::{Batch, Record};
use crate::model::Predictor;
use crate::serving::offsets::{lock, pack, unpack, DeliveryContext, ScoringProducer};
use crate::serving::scorer::{BoxedWriter, LoopState, Scorer};
use crate::serving::scorer_setup::{AvroOutput, PredictionOutput};
use crate::serving::scoring::{self, dead_letter_headers, latency_ms, Scored, ScoredAhead};

/// The first wait before asking an unreachable registry again; each wait doubles, up to
/// [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between two requests to an unreachable registry.
const LAST_RETRY: Duration = Duration::from_secs(5);
/// How often a wait for the registry looks at the stop flag, the offsets and the report.
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// What the scorer thread keeps of the registry: the client (which fetches each id once), each
/// id's schema compiled once, and what it last told its sink.
pub(super) struct RegistryInput {
    decoder: FramedDecoder,
    status: RegistryStatus,
    /// The format and schema of the latest framed record.
    latest: Option<(SchemaKind, SchemaId)>,
}

impl RegistryInput {
    /// Nothing compiled yet.
    pub(super) fn new(client: Arc<RegistryClient>) -> Self {
        RegistryInput {
            status: RegistryStatus {
                url: client.url().to_owned(),
                input: None,
                unreachable: None,
            },
            decoder: FramedDecoder::new(client),
            latest: None,
        }
    }

    /// What the sink is told: the URL, the latest format, whether it can be reached.
    pub(super) fn status(&self) -> RegistryStatus {
        self.status.clone()
    }

    /// Notes a framed record of `kind` and `id`; the status to tell when that is news.
    fn saw(&mut self, kind: SchemaKind, id: SchemaId) -> Option<RegistryStatus> {
        if self.latest == Some((kind, id)) {
            return None;
        }
        self.latest = Some((kind, id));
        self.status.input = Some(format!("{kind}, schema {id}"));
        Some(self.status())
    }

    /// Notes that the registry cannot be used, for `error`; the status to tell when that is news.
    fn lost(&mut self, error: &RegistryError) -> Option<RegistryStatus> {
        if self.status.unreachable.is_some() {
            return None;
        }
        self.status.unreachable = Some(match error {
            RegistryError::Unreachable { reason, .. } => reason.clone(),
            other => other.to_string(),
        });
        Some(self.status())
    }

    /// Notes that the registry answered; the status to tell when it had been lost.
    fn reached(&mut self) -> Option<RegistryStatus> {
        self.status.unreachable.take()?;
        Some(self.status())
    }
}

/// The records of one poll batch scored together before they are handled, by the models in the
/// slots at a count of changes ([`crate::serving::slots::Slots::changes`]); none when neither
/// model runs batches. A record handled after the models changed is scored as it is handled.
pub(super) struct Ahead<'a> {
    changes: u64,
    scored: std::vec::IntoIter<ScoredAhead<'a>>,
    /// Whether a record's scores were taken yet: the batch is then counted
    /// ([`crate::serving::scorer_report::Together`]).
    taken: bool,
}

impl<'a> Ahead<'a> {
    /// No record scored ahead.
    fn none() -> Self {
        Ahead {
            changes: 0,
            scored: Vec::new().into_iter(),
            taken: false,
        }
    }

    /// `record`'s scores, if it is the next one scored ahead and the models have not changed
    /// since (`changes`: the slots' count now).
    #[inline]
    fn take(&mut self, record: &Record<'_>, changes: u64) -> Option<ScoredAhead<'a>> {
        let next = self.scored.as_slice().first()?;
        if changes != self.changes {
            self.scored = Vec::new().into_iter();
            return None;
        }
        if (next.partition, next.offset) != (record.partition, record.offset) {
            return None;
        }
        self.scored.next()
    }
}

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

/// The Avro schema predictions of the serving model are written with, and its id.
struct AvroEncoding {
    shape: EventShape,
    schema: Arc<PredictionSchema>,
    id: SchemaId,
}

/// Where the scorer's predictions go: the output topic, in batches, and the prediction writer.
pub(super) struct Outputs {
    /// The latest prediction as JSON, when it is not published as JSON.
    json: Vec<u8>,
    /// `--output-format avro`: the serving model's prediction schema, once known.
    avro: Option<AvroEncoding>,
    /// Publishes predictions in batches; `None` without an output topic.
    batcher: Option<TopicBatcher<DeliveryContext>>,
    /// Predictions handled and not yet handed to the producer.
    pending: Pending,
    /// Where predictions go besides the output topic.
    writer: Option<BoxedWriter>,
    /// The writer's reader went away: stop as if asked to.
    reader_gone: bool,
    /// When a dead letter stops waiting for room in a full local queue.
    give_up: Option<GiveUp>,
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
            avro: None,
            batcher,
            pending: Pending::default(),
            writer,
            reader_gone: false,
            give_up: None,
        })
    }

    /// Stops waiting for room in a full local queue once `stop` is set and the queue has stayed
    /// full for `patience`, or the stop's deadline (`stopping`) has passed: what is not handed
    /// over then is refused, never acknowledged.
    pub(super) fn give_up_after(
        &mut self,
        stop: &Arc<AtomicBool>,
        patience: Duration,
        stopping: &StopDeadline,
    ) {
        let give_up = || GiveUp::after(stop.clone(), patience).within(stopping.clone());
        if let Some(batcher) = self.batcher.as_mut() {
            batcher.give_up_with(give_up());
        }
        self.give_up = Some(give_up());
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
    /// Scores the records of `batch` together ([`scoring::score_together`]) when the serving
    /// model or the challenger runs batches; else scores none ahead. A value framed for the
    /// registry is left to be scored as it is handled (its schema may have to be waited for).
    pub(super) fn score_ahead<'a>(&self, batch: &'a Batch, state: &LoopState) -> Ahead<'a> {
        let slots = &state.slots;
        let challenger = slots.challenger();
        if !slots.serving().runs_batches() && !challenger.is_some_and(Predictor::runs_batches) {
            return Ahead::none();
        }
        let framed = |r: &Record<'_>| state.registry.is_some() && r.payload.is_some_and(is_framed);
        let records: Vec<Record<'a>> = batch
            .records()
            .filter_map(Result::ok)
            .filter(|r| !framed(r))
            .collect();
        let scored = scoring::score_together(&records, slots.serving(), challenger, slots.shape());
        Ahead {
            changes: slots.changes(),
            scored: scored.into_iter(),
            taken: false,
        }
    }

    /// Scores one record and hands its prediction or dead letter to the producer. Breaks when
    /// asked to stop while it waited for the registry: the record is left unhandled.
    pub(super) fn handle(
        &self,
        record: Record<'_>,
        now_ms: f64,
        state: &mut LoopState,
    ) -> ControlFlow<()> {
        self.handle_ahead(record, now_ms, state, &mut Ahead::none())
    }

    /// Handles one record as [`Scorer::handle`] does, with its scores from `ahead` when they
    /// are there ([`Scorer::score_ahead`]).
    pub(super) fn handle_ahead<'a>(
        &self,
        record: Record<'a>,
        now_ms: f64,
        state: &mut LoopState,
        ahead: &mut Ahead<'a>,
    ) -> ControlFlow<()> {
        if let PredictionOutput::Avro(avro) = &self.config.output {
            let shape = state.slots.shape();
            let known = |a: &AvroEncoding| a.shape == *shape;
            if state.outputs.batcher.is_some() && !state.outputs.avro.as_ref().is_some_and(known) {
                self.output_schema_waiting(avro, state)?;
            }
        }
        if state.registry.is_some() && record.payload.is_some_and(is_framed) {
            return self.handle_framed(record, now_ms, state);
        }
        let (scored, challenger) = match ahead.take(&record, state.slots.changes()) {
            Some(taken) => {
                let together = &mut state.tally.together;
                together.batches += u64::from(!std::mem::replace(&mut ahead.taken, true));
                together.predictions += u64::from(taken.scored.is_ok());
                (taken.scored, taken.challenger)
            }
            None => (
                scoring::score(&record, state.slots.serving(), state.slots.shape()),
                None,
            ),
        };
        match scored {
            Ok(scored) => self.handle_scored(&record, &scored, challenger, now_ms, state),
            Err(bad) => self.dead_letter(&record, bad.class(), bad.to_string(), state),
        }
        ControlFlow::Continue(())
    }

    /// Scores a registry-framed record: its schema (waiting while the registry cannot be
    /// reached), its event read by the serving model's field names, its prediction.
    fn handle_framed(
        &self,
        record: Record<'_>,
        now_ms: f64,
        state: &mut LoopState,
    ) -> ControlFlow<()> {
        let (id, body) = match split_header(record.payload.unwrap_or_default()) {
            Ok(split) => split,
            Err(e) => {
                let bad = RecordError::from(e);
                self.dead_letter(&record, bad.class(), bad.to_string(), state);
                return ControlFlow::Continue(());
            }
        };
        let schema = match self.schema_waiting(id, state)? {
            Ok(schema) => schema,
            Err(bad) => {
                self.dead_letter(&record, bad.class(), bad.to_string(), state);
                return ControlFlow::Continue(());
            }
        };
        if let Some(registry) = state.registry.as_mut() {
            if let Some(status) = registry.saw(schema.kind(), id) {
                self.sink.emit(EngineEvent::Registry(status));
            }
        }
        let shape = state.slots.shape();
        let scored = match schema.decode_event(shape, body) {
            Ok(event) => scoring::score_event(event, &record, state.slots.serving(), shape)
                .map_err(|bad| (bad.class(), bad.to_string())),
            Err(bad) => Err((bad.class(), bad.to_string())),
        };
        match scored {
            Ok(scored) => self.handle_scored(&record, &scored, None, now_ms, state),
            Err((class, reason)) => self.dead_letter(&record, class, reason, state),
        }
        ControlFlow::Continue(())
    }

    /// The compiled schema of `id`, or why a record of it is bad; while the registry cannot be
    /// used, waits (publishing what came before, storing offsets and reporting as the loop
    /// would) and asks again, from [`FIRST_RETRY`] to [`LAST_RETRY`] apart. Breaks when asked
    /// to stop meanwhile.
    fn schema_waiting(
        &self,
        id: SchemaId,
        state: &mut LoopState,
    ) -> ControlFlow<(), Result<Arc<CompiledSchema>, RecordError>> {
        let mut retry = FIRST_RETRY;
        loop {
            let Some(registry) = state.registry.as_mut() else {
                return ControlFlow::Continue(Err(RecordError::SchemaNotFound {
                    id,
                    url: String::new(),
                }));
            };
            let error = match registry.decoder.schema(id) {
                Ok(found) => {
                    if let Some(status) = registry.reached() {
                        self.sink.emit(EngineEvent::Registry(status));
                    }
                    return ControlFlow::Continue(found);
                }
                Err(error) => error,
            };
            if let Some(status) = registry.lost(&error) {
                tracing::warn!(%error, "registry: records wait");
                self.sink.emit(EngineEvent::Registry(status));
                // What was scored before this record goes out while it waits.
                self.publish(&mut state.outputs);
            }
            self.wait_for_registry(retry, state)?;
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    /// Makes the serving model's prediction schema the one predictions are written with: the
    /// one registered at start, or else one registered now, waiting (as for an input schema)
    /// while the registry cannot take it. Breaks when asked to stop meanwhile.
    fn output_schema_waiting(&self, avro: &AvroOutput, state: &mut LoopState) -> ControlFlow<()> {
        let shape = state.slots.shape().clone();
        if shape == avro.shape {
            state.outputs.avro = Some(AvroEncoding {
                shape,
                schema: avro.schema.clone(),
                id: avro.id,
            });
            return ControlFlow::Continue(());
        }
        let mut retry = FIRST_RETRY;
        loop {
            match avro.register_another(&shape) {
                Ok((schema, id)) => {
                    tracing::info!(%id, subject = %avro.subject, "prediction schema registered");
                    if let Some(status) = state.registry.as_mut().and_then(RegistryInput::reached) {
                        self.sink.emit(EngineEvent::Registry(status));
                    }
                    state.outputs.avro = Some(AvroEncoding { shape, schema, id });
                    return ControlFlow::Continue(());
                }
                Err(crate::serving::scorer_setup::OutputSchemaError::Registry(error)) => {
                    if let Some(status) = state.registry.as_mut().and_then(|r| r.lost(&error)) {
                        tracing::warn!(%error, "registry: predictions wait");
                        self.sink.emit(EngineEvent::Registry(status));
                    }
                }
                Err(error) => tracing::error!(%error, "predictions wait"),
            }
            // What was scored with the previous model goes out while this waits.
            self.publish(&mut state.outputs);
            self.wait_for_registry(retry, state)?;
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    /// Waits `how_long` in short slices, storing offsets and reporting when due; breaks when
    /// asked to stop, or when a transaction failed.
    fn wait_for_registry(&self, how_long: Duration, state: &mut LoopState) -> ControlFlow<()> {
        let until = Instant::now() + how_long;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return ControlFlow::Break(());
            }
            let now = Instant::now();
            if now >= until {
                return ControlFlow::Continue(());
            }
            std::thread::sleep(WAIT_SLICE.min(until - now));
            let now = Instant::now();
            self.store_offsets_if_due(now, state)?;
            self.report_if_due(now, state);
        }
    }

    /// Sends the prediction of a record that scored, shows it to the quality watch if it was
    /// labeled, and counts it. The challenger's prediction is `challenger` when it was made
    /// ahead, else made here.
    fn handle_scored(
        &self,
        record: &Record<'_>,
        scored: &Scored<'_>,
        challenger: Option<f64>,
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
        let challenge = state.slots.challenger().and_then(|c| match challenger {
            Some(predicted) => scored.challenged_by(c, predicted),
            None => scored.challenge(c),
        });
        let challenger_predicted = challenge.map(|c| c.predicted);
        let prediction = scored.prediction(
            state.slots.shape(),
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
        if let Some(label) = scored.event.label {
            state.slots.observe(
                &scored.event.features,
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
            features: crate::engine::FeatureRow::new(
                &scored.event.features,
                &state.slots.serving().shown,
            ),
            predicted: scored.predicted,
            salary: scored.event.label,
            challenger: challenger_predicted,
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
        let json: &[u8] = if let (Some(_), Some(avro)) = (&outputs.batcher, &outputs.avro) {
            outputs.pending.push(key, input, |out| {
                if let Err(e) = avro
                    .schema
                    .encode(avro.id, &AvroPrediction::of(prediction), out)
                {
                    // Not for a schema of the serving model's fields (`handle` makes sure).
                    tracing::error!(error = %e, "avro prediction written as JSON");
                    prediction.write_json(out);
                }
            });
            outputs.json.clear();
            if outputs.writer.is_some() {
                prediction.write_json(&mut outputs.json);
            }
            &outputs.json
        } else if outputs.batcher.is_some() {
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

    /// Sends a record that could not be scored to the dead-letter topic, saying why (`reason`,
    /// of `class`), and counts it.
    fn dead_letter(
        &self,
        record: &Record<'_>,
        class: &'static str,
        reason: String,
        state: &mut LoopState,
    ) {
        let (partition, offset) = (record.partition, record.offset);
        // The tracker takes a partition's offsets in order: the predictions before
        // this record go first.
        self.publish(&mut state.outputs);
        lock(&self.tracker).track(partition, offset, None);
        if let Some(t) = &self.transactions {
            t.handled(partition, offset);
        }
        let topic = &self.config.dlq_topic;
        let mut headers = dead_letter_headers(record, &reason);
        // Cut to what the topic takes, if need be: a refused dead letter would block scoring.
        let payload = record.payload.map(|value| {
            let (kept, with) = state.dead_letters.fit(
                &self.config.kafka,
                topic,
                record.key,
                value,
                headers.clone(),
            );
            headers = with;
            kept
        });
        let mut out: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, pack(partition, offset)).headers(headers);
        if let Some(payload) = payload {
            out = out.payload(payload);
        }
        if let Some(key) = record.key {
            out = out.key(key);
        }
        let give_up = state.outputs.give_up.as_ref();
        if let Err(e) = self.producer.send_waiting(out, give_up) {
            self.failed(partition, offset, &e);
        }
        state.tally.bad(class, reason);
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
        // Its offset is in the open transaction: committed without it, the record would be lost.
        if let Some(t) = &self.transactions {
            t.must_abort(format!("a record was not handed to the producer: {error}"));
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::json::BadRecord;

    fn record(partition: i32, offset: i64) -> Record<'static> {
        Record {
            topic: "experience-events",
            partition,
            offset,
            payload: None,
            key: None,
            timestamp_ms: None,
        }
    }

    fn ahead(changes: u64, records: &[(i32, i64)]) -> Ahead<'static> {
        let scored: Vec<ScoredAhead<'static>> = records
            .iter()
            .map(|&(partition, offset)| ScoredAhead {
                partition,
                offset,
                scored: Err(BadRecord::Tombstone),
                challenger: None,
            })
            .collect();
        Ahead {
            changes,
            scored: scored.into_iter(),
            taken: false,
        }
    }

    fn taken(a: &mut Ahead<'_>, partition: i32, offset: i64, changes: u64) -> Option<(i32, i64)> {
        a.take(&record(partition, offset), changes)
            .map(|s| (s.partition, s.offset))
    }

    #[test]
    fn records_scored_ahead_are_taken_in_order_and_only_for_their_own_record() {
        let mut a = ahead(3, &[(0, 10), (1, 4), (0, 11)]);
        assert_eq!(taken(&mut a, 0, 10, 3), Some((0, 10)));
        // A record not scored ahead (a framed one) is scored as it is handled.
        assert_eq!(taken(&mut a, 2, 7, 3), None);
        assert_eq!(taken(&mut a, 1, 4, 3), Some((1, 4)));
        assert_eq!(taken(&mut a, 0, 11, 3), Some((0, 11)));
        assert_eq!(taken(&mut a, 0, 12, 3), None);
        assert_eq!(taken(&mut Ahead::none(), 0, 0, 0), None);
    }

    #[test]
    fn once_the_models_change_nothing_scored_ahead_is_taken() {
        let mut a = ahead(3, &[(0, 10), (0, 11), (0, 12)]);
        assert_eq!(taken(&mut a, 0, 10, 3), Some((0, 10)));
        assert_eq!(taken(&mut a, 0, 11, 4), None);
        // Scored by the models before: not taken even were the count to come back.
        assert_eq!(taken(&mut a, 0, 12, 3), None);
    }
}
