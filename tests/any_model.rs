//! Any regression model, end to end on the embedded broker: scikit-learn's diabetes data (442
//! rows, ten features, data/diabetes.csv from scripts/reference-models) trained by `train`,
//! events made by `produce --model`, scored by `score --model`, dead letters named by field, and
//! a backtest; the salary demo's names nowhere.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{broker_process, json, run};
use serde_json::Value;

/// The artifact's prediction for `event`, summed as the scorer sums: the intercept, then each
/// coefficient times its feature, in the features' order.
fn predicted(artifact: &Value, event: &Value) -> f64 {
    let kind = &artifact["kind"];
    artifact["features"]
        .as_array()
        .unwrap()
        .iter()
        .zip(kind["coefficients"].as_array().unwrap())
        .fold(kind["intercept"].as_f64().unwrap(), |sum, (f, c)| {
            let field = f["field"].as_str().unwrap();
            sum + c.as_f64().unwrap() * event[field].as_f64().unwrap()
        })
}

fn extrapolated(artifact: &Value, event: &Value) -> bool {
    artifact["features"].as_array().unwrap().iter().any(|f| {
        let x = event[f["field"].as_str().unwrap()].as_f64().unwrap();
        x < f["range"]["min"].as_f64().unwrap() || x > f["range"]["max"].as_f64().unwrap()
    })
}

