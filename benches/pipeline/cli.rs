//! The bench's command line.

use clap::Parser;

/// The bench's flags (`cargo bench -- FLAGS`).
#[derive(Parser)]
#[command(about = "salary-stream against kcat (and Kafka's own tools) on the same records")]
pub struct Args {
    /// Records each tool produces and consumes.
    #[arg(long, default_value_t = 800_000)]
    pub records: u64,
    /// Events the dashboard is driven to with its producer unthrottled.
    #[arg(long, default_value_t = 1_000_000)]
    pub dashboard_events: u64,
    /// Runs the Kafka parts against this cluster instead of `salary-stream broker` processes.
    #[arg(long, env = "BENCH_BROKERS", value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Starts Apache Kafka (scripts/kafka --security) for the Kafka parts, with Kafka's own perf
    /// tools, and adds the scorer over its SSL and SASL_SSL listeners beside plaintext.
    #[arg(long, conflicts_with = "brokers")]
    pub apache_kafka: bool,
    /// With --brokers: the broker's JVM on this machine (a one-node cluster), whose CPU
    /// (/proc/PID/stat) each throughput measure then reports beside ours.
    #[arg(long, value_name = "PID", requires = "brokers")]
    pub broker_pid: Option<u32>,
    /// With --brokers: the broker's JMX server (no authentication), whose request and byte
    /// counters each throughput measure then reports (read with Kafka's JmxTool; needs java and
    /// mvn as --kafka-tools does). A one-node cluster: the counters are that broker's.
    #[arg(long, value_name = "HOST:PORT", requires = "brokers")]
    pub broker_jmx: Option<String>,
    /// Adds Kafka's own perf tools against the cluster given with --brokers.
    #[arg(long)]
    pub kafka_tools: bool,
    /// Adds `score --exactly-once` beside at-least-once (meant for a real cluster).
    #[arg(long)]
    pub eos: bool,
    /// Runs only the failover measure (a leader SIGKILLed on a three-node Apache Kafka; about 4
    /// minutes) and prints its table.
    #[arg(long)]
    pub failover: bool,
    /// Runs only the idle measure (a dashboard and a scorer with nothing flowing; about 2
    /// minutes) and prints its rows.
    #[arg(long)]
    pub idle: bool,
    /// Runs only the ten-feature and ONNX rows (the any-model part, on `salary-stream broker`
    /// processes, or with --apache-kafka or --brokers on that cluster) and prints them.
    #[arg(long)]
    pub any_model: bool,
    /// Runs only the latency part (a warm-up measure, then 1,000 and 10,000 events/s; with
    /// --apache-kafka or --brokers on that cluster) and prints its rows.
    #[arg(long)]
    pub latency: bool,
    /// Another build of salary-stream whose idle cost is measured in the same run, each row
    /// beside the same row of the build under test (say, a build of the commit before).
    #[arg(long, value_name = "BIN")]
    pub idle_against: Vec<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    pub bench: bool,
    /// `cargo bench -- --list` and `cargo test --benches` probe the harness: nothing to list.
    #[arg(long, hide = true)]
    pub list: bool,
    /// A name filter `cargo bench NAME` passes; there is one benchmark, so it is ignored.
    #[arg(hide = true)]
    pub filter: Vec<String>,
}
