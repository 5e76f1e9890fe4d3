"""The Python interface catches mistakes (issue 21, item 3): results name their labels, so an
overlay needs no names passed again; every call that takes an image takes what segment() takes
(Image, path, PIL image, pixel array) with gray and RGBA arrays converted as PIL converts them;
Image gives its pixels to numpy and PIL; every public option is a named, documented parameter."""
import inspect

import numpy as np
import pytest
from PIL import Image as PILImage

from conftest import IMAGE


def _rgb_of(pil):
    return np.asarray(pil.convert("RGB"))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1", "CMYK"])
def test_pil_images_convert_as_pil_does(dm, mode):
    """A PIL image of any mode, and the array of an L / LA / RGBA image, give the pixels of PIL's
    convert("RGB") (gray replicated, alpha dropped)."""
    with PILImage.open(IMAGE) as photo:
        pil = photo.convert("RGB").resize((23, 17)).convert(mode)
    want = _rgb_of(pil)
    with dm.Image.from_pil(pil) as img:
        assert np.array_equal(img.pixels, want)
    if mode in ("L", "LA", "RGBA"):
        with dm.Image.from_array(np.asarray(pil)) as img:
            assert np.array_equal(img.pixels, want)


def test_gray_and_rgba_arrays(dm):
    gray = np.arange(4 * 5, dtype=np.uint8).reshape(4, 5)
    for arr in (gray, gray[:, :, None], np.dstack([gray, 255 - gray])):
        with dm.Image.from_array(arr) as img:
            assert np.array_equal(img.pixels, np.repeat(gray[:, :, None], 3, axis=2))
    rgba = np.arange(4 * 5 * 4, dtype=np.uint8).reshape(4, 5, 4)
    with dm.Image.from_array(rgba) as img:
        assert np.array_equal(img.pixels, rgba[:, :, :3])
    with pytest.raises(ValueError, match=r"shape \(4, 5, 5\)"):
        dm.Image.from_array(np.zeros((4, 5, 5), np.uint8))


def test_image_to_numpy_and_pil(dm, image):
    arr = np.asarray(image)
    assert arr.shape == (image.height, image.width, 3) and arr.dtype == np.uint8
    assert np.array_equal(arr, image.pixels) and arr.flags.writeable
    assert np.asarray(image, dtype=np.float32).dtype == np.float32
    pil = image.to_pil()
    assert pil.mode == "RGB" and pil.size == image.size and np.array_equal(np.asarray(pil), arr)
    with PILImage.open(IMAGE) as photo:
        assert np.array_equal(np.asarray(photo.convert("RGB")), arr)


def test_dense_results_name_their_labels(dm, session, image):
    r = session.segment(image, ["cat", "grass"], background=True, evaluation=False)
    assert r.n_labels == 3 and r.label_names == ["cat", "grass", "background"] and r.background_label == 2
    r = session.segment(image, "cat, grass", evaluation=False)
    assert r.label_names == ["cat", "grass"] and r.background_label is None
    r = session.predict_dense(image, label_token_ids=[[5], [17]], evaluation=False)
    assert r.label_names == [None, None] and r.n_labels == 2


def test_overlay_from_a_result_and_any_image(dm, session, image, tmp_path):
    """write_overlay_png takes a result (labels, names and background from it) and any image
    segment() takes; each form writes the bytes of the spelled-out call."""
    r = session.segment(image, ["cat", "grass"], background=True, evaluation=False)
    dm.write_overlay_png(tmp_path / "want.png", image, r.labels, 3, ["cat", "grass", "background"],
                         background=2)
    want = (tmp_path / "want.png").read_bytes()
    with PILImage.open(IMAGE) as photo:
        pil = photo.convert("RGB")
        pil.load()
    for i, source in enumerate((image, IMAGE, pil, np.asarray(pil), np.dstack([np.asarray(pil), np.full(
            (image.height, image.width), 7, np.uint8)]))):
        dm.write_overlay_png(tmp_path / f"{i}.png", source, r)
        assert (tmp_path / f"{i}.png").read_bytes() == want, f"image form {i}"
    # Explicit arguments win over the result's.
    dm.write_overlay_png(tmp_path / "named.png", image, r, names=["a", "b", "c"], background=None)
    dm.write_overlay_png(tmp_path / "named_want.png", image, r.labels, 3, ["a", "b", "c"], background=2)
    assert (tmp_path / "named.png").read_bytes() == (tmp_path / "named_want.png").read_bytes()
    # A plain map without n_labels: the largest label + 1.
    dm.write_overlay_png(tmp_path / "plain.png", image, r.labels)
    dm.write_overlay_png(tmp_path / "plain_want.png", image, r.labels, int(r.labels.max()) + 1)
    assert (tmp_path / "plain.png").read_bytes() == (tmp_path / "plain_want.png").read_bytes()


def _public_callables(dm):
    for name in dm.__all__:
        obj = getattr(dm, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj) and obj.__module__.startswith("densemllm"):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr not in ("__init__",):
                    continue
                member = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                if inspect.isfunction(member):
                    yield f"{name}.{attr}", member


def test_options_are_named_parameters(dm):
    """No public function or method hides its options in **kwargs: a misspelt option is a
    TypeError at the call, and help() lists every option."""
    hidden = [name for name, fn in _public_callables(dm)
              if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())]
    assert hidden == []
    assert "max_new_tokens" in inspect.signature(dm.Session.ask).parameters
    assert "iterations" in inspect.signature(dm.crf_refine).parameters
    assert "max_num_patches" in inspect.signature(dm.Model.session).parameters


def test_misspelt_options_fail(dm, model, session, image):
    with pytest.raises(TypeError, match="max_new_token"):
        session.ask(image, "hi", max_new_token=3)
    with pytest.raises(TypeError, match="backgrond"):
        session.segment(image, ["cat"], backgrond=True)
    with pytest.raises(TypeError, match="n_thread"):
        model.session(n_thread=2)
    with pytest.raises(TypeError, match="crf: .*iteration"):
        session.segment(image, ["cat"], evaluation=True, crf={"iteration": 0})
    with pytest.raises(TypeError, match="generate: .*max_tokens"):
        session.refer_segment(image, "the cat", generate={"max_tokens": 2})
