//! Headless commands: the same engine as the dashboard, with NDJSON on stdout and a stats line a
//! second on stderr.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::{BrokerArgs, EventFormat, KafkaArgs, ProduceArgs, ScoreArgs};
use crate::engine::{
    counted, BrokerHealth, EngineEvent, EventSink, ModelEvent, ProducerStatus, ScoreReport, Totals,
    EMBEDDED_INPUT_PARTITIONS,
};
use crate::formats::event_schema::EventSchema;
use crate::formats::registry::SchemaKind;
use crate::kafka::broker::EmbeddedBroker;
use crate::kafka::topics::missing_line;
use crate::model::Artifact;
use crate::observe::metrics::Metrics;
use crate::runtime::{
    connect, create_topics, cut_reason, load_challenger, load_model, metered, pad_malloc_heaps,
    registry_client, scorer_config, scorer_registry, scorer_topics, shutdown_signal, start_metrics,
    within_bound, Connection, Ending,
};
use crate::serving::producer::{self, ProducerConfig, Synthetic};
use crate::serving::scorer::ScorerConfig;
use crate::serving::scorer::{self, BoxedWriter, PredictionWriter, ScorerSummary};
use crate::serving::synthetic::ModelEvents;

/// A line on stderr. A closed stderr is no reason to stop (`eprintln!` would panic on it).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod tally;
use tally::{broker_note, EventChannel, SharedTally, Tally};

/// How long a headless command waits for a first contact with the broker before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a stats line is written.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Logs go to stderr in headless mode: warnings and up of our own, none of librdkafka's (broker
/// outages are reported once, in the stats line), unless SALARY_STREAM_LOG says otherwise.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(crate::runtime::log_filter(
            "warn,librdkafka=off,rdkafka=off",
        ))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The line for a broker not reached within [`CONNECT_TIMEOUT`]: what is wrong with the address
/// if that can be told, else the client's last reason.
fn unreachable_line(kafka: &crate::kafka::config::KafkaOptions, why: Option<String>) -> String {
    let bootstrap = &kafka.bootstrap;
    let why = crate::kafka::diagnose::wrong_address(kafka)
        .or(why)
        .unwrap_or_else(|| "no answer".into());
    format!(
        "cannot reach Kafka at {bootstrap} within {} s: {why}",
        CONNECT_TIMEOUT.as_secs()
    )
}

/// How long after the start, and after the last record handled, [`wait`] looks every 5 ms.
const QUICK_LOOKS_FOR: Duration = Duration::from_secs(2);

/// Waits until `finished()` or a signal; checks the broker was reached within
/// [`CONNECT_TIMEOUT`]. Returns the signal's name if one came.
fn wait(
    tally: &SharedTally,
    kafka: &crate::kafka::config::KafkaOptions,
    mut finished: impl FnMut() -> bool,
) -> anyhow::Result<Option<&'static str>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let signal = shutdown_signal();
        tokio::pin!(signal);
        // Every 5 ms while anything moves (a run that ends by itself, `--count`, is seen to end
        // within 5 ms: whole-process timings depend on it), in the first seconds and until the
        // broker is first reached (a refusal is said at once); ten times a second once idle: at
        // 5 ms this loop was most of an idle `score`'s CPU. A signal ends the wait at once.
        let mut reached_once = false;
        let mut moved = (0, Instant::now());
        loop {
            let quick = !reached_once
                || started.elapsed() < QUICK_LOOKS_FOR
                || moved.1.elapsed() < QUICK_LOOKS_FOR;
            let pause = Duration::from_millis(if quick { 5 } else { 100 });
            tokio::select! {
                sig = &mut signal => return Ok(Some(sig?)),
                _ = tokio::time::sleep(pause) => {}
            }
            if finished() {
                return Ok(None);
            }
            let (reached, why, refused, handled) = tally.with(|t| {
                let refused = match &t.health {
                    BrokerHealth::Refused(line) => Some(line.clone()),
                    _ => None,
                };
                let handled =
                    t.totals.scored + t.totals.bad + t.producer.as_ref().map_or(0, |p| p.sent);
                (t.reached, t.unreachable.clone(), refused, handled)
            });
            reached_once |= reached;
            if handled != moved.0 {
                moved = (handled, Instant::now());
            }
            // A refusal does not pass by itself: say it now, the TLS problem found by a
            // handshake of our own when there is one to name.
            if let Some(line) = refused {
                bail!(
                    "{}",
                    crate::kafka::diagnose::wrong_address(kafka).unwrap_or(line)
                );
            }
            if !reached && started.elapsed() >= CONNECT_TIMEOUT {
                bail!("{}", unreachable_line(kafka, why));
            }
        }
    })
}

