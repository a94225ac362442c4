//! A random forest of regression trees (Breiman, 2001), written for small tabular NAS data.

use super::{Predictor, Standard};
use crate::rng::Rng;

const MIN_LEAF: usize = 2;
const MAX_DEPTH: usize = 20;

#[derive(Clone, Debug)]
enum Node {
    Leaf(f64),
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
}

#[derive(Clone, Debug, Default)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                Node::Leaf(v) => return v,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => i = if x[feature] <= threshold { left } else { right },
            }
        }
    }

    /// Grows a node over `rows` (indices into x/y) and returns its index.
    fn grow(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        rows: &mut [usize],
        depth: usize,
        max_features: usize,
        rng: &mut Rng,
    ) -> usize {
        let mean = rows.iter().map(|&r| y[r]).sum::<f64>() / rows.len() as f64;
        let here = self.nodes.len();
        self.nodes.push(Node::Leaf(mean));
        if rows.len() < 2 * MIN_LEAF || depth >= MAX_DEPTH {
            return here;
        }
        let dim = x[rows[0]].len();
        let features = rng.sample_indices(dim, max_features);
        // Best split by reduction of the sum of squared errors.
        let total: f64 = rows.iter().map(|&r| y[r]).sum();
        let n = rows.len() as f64;
        let mut best: Option<(f64, usize, f64)> = None;
        let mut sorted: Vec<(f64, f64)> = Vec::with_capacity(rows.len());
        for f in features {
            sorted.clear();
            sorted.extend(rows.iter().map(|&r| (x[r][f], y[r])));
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut left_sum = 0.0;
            for i in 0..sorted.len() - 1 {
                left_sum += sorted[i].1;
                if sorted[i].0 == sorted[i + 1].0 {
                    continue;
                }
                let nl = (i + 1) as f64;
                if i + 1 < MIN_LEAF || sorted.len() - i - 1 < MIN_LEAF {
                    continue;
                }
                let right_sum = total - left_sum;
                // Maximising this is minimising the children's squared error.
                let gain = left_sum * left_sum / nl + right_sum * right_sum / (n - nl);
                if best.is_none_or(|(g, _, _)| gain > g) {
                    best = Some((gain, f, (sorted[i].0 + sorted[i + 1].0) / 2.0));
                }
            }
        }
        let Some((gain, feature, threshold)) = best else {
            return here;
        };
        if gain <= total * total / n + 1e-12 {
            return here;
        }
        let mut split = 0;
        for i in 0..rows.len() {
            if x[rows[i]][feature] <= threshold {
                rows.swap(i, split);
                split += 1;
            }
        }
        let (l_rows, r_rows) = rows.split_at_mut(split);
        let left = self.grow(x, y, l_rows, depth + 1, max_features, rng);
        let right = self.grow(x, y, r_rows, depth + 1, max_features, rng);
        self.nodes[here] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        here
    }
}

/// A random forest: `trees` trees, each on a bootstrap sample, a third of the features tried
/// at each split; the prediction is the trees' mean and the uncertainty their spread.
pub struct RandomForest {
    rng: Rng,
    n_trees: usize,
    trees: Vec<Tree>,
    standard: Option<Standard>,
}

impl RandomForest {
    /// A forest of `trees` trees, seeded.
    pub fn new(seed: u64, trees: usize) -> Self {
        RandomForest {
            rng: Rng::new(seed),
            n_trees: trees.max(1),
            trees: Vec::new(),
            standard: None,
        }
    }
}

impl Predictor for RandomForest {
    fn name(&self) -> &'static str {
        "forest"
    }

    fn fit(&mut self, x: &[Vec<f64>], y: &[f64]) {
        let standard = Standard::of(y);
        let ys = standard.apply(y);
        let n = x.len();
        let dim = x.first().map_or(0, Vec::len);
        let max_features = (dim / 3).max(1);
        self.trees = (0..self.n_trees)
            .map(|_| {
                let mut rows: Vec<usize> = (0..n).map(|_| self.rng.below(n)).collect();
                let mut tree = Tree::default();
                tree.grow(x, &ys, &mut rows, 0, max_features, &mut self.rng);
                tree
            })
            .collect();
        self.standard = Some(standard);
    }

    fn predict(&self, x: &[f64]) -> (f64, f64) {
        let Some(standard) = self.standard else {
            return (0.0, 1.0);
        };
        let preds: Vec<f64> = self.trees.iter().map(|t| t.predict(x)).collect();
        let (mean, std) = crate::stats::mean_std(&preds);
        standard.undo(mean, std)
    }
}
