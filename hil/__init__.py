"""Hardware-in-the-loop experiments on 1T1R memristor arrays.

Top layer: experiments, program-and-verify algorithms, the HDF5 run store and the
``hil`` command line. Imports :mod:`calibration` and :mod:`drivers`, never the reverse.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("memristor-hil")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0+src"

__all__ = ["__version__"]
