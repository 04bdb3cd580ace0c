//! Recent (feature, label) points over the fitted line: labels where events carry them, else the
//! predictions themselves. The demo plots salary by years; another model its label by its most
//! influential feature, with its line when it is one. Only the events plotted by the newest
//! event's feature are drawn: after a swap to a model of other features, the older ones are of
//! another axis. The title, the x range and the line are those of the model that scored the
//! newest event shown, so a swap renames the chart with its first event, not before.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType};
use ratatui::Frame;

use crate::app::App;

/// The top of the y axis: the demo's salaries in steps of 50,000 as ever; smaller values at a
/// round step of their own size (1, 2 or 5 times a power of ten).
fn y_top(y_max: f64) -> f64 {
    if y_max >= 50_000.0 || y_max <= 0.0 {
        return ((y_max / 50_000.0).ceil() * 50_000.0).max(0.0);
    }
    let power = 10f64.powf(y_max.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&step| step >= y_max / 5.0)
        .unwrap_or(power * 10.0);
    (y_max / step).ceil() * step
}

/// The field of the feature `event` is plotted by: its most influential.
fn plotted_field(event: &crate::engine::ScoredEvent) -> Option<&str> {
    event.features.fields().next()
}

/// Draws the chart.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    // Named, scaled and lined by the model that scored the newest event, which may no longer
    // serve: a swap renames the chart with that model's first event.
    let axes = &v.plot.axes;
    let fitted = v.plot.line;
    // After a swap to a model of other features, only the events plotted by the newest's
    // feature share its x axis.
    let newest = v.recent.back().and_then(plotted_field);
    let points: Vec<(f64, f64)> = v
        .recent
        .iter()
        .filter(|e| plotted_field(e) == newest)
        .map(|e| (e.features.plotted(), e.salary.unwrap_or(e.predicted)))
        .collect();
    let x_min = points.iter().map(|p| p.0).fold(0.0, f64::min).floor();
    let x_max = points
        .iter()
        .map(|p| p.0)
        .fold(fitted.range_max, f64::max)
        .ceil();
    // A model that is not one line (many features, ONNX) has no line to draw.
    let line = (fitted.slope.is_finite() && fitted.intercept.is_finite()).then_some([
        (x_min, fitted.intercept + fitted.slope * x_min),
        (x_max, fitted.intercept + fitted.slope * x_max),
    ]);
    let challenger = app
        .challenger()
        .filter(|c| c.slope.is_finite() && c.intercept.is_finite())
        .map(|c| {
            [
                (x_min, c.intercept + c.slope * x_min),
                (x_max, c.intercept + c.slope * x_max),
            ]
        });
    let y_max = points
        .iter()
        .map(|p| p.1)
        .chain(line.iter().flatten().map(|p| p.1))
        .chain(challenger.iter().flatten().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_max = y_top(y_max);
    let mut datasets = Vec::with_capacity(3);
    if let Some(line) = &line {
        datasets.push(
            Dataset::default()
                .name("fitted line")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(Color::Yellow))
                .data(line),
        );
    }
    if let Some(challenger) = &challenger {
        datasets.push(
            Dataset::default()
                .name("challenger")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(Color::Magenta))
                .data(challenger),
        );
    }
    datasets.push(
        Dataset::default()
            .name("events")
            .marker(Marker::Braille)
            .graph_type(GraphType::Scatter)
            .style(Style::new().fg(Color::Cyan))
            .data(&points),
    );
    let by = format!(" {} by {}", axes.y, axes.x);
    let title = match (&line, &challenger) {
        (Some(_), Some(_)) => format!("{by}: serving line (yellow), challenger (magenta) "),
        (Some(_), None) => format!("{by} over the fitted line "),
        (None, _) => format!("{by}: labels where known, else predictions "),
    };
    let (x_unit, y_label) = if y_max >= 50_000.0 {
        (" y", format!("{:.0}k", y_max / 1000.0))
    } else {
        ("", format!("{y_max:.0}"))
    };
    let x_unit = if axes.x == "years" { x_unit } else { "" };
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(super::fit::title(area.width, &[title, format!("{by} ")])))
        .x_axis(Axis::default().bounds([x_min, x_max]).labels([
            Span::raw(format!("{x_min:.0}")),
            Span::raw(format!("{x_max:.0}{x_unit}")),
        ]))
        .y_axis(
            Axis::default()
                .bounds([0.0, y_max])
                .labels([Span::raw("0"), Span::raw(y_label)]),
        )
        .hidden_legend_constraints((
            ratatui::layout::Constraint::Percentage(0),
            ratatui::layout::Constraint::Percentage(0),
        ));
    frame.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_y_axis_ends_on_a_round_number() {
        assert_eq!(y_top(137_000.0), 150_000.0);
        assert_eq!(y_top(0.0), 0.0);
        assert_eq!(y_top(346.0), 400.0);
        assert_eq!(y_top(151.0), 200.0);
        assert_eq!(y_top(9.0), 10.0);
    }
}
