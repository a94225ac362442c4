//! Pareto dominance for multi-objective search: non-dominated fronts, NSGA-II's crowding
//! distance and constrained ranking, and the exact hypervolume of a set of points.
//!
//! **Every objective is maximised.** A caller with an objective to minimise (parameters, MACs,
//! latency) multiplies it by -1 first, so an arch scored (accuracy, params) becomes the point
//! `[accuracy, -params]`. A point is a slice of objective values; all points of one call have
//! the same number of objectives, at least one.
//!
//! ```
//! use nasforge_core::pareto::{front, hypervolume};
//! // (accuracy, -parameters) of four archs.
//! let points = vec![
//!     vec![90.0, -1.0e6],
//!     vec![93.0, -1.5e6],
//!     vec![89.0, -1.2e6], // worse than the first on both
//!     vec![91.0, -1.0e6], // better than the first on accuracy, as small
//! ];
//! assert_eq!(front(&points), vec![1, 3]);
//! // The area between the reference (85 %, 1.6 M parameters) and the front.
//! let hv = hypervolume(&points, &[85.0, -1.6e6]).unwrap();
//! assert!((hv - (6.0 * 0.6e6 + 2.0 * 0.1e6)).abs() < 1e-6);
//! ```

use crate::{Error, Result};
use std::cmp::Ordering;

/// Whether `a` dominates `b`: at least as good in every objective and better in one (all
/// objectives maximised). A point never dominates itself or an equal point, and a `NaN`
/// objective on either side means no dominance.
///
/// # Panics
/// If `a` and `b` have different lengths.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    assert_eq!(
        a.len(),
        b.len(),
        "dominates: points with {} and {} objectives cannot be compared",
        a.len(),
        b.len()
    );
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        match x.partial_cmp(y) {
            Some(Ordering::Greater) => better = true,
            Some(Ordering::Equal) => {}
            Some(Ordering::Less) | None => return false,
        }
    }
    better
}

/// Sorts points into non-dominated fronts (NSGA-II's ranking): the first front holds the points
/// no other point dominates, the second those only the first front dominates, and so on. Every
/// index appears in exactly one front, and each front lists its indices in ascending order.
/// Equal points share a front. Use [`front`] when only the first is needed.
///
/// Two objectives (the common accuracy-versus-cost case) take O(n log n) time; more take
/// O(n · f) dominance checks, f being the total size of the fronts a point is compared with.
/// `NaN` values give an unspecified ranking, but still one in which every index appears once.
///
/// # Panics
/// If the points do not all have the same number (≥ 1) of objectives.
pub fn non_dominated_sort(points: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let m = objectives(points);
    let mut fronts = match m {
        0 => return Vec::new(),
        // One objective ranks as two equal ones: (x, x) dominates (y, y) exactly when x > y.
        1 => sort_2d(points, |p| (p[0], p[0])),
        2 => sort_2d(points, |p| (p[0], p[1])),
        _ => sort_general(points),
    };
    for f in &mut fronts {
        f.sort_unstable();
    }
    fronts
}

