//! Tokenizer, chat template, text tasks and answer parsing. Token ids are those of
//! tests/fixtures/tokenizer/expected.json (written by @huggingface/tokenizers); the chat layout is
//! the header's (model-spec 4.8); the tasks must equal asking with the demo's prompts.
use common::tensor;
use densemllm::{
    ChatMessage, ComputeType, GenerateParams, Image, Model, ModelParams, PromptLayout, SessionParams, Status,
    chat_apply, coordinate_to_original, parse_regions,
};
use std::ops::ControlFlow;

mod common;

fn model_with_tokenizer(name: &str) -> Model {
    let dir = common::model_dir(name, "one_window", true);
    Model::load_with(&dir, ModelParams::default().compute(ComputeType::F32)).unwrap()
}

fn golden_image() -> Image {
    let rgb = tensor(&common::fixture("golden/one_window/golden.safetensors"), "image_rgb");
    Image::from_rgb(&rgb.bytes, rgb.shape[1] as i32, rgb.shape[0] as i32).unwrap()
}

/// Short greedy decoding: the tasks' answers on random weights are arbitrary, so only their
/// consistency is checked.
fn short() -> GenerateParams {
    GenerateParams::default().max_new_tokens(12)
}

#[test]
fn tokenizer_matches_the_oracle() {
    let model = model_with_tokenizer("text_tokenizer");
    let cases: [(&str, &[i32], &str); 4] = [
        ("Hello world", &[72, 101, 277, 111, 274, 279, 108, 100], "Hello world"),
        ("今天天气很好", &[530, 347, 535, 148, 229, 190, 136, 229, 165, 189], "今天天气很好"),
        ("<|vision_start|><|image_pad|><|vision_end|>", &[600, 602, 601], ""),
        (
            ":<|image_pad|> red circle7!天空\tß\t*é",
            &[58, 602, 418, 413, 55, 33, 347, 231, 169, 186, 9, 510, 9, 42, 291],
            ": red circle7!天空\tß\t*é",
        ),
    ];
    for (text, ids, skip_special) in cases {
        assert_eq!(model.tokenize(text, true).unwrap(), ids, "{text:?}");
        assert_eq!(model.detokenize(ids, false).unwrap(), text);
        assert_eq!(model.detokenize(ids, true).unwrap(), skip_special);
    }
    // Without parse_special the special token is plain text.
    assert_eq!(model.tokenize("<|image_pad", false).unwrap(), [60, 124, 105, 473, 95, 112, 443]);
    assert_ne!(model.tokenize("<|image_pad|>", false).unwrap(), [602]);
    assert_eq!(model.tokenize("", true).unwrap(), Vec::<i32>::new());
    assert_eq!(model.detokenize(&[], false).unwrap(), "");
    assert_eq!(
        (model.token_id("<FG>"), model.token_id("<|image_pad|>"), model.token_id("no such token")),
        (Some(604), Some(602), None)
    );
    assert_eq!(model.token_bytes(72).unwrap(), b"H");
    // "2026%.7=é" ends in ids 101, 204, 129: "e", then the bytes 0xCC 0x81 of U+0301 (combining acute).
    let bytes: Vec<u8> = [204, 129].iter().flat_map(|&id| model.token_bytes(id).unwrap()).collect();
    assert_eq!(String::from_utf8(bytes).unwrap(), "\u{301}");
    assert_eq!(model.token_bytes(100_000).unwrap_err().status(), Status::InvalidArgument);
}

#[test]
fn chat_template_layout() {
    let user = ChatMessage::user("Describe this image.").with_image(PromptLayout::ImageFirst);
    let text = chat_apply(std::slice::from_ref(&user), true, 2).unwrap();
    assert_eq!(
        text,
        "<|begin_of_text|>system\nYou are a helpful assistant.<|end_of_text|>\n\
         <|begin_of_text|>user\n<|vision_start|><|image_pad|><|image_pad|><|vision_end|>Describe this image.<|end_of_text|>\n\
         <|begin_of_text|>assistant\n"
    );
    let text = chat_apply(
        &[ChatMessage::system("Be brief."), ChatMessage::user("Hi").with_image(PromptLayout::PromptFirst)],
        false,
        1,
    )
    .unwrap();
    assert_eq!(
        text,
        "<|begin_of_text|>system\nBe brief.<|end_of_text|>\n\
         <|begin_of_text|>user\nHi<|vision_start|><|image_pad|><|vision_end|><|end_of_text|>\n"
    );
    let err = chat_apply(&[ChatMessage::new("tool", "x")], true, 1).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument);
    assert!(err.message().contains("\"tool\""), "{err}");

    // The oracle's first conversation: 60 ids with 6 image pads (tests/test_chat.c).
    let model = model_with_tokenizer("text_chat");
    let ids = model.chat_tokenize(&[user], true, 6).unwrap();
    assert_eq!(ids.len(), 60);
    assert_eq!(ids.iter().filter(|&&id| id == 602).count(), 6);
    assert_eq!((ids[0], ids[59]), (598, 10));
    assert_eq!(densemllm::DEFAULT_SYSTEM_PROMPT, "You are a helpful assistant.");
}

