//! The real dashboard in tmux serving what is not the salary demo: the ten-feature diabetes model
//! trained by `train`, gradient-boosted trees from scikit-learn imported from ONNX, and an Avro
//! topic read through a real Schema Registry (Apicurio, `scripts/registry`). Each screen is read
//! back line by line: the header exactly, the table's columns by name, and every number of every
//! row against the prediction the dashboard published for that record.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::registry::Registry;
use common::tmux::{assert_restored, start_dashboard_sized};
use serde_json::Value;

/// The diabetes model's features as the table shows them: most influential first, by
/// |coefficient| times standard deviation.
const LINEAR_ORDER: [&str; 10] = [
    "s1", "s5", "bmi", "s2", "bp", "sex", "s4", "s3", "s6", "age",
];

/// The gradient-boosted trees' features (tests/onnx/gbr.onnx) as the table shows them: most
/// influential first, by how far each moves the prediction.
const TREES_ORDER: [&str; 10] = [
    "s5", "s3", "bmi", "sex", "bp", "s4", "age", "s6", "s2", "s1",
];

/// A terminal wide enough for all ten features, the prediction, the label and the residual.
const WIDE: (u16, u16) = (250, 50);

/// `train` on the diabetes data into `dir`; returns the artifact's path.
fn train_diabetes(dir: &Path) -> String {
    let out = dir.join("diabetes.json").to_string_lossy().into_owned();
    let data = common::root().join("data/diabetes.csv");
    let (code, _, stderr) = common::run(&[
        "train",
        "--data",
        &data.to_string_lossy(),
        "--target",
        "progression",
        "--out",
        &out,
    ]);
    assert_eq!(code, 0, "{stderr}");
    out
}

