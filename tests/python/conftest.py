"""Fixtures of the binding suites (test_binding_*.py): the package from bindings/python, and a model
directory made of the one_window golden checkpoint plus the fixture tokenizer (as
tests/support_model_dir.c makes it). Other suites in this directory use none of them."""
import os
import sys

import pytest

SOURCE_DIR = os.environ.get("DMLLM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGE = os.path.join(SOURCE_DIR, "examples", "images", "chelsea.png")
MAX_PATCHES = 64  # a 10 x 6 patch grid: 15 image tokens, enough for every test and fast


@pytest.fixture(scope="session")
def dm():
    if not os.environ.get("DMLLM_LIB"):
        pytest.skip("DMLLM_LIB not set (run through CTest)")
    sys.path.insert(0, os.path.join(SOURCE_DIR, "bindings", "python"))
    import densemllm
    return densemllm


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    golden = os.path.join(SOURCE_DIR, "tests", "fixtures", "golden", "one_window")
    for name in ("config.json", "model.safetensors"):
        os.symlink(os.path.join(golden, name), directory / name)
    tokenizer = os.path.join(SOURCE_DIR, "tests", "fixtures", "tokenizer", "tokenizer.json")
    os.symlink(tokenizer, directory / "tokenizer.json")
    return str(directory)


@pytest.fixture(scope="session")
def model(dm, model_dir):
    with dm.Model(model_dir, compute=dm.Compute.F32) as m:
        yield m


@pytest.fixture()
def session(dm, model):
    with model.session(max_num_patches=MAX_PATCHES, n_threads=2) as s:
        yield s


@pytest.fixture(scope="session")
def image(dm):
    with dm.Image.open(IMAGE) as img:
        yield img