/// The indices of the non-dominated points (the first front of [`non_dominated_sort`]),
/// ascending; empty for no points.
///
/// # Panics
/// As [`non_dominated_sort`].
pub fn front(points: &[Vec<f64>]) -> Vec<usize> {
    non_dominated_sort(points)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Deb's feasibility-first ranking for constrained multi-objective search: the feasible points
/// (`violations[i] <= 0`) come first, in their non-dominated fronts; then the infeasible ones,
/// one front per distinct violation, the smallest violation first, its indices ascending. An
/// infeasible point thus ranks behind every feasible one, whatever its objectives. A `NaN`
/// violation counts as infeasible and ranks last.
///
/// # Panics
/// If `violations` and `points` have different lengths, or as [`non_dominated_sort`].
pub fn constrained_sort(points: &[Vec<f64>], violations: &[f64]) -> Vec<Vec<usize>> {
    assert_eq!(
        points.len(),
        violations.len(),
        "constrained_sort: {} points but {} violations",
        points.len(),
        violations.len()
    );
    let (feasible, mut infeasible): (Vec<usize>, Vec<usize>) =
        (0..points.len()).partition(|&i| violations[i] <= 0.0);
    let subset: Vec<Vec<f64>> = feasible.iter().map(|&i| points[i].clone()).collect();
    let mut fronts: Vec<Vec<usize>> = non_dominated_sort(&subset)
        .into_iter()
        .map(|f| f.into_iter().map(|j| feasible[j]).collect())
        .collect();
    // Stable, so indices stay ascending within one violation.
    infeasible.sort_by(|&a, &b| violations[a].total_cmp(&violations[b]));
    let first_infeasible = fronts.len();
    for i in infeasible {
        match fronts[first_infeasible..].last_mut() {
            Some(last) if violations[last[0]].total_cmp(&violations[i]) == Ordering::Equal => {
                last.push(i)
            }
            _ => fronts.push(vec![i]),
        }
    }
    fronts
}

/// NSGA-II's crowding distance of each member of `front` (a list of indices into `points`),
/// in `front`'s order: how much room a point has on its front, the sum over objectives of the
/// gap between its two neighbours divided by the front's range in that objective. NSGA-II
/// prefers the larger distance among points of one front, to keep the front spread out.
///
/// The two extreme points of each objective get `f64::INFINITY`; an objective in which the
/// whole front has one value (zero range) contributes nothing to any point, so it makes no
/// point a boundary. A front of at most two points is all infinite.
///
/// # Panics
/// If an index is out of range, or as [`non_dominated_sort`].
pub fn crowding_distance(points: &[Vec<f64>], front: &[usize]) -> Vec<f64> {
    let n = front.len();
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let members: Vec<Vec<f64>> = front.iter().map(|&i| points[i].clone()).collect();
    let m = objectives(&members);
    let mut distance = vec![0.0; n];
    let mut order: Vec<usize> = (0..n).collect();
    for column in (0..m).map(|k| members.iter().map(|p| p[k]).collect::<Vec<f64>>()) {
        // Stable, so ties keep `front`'s order and the result is deterministic.
        order.sort_by(|&a, &b| column[a].total_cmp(&column[b]));
        let range = column[order[n - 1]] - column[order[0]];
        if range.is_nan() || range <= 0.0 {
            continue;
        }
        distance[order[0]] = f64::INFINITY;
        distance[order[n - 1]] = f64::INFINITY;
        for w in order.windows(3) {
            distance[w[1]] += (column[w[2]] - column[w[0]]) / range;
        }
    }
    distance
}

/// The hypervolume of `points` with respect to `reference`: the exact volume of the region that
/// some point dominates and that dominates the reference (all objectives maximised, so each
/// point contributes the box between it and the reference). The usual single number for the
/// quality of a Pareto front: larger is better, and adding points never lowers it.
///
/// Points that are not strictly better than the reference in every objective lie outside the
/// measured region and are ignored; equal points count once. No points give 0.
///
/// Exact for 1, 2 (sort and sweep, O(n log n)) and 3 objectives (a sweep over the third
/// keeping the 2-D front, O(n²)).
///
/// # Errors
/// An empty reference or one with more than 3 objectives, a point whose length differs from the
/// reference's, or a value (in a point or the reference) that is not finite.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> Result<f64> {
    let m = reference.len();
    if m == 0 {
        return Err(Error::invalid(
            "hypervolume: the reference point is empty; give one value per objective",
        ));
    }
    if m > 3 {
        return Err(Error::invalid(format!(
            "hypervolume: the reference point has {m} objectives, but the exact hypervolume \
             is implemented for 1 to 3 objectives only"
        )));
    }
    if let Some(v) = reference.iter().find(|v| !v.is_finite()) {
        return Err(Error::invalid(format!(
            "hypervolume: the reference point holds {v}; every value must be a finite number"
        )));
    }
    let mut boxes = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        if p.len() != m {
            return Err(Error::invalid(format!(
                "hypervolume: point {i} has {} objectives but the reference point has {m}",
                p.len()
            )));
        }
        if let Some(v) = p.iter().find(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "hypervolume: point {i} holds {v}; every value must be a finite number"
            )));
        }
        // The box's extent from the reference, kept only when it has volume.
        let mut extent = [0.0; 3];
        for (e, (x, r)) in extent.iter_mut().zip(p.iter().zip(reference)) {
            *e = x - r;
        }
        if extent[..m].iter().all(|&e| e > 0.0) {
            boxes.push(extent);
        }
    }
    Ok(match m {
        1 => boxes.iter().map(|b| b[0]).fold(0.0, f64::max),
        2 => area_2d(&mut boxes),
        _ => volume_3d(&mut boxes),
    })
}

