"""The densemllm commands on the embedded tiny model and its sample image: every task writes what
its --help promises (files with the image's size, JSON summaries), the batch runner's --json,
--resume and --shard behave, and the mask texts parse back to the label maps written as PNGs.
"""
import json
import os
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

BUILD = os.environ.get("DMLLM_BUILD_DIR")
SOURCE = os.environ.get("DMLLM_SOURCE_DIR")
pytestmark = pytest.mark.skipif(not BUILD or not SOURCE, reason="DMLLM_BUILD_DIR / DMLLM_SOURCE_DIR not set")


def cli(*args, expect=0):
    run = subprocess.run([os.path.join(BUILD, "densemllm"), *map(str, args)], capture_output=True, text=True,
                         timeout=600, env=dict(os.environ, DMLLM_MODEL=os.path.join(SOURCE, "models/tiny")))
    assert run.returncode == expect, run.stderr
    return run


@pytest.fixture(scope="module")
def sample():
    path = os.path.join(SOURCE, "models/tiny/sample.png")
    with Image.open(path) as im:
        return path, im.size


@pytest.fixture(scope="module")
def classes():
    with open(os.path.join(SOURCE, "models/tiny/training.json")) as f:
        return json.load(f)["classes"]


def expand_rle(text):
    runs = re.search(r"<mask>(.*)</mask>", text).group(1)
    return np.array([int(v) for v, n in re.findall(r"\((\d+),(\d+)\)", runs) for _ in range(int(n))])


def test_segment_files_and_text(tmp_path, sample, classes):
    path, (w, h) = sample
    out = json.loads(cli("segment", "--classes", ", ".join(classes), "--out", tmp_path, "--json", path).stdout)
    assert (out["width"], out["height"]) == (w, h)
    assert abs(sum(out["label_shares"].values()) - 1.0) < 1e-9
    assert set(out["label_shares"]) <= set(classes)
    labels = np.asarray(Image.open(tmp_path / "sample.segment.labels.png"))
    assert labels.shape == (h, w)
    with Image.open(tmp_path / "sample.segment.overlay.png") as overlay:
        assert overlay.size[0] > w and overlay.size[1] >= h   # the legend panel is beside the image
    text = (tmp_path / "sample.segment.mask.txt").read_text()
    assert np.array_equal(expand_rle(text).reshape(h, w), labels)
    names = re.findall(r"<ref>(.*?)</ref>", text)
    for k, share in out["label_shares"].items():
        assert abs(np.mean(labels == names.index(k)) - share) < 1e-9


def test_depth_files(tmp_path, sample):
    path, (w, h) = sample
    out = json.loads(cli("depth", "--out", tmp_path, "--json", path).stdout)
    mm = np.asarray(Image.open(tmp_path / "sample.depth.mm.png")).astype(np.float64)
    assert mm.shape == (h, w)
    assert 1000 <= mm.min() and mm.max() <= 10000       # the synthetic profile's 1-10 m
    assert abs(mm.mean() / 1000 - out["depth_mean_m"]) < 0.01
    grid = expand_rle((tmp_path / "sample.depth.txt").read_text())
    assert grid.size == (w // 16) * (h // 16) == out["depth_grid_w"] * out["depth_grid_h"]
    assert 1 <= grid.min() and grid.max() <= 100


def test_refseg_openseg_text_tasks(tmp_path, sample):
    path, (w, h) = sample
    ref = json.loads(cli("refseg", "--phrase", "the red ball", "--out", tmp_path, "--json", path).stdout)
    assert set(ref) >= {"found", "box", "foreground_share", "answer"}
    labels = np.asarray(Image.open(tmp_path / "sample.refseg.labels.png"))
    assert labels.shape == (h, w) and set(np.unique(labels)) <= {0, 1}
    assert abs(np.mean(labels) - ref["foreground_share"]) < 1e-9
    opn = json.loads(cli("openseg", "--out", tmp_path / "open", "--json", path).stdout)
    assert len(opn["classes"]) >= 1
    opn_labels = np.asarray(Image.open(tmp_path / "open/sample.openseg.labels.png"))
    assert opn_labels.max() <= len(opn["classes"])
    det = json.loads(cli("detect", "--json", "--out", tmp_path / "det", path).stdout)
    assert all(len(r["box"]) == 4 for r in det["regions"])
    ans = json.loads(cli("ask", "--question", "How many objects are there?", "--json", "--out", tmp_path / "ask",
                         path).stdout)
    assert re.fullmatch(r"There are \d+\.", ans["answer"])
    cli("features", "--out", tmp_path, path)
    with Image.open(tmp_path / "sample.features.png") as im:
        assert im.size == (w, h)


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int32)


