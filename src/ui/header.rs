//! The header: where the data comes from, which model scores it, what the producer does. Each
//! line is made of whole fields ([`fit`]); a field that does not fit is shortened or left out.
//!
//! ```text
//!  salary-stream
//! broker ADDRESS (STATE)  brokers UP/KNOWN, N leader changes  SECURITY  group GROUP
//!   metrics ADDRESS/metrics  registry URL (FORMAT, schema N | UNREACHABLE: WHY)  broker_line
//! topics INPUT → OUTPUT  output not writable: WHY  dead letters → DLQ
//!   DELIVERY: N transactions, M aborted  (NOTE)
//!   or, while topics are missing: topics MISSING A, B: waiting for them (…)      topics_line
//! model VERSION  challenger VERSION  FORMULA  (NOTE)                              model_line
//! producer ON RATE | off (RATE, press p)  sent N acked N  failed N  labels drifted +20%
//!   or, while there are any: quitting (…)  scorer stopped: WHY  producer stopped: WHY
//!                                                                producer_line, or notices
//! ```
//!
//! The notices are the block's bottom title, which takes the producer line's row.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::fit::{self, Field};
use crate::app::App;
use crate::engine::BrokerHealth;

/// Draws the header: its four lines, the notices (if any) in the last one's place.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let width = area.width;
    let lines: Vec<Line<'_>> = [
        broker_line(app),
        topics_line(app),
        model_line(app),
        producer_line(app),
    ]
    .into_iter()
    .map(|fields| fit::line(width, fields))
    .collect();
    let mut block = Block::new().title(" salary-stream ".bold());
    // The bottom line's notices, whole or absent, laid out together: ratatui cuts a second
    // bottom title to whatever the first leaves.
    let notices = notices(app);
    if !notices.is_empty() {
        block = block.title_bottom(fit::line(width, notices));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The style of what has gone wrong.
fn red() -> Style {
    Style::new().fg(Color::Red).bold()
}

/// Where the data comes from: the broker and its state, the security in use, the group, and
/// where metrics are served.
fn broker_line(app: &App) -> Vec<Field<'static>> {
    let s = app.setup();
    vec![
        Field::new(vec!["broker ".dim(), Span::raw(s.broker.clone())]),
        broker_state(app.broker()),
        cluster(app),
        Field::new(match &s.security {
            Some(security) => vec!["  ".into(), Span::raw(security.clone())],
            None => vec![],
        }),
        Field::new(vec!["  group ".dim(), Span::raw(s.group.clone())]),
        Field::new(match &s.metrics_address {
            Some(address) => vec!["  metrics ".dim(), Span::raw(format!("{address}/metrics"))],
            None => vec![],
        }),
        registry(app),
    ]
}

/// The Schema Registry framed records are decoded through, if any: its URL and the latest
/// framed record's format, or that it cannot be reached (red), the reason first to go.
fn registry(app: &App) -> Field<'static> {
    let Some(r) = app.registry() else {
        return Field::new(vec![]);
    };
    let url = Span::raw(r.url.clone());
    match (&r.unreachable, &r.input) {
        (Some(why), _) => Field::new(vec![
            "  registry ".dim(),
            url,
            Span::styled(format!(" UNREACHABLE: {why}"), red()),
        ])
        .or(vec![Span::styled("  registry UNREACHABLE", red())]),
        (None, Some(input)) => Field::new(vec![
            "  registry ".dim(),
            url,
            Span::raw(format!(" ({input})")),
        ])
        .or(vec![Span::raw(format!("  {input}"))]),
        (None, None) => Field::new(vec!["  registry ".dim(), url]),
    }
}

/// Brokers up of known and the leader changes seen, for a cluster or while a broker is down;
/// yellow while one is down.
fn cluster(app: &App) -> Field<'static> {
    let Some(c) = app.cluster() else {
        return Field::new(vec![]);
    };
    let style = if c.up < c.known {
        Style::new().fg(Color::Yellow).bold()
    } else {
        Style::new()
    };
    let short = format!("  brokers {}/{}", c.up, c.known);
    Field::new(vec![Span::styled(format!("  {}", c.text()), style)])
        .or(vec![Span::styled(short, style)])
}

