//! Training: reading a CSV, choosing the target and feature columns, refusing what least squares
//! cannot fit (with the file, line and column), fitting, and describing the fit in an artifact;
//! also fitting a challenger on labeled events while serving.

use std::path::Path;

use ndarray::{Array1, Array2};
use sha2::{Digest, Sha256};

use super::artifact::{
    hex, version_id, Artifact, Feature, FeatureRange, Lineage, ModelKind, Target,
    DEMO_FEATURE_FIELD, DEMO_LABEL_FIELD,
};
use super::error::ModelError;
use super::linear::{first_collinear, fit_metrics, fit_ols};
use super::predictor::Predictor;

/// Column names the salary demo accepts for its feature (the original header first).
const DEMO_FEATURE_COLUMNS: [&str; 2] = ["YearsExperience", "years_experience"];
/// Column names the salary demo accepts for its target.
const DEMO_TARGET_COLUMNS: [&str; 2] = ["Salary", "salary"];

/// A column as the command line names it, `COL` or `COL=FIELD`: the CSV column, and the JSON field
/// events carry it in (by default, the column's own name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnChoice {
    /// The CSV column.
    pub column: String,
    /// The JSON field, if not the column's name.
    pub field: Option<String>,
}

impl std::str::FromStr for ColumnChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (column, field) = match text.split_once('=') {
            Some((c, f)) => (c.trim(), Some(f.trim())),
            None => (text.trim(), None),
        };
        if column.is_empty() || field == Some("") {
            return Err(format!("expected COL or COL=FIELD, got {text:?}"));
        }
        Ok(ColumnChoice {
            column: column.to_owned(),
            field: field.map(str::to_owned),
        })
    }
}

/// Which columns to fit. The default is the salary demo: `YearsExperience` (read from
/// `years_experience`) predicting `Salary` (labeled `salary`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrainSpec {
    /// The target; `None`: the demo's `Salary` (or `salary`), labeled `salary`.
    pub target: Option<ColumnChoice>,
    /// The features in order; empty: the demo's `YearsExperience` when the target is the demo's,
    /// else every numeric column but the target.
    pub features: Vec<ColumnChoice>,
}

/// A chosen column and the JSON field it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The CSV column.
    pub column: String,
    /// The JSON field.
    pub field: String,
}

/// Training rows read from a CSV, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSet {
    /// The features, in order.
    pub features: Vec<Column>,
    /// The target.
    pub target: Column,
    /// One row per example, one column per feature.
    pub x: Array2<f64>,
    /// The target of each row.
    pub y: Array1<f64>,
    /// Columns left out of the default features because none of their cells is a number.
    pub skipped: Vec<String>,
}

/// What `train` made: the artifact, and what it left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The artifact (not yet written).
    pub artifact: Artifact,
    /// Columns left out of the default features because none of their cells is a number.
    pub skipped: Vec<String>,
}

/// Trains on the CSV at `path` and returns the artifact (not yet written).
pub fn train(path: &Path, spec: &TrainSpec) -> Result<Trained, ModelError> {
    let (set, bytes) = read_training_set(path, spec)?;
    let artifact = train_set(&set, &hex(&Sha256::digest(&bytes)))?;
    Ok(Trained {
        artifact,
        skipped: set.skipped,
    })
}

fn number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Reads the training CSV at `path`, choosing columns by `spec`; refuses, naming the file and
/// where in it, what least squares cannot fit: a missing column, a cell that is not a number,
/// too few rows, a constant feature, collinear features. Returns the rows and the file's bytes.
pub fn read_training_set(
    path: &Path,
    spec: &TrainSpec,
) -> Result<(TrainingSet, Vec<u8>), ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::ReadData {
        path: path.to_owned(),
        source,
    })?;
    let table = CsvTable::parse(path, &bytes)?;
    let (target, features, skipped) = choose_columns(&table, spec)?;
    table.check_unique(features.iter().chain([&target]))?;
    let (x, y) = table.read_rows(&target, &features)?;
    let features: Vec<Column> = features.into_iter().map(|(_, c)| c).collect();
    check_fittable(path, &x, &features)?;
    let set = TrainingSet {
        features,
        target: target.1,
        x,
        y,
        skipped,
    };
    Ok((set, bytes))
}

/// A chosen column with its index in the header.
type Indexed = (usize, Column);

