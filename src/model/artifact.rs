//! The model artifact: the one small JSON file every command serves from, what it holds, how it is
//! read (schema 2, and schema 1 with its original meaning) and written (always schema 2), and
//! the version id derived from its content.
//!
//! Schema 2:
//!
//! ```json
//! {
//!   "schema_version": 2,
//!   "version": "6c25318e",
//!   "features": [
//!     { "column": "YearsExperience", "field": "years_experience",
//!       "range": { "min": 1.1, "max": 10.5 }, "mean": 5.31, "std": 2.79 }
//!   ],
//!   "target": { "column": "Salary", "field": "salary" },
//!   "kind": { "type": "linear", "coefficients": [9449.96], "intercept": 25792.2 },
//!   "training_rows": 30, "r2": 0.957, "rmse": 5592.04,
//!   "data_sha256": "c03c04aa…"
//! }
//! ```
//!
//! An ONNX model's kind names its file, kept beside the artifact, and the file's SHA-256:
//! `{ "type": "onnx", "file": "gbr.onnx", "sha256": "…", "input": "input", "output": "variable" }`
//! ([`Artifact::load`] reads and checks it, [`Artifact::save`] copies it beside the artifact).
//!
//! Schema 1 held one feature (`feature`, `coefficient`, `intercept`, `feature_range`) read from
//! the field `years_experience`, with the label `salary`; it loads as that one-feature model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::error::{FieldError, ModelError};
use super::import::{copy_beside, load_beside};
use super::onnx::OnnxPredictor;

/// The artifact schema this build writes; it reads this one and schema 1.
pub const SCHEMA_VERSION: u32 = 2;

/// The JSON field the salary demo reads its one feature from, and schema 1 always did.
pub const DEMO_FEATURE_FIELD: &str = "years_experience";
/// The JSON field of the salary demo's label, as schema 1 always had it.
pub const DEMO_LABEL_FIELD: &str = "salary";

/// A feature's range in the training data: values outside it are extrapolations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureRange {
    /// Smallest training value.
    pub min: f64,
    /// Largest training value.
    pub max: f64,
}

impl FeatureRange {
    /// Whether `x` lies within the training range (inclusive).
    pub fn contains(&self, x: f64) -> bool {
        x >= self.min && x <= self.max
    }
}

/// One input of the model: where it came from in training, where it is read from in events, and
/// what its training values looked like (for extrapolation flags and a synthetic producer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// The training CSV's column.
    pub column: String,
    /// The JSON field events carry it in.
    pub field: String,
    /// Smallest and largest training value.
    pub range: FeatureRange,
    /// Mean of the training values; absent in artifacts loaded from schema 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Standard deviation of the training values (population: divided by the row count);
    /// absent in artifacts loaded from schema 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
}

/// What the model predicts: the training CSV's column and the JSON field of its label in events
/// (a labeled event's residual; the prediction is published as `predicted_<field>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The training CSV's column.
    pub column: String,
    /// The label's JSON field.
    pub field: String,
}

/// The parameters of a linear model: `intercept + Σ coefficients[i] × feature[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// One per feature, in the features' order (scikit-learn's `coef_`).
    pub coefficients: Vec<f64>,
    /// The prediction when every feature is 0 (scikit-learn's `intercept_`).
    pub intercept: f64,
}

impl LinearModel {
    /// The prediction for one row of feature values, in the features' order.
    #[inline]
    pub fn predict(&self, row: &[f64]) -> f64 {
        // Summed left to right from the intercept: for one feature this is exactly
        // `intercept + slope × x`, the serving path's arithmetic.
        self.coefficients
            .iter()
            .zip(row)
            .fold(self.intercept, |sum, (c, x)| sum + c * x)
    }
}

