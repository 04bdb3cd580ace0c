//! `TreeEnsembleRegressor` (ai.onnx.ml), which tract does not provide: what skl2onnx makes of
//! scikit-learn's gradient-boosted trees and random forests.
//!
//! Evaluated as onnxruntime does: each tree's root is the first node listed for it; a split goes
//! to its true branch when the comparison holds or when the value is missing (NaN) and its
//! `nodes_missing_value_tracks_true` says so; with one target a leaf gives its first weight (0 when
//! it has none), with several it gives each of its weights to its target; SUM, AVERAGE (the sum
//! over the number of trees), MIN or MAX over the trees, then plus `base_values`. A float32 input
//! is compared against thresholds rounded to float32 and summed in float32, as onnxruntime does
//! for a float model; any other input is compared and summed in f64. Only `post_transform` NONE.

mod read;
use read::*;
use std::collections::HashMap;
use std::fmt;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::{AttributeProto, NodeProto};
use tract_onnx::tract_hir::internal::*;

/// Adds `TreeEnsembleRegressor` to the ops tract builds a graph from.
pub(super) fn register(ops: &mut OnnxOpRegister) {
    ops.insert("TreeEnsembleRegressor", build);
}

fn build(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let attributes = ForestAttributes::from_node(ctx, node)?;
    let forest = Forest::new(&attributes)?;
    Ok((
        expand(TreeEnsembleRegressor {
            forest: Arc::new(forest),
        }),
        vec![],
    ))
}

/// Why a `TreeEnsembleRegressor` node cannot be served: one line, without the op's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ForestError(pub(super) String);

impl fmt::Display for ForestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ForestError {}

fn refuse<T>(reason: String) -> Result<T, ForestError> {
    Err(ForestError(reason))
}

/// The node's attributes as the ONNX-ML operator defines them; the `_as_tensor` forms of
/// opset 3 are read into the same fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ForestAttributes {
    pub(super) nodes_treeids: Vec<i64>,
    pub(super) nodes_nodeids: Vec<i64>,
    pub(super) nodes_featureids: Vec<i64>,
    pub(super) nodes_values: Vec<f64>,
    /// Whether the thresholds came as a double tensor (else float32): onnxruntime then holds
    /// thresholds, weights and base values in double, else all three in float32.
    pub(super) double: bool,
    pub(super) nodes_modes: Vec<String>,
    pub(super) nodes_truenodeids: Vec<i64>,
    pub(super) nodes_falsenodeids: Vec<i64>,
    pub(super) nodes_missing_value_tracks_true: Vec<i64>,
    pub(super) target_treeids: Vec<i64>,
    pub(super) target_nodeids: Vec<i64>,
    pub(super) target_ids: Vec<i64>,
    pub(super) target_weights: Vec<f64>,
    pub(super) n_targets: Option<i64>,
    pub(super) aggregate_function: Option<String>,
    pub(super) base_values: Vec<f64>,
    pub(super) post_transform: Option<String>,
}

impl ForestAttributes {
    fn from_node(ctx: &ParsingContext, node: &NodeProto) -> TractResult<Self> {
        let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
        let ints = |name: &str| attr(name).map(|a| a.ints.clone()).unwrap_or_default();
        let string = |name: &str| attr(name).map(|a| String::from_utf8_lossy(&a.s).into_owned());
        // A list of reals comes as floats, or (opset 3) as a tensor that may be double.
        let reals = |name: &str| -> TractResult<(Vec<f64>, bool)> {
            if let Some(AttributeProto { t: Some(t), .. }) = attr(&format!("{name}_as_tensor")) {
                let tensor = ctx.load_tensor(t)?;
                let double = tensor.datum_type() == f64::datum_type();
                let values = tensor.cast_to::<f64>()?;
                let values = values.try_as_plain_ram()?.as_slice::<f64>()?.to_vec();
                return Ok((values, double));
            }
            let floats = attr(name).map(|a| a.floats.as_slice()).unwrap_or_default();
            Ok((floats.iter().map(|&v| f64::from(v)).collect(), false))
        };
        let (nodes_values, double) = reals("nodes_values")?;
        Ok(ForestAttributes {
            nodes_treeids: ints("nodes_treeids"),
            nodes_nodeids: ints("nodes_nodeids"),
            nodes_featureids: ints("nodes_featureids"),
            nodes_values,
            double,
            nodes_modes: attr("nodes_modes")
                .map(|a| {
                    a.strings
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            nodes_truenodeids: ints("nodes_truenodeids"),
            nodes_falsenodeids: ints("nodes_falsenodeids"),
            nodes_missing_value_tracks_true: ints("nodes_missing_value_tracks_true"),
            target_treeids: ints("target_treeids"),
            target_nodeids: ints("target_nodeids"),
            target_ids: ints("target_ids"),
            target_weights: reals("target_weights")?.0,
            n_targets: attr("n_targets").map(|a| a.i),
            aggregate_function: string("aggregate_function"),
            base_values: reals("base_values")?.0,
            post_transform: string("post_transform"),
        })
    }
}

impl ForestAttributes {
    /// A threshold, weight or base value as the ensemble's precision holds it, widened to f64.
    fn real(&self, value: f64) -> f64 {
        if self.double {
            value
        } else {
            f64::from(value as f32)
        }
    }
}

/// How a split compares a feature with its threshold; `Leaf` ends the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            _ => return None,
        })
    }
}

