//! ONNX models exported from scikit-learn, run by `model::onnx` against onnxruntime's own
//! predictions, and imported as artifacts that `predict` serves through the real binary. The
//! models and the references are in tests/onnx/, made by scripts/onnx-models.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use salary_stream::model::onnx::{OnnxError, OnnxPredictor};
use salary_stream::model::{self, Artifact, ModelKind, Predictor};
use serde_json::Value;
use sha2::Digest;

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

/// Not a timed test: prints records/s of `predict_batch` on 10,000 rows, the model alone (the
/// pipeline bench measures the models end to end). `cargo test --release --test onnx --
/// --ignored --nocapture`.
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

/// Runs the binary in `dir` with `stdin`; its exit status, stdout and stderr.
fn run_in(dir: &Path, args: &[&str], stdin: impl AsRef<[u8]>) -> (i32, String, String) {
    let mut child = Command::new(common::bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run binary");
    let mut input = child.stdin.take().expect("stdin");
    // The binary may stop reading early (an error); what it did not read is no failure here.
    let _ = input.write_all(stdin.as_ref());
    drop(input);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the binary from the repository's root.
fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    run_in(&common::root(), args, stdin)
}

/// Runs the binary from the repository's root with the scorer's closing debug line on stderr:
/// `scored together batches=B predictions=P`, the poll batches scored together (one model run
/// each) and the predictions handled from them.
fn run_logging_batches(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::bin())
        .args(args)
        .current_dir(common::root())
        .env(
            "SALARY_STREAM_LOG",
            "warn,librdkafka=off,rdkafka=off,salary_stream::serving::scorer_report=debug",
        )
        .stdin(Stdio::null())
        .output()
        .expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `(batches, predictions)` of the scorer's `scored together` line in `stderr`.
fn scored_together(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr.lines().find(|l| l.contains("scored together"))?;
    let value = |name: &str| -> Option<u64> {
        let from = line.find(&format!("{name}="))? + name.len() + 1;
        let digits: String = line[from..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some((value("batches")?, value("predictions")?))
}

/// `import tests/onnx/NAME.onnx` of data/diabetes.csv predicting progression, into `out`.
fn import(name: &str, out: &Path) -> (i32, String, String) {
    let model = format!("tests/onnx/{name}.onnx");
    let out = out.to_str().expect("a UTF-8 path");
    let args = [
        "import",
        &model,
        "--data",
        "data/diabetes.csv",
        "--target",
        "progression",
        "--out",
        out,
    ];
    run(&args, "")
}

/// tests/onnx's NAME.onnx imported on data/diabetes.csv into a fresh directory, as NAME.json;
/// the directory (removed when dropped) and the artifact's path.
fn imported(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(format!("{name}.json"));
    let (code, _, stderr) = import(name, &out);
    assert_eq!(code, 0, "import {name}: {stderr}");
    (dir, out)
}

/// The first `n` rows of data/diabetes.csv as JSON events of their ten features (no label, no
/// id), each number as serde_json writes the `f64` it reads as.
fn events(n: usize) -> String {
    let events: Vec<String> = common::diabetes::events(n)
        .into_iter()
        .map(|mut event| {
            event.remove("id");
            event.remove("progression");
            Value::Object(event).to_string()
        })
        .collect();
    events.join("\n")
}

/// Within 1e-4 of onnxruntime's, relative.
fn assert_as_onnxruntime(name: &str, ours: &[f64], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len(), "{name}");
    for (i, (&ours, &theirs)) in ours.iter().zip(theirs).enumerate() {
        let relative = (ours - theirs).abs() / theirs.abs();
        assert!(
            relative <= 1e-4,
            "{name} row {i}: {ours} against onnxruntime's {theirs}"
        );
    }
}

const IMPORTED: [(&str, &str, &str, &str); 4] = [
    // name, version, r2, rmse, as `import` prints them
    ("linear", "a9a776a8", "0.517748", "53.476127"),
    ("mlp", "40a8178a", "0.631104", "46.770839"),
    ("gbr", "9e79d908", "0.728459", "40.127412"),
    ("forest", "41d8ea5d", "0.767204", "37.154431"),
];

#[test]
fn imported_models_predict_from_json_events_as_onnxruntime_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, version, r2, rmse) in IMPORTED {
        let out = dir.path().join(format!("{name}.json"));
        let (code, stdout, stderr) = import(name, &out);
        assert_eq!((code, stderr.as_str()), (0, ""), "{name}");
        let ops = load(&format!("{name}.onnx")).op_types().join(", ");
        let mut want = vec![
            format!("model     {version}"),
            "rows      442".into(),
            "target    progression".into(),
            format!("onnx      {name}.onnx ({ops})"),
            "feature   range".into(),
            "age       19 to 79".into(),
            "sex       1 to 2".into(),
            "bmi       18 to 42.2".into(),
            "bp        62 to 133".into(),
            "s1        97 to 301".into(),
            "s2        41.6 to 242.4".into(),
            "s3        22 to 99".into(),
            "s4        2 to 9.09".into(),
            "s5        3.2581 to 6.107".into(),
            "s6        58 to 124".into(),
            format!("r2        {r2}"),
            format!("rmse      {rmse}"),
        ];
        want.push(format!("wrote {}", out.display()));
        assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "{name}");
        // The ONNX file is copied beside the artifact, under the artifact's name.
        let copy = std::fs::read(dir.path().join(format!("{name}.onnx"))).expect("the copy");
        assert_eq!(
            copy,
            std::fs::read(model_path(&format!("{name}.onnx"))).unwrap()
        );

        let (code, stdout, stderr) =
            run(&["predict", "--model", out.to_str().unwrap()], &events(50));
        assert_eq!((code, stderr.as_str()), (0, ""), "{name}");
        let predicted: Vec<f64> = stdout
            .lines()
            .map(|l| l.parse().expect("a number"))
            .collect();
        assert_as_onnxruntime(name, &predicted, &reference(name).predictions);
    }
}

