//! The benchmark: salary-stream against kcat on the same records, in one run.
//!
//! `cargo bench` (or `cargo bench -- --records N --dashboard-events N`); `--brokers host:port`
//! (or `BENCH_BROKERS`) runs the Kafka parts against a real cluster instead of
//! `salary-stream broker` processes, each tool and round into a fresh topic of its own.
//! `--apache-kafka` starts Apache Kafka (`scripts/kafka --security --partitions 32`) for those
//! parts, adds Kafka's own performance tools (ConsumerPerformance, ProducerPerformance) as
//! references, and the scorer over its SSL and SASL_SSL listeners beside plaintext;
//! `--brokers host:port --kafka-tools` adds them against that cluster. Prints the machine, a
//! table and one JSON line (a `Results`, serialized). `cargo bench --bench pipeline -- --help`
//! lists the flags. Needs kcat and tmux on PATH (scripts/test installs both); Kafka's tools need
//! java 17+ and mvn (scripts/kafka fetches Kafka once).
//!
//! One module a part: `records` (`write_records`), `producing`, `consuming`, `any_model` (the
//! full path with a ten-feature model, and ONNX models against it), `registry` (the full path on
//! Avro records through a Schema Registry, against the same records as JSON), `failover`
//! (`--failover` alone: how long scoring stalls when a leader of a three-node Apache Kafka dies),
//! `latency` (`latency_at`), `instructions`, `dashboard` (`frame_render_us`,
//! `dashboard_under_load`), `idle` (`idle_costs`: a dashboard and a scorer with nothing flowing;
//! `--idle` alone);
//! `report_onnx` and `report_kafka_tools` add their rows to `report`'s table;
//! `cluster`, `kafka_tools`, `measure` and `watch` (the broker JVM's CPU and its request counts
//! over JMX, on Apache Kafka) are what they run on; `throughput` and `report` turn
//! the runs into the table and the JSON line; `main` runs them in order.

#[path = "../common/mod.rs"]
mod common;

mod any_model;
mod cli;
mod cluster;
mod consuming;
mod dashboard;
mod failover;
mod idle;
mod instructions;
mod kafka_tools;
mod latency;
mod machine;
mod measure;
mod producing;
mod records;
mod registry;
mod report;
mod report_kafka_tools;
mod report_onnx;
mod throughput;
mod watch;

use clap::Parser;

use crate::cli::Args;
use crate::cluster::{Cluster, SecureListeners};
use crate::kafka_tools::KafkaTools;
use crate::report::Figures;
use crate::throughput::Throughput;

/// The scorer binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_salary-stream");
/// Partitions of the throughput topic: the embedded broker keeps 5 MB a partition, 800,000
/// records need about 60 MB, and kcat's keyless records fill partitions unevenly (with 24, one
/// run in two lost some to pruning).
const THROUGHPUT_PARTITIONS: u32 = 32;
/// Each throughput measure is taken this many times, the tools alternating; the median counts.
/// Five, not three: on a shared 2-core VM one slow round in three moved a median ratio by 0.1.
const ROUNDS: usize = 5;
/// The fetch wait both consumers get: librdkafka's mock cluster holds an empty fetch for the
/// whole wait even when records arrive, so a reader that waits for the end of a partition
/// (kcat -e) would otherwise spend 500 ms there.
const FETCH_WAIT: [&str; 2] = ["-X", "fetch.wait.max.ms=5"];
/// kcat with the librdkafka settings the scorer chooses for itself: connections at once, and
/// prefetch thresholds it never reaches (Debian's kcat is built on librdkafka 2.0.2, whose
/// 1 s pause past those thresholds cannot be shortened as the scorer's is).
const KCAT_AS_OURS: [&str; 6] = [
    "-X",
    "enable.sparse.connections=false",
    "-X",
    "queued.min.messages=10000000",
    "-X",
    "queued.max.messages.kbytes=2097151",
];

/// What the whole run shares: the records each tool handles, where the Kafka parts run, Kafka's
/// tools if asked for, the cluster's TLS listeners if it has them, and the bench's pid (for
/// unique names).
struct Run<'a> {
    records: u64,
    /// A model artifact for `score --challenger`.
    challenger: &'a str,
    external: Option<&'a str>,
    tools: Option<&'a KafkaTools>,
    /// With `--apache-kafka` only: the mock cluster has no TLS.
    secure: Option<&'a SecureListeners>,
    pid: u32,
}

/// Runs the parts in order, then prints the table and the JSON line.
fn main() {
    let args = Args::parse();
    if args.list {
        return;
    }
    if args.failover {
        failover::failover();
        return;
    }
    let machine = machine::machine();
    report::print_machine(&machine);
    if args.idle {
        report::print_idle_rows(&idle::idle_costs(&args.idle_against));
        return;
    }
    let mut cluster = Cluster::start(&args);
    if args.latency {
        eprintln!("{}", cluster.text);
        report::print_latency_rows(&latency::latencies(cluster.external()));
        cluster.stop_apache_kafka();
        return;
    }
    let pid = std::process::id();

    // The same records for every tool, as the synthetic producer writes them.
    let dir = std::env::temp_dir().join(format!("salary-stream-bench-{pid}"));
    let (file, record_bytes) = records::write_records(&dir, args.records);
    let challenger = records::write_challenger(&dir);

    let run = Run {
        records: args.records,
        challenger: &challenger,
        external: cluster.external(),
        tools: cluster.tools.as_ref(),
        secure: cluster.secure(),
        pid,
    };
    if args.any_model {
        eprintln!("{}", cluster.text);
        report::print_ten_feature_rows(&any_model::ten_features(&run, &dir, &file));
        cluster.stop_apache_kafka();
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let produced = producing::producing(&run, &file);
    let (kcat_broker, topic) = &produced.kept;
    let consumed = consuming::consuming(&run, kcat_broker, topic, args.eos);
    let throughput = Throughput::new(&run, produced, consumed);
    let ten_features = any_model::ten_features(&run, &dir, &file);
    let registry = registry::registry_path(&run, &dir);
    let latency = latency::latencies(cluster.external());
    // The rest uses no broker of the bench's: Kafka's cores are free again.
    cluster.stop_apache_kafka();

    let instructions = instructions::instructions(&file, throughput.consumed, &dir, &challenger);

    eprintln!("rendering frames ...");
    let frame_us = dashboard::frame_render_us();

    let events = args.dashboard_events;
    eprintln!("dashboard with the producer unthrottled until {events} events ...");
    let dashboard = dashboard::dashboard_under_load(events);
    let idle = idle::idle_costs(&args.idle_against);

    let figures = Figures {
        machine,
        broker: cluster.text,
        record_bytes,
        throughput,
        ten_features,
        registry,
        latency,
        instructions,
        frame_us,
        dashboard,
        idle,
    };
    report::print_table(&figures);
    report::print_json(figures);
    let _ = std::fs::remove_dir_all(&dir);
}
