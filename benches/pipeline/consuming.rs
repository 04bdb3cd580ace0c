//! The consuming part: kcat -C (as installed and tuned), `score` in its variants (over TLS too,
//! on Apache Kafka) and (with Kafka's tools) ConsumerPerformance, all reading the records kcat
//! produced.

use std::time::Duration;

use crate::cluster::{create_topic, Broker};
use crate::measure::{timed_lines, timed_on, Timed};
use crate::{Run, BIN, FETCH_WAIT, KCAT_AS_OURS, ROUNDS, THROUGHPUT_PARTITIONS};

/// The consuming part, on the records kcat produced: what each consumer took, medians later.
#[derive(Default)]
pub struct Consumed {
    /// The records every consumer handles: what kcat can read back.
    pub records: u64,
    pub kcat_plain: Vec<Timed>,
    pub kcat_tuned: Vec<Timed>,
    /// kcat -C (tuned) piped into kcat -P: the full path's work (read, then write each record
    /// to another topic) done by kcat, the reference the full path is compared with too.
    pub kcat_relay: Vec<Timed>,
    pub bare: Vec<Timed>,
    pub full: Vec<Timed>,
    pub metered: Vec<Timed>,
    pub challenged: Vec<Timed>,
    pub eos: Vec<Timed>,
    /// The full path over the SSL listener (Apache Kafka only).
    pub ssl: Vec<Timed>,
    /// The full path over the SASL_SSL listener, SCRAM-SHA-512 (Apache Kafka only).
    pub sasl_ssl: Vec<Timed>,
    pub kafka_c: Vec<Duration>,
    pub kafka_c_own: Vec<f64>,
    pub kafka_c_mb: Vec<f64>,
    pub kafka_c_fetch: Vec<f64>,
}

/// kcat -C (as installed and tuned), `score` bare, with output, with metrics, exactly-once
/// (`eos`), over SSL and SASL_SSL (where the cluster has them), and ConsumerPerformance, on
/// `topic` of `broker`, the order rotating each round.
pub fn consuming(run: &Run<'_>, broker: &Broker, topic: &str, eos_too: bool) -> Consumed {
    let measures = measures(run, eos_too);
    eprintln!(
        "consuming and scoring: {} ({ROUNDS} rounds) ...",
        measures.join(", ")
    );
    // The broker keeps about 5 MB a partition: score exactly what kcat can read.
    let (_, records) = kcat_read(broker, topic, &[]);
    let n = records.to_string();
    let mut consumed = Consumed {
        records,
        ..Consumed::default()
    };
    for round in 0..ROUNDS {
        // Rotate the order each round, so that none always runs first.
        for i in 0..measures.len() {
            let measure = measures[(i + round) % measures.len()];
            consumed.take(run, broker, topic, &n, measure, round);
        }
    }
    consumed
}

