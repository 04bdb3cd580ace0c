//! The header: where the data comes from, which model scores it, what the producer does.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::engine::BrokerHealth;

/// Draws the header block.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let s = &app.setup;
    let broker_state = match &app.broker {
        BrokerHealth::Connecting => Span::styled("connecting", Style::new().fg(Color::Yellow)),
        BrokerHealth::Up => Span::styled("up", Style::new().fg(Color::Green)),
        BrokerHealth::Unreachable(why) | BrokerHealth::WrongAddress(why) => Span::styled(
            format!("UNREACHABLE: {why}"),
            Style::new().fg(Color::Red).bold(),
        ),
    };
    let p = &app.producer;
    let producer = if p.running {
        Span::styled(
            format!("producer ON {}", p.rate),
            Style::new().fg(Color::Green).bold(),
        )
    } else {
        Span::raw(format!("producer off ({}, press p)", p.rate))
    };
    let sent = if p.sent > 0 {
        let failed = if p.failed > 0 {
            format!(", {} failed", p.failed)
        } else {
            String::new()
        };
        Span::raw(format!("  sent {} acked {}{failed}", p.sent, p.acked))
    } else {
        Span::raw("")
    };
    let topics = if app.missing_topics.is_empty() {
        Line::from(vec![
            "topics ".dim(),
            Span::raw(format!(
                "{} → {}  dead letters → {}",
                s.input_topic, s.output_topic, s.dlq_topic
            )),
            Span::styled(
                app.topics_note
                    .as_ref()
                    .map_or_else(String::new, |note| format!("  ({note})")),
                Style::new().fg(Color::Cyan),
            ),
        ])
    } else {
        Line::from(vec![
            "topics ".dim(),
            Span::styled(
                format!(
                    "MISSING {}: waiting for {} (or run with --create-topics)",
                    app.missing_topics.join(", "),
                    if app.missing_topics.len() == 1 {
                        "it"
                    } else {
                        "them"
                    }
                ),
                Style::new().fg(Color::Red).bold(),
            ),
        ])
    };
    let lines = vec![
        Line::from(vec![
            "broker ".dim(),
            Span::raw(s.broker.clone()),
            " (".into(),
            broker_state,
            ")  group ".into(),
            Span::raw(s.group.clone()),
        ]),
        topics,
        Line::from(vec![
            "model ".dim(),
            Span::raw(format!("{}  {}", s.model_version, s.formula)),
            Span::styled(
                app.model_note
                    .as_ref()
                    .map_or_else(String::new, |note| format!("  ({note})")),
                Style::new().fg(Color::Cyan),
            ),
        ]),
        Line::from(vec![
            producer,
            sent,
            if app.drift_on {
                Span::styled("  labels drifted +20%", Style::new().fg(Color::Yellow))
            } else {
                Span::raw("")
            },
        ]),
    ];
    let mut block = Block::new().title(" salary-stream ".bold());
    let alarm = Style::new().fg(Color::Red).bold();
    if let Some(failure) = &app.failure {
        block = block.title_bottom(Span::styled(format!(" scorer stopped: {failure} "), alarm));
    }
    if let Some(failure) = &app.producer_failure {
        block = block.title_bottom(Span::styled(
            format!(" producer stopped: {failure} "),
            alarm,
        ));
    }
    if app.should_quit {
        block = block.title_bottom(Span::styled(
            " quitting: flushing predictions, committing offsets (q again: quit now) ",
            Style::new().fg(Color::Yellow).bold(),
        ));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