/// How the trees' leaf values are combined, per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// One node of the flattened forest: a split, or a leaf with its range of weights.
#[derive(Debug, Clone, Copy)]
struct TreeNode {
    mode: Mode,
    missing_tracks_true: bool,
    feature: u32,
    if_true: u32,
    if_false: u32,
    weights_start: u32,
    weights_len: u32,
}

#[derive(Debug, Clone, Copy)]
struct LeafWeight {
    target: u32,
    value32: f32,
    value64: f64,
}

/// A checked forest laid out for evaluation: every node reachable from a root, children by
/// index, thresholds and weights in both precisions.
#[derive(Debug, Clone)]
pub(super) struct Forest {
    nodes: Vec<TreeNode>,
    thresholds32: Vec<f32>,
    thresholds64: Vec<f64>,
    weights: Vec<LeafWeight>,
    roots: Vec<u32>,
    n_targets: usize,
    aggregate: Aggregate,
    base32: Vec<f32>,
    base64: Vec<f64>,
    /// One more than the highest feature index a split reads.
    features_read: usize,
}

impl Forest {
    /// Checks the attributes and lays the trees out; every refusal says which attribute or node.
    pub(super) fn new(a: &ForestAttributes) -> Result<Forest, ForestError> {
        check_lengths(a)?;
        check_post_transform(a)?;
        let aggregate = read_aggregate(a)?;
        let n_targets = read_n_targets(a)?;
        let nodes = NodeIndex::read(a)?;
        let layout = Layout::walk(a, &nodes)?;
        let by_leaf = weights_by_leaf(a, &nodes, n_targets)?;
        Ok(Forest::flatten(
            a, &nodes, layout, &by_leaf, aggregate, n_targets,
        ))
    }

    /// Lays the checked nodes out in walk order, children by position, each leaf's weights in
    /// one range, thresholds and base values in both precisions.
    fn flatten(
        a: &ForestAttributes,
        index: &NodeIndex,
        layout: Layout,
        by_leaf: &[Vec<LeafWeight>],
        aggregate: Aggregate,
        n_targets: usize,
    ) -> Forest {
        let Layout {
            position,
            order,
            roots,
        } = layout;
        let missing = &a.nodes_missing_value_tracks_true;
        let mut nodes = Vec::with_capacity(order.len());
        let mut thresholds32 = Vec::with_capacity(order.len());
        let mut thresholds64 = Vec::with_capacity(order.len());
        let mut weights = Vec::with_capacity(a.target_treeids.len());
        let mut features_read = 0;
        for &j in &order {
            let mode = index.modes[j];
            let tree = a.nodes_treeids[j];
            let child = |id: i64| position[index.index[&(tree, id)]];
            let (if_true, if_false, feature) = if mode == Mode::Leaf {
                (0, 0, 0)
            } else {
                let feature = a.nodes_featureids[j] as usize;
                features_read = features_read.max(feature + 1);
                (
                    child(a.nodes_truenodeids[j]),
                    child(a.nodes_falsenodeids[j]),
                    feature as u32,
                )
            };
            let leaf_weights = &by_leaf[j];
            nodes.push(TreeNode {
                mode,
                missing_tracks_true: missing.get(j).is_some_and(|&m| m != 0),
                feature,
                if_true,
                if_false,
                weights_start: weights.len() as u32,
                weights_len: leaf_weights.len() as u32,
            });
            weights.extend_from_slice(leaf_weights);
            let value = a.nodes_values[j];
            thresholds32.push(value as f32);
            thresholds64.push(a.real(value));
        }
        let base64: Vec<f64> = if a.base_values.is_empty() {
            vec![0.0; n_targets]
        } else {
            a.base_values.iter().map(|&b| a.real(b)).collect()
        };
        Forest {
            nodes,
            thresholds32,
            thresholds64,
            weights,
            roots,
            n_targets,
            aggregate,
            base32: base64.iter().map(|&b| b as f32).collect(),
            base64,
            features_read,
        }
    }

