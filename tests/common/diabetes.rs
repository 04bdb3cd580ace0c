//! scikit-learn's diabetes data (data/diabetes.csv, 442 rows, ten features and `progression`)
//! for the tests: its table, its rows as events, and the model `train` fits on it.

use std::path::Path;

use salary_stream::model::{self, Artifact, ColumnChoice, TrainSpec};
use serde_json::{Map, Value};

/// The data's path.
pub fn csv() -> std::path::PathBuf {
    super::root().join("data/diabetes.csv")
}

/// What `train --target progression` asks: every other numeric column a feature.
pub fn spec() -> TrainSpec {
    TrainSpec {
        target: Some("progression".parse::<ColumnChoice>().expect("a column")),
        features: Vec::new(),
    }
}

/// The model `train --target progression` fits, in this process.
pub fn fitted() -> Artifact {
    model::train(&csv(), &spec()).expect("trains").artifact
}

/// The CSV's column names and its rows, every cell a number.
pub fn table() -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(super::root().join("data/diabetes.csv")).expect("the data");
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("a header")
        .split(',')
        .map(str::to_owned);
    let rows = lines
        .map(|line| {
            line.split(',')
                .map(|c| c.parse().expect("a number"))
                .collect()
        })
        .collect();
    (header.collect(), rows)
}

/// The first `n` rows as events: each column under its name (the label as `progression`), `id`
/// the row's index.
pub fn events(n: usize) -> Vec<Map<String, Value>> {
    let (header, rows) = table();
    rows.iter()
        .take(n)
        .enumerate()
        .map(|(i, row)| {
            let mut event = Map::new();
            event.insert("id".into(), i.into());
            for (name, &cell) in header.iter().zip(row) {
                event.insert(name.clone(), cell.into());
            }
            event
        })
        .collect()
}

/// Trains the diabetes model (`train --target progression`) into `dir`; its path and the
/// artifact as JSON.
pub fn trained(dir: &Path) -> (String, Value) {
    let out = dir.join("diabetes.json");
    let out = out.to_str().expect("a UTF-8 path").to_owned();
    let data = super::root().join("data/diabetes.csv");
    let (code, _, stderr) = super::run(&[
        "train",
        "--data",
        data.to_str().expect("a UTF-8 path"),
        "--target",
        "progression",
        "--out",
        &out,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let artifact = std::fs::read_to_string(&out).expect("the artifact");
    (out, serde_json::from_str(&artifact).expect("JSON"))
}
