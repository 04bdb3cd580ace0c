//! Reading a TreeEnsembleRegressor's attributes into a forest: the checks on their lengths and
//! values, the node index, the walk from each root, and the weights of each leaf.

use super::*;

/// Refuses node and target attributes whose lengths disagree, and an ensemble without nodes.
pub(super) fn check_lengths(a: &ForestAttributes) -> Result<(), ForestError> {
    let n = a.nodes_treeids.len();
    for (name, len) in [
        ("nodes_nodeids", a.nodes_nodeids.len()),
        ("nodes_featureids", a.nodes_featureids.len()),
        ("nodes_values", a.nodes_values.len()),
        ("nodes_modes", a.nodes_modes.len()),
        ("nodes_truenodeids", a.nodes_truenodeids.len()),
        ("nodes_falsenodeids", a.nodes_falsenodeids.len()),
    ] {
        if len != n {
            return refuse(format!("{name} has {len} entries for {n} nodes"));
        }
    }
    let missing = &a.nodes_missing_value_tracks_true;
    if !missing.is_empty() && missing.len() != n {
        return refuse(format!(
            "nodes_missing_value_tracks_true has {} entries for {n} nodes",
            missing.len()
        ));
    }
    let t = a.target_treeids.len();
    for (name, len) in [
        ("target_nodeids", a.target_nodeids.len()),
        ("target_ids", a.target_ids.len()),
        ("target_weights", a.target_weights.len()),
    ] {
        if len != t {
            return refuse(format!("{name} has {len} entries for {t} target_treeids"));
        }
    }
    if n == 0 {
        return refuse("the ensemble has no trees".into());
    }
    Ok(())
}

/// Refuses any `post_transform` but NONE.
pub(super) fn check_post_transform(a: &ForestAttributes) -> Result<(), ForestError> {
    match a.post_transform.as_deref() {
        None | Some("NONE") => Ok(()),
        Some(other) => refuse(format!("post_transform {other} is not served (NONE is)")),
    }
}

/// How the trees are combined, by `aggregate_function` (SUM when absent).
pub(super) fn read_aggregate(a: &ForestAttributes) -> Result<Aggregate, ForestError> {
    Ok(match a.aggregate_function.as_deref() {
        None | Some("SUM") => Aggregate::Sum,
        Some("AVERAGE") => Aggregate::Average,
        Some("MIN") => Aggregate::Min,
        Some("MAX") => Aggregate::Max,
        Some(other) => {
            return refuse(format!(
                "aggregate_function {other} is not one of SUM, AVERAGE, MIN, MAX"
            ))
        }
    })
}

/// The number of targets, from `n_targets` or else the highest target id; refuses
/// `base_values` of another length.
pub(super) fn read_n_targets(a: &ForestAttributes) -> Result<usize, ForestError> {
    let n_targets = match a.n_targets {
        Some(k) if k >= 1 => k as usize,
        Some(k) => return refuse(format!("n_targets is {k}")),
        None => a
            .target_ids
            .iter()
            .copied()
            .max()
            .map_or(1, |m| m.max(0) as usize + 1),
    };
    if !a.base_values.is_empty() && a.base_values.len() != n_targets {
        return refuse(format!(
            "base_values has {} entries for {n_targets} targets",
            a.base_values.len()
        ));
    }
    Ok(n_targets)
}

/// The nodes as listed: where each `(tree, node)` id is, and each node's mode.
pub(super) struct NodeIndex {
    /// The listed position of each `(tree id, node id)`.
    pub(super) index: HashMap<(i64, i64), usize>,
    /// Each listed node's mode.
    pub(super) modes: Vec<Mode>,
}

