//! Semantic segmentation and depth of one image, written as PNGs:
//!
//!     cargo run --example dense -- MODEL_DIR IMAGE OUT_PREFIX cat,grass,sky
//!
//! writes OUT_PREFIX-labels.png, OUT_PREFIX-overlay.png and OUT_PREFIX-depth.png. The second
//! query reuses the image prefix the first one encoded.
use densemllm::{DenseParams, Image, Model, SessionParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, image_path, prefix, classes] = args.as_slice() else {
        return Err("usage: dense MODEL_DIR IMAGE OUT_PREFIX class,class,...".into());
    };
    let classes: Vec<&str> = classes.split(',').collect();
    let model = Model::load(model_dir)?;
    let mut session = model.session(&SessionParams::default())?;
    let image = Image::load(image_path)?;

    let seg = session.predict_dense(&image, &DenseParams::semantic(&classes))?;
    densemllm::write_label_png(format!("{prefix}-labels.png"), &seg.labels, seg.width, seg.height, seg.n_labels)?;
    densemllm::write_overlay_png(
        format!("{prefix}-overlay.png"),
        &image,
        &seg.labels,
        seg.n_labels,
        Some(&classes),
        0.5,
    )?;
    println!("segmentation: {:.3} s readout, {:.3} s encode", seg.seconds_readout, seg.seconds_encode);

    let depth = session.predict_dense(&image, &DenseParams::depth())?;
    let metres = depth.depth_m.as_deref().ok_or("no depth map")?;
    densemllm::write_depth_color_png(format!("{prefix}-depth.png"), metres, depth.width, depth.height, 0.0, 0.0)?;
    println!("depth: prefix reused: {}", depth.reused_prefix);
    Ok(())
}
