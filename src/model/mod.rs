//! Training, the model artifact, and prediction.
//!
//! `train` fits ordinary least squares with linfa-linear on a two-column CSV and writes an
//! [`Artifact`]; every other command loads that artifact and serves exactly what was trained.

use std::path::{Path, PathBuf};

use linfa::prelude::*;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The artifact schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Column names accepted for the feature (the demo's original header first).
const FEATURE_COLUMNS: [&str; 2] = ["YearsExperience", "years_experience"];
/// Column names accepted for the target.
const TARGET_COLUMNS: [&str; 2] = ["Salary", "salary"];

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
    /// Too few rows to fit a line.
    #[error("{path}: need at least 2 data rows to fit a line, found {rows}")]
    TooFewRows {
        /// The training file.
        path: PathBuf,
        /// How many data rows there were.
        rows: usize,
    },
    /// Every feature value is the same, so the slope is undefined.
    #[error("{path}: every {column} value is the same; the slope is undefined")]
    ConstantFeature {
        /// The training file.
        path: PathBuf,
        /// The feature column name.
        column: String,
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
    /// The artifact was written by a different schema version.
    #[error("model artifact {path} has schema version {found}; this build reads version {SCHEMA_VERSION} (run `salary-stream train` to rewrite it)")]
    SchemaVersion {
        /// The artifact path.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
    },
}

/// The feature's range in the training data: predictions outside it are extrapolations.
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

/// The model artifact: everything needed to serve and describe one trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Schema of this file; see [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Short content-derived id of this model (same data and fit give the same id).
    pub version: String,
    /// Name of the input feature column.
    pub feature: String,
    /// Name of the predicted target column.
    pub target: String,
    /// The slope: salary gained per year of experience. The file names it `coefficient`, as
    /// scikit-learn's `coef_` (the artifact format is unchanged since schema 1).
    #[serde(rename = "coefficient")]
    pub slope: f64,
    /// The intercept: predicted salary at zero years.
    pub intercept: f64,
    /// Number of training rows.
    pub training_rows: usize,
    /// Coefficient of determination on the training data.
    pub r2: f64,
    /// Root of the mean squared residual on the training data.
    pub rmse: f64,
    /// Range of the feature in the training data.
    pub feature_range: FeatureRange,
    /// SHA-256 of the training file's bytes, hex.
    pub data_sha256: String,
    /// Where a version fitted while serving came from; absent in artifacts written by `train`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// The serving form of a model: two numbers and the version that names them.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictor {
    /// Salary per year.
    pub slope: f64,
    /// Salary at zero years.
    pub intercept: f64,
    /// The artifact version.
    pub version: String,
    /// Training range of the feature.
    pub range: FeatureRange,
}

impl Predictor {
    /// Predicted salary for `years` of experience.
    #[inline]
    pub fn predict(&self, years: f64) -> f64 {
        self.intercept + self.slope * years
    }

    /// The fitted line as text, e.g. `salary = 25792.20 + 9449.96 × years`.
    pub fn formula(&self) -> String {
        format!("salary = {:.2} + {:.2} × years", self.intercept, self.slope)
    }
}

impl From<&Artifact> for Predictor {
    fn from(a: &Artifact) -> Self {
        Predictor {
            slope: a.slope,
            intercept: a.intercept,
            version: a.version.clone(),
            range: a.feature_range,
        }
    }
}

/// Training rows read from a CSV: the feature and the target, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSet {
    /// Feature values (years of experience).
    pub years: Vec<f64>,
    /// Target values (salaries).
    pub salaries: Vec<f64>,
    /// Name of the feature column as found in the header.
    pub feature: String,
    /// Name of the target column as found in the header.
    pub target: String,
}

fn find_column(
    headers: &csv::StringRecord,
    names: &[&str],
    path: &Path,
) -> Result<usize, ModelError> {
    headers
        .iter()
        .position(|h| names.iter().any(|n| h.trim() == *n))
        .ok_or_else(|| ModelError::MissingColumn {
            path: path.to_owned(),
            wanted: names[0].to_owned(),
            found: headers.iter().collect::<Vec<_>>().join(", "),
        })
}

