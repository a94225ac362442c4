//! Image folders: one subfolder per class, PNG or JPEG files inside.

use super::{Dataset, Targets};
use nasforge_core::{Error, Result};
use std::path::Path;

/// Reads `root/<class>/<image>` files. All images must share one size, or `resize`
/// (`[H, W, C]`) gives the size and channel count to convert them to.
pub fn load_image_folder(root: &Path, resize: Option<[usize; 3]>) -> Result<Dataset> {
    let mut classes: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::invalid(format!(
            "{}: an image folder needs one subfolder per class (e.g. {0}/cat/1.png); found none",
            root.display()
        )));
    }
    let mut features = Vec::new();
    let mut ids = Vec::new();
    let mut shape: Option<[usize; 3]> = resize;
    for (id, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
            })
            .collect();
        files.sort();
        for f in files {
            let img = image::open(&f).map_err(|e| {
                Error::invalid(format!("{}: cannot read the image: {e}", f.display()))
            })?;
            let [h, w, c] = *shape.get_or_insert([
                img.height() as usize,
                img.width() as usize,
                if img.color().has_color() { 3 } else { 1 },
            ]);
            let img = if img.height() as usize != h || img.width() as usize != w {
                if resize.is_none() {
                    return Err(Error::invalid(format!(
                        "{}: is {}x{} but earlier images are {h}x{w}; make them one size or pass --image {h}x{w}x{c} to resize",
                        f.display(),
                        img.height(),
                        img.width()
                    )));
                }
                img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle)
            } else {
                img
            };
            let pixels: Vec<f32> = match c {
                1 => img
                    .to_luma8()
                    .into_raw()
                    .into_iter()
                    .map(f32::from)
                    .collect(),
                3 => img
                    .to_rgb8()
                    .into_raw()
                    .into_iter()
                    .map(f32::from)
                    .collect(),
                _ => {
                    return Err(Error::invalid(
                        "--image for an image folder must have 1 or 3 channels",
                    ))
                }
            };
            features.extend(super::csv::hwc_to_chw(&pixels, h, w, c));
            ids.push(id as u32);
        }
    }
    let Some([h, w, c]) = shape else {
        return Err(Error::invalid(format!(
            "{}: the class folders hold no PNG or JPEG files",
            root.display()
        )));
    };
    if ids.is_empty() {
        return Err(Error::invalid(format!(
            "{}: the class folders hold no PNG or JPEG files",
            root.display()
        )));
    }
    Ok(Dataset {
        features,
        shape: vec![c, h, w],
        targets: Targets::Classes {
            ids,
            names: classes,
        },
        feature_names: Vec::new(),
        source: root.display().to_string(),
        target_scale: None,
    })
}