/// The number of objectives of `points` (0 for no points), checking they all agree.
fn objectives(points: &[Vec<f64>]) -> usize {
    let Some(first) = points.first() else {
        return 0;
    };
    let m = first.len();
    assert!(m >= 1, "pareto: point 0 has no objectives");
    for (i, p) in points.iter().enumerate() {
        assert_eq!(
            p.len(),
            m,
            "pareto: point {i} has {} objectives but point 0 has {m}",
            p.len()
        );
    }
    m
}

/// Non-dominated sorting of two objectives in O(n log n) (fronts unsorted).
///
/// Points are visited best-first by (x, y), so every dominator of a point is visited before it.
/// Whether some member of front k dominates the point is then decided by the front's member
/// with the largest y so far (within a front, points with equal y are equal points), and it is
/// true for fronts 0..r and false from r on, r being the point's rank: if a member of front k+1
/// dominated it, so would that member's dominator in front k. A binary search finds r.
fn sort_2d(points: &[Vec<f64>], xy: impl Fn(&[f64]) -> (f64, f64)) -> Vec<Vec<usize>> {
    let keys: Vec<(f64, f64)> = points.iter().map(|p| xy(p)).collect();
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (keys[a], keys[b]);
        kb.0.total_cmp(&ka.0).then(kb.1.total_cmp(&ka.1))
    });
    let mut fronts: Vec<Vec<usize>> = Vec::new();
    // Per front, its member with the largest y so far: (y, x).
    let mut tops: Vec<(f64, f64)> = Vec::new();
    for i in order {
        let (x, y) = keys[i];
        let r = tops.partition_point(|&(ty, tx)| ty > y || (ty == y && tx > x));
        if r == fronts.len() {
            fronts.push(vec![i]);
            tops.push((y, x));
        } else {
            fronts[r].push(i);
            tops[r] = (y, x);
        }
    }
    fronts
}

/// Non-dominated sorting of any number of objectives (fronts unsorted): as [`sort_2d`], but the
/// test of a front checks its members one by one.
fn sort_general(points: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        points[b]
            .iter()
            .zip(&points[a])
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    let mut fronts: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let r = fronts.partition_point(|f| f.iter().any(|&j| dominates(&points[j], &points[i])));
        if r == fronts.len() {
            fronts.push(vec![i]);
        } else {
            fronts[r].push(i);
        }
    }
    fronts
}

/// The area of the union of boxes `[0, x] × [0, y]` (x, y > 0): sweep by decreasing x; a box
/// adds the strip above the highest y seen so far, as wide as itself.
fn area_2d(boxes: &mut [[f64; 3]]) -> f64 {
    boxes.sort_by(|a, b| b[0].total_cmp(&a[0]).then(b[1].total_cmp(&a[1])));
    let mut area = 0.0;
    let mut top = 0.0;
    for b in boxes.iter() {
        if b[1] > top {
            area += b[0] * (b[1] - top);
            top = b[1];
        }
    }
    area
}

