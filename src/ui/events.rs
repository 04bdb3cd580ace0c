//! The table of recent events, newest first.
//!
//! Each column is as wide as its widest cell, so no value is ever cut; when the table is narrower
//! than all of them, whole columns go, least important first: residual, latency, partition/offset,
//! time. The plotted feature (years in the demo) and the prediction always stay.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Row, Table};
use ratatui::Frame;

use super::fit;
use crate::app::App;
use crate::engine::{clock, ScoredEvent};

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

    /// Where the column is in [`Column::DRAWN`], and so in a row's cells.
    fn index(self) -> usize {
        Column::DRAWN.iter().position(|&d| d == self).unwrap_or(0)
    }

    /// The column's heading; `feature` names the plotted feature's (`years` in the demo).
    fn header(self, feature: &str) -> String {
        match self {
            Column::Time => "time (UTC)",
            Column::Offset => "p/offset",
            Column::Years => return feature.to_owned(),
            Column::Predicted => "predicted",
            Column::Latency => "ms",
            Column::Residual => "resid",
        }
        .to_owned()
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
        .map(|e| (e.extrapolated, cells(e)))
        .collect();
    let feature = &app.setup().axes.x;
    let widths = widths(&rows, feature);
    let shown = shown(&widths, usize::from(area.width.saturating_sub(2)));
    let table_rows = rows.into_iter().map(|(extrapolated, cells)| {
        let row = Row::new(shown.iter().map(|&c| cell(cells[c.index()].clone(), c)));
        if extrapolated {
            row.style(Style::new().fg(Color::Yellow))
        } else {
            row
        }
    });
    let header = Row::new(shown.iter().map(|&c| cell(c.header(feature), c)))
        .style(Style::new().add_modifier(Modifier::BOLD));
    let constraints: Vec<Constraint> = shown
        .iter()
        .map(|c| Constraint::Length(widths[c.index()] as u16))
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

/// One event's cells, in [`Column::DRAWN`] order.
fn cells(e: &ScoredEvent) -> [String; 6] {
    [
        e.event_ms.map_or_else(|| "-".to_owned(), clock),
        format!("{}/{}", e.partition, e.offset),
        format!("{:.1}{}", e.years, if e.extrapolated { "*" } else { "" }),
        format!("{:.2}", e.predicted),
        e.latency_ms
            .map_or_else(|| "-".to_owned(), |l| format!("{l:.1}")),
        e.salary
            .map_or_else(String::new, |s| format!("{:+.0}", s - e.predicted)),
    ]
}

/// Each column's width: its widest cell or its header, in [`Column::DRAWN`] order.
fn widths(rows: &[(bool, [String; 6])], feature: &str) -> Vec<usize> {
    let widest = |i: usize| {
        rows.iter()
            .map(|(_, cells)| cells[i].chars().count())
            .chain([Column::DRAWN[i].header(feature).chars().count()])
            .max()
            .unwrap_or(0)
    };
    (0..Column::DRAWN.len()).map(widest).collect()
}

/// The columns that fit `inner` columns of text, whole, giving them up in [`Column::GIVEN_UP`]
/// order; none if even the last two do not fit.
fn shown(widths: &[usize], inner: usize) -> Vec<Column> {
    let mut shown = Column::DRAWN.to_vec();
    let needed = |shown: &[Column]| {
        shown.iter().map(|c| widths[c.index()]).sum::<usize>() + shown.len().saturating_sub(1)
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
    shown
}

/// A cell of column `c`: times read from the left, numbers from the right.
fn cell(text: String, c: Column) -> Cell<'static> {
    let line = Line::from(text);
    Cell::from(if c == Column::Time {
        line
    } else {
        line.right_aligned()
    })
}
