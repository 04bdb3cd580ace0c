//! The serving form of an artifact: what the scorer, the backtest and `predict` run for each
//! event. A linear model is its coefficients (a line of two numbers for the salary demo); an ONNX
//! model is its loaded graph.

use std::sync::Arc;

use super::artifact::{Artifact, FeatureRange, ModelKind, DEMO_FEATURE_FIELD, DEMO_LABEL_FIELD};
use super::onnx::OnnxPredictor;

/// Rows a model that runs batches (ONNX) is given at once by `predict --model` and `backtest`, as
/// the scorer takes records from its queue: tract's cost is mostly a run's, not a row's.
pub const BATCH_ROWS: usize = 256;

/// How a [`Predictor`] computes.
#[derive(Debug, Clone)]
enum Form {
    /// `intercept + Σ coefficient × feature`.
    Linear {
        coefficients: Vec<f64>,
        intercept: f64,
    },
    /// A loaded ONNX graph.
    Onnx(Arc<OnnxPredictor>),
    /// An artifact whose model is not loaded (an ONNX artifact deserialized from text, not
    /// loaded from its file): every prediction is NaN, so every record would go to the
    /// dead-letter topic; the serving commands refuse such an artifact at start
    /// ([`Artifact::check_servable`]).
    Absent,
}

/// A model ready to predict, with the names and ranges of what it reads.
#[derive(Debug, Clone)]
pub struct Predictor {
    /// The artifact version.
    pub version: String,
    /// Training range of each feature, in the features' order.
    pub ranges: Vec<FeatureRange>,
    /// The JSON field of each feature, in order.
    pub fields: Vec<String>,
    /// The JSON field of the label.
    pub label: String,
    /// The feature the dashboard plots: the most influential (a linear model's largest
    /// coefficient times the feature's spread in training; an ONNX model's by how far the
    /// feature moves its prediction).
    pub plotted: usize,
    /// The features the dashboard's table shows, most influential first (the plotted one
    /// first, the rest by the same weight, ties in the model's order): each one's index in a row
    /// and its JSON field. Shared, so that each scored event names its values without a copy.
    pub shown: Arc<[(usize, String)]>,
    form: Form,
}

impl PartialEq for Predictor {
    fn eq(&self, other: &Self) -> bool {
        let same_form = match (&self.form, &other.form) {
            (
                Form::Linear {
                    coefficients: a,
                    intercept: b,
                },
                Form::Linear {
                    coefficients: c,
                    intercept: d,
                },
            ) => a == c && b == d,
            (Form::Onnx(a), Form::Onnx(b)) => Arc::ptr_eq(a, b),
            (Form::Absent, Form::Absent) => true,
            _ => false,
        };
        same_form
            && self.version == other.version
            && self.ranges == other.ranges
            && self.fields == other.fields
            && self.label == other.label
            && self.plotted == other.plotted
    }
}

impl Predictor {
    /// The salary demo's shape: `salary = intercept + slope × years_experience`, trained on
    /// `range`.
    pub fn line(version: &str, intercept: f64, slope: f64, range: FeatureRange) -> Self {
        Predictor {
            version: version.to_owned(),
            ranges: vec![range],
            fields: vec![DEMO_FEATURE_FIELD.to_owned()],
            label: DEMO_LABEL_FIELD.to_owned(),
            plotted: 0,
            shown: Arc::from([(0, DEMO_FEATURE_FIELD.to_owned())]),
            form: Form::Linear {
                coefficients: vec![slope],
                intercept,
            },
        }
    }

    /// The prediction for one row of feature values, in the features' order; NaN for a row of
    /// the wrong width.
    #[inline]
    pub fn predict(&self, row: &[f64]) -> f64 {
        match &self.form {
            Form::Linear {
                coefficients,
                intercept,
            } => {
                if let ([c], [x]) = (coefficients.as_slice(), row) {
                    // The demo's one feature: one multiply and one add.
                    return intercept + c * x;
                }
                if coefficients.len() != row.len() {
                    return f64::NAN;
                }
                coefficients
                    .iter()
                    .zip(row)
                    .fold(*intercept, |sum, (c, x)| sum + c * x)
            }
            Form::Onnx(model) => model.predict_one(row).unwrap_or(f64::NAN),
            Form::Absent => f64::NAN,
        }
    }

    /// Whether the model is run a batch of rows at a time: an ONNX graph, which
    /// [`Predictor::predict_rows`] runs once for them all. A linear model predicts row by row.
    #[inline]
    pub fn runs_batches(&self) -> bool {
        matches!(self.form, Form::Onnx(_))
    }

