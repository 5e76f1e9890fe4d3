//! A session on the one_window golden checkpoint against the PyTorch reference's outputs
//! (tests/fixtures/golden/README.md: f32 tolerance max|c - ref| / max|ref| <= 1e-4): every
//! intermediate result, greedy generation, progress and abort, and sharing a model across threads.
use common::{rel_diff, tensor};
use densemllm::{
    Alignment, ComputeType, GenerateParams, Image, Model, ModelParams, ResizeMode, Session, SessionParams, Status,
    StopReason, WeightsType,
};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

mod common;

const TOL: f32 = 1e-4;

fn golden() -> PathBuf {
    common::fixture("golden/one_window/golden.safetensors")
}

fn load_model(name: &str) -> Model {
    let dir = common::model_dir(name, "one_window", false);
    Model::load_with(&dir, ModelParams::default().compute(ComputeType::F32)).unwrap()
}

/// The golden image and the session parameters it was made with.
fn image_and_params() -> (Image, SessionParams) {
    let rgb = tensor(&golden(), "image_rgb");
    let image = Image::from_rgb(&rgb.bytes, rgb.shape[1] as i32, rgb.shape[0] as i32).unwrap();
    let mode = if tensor(&golden(), "resize_mode").i32()[0] == 1 { ResizeMode::Pillow } else { ResizeMode::Hf };
    let params = SessionParams::default()
        .max_num_patches(tensor(&golden(), "max_num_patches").i32()[0])
        .resize_mode(mode)
        .n_threads(2);
    (image, params)
}

#[test]
fn threading_markers() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Model>();
    send_sync::<Image>();
    send::<Session<'static>>();
    send::<densemllm::SegMetrics>();
}

#[test]
fn model_info_matches_config_json() {
    let model = load_model("session_info");
    let info = model.info().unwrap();
    assert_eq!(info.architecture, "YoutuVLForConditionalGeneration");
    assert_eq!(info.compute, "onednn-f32");
    assert_eq!(info.weights_dtype, "F32");
    assert_eq!(info.weights, "f32");
    assert_eq!((info.vocab_size, info.text_hidden_size, info.text_layers, info.text_heads), (600, 96, 2, 4));
    assert_eq!((info.vision_hidden_size, info.vision_layers, info.vision_heads), (64, 3, 4));
    assert_eq!((info.patch_size, info.spatial_merge_size), (16, 2));
    assert_eq!((info.image_token_id, info.vision_start_token_id, info.vision_end_token_id), (300, 296, 297));
    assert_eq!((info.bos_token_id, info.eos_token_id), (280, 281));
    assert_eq!(
        (info.q_lora_rank, info.kv_lora_rank, info.qk_nope_head_dim, info.qk_rope_head_dim, info.v_head_dim),
        (48, 32, 16, 8, 12)
    );
    assert_eq!(info.rope_theta, 500000.0);
    assert!(info.model_dir.ends_with(&format!("session_info.{}", std::process::id())), "{}", info.model_dir);

    let checked = Model::load_with(
        common::model_dir("session_check", "one_window", false),
        ModelParams::default().check_only(true),
    )
    .unwrap();
    assert_eq!(checked.info().unwrap().compute, "none");
    assert_eq!(checked.info().unwrap().weights, "none");
    assert_eq!(checked.session(&SessionParams::default()).unwrap_err().status(), Status::State);

    let dir = common::model_dir("session_int8", "one_window", false);
    match Model::load_with(&dir, ModelParams::default().weights(WeightsType::Int8)) {
        Ok(int8) => assert_eq!(int8.info().unwrap().weights, "int8"),
        Err(e) => assert_eq!(e.status(), Status::Unsupported, "{e}"), // a CPU without VNNI
    }
}

