//! The table of recent events, newest first.
//!
//! The event's features come after its time and offset, most influential first, each named by
//! its JSON field (the plotted one as the chart names it: `years` in the demo), as many as fit.
//! Each column is as wide as its widest cell, so no value is ever cut; when the table is narrower
//! than all of them, whole columns go, least important first: the features beyond the first,
//! least influential first, then label, residual, latency, partition/offset, time, challenger.
//! The plotted feature and the prediction always stay. The challenger's column is there while
//! one is loaded or its predictions are shown, the label's while a labeled event is.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Row, Table};
use ratatui::Frame;

use super::fit;
use crate::app::{App, Axes};
use crate::engine::{clock, FeatureRow, ScoredEvent};

/// The table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Time,
    Offset,
    /// The newest event's `k`th most influential feature (0: the plotted one).
    Feature(usize),
    Predicted,
    Challenger,
    Latency,
    Label,
    Residual,
}

impl Column {
    /// The columns drawn for events of `features` features, in the order drawn: the event, its
    /// features most influential first, what the models made of it.
    fn drawn(features: usize) -> Vec<Column> {
        let mut drawn = vec![Column::Time, Column::Offset];
        drawn.extend((0..features.max(1)).map(Column::Feature));
        drawn.extend([
            Column::Predicted,
            Column::Challenger,
            Column::Latency,
            Column::Label,
            Column::Residual,
        ]);
        drawn
    }

    /// The order columns are given up in as the table narrows: the features beyond the first,
    /// least influential first, then label, residual, latency, partition/offset, time,
    /// challenger. The first feature and the prediction stay.
    fn given_up(features: usize) -> Vec<Column> {
        let mut order: Vec<Column> = (1..features).rev().map(Column::Feature).collect();
        order.extend([
            Column::Label,
            Column::Residual,
            Column::Latency,
            Column::Offset,
            Column::Time,
            Column::Challenger,
        ]);
        order
    }

    /// The column's heading: `axes` name the plotted feature (`years` in the demo) and the
    /// label (`salary`), `fields` the other features.
    fn header(self, axes: &Axes, fields: &[&str]) -> String {
        match self {
            Column::Time => "time (UTC)",
            Column::Offset => "p/offset",
            Column::Feature(0) => return axes.x.clone(),
            Column::Feature(k) => fields.get(k).copied().unwrap_or("-"),
            Column::Predicted => "predicted",
            Column::Challenger => "challenger",
            Column::Latency => "ms",
            Column::Label => return axes.y.clone(),
            Column::Residual => "resid",
        }
        .to_owned()
    }
}

/// The features of the events in view as the table shows them: the newest event's fields, and
/// the decimals each column is written with.
struct TableFeatures<'a> {
    /// The newest event's features: whose fields the columns are.
    newest: Option<&'a FeatureRow>,
    /// The newest event's fields, most influential first.
    fields: Vec<&'a str>,
    /// Decimals of each feature's column ([`decimals`]).
    decimals: Vec<usize>,
}

impl<'a> TableFeatures<'a> {
    /// The features of `events` (newest last), named as the newest event names them.
    fn of(events: &'a std::collections::VecDeque<ScoredEvent>) -> Self {
        let newest = events.back().map(|e| &e.features);
        let fields: Vec<&str> = newest.map_or_else(Vec::new, |f| f.fields().collect());
        let mut features = TableFeatures {
            newest,
            decimals: vec![1; fields.len()],
            fields,
        };
        for k in 0..features.decimals.len() {
            let values: Vec<f64> = events.iter().filter_map(|e| features.value(e, k)).collect();
            features.decimals[k] = decimals(&values);
        }
        features
    }

    /// `event`'s value of the `k`th column's feature, if it has it.
    fn value(&self, event: &ScoredEvent, k: usize) -> Option<f64> {
        let row = &event.features;
        let value = match self.newest {
            Some(newest) if row.same_fields(newest) => row.values().get(k).copied(),
            _ => row.value_of(self.fields.get(k)?),
        };
        value.filter(|v| v.is_finite())
    }

    /// How many feature columns there are: at least one, the plotted feature's.
    fn count(&self) -> usize {
        self.fields.len().max(1)
    }
}

