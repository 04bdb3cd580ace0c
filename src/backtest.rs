//! `salary-stream backtest`: the command line to a window, models and a backtest
//! ([`crate::serving::backtest`]), and its result as a table or one JSON object on stdout.
//!
//! ```text
//! topic experience-events  partitions 3  from s@1796027013754 (2026-11-30T08:23:33.754Z)  to the high watermarks at start
//! offsets p0 180..180  p1 181..181  p2 639..1639  records 1000  bad 0
//! model        version   records  labeled    MAE   RMSE     R²  wins  file
//! serving      6c25318e     1000     1000  16589  18390  0.742   102  assets/model.json
//! candidate 1  b53e4b05     1000     1000   4582   5709  0.975   898  drifted.json
//! ```

use std::io::Write;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cli::BacktestArgs;
use crate::formats::shape::EventShape;
use crate::kafka::config::KafkaOptions;
use crate::kafka::offset_spec::OffsetSpec;
use crate::kafka::timestamp::format_rfc3339;
use crate::model::{Artifact, Predictor};
use crate::runtime::load_model;
use crate::serving::backtest::{self, Bounds, ModelFigures, Outcome, PartitionWindow};
use crate::serving::scoring::event_shape;

/// One model of a backtest and where it came from.
struct Entry {
    role: String,
    file: Option<String>,
    predictor: Predictor,
}

/// The `--json` object.
#[derive(Serialize)]
struct Report<'a> {
    topic: &'a str,
    brokers: &'a str,
    from: String,
    to: Option<String>,
    window: &'a [PartitionWindow],
    records: u64,
    bad: u64,
    models: Vec<ModelReport<'a>>,
}

/// One model in the `--json` object.
#[derive(Serialize)]
struct ModelReport<'a> {
    role: &'a str,
    file: Option<&'a str>,
    #[serde(flatten)]
    figures: &'a ModelFigures,
}

