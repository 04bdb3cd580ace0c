//! The right column: throughput, predicted salaries, consumer lag, record health.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use crate::app::App;
use crate::engine::consumer::ACCURACY_WINDOW;
use crate::engine::quality::Shift;

/// Draws the right column.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let [throughput, salaries, accuracy, lag, records] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Min(4),
    ])
    .areas(area);
    render_throughput(frame, throughput, app);
    render_salaries(frame, salaries, app);
    render_accuracy(frame, accuracy, app);
    render_lag(frame, lag, app);
    render_records(frame, records, app);
}

fn split_text_and_chart(block: &Block<'_>, area: Rect) -> (Rect, Rect) {
    let inner = block.inner(area);
    let [text, chart] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    (text, chart)
}

/// A sparkline of the newest values that fit the area's width.
fn render_latest(
    frame: &mut Frame<'_>,
    area: Rect,
    values: impl ExactSizeIterator<Item = u64>,
    color: Color,
) {
    let skip = values.len().saturating_sub(usize::from(area.width));
    let data: Vec<u64> = values.skip(skip).collect();
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .style(Style::new().fg(color)),
        area,
    );
}

fn render_throughput(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let t = &app.view().throughput;
    let block = Block::bordered().title(" throughput (events/s, last 60 s) ");
    let (text, chart) = split_text_and_chart(&block, area);
    frame.render_widget(block, area);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            "now ".dim(),
            Span::raw(t.per_second_now().to_string()).bold(),
            "  avg ".dim(),
            Span::raw(format!("{:.1}", t.per_second_average())),
            "  total ".dim(),
            Span::raw(t.total().to_string()),
        ])),
        text,
    );
    render_latest(frame, chart, t.history(), Color::Cyan);
}

fn render_salaries(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    let block = Block::bordered().title(" predicted salary ");
    let (text, chart) = split_text_and_chart(&block, area);
    frame.render_widget(block, area);
    let (lo, hi) = v
        .predictions
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    let summary = match v.predictions.back() {
        Some(last) => format!("last {last}  min {lo}  max {hi}"),
        None => "waiting for events".to_owned(),
    };
    frame.render_widget(Paragraph::new(summary), text);
    render_latest(frame, chart, v.predictions.iter().copied(), Color::Green);
}

fn render_accuracy(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    let title = match v.drift {
        Some(alarm) => Line::from(Span::styled(
            format!(
                " DRIFT {} at {} after {} labeled ",
                match alarm.shift {
                    Shift::Up => "↑",
                    Shift::Down => "↓",
                },
                &super::clock(alarm.at_ms)[..8],
                alarm.after
            ),
            Style::new().fg(Color::Red).bold(),
        )),
        None => Line::from(format!(" model accuracy (last {ACCURACY_WINDOW} labeled) ")),
    };
    let block = Block::bordered().title(title);
    let (text, chart) = split_text_and_chart(&block, area);
    frame.render_widget(block, area);
    let summary = match v.accuracy {
        Some(a) => format!(
            "MAE {:.0}  RMSE {:.0}  R² {:.3}  n {}",
            a.mae, a.rmse, a.r2, a.n
        ),
        None => "no labeled events yet".to_owned(),
    };
    frame.render_widget(Paragraph::new(summary), text);
    render_latest(frame, chart, v.rmse_history.iter().copied(), Color::Magenta);
}

fn render_lag(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let lag = &app.view().lag;
    let mut spans: Vec<Span<'_>> = Vec::new();
    for (p, l) in &lag.partitions {
        spans.push(format!("p{p} ").dim());
        spans.push(Span::raw(format!("{l}  ")));
    }
    let total = if lag.partitions.is_empty() {
        Line::from("no partitions assigned yet")
    } else {
        Line::from(vec![
            "total ".dim(),
            Span::raw(lag.total().to_string()).bold(),
        ])
    };
    let owned: Vec<String> = app.assigned.iter().map(i32::to_string).collect();
    let title = if owned.is_empty() {
        " consumer lag (records) ".to_owned()
    } else {
        format!(" consumer lag (records), partitions {} ", owned.join(","))
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(spans), total]).block(Block::bordered().title(title)),
        area,
    );
}

fn render_records(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    let bad_style = if v.bad > 0 {
        Style::new().fg(Color::Red).bold()
    } else {
        Style::new()
    };
    let mut lines = vec![
        Line::from(vec![
            "bad records ".dim(),
            Span::styled(v.bad.to_string(), bad_style),
            "  beyond range ".dim(),
            Span::raw(v.extrapolated.to_string()),
        ]),
        Line::from(vec![
            "last reason ".dim(),
            Span::raw(v.last_bad.clone().unwrap_or_else(|| "-".to_owned())),
        ]),
    ];
    if v.delivery_errors > 0 || app.dropped_reports > 0 {
        lines.push(Line::from(format!(
            "delivery errors {}  view drops {}",
            v.delivery_errors, app.dropped_reports
        )));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" records ")),
        area,
    );
}