/// A model exported to ONNX, kept in a file beside the artifact: what the artifact records of it,
/// and, once [`Artifact::load`] has read it, its graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OnnxModel {
    /// The ONNX file's name, in the artifact's directory.
    pub file: String,
    /// SHA-256 of the ONNX file, hex.
    pub sha256: String,
    /// The graph's input: one float tensor of the features, in order.
    pub input: String,
    /// The graph's output: the prediction.
    pub output: String,
    /// The graph, once read from its file and checked against the rest; not part of the JSON,
    /// nor of equality.
    #[serde(skip)]
    pub loaded: Option<LoadedOnnx>,
}

impl PartialEq for OnnxModel {
    /// What the artifact records; whether the graph is loaded does not matter.
    fn eq(&self, other: &Self) -> bool {
        (&self.file, &self.sha256, &self.input, &self.output)
            == (&other.file, &other.sha256, &other.input, &other.output)
    }
}

impl Eq for OnnxModel {}

/// An ONNX model's graph, ready to predict, and the file it was read from (which
/// [`Artifact::save`] copies beside the artifact it writes).
#[derive(Debug, Clone)]
pub struct LoadedOnnx {
    /// The graph.
    pub predictor: Arc<OnnxPredictor>,
    /// The file it was read from, whose SHA-256 is the artifact's.
    pub from: PathBuf,
}

/// Which kind of model the artifact describes, and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ModelKind {
    /// Ordinary least squares.
    Linear(LinearModel),
    /// A graph in an ONNX file beside the artifact.
    Onnx(OnnxModel),
}

/// The model artifact: everything needed to serve and describe one trained model.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// Short content-derived id of this model (same data and fit give the same id).
    pub version: String,
    /// The inputs, in the order the model takes them.
    pub features: Vec<Feature>,
    /// What it predicts.
    pub target: Target,
    /// The kind of model and its parameters.
    pub kind: ModelKind,
    /// Number of training rows.
    pub training_rows: usize,
    /// Coefficient of determination on the training data.
    pub r2: f64,
    /// Root of the mean squared residual on the training data.
    pub rmse: f64,
    /// SHA-256 of the training file's bytes, hex.
    pub data_sha256: String,
    /// Where a version fitted while serving came from; absent in artifacts written by `train`.
    pub lineage: Option<Lineage>,
}

/// Where a model version came from: what it was fitted on, when, and which version was serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The rows it was fitted on, in words (`500 labeled events of experience-events`).
    pub trained_on: String,
    /// When it was fitted, ms since the Unix epoch.
    pub trained_at_ms: i64,
    /// The version serving when it was fitted, which it was fitted to replace.
    pub challenged: String,
}

/// A one-feature linear model seen as a line: what the serving path runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line<'a> {
    /// The one feature.
    pub feature: &'a Feature,
    /// Target per unit of the feature.
    pub slope: f64,
    /// Target at 0.
    pub intercept: f64,
}

