//! Bilinear resizing of image rows, for resolution scaling (`nasforge scale --resolutions`).
//! Half-pixel centres without antialiasing, as PyTorch's
//! `F.interpolate(mode="bilinear", align_corners=False)` and ONNX `Resize` (linear,
//! `half_pixel`) compute it.

use super::Dataset;
use nasforge_core::{Error, Result};

/// For each output position along an axis of `from` → `to` values: the two input positions it
/// reads and the weight of the second.
fn taps(from: usize, to: usize) -> Vec<(usize, usize, f32)> {
    let scale = from as f64 / to as f64;
    (0..to)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let lo = (src.floor() as usize).min(from - 1);
            let hi = (lo + 1).min(from - 1);
            (lo, hi, (src - lo as f64) as f32)
        })
        .collect()
}

/// Resizes every `[c, h, w]` plane of `rows` (row-major rows of `c·h·w` values) to `oh × ow`.
pub fn bilinear(rows: &[f32], [c, h, w]: [usize; 3], [oh, ow]: [usize; 2]) -> Vec<f32> {
    let (ty, tx) = (taps(h, oh), taps(w, ow));
    let mut out = Vec::with_capacity(rows.len() / (h * w).max(1) * oh * ow);
    for plane in rows.chunks_exact(h * w) {
        for &(y0, y1, fy) in &ty {
            let (r0, r1) = (&plane[y0 * w..(y0 + 1) * w], &plane[y1 * w..(y1 + 1) * w]);
            for &(x0, x1, fx) in &tx {
                let top = r0[x0] + (r0[x1] - r0[x0]) * fx;
                let bottom = r1[x0] + (r1[x1] - r1[x0]) * fx;
                out.push(top + (bottom - top) * fy);
            }
        }
    }
    debug_assert_eq!(out.len() % (c * oh * ow).max(1), 0);
    out
}

impl Dataset {
    /// The same rows with every image resized to `h × w` (bilinear); an error for data that is
    /// not images or an empty size.
    pub fn resized(&self, [h, w]: [usize; 2]) -> Result<Dataset> {
        let &[c, ih, iw] = self.shape.as_slice() else {
            return Err(Error::invalid(format!(
                "{}: rows of shape {:?} are not images; only image data has a resolution to scale",
                self.source, self.shape
            )));
        };
        if h == 0 || w == 0 {
            return Err(Error::invalid(format!(
                "cannot resize {}'s {ih}x{iw} images to {h}x{w}",
                self.source
            )));
        }
        Ok(Dataset {
            features: bilinear(&self.features, [c, ih, iw], [h, w]),
            shape: vec![c, h, w],
            targets: self.targets.clone(),
            feature_names: Vec::new(),
            source: self.source.clone(),
            target_scale: self.target_scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matches_half_pixel_references() {
        // torch.nn.functional.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False)
        // on [[1, 2], [3, 4]]:
        let up = bilinear(&[1.0, 2.0, 3.0, 4.0], [1, 2, 2], [4, 4]);
        let expected = [
            1.0, 1.25, 1.75, 2.0, //
            1.5, 1.75, 2.25, 2.5, //
            2.5, 2.75, 3.25, 3.5, //
            3.0, 3.25, 3.75, 4.0,
        ];
        assert_eq!(up, expected);
        // Same size is the identity; halving averages 2×2 blocks (PyTorch: 2.5, 4.5, 10.5,
        // 12.5, 18.5, ...); two channels are resized plane by plane.
        let x: Vec<f32> = (0..2 * 2 * 4 * 4).map(|v| v as f32).collect();
        assert_eq!(bilinear(&x, [2, 4, 4], [4, 4]), x);
        let down = bilinear(&x, [2, 4, 4], [2, 2]);
        assert_eq!(down.len(), 2 * 2 * 4);
        assert_eq!(&down[..4], &[2.5, 4.5, 10.5, 12.5]);
        assert_eq!(down[4..8], [18.5, 20.5, 26.5, 28.5]);
        // A non-integer factor (PyTorch gives 0, 4, 10, 16, 20).
        let odd = bilinear(&[0.0, 10.0, 20.0], [1, 1, 3], [1, 5]);
        assert_eq!(odd, [0.0, 4.0, 10.0, 16.0, 20.0]);
    }
}
