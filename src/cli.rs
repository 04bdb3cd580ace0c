//! The command line (clap), following kcat's conventions where they exist.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::engine::{
    Rate, DEFAULT_DLQ_TOPIC, DEFAULT_GROUP, DEFAULT_INPUT_TOPIC, DEFAULT_OUTPUT_TOPIC,
};
use crate::kafka::offset_spec::OffsetSpec;
use crate::kafka::properties::{client_properties, env_file, SettingsError};
use crate::model::{ColumnChoice, TrainSpec};

/// The default model artifact path.
pub const DEFAULT_MODEL: &str = "assets/model.json";

/// Live machine-learning predictions on Apache Kafka, in your terminal.
///
/// With no command: the dashboard when stdout is a terminal, else the headless scorer.
#[derive(Debug, Parser)]
#[command(
    name = "salary-stream",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Dashboard options, when no command is given.
    #[command(flatten)]
    pub dash: DashArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The live dashboard (the default).
    Dash(DashArgs),
    /// Fit ordinary least squares on a CSV, print the coefficients and the fit, and write the
    /// artifact.
    ///
    /// Refused, in one line naming the column, with exit status 1: a target or feature that is
    /// not a column, a cell that is not a number (file:line), a constant feature, collinear
    /// features, fewer rows than features plus one. With --target and no --feature, columns
    /// none of whose cells is a number are left out, and said so.
    Train(TrainArgs),
    /// Wrap a regression model exported to ONNX (by skl2onnx) into an artifact every command
    /// serves, with the CSV it was fitted on; print the features and the fit, and write the
    /// artifact and, beside it, a copy of the ONNX file named after it (models/gbr.json and
    /// models/gbr.onnx).
    ///
    /// The features are chosen as `train` chooses them, in the model's input order; their ranges
    /// and moments, and the model's R² and RMSE, come from every row of the CSV. Refused, in one
    /// line with exit status 1: what `train` refuses in the CSV, a model with an op nothing here
    /// runs (naming the op), an input width other than the number of features, an output of more
    /// than one value a row (naming the shapes).
    Import(ImportArgs),
    /// One-shot predictions: of YEARS for a one-feature model, or of JSON events on stdin for any.
    ///
    /// With YEARS: one prediction a line, to two decimals (the salary demo's cents). Without:
    /// one JSON object a line on stdin, each feature read from the field the artifact names (or
    /// else its CSV column's name), other fields ignored, blank lines skipped; one prediction a
    /// line on stdout, with every digit (the shortest text that reads back as the same number).
    /// The first event that cannot be scored stops the command, after the predictions before it,
    /// with one line on stderr naming its line and field (stdin:3: missing field bmi, stdin:3:
    /// wrong type for bmi: string) and exit status 1: the output stays one line per event.
    Predict(PredictArgs),
    /// The synthetic producer, headless.
    Produce(ProduceArgs),
    /// The headless scorer: NDJSON predictions on stdout, stats on stderr.
    Score(ScoreArgs),
    /// Run the embedded broker on its own; prints its address first.
    Broker(BrokerArgs),
    /// Score a window of a topic's history with the serving model and candidates, and compare
    /// them: records, labeled, MAE, RMSE, R² and wins per model. Joins no group, commits nothing.
    ///
    /// A model's wins are the labeled records where its absolute error was the smallest of all
    /// the models'; a tie for the smallest is nobody's win. Records that do not decode are
    /// counted as bad and scored by none. The table prints MAE and RMSE whole and R² to three
    /// decimals, `-` where there is none (no labeled record, or every label the same). --json
    /// prints one object: topic, brokers, from, to (null without an end), window (a list of
    /// {partition, start, end}: the offsets read, end exclusive), records, bad, and models (a
    /// list of {role, file, version, records, labeled, mae, rmse, r2, wins}; file, mae, rmse and
    /// r2 are null where absent).
    Backtest(BacktestArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout: `salary-stream man > salary-stream.1`.
    Man,
}

