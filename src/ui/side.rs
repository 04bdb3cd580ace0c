//! The right column: throughput, predicted salaries, model accuracy, latency, consumer lag and
//! record health.
//!
//! Panels keep their order on screen; when the column is too short for all of them, whole panels
//! go, least important first: predicted values, records, latency, lag, accuracy (throughput
//! stays). Rows beyond what the kept panels need are dealt out among them, one at a time, most
//! important first, so taller sparklines fill a tall column. Every line is built from whole
//! fields ([`fit`]), and each sparkline is scaled to its own window's range, which its panel
//! prints.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline, SparklineBar};
use ratatui::Frame;

use super::fit::{self, Field};
use crate::app::App;
use crate::engine::LagByPartition;
use crate::observe::quality::Shift;
use crate::observe::stats::LATENCY_WINDOW_SECONDS;
use crate::observe::watch::GroupMember;

/// The right column's panels, in the order drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Panel {
    Throughput,
    Salaries,
    Accuracy,
    Latency,
    Lag,
    Records,
}

impl Panel {
    const DRAWN: [Panel; 6] = [
        Panel::Throughput,
        Panel::Salaries,
        Panel::Accuracy,
        Panel::Latency,
        Panel::Lag,
        Panel::Records,
    ];
    /// Most important first: the order panels are kept in as the column shortens. A model
    /// dashboard without its accuracy is not one: it goes only before throughput.
    const KEPT: [Panel; 6] = [
        Panel::Throughput,
        Panel::Accuracy,
        Panel::Lag,
        Panel::Latency,
        Panel::Records,
        Panel::Salaries,
    ];

    /// Rows the panel needs, borders included.
    fn height(self) -> u16 {
        match self {
            Panel::Records => 4,
            _ => 5,
        }
    }
}

/// The panels that fit `height` rows and the rows each gets, in the order drawn: each its own
/// height, and the rows left over dealt out one at a time in [`Panel::KEPT`] order, so the
/// column ends where the screen does.
fn panels_for(height: u16) -> Vec<(Panel, u16)> {
    let mut left = height;
    let mut kept: Vec<(Panel, u16)> = Vec::new();
    for panel in Panel::KEPT {
        if panel.height() > left {
            break;
        }
        left -= panel.height();
        kept.push((panel, panel.height()));
    }
    if !kept.is_empty() {
        for i in (0..kept.len()).cycle().take(usize::from(left)) {
            kept[i].1 += 1;
        }
    }
    Panel::DRAWN
        .into_iter()
        .filter_map(|p| kept.iter().find(|(k, _)| *k == p).copied())
        .collect()
}

/// Draws the right column.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let panels = panels_for(area.height);
    let constraints = panels.iter().map(|&(_, rows)| Constraint::Length(rows));
    let areas = Layout::vertical(constraints).split(area);
    for ((panel, _), &rect) in panels.iter().zip(areas.iter()) {
        match panel {
            Panel::Throughput => render_throughput(frame, rect, app),
            Panel::Salaries => render_salaries(frame, rect, app),
            Panel::Accuracy => render_accuracy(frame, rect, app),
            Panel::Latency => render_latency(frame, rect, app),
            Panel::Lag => render_lag(frame, rect, app),
            Panel::Records => render_records(frame, rect, app),
        }
    }
}

/// A bordered block with the first of `titles` that fits, and the rows inside it.
fn panel(frame: &mut Frame<'_>, area: Rect, titles: &[String], title_style: Style) -> Rect {
    let block = Block::bordered().title(Span::styled(fit::title(area.width, titles), title_style));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}

/// Draws `lines` of whole fields at the top of `inner`, and a sparkline below them if asked.
fn text_then_chart<'a>(
    frame: &mut Frame<'_>,
    inner: Rect,
    lines: Vec<Vec<Field<'a>>>,
    chart: Option<(Vec<SparklineBar>, u64, Color)>,
) {
    let rows = u16::try_from(lines.len()).unwrap_or(u16::MAX);
    let [text, rest] =
        Layout::vertical([Constraint::Length(rows), Constraint::Min(0)]).areas(inner);
    let lines: Vec<Line<'a>> = lines
        .into_iter()
        .map(|fields| fit::line(text.width, fields))
        .collect();
    frame.render_widget(Paragraph::new(lines), text);
    if let Some((bars, max, color)) = chart {
        let skip = bars.len().saturating_sub(usize::from(rest.width));
        let bars: Vec<SparklineBar> = bars.into_iter().skip(skip).collect();
        frame.render_widget(
            Sparkline::default()
                .data(bars)
                .max(max)
                .style(Style::new().fg(color)),
            rest,
        );
    }
}

