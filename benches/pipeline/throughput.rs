//! The producing and consuming runs reduced to what the report shows: median wall times, CPU
//! seconds per million records, and the medians of Kafka's tools' own figures.

use std::time::Duration;

use crate::consuming::Consumed;
use crate::measure::{median, median_f64, rate, Timed};
use crate::producing::Produced;
use crate::Run;

/// A CPU row: JSON key, table name, (own, broker, ...) figures, the row it is compared with.
pub type CpuRow = (&'static str, &'static str, (f64, Option<f64>), &'static str);

/// The throughput part's medians (of `ROUNDS` rounds each).
pub struct Throughput {
    /// Records each producer wrote.
    pub produced: u64,
    /// Records each consumer read: what kcat could read back.
    pub consumed: u64,
    pub kcat_plain: Duration,
    pub kcat_tuned: Duration,
    pub bare: Duration,
    pub full: Duration,
    pub metered: Duration,
    pub challenged: Duration,
    /// With `--eos` only.
    pub eos: Option<Duration>,
    /// The full path over SSL, on Apache Kafka only.
    pub ssl: Option<Duration>,
    /// The full path over SASL_SSL with SCRAM-SHA-512, on Apache Kafka only.
    pub sasl_ssl: Option<Duration>,
    pub kcat_p: Duration,
    pub ours_p: Duration,
    pub cpu_rows: Vec<CpuRow>,
    /// With Kafka's tools only.
    pub kafka: Option<KafkaMedians>,
}

/// Kafka's tools' medians, in records/s (and MB/s).
#[derive(Clone, Copy)]
pub struct KafkaMedians {
    /// ConsumerPerformance over its whole process.
    pub c_wall: f64,
    /// ConsumerPerformance's own `nMsg.sec`.
    pub c_own: f64,
    /// ConsumerPerformance's own `MB.sec`.
    pub c_mb: f64,
    /// ConsumerPerformance's own `fetch.nMsg.sec`.
    pub c_fetch: f64,
    /// ProducerPerformance over its whole process.
    pub p_wall: f64,
    /// ProducerPerformance's own records/sec.
    pub p_own: f64,
}

impl Throughput {
    /// The medians of `produced` and `consumed`; drops the broker kept for consuming first.
    pub fn new(run: &Run<'_>, produced: Produced, consumed: Consumed) -> Throughput {
        let Produced {
            kcat: kcat_p,
            ours: ours_p,
            kafka: kafka_p,
            kafka_own: kafka_p_own,
            kept,
        } = produced;
        drop(kept);
        let (records, produced) = (consumed.records, run.records);
        let cpu_rows = cpu_rows(&consumed, &kcat_p, &ours_p, produced);
        let wall = |runs: Vec<Timed>| median(runs.into_iter().map(|t| t.wall).collect());
        let kafka = run.tools.as_ref().map(|_| KafkaMedians {
            c_wall: rate(records, median(consumed.kafka_c)),
            c_own: median_f64(consumed.kafka_c_own),
            c_mb: median_f64(consumed.kafka_c_mb),
            c_fetch: median_f64(consumed.kafka_c_fetch),
            p_wall: rate(produced, median(kafka_p)),
            p_own: median_f64(kafka_p_own),
        });
        let wall_if_taken = |runs: Vec<Timed>| (!runs.is_empty()).then(|| wall(runs));
        Throughput {
            produced,
            consumed: records,
            kcat_plain: wall(consumed.kcat_plain),
            kcat_tuned: wall(consumed.kcat_tuned),
            bare: wall(consumed.bare),
            full: wall(consumed.full),
            metered: wall(consumed.metered),
            challenged: wall(consumed.challenged),
            eos: wall_if_taken(consumed.eos),
            ssl: wall_if_taken(consumed.ssl),
            sasl_ssl: wall_if_taken(consumed.sasl_ssl),
            kcat_p: wall(kcat_p),
            ours_p: wall(ours_p),
            cpu_rows,
            kafka,
        }
    }
}

/// CPU seconds per million records: medians, the process under test and the broker apart.
fn cpu_of(runs: &[Timed], n: u64) -> (f64, Option<f64>) {
    let per_million = |cpu: Duration| cpu.as_secs_f64() * 1e6 / n as f64;
    let own = median_f64(runs.iter().map(|t| per_million(t.cpu)).collect());
    let broker: Vec<f64> = runs
        .iter()
        .filter_map(|t| t.broker_cpu.map(per_million))
        .collect();
    (own, (!broker.is_empty()).then(|| median_f64(broker)))
}

/// The CPU rows of the table and the JSON line, consuming first, then producing; the rows over
/// TLS only where they were measured.
fn cpu_rows(consumed: &Consumed, kcat_p: &[Timed], ours_p: &[Timed], produced: u64) -> Vec<CpuRow> {
    let records = consumed.records;
    // (JSON key, table name, figure, the row it is compared with): each of ours against kcat on
    // the same side; over TLS, against the same scorer over plaintext.
    let mut rows = vec![
        (
            "kcat_consume",
            "consume: kcat -C -e, tuned as ours",
            cpu_of(&consumed.kcat_tuned, records),
            "kcat_consume",
        ),
        (
            "score_bare",
            "score --quiet --no-output",
            cpu_of(&consumed.bare, records),
            "kcat_consume",
        ),
        (
            "score_full",
            "score --quiet, output + commits",
            cpu_of(&consumed.full, records),
            "kcat_consume",
        ),
        (
            "score_challenger",
            "score --quiet, output + commits, --challenger",
            cpu_of(&consumed.challenged, records),
            "kcat_consume",
        ),
    ];
    if !consumed.ssl.is_empty() {
        rows.push((
            "score_ssl",
            "score, output + commits, over SSL: vs plaintext",
            cpu_of(&consumed.ssl, records),
            "score_full",
        ));
    }
    if !consumed.sasl_ssl.is_empty() {
        rows.push((
            "score_sasl_ssl",
            "score, output + commits, over SASL_SSL SCRAM-SHA-512: vs plaintext",
            cpu_of(&consumed.sasl_ssl, records),
            "score_full",
        ));
    }
    rows.extend([
        (
            "kcat_produce",
            "produce: kcat -P",
            cpu_of(kcat_p, produced),
            "kcat_produce",
        ),
        (
            "produce",
            "produce --rate max",
            cpu_of(ours_p, produced),
            "kcat_produce",
        ),
    ]);
    rows
}
