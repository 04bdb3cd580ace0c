//! Text that fits its space whole or not at all: every number on screen is whole or absent.
//!
//! A line is made of fields in order of importance; each field has variants from longest to
//! shortest. A field is drawn in the first variant that fits what is left of the width, or left
//! out, so a line is never cut in the middle of a value.

use ratatui::text::{Line, Span};

/// One field of a line: its variants, longest first.
pub struct Field<'a> {
    variants: Vec<Vec<Span<'a>>>,
}

impl<'a> Field<'a> {
    /// A field with one form.
    pub fn new(spans: Vec<Span<'a>>) -> Self {
        Field {
            variants: vec![spans],
        }
    }

    /// A shorter form, tried when the ones before it do not fit.
    pub fn or(mut self, spans: Vec<Span<'a>>) -> Self {
        self.variants.push(spans);
        self
    }
}

fn width(spans: &[Span<'_>]) -> usize {
    spans.iter().map(Span::width).sum()
}

/// The fields that fit `max` columns, each whole, in the order given.
pub fn line<'a>(max: u16, fields: Vec<Field<'a>>) -> Line<'a> {
    let mut left = usize::from(max);
    let mut spans = Vec::new();
    for field in fields {
        if let Some(v) = field.variants.into_iter().find(|v| width(v) <= left) {
            left -= width(&v);
            spans.extend(v);
        }
    }
    Line::from(spans)
}

/// The first of `titles` that fits a bordered block `outer` columns wide, or none.
pub fn title(outer: u16, titles: &[String]) -> String {
    let room = usize::from(outer.saturating_sub(2));
    titles
        .iter()
        .find(|t| unicode_width(t) <= room)
        .cloned()
        .unwrap_or_default()
}

fn unicode_width(text: &str) -> usize {
    Span::raw(text).width()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: &Line<'_>) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn fields_are_whole_or_absent() {
        let make = || {
            vec![
                Field::new(vec![Span::raw("now 49")]),
                Field::new(vec![Span::raw("  avg 49.8")]).or(vec![Span::raw("  avg 50")]),
                Field::new(vec![Span::raw("  total 123456")]),
            ]
        };
        assert_eq!(text(&line(40, make())), "now 49  avg 49.8  total 123456");
        assert_eq!(text(&line(20, make())), "now 49  avg 49.8");
        assert_eq!(text(&line(14, make())), "now 49  avg 50");
        assert_eq!(text(&line(5, make())), "");
    }

    #[test]
    fn titles_shrink_to_the_first_that_fits() {
        let titles = [
            " recent events (100 shown) ".to_owned(),
            " events ".to_owned(),
        ];
        assert_eq!(title(40, &titles), " recent events (100 shown) ");
        assert_eq!(title(20, &titles), " events ");
        assert_eq!(title(5, &titles), "");
    }
}