/// The newest `width` of `values`, each above its window's minimum, as bars scaled to the
/// window's range; and that range.
fn scaled(values: &[u64], width: u16) -> (Vec<SparklineBar>, u64, (u64, u64)) {
    let skip = values.len().saturating_sub(usize::from(width));
    let window = &values[skip..];
    let lo = window.iter().copied().min().unwrap_or(0);
    let hi = window.iter().copied().max().unwrap_or(0);
    // One step above the minimum for every value, so the lowest still shows as a bar.
    let bars = window
        .iter()
        .map(|&v| SparklineBar::from((v - lo).saturating_add(1)))
        .collect();
    (bars, (hi - lo).saturating_add(1), (lo, hi))
}

fn label(text: &'static str) -> Span<'static> {
    text.dim()
}

fn render_throughput(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let t = &app.view().throughput;
    let inner = panel(
        frame,
        area,
        &[
            " throughput (events/s, last 60 s) ".to_owned(),
            " throughput (events/s) ".to_owned(),
            " throughput ".to_owned(),
        ],
        Style::new(),
    );
    let history: Vec<u64> = t.history().collect();
    let fields = vec![
        Field::new(vec![
            label("now "),
            Span::raw(t.per_second_now().to_string()).bold(),
        ]),
        Field::new(vec![
            label("  avg "),
            Span::raw(format!("{:.1}", t.per_second_average())),
        ])
        .or(vec![
            label("  avg "),
            Span::raw(format!("{:.0}", t.per_second_average())),
        ]),
        Field::new(vec![label("  total "), Span::raw(t.total().to_string())]),
    ];
    // Throughput is drawn from zero: an idle second is worth seeing as empty.
    let max = history.iter().copied().max().unwrap_or(0).max(1);
    let bars = history.into_iter().map(SparklineBar::from).collect();
    text_then_chart(frame, inner, vec![fields], Some((bars, max, Color::Cyan)));
}

fn render_salaries(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    let inner = panel(
        frame,
        area,
        &[
            format!(" predicted {} ", v.plot.axes.y),
            " predicted ".to_owned(),
        ],
        Style::new(),
    );
    let values: Vec<u64> = v.predictions.iter().copied().collect();
    let (bars, max, (lo, hi)) = scaled(&values, inner.width);
    let fields = match values.last() {
        Some(last) => vec![
            Field::new(vec![label("last "), Span::raw(last.to_string())]),
            Field::new(vec![label("  min "), Span::raw(lo.to_string())]),
            Field::new(vec![label("  max "), Span::raw(hi.to_string())]),
        ],
        None => vec![Field::new(vec![label("waiting for events")])],
    };
    text_then_chart(frame, inner, vec![fields], Some((bars, max, Color::Green)));
}

fn render_accuracy(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    if let Some(challenger) = app.challenger() {
        render_comparison(frame, area, app, &challenger.version);
        return;
    }
    let (titles, style) = match v.drift {
        Some(alarm) => {
            let arrow = match alarm.shift {
                Shift::Up => "↑",
                Shift::Down => "↓",
            };
            let at = &crate::engine::clock(alarm.at_ms)[..8];
            (
                vec![
                    format!(" DRIFT {arrow} at {at} after {} labeled ", alarm.after),
                    format!(" DRIFT {arrow} at {at} "),
                    format!(" DRIFT {arrow} "),
                ],
                Style::new().fg(Color::Red).bold(),
            )
        }
        None => (
            vec![
                format!(" model accuracy (last {} labeled) ", app.accuracy_window()),
                " model accuracy ".to_owned(),
                " accuracy ".to_owned(),
            ],
            Style::new(),
        ),
    };
    let inner = panel(frame, area, &titles, style);
    let rmse: Vec<u64> = v.rmse_history.iter().map(|(r, _)| *r).collect();
    let (bars, max, (lo, hi)) = scaled(&rmse, inner.width);
    let skip = rmse.len().saturating_sub(usize::from(inner.width));
    // Bars from the report where the alarm fired on are red: the drift, marked on the line.
    let bars = bars
        .into_iter()
        .zip(v.rmse_history.iter().skip(skip))
        .map(|(bar, (_, drifted))| {
            if *drifted {
                bar.style(Style::new().fg(Color::Red))
            } else {
                bar
            }
        })
        .collect();
    let fields = match v.accuracy {
        Some(a) => vec![
            Field::new(vec![label("RMSE "), Span::raw(format!("{:.0}", a.rmse))]),
            Field::new(vec![label("  MAE "), Span::raw(format!("{:.0}", a.mae))]),
            r2_field("  R² ", a.r2),
            Field::new(vec![label("  n "), Span::raw(a.n.to_string())]),
            Field::new(vec![
                label("  RMSE range "),
                Span::raw(format!("{lo}..{hi}")),
            ]),
        ],
        None => vec![Field::new(vec![label("no labeled events yet")])],
    };
    text_then_chart(
        frame,
        inner,
        vec![fields],
        Some((bars, max, Color::Magenta)),
    );
}

/// The serving model against the challenger, on the labeled events both scored.
fn render_comparison(frame: &mut Frame<'_>, area: Rect, app: &App, challenger: &str) {
    let v = app.view();
    let serving = &app.setup().model_version;
    let drift = v.drift.map_or("", |a| match a.shift {
        Shift::Up => "DRIFT ↑ ",
        Shift::Down => "DRIFT ↓ ",
    });
    let style = if drift.is_empty() {
        Style::new()
    } else {
        Style::new().fg(Color::Red).bold()
    };
    let titles = [
        format!(
            " {drift}{serving} vs challenger {challenger} (last {} labeled) ",
            app.accuracy_window()
        ),
        format!(" {drift}{serving} vs challenger {challenger} "),
        format!(" {drift}vs challenger {challenger} "),
        format!(" {drift}vs challenger "),
    ];
    let inner = panel(frame, area, &titles, style);
    let lines = match v.comparison {
        None => vec![vec![Field::new(vec![label(
            "no labeled events scored by both yet",
        )])
        .or(vec![label("no labeled events yet")])]],
        Some(c) => {
            let row = |name: &'static str, a: &crate::observe::quality::Accuracy| {
                vec![
                    Field::new(vec![label(name)]),
                    Field::new(vec![label(" RMSE "), Span::raw(format!("{:<6.0}", a.rmse))]),
                    Field::new(vec![label(" MAE "), Span::raw(format!("{:<6.0}", a.mae))]),
                    r2_field(" R² ", a.r2),
                ]
            };
            let share = c.challenger_closer * 100 / c.n.max(1);
            vec![
                row("serving   ", &c.serving),
                row("challenger", &c.challenger),
                vec![
                    Field::new(vec![
                        label("closer "),
                        Span::raw(format!("{} of {} ({share}%)", c.challenger_closer, c.n)),
                    ])
                    .or(vec![label("closer "), Span::raw(format!("{share}%"))]),
                    Field::new(vec![
                        label("  mean |difference| "),
                        Span::raw(format!("{:.0}", c.mean_abs_difference)),
                    ])
                    .or(vec![
                        label("  |diff| "),
                        Span::raw(format!("{:.0}", c.mean_abs_difference)),
                    ]),
                ],
            ]
        }
    };
    text_then_chart(frame, inner, lines, None);
}