/// The consumers measured, in the order of the first round.
fn measures(run: &Run<'_>, eos_too: bool) -> Vec<&'static str> {
    // "metered": the full path again with `--metrics` on, for what serving metrics costs.
    // "challenged": the full path with `--challenger`, for what a second model costs.
    // "eos" (with --eos): the full path in exactly-once mode (transactions every 0.1 s), for what
    // that costs; meant for a real cluster, since the mock cluster serves transactions slowly.
    // "kcat relay": kcat -C piped into kcat -P, for the full path's own reference.
    let mut measures = vec![
        "kcat",
        "kcat tuned",
        "kcat relay",
        "bare",
        "full",
        "metered",
        "challenged",
    ];
    if eos_too {
        measures.push("eos");
    }
    // "ssl", "sasl_ssl": the full path through the same broker's TLS listeners, for what TLS (and
    // SASL/SCRAM on top) costs against plaintext.
    if run.secure.is_some() {
        measures.extend(["ssl", "sasl_ssl"]);
    }
    if run.tools.is_some() {
        measures.push("kafka");
    }
    measures
}

/// kcat's arguments to read `topic` at `address` from the beginning to the end, quietly, each
/// fetch waiting as the scorer's does.
pub fn kcat_to_end<'a>(address: &'a str, topic: &'a str) -> Vec<&'a str> {
    let mut a = vec![
        "-b",
        address,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
    ];
    a.extend_from_slice(&FETCH_WAIT);
    a
}

/// kcat -C -e on `topic` from the beginning, with `extra` settings; returns what it took and the
/// records it read.
fn kcat_read(broker: &Broker, topic: &str, extra: &[&str]) -> (Timed, u64) {
    let mut a = kcat_to_end(&broker.address, topic);
    a.extend_from_slice(extra);
    timed_lines(broker.pid(), "kcat", &a)
}

/// kcat -C -e (tuned) on `topic` piped into kcat -P writing every record to another topic (on a
/// cluster a fresh one of 32 partitions, made before the clock starts): what reading and
/// writing each record once costs without scoring it. Timed as the shell running both.
fn kcat_relay(run: &Run<'_>, broker: &Broker, topic: &str, round: usize) -> Timed {
    let k = broker.address.as_str();
    let output = match run.external {
        Some(_) => {
            let output = format!("bench-relay-{round}-{}", run.pid);
            create_topic(k, &output, THROUGHPUT_PARTITIONS);
            output
        }
        None => salary_stream::engine::DEFAULT_OUTPUT_TOPIC.to_owned(),
    };
    let mut read = vec!["kcat"];
    read.extend(kcat_to_end(k, topic));
    read.extend_from_slice(&KCAT_AS_OURS);
    let pipeline = format!(
        "set -o pipefail; {} | kcat -b {k} -P -t {output}",
        read.join(" ")
    );
    timed_on(broker.pid(), "bash", &["-c", &pipeline])
}

/// One `score --count n` run of `measure` ("bare", "full", "metered", "challenged", "eos",
/// "ssl" or "sasl_ssl") in `round`, in a group of its own.
fn score(
    run: &Run<'_>,
    broker: &Broker,
    topic: &str,
    n: &str,
    measure: &str,
    round: usize,
) -> Timed {
    let (k, pid) = (broker.address.as_str(), run.pid);
    let group = format!("bench-{measure}-{round}-{pid}");
    // Over TLS the scorer connects to that listener; topics are made through plaintext.
    let secure = secure_client(run, measure);
    let bootstrap = secure.as_ref().map_or(k, |(address, _)| *address);
    let mut a = vec![
        "score", "-b", bootstrap, "-t", topic, "-g", &group, "--quiet", "--count", n,
    ];
    if let Some((_, settings)) = &secure {
        a.extend(settings.iter().map(String::as_str));
    }
    // On a cluster, predictions go to a fresh topic of 32 partitions, made
    // before the clock starts.
    let output = format!("bench-predictions-{round}-{pid}");
    if measure == "bare" {
        a.push("--no-output");
    } else if run.external.is_some() {
        create_topic(k, &output, THROUGHPUT_PARTITIONS);
        a.extend_from_slice(&["--output-topic", &output]);
    }
    if measure == "metered" {
        a.extend_from_slice(&["--metrics", "127.0.0.1:0"]);
    }
    if measure == "challenged" {
        a.extend_from_slice(&["--challenger", run.challenger]);
    }
    if measure == "eos" {
        a.extend_from_slice(&["--exactly-once", "--instance-id", "bench"]);
    }
    a.extend_from_slice(&FETCH_WAIT);
    timed_on(broker.pid(), BIN, &a)
}

/// Where "ssl" and "sasl_ssl" connect, and the `-X` settings a user gives for that listener (the
/// CA verified; librdkafka checks the host name by default); `None` for the plaintext measures.
fn secure_client<'a>(run: &Run<'a>, measure: &str) -> Option<(&'a str, Vec<String>)> {
    let secure = run
        .secure
        .filter(|_| matches!(measure, "ssl" | "sasl_ssl"))?;
    let (user, password) = &secure.user;
    let (address, mut settings) = if measure == "ssl" {
        (
            secure.ssl.as_str(),
            vec!["security.protocol=SSL".to_owned()],
        )
    } else {
        let settings = vec![
            "security.protocol=SASL_SSL".to_owned(),
            "sasl.mechanisms=SCRAM-SHA-512".to_owned(),
            format!("sasl.username={user}"),
            format!("sasl.password={password}"),
        ];
        (secure.sasl_ssl.as_str(), settings)
    };
    settings.push(format!("ssl.ca.location={}", secure.ca));
    let flags = settings.into_iter().flat_map(|s| ["-X".to_owned(), s]);
    Some((address, flags.collect()))
}

impl Consumed {
    /// Takes `measure` once, in `round`, reading `n` records of `topic`, and keeps what it took.
    fn take(
        &mut self,
        run: &Run<'_>,
        broker: &Broker,
        topic: &str,
        n: &str,
        measure: &str,
        round: usize,
    ) {
        match measure {
            "kcat" => {
                let (t, lines) = kcat_read(broker, topic, &[]);
                assert_eq!(
                    lines, self.records,
                    "kcat read a different number of records"
                );
                self.kcat_plain.push(t);
            }
            "kcat tuned" => {
                let (t, lines) = kcat_read(broker, topic, &KCAT_AS_OURS);
                assert_eq!(
                    lines, self.records,
                    "kcat read a different number of records"
                );
                self.kcat_tuned.push(t);
            }
            "kcat relay" => self.kcat_relay.push(kcat_relay(run, broker, topic, round)),
            "kafka" => {
                let group = format!("bench-kafka-{round}-{}", run.pid);
                let kafka = run.tools.as_ref().expect("Kafka's tools");
                let (t, own) = kafka.consume(&broker.address, topic, n, &group);
                self.kafka_c.push(t);
                self.kafka_c_own.push(own.per_s);
                self.kafka_c_mb.push(own.mb_per_s);
                self.kafka_c_fetch.push(own.fetch_per_s);
            }
            score_measure => {
                let t = score(run, broker, topic, n, score_measure, round);
                match score_measure {
                    "bare" => self.bare.push(t),
                    "metered" => self.metered.push(t),
                    "challenged" => self.challenged.push(t),
                    "eos" => self.eos.push(t),
                    "ssl" => self.ssl.push(t),
                    "sasl_ssl" => self.sasl_ssl.push(t),
                    _ => self.full.push(t),
                }
            }
        }
    }
}
