//! ONNX models as artifacts: `import` wraps a model exported by skl2onnx, with the CSV it was
//! fitted on, into an artifact that names the ONNX file and its SHA-256; the artifact keeps the
//! file beside it, where [`Artifact::load`] reads and checks it and [`Artifact::save`] copies it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::artifact::{hex, onnx_version_id, Artifact, Feature, LoadedOnnx, ModelKind, OnnxModel};
use super::error::ModelError;
use super::linear::fit_metrics;
use super::onnx::{OnnxError, OnnxPredictor};
use super::train::{described, read_training_set, TrainSpec};

/// What `import` made: the artifact, and what it left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The artifact (not yet written: [`Artifact::save`] writes it and copies the ONNX file).
    pub artifact: Artifact,
    /// Columns left out of the default features because none of their cells is a number.
    pub skipped: Vec<String>,
}

/// Wraps the ONNX model at `onnx`, fitted on the CSV at `data`, into an artifact to be written
/// at `out`: the features `spec` chooses (as `train` chooses them) in the model's input order,
/// their ranges and moments, the model's R² and RMSE on every row of the data, and the ONNX
/// file named `<out's stem>.onnx`, the copy [`Artifact::save`] puts beside the artifact.
///
/// Refuses, in one line, a CSV `train` would refuse, and a model nothing here serves: an op
/// nothing runs, an input width other than the features chosen, more than one value a row.
pub fn import(
    onnx: &Path,
    data: &Path,
    spec: &TrainSpec,
    out: &Path,
) -> Result<Imported, ModelError> {
    let (set, data_bytes) = read_training_set(data, spec)?;
    let bytes = std::fs::read(onnx).map_err(|source| refused(onnx, read_error(onnx, source)))?;
    let predictor = OnnxPredictor::from_bytes(&bytes, onnx).map_err(|e| refused(onnx, e))?;
    let columns: Vec<&str> = set.features.iter().map(|c| c.column.as_str()).collect();
    let chosen = if spec.features.is_empty() {
        format!(
            "{} has {} numeric columns besides {}",
            data.display(),
            columns.len(),
            set.target.column
        )
    } else {
        format!("--feature names {}", columns.len())
    };
    check_width(onnx, &predictor, &columns, &chosen)?;

    let n = set.y.len();
    let rows: Vec<f32> = set.x.iter().map(|&v| v as f32).collect();
    let predicted = predictor
        .predict_batch(&rows, n)
        .map_err(|e| refused(onnx, e))?;
    if let Some(i) = predicted.iter().position(|p| !p.is_finite()) {
        let reason = format!("the prediction for data row {} is {}", i + 1, predicted[i]);
        return Err(refused(onnx, OnnxError::Run { rows: n, reason }));
    }
    let metrics = fit_metrics(&set.y.to_vec(), predicted);

    let (features, target) = described(&set);
    let file = match out.file_stem().and_then(|s| s.to_str()) {
        Some(stem) if !stem.is_empty() => format!("{stem}.onnx"),
        _ => {
            return Err(ModelError::BadSelection(format!(
                "--out {}: the artifact needs a file name, which its ONNX file is named after",
                out.display()
            )))
        }
    };
    let data_sha256 = hex(&Sha256::digest(&data_bytes));
    let model = OnnxModel {
        file,
        sha256: predictor.sha256().to_owned(),
        input: predictor.input_name().to_owned(),
        output: predictor.output_name().to_owned(),
        loaded: Some(LoadedOnnx {
            predictor: Arc::new(predictor),
            from: onnx.to_owned(),
        }),
    };
    let artifact = Artifact {
        version: onnx_version_id(&data_sha256, &model.sha256, &features, &target),
        features,
        target,
        kind: ModelKind::Onnx(model),
        training_rows: n,
        r2: metrics.r2,
        rmse: metrics.rmse,
        data_sha256,
        lineage: None,
    };
    Ok(Imported {
        artifact,
        skipped: set.skipped,
    })
}