/// R² to three places; absent while it is undefined (every label in the window the same, as
/// after one labeled event).
fn r2_field(name: &'static str, r2: f64) -> Field<'static> {
    Field::new(if r2.is_finite() {
        vec![label(name), Span::raw(format!("{r2:.3}"))]
    } else {
        vec![]
    })
}

/// `1.25` ms as text: two decimals below 10 ms, one below 100, whole above.
fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn render_latency(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    let inner = panel(
        frame,
        area,
        &[
            format!(" latency ms, event to ack, last {LATENCY_WINDOW_SECONDS} s "),
            format!(" latency ms (last {LATENCY_WINDOW_SECONDS} s) "),
            " latency ms ".to_owned(),
        ],
        Style::new(),
    );
    let p99: Vec<u64> = v.p99_history.iter().copied().collect();
    let (bars, max, (lo, hi)) = scaled(&p99, inner.width);
    let lines = match v.latency {
        Some(l) => vec![
            vec![
                Field::new(vec![label("p50 "), Span::raw(ms(l.p50_ms))]),
                Field::new(vec![label("  p99 "), Span::raw(ms(l.p99_ms)).bold()]),
                Field::new(vec![label("  p99.9 "), Span::raw(ms(l.p999_ms))]),
                Field::new(vec![label("  max "), Span::raw(ms(l.max_ms))]),
            ],
            vec![Field::new(vec![
                label("p99 range "),
                Span::raw(format!(
                    "{}..{}",
                    ms(lo as f64 / 1000.0),
                    ms(hi as f64 / 1000.0)
                )),
            ])],
        ],
        None => vec![vec![Field::new(vec![label("no acknowledged events yet")])]],
    };
    text_then_chart(frame, inner, lines, Some((bars, max, Color::Blue)));
}

/// Whole seconds from ms, with one decimal below 10 s.
fn seconds(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 10.0 {
        format!("{s:.1}")
    } else {
        format!("{s:.0}")
    }
}

/// The consumer-lag panel: the total and how far behind, each partition, the group's members,
/// then the total's sparkline.
fn render_lag(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    let inner = panel(frame, area, &lag_titles(app.assigned()), Style::new());
    if v.lag.partitions.is_empty() {
        // No partition, no lag: bars of it would be made up.
        let waiting = vec![Field::new(vec![label("no partitions assigned yet")])];
        text_then_chart(frame, inner, vec![waiting], None);
        return;
    }
    let history: Vec<u64> = v.lag_history.iter().copied().collect();
    let (bars, max, range) = scaled(&history, inner.width);
    let mut lines = vec![lag_summary(&v.lag, range), lag_by_partition(&v.lag)];
    if let Some(members) = app.members() {
        lines.push(group_members(members));
    }
    text_then_chart(frame, inner, lines, Some((bars, max, Color::Yellow)));
}

/// The lag panel's titles, longest first: with the partitions this consumer owns, if any.
fn lag_titles(assigned: &[i32]) -> Vec<String> {
    let owned: Vec<String> = assigned.iter().map(i32::to_string).collect();
    let mut titles = Vec::new();
    if !owned.is_empty() {
        titles.push(format!(" consumer lag, partitions {} ", owned.join(",")));
    }
    titles.extend([" consumer lag ".to_owned(), " lag ".to_owned()]);
    titles
}

/// The total lag, how far behind the furthest partition is, and `(lo, hi)`, the range the
/// sparkline is scaled to.
fn lag_summary(lag: &LagByPartition, (lo, hi): (u64, u64)) -> Vec<Field<'static>> {
    vec![
        Field::new(vec![
            label("total "),
            Span::raw(lag.total().to_string()).bold(),
        ]),
        Field::new(vec![
            label(" records, "),
            Span::raw(seconds(lag.most_behind_ms())).bold(),
            label(" s behind"),
        ])
        .or(vec![
            label("  "),
            Span::raw(seconds(lag.most_behind_ms())).bold(),
            label(" s"),
        ]),
        Field::new(vec![label("  range "), Span::raw(format!("{lo}..{hi}"))]),
    ]
}