/// The volume of the union of boxes `[0, x] × [0, y] × [0, z]` (all > 0): sweep by decreasing
/// z, keeping the 2-D front of the boxes seen so far and its area; each slab between two
/// successive z values has that area as its cross-section.
fn volume_3d(boxes: &mut [[f64; 3]]) -> f64 {
    boxes.sort_by(|a, b| b[2].total_cmp(&a[2]));
    let mut stairs = Staircase::default();
    let mut area = 0.0;
    let mut volume = 0.0;
    for (i, b) in boxes.iter().enumerate() {
        area += stairs.insert(b[0], b[1]);
        let below = boxes.get(i + 1).map_or(0.0, |next| next[2]);
        volume += area * (b[2] - below);
    }
    volume
}

/// The 2-D front of a set of boxes `[0, x] × [0, y]`: its corners with x strictly increasing and
/// y strictly decreasing.
#[derive(Default)]
struct Staircase {
    corners: Vec<(f64, f64)>,
}

impl Staircase {
    /// Adds the box `[0, x] × [0, y]` and returns the area it adds to the union (0 when a corner
    /// already covers it, an equal one included).
    fn insert(&mut self, x: f64, y: f64) -> f64 {
        let c = &self.corners;
        // The first corner at least as far right: the highest of those that could cover (x, y).
        let right = c.partition_point(|&(cx, _)| cx < x);
        if right < c.len() && c[right].1 >= y {
            return 0.0;
        }
        // Corners from `low` (the first at most as high) up to `beyond` (the first strictly
        // farther right) are covered by the new box and leave the staircase.
        let low = c.partition_point(|&(_, cy)| cy > y);
        let beyond = c.partition_point(|&(cx, _)| cx <= x);
        // Above the old staircase, between each removed corner and the previous corner, then
        // from the last removed corner to x above the first corner farther right.
        let mut added = 0.0;
        let mut left = if low > 0 { c[low - 1].0 } else { 0.0 };
        for &(cx, cy) in &c[low..beyond] {
            added += (cx - left) * (y - cy);
            left = cx;
        }
        let floor = c.get(beyond).map_or(0.0, |&(_, cy)| cy);
        added += (x - left) * (y - floor);
        self.corners.splice(low..beyond, [(x, y)]);
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Fronts by the definition: peel off the points no remaining point dominates.
    fn brute_force_sort(points: &[Vec<f64>]) -> Vec<Vec<usize>> {
        let mut left: Vec<usize> = (0..points.len()).collect();
        let mut fronts = Vec::new();
        while !left.is_empty() {
            let (f, rest): (Vec<usize>, Vec<usize>) = left
                .iter()
                .partition(|&&i| !left.iter().any(|&j| dominates(&points[j], &points[i])));
            fronts.push(f);
            left = rest;
        }
        fronts
    }

    /// The number of unit cells of the integer grid inside some box between `reference` and a
    /// point: the exact hypervolume when every coordinate is an integer.
    fn grid_count(points: &[Vec<f64>], reference: &[f64]) -> f64 {
        let hi: Vec<i64> = (0..reference.len())
            .map(|k| points.iter().map(|p| p[k] as i64).max().unwrap_or(0))
            .collect();
        let lo: Vec<i64> = reference.iter().map(|&r| r as i64).collect();
        let mut count = 0u64;
        let mut cell = lo.clone();
        if hi.iter().zip(&lo).any(|(h, l)| h <= l) {
            return 0.0;
        }
        loop {
            // The cell [c, c + 1) per objective is covered when c + 1 <= p everywhere.
            if points
                .iter()
                .any(|p| p.iter().zip(&cell).all(|(&v, &c)| (c + 1) as f64 <= v))
            {
                count += 1;
            }
            let mut k = 0;
            loop {
                if k == cell.len() {
                    return count as f64;
                }
                cell[k] += 1;
                if cell[k] < hi[k] {
                    break;
                }
                cell[k] = lo[k];
                k += 1;
            }
        }
    }

    /// `n` points of `m` integer objectives in `0..span`, many equal.
    fn random_points(rng: &mut Rng, n: usize, m: usize, span: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|_| (0..m).map(|_| rng.below(span) as f64).collect())
            .collect()
    }

    fn v(rows: &[&[f64]]) -> Vec<Vec<f64>> {
        rows.iter().map(|r| r.to_vec()).collect()
    }

