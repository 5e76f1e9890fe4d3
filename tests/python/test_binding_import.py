"""Importing the package loads no library: `import densemllm` and help() work where libdensemllm
cannot be found, and the first call raises LibraryLoadError naming the paths tried."""
import os
import subprocess
import sys

from conftest import SOURCE_DIR

CODE = """
import pydoc, densemllm
assert "class Model" in pydoc.render_doc(densemllm.Model)
assert "segment" in pydoc.render_doc(densemllm)
for use in (densemllm.version, lambda: densemllm.library_path):
    try:
        use()
    except densemllm.LibraryLoadError as e:
        print(e)
    else:
        raise SystemExit("no LibraryLoadError")
"""


def test_import_without_library(tmp_path):
    missing = str(tmp_path / "no-such-dir" / "libdensemllm.so.0")
    env = dict(os.environ, DMLLM_LIB=missing, PYTHONPATH=os.path.join(SOURCE_DIR, "bindings", "python"))
    run = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and all("libdensemllm not found" in line and missing in line for line in lines), lines