#[test]
fn an_imported_artifact_records_the_model_and_the_data_and_serves_once_loaded() {
    let (dir, out) = imported("gbr");
    let a = Artifact::load(&out).expect("loads");
    let ModelKind::Onnx(m) = &a.kind else {
        panic!("{:?}", a.kind)
    };
    assert_eq!(
        (m.file.as_str(), m.input.as_str(), m.output.as_str()),
        ("gbr.onnx", "input", "variable")
    );
    assert_eq!(m.sha256, reference("gbr").sha256);
    assert_eq!(
        (
            a.version.as_str(),
            a.training_rows,
            a.target.column.as_str()
        ),
        ("9e79d908", 442, "progression")
    );
    // The features, their ranges and moments, and the data's hash are what `train` records.
    let trained = common::diabetes::fitted();
    assert_eq!(a.features, trained.features);
    assert_eq!(a.data_sha256, trained.data_sha256);
    assert_eq!((a.r2, a.rmse), (0.7284586032586043, 40.127412418728824));

    // Served by every command: the predictor runs the graph, record by record.
    a.check_servable("--model gbr.json").expect("servable");
    let predictor = Predictor::from(&a);
    assert_eq!(
        predictor.formula(),
        "progression ~ onnx TreeEnsembleRegressor"
    );
    let rows = reference("gbr").rows;
    let one_by_one: Vec<f64> = rows.iter().map(|r| predictor.predict(r)).collect();
    assert_as_onnxruntime("gbr", &one_by_one, &reference("gbr").predictions);
    assert_eq!(a.predict_row(&rows[0]), one_by_one[0]);
    assert!(predictor.predict(&rows[0][..9]).is_nan(), "a row too short");

    // Read from text, not from its file, the artifact has no graph: refused, not NaN at serving.
    let text = std::fs::read_to_string(&out).unwrap();
    let unloaded: Artifact = serde_json::from_str(&text).expect("parses");
    assert_eq!(unloaded, a, "the graph is no part of equality");
    assert_eq!(
        unloaded
            .check_servable("--model gbr.json")
            .unwrap_err()
            .to_string(),
        "--model gbr.json: its ONNX model (gbr.onnx) is not loaded: an ONNX artifact serves once \
         read from its file, with the model beside it"
    );
    assert!(Predictor::from(&unloaded).predict(&rows[0]).is_nan());

    // Saved elsewhere, the artifact takes its model along.
    let elsewhere = dir.path().join("kept/9e79d908.json");
    a.save(&elsewhere).expect("saves");
    assert!(dir.path().join("kept/gbr.onnx").exists());
    let again = Artifact::load(&elsewhere).expect("loads from its new place");
    assert_eq!(again, a);
    assert_eq!(Predictor::from(&again).predict(&rows[0]), one_by_one[0]);
}