/// `completions` options.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Where Kafka is and which topics to use.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Bootstrap servers (host:port,...); without it an embedded broker is started.
    #[arg(short = 'b', long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub brokers: Option<String>,
    /// Input topic.
    #[arg(short = 't', long, default_value = DEFAULT_INPUT_TOPIC)]
    pub topic: String,
    /// Output topic for predictions.
    #[arg(long, default_value = DEFAULT_OUTPUT_TOPIC)]
    pub output_topic: String,
    /// Dead-letter topic for bad records.
    #[arg(long, default_value = DEFAULT_DLQ_TOPIC)]
    pub dlq_topic: String,
    /// Consumer group.
    #[arg(short = 'g', long, default_value = DEFAULT_GROUP)]
    pub group: String,
    /// A librdkafka property, key=value (repeatable); secret values are never printed.
    /// Applied after -F, so -X wins.
    // Kept raw and parsed later: clap would echo a malformed argument, secret or not.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// A file of librdkafka properties, key=value a line (# comments), as kcat's -F: the
    /// client.properties a hosted cluster hands out [default: $SALARY_STREAM_CONFIG, if set].
    #[arg(short = 'F', value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Model artifact written by `train`.
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Where partitions without a committed offset start (a new group's first start), in kcat's
    /// syntax: beginning, end, N (that offset), -N (N before the end) or s@TIMESTAMP_MS (the first
    /// record at or after that time; the broker must look offsets up by time, as Apache Kafka
    /// does: the embedded broker finds none and starts at the end); positions past either end
    /// are clamped to it. Wins over -X auto.offset.reset [default: auto.offset.reset, else
    /// beginning].
    #[arg(
        short = 'o',
        long = "offset",
        value_name = "SPEC",
        allow_negative_numbers = true,
        value_parser = parse_start_offset
    )]
    pub offset: Option<OffsetSpec>,
    /// Longest a quit may take: what is not flushed and committed by then is left for the next
    /// run (at-least-once), and the command exits at once, with status 1.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub shutdown_timeout: std::time::Duration,
    /// Where fitted, promoted and replaced model versions are kept, with lineage.jsonl
    /// [default: $XDG_DATA_HOME/salary-stream/models, else ~/.local/share/salary-stream/models].
    #[arg(long, value_name = "PATH")]
    pub models_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (port 0: a free one).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// Exactly-once: predictions, dead letters and input offsets in Kafka transactions (needs a
    /// broker with transactions, such as Apache Kafka). Consumers of the output should read with
    /// isolation.level=read_committed.
    #[arg(long)]
    pub exactly_once: bool,
    /// How often an exactly-once scorer commits its transaction, in seconds: shorter means
    /// predictions visible sooner, longer means fewer commits.
    #[arg(long, value_name = "SECONDS", default_value = "0.1", value_parser = parse_seconds)]
    pub transaction_interval: std::time::Duration,
    /// This instance's stable id, for its transactional.id (salary-stream-GROUP-ID) [default:
    /// the host name]. Instances of one group on one host each need their own.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// Create missing topics (input, output, dead letters) with the admin API.
    #[arg(long)]
    pub create_topics: bool,
    /// Partitions of the input and output topics that --create-topics creates.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=10000))]
    pub partitions: i32,
    /// Schema Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Parses a number of seconds (fractions allowed) between 0.1 and one day.
pub fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if (0.1..=86_400.0).contains(&s) => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err(format!(
            "expected a number of seconds from 0.1 to 86400, got {text:?}"
        )),
    }
}

