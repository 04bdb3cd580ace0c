//! The dashboard runtime: terminal set-up and restore, one event loop merging frames, keys,
//! engine events and signals, and the effects `App::update` asks for.

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::app::{App, Effect, Message, Setup};
use crate::cli::DashArgs;
use crate::engine::consumer::ScorerConfig;
use crate::engine::producer::{self, LabelModel, ProducerConfig};
use crate::engine::{consumer, EngineEvent, EventSink};
use crate::runtime::{connect, load_model, scorer_config, shutdown_signal};
use crate::ui;

/// How long quitting waits for the embedded broker's acknowledgements.
const EMBEDDED_SHUTDOWN_FLUSH: Duration = Duration::from_millis(100);
/// Capacity of the engine-to-view channel, in reports.
const CHANNEL_CAPACITY: usize = 256;

static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back: raw mode off, main screen, cursor shown. Safe to call twice.
pub fn restore_terminal() {
    if TERMINAL_ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
    }
}

/// Owns the terminal while the dashboard runs; restores it when dropped.
pub struct TerminalGuard {
    /// The ratatui terminal.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, and makes panics restore the terminal first.
    pub fn enter() -> anyhow::Result<Self> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
        enable_raw_mode().context("cannot put the terminal in raw mode")?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)
            .context("cannot enter the alternate screen")?;
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// The dashboard's sink: a bounded channel; what does not fit is counted, never blocked on.
struct ChannelSink {
    tx: mpsc::Sender<EngineEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventSink for ChannelSink {
    fn emit(&self, event: EngineEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Maps a key to a message.
pub fn message_for(key: KeyEvent, help_shown: bool) -> Option<Message> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Message::Quit,
        KeyCode::Char('q') => Message::Quit,
        KeyCode::Char('p') => Message::ToggleProducer,
        KeyCode::Char('+') | KeyCode::Char('=') => Message::FasterProducer,
        KeyCode::Char('-') | KeyCode::Char('_') => Message::SlowerProducer,
        KeyCode::Char(' ') => Message::ToggleFreeze,
        KeyCode::Char('c') => Message::Clear,
        KeyCode::Char('d') => Message::ToggleDrift,
        KeyCode::Char('t') => Message::Retrain,
        KeyCode::Char('?') | KeyCode::Char('h') => Message::ToggleHelp,
        KeyCode::Esc if help_shown => Message::ToggleHelp,
        _ => return None,
    })
}