    /// Values each row gives per target.
    pub(super) fn n_targets(&self) -> usize {
        self.n_targets
    }

    /// Evaluates `rows` (row-major, `width` features each) into `out` (`n_targets` a row).
    fn eval<T: Real>(&self, rows: &[T], width: usize, out: &mut [f32]) {
        let mut scores = vec![T::ZERO; self.n_targets];
        let mut has = vec![false; self.n_targets];
        let thresholds = T::thresholds(self);
        let base = T::base(self);
        let n_trees = T::from_count(self.roots.len());
        for (row, out) in rows
            .chunks_exact(width)
            .zip(out.chunks_exact_mut(self.n_targets))
        {
            scores.fill(T::ZERO);
            has.fill(false);
            for &root in &self.roots {
                let leaf = self.leaf(root as usize, row, thresholds);
                let weights = &self.weights
                    [leaf.weights_start as usize..(leaf.weights_start + leaf.weights_len) as usize];
                if self.n_targets == 1 {
                    let value = weights.first().map_or(T::ZERO, T::weight);
                    self.combine(&mut scores[0], &mut has[0], value);
                } else {
                    for w in weights {
                        let t = w.target as usize;
                        self.combine(&mut scores[t], &mut has[t], T::weight(w));
                    }
                }
            }
            for t in 0..self.n_targets {
                let mut score = scores[t];
                if self.aggregate == Aggregate::Average {
                    score = score / n_trees;
                }
                out[t] = if has[t] { score + base[t] } else { base[t] }.to_f32();
            }
        }
    }

    fn combine<T: Real>(&self, score: &mut T, has: &mut bool, value: T) {
        *score = match self.aggregate {
            Aggregate::Sum | Aggregate::Average => *score + value,
            Aggregate::Min if *has && *score <= value => *score,
            Aggregate::Max if *has && *score >= value => *score,
            Aggregate::Min | Aggregate::Max => value,
        };
        *has = true;
    }

    fn leaf<T: Real>(&self, mut i: usize, row: &[T], thresholds: &[T]) -> &TreeNode {
        loop {
            let node = &self.nodes[i];
            let x = row[node.feature as usize];
            let threshold = thresholds[i];
            let holds = match node.mode {
                Mode::Leaf => return node,
                Mode::Leq => x <= threshold,
                Mode::Lt => x < threshold,
                Mode::Gte => x >= threshold,
                Mode::Gt => x > threshold,
                Mode::Eq => x == threshold,
                Mode::Neq => x != threshold,
            };
            let to_true = holds || (node.missing_tracks_true && x.is_nan());
            i = if to_true { node.if_true } else { node.if_false } as usize;
        }
    }

    /// Refuses rows of `width` features when a split reads a feature beyond them.
    fn check_width(&self, width: usize) -> Result<(), ForestError> {
        if width < self.features_read {
            return refuse(format!(
                "a split reads feature {}; the input has {width} features",
                self.features_read - 1
            ));
        }
        Ok(())
    }

