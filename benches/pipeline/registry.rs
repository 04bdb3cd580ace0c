//! The full path on records framed for a Schema Registry against the same records as JSON:
//! Apicurio Registry started by `scripts/registry` (in memory, a few seconds), the salary
//! model's events drawn by the generator for any model (seed 1, labeled), written once as JSON
//! (the generator's text, produced with kcat) and once as Avro (`produce --format avro -r`, the
//! same draws), and `score -r`, with output and commits, timed on each, the formats
//! alternating. Also the registry look-ups one Avro run made (one per schema id, not per record).
//! Skipped, and said so, against an external cluster or when the registry does not start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use salary_stream::model::Artifact;
use salary_stream::serving::producer::{EventGenerator, Synthetic};
use salary_stream::serving::synthetic::ModelEvents;

use crate::cluster::Broker;
use crate::consuming::kcat_to_end;
use crate::measure::{median, timed, timed_lines, timed_on};
use crate::{Run, BIN, FETCH_WAIT, ROUNDS, THROUGHPUT_PARTITIONS};

/// Records of each format at most: the embedded broker keeps about 5 MB a partition.
const MAX_RECORDS: u64 = 400_000;
/// How long the registry may take to start (a first start prepares its class-data archive).
const START_WAIT: Duration = Duration::from_secs(180);

/// The Avro path against the JSON one: records, median times, and look-ups.
pub struct RegistryPath {
    pub records: u64,
    pub json: Duration,
    pub avro: Duration,
    /// Schema look-ups of one `score -r` run over the Avro records.
    pub lookups: u64,
}

/// Apicurio Registry, stopped (SIGTERM to the script, which stops the JVM) when dropped.
struct Registry {
    child: Child,
    url: String,
}

impl Registry {
    fn start() -> Option<Registry> {
        let mut child = Command::new("scripts/registry")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take()?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line.trim().to_owned());
        });
        let url = rx.recv_timeout(START_WAIT).unwrap_or_default();
        let registry = Registry { child, url };
        registry.url.starts_with("http://").then_some(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Writes the events as JSON and as Avro into a broker each, and times `score` on both.
pub fn registry_path(run: &Run<'_>, dir: &Path) -> Option<RegistryPath> {
    if run.external.is_some() {
        eprintln!("registry part skipped: it runs on the embedded broker only");
        return None;
    }
    eprintln!("starting the Schema Registry (scripts/registry) ...");
    let Some(registry) = Registry::start() else {
        eprintln!("registry part skipped: scripts/registry did not start (java 17+, mvn)");
        return None;
    };
    let url = registry.url.as_str();
    let n = run.records.min(MAX_RECORDS);
    let artifact = Artifact::load(Path::new("assets/model.json")).expect("the salary artifact");
    let file = dir.join("registry-json.ndjson");
    let mut generator = EventGenerator::drawing(
        Synthetic::Model(ModelEvents::new(&artifact, true, 1.0)),
        Some(1),
    );
    let mut text = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..n {
        generator.next_event(&mut buf, salary_stream::engine::now_ms());
        text.extend_from_slice(&buf);
        text.push(b'\n');
    }
    std::fs::write(&file, &text).expect("JSON records");

    let json_broker = Broker::start(THROUGHPUT_PARTITIONS, None);
    let avro_broker = Broker::start(THROUGHPUT_PARTITIONS, None);
    let topic = salary_stream::engine::DEFAULT_INPUT_TOPIC;
    let file = file.to_str().expect("a UTF-8 temp dir");
    timed(
        "kcat",
        &["-b", &json_broker.address, "-P", "-t", topic, "-l", file],
    );
    let count = n.to_string();
    // The same draws as the file: the generator for any model, seed 1, labeled.
    timed(
        BIN,
        &[
            "produce",
            "-b",
            &avro_broker.address,
            "-r",
            url,
            "--format",
            "avro",
            "--labels",
            "--seed",
            "1",
            "--rate",
            "max",
            "--count",
            &count,
        ],
    );
    // What each broker kept (kcat -P has been seen to leave some out): both are scored to the
    // lesser count, so each run handles the same number of records.
    let kept = [&json_broker, &avro_broker]
        .iter()
        .map(|broker| timed_lines(broker.pid(), "kcat", &kcat_to_end(&broker.address, topic)).1)
        .min()
        .unwrap_or(0);
    let count = kept.to_string();
    eprintln!("scoring {kept} records as JSON and as Avro ({ROUNDS} rounds each) ...");
    let score = |broker: &Broker, group: &str, framed: bool| {
        let mut a = vec![
            "score",
            "-b",
            &broker.address,
            "-g",
            group,
            "--quiet",
            "--count",
            &count,
        ];
        if framed {
            a.extend_from_slice(&["-r", url]);
        }
        a.extend_from_slice(&FETCH_WAIT);
        timed_on(broker.pid(), BIN, &a).wall
    };
    let (mut json, mut avro) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let group = format!("bench-registry-{round}-{}", run.pid);
        json.push(score(&json_broker, &group, false));
        avro.push(score(&avro_broker, &group, true));
    }
    let lookups = lookups(&avro_broker.address, url, &count, run.pid);
    Some(RegistryPath {
        records: kept,
        json: median(json),
        avro: median(avro),
        lookups,
    })
}

/// The look-ups one more `score -r` run over the Avro records made, from its closing line.
fn lookups(broker: &str, url: &str, count: &str, pid: u32) -> u64 {
    let group = format!("bench-registry-lookups-{pid}");
    let mut args = vec![
        "score", "-b", broker, "-r", url, "-g", &group, "--quiet", "--count", count,
    ];
    args.extend_from_slice(&FETCH_WAIT);
    let out = Command::new(BIN)
        .args(&args)
        .stdout(Stdio::null())
        .output()
        .expect("salary-stream score");
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("registry {url}: "))?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no look-up count in score's stderr: {stderr}"))
}