/// Reads the training CSV at `path`, naming the line of any bad cell.
pub fn read_training_set(path: &Path) -> Result<(TrainingSet, Vec<u8>), ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::ReadData {
        path: path.to_owned(),
        source,
    })?;
    let csv_err = |e: csv::Error| ModelError::Csv {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let headers = reader.headers().map_err(csv_err)?.clone();
    let xi = find_column(&headers, &FEATURE_COLUMNS, path)?;
    let yi = find_column(&headers, &TARGET_COLUMNS, path)?;
    let mut set = TrainingSet {
        years: Vec::new(),
        salaries: Vec::new(),
        feature: headers[xi].to_owned(),
        target: headers[yi].to_owned(),
    };
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: usize| -> Result<f64, ModelError> {
            let text = record.get(i).unwrap_or("");
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| ModelError::NotANumber {
                    path: path.to_owned(),
                    line,
                    column: headers[i].to_owned(),
                    value: text.to_owned(),
                })
        };
        set.years.push(cell(xi)?);
        set.salaries.push(cell(yi)?);
    }
    if set.years.len() < 2 {
        return Err(ModelError::TooFewRows {
            path: path.to_owned(),
            rows: set.years.len(),
        });
    }
    if set.years.iter().all(|&x| x == set.years[0]) {
        return Err(ModelError::ConstantFeature {
            path: path.to_owned(),
            column: set.feature.clone(),
        });
    }
    Ok((set, bytes))
}

/// Fit quality of a line on a set of points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitMetrics {
    /// Coefficient of determination.
    pub r2: f64,
    /// Root of the mean squared residual.
    pub rmse: f64,
}

/// R² and RMSE of `intercept + slope × x` against `y`.
pub fn fit_metrics(x: &[f64], y: &[f64], slope: f64, intercept: f64) -> FitMetrics {
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let (ss_res, ss_tot) = x.iter().zip(y).fold((0.0, 0.0), |(res, tot), (&xi, &yi)| {
        let r = yi - (intercept + slope * xi);
        (res + r * r, tot + (yi - mean) * (yi - mean))
    });
    FitMetrics {
        r2: 1.0 - ss_res / ss_tot,
        rmse: (ss_res / n).sqrt(),
    }
}