    /// The predictions for `rows`, in order, each what [`Predictor::predict`] gives it. An ONNX
    /// model's graph is run once for them all (`[N, F]` in, N predictions out), which gives each
    /// row's prediction to the bit as a run of that row alone does (tests/onnx.rs checks each
    /// model there); should rows of the wrong width be among them, or the run fail, each row is
    /// run alone, so that only a row the graph cannot take is NaN.
    pub fn predict_rows(&self, rows: &[&[f64]]) -> Vec<f64> {
        if let Form::Onnx(model) = &self.form {
            let width = model.width();
            if rows.iter().all(|row| row.len() == width) {
                let narrowed: Vec<f32> = rows
                    .iter()
                    .flat_map(|row| row.iter().map(|&x| x as f32))
                    .collect();
                if let Ok(predictions) = model.predict_batch(&narrowed, rows.len()) {
                    return predictions;
                }
            }
        }
        rows.iter().map(|row| self.predict(row)).collect()
    }

    /// Whether any value of `row` lies outside its feature's training range.
    #[inline]
    pub fn extrapolated(&self, row: &[f64]) -> bool {
        self.ranges.iter().zip(row).any(|(r, &x)| !r.contains(x))
    }

    /// `(slope, intercept)` of a one-feature linear model: what the dashboard draws as a line.
    pub fn slope_intercept(&self) -> Option<(f64, f64)> {
        match &self.form {
            Form::Linear {
                coefficients,
                intercept,
            } if coefficients.len() == 1 => Some((coefficients[0], *intercept)),
            _ => None,
        }
    }

    /// The model as text: `salary = 25792.20 + 9449.96 × years` for the demo,
    /// `price = 10.00 + 2.50 × rooms` for another line, `progression ~ linear, 10 features` or
    /// `price ~ onnx TreeEnsembleRegressor` otherwise.
    pub fn formula(&self) -> String {
        match (&self.form, self.fields.as_slice()) {
            (
                Form::Linear {
                    coefficients,
                    intercept,
                },
                [field],
            ) => {
                let feature = if field == DEMO_FEATURE_FIELD {
                    "years"
                } else {
                    field
                };
                format!(
                    "{} = {intercept:.2} + {:.2} × {feature}",
                    self.label, coefficients[0]
                )
            }
            (Form::Linear { .. }, fields) => {
                format!("{} ~ linear, {} features", self.label, fields.len())
            }
            (Form::Onnx(model), _) => {
                let op = model
                    .op_types()
                    .iter()
                    .find(|op| op.as_str() != "Cast" && op.as_str() != "Identity")
                    .map_or("graph", String::as_str);
                format!("{} ~ onnx {op}", self.label)
            }
            (Form::Absent, _) => format!("{} ~ not loaded", self.label),
        }
    }

    /// The same model under an ONNX graph loaded from its file.
    pub fn with_onnx(mut self, model: Arc<OnnxPredictor>) -> Self {
        self.form = Form::Onnx(model);
        self
    }
}

impl From<&Artifact> for Predictor {
    /// A linear artifact predicts with its coefficients; an ONNX artifact with the graph
    /// [`Artifact::load`] read beside it, and NaN if it was never loaded (see
    /// [`Artifact::check_servable`]).
    fn from(a: &Artifact) -> Self {
        let order = by_influence(a);
        Predictor {
            version: a.version.clone(),
            ranges: a.features.iter().map(|f| f.range).collect(),
            fields: a.features.iter().map(|f| f.field.clone()).collect(),
            label: a.target.field.clone(),
            plotted: order.first().copied().unwrap_or(0),
            shown: order
                .iter()
                .map(|&i| (i, a.features[i].field.clone()))
                .collect(),
            form: match &a.kind {
                ModelKind::Linear(m) => Form::Linear {
                    coefficients: m.coefficients.clone(),
                    intercept: m.intercept,
                },
                ModelKind::Onnx(m) => match &m.loaded {
                    Some(loaded) => Form::Onnx(Arc::clone(&loaded.predictor)),
                    None => Form::Absent,
                },
            },
        }
    }
}

/// `a`'s features, most influential first ([`influences`]; ties in the model's order). The first
/// is the one the dashboard plots: for a linear model the last of equal largest, as ever; for
/// another the first, and the model's first feature when none moves it (one not loaded).
fn by_influence(a: &Artifact) -> Vec<usize> {
    let weights = influences(a);
    if weights.is_empty() {
        return Vec::new();
    }
    let first = if let ModelKind::Linear(_) = a.kind {
        (0..weights.len())
            .max_by(|&i, &j| weights[i].total_cmp(&weights[j]))
            .unwrap_or(0)
    } else {
        (0..weights.len())
            .filter(|&i| weights[i] > 0.0)
            .fold(None, |best: Option<usize>, i| match best {
                Some(b) if weights[b] >= weights[i] => Some(b),
                _ => Some(i),
            })
            .unwrap_or(0)
    };
    let mut rest: Vec<usize> = (0..weights.len()).filter(|&i| i != first).collect();
    rest.sort_by(|&i, &j| weights[j].total_cmp(&weights[i]));
    std::iter::once(first).chain(rest).collect()
}