impl Artifact {
    /// The model as a line, if it is a linear model of one feature.
    pub fn line(&self) -> Option<Line<'_>> {
        match (&self.kind, self.features.as_slice()) {
            (ModelKind::Linear(m), [feature]) => Some(Line {
                feature,
                slope: *m.coefficients.first()?,
                intercept: m.intercept,
            }),
            _ => None,
        }
    }

    /// The linear model's parameters, if it is one.
    pub fn linear(&self) -> Option<&LinearModel> {
        match &self.kind {
            ModelKind::Linear(m) => Some(m),
            ModelKind::Onnx(_) => None,
        }
    }

    /// The linear model's parameters, to change them (a test's drifted twin, say).
    pub fn linear_mut(&mut self) -> Option<&mut LinearModel> {
        match &mut self.kind {
            ModelKind::Linear(m) => Some(m),
            ModelKind::Onnx(_) => None,
        }
    }

    /// The slope of a one-feature linear model: what the serving path reads. NaN for any other
    /// model, which the serving commands refuse at load ([`Artifact::check_servable`]).
    pub fn slope(&self) -> f64 {
        self.line().map_or(f64::NAN, |l| l.slope)
    }

    /// The intercept of a one-feature linear model; NaN for any other, as [`Artifact::slope`].
    pub fn intercept(&self) -> f64 {
        self.line().map_or(f64::NAN, |l| l.intercept)
    }

    /// The training range of a one-feature model's feature; NaN to NaN (containing nothing) for
    /// any other, as [`Artifact::slope`].
    pub fn feature_range(&self) -> FeatureRange {
        self.line().map_or(
            FeatureRange {
                min: f64::NAN,
                max: f64::NAN,
            },
            |l| l.feature.range,
        )
    }

    /// Whether this is what schema 1 could describe, and so what the serving path runs: a linear
    /// model of one feature read from `years_experience`, labeled `salary`.
    pub fn is_salary_shaped(&self) -> bool {
        self.line().is_some() && salary_shaped(&self.features, &self.target)
    }

    /// Refuses, in one line naming the artifact as the user named it (`--model diabetes.json`),
    /// a model nothing can serve: an ONNX model whose graph was never loaded (an artifact
    /// deserialized from text rather than loaded from its file).
    pub fn check_servable(&self, named: &str) -> Result<(), ModelError> {
        match &self.kind {
            ModelKind::Onnx(m) if m.loaded.is_none() => Err(ModelError::OnnxNotLoaded {
                named: named.to_owned(),
                file: m.file.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The prediction for one row of feature values, in the features' order; NaN from an ONNX
    /// model not loaded, or for a row of the wrong width.
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        match &self.kind {
            ModelKind::Linear(m) => m.predict(row),
            ModelKind::Onnx(m) => m.loaded.as_ref().map_or(f64::NAN, |g| {
                g.predictor.predict_one(row).unwrap_or(f64::NAN)
            }),
        }
    }

    /// The feature values of a JSON event, in the features' order: each read from its field, or
    /// else from its CSV column name (the salary demo's `YearsExperience` alias); other fields
    /// are ignored.
    pub fn feature_values(&self, event: &serde_json::Value) -> Result<Vec<f64>, FieldError> {
        let object = event
            .as_object()
            .ok_or_else(|| FieldError::NotAnObject(json_type(event)))?;
        self.features
            .iter()
            .map(|f| {
                let value = object
                    .get(&f.field)
                    .or_else(|| object.get(&f.column))
                    .ok_or_else(|| FieldError::Missing(f.field.clone()))?;
                value.as_f64().ok_or_else(|| FieldError::WrongType {
                    field: f.field.clone(),
                    found: json_type(value),
                })
            })
            .collect()
    }

    /// Writes the artifact as pretty JSON (schema 2), atomically (temp file, then rename), so a
    /// watcher never sees half a file. A loaded ONNX model's file is copied beside it first,
    /// unless that file is there already.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let write_err = |source| ModelError::WriteArtifact {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        if let ModelKind::Onnx(m) = &self.kind {
            copy_beside(path, m)?;
        }
        let mut json =
            serde_json::to_string_pretty(self).map_err(|e| ModelError::Fit(e.to_string()))?;
        json.push('\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// Loads and validates an artifact of schema 1 or 2; for an ONNX model, reads its file
    /// beside the artifact, checks its SHA-256 and its width, and keeps its graph.
    pub fn load(path: &Path) -> Result<Artifact, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::ReadArtifact {
            path: path.to_owned(),
            source,
        })?;
        let corrupt = |message: String| ModelError::CorruptArtifact {
            path: path.to_owned(),
            message,
        };
        #[derive(Deserialize)]
        struct Header {
            schema_version: u32,
        }
        let header: Header = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        // Parsed from the bytes (not through a Value) so a mistake is named by line and column.
        let mut artifact = match header.schema_version {
            1 => serde_json::from_slice::<SchemaOne>(&bytes).map(Artifact::from),
            2 => serde_json::from_slice::<SchemaTwo>(&bytes).map(Artifact::from),
            found => {
                return Err(ModelError::SchemaVersion {
                    path: path.to_owned(),
                    found,
                })
            }
        }
        .map_err(|e| corrupt(e.to_string()))?;
        artifact.validate().map_err(corrupt)?;
        if let ModelKind::Onnx(m) = &mut artifact.kind {
            m.loaded = Some(load_beside(path, m, &artifact.features)?);
        }
        Ok(artifact)
    }

    /// What would make the artifact unservable or unsafe to name a file by, in words.
    fn validate(&self) -> Result<(), String> {
        // The version names the file it is kept in, in the models directory, and is written
        // into every prediction: letters, digits, '-', '_' and '.' only, not first.
        let version = &self.version;
        let plain = version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if version.is_empty()
            || version.len() > 64
            || !plain
            || !version.as_bytes()[0].is_ascii_alphanumeric()
        {
            return Err(format!(
                "version {version:?} must be 1 to 64 letters, digits, '-', '_' or '.', starting \
                 with a letter or digit"
            ));
        }
        if self.features.is_empty() {
            return Err("it names no feature".into());
        }
        for (i, f) in self.features.iter().enumerate() {
            if f.field.is_empty() || f.column.is_empty() {
                return Err(format!("feature {} has an empty column or field", i + 1));
            }
            if self.features[..i].iter().any(|g| g.field == f.field) {
                return Err(format!("two features read the field {}", f.field));
            }
            if f.range.min.is_nan() || f.range.max.is_nan() || f.range.min > f.range.max {
                return Err(format!(
                    "the range of {} runs from {} to {}",
                    f.field, f.range.min, f.range.max
                ));
            }
        }
        if let ModelKind::Onnx(m) = &self.kind {
            // The file is looked for beside the artifact, and nowhere else.
            let plain = Path::new(&m.file).file_name() == Some(m.file.as_ref());
            if !plain || m.file.contains(['/', '\\']) {
                return Err(format!(
                    "the ONNX file {:?} must be a file name, in the artifact's directory",
                    m.file
                ));
            }
        }
        if let ModelKind::Linear(m) = &self.kind {
            if m.coefficients.len() != self.features.len() {
                return Err(format!(
                    "{} coefficients for {} features",
                    m.coefficients.len(),
                    self.features.len()
                ));
            }
            if !m.intercept.is_finite() || !m.coefficients.iter().all(|c| c.is_finite()) {
                return Err("coefficients and intercept must be finite".into());
            }
        }
        Ok(())
    }
}