fn init_logging(args: &DashArgs) -> anyhow::Result<std::path::PathBuf> {
    let path = args
        .log
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("salary-stream.log"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open log file {}", path.display()))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(crate::runtime::log_filter("info"))
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init();
    Ok(path)
}

/// Caps glibc's malloc arenas before the engine's threads start: each thread would otherwise get
/// an arena that keeps freed message buffers, and the dashboard's resident memory grows with the
/// thread count (peak 63-66 MB unthrottled, 56-61 MB with two arenas, same throughput).
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Runs the dashboard until the user quits.
pub fn run(args: DashArgs) -> anyhow::Result<()> {
    cap_malloc_arenas();
    init_logging(&args)?;
    let model = load_model(args.kafka.model.as_deref())?;
    let connection = connect(&args.kafka, crate::engine::EMBEDDED_INPUT_PARTITIONS)?;
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let dropped = Arc::new(AtomicU64::new(0));
    let sink = Arc::new(ChannelSink {
        tx,
        dropped: dropped.clone(),
    });
    let artifact = &model.artifact;
    // The embedded broker ends with this process, so waiting on it at exit gains nothing.
    let shutdown_flush = if connection.embedded.is_some() {
        EMBEDDED_SHUTDOWN_FLUSH
    } else {
        consumer::FLUSH_TIMEOUT
    };
    let scorer = consumer::spawn(
        ScorerConfig {
            shutdown_flush,
            ..scorer_config(&args.kafka, &connection.kafka, &model, true, None)
        },
        sink.clone(),
        None,
    )?;
    let producer = producer::spawn(
        ProducerConfig {
            kafka: connection.kafka.clone(),
            topic: args.kafka.topic.clone(),
            rate: args.rate,
            count: None,
            labels: Some(LabelModel {
                slope: artifact.coefficient,
                intercept: artifact.intercept,
                noise_sd: artifact.rmse,
                drift: 1.0,
            }),
            years_range: (artifact.feature_range.min, artifact.feature_range.max),
            seed: None,
            start_running: args.produce,
            // Only the embedded broker prunes so soon that an unthrottled producer starves the
            // scorer; a real cluster keeps what it is sent.
            paced_by: connection.embedded.as_ref().map(|_| scorer.handled()),
        },
        sink,
    )?;
    let predictor = crate::model::Predictor::from(artifact);
    let setup = Setup {
        broker: connection.label.clone(),
        input_topic: args.kafka.topic.clone(),
        output_topic: args.kafka.output_topic.clone(),
        dlq_topic: args.kafka.dlq_topic.clone(),
        group: args.kafka.group.clone(),
        model_version: match &model.path {
            Some(_) => artifact.version.clone(),
            None => format!("{} (built-in)", artifact.version),
        },
        formula: predictor.formula(),
    };
    let mut app = App::new(setup, 0);
    app.producer.rate = args.rate;
    app.line = crate::app::ServingLine {
        slope: artifact.coefficient,
        intercept: artifact.intercept,
        range_max: artifact.feature_range.max,
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut guard = TerminalGuard::enter()?;
    let result = runtime.block_on(event_loop(
        &mut guard.terminal,
        &mut app,
        rx,
        &dropped,
        &producer,
        &scorer,
        Duration::from_secs_f64(1.0 / f64::from(args.fps)),
    ));
    // Stop the producer, then the scorer (which flushes and commits), then give the screen back.
    let quitting = Instant::now();
    tracing::info!("quitting");
    let _ = producer.shutdown(shutdown_flush.min(Duration::from_secs(2)));
    tracing::info!(ms = quitting.elapsed().as_millis(), "producer stopped");
    scorer.stop();
    let scored = scorer.join();
    tracing::info!(ms = quitting.elapsed().as_millis(), "scorer stopped");
    drop(guard);
    drop(connection);
    tracing::info!(ms = quitting.elapsed().as_millis(), "broker stopped");
    tracing::info!(?scored, "dashboard stopped");
    result.map(|frames| {
        let secs = frames.elapsed.as_secs_f64();
        tracing::info!(
            frames = frames.count,
            seconds = secs,
            fps = frames.count as f64 / secs.max(f64::MIN_POSITIVE),
            "frames drawn"
        );
        tracing::info!(ms = quitting.elapsed().as_millis(), "leaving");
    })
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    mut rx: mpsc::Receiver<EngineEvent>,
    dropped: &AtomicU64,
    producer: &producer::ProducerHandle,
    scorer: &consumer::ScorerHandle,
    frame: Duration,
) -> anyhow::Result<FrameCount> {
    let started = Instant::now();
    let mut frames_drawn = 0u64;
    // A deliberate panic for the tests that check the terminal is restored on one.
    let panic_after = std::env::var("SALARY_STREAM_TEST_PANIC_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    let mut keys = EventStream::new();
    let mut frames = tokio::time::interval(frame);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let apply = |app: &mut App, message: Message| match app.update(message) {
        Some(Effect::Producer(command)) => producer.command(command),
        Some(Effect::Retrain) => scorer.retrain(),
        None => {}
    };
    while !app.should_quit {
        tokio::select! {
            _ = frames.tick() => {
                while let Ok(event) = rx.try_recv() {
                    apply(app, Message::Engine(event));
                }
                let lost = dropped.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    apply(app, Message::Dropped(lost));
                }
                apply(app, Message::Tick(started.elapsed().as_millis() as u64));
                terminal.draw(|f| ui::render(f, app))?;
                frames_drawn += 1;
                if panic_after.is_some_and(|after| started.elapsed() >= after) {
                    panic!("SALARY_STREAM_TEST_PANIC_AFTER_MS asked for a panic");
                }
            }
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) => {
                    if let Some(message) = message_for(key, app.show_help) {
                        apply(app, message);
                    }
                }
                Some(Ok(Event::Resize(_, _))) => {
                    terminal.autoresize()?;
                    terminal.draw(|f| ui::render(f, app))?;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => break,
            },
            sig = &mut signal => {
                tracing::info!(signal = ?sig.ok(), "quitting on signal");
                apply(app, Message::Quit);
            }
        }
    }
    Ok(FrameCount {
        count: frames_drawn,
        elapsed: started.elapsed(),
    })
}

/// Frames drawn over the dashboard's life, for the frame rate reached.
struct FrameCount {
    count: u64,
    elapsed: Duration,
}
