//! The table of recent events, newest first.
//!
//! Each column is as wide as its widest cell, so no value is ever cut; when the table is narrower
//! than all of them, whole columns go, least important first: residual, latency, partition/offset,
//! time. Years and the predicted salary always stay.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Row, Table};
use ratatui::Frame;

use super::fit;
use crate::app::App;
use crate::engine::clock;

/// The table's columns, in the order drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Time,
    Offset,
    Years,
    Predicted,
    Latency,
    Residual,
}

impl Column {
    const DRAWN: [Column; 6] = [
        Column::Time,
        Column::Offset,
        Column::Years,
        Column::Predicted,
        Column::Latency,
        Column::Residual,
    ];
    /// The order columns are given up in as the table narrows.
    const GIVEN_UP: [Column; 4] = [
        Column::Residual,
        Column::Latency,
        Column::Offset,
        Column::Time,
    ];

    fn header(self) -> &'static str {
        match self {
            Column::Time => "time (UTC)",
            Column::Offset => "p/offset",
            Column::Years => "years",
            Column::Predicted => "predicted",
            Column::Latency => "ms",
            Column::Residual => "resid",
        }
    }
}

/// Draws the recent-events table.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let view = app.view();
    let visible = usize::from(area.height.saturating_sub(3));
    let rows: Vec<(bool, [String; 6])> = view
        .recent
        .iter()
        .rev()
        .take(visible)
        .map(|e| {
            (
                e.extrapolated,
                [
                    e.event_ms.map_or_else(|| "-".to_owned(), clock),
                    format!("{}/{}", e.partition, e.offset),
                    format!("{:.1}{}", e.years, if e.extrapolated { "*" } else { "" }),
                    format!("{:.2}", e.predicted),
                    e.latency_ms
                        .map_or_else(|| "-".to_owned(), |l| format!("{l:.1}")),
                    e.salary
                        .map_or_else(String::new, |s| format!("{:+.0}", s - e.predicted)),
                ],
            )
        })
        .collect();
    let widest = |i: usize| {
        rows.iter()
            .map(|(_, cells)| cells[i].chars().count())
            .chain([Column::DRAWN[i].header().len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..Column::DRAWN.len()).map(widest).collect();
    let inner = usize::from(area.width.saturating_sub(2));
    let mut shown = Column::DRAWN.to_vec();
    let needed = |shown: &[Column]| {
        shown
            .iter()
            .map(|c| widths[Column::DRAWN.iter().position(|d| d == c).unwrap_or(0)])
            .sum::<usize>()
            + shown.len().saturating_sub(1)
    };
    for column in Column::GIVEN_UP {
        if needed(&shown) <= inner {
            break;
        }
        shown.retain(|c| *c != column);
    }
    if needed(&shown) > inner {
        shown.clear();
    }
    let index = |c: &Column| Column::DRAWN.iter().position(|d| d == c).unwrap_or(0);
    let cell = |text: String, c: &Column| {
        let line = Line::from(text);
        Cell::from(if *c == Column::Time {
            line
        } else {
            line.right_aligned()
        })
    };
    let table_rows = rows.into_iter().map(|(extrapolated, cells)| {
        let row = Row::new(shown.iter().map(|c| cell(cells[index(c)].clone(), c)));
        if extrapolated {
            row.style(Style::new().fg(Color::Yellow))
        } else {
            row
        }
    });
    let header = Row::new(shown.iter().map(|c| cell(c.header().to_owned(), c)))
        .style(Style::new().add_modifier(Modifier::BOLD));
    let constraints: Vec<Constraint> = shown
        .iter()
        .map(|c| Constraint::Length(widths[index(c)] as u16))
        .collect();
    let title = fit::title(
        area.width,
        &[
            format!(
                " recent events ({} shown, * beyond training range) ",
                view.recent.len()
            ),
            format!(" recent events ({} shown) ", view.recent.len()),
            " recent events ".to_owned(),
            " events ".to_owned(),
        ],
    );
    frame.render_widget(
        Table::new(table_rows, constraints)
            .header(header)
            .block(Block::bordered().title(title)),
        area,
    );
}
