//! The full path with a model of ten features: scikit-learn's diabetes data (data/diabetes.csv)
//! trained by `train`, its events drawn by the producer's own generator for that model (seed 1,
//! labeled), `score --model` with output and commits on them. Its reference is the salary
//! model's full path on as many of the bench's salary records, on a broker of its own, the two
//! alternating in the same rounds: what serving a many-feature model costs, with the start-up
//! and group join of each run weighing the same on both.
//!
//! Then the ONNX models of tests/onnx (an MLP, gradient-boosted trees, a random forest, made by
//! scripts/onnx-models from the same data), imported by `import`, scored on the same topic with
//! output and commits, each against the ten-feature OLS on the same records in the same rounds.

use std::path::Path;
use std::time::Duration;

use salary_stream::model::Artifact;
use salary_stream::serving::producer::{EventGenerator, Synthetic};

use crate::cluster::{create_topic, fresh_topic, Broker};
use crate::consuming::kcat_to_end;
use crate::measure::{median, run_to_end, timed, timed_lines, timed_on};
use crate::{Run, BIN, FETCH_WAIT, ROUNDS, THROUGHPUT_PARTITIONS};

/// Diabetes events at most: about 190 bytes each, so that 32 partitions of the embedded broker
/// (about 5 MB each) keep them all.
const MAX_RECORDS: u64 = 400_000;

/// The ONNX rows read at most this many of the ten-feature topic's records a round (whichever
/// the scorer reads first): five measures of five rounds, each slower than the OLS fit's.
const ONNX_RECORDS: u64 = 100_000;

/// The ten-feature full path: the records it read and its median time, and the salary model's on
/// as many records in the same rounds.
pub struct TenFeatures {
    pub records: u64,
    pub full: Duration,
    pub salary: Duration,
    /// The records' average size in bytes.
    pub record_bytes: f64,
    pub onnx: OnnxRows,
}

