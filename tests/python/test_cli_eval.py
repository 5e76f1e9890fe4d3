"""densemllm eval and densemllm bench on a tiny generated dataset with the one_window golden
checkpoint (random weights, so the predictions are arbitrary) and the test tokenizer.

The metrics the command prints are recomputed here with numpy from the prediction files it saved
and the ground truth (mmseg IoU areas, compute_errors per image, LISA cIoU/gIoU); shards run apart
and combined with --metrics-only give the single run's numbers; --resume skips finished samples;
bad arguments exit with 2. Depth uses a readout profile whose bins are the digit tokens "1".."9",
which the test vocabulary has.
"""
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

BUILD = os.environ.get("DMLLM_BUILD_DIR")
SOURCE = os.environ.get("DMLLM_SOURCE_DIR")
pytestmark = pytest.mark.skipif(not BUILD or not SOURCE, reason="DMLLM_BUILD_DIR / DMLLM_SOURCE_DIR not set")

CLASSES = ["red", "green", "blue"]


def cli(*args, expect=0):
    run = subprocess.run([os.path.join(BUILD, "densemllm"), *map(str, args)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == expect, run.stderr
    return run


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    golden = os.path.join(SOURCE, "tests/fixtures/golden/one_window")
    models = {}
    for name, profile in (("model", None), ("model_depth", {"depth_token_format": "%d", "depth_first_bin": 1,
                                                             "depth_bins": 9, "depth_profile": "nyuv2"})):
        d = root / name
        d.mkdir()
        os.symlink(os.path.join(golden, "config.json"), d / "config.json")
        os.symlink(os.path.join(golden, "model.safetensors"), d / "model.safetensors")
        os.symlink(os.path.join(SOURCE, "tests/fixtures/tokenizer/tokenizer.json"), d / "tokenizer.json")
        if profile:
            (d / "readout_profile.json").write_text(json.dumps(profile))
        models[name] = d
    ds = root / "ds"
    for sub in ("images", "annotations", "depth", "masks"):
        (ds / sub).mkdir(parents=True)
    rng = np.random.default_rng(7)
    colours = np.array([[200, 40, 40], [40, 180, 60], [50, 60, 210]], np.uint8)
    refs = []
    for i in range(5):
        h, w = 40 + 4 * i, 56 + 8 * i
        y, x = np.mgrid[0:h, 0:w]
        labels = np.where(x < w // 3, 0, np.where(y < h // 2, 1, 2)).astype(np.uint8)
        labels[rng.random((h, w)) < 0.02] = 255
        image = np.clip(colours[np.minimum(labels, 2)] + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(ds / "images" / f"im{i}.png")
        Image.fromarray(labels).save(ds / "annotations" / f"im{i}.png")
        depth_mm = np.where(labels == 255, 0, 800 + 900 * labels + 7 * x).astype(np.uint16)
        Image.fromarray(depth_mm).save(ds / "depth" / f"im{i}.png")
        Image.fromarray(((labels == 1) * 255).astype(np.uint8)).save(ds / "masks" / f"im{i}.png")
        refs.append({"image": f"images/im{i}.png", "phrase": "the green part", "mask": f"masks/im{i}.png"})
    (ds / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (ds / "refs.jsonl").write_text("\n".join(json.dumps(r) for r in refs) + "\n")
    return root, ds, models


def read_metrics(out):
    with open(out / "metrics.json") as f:
        return json.load(f)


def numpy_semantic(ds, out, n_classes=3, ignore=255):
    areas = np.zeros((3, n_classes))  # intersect, pred, label
    for name in sorted(os.listdir(ds / "annotations")):
        gt = np.array(Image.open(ds / "annotations" / name)).astype(np.int64)
        pred = np.array(Image.open(out / name.replace(".png", ".labels.png"))).astype(np.int64)
        keep = gt != ignore
        gt, pred = gt[keep], pred[keep]
        inter = pred[pred == gt]
        areas[0] += np.bincount(inter, minlength=n_classes)[:n_classes]
        areas[1] += np.bincount(pred[pred < n_classes], minlength=n_classes)[:n_classes]
        areas[2] += np.bincount(gt, minlength=n_classes)[:n_classes]
    union = areas[1] + areas[2] - areas[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, acc = areas[0] / union, areas[0] / areas[2]
    return np.nanmean(iou), np.nanmean(acc), areas[0].sum() / areas[2].sum()


def test_semantic_matches_numpy(setup):
    root, ds, models = setup
    out = root / "out_semantic"
    cli("eval", "--model", models["model"], "--task", "semantic", "--classes-file", ds / "classes.txt",
        "--out", out, "--quiet", ds)
    m = read_metrics(out)
    miou, macc, aacc = numpy_semantic(ds, out)
    assert m["task"] == "semantic" and m["n_images"] == 5 and m["complete"]
    assert m["mIoU"] == pytest.approx(miou, rel=1e-12)
    assert m["mAcc"] == pytest.approx(macc, rel=1e-12)
    assert m["aAcc"] == pytest.approx(aacc, rel=1e-12)
    assert [c["name"] for c in m["classes"]] == CLASSES

    # rerun with --resume: nothing is predicted again, the metrics are the same
    run = cli("eval", "--model", models["model"], "--task", "semantic", "--classes-file", ds / "classes.txt",
              "--out", out, "--quiet", "--resume", ds)
    assert "0 done, 5 skipped" in run.stderr
    assert read_metrics(out)["mIoU"] == m["mIoU"]

    # two shards into one folder, combined by --metrics-only
    sharded = root / "out_shards"
    for shard in ("0/2", "1/2"):
        part = cli("eval", "--model", models["model"], "--task", "semantic", "--classes-file", ds / "classes.txt",
                   "--out", sharded, "--quiet", "--json", "--shard", shard, ds)
        assert json.loads(part.stdout)["n_images"] == (3 if shard == "0/2" else 2)
    cli("eval", "--task", "semantic", "--classes-file", ds / "classes.txt", "--out", sharded, "--metrics-only", ds)
    combined = read_metrics(sharded)
    assert combined["mIoU"] == m["mIoU"] and combined["aAcc"] == m["aAcc"] and combined["n_images"] == 5

    # --scale: the model sees larger inputs, the predictions keep the ground truth's size
    scaled = root / "out_scaled"
    cli("eval", "--model", models["model"], "--task", "semantic", "--classes-file", ds / "classes.txt",
        "--out", scaled, "--quiet", "--scale", "2", "--no-crf", ds)
    for name in os.listdir(ds / "annotations"):
        assert Image.open(scaled / name.replace(".png", ".labels.png")).size == Image.open(ds / "annotations" / name).size
    assert read_metrics(scaled)["mIoU"] == pytest.approx(numpy_semantic(ds, scaled)[0], rel=1e-12)


def test_depth_matches_numpy(setup):
    root, ds, models = setup
    out = root / "out_depth"
    cli("eval", "--model", models["model_depth"], "--task", "depth", "--out", out, "--quiet", ds)
    m = read_metrics(out)
    per_image = []
    for name in sorted(os.listdir(ds / "depth")):
        gt = np.array(Image.open(ds / "depth" / name)).astype(np.float64) / 1000.0
        pred = np.load(out / name.replace(".png", ".depth.npy")).astype(np.float64)
        assert pred.shape == gt.shape
        pred = np.clip(np.nan_to_num(pred, nan=1e-3), 1e-3, 10.0)
        valid = (gt > 1e-3) & (gt < 10.0)
        g, p = gt[valid], pred[valid]
        ratio = np.maximum(g / p, p / g)
        e = np.log(p) - np.log(g)
        per_image.append([np.mean(ratio < 1.25), np.mean(np.abs(g - p) / g), np.sqrt(np.mean((g - p) ** 2)),
                          100 * np.sqrt(np.mean(e ** 2) - np.mean(e) ** 2)])
    want = np.mean(per_image, axis=0)
    assert m["n_images"] == 5 and m["complete"]
    for key, value in zip(("delta1", "abs_rel", "rmse", "silog"), want):
        assert m[key] == pytest.approx(value, rel=1e-5), key


def test_depth_defaults_from_profile(setup, tmp_path):
    """Without --image-first/--prompt-first/--min-depth/--max-depth, eval --task depth takes them from
    the profile's "depth_evaluation" (models/tiny: image first, ground truth valid up to 25 m, so its
    10 m walls count)."""
    root, _, models = setup
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        os.symlink(models["model_depth"] / name, model / name)
    profile = json.loads((models["model_depth"] / "readout_profile.json").read_text())
    profile["depth_evaluation"] = {"layout": "image_first", "min_depth": 0.5, "max_depth": 20}
    (model / "readout_profile.json").write_text(json.dumps(profile))
    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    (ds / "depth").mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8)).save(ds / "images" / f"im{i}.png")
        depth_mm = (np.linspace(300, 19000, 64)[None, :] * np.ones((48, 1))).astype(np.uint16)  # 0.3 .. 19 m
        Image.fromarray(depth_mm).save(ds / "depth" / f"im{i}.png")
    default, image_first = tmp_path / "default", tmp_path / "image_first"
    cli("eval", "--model", model, "--task", "depth", "--out", default, "--quiet", ds)
    cli("eval", "--model", model, "--task", "depth", "--image-first", "--min-depth", "0.5", "--max-depth", "20",
        "--out", image_first, "--quiet", ds)
    for i in range(3):
        assert np.array_equal(np.load(default / f"im{i}.depth.npy"), np.load(image_first / f"im{i}.depth.npy"))
    m, want = read_metrics(default), read_metrics(image_first)
    assert m["delta1"] == want["delta1"] and m["abs_rel"] == want["abs_rel"]
    deltas = []
    for i in range(3):
        gt = np.array(Image.open(ds / "depth" / f"im{i}.png")).astype(np.float64) / 1000.0
        pred = np.clip(np.load(default / f"im{i}.depth.npy").astype(np.float64), 0.5, 20.0)
        valid = (gt > 0.5) & (gt < 20.0)
        deltas.append(np.mean(np.maximum(gt[valid] / pred[valid], pred[valid] / gt[valid]) < 1.25))
    assert m["delta1"] == pytest.approx(np.mean(deltas), rel=1e-6)
    # the flags still decide when given
    cli("eval", "--model", model, "--task", "depth", "--prompt-first", "--image-first", "--out", tmp_path / "both",
        ds, expect=2)
    profile["depth_evaluation"] = {"layout": "sideways"}
    (model / "readout_profile.json").write_text(json.dumps(profile))
    run = cli("eval", "--model", model, "--task", "depth", "--out", tmp_path / "bad", "--quiet", ds, expect=1)
    assert '"layout" must be one of "image_first", "prompt_first"' in run.stderr


@pytest.mark.parametrize("task, layout, missing", [
    ("semantic", "no_images", "images: No such file or directory"),
    ("semantic", "no_truth", "5 of the 5 ground-truth files are missing"),
    ("depth", "no_truth", "5 of the 5 ground-truth files are missing"),
    ("depth", "no_image_files", "holds no image (.jpg, .jpeg, .png, .webp, .tif, .tiff or .bmp)"),
    ("refseg", "no_truth", "5 of the 10 image and mask files of the list are missing"),
    ("refseg", "bad_sample", 'sample 0 has no "image", "phrase" or "mask" string'),
])
def test_eval_bad_dataset_layout_said_once(setup, tmp_path, task, layout, missing):
    """A dataset not laid out as the task reads it fails before any prediction (exit 2), with one
    message naming what is missing and the layout the task expects, not one per file."""
    root, ds, models = setup
    bad = tmp_path / "ds"
    bad.mkdir()
    if layout in ("no_truth", "no_image_files"):
        (bad / "images").mkdir()
        for name in os.listdir(ds / "images"):
            target = bad / "images" / (name + ".txt" if layout == "no_image_files" else name)
            os.symlink(ds / "images" / name, target)
    if task == "refseg":
        refs = [{"image": f"images/im{k}.png", "phrase": "x", "mask": f"masks/im{k}.png"} for k in range(5)]
        if layout == "bad_sample":
            refs[0] = {"image": "images/im0.png"}
        for name in ("images", "masks"):
            os.makedirs(bad / name, exist_ok=True)
        (bad / "refs.jsonl").write_text("\n".join(json.dumps(r) for r in refs) + "\n")
    args = {"semantic": ["--classes-file", ds / "classes.txt"], "depth": [], "refseg": []}[task]
    run = cli("eval", "--model", models["model"], "--task", task, *args, "--out", tmp_path / "out", bad, expect=2)
    assert missing in run.stderr
    assert run.stderr.count("expects") == 1 and run.stderr.count("\n") == 1, run.stderr
    assert "--task " + task + " expects " in run.stderr
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_refseg_matches_numpy(setup):
    root, ds, models = setup
    out = root / "out_refseg"
    cli("eval", "--model", models["model"], "--task", "refseg", "--max-tokens", "6", "--out", out, "--quiet",
        ds / "refs.jsonl")
    m = read_metrics(out)
    inter, union, per_sample = 0, 0, []
    for k in range(5):
        pred = np.array(Image.open(out / f"sample-{k:08d}.mask.png")) != 0
        gt = np.array(Image.open(ds / "masks" / f"im{k}.png")) != 0
        i, u = np.sum(pred & gt), np.sum(pred | gt)
        inter, union = inter + i, union + u
        per_sample.append(i / u if u else 1.0)
        with open(out / f"sample-{k:08d}.json") as f:
            sample = json.load(f)
        assert sample["phrase"] == "the green part"
        # 6 tokens cannot hold a box: nothing found, an all-zero box and an empty mask
        assert not sample["found"] and sample["box"] == [0, 0, 0, 0] and not pred.any()
    assert m["n_samples"] == 5
    assert m["cIoU"] == pytest.approx(inter / union if union else 0.0, abs=1e-12)
    assert m["gIoU"] == pytest.approx(np.mean(per_sample), abs=1e-12)


@pytest.mark.parametrize("args", [
    [],                                                        # no --task
    ["--task", "panoptic", "DS"],
    ["--task", "semantic", "DS"],                              # no --classes-file
    ["--task", "semantic", "--classes-file", "CLASSES"],       # no dataset
    ["--task", "semantic", "--classes-file", "CLASSES", "DS", "DS"],
    ["--task", "semantic", "--classes-file", "CLASSES", "--scale", "0", "DS"],
    ["--task", "semantic", "--classes-file", "CLASSES", "--crf-iterations", "-1", "DS"],
    ["--task", "semantic", "--classes-file", "CLASSES", "--shard", "2/2", "DS"],
    ["--task", "depth", "--crop", "square", "DS"],
    ["--task", "refseg", "--max-tokens", "0", "REFS"],
    ["--task", "refseg", "MISSING"],
    ["--task", "semantic", "--classes-file", "MISSING", "DS"],
    ["--task", "semantic", "--bogus", "DS"],
])
def test_eval_argument_errors(setup, args):
    root, ds, models = setup
    names = {"DS": ds, "CLASSES": ds / "classes.txt", "REFS": ds / "refs.jsonl", "MISSING": root / "missing"}
    cli("eval", "--model", models["model"], "--out", root / "out_errors", *[names.get(a, a) for a in args], expect=2)


def test_eval_without_predictions(setup):
    root, ds, _ = setup
    run = cli("eval", "--task", "semantic", "--classes-file", ds / "classes.txt", "--out", root / "empty",
              "--metrics-only", "--quiet", ds, expect=1)
    assert "labels.png" in run.stderr


def test_help():
    for command in ("eval", "bench"):
        run = cli(command, "--help")
        assert "usage: densemllm " + command in run.stdout
    assert "--classes-file" in cli("eval", "--help").stdout


def test_bench_decode(setup):
    """--decode N: N greedy steps after the queries, also after a second query that truncated the
    session to its prefix (no logits left), and their rate."""
    _, _, models = setup
    run = cli("bench", "--model", models["model"], "--size", "72x40", "--repeat", "1", "--decode", "5", "--json",
              "--quiet")
    decoded = json.loads(run.stdout)["runs"][0]["decode"]
    assert decoded["tokens"] == 5 and decoded["seconds"] > 0
    assert decoded["tokens_per_second"] == pytest.approx(5 / decoded["seconds"])
    text = cli("bench", "--model", models["model"], "--size", "72x40", "--repeat", "1", "--decode", "3").stdout
    assert "decode        3 tokens in" in text and "(load " in text


def test_bench(setup):
    _, _, models = setup
    run = cli("bench", "--model", models["model"], "--size", "72x40", "--repeat", "2", "--evaluation", "--json",
              "--quiet")
    result = json.loads(run.stdout)
    assert result["width"] == 72 and result["height"] == 40 and result["repeat"] == 2
    first, second = result["runs"][0]["first_query"], result["runs"][0]["second_query"]
    assert first["seconds_encode"] > 0 and second["seconds_encode"] == 0 and second["seconds_prefill"] == 0
    assert first["seconds_crf"] > 0
    assert result["runs"][0]["second_over_first"] == pytest.approx(second["seconds"] / first["seconds"])
    assert result["runs"][0]["seconds_load"] > 0 and "decode" not in result["runs"][0]
    for bad in (["--repeat", "0"], ["--size", "64"], ["--label-ids", "5,x"], ["extra"], ["--decode", "-1"],
                ["--decode", "4097"]):
        cli("bench", "--model", models["model"], *bad, expect=2)