/// The thread that drains the engine's events into the tally and writes the once-a-second
/// stats line.
struct StatsPrinter {
    events: std::sync::mpsc::Sender<Option<EngineEvent>>,
    thread: std::thread::JoinHandle<()>,
}

impl StatsPrinter {
    /// Starts the drain; the returned sink is the engine's. Writes `line(tally, seconds since the
    /// last line)` every [`STATS_INTERVAL`].
    fn start(
        tally: Arc<SharedTally>,
        mut line: impl FnMut(&Tally, f64) -> Option<String> + Send + 'static,
    ) -> (Self, crate::engine::SharedSink) {
        let (events, drain) = std::sync::mpsc::channel::<Option<EngineEvent>>();
        let thread = std::thread::spawn(move || {
            let mut last = Instant::now();
            loop {
                match drain.recv_timeout(STATS_INTERVAL.saturating_sub(last.elapsed())) {
                    Ok(Some(event)) => tally.with(|t| t.absorb(event)),
                    // Asked to end, or every sender gone.
                    Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                }
                if last.elapsed() >= STATS_INTERVAL {
                    let secs = last.elapsed().as_secs_f64();
                    last = Instant::now();
                    if let Some(text) = tally.with(|t| line(t, secs)) {
                        say!("{text}");
                    }
                }
            }
            // What came in before the end is still news (a model swap, a drift alarm).
            while let Ok(Some(event)) = drain.try_recv() {
                tally.with(|t| t.absorb(event));
            }
        });
        let sink = Arc::new(EventChannel(events.clone()));
        (StatsPrinter { events, thread }, sink)
    }

    /// Stops once the events sent so far are taken in (no line is written for the part-second
    /// since the last one).
    fn stop(self) {
        let _ = self.events.send(None);
        let _ = self.thread.join();
    }
}