/// The ONNX models' full path on the ten-feature topic, and its reference.
pub struct OnnxRows {
    /// Records each round read: the ten-feature row's, at most `ONNX_RECORDS`.
    pub records: u64,
    /// The ten-feature OLS fit on those records, in the same rounds: the reference.
    pub ols: Duration,
    /// Each ONNX measure (`ONNX_MEASURES`, in order) and its median time.
    pub models: Vec<(&'static OnnxMeasure, Duration)>,
}

/// One ONNX measure: its JSON key, its row's name, the serving model and the challenger (files
/// tests/onnx/NAME.onnx).
pub struct OnnxMeasure {
    pub key: &'static str,
    pub name: &'static str,
    model: &'static str,
    challenger: Option<&'static str>,
}

const ONNX_MEASURES: [OnnxMeasure; 4] = [
    OnnxMeasure {
        key: "mlp",
        name: "score, ONNX MLP: vs 10-feature OLS",
        model: "mlp",
        challenger: None,
    },
    OnnxMeasure {
        key: "gbr",
        name: "score, ONNX boosted trees: vs 10-feature OLS",
        model: "gbr",
        challenger: None,
    },
    OnnxMeasure {
        key: "forest",
        name: "score, ONNX random forest: vs 10-feature OLS",
        model: "forest",
        challenger: None,
    },
    OnnxMeasure {
        key: "forest_mlp_challenger",
        name: "score, ONNX forest + MLP challenger: vs OLS",
        model: "forest",
        challenger: Some("mlp"),
    },
];

/// Trains the diabetes model in `dir`, writes its events, produces them with kcat into a broker
/// of their own, as many of `salary_records` (the bench's file) into another, and times `score
/// --model` on the first and `score` on the second `ROUNDS` times, alternating.
pub fn ten_features(run: &Run<'_>, dir: &Path, salary_records: &str) -> TenFeatures {
    let model = dir.join("diabetes.json");
    let model = model.to_str().expect("a UTF-8 temp dir");
    let train = [
        "train",
        "--data",
        "data/diabetes.csv",
        "--target",
        "progression",
    ];
    run_to_end(BIN, &[&train[..], &["--out", model]].concat());
    let artifact = Artifact::load(Path::new(model)).expect("the diabetes artifact");
    let n = run.records.min(MAX_RECORDS);
    let file = dir.join("diabetes.ndjson");
    let mut generator =
        EventGenerator::drawing(Synthetic::for_artifact(&artifact, true, 1.0), Some(1));
    let mut text = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..n {
        generator.next_event(&mut buf, salary_stream::engine::now_ms());
        text.extend_from_slice(&buf);
        text.push(b'\n');
    }
    std::fs::write(&file, &text).expect("diabetes records");
    let record_bytes = text.len() as f64 / n as f64 - 1.0;

    let file = file.to_str().expect("a UTF-8 temp dir");
    let (broker, topic) = topic_of(run, "diabetes", file);
    let (_, records) = timed_lines(broker.pid(), "kcat", &kcat_to_end(&broker.address, &topic));
    let scoring = Scoring {
        run,
        broker: &broker,
        topic: &topic,
    };
    let (full, salary) = {
        let (salary_broker, salary_topic) = salary_topic(run, dir, salary_records, records);
        let salary = Scoring {
            run,
            broker: &salary_broker,
            topic: &salary_topic,
        };
        alternating(&scoring, &salary, records, model)
    };
    let onnx = onnx_rows(&scoring, dir, model, records);
    TenFeatures {
        records,
        full,
        salary,
        record_bytes,
        onnx,
    }
}

/// The first `records` of the bench's salary records (`salary_records`) in a broker of their own
/// (it keeps them all: they are a third of the ten-feature records' bytes), and their topic.
fn salary_topic(run: &Run<'_>, dir: &Path, salary_records: &str, records: u64) -> (Broker, String) {
    let file = dir.join("salary-reference.ndjson");
    let text = std::fs::read_to_string(salary_records).expect("the salary records");
    let lines: Vec<&str> = text.lines().take(records as usize).collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("salary reference records");
    topic_of(
        run,
        "salary-reference",
        file.to_str().expect("a UTF-8 temp dir"),
    )
}

/// Times the ten-feature model `model` on `ten` and the salary model on `salary`, `records` of
/// each, `ROUNDS` rounds after a round of each discarded, which goes first alternating; their
/// medians.
fn alternating(
    ten: &Scoring<'_>,
    salary: &Scoring<'_>,
    records: u64,
    model: &str,
) -> (Duration, Duration) {
    eprintln!("scoring {records} ten-feature and as many salary records ({ROUNDS} rounds) ...");
    // A round of each first, discarded: on a broker just started (Apache Kafka's JIT) the first
    // runs are slower, and the salary reference rose from 456,266 to 873,935 records/s over three
    // `--any-model` runs on one Apache Kafka without it.
    ten.score("diabetes-warm-up", records, Some(model), None);
    salary.score("salary-warm-up", records, None, None);
    let (mut tens, mut salaries) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let timed_ten = || ten.score(&format!("diabetes-{round}"), records, Some(model), None);
        let timed_salary = || salary.score(&format!("salary-{round}"), records, None, None);
        if round % 2 == 0 {
            tens.push(timed_ten());
            salaries.push(timed_salary());
        } else {
            salaries.push(timed_salary());
            tens.push(timed_ten());
        }
    }
    (median(tens), median(salaries))
}

/// A broker of its own for the records of `file` (`salary-stream broker`, or a new topic `bench-NAME-PID`
/// on the cluster the bench runs on), and their topic, the file produced into it by kcat.
fn topic_of(run: &Run<'_>, name: &str, file: &str) -> (Broker, String) {
    let (broker, topic) = fresh_topic(run.external, name, run.pid);
    timed(
        "kcat",
        &["-b", &broker.address, "-P", "-t", &topic, "-l", file],
    );
    (broker, topic)
}

/// Where the records are: the run, their broker and their topic.
struct Scoring<'a> {
    run: &'a Run<'a>,
    broker: &'a Broker,
    topic: &'a str,
}

