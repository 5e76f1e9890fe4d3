//! Dense prediction. On the golden checkpoint (random weights) the readout is checked against the
//! session's own restricted logits: a label's token score is the mean of its ids' logits. With the
//! trained tiny model (models/tiny, when present) the three tasks run on its sample image.
use common::tensor;
use densemllm::{Alignment, ComputeType, DenseParams, DenseTask, Image, Model, ModelParams, SessionParams, Status};

mod common;

fn golden_image() -> Image {
    let rgb = tensor(&common::fixture("golden/one_window/golden.safetensors"), "image_rgb");
    Image::from_rgb(&rgb.bytes, rgb.shape[1] as i32, rgb.shape[0] as i32).unwrap()
}

#[test]
fn token_scores_are_the_mean_label_logits() {
    let dir = common::model_dir("dense_golden", "one_window", true);
    let model = Model::load_with(&dir, ModelParams::default().compute(ComputeType::F32)).unwrap();
    let image = golden_image();
    let mut s = model.session(&SessionParams::default().n_threads(2)).unwrap();
    // Three labels: {5}, {17, 42}, {99}; the plain argmax (the default is the profile's CRF).
    let ids = vec![5, 17, 42, 99];
    let params = DenseParams::semantic_ids(ids.clone(), vec![0, 1, 3, 4])
        .alignment(Alignment::Own)
        .keep_token_scores(true)
        .evaluation(false);
    let r = s.predict_dense(&image, &params).unwrap();
    assert_eq!(r.task, DenseTask::Semantic);
    assert_eq!((r.width, r.height, r.n_labels, r.n_scores), (image.width(), image.height(), 3, 3));
    assert_eq!(r.labels.len(), (r.width * r.height) as usize);
    assert!(r.labels.iter().all(|&l| l < 3));
    assert!(r.confidence.is_none() && r.depth_m.is_none() && r.depth_grid.is_none());
    assert!(!r.reused_prefix);

    let logits = s.image_logits(Alignment::Own, &ids).unwrap();
    let scores = r.token_scores.as_ref().unwrap();
    assert_eq!(logits.rows, (r.tokens_w * r.tokens_h) as usize);
    for t in 0..logits.rows {
        let l = logits.row(t);
        let want = [l[0], (l[1] + l[2]) / 2.0, l[3]];
        for k in 0..3 {
            assert!((scores[t * 3 + k] - want[k]).abs() <= 1e-5 * want[k].abs().max(1.0), "token {t} label {k}");
        }
    }
    // The label of a token whose scores are clearly apart is its argmax: check at the pixel at
    // the centre of each token cell (bilinear upsampling keeps the argmax there when the margin
    // is large against the neighbours' influence, so only clear-cut tokens are compared).
    let (cell_w, cell_h) = (r.width as f32 / r.tokens_w as f32, r.height as f32 / r.tokens_h as f32);
    let mut compared = 0;
    for ty in 0..r.tokens_h as usize {
        for tx in 0..r.tokens_w as usize {
            let t = ty * r.tokens_w as usize + tx;
            let sc = &scores[t * 3..t * 3 + 3];
            let best = (0..3).max_by(|&a, &b| sc[a].total_cmp(&sc[b])).unwrap();
            let margin = (0..3).filter(|&k| k != best).map(|k| sc[best] - sc[k]).fold(f32::MAX, f32::min);
            let spread = scores.iter().fold(0f32, |m, v| m.max(v.abs()));
            if margin < 0.5 * spread {
                continue;
            }
            let (x, y) = (((tx as f32 + 0.5) * cell_w) as usize, ((ty as f32 + 0.5) * cell_h) as usize);
            assert_eq!(r.labels[y * r.width as usize + x] as usize, best, "token ({tx}, {ty})");
            compared += 1;
        }
    }
    println!("{compared} clear-cut tokens compared");

    // Encode once, query many: the same image again reuses the prefix.
    let again = s.predict_dense(&image, &DenseParams::semantic_ids(ids, vec![0, 2, 4]).evaluation(true)).unwrap();
    assert!(again.reused_prefix);
    assert_eq!((again.seconds_encode, again.seconds_prefill), (0.0, 0.0));
    let confidence = again.confidence.unwrap();
    assert!(confidence.iter().all(|&c| (0.5..=1.0).contains(&c)), "2 labels: the chosen one has p >= 0.5");

    // Bad offsets are refused before the call; a bad id by the library.
    let err = s.predict_dense(&image, &DenseParams::semantic_ids(vec![5], vec![0, 2])).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument);
    let err = s.predict_dense(&image, &DenseParams::semantic_ids(vec![100_000], vec![0, 1])).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument, "{err}");
}