/// Runs `backtest`.
pub fn run(args: BacktestArgs) -> anyhow::Result<()> {
    let bounds = bounds(&args.offsets, args.until)?;
    let (registry_settings, properties) =
        crate::runtime::split_registry_settings(args.parsed_properties()?);
    let registry = crate::runtime::registry_client_for(
        args.registry.schema_registry.as_ref(),
        &registry_settings,
    )?;
    let (entries, shape) = models(&args)?;
    let kafka = KafkaOptions {
        bootstrap: args.brokers.trim().to_owned(),
        properties,
        embedded: false,
    };
    kafka.check_security().map_err(anyhow::Error::msg)?;
    let outcome = backtest::run(
        &kafka,
        &args.topic,
        bounds,
        entries.iter().map(|e| e.predictor.clone()).collect(),
        shape,
        registry,
    )?;
    let text = if args.json {
        let report = Report {
            topic: &args.topic,
            brokers: &kafka.bootstrap,
            from: bounds.start.to_string(),
            to: bounds.end.map(|e| e.to_string()),
            window: &outcome.window,
            records: outcome.records,
            bad: outcome.bad,
            models: entries
                .iter()
                .zip(&outcome.models)
                .map(|(e, figures)| ModelReport {
                    role: &e.role,
                    file: e.file.as_deref(),
                    figures,
                })
                .collect(),
        };
        let mut line = serde_json::to_string(&report)?;
        line.push('\n');
        line
    } else {
        table(&args.topic, bounds, &outcome, &entries)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A reader that went away (`| head`) is no error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The window's bounds from `-o` (at most one start and one end) and `--until` (an end).
fn bounds(offsets: &[OffsetSpec], until: Option<i64>) -> anyhow::Result<Bounds> {
    let (ends, starts): (Vec<OffsetSpec>, Vec<OffsetSpec>) =
        offsets.iter().partition(|s| s.is_end());
    if starts.len() > 1 {
        bail!(
            "-o: give one start, got {}",
            starts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }
    let mut ends: Vec<OffsetSpec> = ends;
    ends.extend(until.map(OffsetSpec::EndTime));
    if ends.len() > 1 {
        bail!(
            "give one end (-o e@TIMESTAMP_MS or --until), got {}",
            ends.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }
    Ok(Bounds {
        start: starts.first().copied().unwrap_or(OffsetSpec::Beginning),
        end: ends.first().copied(),
    })
}

/// The serving model (`--model`, else the default artifact) and every `--candidate`, and the
/// names their events carry: every candidate must read the serving model's features.
fn models(args: &BacktestArgs) -> anyhow::Result<(Vec<Entry>, EventShape)> {
    let serving = load_model(args.model.as_deref())?;
    let shape = event_shape(&serving.artifact).map_err(anyhow::Error::msg)?;
    let mut entries = vec![Entry {
        role: "serving".to_owned(),
        file: serving.path.as_ref().map(|p| p.display().to_string()),
        predictor: Predictor::from(&serving.artifact),
    }];
    for (i, path) in args.candidates.iter().enumerate() {
        let artifact = Artifact::load(path).with_context(|| format!("--candidate {}", i + 1))?;
        artifact.check_servable(&format!("--candidate {}", path.display()))?;
        if event_shape(&artifact).as_ref() != Ok(&shape) {
            bail!(
                "--candidate {} reads {} for {}, the serving model {} for {}: a backtest compares \
                 models of the same features",
                path.display(),
                field_list(&artifact),
                artifact.target.field,
                field_list(&serving.artifact),
                serving.artifact.target.field,
            );
        }
        entries.push(Entry {
            role: format!("candidate {}", i + 1),
            file: Some(path.display().to_string()),
            predictor: Predictor::from(&artifact),
        });
    }
    Ok((entries, shape))
}

/// `bmi, bp`: an artifact's feature fields.
fn field_list(artifact: &Artifact) -> String {
    let fields: Vec<&str> = artifact.features.iter().map(|f| f.field.as_str()).collect();
    fields.join(", ")
}

/// `s@1700000000000 (2023-11-14T22:13:20.000Z)`: a spec, with its time when it has one.
fn spec_text(spec: OffsetSpec) -> String {
    match spec.timestamp_ms() {
        Some(ms) => format!("{spec} ({})", format_rfc3339(ms)),
        None => spec.to_string(),
    }
}

/// The table: two header lines, then a row per model, numbers right-aligned.
fn table(topic: &str, bounds: Bounds, outcome: &Outcome, entries: &[Entry]) -> String {
    let to = bounds
        .end
        .map_or_else(|| "the high watermarks at start".to_owned(), spec_text);
    let mut text = format!(
        "topic {topic}  partitions {}  from {}  to {to}\n",
        outcome.window.len(),
        spec_text(bounds.start)
    );
    let offsets: Vec<String> = outcome
        .window
        .iter()
        .map(|w| format!("p{} {}..{}", w.partition, w.start, w.end))
        .collect();
    text.push_str(&format!(
        "offsets {}  records {}  bad {}\n",
        offsets.join("  "),
        outcome.records,
        outcome.bad
    ));
    let absent = || "-".to_owned();
    let mut rows = vec![[
        "model", "version", "records", "labeled", "MAE", "RMSE", "R²", "wins", "file",
    ]
    .map(str::to_owned)];
    for (entry, f) in entries.iter().zip(&outcome.models) {
        rows.push([
            entry.role.clone(),
            f.version.clone(),
            f.records.to_string(),
            f.labeled.to_string(),
            f.mae.map_or_else(absent, |v| format!("{v:.0}")),
            f.rmse.map_or_else(absent, |v| format!("{v:.0}")),
            f.r2.map_or_else(absent, |v| format!("{v:.3}")),
            f.wins.to_string(),
            entry
                .file
                .clone()
                .unwrap_or_else(|| "(built in)".to_owned()),
        ]);
    }
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..9).map(width).collect();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            match c {
                0 | 1 => line.push_str(&format!("{cell}{}  ", " ".repeat(pad))),
                8 => line.push_str(cell),
                _ => line.push_str(&format!("{}{cell}  ", " ".repeat(pad))),
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_start_and_one_end_at_most() {
        let b = |o: &[&str], until| {
            bounds(
                &o.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>(),
                until,
            )
        };
        assert_eq!(
            b(&[], None).unwrap(),
            Bounds {
                start: OffsetSpec::Beginning,
                end: None
            }
        );
        assert_eq!(
            b(&["e@9", "-5"], None).unwrap(),
            Bounds {
                start: OffsetSpec::FromEnd(5),
                end: Some(OffsetSpec::EndTime(9))
            }
        );
        assert_eq!(
            b(&["s@3"], Some(9)).unwrap(),
            Bounds {
                start: OffsetSpec::StartTime(3),
                end: Some(OffsetSpec::EndTime(9))
            }
        );
        assert_eq!(
            b(&["5", "end"], None).unwrap_err().to_string(),
            "-o: give one start, got 5 and end"
        );
        assert_eq!(
            b(&["e@5"], Some(9)).unwrap_err().to_string(),
            "give one end (-o e@TIMESTAMP_MS or --until), got e@5 and e@9"
        );
    }
}
