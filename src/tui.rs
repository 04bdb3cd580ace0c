//! The dashboard runtime: terminal set-up and restore, one event loop merging frames, keys,
//! engine events and signals, and the effects `App::update` asks for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use ratatui::crossterm::event::{
    Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use ratatui::DefaultTerminal;

use crate::app::{App, Effect, Message, Setup};
use crate::cli::DashArgs;
use crate::dash_feed::{next_second, slot_from, EngineEvents};
use crate::engine::SharedSink;
use crate::engine::{steps_deadline, time_left, EngineEvent};
use crate::model::Artifact;
use crate::observe::metrics::Metrics;
use crate::observe::watch::{self, WatchConfig, WatchHandle};
use crate::runtime::{
    connect, create_topics, load_challenger, load_model, metered, scorer_config, scorer_topics,
    seconds_text, shutdown_signal, start_metrics, Connection, LoadedModel,
};
use crate::serving::producer::{self, ProducerConfig, ProducerHandle, Synthetic};
use crate::serving::scorer;
use crate::serving::scorer::{ScorerConfig, ScorerError, ScorerHandle, Unfinished};
use crate::serving::slots::ModelCommand;
use crate::ui;

/// The most quitting waits for the embedded broker's acknowledgements, within the quit's deadline.
const EMBEDDED_SHUTDOWN_FLUSH: Duration = Duration::from_millis(100);

/// Takes the terminal (raw mode, alternate screen) with ratatui's own set-up, whose panic hook
/// restores it. A panic on an engine thread is that thread's to report (the scorer and the
/// producer catch theirs and say so in the header), so there the hook only logs: restoring the
/// terminal under a dashboard that keeps drawing would leave both broken.
fn take_terminal() -> DefaultTerminal {
    let terminal = ratatui::init();
    let restore_and_report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("main") {
            // A panic while a frame is drawn leaves its synchronized output open.
            let _ = crossterm::execute!(
                std::io::stdout(),
                crossterm::terminal::EndSynchronizedUpdate
            );
            restore_and_report(info);
        } else {
            tracing::error!(%info, "panic");
        }
    }));
    terminal
}