    #[test]
    fn dominance_needs_no_worse_everywhere_and_better_somewhere() {
        assert!(dominates(&[2.0, 1.0], &[1.0, 1.0]));
        assert!(!dominates(&[1.0, 1.0], &[1.0, 1.0]));
        assert!(!dominates(&[2.0, 0.0], &[1.0, 1.0]));
        assert!(!dominates(&[1.0, 1.0], &[2.0, 1.0]));
        assert!(dominates(&[3.0], &[-1.0]));
        assert!(!dominates(&[f64::NAN, 2.0], &[1.0, 1.0]));
        assert!(!dominates(&[2.0, 2.0], &[f64::NAN, 1.0]));
    }

    #[test]
    fn fronts_of_a_hand_worked_set() {
        let points = v(&[
            &[1.0, 5.0], // 0: front 0
            &[2.0, 2.0], // 1: front 1 (3 dominates it)
            &[3.0, 3.0], // 2: front 0
            &[3.0, 3.0], // 3: equal to 2, front 0
            &[5.0, 1.0], // 4: front 0
            &[1.0, 1.0], // 5: front 2
            &[0.0, 5.0], // 6: front 1 (0 dominates it)
        ]);
        assert_eq!(
            non_dominated_sort(&points),
            vec![vec![0, 2, 3, 4], vec![1, 6], vec![5]]
        );
        assert_eq!(front(&points), vec![0, 2, 3, 4]);
        assert_eq!(non_dominated_sort(&[]), Vec::<Vec<usize>>::new());
        assert_eq!(front(&[]), Vec::<usize>::new());
        let one = v(&[&[3.0], &[1.0], &[3.0], &[2.0]]);
        assert_eq!(non_dominated_sort(&one), vec![vec![0, 2], vec![3], vec![1]]);
    }

    #[test]
    fn non_dominated_sort_matches_the_definition_on_random_sets() {
        let mut rng = Rng::new(201);
        for m in 1..=4 {
            for trial in 0..40 {
                let n = rng.below(60);
                // Small spans make ties and equal points common, large ones rare.
                let span = if trial % 2 == 0 { 5 } else { 1000 };
                let points = random_points(&mut rng, n, m, span);
                let mut expected = brute_force_sort(&points);
                for f in &mut expected {
                    f.sort_unstable();
                }
                assert_eq!(non_dominated_sort(&points), expected, "m={m} {points:?}");
                assert_eq!(
                    front(&points),
                    expected.first().cloned().unwrap_or_default()
                );
            }
        }
    }

    #[test]
    fn the_two_objective_sweep_agrees_with_the_general_sort() {
        let mut rng = Rng::new(7);
        for span in [3, 20, 100_000] {
            let points = random_points(&mut rng, 2000, 2, span);
            let sorted = |mut fronts: Vec<Vec<usize>>| {
                fronts.iter_mut().for_each(|f| f.sort_unstable());
                fronts
            };
            assert_eq!(
                sorted(sort_2d(&points, |p| (p[0], p[1]))),
                sorted(sort_general(&points))
            );
        }
    }

    #[test]
    fn hypervolume_of_hand_worked_sets() {
        let stairs = v(&[&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0]]);
        assert_eq!(hypervolume(&stairs, &[0.0, 0.0]).unwrap(), 6.0);
        // A dominated point and a repeated one add nothing.
        let mut more = stairs.clone();
        more.extend(v(&[&[1.0, 1.0], &[2.0, 2.0], &[3.0, 1.0]]));
        assert_eq!(hypervolume(&more, &[0.0, 0.0]).unwrap(), 6.0);
        // Points on or beyond the reference in some objective are ignored.
        more.extend(v(&[&[10.0, 0.0], &[-4.0, 10.0], &[10.0, -1.0]]));
        assert_eq!(hypervolume(&more, &[0.0, 0.0]).unwrap(), 6.0);
        assert_eq!(hypervolume(&stairs, &[1.0, 1.0]).unwrap(), 1.0);
        assert_eq!(hypervolume(&stairs, &[5.0, 5.0]).unwrap(), 0.0);
        // (accuracy, -params) with a reference of (85, -1.6e6).
        let mo = v(&[&[90.0, -1.0e6], &[93.0, -1.5e6]]);
        let hv = hypervolume(&mo, &[85.0, -1.6e6]).unwrap();
        assert!((hv - (5.0 * 0.6e6 + 3.0 * 0.1e6)).abs() < 1e-6, "{hv}");

