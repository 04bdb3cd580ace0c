//! The producing and consuming runs reduced to what the report shows: median wall times, CPU
//! seconds per million records, and the medians of Kafka's tools' own figures.

use std::time::Duration;

use crate::consuming::Consumed;
use crate::measure::{median, median_f64, rate, Timed};
use crate::producing::Produced;
use crate::watch::Requests;
use crate::Run;

/// A CPU row: JSON key, table name, what a record cost, the row it is compared with.
pub type CpuRow = (&'static str, &'static str, Cost, &'static str);

/// What one measure's records cost, medians of its rounds: CPU seconds per million records of
/// the process under test and of the broker (where the bench can read the broker's CPU), how
/// busy both kept the machine's cores, and what the broker counted (where its JMX is read).
#[derive(Clone, Copy)]
pub struct Cost {
    /// The records the measure handled.
    pub records: u64,
    pub own: f64,
    pub broker: Option<f64>,
    /// (ours + the broker's CPU seconds) / wall seconds / cores, in percent.
    pub busy_pct: Option<f64>,
    /// The machine's cores busy over the span, every process counted (/proc/stat), in percent.
    pub machine_busy_pct: Option<f64>,
    /// The broker's counts over the measure's span, each the median of the rounds.
    pub requests: Option<Requests>,
}

/// The throughput part's medians (of `ROUNDS` rounds each).
pub struct Throughput {
    /// Records each producer wrote.
    pub produced: u64,
    /// Records each consumer read: what kcat could read back.
    pub consumed: u64,
    pub kcat_plain: Duration,
    pub kcat_tuned: Duration,
    /// kcat -C piped into kcat -P.
    pub kcat_relay: Duration,
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
            kcat_relay: wall(consumed.kcat_relay.clone()),
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

/// What `runs` of `n` records each cost: medians of the rounds, the process under test and the
/// broker apart.
fn cpu_of(runs: &[Timed], n: u64) -> Cost {
    let per_million = |cpu: Duration| cpu.as_secs_f64() * 1e6 / n as f64;
    let own = median_f64(runs.iter().map(|t| per_million(t.cpu)).collect());
    let median_of = |values: Vec<f64>| (!values.is_empty()).then(|| median_f64(values));
    let broker = median_of(
        runs.iter()
            .filter_map(|t| t.broker_cpu.map(per_million))
            .collect(),
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let busy_pct = median_of(
        runs.iter()
            .filter_map(|t| {
                let both = t.cpu + t.broker_cpu?;
                Some(100.0 * both.as_secs_f64() / t.wall.as_secs_f64() / cores)
            })
            .collect(),
    );
    let machine_busy_pct = median_of(
        runs.iter()
            .filter_map(|t| t.machine_busy.map(|b| 100.0 * b))
            .collect(),
    );
    let counted: Vec<Requests> = runs.iter().filter_map(|t| t.requests).collect();
    let requests = (!counted.is_empty()).then(|| {
        let field = |f: fn(&Requests) -> u64| {
            median_f64(counted.iter().map(|r| f(r) as f64).collect()).round() as u64
        };
        Requests {
            produce: field(|r| r.produce),
            fetch: field(|r| r.fetch),
            offset_commit: field(|r| r.offset_commit),
            other: field(|r| r.other),
            bytes_in: field(|r| r.bytes_in),
            bytes_out: field(|r| r.bytes_out),
            messages_in: field(|r| r.messages_in),
        }
    });
    Cost {
        records: n,
        own,
        broker,
        busy_pct,
        machine_busy_pct,
        requests,
    }
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
            "kcat_relay",
            "kcat -C | kcat -P, tuned as ours",
            cpu_of(&consumed.kcat_relay, records),
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
