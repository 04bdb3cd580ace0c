//! `Scaler` (ai.onnx.ml), which tract does not provide: what skl2onnx makes of scikit-learn's
//! StandardScaler, the usual first step of a pipeline before an MLP. `Y = (X - offset) * scale`
//! in float32, `offset` and `scale` one value for every column or one a column; wired into
//! tract's own subtraction and multiplication.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// Adds `Scaler` to the ops tract builds a graph from.
pub(super) fn register(ops: &mut OnnxOpRegister) {
    ops.insert("Scaler", build);
}

fn build(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let floats = |name: &str| {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.floats.clone())
            .unwrap_or_default()
    };
    let mut offset = floats("offset");
    let mut scale = floats("scale");
    // An absent attribute is the identity: no offset, a scale of one.
    if offset.is_empty() {
        offset.push(0.0);
    }
    if scale.is_empty() {
        scale.push(1.0);
    }
    Ok((expand(Scaler { offset, scale }), vec![]))
}

#[derive(Debug, Clone)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

impl Scaler {
    /// `values` as a constant of `rank` axes, broadcast over every axis but the last.
    fn constant(
        model: &mut TypedModel,
        name: String,
        values: &[f32],
        rank: usize,
    ) -> TractResult<OutletId> {
        let mut shape = vec![1; rank.max(1)];
        if let Some(last) = shape.last_mut() {
            *last = values.len();
        }
        model.add_const(name, Tensor::from_shape(&shape, values)?)
    }
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        let fact = model.outlet_fact(x)?.clone();
        let rank = fact.rank();
        if let Some(columns) = fact.shape.last().and_then(|d| d.to_usize().ok()) {
            for (name, values) in [("offset", &self.offset), ("scale", &self.scale)] {
                ensure!(
                    values.len() == 1 || values.len() == columns,
                    "Scaler has {} {name} values for {columns} columns",
                    values.len()
                );
            }
        }
        if fact.datum_type != f32::datum_type() {
            x = model.wire_node(
                format!("{prefix}.to_f32"),
                tract_core::ops::cast::cast(f32::datum_type()),
                &[x],
            )?[0];
        }
        let offset = Self::constant(model, format!("{prefix}.offset"), &self.offset, rank)?;
        let scale = Self::constant(model, format!("{prefix}.scale"), &self.scale, rank)?;
        let centred = model.wire_node(
            format!("{prefix}.sub"),
            tract_core::ops::math::sub(),
            &[x, offset],
        )?[0];
        model.wire_node(
            format!("{prefix}.mul"),
            tract_core::ops::math::mul(),
            &[centred, scale],
        )
    }
}
