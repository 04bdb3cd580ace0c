//! Drawing: a pure function of [`App`]. One render function per screen region.
//!
//! ```text
//!  salary-stream                                                                       header
//! broker ADDRESS (state)  group GROUP
//! topics INPUT → OUTPUT  dead letters → DLQ  at-least-once | exactly-once every S s: N, M aborted
//! model VERSION  challenger VERSION  salary = A + B × years  (note)
//! producer state and rate  sent N acked N
//! ┌ recent events (N shown, * beyond range) ─┐┌ throughput (events/s, last 60 s) ┐
//! │time p/offset years (features, most       ││now · avg · total, sparkline      │
//! │influential first, as many as fit)        │└──────────────────────────────────┘
//! │predicted [challenger] ms salary resid    │┌ predicted salary ────────────────┐
//! │…                                         │└ last · min · max, sparkline ─────┘
//! │                                          │┌ accuracy | DRIFT | vs challenger ┐
//! └──────────────────────────────────────────┘└ RMSE · MAE · R² (of both), closer┘
//! ┌ salary by years over the fitted line ────┐┌ latency ms, event to ack, 10 s ──┐
//! │points over the serving, challenger lines │└ p50 · p99 · p99.9 · max ─────────┘
//! │(10 rows, or 2/5 of a taller column)      │┌ consumer lag, partitions ────────┐
//! │                                          │└ total · s behind · per partition ┘
//! │                                          │┌ records ─────────────────────────┐
//! └──────────────────────────────────────────┘└ bad · beyond range · last reason ┘
//!  keys                              `?`: the keys in a box over the middle        footer
//! ```
//!
//! Every number on screen is whole or absent. As the terminal shrinks, whole parts go, least
//! important first: the table's columns (features beyond the most influential, least
//! influential first; label, residual, latency, partition/offset, time, challenger), the right column's panels (predicted values, records, latency, lag, accuracy;
//! rows beyond what those kept need are shared among them), the chart (below 20 rows for the
//! left column), the right column (below [`SIDE_MIN_WIDTH`] columns). The help overlay blanks
//! the part of a value its sides would cut, and is not drawn where it does not fit. Below
//! [`MIN_WIDTH`] x [`MIN_HEIGHT`] the screen says so; the engine keeps running meanwhile.

mod chart;
mod events;
pub mod fit;
mod header;
mod side;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use crate::app::App;

/// The smallest terminal the dashboard draws in.
pub const MIN_WIDTH: u16 = 50;
/// The smallest terminal height the dashboard draws in.
pub const MIN_HEIGHT: u16 = 15;
/// Below this width the right column goes and the table takes the screen.
pub const SIDE_MIN_WIDTH: u16 = 80;

/// Draws the whole dashboard.
pub fn render(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        render_too_small(frame, area);
        return;
    }
    let [header_area, body, footer] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    header::render(frame, header_area, app);
    let (left, right) = if body.width >= SIDE_MIN_WIDTH {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(56), Constraint::Percentage(44)])
                .areas(body);
        (left, Some(right))
    } else {
        (body, None)
    };
    if left.height >= 20 {
        let [table, plot] = Layout::vertical([
            Constraint::Min(8),
            Constraint::Length(chart_height(left.height)),
        ])
        .areas(left);
        events::render(frame, table, app);
        chart::render(frame, plot, app);
    } else {
        events::render(frame, left, app);
    }
    if let Some(right) = right {
        side::render(frame, right, app);
    }
    render_footer(frame, footer, app);
    if app.show_help() {
        render_help(frame, area, app);
    }
}

/// Rows the chart takes of a left column `rows` tall: 10, or two fifths of a taller one, so its
/// points spread out where there is room and the table still shows the latest events.
fn chart_height(rows: u16) -> u16 {
    (rows.saturating_mul(2) / 5).max(10)
}

/// `terminal too small: need WxH, have wxh`, or as much of it as fits whole.
fn render_too_small(frame: &mut Frame<'_>, area: Rect) {
    let need = format!("need {MIN_WIDTH}x{MIN_HEIGHT}");
    let have = format!("have {}x{}", area.width, area.height);
    let text = fit::line(
        area.width,
        vec![fit::Field::new(vec![Span::raw(format!(
            "terminal too small: {need}, {have}"
        ))])
        .or(vec![Span::raw(format!("too small: {need}"))])
        .or(vec![Span::raw(need)])],
    );
    let [middle] = Layout::vertical([Constraint::Length(1)])
        .flex(Flex::Center)
        .areas(area);
    frame.render_widget(Paragraph::new(text).centered(), middle);
}

fn key(k: &'static str) -> Span<'static> {
    Span::styled(k, Style::new().add_modifier(Modifier::BOLD))
}

fn render_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut fields = Vec::new();
    if app.is_frozen() {
        fields.push(fit::Field::new(vec![" FROZEN ".reversed(), " ".into()]));
    }
    for (k, what) in [
        (" q", " quit "),
        (" ?", " help "),
        (" p", " producer "),
        (" +/-", " rate "),
        (" d", " drift "),
        (" t", " challenger "),
        (" P", " promote "),
        (" r", " roll back "),
        (" x", " drop "),
        (" space", " freeze "),
        (" c", " clear "),
    ] {
        fields.push(fit::Field::new(vec![key(k), what.into()]));
    }
    frame.render_widget(Paragraph::new(fit::line(area.width, fields)), area);
}