#[test]
fn intermediate_results_match_the_reference() {
    let model = load_model("session_golden");
    let (image, params) = image_and_params();
    let mut s = model.session(&params).unwrap();
    s.encode_image(&image).unwrap();
    let grid = s.image_grid().unwrap();
    let want_grid = tensor(&golden(), "grid").i32();
    assert_eq!((grid.grid_h, grid.grid_w), (want_grid[0], want_grid[1]));
    assert_eq!((grid.tokens_h, grid.tokens_w), (want_grid[0] / 2, want_grid[1] / 2));
    assert_eq!((grid.original_w, grid.original_h), (image.width(), image.height()));

    let pv = s.pixel_values().unwrap();
    let want_pv = tensor(&golden(), "pixel_values");
    assert_eq!((pv.rows, pv.cols), (want_pv.shape[0], want_pv.shape[1]));
    assert!(rel_diff(&pv.data, &want_pv.f32()) <= TOL);
    let emb = s.image_embeddings().unwrap();
    let want_emb = tensor(&golden(), "image_embeds");
    assert_eq!((emb.rows, emb.cols), (want_emb.shape[0], want_emb.shape[1]));
    let d = rel_diff(&emb.data, &want_emb.f32());
    assert!(d <= TOL, "image embeddings differ by {d}");

    let ids = tensor(&golden(), "input_ids").i32();
    s.eval(&ids).unwrap();
    assert_eq!(s.n_past(), ids.len());
    let labels = tensor(&golden(), "label_ids").i32();
    for (alignment, name) in [(Alignment::Own, "image_logits_own"), (Alignment::Previous, "image_logits_prev")] {
        let got = s.image_logits(alignment, &labels).unwrap();
        assert_eq!((got.rows, got.cols), (emb.rows, labels.len()));
        let d = rel_diff(&got.data, &tensor(&golden(), name).f32());
        assert!(d <= TOL, "{name} differs by {d}");
    }
    // Final hidden states at the image tokens' own positions = the reference's rows there.
    let hidden = tensor(&golden(), "hidden").f32();
    let width = tensor(&golden(), "hidden").shape[1];
    let want: Vec<f32> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| **id == 300)
        .flat_map(|(i, _)| hidden[i * width..(i + 1) * width].to_vec())
        .collect();
    let got = s.image_hidden(Alignment::Own).unwrap();
    assert_eq!(got.cols, width);
    assert!(rel_diff(&got.data, &want) <= TOL);
    assert_eq!(got.row(1), &got.data[width..2 * width]);
    let logits = s.logits().unwrap();
    assert!(rel_diff(&logits, &tensor(&golden(), "last_logits").f32()) <= TOL);

    // Encode once, query many: truncating to the image prefix keeps the image rows.
    s.truncate(10).unwrap();
    assert_eq!(s.n_past(), 10);
    s.truncate(0).unwrap();
    assert_eq!(s.n_past(), 0);

    // Caller-made pixel values give the same embeddings; a wrong length is refused before the call.
    s.encode_pixels(&want_pv.f32(), want_grid[0], want_grid[1]).unwrap();
    assert!(rel_diff(&s.image_embeddings().unwrap().data, &want_emb.f32()) <= TOL);
    let err = s.encode_pixels(&want_pv.f32()[1..], want_grid[0], want_grid[1]).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument);
}

fn greedy(steps: i32) -> GenerateParams {
    GenerateParams::default().max_new_tokens(steps).repetition_penalty(1.0).stop_ids(&[-1])
}

