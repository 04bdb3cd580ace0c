//! What an event is read by and a prediction written with: the model's features by JSON field
//! name, in the model's order, and its label. The salary demo's shape is one feature,
//! `years_experience` (also read as `YearsExperience`), labeled `salary`; any model's artifact
//! gives its own.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};

use super::json::{Field, Wire};

/// Fields every prediction carries beside the model's: none of the model's may take one.
const RESERVED: [&str; 8] = [
    "id",
    "ts_ms",
    "residual",
    "extrapolated",
    "model",
    "partition",
    "offset",
    "latency_ms",
];

/// One feature as events carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureField {
    /// The JSON field it is read from and written to.
    pub field: String,
    /// Another name it is read from too (the demo's CSV column `YearsExperience`).
    pub alias: Option<String>,
    /// A negative value is refused (years of experience are never negative).
    pub non_negative: bool,
}

/// Where a key of an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// The model's feature at this index.
    Feature(usize),
    /// The event's id.
    Id,
    /// The event's time.
    TsMs,
    /// The label.
    Label,
}

/// The fields of a model's events and predictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventShape {
    features: Vec<FeatureField>,
    label: String,
    predicted: String,
    /// The salary demo's names exactly: keys are matched by a `match` of them.
    demo: bool,
    /// `"field":` of each feature, with a comma before it but the first, as a prediction writes
    /// them.
    feature_keys: Vec<Member>,
    /// `,"label":`
    label_key: Member,
    /// `,"predicted_label":`
    predicted_key: Vec<u8>,
}

/// The bytes that start a member of an event as a prediction writes it (`,"bmi":`), its first
/// sixteen also as two words with a mask each, to compare with a record's text eight bytes at a
/// time rather than through `memcmp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    bytes: Vec<u8>,
    words: [u64; 2],
    masks: [u64; 2],
}

impl Member {
    fn new(bytes: Vec<u8>) -> Member {
        let mut words = [0u64; 2];
        let mut masks = [0u64; 2];
        for (i, &b) in bytes.iter().take(16).enumerate() {
            words[i / 8] |= u64::from(b) << (8 * (i % 8));
            masks[i / 8] |= 0xff << (8 * (i % 8));
        }
        Member {
            bytes,
            words,
            masks,
        }
    }

    /// `,"name":` (`"name":` without `comma`).
    fn named(name: &str, comma: bool) -> Member {
        let mut key = if comma { vec![b','] } else { Vec::new() };
        key.extend(serde_json::to_vec(name).unwrap_or_default());
        key.push(b':');
        Member::new(key)
    }

    /// The bytes.
    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `text` has these bytes at `at`.
    #[inline(always)]
    pub(super) fn is_at(&self, text: &[u8], at: usize) -> bool {
        if self.bytes.len() <= 16 {
            if let Some(chunk) = text.get(at..at + 16) {
                let word = |i: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&chunk[8 * i..8 * i + 8]);
                    u64::from_le_bytes(w)
                };
                return (word(0) ^ self.words[0]) & self.masks[0] == 0
                    && (word(1) ^ self.words[1]) & self.masks[1] == 0;
            }
        }
        text.get(at..).is_some_and(|t| t.starts_with(&self.bytes))
    }
}

/// `"id":`, the first member of an event that has an id.
pub(super) fn id_member() -> &'static Member {
    static ID: OnceLock<Member> = OnceLock::new();
    ID.get_or_init(|| Member::named("id", false))
}

/// `,"ts_ms":`
pub(super) fn ts_member() -> &'static Member {
    static TS: OnceLock<Member> = OnceLock::new();
    TS.get_or_init(|| Member::named("ts_ms", true))
}

impl EventShape {
    /// The shape of a model of `features` labeled `label`; refuses, in one line, no features,
    /// a name given twice, or a name a prediction uses for itself.
    pub fn new(features: Vec<FeatureField>, label: &str) -> Result<EventShape, String> {
        if features.is_empty() {
            return Err("a model needs at least one feature".into());
        }
        let predicted = format!("predicted_{label}");
        let mut names: Vec<&str> = vec![label, &predicted];
        for f in &features {
            names.push(&f.field);
            names.extend(f.alias.as_deref());
        }
        for (i, name) in names.iter().enumerate() {
            if RESERVED.contains(name) || name.starts_with("challenger") {
                return Err(format!(
                    "field {name} is one a prediction writes for itself: name it otherwise"
                ));
            }
            if names[..i].contains(name) {
                return Err(format!("field {name} is named twice"));
            }
        }
        let demo = label == "salary"
            && matches!(features.as_slice(), [f] if f.field == "years_experience"
                && f.alias.as_deref() == Some("YearsExperience"));
        Ok(EventShape {
            demo,
            feature_keys: features
                .iter()
                .enumerate()
                .map(|(i, f)| Member::named(&f.field, i > 0))
                .collect(),
            label_key: Member::named(label, true),
            predicted_key: Member::named(&predicted, true).bytes,
            features,
            label: label.to_owned(),
            predicted,
        })
    }

