//! Output files and dense text: VOC colours, PNGs read back through the decoder, the official
//! mask text (docs/metrics.md 3.4 parser vectors).
use densemllm::{Image, Status, label_color, mask_text_parse, mask_text_write, overlay_color};

mod common;

#[test]
fn voc_palette() {
    // The PASCAL VOC colour map: black, then bit-interleaved (128,0,0), (0,128,0), ...
    let want = [
        [0, 0, 0],
        [128, 0, 0],
        [0, 128, 0],
        [128, 128, 0],
        [0, 0, 128],
        [128, 0, 128],
        [0, 128, 128],
        [128, 128, 128],
        [64, 0, 0],
    ];
    for (label, rgb) in want.iter().enumerate() {
        assert_eq!(label_color(label as i32).unwrap(), *rgb, "label {label}");
    }
    assert_eq!(label_color(1 << 24).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(label_color(-1).unwrap_err().status(), Status::InvalidArgument);
}

#[test]
fn label_png_decodes_to_the_palette() {
    let dir = common::temp_dir("outputs_label");
    let path = dir.join("labels.png");
    let labels: Vec<u16> = (0..12).map(|i| (i % 5) as u16).collect();
    densemllm::write_label_png(&path, &labels, 4, 3, 5).unwrap();
    let image = Image::load(&path).unwrap();
    assert_eq!((image.width(), image.height()), (4, 3));
    for (i, px) in image.pixels().chunks(3).enumerate() {
        assert_eq!(px, label_color(labels[i] as i32).unwrap(), "pixel {i}");
    }
    let err = densemllm::write_label_png(&path, &labels, 4, 3, 4).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument, "label 4 with n_labels 4: {err}");
}

#[test]
fn overlay_blends_toward_the_label_colour() {
    let dir = common::temp_dir("outputs_overlay");
    // 64 x 48 gray image, label 1 everywhere: alpha 1 paints its overlay colour; the legend is in a
    // panel right of the image.
    let (w, h) = (64, 48);
    let image = Image::from_rgb(&vec![100u8; (w * h * 3) as usize], w, h).unwrap();
    let labels = vec![1u16; (w * h) as usize];
    let path = dir.join("overlay.png");
    densemllm::write_overlay_png(&path, &image, &labels, 2, Some(&["sky", "cat"]), 1.0).unwrap();
    let out = Image::load(&path).unwrap();
    assert!(out.width() > w && out.height() == h);
    let corner = ((h - 1) * out.width() + (w - 1)) as usize * 3; // the image's bottom right
    assert_eq!(&out.pixels()[corner..corner + 3], &overlay_color(1).unwrap());
    assert_ne!(overlay_color(0).unwrap(), [0, 0, 0]);
    densemllm::write_overlay_png::<&str>(&path, &image, &labels, 2, None, 0.0).unwrap();
    let out = Image::load(&path).unwrap();
    assert_eq!(&out.pixels()[corner..corner + 3], &[100, 100, 100]);
    let err = densemllm::write_overlay_png(&path, &image, &labels, 2, Some(&["only one"]), 0.5).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument, "{err}");
}

#[test]
fn depth_and_pca_pngs() {
    let dir = common::temp_dir("outputs_depth");
    let depth: Vec<f32> = (0..20).map(|i| 0.5 + i as f32 * 0.25).collect();
    densemllm::write_depth_png16(dir.join("d16.png"), &depth, 5, 4, 0.0).unwrap();
    densemllm::write_depth_color_png(dir.join("dc.png"), &depth, 5, 4, 0.5, 5.25).unwrap();
    let colour = Image::load(dir.join("dc.png")).unwrap();
    // t = 0 is the first stop (pale yellow), t = 1 the last (navy).
    assert_eq!(&colour.pixels()[..3], &[252, 236, 140]);
    assert_eq!(&colour.pixels()[19 * 3..], &[25, 30, 95]);
    assert_eq!(Image::load(dir.join("d16.png")).unwrap().width(), 5);
    assert_eq!(
        densemllm::write_depth_color_png(dir.join("bad.png"), &depth, 5, 4, 3.0, 2.0).unwrap_err().status(),
        Status::InvalidArgument
    );
    assert!(!dir.join("bad.png").exists());
    let features: Vec<f32> = (0..4 * 6).map(|i| ((i * 7) % 5) as f32).collect();
    densemllm::write_pca_png(dir.join("pca.png"), &features, 4, 6, 2, 2, 8, 8).unwrap();
    let pca = Image::load(dir.join("pca.png")).unwrap();
    assert_eq!((pca.width(), pca.height()), (8, 8));
}

#[test]
fn mask_text_round_trip() {
    // docs/metrics.md 3.4: the demo's text and its map.
    let text = "<ref>wall</ref><ref>floor</ref><mask>(0,3)(1,2)(0,1)</mask>";
    let parsed = mask_text_parse(text, 3, 2).unwrap();
    assert_eq!(parsed.labels, [0, 0, 0, 1, 1, 0]);
    assert_eq!(parsed.names, ["wall", "floor"]);
    assert!(!parsed.has_depth_tag);
    assert_eq!(mask_text_write(&parsed.labels, 3, 2, 2, Some(&parsed.names)).unwrap(), text);
    assert_eq!(mask_text_write::<&str>(&[2, 2, 2, 7], 2, 2, 8, None).unwrap(), "<mask>(2,3)(7,1)</mask>");
    let err = mask_text_write::<&str>(&[2, 2, 2, 7], 2, 2, 7, None).unwrap_err();
    assert!(err.message().contains("label 7"), "{err}");
    let depth = mask_text_parse("<depth><mask>(5,4)</mask>", 2, 2).unwrap();
    assert!(depth.has_depth_tag && depth.names.is_empty() && depth.labels == [5; 4]);
    let err = mask_text_parse("<mask>(0,3)</mask>", 2, 2).unwrap_err();
    assert_eq!(err.status(), Status::Format);
    assert!(err.message().contains("offset") || err.message().contains("byte"), "{err}");
}
