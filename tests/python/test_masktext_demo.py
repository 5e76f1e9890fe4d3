"""The library's dense text against the official demo's reading of it (model-spec 6.1).

The demo finds runs with the regex \\(\\s*(\\d+)\\s*,\\s*(\\d+)\\s*\\) and names with <ref>(.*?)</ref>, and
expands the runs row-major. Here numpy maps go through dmllm_mask_text_write (ctypes, the shared
library named by DMLLM_LIB) and are expanded that way, and texts spelled in the demo's styles are
built here and read back with dmllm_mask_text_parse. Writes nothing.
"""
import ctypes
import os
import re

import numpy as np
import pytest

LIB_PATH = os.environ.get("DMLLM_LIB")
pytestmark = pytest.mark.skipif(not LIB_PATH, reason="DMLLM_LIB (the built shared library) not set")

RUN = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")
REF = re.compile(r"<ref>(.*?)</ref>")


class MaskTextResult(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int),
                ("labels", ctypes.POINTER(ctypes.c_uint16)), ("n_names", ctypes.c_int),
                ("names", ctypes.POINTER(ctypes.c_char_p)), ("has_depth_tag", ctypes.c_int)]


@pytest.fixture(scope="module")
def lib():
    lib = ctypes.CDLL(LIB_PATH)
    lib.dmllm_mask_text_write.argtypes = [ctypes.POINTER(ctypes.c_uint16), ctypes.c_int, ctypes.c_int,
                                          ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                          ctypes.POINTER(ctypes.c_void_p)]
    lib.dmllm_mask_text_parse.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                                          ctypes.POINTER(ctypes.POINTER(MaskTextResult))]
    lib.dmllm_mask_text_result_free.argtypes = [ctypes.POINTER(MaskTextResult)]
    lib.dmllm_text_free.argtypes = [ctypes.c_void_p]
    lib.dmllm_last_error.restype = ctypes.c_char_p
    return lib


def write(lib, labels, names):
    h, w = labels.shape
    flat = np.ascontiguousarray(labels, dtype=np.uint16)
    c_names = (ctypes.c_char_p * len(names))(*[n.encode() for n in names]) if names else None
    n_labels = len(names) if names else int(labels.max()) + 1
    out = ctypes.c_void_p()
    status = lib.dmllm_mask_text_write(flat.ctypes.data_as(ctypes.POINTER(ctypes.c_uint16)), w, h, c_names,
                                       n_labels, ctypes.byref(out))
    assert status == 0, lib.dmllm_last_error()
    text = ctypes.string_at(out.value).decode()
    lib.dmllm_text_free(out)
    return text


def parse(lib, text, w, h):
    out = ctypes.POINTER(MaskTextResult)()
    status = lib.dmllm_mask_text_parse(text.encode(), w, h, ctypes.byref(out))
    if status != 0:
        return status, lib.dmllm_last_error().decode()
    r = out.contents
    labels = np.ctypeslib.as_array(r.labels, shape=(h * w,)).reshape(h, w).copy()
    names = [r.names[i].decode() for i in range(r.n_names)]
    lib.dmllm_mask_text_result_free(out)
    return labels, names


def demo_expand(text, w, h):
    mask = re.search(r"<mask>(.*)</mask>", text, re.S).group(1)
    runs = [(int(v), int(n)) for v, n in RUN.findall(mask)]
    values = np.repeat([v for v, _ in runs], [n for _, n in runs])
    assert values.size == w * h
    return values.reshape(h, w), REF.findall(text)


@pytest.mark.parametrize("seed", range(8))
def test_written_text_reads_back_as_the_demo_reads_it(lib, seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 40)), int(rng.integers(1, 60))
    k = int(rng.integers(1, 12))
    # Blocky maps (long runs) and noise alike.
    labels = rng.integers(0, k, size=(h, (w + 3) // 4)).repeat(4, axis=1)[:, :w] if seed % 2 else \
        rng.integers(0, k, size=(h, w))
    names = ["<BG>", "<FG>"] + ["class %d" % i for i in range(k)] if seed % 3 == 0 else None
    text = write(lib, labels, names)
    assert re.fullmatch(r"(<ref>[^<]*(<[A-Z]+>)?</ref>)*<mask>(\(\d+,\d+\))+</mask>", text)
    expanded, refs = demo_expand(text, w, h)
    assert np.array_equal(expanded, labels)
    assert refs == (names or [])


def test_demo_spellings_parse(lib):
    labels = np.array([[0, 0, 1], [1, 1, 2]])
    runs = [(0, 2), (1, 3), (2, 1)]
    spaced = "<ref>a</ref><ref>b</ref><ref>c</ref><mask>" + ", ".join("( %d , %d )" % r for r in runs) + "</mask>"
    expanded = "<ref>a</ref><ref>b</ref><ref>c</ref><mask>" + ",".join(map(str, labels.ravel())) + "</mask>"
    assert np.array_equal(demo_expand(spaced, 3, 2)[0], labels)
    for text in (spaced, expanded):
        got, names = parse(lib, text, 3, 2)
        assert np.array_equal(got, labels) and names == ["a", "b", "c"]


def test_counts_the_demo_would_reject_fail(lib):
    status, message = parse(lib, "<mask>(0,5)</mask>", 3, 2)
    assert status == -3 and "needs 6" in message
