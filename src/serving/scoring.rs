//! Scoring one record, with no broker and no clock: the prediction to publish for it, or the
//! reason it goes to the dead-letter topic and the headers that say so. The records of a poll
//! batch may be scored together ([`score_together`]): what an ONNX model runs once for them all.

use rdkafka::message::{Header, OwnedHeaders};

use crate::formats::json::{self, BadRecord, ChallengerPrediction, ExperienceEvent, Prediction};
use crate::formats::shape::{EventShape, FeatureField};
use crate::kafka::intake::Record;
use crate::model::{Artifact, Predictor, DEMO_FEATURE_FIELD};

/// The shape of `artifact`'s events: each feature read from its field or else its CSV column,
/// `years_experience` never negative; or why its names cannot make one.
pub fn event_shape(artifact: &Artifact) -> Result<EventShape, String> {
    let features = artifact
        .features
        .iter()
        .map(|f| FeatureField {
            field: f.field.clone(),
            alias: (f.column != f.field).then(|| f.column.clone()),
            non_negative: f.field == DEMO_FEATURE_FIELD,
        })
        .collect();
    EventShape::new(features, &artifact.target.field)
}

/// A record that scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored<'a> {
    /// The decoded event.
    pub event: ExperienceEvent<'a>,
    /// The serving model's prediction, finite.
    pub predicted: f64,
    /// A feature lies outside the range the model was trained on.
    pub extrapolated: bool,
    /// The event's own time, or else the record's timestamp: where its latency starts.
    pub event_ms: Option<i64>,
}

/// Decodes `record` as an event of `shape` and scores it with `predictor`; a record that cannot
/// be scored says why.
pub fn score<'a>(
    record: &Record<'a>,
    predictor: &Predictor,
    shape: &EventShape,
) -> Result<Scored<'a>, BadRecord> {
    let event = json::decode_as(shape, record.payload)?;
    score_event(event, record, predictor, shape)
}

/// Scores an `event` of `record` already decoded (from JSON, or through a registry's schema)
/// with `predictor`; a prediction that is not finite says for which values of `shape`.
pub fn score_event<'a>(
    event: ExperienceEvent<'a>,
    record: &Record<'a>,
    predictor: &Predictor,
    shape: &EventShape,
) -> Result<Scored<'a>, BadRecord> {
    let predicted = predictor.predict(&event.features);
    scored_as(event, record, predicted, predictor, shape)
}

/// A record of a poll batch scored with the others ([`score_together`]), before it is handled.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredAhead<'a> {
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// What [`score`] gives the record.
    pub scored: Result<Scored<'a>, BadRecord>,
    /// The challenger's prediction for the record's event (finite or not), when a challenger
    /// was given and the event decoded.
    pub challenger: Option<f64>,
}

/// Scores `records` as [`score`] scores each, in order, but predicts together: each record is
/// decoded as an event of `shape`, and the events that decoded (a record that did not is left
/// out of the batch: it goes to the dead-letter topic as ever) are predicted by `predictor` in
/// one batch ([`Predictor::predict_rows`]: one run of an ONNX graph), and by `challenger`, if
/// given, in another.
pub fn score_together<'a>(
    records: &[Record<'a>],
    predictor: &Predictor,
    challenger: Option<&Predictor>,
    shape: &EventShape,
) -> Vec<ScoredAhead<'a>> {
    let decoded: Vec<Result<ExperienceEvent<'a>, BadRecord>> = records
        .iter()
        .map(|record| json::decode_as(shape, record.payload))
        .collect();
    let rows: Vec<&[f64]> = decoded
        .iter()
        .filter_map(|event| event.as_ref().ok().map(|e| e.features.as_slice()))
        .collect();
    let mut predicted = predictor.predict_rows(&rows).into_iter();
    let mut challenged = challenger.map(|c| c.predict_rows(&rows).into_iter());
    records
        .iter()
        .zip(decoded)
        .map(|(record, event)| {
            let (scored, challenger) = match event {
                Ok(event) => {
                    // One prediction a decoded event, in order.
                    let value = predicted.next().unwrap_or(f64::NAN);
                    let challenger = challenged.as_mut().and_then(Iterator::next);
                    let scored = scored_as(event, record, value, predictor, shape);
                    (scored, challenger)
                }
                Err(bad) => (Err(bad), None),
            };
            ScoredAhead {
                partition: record.partition,
                offset: record.offset,
                scored,
                challenger,
            }
        })
        .collect()
}