/// The table's cells of each line of `screen`: what lies between its left border and the next.
fn table_lines(screen: &str) -> Vec<Vec<String>> {
    screen
        .lines()
        .filter_map(|l| l.strip_prefix('│')?.split('│').next())
        .map(|cells| cells.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The event rows of the table: those that begin with a time and a partition/offset.
fn event_rows(screen: &str) -> Vec<Vec<String>> {
    table_lines(screen)
        .into_iter()
        .filter(|cells| {
            cells.len() > 3
                && cells[0].len() == 12
                && cells[0].contains(':')
                && cells[1].contains('/')
        })
        .collect()
}

/// The table's heading, as its words.
fn heading(screen: &str) -> Vec<String> {
    table_lines(screen)
        .into_iter()
        .find(|cells| cells.first().is_some_and(|c| c == "time"))
        .unwrap_or_else(|| panic!("no table heading in\n{screen}"))
}

/// The words a table of `fields` is headed by, with a label column of `label` when labeled.
fn expected_heading(fields: &[&str], label: Option<&str>) -> Vec<String> {
    let mut words = vec!["time", "(UTC)", "p/offset"];
    words.extend(fields);
    words.extend(["predicted", "ms"]);
    words.extend(label);
    words.push("resid");
    words.into_iter().map(str::to_owned).collect()
}

/// `(partition, offset)` of a row's `p/offset` cell.
fn position(cell: &str) -> (i32, i64) {
    let (p, o) = cell.split_once('/').expect("p/offset");
    (p.parse().unwrap(), o.parse().unwrap())
}

/// The predictions published to `salary-predictions` for each of `wanted` (partition, offset) of
/// the input, read until all are found.
fn published(bootstrap: &str, wanted: &[(i32, i64)]) -> BTreeMap<(i32, i64), Value> {
    let mut found = BTreeMap::new();
    common::read_until(
        bootstrap,
        "salary-predictions",
        Duration::from_secs(60),
        |r| {
            let v = common::json(std::str::from_utf8(r.value.as_deref().unwrap()).unwrap());
            let at = (
                v["partition"].as_i64().unwrap() as i32,
                v["offset"].as_i64().unwrap(),
            );
            if wanted.contains(&at) {
                found.insert(at, v);
            }
            found.len() == wanted.len()
        },
    );
    assert_eq!(
        found.len(),
        wanted.len(),
        "every row's prediction published"
    );
    found
}

/// `value` written as `cell` is: with the cell's decimals.
fn as_cell(value: f64, cell: &str) -> String {
    let decimals = cell.split_once('.').map_or(0, |(_, d)| d.len());
    format!("{value:.decimals$}")
}

/// Asserts that each event row of `screen`, headed by `fields` (and `label`, when labeled), shows
/// the prediction the dashboard published for its record: the prediction to the cent, every
/// feature at its column's decimals, the `*` of an extrapolation on the first, and the label and
/// residual where the event carried a label. Returns how many rows carried one.
fn assert_rows_are_published(screen: &str, bootstrap: &str, fields: &[&str], label: &str) -> usize {
    let rows = event_rows(screen);
    let wanted: Vec<(i32, i64)> = rows.iter().map(|r| position(&r[1])).collect();
    let published = published(bootstrap, &wanted);
    let mut labeled = 0;
    for row in &rows {
        let v = &published[&position(&row[1])];
        let features = &row[2..2 + fields.len()];
        for (k, (field, cell)) in fields.iter().zip(features).enumerate() {
            let star = k == 0 && v["extrapolated"] == true;
            let number = cell.strip_suffix('*').unwrap_or(cell);
            assert_eq!(cell.ends_with('*'), star, "{field} of {v}\n{screen}");
            assert_eq!(
                number,
                as_cell(v[field].as_f64().unwrap(), number),
                "{field} of {v}\n{screen}"
            );
        }
        let rest = &row[2 + fields.len()..];
        let predicted = v[format!("predicted_{label}")].as_f64().unwrap();
        assert_eq!(rest[0], format!("{predicted:.2}"), "{v}\n{screen}");
        if let Some(actual) = v[label].as_f64() {
            labeled += 1;
            assert_eq!(
                rest[2..],
                [
                    format!("{actual:.2}"),
                    format!("{:+.0}", actual - predicted)
                ],
                "{v}\n{screen}"
            );
        } else {
            assert_eq!(rest.len(), 2, "no label, no residual: {v}\n{screen}");
        }
    }
    labeled
}

/// The dashboard line by line: `model_line` in the header, and once `p` makes events, a table
/// headed by `fields` in order whose rows are what was published.
fn drive(name: &str, model: &str, model_line: &str, fields: &[&str]) {
    let (_broker, b) = common::broker_process(3);
    let (t, _log) = start_dashboard_sized(name, "", &format!("-b {b} --model {model}"), WIDE);
    let lines: Vec<String> = t.screen().lines().map(str::to_owned).collect();
    assert_eq!(lines[3].trim_end(), model_line, "{}", lines.join("\n"));
    t.keys(&["p"]);
    let screen = t.wait_for("20 rows, some labeled", |s| {
        let rows = event_rows(s);
        rows.len() >= 20 && rows.iter().any(|r| r.len() == fields.len() + 6)
    });
    assert_eq!(
        heading(&screen),
        expected_heading(fields, Some("progression")),
        "{screen}"
    );
    assert!(
        screen.contains("producer ON 50/s"),
        "the producer makes this model's events:\n{screen}"
    );
    let labeled = assert_rows_are_published(&screen, &b, fields, "progression");
    assert!(labeled > 0, "{screen}");
    assert!(!screen.contains("years"), "{screen}");
    t.keys(&["q"]);
    assert_restored(&t);
}

#[test]
fn a_ten_feature_linear_model_is_named_and_its_features_tabled_most_influential_first() {
    let dir = tempfile::tempdir().unwrap();
    let model = train_diabetes(dir.path());
    drive(
        "ten-features",
        &model,
        "model e2f71670  progression ~ linear, 10 features",
        &LINEAR_ORDER,
    );
}

#[test]
fn an_onnx_model_from_scikit_learn_is_named_by_its_op_and_its_features_tabled() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gbr.json");
    let (code, _, stderr) = common::run(&[
        "import",
        &common::root().join("tests/onnx/gbr.onnx").to_string_lossy(),
        "--data",
        &common::root().join("data/diabetes.csv").to_string_lossy(),
        "--target",
        "progression",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let artifact = common::json(&std::fs::read_to_string(&out).unwrap());
    let version = artifact["version"].as_str().unwrap();
    drive(
        "onnx",
        &out.to_string_lossy(),
        &format!("model {version}  progression ~ onnx TreeEnsembleRegressor"),
        &TREES_ORDER,
    );
}

/// The throughput panel's total.
fn total(screen: &str) -> Option<u64> {
    screen
        .split("total ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn an_avro_topic_is_scored_through_the_registry_the_header_names() {
    let registry = Registry::start(&[]);
    let url = &registry.url;
    let (_broker, b) = common::broker_process(3);
    let n = 300;
    let (code, _, stderr) = common::run(&[
        "produce",
        "-b",
        &b,
        "-r",
        url,
        "--format",
        "avro",
        "--labels",
        "--seed",
        "7",
        "--rate",
        "max",
        "--count",
        &n.to_string(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    // `avro events, schema N under experience-events-value ...`
    let schema: u32 = stderr
        .split("avro events, schema ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no schema id in {stderr}"));
    assert!(
        stderr.contains(" under experience-events-value "),
        "{stderr}"
    );
    let (t, _log) = start_dashboard_sized("avro", "", &format!("-b {b} -r {url}"), (200, 50));
    let screen = t.wait_for("every record scored", |s| total(s) == Some(n));
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(
        lines[1].trim_end(),
        format!("broker {b} (up)  group salary-stream  registry {url} (avro, schema {schema})"),
        "{screen}"
    );
    let rows = event_rows(&screen);
    assert!(rows.len() >= 20, "{screen}");
    assert_eq!(
        heading(&screen),
        expected_heading(&["years"], Some("salary")),
        "{screen}"
    );
    let labeled = assert_rows_are_published(&screen, &b, &["years_experience"], "salary");
    assert_eq!(labeled, rows.len(), "--labels labels every event: {screen}");
    assert!(
        screen.contains("│bad 0  beyond range "),
        "no record dead-lettered:\n{screen}"
    );
    t.keys(&["q"]);
    assert_restored(&t);
}

/// The screen is read as the dashboard draws it: a row's cells, the heading's words, a value at
/// its cell's decimals.
#[test]
fn the_screen_is_read_cell_by_cell() {
    assert_eq!(as_cell(4.8598, "4.86"), "4.86");
    assert_eq!(as_cell(157.04, "157.0"), "157.0");
    assert_ne!(as_cell(4.8598, "4.9"), "4.86");
    let row = "│16:00:00.002      0/2 310.0* 4.67    131.00 1.0      141.00   +10││now";
    assert_eq!(
        event_rows(row),
        [vec![
            "16:00:00.002",
            "0/2",
            "310.0*",
            "4.67",
            "131.00",
            "1.0",
            "141.00",
            "+10"
        ]]
    );
    assert_eq!(
        heading("│time (UTC)   p/offset     s1   s5 predicted  ms progression resid││"),
        expected_heading(&["s1", "s5"], Some("progression"))
    );
}
