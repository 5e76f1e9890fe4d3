"""`densemllm --weights` (issue 18, deliverable 4): int8 weights segment the tiny model's sample
like the default path does, a CPU without VNNI (oneDNN capped at AVX2) refuses them with a message
that says why, and an unknown kind is a usage error naming the choices."""
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

BUILD = os.environ.get("DMLLM_BUILD_DIR")
SOURCE = os.environ.get("DMLLM_SOURCE_DIR")
pytestmark = pytest.mark.skipif(not BUILD or not SOURCE, reason="DMLLM_BUILD_DIR / DMLLM_SOURCE_DIR not set")
CLASSES = "sky,wall,grass,sand,water,road,ball,box,tent,star,ring,cross,pillar,traffic cone"


def segment(out, *args, env=None):
    """`densemllm segment` of the tiny model's sample into out; returns the completed process."""
    return subprocess.run([os.path.join(BUILD, "densemllm"), "segment", "--classes", CLASSES, "--quiet", "--no-crf",
                           "--out", str(out), *args, os.path.join(SOURCE, "models/tiny/sample.png")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, DMLLM_MODEL=os.path.join(SOURCE, "models/tiny"), **(env or {})))


def labels(folder):
    (name,) = [n for n in os.listdir(folder) if n.endswith(".labels.png")]
    return np.asarray(Image.open(os.path.join(folder, name)))


def test_int8_weights_segment_like_the_default(tmp_path):
    default, int8 = tmp_path / "default", tmp_path / "int8"
    run = segment(default)
    assert run.returncode == 0, run.stderr
    run = segment(int8, "--weights", "int8")
    if run.returncode == 1 and "VNNI" in run.stderr:
        pytest.skip("no VNNI on this CPU")
    assert run.returncode == 0, run.stderr
    agreement = float(np.mean(labels(default) == labels(int8)))
    assert agreement >= 0.95, agreement


def test_int8_weights_need_vnni(tmp_path):
    run = segment(tmp_path, "--weights", "int8", env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert run.returncode == 1, run.stderr
    assert "int8 weights requested but oneDNN has no VNNI int8 matmul on this CPU" in run.stderr
    assert not os.listdir(tmp_path)


def test_unknown_weights_kind(tmp_path):
    run = segment(tmp_path, "--weights", "fp8")
    assert run.returncode == 2
    assert "--weights fp8: expected auto, bf16, f32 or int8" in run.stderr