/// Predictions as NDJSON on stdout, buffered. A closed pipe (`| head`) is an error the scorer
/// stops on, as kcat and other Unix tools do.
struct NdjsonStdout {
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Default for NdjsonStdout {
    fn default() -> Self {
        NdjsonStdout {
            out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        }
    }
}

impl PredictionWriter for NdjsonStdout {
    fn write(&mut self, json: &[u8]) -> std::io::Result<()> {
        self.out.write_all(json)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        // A reader that went away is noticed at the next write; with no record coming, only by
        // asking: poll reports an error on a pipe whose read end is closed.
        let mut stdout = libc::pollfd {
            fd: libc::STDOUT_FILENO,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a count of one, and no wait.
        let ready = unsafe { libc::poll(&mut stdout, 1, 0) };
        if ready == 1 && stdout.revents & libc::POLLERR != 0 {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }
}

/// `score`: consume, score, publish, print NDJSON; exits after `--count` or on a signal.
pub fn score(args: ScoreArgs) -> anyhow::Result<()> {
    pad_malloc_heaps();
    let model = load_model(args.kafka.model.as_deref())?;
    let challenger = load_challenger(&args.models, &model.artifact)?;
    let connection = connect(&args.kafka, EMBEDDED_INPUT_PARTITIONS)?;
    say_embedded(&connection);
    for line in create_topics(&args.kafka, &connection, &scorer_topics(&args.kafka))? {
        say!("{line}");
    }
    let tally = Arc::new(SharedTally::new(
        &args.kafka.topic,
        &connection.kafka.bootstrap,
    ));
    let metrics = start_metrics_said(&args.kafka, &model.artifact.version, !args.no_output)?;
    let mode = crate::runtime::delivery_mode(&args.kafka, connection.embedded.is_some());
    let (stats, events) = StatsPrinter::start(tally.clone(), scored_line(mode));
    let writer = (!args.quiet).then(|| Box::new(NdjsonStdout::default()) as BoxedWriter);
    let (registry, output) = scorer_registry(
        &args.kafka,
        args.output_format,
        !args.no_output,
        &connection,
        &model.artifact,
    )?;
    let scorer = scorer::spawn_with_registry(
        ScorerConfig {
            output,
            metrics: metrics.clone(),
            challenger,
            policy: args.models.policy(),
            ..scorer_config(
                &args.kafka,
                &connection.kafka,
                &model,
                !args.no_output,
                args.count,
            )
        },
        registry.clone(),
        crate::runtime::explained(metered(events, metrics.as_ref()), &connection.kafka),
        writer,
    )?;
    let waited = wait(&tally, &connection.kafka, || scorer.is_finished());
    // One deadline for the whole stop: the scorer's steps take what is left of it, ending a
    // margin before it (so that one ending near it is not taken for cut short), and the wait
    // for them ends there.
    let bound = args.kafka.shutdown_timeout;
    let now = Instant::now();
    let deadline = now + bound;
    scorer.stop_by(crate::engine::steps_deadline(deadline, now));
    let unfinished = scorer.unfinished();
    let ending = within_bound(crate::engine::time_left(deadline), move || scorer.join())?;
    stats.stop();
    let summary = match ending {
        Ending::Finished(summary) => summary,
        cut => {
            // The abandoned thread may still use the broker: leave it be until the process ends.
            std::mem::forget(connection);
            waited?;
            let how = cut_reason(&cut, bound).unwrap_or_default();
            bail!("{}", unfinished.cut_short_line(&how));
        }
    };
    waited?;
    if let Some(registry) = &registry {
        say!(
            "registry {}: {}",
            registry.url(),
            counted(registry.lookups(), "schema look-up", "schema look-ups")
        );
    }
    report_scored(&summary?, args.kafka.exactly_once)
}

/// Says where the embedded broker listens, when one was started.
fn say_embedded(connection: &Connection) {
    if let Some(broker) = &connection.embedded {
        say!("embedded broker at {}", broker.bootstrap_servers());
    }
}

/// `--metrics`: the registry, its endpoint started and said on stderr.
fn start_metrics_said(
    args: &KafkaArgs,
    version: &str,
    publishing: bool,
) -> anyhow::Result<Option<Arc<Metrics>>> {
    let metrics = start_metrics(args, version, publishing)?;
    if let Some((_, address)) = &metrics {
        say!("metrics at http://{address}/metrics");
    }
    Ok(metrics.map(|(m, _)| m))
}

/// `score`'s stats line, given the seconds since the last one; `mode` is
/// [`crate::runtime::delivery_mode`].
fn scored_line(mode: String) -> impl FnMut(&Tally, f64) -> Option<String> + Send + 'static {
    let mut previous = 0;
    move |t, secs| {
        let rate = (t.totals.scored - previous) as f64 / secs;
        previous = t.totals.scored;
        Some(format!(
            "scored {} ({rate:.0}/s)  bad {}  beyond range {}  lag {}{}{}{}{}  {mode}{}{}",
            t.totals.scored,
            t.totals.bad,
            t.totals.extrapolated,
            t.lag.map_or_else(
                || "-".to_owned(),
                |(records, ms)| format!("{records} ({:.1} s)", ms as f64 / 1000.0)
            ),
            t.latency.map_or_else(String::new, |l| format!(
                "  latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
                l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
            )),
            t.rmse
                .map_or_else(String::new, |r| format!("  rmse {r:.0}")),
            t.comparison.map_or_else(String::new, |c| format!(
                "  challenger mae {:.0} vs {:.0}, closer on {} of {}",
                c.challenger.mae, c.serving.mae, c.challenger_closer, c.n
            )),
            if t.missing.is_empty() {
                String::new()
            } else {
                format!("  waiting for topic {}", t.missing.join(", "))
            },
            t.transactions
                .map_or_else(String::new, |(committed, aborted)| format!(
                    ": {committed} transactions, {aborted} aborted"
                )),
            broker_note(t)
        ))
    }
}

/// The closing lines of `score`; an error when deliveries failed outside transactions.
fn report_scored(summary: &ScorerSummary, exactly_once: bool) -> anyhow::Result<()> {
    say!(
        "done: scored {}  bad {}  delivery errors {}",
        summary.totals.scored,
        summary.totals.bad,
        summary.totals.delivery_errors
    );
    let l = summary.latency;
    if l.count > 0 {
        say!(
            "latency ms, event to acknowledged prediction: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} events)",
            l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
        );
    }
    let failed = summary.totals.delivery_errors;
    if failed > 0 && exactly_once {
        // A failed delivery fails its transaction, which is aborted and done again from the
        // last commit (or the run ends with the reason): nothing is missing from the output.
        say!(
            "exactly-once: {} in aborted transactions, produced again",
            counted(failed, "failed delivery was", "failed deliveries were")
        );
    } else if failed > 0 {
        bail!("{failed} deliveries failed; their records will be consumed again");
    }
    Ok(())
}

/// `produce`: the synthetic producer; exits after `--count` once every event is acknowledged.
pub fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    pad_malloc_heaps();
    let model = load_model(args.kafka.model.as_deref())?;
    let connection = connect(&args.kafka, EMBEDDED_INPUT_PARTITIONS)?;
    say_embedded(&connection);
    let a = &model.artifact;
    let framed = event_schema(&args, &connection, a)?;
    let tally = Arc::new(SharedTally::new(
        &args.kafka.topic,
        &connection.kafka.bootstrap,
    ));
    let partitions = args.kafka.partitions;
    for line in create_topics(&args.kafka, &connection, &[(&args.kafka.topic, partitions)])? {
        say!("{line}");
    }
    let metrics = start_metrics_said(&args.kafka, &a.version, false)?;
    let (stats, events) = StatsPrinter::start(tally.clone(), produced_line());
    let handle = producer::spawn(
        producer_config(&args, &connection, a, framed),
        crate::runtime::explained(metered(events, metrics.as_ref()), &connection.kafka),
    )?;
    let waited = wait(&tally, &connection.kafka, || handle.is_finished());
    let bound = args.kafka.shutdown_timeout;
    let flush_within = flush_within(&waited, bound);
    let outstanding = handle.outstanding();
    let ending = within_bound(bound + Duration::from_millis(250), move || {
        handle.shutdown(flush_within)
    })?;
    stats.stop();
    let status = match ending {
        Ending::Finished(status) => status,
        cut => {
            std::mem::forget(connection);
            waited?;
            let n = outstanding.count();
            bail!(
                "shutdown cut short ({}): {} not acknowledged by the broker",
                cut_reason(&cut, bound).unwrap_or_default(),
                counted(n as u64, "event was", "events were")
            );
        }
    };
    drop(outstanding);
    waited?;
    report_produced(&status?)
}

/// `produce`'s stats line, given the seconds since the last one; none before the first status.
fn produced_line() -> impl FnMut(&Tally, f64) -> Option<String> + Send + 'static {
    let mut previous = 0;
    move |t, secs| {
        let p = t.producer?;
        let rate = (p.acked - previous) as f64 / secs;
        previous = p.acked;
        Some(format!(
            "sent {}  acked {} ({rate:.0}/s)  failed {}{}",
            p.sent,
            p.acked,
            p.failed,
            broker_note(t)
        ))
    }
}

