//! The header: where the data comes from, which model scores it, what the producer does. Each
//! line is made of whole fields ([`fit`]); a field that does not fit is shortened or left out.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::fit::{self, Field};
use crate::app::App;
use crate::engine::BrokerHealth;

/// Draws the header block.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let s = app.setup();
    let width = area.width;
    let red = Style::new().fg(Color::Red).bold();
    let note = |text: String| Span::styled(text, Style::new().fg(Color::Cyan));
    let broker_state = match app.broker() {
        BrokerHealth::Connecting => Field::new(vec![
            " (".into(),
            Span::styled("connecting", Style::new().fg(Color::Yellow)),
            ")".into(),
        ]),
        BrokerHealth::Up => Field::new(vec![
            " (".into(),
            Span::styled("up", Style::new().fg(Color::Green)),
            ")".into(),
        ]),
        BrokerHealth::Refused(why) => Field::new(vec![
            " (".into(),
            Span::styled(format!("REFUSED: {why}"), red),
            ")".into(),
        ])
        .or(vec![" (".into(), Span::styled("REFUSED", red), ")".into()]),
        BrokerHealth::Unreachable(why) | BrokerHealth::WrongAddress(why) => Field::new(vec![
            " (".into(),
            Span::styled(format!("UNREACHABLE: {why}"), red),
            ")".into(),
        ])
        .or(vec![
            " (".into(),
            Span::styled("UNREACHABLE", red),
            ")".into(),
        ]),
    };
    let broker = vec![
        Field::new(vec!["broker ".dim(), Span::raw(s.broker.clone())]),
        broker_state,
        Field::new(match &s.security {
            Some(security) => vec!["  ".into(), Span::raw(security.clone())],
            None => vec![],
        }),
        Field::new(vec!["  group ".dim(), Span::raw(s.group.clone())]),
        Field::new(match &app.setup().metrics_address {
            Some(address) => vec!["  metrics ".dim(), Span::raw(format!("{address}/metrics"))],
            None => vec![],
        }),
    ];
    let topics = if app.missing_topics().is_empty() {
        vec![
            Field::new(vec![
                "topics ".dim(),
                Span::raw(format!("{} → {}", s.input_topic, s.output_topic)),
            ]),
            Field::new(vec![Span::raw(format!("  dead letters → {}", s.dlq_topic))]),
            delivery(app),
            Field::new(vec![note(
                app.setup()
                    .topics_note
                    .as_ref()
                    .map_or_else(String::new, |n| format!("  ({n})")),
            )]),
        ]
    } else {
        let missing = app.missing_topics().join(", ");
        let them = if app.missing_topics().len() == 1 {
            "it"
        } else {
            "them"
        };
        vec![
            Field::new(vec!["topics ".dim()]),
            Field::new(vec![Span::styled(
                format!("MISSING {missing}: waiting for {them} (or run with --create-topics)"),
                red,
            )])
            .or(vec![Span::styled(format!("MISSING {missing}"), red)])
            .or(vec![Span::styled("MISSING", red)]),
        ]
    };
    let model = vec![
        Field::new(vec!["model ".dim(), Span::raw(s.model_version.clone())]),
        Field::new(match app.challenger() {
            Some(c) => vec![
                "  challenger ".dim(),
                Span::styled(c.version.clone(), Style::new().fg(Color::Magenta)),
            ],
            None => vec![],
        }),
        Field::new(vec![Span::raw(format!("  {}", s.formula))]),
        model_note(app.model_note()),
    ];
    let p = app.producer();
    let producer_state = if p.running {
        Field::new(vec![Span::styled(
            format!("producer ON {}", p.rate),
            Style::new().fg(Color::Green).bold(),
        )])
    } else {
        Field::new(vec![Span::raw(format!(
            "producer off ({}, press p)",
            p.rate
        ))])
        .or(vec![Span::raw(format!("producer off ({})", p.rate))])
        .or(vec![Span::raw("producer off")])
    };
    let mut producer = vec![producer_state];
    if p.sent > 0 {
        producer.push(Field::new(vec![Span::raw(format!(
            "  sent {} acked {}",
            p.sent, p.acked
        ))]));
    }
    if p.failed > 0 {
        producer.push(Field::new(vec![Span::raw(format!(
            "  failed {}",
            p.failed
        ))]));
    }
    if app.drift_on() {
        producer.push(
            Field::new(vec![Span::styled(
                "  labels drifted +20%",
                Style::new().fg(Color::Yellow),
            )])
            .or(vec![Span::styled(
                "  drift",
                Style::new().fg(Color::Yellow),
            )]),
        );
    }
    let lines: Vec<Line<'_>> = [broker, topics, model, producer]
        .into_iter()
        .map(|fields| fit::line(width, fields))
        .collect();
    let mut block = Block::new().title(" salary-stream ".bold());
    // The bottom line's notices, whole or absent, laid out together: ratatui cuts a second
    // bottom title to whatever the first leaves.
    let notice = |variants: Vec<String>, style: Style| {
        let mut variants = variants
            .into_iter()
            .map(move |v| vec![Span::styled(v, style)]);
        let first = Field::new(variants.next().unwrap_or_default());
        variants.fold(first, Field::or)
    };
    let mut notices = Vec::new();
    if app.should_quit() {
        notices.push(notice(
            vec![
                " quitting: flushing predictions, committing offsets (q again: quit now) "
                    .to_owned(),
                " quitting (q again: now) ".to_owned(),
                " quitting ".to_owned(),
            ],
            Style::new().fg(Color::Yellow).bold(),
        ));
    }
    if let Some(failure) = app.failure() {
        notices.push(notice(
            vec![
                format!(" scorer stopped: {failure} "),
                " scorer stopped ".to_owned(),
            ],
            red,
        ));
    }
    if let Some(failure) = app.producer_failure() {
        notices.push(notice(
            vec![
                format!(" producer stopped: {failure} "),
                " producer stopped ".to_owned(),
            ],
            red,
        ));
    }
    if !notices.is_empty() {
        block = block.title_bottom(fit::line(width, notices));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The model note in full, then without where the version was kept, then without what follows
/// its first colon (the reason or the evidence), then its first two words.
fn model_note(text: Option<&str>) -> Field<'static> {
    let style = Style::new().fg(Color::Cyan);
    let Some(text) = text else {
        return Field::new(vec![]);
    };
    let unkept = text.split(", kept in").next().unwrap_or(text);
    let head = text.split(": ").next().unwrap_or(text);
    let shortest: Vec<&str> = text.split(' ').take(2).collect();
    let shortest = shortest.join(" ");
    [text, unkept, head, shortest.trim_end_matches([',', ':'])]
        .into_iter()
        .skip(1)
        .fold(
            Field::new(vec![Span::styled(format!("  ({text})"), style)]),
            |field, variant| field.or(vec![Span::styled(format!("  ({variant})"), style)]),
        )
}

/// How predictions are delivered, with the transactions so far in exactly-once mode.
fn delivery(app: &App) -> Field<'static> {
    let mode = Span::styled(
        format!("  {}", app.setup().delivery),
        Style::new().fg(Color::Cyan),
    );
    match app.transactions() {
        Some((committed, aborted)) => Field::new(vec![
            mode.clone(),
            Span::raw(format!(": {committed} transactions, {aborted} aborted")),
        ])
        .or(vec![mode]),
        None => Field::new(vec![mode]),
    }
}