impl NodeIndex {
    /// Indexes the nodes; refuses a node listed twice, an unknown mode, a split on a negative
    /// feature.
    pub(super) fn read(a: &ForestAttributes) -> Result<NodeIndex, ForestError> {
        let n = a.nodes_treeids.len();
        let mut index = HashMap::with_capacity(n);
        let mut modes = Vec::with_capacity(n);
        for i in 0..n {
            let key = (a.nodes_treeids[i], a.nodes_nodeids[i]);
            if index.insert(key, i).is_some() {
                return refuse(format!("node {} of tree {} is listed twice", key.1, key.0));
            }
            let Some(mode) = Mode::parse(&a.nodes_modes[i]) else {
                return refuse(format!(
                    "node {} of tree {} has mode {}, not a BRANCH_ mode or LEAF",
                    key.1, key.0, a.nodes_modes[i]
                ));
            };
            if mode != Mode::Leaf && a.nodes_featureids[i] < 0 {
                return refuse(format!(
                    "node {} of tree {} reads feature {}",
                    key.1, key.0, a.nodes_featureids[i]
                ));
            }
            modes.push(mode);
        }
        Ok(NodeIndex { index, modes })
    }
}

/// The order the trees are walked in: every node reachable from a root, once.
pub(super) struct Layout {
    /// Each listed node's place in `order` (`u32::MAX`: not reached).
    pub(super) position: Vec<u32>,
    /// Listed node indices, tree by tree, each tree from its root.
    pub(super) order: Vec<usize>,
    /// Where each tree's root is in `order`.
    pub(super) roots: Vec<u32>,
}

impl Layout {
    /// Walks every tree from its root; refuses a node reached twice and a child the tree lacks.
    pub(super) fn walk(a: &ForestAttributes, nodes: &NodeIndex) -> Result<Layout, ForestError> {
        let n = a.nodes_treeids.len();
        // Lay each tree out from its root, the first node listed for it (as onnxruntime does);
        // a node reached twice would make a cycle or a shared subtree, which onnxruntime refuses.
        let mut position = vec![u32::MAX; n];
        let mut order: Vec<usize> = Vec::with_capacity(n);
        let mut roots = Vec::new();
        let mut seen_trees = HashMap::new();
        for i in 0..n {
            let tree = a.nodes_treeids[i];
            if seen_trees.insert(tree, ()).is_some() {
                continue;
            }
            roots.push(order.len() as u32);
            let mut stack = vec![i];
            while let Some(j) = stack.pop() {
                if position[j] != u32::MAX {
                    return refuse(format!(
                        "node {} of tree {tree} is reached twice",
                        a.nodes_nodeids[j]
                    ));
                }
                position[j] = order.len() as u32;
                order.push(j);
                if nodes.modes[j] != Mode::Leaf {
                    for (name, child) in [
                        ("nodes_falsenodeids", a.nodes_falsenodeids[j]),
                        ("nodes_truenodeids", a.nodes_truenodeids[j]),
                    ] {
                        match nodes.index.get(&(tree, child)) {
                            Some(&c) => stack.push(c),
                            None => {
                                return refuse(format!(
                                    "{name} of node {} of tree {tree} names node {child}, which the tree does not have",
                                    a.nodes_nodeids[j]
                                ))
                            }
                        }
                    }
                }
            }
        }
        Ok(Layout {
            position,
            order,
            roots,
        })
    }
}

/// Each listed node's weights; refuses a weight on a node the ensemble lacks or for a target
/// out of range.
pub(super) fn weights_by_leaf(
    a: &ForestAttributes,
    nodes: &NodeIndex,
    n_targets: usize,
) -> Result<Vec<Vec<LeafWeight>>, ForestError> {
    // Weights by leaf, in the order listed; weights on a split are ignored, as onnxruntime
    // ignores them (old onnxmltools exports have some).
    let mut by_leaf: Vec<Vec<LeafWeight>> = vec![Vec::new(); a.nodes_treeids.len()];
    for k in 0..a.target_treeids.len() {
        let key = (a.target_treeids[k], a.target_nodeids[k]);
        let Some(&i) = nodes.index.get(&key) else {
            return refuse(format!(
                "target_nodeids names node {} of tree {}, which the ensemble does not have",
                key.1, key.0
            ));
        };
        let target = a.target_ids[k];
        if target < 0 || target as usize >= n_targets {
            return refuse(format!("target_ids has {target} for {n_targets} targets"));
        }
        if nodes.modes[i] == Mode::Leaf {
            by_leaf[i].push(LeafWeight {
                target: target as u32,
                value32: a.target_weights[k] as f32,
                value64: a.real(a.target_weights[k]),
            });
        }
    }
    Ok(by_leaf)
}