/// Fits ordinary least squares with linfa-linear; returns (slope, intercept).
pub fn fit_line(x: &[f64], y: &[f64]) -> Result<(f64, f64), ModelError> {
    let records = Array2::from_shape_vec((x.len(), 1), x.to_vec())
        .map_err(|e| ModelError::Fit(e.to_string()))?;
    let targets = Array1::from_vec(y.to_vec());
    let dataset = Dataset::new(records, targets);
    let fitted = LinearRegression::new()
        .fit(&dataset)
        .map_err(|e| ModelError::Fit(e.to_string()))?;
    let slope = fitted.params()[0];
    let intercept = fitted.intercept();
    if !slope.is_finite() || !intercept.is_finite() {
        return Err(ModelError::Fit("the fitted line is not finite".into()));
    }
    Ok((slope, intercept))
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Trains on the CSV at `path` and returns the artifact (not yet written).
pub fn train(path: &Path) -> Result<Artifact, ModelError> {
    let (set, bytes) = read_training_set(path)?;
    train_set(&set, &hex(&Sha256::digest(&bytes)))
}

/// Trains on an in-memory set; `data_sha256` names where the rows came from.
pub fn train_set(set: &TrainingSet, data_sha256: &str) -> Result<Artifact, ModelError> {
    let (slope, intercept) = fit_line(&set.years, &set.salaries)?;
    let metrics = fit_metrics(&set.years, &set.salaries, slope, intercept);
    let min = set.years.iter().copied().fold(f64::INFINITY, f64::min);
    let max = set.years.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut id = Sha256::new();
    id.update(data_sha256.as_bytes());
    id.update(slope.to_le_bytes());
    id.update(intercept.to_le_bytes());
    let version = hex(&id.finalize()[..4]);
    Ok(Artifact {
        schema_version: SCHEMA_VERSION,
        version,
        feature: set.feature.clone(),
        target: set.target.clone(),
        slope,
        intercept,
        training_rows: set.years.len(),
        r2: metrics.r2,
        rmse: metrics.rmse,
        feature_range: FeatureRange { min, max },
        data_sha256: data_sha256.to_owned(),
        lineage: None,
    })
}

impl Artifact {
    /// Writes the artifact as pretty JSON, atomically (temp file, then rename), so a watcher never
    /// sees half a file.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let write_err = |source| ModelError::WriteArtifact {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let mut json =
            serde_json::to_string_pretty(self).map_err(|e| ModelError::Fit(e.to_string()))?;
        json.push('\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// Loads and validates an artifact.
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
        if header.schema_version != SCHEMA_VERSION {
            return Err(ModelError::SchemaVersion {
                path: path.to_owned(),
                found: header.schema_version,
            });
        }
        let artifact: Artifact =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if !artifact.slope.is_finite() || !artifact.intercept.is_finite() {
            return Err(corrupt("coefficient and intercept must be finite".into()));
        }
        // The version names the file it is kept in, in the models directory, and is written
        // into every prediction: letters, digits, '-', '_' and '.' only, not first.
        let version = &artifact.version;
        let plain = version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if version.is_empty()
            || version.len() > 64
            || !plain
            || !version.as_bytes()[0].is_ascii_alphanumeric()
        {
            return Err(corrupt(format!(
                "version {version:?} must be 1 to 64 letters, digits, '-', '_' or '.', starting \
                 with a letter or digit"
            )));
        }
        Ok(artifact)
    }
}

/// Notices a new artifact at a path: a change of modification time or size.
pub struct ModelWatch {
    path: std::path::PathBuf,
    seen: Option<(std::time::SystemTime, u64)>,
}

impl ModelWatch {
    /// Watches `path`, taking what is there now as already seen.
    pub fn new(path: std::path::PathBuf) -> Self {
        let seen = Self::stamp(&path);
        ModelWatch { path, seen }
    }

    fn stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// The new artifact, or why it cannot serve, if the file changed since the last call.
    pub fn changed(&mut self) -> Option<Result<Artifact, ModelError>> {
        let now = Self::stamp(&self.path);
        if now == self.seen || now.is_none() {
            return None;
        }
        self.seen = now;
        Some(Artifact::load(&self.path))
    }
}

/// Fits a challenger on `(years, label)` pairs; returns it, its lineage filled from `trained_on`,
/// `now_ms` and the `serving` model it challenges, with the serving model's RMSE on those pairs.
pub fn fit_challenger(
    pairs: &[(f64, f64)],
    serving: &Predictor,
    trained_on: String,
    now_ms: i64,
) -> Result<(Artifact, f64), ModelError> {
    let set = TrainingSet {
        years: pairs.iter().map(|p| p.0).collect(),
        salaries: pairs.iter().map(|p| p.1).collect(),
        feature: "YearsExperience".into(),
        target: "Salary".into(),
    };
    if set.years.len() < 2 || set.years.iter().all(|&y| y == set.years[0]) {
        return Err(ModelError::Fit(format!(
            "need labeled events with at least two different years, have {}",
            set.years.len()
        )));
    }
    let mut digest = Sha256::new();
    for (y, s) in pairs {
        digest.update(y.to_le_bytes());
        digest.update(s.to_le_bytes());
    }
    let source = hex(&digest.finalize());
    let mut artifact = train_set(&set, &source)?;
    artifact.lineage = Some(Lineage {
        trained_on,
        trained_at_ms: now_ms,
        challenged: serving.version.clone(),
    });
    let before = fit_metrics(&set.years, &set.salaries, serving.slope, serving.intercept);
    Ok((artifact, before.rmse))
}

/// The reference model (scikit-learn's fit of data/Salary_Data.csv) as the built-in artifact
/// serves it, for unit tests.
#[cfg(test)]
pub(crate) fn reference_predictor() -> Predictor {
    Predictor {
        slope: 9449.962321455077,
        intercept: 25792.20019866869,
        version: "6c25318e".into(),
        range: FeatureRange {
            min: 1.1,
            max: 10.5,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retrains_on_a_known_set() {
        let pairs: Vec<(f64, f64)> = (0..50)
            .map(|i| {
                let years = f64::from(i) / 5.0;
                (years, 1000.0 + 2000.0 * years)
            })
            .collect();
        let serving = reference_predictor();
        let (artifact, before) =
            fit_challenger(&pairs, &serving, "50 labeled events".into(), 7).unwrap();
        assert!((artifact.slope - 2000.0).abs() < 1e-6, "{}", artifact.slope);
        assert!(
            (artifact.intercept - 1000.0).abs() < 1e-6,
            "{}",
            artifact.intercept
        );
        assert!(artifact.rmse < 1e-6);
        assert_eq!(artifact.training_rows, 50);
        assert_eq!(
            artifact.lineage,
            Some(Lineage {
                trained_on: "50 labeled events".into(),
                trained_at_ms: 7,
                challenged: "6c25318e".into(),
            })
        );
        assert!(
            before > 30_000.0,
            "the old line is far off these labels: {before}"
        );
        assert!(fit_challenger(&pairs[..1], &serving, String::new(), 0).is_err());
        // The lineage travels with the file; artifacts without one still load.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        artifact.save(&path).unwrap();
        assert_eq!(Artifact::load(&path).unwrap(), artifact);
        let reference = Artifact::load(Path::new("assets/model.json")).unwrap();
        assert_eq!(reference.lineage, None);
        // A version names a file in the models directory: nothing that leaves it, or is empty.
        for bad in ["../../x", "/abs/x", "", ".hidden", "a b", "v\"2"] {
            let mut a = reference.clone();
            a.version = bad.into();
            a.save(&path).unwrap();
            let e = Artifact::load(&path).unwrap_err().to_string();
            assert!(e.contains("must be 1 to 64 letters"), "{bad:?}: {e}");
        }
    }
}
