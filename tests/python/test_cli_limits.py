"""Oversized requests fail fast through the densemllm CLI with a message that names the limit
(issue 20, items 7 and 8): decompression bombs (a JPEG frame header or PNG IHDR claiming
16000 x 16000), /dev/zero as an image, --max-image-pixels, and a --max-patches whose image tokens
exceed the model's max_position_embeddings (refused before any vision work); and --memory-limit
(issue 20, item 12): a step that would need more memory is refused with what it needs."""
import io
import os
import struct
import subprocess
import time
import zlib

import pytest
from PIL import Image

BUILD = os.environ.get("DMLLM_BUILD_DIR")
SOURCE = os.environ.get("DMLLM_SOURCE_DIR")
pytestmark = pytest.mark.skipif(not BUILD or not SOURCE, reason="DMLLM_BUILD_DIR / DMLLM_SOURCE_DIR not set")


def segment(*args, timeout=60):
    """Runs `densemllm segment` on the tiny model; returns (exit code, stderr, seconds)."""
    start = time.monotonic()
    run = subprocess.run([os.path.join(BUILD, "densemllm"), "segment", "--classes", "circle", "--quiet",
                          *map(str, args)], capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ, DMLLM_MODEL=os.path.join(SOURCE, "models/tiny")))
    return run.returncode, run.stderr, time.monotonic() - start


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_jpeg_bomb_fails_fast(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 16000, 16000)
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(bytes(data))
    code, err, seconds = segment("--out", tmp_path, bomb)
    assert code == 1 and seconds < 20, err
    assert "16000x16000 (256000000 pixels) exceeds the limit of 178956970 pixels" in err


def test_png_bomb_fails_fast(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16000, 16000, 8, 2, 0, 0, 0))
                     + png_chunk(b"IDAT", b"") + png_chunk(b"IEND", b""))
    code, err, seconds = segment("--out", tmp_path, bomb)
    assert code == 1 and seconds < 20, err
    assert "PNG size 16000x16000" in err and "178956970" in err


def test_dev_zero_fails_fast(tmp_path):
    code, err, seconds = segment("--out", tmp_path, "/dev/zero")
    assert code == 1 and seconds < 20, err
    assert "/dev/zero: more than 268435456 bytes" in err


def test_max_image_pixels(tmp_path):
    sample = os.path.join(SOURCE, "models/tiny/sample.png")
    width, height = Image.open(sample).size
    code, err, _ = segment("--out", tmp_path, "--max-image-pixels", width * height - 1, sample)
    assert code == 1 and f"exceeds the limit of {width * height - 1} pixels" in err, err
    code, err, _ = segment("--out", tmp_path, "--max-image-pixels", width * height, sample)
    assert code == 0, err
    code, err, _ = segment("--out", tmp_path, "--max-image-pixels", "-5", sample)
    assert code == 2 and "--max-image-pixels -5: not a valid N" in err


def test_context_overflow_is_refused_before_vision(tmp_path):
    # 5840 x 5840 at --max-patches 600000: 366 x 366 patches, 33,489 image tokens > 32,768.
    big = tmp_path / "big.png"
    Image.new("RGB", (5840, 5840), (90, 90, 90)).save(big)
    code, err, seconds = segment("--out", tmp_path, "--max-patches", 600000, big)
    assert code == 1 and seconds < 30, (seconds, err)
    assert "the image needs 33489 tokens" in err and "max_position_embeddings 32768" in err, err
    assert "set max_num_patches to" in err


def test_memory_limit(tmp_path):
    sample = os.path.join(SOURCE, "models/tiny/sample.png")
    code, err, seconds = segment("--out", tmp_path, "--memory-limit", "1M", sample)
    assert code == 1 and seconds < 20, err
    assert "a session with a KV cache of" in err and " needs " in err and "memory limit 1.00 MiB" in err, err
    # The session fits in 12 MiB; a 1000 x 1000 image's encoding does not (about 20 MiB).
    big = tmp_path / "big.png"
    Image.new("RGB", (1000, 1000), (90, 90, 90)).save(big)
    code, err, _ = segment("--out", tmp_path, "--memory-limit", "12M", big)
    assert code == 1 and "encoding a 1000x1000 image (resized 1024x1024" in err and " needs " in err, err
    assert "memory limit 12.00 MiB (held: " in err, err
    code, err, _ = segment("--out", tmp_path, "--memory-limit", "4G", big)
    assert code == 0, err
    code, err, _ = segment("--out", tmp_path, "--memory-limit", "12X", sample)
    assert code == 2 and "--memory-limit 12X" in err, err
    # A negative size is refused before its unit is applied (shifting it was undefined behaviour).
    code, err, _ = segment("--out", tmp_path, "--memory-limit", "-1K", sample)
    assert code == 2 and "--memory-limit -1K" in err, err
    # 100 MiB holds a 2000 x 1500 image's encoding and prefill, not its dense CRF at full size.
    photo = tmp_path / "photo.png"
    Image.new("RGB", (2000, 1500), (30, 120, 200)).save(photo)
    code, err, seconds = segment("--out", tmp_path, "--memory-limit", "100M", photo)
    assert code == 1 and "the dense CRF of a 2000x1500 image" in err and " needs " in err, err
    assert "memory limit 100.00 MiB (held: " in err, err