/// Reads the ONNX file `model` names beside the artifact at `artifact`; refuses it if its
/// SHA-256 is not the one recorded, if nothing here can serve it, if its width is not the
/// number of `features`, or if its input and output are not the ones recorded.
pub(super) fn load_beside(
    artifact: &Path,
    model: &OnnxModel,
    features: &[Feature],
) -> Result<LoadedOnnx, ModelError> {
    let file = beside(artifact, &model.file);
    let bytes = std::fs::read(&file).map_err(|source| refused(&file, read_error(&file, source)))?;
    let found = hex(&Sha256::digest(&bytes));
    if !found.eq_ignore_ascii_case(&model.sha256) {
        return Err(ModelError::OnnxChanged {
            path: file,
            artifact: artifact.to_owned(),
            expected: model.sha256.clone(),
            found,
        });
    }
    let predictor = OnnxPredictor::from_bytes(&bytes, &file).map_err(|e| refused(&file, e))?;
    let fields: Vec<&str> = features.iter().map(|f| f.field.as_str()).collect();
    let named = format!(
        "model artifact {} names {}",
        artifact.display(),
        fields.len()
    );
    check_width(&file, &predictor, &fields, &named)?;
    if (predictor.input_name(), predictor.output_name()) != (&model.input, &model.output) {
        return Err(ModelError::CorruptArtifact {
            path: artifact.to_owned(),
            message: format!(
                "it names input {} and output {}, but {}'s are {} and {}",
                model.input,
                model.output,
                file.display(),
                predictor.input_name(),
                predictor.output_name()
            ),
        });
    }
    Ok(LoadedOnnx {
        predictor: Arc::new(predictor),
        from: file,
    })
}

/// Puts the ONNX file of `model` beside the artifact about to be written at `artifact`, unless
/// a file of the same SHA-256 is there already: copied (atomically) from where its graph was
/// loaded, after checking that file is still the one loaded. A model never loaded is left.
pub(super) fn copy_beside(artifact: &Path, model: &OnnxModel) -> Result<(), ModelError> {
    let Some(loaded) = &model.loaded else {
        return Ok(());
    };
    let to = beside(artifact, &model.file);
    let there = std::fs::read(&to).ok();
    if there.is_some_and(|b| hex(&Sha256::digest(&b)).eq_ignore_ascii_case(&model.sha256)) {
        return Ok(());
    }
    let from = &loaded.from;
    let bytes = std::fs::read(from).map_err(|source| refused(from, read_error(from, source)))?;
    let found = hex(&Sha256::digest(&bytes));
    if !found.eq_ignore_ascii_case(&model.sha256) {
        return Err(ModelError::OnnxChanged {
            path: from.clone(),
            artifact: artifact.to_owned(),
            expected: model.sha256.clone(),
            found,
        });
    }
    let write_err = |source| ModelError::WriteArtifact {
        path: to.clone(),
        source,
    };
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let tmp = to.with_extension("onnx.tmp");
    std::fs::write(&tmp, &bytes).map_err(write_err)?;
    std::fs::rename(&tmp, &to).map_err(write_err)
}

/// `file` in the artifact's directory.
fn beside(artifact: &Path, file: &str) -> PathBuf {
    artifact
        .parent()
        .map_or_else(|| PathBuf::from(file), |dir| dir.join(file))
}

/// Refuses a model whose width is not the number of `features`, named and counted in `given`.
fn check_width(
    path: &Path,
    predictor: &OnnxPredictor,
    features: &[&str],
    given: &str,
) -> Result<(), ModelError> {
    if predictor.width() == features.len() {
        return Ok(());
    }
    Err(ModelError::OnnxWidth {
        path: path.to_owned(),
        width: predictor.width(),
        features: format!("{given} ({})", features.join(", ")),
    })
}

fn read_error(path: &Path, source: std::io::Error) -> OnnxError {
    OnnxError::Read {
        path: path.display().to_string(),
        source,
    }
}

fn refused(path: &Path, source: OnnxError) -> ModelError {
    ModelError::Onnx {
        path: path.to_owned(),
        source,
    }
}
