//! End-to-end latency: a scorer that owns its partitions, then the synthetic producer at a
//! fixed rate; the scorer's closing latency line is the figure.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cluster::{create_topic, Broker};
use crate::BIN;

/// Partitions of the latency topic: those of the embedded broker's input topic.
const LATENCY_PARTITIONS: u32 = 3;

/// `(p50, p99, p99.9)` in milliseconds.
pub type Percentiles = (f64, f64, f64);

/// One latency measure: its percentiles, and what shows a stall at its start.
#[derive(Clone, Copy)]
pub struct LatencyRun {
    pub percentiles: Percentiles,
    /// The slowest event, in milliseconds.
    pub max: f64,
    /// p50 and max of the first second (the scorer's first stats line), in milliseconds.
    pub first_second: (f64, f64),
    /// librdkafka's "Failed to acquire idempotence PID" warnings of the producer and the
    /// scorer: each a retry of InitProducerId, 500 ms later.
    pub pid_retries: usize,
}

/// The latency measures of the run.
pub struct Latencies {
    /// The first measure, as `at_1k`, run to warm the broker (and discarded from the figures).
    pub warm_up: LatencyRun,
    /// 1,000 events/s, no producer linger.
    pub at_1k: LatencyRun,
    /// 1,000 events/s, 1 ms linger.
    pub at_1k_linger1: LatencyRun,
    /// 10,000 events/s, 1 ms linger.
    pub at_10k: LatencyRun,
}

/// A warm-up measure (discarded), then latency at 1,000 and 10,000 events/s, on a fresh broker
/// each (or on `external`).
pub fn latencies(external: Option<&str>) -> Latencies {
    eprintln!("latency: a warm-up measure (discarded), then at 1,000 and 10,000 events/s ...");
    // Both clients: no producer linger at 1,000/s. At 10,000/s one-record batches are more than
    // the mock cluster can serve (it returns one batch a partition per fetch), so there linger
    // is 1 ms; 1,000/s is measured with it too. On the mock cluster a 1 ms fetch wait, since it
    // holds an empty fetch for all of it; a real broker answers a fetch as soon as a record
    // arrives, and a fetch every millisecond made Apache Kafka's collector pause every 1-2 s
    // (BENCHMARKS.md, "The latency tail on Apache Kafka"): there the scorer's own wait.
    let (linger_0, linger_1): (&[&str], &[&str]) = match external {
        None => (
            &["-X", "fetch.wait.max.ms=1", "-X", "linger.ms=0"],
            &["-X", "fetch.wait.max.ms=1", "-X", "linger.ms=1"],
        ),
        Some(_) => (&["-X", "linger.ms=0"], &["-X", "linger.ms=1"]),
    };
    // The first measure on a broker met a stall its later ones did not (BENCHMARKS.md, "Where
    // the full path's time goes on Apache Kafka"): it is run twice, the first time discarded.
    let warm_up = latency_at(1_000, 10, linger_0, external);
    let at_1k = latency_at(1_000, 10, linger_0, external);
    let at_1k_linger1 = latency_at(1_000, 10, linger_1, external);
    let at_10k = latency_at(10_000, 10, linger_1, external);
    Latencies {
        warm_up,
        at_1k,
        at_1k_linger1,
        at_10k,
    }
}

/// `name`'s value in a line of `name value` pairs (`p50 1.23`), NaN if missing.
fn field_of(line: &str, name: &str) -> f64 {
    line.split(name)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The measure from score's stderr (its closing latency line, its first stats line) and the
/// producer's.
fn latency_run(scorer: &str, producer: &str) -> LatencyRun {
    let line = scorer
        .lines()
        .find(|l| l.starts_with("latency ms"))
        .unwrap_or_else(|| panic!("no latency line in:\n{scorer}"));
    let first = scorer
        .lines()
        .find(|l| l.starts_with("scored "))
        .unwrap_or(line);
    let retries = |text: &str| {
        text.lines()
            .filter(|l| l.contains("Failed to acquire idempotence PID"))
            .count()
    };
    LatencyRun {
        percentiles: (
            field_of(line, "p50 "),
            field_of(line, "p99 "),
            field_of(line, "p99.9 "),
        ),
        max: field_of(line, "max "),
        first_second: (field_of(first, "p50 "), field_of(first, "max ")),
        pid_retries: retries(scorer) + retries(producer),
    }
}

/// End-to-end latency at `rate_per_s` for `seconds`: a scorer that owns every partition before
/// the first event is made, then the synthetic producer at that rate. Both get `settings`.
fn latency_at(
    rate_per_s: u64,
    seconds: u64,
    settings: &[&str],
    external: Option<&str>,
) -> LatencyRun {
    let broker = Broker::start(LATENCY_PARTITIONS, external);
    let b = broker.address.as_str();
    let count = (rate_per_s * seconds).to_string();
    // A fresh broker has the default topic; a real cluster gets a topic of this measure's own,
    // made beforehand (the scorer waits for a missing topic, and `produce -b` refuses one).
    static MEASURE: AtomicU32 = AtomicU32::new(0);
    static GROUPS: AtomicU32 = AtomicU32::new(0);
    let topic = match external {
        None => salary_stream::engine::DEFAULT_INPUT_TOPIC.to_owned(),
        Some(_) => {
            let topic = format!(
                "latency-{rate_per_s}-{}-{}",
                MEASURE.fetch_add(1, Ordering::Relaxed),
                std::process::id()
            );
            create_topic(b, &topic, LATENCY_PARTITIONS);
            topic
        }
    };
    // A group of the measure's own: the warm-up and the next measure have the same settings.
    let group = format!(
        "latency-{rate_per_s}-{}-{}",
        GROUPS.fetch_add(1, Ordering::Relaxed),
        settings.join("")
    );
    let mut score_args = vec![
        "score", "-b", b, "-t", &topic, "-g", &group, "--quiet", "--count", &count,
    ];
    score_args.extend_from_slice(settings);
    // librdkafka's warnings on (they are off by default): a failed InitProducerId shows there.
    let mut scorer = Command::new(BIN)
        .env("SALARY_STREAM_LOG", "warn")
        .args(&score_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("score");
    // The clock starts only once the scorer owns its partitions.
    let mut stderr = std::io::BufReader::new(scorer.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = stderr.read_line(&mut line).expect("scorer stderr");
        assert!(n > 0, "the scorer ended before it was assigned partitions");
        if line.starts_with("assigned partitions: [") && !line.contains("[]") {
            break;
        }
    }
    let mut produce_args = vec!["produce", "-b", b, "-t", &topic, "--count", &count];
    let r = rate_per_s.to_string();
    produce_args.extend_from_slice(&["--rate", &r]);
    produce_args.extend_from_slice(settings);
    let produced = Command::new(BIN)
        .env("SALARY_STREAM_LOG", "warn")
        .args(&produce_args)
        .stdout(Stdio::null())
        .output()
        .expect("produce");
    let producer = String::from_utf8_lossy(&produced.stderr);
    assert!(produced.status.success(), "produce failed:\n{producer}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("scorer stderr");
    assert!(
        scorer.wait().expect("score").success(),
        "score failed:\n{rest}"
    );
    latency_run(&rest, &producer)
}
