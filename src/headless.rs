//! Headless commands: the same engine as the dashboard, with NDJSON on stdout and a stats line a
//! second on stderr.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::{BrokerArgs, ProduceArgs, ScoreArgs};
use crate::engine::broker::EmbeddedBroker;
use crate::engine::consumer::{self, BoxedWriter, PredictionWriter};
use crate::engine::producer::{self, LabelModel, ProducerConfig};
use crate::engine::{
    BrokerHealth, EngineEvent, EventSink, ModelEvent, ProducerStatus, EMBEDDED_INPUT_PARTITIONS,
};
use crate::runtime::{connect, load_model, scorer_config, shutdown_signal};

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

/// What the stats line shows, gathered from engine events.
#[derive(Debug, Default)]
struct Tally {
    scored: u64,
    bad: u64,
    extrapolated: u64,
    lag: Option<i64>,
    last_bad: Option<String>,
    producer: Option<ProducerStatus>,
    reached: bool,
    unreachable: Option<String>,
    failed: Option<String>,
    rmse: Option<f64>,
    drift_reported: bool,
}

#[derive(Default)]
struct TallySink(Mutex<Tally>);

impl TallySink {
    fn with<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl EventSink for TallySink {
    fn emit(&self, event: EngineEvent) {
        self.with(|t| match event {
            EngineEvent::Scored(r) => {
                t.scored += r.scored;
                t.bad += r.bad;
                t.extrapolated += r.extrapolated;
                if r.last_bad.is_some() {
                    t.last_bad = r.last_bad;
                }
                if let Some(a) = r.accuracy {
                    t.rmse = Some(a.rmse);
                }
                if let (Some(alarm), false) = (r.drift, t.drift_reported) {
                    t.drift_reported = true;
                    let direction = match alarm.shift {
                        crate::engine::quality::Shift::Up => "above",
                        crate::engine::quality::Shift::Down => "below",
                    };
                    eprintln!(
                        "drift: labels {direction} the predictions since {} UTC (after {} labeled events)",
                        &crate::ui::clock(alarm.at_ms)[..8],
                        alarm.after
                    );
                }
            }
            EngineEvent::Lag(l) => t.lag = Some(l.total()),
            EngineEvent::Assigned(partitions) => {
                let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
                eprintln!("assigned partitions: [{}]", list.join(", "));
            }
            EngineEvent::Producer(p) => {
                if p.acked > t.producer.map_or(0, |q| q.acked) {
                    t.reached = true;
                    t.unreachable = None;
                }
                t.producer = Some(p);
            }
            EngineEvent::Broker(BrokerHealth::Up) => {
                t.reached = true;
                t.unreachable = None;
            }
            EngineEvent::Broker(BrokerHealth::Unreachable(why)) => t.unreachable = Some(why),
            EngineEvent::Broker(BrokerHealth::Connecting) => {}
            EngineEvent::Failed(why) => t.failed = Some(why),
            EngineEvent::Model(ModelEvent::Swapped {
                version, formula, ..
            }) => {
                eprintln!("model: now serving {version} ({formula})");
            }
            EngineEvent::Model(ModelEvent::Rejected(why)) => {
                eprintln!("model: kept the old model: {why}");
            }
            EngineEvent::Model(ModelEvent::Retrained { version, .. }) => {
                eprintln!("model: retrained as {version}");
            }
        });
    }
}

/// `  broker unreachable: <reason>` while it is, else nothing.
fn broker_note(t: &Tally) -> String {
    t.unreachable
        .as_ref()
        .map_or_else(String::new, |why| format!("  broker unreachable: {why}"))
}

/// Waits until `finished()` or a signal; checks the broker was reached within
/// [`CONNECT_TIMEOUT`]. Returns the signal's name if one came.
fn wait(
    tally: &TallySink,
    bootstrap: &str,
    mut finished: impl FnMut() -> bool,
) -> anyhow::Result<Option<&'static str>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let signal = shutdown_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                sig = &mut signal => return Ok(Some(sig?)),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            if finished() {
                return Ok(None);
            }
            let (reached, why) = tally.with(|t| (t.reached, t.unreachable.clone()));
            if !reached && started.elapsed() >= CONNECT_TIMEOUT {
                bail!(
                    "cannot reach Kafka at {bootstrap} within {} s: {}",
                    CONNECT_TIMEOUT.as_secs(),
                    why.unwrap_or_else(|| "no answer".into())
                );
            }
        }
    })
}

/// The thread writing the once-a-second stats line.
struct StatsPrinter {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl StatsPrinter {
    /// Starts writing `line(tally, seconds since the last line)` every [`STATS_INTERVAL`].
    fn start(
        tally: Arc<TallySink>,
        mut line: impl FnMut(&Tally, f64) -> Option<String> + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut last = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                std::thread::park_timeout(STATS_INTERVAL.saturating_sub(last.elapsed()));
                if last.elapsed() >= STATS_INTERVAL {
                    let secs = last.elapsed().as_secs_f64();
                    last = Instant::now();
                    if let Some(text) = tally.with(|t| line(t, secs)) {
                        eprintln!("{text}");
                    }
                }
            }
        });
        StatsPrinter { stop, thread }
    }

    /// Stops at once (no line is written for the part-second since the last one).
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

