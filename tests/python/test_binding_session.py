"""densemllm sessions against the C behaviour on the one_window golden checkpoint: encoding and
readout shapes, dense prediction equal to the image logits of the model-spec 4.8 prefix spelled out
here, generation (text vs ids, streaming, stopping, callback exceptions), text tasks, the
box-prompted pipelines, progress callbacks, and errors carrying the session's message. (With
random weights the answers hold no boxes, so the pipelines are checked on that path.)"""
import numpy as np
import pytest

from conftest import IMAGE, MAX_PATCHES

HEADER = "<|begin_of_text|>system\nYou are a helpful assistant.<|end_of_text|>\n<|begin_of_text|>user\n"
LABEL_IDS = [5, 17, 42]
FEW = dict(max_new_tokens=4)


def image_prefix(model, n_image):
    """The official image-first prefix through <|vision_end|>, with config.json's image ids."""
    info = model.info
    return list(model.tokenize(HEADER)) + [info.vision_start_token_id] + [info.image_token_id] * n_image + [
        info.vision_end_token_id]


def test_encode_shapes(dm, model, session, image):
    grid = session.encode_image(image)
    w, h = dm.target_size(image.width, image.height, MAX_PATCHES)
    assert (grid.resized_w, grid.resized_h, grid.original_w, grid.original_h) == (w, h, image.width, image.height)
    assert (grid.grid_w, grid.grid_h, grid.tokens_w, grid.tokens_h) == (w // 16, h // 16, w // 32, h // 32)
    patch = model.info.patch_size
    pv = session.pixel_values()
    assert pv.shape == (grid.grid_h * grid.grid_w, 3 * patch * patch) and pv.dtype == np.float32
    emb = session.image_embeddings()
    assert emb.shape == (grid.n_tokens, model.info.text_hidden_size)
    # Encoding the pixel values themselves gives the same embeddings.
    assert session.encode_pixels(pv, grid.grid_h, grid.grid_w).n_tokens == grid.n_tokens
    assert np.array_equal(session.image_embeddings(), emb)
    with pytest.raises(ValueError):
        session.encode_pixels(pv[1:], grid.grid_h, grid.grid_w)


def test_dense_equals_spelled_out_prefix(dm, model, session, image):
    grid = session.encode_image(image)
    session.eval(image_prefix(model, grid.n_tokens))
    assert session.n_past == len(image_prefix(model, grid.n_tokens))
    want = session.image_logits(LABEL_IDS, dm.Alignment.OWN)
    assert want.shape == (grid.n_tokens, 3)
    hidden = session.image_hidden(dm.Alignment.OWN)
    assert hidden.shape == (grid.n_tokens, model.info.text_hidden_size)
    assert session.logits().shape == (model.info.vocab_size,)

    # The plain readout (no CRF): the default follows the profile, whose CRF is on (issue 19).
    r = session.predict_dense(image, label_token_ids=[[t] for t in LABEL_IDS], alignment=dm.Alignment.OWN,
                              keep_token_scores=True, evaluation=False)
    assert r.task == dm.DenseTask.SEMANTIC and (r.width, r.height) == image.size and r.n_labels == 3
    assert r.labels.shape == (image.height, image.width) and r.labels.dtype == np.uint16
    assert r.token_scores.shape == (grid.tokens_h, grid.tokens_w, 3)
    np.testing.assert_allclose(r.token_scores.reshape(-1, 3), want, rtol=1e-4, atol=1e-4)
    assert r.confidence is None and r.depth_m is None and r.depth_grid_bins is None
    assert set(np.unique(r.labels)) <= {0, 1, 2}
    # Same pixels again: the prefix is reused. The default, evaluation mode with the CRF as the
    # demo's use_crf, adds the confidence map.
    again = session.predict_dense(image, label_token_ids=[[t] for t in LABEL_IDS])
    assert again.reused_prefix and again.seconds_encode == 0
    assert again.confidence.shape == r.labels.shape and float(again.confidence.min()) > 0


def test_dense_class_names_and_errors(dm, session, image):
    r = session.segment(image, ["cat", "grass"], background=True)
    assert r.n_labels == 3 and int(r.labels.max()) <= 2
    with pytest.raises(dm.DenseMLLMError) as info:
        session.depth(image)  # the fixture tokenizer has no <custom_1> depth bins within this vocabulary
    assert info.value.message == session.errmsg and info.value.message
    with pytest.raises(dm.InvalidArgumentError) as info:
        session.predict_dense(image)  # SEMANTIC without classes
    assert info.value.message == session.errmsg


def test_classes_as_a_comma_separated_string(dm, session, image):
    """A str is the CLI's comma-separated class list, not one class per character; a class that is
    not a str raises TypeError."""
    listed = session.segment(image, ["cat", "grass"], evaluation=False)
    joined = session.segment(image, " cat, grass,, ", evaluation=False)
    assert joined.n_labels == listed.n_labels == 2 and joined.class_names == ["cat", "grass"]
    assert (joined.labels == listed.labels).all()
    with pytest.raises(TypeError, match=r"classes\[1\] is a int"):
        session.segment(image, ["cat", 3])
    with pytest.raises(TypeError, match="not bytes"):
        session.detect(image, b"cat,grass")


def test_state_and_context_errors(dm, model, image):
    with model.session(max_num_patches=MAX_PATCHES, n_ctx=8) as s:
        with pytest.raises(dm.StateError):
            s.image_embeddings()  # nothing encoded yet
        with pytest.raises(dm.ContextFullError) as info:
            s.eval(list(range(1, 10)))
        assert s.n_past == 0 and info.value.status == -11 and info.value.message == s.errmsg
        s.eval([1, 2, 3])
        s.truncate(1)
        assert s.n_past == 1
        with pytest.raises(dm.InvalidArgumentError):
            s.truncate(5)


def test_memory_limit(dm, model_dir, model, image):
    with model.session(max_num_patches=MAX_PATCHES, n_ctx=64) as s:
        s.encode_image(image)
        grid = s.image_grid()
    # A limit of a few bytes refuses the session; one of the model's is its sessions' default.
    with pytest.raises(dm.OutOfMemoryError) as info:
        model.session(n_ctx=64, memory_limit_bytes=16)
    assert " needs " in info.value.message and "memory limit 0.00 MiB" in info.value.message
    with dm.Model(model_dir, compute=dm.Compute.F32, memory_limit_bytes=16) as limited:
        with pytest.raises(dm.OutOfMemoryError):
            limited.session(n_ctx=64)
    with model.session(max_num_patches=MAX_PATCHES, n_ctx=64, memory_limit_bytes=1 << 30) as s:
        s.encode_image(image)
        assert s.image_grid() == grid


def test_generate_text_equals_ids(dm, model):
    prompt = HEADER + "Hello<|end_of_text|>\n<|begin_of_text|>assistant\n"
    with model.session(max_num_patches=MAX_PATCHES) as a, model.session(max_num_patches=MAX_PATCHES) as b:
        from_text = a.generate_text(prompt, max_new_tokens=6, repetition_penalty=1.0)
        from_ids = b.generate(model.tokenize(prompt), max_new_tokens=6, repetition_penalty=1.0)
        assert list(from_text.ids) == list(from_ids.ids) and from_text.text == from_ids.text
        assert from_ids.n_prompt == len(model.tokenize(prompt)) and len(from_ids.ids) <= 6
        assert from_ids.stop_reason in (dm.StopReason.TOKEN, dm.StopReason.MAX_TOKENS)
        assert from_ids.text == model.detokenize(from_ids.ids, skip_special=True)
        # The context holds the prompt and every generated token but the last.
        assert b.n_past == from_ids.n_prompt + len(from_ids.ids) - (from_ids.stop_reason == dm.StopReason.MAX_TOKENS)


def test_streaming_stop_and_exceptions(dm, session, image):
    pieces = []
    r = session.ask(image, "What is this?", max_new_tokens=5, on_token=lambda i, t: pieces.append((i, t)))
    assert "".join(t for _, t in pieces) == r.text
    assert [i for i, _ in pieces if i >= 0] == list(r.ids)

    stopped = session.ask(image, "What is this?", max_new_tokens=5, on_token=lambda i, t: True)
    assert stopped.stop_reason == dm.StopReason.CALLBACK and len(stopped.ids) == 1

    def explode(i, t):
        raise ZeroDivisionError("from the callback")
    n_past = session.n_past
    with pytest.raises(ZeroDivisionError):
        session.ask(image, "What is this?", **FEW, on_token=explode)
    assert session.ask(image, "What is this?", **FEW).text is not None  # still usable
    assert session.n_past >= n_past


def test_tasks_and_regions(dm, session, image):
    regions = session.ground(image, "the cat", **FEW)
    assert isinstance(regions, dm.Regions) and regions.text is not None
    assert all(len(r.box) == 4 for r in regions)
    detected = session.detect(image, ["cat", "dog"], **FEW)
    assert detected.text is not None
    parsed = dm.parse_regions("<ref>cat</ref><box><x_1><y_2><x_30><y_40></box>"
                              "<ref>tail</ref><ins><poly><x_1><y_1><x_9><y_2><x_4><y_8></poly></ins><box><x_1>")
    assert [(r.label, r.box, r.points) for r in parsed] == [
        ("cat", (1, 2, 30, 40), []), ("tail", (1, 1, 9, 8), [(1, 1), (9, 2), (4, 8)])]
    assert parsed.text is None and parsed.message  # the unterminated box is reported
    assert dm.coordinate_to_original(100, 451, 160) == round(100 * 451 / 160)


def test_pipelines(dm, model, session, image):
    # The fixture tokenizer puts <FG>/<BG> beyond this checkpoint's vocabulary, so the FG/BG
    # readout must fail, with the library's message, exactly as the C call does.
    assert model.token_id("<BG>") >= model.info.vocab_size
    with pytest.raises(dm.UnsupportedError) as info:
        session.segment_box(image, (100, 50, 300, 250), short_side=64)
    assert '"<BG>"' in info.value.message and info.value.message == session.errmsg
    with pytest.raises(dm.InvalidArgumentError) as info:
        session.segment_box(image, (10, 10, 5, 20))
    assert "box" in info.value.message
    refer = session.refer_segment(image, "the cat", short_side=64, generate=FEW)
    assert refer.mask.shape == (image.height, image.width) and refer.answer is not None
    assert refer.found == bool(refer.box[2] > refer.box[0])
    if not refer.found:
        assert not refer.mask.any() and refer.message and refer.box == (0, 0, 0, 0)
    openset = session.openset_segment(image, ["cat"], short_side=64, generate=FEW)
    assert openset.labels.shape == (image.height, image.width)
    assert int(openset.labels.max()) <= len(openset.names) and openset.regions.text is not None


def test_progress_callback(dm, model, image):
    stages = []
    with model.session(max_num_patches=MAX_PATCHES, progress=lambda s, d, t: stages.append(s)) as s:
        s.encode_image(image)
    assert "vision" in stages
    with model.session(max_num_patches=MAX_PATCHES, progress=lambda s, d, t: True) as s:
        with pytest.raises(dm.AbortedError):
            s.encode_image(image)

    def explode(stage, done, total):
        raise KeyError(stage)
    with model.session(max_num_patches=MAX_PATCHES, progress=explode) as s:
        with pytest.raises(KeyError):
            s.encode_image(image)
    seen = []
    with dm.Model(model.info.model_dir, progress=lambda s, d, t: seen.append((s, d, t))):
        pass
    assert seen and seen[-1][1] == seen[-1][2]


def test_images_by_path_and_array(dm, session, image):
    by_path = session.predict_dense(IMAGE, label_token_ids=[[5], [17]])
    by_array = session.predict_dense(image.to_array(), label_token_ids=[[5], [17]])
    assert np.array_equal(by_path.labels, by_array.labels) and by_array.reused_prefix


def test_cache_dir(dm, model_dir, model, image, tmp_path):
    """The packed-weight cache: a cold load writes one file, the next maps it, with equal
    embeddings; "off" writes nothing."""
    with model.session(max_num_patches=MAX_PATCHES) as s:
        s.encode_image(image)
        reference = s.image_embeddings()
    cache = tmp_path / "cache"
    for _ in range(2):
        with dm.Model(model_dir, compute=dm.Compute.F32, cache_dir=cache) as cached, \
                cached.session(max_num_patches=MAX_PATCHES) as s:
            s.encode_image(image)
            assert np.array_equal(s.image_embeddings(), reference)
        assert [p.suffix for p in cache.iterdir()] == [".dmllm-pack"]
    with dm.Model(model_dir, compute=dm.Compute.F32, cache_dir="off"):
        pass
    assert len(list(cache.iterdir())) == 1 and not (tmp_path / "off").exists()