#[test]
fn the_linear_model_imported_fits_as_well_as_least_squares_on_the_same_data() {
    let (_dir, out) = imported("linear");
    let imported = Artifact::load(&out).expect("loads");
    let ols = common::diabetes::fitted();
    // The same least squares, in float32 rather than f64.
    assert!(
        (imported.r2 - ols.r2).abs() < 1e-4,
        "{} against {}",
        imported.r2,
        ols.r2
    );
    assert!((imported.rmse - ols.rmse).abs() / ols.rmse < 1e-4);
}

#[test]
fn a_model_nothing_here_serves_is_refused_at_import_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "svr",
            "salary-stream: tests/onnx/svr.onnx: unsupported ONNX op SVMRegressor (domain \
             ai.onnx.ml)\n",
        ),
        (
            "three_targets",
            "salary-stream: tests/onnx/three_targets.onnx: output variable has shape [N,3]: a \
             regression model has one value a row\n",
        ),
    ];
    for (name, want) in cases {
        let out = dir.path().join(format!("{name}.json"));
        let (code, stdout, stderr) = import(name, &out);
        assert_eq!((code, stdout.as_str(), stderr.as_str()), (1, "", want));
        assert!(!out.exists() && !dir.path().join(format!("{name}.onnx")).exists());
    }
    let out = dir.path().join("narrow.json");
    let (code, _, stderr) = run(
        &[
            "import",
            "tests/onnx/gbr.onnx",
            "--data",
            "data/diabetes.csv",
            "--target",
            "progression",
            "--feature",
            "age",
            "--feature",
            "bmi=body_mass",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(
        (code, stderr.as_str()),
        (
            1,
            "salary-stream: tests/onnx/gbr.onnx: the model takes 10 features a row; --feature \
             names 2 (age, bmi)\n"
        )
    );
    let narrow = dir.path().join("narrow.csv");
    std::fs::write(
        &narrow,
        "age,bmi,progression\n59,32.1,151\n48,21.6,75\n72,30.5,141\n",
    )
    .unwrap();
    let (code, _, stderr) = run(
        &[
            "import",
            "tests/onnx/gbr.onnx",
            "--data",
            narrow.to_str().unwrap(),
            "--target",
            "progression",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(
        (code, stderr),
        (
            1,
            format!(
                "salary-stream: tests/onnx/gbr.onnx: the model takes 10 features a row; {} has 2 \
                 numeric columns besides progression (age, bmi)\n",
                narrow.display()
            )
        )
    );
    assert!(!out.exists());
}

#[test]
fn an_onnx_file_changed_since_its_import_is_refused_at_load() {
    let (dir, out) = imported("mlp");
    let onnx = dir.path().join("mlp.onnx");
    let mut bytes = std::fs::read(&onnx).unwrap();
    bytes.push(0);
    std::fs::write(&onnx, &bytes).unwrap();
    let (code, stdout, stderr) = run(&["predict", "--model", out.to_str().unwrap()], &events(1));
    assert_eq!(
        (code, stdout.as_str(), stderr),
        (
            1,
            "",
            format!(
                "salary-stream: ONNX model {} has SHA-256 \
                 2a3f645c11453cd53d27eede1480e1d308d4dcb5e33f42110942bc1eee5c7401; model artifact \
                 {} names {}: the file is not the one imported\n",
                onnx.display(),
                out.display(),
                reference("mlp").sha256
            )
        )
    );
    std::fs::remove_file(&onnx).unwrap();
    assert_eq!(
        Artifact::load(&out).unwrap_err().to_string(),
        format!(
            "cannot read ONNX model {}: No such file or directory (os error 2)",
            onnx.display()
        )
    );
}

#[test]
fn every_command_refuses_an_onnx_model_changed_since_its_import_at_start() {
    let (dir, out) = imported("gbr");
    let onnx = dir.path().join("gbr.onnx");
    let mut bytes = std::fs::read(&onnx).unwrap();
    bytes.push(0);
    std::fs::write(&onnx, &bytes).unwrap();
    let model = out.to_str().unwrap();
    let refusal = |context: &str| {
        format!(
            "salary-stream: {context}ONNX model {} has SHA-256 {}; model artifact {model} names \
             {}: the file is not the one imported\n",
            onnx.display(),
            model::hex(&sha2::Sha256::digest(&bytes)),
            reference("gbr").sha256
        )
    };
    // A broker nobody listens on: the refusal comes before any connection.
    let nowhere = "127.0.0.1:9";
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["score", "--model", model], refusal("")),
        (
            vec!["produce", "--model", model, "--count", "1"],
            refusal(""),
        ),
        (vec!["dash", "--model", model], refusal("")),
        (
            vec!["score", "--challenger", model],
            refusal("--challenger: "),
        ),
        (
            vec!["backtest", "-b", nowhere, "--model", model],
            refusal(""),
        ),
        (
            vec!["backtest", "-b", nowhere, "--candidate", model],
            refusal("--candidate 1: "),
        ),
    ];
    for (args, want) in cases {
        let (code, stdout, stderr) = run(&args, "");
        assert_eq!((code, stdout.as_str(), stderr), (1, "", want), "{args:?}");
    }
}

#[test]
fn import_writes_beside_the_models_folder_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = common::root();
    let model = root.join("tests/onnx/forest.onnx");
    let data = root.join("data/diabetes.csv");
    let (code, stdout, stderr) = run_in(
        dir.path(),
        &[
            "import",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--target",
            "progression=progress",
            "--feature",
            "age",
            "--feature",
            "sex",
            "--feature",
            "bmi=body_mass",
            "--feature",
            "bp",
            "--feature",
            "s1",
            "--feature",
            "s2",
            "--feature",
            "s3",
            "--feature",
            "s4",
            "--feature",
            "s5",
            "--feature",
            "s6",
        ],
        "",
    );
    assert_eq!((code, stderr.as_str()), (0, ""));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[2], "target    progression (label field progress)");
    assert_eq!(lines[4], "feature   range              field");
    assert_eq!(lines[7], "bmi       18 to 42.2         body_mass");
    assert_eq!(lines.last(), Some(&"wrote models/forest.json"));
    let a = Artifact::load(&dir.path().join("models/forest.json")).expect("loads");
    assert!(dir.path().join("models/forest.onnx").exists());
    assert_eq!(a.features[2].field, "body_mass");
    assert_ne!(a.version, "41d8ea5d", "other fields, another version");
    let (code, stdout, _) = run_in(
        dir.path(),
        &["predict", "--model", "models/forest.json"],
        events(1).replace("\"bmi\"", "\"body_mass\""),
    );
    assert_eq!(code, 0);
    let first: f64 = stdout.trim().parse().expect("a number");
    assert_as_onnxruntime("forest", &[first], &reference("forest").predictions[..1]);
}