/// Each partition's lag, and how far behind it is when there is room.
fn lag_by_partition(lag: &LagByPartition) -> Vec<Field<'static>> {
    let behind = |p: i32| {
        lag.behind_ms
            .iter()
            .find(|(q, _)| *q == p)
            .map_or(0, |(_, b)| *b)
    };
    lag.partitions
        .iter()
        .enumerate()
        .map(|(i, &(p, l))| {
            let gap = if i > 0 { "  " } else { "" };
            Field::new(vec![
                Span::raw(gap),
                format!("p{p} ").dim(),
                Span::raw(format!("{l} ({} s)", seconds(behind(p)))),
            ])
            .or(vec![
                Span::raw(gap),
                format!("p{p} ").dim(),
                Span::raw(l.to_string()),
            ])
        })
        .collect()
}

/// The watched group's members and the partitions each owns, as one field: every member with
/// its host, or every member without, or how many there are; never some of them.
fn group_members(members: &[GroupMember]) -> Vec<Field<'static>> {
    if members.is_empty() {
        return vec![Field::new(vec![label("no members")])];
    }
    let listed = |with_host: bool| -> Vec<Span<'static>> {
        let mut spans = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let owned: Vec<String> = m.partitions.iter().map(i32::to_string).collect();
            let owned = if owned.is_empty() {
                "-".to_owned()
            } else {
                owned.join(",")
            };
            let name = if with_host {
                format!("{}@{} ", m.client_id, m.host)
            } else {
                format!("{} ", m.client_id)
            };
            if i > 0 {
                spans.push(Span::raw("  "));
            }
            spans.extend([Span::raw(name).dim(), Span::raw(owned)]);
        }
        spans
    };
    let count = match members.len() {
        1 => "1 member".to_owned(),
        n => format!("{n} members"),
    };
    vec![Field::new(listed(true))
        .or(listed(false))
        .or(vec![Span::raw(count)])]
}

