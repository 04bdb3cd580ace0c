//! salary-stream: parse the command line, pick the dashboard or a headless command, and turn any
//! error into one line on stderr and a non-zero exit.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use salary_stream::cli::{Cli, Command, ImportArgs, PredictArgs, ScoreArgs, TrainArgs};
use salary_stream::kafka::properties::SettingsError;
use salary_stream::kafka::secrets::redact_text;
use salary_stream::model::{self, Artifact, ModelError};
use salary_stream::serving::scorer::ScorerError;
use salary_stream::{backtest, headless, runtime, tui};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every setting given, to mask secret values in the error line; a file that cannot be
    // read is reported by the command itself.
    let properties: Vec<(String, String)> = match &cli.command {
        Some(Command::Dash(a)) => a.kafka.parsed_properties(),
        Some(Command::Produce(a)) => a.kafka.parsed_properties(),
        Some(Command::Score(a)) => a.kafka.parsed_properties(),
        Some(Command::Backtest(a)) => a.parsed_properties(),
        None => cli.dash.kafka.parsed_properties(),
        Some(
            Command::Train(_)
            | Command::Import(_)
            | Command::Predict(_)
            | Command::Broker(_)
            | Command::Completions(_)
            | Command::Man,
        ) => Ok(Vec::new()),
    }
    .unwrap_or_default();
    let result = match cli.command {
        Some(Command::Dash(args)) => tui::run(args),
        None if std::io::stdout().is_terminal() => tui::run(cli.dash),
        None => {
            headless::init_logging();
            headless::score(ScoreArgs {
                kafka: cli.dash.kafka,
                count: None,
                no_output: false,
                quiet: false,
                models: cli.dash.models,
                output_format: cli.dash.output_format,
            })
        }
        Some(Command::Train(args)) => train(&args),
        Some(Command::Import(args)) => import(&args),
        Some(Command::Predict(args)) => predict(&args),
        Some(Command::Produce(args)) if args.kafka.offset.is_some() => Err(anyhow::anyhow!(
            "-o is where a consumer starts (score, dash, backtest); produce reads nothing"
        )),
        Some(Command::Produce(args)) => {
            headless::init_logging();
            headless::produce(args)
        }
        Some(Command::Score(args)) => {
            headless::init_logging();
            headless::score(args)
        }
        Some(Command::Backtest(args)) => {
            headless::init_logging();
            backtest::run(args)
        }
        Some(Command::Broker(args)) => {
            headless::init_logging();
            headless::broker(args)
        }
        Some(Command::Completions(args)) => {
            let mut text = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "salary-stream", &mut text);
            print_quietly(&text)
        }
        Some(Command::Man) => {
            let mut text = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut text)
                .map_err(anyhow::Error::from)
                .and_then(|()| print_quietly(&text))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("salary-stream: {}", redact_text(&one_line(&e), &properties));
            // A settings file or argument that cannot be used is a usage error, as clap's are.
            if e.downcast_ref::<SettingsError>().is_some() {
                ExitCode::from(2)
            } else if let Some(ScorerError::Stuck(_) | ScorerError::Resumable(_)) =
                e.downcast_ref::<ScorerError>()
            {
                // Not a failure of the run's input: a supervisor starts it again.
                ExitCode::from(salary_stream::serving::call_watch::RESTART_EXIT_CODE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Writes `text` to stdout; a reader that went away (`| head`) is no error, as for any Unix tool.
fn print_quietly(text: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text.replace('\n', " ")
}

fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let trained = model::train(&args.data, &args.spec())?;
    trained.artifact.save(&args.out)?;
    print_artifact(&trained.artifact);
    if !trained.skipped.is_empty() {
        println!(
            "skipped   {} (no cell is a number)",
            trained.skipped.join(", ")
        );
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let out = args.out();
    let imported = model::import(&args.model, &args.data, &args.spec(), &out)?;
    imported.artifact.save(&out)?;
    print_onnx(&imported.artifact);
    if !imported.skipped.is_empty() {
        println!(
            "skipped   {} (no cell is a number)",
            imported.skipped.join(", ")
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// What `import` wrapped: the ONNX file and its ops, one line per feature.
fn print_onnx(a: &Artifact) {
    let model::ModelKind::Onnx(onnx) = &a.kind else {
        return;
    };
    let ops = onnx
        .loaded
        .as_ref()
        .map_or_else(String::new, |g| g.predictor.op_types().join(", "));
    print_features(a, Some(format!("{} ({ops})", onnx.file)), None);
}

/// What `train` fitted: a line as it always has been, else one line per feature.
fn print_artifact(a: &Artifact) {
    if let Some(line) = a.line() {
        println!("model     {}", a.version);
        println!("rows      {}", a.training_rows);
        println!("slope     {:.6}", line.slope);
        println!("intercept {:.6}", line.intercept);
        println!("r2        {:.6}", a.r2);
        println!("rmse      {:.2}", a.rmse);
        println!(
            "range     {} {} to {}",
            line.feature.column, line.feature.range.min, line.feature.range.max
        );
        return;
    }
    if let Some(linear) = a.linear() {
        print_features(a, None, Some(linear));
    }
}

/// An artifact of many features as a table: its version, rows and target, the `onnx` file when
/// given, a line per feature (its coefficient for a linear model, its range, and its field when
/// any is renamed), the intercept of a linear model, R² and RMSE.
fn print_features(a: &Artifact, onnx: Option<String>, linear: Option<&model::LinearModel>) {
    let width = a
        .features
        .iter()
        .map(|f| f.column.chars().count() + 2)
        .fold(10, usize::max);
    let renamed = a.features.iter().any(|f| f.field != f.column);
    let row = |label: &str, value: String| println!("{label:<width$}{value}");
    row("model", a.version.clone());
    row("rows", a.training_rows.to_string());
    row(
        "target",
        if a.target.field == a.target.column {
            a.target.column.clone()
        } else {
            format!("{} (label field {})", a.target.column, a.target.field)
        },
    );
    if let Some(onnx) = onnx {
        row("onnx", onnx);
    }
    let header = format!(
        "{}range{}",
        if linear.is_some() {
            "coefficient    "
        } else {
            ""
        },
        if renamed { "              field" } else { "" }
    );
    row("feature", header);
    for (i, f) in a.features.iter().enumerate() {
        let coefficient = linear
            .and_then(|l| l.coefficients.get(i))
            .map_or_else(String::new, |c| format!("{:<15}", figure(*c)));
        let range = format!("{} to {}", f.range.min, f.range.max);
        let field = if renamed { f.field.as_str() } else { "" };
        row(
            &f.column,
            format!("{coefficient}{range:<19}{field}")
                .trim_end()
                .to_owned(),
        );
    }
    if let Some(linear) = linear {
        row("intercept", figure(linear.intercept));
    }
    row("r2", format!("{:.6}", a.r2));
    row("rmse", figure(a.rmse));
}

/// Six decimals, or six significant digits in exponent form for what six decimals would show
/// as nothing.
fn figure(x: f64) -> String {
    if x == 0.0 || (1e-3..1e15).contains(&x.abs()) {
        format!("{x:.6}")
    } else {
        format!("{x:.5e}")
    }
}

fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    let model = runtime::load_any_model(args.model.as_deref())?;
    let artifact = &model.artifact;
    if args.years.is_empty() {
        return predict_events(artifact);
    }
    if artifact.line().is_none() {
        return Err(ModelError::NeedsEvents {
            named: model.path.as_ref().map_or_else(
                || "the built-in model".to_owned(),
                |p| p.display().to_string(),
            ),
            count: artifact.features.len(),
            names: artifact.features.iter().map(|f| f.field.clone()).collect(),
        }
        .into());
    }
    let predictor = model::Predictor::from(artifact);
    for &y in &args.years {
        if !y.is_finite() || y < 0.0 {
            anyhow::bail!("years must be a finite number of at least 0, got {y}");
        }
        let p = predictor.predict(&[y]);
        if !p.is_finite() {
            anyhow::bail!("the prediction for {y} years is not finite");
        }
        println!("{p:.2}");
    }
    Ok(())
}

/// One prediction a line for the JSON events on stdin, one a line; the first that cannot be
/// scored ends it, named by its line, after the predictions of the lines before it. An ONNX model
/// is run on the lines already read, up to [`model::BATCH_ROWS`] at once; before any read that may
/// wait, what was read is predicted and written out, so a line typed or piped slowly is answered
/// at once.
fn predict_events(artifact: &Artifact) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let fields: Vec<String> = artifact
            .features
            .iter()
            .map(|f| format!("\"{}\": …", f.field))
            .collect();
        eprintln!(
            "reading JSON events on stdin, one a line ({{{}}}); Ctrl-D ends",
            fields.join(", ")
        );
    }
    let predictor = model::Predictor::from(artifact);
    let batch = if predictor.runs_batches() {
        model::BATCH_ROWS
    } else {
        1
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut input = std::io::BufReader::with_capacity(1 << 16, stdin.lock());
    // The rows read and not yet predicted, with their line numbers.
    let mut pending: Vec<(usize, Vec<f64>)> = Vec::with_capacity(batch);
    let mut scored = || -> anyhow::Result<()> {
        let mut line = String::new();
        for n in 1.. {
            let waits = !input.buffer().contains(&b'\n');
            if pending.len() >= batch || (waits && !pending.is_empty()) {
                write_predictions(&predictor, &mut pending, &mut out)?;
            }
            if waits {
                out.flush()?;
            }
            line.clear();
            match input.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    write_predictions(&predictor, &mut pending, &mut out)?;
                    anyhow::bail!("stdin:{n}: {e}");
                }
            }
            let text = line.strip_suffix('\n').unwrap_or(&line);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.trim().is_empty() {
                continue;
            }
            match event_row(artifact, text) {
                Ok(row) => pending.push((n, row)),
                Err(e) => {
                    write_predictions(&predictor, &mut pending, &mut out)?;
                    anyhow::bail!("stdin:{n}: {e}");
                }
            }
        }
        write_predictions(&predictor, &mut pending, &mut out)
    };
    let result = scored().and_then(|()| out.flush().map_err(anyhow::Error::from));
    let _ = out.flush();
    match result {
        // A reader that went away (`| head`) is no error, as for any Unix tool.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// The feature row of one JSON event line, or why it has none.
fn event_row(artifact: &Artifact, line: &str) -> Result<Vec<f64>, String> {
    let event: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    artifact.feature_values(&event).map_err(|e| e.to_string())
}

/// Predicts the `pending` rows (at once for an ONNX model) and writes one line each, in order;
/// a prediction that is not finite ends it, named by its line, after the ones before it.
fn write_predictions(
    predictor: &model::Predictor,
    pending: &mut Vec<(usize, Vec<f64>)>,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let rows: Vec<&[f64]> = pending.iter().map(|(_, row)| row.as_slice()).collect();
    let predictions = predictor.predict_rows(&rows);
    for ((n, _), p) in pending.iter().zip(predictions) {
        if !p.is_finite() {
            anyhow::bail!("stdin:{n}: the prediction is not finite");
        }
        writeln!(out, "{p}")?;
    }
    pending.clear();
    Ok(())
}
