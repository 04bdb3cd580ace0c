//! Synthetic events for any model: each feature drawn around its training mean with its
//! training spread (mostly inside its training range, a few beyond it), and labels from the model
//! itself plus noise of its training RMSE. The salary demo keeps its own generator
//! ([`super::producer::EventGenerator`]), so its stream is the same as ever.

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

use crate::formats::event_schema::EventSchema;
use crate::model::{Artifact, Predictor};

/// Share of events with one feature drawn beyond its training range.
const OUT_OF_RANGE_SHARE: f64 = 0.05;
/// Decimal places feature values are written with.
const PLACES: f64 = 1e4;

/// How one feature is drawn.
#[derive(Debug, Clone, PartialEq)]
struct FeatureDraw {
    /// `"field":`, as written.
    key: Vec<u8>,
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
}

/// Labels for any model: its prediction, times `drift`, plus Gaussian noise of `noise_sd`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelLabels {
    /// The model whose predictions the labels follow.
    pub predictor: Predictor,
    /// Spread of the noise (the training RMSE).
    pub noise_sd: f64,
    /// Factor applied to the clean label (1.0 without drift).
    pub drift: f64,
}

/// Events of a model's features (and label), written as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEvents {
    features: Vec<FeatureDraw>,
    /// `,"label":`
    label_key: Vec<u8>,
    labels: Option<ModelLabels>,
    /// Writes events for a Schema Registry instead of as JSON (`produce --format`).
    framed: Option<EventSchema>,
}

impl ModelEvents {
    /// Events for `artifact`'s features; labeled when `labels`, the labels times `drift`.
    pub fn new(artifact: &Artifact, labels: bool, drift: f64) -> Self {
        let key = |name: &str, comma: bool| {
            let mut key = if comma { b",".to_vec() } else { Vec::new() };
            key.extend(serde_json::to_vec(name).unwrap_or_default());
            key.push(b':');
            key
        };
        ModelEvents {
            features: artifact
                .features
                .iter()
                .map(|f| {
                    let (min, max) = (f.range.min, f.range.max);
                    FeatureDraw {
                        key: key(&f.field, true),
                        mean: f.mean.unwrap_or((min + max) / 2.0),
                        std: f.std.unwrap_or((max - min) / 4.0),
                        min,
                        max,
                    }
                })
                .collect(),
            label_key: key(&artifact.target.field, true),
            labels: labels.then(|| ModelLabels {
                predictor: Predictor::from(artifact),
                noise_sd: artifact.rmse,
                drift,
            }),
            framed: None,
        }
    }

    /// The same events written in `schema` (Avro or Protobuf, registered) instead of JSON.
    pub fn framed(self, schema: EventSchema) -> Self {
        ModelEvents {
            framed: Some(schema),
            ..self
        }
    }

    /// Draws one event's features into `row` (cleared first) and its label, if labeled.
    pub fn draw(&self, rng: &mut StdRng, row: &mut Vec<f64>) -> Option<f64> {
        row.clear();
        let beyond = rng
            .random_bool(OUT_OF_RANGE_SHARE)
            .then(|| rng.random_range(0..self.features.len().max(1)));
        for (i, f) in self.features.iter().enumerate() {
            let x = if beyond == Some(i) {
                f.max + rng.random_range(0.0..=0.5) * (f.max - f.min).max(1.0)
            } else {
                let z: f64 = StandardNormal.sample(rng);
                (f.mean + f.std * z).clamp(f.min, f.max)
            };
            row.push((x * PLACES).round() / PLACES);
        }
        self.labels.as_ref().map(|m| {
            let clean = m.predictor.predict(row) * m.drift;
            let noise =
                Normal::new(0.0, m.noise_sd.max(f64::MIN_POSITIVE)).map_or(0.0, |n| n.sample(rng));
            ((clean + noise) * 100.0).round() / 100.0
        })
    }

