//! Failures come back as Err with the status code, its name and the library's message.
use densemllm::{Image, ImageLimits, Model, ModelParams, SessionParams, Status};

mod common;

#[test]
fn missing_model_dir_names_the_problem() {
    let dir = common::temp_dir("errors_missing").join("no_such_model");
    let err = Model::load(&dir).unwrap_err();
    assert_eq!(err.status(), Status::Io, "{err}");
    assert_eq!(err.code(), densemllm::sys::DMLLM_ERR_IO);
    assert!(err.message().contains("no_such_model"), "message does not name the directory: {err}");
    assert!(err.to_string().contains(err.status().name()) && err.to_string().contains(err.message()));
}

#[test]
fn status_names_come_from_the_library() {
    for (status, code) in
        [(Status::InvalidArgument, -1), (Status::Io, -2), (Status::State, -9), (Status::ContextFull, -11)]
    {
        assert_eq!(status.code(), code);
        assert_eq!(Status::from_code(code), status);
        assert!(!status.name().is_empty());
    }
    assert_eq!(Status::from_code(-99), Status::Other(-99));
    assert_ne!(Status::Io.name(), Status::Format.name());
}

#[test]
fn bad_images_fail_with_format_or_io() {
    let err = Image::load(common::fixture("images/garbage.bin")).unwrap_err();
    assert_eq!(err.status(), Status::Unsupported, "{err}");
    assert!(err.message().contains("only JPEG, PNG, WebP, TIFF and BMP"), "{err}");
    let err = Image::load(common::fixture("images/truncated.png")).unwrap_err();
    assert_eq!(err.status(), Status::Format, "{err}");
    let err = Image::load(common::fixture("images/not_there.png")).unwrap_err();
    assert_eq!(err.status(), Status::Io, "{err}");
    assert!(err.message().contains("not_there.png"), "{err}");
    let err = Image::from_memory(&[]).unwrap_err();
    assert!(matches!(err.status(), Status::Format | Status::InvalidArgument), "{err}");
}

#[test]
fn image_limits_refuse_before_decoding() {
    let err = Image::load_with("/dev/zero", &ImageLimits::default().max_encoded_bytes(4096)).unwrap_err();
    assert_eq!(err.status(), Status::Unsupported, "{err}");
    assert!(err.message().contains("more than 4096 bytes"), "{err}");
    let png = std::fs::read(common::fixture("images/truncated.png")).unwrap();
    let err = Image::from_memory_with(&png, &ImageLimits::default().max_encoded_bytes(10)).unwrap_err();
    assert!(err.message().contains("max_encoded_bytes"), "{err}");
}

#[test]
fn rust_side_checks_reject_wrong_lengths_and_nul_bytes() {
    let err = Image::from_rgb(&[0u8; 11], 2, 2).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument);
    assert!(err.message().contains("11 bytes"), "{err}");
    let err = Image::load("a\0b.png").unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument);
    assert!(err.message().contains("NUL"), "{err}");
    let err = densemllm::write_label_png("/tmp/x.png", &[0u16; 5], 2, 2, 2).unwrap_err();
    assert!(err.message().contains("holds 5 values, expected 4"), "{err}");
}

#[test]
fn session_errors_carry_the_session_message() {
    let dir = common::model_dir("errors_session", "one_window", false);
    let model = Model::load_with(&dir, ModelParams::default().compute(densemllm::ComputeType::F32)).unwrap();
    let mut session = model.session(&SessionParams::default().n_threads(1)).unwrap();
    // No image encoded yet: the grid query does not fit the session's state.
    let err = session.image_grid().unwrap_err();
    assert_eq!(err.status(), Status::State, "{err}");
    assert!(!err.message().is_empty());
    // An out-of-range token id names itself.
    let err = session.eval(&[1_000_000]).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument, "{err}");
    assert!(err.message().contains("1000000"), "{err}");
    assert_eq!(session.errmsg(), err.message(), "the session keeps the message of its last failure");
    assert_eq!(session.n_past(), 0, "a failed eval left tokens behind");
    // Without tokenizer.json the tokenizer calls refuse with STATE naming the file.
    let err = model.tokenize("hi", false).unwrap_err();
    assert_eq!(err.status(), Status::State, "{err}");
    assert!(err.message().contains("tokenizer.json"), "{err}");
}