    /// The salary demo's shape: `years_experience` (or `YearsExperience`), not negative,
    /// labeled `salary`.
    pub fn salary() -> &'static EventShape {
        static SALARY: OnceLock<EventShape> = OnceLock::new();
        SALARY.get_or_init(|| {
            EventShape::new(
                vec![FeatureField {
                    field: "years_experience".into(),
                    alias: Some("YearsExperience".into()),
                    non_negative: true,
                }],
                "salary",
            )
            .expect("the demo's names are distinct and not reserved")
        })
    }

    /// The features, in the model's order.
    pub fn features(&self) -> &[FeatureField] {
        &self.features
    }

    /// The label's field.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The prediction's field: `predicted_` and the label's.
    pub fn predicted_field(&self) -> &str {
        &self.predicted
    }

    /// `row` named, for a reason: `years_experience 1e300`, `bmi 0.1, bp -0.2`.
    pub fn describe(&self, row: &[f64]) -> String {
        self.features
            .iter()
            .zip(row)
            .map(|(f, x)| format!("{} {x}", f.field))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Where `key` goes, if anywhere.
    #[inline]
    pub(super) fn slot(&self, key: &str) -> Option<Slot> {
        if self.demo {
            // The demo's names, matched as one `match` the compiler lays out by length.
            return match key {
                "years_experience" | "YearsExperience" => Some(Slot::Feature(0)),
                "id" => Some(Slot::Id),
                "ts_ms" => Some(Slot::TsMs),
                "salary" => Some(Slot::Label),
                _ => None,
            };
        }
        if let Some(i) = self
            .features
            .iter()
            .position(|f| f.field == key || f.alias.as_deref() == Some(key))
        {
            return Some(Slot::Feature(i));
        }
        match key {
            "id" => Some(Slot::Id),
            "ts_ms" => Some(Slot::TsMs),
            _ if key == self.label => Some(Slot::Label),
            _ => None,
        }
    }

    /// The name a slot is known by, for serde's duplicate-field message.
    fn slot_name(&self, slot: Slot) -> &str {
        match slot {
            Slot::Feature(i) => &self.features[i].field,
            Slot::Id => "id",
            Slot::TsMs => "ts_ms",
            Slot::Label => &self.label,
        }
    }

    /// `"field":` of each feature, with a comma before it unless it is the first.
    #[inline]
    pub(super) fn feature_members(&self) -> &[Member] {
        &self.feature_keys
    }

    /// `,"label":`
    #[inline]
    pub(super) fn label_member(&self) -> &Member {
        &self.label_key
    }

    /// `,"predicted_label":`
    pub(super) fn predicted_key(&self) -> &[u8] {
        &self.predicted_key
    }

    /// An empty record of this shape, to be filled.
    pub(super) fn empty_wire<'a>(&self) -> Wire<'a> {
        Wire {
            features: smallvec::smallvec![Field::Absent; self.features.len()],
            id: Field::Absent,
            ts_ms: Field::Absent,
            label: Field::Absent,
        }
    }
}

/// A key, borrowed from the text where it has no escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Reads an event of this shape with serde: what the scanner leaves (escapes, nesting, other
/// types), worded as serde words it. Other keys are ignored; a key of the shape given twice is
/// serde's `duplicate field`.
pub(super) struct WireSeed<'s>(pub &'s EventShape);

impl<'de, 's> DeserializeSeed<'de> for WireSeed<'s> {
    type Value = Wire<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 's> Visitor<'de> for WireSeed<'s> {
    type Value = Wire<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut wire = self.0.empty_wire();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let Some(slot) = self.0.slot(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let place = wire.slot_mut(slot);
            if *place != Field::Absent {
                return Err(A::Error::custom(format_args!(
                    "duplicate field `{}`",
                    self.0.slot_name(slot)
                )));
            }
            *place = map.next_value::<Field<'de>>()?;
        }
        Ok(wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(field: &str) -> FeatureField {
        FeatureField {
            field: field.into(),
            alias: None,
            non_negative: false,
        }
    }

    #[test]
    fn names_a_prediction_writes_for_itself_or_twice_are_refused() {
        let refused = |features: &[&str], label: &str| {
            EventShape::new(features.iter().map(|f| feature(f)).collect(), label).unwrap_err()
        };
        assert_eq!(refused(&[], "y"), "a model needs at least one feature");
        assert_eq!(
            refused(&["id"], "y"),
            "field id is one a prediction writes for itself: name it otherwise"
        );
        assert_eq!(refused(&["a", "a"], "y"), "field a is named twice");
        assert_eq!(refused(&["y"], "y"), "field y is named twice");
        assert_eq!(
            refused(&["predicted_y"], "y"),
            "field predicted_y is named twice"
        );
        let shape = EventShape::new(vec![feature("bmi"), feature("bp")], "progression").unwrap();
        assert_eq!(shape.predicted_field(), "predicted_progression");
        assert_eq!(shape.slot("bp"), Some(Slot::Feature(1)));
        assert_eq!(shape.slot("progression"), Some(Slot::Label));
        assert_eq!(shape.slot("salary"), None);
        assert_eq!(shape.describe(&[0.5, -1.0]), "bmi 0.5, bp -1");
    }
}
