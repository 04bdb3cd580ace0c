//! The full path with a model of ten features: scikit-learn's diabetes data (data/diabetes.csv)
//! trained by `train`, its events drawn by the producer's own generator for that model (seed 1,
//! labeled), `score --model` with output and commits on them. Its rate is compared with the
//! salary model's full path of the same run: what serving a many-feature model costs.

use std::path::Path;
use std::time::Duration;

use salary_stream::model::Artifact;
use salary_stream::serving::producer::{EventGenerator, Synthetic};

use crate::cluster::{create_topic, Broker};
use crate::measure::{median, timed, timed_lines, timed_on};
use crate::{Run, BIN, FETCH_WAIT, ROUNDS, THROUGHPUT_PARTITIONS};

/// Diabetes events at most: about 190 bytes each, so that 32 partitions of the embedded broker
/// (about 5 MB each) keep them all.
const MAX_RECORDS: u64 = 400_000;

/// The ten-feature full path: the records it read and its median time.
pub struct TenFeatures {
    pub records: u64,
    pub full: Duration,
    /// The records' average size in bytes.
    pub record_bytes: f64,
}

/// Trains the diabetes model in `dir`, writes its events, produces them with kcat into a broker
/// of their own, and times `score --model` on them `ROUNDS` times.
pub fn ten_features(run: &Run<'_>, dir: &Path) -> TenFeatures {
    let model = dir.join("diabetes.json");
    let model = model.to_str().expect("a UTF-8 temp dir");
    let trained = std::process::Command::new(BIN)
        .args([
            "train",
            "--data",
            "data/diabetes.csv",
            "--target",
            "progression",
        ])
        .args(["--out", model])
        .output()
        .expect("salary-stream train");
    assert!(
        trained.status.success(),
        "train: {}",
        String::from_utf8_lossy(&trained.stderr)
    );
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

    let broker = Broker::start(THROUGHPUT_PARTITIONS, run.external);
    let k = broker.address.as_str();
    let topic = match run.external {
        None => salary_stream::engine::DEFAULT_INPUT_TOPIC.to_owned(),
        Some(_) => {
            let name = format!("bench-diabetes-{}", run.pid);
            create_topic(k, &name, THROUGHPUT_PARTITIONS);
            name
        }
    };
    let file = file.to_str().expect("a UTF-8 temp dir");
    timed("kcat", &["-b", k, "-P", "-t", &topic, "-l", file]);
    let mut read = vec!["-b", k, "-C", "-t", &topic, "-o", "beginning", "-e", "-q"];
    read.extend_from_slice(&FETCH_WAIT);
    let (_, records) = timed_lines(broker.pid(), "kcat", &read);
    eprintln!("scoring {records} ten-feature records ({ROUNDS} rounds) ...");
    let count = records.to_string();
    let runs = (0..ROUNDS)
        .map(|round| {
            let group = format!("bench-diabetes-{round}-{}", run.pid);
            let output = format!("bench-diabetes-predictions-{round}-{}", run.pid);
            let mut a = vec![
                "score", "-b", k, "-t", &topic, "-g", &group, "--quiet", "--count", &count,
                "--model", model,
            ];
            if run.external.is_some() {
                create_topic(k, &output, THROUGHPUT_PARTITIONS);
                a.extend_from_slice(&["--output-topic", &output]);
            }
            a.extend_from_slice(&FETCH_WAIT);
            timed_on(broker.pid(), BIN, &a).wall
        })
        .collect();
    TenFeatures {
        records,
        full: median(runs),
        record_bytes,
    }
}
