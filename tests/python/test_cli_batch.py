"""The batch runner of the densemllm commands on the embedded tiny model: output names unique per
input and task (two stems, two commands into one --out), --resume over a task's own complete files,
a failed write failing its input (exit 1), temporary files removed on a signal and on the next run,
a folder without images refused, and the exit codes and naming rule documented in --help.
"""
import os
import signal
import subprocess
import time

import pytest
from PIL import Image

BUILD = os.environ.get("DMLLM_BUILD_DIR")
SOURCE = os.environ.get("DMLLM_SOURCE_DIR")
pytestmark = pytest.mark.skipif(not BUILD or not SOURCE,
                                reason="DMLLM_BUILD_DIR / DMLLM_SOURCE_DIR not set")


def command(*args):
    return [os.path.join(BUILD, "densemllm"), *map(str, args)]


ENV = dict(os.environ, DMLLM_MODEL=os.path.join(SOURCE or "", "models/tiny"))


def cli(*args, expect=0):
    run = subprocess.run(command(*args), capture_output=True, text=True, timeout=600, env=ENV)
    assert run.returncode == expect, run.stderr
    return run


@pytest.fixture(scope="module")
def sample():
    return os.path.abspath(os.path.join(SOURCE, "models/tiny/sample.png"))


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def dead_pid():
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_two_tasks_and_two_stems_share_an_out_folder(tmp_path, sample):
    inputs = tmp_path / "in"
    inputs.mkdir()
    os.symlink(sample, inputs / "photo.png")
    Image.open(sample).convert("RGB").save(inputs / "photo.jpg")
    out = tmp_path / "o"
    cli("segment", "--classes", "sky,wall", "--out", out, inputs)
    depth = cli("depth", "--resume", "--out", out, inputs)   # segment's files do not count as done
    assert "2 done, 0 skipped" in depth.stderr, depth.stderr
    files = {"segment": (".json", ".labels.png", ".overlay.png", ".mask.txt"),
             "depth": (".json", ".mm.png", ".png", ".txt")}
    assert names(out) == sorted(f"photo.{ext}.{task}{suffix}" for ext in ("jpg", "png")
                                for task, suffixes in files.items() for suffix in suffixes)
    # a task is done only with all its files: one missing PNG redoes that input alone
    os.unlink(out / "photo.png.segment.overlay.png")
    again = cli("segment", "--classes", "sky,wall", "--resume", "--out", out, inputs)
    assert "1 done, 1 skipped" in again.stderr, again.stderr
    assert (out / "photo.png.segment.overlay.png").is_file()
    # --no-png files do not make a run with PNGs done
    cli("depth", "--no-png", "--out", tmp_path / "np", sample)
    cli("depth", "--resume", "--out", tmp_path / "np", sample)
    assert names(tmp_path / "np") == [f"sample.depth{s}" for s in files["depth"]]


def test_inputs_that_would_write_the_same_files_are_refused(tmp_path, sample):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        os.symlink(sample, tmp_path / folder / "x.png")
    run = cli("depth", "--out", tmp_path / "o", tmp_path / "a", tmp_path / "b", expect=2)
    assert f"{tmp_path}/a/x.png and {tmp_path}/b/x.png" in run.stderr
    assert not (tmp_path / "o").exists()
    # one path given twice is one input
    cli("depth", "--no-png", "--out", tmp_path / "o", sample, sample)
    assert names(tmp_path / "o") == ["sample.depth.json", "sample.depth.txt"]


def test_failed_json_write_fails_the_input(tmp_path, sample):
    out = tmp_path / "o"
    (out / "sample.depth.json").mkdir(parents=True)   # the rename onto it fails, also as root
    run = cli("depth", "--no-png", "--out", out, sample, expect=1)
    assert "cannot write" in run.stderr and "sample.depth.json" in run.stderr
    assert "0 done, 0 skipped (already done), 1 failed" in run.stderr
    assert names(out) == ["sample.depth.json", "sample.depth.txt"]   # no temporary file left


def test_disk_full_fails_the_input(tmp_path, sample):
    full = tmp_path / "full"
    full.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", full]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        (full / "filler").write_bytes(bytes(4096))   # one 4 KiB page left: the text, not the JSON
        run = cli("depth", "--no-png", "--out", full, sample, expect=1)
        assert "No space left on device" in run.stderr and "1 failed" in run.stderr
        assert names(full) == ["filler", "sample.depth.txt"]
        (full / "filler").unlink()
        cli("depth", "--no-png", "--resume", "--out", full, sample)
        assert names(full) == ["sample.depth.json", "sample.depth.txt"]
    finally:
        subprocess.run(["umount", full])


def test_rerun_removes_temporaries_of_interrupted_runs(tmp_path, sample):
    out = tmp_path / "o"
    out.mkdir()
    gone, alive = dead_pid(), os.getpid()
    stale = [f"sample.depth.json.tmp.{gone}", f"sample.depth.mm.png.tmp.{gone}"]
    kept = [f"sample.depth.json.tmp.{alive}",         # a process still writing it (another shard)
            f"sample.segment.json.tmp.{gone}",        # another task's
            f"other.depth.json.tmp.{gone}",           # not an input of this run
            f"sample.depth.json.tmp.{gone}x"]         # not a temporary file name
    for name in stale + kept:
        (out / name).write_text("partial")
    run = cli("depth", "--resume", "--out", out, sample)
    assert "removed 2 temporary files" in run.stderr, run.stderr
    done = [f"sample.depth{s}" for s in (".json", ".mm.png", ".png", ".txt")]
    assert names(out) == sorted(kept + done)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_removes_the_file_being_written(tmp_path, sample, sig):
    out = tmp_path / "o"
    out.mkdir()
    process = subprocess.Popen(command("depth", "--no-png", "--out", out, sample), env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # The JSON's temporary file is a FIFO without a reader: the run blocks writing it.
    fifo = out / f"sample.depth.json.tmp.{process.pid}"
    os.mkfifo(fifo)
    deadline = time.monotonic() + 300
    while not (out / "sample.depth.txt").exists() and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    assert process.poll() is None, process.stderr.read()
    process.send_signal(sig)
    assert process.wait(timeout=60) == -sig
    assert names(out) == ["sample.depth.txt"]   # the FIFO, the file being written, is gone


def test_folder_without_images(tmp_path, sample):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    run = cli("segment", "--classes", "sky", "--out", tmp_path / "o", tmp_path / "empty", expect=1)
    assert f"{tmp_path}/empty: no images" in run.stderr
    (tmp_path / "list.txt").write_text("# nothing\n")
    run = cli("depth", "--out", tmp_path / "o", f"@{tmp_path}/list.txt", expect=1)
    assert "list.txt: the list names no images" in run.stderr


def test_help_documents_names_and_exit_codes():
    for task in ("segment", "depth", "refseg", "openseg", "ask", "ground", "detect", "features"):
        text = cli(task, "--help").stdout
        assert f"<name>.{task}.json" in text and f"photo.jpg.{task}.json" in text, text
        assert "exit status: 0 every input done" in text, text
        assert "1 an input or one of its files" in text and "2 bad usage" in text