/// How much each feature of `a` moves its prediction. A linear model: |coefficient| times the
/// feature's training spread (its standard deviation, else its range). An ONNX model: how far
/// its prediction moves as the feature goes from one standard deviation below its training
/// mean to one above (within its range), the others at their means; 0 where it cannot predict.
fn influences(a: &Artifact) -> Vec<f64> {
    let spread = |i: usize| {
        let f = &a.features[i];
        f.std.unwrap_or(f.range.max - f.range.min)
    };
    match &a.kind {
        ModelKind::Linear(m) => (0..a.features.len())
            .map(|i| (m.coefficients.get(i).copied().unwrap_or(0.0) * spread(i)).abs())
            .collect(),
        ModelKind::Onnx(m) => {
            let Some(loaded) = &m.loaded else {
                return vec![0.0; a.features.len()];
            };
            let middle = |i: usize| {
                let f = &a.features[i];
                f.mean.unwrap_or((f.range.min + f.range.max) / 2.0)
            };
            let base: Vec<f64> = (0..a.features.len()).map(middle).collect();
            let at = |i: usize, x: f64| {
                let mut row = base.clone();
                row[i] = x.clamp(a.features[i].range.min, a.features[i].range.max);
                loaded.predictor.predict_one(&row).unwrap_or(f64::NAN)
            };
            (0..a.features.len())
                .map(|i| {
                    let moved = (at(i, base[i] + spread(i)) - at(i, base[i] - spread(i))).abs();
                    if moved.is_finite() {
                        moved
                    } else {
                        0.0
                    }
                })
                .collect()
        }
    }
}

/// The reference model (scikit-learn's fit of data/Salary_Data.csv) as the built-in artifact
/// serves it, for unit tests.
#[cfg(test)]
pub(crate) fn reference_predictor() -> Predictor {
    Predictor::line(
        "6c25318e",
        25792.20019866869,
        9449.962321455077,
        FeatureRange {
            min: 1.1,
            max: 10.5,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane() -> Predictor {
        Predictor {
            version: "v".into(),
            ranges: vec![FeatureRange { min: 0.0, max: 1.0 }; 2],
            fields: vec!["a".into(), "b".into()],
            label: "y".into(),
            plotted: 1,
            shown: Arc::from([(1, "b".to_owned()), (0, "a".to_owned())]),
            form: Form::Linear {
                coefficients: vec![2.0, -3.0],
                intercept: 0.5,
            },
        }
    }

    #[test]
    fn a_line_and_a_plane_predict_exactly() {
        let line = reference_predictor();
        assert_eq!(
            line.predict(&[5.3]),
            25792.20019866869 + 9449.962321455077 * 5.3
        );
        assert_eq!(format!("{:.2}", line.predict(&[5.3])), "75877.00");
        assert_eq!(line.formula(), "salary = 25792.20 + 9449.96 × years");
        assert_eq!(
            line.slope_intercept(),
            Some((9449.962321455077, 25792.20019866869))
        );
        let plane = plane();
        assert_eq!(plane.predict(&[1.0, 2.0]), 0.5 + 2.0 - 6.0);
        assert!(plane.predict(&[1.0]).is_nan());
        assert_eq!(plane.formula(), "y ~ linear, 2 features");
        assert_eq!(plane.slope_intercept(), None);
    }

    /// The diabetes model's features as the dashboard shows them: a linear fit's by |coefficient|
    /// times standard deviation, gradient-boosted trees' by how far each moves the prediction.
    #[test]
    fn features_are_shown_most_influential_first() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let data = root.join("data/diabetes.csv");
        let spec = crate::model::train::TrainSpec {
            target: Some("progression".parse().unwrap()),
            features: Vec::new(),
        };
        let names = |p: &Predictor| {
            let names: Vec<String> = p.shown.iter().map(|(_, f)| f.clone()).collect();
            (p.plotted, names.join(" "))
        };
        let linear = crate::model::train::train(&data, &spec).unwrap().artifact;
        assert_eq!(
            names(&Predictor::from(&linear)),
            (4, "s1 s5 bmi s2 bp sex s4 s3 s6 age".to_owned())
        );
        let dir = tempfile::tempdir().unwrap();
        let gbr = crate::model::import::import(
            &root.join("tests/onnx/gbr.onnx"),
            &data,
            &spec,
            &dir.path().join("gbr.json"),
        )
        .unwrap()
        .artifact;
        assert_eq!(
            names(&Predictor::from(&gbr)),
            (8, "s5 s3 bmi sex bp s4 age s6 s2 s1".to_owned())
        );
    }

    #[test]
    fn any_feature_outside_its_range_is_an_extrapolation() {
        let plane = plane();
        assert!(!plane.extrapolated(&[0.0, 1.0]));
        assert!(plane.extrapolated(&[0.5, 1.5]));
        assert!(plane.extrapolated(&[-0.1, 0.5]));
    }
}