/// Whether `features` and `target` are what schema 1 could describe: one feature read from
/// `years_experience`, labeled `salary`.
fn salary_shaped(features: &[Feature], target: &Target) -> bool {
    matches!(features, [f] if f.field == DEMO_FEATURE_FIELD) && target.field == DEMO_LABEL_FIELD
}

/// The version id of a linear model: the first 4 bytes of SHA-256 over the data's hash, the
/// coefficients and the intercept (little-endian f64), and, for anything schema 1 could not
/// describe, the columns and fields; so the salary demo keeps the id it had under schema 1.
pub fn version_id(
    data_sha256: &str,
    features: &[Feature],
    target: &Target,
    model: &LinearModel,
) -> String {
    let mut id = Sha256::new();
    id.update(data_sha256.as_bytes());
    for c in &model.coefficients {
        id.update(c.to_le_bytes());
    }
    id.update(model.intercept.to_le_bytes());
    if !salary_shaped(features, target) {
        let names = features
            .iter()
            .flat_map(|f| [&f.column, &f.field])
            .chain([&target.column, &target.field]);
        for name in names {
            id.update(name.as_bytes());
            id.update([0]);
        }
    }
    hex(&id.finalize()[..4])
}

/// The version id of an ONNX model: the first 4 bytes of SHA-256 over the data's hash, the ONNX
/// file's hash, and the columns and fields.
pub fn onnx_version_id(
    data_sha256: &str,
    onnx_sha256: &str,
    features: &[Feature],
    target: &Target,
) -> String {
    let mut id = Sha256::new();
    id.update(data_sha256.as_bytes());
    id.update(onnx_sha256.as_bytes());
    let names = features
        .iter()
        .flat_map(|f| [&f.column, &f.field])
        .chain([&target.column, &target.field]);
    for name in names {
        id.update(name.as_bytes());
        id.update([0]);
    }
    hex(&id.finalize()[..4])
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The JSON type of `value`, as a reason names it.
fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// A schema 1 file as written.
#[derive(Deserialize)]
struct SchemaOne {
    version: String,
    feature: String,
    target: String,
    coefficient: f64,
    intercept: f64,
    training_rows: usize,
    r2: f64,
    rmse: f64,
    feature_range: FeatureRange,
    data_sha256: String,
    #[serde(default)]
    lineage: Option<Lineage>,
}

impl From<SchemaOne> for Artifact {
    fn from(one: SchemaOne) -> Self {
        Artifact {
            version: one.version,
            features: vec![Feature {
                column: one.feature,
                field: DEMO_FEATURE_FIELD.into(),
                range: one.feature_range,
                mean: None,
                std: None,
            }],
            target: Target {
                column: one.target,
                field: DEMO_LABEL_FIELD.into(),
            },
            kind: ModelKind::Linear(LinearModel {
                coefficients: vec![one.coefficient],
                intercept: one.intercept,
            }),
            training_rows: one.training_rows,
            r2: one.r2,
            rmse: one.rmse,
            data_sha256: one.data_sha256,
            lineage: one.lineage,
        }
    }
}

/// A schema 2 file as read.
#[derive(Deserialize)]
struct SchemaTwo {
    version: String,
    features: Vec<Feature>,
    target: Target,
    kind: ModelKind,
    training_rows: usize,
    r2: f64,
    rmse: f64,
    data_sha256: String,
    #[serde(default)]
    lineage: Option<Lineage>,
}

impl From<SchemaTwo> for Artifact {
    fn from(two: SchemaTwo) -> Self {
        Artifact {
            version: two.version,
            features: two.features,
            target: two.target,
            kind: two.kind,
            training_rows: two.training_rows,
            r2: two.r2,
            rmse: two.rmse,
            data_sha256: two.data_sha256,
            lineage: two.lineage,
        }
    }
}

/// A schema 2 file as written.
#[derive(Serialize)]
struct SchemaTwoRef<'a> {
    schema_version: u32,
    version: &'a str,
    features: &'a [Feature],
    target: &'a Target,
    kind: &'a ModelKind,
    training_rows: usize,
    r2: f64,
    rmse: f64,
    data_sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lineage: Option<&'a Lineage>,
}

