//! Training any number of features and predicting from JSON events, against scikit-learn on its
//! diabetes data (tests/reference/diabetes_ols.json, made by scripts/reference-models), through
//! the library and the real binary.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use salary_stream::model::Artifact;

const FEATURES: [&str; 10] = [
    "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6",
];

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(common::bin())
        .args(args)
        .current_dir(common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run binary");
    let mut input = child.stdin.take().unwrap();
    // The binary may stop reading early (an error); what it did not read is no failure here.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn reference() -> serde_json::Value {
    let text =
        std::fs::read_to_string(common::root().join("tests/reference/diabetes_ols.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn diabetes_csv() -> String {
    std::fs::read_to_string(common::root().join("data/diabetes.csv")).unwrap()
}

/// Within 1e-6 of `want`, relative.
fn assert_close(name: &str, got: f64, want: f64) {
    let relative = ((got - want) / want).abs();
    assert!(
        relative < 1e-6,
        "{name}: {got} vs scikit-learn's {want} ({relative:e})"
    );
}

/// The first `n` rows of data/diabetes.csv as JSON events, each number as the file writes it.
fn events(n: usize) -> Vec<String> {
    let csv = diabetes_csv();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .take(n)
        .map(|row| {
            let fields: Vec<String> = header
                .iter()
                .zip(row.split(','))
                .filter(|(name, _)| **name != "progression")
                .map(|(name, cell)| format!("\"{name}\":{cell}"))
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// data/diabetes.csv trained with the binary into `dir`/d.json; its path.
fn trained_file(dir: &tempfile::TempDir) -> String {
    let out = dir.path().join("d.json").to_string_lossy().into_owned();
    let (code, _, stderr) = run(
        &[
            "train",
            "--data",
            "data/diabetes.csv",
            "--target",
            "progression",
            "--out",
            &out,
        ],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    out
}

#[test]
fn ols_on_the_diabetes_data_equals_scikit_learn() {
    let want = reference();
    let a = common::diabetes::fitted();
    let line = a.linear().unwrap();
    let names: Vec<&str> = a.features.iter().map(|f| f.column.as_str()).collect();
    assert_eq!(
        names, FEATURES,
        "every numeric column but the target, in order"
    );
    for (feature, coefficient) in a.features.iter().zip(&line.coefficients) {
        assert_eq!(
            feature.field, feature.column,
            "the field is the column's name"
        );
        assert_close(
            &feature.column,
            *coefficient,
            want["coefficients"][&feature.column].as_f64().unwrap(),
        );
    }
    assert_close(
        "intercept",
        line.intercept,
        want["intercept"].as_f64().unwrap(),
    );
    assert_close("r2", a.r2, want["r2"].as_f64().unwrap());
    assert_close("rmse", a.rmse, want["rmse"].as_f64().unwrap());
    assert_eq!(a.training_rows, 442);
    assert_eq!(a.data_sha256, want["data_sha256"].as_str().unwrap());
    assert_eq!(
        (a.target.column.as_str(), a.target.field.as_str()),
        ("progression", "progression")
    );
    // Ranges and statistics of the training values, for extrapolation and a producer.
    let bmi = &a.features[2];
    assert_eq!((bmi.range.min, bmi.range.max), (18.0, 42.2));
    assert_close("bmi mean", bmi.mean.unwrap(), 26.375791855203623);
    assert_close("bmi std", bmi.std.unwrap(), 4.413121996477652);
    assert_eq!(a.version, "e2f71670");
}

#[test]
fn a_saved_many_feature_artifact_reloads_identically() {
    let a = common::diabetes::fitted();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.json");
    a.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"schema_version\": 2"), "{text}");
    assert!(text.contains("\"type\": \"linear\""), "{text}");
    assert_eq!(Artifact::load(&path).unwrap(), a);
}

#[test]
fn train_prints_a_line_per_coefficient_and_the_fit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.json").to_string_lossy().into_owned();
    let (code, stdout, stderr) = run(
        &[
            "train",
            "--data",
            "data/diabetes.csv",
            "--target",
            "progression",
            "--out",
            &out,
        ],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "model     e2f71670\n\
             rows      442\n\
             target    progression\n\
             feature   coefficient    range\n\
             age       -0.036361      19 to 79\n\
             sex       -22.859648     1 to 2\n\
             bmi       5.602962       18 to 42.2\n\
             bp        1.116808       62 to 133\n\
             s1        -1.089996      97 to 301\n\
             s2        0.746450       41.6 to 242.4\n\
             s3        0.372005       22 to 99\n\
             s4        6.533832       2 to 9.09\n\
             s5        68.483125      3.2581 to 6.107\n\
             s6        0.280117       58 to 124\n\
             intercept -334.567139\n\
             r2        0.517748\n\
             rmse      53.476129\n\
             wrote {out}\n"
        )
    );
    // Chosen features, read from fields of their own: in the given order, fields said
    // (scikit-learn on bmi and s5 alone: 7.27600054, 56.05638703).
    let (code, stdout, stderr) = run(
        &[
            "train",
            "--data",
            "data/diabetes.csv",
            "--target",
            "progression=y",
            "--feature",
            "bmi=body_mass_index",
            "--feature",
            "s5",
            "--out",
            &out,
        ],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[2..6],
        [
            "target    progression (label field y)",
            "feature   coefficient    range              field",
            "bmi       7.276001       18 to 42.2         body_mass_index",
            "s5        56.056387      3.2581 to 6.107    s5",
        ]
    );
    let a = Artifact::load(std::path::Path::new(&out)).unwrap();
    let fields: Vec<&str> = a.features.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["body_mass_index", "s5"]);
    assert_eq!(a.target.field, "y");
}

#[test]
fn predict_reads_json_events_on_stdin_for_any_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_file(&dir);
    let want = reference();
    let want: Vec<f64> = want["first_predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    // Blank lines are no events; other fields are ignored.
    let mut input = events(5).join("\n\n");
    input = input.replacen("{", "{\"id\":\"a\",", 1);
    assert!(
        input.starts_with("{\"id\":\"a\",\"age\":59,\"sex\":2,\"bmi\":32.1,"),
        "{input}"
    );
    let (code, stdout, stderr) = run(&["predict", "--model", &model], &input);
    assert_eq!((code, stderr.as_str()), (0, ""));
    let got: Vec<f64> = stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(got.len(), 5, "{stdout}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_close(&format!("row {}", i + 1), *g, *w);
    }
    // Every digit: the text reads back as the library's own prediction.
    let a = Artifact::load(std::path::Path::new(&model)).unwrap();
    let first = a.predict_row(&[59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]);
    assert_eq!(stdout.lines().next().unwrap(), first.to_string());
}

#[test]
fn a_bad_event_on_stdin_stops_predict_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_file(&dir);
    let good = events(1).remove(0);
    let cases = [
        (
            good.replace("\"bmi\":32.1,", ""),
            "stdin:2: missing field bmi",
        ),
        (
            good.replace("\"bmi\":32.1", "\"bmi\":\"32.1\""),
            "stdin:2: wrong type for bmi: string",
        ),
        (
            good.replace("\"s6\":87", "\"s6\":null"),
            "stdin:2: wrong type for s6: null",
        ),
        ("[59, 2]".to_owned(), "stdin:2: not a JSON object but array"),
        (
            "{\"age\": 59,".to_owned(),
            "stdin:2: not JSON: EOF while parsing a value at line 1 column 11",
        ),
    ];
    for (bad, want) in cases {
        let input = format!("{good}\n{bad}\n{good}\n");
        let (code, stdout, stderr) = run(&["predict", "--model", &model], &input);
        assert_eq!(code, 1, "{bad}");
        assert_eq!(
            stdout.lines().count(),
            1,
            "the event before it is predicted: {bad}"
        );
        assert_eq!(stderr, format!("salary-stream: {want}\n"), "{bad}");
    }
}

