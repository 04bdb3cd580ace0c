//! Scoring one record, with no broker and no clock: the prediction to publish for it, or the
//! reason it goes to the dead-letter topic and the headers that say so.

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
        let predicted = challenger.predict(&self.event.features);
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