fn render_records(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let v = app.view();
    let inner = panel(frame, area, &[" records ".to_owned()], Style::new());
    let bad_style = if v.totals.bad > 0 {
        Style::new().fg(Color::Red).bold()
    } else {
        Style::new()
    };
    let counts = vec![vec![
        Field::new(vec![
            label("bad "),
            Span::styled(v.totals.bad.to_string(), bad_style),
        ]),
        Field::new(vec![
            label("  beyond range "),
            Span::raw(v.totals.extrapolated.to_string()),
        ]),
        Field::new(vec![
            label("  delivery errors "),
            Span::raw(v.totals.delivery_errors.to_string()),
        ]),
        Field::new(vec![
            label("  view drops "),
            Span::raw(app.dropped_reports().to_string()),
        ]),
    ]];
    let [first, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    text_then_chart(frame, first, counts, None);
    // The reason wraps at spaces; a line that does not fit the rows left is not drawn at all.
    let reason = format!("last reason {}", v.last_bad.as_deref().unwrap_or("-"));
    let wrapped = wrap_words(&reason, usize::from(rest.width));
    if wrapped.len() <= usize::from(rest.height) {
        let lines: Vec<Line<'_>> = wrapped.into_iter().map(Line::from).collect();
        frame.render_widget(Paragraph::new(lines), rest);
    }
}

/// `text` broken at spaces into lines of at most `width` columns; empty if a word is longer.
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        let w = Span::raw(word).width();
        if w > width {
            return Vec::new();
        }
        match lines.last_mut() {
            Some(line) if Span::raw(line.as_str()).width() + 1 + w <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_is_the_last_panel_to_go_but_throughput() {
        use Panel::*;
        // 80x24: 18 rows for the column.
        assert_eq!(
            panels_for(18),
            [(Throughput, 6), (Accuracy, 6), (Lag, 6)],
            "spare rows are dealt out, most important first"
        );
        assert_eq!(panels_for(10), [(Throughput, 5), (Accuracy, 5)]);
        assert_eq!(panels_for(9), [(Throughput, 9)]);
        assert_eq!(panels_for(4), []);
        assert_eq!(
            panels_for(29),
            [
                (Throughput, 5),
                (Salaries, 5),
                (Accuracy, 5),
                (Latency, 5),
                (Lag, 5),
                (Records, 4)
            ]
        );
        // 200x50: 44 rows, 15 of them spare.
        assert_eq!(
            panels_for(44),
            [
                (Throughput, 8),
                (Salaries, 7),
                (Accuracy, 8),
                (Latency, 7),
                (Lag, 8),
                (Records, 6)
            ]
        );
    }
}
