//! Why training, loading or using a model failed: one error type for the model boundary, each
//! message one line for the user.

use std::path::{Path, PathBuf};

use super::onnx::OnnxError;

/// Why training or loading a model failed; each message is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The training file could not be opened or read.
    #[error("cannot read training data {path}: {source}")]
    ReadData {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The CSV itself is malformed (ragged rows, bad quoting, not UTF-8).
    #[error("{path}: malformed CSV: {message}")]
    Csv {
        /// The training file.
        path: PathBuf,
        /// What the CSV reader said.
        message: String,
    },
    /// A required column is absent from the header.
    #[error("{path}: no column named {wanted} in the header (found: {found})")]
    MissingColumn {
        /// The training file.
        path: PathBuf,
        /// The column that was expected.
        wanted: String,
        /// The columns the header has.
        found: String,
    },
    /// A column chosen for training appears more than once in the header.
    #[error("{path}: column {column} appears more than once in the header")]
    DuplicateColumn {
        /// The training file.
        path: PathBuf,
        /// The column name.
        column: String,
    },
    /// The same column was asked for twice, or as both target and feature.
    #[error("{0}")]
    BadSelection(String),
    /// No column is left to fit on.
    #[error("{path}: no numeric column to fit {target} on")]
    NoFeatures {
        /// The training file.
        path: PathBuf,
        /// The target column.
        target: String,
    },
    /// A cell that should hold a finite number does not.
    #[error("{path}:{line}: column {column}: {value:?} is not a finite number")]
    NotANumber {
        /// The training file.
        path: PathBuf,
        /// 1-based line number in the file.
        line: u64,
        /// The column name.
        column: String,
        /// The cell's text.
        value: String,
    },
    /// Too few rows to fit the features and an intercept.
    #[error("{path}: need at least {} data rows to fit {}, found {rows}", features + 1,
            if *features == 1 { "a line".to_owned() } else { format!("{features} features and an intercept") })]
    TooFewRows {
        /// The training file.
        path: PathBuf,
        /// How many data rows there were.
        rows: usize,
        /// How many features were to be fitted.
        features: usize,
    },
    /// The only feature has one value in every row, so the slope is undefined.
    #[error("{path}: every {column} value is the same; the slope is undefined")]
    ConstantFeature {
        /// The training file.
        path: PathBuf,
        /// The feature column name.
        column: String,
    },
    /// One of several features has one value in every row: it adds nothing an intercept lacks.
    #[error("{path}: column {column} is constant ({value:?} in all {rows} rows): drop it with --feature")]
    ConstantColumn {
        /// The training file.
        path: PathBuf,
        /// The feature column name.
        column: String,
        /// Its one value.
        value: f64,
        /// How many rows have it.
        rows: usize,
    },
    /// A feature is, to rounding, an affine combination of the features before it: least squares
    /// has no unique answer.
    #[error("{path}: columns {} are collinear: {column} is a linear combination of {}; leave one out with --feature",
            list(&[combined.as_slice(), std::slice::from_ref(column)].concat()), list(combined))]
    Collinear {
        /// The training file.
        path: PathBuf,
        /// The feature that adds nothing new.
        column: String,
        /// The earlier features it is a combination of.
        combined: Vec<String>,
    },
    /// linfa-linear refused to fit.
    #[error("fitting failed: {0}")]
    Fit(String),
    /// The artifact file could not be read.
    #[error("cannot read model artifact {path}: {source}")]
    ReadArtifact {
        /// The artifact path.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The artifact could not be written.
    #[error("cannot write model artifact {path}: {source}")]
    WriteArtifact {
        /// The artifact path.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The artifact is not valid JSON of the expected shape.
    #[error("model artifact {path} is corrupt: {message}")]
    CorruptArtifact {
        /// The artifact path.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The artifact was written by a schema version this build does not read.
    #[error("model artifact {path} has schema version {found}; this build reads versions 1 and {} (run `salary-stream train` to rewrite it)", super::SCHEMA_VERSION)]
    SchemaVersion {
        /// The artifact path.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
    },
    /// An ONNX model that cannot be served: unreadable, not ONNX, an op nothing here runs, an
    /// input or output of a shape a regression model does not have.
    #[error("{}", onnx_refusal(path, source))]
    Onnx {
        /// The ONNX file.
        path: PathBuf,
        /// Why it cannot be served.
        source: OnnxError,
    },
    /// An ONNX model whose width is not the number of features chosen or named.
    #[error("{path}: the model takes {width} features a row; {features}")]
    OnnxWidth {
        /// The ONNX file.
        path: PathBuf,
        /// The F of its input `[N, F]`.
        width: usize,
        /// The features it was given, counted and named: `the artifact names 3 (age, sex, bmi)`.
        features: String,
    },
    /// The ONNX file beside an artifact is not the one it was imported with.
    #[error("ONNX model {path} has SHA-256 {found}; model artifact {artifact} names {expected}: the file is not the one imported")]
    OnnxChanged {
        /// The ONNX file.
        path: PathBuf,
        /// The artifact that names it.
        artifact: PathBuf,
        /// The SHA-256 the artifact records.
        expected: String,
        /// The SHA-256 of the file's bytes.
        found: String,
    },
    /// An artifact names an ONNX model, but its graph was never read: the artifact was not
    /// loaded from its file ([`crate::model::Artifact::load`]), beside which the model lies.
    #[error("{named}: its ONNX model ({file}) is not loaded: an ONNX artifact serves once read from its file, with the model beside it")]
    OnnxNotLoaded {
        /// How the user named the artifact: `--model gbr.json`.
        named: String,
        /// The ONNX file it names.
        file: String,
    },
    /// One-shot predictions of a single value were asked of a model with several features.
    #[error("{named} has {count} features ({}); a value on the command line is for one-feature models: give JSON events on stdin, one a line", names.join(", "))]
    NeedsEvents {
        /// How the artifact is named: its path, or `the built-in model`.
        named: String,
        /// How many features it has.
        count: usize,
        /// Their JSON fields, in order.
        names: Vec<String>,
    },
}

/// An ONNX refusal naming the file once: what cannot be read or parsed names it already.
fn onnx_refusal(path: &Path, e: &OnnxError) -> String {
    match e {
        OnnxError::Read { .. } | OnnxError::NotOnnx { .. } => e.to_string(),
        _ => format!("{}: {e}", path.display()),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Why a JSON event cannot be turned into a model's feature values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The event is not a JSON object.
    #[error("not a JSON object but {0}")]
    NotAnObject(&'static str),
    /// A feature's field is absent.
    #[error("missing field {0}")]
    Missing(String),
    /// A feature's field holds something other than a number.
    #[error("wrong type for {field}: {found}")]
    WrongType {
        /// The field.
        field: String,
        /// The JSON type found: string, boolean, null, array, object.
        found: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_english() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(list(&names(&[])), "");
        assert_eq!(list(&names(&["a"])), "a");
        assert_eq!(list(&names(&["a", "b"])), "a and b");
        assert_eq!(list(&names(&["a", "b", "c"])), "a, b and c");
    }
}
