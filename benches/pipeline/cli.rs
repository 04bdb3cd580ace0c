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