#[test]
fn ask_is_the_chat_prompt_generated() {
    let model = model_with_tokenizer("text_ask");
    let image = golden_image();
    let params = SessionParams::default().n_threads(2);
    let mut s = model.session(&params).unwrap();
    let got = s.ask(Some(&image), "How many dogs?", &short()).unwrap();

    // Spelled out: encode, then the chat prompt with the image's token count, then generate. The
    // fixture tokenizer's vision ids (600-602) are not the checkpoint's (296, 300, 297, from
    // config.json), so the image block is mapped to the model's ids as the library does.
    let mut fresh = model.session(&params).unwrap();
    fresh.encode_image(&image).unwrap();
    let grid = fresh.image_grid().unwrap();
    let user = ChatMessage::user("How many dogs?").with_image(PromptLayout::ImageFirst);
    let info = model.info().unwrap();
    let ids: Vec<i32> = model
        .chat_tokenize(&[user], true, grid.tokens_h * grid.tokens_w)
        .unwrap()
        .into_iter()
        .map(|id| match id {
            600 => info.vision_start_token_id,
            601 => info.vision_end_token_id,
            602 => info.image_token_id,
            other => other,
        })
        .collect();
    let want = fresh.generate(&ids, &short()).unwrap();
    assert_eq!(got.ids, want.ids);
    assert_eq!(got.text, want.text);
    assert_eq!(got.text.as_deref().unwrap(), model.detokenize(&got.ids, true).unwrap());

    // Text only, streamed: the pieces put together are the answer.
    let mut streamed = String::new();
    let mut calls = 0;
    let got = s
        .ask_streaming(None, "What is 2 + 2?", &short(), |_, piece| {
            streamed.push_str(piece);
            calls += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(Some(streamed), got.text);
    assert!(calls >= got.ids.len());
    assert_eq!(s.n_past(), got.n_prompt as usize + got.ids.len() - 1);
}

#[test]
fn ground_and_detect_are_the_demo_prompts_parsed() {
    let model = model_with_tokenizer("text_tasks");
    let image = golden_image();
    let mut s = model.session(&SessionParams::default().n_threads(2)).unwrap();
    let cases: [(Option<&str>, &[&str], &str); 3] = [
        (
            Some("the cat on the left"),
            &[],
            "Please provide the bounding box coordinate of the region this sentence describes: the cat on the left",
        ),
        (None, &[], "Detect all objects in the provided image."),
        (
            None,
            &["cat", "traffic light"],
            "Detect every objects that belongs to the following categories: cat,traffic light",
        ),
    ];
    for (phrase, classes, prompt) in cases {
        let regions = match phrase {
            Some(p) => s.ground(&image, p, &short()).unwrap(),
            None => s.detect(&image, classes, &short()).unwrap(),
        };
        let asked = s.ask(Some(&image), prompt, &short()).unwrap();
        assert_eq!(regions.text, asked.text, "{prompt}");
        let parsed = parse_regions(regions.text.as_deref().unwrap()).unwrap();
        assert_eq!((parsed.regions, parsed.message), (regions.regions, regions.message));
    }
}

#[test]
fn answers_in_the_official_formats() {
    let r = parse_regions(
        "<ref>person</ref><box><x_12><y_34><x_56><y_78></box><box><x_100><y_110><x_200><y_220></box>\
         <ref>dog</ref><box><x_5><y_6><x_7><y_8></box>",
    )
    .unwrap();
    let boxes: Vec<_> = r.regions.iter().map(|g| (g.label.as_str(), g.bbox, g.points.len())).collect();
    assert_eq!(boxes, [("person", [12, 34, 56, 78], 0), ("person", [100, 110, 200, 220], 0), ("dog", [5, 6, 7, 8], 0)]);
    assert_eq!((r.text, r.message.as_str()), (None, ""));
    let r = parse_regions("<ref>hotdog on left</ref><ins><poly><x_1><y_1><x_9><y_2><x_4><y_8></poly></ins>").unwrap();
    assert_eq!(r.regions[0].points, [[1, 1], [9, 2], [4, 8]]);
    assert_eq!(r.regions[0].bbox, [1, 1, 9, 8]);
    let r = parse_regions("<ref>x</ref><box><x_1><y_2><x_3></box>").unwrap();
    assert!(r.regions.is_empty() && !r.message.is_empty());
    // clamp(round-half-even(k * original / resized), 0, 2047)
    assert_eq!(coordinate_to_original(5, 10, 4).unwrap(), 12);
    assert_eq!(coordinate_to_original(3, 10, 4).unwrap(), 8);
    assert_eq!(coordinate_to_original(2000, 4000, 1000).unwrap(), 2047);
}

#[test]
fn text_tasks_need_a_tokenizer() {
    let dir = common::model_dir("text_bare", "one_window", false);
    let model = Model::load_with(&dir, ModelParams::default().compute(ComputeType::F32)).unwrap();
    let mut s = model.session(&SessionParams::default()).unwrap();
    let err = s.ask(None, "x", &short()).unwrap_err();
    assert_eq!(err.status(), Status::State);
    assert!(err.message().contains("tokenizer.json"), "{err}");
}