/// `produce --format avro|protobuf -r URL`: the schema of `a`'s events, registered under
/// `<topic>-value` now; `None` for JSON. Refused in one line: a format without a registry, a
/// registry without a format, a registry that does not take the schema.
fn event_schema(
    args: &ProduceArgs,
    connection: &Connection,
    a: &Artifact,
) -> anyhow::Result<Option<EventSchema>> {
    let kind = match args.format {
        EventFormat::Json => None,
        EventFormat::Avro => Some(SchemaKind::Avro),
        EventFormat::Protobuf => Some(SchemaKind::Protobuf),
    };
    let registry = registry_client(&args.kafka, connection)?;
    let (kind, client) = match (kind, registry) {
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            bail!("-r is for --format avro or protobuf; produce writes JSON without")
        }
        (Some(kind), None) => {
            bail!("--format {kind} writes events for a Schema Registry: give it with -r URL")
        }
        (Some(kind), Some(client)) => (kind, client),
    };
    let shape = crate::serving::scoring::event_shape(a)
        .unwrap_or_else(|_| crate::formats::shape::EventShape::salary().clone());
    let features: Vec<&str> = shape.features().iter().map(|f| f.field.as_str()).collect();
    let schema = EventSchema::new(kind, &features, shape.label())?;
    let subject = format!("{}-value", args.kafka.topic);
    let id = client
        .register(&subject, kind, schema.text())
        .map_err(|e| {
            anyhow::anyhow!("cannot register the events' {kind} schema under {subject}: {e}")
        })?;
    // A registry may file a schema under the type its subject began with (Apicurio keeps a
    // Protobuf schema registered under an Avro subject as Avro): the scorer would misread it.
    let held = client.schema(id)?;
    if held.kind != kind {
        bail!(
            "the registry keeps schema {id} under {subject} as {}, not {kind}: the subject \
             holds {} schemas; produce {kind} events to another topic",
            held.kind,
            held.kind
        );
    }
    say!(
        "{kind} events, schema {id} under {subject} (registry {})",
        client.url()
    );
    Ok(Some(schema.with_id(id)))
}

