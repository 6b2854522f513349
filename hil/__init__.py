"""Hardware-in-the-loop experiments on 1T1R memristor arrays.

Top layer: experiments, program-and-verify algorithms, the HDF5 run store and the
``hil`` command line. Imports :mod:`calibration` and :mod:`drivers`, never the reverse.
"""

from hil._version import __version__

__all__ = ["__version__"]