/// A training CSV parsed: its header and records, and its path to name in refusals.
struct CsvTable<'a> {
    /// Where the CSV was read from.
    path: &'a Path,
    /// The header row.
    headers: csv::StringRecord,
    /// Every other row, in file order.
    records: Vec<csv::StringRecord>,
}

impl<'a> CsvTable<'a> {
    /// Parses `bytes`, the file at `path`, trimming every cell.
    fn parse(path: &'a Path, bytes: &[u8]) -> Result<Self, ModelError> {
        let csv_err = |e: csv::Error| ModelError::Csv {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let headers = reader.headers().map_err(csv_err)?.clone();
        let records = reader
            .records()
            .collect::<Result<Vec<_>, _>>()
            .map_err(csv_err)?;
        Ok(CsvTable {
            path,
            headers,
            records,
        })
    }

    /// The first column named any of `names`; none: a refusal naming `names[0]` and the header.
    fn find(&self, names: &[&str]) -> Result<usize, ModelError> {
        self.headers
            .iter()
            .position(|h| names.contains(&h))
            .ok_or_else(|| ModelError::MissingColumn {
                path: self.path.to_owned(),
                wanted: names[0].to_owned(),
                found: self.headers.iter().collect::<Vec<_>>().join(", "),
            })
    }

    /// The column the command line chose, read from its field (by default, its own name).
    fn chosen(&self, choice: &ColumnChoice) -> Result<Indexed, ModelError> {
        let i = self.find(&[choice.column.as_str()])?;
        Ok((
            i,
            Column {
                column: self.headers[i].to_owned(),
                field: choice
                    .field
                    .clone()
                    .unwrap_or_else(|| self.headers[i].to_owned()),
            },
        ))
    }

    /// Column `i`, read from `field`.
    fn column(&self, i: usize, field: &str) -> Column {
        Column {
            column: self.headers[i].to_owned(),
            field: field.to_owned(),
        }
    }

    /// Whether any cell of column `i` is a number.
    fn numeric(&self, i: usize) -> bool {
        self.records
            .iter()
            .any(|r| r.get(i).and_then(number).is_some())
    }

    /// Refuses a chosen column whose name the header holds more than once.
    fn check_unique<'c>(
        &self,
        chosen: impl IntoIterator<Item = &'c Indexed>,
    ) -> Result<(), ModelError> {
        for (_, c) in chosen {
            if self.headers.iter().filter(|h| *h == c.column).count() > 1 {
                return Err(ModelError::DuplicateColumn {
                    path: self.path.to_owned(),
                    column: c.column.clone(),
                });
            }
        }
        Ok(())
    }

    /// Reads every row's features and target as numbers, naming the line and column of a cell
    /// that is not one; refuses fewer rows than least squares needs.
    fn read_rows(
        &self,
        target: &Indexed,
        features: &[Indexed],
    ) -> Result<(Array2<f64>, Array1<f64>), ModelError> {
        let path = self.path;
        let k = features.len();
        let mut x = Vec::with_capacity(self.records.len() * k);
        let mut y = Vec::with_capacity(self.records.len());
        for record in &self.records {
            let line = record.position().map_or(0, |p| p.line());
            let cell = |i: usize| -> Result<f64, ModelError> {
                let text = record.get(i).unwrap_or("");
                number(text).ok_or_else(|| ModelError::NotANumber {
                    path: path.to_owned(),
                    line,
                    column: self.headers[i].to_owned(),
                    value: text.to_owned(),
                })
            };
            for (i, _) in features {
                x.push(cell(*i)?);
            }
            y.push(cell(target.0)?);
        }
        let rows = y.len();
        if rows < k + 1 {
            return Err(ModelError::TooFewRows {
                path: path.to_owned(),
                rows,
                features: k,
            });
        }
        let x = Array2::from_shape_vec((rows, k), x).map_err(|e| ModelError::Fit(e.to_string()))?;
        Ok((x, Array1::from_vec(y)))
    }
}

