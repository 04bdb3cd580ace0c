//! Property test: the decoder takes any bytes without panicking and always answers with an event or
//! a reason. Bounded: a fixed number of cases per property, so it runs in CI on every push.

use proptest::prelude::*;
use salary_stream::formats::json::{decode, BadRecord, MAX_VALUE_BYTES};

fn check(bytes: &[u8]) {
    match decode(Some(bytes)) {
        Ok(event) => {
            assert!(
                event.features[0].is_finite() && event.features[0] >= 0.0,
                "{event:?}"
            );
            assert!(event.ts_ms.is_none_or(|t| t >= 0));
            // Whatever was accepted is valid JSON text that is an object.
            let text = std::str::from_utf8(bytes).expect("accepted bytes are UTF-8");
            let value: serde_json::Value =
                serde_json::from_str(text).expect("accepted text is JSON");
            assert!(value.is_object());
        }
        Err(reason) => {
            let text = reason.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
            if bytes.len() > MAX_VALUE_BYTES {
                assert_eq!(reason, BadRecord::TooLarge(bytes.len()));
            }
        }
    }
}

/// JSON-ish fragments, so that random documents often get past the parser into validation.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("\"years_experience\":".to_owned()),
        Just("\"YearsExperience\":".to_owned()),
        Just("\"id\":".to_owned()),
        Just("\"ts_ms\":".to_owned()),
        Just("\"salary\":".to_owned()),
        Just(",".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(" ".to_owned()),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        "\"[a-z\\\\\"]{0,6}\"",
        "[\\x00-\\x7f]{0,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes);
    }

    #[test]
    fn json_like_documents(parts in proptest::collection::vec(fragment(), 0..16)) {
        check(parts.concat().as_bytes());
    }

    #[test]
    fn valid_events_are_accepted_exactly(
        years in 0.0f64..1e6,
        id in any::<i64>(),
        ts in 0i64..i64::MAX,
        spaces in " {0,3}",
    ) {
        let text = format!(r#"{spaces}{{"id":{id},"years_experience":{years},"ts_ms":{ts}}}{spaces}"#);
        let event = decode(Some(text.as_bytes())).unwrap();
        prop_assert_eq!(event.features[0], years);
        prop_assert_eq!(event.ts_ms, Some(ts));
    }
}

#[test]
fn oversized_values_are_refused_before_parsing() {
    let big = vec![b'{'; MAX_VALUE_BYTES + 1];
    assert_eq!(
        decode(Some(&big)),
        Err(BadRecord::TooLarge(MAX_VALUE_BYTES + 1))
    );
    let exactly = format!(
        r#"{{"years_experience":1,"p":"{}"}}"#,
        "x".repeat(MAX_VALUE_BYTES - 29)
    );
    assert_eq!(exactly.len(), MAX_VALUE_BYTES);
    assert_eq!(
        decode(Some(exactly.as_bytes())).map(|e| e.features[0]),
        Ok(1.0)
    );
}
