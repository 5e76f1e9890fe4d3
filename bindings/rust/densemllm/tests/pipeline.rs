//! Box-prompted segmentation. The golden checkpoint's vocabulary (600) holds no <FG>/<BG> of the
//! fixture tokenizer (604, 605), so there the calls must fail cleanly naming the problem; the
//! trained tiny model (models/tiny, when present) runs them for real.
use common::tensor;
use densemllm::{ComputeType, CropParams, GenerateParams, Image, Model, ModelParams, SessionParams, Status};

mod common;

fn golden_image() -> Image {
    let rgb = tensor(&common::fixture("golden/one_window/golden.safetensors"), "image_rgb");
    Image::from_rgb(&rgb.bytes, rgb.shape[1] as i32, rgb.shape[0] as i32).unwrap()
}

#[test]
fn crop_params_and_missing_fg_bg_tokens() {
    let dir = common::model_dir("pipeline_golden", "one_window", true);
    let model = Model::load_with(&dir, ModelParams::default().compute(ComputeType::F32)).unwrap();
    let image = golden_image();
    let mut s = model.session(&SessionParams::default().n_threads(2)).unwrap();
    let err = s.segment_box(&image, [10, 10, 100, 100], &CropParams::default().padding(0.5)).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument);
    assert!(err.message().contains("padding"), "{err}");
    let err = s.segment_box(&image, [10, 10, 100, 100], &CropParams::default().short_side(8)).unwrap_err();
    assert!(err.message().contains("short side 8"), "{err}");
    let err = s.segment_box(&image, [100, 10, 10, 100], &CropParams::default()).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument, "an empty box: {err}");
    // A valid request on a checkpoint whose vocabulary lacks the FG/BG tokens.
    let err = s.segment_box(&image, [10, 10, 100, 100], &CropParams::default()).unwrap_err();
    assert_eq!(err.status(), Status::Unsupported, "{err}");
    assert!(err.message().contains("<BG>") || err.message().contains("<FG>"), "{err}");
    // The random answers usually hold no box: then nothing is segmented, no FG/BG is read, and
    // the result is empty (its free function once freed uninitialised fields here).
    let short = CropParams::default().generate(GenerateParams::default().max_new_tokens(4));
    match s.openset_segment(&image, &["cat"], &short) {
        Ok(r) => assert!(r.labels.iter().all(|&l| l == 0) && r.names.is_empty() && r.regions.regions.is_empty()),
        Err(e) => assert_eq!(e.status(), Status::Unsupported, "{e}"),
    }
    match s.refer_segment(&image, "the cat", &short) {
        Ok(r) => {
            assert!(!r.found && !r.message.is_empty() && r.mask.iter().all(|&m| m == 0), "{r:?}");
            assert_eq!(r.bbox, [0; 4]);
        }
        Err(e) => assert_eq!(e.status(), Status::Unsupported, "{e}"),
    }
}

#[test]
fn tiny_model_box_prompted_segmentation() {
    let Some(dir) = common::tiny_model() else { return };
    let model = Model::load(&dir).unwrap();
    let image = Image::load(dir.join("sample.png")).unwrap();
    let mut s = model.session(&SessionParams::default()).unwrap();
    let (w, h) = (image.width(), image.height());
    let bbox = [w / 4, h / 4, 3 * w / 4, 3 * h / 4];
    let mask = s.segment_box(&image, bbox, &CropParams::default()).unwrap();
    assert_eq!(mask.len(), (w * h) as usize);
    // The foreground is pasted inside the padded box only (padding 1.2 about the centre).
    for (i, &m) in mask.iter().enumerate() {
        let (x, y) = ((i as i32) % w, (i as i32) / w);
        assert!(m <= 1);
        if m == 1 {
            assert!(
                x >= w / 4 - w / 10 - 1
                    && x <= 3 * w / 4 + w / 10 + 1
                    && y >= h / 4 - h / 10 - 1
                    && y <= 3 * h / 4 + h / 10 + 1
            );
        }
    }
    let refer = s.refer_segment(&image, "the object in the middle", &CropParams::default()).unwrap();
    assert_eq!((refer.width, refer.height, refer.mask.len()), (w, h, (w * h) as usize));
    assert!(refer.found || !refer.message.is_empty());
    let openset = s.openset_segment::<&str>(&image, &[], &CropParams::default()).unwrap();
    assert_eq!(openset.labels.len(), (w * h) as usize);
    assert!(openset.labels.iter().all(|&l| (l as usize) <= openset.names.len()));
}