/// Not a timed test: prints predictions/s of per-record ONNX predict through the serving
/// `Predictor` (a stack row, `predict_one`), against a batch of one from a row on the heap (as
/// before `predict_one`). `cargo test --release --test onnx -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_per_record_predictions_per_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["linear", "mlp", "gbr", "forest"] {
        let out = dir.path().join(format!("{name}.json"));
        let imported = model::import(
            &model_path(&format!("{name}.onnx")),
            &common::diabetes::csv(),
            &common::diabetes::spec(),
            &out,
        )
        .expect("imports");
        imported.artifact.save(&out).expect("saves");
        let predictor = Predictor::from(&Artifact::load(&out).expect("loads"));
        let graph = load(&format!("{name}.onnx"));
        let rows = reference(name).rows;
        let rate = |predict: &dyn Fn(&[f64]) -> f64| {
            let started = Instant::now();
            let mut done = 0u64;
            while started.elapsed().as_secs_f64() < 2.0 {
                for row in &rows {
                    std::hint::black_box(predict(std::hint::black_box(row)));
                }
                done += rows.len() as u64;
            }
            done as f64 / started.elapsed().as_secs_f64()
        };
        let heap = rate(&|row: &[f64]| {
            let row: Vec<f32> = row.iter().map(|&x| x as f32).collect();
            graph.predict_batch(&row, 1).map_or(f64::NAN, |p| p[0])
        });
        let stack = rate(&|row: &[f64]| predictor.predict(row));
        println!("{name}: per record: {stack:.0} predictions/s (a batch of one from the heap: {heap:.0})");
    }
}

