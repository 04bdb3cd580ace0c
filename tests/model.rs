//! Training and one-shot prediction, through the library and the real binary.

mod common;

use std::process::Command;

use salary_stream::model::{self, Artifact, Predictor, TrainSpec};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::bin())
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn train_salary() -> Artifact {
    model::train(
        &common::root().join("data/Salary_Data.csv"),
        &TrainSpec::default(),
    )
    .unwrap()
    .artifact
}

#[test]
fn fits_the_reference_data_like_scikit_learn() {
    let a = train_salary();
    assert!((a.slope() - 9449.962321).abs() < 1e-6, "{}", a.slope());
    assert!(
        (a.intercept() - 25792.200199).abs() < 1e-6,
        "{}",
        a.intercept()
    );
    assert_eq!(format!("{:.6}", a.r2), "0.956957");
    assert_eq!(format!("{:.2}", a.rmse), "5592.04");
    assert_eq!(a.training_rows, 30);
    assert_eq!((a.feature_range().min, a.feature_range().max), (1.1, 10.5));
    assert_eq!(
        (a.features[0].column.as_str(), a.features[0].field.as_str()),
        ("YearsExperience", "years_experience")
    );
    assert_eq!(
        (a.target.column.as_str(), a.target.field.as_str()),
        ("Salary", "salary")
    );
    assert_eq!(
        a.data_sha256,
        "c03c04aa11b4f86e3d0cf9d71966ea64b29b4f598a4d37c486f7b237fe221220"
    );
    // The statistics a synthetic producer draws from (population standard deviation).
    assert_eq!(a.features[0].mean, Some(5.3133333333333335));
    assert_eq!(a.features[0].std, Some(2.790189161249745));
}

#[test]
fn the_committed_artifact_is_what_training_gives() {
    let committed = Artifact::load(&common::root().join("assets/model.json")).unwrap();
    assert_eq!(train_salary(), committed);
    assert_eq!(committed.version, "6c25318e");
    assert!(committed.is_salary_shaped());
}

#[test]
fn a_schema_one_artifact_loads_with_its_original_meaning() {
    // assets/model.json as schema 1 wrote it, before schema 2.
    let path = common::root().join("tests/reference/salary_schema1.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"schema_version\": 1"), "{text}");
    let one = Artifact::load(&path).unwrap();
    let mut two = Artifact::load(&common::root().join("assets/model.json")).unwrap();
    // Schema 1 had no statistics; everything else is the same model.
    two.features[0].mean = None;
    two.features[0].std = None;
    assert_eq!(one, two);
    assert_eq!(Predictor::from(&one), Predictor::from(&two));
    assert_eq!(
        (one.slope(), one.intercept(), one.version.as_str()),
        (9449.962321455077, 25792.20019866869, "6c25318e")
    );
    let (code, stdout, stderr) = run(&["predict", "5.3", "--model", path.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str()), (0, "75877.00\n"), "{stderr}");
    // The serving commands take it as they always did.
    one.check_servable("--model old.json").unwrap();
}

#[test]
fn train_command_prints_coefficients_and_writes_the_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let (code, stdout, stderr) = run(&["train", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "model     6c25318e",
            "rows      30",
            "slope     9449.962321",
            "intercept 25792.200199",
            "r2        0.956957",
            "rmse      5592.04",
        ]
    );
    assert_eq!(
        lines[6..],
        [
            "range     YearsExperience 1.1 to 10.5",
            &format!("wrote {}", out.display())
        ]
    );
    let saved = Artifact::load(&out).unwrap();
    assert_eq!(saved.version, "6c25318e");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(common::root().join("assets/model.json")).unwrap()
    );
    // Naming the demo's columns and fields gives the very same artifact.
    let named = dir.path().join("named.json");
    let (code, stdout2, stderr) = run(&[
        "train",
        "--target",
        "Salary=salary",
        "--feature",
        "YearsExperience=years_experience",
        "--out",
        named.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout2.lines().next(), Some("model     6c25318e"));
    assert_eq!(Artifact::load(&named).unwrap(), saved);
}

#[test]
fn predict_prints_two_decimals() {
    let (code, stdout, _) = run(&["predict", "5.3", "0", "10", "40"]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "75877.00\n25792.20\n120291.82\n403790.69\n");
    let p = Predictor::from(&Artifact::load(&common::root().join("assets/model.json")).unwrap());
    assert_eq!(format!("{:.2}", p.predict(&[5.3])), "75877.00");
}