/// The target and features `spec` chooses, and the columns left out of the default features
/// because none of their cells is a number.
fn choose_columns(
    table: &CsvTable,
    spec: &TrainSpec,
) -> Result<(Indexed, Vec<Indexed>, Vec<String>), ModelError> {
    let mut skipped = Vec::new();
    let (target, features) = match (&spec.target, spec.features.as_slice()) {
        // The salary demo, as `train` has always read it: feature first, then target.
        (None, []) => {
            let xi = table.find(&DEMO_FEATURE_COLUMNS)?;
            let yi = table.find(&DEMO_TARGET_COLUMNS)?;
            (
                (yi, table.column(yi, DEMO_LABEL_FIELD)),
                vec![(xi, table.column(xi, DEMO_FEATURE_FIELD))],
            )
        }
        (target, given) => {
            let target = match target {
                Some(choice) => table.chosen(choice)?,
                None => {
                    let yi = table.find(&DEMO_TARGET_COLUMNS)?;
                    (yi, table.column(yi, DEMO_LABEL_FIELD))
                }
            };
            let mut features = given_features(table, &target, given)?;
            if given.is_empty() {
                for (i, name) in table.headers.iter().enumerate() {
                    if i == target.0 {
                        continue;
                    }
                    if table.numeric(i) {
                        features.push((i, table.column(i, name)));
                    } else {
                        skipped.push(name.to_owned());
                    }
                }
            }
            if features.is_empty() {
                return Err(ModelError::NoFeatures {
                    path: table.path.to_owned(),
                    target: target.1.column,
                });
            }
            (target, features)
        }
    };
    Ok((target, features, skipped))
}

/// The features the command line names, in order; refuses the target and a feature given twice.
fn given_features(
    table: &CsvTable,
    target: &Indexed,
    given: &[ColumnChoice],
) -> Result<Vec<Indexed>, ModelError> {
    let mut features: Vec<Indexed> = Vec::new();
    for choice in given {
        let feature = table.chosen(choice)?;
        if feature.0 == target.0 {
            return Err(ModelError::BadSelection(format!(
                "{}: column {} is the target; it cannot also be a feature",
                table.path.display(),
                feature.1.column
            )));
        }
        if features.iter().any(|(i, _)| *i == feature.0) {
            return Err(ModelError::BadSelection(format!(
                "--feature {} is given twice",
                feature.1.column
            )));
        }
        features.push(feature);
    }
    Ok(features)
}

/// Refuses a constant feature and features that are a combination of others.
fn check_fittable(path: &Path, x: &Array2<f64>, features: &[Column]) -> Result<(), ModelError> {
    let (rows, k) = x.dim();
    for (j, feature) in features.iter().enumerate() {
        let first = x[[0, j]];
        if x.column(j).iter().all(|&v| v == first) {
            return Err(if k == 1 {
                ModelError::ConstantFeature {
                    path: path.to_owned(),
                    column: feature.column.clone(),
                }
            } else {
                ModelError::ConstantColumn {
                    path: path.to_owned(),
                    column: feature.column.clone(),
                    value: first,
                    rows,
                }
            });
        }
    }
    if let Some((j, combined)) = first_collinear(x) {
        return Err(ModelError::Collinear {
            path: path.to_owned(),
            column: features[j].column.clone(),
            combined: combined
                .into_iter()
                .map(|i| features[i].column.clone())
                .collect(),
        });
    }
    Ok(())
}

/// The features of `set` as an artifact records them (column, field, range, mean and population
/// standard deviation), and its target: what `train` and `import` both write.
pub(super) fn described(set: &TrainingSet) -> (Vec<Feature>, Target) {
    let n = set.y.len() as f64;
    let features = set
        .features
        .iter()
        .zip(set.x.columns())
        .map(|(c, values)| {
            let mean = values.sum() / n;
            let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            Feature {
                column: c.column.clone(),
                field: c.field.clone(),
                range: FeatureRange {
                    min: values.iter().copied().fold(f64::INFINITY, f64::min),
                    max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                },
                mean: Some(mean),
                std: Some(variance.sqrt()),
            }
        })
        .collect();
    let target = Target {
        column: set.target.column.clone(),
        field: set.target.field.clone(),
    };
    (features, target)
}

/// Fits ordinary least squares on an in-memory set; `data_sha256` names where the rows came from.
pub fn train_set(set: &TrainingSet, data_sha256: &str) -> Result<Artifact, ModelError> {
    let model = fit_ols(&set.x, &set.y)?;
    let y = set.y.to_vec();
    let metrics = fit_metrics(
        &y,
        set.x.rows().into_iter().map(|r| model.predict(&r.to_vec())),
    );
    let (features, target) = described(set);
    Ok(Artifact {
        version: version_id(data_sha256, &features, &target, &model),
        features,
        target,
        kind: ModelKind::Linear(model),
        training_rows: set.y.len(),
        r2: metrics.r2,
        rmse: metrics.rmse,
        data_sha256: data_sha256.to_owned(),
        lineage: None,
    })
}