/// Parses a start offset: any kcat spec but an end (`e@TS`).
pub fn parse_start_offset(text: &str) -> Result<OffsetSpec, String> {
    match text.parse::<OffsetSpec>() {
        Ok(spec) if spec.is_end() => Err(format!(
            "{spec} is an end, not where a group starts: expected beginning, end, N, -N or \
             s@TIMESTAMP_MS"
        )),
        Ok(spec) => Ok(spec),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses `--until`: milliseconds since the epoch or an RFC 3339 time.
pub fn parse_until(text: &str) -> Result<i64, String> {
    crate::kafka::timestamp::parse_time_ms(text).map_err(|e| e.to_string())
}

impl KafkaArgs {
    /// The client properties, `-F`'s (or `$SALARY_STREAM_CONFIG`'s) then `-X`'s; the error
    /// names the file and line and never shows a secret.
    pub fn parsed_properties(&self) -> Result<Vec<(String, String)>, SettingsError> {
        client_properties(
            self.config_file.as_deref(),
            env_file().as_deref(),
            &self.properties,
        )
    }
}

/// Dashboard options.
#[derive(Debug, Clone, Args)]
pub struct DashArgs {
    /// Kafka options.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Frames per second.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=120))]
    pub fps: u16,
    /// The producer's starting rate (events/s, or max).
    #[arg(long, default_value = "50")]
    pub rate: Rate,
    /// Start the synthetic producer at launch (as if `p` were pressed).
    #[arg(long)]
    pub produce: bool,
    /// Watch a whole consumer group instead of joining it: every member's predictions from the
    /// output topic, the group's lag from its committed offsets, who owns which partitions
    /// [default group: -g].
    #[arg(long, value_name = "GROUP", num_args = 0..=1, default_missing_value = "")]
    pub watch_group: Option<String>,
    /// Log file (the screen belongs to the dashboard).
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Challenger and promotion options.
    #[command(flatten)]
    pub models: ModelArgs,
    /// How predictions are written to the output topic.
    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

/// How predictions are written to the output topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object a record.
    #[default]
    Json,
    /// Avro framed for the Schema Registry (-r): the prediction's schema is registered under
    /// <output-topic>-value at start, and each record carries its id.
    Avro,
}

/// How `produce` writes its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EventFormat {
    /// One JSON object a record.
    #[default]
    Json,
    /// Avro framed for the Schema Registry (-r), the schema registered under <topic>-value.
    Avro,
    /// Protobuf framed for the Schema Registry (-r), the schema registered under <topic>-value.
    Protobuf,
}

/// Where the Schema Registry is, for values framed for one.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Schema Registry URL (a Confluent-compatible API, as kcat's -r): a value that begins with
    /// the magic byte 0 is decoded by the schema the registry holds for its id (Avro, Protobuf,
    /// JSON Schema); plain JSON values on the same topic decode as before. Basic auth from the
    /// URL's user info or -X schema.registry.basic.auth.user.info=USER:PASS; a CA for https with
    /// -X schema.registry.ssl.ca.location=FILE. Credentials are never printed [default: framed
    /// values are dead letters].
    #[arg(short = 'r', long = "schema-registry", value_name = "URL")]
    pub schema_registry: Option<RegistryUrl>,
}

/// A registry URL as given, which may hold a password: `Debug` leaves out its user info.
// Kept raw and parsed later: clap would echo a malformed argument, secret or not.
#[derive(Clone)]
pub struct RegistryUrl(pub String);

impl std::str::FromStr for RegistryUrl {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(RegistryUrl(text.to_owned()))
    }
}

impl std::fmt::Debug for RegistryUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match crate::formats::registry_config::RegistryConfig::new(&self.0) {
            Ok(config) => write!(f, "RegistryUrl({:?})", config.url()),
            Err(_) => f.write_str("RegistryUrl([unparsed])"),
        }
    }
}

/// A challenger beside the serving model, and when the scorer promotes on its own.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// A model artifact to score every event beside the serving one: its prediction rides along
    /// on each output record, and both are compared on the labeled events.
    #[arg(long, value_name = "PATH")]
    pub challenger: Option<PathBuf>,
    /// Fit a challenger on its own once 100 labeled events have arrived since a drift alarm.
    #[arg(long)]
    pub auto_challenger: bool,
    /// Promote the challenger on its own once it beats the serving model (see --promote-after
    /// and --promote-margin).
    #[arg(long)]
    pub auto_promote: bool,
    /// Labeled events both models must have scored before --auto-promote may promote (the
    /// comparison covers the latest 500).
    #[arg(long, value_name = "N", default_value_t = 200, requires = "auto_promote",
          value_parser = clap::value_parser!(u32).range(1..=500))]
    pub promote_after: u32,
    /// How much lower the challenger's mean absolute error must be for --auto-promote, in percent
    /// of the serving model's.
    #[arg(long, value_name = "PERCENT", default_value = "5", requires = "auto_promote",
          value_parser = parse_percent)]
    pub promote_margin: f64,
}