    /// Evaluates a [rows, features] tensor into a float32 [rows, n_targets] one.
    fn eval_tensor(&self, input: &Tensor) -> TractResult<Tensor> {
        let &[rows, width] = input.shape() else {
            bail!(
                "TreeEnsembleRegressor takes rows, [N, F]; got shape {:?}",
                input.shape()
            );
        };
        self.check_width(width)?;
        let mut out = vec![0f32; rows * self.n_targets];
        if width > 0 {
            if input.datum_type() == f32::datum_type() {
                self.eval(
                    input.try_as_plain_ram()?.as_slice::<f32>()?,
                    width,
                    &mut out,
                );
            } else {
                let input = input.cast_to::<f64>()?;
                self.eval(
                    input.try_as_plain_ram()?.as_slice::<f64>()?,
                    width,
                    &mut out,
                );
            }
        }
        Tensor::from_shape(&[rows, self.n_targets], &out)
    }
}

/// The two precisions a forest is evaluated in.
trait Real: Copy + PartialOrd + std::ops::Add<Output = Self> + std::ops::Div<Output = Self> {
    const ZERO: Self;
    fn is_nan(self) -> bool;
    fn from_count(n: usize) -> Self;
    fn to_f32(self) -> f32;
    fn thresholds(forest: &Forest) -> &[Self];
    fn base(forest: &Forest) -> &[Self];
    fn weight(w: &LeafWeight) -> Self;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn from_count(n: usize) -> f32 {
        n as f32
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn thresholds(forest: &Forest) -> &[f32] {
        &forest.thresholds32
    }
    fn base(forest: &Forest) -> &[f32] {
        &forest.base32
    }
    fn weight(w: &LeafWeight) -> f32 {
        w.value32
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn from_count(n: usize) -> f64 {
        n as f64
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn thresholds(forest: &Forest) -> &[f64] {
        &forest.thresholds64
    }
    fn base(forest: &Forest) -> &[f64] {
        &forest.base64
    }
    fn weight(w: &LeafWeight) -> f64 {
        w.value64
    }
}

/// The op in a tract graph: inference rules and wiring (an [`Expansion`]) around the typed op.
#[derive(Debug, Clone)]
struct TreeEnsembleRegressor {
    forest: Arc<Forest>,
}

// Two ops are the same op only if they share one forest: comparing forests value by value would
// need an equality over floats that NaN thresholds break.
impl PartialEq for TreeEnsembleRegressor {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.forest, &other.forest)
    }
}

impl Eq for TreeEnsembleRegressor {}

impl Expansion for TreeEnsembleRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.forest.n_targets().to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for TreeEnsembleRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeEnsembleRegressor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        Ok(tvec!(self.forest.eval_tensor(&input)?.into_tvalue()))
    }
}

