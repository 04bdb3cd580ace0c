//! ONNX models exported from scikit-learn, run by `model::onnx` against onnxruntime's own
//! predictions. The models and the references are in tests/onnx/, made by scripts/onnx-models.

use std::path::{Path, PathBuf};
use std::time::Instant;

use salary_stream::model::onnx::{OnnxError, OnnxPredictor};
use serde_json::Value;

fn model_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/onnx")
        .join(name)
}

fn load(name: &str) -> OnnxPredictor {
    match OnnxPredictor::load(&model_path(name)) {
        Ok(model) => model,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn refusal(name: &str) -> String {
    match OnnxPredictor::load(&model_path(name)) {
        Ok(model) => panic!("{name} loaded: {model:?}"),
        Err(e) => e.to_string(),
    }
}

/// What scripts/onnx-models recorded for a model: its rows, onnxruntime's predictions, the hash.
struct Reference {
    rows: Vec<Vec<f64>>,
    predictions: Vec<f64>,
    sha256: String,
}

fn reference(name: &str) -> Reference {
    let path = model_path(&format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("reference JSON");
    let json: Value = serde_json::from_str(&text).expect("reference JSON parses");
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    };
    Reference {
        rows: json["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(numbers)
            .collect(),
        predictions: numbers(&json["predictions"]),
        sha256: json["sha256"].as_str().expect("sha256").to_string(),
    }
}

/// Runs the reference rows through the model in one batch; returns the largest relative error
/// against onnxruntime, after asserting each is within 1e-4.
fn matches_onnxruntime(name: &str) -> f64 {
    let model = load(&format!("{name}.onnx"));
    let reference = reference(name);
    assert_eq!(
        model.sha256(),
        reference.sha256,
        "{name}: the file the reference was made from"
    );
    assert_eq!(model.width(), 10);
    assert_eq!(reference.rows.len(), 50);
    let rows: Vec<f32> = reference.rows.iter().flatten().map(|&v| v as f32).collect();
    let predicted = model
        .predict_batch(&rows, reference.rows.len())
        .expect("a batch");
    assert_eq!(predicted.len(), reference.predictions.len());
    let mut worst: f64 = 0.0;
    for (i, (&ours, &theirs)) in predicted.iter().zip(&reference.predictions).enumerate() {
        let relative = (ours - theirs).abs() / theirs.abs().max(f64::MIN_POSITIVE);
        assert!(
            relative <= 1e-4,
            "{name} row {i}: {ours} against onnxruntime's {theirs}"
        );
        worst = worst.max(relative);
    }
    println!("{name}: largest relative error against onnxruntime {worst:.3e}");
    worst
}

#[test]
fn a_linear_regressor_predicts_as_onnxruntime_does() {
    matches_onnxruntime("linear");
    assert_eq!(load("linear.onnx").op_types(), ["LinearRegressor"]);
}

#[test]
fn a_linear_regression_exported_as_matmul_and_add_predicts_as_onnxruntime_does() {
    matches_onnxruntime("linear_matmul");
    assert_eq!(
        load("linear_matmul.onnx").op_types(),
        ["MatMul", "Add", "Reshape"]
    );
}

#[test]
fn an_mlp_behind_a_standard_scaler_predicts_as_onnxruntime_does() {
    matches_onnxruntime("mlp");
    let model = load("mlp.onnx");
    assert_eq!(
        model.op_types(),
        ["Scaler", "Cast", "MatMul", "Add", "Relu", "Reshape"]
    );
    assert_eq!(
        (model.input_name(), model.output_name()),
        ("input", "variable")
    );
}

#[test]
fn gradient_boosted_trees_predict_as_onnxruntime_does() {
    matches_onnxruntime("gbr");
    assert_eq!(load("gbr.onnx").op_types(), ["TreeEnsembleRegressor"]);
}

#[test]
fn a_random_forest_predicts_as_onnxruntime_does() {
    matches_onnxruntime("forest");
    assert_eq!(load("forest.onnx").op_types(), ["TreeEnsembleRegressor"]);
}

#[test]
fn a_row_predicts_the_same_alone_as_in_a_batch() {
    for name in ["linear", "mlp", "gbr", "forest"] {
        let model = load(&format!("{name}.onnx"));
        let rows: Vec<f32> = reference(name)
            .rows
            .iter()
            .flatten()
            .map(|&v| v as f32)
            .collect();
        let batch = model.predict_batch(&rows, 50).expect("batch");
        for (i, row) in rows.chunks(10).enumerate() {
            let alone = model.predict_batch(row, 1).expect("row");
            // tract may pick another matrix kernel for one row than for fifty, so the sums of an
            // MLP may round differently; trees and the linear models agree to the bit here.
            let relative = (alone[0] - batch[i]).abs() / batch[i].abs();
            assert!(
                relative <= 1e-6,
                "{name} row {i}: {} alone, {} in a batch",
                alone[0],
                batch[i]
            );
        }
    }
}

#[test]
fn a_model_with_an_op_nothing_here_serves_is_refused_at_load_naming_the_op() {
    assert_eq!(
        refusal("svr.onnx"),
        "unsupported ONNX op SVMRegressor (domain ai.onnx.ml)"
    );
}

#[test]
fn a_model_with_three_values_a_row_is_refused_at_load_naming_the_shape() {
    assert_eq!(
        refusal("three_targets.onnx"),
        "output variable has shape [N,3]: a regression model has one value a row"
    );
}

#[test]
fn a_file_that_is_not_onnx_or_not_there_is_refused_in_one_line() {
    let missing = refusal("no-such-model.onnx");
    assert!(missing.starts_with("cannot read ONNX model "), "{missing}");
    assert!(
        missing.ends_with("no-such-model.onnx: No such file or directory (os error 2)"),
        "{missing}"
    );
    let not_onnx = refusal("gbr.json");
    assert!(
        not_onnx.contains("gbr.json is not an ONNX model: "),
        "{not_onnx}"
    );
    assert!(!not_onnx.contains('\n'), "{not_onnx}");
}

#[test]
fn a_batch_of_the_wrong_width_is_an_error_not_a_prediction() {
    let model = load("gbr.onnx");
    let err = model
        .predict_batch(&[0.0; 9], 1)
        .expect_err("9 values for a row of 10");
    assert!(matches!(
        err,
        OnnxError::Width {
            values: 9,
            rows: 1,
            width: 10
        }
    ));
    assert_eq!(
        err.to_string(),
        "wrong input width: 9 values for 1 rows; the model takes 10 features a row"
    );
    assert!(model.predict_batch(&[0.0; 30], 2).is_err());
    assert_eq!(
        model.predict_batch(&[], 0).expect("no rows"),
        Vec::<f64>::new()
    );
}

#[test]
fn a_predictor_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<OnnxPredictor>();
}

/// Not a timed test: prints records/s of `predict_batch` on 10,000 rows, for the report and
/// until the pipeline bench measures ONNX models. `cargo test --release --test onnx -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn measure_predict_batch_records_per_second() {
    for name in ["linear", "mlp", "gbr", "forest"] {
        let model = load(&format!("{name}.onnx"));
        let base: Vec<f32> = reference(name)
            .rows
            .iter()
            .flatten()
            .map(|&v| v as f32)
            .collect();
        let rows: Vec<f32> = base.iter().cycle().take(10_000 * 10).copied().collect();
        for batch in [10_000, 500, 1] {
            let started = Instant::now();
            let mut done = 0;
            while started.elapsed().as_secs_f64() < 1.0 {
                for chunk in rows.chunks(batch * 10) {
                    std::hint::black_box(
                        model.predict_batch(chunk, chunk.len() / 10).expect("batch"),
                    );
                }
                done += 10_000;
            }
            let rate = done as f64 / started.elapsed().as_secs_f64();
            println!("{name}: batches of {batch}: {rate:.0} records/s");
        }
    }
}
