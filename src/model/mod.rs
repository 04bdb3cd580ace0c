//! Models, pure: no Kafka, no screen. What was trained is exactly what serves.
//!
//! - `artifact`: the JSON file every command serves from (schema 2 written, schema 1 still
//!   read), the features, target and kind it names, and its content-derived version id.
//! - `import`: a model exported to ONNX wrapped into an artifact, and the ONNX file kept beside
//!   an artifact: read and checked when it loads, copied when it is saved.
//! - `linear`: least squares with linfa-linear, fit metrics, the full-rank check.
//! - `predictor`: the [`Predictor`] the serving path runs, for a linear or an ONNX model.
//! - `train`: a CSV's columns chosen and checked, fitted into an artifact; challenger fits.
//! - `watch`: a new artifact noticed at a path (hot reload).
//! - `error`: [`ModelError`], each message one line for the user.

mod artifact;
mod error;
mod import;
mod linear;
/// ONNX models from scikit-learn (skl2onnx), run in pure Rust by tract-onnx.
pub mod onnx;
mod predictor;
mod train;
mod watch;

pub use artifact::{
    hex, onnx_version_id, version_id, Artifact, Feature, FeatureRange, Line, Lineage, LinearModel,
    LoadedOnnx, ModelKind, OnnxModel, Target, DEMO_FEATURE_FIELD, DEMO_LABEL_FIELD, SCHEMA_VERSION,
};
pub use error::{FieldError, ModelError};
pub use import::{import, Imported};
pub use linear::{first_collinear, fit_metrics, fit_ols, FitMetrics};
#[cfg(test)]
pub(crate) use predictor::reference_predictor;
pub use predictor::{Predictor, BATCH_ROWS};
pub use train::{
    fit_challenger, read_training_set, train, train_set, Column, ColumnChoice, TrainSpec, Trained,
    TrainingSet,
};
pub use watch::ModelWatch;