/// The producer's settings from `produce`'s command line, with labels from the artifact `a`,
/// written in `framed` when given.
fn producer_config(
    args: &ProduceArgs,
    connection: &Connection,
    a: &Artifact,
    framed: Option<EventSchema>,
) -> ProducerConfig {
    let (labels, drift) = (
        args.labels || args.drift,
        if args.drift { 1.2 } else { 1.0 },
    );
    ProducerConfig {
        kafka: connection.kafka.clone(),
        topic: args.kafka.topic.clone(),
        rate: args.rate,
        count: args.count,
        events: match framed {
            // Framed events are drawn as any model's are, the demo's too.
            Some(schema) => Synthetic::Model(ModelEvents::new(a, labels, drift).framed(schema)),
            None => Synthetic::for_artifact(a, labels, drift),
        },
        seed: args.seed,
        start_running: true,
        require_topic_on: connection
            .embedded
            .is_none()
            .then(|| connection.kafka.bootstrap.clone()),
        paced_by: None,
    }
}

/// How long stopping the producer waits for acknowledgements, given how the wait ended.
fn flush_within(waited: &anyhow::Result<Option<&'static str>>, bound: Duration) -> Duration {
    // Unreachable: nothing will be acknowledged, so do not wait for it. Stopped by a signal: what
    // is acknowledged within the bound is, and the rest is said.
    match waited {
        Err(_) => Duration::from_secs(1),
        Ok(Some(_)) => bound,
        Ok(None) => producer::FLUSH_TIMEOUT,
    }
}

/// The closing line of `produce`; an error when events were not delivered.
fn report_produced(status: &ProducerStatus) -> anyhow::Result<()> {
    say!(
        "done: sent {}  acked {}  failed {}",
        status.sent,
        status.acked,
        status.failed
    );
    if status.failed > 0 {
        bail!(
            "{} not delivered",
            counted(status.failed, "event was", "events were")
        );
    }
    Ok(())
}

/// `broker`: the embedded broker on its own until a signal.
pub fn broker(args: BrokerArgs) -> anyhow::Result<()> {
    let mut broker = EmbeddedBroker::start(&[
        (args.topic.as_str(), args.partitions),
        (args.output_topic.as_str(), args.partitions),
        (args.dlq_topic.as_str(), 1),
    ])?;
    if let Some(port) = args.port {
        broker.listen_on(port)?;
    }
    let mut out = std::io::stdout();
    writeln!(out, "{}", broker.bootstrap_servers()).context("writing to stdout")?;
    out.flush()?;
    say!(
        "embedded broker at {} (topics {} ×{}, {} ×{}, {}); Ctrl-C stops it",
        broker.bootstrap_servers(),
        args.topic,
        args.partitions,
        args.output_topic,
        args.partitions,
        args.dlq_topic
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(shutdown_signal())?;
    drop(runtime);
    let bound = args.shutdown_timeout;
    match within_bound(bound, move || drop(broker))? {
        Ending::Finished(()) => Ok(()),
        cut => bail!(
            "stopping the broker was cut short ({})",
            cut_reason(&cut, bound).unwrap_or_default()
        ),
    }
}