#[test]
fn a_ten_feature_model_is_produced_for_scored_and_backtested_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (model, artifact) = common::diabetes::trained(dir.path());
    let fields: Vec<&str> = artifact["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    );
    let (_broker, b) = broker_process(3);
    let (code, _, stderr) = run(&[
        "produce", "-b", &b, "--model", &model, "--labels", "--count", "400", "--rate", "max",
        "--seed", "8",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("done: sent 400  acked 400  failed 0")
    );
    // Two records a data scientist's own producer might send wrong.
    common::produce_all(
        &b,
        "experience-events",
        &[
            Some(br#"{"id":"x1","age":50,"sex":1,"bp":90,"s1":180,"s2":100,"s3":50,"s4":4,"s5":4.5,"s6":90}"#.to_vec()),
            Some(br#"{"id":"x2","age":50,"sex":1,"bmi":"high","bp":90,"s1":180,"s2":100,"s3":50,"s4":4,"s5":4.5,"s6":90}"#.to_vec()),
        ],
    );
    let (code, stdout, stderr) = run(&["score", "-b", &b, "--model", &model, "--count", "402"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().find(|l| l.starts_with("done: ")),
        Some("done: scored 400  bad 2  delivery errors 0")
    );
    let mut ids = BTreeSet::new();
    let mut beyond = 0;
    for line in stdout.lines() {
        let v = json(line);
        let want = predicted(&artifact, &v);
        assert_eq!(v["predicted_progression"].as_f64().unwrap(), want, "{line}");
        let label = v["progression"].as_f64().unwrap();
        assert_eq!(v["residual"].as_f64().unwrap(), label - want, "{line}");
        assert_eq!(v["extrapolated"], extrapolated(&artifact, &v), "{line}");
        beyond += usize::from(v["extrapolated"] == true);
        assert_eq!(v["model"], artifact["version"]);
        assert_eq!(v.get("predicted_salary"), None);
        assert_eq!(v.get("years_experience"), None);
        ids.insert(v["id"].as_u64().unwrap());
    }
    assert_eq!(ids, (0..400).collect());
    // About one in twenty events has a feature beyond its training range.
    assert!((5..=40).contains(&beyond), "{beyond} of 400 extrapolated");

    let dead = common::read_n(&b, "experience-events.dlq", 2, Duration::from_secs(30));
    let mut reasons: Vec<&str> = dead.iter().map(|d| d.headers["error"].as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["missing field bmi", "wrong type for bmi: string"]);

    let (code, stdout, stderr) = run(&[
        "backtest",
        "-b",
        &b,
        "--topic",
        "experience-events",
        "--model",
        &model,
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report = json(&stdout);
    assert_eq!(
        (report["records"].as_u64(), report["bad"].as_u64()),
        (Some(402), Some(2))
    );
    assert_eq!(report["models"][0]["records"], 400);
    assert_eq!(report["models"][0]["labeled"], 400);
}

#[test]
fn a_candidate_of_other_features_is_refused_by_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = common::diabetes::trained(dir.path());
    let (code, _, stderr) = run(&[
        "backtest",
        "-b",
        "127.0.0.1:1",
        "--topic",
        "t",
        "--model",
        &model,
        "--candidate",
        "assets/model.json",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "salary-stream: --candidate assets/model.json reads years_experience for salary, the serving \
         model age, sex, bmi, bp, s1, s2, s3, s4, s5, s6 for progression: a backtest compares \
         models of the same features"
    );
}

/// Models from scikit-learn through ONNX (made by scripts/onnx-models), imported and served by
/// `score` on the embedded broker: the first 50 rows of the diabetes data, as events, are
/// predicted as onnxruntime predicted them (float32: 1e-4 relative), and the output names the
/// imported version.
#[test]
fn onnx_models_from_scikit_learn_are_scored_as_onnxruntime_scores_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, b) = broker_process(1);
    let data = common::root().join("data/diabetes.csv");
    let mut offset = 0;
    for name in ["gbr", "mlp", "forest"] {
        let reference: Value = serde_json::from_str(
            &std::fs::read_to_string(common::root().join(format!("tests/onnx/{name}.json")))
                .unwrap(),
        )
        .unwrap();
        let out = dir.path().join(format!("{name}.json"));
        let onnx = common::root().join(format!("tests/onnx/{name}.onnx"));
        let (code, _, stderr) = run(&[
            "import",
            onnx.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--target",
            "progression",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stderr}");
        let artifact: Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let features: Vec<&str> = reference["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let events: Vec<Option<Vec<u8>>> = reference["rows"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut event = serde_json::Map::new();
                event.insert("id".into(), i.into());
                for (f, x) in features.iter().zip(row.as_array().unwrap()) {
                    event.insert((*f).into(), x.clone());
                }
                Some(serde_json::to_vec(&event).unwrap())
            })
            .collect();
        common::produce_all(&b, "experience-events", &events);
        offset += events.len();
        // A fresh group reads from the start: skip what earlier models' rounds wrote.
        let group = format!("onnx-{name}");
        let (code, stdout, stderr) = run(&[
            "score",
            "-b",
            &b,
            "-g",
            &group,
            "--model",
            out.to_str().unwrap(),
            "--count",
            &offset.to_string(),
        ]);
        assert_eq!(code, 0, "{stderr}");
        let want = reference["predictions"].as_array().unwrap();
        let lines: Vec<Value> = stdout.lines().map(json).skip(offset - 50).collect();
        assert_eq!(lines.len(), 50, "{name}");
        for v in &lines {
            let id = v["id"].as_u64().unwrap() as usize;
            let got = v["predicted_progression"].as_f64().unwrap();
            let expected = want[id].as_f64().unwrap();
            assert!(
                ((got - expected) / expected).abs() < 1e-4,
                "{name} row {id}: {got} vs onnxruntime {expected}"
            );
            assert_eq!(v["model"], artifact["version"], "{name}");
        }
    }
}

#[test]
fn a_challenger_of_other_features_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = common::diabetes::trained(dir.path());
    let (code, _, stderr) = run(&[
        "score",
        "-b",
        "127.0.0.1:1",
        "--model",
        &model,
        "--challenger",
        "assets/model.json",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "salary-stream: --challenger assets/model.json reads years_experience for salary, the \
         serving model age, sex, bmi, bp, s1, s2, s3, s4, s5, s6 for progression: a challenger \
         reads the serving model's features"
    );
}
