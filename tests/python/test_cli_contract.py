"""The output contract of the densemllm commands that scripts rely on, on the embedded tiny model:

- --json: one JSON object per input (eval: per dataset, info: per model, bench: per run) with
  "schema", "command", "input", "files" (paths that exist), "labels" (label value -> class name),
  "shares" (every label value's share, 0 included, matching the label PNG) and "summary"; a failed
  input gives an object with "error".
- without --json: exactly one line "<input>: <summary>" per input on stdout.
- progress: on a terminal a batch bar and a stage bar redrawn in place (a few screen rows for any
  number of inputs, checked by replaying the bytes on an emulated screen); elsewhere no lines, or
  with DMLLM_PROGRESS=1 one plain line per input.
"""
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios

import numpy as np
import pytest
from PIL import Image

BUILD = os.environ.get("DMLLM_BUILD_DIR")
SOURCE = os.environ.get("DMLLM_SOURCE_DIR")
pytestmark = pytest.mark.skipif(not BUILD or not SOURCE, reason="DMLLM_BUILD_DIR / DMLLM_SOURCE_DIR not set")

ENV = dict(os.environ, DMLLM_MODEL=os.path.join(SOURCE or "", "models/tiny"))
ENV.pop("DMLLM_PROGRESS", None)
COMMON_KEYS = {"schema", "command", "input", "files", "labels", "shares"}


def command(*args):
    return [os.path.join(BUILD, "densemllm"), *map(str, args)]


def cli(*args, expect=0, env=None):
    run = subprocess.run(command(*args), capture_output=True, text=True, timeout=600, env=env or ENV)
    assert run.returncode == expect, run.stderr
    return run


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two images: smaller copies of the tiny model's sample (a few tokens: a fast test)."""
    folder = tmp_path_factory.mktemp("in")
    with Image.open(os.path.join(SOURCE, "models/tiny/sample.png")) as im:
        im.convert("RGB").resize((192, 160)).save(folder / "a.png")
        im.convert("RGB").resize((160, 128)).save(folder / "b.png")
    return folder


def check_common(obj, name, input_path=None):
    assert COMMON_KEYS <= set(obj), obj
    assert obj["schema"] == 1 and obj["command"] == name
    if input_path is not None:
        assert obj["input"] == str(input_path)
    assert isinstance(obj["summary"], str) and obj["summary"]
    for path in obj["files"]:
        assert os.path.isfile(path), path
    assert set(obj["labels"]) == set(obj["shares"])
    assert all(re.fullmatch(r"\d+", k) for k in obj["labels"])
    assert all(isinstance(v, str) for v in obj["labels"].values())
    if obj["shares"]:
        assert sorted(map(int, obj["labels"])) == list(range(len(obj["labels"])))
        assert abs(sum(obj["shares"].values()) - 1.0) < 1e-9


def json_lines(run):
    return [json.loads(line) for line in run.stdout.splitlines()]


def shares_of_png(path, n_labels):
    labels = np.asarray(Image.open(path))
    return {str(k): float(np.mean(labels == k)) for k in range(n_labels)}


# (command, its options, the PNG holding the label map or None, files per input)
BATCH = [
    ("segment", ["--classes", "sky, wall, ball, tent", "--no-crf"], ".labels.png", 4),
    ("depth", [], None, 4),
    ("refseg", ["--phrase", "the red ball", "--no-crf"], ".labels.png", 3),
    ("openseg", ["--no-crf"], ".labels.png", 3),
    ("features", [], None, 3),
    ("ask", ["--question", "How many objects are there?"], None, 1),
    ("ground", ["--phrase", "the ball"], None, 2),
    ("detect", [], None, 2),
    ("readout", ["--labels", "5,17,42"], None, 0),
]


@pytest.mark.parametrize("name,options,label_png,n_files", BATCH, ids=[b[0] for b in BATCH])
def test_batch_commands(tmp_path, inputs, name, options, label_png, n_files):
    """--json: the objects; without it: one line per input, the objects' summaries (--no-png: the
    pictures left out of "files" as out of the folder)."""
    out = tmp_path / "o"
    objects = json_lines(cli(name, *options, "--json", "--out", out, inputs))
    assert [o["input"] for o in objects] == [str(inputs / "a.png"), str(inputs / "b.png")]
    for obj in objects:
        check_common(obj, name)
        assert len(obj["files"]) == n_files
        stem = os.path.splitext(os.path.basename(obj["input"]))[0]
        if n_files:   # the JSON kept in --out is the printed one
            with open(out / f"{stem}.{name}.json") as f:
                assert json.load(f) == obj
            assert str(out / f"{stem}.{name}.json") in obj["files"]
        if label_png:
            png = str(out / f"{stem}.{name}{label_png}")
            assert png in obj["files"]
            expected = shares_of_png(png, len(obj["labels"]))
            assert obj["shares"].keys() == expected.keys()
            for k in expected:
                assert obj["shares"][k] == pytest.approx(expected[k], abs=1e-12)
    if name == "readout":   # a diagnostic report per input (argmax map) unless --json
        return
    lean = tmp_path / "lean"
    pictures = ["--no-png"] if name not in ("ask",) else []   # ask writes no pictures
    lines = cli(name, *options, *pictures, "--out", lean, inputs).stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [o["input"] for o in objects], lines
    listed = []
    for line, obj in zip(lines, objects):
        stem = os.path.splitext(os.path.basename(obj["input"]))[0]
        with open(lean / f"{stem}.{name}.json") as f:
            kept = json.load(f)
        check_common(kept, name)
        assert line.split(": ", 1)[1] == kept["summary"].replace("\n", " ")
        listed += kept["files"]
    assert sorted(listed) == sorted(str(lean / f) for f in os.listdir(lean))   # no PNG
    assert not any(p.endswith(".png") for p in listed)


