//! Recent (years, salary) points over the fitted line: labels where events carry them, else the
//! predictions themselves.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType};
use ratatui::Frame;

use crate::app::App;

/// Draws the chart.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    let points: Vec<(f64, f64)> = v
        .recent
        .iter()
        .map(|e| (e.years, e.salary.unwrap_or(e.predicted)))
        .collect();
    let x_max = points
        .iter()
        .map(|p| p.0)
        .fold(app.line().range_max, f64::max)
        .ceil();
    let line = [
        (0.0, app.line().intercept),
        (x_max, app.line().intercept + app.line().slope * x_max),
    ];
    let challenger = app
        .challenger()
        .map(|c| [(0.0, c.intercept), (x_max, c.intercept + c.slope * x_max)]);
    let y_max = points
        .iter()
        .map(|p| p.1)
        .chain(line.iter().map(|p| p.1))
        .chain(challenger.iter().flatten().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_max = (y_max / 50_000.0).ceil() * 50_000.0;
    let mut datasets = vec![
        Dataset::default()
            .name("fitted line")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Yellow))
            .data(&line),
        Dataset::default()
            .name("events")
            .marker(Marker::Braille)
            .graph_type(GraphType::Scatter)
            .style(Style::new().fg(Color::Cyan))
            .data(&points),
    ];
    if let Some(challenger) = &challenger {
        datasets.insert(
            1,
            Dataset::default()
                .name("challenger")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(Color::Magenta))
                .data(challenger),
        );
    }
    let title = if challenger.is_some() {
        " salary by years: serving line (yellow), challenger (magenta) "
    } else {
        " salary by years over the fitted line "
    };
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(super::fit::title(
            area.width,
            &[title.to_owned(), " salary by years ".to_owned()],
        )))
        .x_axis(
            Axis::default()
                .bounds([0.0, x_max])
                .labels([Span::raw("0"), Span::raw(format!("{x_max:.0} y"))]),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, y_max])
                .labels([Span::raw("0"), Span::raw(format!("{:.0}k", y_max / 1000.0))]),
        )
        .hidden_legend_constraints((
            ratatui::layout::Constraint::Percentage(0),
            ratatui::layout::Constraint::Percentage(0),
        ));
    frame.render_widget(chart, area);
}