        // Three boxes of volume 2 overlapping pairwise and all together in the unit cube:
        // 3 * 2 - 3 * 1 + 1.
        let cube = v(&[&[2.0, 1.0, 1.0], &[1.0, 2.0, 1.0], &[1.0, 1.0, 2.0]]);
        assert_eq!(hypervolume(&cube, &[0.0; 3]).unwrap(), 4.0);
        let mut twice = cube.clone();
        twice.extend(cube.clone());
        twice.push(vec![1.0, 1.0, 1.0]);
        twice.push(vec![5.0, 5.0, 0.0]);
        assert_eq!(hypervolume(&twice, &[0.0; 3]).unwrap(), 4.0);
        // One box, and a box inside a larger one.
        let nested = v(&[&[1.0, 2.0, 3.0], &[0.5, 1.0, 1.0]]);
        assert_eq!(hypervolume(&nested, &[0.0; 3]).unwrap(), 6.0);
        assert_eq!(hypervolume(&nested, &[-1.0, -1.0, -1.0]).unwrap(), 24.0);

        let line = v(&[&[3.0], &[7.5], &[7.5], &[-2.0]]);
        assert_eq!(hypervolume(&line, &[1.0]).unwrap(), 6.5);
        assert_eq!(hypervolume(&[], &[0.0, 0.0]).unwrap(), 0.0);
    }

    #[test]
    fn hypervolume_matches_a_grid_count_on_random_sets() {
        let mut rng = Rng::new(2020);
        for m in 1..=3 {
            for trial in 0..60 {
                let n = rng.below(25);
                let span = if trial % 3 == 0 { 4 } else { 12 };
                let points = random_points(&mut rng, n, m, span);
                let reference: Vec<f64> = (0..m).map(|_| rng.below(3) as f64 - 1.0).collect();
                let hv = hypervolume(&points, &reference).unwrap();
                let expected = grid_count(&points, &reference);
                assert_eq!(hv, expected, "m={m} ref={reference:?} {points:?}");
            }
        }
    }

    #[test]
    fn three_objective_hypervolume_handles_a_large_front() {
        // Points on the simplex x + y + z = 1 are all non-dominated; any order of insertion
        // must give the same volume, and every point must add to it.
        let mut rng = Rng::new(5);
        let points: Vec<Vec<f64>> = (0..500)
            .map(|_| {
                let (a, b) = (rng.next_f64(), rng.next_f64());
                let (a, b) = (a.min(b), a.max(b));
                vec![a, b - a, 1.0 - b]
            })
            .collect();
        let hv = hypervolume(&points, &[-0.1; 3]).unwrap();
        let mut shuffled = points.clone();
        rng.shuffle(&mut shuffled);
        let again = hypervolume(&shuffled, &[-0.1; 3]).unwrap();
        assert!((hv - again).abs() < 1e-12, "{hv} {again}");
        let without_one = hypervolume(&points[1..], &[-0.1; 3]).unwrap();
        assert!(without_one < hv);
        // At least any one point's box, at most the box of the ideal point (1, 1, 1).
        let largest_box = points
            .iter()
            .map(|p| p.iter().map(|x| x + 0.1).product::<f64>())
            .fold(0.0, f64::max);
        assert!(hv > largest_box && hv < 1.1f64.powi(3), "{hv}");
    }

    #[test]
    fn hypervolume_refuses_what_it_cannot_measure() {
        let four = v(&[&[1.0, 1.0, 1.0, 1.0]]);
        let err = hypervolume(&four, &[0.0; 4]).unwrap_err().to_string();
        assert!(
            err.contains("4 objectives") && err.contains("1 to 3"),
            "{err}"
        );
        let err = hypervolume(&v(&[&[1.0, 1.0], &[1.0, 1.0, 1.0]]), &[0.0, 0.0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("point 1 has 3 objectives"), "{err}");
        let err = hypervolume(&v(&[&[1.0, f64::NAN]]), &[0.0, 0.0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("point 0") && err.contains("NaN"), "{err}");
        let err = hypervolume(&v(&[&[1.0, 1.0]]), &[0.0, f64::NEG_INFINITY])
            .unwrap_err()
            .to_string();
        assert!(err.contains("reference") && err.contains("inf"), "{err}");
        assert!(hypervolume(&[], &[]).is_err());
        assert!(hypervolume(&[], &[0.0; 5]).is_err());
    }

    #[test]
    fn crowding_distance_of_a_hand_worked_front() {
        let points = v(&[
            &[0.0, 5.0],
            &[1.0, 3.0],
            &[3.0, 2.0],
            &[5.0, 0.0],
            &[9.0, 9.0],
        ]);
        // Given out of order; 4 is not in the front and must not matter.
        let d = crowding_distance(&points, &[2, 0, 3, 1]);
        // Point 2: (5 - 1) / 5 + (3 - 0) / 5; point 1: (3 - 0) / 5 + (5 - 2) / 5.
        assert!((d[0] - 1.4).abs() < 1e-12, "{d:?}");
        assert!(d[1].is_infinite() && d[2].is_infinite());
        assert!((d[3] - 1.2).abs() < 1e-12, "{d:?}");

        // The second objective is constant: it contributes nothing and marks no boundary.
        let flat = v(&[&[0.0, 1.0], &[1.0, 1.0], &[4.0, 1.0]]);
        assert_eq!(
            crowding_distance(&flat, &[0, 1, 2]),
            vec![f64::INFINITY, 1.0, f64::INFINITY]
        );
        let same = v(&[&[2.0, 2.0], &[2.0, 2.0], &[2.0, 2.0]]);
        assert_eq!(crowding_distance(&same, &[0, 1, 2]), vec![0.0; 3]);
        assert_eq!(crowding_distance(&points, &[1, 4]), vec![f64::INFINITY; 2]);
        assert_eq!(crowding_distance(&points, &[3]), vec![f64::INFINITY]);
        assert!(crowding_distance(&points, &[]).is_empty());
    }

    #[test]
    fn constrained_sort_puts_feasible_fronts_first_then_violations_in_order() {
        let points = v(&[
            &[1.0, 1.0], // 0: feasible, dominated by 4
            &[9.0, 9.0], // 1: violation 2
            &[0.0, 3.0], // 2: feasible, front 0
            &[8.0, 8.0], // 3: violation 1
            &[2.0, 2.0], // 4: feasible (violation -1), front 0
            &[1.0, 1.0], // 5: violation 2
            &[5.0, 5.0], // 6: violation 0.5
            &[0.0, 0.0], // 7: violation exactly 0, feasible, dominated by 0
        ]);
        let violations = [0.0, 2.0, 0.0, 1.0, -1.0, 2.0, 0.5, 0.0];
        assert_eq!(
            constrained_sort(&points, &violations),
            vec![vec![2, 4], vec![0], vec![7], vec![6], vec![3], vec![1, 5]]
        );
        // With no violations it is the plain sort.
        let mut rng = Rng::new(11);
        let points = random_points(&mut rng, 50, 2, 6);
        assert_eq!(
            constrained_sort(&points, &[0.0; 50]),
            non_dominated_sort(&points)
        );
        let all_bad = constrained_sort(&points[..3], &[3.0, 1.0, 3.0]);
        assert_eq!(all_bad, vec![vec![1], vec![0, 2]]);
    }

    #[test]
    #[should_panic(expected = "point 1 has 3 objectives")]
    fn sorting_points_of_different_lengths_is_a_bug() {
        non_dominated_sort(&v(&[&[1.0, 2.0], &[1.0, 2.0, 3.0]]));
    }
}
