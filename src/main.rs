//! salary-stream: parse the command line, pick the dashboard or a headless command, and turn any
//! error into one line on stderr and a non-zero exit.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use salary_stream::cli::{Cli, Command, ScoreArgs};
use salary_stream::kafka::properties::SettingsError;
use salary_stream::kafka::secrets::redact_text;
use salary_stream::model::{self, Artifact};
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
            })
        }
        Some(Command::Train(args)) => train(&args.data, &args.out),
        Some(Command::Predict(args)) => predict(args.model.as_deref(), &args.years),
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

fn train(data: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let artifact = model::train(data)?;
    artifact.save(out)?;
    print_artifact(&artifact);
    println!("wrote {}", out.display());
    Ok(())
}

fn print_artifact(a: &Artifact) {
    println!("model     {}", a.version);
    println!("rows      {}", a.training_rows);
    println!("slope     {:.6}", a.slope);
    println!("intercept {:.6}", a.intercept);
    println!("r2        {:.6}", a.r2);
    println!("rmse      {:.2}", a.rmse);
    println!(
        "range     {} {} to {}",
        a.feature, a.feature_range.min, a.feature_range.max
    );
}

fn predict(model_path: Option<&std::path::Path>, years: &[f64]) -> anyhow::Result<()> {
    let model = runtime::load_model(model_path)?;
    let predictor = model::Predictor::from(&model.artifact);
    for &y in years {
        if !y.is_finite() || y < 0.0 {
            anyhow::bail!("years must be a finite number of at least 0, got {y}");
        }
        let p = predictor.predict(y);
        if !p.is_finite() {
            anyhow::bail!("the prediction for {y} years is not finite");
        }
        println!("{p:.2}");
    }
    Ok(())
}
