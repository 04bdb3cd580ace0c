//! ONNX regression models, run in pure Rust by tract-onnx: what scikit-learn exports through
//! skl2onnx (LinearRegression, MLPRegressor behind a StandardScaler, gradient-boosted trees,
//! random forests).
//!
//! [`OnnxPredictor::load`][load] refuses at load, never at the first record, a model this module
//! cannot serve: an op nothing here runs, an input that is not one float32 `[N, F]` (or
//! `[1, F]`) tensor, an output that is not one value a row. Then
//! [`OnnxPredictor::predict_batch`][predict_batch] runs a batch of rows at a time.
//!
//! Served: the ONNX ops tract-onnx provides, its ai.onnx.ml ops ([`ML_OPS_SERVED`][served]),
//! and two ai.onnx.ml ops of our own that tract lacks, registered with its op register: `Scaler`
//! (`scaler`) and `TreeEnsembleRegressor` (`tree_ensemble`, evaluated as onnxruntime does).
//!
//! [load]: crate::model::onnx::OnnxPredictor::load
//! [predict_batch]: crate::model::onnx::OnnxPredictor::predict_batch
//! [served]: crate::model::onnx::ML_OPS_SERVED

mod scaler;
mod tree_ensemble;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::{
    tvec, Datum, DatumExt, Framework, InferenceModelExt, IntoRunnable, IntoTValue, TDim, Tensor,
    ToDim, TractError, TypedModel, TypedRunnableModel,
};

use tree_ensemble::ForestError;

/// The ai.onnx.ml ops served: tract-onnx's own and the two registered here.
pub const ML_OPS_SERVED: &[&str] = &[
    "ArrayFeatureExtractor",
    "CategoryMapper",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "Scaler",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
];

/// Why an ONNX model cannot be loaded or a batch cannot be run; each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read.
    #[error("cannot read ONNX model {path}: {source}")]
    Read {
        /// The file as given.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX protobuf.
    #[error("{path} is not an ONNX model: {reason}")]
    NotOnnx {
        /// The file as given.
        path: String,
        /// What the decoder said.
        reason: String,
    },
    /// The graph uses an op nothing here serves.
    #[error("unsupported ONNX op {op} (domain {domain})")]
    UnsupportedOp {
        /// The op's type, `SVMRegressor`.
        op: String,
        /// Its domain, `ai.onnx` for the default one.
        domain: String,
    },
    /// A served op whose attributes cannot be served.
    #[error("{op}: {reason}")]
    BadOp {
        /// The op's type.
        op: String,
        /// What is wrong, naming the attribute or node.
        reason: String,
    },
    /// Not exactly one input.
    #[error("the model takes {count} inputs ({names}): a regression model here takes one, float32 [N, F]")]
    InputCount {
        /// How many inputs.
        count: usize,
        /// Their names, comma-separated.
        names: String,
    },
    /// An input that is not float32.
    #[error("input {name} is {found}: a regression model here takes float32 features")]
    InputType {
        /// The input's name.
        name: String,
        /// Its element type, `double`.
        found: String,
    },
    /// An input whose shape is not `[N, F]` or `[1, F]` with F fixed.
    #[error("input {name} has shape {shape}: {why}")]
    InputShape {
        /// The input's name.
        name: String,
        /// As declared, `[N,?]`.
        shape: String,
        /// What a served shape is.
        why: &'static str,
    },
    /// Not exactly one output.
    #[error("the model has {count} outputs ({names}): a regression model has one")]
    OutputCount {
        /// How many outputs.
        count: usize,
        /// Their names, comma-separated.
        names: String,
    },
    /// An output that is not float32 or double.
    #[error("output {name} is {found}: a regression model gives float predictions")]
    OutputType {
        /// The output's name.
        name: String,
        /// Its element type.
        found: String,
    },
    /// An output that is not one value a row.
    #[error("output {name} has shape {shape}: a regression model has one value a row")]
    OutputShape {
        /// The output's name.
        name: String,
        /// As tract derives it, `[N,3]`.
        shape: String,
    },
    /// tract could not build or optimise the graph.
    #[error("tract cannot build the model: {0}")]
    Graph(String),
    /// A batch whose length is not rows times the model's width.
    #[error("wrong input width: {values} values for {rows} rows; the model takes {width} features a row")]
    Width {
        /// Values given.
        values: usize,
        /// Rows said.
        rows: usize,
        /// Features a row the model takes.
        width: usize,
    },
    /// The model failed on a batch.
    #[error("the model failed on {rows} rows: {reason}")]
    Run {
        /// Rows in the batch.
        rows: usize,
        /// What tract said.
        reason: String,
    },
}

