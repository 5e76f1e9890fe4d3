"""densemllm (bindings/python) against the C library: versions, errors (status code, class and the
library's message), images (pixels equal PIL's decoding, zero-copy views, strides, resize), handle
ownership (context managers, close, closed handles), model info, tokenizer and chat template."""
import gc
import json
import os
import re

import numpy as np
import pytest
from PIL import Image as PILImage

from conftest import IMAGE, SOURCE_DIR


def header_macro(name):
    text = open(os.path.join(SOURCE_DIR, "include", "densemllm.h"), encoding="utf-8").read()
    return int(re.search(rf"#define {name} (\d+)", text).group(1))


def test_version_matches_header(dm):
    number = header_macro("DMLLM_VERSION_MAJOR") * 10000 + header_macro("DMLLM_VERSION_MINOR") * 100 + \
        header_macro("DMLLM_VERSION_PATCH")
    assert dm.version_number() == number
    assert dm.version() == f"{number // 10000}.{number // 100 % 100}.{number % 100}"
    assert os.path.samefile(dm.library_path, os.environ["DMLLM_LIB"])


def test_errors_carry_status_and_message(dm, tmp_path):
    missing = str(tmp_path / "missing.png")
    with pytest.raises(dm.IOFailureError) as info:
        dm.Image.open(missing)
    e = info.value
    assert isinstance(e, dm.DenseMLLMError) and isinstance(e, OSError)
    assert e.status == -2 and e.status_name == dm.status_str(-2)
    assert missing in e.message and e.message == dm.last_error()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(dm.FormatError) as info:
        dm.Image.open(bad)
    assert info.value.status == -3 and info.value.message
    with pytest.raises(dm.InvalidArgumentError):
        dm.target_size(100, 100, 3)  # the header: max_num_patches must be >= 4
    assert dm.status_str(0) != dm.status_str(-1)


def test_image_pixels_equal_pil(dm, image):
    want = np.asarray(PILImage.open(IMAGE).convert("RGB"))
    assert image.size == (want.shape[1], want.shape[0])
    view = image.pixels
    assert view.shape == want.shape and view.dtype == np.uint8 and not view.flags.writeable
    assert np.array_equal(view, want)
    copy = image.to_array()
    copy[0, 0] = 0
    assert np.array_equal(image.pixels, want)  # the copy is independent
    with open(IMAGE, "rb") as f:
        assert np.array_equal(dm.Image.from_bytes(f.read()).pixels, want)


def test_image_limits(dm, tmp_path):
    """dmllm_image_params through Image.open / from_bytes: a header over max_pixels and a device over
    max_encoded_bytes are refused before decoding; a generous limit decodes."""
    with open(IMAGE, "rb") as f:
        data = f.read()
    width, height = PILImage.open(IMAGE).size
    with pytest.raises(dm.UnsupportedError) as info:
        dm.Image.from_bytes(data, max_pixels=width * height - 1)
    assert f"{width}x{height}" in info.value.message and "max_pixels" in info.value.message
    with pytest.raises(dm.UnsupportedError) as info:
        dm.Image.open("/dev/zero", max_encoded_bytes=1 << 16)
    assert "more than 65536 bytes" in info.value.message
    with pytest.raises(dm.OutOfMemoryError) as info:
        dm.Image.open(IMAGE, memory_limit_bytes=1 << 20)
    assert "memory limit 1.00 MiB" in info.value.message
    assert dm.Image.open(IMAGE, max_pixels=width * height, memory_limit_bytes=1 << 30).size == (width, height)
    with pytest.raises(dm.InvalidArgumentError):
        dm.Image.open(IMAGE, max_pixels=-1)


def test_image_view_keeps_image_alive(dm):
    view = dm.Image.open(IMAGE).pixels  # the Image object is dropped at once
    gc.collect()
    assert np.array_equal(view, np.asarray(PILImage.open(IMAGE).convert("RGB")))


def test_image_from_array_and_strides(dm):
    rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    assert np.array_equal(dm.Image.from_array(rgb).pixels, rgb)
    padded = np.zeros((5, 9, 3), np.uint8)
    padded[:, :7] = rgb
    assert np.array_equal(dm.Image.from_array(padded[:, :7]).pixels, rgb)  # row stride 27 bytes
    assert np.array_equal(dm.Image.from_array(rgb[:, ::-1]).pixels, rgb[:, ::-1])  # converted once
    assert np.array_equal(dm.Image.from_rgb(padded.tobytes(), 7, 5, stride_bytes=27).pixels, rgb)
    with pytest.raises(ValueError):  # 5 channels: neither gray, gray+alpha, RGB nor RGBA
        dm.Image.from_array(np.zeros((4, 4, 5), np.uint8))