/// Predictions as NDJSON on stdout, buffered; a closed pipe (`| head`) stops the writing, not the
/// scoring.
struct NdjsonStdout {
    out: std::io::BufWriter<std::io::Stdout>,
    broken: bool,
}

impl Default for NdjsonStdout {
    fn default() -> Self {
        NdjsonStdout {
            out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            broken: false,
        }
    }
}

impl PredictionWriter for NdjsonStdout {
    fn write(&mut self, json: &[u8]) {
        if !self.broken {
            self.broken = self
                .out
                .write_all(json)
                .and_then(|()| self.out.write_all(b"\n"))
                .is_err();
        }
    }

    fn flush(&mut self) {
        if !self.broken {
            self.broken = self.out.flush().is_err();
        }
    }
}

/// `score`: consume, score, publish, print NDJSON; exits after `--count` or on a signal.
pub fn score(args: ScoreArgs) -> anyhow::Result<()> {
    let model = load_model(args.kafka.model.as_deref())?;
    let connection = connect(&args.kafka, EMBEDDED_INPUT_PARTITIONS)?;
    if let Some(broker) = &connection.embedded {
        eprintln!("embedded broker at {}", broker.bootstrap_servers());
    }
    let tally = Arc::new(TallySink::default());
    let writer = (!args.quiet).then(|| Box::new(NdjsonStdout::default()) as BoxedWriter);
    let scorer = consumer::spawn(
        scorer_config(
            &args.kafka,
            &connection.kafka,
            &model,
            !args.no_output,
            args.count,
        ),
        tally.clone(),
        writer,
    )?;
    let mut previous = 0;
    let stats = StatsPrinter::start(tally.clone(), move |t, secs| {
        let rate = (t.scored - previous) as f64 / secs;
        previous = t.scored;
        Some(format!(
            "scored {} ({rate:.0}/s)  bad {}  beyond range {}  lag {}{}{}",
            t.scored,
            t.bad,
            t.extrapolated,
            t.lag.map_or_else(|| "-".to_owned(), |l| l.to_string()),
            t.rmse
                .map_or_else(String::new, |r| format!("  rmse {r:.0}")),
            broker_note(t)
        ))
    });
    let waited = wait(&tally, &connection.kafka.bootstrap, || scorer.is_finished());
    scorer.stop();
    let summary = scorer.join();
    stats.stop();
    waited?;
    let summary = summary?;
    eprintln!(
        "done: scored {}  bad {}  delivery errors {}",
        summary.scored, summary.bad, summary.delivery_errors
    );
    let l = summary.latency;
    if l.count > 0 {
        eprintln!(
            "latency ms, event to acknowledged prediction: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} events)",
            l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
        );
    }
    if summary.delivery_errors > 0 {
        bail!(
            "{} deliveries failed; their records will be consumed again",
            summary.delivery_errors
        );
    }
    Ok(())
}

/// `produce`: the synthetic producer; exits after `--count` once every event is acknowledged.
pub fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let model = load_model(args.kafka.model.as_deref())?;
    let connection = connect(&args.kafka, EMBEDDED_INPUT_PARTITIONS)?;
    if let Some(broker) = &connection.embedded {
        eprintln!("embedded broker at {}", broker.bootstrap_servers());
    }
    let a = &model.artifact;
    let tally = Arc::new(TallySink::default());
    let handle = producer::spawn(
        ProducerConfig {
            kafka: connection.kafka.clone(),
            topic: args.kafka.topic.clone(),
            rate: args.rate,
            count: args.count,
            labels: (args.labels || args.drift).then_some(LabelModel {
                slope: a.coefficient,
                intercept: a.intercept,
                noise_sd: a.rmse,
                drift: if args.drift { 1.2 } else { 1.0 },
            }),
            years_range: (a.feature_range.min, a.feature_range.max),
            seed: args.seed,
            start_running: true,
            paced_by: None,
        },
        tally.clone(),
    )?;
    let mut previous = 0;
    let stats = StatsPrinter::start(tally.clone(), move |t, secs| {
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
    });
    let waited = wait(&tally, &connection.kafka.bootstrap, || handle.is_finished());
    // Unreachable: nothing will be acknowledged, so do not wait for it.
    let flush_within = if waited.is_err() {
        Duration::from_secs(1)
    } else {
        producer::FLUSH_TIMEOUT
    };
    let status = handle.shutdown(flush_within);
    stats.stop();
    waited?;
    let status = status?;
    eprintln!(
        "done: sent {}  acked {}  failed {}",
        status.sent, status.acked, status.failed
    );
    if status.failed > 0 {
        bail!("{} events were not delivered", status.failed);
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
    eprintln!(
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
    Ok(())
}