/// How many rows one run of the graph takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    /// Any number: the input is `[N, F]`.
    Free,
    /// One: the input is `[1, F]`.
    One,
}

/// An ONNX regression model loaded, checked and optimised, ready to score batches of rows.
/// Cheap to share: `predict_batch` takes `&self` and may run on several threads at once.
pub struct OnnxPredictor {
    plan: std::sync::Arc<TypedRunnableModel>,
    batch: Batch,
    width: usize,
    input_name: String,
    output_name: String,
    op_types: Vec<String>,
    sha256: String,
}

impl std::fmt::Debug for OnnxPredictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxPredictor")
            .field("width", &self.width)
            .field("input_name", &self.input_name)
            .field("output_name", &self.output_name)
            .field("op_types", &self.op_types)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl OnnxPredictor {
    /// Reads, checks and optimises the model at `path`, then runs it once on a row of zeros, so
    /// that anything it cannot serve is said here, in one line.
    pub fn load(path: &Path) -> Result<OnnxPredictor, OnnxError> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Checks and optimises the model whose file's bytes are `bytes`, as [`OnnxPredictor::load`]
    /// does; `path` is where they were read from, to name in a refusal and to find any tensor
    /// data kept outside the file.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<OnnxPredictor, OnnxError> {
        let sha256 = Sha256::digest(bytes)
            .iter()
            .fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            });
        let onnx = onnx_with_our_ops();
        let proto = onnx
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| OnnxError::NotOnnx {
                path: path.display().to_string(),
                reason: one_line(&e),
            })?;
        let model_dir = path.parent().and_then(Path::to_str);
        Self::from_proto(&onnx, &proto, model_dir, sha256)
    }

    fn from_proto(
        onnx: &tract_onnx::Onnx,
        proto: &pb::ModelProto,
        model_dir: Option<&str>,
        sha256: String,
    ) -> Result<OnnxPredictor, OnnxError> {
        let Some(graph) = proto.graph.as_ref() else {
            return Err(OnnxError::Graph("the file holds no graph".into()));
        };
        let default_ops: HashSet<&str> = onnx.op_register.0.keys().map(String::as_str).collect();
        check_ops(graph, &default_ops)?;
        let (input_name, width, batch) = check_input(graph)?;
        let output_name = match graph.output.as_slice() {
            [one] => one.name.clone(),
            outputs => {
                return Err(OnnxError::OutputCount {
                    count: outputs.len(),
                    names: outputs
                        .iter()
                        .map(|o| o.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };

        let parsed = onnx.parse(proto, model_dir).map_err(graph_error)?;
        if let Some(name) = parsed.unresolved_inputs.first() {
            return Err(OnnxError::Graph(format!("{name} is read but never made")));
        }
        let mut model = parsed.model;
        let rows = match batch {
            Batch::Free => TDim::from(model.sym("N")),
            Batch::One => TDim::from(1),
        };
        let fact = f32::fact([rows.clone(), width.to_dim()]);
        model.set_input_fact(0, fact.into()).map_err(graph_error)?;
        let typed: TypedModel = model.into_optimized().map_err(graph_error)?;
        check_output(&typed, &output_name, &rows)?;
        let plan = typed.into_runnable().map_err(graph_error)?;

        let mut op_types: Vec<String> = Vec::new();
        for node in &graph.node {
            if !op_types.contains(&node.op_type) {
                op_types.push(node.op_type.clone());
            }
        }
        let predictor = OnnxPredictor {
            plan,
            batch,
            width,
            input_name,
            output_name,
            op_types,
            sha256,
        };
        predictor.predict_batch(&vec![0.0; width], 1)?;
        Ok(predictor)
    }

    /// Features a row: the F of the input's `[N, F]`.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The graph's input, which takes the rows.
    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    /// The graph's output, which gives the predictions.
    pub fn output_name(&self) -> &str {
        &self.output_name
    }

    /// The graph's op types, each once, in the order the graph first uses them
    /// (`["TreeEnsembleRegressor"]`, `["Scaler", "Cast", "MatMul", ...]`).
    pub fn op_types(&self) -> &[String] {
        &self.op_types
    }

    /// SHA-256 of the file as loaded, lowercase hex: what an artifact records to name it.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Predicts `n` rows given row-major in `rows` (`n * width()` values): one value a row, in
    /// order. A model whose input is `[1, F]` is run once a row.
    pub fn predict_batch(&self, rows: &[f32], n: usize) -> Result<Vec<f64>, OnnxError> {
        if n.checked_mul(self.width) != Some(rows.len()) {
            return Err(OnnxError::Width {
                values: rows.len(),
                rows: n,
                width: self.width,
            });
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        match self.batch {
            Batch::Free => self.run(rows, n),
            Batch::One => {
                let mut predictions = Vec::with_capacity(n);
                for row in rows.chunks_exact(self.width) {
                    predictions.extend(self.run(row, 1)?);
                }
                Ok(predictions)
            }
        }
    }

    /// Predicts one row of f64 feature values (`width()` of them), each rounded to float32 as
    /// the graph takes it; what the serving path runs for each record.
    pub fn predict_one(&self, row: &[f64]) -> Result<f64, OnnxError> {
        if row.len() != self.width {
            return Err(OnnxError::Width {
                values: row.len(),
                rows: 1,
                width: self.width,
            });
        }
        // Most models read a few features: their row goes through the stack, not the heap.
        let mut small = [0.0f32; SMALL_ROW];
        let mut large = Vec::new();
        let narrowed: &mut [f32] = if self.width <= SMALL_ROW {
            &mut small[..self.width]
        } else {
            large.resize(self.width, 0.0);
            &mut large
        };
        for (to, &x) in narrowed.iter_mut().zip(row) {
            *to = x as f32;
        }
        let output = self.run_plan(narrowed, 1)?;
        let failed = |e: TractError| OnnxError::Run {
            rows: 1,
            reason: one_line(&e),
        };
        let plain = output.try_as_plain_ram().map_err(failed)?;
        // The checks at load let through only a float32 or a double output.
        let value = if output.datum_type() == f32::datum_type() {
            plain
                .as_slice::<f32>()
                .map(|v| v.first().map(|&v| f64::from(v)))
        } else {
            plain.as_slice::<f64>().map(|v| v.first().copied())
        };
        let value = value.map_err(failed)?;
        value.ok_or_else(|| OnnxError::Run {
            rows: 1,
            reason: "gave no value for 1 row".into(),
        })
    }

    fn run(&self, rows: &[f32], n: usize) -> Result<Vec<f64>, OnnxError> {
        let failed = |e: TractError| OnnxError::Run {
            rows: n,
            reason: one_line(&e),
        };
        let output = self.run_plan(rows, n)?;
        let values = output.cast_to::<f64>().map_err(failed)?;
        let values = values
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f64>().map(<[f64]>::to_vec));
        let values = values.map_err(failed)?;
        if values.len() != n {
            return Err(OnnxError::Run {
                rows: n,
                reason: format!("gave {} values for {n} rows", values.len()),
            });
        }
        Ok(values)
    }

    /// The graph's one output for `n` rows (`n * width` values, row-major).
    fn run_plan(&self, rows: &[f32], n: usize) -> Result<tract_onnx::prelude::TValue, OnnxError> {
        let failed = |e: TractError| OnnxError::Run {
            rows: n,
            reason: one_line(&e),
        };
        let input = Tensor::from_shape(&[n, self.width], rows).map_err(failed)?;
        let mut outputs = self.plan.run(tvec!(input.into_tvalue())).map_err(failed)?;
        if outputs.is_empty() {
            return Err(OnnxError::Run {
                rows: n,
                reason: "no output".into(),
            });
        }
        Ok(outputs.swap_remove(0))
    }
}

/// Features a row that [`OnnxPredictor::predict_one`] narrows to float32 on the stack.
const SMALL_ROW: usize = 16;

/// tract-onnx's ops, with the ai.onnx.ml ops it lacks and we provide.
fn onnx_with_our_ops() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    scaler::register(&mut onnx.op_register);
    tree_ensemble::register(&mut onnx.op_register);
    onnx
}

/// Refuses the first op, in this graph or a graph inside it, that nothing here serves.
fn check_ops(graph: &pb::GraphProto, default_ops: &HashSet<&str>) -> Result<(), OnnxError> {
    for node in &graph.node {
        let op = node.op_type.as_str();
        let served = match node.domain.as_str() {
            "" | "ai.onnx" => default_ops.contains(op),
            "ai.onnx.ml" => ML_OPS_SERVED.contains(&op),
            _ => false,
        };
        if !served {
            let domain = if node.domain.is_empty() {
                "ai.onnx"
            } else {
                &node.domain
            };
            return Err(OnnxError::UnsupportedOp {
                op: op.into(),
                domain: domain.into(),
            });
        }
        for attribute in &node.attribute {
            for inner in attribute.g.iter().chain(&attribute.graphs) {
                check_ops(inner, default_ops)?;
            }
        }
    }
    Ok(())
}

/// The one input's name, its width F and how many rows a run takes.
fn check_input(graph: &pb::GraphProto) -> Result<(String, usize, Batch), OnnxError> {
    // Files of IR version 3 and before list the initializers among the inputs too.
    let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initialized.contains(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(OnnxError::InputCount {
            count: inputs.len(),
            names: inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let name = input.name.clone();
    let Some(pb::type_proto::Value::TensorType(tensor)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(OnnxError::InputType {
            name,
            found: "not a tensor".into(),
        });
    };
    if tensor.elem_type != pb::tensor_proto::DataType::Float as i32 {
        let found = pb::tensor_proto::DataType::try_from(tensor.elem_type)
            .map(|t| t.as_str_name().to_lowercase())
            .unwrap_or_else(|_| format!("element type {}", tensor.elem_type));
        return Err(OnnxError::InputType { name, found });
    }
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let dims: Vec<Option<&Dim>> = match &tensor.shape {
        Some(shape) => shape.dim.iter().map(|d| d.value.as_ref()).collect(),
        None => {
            return Err(OnnxError::InputShape {
                name,
                shape: "unknown".into(),
                why: "a regression model here takes rows of a fixed width, [N, F]",
            })
        }
    };
    let shape = format!(
        "[{}]",
        dims.iter()
            .map(|d| match d {
                Some(Dim::DimValue(v)) => v.to_string(),
                Some(Dim::DimParam(p)) if !p.is_empty() => p.clone(),
                _ => "?".into(),
            })
            .collect::<Vec<_>>()
            .join(",")
    );
    let refuse = |why| {
        Err(OnnxError::InputShape {
            name: name.clone(),
            shape: shape.clone(),
            why,
        })
    };
    let [rows, columns] = dims.as_slice() else {
        return refuse("a regression model here takes rows, [N, F]");
    };
    let width = match columns {
        Some(Dim::DimValue(f)) if *f > 0 => *f as usize,
        _ => return refuse("the number of features F in [N, F] must be fixed"),
    };
    let batch = match rows {
        Some(Dim::DimValue(1)) => Batch::One,
        Some(Dim::DimValue(_)) => return refuse("the rows N in [N, F] must be free (None) or 1"),
        _ => Batch::Free,
    };
    Ok((name, width, batch))
}

/// Refuses an output that is not float, or not one value a row: `[N]` or `[N, 1]`.
fn check_output(model: &TypedModel, name: &str, rows: &TDim) -> Result<(), OnnxError> {
    let fact = model.output_fact(0).map_err(graph_error)?;
    let datum = fact.datum_type;
    if datum != f32::datum_type() && datum != f64::datum_type() {
        return Err(OnnxError::OutputType {
            name: name.into(),
            found: format!("{datum:?}").to_lowercase(),
        });
    }
    let dims: Vec<&TDim> = fact.shape.iter().collect();
    let one = TDim::from(1);
    let per_row = match dims.as_slice() {
        [n] => *n == rows,
        [n, k] => *n == rows && **k == one,
        _ => false,
    };
    if !per_row {
        let shape = dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",");
        return Err(OnnxError::OutputShape {
            name: name.into(),
            shape: format!("[{shape}]"),
        });
    }
    Ok(())
}

/// tract's error as ours: a refused tree ensemble by its reason, anything else in one line.
fn graph_error(e: TractError) -> OnnxError {
    if let Some(forest) = e.chain().find_map(|c| c.downcast_ref::<ForestError>()) {
        return OnnxError::BadOp {
            op: "TreeEnsembleRegressor".into(),
            reason: forest.to_string(),
        };
    }
    OnnxError::Graph(one_line(&e))
}

/// An error chain on one line: each cause's first line, joined by ": ".
fn one_line(e: &TractError) -> String {
    e.chain()
        .map(|c| {
            c.to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::attribute_proto::AttributeType;
    use pb::tensor_shape_proto::dimension::Value as Dim;

    fn floats(name: &str, values: &[f32]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: AttributeType::Floats as i32,
            floats: values.to_vec(),
            ..Default::default()
        }
    }

    fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: values.to_vec(),
            ..Default::default()
        }
    }

    fn strings(name: &str, values: &[&str]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: AttributeType::Strings as i32,
            strings: values.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        }
    }

    fn value(
        name: &str,
        elem_type: pb::tensor_proto::DataType,
        dims: &[Option<Dim>],
    ) -> pb::ValueInfoProto {
        let dim = dims
            .iter()
            .map(|d| pb::tensor_shape_proto::Dimension {
                value: d.clone(),
                ..Default::default()
            })
            .collect();
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: elem_type as i32,
                    shape: Some(pb::TensorShapeProto { dim }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(op: &str, domain: &str, attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
        pb::NodeProto {
            input: vec!["x".into()],
            output: vec!["y".into()],
            op_type: op.into(),
            domain: domain.into(),
            attribute,
            ..Default::default()
        }
    }

    /// `y = 1·x0 + 2·x1 + 3·x2 + 0.5`, as skl2onnx writes a LinearRegression.
    fn linear() -> pb::NodeProto {
        let attributes = vec![
            floats("coefficients", &[1.0, 2.0, 3.0]),
            floats("intercepts", &[0.5]),
        ];
        node("LinearRegressor", "ai.onnx.ml", attributes)
    }

    fn model(inputs: Vec<pb::ValueInfoProto>, node: pb::NodeProto) -> pb::ModelProto {
        let opset = |domain: &str, version| pb::OperatorSetIdProto {
            domain: domain.into(),
            version,
        };
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![opset("", 17), opset("ai.onnx.ml", 1)],
            graph: Some(pb::GraphProto {
                node: vec![node],
                input: inputs,
                output: vec![value(
                    "y",
                    pb::tensor_proto::DataType::Float,
                    &[None, Some(Dim::DimValue(1))],
                )],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn input(dims: &[Option<Dim>]) -> Vec<pb::ValueInfoProto> {
        vec![value("x", pb::tensor_proto::DataType::Float, dims)]
    }

    fn rows_by_three() -> Vec<Option<Dim>> {
        vec![Some(Dim::DimParam("batch".into())), Some(Dim::DimValue(3))]
    }

    fn load(proto: &pb::ModelProto) -> Result<OnnxPredictor, OnnxError> {
        OnnxPredictor::from_proto(&onnx_with_our_ops(), proto, None, "sha".into())
    }

    fn refusal(proto: &pb::ModelProto) -> String {
        match load(proto) {
            Ok(model) => panic!("loaded {model:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_model_of_one_row_a_run_is_run_once_a_row() {
        let model = load(&model(
            input(&[Some(Dim::DimValue(1)), Some(Dim::DimValue(3))]),
            linear(),
        ))
        .expect("a [1, 3] input is served");
        assert_eq!(model.width(), 3);
        let predicted = model.predict_batch(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0], 3);
        assert_eq!(predicted.expect("three rows"), [1.5, 2.5, 6.5]);
    }

    #[test]
    fn one_row_predicts_as_a_batch_of_one_whether_narrow_or_wide() {
        let narrow = load(&model(input(&rows_by_three()), linear())).expect("served");
        assert_eq!(narrow.predict_one(&[1.0, 2.0, 3.0]).expect("a row"), 14.5);
        assert_eq!(
            narrow.predict_one(&[1.0, 2.0]).unwrap_err().to_string(),
            "wrong input width: 2 values for 1 rows; the model takes 3 features a row"
        );
        // Wider than a row on the stack: y = Σ x_i + 0.5 over 20 features.
        let wide = node(
            "LinearRegressor",
            "ai.onnx.ml",
            vec![
                floats("coefficients", &[1.0; 20]),
                floats("intercepts", &[0.5]),
            ],
        );
        let dims = [Some(Dim::DimParam("batch".into())), Some(Dim::DimValue(20))];
        let wide = load(&model(input(&dims), wide)).expect("served");
        let row: Vec<f64> = (0..20).map(f64::from).collect();
        let narrowed: Vec<f32> = row.iter().map(|&x| x as f32).collect();
        assert_eq!(wide.predict_one(&row).expect("a row"), 190.5);
        assert_eq!(wide.predict_batch(&narrowed, 1).expect("a batch"), [190.5]);
    }

    #[test]
    fn a_free_batch_is_run_whole() {
        let model = load(&model(input(&rows_by_three()), linear())).expect("served");
        assert_eq!(
            model
                .predict_batch(&[1.0, 1.0, 1.0, 2.0, 0.0, 0.0], 2)
                .expect("rows"),
            [6.5, 2.5]
        );
    }

    #[test]
    fn inputs_a_regression_model_cannot_take_are_refused_naming_the_input() {
        use pb::tensor_proto::DataType;
        let double = vec![value("x", DataType::Double, &rows_by_three())];
        assert_eq!(
            refusal(&model(double, linear())),
            "input x is double: a regression model here takes float32 features"
        );
        let free_width = input(&[None, Some(Dim::DimParam("features".into()))]);
        assert_eq!(
            refusal(&model(free_width, linear())),
            "input x has shape [?,features]: the number of features F in [N, F] must be fixed"
        );
        let fixed_rows = input(&[Some(Dim::DimValue(50)), Some(Dim::DimValue(3))]);
        assert_eq!(
            refusal(&model(fixed_rows, linear())),
            "input x has shape [50,3]: the rows N in [N, F] must be free (None) or 1"
        );
        let flat = input(&[Some(Dim::DimValue(3))]);
        assert_eq!(
            refusal(&model(flat, linear())),
            "input x has shape [3]: a regression model here takes rows, [N, F]"
        );
        let mut two = input(&rows_by_three());
        two.push(value("z", DataType::Float, &rows_by_three()));
        assert_eq!(
            refusal(&model(two, linear())),
            "the model takes 2 inputs (x, z): a regression model here takes one, float32 [N, F]"
        );
    }

    #[test]
    fn an_op_of_a_domain_nothing_here_knows_is_refused_even_inside_a_subgraph() {
        let custom = node("Score", "com.example", vec![]);
        assert_eq!(
            refusal(&model(input(&rows_by_three()), custom.clone())),
            "unsupported ONNX op Score (domain com.example)"
        );
        let branch = pb::AttributeProto {
            name: "then_branch".into(),
            r#type: AttributeType::Graph as i32,
            g: Some(pb::GraphProto {
                node: vec![custom],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            refusal(&model(
                input(&rows_by_three()),
                node("If", "", vec![branch])
            )),
            "unsupported ONNX op Score (domain com.example)"
        );
        // An ai.onnx op named in the ai.onnx.ml domain is not that op.
        assert_eq!(
            refusal(&model(
                input(&rows_by_three()),
                node("Relu", "ai.onnx.ml", vec![])
            )),
            "unsupported ONNX op Relu (domain ai.onnx.ml)"
        );
    }

    /// A stump on feature `feature`, LEQ 0.5, leaves 1.0 and 2.0; `false_child` as given.
    fn stump(feature: i64, false_child: i64) -> pb::NodeProto {
        let attributes = vec![
            ints("nodes_treeids", &[0, 0, 0]),
            ints("nodes_nodeids", &[0, 1, 2]),
            ints("nodes_featureids", &[feature, 0, 0]),
            floats("nodes_values", &[0.5, 0.0, 0.0]),
            strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
            ints("nodes_truenodeids", &[1, 0, 0]),
            ints("nodes_falsenodeids", &[false_child, 0, 0]),
            ints("target_treeids", &[0, 0]),
            ints("target_nodeids", &[1, 2]),
            ints("target_ids", &[0, 0]),
            floats("target_weights", &[1.0, 2.0]),
            pb::AttributeProto {
                name: "n_targets".into(),
                r#type: AttributeType::Int as i32,
                i: 1,
                ..Default::default()
            },
        ];
        node("TreeEnsembleRegressor", "ai.onnx.ml", attributes)
    }

    #[test]
    fn a_tree_ensemble_is_read_from_its_node_and_refused_when_malformed_or_too_wide() {
        let model_of = |n| model(input(&rows_by_three()), n);
        let served = load(&model_of(stump(2, 2))).expect("a stump");
        assert_eq!(
            served
                .predict_batch(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0], 2)
                .expect("rows"),
            [1.0, 2.0]
        );
        assert_eq!(
            refusal(&model_of(stump(2, 1))),
            "TreeEnsembleRegressor: node 1 of tree 0 is reached twice"
        );
        assert_eq!(
            refusal(&model_of(stump(3, 2))),
            "TreeEnsembleRegressor: a split reads feature 3; the input has 3 features"
        );
    }
}