/// Decimals a column of `values` is written with: as many as its values carry (the demo's years
/// carry one), at most what three significant digits of the largest need, at least one, at most
/// four.
fn decimals(values: &[f64]) -> usize {
    const MOST: i32 = 4;
    let carries = |v: f64, d: i32| {
        let scaled = v * 10f64.powi(d);
        (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
    };
    let mut carried = 0;
    for &v in values {
        while carried < MOST && !carries(v, carried) {
            carried += 1;
        }
    }
    let largest = values.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let significant = if largest > 0.0 {
        (2 - largest.log10().floor() as i32).clamp(0, MOST)
    } else {
        MOST
    };
    carried.min(significant).max(1) as usize
}

/// Draws the recent-events table.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let view = app.view();
    let visible = usize::from(area.height.saturating_sub(3));
    let latest: Vec<&ScoredEvent> = view.recent.iter().rev().take(visible).collect();
    let challenged = app.challenger().is_some() || latest.iter().any(|e| e.challenger.is_some());
    let labeled = latest.iter().any(|e| e.salary.is_some());
    let features = TableFeatures::of(&view.recent);
    // Named by the model that scored the newest event, which may no longer serve.
    let axes = &view.plot.axes;
    let mut candidates = Column::drawn(features.count());
    candidates.retain(|&c| match c {
        Column::Challenger => challenged,
        Column::Label => labeled,
        _ => true,
    });
    let rows: Vec<(bool, Vec<String>)> = latest
        .iter()
        .map(|e| {
            let cells = candidates.iter().map(|&c| text(e, c, &features)).collect();
            (e.extrapolated, cells)
        })
        .collect();
    let headers: Vec<String> = candidates
        .iter()
        .map(|c| c.header(axes, &features.fields))
        .collect();
    let widths: Vec<usize> = (0..candidates.len())
        .map(|i| {
            rows.iter()
                .map(|(_, cells)| cells[i].chars().count())
                .chain([headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let shown = shown(
        &candidates,
        &widths,
        &Column::given_up(features.count()),
        usize::from(area.width.saturating_sub(2)),
    );
    let table_rows = rows.into_iter().map(|(extrapolated, cells)| {
        let row = Row::new(shown.iter().map(|&i| cell(cells[i].clone(), candidates[i])));
        if extrapolated {
            row.style(Style::new().fg(Color::Yellow))
        } else {
            row
        }
    });
    let header = Row::new(
        shown
            .iter()
            .map(|&i| cell(headers[i].clone(), candidates[i])),
    )
    .style(Style::new().add_modifier(Modifier::BOLD));
    let constraints: Vec<Constraint> = shown
        .iter()
        .map(|&i| Constraint::Length(widths[i] as u16))
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

/// The text of `e`'s cell in column `c`.
fn text(e: &ScoredEvent, c: Column, features: &TableFeatures<'_>) -> String {
    match c {
        Column::Time => e.event_ms.map_or_else(|| "-".to_owned(), clock),
        Column::Offset => format!("{}/{}", e.partition, e.offset),
        Column::Feature(k) => {
            let decimals = features.decimals.get(k).copied().unwrap_or(1);
            let star = if k == 0 && e.extrapolated { "*" } else { "" };
            features
                .value(e, k)
                .map_or_else(String::new, |v| format!("{v:.decimals$}{star}"))
        }
        Column::Predicted => format!("{:.2}", e.predicted),
        Column::Challenger => e.challenger.map_or_else(String::new, |c| format!("{c:.2}")),
        Column::Latency => e
            .latency_ms
            .map_or_else(|| "-".to_owned(), |l| format!("{l:.1}")),
        Column::Label => e.salary.map_or_else(String::new, |s| format!("{s:.2}")),
        Column::Residual => e
            .salary
            .map_or_else(String::new, |s| format!("{:+.0}", s - e.predicted)),
    }
}

/// Of `candidates` (each `widths` wide), the indices of those that fit `inner` columns of text,
/// whole, giving them up in `given_up` order, then taking back the features that fit in the room
/// left; none if even the first feature and the prediction do not fit.
fn shown(candidates: &[Column], widths: &[usize], given_up: &[Column], inner: usize) -> Vec<usize> {
    let mut shown: Vec<usize> = (0..candidates.len()).collect();
    let needed = |shown: &[usize]| {
        shown.iter().map(|&i| widths[i]).sum::<usize>() + shown.len().saturating_sub(1)
    };
    for column in given_up {
        if needed(&shown) <= inner {
            break;
        }
        shown.retain(|&i| candidates[i] != *column);
    }
    if needed(&shown) > inner {
        shown.clear();
        return shown;
    }
    // Room a wider column left, once given up, goes to the features that fit in it, most
    // influential first.
    for (i, c) in candidates.iter().enumerate() {
        if matches!(c, Column::Feature(_)) && !shown.contains(&i) {
            let mut with = shown.clone();
            with.push(i);
            with.sort_unstable();
            if needed(&with) <= inner {
                shown = with;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_has_the_decimals_its_values_carry_to_three_significant_digits() {
        let cases: &[(&[f64], usize)] = &[
            (&[5.3, 12.0, 9.6], 1),
            (&[0.5, 0.7], 1),
            (&[4.8598, 3.8918], 2),
            (&[157.0, 310.0], 1),
            (&[32.1375, 21.6], 1),
            (&[0.038076, -0.044642], 4),
            (&[1.0, 2.0], 1),
            (&[], 1),
        ];
        for &(values, want) in cases {
            assert_eq!(decimals(values), want, "{values:?}");
        }
    }

    #[test]
    fn an_event_of_another_model_shows_the_features_it_shares() {
        let event = |features: FeatureRow| ScoredEvent {
            partition: 0,
            offset: 0,
            event_ms: None,
            features,
            predicted: 1.0,
            salary: None,
            challenger: None,
            latency_ms: None,
            extrapolated: false,
        };
        let events: std::collections::VecDeque<ScoredEvent> = [
            event(FeatureRow::named(&[("bmi", 32.1), ("age", 59.0)])),
            event(FeatureRow::named(&[("s5", 4.8598), ("bmi", 21.6)])),
        ]
        .into();
        let features = TableFeatures::of(&events);
        assert_eq!(features.fields, ["s5", "bmi"]);
        assert_eq!(features.value(&events[0], 0), None);
        assert_eq!(features.value(&events[0], 1), Some(32.1));
        assert_eq!(features.value(&events[1], 0), Some(4.8598));
        assert_eq!(features.decimals, [2, 1]);
    }
}