/// The key list shown by `?`, for a view whose accuracy window is `accuracy_window` events.
pub fn help(accuracy_window: usize) -> [(&'static str, String); 12] {
    [
        ("p", "start / stop the synthetic producer".into()),
        ("+ / -", "double / halve the producer's rate".into()),
        ("d", "drift: synthetic salaries 20% higher, or back".into()),
        (
            "t",
            format!(
                "fit a challenger on the last {accuracy_window} labeled, or those since an alarm"
            ),
        ),
        ("P", "promote the challenger to serving".into()),
        ("r", "roll serving back to the version it replaced".into()),
        ("x", "drop the challenger".into()),
        ("space", "freeze / unfreeze the view".into()),
        ("c", "clear the view".into()),
        ("?", "show / hide this help".into()),
        ("q", "quit (also Ctrl-C)".into()),
        ("", "the consumer keeps scoring while frozen".into()),
    ]
}

/// The help overlay's size for `app`: its widest line and every line, inside a border.
pub fn help_size(app: &App) -> (u16, u16) {
    let help = help(app.accuracy_window());
    let widest = help
        .iter()
        .map(|(k, what)| Span::raw(format!("{k:>6}  {what}")).width())
        .max()
        .unwrap_or(0);
    (widest as u16 + 2, help.len() as u16 + 2)
}

fn render_help(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let (width, height) = help_size(app);
    if width > area.width || height > area.height {
        // Never a cut overlay: the footer's keys stand in for it.
        return;
    }
    let [popup] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(popup);
    blank_cut_values(frame.buffer_mut(), popup, area);
    let lines: Vec<Line<'_>> = help(app.accuracy_window())
        .iter()
        .map(|(k, what)| Line::from(vec![key_owned(k), Span::raw(format!("  {what}"))]))
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        popup,
    );
}

/// Blanks the part left outside `popup` of every value its sides would cut, so the overlay lies
/// over the dashboard and each number on screen is still whole or absent.
fn blank_cut_values(buffer: &mut Buffer, popup: Rect, area: Rect) {
    let is_text = |buffer: &Buffer, x: u16, y: u16| {
        buffer[(x, y)].symbol().chars().any(|c| {
            // Borders, bars and braille dots are drawing, not text.
            !c.is_whitespace()
                && !('\u{2500}'..='\u{259f}').contains(&c)
                && !('\u{2800}'..='\u{28ff}').contains(&c)
        })
    };
    for y in popup.top()..popup.bottom() {
        let left = popup.left();
        if left > area.left() && is_text(buffer, left, y) {
            let mut x = left - 1;
            while is_text(buffer, x, y) {
                buffer[(x, y)].reset();
                if x == area.left() {
                    break;
                }
                x -= 1;
            }
        }
        let right = popup.right();
        if right < area.right() && popup.width > 0 && is_text(buffer, right - 1, y) {
            let mut x = right;
            while x < area.right() && is_text(buffer, x, y) {
                buffer[(x, y)].reset();
                x += 1;
            }
        }
    }
}

fn key_owned(k: &str) -> Span<'static> {
    Span::styled(format!("{k:>6}"), Style::new().add_modifier(Modifier::BOLD))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(buffer: &Buffer) -> String {
        (0..buffer.area.width)
            .map(|x| buffer[(x, 0)].symbol())
            .collect()
    }

    #[test]
    fn a_value_the_overlay_would_cut_is_blanked_whole() {
        let area = Rect::new(0, 0, 24, 1);
        let mut buffer = Buffer::empty(area);
        buffer.set_string(0, 0, "price 116511.84  n 500│", Style::new());
        // Over `511.84`: `116` is left of it, alone.
        let mut cut = buffer.clone();
        blank_cut_values(&mut cut, Rect::new(9, 0, 6, 1), area);
        assert_eq!(text(&cut), "price    511.84  n 500│ ");
        // Over `ce 116511.84  n 5`: `pri` and `00` go, the border stays.
        let mut cut = buffer.clone();
        blank_cut_values(&mut cut, Rect::new(3, 0, 17, 1), area);
        assert_eq!(text(&cut), "   ce 116511.84  n 5  │ ");
        // Edges on spaces cut nothing.
        let mut cut = buffer.clone();
        blank_cut_values(&mut cut, Rect::new(6, 0, 10, 1), area);
        assert_eq!(cut, buffer);
    }

    #[test]
    fn the_chart_takes_two_fifths_of_a_tall_column() {
        assert_eq!(chart_height(20), 10);
        assert_eq!(chart_height(24), 10);
        assert_eq!(chart_height(34), 13);
        assert_eq!(chart_height(44), 17);
    }
}