#[test]
fn a_value_on_the_command_line_needs_a_one_feature_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_file(&dir);
    let (code, stdout, stderr) = run(&["predict", "5.3", "--model", &model], "");
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        stderr,
        format!(
            "salary-stream: {model} has 10 features (age, sex, bmi, bp, s1, s2, s3, s4, s5, s6); \
             a value on the command line is for one-feature models: give JSON events on stdin, \
             one a line\n"
        )
    );
}

#[test]
fn the_salary_model_predicts_from_events_as_well() {
    let (code, stdout, stderr) = run(&["predict", "5.3"], "");
    assert_eq!(
        (code, stdout.as_str(), stderr.as_str()),
        (0, "75877.00\n", "")
    );
    // The demo's original field name is its CSV column: read as an alias.
    let input = "{\"years_experience\": 5.3}\n{\"YearsExperience\": 5.3, \"salary\": 1}\n";
    let (code, stdout, stderr) = run(&["predict"], input);
    assert_eq!(code, 0, "{stderr}");
    let exact = 25792.20019866869 + 9449.962321455077 * 5.3;
    assert_eq!(stdout, format!("{exact}\n{exact}\n"));
    assert_eq!(format!("{exact:.2}"), "75877.00");
}

#[test]
fn bad_training_data_is_one_line_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let csv = diabetes_csv();
    let lines: Vec<&str> = csv.lines().collect();
    // Every sex cell 1.
    let constant: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut cells: Vec<&str> = l.split(',').collect();
            if i > 0 {
                cells[1] = "1";
            }
            cells.join(",") + "\n"
        })
        .collect();
    // A column `total` that is s2 + s3, before the target.
    let collinear: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let cells: Vec<&str> = l.split(',').collect();
            let total = if i == 0 {
                "total".to_owned()
            } else {
                let s2: f64 = cells[5].parse().unwrap();
                let s3: f64 = cells[6].parse().unwrap();
                (s2 + s3).to_string()
            };
            format!("{},{total},{}\n", cells[..10].join(","), cells[10])
        })
        .collect();
    let not_a_number = csv.replacen("\n72,2,30.5,", "\n72,2,n/a,", 1);
    let few: String = lines[..6].iter().map(|l| format!("{l}\n")).collect();
    let header = "age, sex, bmi, bp, s1, s2, s3, s4, s5, s6, progression";
    let cases: Vec<(&str, String, Vec<&str>, String)> = vec![
        (
            "constant.csv",
            constant,
            vec!["--target", "progression"],
            "{P}: column sex is constant (1.0 in all 442 rows): drop it with --feature".into(),
        ),
        (
            "collinear.csv",
            collinear,
            vec!["--target", "progression"],
            "{P}: columns s2, s3 and total are collinear: total is a linear combination of s2 \
             and s3; leave one out with --feature"
                .into(),
        ),
        (
            "nan.csv",
            not_a_number,
            vec!["--target", "progression"],
            "{P}:4: column bmi: \"n/a\" is not a finite number".into(),
        ),
        (
            "target.csv",
            csv.clone(),
            vec!["--target", "progresion"],
            format!("{{P}}: no column named progresion in the header (found: {header})"),
        ),
        (
            "feature.csv",
            csv.clone(),
            vec!["--target", "progression", "--feature", "bmj"],
            format!("{{P}}: no column named bmj in the header (found: {header})"),
        ),
        (
            "both.csv",
            csv.clone(),
            vec!["--target", "progression", "--feature", "progression"],
            "{P}: column progression is the target; it cannot also be a feature".into(),
        ),
        (
            "twice.csv",
            csv.clone(),
            vec![
                "--target",
                "progression",
                "--feature",
                "bmi",
                "--feature",
                "bmi",
            ],
            "--feature bmi is given twice".into(),
        ),
        (
            "few.csv",
            few,
            vec!["--target", "progression"],
            "{P}: need at least 11 data rows to fit 10 features and an intercept, found 5".into(),
        ),
    ];
    for (name, text, args, want) in cases {
        let path = write(&dir, name, &text);
        let out = dir.path().join("out.json");
        let mut all = vec!["train", "--data", &path, "--out", out.to_str().unwrap()];
        all.extend(args);
        let (code, stdout, stderr) = run(&all, "");
        assert_eq!(
            (code, stdout.as_str(), stderr),
            (
                1,
                "",
                format!("salary-stream: {}\n", want.replace("{P}", &path))
            ),
            "{name}"
        );
        assert!(!out.exists(), "{name}: no artifact is written on error");
    }
}

