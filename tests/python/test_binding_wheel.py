"""The documented install on Debian 12 (bindings/python/README.md): scripts/python-wheel.sh builds
a platform wheel that carries libdensemllm.so, pip installs it into a venv (PEP 668 forbids
installing into the system Python), and the installed package segments an image on models/tiny
with the library found inside the package: no DMLLM_LIB, LD_LIBRARY_PATH or PYTHONPATH."""
import glob
import os
import subprocess
import sys
import zipfile

from conftest import IMAGE, SOURCE_DIR

CODE = """
import densemllm
with densemllm.Model(MODEL) as model, model.session() as session:
    seg = session.segment(IMAGE, ["cat", "grass", "wall"])
print(densemllm.library_path)
print(seg.width, seg.height)
"""


def run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def test_wheel_into_venv(dm, tmp_path):
    dist = tmp_path / "dist"
    run(["sh", os.path.join(SOURCE_DIR, "scripts", "python-wheel.sh"), os.environ["DMLLM_LIB"], str(dist)])
    (wheel,) = glob.glob(str(dist / "*.whl"))
    assert os.path.basename(wheel).endswith("-py3-none-linux_x86_64.whl"), wheel  # not py3-none-any
    names = zipfile.ZipFile(wheel).namelist()
    assert "densemllm/libdensemllm.so.0" in names and "densemllm/py.typed" in names, names

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check", wheel])
    env = {k: v for k, v in os.environ.items() if k not in ("DMLLM_LIB", "LD_LIBRARY_PATH", "PYTHONPATH")}
    code = f"MODEL = {os.path.join(SOURCE_DIR, 'models', 'tiny')!r}\nIMAGE = {IMAGE!r}\n" + CODE
    path, size = run([python, "-c", code], env=env, cwd=tmp_path).splitlines()
    assert path.startswith(str(venv)) and path.endswith("/densemllm/libdensemllm.so.0"), path
    assert size == "451 300"