impl ModelArgs {
    /// The policy these flags ask for.
    pub fn policy(&self) -> crate::serving::slots::Policy {
        crate::serving::slots::Policy {
            auto_challenger: self.auto_challenger,
            auto_promote: self
                .auto_promote
                .then_some(crate::serving::slots::Promotion {
                    after: self.promote_after as usize,
                    margin: self.promote_margin / 100.0,
                }),
        }
    }
}

/// Parses a percentage from 0 to 100 (fractions allowed).
fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..100.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "expected a percentage from 0 to below 100, got {text:?}"
        )),
    }
}

/// `train` options.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Training CSV: a header, then one example a row.
    #[arg(long, default_value = "data/Salary_Data.csv")]
    pub data: PathBuf,
    /// The column to predict, and the JSON field its label is read from in events (COL, or
    /// COL=FIELD; the field defaults to the column's name) [default: the salary demo's Salary,
    /// labeled salary].
    #[arg(long, value_name = "COL[=FIELD]")]
    pub target: Option<ColumnChoice>,
    /// A column to fit on, and the JSON field events carry it in (COL, or COL=FIELD; the field
    /// defaults to the column's name); repeatable, in the model's order [default: with --target,
    /// every numeric column but the target; without, the salary demo's YearsExperience, read
    /// from years_experience].
    #[arg(long = "feature", value_name = "COL[=FIELD]")]
    pub features: Vec<ColumnChoice>,
    /// Where to write the artifact.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub out: PathBuf,
}

impl TrainArgs {
    /// The columns these flags choose.
    pub fn spec(&self) -> TrainSpec {
        TrainSpec {
            target: self.target.clone(),
            features: self.features.clone(),
        }
    }
}

/// `import` options.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The ONNX model: one float32 input [N, F] of the features, one output of the prediction.
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// The CSV the model was fitted on: a header, then one example a row.
    #[arg(long, value_name = "CSV")]
    pub data: PathBuf,
    /// The column the model predicts, and the JSON field its label is read from in events (COL,
    /// or COL=FIELD; the field defaults to the column's name).
    #[arg(long, value_name = "COL[=FIELD]")]
    pub target: ColumnChoice,
    /// A column the model reads, and the JSON field events carry it in (COL, or COL=FIELD);
    /// repeatable, in the model's input order [default: every numeric column but the target, in
    /// the CSV's order].
    #[arg(long = "feature", value_name = "COL[=FIELD]")]
    pub features: Vec<ColumnChoice>,
    /// Where to write the artifact; the ONNX file is copied beside it [default:
    /// models/<MODEL's stem>.json].
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

impl ImportArgs {
    /// The columns these flags choose.
    pub fn spec(&self) -> TrainSpec {
        TrainSpec {
            target: Some(self.target.clone()),
            features: self.features.clone(),
        }
    }

    /// Where the artifact goes: --out, else models/<MODEL's stem>.json.
    pub fn out(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let stem = self.model.file_stem().unwrap_or(self.model.as_os_str());
            let mut name = stem.to_os_string();
            name.push(".json");
            PathBuf::from("models").join(name)
        })
    }
}

/// `predict` options.
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// Years of experience, or the value of a one-feature model's feature (one or more); without
    /// any, JSON events are read from stdin.
    #[arg(value_name = "YEARS", allow_negative_numbers = true)]
    pub years: Vec<f64>,
    /// Model artifact [default: assets/model.json, else the built-in artifact].
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
}

