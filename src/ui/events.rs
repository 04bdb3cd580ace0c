//! The table of recent events, newest first.
//!
//! Each column is as wide as its widest cell, so no value is ever cut; when the table is narrower
//! than all of them, whole columns go, least important first: label, residual, latency,
//! partition/offset, time, challenger. The plotted feature (years in the demo) and the prediction
//! always stay. The challenger's column is there while one is loaded or its predictions are shown,
//! the label's while a labeled event is.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Row, Table};
use ratatui::Frame;

use super::fit;
use crate::app::{App, Axes};
use crate::engine::{clock, ScoredEvent};

/// The table's columns, in the order drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Time,
    Offset,
    Years,
    Predicted,
    Challenger,
    Latency,
    Label,
    Residual,
}

/// Cells of one row, in [`Column::DRAWN`] order.
type Cells = [String; 8];

impl Column {
    const DRAWN: [Column; 8] = [
        Column::Time,
        Column::Offset,
        Column::Years,
        Column::Predicted,
        Column::Challenger,
        Column::Latency,
        Column::Label,
        Column::Residual,
    ];
    /// The order columns are given up in as the table narrows.
    const GIVEN_UP: [Column; 6] = [
        Column::Label,
        Column::Residual,
        Column::Latency,
        Column::Offset,
        Column::Time,
        Column::Challenger,
    ];

    /// Where the column is in [`Column::DRAWN`], and so in a row's cells.
    fn index(self) -> usize {
        Column::DRAWN.iter().position(|&d| d == self).unwrap_or(0)
    }

    /// The column's heading; `axes` name the plotted feature's and the label's (`years` and
    /// `salary` in the demo).
    fn header(self, axes: &Axes) -> String {
        match self {
            Column::Time => "time (UTC)",
            Column::Offset => "p/offset",
            Column::Years => return axes.x.clone(),
            Column::Predicted => "predicted",
            Column::Challenger => "challenger",
            Column::Latency => "ms",
            Column::Label => return axes.y.clone(),
            Column::Residual => "resid",
        }
        .to_owned()
    }
}

/// Draws the recent-events table.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let view = app.view();
    let visible = usize::from(area.height.saturating_sub(3));
    let latest = view.recent.iter().rev().take(visible);
    let challenged = app.challenger().is_some() || latest.clone().any(|e| e.challenger.is_some());
    let rows: Vec<(bool, Cells)> = latest.map(|e| (e.extrapolated, cells(e))).collect();
    let axes = &app.setup().axes;
    let widths = widths(&rows, axes);
    let labeled = rows
        .iter()
        .any(|(_, cells)| !cells[Column::Label.index()].is_empty());
    let mut candidates = Column::DRAWN.to_vec();
    candidates.retain(|&c| match c {
        Column::Challenger => challenged,
        Column::Label => labeled,
        _ => true,
    });
    let shown = shown(
        candidates,
        &widths,
        usize::from(area.width.saturating_sub(2)),
    );
    let table_rows = rows.into_iter().map(|(extrapolated, cells)| {
        let row = Row::new(shown.iter().map(|&c| cell(cells[c.index()].clone(), c)));
        if extrapolated {
            row.style(Style::new().fg(Color::Yellow))
        } else {
            row
        }
    });
    let header = Row::new(shown.iter().map(|&c| cell(c.header(axes), c)))
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
fn cells(e: &ScoredEvent) -> Cells {
    [
        e.event_ms.map_or_else(|| "-".to_owned(), clock),
        format!("{}/{}", e.partition, e.offset),
        format!("{:.1}{}", e.years, if e.extrapolated { "*" } else { "" }),
        format!("{:.2}", e.predicted),
        e.challenger.map_or_else(String::new, |c| format!("{c:.2}")),
        e.latency_ms
            .map_or_else(|| "-".to_owned(), |l| format!("{l:.1}")),
        e.salary.map_or_else(String::new, |s| format!("{s:.2}")),
        e.salary
            .map_or_else(String::new, |s| format!("{:+.0}", s - e.predicted)),
    ]
}

/// Each column's width: its widest cell or its header, in [`Column::DRAWN`] order.
fn widths(rows: &[(bool, Cells)], axes: &Axes) -> Vec<usize> {
    let widest = |i: usize| {
        rows.iter()
            .map(|(_, cells)| cells[i].chars().count())
            .chain([Column::DRAWN[i].header(axes).chars().count()])
            .max()
            .unwrap_or(0)
    };
    (0..Column::DRAWN.len()).map(widest).collect()
}

/// Of `candidates`, the columns that fit `inner` columns of text, whole, giving them up in
/// [`Column::GIVEN_UP`] order; none if even the feature and the prediction do not fit.
fn shown(candidates: Vec<Column>, widths: &[usize], inner: usize) -> Vec<Column> {
    let mut shown = candidates;
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
