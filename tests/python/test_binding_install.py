"""The Python package installs offline with Debian's pip and setuptools (pip install
--no-build-isolation --no-index), and the installed package finds a libdensemllm.so.0 placed in its
own directory when DMLLM_LIB is not set. Works on a copy of bindings/python, so the source tree
gets no build files."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import SOURCE_DIR


def test_pip_install_offline(dm, tmp_path):
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("pip is not installed (bindings/python/README.md: put bindings/python on PYTHONPATH)")
    source = tmp_path / "src"
    shutil.copytree(os.path.join(SOURCE_DIR, "bindings", "python"), source,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    shutil.copy(os.path.realpath(os.environ["DMLLM_LIB"]), source / "densemllm" / "libdensemllm.so.0")
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                              "--no-deps", "--disable-pip-version-check", "--target", str(target), str(source)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("DMLLM_LIB", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    code = "import densemllm; print(densemllm.library_path, densemllm.version())"
    check = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    path, version = check.stdout.split()
    assert path == str(target / "densemllm" / "libdensemllm.so.0") and version == dm.version()