impl Scoring<'_> {
    /// Times `score [--model MODEL] [--challenger C]` with output and commits on `records`
    /// records of the topic, in a new group (`name` makes it and the output topic unique).
    fn score(
        &self,
        name: &str,
        records: u64,
        model: Option<&str>,
        challenger: Option<&str>,
    ) -> Duration {
        let (k, pid) = (self.broker.address.as_str(), self.run.pid);
        let group = format!("bench-{name}-{pid}");
        let output = format!("bench-{name}-predictions-{pid}");
        let count = records.to_string();
        let mut a = vec![
            "score", "-b", k, "-t", self.topic, "-g", &group, "--quiet", "--count", &count,
        ];
        if let Some(m) = model {
            a.extend_from_slice(&["--model", m]);
        }
        if let Some(c) = challenger {
            a.extend_from_slice(&["--challenger", c]);
        }
        if self.run.external.is_some() {
            create_topic(k, &output, THROUGHPUT_PARTITIONS);
            a.extend_from_slice(&["--output-topic", &output]);
        }
        a.extend_from_slice(&FETCH_WAIT);
        timed_on(self.broker.pid(), BIN, &a).wall
    }

    /// Checks that `model` scores the topic's records rather than dead-letters them (a row that
    /// timed dead letters would still exit 0): 1,000 of them, none bad, before any is timed.
    fn check_scores(&self, name: &str, model: &str) {
        let group = format!("bench-check-{name}-{}", self.run.pid);
        let stderr = run_to_end(
            BIN,
            &[
                "score",
                "-b",
                &self.broker.address,
                "-t",
                self.topic,
                "-g",
                &group,
                "--quiet",
                "--count",
                "1000",
                "--no-output",
                "--model",
                model,
            ],
        );
        assert!(
            stderr.contains("done: scored 1000  bad 0 "),
            "{name} on the ten-feature records: {stderr}"
        );
    }
}

/// Imports tests/onnx's MLP, boosted trees and forest on data/diabetes.csv into `dir`, and times
/// each `ONNX_MEASURES` row and the OLS fit `ols` on the same records of the topic (at most
/// `ONNX_RECORDS` of the `records` there), `ROUNDS` rounds, the order rotating each round.
fn onnx_rows(scoring: &Scoring<'_>, dir: &Path, ols: &str, records: u64) -> OnnxRows {
    let path = |name: &str| {
        let path = dir.join(format!("{name}.json"));
        path.to_str().expect("a UTF-8 temp dir").to_owned()
    };
    for name in ["mlp", "gbr", "forest"] {
        let (onnx, model) = (format!("tests/onnx/{name}.onnx"), path(name));
        let data = ["--data", "data/diabetes.csv", "--target", "progression"];
        run_to_end(
            BIN,
            &[&["import", &onnx][..], &data, &["--out", &model]].concat(),
        );
        scoring.check_scores(name, &model);
    }
    let n = records.min(ONNX_RECORDS);
    eprintln!("scoring {n} ten-feature records with ONNX models ({ROUNDS} rounds) ...");
    // The OLS fit first, then each ONNX measure.
    let measures = ONNX_MEASURES.len() + 1;
    let mut times = vec![Vec::new(); measures];
    for round in 0..ROUNDS {
        for i in (0..measures).map(|i| (i + round) % measures) {
            let name = format!("onnx-{i}-{round}");
            times[i].push(match i.checked_sub(1).map(|m| &ONNX_MEASURES[m]) {
                None => scoring.score(&name, n, Some(ols), None),
                Some(m) => {
                    let challenger = m.challenger.map(path);
                    scoring.score(&name, n, Some(&path(m.model)), challenger.as_deref())
                }
            });
        }
    }
    let mut medians = times.into_iter().map(median);
    OnnxRows {
        records: n,
        ols: medians.next().expect("the OLS fit's"),
        models: ONNX_MEASURES.iter().zip(medians).collect(),
    }
}
