//! End-to-end latency: a scorer that owns its partitions, then the synthetic producer at a
//! fixed rate; the scorer's closing latency line is the figure.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cluster::{create_topic, Broker};
use crate::measure::timed;
use crate::BIN;

/// Partitions of the latency topic: those of the embedded broker's input topic.
const LATENCY_PARTITIONS: u32 = 3;

/// `(p50, p99, p99.9)` in milliseconds.
pub type Percentiles = (f64, f64, f64);

/// The three latency measures of the run.
pub struct Latencies {
    /// 1,000 events/s, no producer linger.
    pub at_1k: Percentiles,
    /// 1,000 events/s, 1 ms linger.
    pub at_1k_linger1: Percentiles,
    /// 10,000 events/s, 1 ms linger.
    pub at_10k: Percentiles,
}

/// Latency at 1,000 and 10,000 events/s, on a fresh broker each (or on `external`).
pub fn latencies(external: Option<&str>) -> Latencies {
    eprintln!("latency at 1,000 and 10,000 events/s ...");
    // Both clients: a 1 ms fetch wait (the mock cluster holds an empty fetch for all of it), and
    // no producer linger at 1,000/s. At 10,000/s one-record batches are more than the mock
    // cluster can serve (it returns one batch a partition per fetch), so there linger is 1 ms;
    // 1,000/s is measured with it too.
    let at_1k = latency_at(
        1_000,
        10,
        &["-X", "fetch.wait.max.ms=1", "-X", "linger.ms=0"],
        external,
    );
    let at_1k_linger1 = latency_at(
        1_000,
        10,
        &["-X", "fetch.wait.max.ms=1", "-X", "linger.ms=1"],
        external,
    );
    let at_10k = latency_at(
        10_000,
        10,
        &["-X", "fetch.wait.max.ms=1", "-X", "linger.ms=1"],
        external,
    );
    Latencies {
        at_1k,
        at_1k_linger1,
        at_10k,
    }
}

/// `(p50, p99, p99.9)` from score's closing latency line.
fn latency_line(stderr: &str) -> Percentiles {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("latency ms"))
        .unwrap_or_else(|| panic!("no latency line in:\n{stderr}"));
    let field = |name: &str| -> f64 {
        line.split(name)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (field("p50 "), field("p99 "), field("p99.9 "))
}

/// End-to-end latency at `rate_per_s` for `seconds`: a scorer that owns every partition before
/// the first event is made, then the synthetic producer at that rate. Both get `settings`.
fn latency_at(
    rate_per_s: u64,
    seconds: u64,
    settings: &[&str],
    external: Option<&str>,
) -> Percentiles {
    let broker = Broker::start(LATENCY_PARTITIONS, external);
    let b = broker.address.as_str();
    let count = (rate_per_s * seconds).to_string();
    // A fresh broker has the default topic; a real cluster gets a topic of this measure's own,
    // made beforehand (the scorer waits for a missing topic, and `produce -b` refuses one).
    static MEASURE: AtomicU32 = AtomicU32::new(0);
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
    let group = format!("latency-{rate_per_s}-{}", settings.join(""));
    let mut score_args = vec![
        "score", "-b", b, "-t", &topic, "-g", &group, "--quiet", "--count", &count,
    ];
    score_args.extend_from_slice(settings);
    let mut scorer = Command::new(BIN)
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
    timed(BIN, &produce_args);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("scorer stderr");
    assert!(
        scorer.wait().expect("score").success(),
        "score failed:\n{rest}"
    );
    latency_line(&rest)
}
