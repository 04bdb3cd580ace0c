//! Drawing: a pure function of [`App`]. One render function per screen region.
//!
//! ```text
//! ┌ salary-stream ──────────────────────────────────────────────────────────┐
//! │ broker · topics · group                                                   │  header
//! │ model version and formula                                                 │
//! │ producer state, rate, sent and acknowledged                               │
//! └───────────────────────────────────────────────────────────────────────────┘
//! ┌ recent events ─────────────────────────┐┌ throughput ─────────────────────┐
//! │ time  p/offset  years  predicted  ms    ││ now · average · total · sparkline│
//! │ …                                       │├ predicted salary ───────────────┤
//! │                                         ││ sparkline                        │
//! ├ salary by years ───────────────────────┤├ model accuracy / DRIFT ─────────┤
//! │ points over the fitted line (braille)   ││ MAE · RMSE · R² · sparkline      │
//! │                                         │├ consumer lag ───────────────────┤
//! │                                         ││ per partition · total            │
//! │                                         │├ records ────────────────────────┤
//! │                                         ││ bad · last reason · extrapolated │
//! └─────────────────────────────────────────┘└─────────────────────────────────┘
//!  keys                                                                          footer
//! ```

mod chart;
mod events;
mod header;
mod side;

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use crate::app::App;

/// Draws the whole dashboard.
pub fn render(frame: &mut Frame<'_>, app: &App) {
    let [header_area, body, footer] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    header::render(frame, header_area, app);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(56), Constraint::Percentage(44)]).areas(body);
    if left.height >= 20 {
        let [table, plot] =
            Layout::vertical([Constraint::Min(8), Constraint::Length(10)]).areas(left);
        events::render(frame, table, app);
        chart::render(frame, plot, app);
    } else {
        events::render(frame, left, app);
    }
    side::render(frame, right, app);
    render_footer(frame, footer, app);
    if app.show_help {
        render_help(frame, frame.area());
    }
}

fn key(k: &'static str) -> Span<'static> {
    Span::styled(k, Style::new().add_modifier(Modifier::BOLD))
}

fn render_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut spans = vec![
        key(" p"),
        " producer  ".into(),
        key("+/-"),
        " rate  ".into(),
        key("d"),
        " drift  ".into(),
        key("t"),
        " retrain  ".into(),
        key("space"),
        " freeze  ".into(),
        key("c"),
        " clear  ".into(),
        key("?"),
        " help  ".into(),
        key("q"),
        " quit".into(),
    ];
    if app.frozen.is_some() {
        spans.push("   FROZEN".reversed());
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The key list shown by `?`.
pub const HELP: [(&str, &str); 9] = [
    ("p", "start / stop the synthetic producer"),
    ("+ / -", "double / halve the producer's rate"),
    ("d", "drift: synthetic salaries 20% higher, or back"),
    ("t", "retrain on the last 500 labeled events"),
    ("space", "freeze / unfreeze the view"),
    ("c", "clear the view"),
    ("?", "show / hide this help"),
    ("q", "quit (also Ctrl-C)"),
    ("", "the consumer keeps scoring while frozen"),
];

fn render_help(frame: &mut Frame<'_>, area: Rect) {
    let [popup] = Layout::horizontal([Constraint::Length(50)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::vertical([Constraint::Length(HELP.len() as u16 + 2)])
        .flex(Flex::Center)
        .areas(popup);
    let lines: Vec<Line<'_>> = HELP
        .iter()
        .map(|(k, what)| Line::from(vec![key_owned(k), Span::raw(format!("  {what}"))]))
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        popup,
    );
}

fn key_owned(k: &str) -> Span<'static> {
    Span::styled(format!("{k:>6}"), Style::new().add_modifier(Modifier::BOLD))
}

/// Formats ms since the epoch as `HH:MM:SS.mmm` (UTC).
pub fn clock(ms: i64) -> String {
    let day_ms = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_formats_utc_time_of_day() {
        assert_eq!(super::clock(0), "00:00:00.000");
        assert_eq!(super::clock(1_700_000_000_123), "22:13:20.123");
        assert_eq!(super::clock(86_399_999), "23:59:59.999");
    }
}