/// Fits a challenger on labeled events, each its feature values (`width` a row, flattened in
/// `rows`) and its `labels` entry, over the `serving` model's features and target; returns it,
/// its lineage filled from `trained_on`, `now_ms` and the model it challenges, with the serving
/// model's RMSE on those events.
pub fn fit_challenger(
    rows: &[f64],
    labels: &[f64],
    serving: (&Artifact, &Predictor),
    trained_on: String,
    now_ms: i64,
) -> Result<(Artifact, f64), ModelError> {
    let (artifact, predictor) = serving;
    let width = artifact.features.len().max(1);
    let n = labels.len();
    if rows.len() != n * width {
        return Err(ModelError::Fit(format!(
            "{} feature values for {n} labeled events of {width} features",
            rows.len()
        )));
    }
    if width == 1 && (n < 2 || rows.iter().all(|&y| y == rows[0])) {
        return Err(ModelError::Fit(format!(
            "need labeled events with at least two different {}, have {n}",
            if artifact.is_salary_shaped() {
                "years"
            } else {
                artifact.features[0].field.as_str()
            }
        )));
    }
    if width > 1 && n <= width {
        return Err(ModelError::Fit(format!(
            "need more than {width} labeled events to fit {width} features, have {n}"
        )));
    }
    let mut digest = Sha256::new();
    for (row, label) in rows.chunks(width).zip(labels) {
        for x in row {
            digest.update(x.to_le_bytes());
        }
        digest.update(label.to_le_bytes());
    }
    let source = hex(&digest.finalize());
    let set = TrainingSet {
        features: artifact
            .features
            .iter()
            .map(|f| Column {
                column: f.column.clone(),
                field: f.field.clone(),
            })
            .collect(),
        target: Column {
            column: artifact.target.column.clone(),
            field: artifact.target.field.clone(),
        },
        x: Array2::from_shape_vec((n, width), rows.to_vec())
            .map_err(|e| ModelError::Fit(e.to_string()))?,
        y: Array1::from_vec(labels.to_vec()),
        skipped: Vec::new(),
    };
    let mut fitted = train_set(&set, &source)?;
    fitted.lineage = Some(Lineage {
        trained_on,
        trained_at_ms: now_ms,
        challenged: predictor.version.clone(),
    });
    let before = fit_metrics(labels, rows.chunks(width).map(|x| predictor.predict(x)));
    Ok((fitted, before.rmse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reference_predictor;

    #[test]
    fn retrains_on_a_known_set() {
        let years: Vec<f64> = (0..50).map(|i| f64::from(i) / 5.0).collect();
        let labels: Vec<f64> = years.iter().map(|y| 1000.0 + 2000.0 * y).collect();
        let built_in = Artifact::load(Path::new("assets/model.json")).unwrap();
        let serving = (&built_in, &reference_predictor());
        let (artifact, before) =
            fit_challenger(&years, &labels, serving, "50 labeled events".into(), 7).unwrap();
        assert!(
            (artifact.slope() - 2000.0).abs() < 1e-6,
            "{}",
            artifact.slope()
        );
        assert!(
            (artifact.intercept() - 1000.0).abs() < 1e-6,
            "{}",
            artifact.intercept()
        );
        assert!(artifact.rmse < 1e-6);
        assert_eq!(artifact.training_rows, 50);
        assert!(artifact.is_salary_shaped());
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
        assert_eq!(
            fit_challenger(&years[..1], &labels[..1], serving, String::new(), 0)
                .unwrap_err()
                .to_string(),
            "fitting failed: need labeled events with at least two different years, have 1"
        );
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

    #[test]
    fn columns_are_named_with_an_optional_field() {
        let parse = |s: &str| s.parse::<ColumnChoice>();
        assert_eq!(
            parse("bmi"),
            Ok(ColumnChoice {
                column: "bmi".into(),
                field: None
            })
        );
        assert_eq!(
            parse("YearsExperience=years_experience"),
            Ok(ColumnChoice {
                column: "YearsExperience".into(),
                field: Some("years_experience".into())
            })
        );
        for bad in ["", "=x", "bmi="] {
            assert_eq!(
                parse(bad),
                Err(format!("expected COL or COL=FIELD, got {bad:?}"))
            );
        }
    }
}