/// `tests/onnx/NAME.onnx` imported on the diabetes data into `dir`, loaded as the scorer serves it.
fn served(name: &str, dir: &Path) -> Predictor {
    let out = dir.join(format!("{name}.json"));
    let imported = model::import(
        &model_path(&format!("{name}.onnx")),
        &common::diabetes::csv(),
        &common::diabetes::spec(),
        &out,
    )
    .expect("imports");
    imported.artifact.save(&out).expect("saves");
    Predictor::from(&Artifact::load(&out).expect("loads"))
}

/// What the scorer hands an ONNX model for a poll batch: the rows of its records that decoded,
/// in one `[N, F]` input and one run. Each prediction is the one a run of that row alone gives,
/// to the bit: for a batch of one, for batches up to the scorer's 256 records, for a batch that
/// had bad records taken out, and for a row of the wrong width among them (NaN for it alone).
#[test]
fn a_batch_of_rows_predicts_each_row_to_the_bit_as_a_run_of_it_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["linear", "linear_matmul", "mlp", "gbr", "forest"] {
        let predictor = served(name, dir.path());
        assert!(predictor.runs_batches(), "{name}");
        let base = reference(name).rows;
        let rows: Vec<Vec<f64>> = base.iter().cycle().take(256).cloned().collect();
        let alone: Vec<u64> = rows
            .iter()
            .map(|r| predictor.predict(r).to_bits())
            .collect();
        assert!(
            alone.iter().all(|&p| f64::from_bits(p).is_finite()),
            "{name}"
        );
        for n in [1, 2, 3, 7, 16, 17, 50, 255, 256] {
            let batch: Vec<&[f64]> = rows[..n].iter().map(Vec::as_slice).collect();
            let together: Vec<u64> = predictor
                .predict_rows(&batch)
                .into_iter()
                .map(f64::to_bits)
                .collect();
            assert_eq!(together, alone[..n], "{name}, a batch of {n}");
        }
        // Every fifth record was bad: the rest, in order, make the batch.
        let kept: Vec<usize> = (0..256).filter(|i| i % 5 != 3).collect();
        let batch: Vec<&[f64]> = kept.iter().map(|&i| rows[i].as_slice()).collect();
        let together: Vec<u64> = predictor
            .predict_rows(&batch)
            .into_iter()
            .map(f64::to_bits)
            .collect();
        let want: Vec<u64> = kept.iter().map(|&i| alone[i]).collect();
        assert_eq!(together, want, "{name}, bad records taken out");
        let short = &rows[1][..9];
        let together = predictor.predict_rows(&[&rows[0], short, &rows[2]]);
        assert_eq!(together[0].to_bits(), alone[0], "{name}");
        assert!(together[1].is_nan(), "{name}");
        assert_eq!(together[2].to_bits(), alone[2], "{name}");
    }
}