    /// Appends the event `id` of time `ts_ms` as JSON (or framed, see [`ModelEvents::framed`]) to `buf`, drawn with `rng`; `row` is
    /// scratch space.
    pub fn append(
        &self,
        rng: &mut StdRng,
        buf: &mut Vec<u8>,
        row: &mut Vec<f64>,
        id: u64,
        ts_ms: i64,
    ) {
        let label = self.draw(rng, row);
        if let Some(schema) = &self.framed {
            schema.append(id, row, ts_ms, label, buf);
            return;
        }
        let mut digits = itoa::Buffer::new();
        buf.extend_from_slice(br#"{"id":"#);
        buf.extend_from_slice(digits.format(id).as_bytes());
        for (f, x) in self.features.iter().zip(row.iter()) {
            buf.extend_from_slice(&f.key);
            let _ = serde_json::to_writer(&mut *buf, x);
        }
        buf.extend_from_slice(br#","ts_ms":"#);
        buf.extend_from_slice(digits.format(ts_ms).as_bytes());
        if let Some(label) = label {
            buf.extend_from_slice(&self.label_key);
            let _ = serde_json::to_writer(&mut *buf, &label);
        }
        buf.push(b'}');
    }

    /// Changes the label drift factor.
    pub fn set_drift(&mut self, drift: f64) {
        if let Some(m) = self.labels.as_mut() {
            m.drift = drift;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::formats::json::decode_as;
    use crate::serving::scoring::event_shape;

    /// `y = 1 + 2a - 3b`, a in 0..10 (mean 5, sd 2), b in -1..1 (mean 0, sd 0.5), RMSE 0.5.
    fn plane() -> Artifact {
        serde_json::from_value(serde_json::json!({
            "schema_version": 2,
            "version": "0a0b0c0d",
            "features": [
                {"column": "a", "field": "a", "range": {"min": 0.0, "max": 10.0},
                 "mean": 5.0, "std": 2.0},
                {"column": "b", "field": "b", "range": {"min": -1.0, "max": 1.0},
                 "mean": 0.0, "std": 0.5},
            ],
            "target": {"column": "y", "field": "y"},
            "kind": {"type": "linear", "coefficients": [2.0, -3.0], "intercept": 1.0},
            "training_rows": 100,
            "r2": 0.99,
            "rmse": 0.5,
            "data_sha256": "00",
        }))
        .unwrap()
    }

    #[test]
    fn events_of_any_model_decode_as_that_models_events() {
        let artifact = plane();
        let shape = event_shape(&artifact).unwrap();
        let events = ModelEvents::new(&artifact, true, 1.0);
        let mut rng = StdRng::seed_from_u64(3);
        let (mut buf, mut row) = (Vec::new(), Vec::new());
        let (mut beyond, mut sum_a, mut sum_residual) = (0, 0.0, 0.0);
        for id in 0..2000 {
            buf.clear();
            events.append(&mut rng, &mut buf, &mut row, id, 1_700_000_000_000);
            let event = decode_as(&shape, Some(&buf)).unwrap();
            assert_eq!(
                event.id,
                Some(crate::formats::json::EventId::Int(id as i64))
            );
            assert_eq!(event.ts_ms, Some(1_700_000_000_000));
            let (a, b) = (event.features[0], event.features[1]);
            if !(0.0..=10.0).contains(&a) || !(-1.0..=1.0).contains(&b) {
                beyond += 1;
            }
            sum_a += a;
            sum_residual += event.label.unwrap() - (1.0 + 2.0 * a - 3.0 * b);
        }
        assert!(
            (50..=150).contains(&beyond),
            "{beyond} of 2000 beyond range"
        );
        assert!((sum_a / 2000.0 - 5.0).abs() < 0.3, "{}", sum_a / 2000.0);
        // Noise of sd 0.5 around the model: its mean over 2,000 events is near 0.
        assert!(
            (sum_residual / 2000.0).abs() < 0.1,
            "{}",
            sum_residual / 2000.0
        );
    }

    #[test]
    fn drift_shifts_labels_and_unlabeled_events_have_none() {
        let artifact = plane();
        let mut events = ModelEvents::new(&artifact, true, 1.0);
        events.set_drift(1.2);
        let mut rng = StdRng::seed_from_u64(5);
        let mut row = Vec::new();
        let label = events.draw(&mut rng, &mut row).unwrap();
        let clean = (1.0 + 2.0 * row[0] - 3.0 * row[1]) * 1.2;
        assert!((label - clean).abs() < 3.0, "{label} vs {clean}");
        let unlabeled = ModelEvents::new(&artifact, false, 1.0);
        assert_eq!(unlabeled.draw(&mut rng, &mut row), None);
        assert_eq!(row.len(), 2);
    }
}