impl TypedOp for TreeEnsembleRegressor {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(
            shape.rank() == 2,
            "TreeEnsembleRegressor takes rows, [N, F]; got {shape:?}"
        );
        if let Ok(width) = shape[1].to_usize() {
            self.forest.check_width(width)?;
        }
        Ok(tvec!(f32::fact([
            shape[0].clone(),
            self.forest.n_targets().to_dim()
        ])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One tree: the root splits feature 0 at `threshold` with `mode`; true leaf 1.0, false 2.0.
    fn stump(mode: &str, threshold: f64, missing_true: bool) -> ForestAttributes {
        ForestAttributes {
            nodes_treeids: vec![0, 0, 0],
            nodes_nodeids: vec![0, 1, 2],
            nodes_featureids: vec![0, 0, 0],
            nodes_values: vec![threshold, 0.0, 0.0],
            nodes_modes: vec![mode.into(), "LEAF".into(), "LEAF".into()],
            nodes_truenodeids: vec![1, 0, 0],
            nodes_falsenodeids: vec![2, 0, 0],
            nodes_missing_value_tracks_true: vec![i64::from(missing_true), 0, 0],
            target_treeids: vec![0, 0],
            target_nodeids: vec![1, 2],
            target_ids: vec![0, 0],
            target_weights: vec![1.0, 2.0],
            ..Default::default()
        }
    }

    fn predict(attributes: &ForestAttributes, rows: &[f32], width: usize) -> Vec<f32> {
        let forest = match Forest::new(attributes) {
            Ok(forest) => forest,
            Err(e) => panic!("{e}"),
        };
        let mut out = vec![0.0; rows.len() / width * forest.n_targets];
        forest.eval(rows, width, &mut out);
        out
    }

    fn refusal(attributes: &ForestAttributes) -> String {
        match Forest::new(attributes) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn each_branch_mode_compares_as_its_name_says() {
        let rows = [0.5f32, 1.0, 1.5];
        let cases = [
            ("BRANCH_LEQ", [1.0, 1.0, 2.0]),
            ("BRANCH_LT", [1.0, 2.0, 2.0]),
            ("BRANCH_GTE", [2.0, 1.0, 1.0]),
            ("BRANCH_GT", [2.0, 2.0, 1.0]),
            ("BRANCH_EQ", [2.0, 1.0, 2.0]),
            ("BRANCH_NEQ", [1.0, 2.0, 1.0]),
        ];
        for (mode, expected) in cases {
            assert_eq!(
                predict(&stump(mode, 1.0, false), &rows, 1),
                expected,
                "{mode}"
            );
        }
    }

    #[test]
    fn a_missing_value_goes_true_only_where_the_node_says_so() {
        let nan = [f32::NAN];
        assert_eq!(predict(&stump("BRANCH_LEQ", 1.0, true), &nan, 1), [1.0]);
        assert_eq!(predict(&stump("BRANCH_LEQ", 1.0, false), &nan, 1), [2.0]);
        // NaN != threshold holds, as it does in onnxruntime's comparison.
        assert_eq!(predict(&stump("BRANCH_NEQ", 1.0, false), &nan, 1), [1.0]);
        // An empty nodes_missing_value_tracks_true means false everywhere.
        let mut no_list = stump("BRANCH_LEQ", 1.0, true);
        no_list.nodes_missing_value_tracks_true.clear();
        assert_eq!(predict(&no_list, &nan, 1), [2.0]);
    }

    #[test]
    fn a_float32_row_is_compared_with_the_threshold_rounded_to_float32() {
        // 0.1 as a double threshold is below 0.1f32; rounded to float32 it is equal.
        let mut attributes = stump("BRANCH_LEQ", 0.1, false);
        attributes.double = true;
        assert_eq!(predict(&attributes, &[0.1f32], 1), [1.0]);
        let forest = Forest::new(&attributes).expect("forest");
        let mut out = [0.0];
        forest.eval(&[f64::from(0.1f32)], 1, &mut out);
        assert_eq!(out, [2.0]);
    }

    /// Two stumps on features 0 and 1 (LEQ 0.5), leaves true 1.0/10.0 and false 2.0/20.0.
    fn two_trees(aggregate: &str, base: Vec<f64>) -> ForestAttributes {
        ForestAttributes {
            nodes_treeids: vec![0, 0, 0, 1, 1, 1],
            nodes_nodeids: vec![0, 1, 2, 0, 1, 2],
            nodes_featureids: vec![0, 0, 0, 1, 0, 0],
            nodes_values: vec![0.5, 0.0, 0.0, 0.5, 0.0, 0.0],
            nodes_modes: ["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"]
                .map(String::from)
                .to_vec(),
            nodes_truenodeids: vec![1, 0, 0, 1, 0, 0],
            nodes_falsenodeids: vec![2, 0, 0, 2, 0, 0],
            target_treeids: vec![0, 0, 1, 1],
            target_nodeids: vec![1, 2, 1, 2],
            target_ids: vec![0, 0, 0, 0],
            target_weights: vec![1.0, 2.0, 10.0, 20.0],
            aggregate_function: Some(aggregate.into()),
            base_values: base,
            n_targets: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn the_trees_are_summed_averaged_or_their_extreme_taken_then_the_base_added() {
        // Row (0, 1): tree 0 gives 1.0, tree 1 gives 20.0.
        let row = [0.0f32, 1.0];
        assert_eq!(predict(&two_trees("SUM", vec![]), &row, 2), [21.0]);
        assert_eq!(predict(&two_trees("SUM", vec![100.0]), &row, 2), [121.0]);
        assert_eq!(
            predict(&two_trees("AVERAGE", vec![100.0]), &row, 2),
            [110.5]
        );
        assert_eq!(predict(&two_trees("MIN", vec![100.0]), &row, 2), [101.0]);
        assert_eq!(predict(&two_trees("MAX", vec![100.0]), &row, 2), [120.0]);
    }

    #[test]
    fn with_one_target_a_leaf_without_weights_counts_as_zero() {
        // onnxruntime's one-target path reads each leaf's first weight, 0 where there is none,
        // so a weightless leaf takes part in MIN.
        let mut attributes = two_trees("MIN", vec![]);
        attributes.target_treeids.remove(0);
        attributes.target_nodeids.remove(0);
        attributes.target_ids.remove(0);
        attributes.target_weights.remove(0);
        assert_eq!(predict(&attributes, &[0.0, 1.0], 2), [0.0]);
        assert_eq!(predict(&attributes, &[1.0, 1.0], 2), [2.0]);
    }

    #[test]
    fn with_several_targets_each_weight_goes_to_its_target() {
        let mut attributes = two_trees("SUM", vec![0.5, -0.5]);
        attributes.n_targets = Some(2);
        // Tree 1's leaves also give to target 1.
        attributes.target_treeids.extend([1, 1]);
        attributes.target_nodeids.extend([1, 2]);
        attributes.target_ids.extend([1, 1]);
        attributes.target_weights.extend([3.0, 4.0]);
        assert_eq!(
            predict(&attributes, &[0.0, 1.0, 1.0, 0.0], 2),
            [21.5, 3.5, 12.5, 2.5]
        );
    }

    #[test]
    fn a_tree_is_rooted_at_its_first_listed_node_whatever_the_ids() {
        // Node ids need not start at 0 or be in order: the root is listed first.
        let mut attributes = stump("BRANCH_LEQ", 1.0, false);
        attributes.nodes_nodeids = vec![7, 3, 5];
        attributes.nodes_truenodeids = vec![3, 0, 0];
        attributes.nodes_falsenodeids = vec![5, 0, 0];
        attributes.target_nodeids = vec![3, 5];
        assert_eq!(predict(&attributes, &[0.0, 2.0], 1), [1.0, 2.0]);
    }

    #[test]
    fn a_malformed_ensemble_is_refused_with_the_attribute_or_node_named() {
        let good = stump("BRANCH_LEQ", 1.0, false);
        let mut a = good.clone();
        a.nodes_truenodeids[0] = 9;
        assert_eq!(
            refusal(&a),
            "nodes_truenodeids of node 0 of tree 0 names node 9, which the tree does not have"
        );
        let mut a = good.clone();
        a.nodes_falsenodeids[0] = 1;
        assert_eq!(refusal(&a), "node 1 of tree 0 is reached twice");
        let mut a = good.clone();
        a.nodes_modes[0] = "BRANCH_MEMBER".into();
        assert_eq!(
            refusal(&a),
            "node 0 of tree 0 has mode BRANCH_MEMBER, not a BRANCH_ mode or LEAF"
        );
        let mut a = good.clone();
        a.post_transform = Some("PROBIT".into());
        assert_eq!(refusal(&a), "post_transform PROBIT is not served (NONE is)");
        let mut a = good.clone();
        a.aggregate_function = Some("MEDIAN".into());
        assert_eq!(
            refusal(&a),
            "aggregate_function MEDIAN is not one of SUM, AVERAGE, MIN, MAX"
        );
        let mut a = good.clone();
        a.target_nodeids[1] = 4;
        assert_eq!(
            refusal(&a),
            "target_nodeids names node 4 of tree 0, which the ensemble does not have"
        );
        let mut a = good.clone();
        a.n_targets = Some(1);
        a.target_ids[1] = 1;
        assert_eq!(refusal(&a), "target_ids has 1 for 1 targets");
        let mut a = good.clone();
        a.base_values = vec![1.0, 2.0];
        assert_eq!(refusal(&a), "base_values has 2 entries for 1 targets");
        let mut a = good.clone();
        a.nodes_values.pop();
        assert_eq!(refusal(&a), "nodes_values has 2 entries for 3 nodes");
        let mut a = good;
        a.nodes_nodeids[2] = 1;
        assert_eq!(refusal(&a), "node 1 of tree 0 is listed twice");
    }

    #[test]
    fn a_row_narrower_than_the_features_the_trees_read_is_an_error() {
        let forest = Forest::new(&two_trees("SUM", vec![])).expect("forest");
        let input = Tensor::from_shape(&[1, 1], &[0.0f32]).expect("tensor");
        let err = forest.eval_tensor(&input).expect_err("narrow row");
        assert_eq!(
            err.to_string(),
            "a split reads feature 1; the input has 1 features"
        );
    }
}