/// The broker's state in parentheses; a failure's reason goes first when it does not fit.
fn broker_state(health: &BrokerHealth) -> Field<'static> {
    let parenthesised = |state: Span<'static>| vec![" (".into(), state, ")".into()];
    match health {
        BrokerHealth::Connecting => Field::new(parenthesised(Span::styled(
            "connecting",
            Style::new().fg(Color::Yellow),
        ))),
        BrokerHealth::Up => Field::new(parenthesised(Span::styled(
            "up",
            Style::new().fg(Color::Green),
        ))),
        BrokerHealth::Refused(why) => Field::new(parenthesised(Span::styled(
            format!("REFUSED: {why}"),
            red(),
        )))
        .or(parenthesised(Span::styled("REFUSED", red()))),
        BrokerHealth::Unreachable(why) | BrokerHealth::WrongAddress(why) => Field::new(
            parenthesised(Span::styled(format!("UNREACHABLE: {why}"), red())),
        )
        .or(parenthesised(Span::styled("UNREACHABLE", red()))),
    }
}

/// Where records are read from and written to, and how; or, while some of those topics do not
/// exist, which.
fn topics_line(app: &App) -> Vec<Field<'static>> {
    let s = app.setup();
    let missing = app.missing_topics();
    if missing.is_empty() {
        let note = s
            .topics_note
            .as_ref()
            .map_or_else(String::new, |n| format!("  ({n})"));
        return vec![
            Field::new(vec![
                "topics ".dim(),
                Span::raw(format!("{} → {}", s.input_topic, s.output_topic)),
            ]),
            output_blocked(app),
            Field::new(vec![Span::raw(format!("  dead letters → {}", s.dlq_topic))]),
            delivery(app),
            Field::new(vec![Span::styled(note, Style::new().fg(Color::Cyan))]),
        ];
    }
    let them = if missing.len() == 1 { "it" } else { "them" };
    let missing = missing.join(", ");
    vec![
        Field::new(vec!["topics ".dim()]),
        Field::new(vec![Span::styled(
            format!("MISSING {missing}: waiting for {them} (or run with --create-topics)"),
            red(),
        )])
        .or(vec![Span::styled(format!("MISSING {missing}"), red())])
        .or(vec![Span::styled("MISSING", red())]),
    ]
}

/// Why the output takes no acknowledged writes now, if so: the whole line, else its first part.
fn output_blocked(app: &App) -> Field<'static> {
    let Some(why) = app.output_blocked() else {
        return Field::new(vec![]);
    };
    let short = why.split(" (").next().unwrap_or(why).to_owned();
    Field::new(vec![Span::styled(format!("  {why}"), red())])
        .or(vec![Span::styled(format!("  {short}"), red())])
        .or(vec![Span::styled("  NOT WRITABLE", red())])
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

/// Which model serves, which challenges it, the serving line, and the latest note about them.
fn model_line(app: &App) -> Vec<Field<'static>> {
    let s = app.setup();
    vec![
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
    ]
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

/// What the synthetic producer does: on or off at its rate, its counts, and whether its labels
/// are drifted.
fn producer_line(app: &App) -> Vec<Field<'static>> {
    let p = app.producer();
    let state = if p.running {
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
    let mut line = vec![state];
    if p.sent > 0 {
        line.push(Field::new(vec![Span::raw(format!(
            "  sent {} acked {}",
            p.sent, p.acked
        ))]));
    }
    if p.failed > 0 {
        line.push(Field::new(vec![Span::raw(format!(
            "  failed {}",
            p.failed
        ))]));
    }
    if app.drift_on() {
        let yellow = Style::new().fg(Color::Yellow);
        line.push(
            Field::new(vec![Span::styled("  labels drifted +20%", yellow)])
                .or(vec![Span::styled("  drift", yellow)]),
        );
    }
    line
}

/// What the bottom line says: that the dashboard is quitting, that the scorer or the producer
/// stopped.
fn notices(app: &App) -> Vec<Field<'static>> {
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
            red(),
        ));
    }
    if let Some(failure) = app.producer_failure() {
        notices.push(notice(
            vec![
                format!(" producer stopped: {failure} "),
                " producer stopped ".to_owned(),
            ],
            red(),
        ));
    }
    notices
}

/// One notice in `style`, in the first of `variants` (longest first) that fits.
fn notice(variants: Vec<String>, style: Style) -> Field<'static> {
    let mut variants = variants
        .into_iter()
        .map(move |v| vec![Span::styled(v, style)]);
    let first = Field::new(variants.next().unwrap_or_default());
    variants.fold(first, Field::or)
}
