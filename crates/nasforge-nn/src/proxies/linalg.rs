//! The two small dense routines the proxies need, on `n × n` row-major float64 matrices.

/// log |det a| by LU with partial pivoting; `-inf` when `a` is singular (a zero pivot).
pub fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    assert_eq!(a.len(), n * n);
    let mut log_det = 0.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&r, &s| a[r * n + col].abs().total_cmp(&a[s * n + col].abs()))
            .expect("col < n");
        let p = a[pivot * n + col];
        if p == 0.0 {
            return f64::NEG_INFINITY;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
        }
        log_det += p.abs().ln();
        for r in col + 1..n {
            let f = a[r * n + col] / p;
            if f != 0.0 {
                for k in col..n {
                    a[r * n + k] -= f * a[col * n + k];
                }
            }
        }
    }
    log_det
}

/// The eigenvalues of the symmetric matrix `a` (cyclic Jacobi rotations), ascending.
pub fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    assert_eq!(a.len(), n * n);
    let scale: f64 = a
        .iter()
        .map(|v| v * v)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-14 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut ev: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    ev.sort_by(f64::total_cmp);
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn determinant_and_eigenvalues_of_known_matrices() {
        // [[4, 1], [1, 3]]: det 11, eigenvalues (7 ± √5) / 2.
        let a = vec![4.0, 1.0, 1.0, 3.0];
        assert!((log_abs_det(a.clone(), 2) - 11f64.ln()).abs() < 1e-12);
        let ev = symmetric_eigenvalues(a, 2);
        let r5 = 5f64.sqrt();
        assert!((ev[0] - (7.0 - r5) / 2.0).abs() < 1e-12, "{ev:?}");
        assert!((ev[1] - (7.0 + r5) / 2.0).abs() < 1e-12, "{ev:?}");
        // A needs a row swap; det = -(2*1*... ) check |det| of a permuted diagonal.
        let b = vec![0.0, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 5.0];
        assert!((log_abs_det(b, 3) - 30f64.ln()).abs() < 1e-12);
        // Two equal rows: singular.
        let c = vec![2.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 3.0];
        assert_eq!(log_abs_det(c, 3), f64::NEG_INFINITY);
        // 3x3 with known spectrum {1, 2, 4}: Q diag Qᵀ for a rotation about z by 30°.
        let (cs, sn) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let q = [cs, -sn, 0.0, sn, cs, 0.0, 0.0, 0.0, 1.0];
        let d = [1.0, 2.0, 4.0];
        let m: Vec<f64> = (0..9)
            .map(|ij| {
                (0..3)
                    .map(|k| q[(ij / 3) * 3 + k] * d[k] * q[(ij % 3) * 3 + k])
                    .sum()
            })
            .collect();
        let ev = symmetric_eigenvalues(m, 3);
        for (e, want) in ev.iter().zip([1.0, 2.0, 4.0]) {
            assert!((e - want).abs() < 1e-12, "{ev:?}");
        }
    }
}