/// The "classes" array of training.json (a list of strings).
fn training_classes(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("training.json")).unwrap();
    let start = text.find("\"classes\"").expect("training.json has no \"classes\"");
    let open = start + text[start..].find('[').unwrap() + 1;
    let close = open + text[open..].find(']').unwrap();
    text[open..close].split(',').map(|s| s.trim().trim_matches('"').to_owned()).filter(|s| !s.is_empty()).collect()
}

#[test]
fn tiny_model_dense_prediction() {
    let Some(dir) = common::tiny_model() else { return };
    let model = Model::load(&dir).unwrap();
    let image = Image::load(dir.join("sample.png")).unwrap();
    let mut s = model.session(&SessionParams::default()).unwrap();
    let classes = training_classes(&dir);
    assert!(!classes.is_empty());
    let seg = s.predict_dense(&image, &DenseParams::semantic(&classes).keep_token_scores(true)).unwrap();
    assert_eq!((seg.width, seg.height, seg.n_labels as usize), (image.width(), image.height(), classes.len()));
    assert!(seg.labels.iter().all(|&l| (l as usize) < classes.len()));
    // Every label value is named, so an overlay needs no names counted again (issue 21, item 3).
    let named: Vec<Option<String>> = seg.classes.iter().map(|c| Some(c.name.clone())).collect();
    assert_eq!((seg.label_names.as_ref(), seg.background_label), (Some(&named), None));
    let with_bg = s.predict_dense(&image, &DenseParams::semantic(&classes).background(true)).unwrap();
    let mut want: Vec<Option<String>> = with_bg.classes.iter().map(|c| Some(c.name.clone())).collect();
    want.push(Some("background".to_owned()));
    assert_eq!(with_bg.n_labels as usize, want.len());
    assert_eq!((with_bg.label_names, with_bg.background_label), (Some(want), Some(with_bg.classes.len() as u16)));
    let text = densemllm::mask_text_write(&seg.labels, seg.width, seg.height, seg.n_labels, Some(&classes)).unwrap();
    assert_eq!(densemllm::mask_text_parse(&text, seg.width, seg.height).unwrap().labels, seg.labels);

    let fg = s.predict_dense(&image, &DenseParams::fgbg()).unwrap();
    assert!(fg.reused_prefix, "the second query on the same image reuses the prefix");
    assert_eq!(fg.n_labels, 2);
    let fgbg_names = Some(vec![Some("background".to_owned()), Some("foreground".to_owned())]);
    assert_eq!((fg.label_names.clone(), fg.background_label), (fgbg_names, Some(0)));
    assert!(fg.labels.iter().all(|&l| l < 2));

    let depth = s.predict_dense(&image, &DenseParams::depth()).unwrap();
    let metres = depth.depth_m.as_ref().unwrap();
    assert_eq!(metres.len(), (depth.width * depth.height) as usize);
    assert!(metres.iter().all(|d| d.is_finite() && *d > 0.0));
    assert_eq!((depth.label_names.as_ref(), depth.background_label), (None, None));
    let grid = depth.depth_grid.as_ref().unwrap();
    assert!(grid.width > 0 && grid.height > 0);
    assert_eq!(grid.bins.len(), (grid.width * grid.height) as usize);
}
