"""WebP, TIFF and BMP inputs and `-` (standard input) through the densemllm CLI on the embedded
tiny model (issue 21, item 5): an image piped to `-` gives the same outputs as the same file, named
`stdin.*`; an empty or oversized standard input fails with the library's message; a folder's
.webp/.tif/.bmp files are inputs (the decoder tells the formats apart by their bytes, not names);
and the Python binding decodes the three formats as PIL does.
"""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

BUILD = os.environ.get("DMLLM_BUILD_DIR")
SOURCE = os.environ.get("DMLLM_SOURCE_DIR")
pytestmark = pytest.mark.skipif(not BUILD or not SOURCE, reason="DMLLM_BUILD_DIR / DMLLM_SOURCE_DIR not set")
ENV = dict(os.environ, DMLLM_MODEL=os.path.join(SOURCE or "", "models/tiny"))


def segment(*args, stdin=b""):
    return subprocess.run([os.path.join(BUILD, "densemllm"), "segment", "--classes", "circle,square", "--quiet",
                           *map(str, args)], input=stdin, capture_output=True, timeout=600, env=ENV)


def encoded(fmt, **kw):
    rgb = np.asarray(Image.open(os.path.join(SOURCE, "models/tiny/sample.png")).convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


def test_stdin_gives_the_outputs_of_the_same_file(tmp_path):
    data = encoded("WEBP", lossless=True)
    photo = tmp_path / "in" / "photo.webp"
    photo.parent.mkdir()
    photo.write_bytes(data)
    out = tmp_path / "out"
    run = segment("--out", out, "-", photo, stdin=data)
    assert run.returncode == 0, run.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        "%s.segment%s" % (stem, suffix) for stem in ("photo", "stdin")
        for suffix in (".json", ".labels.png", ".overlay.png", ".mask.txt"))
    for suffix in (".labels.png", ".overlay.png", ".mask.txt"):
        assert (out / ("stdin.segment" + suffix)).read_bytes() == (out / ("photo.segment" + suffix)).read_bytes()
    a, b = (json.loads((out / (stem + ".segment.json")).read_text()) for stem in ("stdin", "photo"))
    assert a.pop("input") == "-" and b.pop("input") == str(photo)
    assert a.pop("files") == [f.replace("photo.segment", "stdin.segment") for f in b.pop("files")]
    timings = [key for key in a if key.startswith("seconds_") or key == "reused_prefix"]
    assert {k: v for k, v in a.items() if k not in timings} == {k: v for k, v in b.items() if k not in timings}


def test_stdin_errors_name_the_problem(tmp_path):
    run = segment("--out", tmp_path, "-", stdin=b"")
    assert run.returncode == 1 and b"empty image data (0 bytes)" in run.stderr, run.stderr
    run = segment("--out", tmp_path, "--max-image-pixels", "100", "-", stdin=encoded("TIFF"))
    assert run.returncode == 1, run.stderr
    assert b"TIFF size" in run.stderr and b"exceeds the limit of 100 pixels" in run.stderr, run.stderr
    run = segment("--out", tmp_path, "-", stdin=encoded("BMP")[:-200])
    assert run.returncode == 1 and b"truncated BMP" in run.stderr, run.stderr
    assert not list(tmp_path.iterdir())  # nothing written, not even a partial file


def test_folder_of_webp_tiff_bmp(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    # A TIFF named .bmp still decodes: the bytes decide, the name only selects folder entries.
    for name, data in (("a.webp", encoded("WEBP", quality=80)), ("b.tif", encoded("TIFF", compression="tiff_lzw")),
                       ("c.tiff", encoded("TIFF")), ("d.bmp", encoded("BMP")), ("e.bmp", encoded("TIFF")),
                       ("notes.txt", b"not an image")):
        (folder / name).write_bytes(data)
    out = tmp_path / "out"
    run = segment("--out", out, folder)
    assert run.returncode == 0, run.stderr.decode()
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".json")) == [
        "%s.segment.json" % stem for stem in "abcde"]


def test_binding_decodes_like_pil():
    sys.path.insert(0, os.path.join(SOURCE, "bindings", "python"))
    os.environ.setdefault("DMLLM_LIB", os.path.join(BUILD, "libdensemllm.so"))
    import densemllm
    fixtures = os.path.join(SOURCE, "tests", "fixtures", "images")
    for name in ("lossy_alpha.webp", "animated.webp", "rgba8.tif", "multipage.tif", "palette8.bmp", "rle8.bmp"):
        path = os.path.join(fixtures, name)
        expected = np.asarray(Image.open(path).convert("RGB"))
        for image in (densemllm.Image.open(path), densemllm.Image.from_bytes(open(path, "rb").read())):
            assert np.array_equal(np.asarray(image.to_array()), expected), name
    with pytest.raises(densemllm.UnsupportedError, match="WebP size 16384x16384"):
        densemllm.Image.open(os.path.join(fixtures, "huge.webp"))
