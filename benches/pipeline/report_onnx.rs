//! The ONNX models' rows (issue 24): the table's lines and the JSON line's figures, each model
//! against the ten-feature OLS fit on the same records in the same rounds.

use std::collections::BTreeMap;

use crate::any_model::OnnxRows;
use crate::measure::rate;
use crate::report::{places, print_rows};

/// The ONNX rows: records/s with output and commits on records of the ten-feature topic (at
/// most 100,000), each against the ten-feature OLS fit on as many records in the same rounds.
pub(crate) fn print_onnx_rows(onnx: &OnnxRows) {
    let n = onnx.records;
    let reference = rate(n, onnx.ols);
    let reference_name = format!("score, 10-feature OLS on {n} records");
    let mut rows = vec![(
        reference_name.as_str(),
        reference,
        1.0,
        "reference for the ONNX rows; all output + commits",
    )];
    rows.extend(onnx.models.iter().map(|(m, took)| {
        (
            m.name,
            rate(n, *took),
            rate(n, *took) / reference,
            "reported",
        )
    }));
    print_rows(&rows);
}

/// The ONNX rows' JSON fields: `onnx_records`, `score_onnx_ols_per_s`, and for each model
/// `score_onnx_KEY_per_s` and `onnx_KEY_ratio` (to the OLS fit on the same records).
pub(crate) fn onnx_figures(onnx: &OnnxRows) -> BTreeMap<String, serde_json::Value> {
    let n = onnx.records;
    let reference = rate(n, onnx.ols);
    let mut figures = BTreeMap::from([
        ("onnx_records".to_owned(), n.into()),
        (
            "score_onnx_ols_per_s".to_owned(),
            (reference.round() as u64).into(),
        ),
    ]);
    for (m, took) in &onnx.models {
        let per_s = rate(n, *took);
        figures.insert(
            format!("score_onnx_{}_per_s", m.key),
            (per_s.round() as u64).into(),
        );
        figures.insert(
            format!("onnx_{}_ratio", m.key),
            places(per_s / reference, 3).into(),
        );
    }
    figures
}