def test_resize_and_target_size(dm, image):
    w, h = dm.target_size(image.width, image.height, 64)
    assert w % 32 == 0 and h % 32 == 0 and (w // 16) * (h // 16) <= 64
    small = image.resize(w, h, dm.ResizeMode.PILLOW)
    want = np.asarray(PILImage.open(IMAGE).convert("RGB").resize((w, h), PILImage.BILINEAR))
    assert small.size == (w, h) and np.array_equal(small.pixels, want)  # the header: bit-exact with PIL


def test_context_managers_free_handles(dm, model_dir):
    with dm.Image.open(IMAGE) as img:
        assert not img.closed
    assert img.closed
    with pytest.raises(dm.StateError):
        img.width
    img.close()  # idempotent
    with dm.Model(model_dir) as model:
        session = model.session(max_num_patches=64)
        other = model.session(max_num_patches=64)
        other.close()
        assert other.closed and not session.closed
    # Freeing the model first closes its sessions: a session must not outlive its model.
    assert model.closed and session.closed
    with pytest.raises(dm.StateError):
        session.eval([1, 2])


def test_model_info_matches_config(model, model_dir):
    config = json.load(open(os.path.join(model_dir, "config.json")))
    info = model.info
    assert info.architecture == config["architectures"][0]
    assert info.vocab_size == config["vocab_size"] and info.text_layers == config["num_hidden_layers"]
    assert info.vision_hidden_size == config["vision_config"]["hidden_size"]
    assert info.image_token_id == config["image_token_id"] and info.rope_theta == config["rope_theta"]
    assert info.model_dir == model_dir and info.weights_dtype == "F32" and info.compute == "onednn-f32"
    assert info.weights == "f32"


def test_model_int8_weights(dm, model_dir):
    try:
        int8 = dm.Model(model_dir, weights=dm.Weights.INT8)
    except dm.UnsupportedError as error:  # a CPU without VNNI
        assert "int8" in error.message
        return
    with int8:
        assert int8.info.weights == "int8"
    with pytest.raises(dm.InvalidArgumentError) as info:
        dm.Model(model_dir, compute=dm.Compute.F32, weights=dm.Weights.BF16)
    assert "bf16 weights conflict with compute onednn-f32" in info.value.message


def test_model_load_errors(dm, tmp_path):
    with pytest.raises(dm.IOFailureError) as info:
        dm.Model(str(tmp_path))
    assert "config.json" in info.value.message


def test_tokenizer(dm, model):
    tokenizer = json.load(open(os.path.join(SOURCE_DIR, "tests", "fixtures", "tokenizer", "tokenizer.json")))
    added = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    ids = model.tokenize("hello <|image_pad|><FG>")
    assert ids.dtype == np.int32 and list(ids[-2:]) == [added["<|image_pad|>"], added["<FG>"]]
    assert model.detokenize(ids) == "hello <|image_pad|><FG>"
    special = {t["content"] for t in tokenizer["added_tokens"] if t["special"]}
    assert model.detokenize(ids, skip_special=True) == "hello " + "".join(
        t for t in ("<|image_pad|>", "<FG>") if t not in special)
    plain = model.tokenize("<|image_pad|>", parse_special=False)
    assert added["<|image_pad|>"] not in list(plain) and model.detokenize(plain) == "<|image_pad|>"
    assert model.token_id("<FG>") == added["<FG>"] and model.token_id("<no such token>") is None
    assert b"".join(model.token_bytes(int(t)) for t in model.tokenize("héllo")) == "héllo".encode()
    assert len(model.tokenize("")) == 0
    with pytest.raises(dm.InvalidArgumentError):
        model.token_bytes(10 ** 6)


def test_chat_template(dm, model):
    messages = [{"role": "user", "text": "What?", "image": True}]
    text = dm.chat_apply(messages, n_image_tokens=2)
    assert text == ("<|begin_of_text|>system\nYou are a helpful assistant.<|end_of_text|>\n"
                    "<|begin_of_text|>user\n<|vision_start|><|image_pad|><|image_pad|><|vision_end|>What?"
                    "<|end_of_text|>\n<|begin_of_text|>assistant\n")
    ids = model.chat_tokenize([dm.ChatMessage("user", "What?", True)], n_image_tokens=2)
    assert list(ids) == list(model.tokenize(text))
    with pytest.raises(dm.InvalidArgumentError):
        dm.chat_apply([{"role": "robot", "text": "x"}])


def test_log_callback(dm, model_dir):
    got = []
    dm.log_set(lambda level, message: got.append((level, message)))
    dm.Model(model_dir).close()
    assert (dm.LogLevel.INFO, next(m for _, m in got if m.startswith("loaded "))) in got
    assert any(model_dir in m for _, m in got)

    def explode(level, message):
        raise RuntimeError("must not unwind through C")
    dm.log_set(explode)
    dm.Model(model_dir).close()  # the exception is swallowed
    dm.log_set(None)  # silence: nothing more arrives
    count = len(got)
    dm.Model(model_dir).close()
    assert len(got) == count