#[test]
fn columns_without_numbers_are_left_out_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "named.csv", "name,x,y\nann,1,3\nbob,2,5\ncy,4,9\n");
    let out = dir.path().join("out.json");
    let (code, stdout, stderr) = run(
        &[
            "train",
            "--data",
            &path,
            "--target",
            "y",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[2..],
        [
            "slope     2.000000",
            "intercept 1.000000",
            "r2        1.000000",
            "rmse      0.00",
            "range     x 1 to 4",
            "skipped   name (no cell is a number)",
            &format!("wrote {}", out.display()),
        ]
    );
    let a = Artifact::load(&out).unwrap();
    assert_eq!(
        (a.features[0].field.as_str(), a.target.field.as_str()),
        ("x", "y")
    );
    // A one-feature model of other fields: `predict X` serves it, and so do the serving commands.
    let (code, stdout, _) = run(&["predict", "10", "--model", out.to_str().unwrap()], "");
    assert_eq!((code, stdout.as_str()), (0, "21.00\n"));
    assert!(a.check_servable("--model out.json").is_ok());
}

#[test]
fn a_many_feature_linear_model_is_servable() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_file(&dir);
    let a = Artifact::load(std::path::Path::new(&model)).unwrap();
    assert_eq!(a.features.len(), 10);
    assert!(a.check_servable(&format!("--model {model}")).is_ok());
}
