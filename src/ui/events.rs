//! The table of recent events, newest first.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Row, Table};
use ratatui::Frame;

use super::clock;
use crate::app::App;

/// Draws the recent-events table.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let view = app.view();
    let visible = usize::from(area.height.saturating_sub(3));
    let rows = view.recent.iter().rev().take(visible).map(|e| {
        let years = format!("{:.1}{}", e.years, if e.extrapolated { "*" } else { "" });
        let mut cells = vec![
            Cell::from(e.event_ms.map_or_else(|| "-".to_owned(), clock)),
            Cell::from(Line::from(format!("{}/{}", e.partition, e.offset)).right_aligned()),
            Cell::from(Line::from(years).right_aligned()),
            Cell::from(Line::from(format!("{:.2}", e.predicted)).right_aligned()),
            Cell::from(
                Line::from(
                    e.latency_ms
                        .map_or_else(|| "-".to_owned(), |l| format!("{l:.1}")),
                )
                .right_aligned(),
            ),
        ];
        if let Some(salary) = e.salary {
            cells.push(Cell::from(
                Line::from(format!("{:+.0}", salary - e.predicted)).right_aligned(),
            ));
        }
        let row = Row::new(cells);
        if e.extrapolated {
            row.style(Style::new().fg(Color::Yellow))
        } else {
            row
        }
    });
    let header = Row::new([
        Cell::from("time (UTC)"),
        Cell::from(Line::from("p/offset").right_aligned()),
        Cell::from(Line::from("years").right_aligned()),
        Cell::from(Line::from("predicted").right_aligned()),
        Cell::from(Line::from("ms").right_aligned()),
        Cell::from(Line::from("resid").right_aligned()),
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(7),
    ];
    let title = format!(
        " recent events ({} shown, * beyond training range) ",
        view.recent.len()
    );
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(title)),
        area,
    );
}