def test_segment_zero_shares_and_names(tmp_path, inputs):
    """Every class has a share, an absent one 0; the names are the result's label values."""
    obj = json_lines(cli("segment", "--classes", "sky, wall, ball, tent, nothing-like-this", "--json",
                         "--no-crf", "--no-png", "--out", tmp_path, inputs / "b.png"))[0]
    assert list(obj["labels"].values()) == ["sky", "wall", "ball", "tent", "nothing-like-this"]
    assert 0.0 in obj["shares"].values()
    background = json_lines(cli("segment", "--classes", "ball", "--background", "--no-crf", "--no-png",
                                "--json", "--out", tmp_path, inputs / "b.png"))[0]
    assert background["labels"] == {"0": "ball", "1": "background"}


def test_failed_input_and_stream(tmp_path, inputs):
    """A failed input has its line (and its object with "error"), and the run exits 1; ask
    --stream writes the answer on the input's line as it is generated."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    run = cli("depth", "--no-png", "--out", tmp_path / "bad", bad, inputs / "b.png", expect=1)
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{inputs / 'b.png'}: depth ") and \
        lines[1].startswith(f"{bad}: error: "), run.stdout
    objects = json_lines(cli("depth", "--no-png", "--json", "--out", tmp_path / "bad", bad, expect=1))
    assert len(objects) == 1 and "empty image data" in objects[0]["error"]
    assert COMMON_KEYS <= set(objects[0]) and objects[0]["files"] == []
    run = cli("ask", "--question", "How many objects are there?", "--stream", inputs / "b.png")
    assert len(run.stdout.splitlines()) == 1 and run.stdout.startswith(f"{inputs / 'b.png'}: There are")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two images with annotations, depth and a referring list for eval on the tiny model."""
    root = tmp_path_factory.mktemp("ds")
    for sub in ("images", "annotations", "depth", "masks"):
        (root / sub).mkdir()
    sample = np.asarray(Image.open(os.path.join(SOURCE, "models/tiny/sample.png")).convert("RGB"))
    refs = []
    for i in range(2):
        image = sample[::2, ::2] if i else sample
        h, w = image.shape[:2]
        Image.fromarray(np.ascontiguousarray(image)).save(root / "images" / f"im{i}.png")
        labels = np.zeros((h, w), np.uint8)
        labels[:, w // 2:] = 1
        Image.fromarray(labels).save(root / "annotations" / f"im{i}.png")
        Image.fromarray(np.full((h, w), 3000, np.uint16)).save(root / "depth" / f"im{i}.png")
        Image.fromarray(labels * 255).save(root / "masks" / f"im{i}.png")
        refs.append({"image": f"images/im{i}.png", "phrase": "the red ball", "mask": f"masks/im{i}.png"})
    (root / "classes.txt").write_text("wall\nball\n")
    (root / "refs.jsonl").write_text("\n".join(json.dumps(r) for r in refs) + "\n")
    return root


@pytest.mark.parametrize("task", ["semantic", "depth", "refseg"])
def test_eval_json(tmp_path, dataset, task):
    extra = {"semantic": ["--classes-file", dataset / "classes.txt", "--readout", "all"], "depth": [],
             "refseg": []}[task]
    data = dataset / "refs.jsonl" if task == "refseg" else dataset
    run = cli("eval", "--task", task, *extra, "--json", "--out", tmp_path, data)
    objects = json_lines(run)
    assert len(objects) == 1   # one result: the dataset's metrics
    metrics = objects[0]
    check_common(metrics, "eval", data)
    assert metrics["files"] == [str(tmp_path / "metrics.json")]
    with open(tmp_path / "metrics.json") as f:
        assert json.load(f) == metrics
    if task == "semantic":
        assert metrics["labels"] == {"0": "wall", "1": "ball", "2": "not in the class file"}
        predicted = np.concatenate([np.asarray(Image.open(tmp_path / f"im{i}.labels.png")).ravel()
                                    for i in range(2)])
        for k, share in metrics["shares"].items():
            assert share == pytest.approx(np.mean(predicted == int(k)), abs=1e-12)
    # each sample's result, kept in --out, has the same shape
    samples = sorted(p for p in tmp_path.glob("*.json") if p.name != "metrics.json")
    assert len(samples) == 2
    for path in samples:
        with open(path) as f:
            obj = json.load(f)
        check_common(obj, "eval")
        assert str(path) in obj["files"]
        if task != "depth":
            assert obj["labels"] and obj["shares"]
    text = cli("eval", "--task", task, *extra, "--metrics-only", "--out", tmp_path, data).stdout
    assert text == f"{data}: {metrics['summary']}\n"


def test_info_and_bench_json(tmp_path):
    model = os.path.join(SOURCE, "models/tiny")
    info = json_lines(cli("info", "--json", model))
    assert len(info) == 1
    check_common(info[0], "info", model)
    assert info[0]["files"] == [] and info[0]["labels"] == {} and info[0]["n_params"] > 0
    assert info[0]["official"]["match"] is False
    failed = json_lines(cli("info", "--json", tmp_path, expect=1))
    assert len(failed) == 1 and "config.json" in failed[0]["error"]
    bench = json_lines(cli("bench", "--size", "64x48", "--repeat", "1", "--json", "--quiet"))
    assert len(bench) == 1
    check_common(bench[0], "bench", "generated:64x48")
    assert bench[0]["runs"][0]["first_query"]["seconds"] > 0


def test_help_describes_the_schema():
    for name in ("segment", "depth", "refseg", "openseg", "features", "ask", "ground", "detect", "readout",
                 "eval", "bench", "info"):
        text = cli(name, "--help").stdout
        assert '"schema" (1)' in text and '"shares"' in text and "one line" in text, name
        if name != "info":
            assert "DMLLM_PROGRESS" in text
    assert "--json" in cli("info", "--help").stdout
    with open(os.path.join(SOURCE, "docs/cli-json.md")) as f:
        doc = f.read()
    assert '"schema": 1' in doc and '"shares"' in doc


# ---- progress ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """Four different images (a copy would reuse the first one's encoded prefix: no stages)."""
    folder = tmp_path_factory.mktemp("many")
    with Image.open(os.path.join(SOURCE, "models/tiny/sample.png")) as im:
        for k in range(4):
            im.convert("RGB").resize((128 + 32 * k, 128)).save(folder / f"img{k}.png")
    return folder


def test_progress_off_a_terminal(tmp_path, many):
    args = ("depth", "--no-png", "--out", tmp_path, many)
    quiet = cli(*args).stderr.splitlines()
    assert len(quiet) == 1 and "4 done" in quiet[0]     # only the closing count
    plain = cli(*args, env=dict(ENV, DMLLM_PROGRESS="1")).stderr
    assert "\r" not in plain and "\033" not in plain
    lines = plain.splitlines()
    assert len(lines) == 5, plain                        # one per input, then the count
    for k, line in enumerate(lines[:4]):
        assert re.fullmatch(r"\[[#.]+\] %d/4  [0-9.]+/s  ETA \S+  %s" % (k + 1, re.escape(str(many / f"img{k}.png"))),
                            line), line
    assert cli(*args, "--quiet", env=dict(ENV, DMLLM_PROGRESS="1")).stderr.count("\n") == 1


def replay(data):
    """The rows a terminal shows after data (\\r, \\n, cursor up, erase line / screen), with the
    number of rows the cursor ever reached and every text a row held."""
    rows, row, col, seen = [""], 0, 0, []
    for token in re.findall(rb"\x1b\[[0-9]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", data):
        if token == b"\r":
            col = 0
        elif token == b"\n":
            seen.append(rows[row])
            row += 1
            col = 0
            if row == len(rows):
                rows.append("")
        elif token == b"\x1b[A":
            seen.append(rows[row])
            row = max(row - 1, 0)
        elif token == b"\x1b[K":
            rows[row] = rows[row][:col]
        elif token == b"\x1b[J":
            rows[row] = rows[row][:col]
            del rows[row + 1:]
        elif token.startswith(b"\x1b"):
            raise AssertionError(f"unexpected escape {token!r}")
        else:
            text = token.decode()
            rows[row] = rows[row][:col] + text + rows[row][col + len(text):]
            col += len(text)
            seen.append(rows[row])
    return rows, len(rows), seen


def test_progress_bars_on_a_terminal(tmp_path, many):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))   # 200 columns
    child = subprocess.Popen(command("segment", "--classes", "sky, ball", "--out", tmp_path, many),
                             stdout=subprocess.PIPE, stderr=slave, env=ENV)
    os.close(slave)
    data = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:   # the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    stdout = child.stdout.read().decode()
    assert child.wait() == 0
    assert len(stdout.splitlines()) == 4
    rows, n_rows, seen = replay(data)
    # four inputs with two stages each (vision, llm): the bars stay on two rows, then the count
    # (before: a line per input and per stage, 15 rows)
    assert n_rows <= 3, rows
    assert [r for r in rows if r.strip()] == ["densemllm: 4 done, 0 skipped (already done), 0 failed, "
                                               "shard 0/1 of 4 inputs"]
    assert any(re.match(r"\[#{24}\] 4/4  [0-9.]+/s  ETA 0:00  ", s) for s in seen), seen
    assert any(re.match(r"\[[#.]{24}\] [0-3]/4 .*ETA .*img[0-3]\.png$", s) for s in seen)
    assert any(re.match(r"  (vision|llm) +\[[#.]{24}\] \d+/\d+$", s) for s in seen), seen