/// Draws one frame between the marks of synchronized output (DEC private mode 2026: begin
/// before, end after), so that a terminal that honours them (iTerm2, WezTerm, foot, Windows
/// Terminal and recent tmux among them) shows each frame whole, never half written;
/// one that does not ignores the mode.
fn draw_whole<W: std::io::Write>(
    terminal: &mut ratatui::Terminal<ratatui::backend::CrosstermBackend<W>>,
    render: impl FnOnce(&mut ratatui::Frame),
) -> std::io::Result<()> {
    crossterm::queue!(
        terminal.backend_mut(),
        crossterm::terminal::BeginSynchronizedUpdate
    )?;
    terminal.draw(render)?;
    crossterm::execute!(
        terminal.backend_mut(),
        crossterm::terminal::EndSynchronizedUpdate
    )
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
        KeyCode::Char('t') => Message::Model(ModelCommand::FitChallenger),
        KeyCode::Char('P') => Message::Model(ModelCommand::Promote),
        KeyCode::Char('r') => Message::Model(ModelCommand::RollBack),
        KeyCode::Char('x') => Message::Model(ModelCommand::DropChallenger),
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

/// What reads the stream for the view: a scorer in the group, or a watcher of the group.
enum Reading {
    Scorer(ScorerHandle),
    Watcher(WatchHandle),
}

/// The engine's threads, as the dashboard drives them.
struct Engine {
    producer: ProducerHandle,
    reading: Reading,
    /// The most stopping the producer waits for its acknowledgements, within the quit's deadline.
    producer_flush: Duration,
}

impl Engine {
    /// Stops the engine by `deadline` on a thread of its own; the receiver gets what reading the
    /// stream ended with, or why the scorer stopped.
    fn stop_on_thread(
        self,
        deadline: Instant,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<Result<String, ScorerError>>> {
        let (tx, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("shutdown".into())
            .spawn(move || {
                let _ = tx.send(self.stop(deadline));
            })?;
        Ok(done)
    }

    /// Stops the producer and what reads the stream, each taking what is left of `deadline`, and
    /// waits for both. A scorer's error comes back as itself, so that the exit says it as
    /// `score` does (with its status: 75 for a stuck transactional call).
    fn stop(self, deadline: Instant) -> Result<String, ScorerError> {
        // The steps end a margin before the deadline the view waits until, so that one ending
        // near it is not taken for cut short.
        let steps = steps_deadline(deadline, Instant::now());
        // Told first, so a producer slow to stop never keeps the scorer from committing: the two
        // stop side by side, against the same deadline.
        match &self.reading {
            Reading::Scorer(scorer) => scorer.stop_by(steps),
            Reading::Watcher(watcher) => watcher.stop(),
        }
        let producer = self
            .producer
            .shutdown(self.producer_flush.min(time_left(steps)));
        tracing::info!(?producer, "producer stopped");
        match self.reading {
            Reading::Scorer(scorer) => scorer.join().map(|summary| format!("{summary:?}")),
            Reading::Watcher(watcher) => {
                watcher.join();
                Ok("watcher stopped".to_owned())
            }
        }
    }
}

/// Runs the dashboard until the user quits.
pub fn run(args: DashArgs) -> anyhow::Result<()> {
    cap_malloc_arenas();
    init_logging(&args)?;
    let model = load_model(args.kafka.model.as_deref())?;
    let challenger = load_challenger(&args.models, &model.artifact)?;
    let connection = connect(&args.kafka, crate::engine::EMBEDDED_INPUT_PARTITIONS)?;
    let created = create_topics(&args.kafka, &connection, &scorer_topics(&args.kafka))?;
    let metrics = start_metrics(&args.kafka, &model.artifact.version, true)?;
    let metrics_address = metrics.as_ref().map(|(_, address)| address.to_string());
    let metrics = metrics.map(|(m, _)| m);
    let (sink, events) = EngineEvents::channel();
    let sink = crate::runtime::explained(metered(sink, metrics.as_ref()), &connection.kafka);
    let challenger_line = challenger.as_ref().map(model_line);
    let config = dash_scorer_config(&args, &connection, &model, metrics, challenger);
    let watched = watched_group(&args);
    let engine = start_engine(
        &args,
        &connection,
        &model.artifact,
        config,
        watched.as_deref(),
        sink,
    )?;
    let app = App::new(
        dash_setup(
            &args,
            &connection,
            &model,
            watched.as_deref(),
            challenger_line,
            metrics_address,
            &created,
        ),
        0,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let frame = Duration::from_secs_f64(1.0 / f64::from(args.fps));
    let mut view = View::open(app, events, frame);
    let result = runtime.block_on(view.run_until_quit(&engine));
    quit(
        &runtime,
        view,
        engine,
        connection,
        args.kafka.shutdown_timeout,
        result,
    )
}

/// The header's line for a model: its formula, version and coefficients.
fn model_line(artifact: &Artifact) -> crate::engine::ModelLine {
    crate::serving::slots::model_line(&crate::model::Predictor::from(artifact))
}

/// The group `--watch-group` names, the scorer's own when given empty; `None` to score.
fn watched_group(args: &DashArgs) -> Option<String> {
    args.watch_group.as_ref().map(|g| {
        if g.is_empty() {
            args.kafka.group.clone()
        } else {
            g.clone()
        }
    })
}

/// The dashboard's scorer settings: the command line's, with a quick exit on the embedded broker.
fn dash_scorer_config(
    args: &DashArgs,
    connection: &Connection,
    model: &LoadedModel,
    metrics: Option<Arc<Metrics>>,
    challenger: Option<Artifact>,
) -> ScorerConfig {
    let config = ScorerConfig {
        metrics,
        challenger,
        policy: args.models.policy(),
        ..scorer_config(&args.kafka, &connection.kafka, model, true, None)
    };
    // The embedded broker ends with this process, so waiting on it at exit gains nothing.
    if connection.embedded.is_some() {
        return ScorerConfig {
            shutdown_flush: EMBEDDED_SHUTDOWN_FLUSH,
            ..config
        };
    }
    config
}

/// Starts what reads the stream (a scorer, or a watcher of `watched`) and the producer.
fn start_engine(
    args: &DashArgs,
    connection: &Connection,
    artifact: &Artifact,
    config: ScorerConfig,
    watched: Option<&str>,
    sink: SharedSink,
) -> anyhow::Result<Engine> {
    let producer_flush = config.shutdown_flush;
    let reading = match watched {
        Some(group) => Reading::Watcher(watch::spawn(
            WatchConfig {
                kafka: connection.kafka.clone(),
                input_topic: args.kafka.topic.clone(),
                output_topic: args.kafka.output_topic.clone(),
                group: group.to_owned(),
                fields: watch::PredictionFields::new(
                    &artifact.target.field,
                    crate::model::Predictor::from(artifact).shown,
                ),
            },
            sink.clone(),
        )?),
        None => {
            let (registry, output) = crate::runtime::scorer_registry(
                &args.kafka,
                args.output_format,
                true,
                connection,
                artifact,
            )?;
            let config = ScorerConfig { output, ..config };
            Reading::Scorer(scorer::spawn_with_registry(
                config,
                registry,
                sink.clone(),
                None,
            )?)
        }
    };
    let producer = producer::spawn(
        ProducerConfig {
            kafka: connection.kafka.clone(),
            topic: args.kafka.topic.clone(),
            rate: args.rate,
            count: None,
            events: Synthetic::for_artifact(artifact, true, 1.0),
            seed: None,
            start_running: args.produce,
            // The header names a missing topic (the scorer's probe); the producer waits for it.
            require_topic_on: None,
            // Only the embedded broker prunes so soon that an unthrottled producer starves the
            // scorer; a real cluster keeps what it is sent.
            paced_by: match (&connection.embedded, &reading) {
                (Some(_), Reading::Scorer(scorer)) => Some(scorer.handled()),
                _ => None,
            },
        },
        sink,
    )?;
    Ok(Engine {
        producer,
        reading,
        producer_flush,
    })
}

/// What the header shows from the start: the broker, topics, group, models and delivery.
fn dash_setup(
    args: &DashArgs,
    connection: &Connection,
    model: &LoadedModel,
    watched: Option<&str>,
    challenger: Option<crate::engine::ModelLine>,
    metrics_address: Option<String>,
    created: &[String],
) -> Setup {
    let artifact = &model.artifact;
    let predictor = crate::model::Predictor::from(artifact);
    let plotted = &artifact.features[predictor.plotted];
    Setup {
        broker: connection.label.clone(),
        security: connection.kafka.security_label(),
        input_topic: args.kafka.topic.clone(),
        output_topic: args.kafka.output_topic.clone(),
        dlq_topic: args.kafka.dlq_topic.clone(),
        group: match watched {
            Some(group) => format!("{group} (watching, not joined)"),
            None => args.kafka.group.clone(),
        },
        model_version: match &model.path {
            Some(_) => artifact.version.clone(),
            None => format!("{} (built-in)", artifact.version),
        },
        formula: predictor.formula(),
        challenger,
        line: crate::app::ServingLine {
            slope: artifact.slope(),
            intercept: artifact.intercept(),
            range_max: plotted.range.max,
        },
        axes: crate::app::Axes::of_model(
            &plotted.field,
            &artifact.target.field,
            predictor.slope_intercept().is_some(),
        ),
        rate: args.rate,
        delivery: crate::runtime::delivery_mode(&args.kafka, connection.embedded.is_some()),
        metrics_address,
        topics_note: (!created.is_empty()).then(|| {
            format!(
                "created {}",
                crate::engine::counted(created.len() as u64, "missing topic", "missing topics")
            )
        }),
    }
}

/// Stops the engine within `bound` of now, one deadline for every step, and gives the screen back;
/// `result` is the run's own.
fn quit(
    runtime: &tokio::runtime::Runtime,
    mut view: View,
    engine: Engine,
    connection: Connection,
    bound: Duration,
    result: anyhow::Result<()>,
) -> anyhow::Result<()> {
    tracing::info!("quitting");
    let quitting = Instant::now();
    // Stop the producer, then the scorer (which flushes and commits), then give the screen back;
    // the screen stays live meanwhile, and a second q, Ctrl-C or signal ends the wait.
    let cut_short = runtime.block_on(view.shut_down(engine, quitting + bound, bound));
    ratatui::restore();
    tracing::info!(
        ms = quitting.elapsed().as_millis(),
        ?cut_short,
        "engine stopped"
    );
    let secs = view.started.elapsed().as_secs_f64();
    tracing::info!(
        frames = view.frames_drawn,
        fps = view.frames_drawn as f64 / secs.max(f64::MIN_POSITIVE),
        "frames drawn"
    );
    if let Some(error) = cut_short {
        // An abandoned engine thread may still use the embedded broker: leave it to the exit.
        std::mem::forget(connection);
        result?;
        return Err(error);
    }
    drop(connection);
    tracing::info!(ms = quitting.elapsed().as_millis(), "leaving");
    result
}

/// The screen and what feeds it.
struct View {
    terminal: DefaultTerminal,
    keys: EventStream,
    app: App,
    events: EngineEvents,
    frame: Duration,
    started: Instant,
    frames_drawn: u64,
    /// When the last frame was drawn, ms since `started`.
    last_drawn_ms: Option<u64>,
    /// A key changed the state since the last frame.
    dirty: bool,
    /// The last frame's drain found engine events: until one finds none, frames come at the
    /// frame rate rather than on an event's arrival, so a busy view wakes once a frame.
    busy: bool,
}

impl View {
    /// Takes the terminal and starts listening to its keys, drawing `app` every `frame`.
    fn open(app: App, events: EngineEvents, frame: Duration) -> View {
        View {
            terminal: take_terminal(),
            // One for the whole run: crossterm's reader thread holds a global lock while it polls
            // the terminal, so a second stream made while the first one's thread lives can wait on
            // it for ever (seen when the terminal had gone away).
            keys: EventStream::new(),
            app,
            events,
            frame,
            started: Instant::now(),
            frames_drawn: 0,
            last_drawn_ms: None,
            dirty: false,
            busy: false,
        }
    }

    fn apply(&mut self, message: Message, engine: Option<&Engine>) {
        // The producer reports a few times a second: while it sends, the scorer keeps fetching
        // (on the embedded broker an idle scorer stops, and would take up to a look's interval to
        // see the first record after a pause).
        if let (Message::Engine(EngineEvent::Producer(status)), Some(e)) = (&message, engine) {
            if let (true, Reading::Scorer(scorer)) = (status.running, &e.reading) {
                scorer.wake();
            }
        }
        match (self.app.update(message), engine) {
            (Some(Effect::Producer(command)), Some(e)) => {
                e.producer.command(command);
                if let Reading::Scorer(scorer) = &e.reading {
                    scorer.wake();
                }
            }
            (Some(Effect::Model(command)), Some(e)) => match &e.reading {
                Reading::Scorer(scorer) => scorer.command(command),
                Reading::Watcher(_) => {
                    self.app.update(Message::ModelNote(
                        "watching: the group's scorers serve their own models".into(),
                    ));
                }
            },
            _ => {}
        }
    }

    /// Drains the engine's events and draws one frame, if anything changed: an event changed the
    /// state, a key was pressed, or a new second began (the throughput's buckets roll once a
    /// second). An idle dashboard draws once a second, not at the frame rate.
    fn draw(&mut self, engine: Option<&Engine>) -> anyhow::Result<()> {
        let mut messages = Vec::new();
        self.events.drain(|m| messages.push(m));
        self.busy = !messages.is_empty();
        let now = self.started.elapsed().as_millis() as u64;
        let same_second = self
            .last_drawn_ms
            .is_some_and(|last| last / 1000 == now / 1000);
        if !self.dirty && same_second {
            if messages.is_empty() {
                return Ok(());
            }
            // Status reports come whether or not anything changed (the producer's a few times a
            // second, the probe's every second): a frame only if one changed the state. The
            // screen is drawn from the state alone, so an unchanged state is an unchanged screen.
            // Scoring reports always change it, so a busy dashboard never pays for the copy.
            let scored = |m: &Message| matches!(m, Message::Engine(EngineEvent::Scored(_)));
            if !messages.iter().any(scored) {
                let before = self.app.clone();
                for m in messages.drain(..) {
                    self.apply(m, engine);
                }
                if self.app == before {
                    return Ok(());
                }
            }
        }
        for m in messages {
            self.apply(m, engine);
        }
        self.apply(Message::Tick(now), engine);
        self.last_drawn_ms = Some(now);
        self.dirty = false;
        let app = &self.app;
        draw_whole(&mut self.terminal, |f| ui::render(f, app))?;
        self.frames_drawn += 1;
        Ok(())
    }

    /// When the next frame is due: the first frame slot (`slots` + k frames: the times a fixed
    /// frame-rate timer would tick) at or after the first moment something can have changed. That
    /// is now when an event is held, the last frame found some or a key changed the state (or
    /// before the first frame), else the start of the next second, when the clock, the
    /// throughput's buckets and the ages move. In between the loop sleeps: an idle dashboard
    /// wakes once a second and when an event comes, not at the frame rate.
    fn next_frame(&self, slots: Instant) -> tokio::time::Instant {
        let now = Instant::now();
        let due = match self.last_drawn_ms {
            Some(last) if !self.dirty && !self.busy && !self.events.holds_any() => {
                next_second(self.started, last).max(now)
            }
            _ => now,
        };
        tokio::time::Instant::from_std(slot_from(slots, self.frame, due))
    }

    /// Frames, keys and signals until the user quits.
    async fn run_until_quit(&mut self, engine: &Engine) -> anyhow::Result<()> {
        // A deliberate panic for the tests that check the terminal is restored on one.
        let panic_after = std::env::var("SALARY_STREAM_TEST_PANIC_AFTER_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        let slots = Instant::now();
        let signal = shutdown_signal();
        tokio::pin!(signal);
        while !self.app.should_quit() {
            let mut wake = self.next_frame(slots);
            if let Some(after) = panic_after {
                wake = wake.min(tokio::time::Instant::from_std(self.started + after));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {
                    self.draw(Some(engine))?;
                    if panic_after.is_some_and(|after| self.started.elapsed() >= after) {
                        panic!("SALARY_STREAM_TEST_PANIC_AFTER_MS asked for a panic");
                    }
                }
                // Nothing to wait for once one is held, or while busy: the next frame drains
                // what came with the rest.
                _ = self.events.arrival(), if !self.busy && !self.events.holds_any() => {}
                event = self.keys.next() => match event {
                    Some(Ok(Event::Key(key))) => {
                        if let Some(message) = message_for(key, self.app.show_help()) {
                            self.apply(message, Some(engine));
                            self.dirty = true;
                        }
                    }
                    Some(Ok(Event::Resize(_, _))) => {
                        self.terminal.autoresize()?;
                        self.dirty = true;
                        self.draw(Some(engine))?;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e).context("reading the terminal"),
                    None => break,
                },
                sig = &mut signal => {
                    tracing::info!(signal = ?sig.ok(), "quitting on signal");
                    self.apply(Message::Quit, Some(engine));
                }
            }
        }
        Ok(())
    }

    /// Stops the engine by `deadline` (`bound` after the quit began), drawing meanwhile. Returns
    /// the error the run ends with: the line that says what was left undone if the deadline, a
    /// second quit or a signal cut it short, or the scorer's own error if it stopped on one.
    async fn shut_down(
        &mut self,
        engine: Engine,
        deadline: Instant,
        bound: Duration,
    ) -> Option<anyhow::Error> {
        // The view says it is stopping, whatever ended the run (a key, a signal, the engine).
        if !self.app.should_quit() {
            self.app.update(Message::Quit);
        }
        self.dirty = true;
        let unfinished: Option<Unfinished> = match &engine.reading {
            Reading::Scorer(scorer) => Some(scorer.unfinished()),
            Reading::Watcher(_) => None,
        };
        let cut_short = move |how: &str| {
            anyhow::anyhow!(match &unfinished {
                Some(u) => u.cut_short_line(how),
                None => format!("shutdown cut short ({how})"),
            })
        };
        let mut done = match engine.stop_on_thread(deadline) {
            Ok(done) => done,
            Err(e) => return Some(anyhow::anyhow!("cannot start the shutdown thread: {e}")),
        };
        let deadline = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
        tokio::pin!(deadline);
        // A terminal that has gone away ends its key stream or fails it: stop listening then.
        let mut terminal_alive = true;
        let mut frames = tokio::time::interval(self.frame);
        frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let signal = shutdown_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                read = &mut done => {
                    tracing::info!(?read, "reading stopped");
                    // A scorer that had stopped on its own makes the exit say so, as `score` does.
                    return match read {
                        Ok(Err(failure)) => Some(anyhow::Error::new(failure)),
                        _ => None,
                    };
                }
                _ = &mut deadline => {
                    return Some(cut_short(&format!("after {}", seconds_text(bound))));
                }
                _ = frames.tick(), if terminal_alive => {
                    if let Err(e) = self.draw(None) {
                        tracing::debug!(error = %e, "drawing while quitting");
                        terminal_alive = false;
                    }
                }
                event = self.keys.next(), if terminal_alive => {
                    match event {
                        Some(Ok(Event::Key(key))) => {
                            if let Some(Message::Quit) = message_for(key, false) {
                                self.apply(Message::Quit, None);
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => terminal_alive = false,
                    }
                    if self.app.force_quit() {
                        return Some(cut_short("quit again"));
                    }
                }
                sig = &mut signal => {
                    let name = sig.unwrap_or("a signal");
                    return Some(cut_short(&format!("on {name}")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::CrosstermBackend;
    use ratatui::layout::Rect;
    use ratatui::{Terminal, TerminalOptions, Viewport};
    use std::sync::{Arc, Mutex};

    /// What a terminal was sent.
    #[derive(Clone, Default)]
    struct Sent(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sent {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_frame_is_written_between_the_marks_of_synchronized_output() {
        let sent = Sent::default();
        let viewport = Viewport::Fixed(Rect::new(0, 0, 12, 2));
        let mut terminal = Terminal::with_options(
            CrosstermBackend::new(sent.clone()),
            TerminalOptions { viewport },
        )
        .unwrap();
        // Each frame writes only the cells that changed: the second, every one of them.
        for text in ["salary", "STREAM"] {
            sent.0.lock().unwrap().clear();
            draw_whole(&mut terminal, |f| {
                f.render_widget(ratatui::widgets::Paragraph::new(text), f.area());
            })
            .unwrap();
            let written = String::from_utf8(sent.0.lock().unwrap().clone()).unwrap();
            assert!(written.starts_with("\x1b[?2026h"), "{written:?}");
            assert!(written.ends_with("\x1b[?2026l"), "{written:?}");
            assert!(written.contains(text), "{written:?}");
            assert_eq!(written.matches("\x1b[?2026").count(), 2, "{written:?}");
        }
    }
}
