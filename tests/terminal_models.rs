//! The real dashboard in tmux serving what is not the salary demo: the ten-feature diabetes model
//! trained by `train`, gradient-boosted trees from scikit-learn imported from ONNX, and an Avro
//! topic read through a real Schema Registry (Apicurio, `scripts/registry`). Each screen is read
//! back line by line: the header exactly, the table's columns by name, and every number of every
//! row against the prediction the dashboard published for that record. Also the ten-feature model
//! reloaded over the demo's file, and a dashboard of it watching a group that scores with it.

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
    let twenty = |s: &str| {
        let rows = event_rows(s);
        rows.len() >= 20 && rows.iter().any(|r| r.len() == fields.len() + 6)
    };
    let screen = t.wait_for("20 rows, some labeled", twenty);
    assert!(
        screen.contains("producer ON 50/s"),
        "the producer makes this model's events:\n{screen}"
    );
    // Each event rewrites every row, and a capture can pair the left of a row with the right of
    // the one it replaces (tmux 3.3 shows a frame half written): the rows are read from a
    // settled screen, the producer stopped.
    t.keys(&["p"]);
    let screen = t.wait_for_settled("20 rows, some labeled, the producer stopped", |s| {
        s.contains("producer off") && twenty(s)
    });
    assert_eq!(
        heading(&screen),
        expected_heading(fields, Some("progression")),
        "{screen}"
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
    // Settled: the rows and the records panel are drawn below the total.
    let screen = t.wait_for_settled("every record scored", |s| total(s) == Some(n));
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

/// The text of `screen`'s right-hand column from `start` to the end of its panel's row.
fn panel_text<'s>(screen: &'s str, start: &str) -> Option<&'s str> {
    let line = screen.lines().find(|l| l.contains(start))?;
    let from = &line[line.find(start)?..];
    Some(from.split('│').next()?.trim_end())
}