/// `event` of `record` scored `predicted` by `predictor`; a prediction that is not finite says
/// for which values of `shape`.
fn scored_as<'a>(
    event: ExperienceEvent<'a>,
    record: &Record<'a>,
    predicted: f64,
    predictor: &Predictor,
    shape: &EventShape,
) -> Result<Scored<'a>, BadRecord> {
    if !predicted.is_finite() {
        return Err(BadRecord::NonFinitePrediction(
            shape.describe(&event.features),
        ));
    }
    Ok(Scored {
        extrapolated: predictor.extrapolated(&event.features),
        event_ms: event.ts_ms.or(record.timestamp_ms),
        predicted,
        event,
    })
}

/// Milliseconds from `event_ms` to `now_ms`, to the microsecond, never negative.
pub fn latency_ms(event_ms: Option<i64>, now_ms: f64) -> Option<f64> {
    event_ms.map(|t| ((now_ms - t as f64).max(0.0) * 1000.0).round() / 1000.0)
}

impl Scored<'_> {
    /// The `challenger`'s prediction for this event, if it is finite.
    pub fn challenge<'c>(&self, challenger: &'c Predictor) -> Option<ChallengerPrediction<'c>> {
        self.challenged_by(challenger, challenger.predict(&self.event.features))
    }

    /// The `challenger`'s prediction for this event, `predicted` already ([`score_together`]),
    /// if it is finite.
    pub fn challenged_by<'c>(
        &self,
        challenger: &'c Predictor,
        predicted: f64,
    ) -> Option<ChallengerPrediction<'c>> {
        predicted.is_finite().then(|| ChallengerPrediction {
            model: &challenger.version,
            predicted,
            residual: self.event.label.map(|s| s - predicted),
        })
    }

    /// What is published for this record of `record`'s partition and offset, scored by `model`
    /// and, if one is loaded, by a challenger, with the names of `shape`.
    pub fn prediction<'s>(
        &'s self,
        shape: &'s EventShape,
        record: &Record<'_>,
        model: &'s str,
        latency_ms: Option<f64>,
        challenger: Option<ChallengerPrediction<'s>>,
    ) -> Prediction<'s> {
        Prediction {
            shape,
            id: self.event.id.as_ref(),
            features: &self.event.features,
            ts_ms: self.event.ts_ms,
            label: self.event.label,
            verbatim: self.event.verbatim(),
            predicted: self.predicted,
            residual: self.event.label.map(|s| s - self.predicted),
            extrapolated: self.extrapolated,
            model,
            partition: record.partition,
            offset: record.offset,
            latency_ms: latency_ms.unwrap_or(0.0),
            challenger,
        }
    }
}