/// The scorer hands an ONNX model the records of a poll batch together, and an ONNX challenger
/// likewise: with bad records among them (left out of the batch, dead-lettered in order), each
/// prediction written and published is the one the model gives its event alone, to the bit, at
/// the record's own offset. The scorer's closing debug line shows the batch path ran: all 44
/// records came in one poll batch, whose 40 good ones were predicted together.
#[test]
fn a_poll_batch_scored_together_writes_what_each_record_scores_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gbr = served("gbr", dir.path());
    let mlp = served("mlp", dir.path());
    let good: Vec<String> = events(40).lines().map(str::to_owned).collect();
    let mut values: Vec<Option<Vec<u8>>> =
        good.iter().map(|e| Some(e.clone().into_bytes())).collect();
    let bad: [(usize, Option<&[u8]>); 4] = [
        (3, None),
        (12, Some(b"not json")),
        (21, Some(br#"{"age": 50, "sex": 1}"#)),
        (30, Some(br#"{"age": 50, "sex": 1, "bmi": "high", "bp": 90, "s1": 1, "s2": 1, "s3": 1, "s4": 1, "s5": 4, "s6": 80}"#)),
    ];
    for (at, value) in bad {
        values.insert(at, value.map(<[u8]>::to_vec));
    }
    let (_broker, b) = common::broker_process(1);
    // One key: one partition, one fetch, so the scorer takes them in one poll batch (checked
    // below by the scorer's count of batches).
    common::produce_all_with_key(&b, "experience-events", "k", &values);
    let model = dir.path().join("gbr.json");
    let challenger = dir.path().join("mlp.json");
    let (code, stdout, stderr) = run_logging_batches(&[
        "score",
        "-b",
        &b,
        "--model",
        model.to_str().unwrap(),
        "--challenger",
        challenger.to_str().unwrap(),
        "--count",
        "44",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        scored_together(&stderr),
        Some((1, 40)),
        "one poll batch, its 40 good records predicted together: {stderr}"
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    let good_offsets: Vec<u64> = (0..44).filter(|i| ![3, 12, 21, 30].contains(i)).collect();
    let offsets: Vec<u64> = lines
        .iter()
        .map(|v| v["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, good_offsets);
    let fields = [
        "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6",
    ];
    for (v, event) in lines.iter().zip(&good) {
        let event: Value = serde_json::from_str(event).unwrap();
        let row: Vec<f64> = fields.iter().map(|f| event[f].as_f64().unwrap()).collect();
        let written: Vec<f64> = fields.iter().map(|f| v[f].as_f64().unwrap()).collect();
        assert_eq!(written, row, "the record's own event");
        let predicted = v["predicted_progression"].as_f64().unwrap();
        assert_eq!(predicted.to_bits(), gbr.predict(&row).to_bits(), "{v}");
        let challenged = v["challenger"]["predicted_progression"].as_f64().unwrap();
        assert_eq!(challenged.to_bits(), mlp.predict(&row).to_bits(), "{v}");
    }
    let published = common::read_n(&b, "salary-predictions", 40, Duration::from_secs(30));
    let published: Vec<Value> = published
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().expect("a value")).expect("JSON"))
        .collect();
    assert_eq!(published, lines, "what is written is what is published");
    let dead = common::read_n(&b, "experience-events.dlq", 4, Duration::from_secs(30));
    let dead: Vec<(&str, &str)> = dead
        .iter()
        .map(|r| {
            (
                r.headers["source_offset"].as_str(),
                r.headers["error"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        dead,
        [
            ("3", "null value (tombstone)"),
            ("12", "not JSON: expected ident at line 1 column 2"),
            ("21", "missing field bmi"),
            ("30", "wrong type for bmi: string"),
        ]
    );
}

/// `predict --model` runs an ONNX model on the lines it has read, up to 256 at once: 600 lines
/// (the first 50 rows twelve times) give each line what a run of its row alone gives, to the bit,
/// and a bad line ends it after the predictions of every line before it.
#[test]
fn predict_runs_an_onnx_model_on_the_lines_read_and_answers_each_as_alone() {
    let (_dir, out) = imported("mlp");
    let artifact = Artifact::load(&out).expect("loads");
    let predictor = Predictor::from(&artifact);
    let rows = events(50);
    let input: Vec<&str> = rows.lines().cycle().take(600).collect();
    let alone: Vec<String> = input
        .iter()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            let row = artifact.feature_values(&event).unwrap();
            predictor.predict(&row).to_string()
        })
        .collect();
    let model = out.to_str().unwrap();
    let (code, stdout, stderr) = run(&["predict", "--model", model], &input.join("\n"));
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(stdout.lines().collect::<Vec<_>>(), alone);
    let predicted: Vec<f64> = stdout
        .lines()
        .take(50)
        .map(|l| l.parse().unwrap())
        .collect();
    assert_as_onnxruntime("mlp", &predicted, &reference("mlp").predictions);

    let mut bad = input.clone();
    let missing = input[299].replace("\"bmi\":", "\"BMI\":");
    bad[299] = &missing;
    let (code, stdout, stderr) = run(&["predict", "--model", model], &bad.join("\n"));
    assert_eq!(code, 1);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), alone[..299]);
    assert_eq!(stderr, "salary-stream: stdin:300: missing field bmi\n");

    // A line that is not UTF-8 cannot be read: the 299 before it are answered all the same.
    let mut unreadable = bad[..299].join("\n").into_bytes();
    unreadable.extend_from_slice(b"\n{\"age\":\xff}\n");
    unreadable.extend_from_slice(input[300].as_bytes());
    let (code, stdout, stderr) =
        run_in(&common::root(), &["predict", "--model", model], unreadable);
    assert_eq!(code, 1);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), alone[..299]);
    assert_eq!(
        stderr,
        "salary-stream: stdin:300: stream did not contain valid UTF-8\n"
    );
}

/// A line given to `predict --model` is answered before the next one comes: what was read is
/// predicted and written out before any read that may wait (a person typing, a slow pipe).
#[test]
fn predict_answers_each_line_before_the_next_arrives() {
    use std::io::BufRead;
    let (_dir, out) = imported("gbr");
    let mut child = Command::new(common::bin())
        .args(["predict", "--model", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("predict");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let rows = events(3);
    let want = reference("gbr").predictions;
    for (i, row) in rows.lines().enumerate() {
        writeln!(stdin, "{row}").unwrap();
        stdin.flush().unwrap();
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("line {} unanswered while stdin stays open: {e}", i + 1));
        let p: f64 = line.parse().unwrap();
        assert_as_onnxruntime("gbr", &[p], &want[i..=i]);
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// A backtest's scoreboard runs an ONNX model 256 records at a time, and its figures are those
/// of each record run alone: 600 labeled diabetes events on two partitions, the MLP against the
/// ten-feature OLS fit, each model's records, labeled count, MAE, RMSE, R² and wins exact.
#[test]
fn a_backtest_runs_onnx_models_in_batches_with_the_figures_of_rows_alone() {
    use salary_stream::observe::quality::Accuracy;
    use salary_stream::serving::backtest::Scoreboard;

    let (_dir, out) = imported("mlp");
    let mlp = Artifact::load(&out).expect("loads");
    let ols = common::diabetes::fitted();
    let models = [Predictor::from(&mlp), Predictor::from(&ols)];
    let shape = salary_stream::serving::scoring::event_shape(&mlp).unwrap();
    let rows = common::diabetes::events(usize::MAX);
    // 600 events: the CSV's rows in turn, on partitions 0 and 1 alternately; with their
    // features in the model's order and their label.
    let names: Vec<&str> = mlp.features.iter().map(|f| f.field.as_str()).collect();
    let events: Vec<(i32, Vec<f64>, f64, String)> = (0..600)
        .map(|i| {
            let event = &rows[i % rows.len()];
            let number = |name: &str| event[name].as_f64().unwrap();
            let features = names.iter().map(|n| number(n)).collect();
            let json = Value::Object(event.clone()).to_string();
            ((i % 2) as i32, features, number("progression"), json)
        })
        .collect();
    let mut board = Scoreboard::new(models.to_vec(), shape);
    for (partition, _, _, json) in &events {
        board.observe(*partition, Some(json.as_bytes()));
    }
    assert_eq!(board.counts(), (600, 0));
    let figures = board.figures();

    // Row by row, in the board's order: partition 0's events, then partition 1's.
    let mut ordered: Vec<&(i32, Vec<f64>, f64, String)> = events.iter().collect();
    ordered.sort_by_key(|e| e.0);
    let alone: Vec<Vec<f64>> = models
        .iter()
        .map(|m| ordered.iter().map(|e| m.predict(&e.1)).collect())
        .collect();
    let mut wins = [0u64; 2];
    for (i, e) in ordered.iter().enumerate() {
        let (a, b) = ((e.2 - alone[0][i]).abs(), (e.2 - alone[1][i]).abs());
        if a < b {
            wins[0] += 1;
        } else if b < a {
            wins[1] += 1;
        }
    }
    for (m, f) in figures.iter().enumerate() {
        let accuracy = Accuracy::of(ordered.iter().zip(&alone[m]).map(|(e, &p)| (e.2, p))).unwrap();
        assert_eq!(f.version, models[m].version);
        assert_eq!((f.records, f.labeled, f.wins), (600, 600, wins[m]), "{m}");
        assert_eq!(
            (f.mae, f.rmse, f.r2),
            (Some(accuracy.mae), Some(accuracy.rmse), Some(accuracy.r2)),
            "{m}"
        );
    }
    assert!(wins[0] > 0 && wins[1] > 0, "{wins:?}");
}
