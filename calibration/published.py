"""Published device numbers that simulated (or measured) arrays are compared with.

* :func:`milo_igvva_sigma` — spread of the conductance after incremental gate-voltage
  program-and-verify (IGVVA) on a 4-kbit HfO2 1T1R array: V. Milo, F. Anzalone, C. Zambelli,
  E. Perez, M. K. Mahadevaiah, O. G. Ossorio, P. Olivo, C. Wenger, D. Ielmini, "Optimized
  programming algorithms for multilevel RRAM in hardware neural networks", IEEE IRPS 2021,
  doi:10.1109/IRPS46558.2021.9405119, Fig. 4 (IGVVA): a linear fit
  ``sigma_G = 4.782 uS - 0.009107 * G`` (G in uS) over 50-225 uS, i.e. a nearly
  conductance-independent 3-4.5 uS. The paper's full text was not available to us: the
  coefficients are not checked against it, and no page is given.
"""

from __future__ import annotations

import numpy as np

#: Conductance range of the fit, S.
MILO_RANGE = (50e-6, 225e-6)
#: Fit coefficients: sigma_G (S) = MILO_A + MILO_B * G (S).
MILO_A = 4.782e-6
MILO_B = -0.009107


def milo_igvva_sigma(g: np.ndarray | float) -> np.ndarray:
    """Published one-sigma conductance spread (S) after IGVVA at conductance ``g`` (S).

    Raises:
        ValueError: ``g`` outside the fitted range [50, 225] uS.
    """
    g = np.asarray(g, dtype=float)
    low, high = MILO_RANGE
    if np.any((g < low * (1 - 1e-9)) | (g > high * (1 + 1e-9))):
        raise ValueError(f"g outside the range of Milo et al.'s fit [{low:.3e}, {high:.3e}] S: {g.tolist()}")
    return MILO_A + MILO_B * g