/// `produce` options.
#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    /// Kafka options.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Events per second, or max.
    #[arg(long, default_value = "50")]
    pub rate: Rate,
    /// Stop after this many events, once all are acknowledged.
    #[arg(long)]
    pub count: Option<u64>,
    /// Attach a "salary" label drawn from the training relationship plus noise.
    #[arg(long)]
    pub labels: bool,
    /// Shift the labels' relationship (salaries 20% higher); implies --labels.
    #[arg(long)]
    pub drift: bool,
    /// Seed for a reproducible stream.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How events are written: JSON, or Avro or Protobuf for the Schema Registry given with -r
    /// (flat records: id, the model's features, ts_ms, the label).
    #[arg(long, value_enum, default_value_t)]
    pub format: EventFormat,
}

/// `score` options.
#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    /// Kafka options.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Exit after this many records are handled.
    #[arg(long)]
    pub count: Option<u64>,
    /// Do not publish predictions to the output topic.
    #[arg(long)]
    pub no_output: bool,
    /// No NDJSON on stdout.
    #[arg(short, long)]
    pub quiet: bool,
    /// Challenger and promotion options.
    #[command(flatten)]
    pub models: ModelArgs,
    /// How predictions are written to the output topic.
    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

/// `backtest` options.
///
/// Candidates are `--candidate PATH` rather than a repeated `--model`: `--model` names the
/// serving artifact in every other command, and does here too.
#[derive(Debug, Clone, Args)]
pub struct BacktestArgs {
    /// Bootstrap servers (host:port,...) of the Kafka that holds the history.
    #[arg(short = 'b', long, env = "KAFKA_BOOTSTRAP_SERVERS", required = true)]
    pub brokers: String,
    /// The topic to read.
    #[arg(short = 't', long, default_value = DEFAULT_INPUT_TOPIC)]
    pub topic: String,
    /// A librdkafka property, key=value (repeatable); secret values are never printed.
    /// Applied after -F, so -X wins.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// A file of librdkafka properties, key=value a line (# comments), as kcat's -F
    /// [default: $SALARY_STREAM_CONFIG, if set].
    #[arg(short = 'F', value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// The window in kcat's syntax, given once or twice: one start (beginning, end, N, -N or
    /// s@TIMESTAMP_MS; default beginning) and/or one end (e@TIMESTAMP_MS: stop before the first
    /// record at or after that time). Without an end the window stops at the high watermarks
    /// read when the backtest starts.
    #[arg(
        short = 'o',
        long = "offset",
        value_name = "SPEC",
        allow_negative_numbers = true
    )]
    pub offsets: Vec<OffsetSpec>,
    /// The end of the window, as e@ does: milliseconds since the epoch or an RFC 3339 time
    /// (2026-11-30T10:25:00Z, 2026-11-30T11:25:00.5+01:00).
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    pub until: Option<i64>,
    /// The serving model artifact [default: assets/model.json, else the built-in artifact].
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// A candidate model artifact to compare with the serving one (repeatable).
    #[arg(long = "candidate", value_name = "PATH")]
    pub candidates: Vec<PathBuf>,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Schema Registry options: framed records are read through it, as `score` reads them.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl BacktestArgs {
    /// The client properties, as [`KafkaArgs::parsed_properties`].
    pub fn parsed_properties(&self) -> Result<Vec<(String, String)>, SettingsError> {
        client_properties(
            self.config_file.as_deref(),
            env_file().as_deref(),
            &self.properties,
        )
    }
}

/// `broker` options.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// Port to serve on (127.0.0.1); by default one the system picks.
    #[arg(long)]
    pub port: Option<u16>,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub partitions: i32,
    /// Input topic.
    #[arg(short = 't', long, default_value = DEFAULT_INPUT_TOPIC)]
    pub topic: String,
    /// Output topic.
    #[arg(long, default_value = DEFAULT_OUTPUT_TOPIC)]
    pub output_topic: String,
    /// Dead-letter topic.
    #[arg(long, default_value = DEFAULT_DLQ_TOPIC)]
    pub dlq_topic: String,
    /// Longest stopping the broker may take.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub shutdown_timeout: std::time::Duration,
}