#[test]
fn greedy_generation_matches_the_reference() {
    let model = load_model("session_generate");
    let (image, params) = image_and_params();
    let ids = tensor(&golden(), "input_ids").i32();
    let want = tensor(&golden(), "greedy_ids").i32();
    let mut s = model.session(&params).unwrap();
    s.encode_image(&image).unwrap();
    let g = s.generate(&ids, &greedy(want.len() as i32)).unwrap();
    assert_eq!(g.ids, want);
    assert_eq!(
        (g.stop_reason, g.stop_id, g.n_prompt, g.text.as_deref()),
        (StopReason::MaxTokens, None, ids.len() as i32, None)
    );
    assert_eq!(s.n_past(), ids.len() + want.len() - 1);

    // Streaming: the callback sees the same ids and can stop early.
    s.truncate(0).unwrap();
    let mut seen = Vec::new();
    let g = s
        .generate_streaming(&ids, &greedy(want.len() as i32), |id, _| {
            seen.push(id);
            if seen.len() == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
    assert_eq!(g.stop_reason, StopReason::Callback);
    assert_eq!(seen, want[..3]);
    assert_eq!(g.ids, want[..3]);

    // The first greedy id as the stop id ends generation at once.
    s.truncate(0).unwrap();
    let g = s.generate(&ids, &greedy(5).stop_ids(&[want[0]])).unwrap();
    assert_eq!((g.stop_reason, g.stop_id, g.ids.len()), (StopReason::Token, Some(want[0]), 0));
}

#[test]
fn progress_reports_and_aborts() {
    let model = load_model("session_progress");
    let (image, params) = image_and_params();
    let stages = Arc::new(Mutex::new(Vec::<(String, i32, i32)>::new()));
    let abort_llm = Arc::new(Mutex::new(false));
    let (log, abort) = (stages.clone(), abort_llm.clone());
    let mut s = Session::with_progress(&model, &params, move |stage, done, total| {
        log.lock().unwrap().push((stage.to_owned(), done, total));
        if stage == "llm" && *abort.lock().unwrap() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .unwrap();
    s.encode_image(&image).unwrap();
    // The vision tower reports each of its 3 layers.
    let vision: Vec<_> = stages.lock().unwrap().iter().filter(|s| s.0 == "vision").map(|s| (s.1, s.2)).collect();
    assert_eq!(vision, [(1, 3), (2, 3), (3, 3)]);
    *abort_llm.lock().unwrap() = true;
    let ids = tensor(&golden(), "input_ids").i32();
    let err = s.eval(&ids).unwrap_err();
    assert_eq!(err.status(), Status::Aborted, "{err}");
    assert!(err.message().contains("llm"), "{err}");
    assert_eq!(s.n_past(), 0, "an aborted eval is rolled back");
    *abort_llm.lock().unwrap() = false;
    s.eval(&ids).unwrap();
    assert_eq!(s.n_past(), ids.len());
}

#[test]
fn a_panicking_progress_closure_resumes_after_the_call() {
    let model = load_model("session_panic");
    let (image, params) = image_and_params();
    let mut s = Session::with_progress(&model, &params, |_, _, _| panic!("from progress")).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.encode_image(&image)));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from progress"));
}

#[test]
fn one_model_many_threads() {
    let model = load_model("session_threads");
    let (image, params) = image_and_params();
    let ids = tensor(&golden(), "input_ids").i32();
    let labels = tensor(&golden(), "label_ids").i32();
    let want = tensor(&golden(), "image_logits_own").f32();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut s = model.session(&params.clone().n_threads(1)).unwrap();
                s.encode_image(&image).unwrap();
                s.eval(&ids).unwrap();
                assert!(rel_diff(&s.image_logits(Alignment::Own, &labels).unwrap().data, &want) <= TOL);
            });
        }
    });
    // A session moves to another thread.
    let mut s = model.session(&params).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            s.encode_image(&image).unwrap();
            assert_eq!(s.image_grid().unwrap().tokens_h * s.image_grid().unwrap().tokens_w, 64);
        });
    });
}

#[test]
fn packed_weight_cache_round_trip() {
    let dir = common::model_dir("session_cache_model", "one_window", false);
    let cache = common::temp_dir("session_cache");
    let (image, params) = image_and_params();
    let mut embeddings = Vec::new();
    for _ in 0..2 {
        let model =
            Model::load_with(&dir, ModelParams::default().compute(ComputeType::F32).cache_dir(&cache)).unwrap();
        let mut session = model.session(&params).unwrap();
        session.encode_image(&image).unwrap();
        embeddings.push(session.image_embeddings().unwrap());
    }
    assert_eq!(embeddings[0], embeddings[1]);
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(files.len() == 1 && files[0].to_string_lossy().ends_with(".dmllm-pack"), "{files:?}");
}
