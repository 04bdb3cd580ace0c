//! Linear models: ordinary least squares with linfa-linear, its fit metrics, and the check that a
//! design matrix has full rank.

use linfa::prelude::*;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2, ArrayView1};

use super::artifact::LinearModel;
use super::error::ModelError;

/// A feature whose centred values keep less than this share of their length once the features
/// before it are projected out is collinear with them. 1e-9 is a variance inflation factor of
/// 1e18: past what double precision fits to more than a few digits, and far below real data
/// (in the diabetes data, s5 keeps 0.32 of its length after age, sex, bmi, bp and s1 to s4).
const COLLINEAR_RESIDUAL: f64 = 1e-9;
/// A feature is named as part of a combination when it contributes at least this share of the
/// collinear column's length.
const COMBINATION_SHARE: f64 = 1e-6;

/// Fit quality of a model on a set of rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitMetrics {
    /// Coefficient of determination.
    pub r2: f64,
    /// Root of the mean squared residual.
    pub rmse: f64,
}

/// R² and RMSE of `predicted` against the targets `y`, row for row.
pub fn fit_metrics(y: &[f64], predicted: impl IntoIterator<Item = f64>) -> FitMetrics {
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let (ss_res, ss_tot) = y
        .iter()
        .zip(predicted)
        .fold((0.0, 0.0), |(res, tot), (&yi, p)| {
            let r = yi - p;
            (res + r * r, tot + (yi - mean) * (yi - mean))
        });
    FitMetrics {
        r2: 1.0 - ss_res / ss_tot,
        rmse: (ss_res / n).sqrt(),
    }
}

/// Fits ordinary least squares with an intercept (linfa-linear, by QR) on `x`, one row per
/// example and one column per feature, against `y`.
pub fn fit_ols(x: &Array2<f64>, y: &Array1<f64>) -> Result<LinearModel, ModelError> {
    let dataset = Dataset::new(x.clone(), y.clone());
    let fitted = LinearRegression::new()
        .fit(&dataset)
        .map_err(|e| ModelError::Fit(e.to_string()))?;
    let model = LinearModel {
        coefficients: fitted.params().to_vec(),
        intercept: fitted.intercept(),
    };
    if !model.intercept.is_finite() || !model.coefficients.iter().all(|c| c.is_finite()) {
        return Err(ModelError::Fit("the fitted model is not finite".into()));
    }
    Ok(model)
}

/// The first column of `x` that is, to rounding, an affine combination of the columns before it,
/// with those columns: what makes least squares ambiguous. `None` when the columns, each with
/// its mean taken out, are linearly independent. Columns must not be constant.
pub fn first_collinear(x: &Array2<f64>) -> Option<(usize, Vec<usize>)> {
    // Gram-Schmidt on the centred columns, each orthogonalised twice (stable to rounding):
    // basis[i] is orthonormal, and column j = Σ r[i][j] basis[i] + residual.
    let mut basis: Vec<Array1<f64>> = Vec::new();
    let mut r: Vec<Vec<f64>> = Vec::new();
    let mut lengths: Vec<f64> = Vec::new();
    for j in 0..x.ncols() {
        let column = centred(x.column(j));
        let length = column.dot(&column).sqrt();
        let mut residual = column;
        let mut along = vec![0.0; basis.len()];
        for _ in 0..2 {
            for (i, b) in basis.iter().enumerate() {
                let d = b.dot(&residual);
                along[i] += d;
                residual.scaled_add(-d, b);
            }
        }
        let left = residual.dot(&residual).sqrt();
        if left <= COLLINEAR_RESIDUAL * length {
            let weights = back_substitute(&r, &along);
            let combined = weights
                .iter()
                .enumerate()
                .filter(|(i, w)| (*w * lengths[*i]).abs() > COMBINATION_SHARE * length)
                .map(|(i, _)| i)
                .collect();
            return Some((j, combined));
        }
        along.push(left);
        r.push(along);
        basis.push(residual / left);
        lengths.push(length);
    }
    None
}

/// `values` less their mean.
fn centred(values: ArrayView1<'_, f64>) -> Array1<f64> {
    let mean = values.mean().unwrap_or(0.0);
    values.mapv(|v| v - mean)
}

/// Solves `R w = b` for `w`, where `r[j]` is column j of the upper-triangular `R`.
fn back_substitute(r: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut w = vec![0.0; n];
    for i in (0..n).rev() {
        let known: f64 = (i + 1..n).map(|j| r[j][i] * w[j]).sum();
        w[i] = (b[i] - known) / r[i][i];
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn fits_an_exact_plane() {
        let x = array![[0.0, 1.0], [1.0, 0.0], [2.0, 5.0], [3.0, 2.0], [4.0, 4.0]];
        let y = x.map_axis(ndarray::Axis(1), |r| 3.0 + 2.0 * r[0] - 0.5 * r[1]);
        let m = fit_ols(&x, &y).unwrap();
        assert!((m.intercept - 3.0).abs() < 1e-12, "{m:?}");
        assert!((m.coefficients[0] - 2.0).abs() < 1e-12, "{m:?}");
        assert!((m.coefficients[1] + 0.5).abs() < 1e-12, "{m:?}");
        let rows = x
            .rows()
            .into_iter()
            .map(|r| m.predict(r.as_slice().unwrap()));
        let metrics = fit_metrics(y.as_slice().unwrap(), rows);
        assert!(metrics.rmse < 1e-12 && (metrics.r2 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn finds_the_column_that_repeats_the_ones_before_it() {
        // c = 2a - b + 7; d is independent of a, b and c.
        let rows: Vec<[f64; 4]> = (0..20)
            .map(|i| {
                let (a, b) = (f64::from(i), f64::from((i * 7) % 5));
                [a, b, 2.0 * a - b + 7.0, f64::from((i * i) % 11)]
            })
            .collect();
        let x = Array2::from_shape_fn((20, 4), |(i, j)| rows[i][j]);
        assert_eq!(first_collinear(&x), Some((2, vec![0, 1])));
        let independent = Array2::from_shape_fn((20, 3), |(i, j)| rows[i][[0, 1, 3][j]]);
        assert_eq!(first_collinear(&independent), None);
        // A copy of one column, shifted: collinear with that one alone.
        let shifted = Array2::from_shape_fn((20, 3), |(i, j)| match j {
            2 => rows[i][1] + 100.0,
            _ => rows[i][j],
        });
        assert_eq!(first_collinear(&shifted), Some((2, vec![1])));
    }
}