#[test]
fn bad_training_input_gives_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "missing.csv".to_owned(),
            None,
            "cannot read training data {P}: No such file or directory (os error 2)",
        ),
        (
            "nan.csv".into(),
            Some("YearsExperience,Salary\n1.1,39343\n2.0,abc\n3.0,60150\n"),
            "{P}:3: column Salary: \"abc\" is not a finite number",
        ),
        (
            "one.csv".into(),
            Some("YearsExperience,Salary\n1.1,39343\n"),
            "{P}: need at least 2 data rows to fit a line, found 1",
        ),
        (
            "col.csv".into(),
            Some("Years,Salary\n1.1,39343\n2.0,43525\n"),
            "{P}: no column named YearsExperience in the header (found: Years, Salary)",
        ),
        (
            "const.csv".into(),
            Some("YearsExperience,Salary\n2,39343\n2,43525\n"),
            "{P}: every YearsExperience value is the same; the slope is undefined",
        ),
        (
            "ragged.csv".into(),
            Some("YearsExperience,Salary\n1.1,39343,7\n"),
            "{P}: malformed CSV: CSV error: record 1 (line: 2, byte: 23): found record with 3 fields, but the previous record has 2 fields",
        ),
    ];
    for (name, content, want) in cases {
        let path = match content {
            Some(text) => write(&dir, &name, text),
            None => dir.path().join(&name).to_string_lossy().into_owned(),
        };
        let out = dir.path().join("out.json");
        let (code, stdout, stderr) =
            run(&["train", "--data", &path, "--out", out.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}");
        assert_eq!(stdout, "", "{name}");
        assert_eq!(
            stderr,
            format!("salary-stream: {}\n", want.replace("{P}", &path)),
            "{name}"
        );
        assert!(!out.exists(), "{name}: no artifact is written on error");
    }
}

#[test]
fn bad_artifacts_and_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = write(
        &dir,
        "corrupt.json",
        "{\"schema_version\": 1, \"version\": 3}",
    );
    let old = write(&dir, "old.json", "{\"schema_version\": 99}");
    let missing = dir.path().join("none.json").to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["predict", "1", "--model", &corrupt],
            1,
            format!("salary-stream: model artifact {corrupt} is corrupt: invalid type: integer `3`, expected a string at line 1 column 34\n"),
        ),
        (
            vec!["predict", "1", "--model", &old],
            1,
            format!("salary-stream: model artifact {old} has schema version 99; this build reads versions 1 and 2 (run `salary-stream train` to rewrite it)\n"),
        ),
        (
            vec!["predict", "1", "--model", &missing],
            1,
            format!("salary-stream: cannot read model artifact {missing}: No such file or directory (os error 2)\n"),
        ),
        (
            vec!["predict", "-2"],
            1,
            "salary-stream: years must be a finite number of at least 0, got -2\n".to_owned(),
        ),
        (
            vec!["predict", "1e400"],
            1,
            "salary-stream: years must be a finite number of at least 0, got inf\n".to_owned(),
        ),
    ];
    for (args, code, want) in cases {
        let (got_code, _, stderr) = run(&args);
        assert_eq!((got_code, stderr), (code, want), "{args:?}");
    }
    let (code, _, stderr) = run(&["predict", "five"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: invalid value 'five' for '[YEARS]...'"),
        "{stderr}"
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    let bin = env!("CARGO_BIN_EXE_salary-stream");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("_salary-stream()") || bash.contains("_salary__stream()"),
        "{bash}"
    );
    for flag in [
        "--shutdown-timeout",
        "--create-topics",
        "--models-dir",
        "--brokers",
    ] {
        assert!(bash.contains(flag), "bash completes {flag}");
    }
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef salary-stream"), "{zsh}");
    let fish = run(&["completions", "fish"]);
    assert!(fish.contains("complete -c salary-stream"), "{fish}");
    let man = run(&["man"]);
    assert!(man.contains(".TH salary-stream 1"), "{man}");
    for command in ["score", "produce", "broker", "completions"] {
        assert!(man.contains(command), "the man page names {command}");
    }
    let out = std::process::Command::new(bin)
        .args(["completions", "nosh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'nosh'"));
}