/// The latency panel's `ms`: two decimals below 10 ms, one below 100, whole above.
fn latency_cell(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// A dashboard of the ten-feature model watching a group that scores with it: the table headed
/// by the model's features, every row the prediction published, the accuracy panel from the
/// `residual` of each labeled prediction and the latency panel from each one's `latency_ms`.
#[test]
fn a_watching_dashboard_of_a_ten_feature_model_tables_its_predictions_and_their_accuracy() {
    const LABELED: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let model = train_diabetes(dir.path());
    let (_broker, b) = common::broker_process(3);
    let member =
        common::Child::spawn(&["score", "-b", &b, "-g", "watched", "--model", &model, "-q"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while common::assignment(&member).is_none_or(|a| a.len() != 3) {
        assert!(std::time::Instant::now() < deadline, "never assigned");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (t, _log) = start_dashboard_sized(
        "watch-ten",
        "",
        &format!("-b {b} --model {model} --watch-group watched"),
        WIDE,
    );
    let lines: Vec<String> = t.screen().lines().map(str::to_owned).collect();
    assert_eq!(
        lines[3].trim_end(),
        "model e2f71670  progression ~ linear, 10 features",
        "{}",
        lines.join("\n")
    );
    // The watcher reads the output from its end: unlabeled events, one at a time, until one
    // of their predictions is seen; from then on it sees every prediction.
    let rows = common::diabetes::events(LABELED + 40);
    let seen_one = || total(&t.screen()).is_some_and(|n| n > 0);
    let mut markers = 0;
    'marking: loop {
        assert!(markers < 40, "no prediction ever seen:\n{}", t.screen());
        let mut marker = rows[LABELED + markers].clone();
        marker.remove("progression");
        marker.insert("id".into(), (1000 + markers).into());
        let value = serde_json::to_vec(&marker).unwrap();
        common::produce_all(&b, "experience-events", &[Some(value)]);
        markers += 1;
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < until {
            if seen_one() {
                break 'marking;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // A minute old: their latency is theirs alone, well above the markers'.
    let made = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let labeled: Vec<Option<Vec<u8>>> = rows[..LABELED]
        .iter()
        .map(|event| {
            let mut event = event.clone();
            event.insert("ts_ms".into(), made.into());
            Some(serde_json::to_vec(&event).unwrap())
        })
        .collect();
    common::produce_all(&b, "experience-events", &labeled);
    let n_field = format!("  n {LABELED}  ");
    t.wait_for("the accuracy of every labeled prediction", |s| {
        s.contains(&n_field)
    });

    // What the group published for the labeled events, as the watcher read it.
    let mut published = BTreeMap::new();
    common::read_until(&b, "salary-predictions", Duration::from_secs(60), |r| {
        let v = common::json(std::str::from_utf8(r.value.as_deref().unwrap()).unwrap());
        if let Some(id) = v["id"].as_u64().filter(|&id| id < LABELED as u64) {
            published.insert(id, v);
        }
        published.len() == LABELED
    });
    assert_eq!(published.len(), LABELED);
    let pairs: Vec<(f64, f64)> = published
        .values()
        .map(|v| {
            let predicted = v["predicted_progression"].as_f64().unwrap();
            let residual = v["residual"].as_f64().unwrap();
            assert_eq!(
                residual,
                v["progression"].as_f64().unwrap() - predicted,
                "{v}"
            );
            (predicted + residual, predicted)
        })
        .collect();
    let n = LABELED as f64;
    let mean = pairs.iter().map(|(y, _)| y).sum::<f64>() / n;
    let mae = pairs.iter().map(|(y, p)| (y - p).abs()).sum::<f64>() / n;
    let sq = pairs.iter().map(|(y, p)| (y - p) * (y - p)).sum::<f64>();
    let tot = pairs
        .iter()
        .map(|(y, _)| (y - mean) * (y - mean))
        .sum::<f64>();
    // A capture of a frame half written pairs new lines with old ones: only a settled one.
    let screen = t.wait_for_settled("a whole frame", |s| s.contains(&n_field));
    let seen = total(&screen).unwrap() as usize - LABELED;
    assert!(
        (1..=markers).contains(&seen),
        "{seen} of {markers} markers\n{screen}"
    );
    assert_eq!(
        panel_text(&screen, "RMSE ").and_then(|t| t.split("  RMSE range").next()),
        Some(
            format!(
                "RMSE {:.0}  MAE {mae:.0}  R² {:.3}  n {LABELED}",
                (sq / n).sqrt(),
                1.0 - sq / tot
            )
            .as_str()
        ),
        "{screen}"
    );
    // Latency as the panel keeps it: µs at two significant figures, each bucket's lowest
    // value; the markers seen are far below every labeled event's.
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 2).unwrap();
    for v in published.values() {
        let ms = v["latency_ms"].as_f64().unwrap();
        assert!((60_000.0..70_000.0).contains(&ms), "{v}");
        h.record((ms * 1000.0) as u64).unwrap();
    }
    h.record_n(1, seen as u64).unwrap();
    let at = |q: f64| latency_cell(h.lowest_equivalent(h.value_at_quantile(q)) as f64 / 1000.0);
    let max = latency_cell(h.lowest_equivalent(h.max()) as f64 / 1000.0);
    assert_eq!(
        panel_text(&screen, "p50 "),
        Some(
            format!(
                "p50 {}  p99 {}  p99.9 {}  max {max}",
                at(0.5),
                at(0.99),
                at(0.999)
            )
            .as_str()
        ),
        "{screen}"
    );
    assert_eq!(
        heading(&screen),
        expected_heading(&LINEAR_ORDER, Some("progression")),
        "{screen}"
    );
    let shown = event_rows(&screen).len();
    assert_eq!(
        assert_rows_are_published(&screen, &b, &LINEAR_ORDER, "progression"),
        shown.min(LABELED),
        "the newest rows are the labeled events:\n{screen}"
    );
    assert!(
        screen.contains("group watched (watching, not joined)"),
        "{screen}"
    );
    t.keys(&["q"]);
    assert_restored(&t);
}

/// A dashboard serving the salary demo from a file that is then replaced by the ten-feature
/// model: until its first event the demo's events keep the demo's names; then its events are
/// tabled by its features and label, and the chart plots its label by its most influential
/// feature.
#[test]
fn a_hot_reload_to_a_model_of_other_features_renames_the_table_and_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let diabetes = train_diabetes(dir.path());
    let model = dir.path().join("model.json");
    std::fs::copy(common::root().join("assets/model.json"), &model).unwrap();
    let (_broker, b) = common::broker_process(3);
    let (t, _log) = start_dashboard_sized(
        "reload-ten",
        "",
        &format!("-b {b} --model {}", model.display()),
        WIDE,
    );
    let salary: Vec<Option<Vec<u8>>> = (0..5)
        .map(|i| Some(format!(r#"{{"id": {i}, "years_experience": 5.3}}"#).into_bytes()))
        .collect();
    common::produce_all(&b, "experience-events", &salary);
    let screen = t.wait_for("the demo's events", |s| total(s) == Some(5));
    assert_eq!(
        heading(&screen),
        expected_heading(&["years"], None),
        "{screen}"
    );
    // Written beside, then renamed over: the watcher never reads half a file.
    let beside = dir.path().join("next.json");
    std::fs::copy(&diabetes, &beside).unwrap();
    std::fs::rename(&beside, &model).unwrap();
    let serving = "model e2f71670  progression ~ linear, 10 features  (serving e2f71670 from the \
                   model file, replacing 6c25318e)";
    // Settled: the heading and the chart below the model line are read as that frame left them.
    let screen = t.wait_for_settled("the ten-feature model serving", |s| {
        s.lines().nth(3).is_some_and(|l| l.trim_end() == serving)
    });
    // Before its first event, the demo's events keep the demo's names.
    assert_eq!(
        heading(&screen),
        expected_heading(&["years"], None),
        "{screen}"
    );
    assert!(
        screen.contains("┌ salary by years over the fitted line "),
        "{screen}"
    );
    let events: Vec<Option<Vec<u8>>> = common::diabetes::events(40)
        .into_iter()
        .map(|event| Some(serde_json::to_vec(&event).unwrap()))
        .collect();
    common::produce_all(&b, "experience-events", &events);
    // Settled: the rows and the chart are drawn below the total.
    let screen = t.wait_for_settled("the ten-feature model's events", |s| total(s) == Some(45));
    assert_eq!(
        heading(&screen),
        expected_heading(&LINEAR_ORDER, Some("progression")),
        "{screen}"
    );
    let rows = event_rows(&screen).len();
    assert!(rows >= 20, "{screen}");
    assert_eq!(
        assert_rows_are_published(&screen, &b, &LINEAR_ORDER, "progression"),
        rows,
        "{screen}"
    );
    assert!(
        screen.contains("┌ progression by s1: labels where known, else predictions "),
        "{screen}"
    );
    assert!(
        !screen.contains("salary by") && !screen.contains("years"),
        "{screen}"
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