impl Serialize for Artifact {
    /// Always schema 2.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SchemaTwoRef {
            schema_version: SCHEMA_VERSION,
            version: &self.version,
            features: &self.features,
            target: &self.target,
            kind: &self.kind,
            training_rows: self.training_rows,
            r2: self.r2,
            rmse: self.rmse,
            data_sha256: &self.data_sha256,
            lineage: self.lineage.as_ref(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Artifact {
    /// Schema 1 or 2, by the file's `schema_version`; unvalidated (see [`Artifact::load`]).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        let schema = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| D::Error::missing_field("schema_version"))?;
        match schema {
            1 => serde_json::from_value::<SchemaOne>(value).map(Artifact::from),
            2 => serde_json::from_value::<SchemaTwo>(value).map(Artifact::from),
            other => return Err(D::Error::custom(format!("unknown schema version {other}"))),
        }
        .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diabetes_like() -> Artifact {
        let feature = |name: &str| Feature {
            column: name.into(),
            field: name.into(),
            range: FeatureRange { min: 0.0, max: 1.0 },
            mean: Some(0.5),
            std: Some(0.25),
        };
        let features = vec![feature("age"), feature("bmi")];
        let target = Target {
            column: "progression".into(),
            field: "progression".into(),
        };
        let model = LinearModel {
            coefficients: vec![2.0, -3.0],
            intercept: 10.0,
        };
        Artifact {
            version: version_id("abc", &features, &target, &model),
            features,
            target,
            kind: ModelKind::Linear(model),
            training_rows: 3,
            r2: 0.5,
            rmse: 1.0,
            data_sha256: "abc".into(),
            lineage: None,
        }
    }

    #[test]
    fn a_schema_one_file_loads_as_the_one_feature_salary_model() {
        let text = r#"{"schema_version": 1, "version": "6c25318e", "feature": "YearsExperience",
            "target": "Salary", "coefficient": 2.5, "intercept": 7.0, "training_rows": 30,
            "r2": 0.9, "rmse": 5.0, "feature_range": {"min": 1.1, "max": 10.5},
            "data_sha256": "c0"}"#;
        let a: Artifact = serde_json::from_str(text).unwrap();
        assert_eq!(
            a.features,
            [Feature {
                column: "YearsExperience".into(),
                field: "years_experience".into(),
                range: FeatureRange {
                    min: 1.1,
                    max: 10.5
                },
                mean: None,
                std: None,
            }]
        );
        assert_eq!(a.target.field, "salary");
        assert_eq!((a.slope(), a.intercept()), (2.5, 7.0));
        assert_eq!(a.predict_row(&[2.0]), 12.0);
        assert!(a.is_salary_shaped());
        // Written back as schema 2, it reads back the same.
        let again: Artifact = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(again, a);
    }

    #[test]
    fn a_many_feature_model_reads_its_fields_and_is_servable() {
        let a = diabetes_like();
        assert_eq!(a.line(), None);
        assert!(a.slope().is_nan() && a.intercept().is_nan());
        assert!(!a.feature_range().contains(0.5));
        let event = serde_json::json!({"age": 1, "bmi": 2.5, "other": "x"});
        let row = a.feature_values(&event).unwrap();
        assert_eq!(row, [1.0, 2.5]);
        assert_eq!(a.predict_row(&row), 10.0 + 2.0 - 7.5);
        let errors = [
            (serde_json::json!({"age": 1}), "missing field bmi"),
            (
                serde_json::json!({"age": 1, "bmi": "2"}),
                "wrong type for bmi: string",
            ),
            (
                serde_json::json!({"age": null, "bmi": 2}),
                "wrong type for age: null",
            ),
            (serde_json::json!([1, 2]), "not a JSON object but array"),
        ];
        for (event, want) in errors {
            assert_eq!(a.feature_values(&event).unwrap_err().to_string(), want);
        }
        assert!(a.check_servable("--model d.json").is_ok());
        let mut one = a.clone();
        one.features.truncate(1);
        one.linear_mut().unwrap().coefficients.truncate(1);
        assert!(one.check_servable("--challenger c.json").is_ok());
    }

    #[test]
    fn the_version_covers_names_except_for_what_schema_one_could_say() {
        let a = diabetes_like();
        let model = a.linear().unwrap();
        let mut renamed = a.features.clone();
        renamed[1].field = "body_mass".into();
        assert_ne!(
            version_id("abc", &renamed, &a.target, model),
            a.version,
            "a model reading other fields is another model"
        );
        // The salary shape hashes what schema 1 hashed, whatever the columns are called.
        let salary = |column: &str| {
            let features = [Feature {
                column: column.into(),
                field: DEMO_FEATURE_FIELD.into(),
                range: FeatureRange { min: 0.0, max: 1.0 },
                mean: None,
                std: None,
            }];
            let target = Target {
                column: "Salary".into(),
                field: DEMO_LABEL_FIELD.into(),
            };
            let line = LinearModel {
                coefficients: vec![2.0],
                intercept: 1.0,
            };
            version_id("abc", &features, &target, &line)
        };
        let mut schema_one = Sha256::new();
        schema_one.update(b"abc");
        schema_one.update(2.0f64.to_le_bytes());
        schema_one.update(1.0f64.to_le_bytes());
        assert_eq!(salary("YearsExperience"), hex(&schema_one.finalize()[..4]));
        assert_eq!(salary("years_experience"), salary("YearsExperience"));
    }

    #[test]
    fn bad_schema_two_files_are_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let good = diabetes_like();
        good.save(&path).unwrap();
        assert_eq!(Artifact::load(&path).unwrap(), good);
        type Spoil = Box<dyn Fn(&mut Artifact)>;
        let cases: Vec<(Spoil, &str)> = vec![
            (
                Box::new(|a| {
                    a.linear_mut().unwrap().coefficients.pop();
                }),
                "1 coefficients for 2 features",
            ),
            (
                Box::new(|a| a.features[1].field = "age".into()),
                "two features read the field age",
            ),
            (
                Box::new(|a| a.features[0].range.min = 2.0),
                "the range of age runs from 2 to 1",
            ),
            (Box::new(|a| a.features.clear()), "it names no feature"),
        ];
        for (spoil, want) in cases {
            let mut a = good.clone();
            spoil(&mut a);
            a.save(&path).unwrap();
            assert_eq!(
                Artifact::load(&path).unwrap_err().to_string(),
                format!("model artifact {} is corrupt: {want}", path.display())
            );
        }
        let mut onnx = good.clone();
        onnx.kind = ModelKind::Onnx(OnnxModel {
            file: "gbr.onnx".into(),
            sha256: "00".into(),
            input: "input".into(),
            output: "variable".into(),
            loaded: None,
        });
        onnx.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"type\": \"onnx\""), "{text}");
        let beside = dir.path().join("gbr.onnx");
        assert_eq!(
            Artifact::load(&path).unwrap_err().to_string(),
            format!(
                "cannot read ONNX model {}: No such file or directory (os error 2)",
                beside.display()
            )
        );
        // Found, but not the file the artifact names; then not a model of its two features.
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx/gbr.onnx");
        std::fs::copy(&real, &beside).unwrap();
        let sha = hex(&Sha256::digest(std::fs::read(&real).unwrap()));
        assert_eq!(
            Artifact::load(&path).unwrap_err().to_string(),
            format!(
                "ONNX model {} has SHA-256 {sha}; model artifact {} names 00: the file is not the \
                 one imported",
                beside.display(),
                path.display()
            )
        );
        if let ModelKind::Onnx(m) = &mut onnx.kind {
            m.sha256 = sha.clone();
        }
        onnx.save(&path).unwrap();
        assert_eq!(
            Artifact::load(&path).unwrap_err().to_string(),
            format!(
                "{}: the model takes 10 features a row; model artifact {} names 2 (age, bmi)",
                beside.display(),
                path.display()
            )
        );
        for file in ["../gbr.onnx", "sub/gbr.onnx", "..", ""] {
            if let ModelKind::Onnx(m) = &mut onnx.kind {
                m.file = file.into();
            }
            onnx.save(&path).unwrap();
            assert_eq!(
                Artifact::load(&path).unwrap_err().to_string(),
                format!(
                    "model artifact {} is corrupt: the ONNX file {file:?} must be a file name, in \
                     the artifact's directory",
                    path.display()
                )
            );
        }
        assert_eq!(
            onnx.check_servable("--model m.json")
                .unwrap_err()
                .to_string(),
            "--model m.json: its ONNX model () is not loaded: an ONNX artifact serves once read \
             from its file, with the model beside it"
        );
        assert!(onnx.predict_row(&[0.0, 0.0]).is_nan());
    }
}
