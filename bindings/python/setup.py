"""Only the wheel's tag; everything else is in pyproject.toml. A wheel that carries a
libdensemllm.so* (scripts/python-wheel.sh copies one into the package) holds native code for this
platform, so it must not be tagged py3-none-any: it is tagged py3-none-<platform> (ctypes, so any
Python 3 ABI)."""
import glob
import os

from setuptools import setup
from setuptools.dist import Distribution

try:
    from wheel.bdist_wheel import bdist_wheel
except ImportError:  # without Debian's python3-wheel only source installs work; they need no tag
    bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))
CARRIES_LIBRARY = bool(glob.glob(os.path.join(HERE, "densemllm", "libdensemllm.so*")))


class NativeDistribution(Distribution):
    """Installs into platlib, the root of a platform wheel, like a package with extensions."""

    def has_ext_modules(self):
        return True


cmdclass = {}
if bdist_wheel is not None and CARRIES_LIBRARY:
    class PlatformWheel(bdist_wheel):
        def get_tag(self):
            return "py3", "none", super().get_tag()[2]

    cmdclass["bdist_wheel"] = PlatformWheel

setup(cmdclass=cmdclass, distclass=NativeDistribution if CARRIES_LIBRARY else Distribution)