/// The headers of `record`'s dead letter: why it could not be scored, and where it came from.
pub fn dead_letter_headers(record: &Record<'_>, reason: &str) -> OwnedHeaders {
    let partition = record.partition.to_string();
    let offset = record.offset.to_string();
    [
        ("error", reason),
        ("source_topic", record.topic),
        ("source_partition", partition.as_str()),
        ("source_offset", offset.as_str()),
    ]
    .into_iter()
    .fold(
        OwnedHeaders::new_with_capacity(4),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;
    use crate::model::reference_predictor as reference;

    fn record(payload: Option<&[u8]>) -> Record<'_> {
        Record {
            topic: "experience-events",
            partition: 2,
            offset: 41,
            payload,
            key: None,
            timestamp_ms: Some(1_700_000_000_000),
        }
    }

    #[test]
    fn an_event_scores_with_the_reference_line() {
        let payload = br#"{"years_experience": 5.3, "id": 7, "salary": 80000}"#;
        let record = record(Some(payload));
        let scored = score(&record, &reference(), EventShape::salary()).unwrap();
        assert_eq!(
            scored.predicted,
            25792.20019866869 + 9449.962321455077 * 5.3
        );
        assert_eq!(format!("{:.2}", scored.predicted), "75877.00");
        assert!(!scored.extrapolated);
        // No time in the event: the record's timestamp starts its latency.
        assert_eq!(scored.event_ms, Some(1_700_000_000_000));
        let mut json = Vec::new();
        scored
            .prediction(
                EventShape::salary(),
                &record,
                "6c25318e",
                latency_ms(scored.event_ms, 1_700_000_000_012.5),
                None,
            )
            .write_json(&mut json);
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json["id"], 7);
        assert_eq!(json["predicted_salary"], scored.predicted);
        assert_eq!(json["residual"], 80000.0 - scored.predicted);
        assert_eq!(json["model"], "6c25318e");
        assert_eq!(
            (json["partition"].clone(), json["offset"].clone()),
            (2.into(), 41.into())
        );
        assert_eq!(json["latency_ms"], 12.5);
        assert_eq!(json["extrapolated"], false);
        assert_eq!(json.get("challenger"), None);

        // A challenger's prediction rides along, with its own residual.
        let challenger = Predictor::line("9f00aa11", 1000.0, 2000.0, reference().ranges[0]);
        let mut json = Vec::new();
        scored
            .prediction(
                EventShape::salary(),
                &record,
                "6c25318e",
                None,
                scored.challenge(&challenger),
            )
            .write_json(&mut json);
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            json["challenger"],
            serde_json::json!({
                "model": "9f00aa11",
                "predicted_salary": 11600.0,
                "residual": 68400.0,
            })
        );
    }

    #[test]
    fn outside_the_training_range_is_extrapolated_and_the_event_time_wins() {
        let record = record(Some(br#"{"years_experience": 40, "ts_ms": 1700000000100}"#));
        let scored = score(&record, &reference(), EventShape::salary()).unwrap();
        assert!(scored.extrapolated);
        assert_eq!(scored.event_ms, Some(1_700_000_000_100));
        assert_eq!(latency_ms(scored.event_ms, 1_700_000_000_000.0), Some(0.0));
        assert_eq!(latency_ms(None, 1.0), None);
    }

    #[test]
    fn records_that_cannot_score_say_why() {
        let cases: [(Option<&[u8]>, &str); 4] = [
            (None, "tombstone"),
            (Some(b""), "empty"),
            (Some(b"not json"), "not_json"),
            (Some(br#"{"years_experience": -1}"#), "negative"),
        ];
        for (payload, class) in cases {
            let bad = score(&record(payload), &reference(), EventShape::salary()).unwrap_err();
            assert_eq!(bad.class(), class, "{payload:?}");
        }
        let steep = Predictor::line("6c25318e", 0.0, f64::MAX, reference().ranges[0]);
        let bad = score(
            &record(Some(br#"{"years_experience": 1e300}"#)),
            &steep,
            EventShape::salary(),
        )
        .unwrap_err();
        assert_eq!(
            bad,
            BadRecord::NonFinitePrediction(format!("years_experience {}", 1e300))
        );
    }

    /// `tests/onnx/NAME.onnx` imported on the diabetes data, loaded as it serves.
    fn onnx(name: &str) -> (Predictor, EventShape) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::model::TrainSpec {
            target: Some("progression".parse().unwrap()),
            features: Vec::new(),
        };
        let imported = crate::model::import(
            &root.join(format!("tests/onnx/{name}.onnx")),
            &root.join("data/diabetes.csv"),
            &spec,
            &dir.path().join(format!("{name}.json")),
        )
        .unwrap();
        let shape = event_shape(&imported.artifact).unwrap();
        (Predictor::from(&imported.artifact), shape)
    }

    /// The first `n` rows of data/diabetes.csv as events, the label included.
    fn diabetes_events(n: usize) -> Vec<Vec<u8>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let csv = std::fs::read_to_string(root.join("data/diabetes.csv")).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        lines
            .take(n)
            .map(|row| {
                let fields: Vec<String> = header
                    .iter()
                    .zip(row.split(','))
                    .map(|(name, cell)| format!("\"{name}\":{cell}"))
                    .collect();
                format!("{{{}}}", fields.join(",")).into_bytes()
            })
            .collect()
    }

    /// Each record scored together as `score` and `challenge` score it alone, to the bit.
    fn assert_scored_as_alone(
        records: &[Record<'_>],
        serving: &Predictor,
        challenger: Option<&Predictor>,
        shape: &EventShape,
    ) -> Vec<&'static str> {
        let together = score_together(records, serving, challenger, shape);
        assert_eq!(together.len(), records.len());
        let mut classes = Vec::new();
        for (record, ahead) in records.iter().zip(together) {
            assert_eq!(
                (ahead.partition, ahead.offset),
                (record.partition, record.offset)
            );
            let alone = score(record, serving, shape);
            match (&ahead.scored, &alone) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.predicted.to_bits(), b.predicted.to_bits(), "{a:?}");
                    assert_eq!(a, b);
                    let alone = challenger.map(|c| c.predict(&b.event.features).to_bits());
                    assert_eq!(ahead.challenger.map(f64::to_bits), alone);
                    classes.push("scored");
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a, b);
                    classes.push(a.class());
                }
                _ => panic!("{:?} together, {alone:?} alone", ahead.scored),
            }
        }
        classes
    }

    #[test]
    fn records_scored_together_by_onnx_models_score_as_each_alone_bad_ones_left_out() {
        let (mlp, shape) = onnx("mlp");
        let (forest, _) = onnx("forest");
        let (gbr, _) = onnx("gbr");
        assert!(mlp.runs_batches() && !reference().runs_batches());
        let good = diabetes_events(40);
        let bad: [Option<&[u8]>; 4] = [
            None,
            Some(b"not json"),
            Some(br#"{"age": 50, "sex": 1}"#),
            Some(br#"{"age": 50, "sex": 1, "bmi": "high", "bp": 90, "s1": 1, "s2": 1, "s3": 1, "s4": 1, "s5": 4, "s6": 80}"#),
        ];
        let mut payloads: Vec<Option<&[u8]>> = good.iter().map(|g| Some(g.as_slice())).collect();
        for (i, b) in bad.into_iter().enumerate() {
            payloads.insert(3 + 9 * i, b);
        }
        let records: Vec<Record<'_>> = payloads
            .iter()
            .enumerate()
            .map(|(i, &payload)| Record {
                offset: i as i64,
                partition: (i % 3) as i32,
                ..record(payload)
            })
            .collect();
        let classes = assert_scored_as_alone(&records, &mlp, Some(&forest), &shape);
        let dead: Vec<(usize, &str)> = classes
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != "scored")
            .map(|(i, c)| (i, *c))
            .collect();
        assert_eq!(
            dead,
            [
                (3, "tombstone"),
                (12, "not_json"),
                (21, "missing_field"),
                (30, "wrong_type")
            ]
        );
        assert_scored_as_alone(&records, &gbr, None, &shape);
        assert_scored_as_alone(&records[..1], &forest, Some(&gbr), &shape);
        assert_scored_as_alone(&records[3..4], &forest, Some(&gbr), &shape);
        assert!(score_together(&[], &mlp, Some(&gbr), &shape).is_empty());
    }

    #[test]
    fn a_dead_letter_names_its_reason_and_source() {
        let headers = dead_letter_headers(&record(None), "null value (tombstone)");
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|h| (h.key, std::str::from_utf8(h.value.unwrap()).unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("error", "null value (tombstone)"),
                ("source_topic", "experience-events"),
                ("source_partition", "2"),
                ("source_offset", "41"),
            ]
        );
    }
}