def test_picture_options(tmp_path, sample):
    """--alpha, the background left as the photo, boxes pictures, --min-depth/--max-depth and the
    colour bar, the PCA picture over the photo."""
    path, (w, h) = sample
    photo = pixels(path)
    for alpha in ("0", "1"):
        cli("segment", "--classes", "ball,box", "--background", "--alpha", alpha, "--out", tmp_path / alpha, path)
    clear = pixels(tmp_path / "0/sample.segment.overlay.png")[:h, :w]
    opaque = pixels(tmp_path / "1/sample.segment.overlay.png")[:h, :w]
    labels = np.asarray(Image.open(tmp_path / "0/sample.segment.labels.png"))
    background = labels == 2
    assert np.array_equal(clear[background], photo[background])      # background: the photo as is
    assert np.array_equal(opaque[background], photo[background])
    if (~background).any():
        inside = ~background
        assert np.mean(np.all(clear[inside] == photo[inside], axis=-1)) > 0.5   # alpha 0: photo but outlines
        assert np.mean(np.all(opaque[inside] == photo[inside], axis=-1)) < 0.1  # alpha 1: the label colours
    cli("segment", "--classes", "ball", "--alpha", "1.5", "--out", tmp_path, path, expect=2)
    cli("refseg", "--phrase", "the ball", "--alpha", "-1", "--out", tmp_path, path, expect=2)

    det = json.loads(cli("detect", "--json", "--out", tmp_path / "det", path).stdout)
    boxes = pixels(tmp_path / "det/sample.detect.boxes.png")
    assert boxes.shape == photo.shape
    assert np.array_equal(boxes, photo) == (len(det["regions"]) == 0)
    cli("ground", "--phrase", "the ball", "--out", tmp_path / "det", path)
    assert pixels(tmp_path / "det/sample.ground.boxes.png").shape == photo.shape
    cli("detect", "--no-png", "--out", tmp_path / "nopng", path)
    assert sorted(os.listdir(tmp_path / "nopng")) == ["sample.detect.json"]

    for low, high in (("1", "10"), ("1", "20")):
        cli("depth", "--min-depth", low, "--max-depth", high, "--out", tmp_path / high, path)
    near = pixels(tmp_path / "10/sample.depth.png")
    far = pixels(tmp_path / "20/sample.depth.png")
    assert near.shape[0] == h and near.shape[1] > w                   # the colour bar beside the map
    assert not np.array_equal(near[:, :w], far[:, :w])                # the range sets the colours
    cli("depth", "--min-depth", "5", "--max-depth", "2", "--out", tmp_path, path, expect=2)
    cli("depth", "--min-depth", "-1", "--out", tmp_path, path, expect=2)

    cli("features", "--alpha", "0", "--out", tmp_path / "f0", path)
    assert np.array_equal(pixels(tmp_path / "f0/sample.features.overlay.png"), photo)
    cli("features", "--out", tmp_path / "f", path)
    blend = pixels(tmp_path / "f/sample.features.overlay.png")
    pca = pixels(tmp_path / "f/sample.features.png")
    assert blend.shape == photo.shape
    assert not np.array_equal(blend, photo) and not np.array_equal(blend, pca)


def test_batch_resume_and_shards(tmp_path, sample):
    path, _ = sample
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        os.symlink(path, folder / ("img%d.png" % k))
    first = cli("depth", "--out", tmp_path / "o", "--shard", "1/2", "--no-png", folder)
    assert sorted(p.name for p in (tmp_path / "o").glob("*.json")) == ["img1.depth.json"]
    cli("depth", "--out", tmp_path / "o", "--shard", "0/2", "--no-png", folder)
    assert sorted(p.name for p in (tmp_path / "o").glob("*.json")) == [
        "img0.depth.json", "img1.depth.json", "img2.depth.json"]
    again = cli("depth", "--out", tmp_path / "o", "--resume", "--no-png", folder)
    assert "3 skipped" in again.stderr, again.stderr + first.stderr


def test_bad_arguments(tmp_path, sample):
    path, _ = sample
    cli("segment", path, expect=2)                                   # --classes missing
    cli("refseg", path, expect=2)                                    # --phrase missing
    cli("depth", "--depth-profile", "no_such_profile", "--out", tmp_path, path, expect=1)
    cli("segment", "--classes", "ball", "--out", tmp_path, tmp_path / "missing.png", expect=1)
